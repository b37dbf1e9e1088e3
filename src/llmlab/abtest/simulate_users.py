"""Simulated users with a known true effect against a running experiment server (`abtest simulate --url`).

Each of U simulated users makes V requests to POST /predict (visits interleaved: every user's first visit,
then every user's second, ...) from concurrent keep-alive clients, the load generator's own
(`loadgen.run_load`). After each answered request the user converts with the true probability of the variant
it was served (a Bernoulli draw) and the 0/1 outcome goes to POST /feedback. The draws are fixed by the seed
before the run (user i's j-th answered request gets the uniform u[i, j]), so concurrency changes which of a
user's requests carries which draw, never what the user does.

The run is then analysed as `llmlab abtest report` does (`analysis.analyse_experiment`): from the event log
when its URL is given, else from the events the server acknowledged to the simulator; and set against the
truth:
- per variant, the observed conversion rate of the requests against the true rate, as a z-score with the
  binomial standard error sqrt(p (1 - p) / n); |z| <= TOLERANCE_Z is "within tolerance";
- per test, whether its confidence interval covers the true effect at the analysis unit: p_B - p_A for the
  mean outcome and for conversion per request; (1 - (1 - p_B)^V) - (1 - (1 - p_A)^V) for conversion per
  user (a user converts when any of its V visits does).
With the log, `loadgen.audit` also checks that every acknowledged request and feedback is in it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from urllib.parse import urlsplit

import numpy as np

from llmlab.abtest.analysis import analyse_experiment
from llmlab.abtest.loadgen import Connection, OutcomeFn, Reply, audit, run_load
from llmlab.abtest.store import open_store
from llmlab.errors import LlmlabError, mask_secrets
from llmlab.progress import progress_bar

TOLERANCE_Z = 3.0  # |observed - true| within 3 binomial standard errors


def parse_rates(specs: Sequence[str]) -> dict[str, float]:
    """Turn ["A=0.10", "B=0.12"] into {"A": 0.1, "B": 0.12}.

    Raises:
        LlmlabError: a spec that is not NAME=RATE with 0 <= RATE <= 1, or a name given twice.
    """
    rates: dict[str, float] = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = math.nan
        if not name or not 0 <= rate <= 1 or name in rates:
            raise LlmlabError(f"--rate {spec!r}: expected NAME=RATE with RATE in [0, 1], once per variant")
        rates[name] = rate
    return rates


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL.

    Raises:
        LlmlabError: not an http URL with a host.
    """
    parts = urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise LlmlabError(
            f"--url {mask_secrets(url)!r}: expected http://HOST:PORT of a running `llmlab serve`"
        )
    return parts.hostname, port


async def get_json(host: str, port: int, path: str) -> dict:
    """GET http://host:port/path as JSON.

    Raises:
        LlmlabError: the server cannot be reached or does not answer 200.
    """
    conn = Connection(host, port)
    try:
        status, body = await conn.get(path)
    except ConnectionError as e:
        raise LlmlabError(f"http://{host}:{port}{path}: cannot reach the server ({e})") from None
    finally:
        conn.close()
    if status != 200:
        raise LlmlabError(f"http://{host}:{port}{path}: HTTP {status}: {body.get('error', body)}")
    return body


def simulated_users(
    rates: dict[str, float], users: int, visits: int, seed: int = 0
) -> tuple[list[tuple[str, str]], OutcomeFn]:
    """The requests ((user_id, text), visits interleaved) and the outcome function of the simulated users."""
    names = [f"sim{seed}-{i}" for i in range(users)]
    index = {name: i for i, name in enumerate(names)}
    draws = np.random.default_rng(seed).random((users, visits))  # (U, V)
    used = np.zeros(users, int)  # answered requests per user so far

    def outcome(user_id: str, variant: str) -> float:
        i = index[user_id]
        u, used[i] = draws[i, used[i]], used[i] + 1
        return float(u < rates[variant])

    requests = [(name, f"simulated visit {j} of {name}") for j in range(visits) for name in names]
    return requests, outcome


