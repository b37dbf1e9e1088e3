"""The event log's contract, on SQLite and (when available) PostgreSQL: the same tests for both back ends."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from llmlab.abtest.store import DuplicateOutcome, SqliteStore, UnknownRequest, open_store
from llmlab.errors import LlmlabError
from tests.abtest.test_postgres import postgres_url  # noqa: F401  (the fixture)

SPLIT = {"A": 0.5, "B": 0.5}
PATHS = {"A": "/models/a", "B": "/models/b"}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    url = str(tmp_path / "log.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    log = open_store(url)
    yield log
    log.close()


@pytest.fixture
def name() -> str:
    """A fresh experiment name (the PostgreSQL database is shared by the whole session)."""
    return f"exp-{uuid.uuid4().hex[:12]}"


def _assign(store, experiment, n, variant="A", start=0):
    ids = [uuid.uuid4().hex for _ in range(n)]
    for i, rid in enumerate(ids):
        store.log_assignment(rid, experiment, f"u{start + i}", variant, {"label": 1}, 2.5)
    return ids


def test_experiment_round_trip_and_idempotent(store, name):
    store.create_experiment(name, SPLIT, PATHS)
    store.create_experiment(name, dict(reversed(SPLIT.items())), PATHS)  # same config, other key order
    assert store.experiment(name) == {"name": name, "split": SPLIT, "paths": PATHS}


def test_a_different_config_under_the_same_name_is_refused(store, name):
    store.create_experiment(name, SPLIT, PATHS)
    with pytest.raises(LlmlabError, match="already exists with split"):
        store.create_experiment(name, {"A": 0.9, "B": 0.1}, PATHS)
    with pytest.raises(LlmlabError, match="already exists"):
        store.create_experiment(name, SPLIT, {"A": "/models/a", "B": "/models/c"})


def test_unknown_experiment(store, name):
    with pytest.raises(LlmlabError, match="no experiment named"):
        store.experiment(name)


def test_assignments_and_outcomes_round_trip(store, name):
    a_ids = _assign(store, name, 3, "A")
    b_ids = _assign(store, name, 2, "B", start=3)
    _assign(store, name + "-other", 4)  # another experiment stays out
    store.log_outcome(a_ids[0], 1.0)
    store.log_outcome(b_ids[1], 0.25)
    rows = store.assignments(name)
    assert [r["request_id"] for r in rows] == a_ids + b_ids
    assert rows[3] == {
        "request_id": b_ids[0],
        "user_id": "u3",
        "variant": "B",
        "latency_ms": 2.5,
        "created_at": rows[3]["created_at"],
    }
    outcomes = store.outcomes(name)
    assert [(o["request_id"], o["user_id"], o["variant"], o["value"]) for o in outcomes] == [
        (a_ids[0], "u0", "A", 1.0),
        (b_ids[1], "u4", "B", 0.25),
    ]
    assert outcomes[0]["created_at"] >= rows[0]["created_at"]


def test_one_outcome_per_request(store, name):
    (rid,) = _assign(store, name, 1)
    store.log_outcome(rid, 1)
    with pytest.raises(DuplicateOutcome, match="already has an outcome"):
        store.log_outcome(rid, 0)
    assert [o["value"] for o in store.outcomes(name)] == [1.0]


def test_an_outcome_for_an_unknown_request_is_refused(store, name):
    with pytest.raises(UnknownRequest, match="unknown request id"):
        store.log_outcome("nope", 1)
    assert store.outcomes(name) == []


def test_a_batch_is_all_or_nothing(store, name):
    (rid,) = _assign(store, name, 1)
    batch = [
        (uuid.uuid4().hex, name, "u9", "B", {}, 1.0),
        (rid, name, "u9", "B", {}, 1.0),
    ]  # rid: a duplicate
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        store.log_assignments(batch)
    assert [r["request_id"] for r in store.assignments(name)] == [rid]


def test_summary(store, name):
    a_ids = _assign(store, name, 4, "A")
    b_ids = _assign(store, name, 2, "B", start=10)
    for rid, value in zip(a_ids[:3] + b_ids[:1], [1, 0, 1, 3], strict=True):
        store.log_outcome(rid, value)
    assert store.summary(name) == {
        "A": {
            "assignments": 4,
            "users": 4,
            "outcomes": 3,
            "total": 2.0,
            "total_sq": 2.0,
            "skipped_outcomes": 0,
        },
        "B": {
            "assignments": 2,
            "users": 2,
            "outcomes": 1,
            "total": 3.0,
            "total_sq": 9.0,
            "skipped_outcomes": 0,
        },
    }


def test_sqlite_is_wal_with_full_sync(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/log.db")  # sqlite:/// + an absolute path: sqlite:////...
    assert isinstance(store, SqliteStore)
    conn = store._pool.queue[0]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync the WAL at every commit
    store.close()


def test_open_store_errors(tmp_path):
    with pytest.raises(LlmlabError, match="does not exist"):
        open_store(tmp_path / "missing" / "log.db")
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LlmlabError, match="not a usable SQLite event log"):
        open_store(tmp_path / "junk.db")


def test_events_survive_reopening(tmp_path):
    store = open_store(tmp_path / "log.db")
    ids = _assign(store, "e", 3)
    store.log_outcome(ids[1], 1)
    store.close()
    again = open_store(tmp_path / "log.db")
    assert [r["request_id"] for r in again.assignments("e")] == ids
    assert len(again.outcomes("e")) == 1
    again.close()
    assert sqlite3.connect(tmp_path / "log.db").execute("PRAGMA integrity_check").fetchone() == ("ok",)
