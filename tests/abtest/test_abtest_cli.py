"""`llmlab abtest compare|report|plan|simulate` through the CLI; report end to end on a SQLite event log."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmlab.abtest import compare_models
from llmlab.abtest.analysis import analyse_experiment
from llmlab.abtest.assign import assign_variant
from llmlab.abtest.offline import compare_predictions
from llmlab.abtest.power import plan
from llmlab.abtest.store import open_store
from llmlab.cli import main


class FakePredictor:
    """Fixed probabilities per text, so the command's result can be recomputed from arrays."""

    def __init__(self, name: str, table: dict[str, np.ndarray]):
        self.name, self.labels, self.table = name, ["0", "1"], table

    def predict_proba(self, texts, text_pairs=None, batch_size=64):
        return np.array([self.table[t] for t in texts])


@pytest.fixture
def two_models(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    strong = np.clip(0.5 + 0.3 * (2 * y - 1) + rng.normal(0, 0.25, n), 0.01, 0.99)
    weak = np.clip(0.5 + 0.1 * (2 * y - 1) + rng.normal(0, 0.25, n), 0.01, 0.99)
    texts = [f"text {i}" for i in range(n)]
    data = tmp_path / "dev.csv"
    data.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in zip(texts, y, strict=True)))
    models = {
        "weak": FakePredictor("weak", dict(zip(texts, np.c_[1 - weak, weak], strict=True))),
        "strong": FakePredictor("strong", dict(zip(texts, np.c_[1 - strong, strong], strict=True))),
    }
    monkeypatch.setattr(compare_models, "load_predictor", lambda path: models[str(path)])
    return data, y, np.c_[1 - weak, weak], np.c_[1 - strong, strong]


