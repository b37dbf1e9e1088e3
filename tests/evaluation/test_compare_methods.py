"""`llmlab compare-methods`: methods trained a few steps on real SST-2 rows; the table, report and ensemble.

(Every method's training itself is covered by tests/finetune/test_methods.py; here three keep the test short.)
"""

from __future__ import annotations

import csv
import json
from itertools import islice

import numpy as np
import pytest

from llmlab.cli import main
from llmlab.evaluation.compare_methods import COLUMNS, ensemble_verdict, format_table
from llmlab.evaluation.predictor import load_predictor
from llmlab.finetuning.methods import load_classifier
from tests.finetuning import test_methods

tiny_bert = test_methods.tiny_bert  # the shared fixture


@pytest.fixture
def sst2_slice(shared_data, tmp_path):
    """(train.csv, dev.csv): the first 48 SST-2 training rows and 24 dev rows."""
    paths = []
    for split, n in (("train", 48), ("dev", 24)):
        with open(shared_data / "sst2" / f"{split}.csv", encoding="utf-8", newline="") as f:
            rows = list(islice(csv.reader(f), n + 1))
        path = tmp_path / f"{split}.csv"
        with open(path, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(rows)
        paths.append(path)
    return paths


def cli_args(base, train, dev, out) -> list[str]:
    return ["compare-methods", "--base", str(base), "--train", str(train), "--dev", str(dev), "-o", str(out)]


@pytest.mark.slow
def test_compare_methods_writes_table_report_and_ensemble(tiny_bert, sst2_slice, tmp_path, capsys):
    train, dev = sst2_slice
    out = tmp_path / "cmp"
    args = cli_args(tiny_bert, train, dev, out)
    args += ["--max-steps", "2", "--batch-size", "8", "--eval-every", "1", "--same-process", "--quiet"]
    assert main(args + ["--methods", "full,probe,lora", "--lr-for", "probe=5e-3"]) == 0
    stdout = capsys.readouterr().out
    for method in ("full", "probe", "lora"):
        assert f"\n{method} " in stdout
    assert "ensemble (full+probe+lora)" in stdout
    data = json.loads((out / "comparison.json").read_text())
    rows = {r["method"]: r for r in data["rows"]}
    assert rows["probe"]["lr"] == 5e-3 and rows["lora"]["lr"] == 5e-4
    assert rows["full"]["trainable %"] == pytest.approx(100.0)
    assert rows["probe"]["trainable"] < rows["lora"]["trainable"] < rows["full"]["trainable"]
    assert [r["step"] for r in data["histories"]["lora"]["history"]] == [1, 2]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "ensemble" in html
    with open(dev, encoding="utf-8", newline="") as f:
        rows_dev = list(islice(csv.reader(f), 1, None))
    y, texts = np.array([int(r[1]) for r in rows_dev]), [r[0] for r in rows_dev]
    lora = load_classifier(out / "lora").predict_proba(texts)
    assert rows["lora"]["dev accuracy"] == pytest.approx(np.mean(lora.argmax(1) == y))
    ensemble = load_predictor([out / m for m in ("full", "probe", "lora")]).predict_proba(texts)
    assert rows["ensemble (full+probe+lora)"]["dev accuracy"] == pytest.approx(
        np.mean(ensemble.argmax(1) == y)
    )


@pytest.mark.slow
def test_each_method_runs_in_its_own_process(tiny_bert, sst2_slice, tmp_path, capsys):
    train, dev = sst2_slice
    args = cli_args(tiny_bert, train, dev, tmp_path / "cmp")
    args += ["--methods", "probe", "--max-steps", "2", "--batch-size", "8", "--quiet"]
    assert main(args) == 0
    row = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["rows"][0]
    assert row["method"] == "probe" and row["peak MB"] > 0 and row["step s"] > 0


def test_bad_options_are_one_line_errors(tiny_bert, sst2_slice, tmp_path, capsys):
    train, dev = sst2_slice
    args = cli_args(tiny_bert, train, dev, tmp_path / "out")
    assert main(args + ["--methods", "full,bitfit"]) == 2
    assert "choose from full, probe, prompt, prefix, lora" in capsys.readouterr().err
    assert main(args + ["--lr-for", "lora:1e-3"]) == 2
    assert "expected METHOD=LR" in capsys.readouterr().err


def test_verdict_and_table():
    rows = [
        {"method": "lora", "dev accuracy": 0.8, "dev F1": 0.79, "lr": 5e-4},
        {"method": "full", "dev accuracy": 0.85, "dev F1": 0.84, "lr": 5e-5},
        {"method": "ensemble (lora+full)", "dev accuracy": 0.86, "dev F1": 0.85, "lr": None},
    ]
    assert ensemble_verdict(rows).startswith(
        "The ensemble beats its best member (full, dev accuracy 0.8500) by +0.0100"
    )
    rows[-1]["dev accuracy"] = 0.84
    assert "does not beat" in ensemble_verdict(rows)
    table = format_table([{c: r.get(c) for c in COLUMNS} for r in rows])
    assert table.splitlines()[0].startswith("method") and table.splitlines()[-1].split()[2] == "-"
