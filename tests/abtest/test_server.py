"""The experiment server in process (Starlette TestClient): predictions, feedback, bad input, batching."""

from __future__ import annotations

import asyncio
import csv
import itertools
import threading

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from llmlab.abtest.assign import assign_variant
from llmlab.abtest.loadgen import StandInPredictor
from llmlab.abtest.server import create_app
from llmlab.abtest.store import open_store
from llmlab.cli import main
from llmlab.errors import LlmlabError

SPLIT = {"A": 0.5, "B": 0.5}
GOOD = {"user_id": "alice", "text": "a fine film"}


class CountingPredictor(StandInPredictor):
    """The stand-in, recording the size of every batch it is given (and optionally failing)."""

    def __init__(self, name, fail_on: str | None = None, delay: threading.Event | None = None):
        super().__init__(name)
        self.batches, self.fail_on, self.delay = [], fail_on, delay

    def predict_proba(self, texts, text_pairs=None, batch_size=64):
        if self.delay is not None:
            self.delay.wait(5)
        self.batches.append(len(texts))
        if self.fail_on in texts:
            raise RuntimeError("model exploded")
        return super().predict_proba(texts)


@pytest.fixture
def store(tmp_path):
    log = open_store(tmp_path / "log.db")
    yield log
    log.close()


@pytest.fixture
def client(store):
    variants = {"A": CountingPredictor("A", fail_on="boom"), "B": CountingPredictor("B", fail_on="boom")}
    with TestClient(create_app("exp", variants, SPLIT, store, max_body_bytes=1024)) as c:
        yield c


def test_predict_answers_from_the_users_variant_and_logs_first(client, store):
    answer = client.post("/predict", json=GOOD).json()
    variant = assign_variant("exp", "alice", SPLIT)
    proba = StandInPredictor(variant).predict_proba(["a fine film"])[0]
    assert answer["variant"] == variant and len(answer["request_id"]) == 32
    assert answer["prediction"] == {
        "label": int(proba.argmax()),
        "label_name": ["negative", "positive"][proba.argmax()],
        "probabilities": {"negative": proba[0], "positive": proba[1]},
    }
    assert answer["latency_ms"] > 0
    (row,) = store.assignments("exp")
    assert (row["request_id"], row["user_id"], row["variant"]) == (answer["request_id"], "alice", variant)


def test_a_user_keeps_the_variant_and_users_spread(client, store):
    seen = {
        u: {client.post("/predict", json={"user_id": u, "text": "x"}).json()["variant"]} for u in range(40)
    }
    for u in range(40):
        seen[u].add(client.post("/predict", json={"user_id": u, "text": "y"}).json()["variant"])
    assert all(len(v) == 1 for v in seen.values())
    assert {v for (v,) in seen.values()} == {"A", "B"}
    assert len(store.assignments("exp")) == 80


def test_feedback_once_per_request(client, store):
    rid = client.post("/predict", json=GOOD).json()["request_id"]
    assert client.post("/feedback", json={"request_id": rid, "outcome": True}).json() == {
        "request_id": rid,
        "outcome": 1.0,
    }
    second = client.post("/feedback", json={"request_id": rid, "outcome": 0})
    assert second.status_code == 409 and "already has an outcome" in second.json()["error"]
    unknown = client.post("/feedback", json={"request_id": "feed" * 8, "outcome": 1})
    assert unknown.status_code == 404 and "unknown request id" in unknown.json()["error"]
    assert [o["value"] for o in store.outcomes("exp")] == [1.0]


def _chunks():
    yield b'{"user_id": "u", "text": "'
    yield b"x" * 2000
    yield b'"}'


