"""The experiment server against hostile bodies (every one a 4xx, never a 500, the log unchanged), and the
statistics against whatever an older server left in the log (/stats 200 with finite numbers; `abtest report`
without NaN p-values)."""

from __future__ import annotations

import json
import math
import sqlite3
import time

import pytest
from starlette.testclient import TestClient

from llmlab.abtest.analysis import analyse_experiment
from llmlab.abtest.loadgen import StandInPredictor
from llmlab.abtest.server import create_app
from llmlab.abtest.store import OUTCOME_LIMIT, open_store
from tests.hostile.conftest import DEEP, run_cli

SPLIT = {"A": 0.5, "B": 0.5}


@pytest.fixture
def store(tmp_path):
    log = open_store(tmp_path / "log.db")
    yield log
    log.close()


@pytest.fixture
def client(store):
    variants = {"A": StandInPredictor("A"), "B": StandInPredictor("B")}
    app = create_app("exp", variants, SPLIT, store, max_body_bytes=16384)
    with TestClient(app, raise_server_exceptions=False) as c:  # a 500 is answered, as uvicorn would
        yield c


def _request_id(client) -> str:
    return client.post("/predict", json={"user_id": "u1", "text": "hello"}).json()["request_id"]


PREDICT = [
    ("lone surrogate user_id", b'{"user_id": "\\ud800", "text": "x"}', 400),
    ("lone surrogate text", b'{"user_id": "u", "text": "a\\udfffb"}', 400),
    ("lone surrogate key", b'{"user_id": "u", "text": "x", "\\ud83d": 1}', 400),
    ("nested 200000 deep", ('{"user_id": "u", "text": "x", "n": ' + DEEP[:4000] + "}").encode(), 400),
    ("nested 100 deep", ('{"user_id": "u", "text": ' + "[" * 100 + "]" * 100 + "}").encode(), 400),
    ("not UTF-8", b'{"user_id": "caf\xe9", "text": "x"}', 400),
    ("not JSON", b"user_id=u&text=x", 400),
    ("a JSON array", b'["u", "x"]', 400),
    ("empty body", b"", 400),
    ("user_id an object", b'{"user_id": {"a": 1}, "text": "x"}', 400),
    ("user_id a 5000-digit number", b'{"user_id": ' + b"9" * 5000 + b', "text": "x"}', 400),
    ("text missing", b'{"user_id": "u"}', 400),
    ("text a number", b'{"user_id": "u", "text": 3}', 400),
    ("over the size limit", b'{"user_id": "u", "text": "' + b"x" * 20000 + b'"}', 413),
]


@pytest.mark.parametrize(("body", "status"), [r[1:] for r in PREDICT], ids=[r[0] for r in PREDICT])
def test_hostile_predict_bodies_are_4xx_and_log_nothing(client, store, body, status):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert store.assignments("exp") == []


FEEDBACK = [
    ("outcome 1e308", '{"request_id": "RID", "outcome": 1e308}'),
    ("outcome -1e10", '{"request_id": "RID", "outcome": -1e10}'),
    ("outcome 1e999 (inf)", '{"request_id": "RID", "outcome": 1e999}'),
    ("outcome NaN", '{"request_id": "RID", "outcome": NaN}'),
    ("outcome Infinity", '{"request_id": "RID", "outcome": Infinity}'),
    ("outcome a 400-digit integer", '{"request_id": "RID", "outcome": ' + "9" * 400 + "}"),
    ("outcome a string", '{"request_id": "RID", "outcome": "1"}'),
    ("outcome null", '{"request_id": "RID", "outcome": null}'),
    ("outcome a list", '{"request_id": "RID", "outcome": [1]}'),
    ("request_id a lone surrogate", '{"request_id": "\\udc00", "outcome": 1}'),
    ("request_id a number", '{"request_id": 7, "outcome": 1}'),
    ("nested 200000 deep", '{"request_id": "RID", "outcome": 1, "x": ' + DEEP[:4000] + "}"),
]


@pytest.mark.parametrize("body", [r[1] for r in FEEDBACK], ids=[r[0] for r in FEEDBACK])
def test_hostile_feedback_bodies_are_400_and_log_nothing(client, store, body):
    rid = _request_id(client)
    response = client.post("/feedback", content=body.replace("RID", rid).encode())
    assert response.status_code == 400, response.text
    assert store.outcomes("exp") == []
    assert client.get("/stats").status_code == 200


def test_the_outcome_limit_itself_is_accepted(client, store):
    rid = _request_id(client)
    assert client.post("/feedback", json={"request_id": rid, "outcome": -OUTCOME_LIMIT}).status_code == 200


def _old_log(path, values: list[float]) -> None:
    """A log as an older server wrote it: outcomes beyond today's range, straight into SQLite."""
    log = open_store(path)
    log.create_experiment("exp", SPLIT, {"A": "a", "B": "b"})
    rows = [(f"r{i}", "exp", f"u{i}", "AB"[i % 2], {}, 5.0 + i % 3) for i in range(len(values))]
    log.log_assignments(rows)
    log.close()
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO outcomes VALUES (?, ?, ?)", [(f"r{i}", v, time.time()) for i, v in enumerate(values)]
    )
    db.commit()
    db.close()


def test_stats_and_report_survive_an_old_log_with_huge_outcomes(tmp_path, capsys):
    path = tmp_path / "old.db"
    _old_log(path, [1e308, 1.0, math.inf, 0.0] + [float(i % 2) for i in range(40)])
    log = open_store(path)
    variants = {"A": StandInPredictor("A"), "B": StandInPredictor("B")}
    with TestClient(create_app("exp", variants, SPLIT, log, paths={"A": "a", "B": "b"})) as c:
        response = c.get("/stats")
    log.close()
    assert response.status_code == 200
    stats = response.json()  # strict JSON: no NaN or Infinity
    assert stats["warnings"] and "2 logged outcomes" in stats["warnings"][0]
    assert all(
        v["mean_outcome"] is not None and abs(v["mean_outcome"]) <= 1 for v in stats["variants"].values()
    )
    code, out, err = run_cli(
        capsys, "abtest", "report", "--store", str(path), "--experiment", "exp", "--json"
    )
    assert code == 0, err
    assert "2 outcomes that are not finite" in err
    report = json.loads(out)
    assert all(math.isfinite(t["pvalue"]) for t in report["tests"])


def test_report_p_values_are_never_nan_for_constant_outcomes(tmp_path):
    config = {"name": "exp", "split": SPLIT}
    assignments = [
        {
            "request_id": f"r{i}",
            "user_id": f"u{i}",
            "variant": "AB"[i % 2],
            "latency_ms": 5.0,
            "created_at": i,
        }
        for i in range(20)
    ]
    outcomes = [
        {
            "request_id": a["request_id"],
            "user_id": a["user_id"],
            "variant": a["variant"],
            "value": 1.0,
            "created_at": a["created_at"],
        }
        for a in assignments
    ]
    for given in (outcomes, []):  # everyone converted; nobody converted
        result = analyse_experiment(config, assignments, given, metrics=("conversion", "outcome", "latency"))
        for test in result["tests"]:
            assert math.isfinite(test["pvalue"]) and math.isfinite(test["pvalue_adjusted"]), test
            assert test["pvalue"] == 1.0
