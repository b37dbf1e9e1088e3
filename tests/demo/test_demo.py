"""`llmlab demo` runs offline end to end and writes the tokenizers and a self-contained report."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmlab.tokenizer.pipeline import Tokenizer


@pytest.mark.slow
def test_demo_writes_tokenizers_and_report(tmp_path):
    out = tmp_path / "demo"
    # a fresh interpreter, as a user runs it: the demo pins its kernels before torch loads
    done = subprocess.run(
        [sys.executable, "-m", "llmlab", "demo", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    assert "not pinned" not in done.stderr
    assert "report.html" in printed
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert summary.strip() in printed  # the demo ends by printing its headline results
    check_readme_quotes(summary)
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


README = Path(__file__).resolve().parents[2] / "README.md"


def check_readme_quotes(summary: str) -> None:
    """README quotes the demo's summary verbatim, for the Python version it names (the corpus is that
    version's standard library docstrings, so another version gives other figures)."""
    quoted = re.search(r"```text\n\s*(llmlab demo summary.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert quoted, "README has no ```text block with the demo summary"
    lines = [line.strip() for line in quoted.group(1).strip().splitlines()]
    version = re.search(r"Python (\d+\.\d+)", lines[0]).group(1)
    if version != ".".join(platform.python_version_tuple()[:2]):
        pytest.skip(f"README quotes the demo on Python {version}; this is {platform.python_version()}")
    assert summary.strip().splitlines() == lines