def test_compare_json_equals_the_array_function(two_models, capsys, tmp_path):
    data, y, weak, strong = two_models
    args = ["abtest", "compare", "weak", "strong", str(data), "--n-boot", "200", "--n-perm", "500"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = compare_predictions(y, weak, strong, ("weak", "strong"), n_boot=200, n_perm=500)
    assert out["mcnemar"] == ref["mcnemar"] and out["verdict"] == ref["verdict"]
    assert out["delong"]["pvalue"] == pytest.approx(ref["delong"]["pvalue"])
    assert out["verdict"].startswith("strong is better than weak: accuracy +")
    assert main([*args, "--report", str(tmp_path / "c.html")]) == 0
    text = capsys.readouterr().out
    assert "McNemar" in text and "DeLong" in text and text.strip().splitlines()[-1] == out["verdict"]
    assert "<pre>" in (tmp_path / "c.html").read_text()


def test_plan_prints_both_formulas(capsys):
    assert main(["abtest", "plan", "--baseline", "0.10", "--mde", "0.01", "--n", "10000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(plan(0.10, 0.01, n=10_000))
    assert main(["abtest", "plan", "--baseline", "0.10", "--mde", "0.1", "--relative"]) == 0
    assert "14,751" in capsys.readouterr().out
    assert main(["abtest", "plan", "--baseline", "0.10", "--mde", "0"]) == 2
    assert "must not be 0" in capsys.readouterr().err


def test_simulate_small_run_and_report(capsys, tmp_path):
    args = [
        "abtest",
        "simulate",
        "--experiments",
        "200",
        "--peeks",
        "10",
        "--batch",
        "200",
        "--effect",
        "0.03",
    ]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["aa"]["fixed_every_peek"] > out["aa"]["fixed_once"] and out["ab"]["fixed_once"] > 0.5
    assert main([*args, "--report", str(tmp_path / "s.html")]) == 0
    assert "peeking every batch" in capsys.readouterr().out
    assert "data:image/png;base64" in (tmp_path / "s.html").read_text()


def _fill_store(url, name, split, n_users=300, p=(0.2, 0.35), skew=False):
    """Users assigned by hashing (or all to A when skew), 2 requests each, outcomes 1 with probability p."""
    rng = np.random.default_rng(1)
    store = open_store(url)
    store.create_experiment(name, split, {v: f"models/{v}" for v in split})
    rows, conversions = [], []
    for u in range(n_users):
        user = f"u{u}"
        variant = "A" if skew and u % 4 else assign_variant(name, user, split)
        for r in range(2):
            rows.append(
                (f"{user}-{r}", name, user, variant, {"label": "1"}, 20 + 5 * (variant == "B") + rng.random())
            )
            if rng.random() < p[variant == "B"]:
                conversions.append(f"{user}-{r}")
    store.log_assignments(rows)
    for request_id in conversions:
        store.log_outcome(request_id, 1.0)
    store.close()


def test_report_end_to_end_on_sqlite(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    split = {"A": 0.5, "B": 0.5}
    _fill_store(url, "exp", split)
    covariates = tmp_path / "pre.csv"
    covariates.write_text("user_id,value\n" + "".join(f"u{u},{u % 7}\n" for u in range(300)))
    args = [
        "abtest",
        "report",
        "--store",
        url,
        "--experiment",
        "exp",
        "--metrics",
        "conversion,outcome,latency",
    ]
    assert main([*args, "--json", "--covariate", str(covariates), "--correction", "bh"]) == 0
    out = json.loads(capsys.readouterr().out)
    store = open_store(url)
    ref = analyse_experiment(
        store.experiment("exp"),
        store.assignments("exp"),
        store.outcomes("exp"),
        {f"u{u}": float(u % 7) for u in range(300)},
        ("conversion", "outcome", "latency"),
        "bh",
    )
    store.close()
    assert out == json.loads(json.dumps(ref))
    a, b = out["variants"]["A"], out["variants"]["B"]
    assert a["assignments"] + b["assignments"] == 600 and a["users"] + b["users"] == 300
    assert out["unit"] == "user" and (a["units"], b["units"]) == (a["users"], b["users"])
    assert b["conversion_rate"] == pytest.approx(b["conversions"] / b["units"])
    assert [t["metric"] for t in out["tests"]] == ["conversion", "outcome", "latency"]
    assert out["tests"][0]["test"] == "two-proportion z" and out["tests"][1]["test"] == "Welch t (CUPED)"
    assert out["tests"][2]["significant"] and out["guardrail"]["B"]["status"] == "flagged"  # B is 25% slower
    assert not out["srm"]["mismatch"] and "variance_reduction" in out["cuped"]["B"]
    assert main([*args[:6]]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("WARNING: GUARDRAIL") and lines[1].startswith("SRM") and "always-valid" in text


def test_report_warns_loudly_on_sample_ratio_mismatch(tmp_path, capsys):
    url = str(tmp_path / "skew.db")
    _fill_store(url, "skewed", {"A": 0.5, "B": 0.5}, n_users=400, skew=True)
    assert main(["abtest", "report", "--store", url, "--experiment", "skewed"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("WARNING: SAMPLE RATIO MISMATCH")
    assert "SAMPLE RATIO MISMATCH" in captured.err


def test_report_errors_are_one_line(tmp_path, capsys):
    url = str(tmp_path / "e.db")
    _fill_store(url, "exp", {"A": 0.5, "B": 0.5}, n_users=20)
    assert main(["abtest", "report", "--store", url, "--experiment", "nope"]) == 2
    assert "no experiment named 'nope'" in capsys.readouterr().err
    assert main(["abtest", "report", "--store", url, "--experiment", "exp", "--metrics", "revenue"]) == 2
    assert "unknown ['revenue']" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("user,v\nu1,2\n")
    assert main(["abtest", "report", "--store", url, "--experiment", "exp", "--covariate", str(bad)]) == 2
    assert "user_id,value" in capsys.readouterr().err


def test_analysis_on_plain_event_lists():
    """The analysis needs nothing but the store's event shapes (lists of dicts)."""
    config = {"name": "x", "split": {"A": 0.5, "B": 0.5}, "paths": {}}
    assignments = [
        {
            "request_id": f"r{i}",
            "user_id": f"u{i}",
            "variant": "AB"[i % 2],
            "latency_ms": 10.0 + i % 3,
            "created_at": i,
        }
        for i in range(400)
    ]
    outcomes = [
        {"request_id": f"r{i}", "user_id": f"u{i}", "variant": "AB"[i % 2], "value": 2.0, "created_at": i}
        for i in range(0, 400, 3)
    ]
    out = analyse_experiment(config, assignments, outcomes)
    assert out["variants"]["A"]["outcomes"] == len([i for i in range(0, 400, 3) if i % 2 == 0])
    assert out["variants"]["A"]["mean_outcome"] == pytest.approx(2 * out["variants"]["A"]["conversion_rate"])
    assert out["srm"]["pvalue"] == pytest.approx(1.0)
