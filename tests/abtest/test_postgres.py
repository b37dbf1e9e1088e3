"""PostgreSQL event log: two server instances share one experiment without losing or doubling an event.

The database is $LLMLAB_TEST_POSTGRES_URL when set (scripts/services.sh sets it in CI), else a throwaway
cluster made here with initdb/pg_ctl in a temporary folder (as the `postgres` user when running as root);
without either the tests are skipped.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmlab.abtest.loadgen import ServerProcess, audit, free_port, run_load
from llmlab.abtest.store import open_store

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _tool(name: str) -> str | None:
    return shutil.which(name) or (str(PG_BIN / name) if (PG_BIN / name).is_file() else None)


def _as_cluster_owner(argv: list[str]) -> list[str]:
    """initdb refuses to run as root: run it (and the server) as `postgres` then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL for the tests' exclusive use during the session (skip when there is none)."""
    if os.environ.get("LLMLAB_TEST_POSTGRES_URL"):
        yield os.environ["LLMLAB_TEST_POSTGRES_URL"]
        return
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL: set LLMLAB_TEST_POSTGRES_URL or install postgresql (initdb, pg_ctl)")
    folder = tempfile.mkdtemp(prefix="llmlab-pg-")  # not under pytest's tmp: the postgres user must reach it
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        try:
            os.chown(folder, pwd.getpwnam("postgres").pw_uid, -1)
        except KeyError:
            pytest.skip("running as root and there is no postgres user to own a cluster")
    port, data = free_port(), f"{folder}/data"
    try:
        _run([initdb, "-D", data, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        options = f"-p {port} -k {folder} -c listen_addresses='' -c fsync=on"
        _run([pg_ctl, "-D", data, "-l", f"{folder}/log", "-w", "-o", options, "start"])
    except subprocess.CalledProcessError as e:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start a throwaway PostgreSQL: {e.stderr.decode(errors='replace')[-300:]}")
    yield f"postgresql://postgres@/postgres?host={folder}&port={port}"
    _run([pg_ctl, "-D", data, "-m", "immediate", "stop"])
    shutil.rmtree(folder, ignore_errors=True)


def _run(argv: list[str]) -> None:
    subprocess.run(_as_cluster_owner(argv), check=True, capture_output=True, timeout=120)


def _stand_in_server(experiment: str, store: str) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "llmlab.abtest.loadgen", "--experiment", experiment, "--store", store]
    return ServerProcess([*argv, "--port", str(port)], port)


def _outcome(user_id: str, variant: str) -> float:
    return float(variant == "B" and int(user_id.removeprefix("u")) % 3 == 0)


@pytest.mark.slow
def test_two_servers_share_one_log(postgres_url):
    experiment = f"two-{uuid.uuid4().hex[:8]}"
    requests = [(f"u{i % 150}", f"text {i}") for i in range(1200)]  # every user visits both servers
    with _stand_in_server(experiment, postgres_url) as one, _stand_in_server(experiment, postgres_url) as two:

        async def both():
            return await asyncio.gather(
                run_load("127.0.0.1", one.port, requests[0::2], 8, _outcome),
                run_load("127.0.0.1", two.port, requests[1::2], 8, _outcome),
            )

        first, second = asyncio.run(both())
        replies = first + second
        store = open_store(postgres_url)
        try:
            checks = audit(store, experiment, replies, {"A": 0.5, "B": 0.5})
            outcomes = store.outcomes(experiment)
        finally:
            store.close()
    assert len(replies) == 1200 and checks["acknowledged"] == 1200
    assert (checks["logged"], checks["missing"], checks["duplicates"], checks["unacknowledged"]) == (
        1200,
        0,
        0,
        0,
    )
    assert checks["unstable_users"] == 0
    assert len(outcomes) == 1200 == len({o["request_id"] for o in outcomes})
    assert sum(o["value"] for o in outcomes) == sum(_outcome(r.user_id, r.body["variant"]) for r in replies)


@pytest.mark.slow
def test_an_outcome_given_at_one_server_is_refused_at_the_other(postgres_url):
    import httpx

    experiment = f"cross-{uuid.uuid4().hex[:8]}"
    with _stand_in_server(experiment, postgres_url) as one, _stand_in_server(experiment, postgres_url) as two:
        url = "http://127.0.0.1:{}".format
        answer = httpx.post(url(one.port) + "/predict", json={"user_id": "u1", "text": "hello"}).json()
        again = httpx.post(url(two.port) + "/predict", json={"user_id": "u1", "text": "hello"}).json()
        assert again["variant"] == answer["variant"]
        feedback = {"request_id": answer["request_id"], "outcome": 1}
        assert httpx.post(url(two.port) + "/feedback", json=feedback).status_code == 200
        refused = httpx.post(url(one.port) + "/feedback", json=feedback)
    assert refused.status_code == 409 and "already has an outcome" in refused.json()["error"]
