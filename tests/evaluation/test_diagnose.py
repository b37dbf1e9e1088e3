"""Fit diagnosis: three runs built on real SST-2 data with controlled capacity are labelled correctly, the
rule and remedies are printed, and `llmlab diagnose` reads history.json."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.evaluation.diagnose import REMEDIES, Thresholds, diagnose, read_history
from llmlab.evaluation.learning_curve import by_data_size, epoch_history
from llmlab.finetuning.data import read_examples

# name: (train rows, L2 alpha, epochs, max features, learning rate)
RUNS = {
    "under-fitting": (5000, 0.05, 8, 50, 0.05),  # 50 features, heavy L2
    "good fit": (20000, 3e-5, 6, 20000, 0.2),
    "over-fitting": (300, 0.0, 20, None, 1.0),  # 300 rows, every n-gram, no L2, many epochs
}


@pytest.fixture(scope="module")
def sst2(shared_data):
    train = read_examples(shared_data / "sst2" / "train.csv")
    order = np.random.default_rng(0).permutation(len(train))
    return [train[i] for i in order], read_examples(shared_data / "sst2" / "dev.csv")


@pytest.mark.parametrize("label", list(RUNS))
def test_constructed_runs_on_real_data_are_labelled_correctly(sst2, label, tmp_path, capsys):
    train, dev = sst2
    n, alpha, epochs, features, eta0 = RUNS[label]
    history = epoch_history(train[:n], dev, alpha, epochs, features, eta0)
    assert diagnose(history).label == label
    (tmp_path / "history.json").write_text(json.dumps({"history": history}), encoding="utf-8")
    assert main(["diagnose", str(tmp_path), "--report", str(tmp_path / "d.html")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"diagnosis: {label}\n") and "rule: diverging:" in out and "; over-fitting:" in out
    assert all(remedy in out for remedy in REMEDIES[label])
    assert "<img" in (tmp_path / "d.html").read_text(encoding="utf-8")


def _run(train_loss, dev_loss, **extra):
    return [
        {"step": i, "train_loss": t, "dev_loss": d, **{k: v[i] for k, v in extra.items()}}
        for i, (t, d) in enumerate(zip(train_loss, dev_loss, strict=True))
    ]


def test_the_rule_on_hand_made_histories():
    rising = _run([1.0, 0.6, 0.4, 0.3, 0.2], [1.0, 0.7, 0.6, 0.65, 0.7])
    assert diagnose(rising).label == "over-fitting"
    assert diagnose(rising, Thresholds(k=3)).label == "good fit"  # only 2 rises after the minimum
    flat = _run([0.70, 0.69, 0.68], [0.71, 0.70, 0.70])
    assert diagnose(flat).label == "under-fitting"
    gap = _run([1.0, 0.5], [1.0, 0.6], train_accuracy=[0.5, 0.99], dev_accuracy=[0.5, 0.80])
    d = diagnose(gap)
    assert d.label == "over-fitting" and "exceeds dev accuracy" in d.evidence[0]
    assert "k=2" in d.rule and "0.15" in d.rule


def test_bad_histories_are_one_line_errors(tmp_path):
    with pytest.raises(LlmlabError, match="at least two records"):
        diagnose([{"step": 0, "train_loss": 1.0, "dev_loss": 1.0}])
    (tmp_path / "history.json").write_text('{"records": []}', encoding="utf-8")
    with pytest.raises(LlmlabError, match="expected an object with a 'history' list"):
        read_history(tmp_path)
    assert main(["diagnose", str(tmp_path / "missing")]) == 2


def test_learning_curve_by_data_size(sst2):
    train, dev = sst2
    points = by_data_size(train[:3000], dev, fractions=(0.1, 0.3, 1.0))
    assert [p["n"] for p in points] == [300, 900, 3000]
    assert points[-1]["dev"] > points[0]["dev"]  # more data helps the baseline
    assert all(p["train"] >= p["dev"] for p in points)


@pytest.mark.slow
def test_learning_curve_of_a_transformer_probe(shared_data, minilm_dir, tmp_path):
    """The transformer path: a linear probe on MiniLM through llmlab.finetuning.run.finetune."""
    from llmlab.evaluation.learning_curve import finetune_fit
    from llmlab.finetuning.run import FinetuneSettings
    from llmlab.finetuning.trainer import TrainConfig

    dev = read_examples(shared_data / "sst2" / "dev.csv", max_examples=16)
    train = read_examples(shared_data / "sst2" / "train.csv", max_examples=32)
    with (tmp_path / "dev.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *((e.text, e.label) for e in dev)])
    config = TrainConfig(lr=1e-2, batch_size=16, epochs=1, max_length=16, seed=0)
    template = FinetuneSettings(minilm_dir, "probe", "unused", tmp_path / "dev.csv", "unused", train=config)
    points = by_data_size(train, dev, finetune_fit(template, tmp_path / "runs"), fractions=(0.5, 1.0))
    assert [p["n"] for p in points] == [16, 32]
    assert all(0.0 <= p["dev"] <= 1.0 for p in points)
    assert (tmp_path / "runs" / "n32" / "model" / "history.json").is_file()
    argv = [
        "evaluate",
        str(tmp_path / "runs" / "n32" / "model"),
        str(tmp_path / "dev.csv"),
        "--json",
        "--n-boot",
        "20",
    ]
    assert main(argv) == 0  # `llmlab evaluate` on a fine-tuned transformer folder
