"""`llmlab evaluate`: JSON on stdout, predictions files, ensembles, --from-predictions, language models, and
a one-line error with exit status 2 for every bad input."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from llmlab.cli import main
from llmlab.evaluation.baseline import LinearBaseline
from llmlab.evaluation.predictions import read_predictions
from llmlab.finetuning.data import read_examples


def _subset(src, dst, rows, relabel=None):
    lines = list(csv.reader(src.open(encoding="utf-8", newline="")))[: rows + 1]
    with dst.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(
            [lines[0], *([t, relabel if relabel is not None else y] for t, y in lines[1:])]
        )
    return dst


@pytest.fixture(scope="module")
def files(shared_data, tmp_path_factory):
    """Small SST-2 train / dev files and two saved baselines (C = 4 and C = 0.5)."""
    root = tmp_path_factory.mktemp("evaluate")
    train = _subset(shared_data / "sst2" / "train.csv", root / "train.csv", 2000)
    dev = _subset(shared_data / "sst2" / "dev.csv", root / "dev.csv", 150)
    examples = read_examples(train)
    for name, c in (("b4", 4.0), ("b05", 0.5)):
        LinearBaseline(c=c).fit([e.text for e in examples], [e.label for e in examples]).save(root / name)
    return root, train, dev


def _json(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)  # the whole of stdout is one JSON object


def test_json_metrics_equal_sklearn(files, capsys):
    root, _, dev = files
    result = _json(capsys, ["evaluate", str(root / "b4"), str(dev), "--json", "--n-boot", "100"])
    m = result["metrics"]
    assert result["model"] == "b4" and m["n"] == 150
    for key in (
        "accuracy",
        "f1_macro",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "ece",
        "confusion_matrix",
        "per_class",
        "ci",
    ):
        assert key in m
    y = np.array([e.label for e in read_examples(dev)])
    proba = LinearBaseline.load(root / "b4").predict_proba([e.text for e in read_examples(dev)])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(1)), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), abs=1e-12)
    low, high = m["ci"]["accuracy"]
    assert low <= m["accuracy"] <= high


def test_predictions_file_scores_the_same_from_predictions(files, tmp_path, capsys):
    root, _, dev = files
    out = tmp_path / "p.csv"
    direct = _json(
        capsys,
        ["evaluate", str(root / "b4"), str(dev), "--json", "--n-boot", "50", "--predictions", str(out)],
    )
    assert read_predictions(out).proba.shape == (150, 2)
    again = _json(capsys, ["evaluate", "--from-predictions", str(out), str(dev), "--json", "--n-boot", "50"])
    assert again["metrics"] == direct["metrics"]


def test_ensemble_averages_probabilities(files, tmp_path, capsys):
    root, _, dev = files
    out = tmp_path / "p.csv"
    result = _json(
        capsys,
        [
            "evaluate",
            str(root / "b4"),
            str(root / "b05"),
            str(dev),
            "--json",
            "--n-boot",
            "20",
            "--predictions",
            str(out),
        ],
    )
    assert result["model"] == "ensemble(b4+b05)"
    texts = [e.text for e in read_examples(dev)]
    mean = (
        LinearBaseline.load(root / "b4").predict_proba(texts)
        + LinearBaseline.load(root / "b05").predict_proba(texts)
    ) / 2
    np.testing.assert_allclose(read_predictions(out).proba, mean, atol=1e-15)


def test_table_baseline_diagnosis_and_report(files, tmp_path, capsys):
    root, train, dev = files
    model = tmp_path / "model"
    LinearBaseline.load(root / "b4").save(model)
    history = [{"step": i, "train_loss": 0.7 - 0.1 * i, "dev_loss": 0.7 - 0.05 * i} for i in range(4)]
    (model / "history.json").write_text(json.dumps({"history": history}), encoding="utf-8")
    argv = [
        "evaluate",
        str(model),
        str(dev),
        "--n-boot",
        "30",
        "--baseline-train",
        str(train),
        "--learning-curve",
        "--report",
        str(tmp_path / "r.html"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["metric", "model", "95%", "CI", "linear-baseline", "95%", "CI"]
    assert "diagnosis: good fit" in out
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count("<img") == 6  # ROC, PR, confusion, reliability, training curves, learning curve
    assert "Learning curve by data size" in page and "Fit diagnosis" in page and "95% CI" in page


def test_a_history_too_short_to_diagnose_is_skipped(files, tmp_path, capsys):
    root, _, dev = files
    model = tmp_path / "model"
    LinearBaseline.load(root / "b4").save(model)
    (model / "history.json").write_text('{"history": [{"step": 2, "train_loss": 0.6, "dev_loss": 0.5}]}')
    result = _json(capsys, ["evaluate", str(model), str(dev), "--json", "--n-boot", "10"])
    assert "diagnosis" not in result


def test_one_class_data_reports_null_auc(files, tmp_path, capsys):
    root, _, dev = files
    ones = _subset(dev, tmp_path / "ones.csv", 40, relabel="1")
    m = _json(capsys, ["evaluate", str(root / "b4"), str(ones), "--json", "--n-boot", "20"])["metrics"]
    assert m["roc_auc"] is None and m["ci"]["roc_auc"] == [None, None]
    assert "one class only" in m["notes"][0]


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("llmlab: error: ")
    return captured.err


def test_bad_inputs_are_one_line_errors(files, tmp_path, capsys):
    root, _, dev = files
    bad_label = _subset(dev, tmp_path / "bad.csv", 5, relabel="3")
    assert "bad.csv: line 2: label 3 is outside the model's classes 0..1" in _error(
        capsys, ["evaluate", str(root / "b4"), str(bad_label)]
    )
    short = tmp_path / "short.csv"
    short.write_text("text,label,pred,prob_0,prob_1\na,0,0,0.9,0.1\n", encoding="utf-8")
    assert "short.csv: 1 prediction rows, but" in _error(
        capsys, ["evaluate", "--from-predictions", str(short), str(dev)]
    )
    unsummed = tmp_path / "unsummed.csv"
    unsummed.write_text("text,label,pred,prob_0,prob_1\na,0,0,0.9,0.2\n", encoding="utf-8")
    assert "unsummed.csv: line 2: probabilities do not sum to 1" in _error(
        capsys, ["evaluate", "--from-predictions", str(unsummed)]
    )
    assert "give MODEL... DATA" in _error(capsys, ["evaluate", str(dev)])
    assert "model folder not found" in _error(capsys, ["evaluate", str(tmp_path / "nope"), str(dev)])
    assert "--learning-curve needs --baseline-train" in _error(
        capsys, ["evaluate", str(root / "b4"), str(dev), "--learning-curve"]
    )
    assert "drop --baseline" in _error(
        capsys, ["evaluate", "--from-predictions", str(short), "--baseline", str(root / "b4")]
    )


def test_language_model_perplexity_and_bpc(tmp_path, capsys):
    from llmlab.model import ModelConfig, Transformer
    from llmlab.model.checkpoint import save_model
    from llmlab.tokenizer.train import train_tokenizer

    corpus = ["the quick brown fox jumps over the lazy dog", "to be or not to be, that is the question"] * 20
    tokenizer = train_tokenizer("bpe", corpus, 300, workers=1)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=300, d_model=32, n_layers=1, n_heads=2, max_seq_len=16)).eval()
    save_model(tmp_path / "lm", model, tokenizer)
    text = tmp_path / "valid.txt"
    text.write_text("\n".join(corpus[:6]) + "\n", encoding="utf-8")
    result = _json(capsys, ["evaluate", str(tmp_path / "lm"), str(text), "--json", "--precision", "fp32"])
    ids = [i for line in corpus[:6] for i in tokenizer.encode(line + "\n", add_special_tokens=False).ids]
    ids += (
        [tokenizer.token_to_id("<|endoftext|>")] if tokenizer.token_to_id("<|endoftext|>") is not None else []
    )
    n = (len(ids) - 1) // 16 * 16
    x, y = torch.tensor(ids[:n]).view(-1, 16), torch.tensor(ids[1 : n + 1]).view(-1, 16)
    with torch.no_grad():
        nll = torch.nn.functional.cross_entropy(model(x).logits.flatten(0, 1), y.flatten()).item()
    assert result["tokens"] == len(ids) and result["context"] == 16
    assert result["nll"] == pytest.approx(nll, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(nll), rel=1e-6)
    assert result["bpc"] == pytest.approx(
        nll * len(ids) / (len(text.read_text(encoding="utf-8")) * math.log(2)), rel=1e-6
    )