BAD = [
    ("/predict", b"{not json", 400, "not valid JSON"),
    ("/predict", b"\xff\xfe", 400, "not valid JSON"),
    ("/predict", b"[1, 2]", 400, "must be a JSON object, not list"),
    ("/predict", b'{"text": "hi"}', 400, "missing field 'user_id'"),
    ("/predict", b'{"user_id": "", "text": "hi"}', 400, "must not be empty"),
    (
        "/predict",
        b'{"user_id": null, "text": "hi"}',
        400,
        "'user_id' must be a non-empty string or an integer",
    ),
    ("/predict", b'{"user_id": true, "text": "hi"}', 400, "not bool"),
    ("/predict", b'{"user_id": "u"}', 400, "missing field 'text'"),
    ("/predict", b'{"user_id": "u", "text": 5}', 400, "'text' must be a string, not int"),
    ("/predict", b'{"user_id": "u", "text": "' + b"x" * 2000 + b'"}', 413, "over the limit of 1024 bytes"),
    ("/predict", _chunks, 413, "over the limit of 1024 bytes"),  # no Content-Length: caught while reading
    ("/feedback", b'{"outcome": 1}', 400, "missing field 'request_id'"),
    ("/feedback", b'{"request_id": "r"}', 400, "missing field 'outcome'"),
    ("/feedback", b'{"request_id": "r", "outcome": "yes"}', 400, "'outcome' must be a number or a boolean"),
    ("/feedback", b'{"request_id": "r", "outcome": NaN}', 400, "must be finite"),
    ("/feedback", b'{"request_id": "r", "outcome": 1}', 404, "unknown request id 'r'"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD)
def test_bad_input_gets_a_clear_4xx_and_the_server_goes_on(client, store, path, body, status, message):
    content = body() if callable(body) else body
    answer = client.post(path, content=content, headers={"content-type": "application/json"})
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert store.assignments("exp") == [] and store.outcomes("exp") == []
    assert client.post("/predict", json=GOOD).status_code == 200


def test_a_model_error_is_a_json_500_and_the_server_goes_on(client, store):
    client = TestClient(client.app, raise_server_exceptions=False)  # answer as uvicorn would
    failed = client.post("/predict", json={"user_id": "u", "text": "boom"})
    assert failed.status_code == 500 and "model exploded" in failed.json()["error"]
    assert store.assignments("exp") == []
    assert client.post("/predict", json=GOOD).status_code == 200


def test_unknown_routes_and_methods_are_json(client):
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    assert client.get("/predict").status_code == 405
    assert client.get("/health").json() == {"status": "ok", "experiment": "exp", "variants": ["A", "B"]}


def test_concurrent_requests_are_batched_and_answers_stay_with_their_request(store):
    gate = threading.Event()  # holds the first batch in the model so the others pile up behind it
    variants = {v: CountingPredictor(v, delay=gate) for v in SPLIT}
    app = create_app("exp", variants, SPLIT, store)

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            calls = [c.post("/predict", json={"user_id": f"u{i}", "text": f"t{i}"}) for i in range(40)]
            asyncio.get_running_loop().call_later(0.3, gate.set)
            return await asyncio.gather(*calls)

    answers = [r.json() for r in asyncio.run(go())]
    for i, answer in enumerate(answers):
        expected = StandInPredictor(answer["variant"]).predict_proba([f"t{i}"])[0]
        assert answer["prediction"]["probabilities"]["positive"] == expected[1]
        assert answer["variant"] == assign_variant("exp", f"u{i}", SPLIT)
    assert sum(sum(p.batches) for p in variants.values()) == 40
    assert max(max(p.batches) for p in variants.values()) > 1  # some requests shared a model call
    assert sorted(r["request_id"] for r in store.assignments("exp")) == sorted(
        a["request_id"] for a in answers
    )


def test_stats_and_dashboard(client):
    ids = {
        u: client.post("/predict", json={"user_id": u, "text": "x"}).json() for u in ("1", "2", "3", "4", "5")
    }
    for u, value in zip("1235", [1, 0, 1, 1], strict=True):
        client.post("/feedback", json={"request_id": ids[u]["request_id"], "outcome": value})
    stats = client.get("/stats").json()
    for name, v in stats["variants"].items():
        mine = [u for u in ids if ids[u]["variant"] == name]
        values = [dict(zip("1235", [1, 0, 1, 1], strict=True))[u] for u in mine if u in "1235"]
        assert (v["assignments"], v["users"], v["outcomes"]) == (len(mine), len(mine), len(values))
        assert v["mean_outcome"] == (np.mean(values) if values else None)
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html") and "<code>exp</code>" in page.text


def test_config_errors(store):
    with pytest.raises(
        LlmlabError, match=r"split has variants \['A', 'C'\] but models were given for \['A', 'B'\]"
    ):
        create_app("exp", {"A": StandInPredictor(), "B": StandInPredictor()}, {"A": 0.5, "C": 0.5}, store)
    create_app("exp", {"A": StandInPredictor(), "B": StandInPredictor()}, SPLIT, store)
    with pytest.raises(LlmlabError, match="already exists with split"):
        create_app("exp", {"A": StandInPredictor(), "B": StandInPredictor()}, {"A": 0.2, "B": 0.8}, store)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variant", "A=x"], "2 shares for 1 variants"),
        (["--variant", "A", "--variant", "B=y"], "expected NAME=MODEL_FOLDER"),
        (["--variant", "A=x", "--variant", "A=y"], "given twice"),
        (["--variant", "A=/no/such", "--variant", "B=/no/such"], "/no/such: model folder not found"),
        (["--variant", "A=x", "--variant", "B=y", "--split", "50:50"], "numbers separated by '/'"),
    ],
)
def test_serve_command_errors(capsys, args, message):
    assert main(["serve", "--experiment", "e", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_real_baseline_through_load_predictor(tmp_path, store, shared_data):
    baseline = pytest.importorskip("llmlab.evaluation.baseline")
    from llmlab.evaluation.predictor import load_predictor

    with (shared_data / "sst2" / "train.csv").open(encoding="utf-8", newline="") as f:
        rows = list(itertools.islice(csv.DictReader(f), 400))
    model = baseline.LinearBaseline()
    model.fit([r["text"] for r in rows], [int(r["label"]) for r in rows])
    model.save(tmp_path / "model")
    predictor = load_predictor(tmp_path / "model")
    with TestClient(create_app("real", {"A": predictor, "B": predictor}, SPLIT, store)) as c:
        answer = c.post("/predict", json={"user_id": 7, "text": rows[0]["text"]}).json()
    expected = model.predict_proba([rows[0]["text"]])[0]
    assert list(answer["prediction"]["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-12)
    assert answer["prediction"]["label_name"] == predictor.labels[int(expected.argmax())]
    assert store.experiment("real")["paths"] == {"A": predictor.name, "B": predictor.name}
