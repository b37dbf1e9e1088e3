"""`llmlab demo` runs offline end to end and writes the tokenizers and a self-contained report."""

from __future__ import annotations

import pytest

from llmlab.cli import main
from llmlab.tokenizer.pipeline import Tokenizer


@pytest.mark.slow
def test_demo_writes_tokenizers_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    assert "report.html" in capsys.readouterr().out
    html = (out / "report.html").read_text(encoding="utf-8")
    assert (
        "data:image/png;base64," in html and "<script" not in html and "http" not in html.split("<body>")[1]
    )
    for model in ("wordpiece", "bpe", "unigram"):
        tok = Tokenizer.load(out / "tokenizers" / f"{model}.json")
        assert tok.vocab_size == 4000
        assert tok.fingerprint[:12] in html
