"""Load generation against the experiment server: clients, a server subprocess, and the log audit.

The clients speak HTTP/1.1 with keep-alive over raw asyncio streams (one connection per client, requests in
sequence, like `wrk`'s connections), because a full client such as httpx costs more CPU per request than the
server does and would measure itself. `audit` checks a run against the event log: exactly the acknowledged
events are logged, each user kept one variant, and the split passes the sample-ratio-mismatch chi-square test.
`StandInPredictor` is a model that costs nothing, for load tests without a trained model; run
`python -m llmlab.abtest.loadgen --store URL --port P` to serve two stand-ins.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from llmlab.abtest.dashboard import srm_p_value
from llmlab.abtest.store import EventStore

OutcomeFn = Callable[[str, str], float | None]
"""outcome(user_id, variant) -> the feedback to send after a prediction, or None for none."""


@dataclass
class Reply:
    """One request's result as the client saw it (status 0: no answer, the connection failed).

    outcome and feedback_status: the value sent to /feedback and the server's answer (0: the connection
    failed); both None when no feedback was sent.
    """

    user_id: str
    status: int
    body: dict | None
    latency_s: float
    outcome: float | None = None
    feedback_status: int | None = None


class Connection:
    """One keep-alive HTTP/1.1 connection that posts JSON and reads JSON back."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, payload: dict) -> tuple[int, dict]:
        """POST `payload` as JSON to `path`; (status, JSON body); ConnectionError if the server is gone."""
        body = json.dumps(payload).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
        return await self._exchange(path, f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)

    async def get(self, path: str) -> tuple[int, dict]:
        """GET `path`; (status, JSON body); ConnectionError if the server is gone."""
        return await self._exchange(path, f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())

    async def _exchange(self, path: str, message: bytes) -> tuple[int, dict]:
        try:
            if self._streams is None:
                self._streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._streams
            writer.write(message)
            await writer.drain()
            return await self._read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            self.close()
            raise ConnectionError(f"{path}: {e}") from e

    async def _read_response(self, reader: asyncio.StreamReader) -> tuple[int, dict]:
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length, keep_alive = 0, True
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                keep_alive = False
        data = json.loads(await reader.readexactly(length))
        if not keep_alive:
            self.close()
        return status, data

    def close(self) -> None:
        """Drop the connection; the next `post` opens a new one."""
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _client(conn: Connection, queue: list, replies: list[Reply], outcome: OutcomeFn | None) -> None:
    while queue:
        user_id, text = queue.pop()
        start = time.perf_counter()
        try:
            status, body = await conn.post("/predict", {"user_id": user_id, "text": text})
        except ConnectionError:
            replies.append(Reply(user_id, 0, None, time.perf_counter() - start))
            await asyncio.sleep(0.01)  # the server is down: do not spin
            continue
        reply = Reply(user_id, status, body, time.perf_counter() - start)
        replies.append(reply)
        reply.outcome = outcome(user_id, body["variant"]) if status == 200 and outcome else None
        if reply.outcome is not None:
            reply.feedback_status = 0  # an outcome lost with the server is not acknowledged
            with contextlib.suppress(ConnectionError):
                payload = {"request_id": body["request_id"], "outcome": reply.outcome}
                reply.feedback_status = (await conn.post("/feedback", payload))[0]
    conn.close()


async def run_load(
    host: str,
    port: int,
    requests: Sequence[tuple[str, str]],
    clients: int,
    outcome: OutcomeFn | None = None,
    replies: list[Reply] | None = None,
) -> list[Reply]:
    """Send `requests` ((user_id, text) each) to POST /predict from `clients` concurrent connections.

    Args:
        outcome: if given, each answered request is followed by POST /feedback with outcome(user, variant).
        replies: the list to append replies to as they come (lets a concurrent task watch progress).

    Returns:
        `replies`: one `Reply` per request, in completion order.
    """
    queue, replies = list(reversed(requests)), [] if replies is None else replies
    await asyncio.gather(*(_client(Connection(host, port), queue, replies, outcome) for _ in range(clients)))
    return replies


def latency_summary(replies: Sequence[Reply], wall_s: float) -> dict:
    """Throughput (answered requests per second) and client/server latency percentiles in ms."""
    ok = [r for r in replies if r.status == 200]
    client = np.array([r.latency_s * 1000 for r in ok])
    server = np.array([r.body["latency_ms"] for r in ok])
    return {
        "requests": len(replies),
        "answered": len(ok),
        "wall_s": wall_s,
        "throughput_rps": len(ok) / wall_s,
        "p50_ms": float(np.percentile(client, 50)),
        "p99_ms": float(np.percentile(client, 99)),
        "model_p50_ms": float(np.percentile(server, 50)),
        "model_p99_ms": float(np.percentile(server, 99)),
    }


