"""The server as a real process on loopback: load with a log audit, and kill -9 in the middle of the load."""

from __future__ import annotations

import asyncio
import sqlite3
import sys

import httpx
import pytest

from llmlab.abtest.loadgen import ServerProcess, audit, free_port, latency_summary, run_load
from llmlab.abtest.store import open_store

SPLIT = {"A": 0.5, "B": 0.5}


def _server(store: str, port: int) -> ServerProcess:
    argv = [sys.executable, "-m", "llmlab.abtest.loadgen", "--experiment", "load", "--store", store]
    return ServerProcess([*argv, "--port", str(port)], port)


def _requests(n: int, users: int, offset: int = 0) -> list[tuple[str, str]]:
    return [(f"user{(i * 7919) % users}", f"text number {i}") for i in range(offset, offset + n)]


def _audit(path, replies) -> dict:
    store = open_store(path)
    try:
        return audit(store, "load", replies, SPLIT)
    finally:
        store.close()


@pytest.mark.slow
def test_load_on_loopback_logs_exactly_the_acknowledged_events(tmp_path):
    port, path = free_port(), str(tmp_path / "log.db")
    with _server(path, port) as server:
        replies = asyncio.run(run_load("127.0.0.1", port, _requests(2000, 300), clients=20))
        assert server.proc.poll() is None, server.log()
    figures = latency_summary(replies, wall_s=1.0)
    checks = _audit(path, replies)
    assert figures["answered"] == 2000 and figures["p99_ms"] >= figures["p50_ms"] > 0
    assert (checks["acknowledged"], checks["logged"], checks["missing"], checks["duplicates"]) == (
        2000,
        2000,
        0,
        0,
    )
    assert checks["unacknowledged"] == checks["unstable_users"] == 0
    assert sum(checks["users"].values()) == 300 and checks["srm_p_value"] > 0.001


@pytest.mark.slow
def test_kill_9_mid_load_loses_no_acknowledged_event(tmp_path):
    port, path = free_port(), str(tmp_path / "log.db")
    replies: list = []
    server = _server(path, port)

    async def load_then_kill():
        async def killer():
            while sum(r.status == 200 for r in replies) < 400:
                await asyncio.sleep(0.005)
            server.kill()  # SIGKILL to the process group, mid-load: requests are in flight

        await asyncio.gather(run_load("127.0.0.1", port, _requests(3000, 200), 20, replies=replies), killer())

    try:
        asyncio.run(load_then_kill())
    finally:
        server.kill()
    before = [r for r in replies if r.status == 200]
    assert 400 <= len(before) < 3000 and any(r.status == 0 for r in replies)  # it really died mid-load

    with _server(path, port):  # restart on the same log
        replies += asyncio.run(run_load("127.0.0.1", port, _requests(500, 200, offset=3000), 10))
        rid = before[0].body["request_id"]
        feedback = httpx.post(f"http://127.0.0.1:{port}/feedback", json={"request_id": rid, "outcome": 1})
    checks = _audit(path, replies)
    assert feedback.status_code == 200  # a request from before the crash is known after it
    assert checks["acknowledged"] == len(before) + 500
    assert checks["missing"] == 0 and checks["duplicates"] == 0 and checks["unstable_users"] == 0
    assert checks["unacknowledged"] <= 20  # at most the requests in flight when the server died
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
