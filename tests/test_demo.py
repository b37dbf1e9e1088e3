"""`llmlab demo` runs offline end to end and writes the tokenizers and a self-contained report."""

from __future__ import annotations

import json

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
    # stage 2: three pretrained encodings; stages 3-4: two fine-tuned models, evaluated and compared
    assert "Pretraining: positional encodings trained short, tested long" in html
    assert "Fine-tuning: full vs LoRA" in html and "Offline A/B comparison" in html
    for method in ("full", "lora"):
        summary = json.loads((out / "finetune" / method / "history.json").read_text(encoding="utf-8"))
        assert summary["best_metric"] > 0.6, (method, summary["best_metric"])  # chance is about 0.5
    lora_bytes = sum(f.stat().st_size for f in (out / "finetune" / "lora").glob("adapter*"))
    full_bytes = sum(f.stat().st_size for f in (out / "finetune" / "full").rglob("*.safetensors"))
    assert 0 < lora_bytes < full_bytes / 5  # an adapter is saved alone
