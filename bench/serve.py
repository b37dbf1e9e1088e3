"""Load on loopback: the A/B experiment server under concurrent clients, then an audit of its event log.

Starts `llmlab serve` (uvicorn, a real port) in a subprocess, sends --requests POST /predict from --clients
concurrent keep-alive connections (users repeat: --users distinct ids), and reports throughput and client-side
p50/p99 latency (plus the server's own model latency). Then it checks the log (`llmlab.abtest.loadgen.audit`):
exactly the acknowledged events are logged (count and ids), every user kept one variant, and the split passes
the sample-ratio-mismatch chi-square test (p > 0.001). Exit status 1 when a check fails.

Models: two TF-IDF + logistic-regression baselines (`llmlab.evaluation.baseline.LinearBaseline`) fitted on
SST-2 slices when both are available, else two hash stand-ins (`--predictor stand-in`); the output says which.

    python bench/serve.py                              # 20,000 requests, 50 clients, SQLite log
    python bench/serve.py --requests 2000 --clients 20 --json serve.json
    python bench/serve.py --store postgresql://USER@HOST/DB
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from llmlab.abtest.loadgen import ServerProcess, audit, free_port, latency_summary, run_load
from llmlab.abtest.store import open_store

SST2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2"
EXPERIMENT = "bench"


def _read_csv(path: Path, limit: int) -> tuple[list[str], list[int]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(itertools.islice(csv.DictReader(f), limit))
    return [row["text"] for row in rows], [int(row["label"]) for row in rows]


def _baselines(folder: Path) -> dict[str, Path] | None:
    """Two LinearBaseline folders (A: 2,000 SST-2 training sentences, B: 10,000), or None if unavailable."""
    try:
        from llmlab.evaluation.baseline import LinearBaseline
    except ImportError:
        return None
    if not (SST2 / "train.csv").is_file():
        return None
    paths = {}
    for name, size in (("A", 2000), ("B", 10000)):
        texts, labels = _read_csv(SST2 / "train.csv", size)
        model = LinearBaseline()
        model.fit(texts, labels)
        model.save(folder / name)
        paths[name] = folder / name
    return paths


def _server_argv(kind: str, folder: Path, store: str, port: int) -> tuple[str, list[str]]:
    """(what serves, argv): `llmlab serve` over two baselines, or the stand-in server."""
    paths = _baselines(folder) if kind in ("auto", "baseline") else None
    if paths is None and kind == "baseline":
        sys.exit("bench/serve.py: LinearBaseline or ../shared/data/sst2 is missing")
    if paths is None:
        argv = ["-m", "llmlab.abtest.loadgen", "--experiment", EXPERIMENT, "--store", store]
        return "two hash stand-ins (llmlab.abtest.loadgen.StandInPredictor)", [
            sys.executable,
            *argv,
            "--port",
            str(port),
        ]
    variants = [f"--variant={name}={path}" for name, path in paths.items()]
    argv = [
        "-m",
        "llmlab",
        "serve",
        "--experiment",
        EXPERIMENT,
        *variants,
        "--split",
        "50/50",
        "--store",
        store,
    ]
    return "LinearBaseline on SST-2 (A: 2k, B: 10k training sentences)", [
        sys.executable,
        *argv,
        "--port",
        str(port),
    ]


def _requests(n: int, users: int, seed: int) -> list[tuple[str, str]]:
    texts = _read_csv(SST2 / "dev.csv", 10**6)[0] if (SST2 / "dev.csv").is_file() else ["a fine film"]
    rng = random.Random(seed)
    return [(f"user{rng.randrange(users)}", rng.choice(texts)) for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--users", type=int, default=2000, help="distinct user ids (users repeat)")
    parser.add_argument("--store", help="event log URL (default: an SQLite file in a temporary folder)")
    parser.add_argument("--predictor", choices=["auto", "baseline", "stand-in"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store_url = args.store or str(Path(tmp) / "abtest.db")
        port = free_port()
        what, argv = _server_argv(args.predictor, Path(tmp), store_url, port)
        print(
            f"models: {what}; log: {store_url}; {args.requests} requests, {args.clients} clients",
            file=sys.stderr,
        )
        requests = _requests(args.requests, args.users, args.seed)
        with ServerProcess(argv, port):
            warm_up = asyncio.run(run_load("127.0.0.1", port, requests[:200], args.clients))
            start = time.perf_counter()
            replies = asyncio.run(run_load("127.0.0.1", port, requests, args.clients))
            figures = latency_summary(replies, time.perf_counter() - start)
            store = open_store(store_url)
            checks = audit(store, EXPERIMENT, warm_up + replies, {"A": 0.5, "B": 0.5})
            store.close()
    result = {
        "models": what,
        "store": "postgresql" if store_url.startswith("postgres") else "sqlite",
        **figures,
        **checks,
    }
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = (
        checks["missing"] == checks["duplicates"] == checks["unstable_users"] == 0
        and checks["srm_p_value"] > 0.001
    )
    return 0 if ok and figures["answered"] == figures["requests"] else 1


def _print(r: dict) -> None:
    print(f"models            {r['models']}  (log: {r['store']})")
    print(f"answered          {r['answered']} / {r['requests']} in {r['wall_s']:.2f} s")
    print(f"throughput        {r['throughput_rps']:.0f} requests/s")
    print(f"latency (client)  p50 {r['p50_ms']:.2f} ms   p99 {r['p99_ms']:.2f} ms")
    print(f"latency (model)   p50 {r['model_p50_ms']:.2f} ms   p99 {r['model_p99_ms']:.2f} ms")
    print(
        f"log               {r['logged']} logged, {r['missing']} acknowledged missing, {r['duplicates']} twice"
    )
    print(f"assignment        {r['unstable_users']} users changed variant; users per variant {r['users']}")
    print(f"SRM chi-square    p = {r['srm_p_value']:.4f} (fail below 0.001)")


if __name__ == "__main__":
    sys.exit(main())
