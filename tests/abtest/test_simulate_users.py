"""`llmlab abtest simulate --url`: seeded simulated users against a real server process, checked against the
event log, the true rates and `llmlab abtest report`."""

from __future__ import annotations

import json
import math
import random
import sys

import numpy as np
import pytest

from llmlab.abtest.assign import assign_variant
from llmlab.abtest.loadgen import Reply, ServerProcess, free_port
from llmlab.abtest.simulate_users import (
    compare_with_truth,
    events_from_replies,
    parse_rates,
    parse_url,
    simulated_users,
    true_effect,
)
from llmlab.abtest.store import open_store
from llmlab.cli import main
from llmlab.errors import LlmlabError

RATES = {"A": 0.10, "B": 0.40}
SPLIT = {"A": 0.5, "B": 0.5}


def _simulate(capsys, url: str, seed: int, *extra: str) -> dict:
    args = ["abtest", "simulate", "--url", url, "--rate", "A=0.10", "--rate", "B=0.40", "--users", "300"]
    assert main([*args, "--visits", "2", "--seed", str(seed), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _expected_conversions(seeds: list[int], users: int, visits: int) -> dict[str, int]:
    """From scratch: user i of seed s is hashed onto a variant and converts on draw u[i, j] < its rate."""
    total = {"A": 0, "B": 0}
    for seed in seeds:
        draws = np.random.default_rng(seed).random((users, visits))
        for i in range(users):
            variant = assign_variant("sim", f"sim{seed}-{i}", SPLIT)
            total[variant] += int((draws[i] < RATES[variant]).sum())
    return total


@pytest.mark.slow
def test_simulate_against_a_server_process(tmp_path, capsys):
    path, port = str(tmp_path / "sim.db"), free_port()
    argv = [sys.executable, "-m", "llmlab.abtest.loadgen", "--experiment", "sim", "--store", path]
    with ServerProcess([*argv, "--port", str(port)], port) as server:
        url = f"http://127.0.0.1:{port}"
        first = _simulate(capsys, url, 0)  # fresh experiment, analysed from what the server acknowledged
        assert main(["abtest", "report", "--store", path, "--experiment", "sim", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        second = _simulate(capsys, url, 1, "--store", path)  # analysed from the event log: both runs
        assert server.proc.poll() is None, server.log()
    # the simulator's own events give the same analysis as `report` on the log (all but the stream order)
    assert first["analysis"]["variants"] == report["variants"]
    for ours, ref in zip(first["analysis"]["tests"], report["tests"], strict=True):
        assert {k: ours[k] for k in ("estimate", "ci_low", "ci_high", "pvalue")} == pytest.approx(
            {k: ref[k] for k in ("estimate", "ci_low", "ci_high", "pvalue")}, rel=1e-12
        )
    assert first["answered"] == first["feedback_acknowledged"] == first["server"]["outcomes"] == 600
    # every acknowledged request and outcome is in the log, and the log holds exactly the seeded users' outcomes
    audit = second["audit"]
    assert (audit["missing"], audit["missing_outcomes"], audit["duplicates"]) == (0, 0, 0)
    assert audit["feedback_acknowledged"] == 600 and audit["unacknowledged"] == 600  # the first run's
    store = open_store(path)
    outcomes = store.outcomes("sim")
    store.close()
    assert len(outcomes) == len({o["request_id"] for o in outcomes}) == 1200
    logged = {v: int(sum(o["value"] for o in outcomes if o["variant"] == v)) for v in "AB"}
    assert logged == _expected_conversions([0, 1], 300, 2)
    for v, p in RATES.items():  # observed rates within 3 binomial standard errors of the truth
        n = sum(o["variant"] == v for o in outcomes)
        assert abs(logged[v] / n - p) <= 3 * math.sqrt(p * (1 - p) / n)
        assert second["truth"]["variants"][v]["within_tolerance"]
    # the report finds the effect, and its interval covers the true one
    conversion = second["analysis"]["tests"][0]
    assert conversion["metric"] == "conversion" and conversion["significant"] and conversion["pvalue"] < 1e-6
    assert second["analysis"]["variants"]["A"]["units"] + second["analysis"]["variants"]["B"]["units"] == 600
    assert all(e["covered"] for e in second["truth"]["effects"])
    assert second["truth"]["effects"][0]["true"] == pytest.approx(0.9**2 - 0.6**2)


def test_seeded_users_do_the_same_whatever_the_order_of_calls():
    requests, outcome = simulated_users(RATES, users=50, visits=4, seed=3)
    assert len(requests) == 200 and requests[0][0] == requests[50][0] == "sim3-0"  # visits interleaved

    def totals(order):
        _, fresh = simulated_users(RATES, users=50, visits=4, seed=3)
        got: dict[str, float] = {}
        for user, _text in order:
            got[user] = got.get(user, 0.0) + fresh(user, "B")
        return got

    shuffled = random.Random(0).sample(requests, len(requests))
    assert totals(requests) == totals(shuffled) and sum(totals(requests).values()) > 0


def test_truth_comparison_and_events_on_hand_made_replies():
    replies = [
        Reply("u1", 200, {"request_id": "r1", "variant": "A", "latency_ms": 2.0}, 0.01, 1.0, 200),
        Reply("u2", 200, {"request_id": "r2", "variant": "B", "latency_ms": 3.0}, 0.01, 0.0, 200),
        Reply(
            "u2", 200, {"request_id": "r3", "variant": "B", "latency_ms": 3.0}, 0.01, 1.0, 0
        ),  # feedback lost
        Reply("u3", 0, None, 0.01),
    ]
    assignments, outcomes = events_from_replies(replies)
    assert [a["request_id"] for a in assignments] == ["r1", "r2", "r3"]
    assert [(o["request_id"], o["value"]) for o in outcomes] == [("r1", 1.0), ("r2", 0.0)]
    analysis = {
        "unit": "user",
        "control": "A",
        "tests": [
            {"variant": "B", "metric": "conversion", "estimate": 0.1, "ci_low": 0.05, "ci_high": 0.2},
            {"variant": "B", "metric": "latency", "estimate": 1.0, "ci_low": 0.0, "ci_high": 2.0},
        ],
    }
    truth = compare_with_truth(replies, {"A": 0.5, "B": 0.5}, visits=2, analysis=analysis)
    assert truth["variants"]["A"]["z"] == pytest.approx(1.0) and truth["variants"]["B"]["requests"] == 1
    assert [e["metric"] for e in truth["effects"]] == ["conversion"] and not truth["effects"][0]["covered"]
    assert true_effect("conversion", "user", 0.1, 0.2, 3) == pytest.approx(0.488 - 0.271)
    assert true_effect("outcome", "user", 0.1, 0.2, 3) == true_effect("conversion", "request", 0.1, 0.2, 3)


def test_bad_arguments_are_one_line_errors(capsys):
    assert parse_rates(["A=0.1", "B=1"]) == {"A": 0.1, "B": 1.0} and parse_url("http://h:81/x") == ("h", 81)
    for specs in (["A"], ["A=x"], ["A=1.5"], ["A=0.1", "A=0.2"]):
        with pytest.raises(LlmlabError, match="NAME=RATE"):
            parse_rates(specs)
    with pytest.raises(LlmlabError, match="expected http://HOST:PORT"):
        parse_url("ftp://h:1")
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["abtest", "simulate", "--url", url, "--rate", "A=0.1", "--rate", "B=0.2"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the server" in err and len(err.strip().splitlines()) == 1
    assert main(["abtest", "simulate", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--url" in text and "--rate" in text and "not implemented" not in text