def run_users(
    url: str,
    rates: dict[str, float],
    users: int,
    visits: int,
    clients: int,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict, list[Reply], dict]:
    """Run the simulated users against the server at `url`.

    Returns:
        (the experiment {"name", "split"} from GET /stats, the replies, GET /stats after the run).

    Raises:
        LlmlabError: the server is unreachable, `rates` does not name exactly its variants, or no request was
            answered.
    """
    host, port = parse_url(url)
    before = asyncio.run(get_json(host, port, "/stats"))
    config = {"name": before["experiment"], "split": {v: s["share"] for v, s in before["variants"].items()}}
    if set(rates) != set(config["split"]):
        raise LlmlabError(
            f"--rate: give one true rate for each variant of experiment {config['name']!r}: "
            f"{sorted(config['split'])} (got {sorted(rates)})"
        )
    requests, outcome = simulated_users(rates, users, visits, seed)

    async def simulate() -> list[Reply]:
        replies: list[Reply] = []
        load = asyncio.ensure_future(run_load(host, port, requests, clients, outcome, replies))
        with progress_bar(f"simulated users -> {mask_secrets(url)}", progress) as show:
            while not load.done():
                show(len(replies), len(requests))
                await asyncio.wait([load], timeout=0.2)
            show(len(replies), len(requests))
        return load.result()

    replies = asyncio.run(simulate())
    if not any(r.status == 200 for r in replies):
        raise LlmlabError(
            f"{mask_secrets(url)}: no request was answered (statuses {sorted({r.status for r in replies})})"
        )
    return config, replies, asyncio.run(get_json(host, port, "/stats"))