def audit(store: EventStore, experiment: str, replies: Sequence[Reply], split: dict[str, float]) -> dict:
    """Check the event log against what the clients were told.

    Returns:
        {"acknowledged", "logged", "missing", "duplicates", "unacknowledged", "unstable_users", "users",
        "srm_p_value", "feedback_acknowledged", "missing_outcomes"}:
        missing = acknowledged ids not in the log (must be 0), duplicates = ids logged twice (must be 0),
        unacknowledged = logged but never answered (a request cut off by a crash; 0 when nothing crashed),
        unstable_users = users seen with two variants (must be 0), missing_outcomes = acknowledged feedback
        whose outcome is not in the log or has another value (must be 0).
    """
    acked = {r.body["request_id"]: r for r in replies if r.status == 200}
    logged = store.assignments(experiment)
    logged_ids = [row["request_id"] for row in logged]
    variants: dict[str, set[str]] = {}
    for user_id, variant in [(r.user_id, r.body["variant"]) for r in acked.values()] + [
        (row["user_id"], row["variant"]) for row in logged
    ]:
        variants.setdefault(user_id, set()).add(variant)
    users = {name: 0 for name in sorted(split)}
    for seen in variants.values():
        users[min(seen)] += 1
    return {
        "acknowledged": len(acked),
        "logged": len(logged_ids),
        "missing": len(set(acked) - set(logged_ids)),
        "duplicates": len(logged_ids) - len(set(logged_ids)),
        "unacknowledged": len(set(logged_ids) - set(acked)),
        "unstable_users": sum(len(seen) > 1 for seen in variants.values()),
        "users": users,
        "srm_p_value": srm_p_value(users, split),
        **_audit_outcomes(store, experiment, replies),
    }


def _audit_outcomes(store: EventStore, experiment: str, replies: Sequence[Reply]) -> dict:
    """How many feedback posts the server acknowledged, and how many of those the log lacks."""
    sent = {r.body["request_id"]: r.outcome for r in replies if r.feedback_status == 200}
    logged = {row["request_id"]: row["value"] for row in store.outcomes(experiment)}
    missing = sum(logged.get(request_id) != value for request_id, value in sent.items())
    return {"feedback_acknowledged": len(sent), "missing_outcomes": missing}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server in a subprocess (its own process group), started by `argv` and ready once /health answers."""

    def __init__(self, argv: Sequence[str], port: int, env: dict | None = None, timeout_s: float = 60):
        self.port = port
        # a file, not a pipe: a chatty server must never block on it; closed by __exit__
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(argv, env=env, start_new_session=True, stderr=self.stderr)
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server {' '.join(argv)} did not start:\n{self.log()[-2000:]}")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (default: kill -9) to the server's process group and reap it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.kill(signal.SIGTERM)
        self.stderr.close()


class StandInPredictor:
    """A two-class "model" whose probabilities come from a hash of the text: deterministic and nearly free."""

    def __init__(self, name: str = "stand-in", labels: Sequence[str] = ("negative", "positive")):
        self.name, self.labels = name, list(labels)

    def predict_proba(self, texts, text_pairs=None, batch_size: int = 64) -> np.ndarray:
        """(N, 2) probabilities; p(positive) is the text's sha256 read as a fraction."""
        p = [
            int.from_bytes(hashlib.sha256((self.name + t).encode()).digest()[:4], "big") / 2**32
            for t in texts
        ]
        return np.column_stack([1 - np.array(p), np.array(p)]).reshape(len(texts), 2)


def serve_stand_ins(argv: Sequence[str] | None = None) -> None:
    """Serve variants A and B as stand-in predictors (used by load tests and `bench/serve.py`)."""
    import uvicorn

    from llmlab.abtest.server import create_app
    from llmlab.abtest.store import open_store

    parser = argparse.ArgumentParser(description=serve_stand_ins.__doc__)
    parser.add_argument("--experiment", default="load")
    parser.add_argument("--store", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    store = open_store(args.store)
    variants = {"A": StandInPredictor("A"), "B": StandInPredictor("B")}
    app = create_app(args.experiment, variants, {"A": 0.5, "B": 0.5}, store)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    sys.exit(serve_stand_ins())
