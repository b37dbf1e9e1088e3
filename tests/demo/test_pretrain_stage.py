"""Demo stage 2: the small extrapolation study adds its section to the report."""

from __future__ import annotations

from llmlab.demo import pretrain_stage as stage
from llmlab.report.html import Report
from tests.studies.test_positions import TINY_LM


def test_pretrain_stage_adds_a_section(tmp_path, monkeypatch):
    from llmlab.tokenizer.train import train_tokenizer

    monkeypatch.setattr(stage, "DEMO", TINY_LM)
    lines = [f"line {i}: the quick brown fox jumps over the lazy dog number {i % 17}." for i in range(400)]
    tokenizer = train_tokenizer("bpe", lines, 300, workers=1)
    report = Report("demo")
    out = stage.pretrain_stage(report, tmp_path, tokenizer, lines, progress=False)
    assert [r["positional"] for r in out["extrapolation"]] == list(stage.DEMO_ENCODINGS)
    assert "Pretraining" in report.render() and "n/a (table of 16)" in report.render()