def simulate_against_server(
    url: str,
    rates: dict[str, float],
    users: int,
    visits: int = 1,
    clients: int = 8,
    store: str | None = None,
    unit: str = "user",
    alpha: float = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Run the simulated users against `url`, analyse the experiment, and compare with the truth.

    Args:
        url: http://HOST:PORT of a running experiment server.
        rates: variant -> true conversion probability per request (every variant of the experiment).
        users, visits: U users making V requests each.
        clients: concurrent connections.
        store: the server's event log URL; None: analyse the events acknowledged to the simulator.
        unit, alpha, seed: as in `analysis.analyse_experiment`; seed also fixes the users' draws.
        progress: show a progress bar on stderr.

    Returns:
        {"settings", "experiment", "unit", "answered", "feedback_acknowledged", "server": {"assignments",
         "outcomes"} (GET /stats after the run), "audit" (`loadgen.audit`, or None without `store`), "truth"
         (`compare_with_truth`), "analysis" (`analysis.analyse_experiment`)}.

    Raises:
        LlmlabError: as `run_users`, or the event log lacks the experiment.
    """
    config, replies, after = run_users(url, rates, users, visits, clients, seed, progress)
    audit_result = None
    if store is None:
        assignments, outcomes = events_from_replies(replies)
    else:
        log = open_store(store, create=False)
        try:
            config = log.experiment(config["name"])
            assignments = log.assignments(config["name"])
            outcomes = log.outcomes(config["name"])
            audit_result = audit(log, config["name"], replies, config["split"])
        finally:
            log.close()
    analysis = analyse_experiment(config, assignments, outcomes, alpha=alpha, seed=seed, unit=unit)
    settings = {
        "url": mask_secrets(url),
        "rates": rates,
        "users": users,
        "visits": visits,
        "clients": clients,
        "seed": seed,
    }
    return {
        "settings": settings,
        "experiment": config["name"],
        "unit": unit,
        "answered": sum(r.status == 200 for r in replies),
        "feedback_acknowledged": sum(r.feedback_status == 200 for r in replies),
        "server": {k: sum(v[k] for v in after["variants"].values()) for k in ("assignments", "outcomes")},
        "audit": audit_result,
        "truth": compare_with_truth(replies, rates, visits, analysis),
        "analysis": analysis,
    }


def events_from_replies(replies: Sequence[Reply]) -> tuple[list[dict], list[dict]]:
    """The events the server acknowledged, in the shapes of EventStore.assignments / outcomes."""
    answered = [r for r in replies if r.status == 200]
    assignments = [
        {
            "request_id": r.body["request_id"],
            "user_id": r.user_id,
            "variant": r.body["variant"],
            "latency_ms": r.body["latency_ms"],
            "created_at": float(t),
        }
        for t, r in enumerate(answered)
    ]
    outcomes = [
        {
            "request_id": a["request_id"],
            "user_id": a["user_id"],
            "variant": a["variant"],
            "value": r.outcome,
            "created_at": a["created_at"],
        }
        for a, r in zip(assignments, answered, strict=True)
        if r.feedback_status == 200
    ]
    return assignments, outcomes


def true_effect(metric: str, unit: str, p_a: float, p_b: float, visits: int) -> float | None:
    """The true B - A difference that a test of `metric` at `unit` estimates (None for latency)."""
    if metric == "outcome" or (metric == "conversion" and unit == "request"):
        return p_b - p_a
    if metric == "conversion":
        return (1 - p_a) ** visits - (1 - p_b) ** visits
    return None


def compare_with_truth(
    replies: Sequence[Reply], rates: dict[str, float], visits: int, analysis: dict
) -> dict:
    """Observed against true rates per variant, and whether each test's interval covers the true effect.

    Returns:
        {"variants": {v: {"true_rate", "requests", "conversions", "observed_rate", "z", "within_tolerance"}},
         "effects": [{"variant", "metric", "true", "estimate", "ci_low", "ci_high", "covered"}]}.
    """
    variants = {}
    for v, p in rates.items():
        sent = [r.outcome for r in replies if r.feedback_status == 200 and r.body["variant"] == v]
        n = len(sent)
        k = int(sum(sent))
        se = math.sqrt(p * (1 - p) / n) if n else math.nan
        z = (k / n - p) / se if n and se > 0 else (0.0 if n and k / n == p else math.nan)
        variants[v] = {
            "true_rate": p,
            "requests": n,
            "conversions": k,
            "observed_rate": k / n if n else None,
            "z": z,
            "within_tolerance": bool(abs(z) <= TOLERANCE_Z),
        }
    effects = []
    for t in analysis["tests"]:
        truth = true_effect(
            t["metric"], analysis["unit"], rates[analysis["control"]], rates[t["variant"]], visits
        )
        if truth is not None:
            covered = bool(t["ci_low"] <= truth <= t["ci_high"])
            effects.append(
                {
                    **{k: t[k] for k in ("variant", "metric", "estimate", "ci_low", "ci_high")},
                    "true": truth,
                    "covered": covered,
                }
            )
    return {"variants": variants, "effects": effects}


def format_truth(result: dict) -> str:
    """The simulation's own lines, printed after the report's."""
    s = result["settings"]
    truth = result["truth"]
    lines = [
        f"simulated {s['users']} users x {s['visits']} visits against {s['url']} (seed {s['seed']}): "
        f"{result['answered']} answered, {result['feedback_acknowledged']} outcomes acknowledged",
        f"{'variant':<12}{'true rate':>10}{'requests':>10}{'observed':>10}{'z':>8}  (within {TOLERANCE_Z:g} SE)",
    ]
    for v, r in truth["variants"].items():
        lines.append(
            f"{v:<12}{r['true_rate']:>10.4f}{r['requests']:>10}{_or_nan(r['observed_rate']):>10.4f}"
            f"{r['z']:>+8.2f}  {'yes' if r['within_tolerance'] else 'NO'}"
        )
    for e in truth["effects"]:
        lines.append(
            f"true effect of {e['variant']} on {e['metric']} per {result['unit']}: {e['true']:+.4g}; estimate "
            f"{e['estimate']:+.4g} [{e['ci_low']:+.4g}, {e['ci_high']:+.4g}] {'covers' if e['covered'] else 'MISSES'} it"
        )
    server = result["server"]
    audit = result["audit"]
    lines.append(
        f"server /stats: {server['assignments']} requests and {server['outcomes']} outcomes in the experiment "
        f"(this run: {result['answered']} and {result['feedback_acknowledged']})"
    )
    if audit is not None:
        lines.append(
            f"event log: {audit['missing']} acknowledged requests and {audit['missing_outcomes']} acknowledged "
            f"outcomes missing; {audit['unacknowledged']} logged requests not from this run"
        )
    return "\n".join(lines)


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else x
