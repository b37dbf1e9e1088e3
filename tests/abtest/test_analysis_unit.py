"""The unit of analysis of `llmlab abtest report`: users (requests aggregated) vs requests.

With unit "user" the tests must equal the reference tests (statsmodels, scipy) run on per-user aggregates
computed independently here; and with correlated repeat visits the request unit must be overconfident, while
the user unit agrees with the cluster-robust standard error of a regression on the requests (statsmodels OLS,
clustered by user), the textbook answer for correlated observations.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from scipy import stats

from llmlab.abtest.analysis import analyse_experiment, request_table, user_table
from llmlab.cli import main
from llmlab.errors import LlmlabError

proportion = pytest.importorskip("statsmodels.stats.proportion")
sm = pytest.importorskip("statsmodels.api")
CONFIG = {"name": "x", "split": {"A": 0.5, "B": 0.5}, "paths": {}}


def _events(visits: np.ndarray, outcome, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Users u0..u{U-1} alternating A/B with visits[u] requests each; outcome(rng, user, variant) -> value or
    None (no feedback), drawn per request; requests interleaved in time."""
    rng = np.random.default_rng(seed)
    assignments, outcomes = [], []
    for u, k in enumerate(visits):
        variant = "AB"[u % 2]
        for r in range(k):
            request_id = f"u{u}-{r}"
            assignments.append(
                {
                    "request_id": request_id,
                    "user_id": f"u{u}",
                    "variant": variant,
                    "latency_ms": float(rng.gamma(4, 5)),
                    "created_at": float(rng.random()),
                }
            )
            value = outcome(rng, u, variant)
            if value is not None:
                outcomes.append(
                    {
                        "request_id": request_id,
                        "user_id": f"u{u}",
                        "variant": variant,
                        "value": value,
                        "created_at": 0.0,
                    }
                )
    return assignments, outcomes


def _per_user(assignments: list[dict], outcomes: list[dict]) -> dict[str, dict[str, list[float]]]:
    """variant -> user -> its requests' outcomes (0 without feedback), the plain-Python reference."""
    values = {o["request_id"]: o["value"] for o in outcomes}
    users: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for a in assignments:
        users[a["variant"]][a["user_id"]].append(values.get(a["request_id"], 0.0))
    return users


def _mixed(rng, u, variant):
    """No feedback a third of the time, else 0 or a positive or negative amount."""
    if rng.random() < 1 / 3:
        return None
    return float(rng.choice([0.0, 0.0, -1.0, 2.0, 5.0 if variant == "B" else 3.0]))


def test_user_unit_equals_the_reference_tests_on_per_user_aggregates():
    visits = np.random.default_rng(1).integers(1, 6, 600)  # 1-5 requests per user
    assignments, outcomes = _events(visits, _mixed)
    out = analyse_experiment(CONFIG, assignments, outcomes, metrics=("conversion", "outcome"), unit="user")
    users = _per_user(assignments, outcomes)
    converted = {v: [any(x > 0 for x in xs) for xs in users[v].values()] for v in "AB"}
    means = {v: [np.mean(xs) for xs in users[v].values()] for v in "AB"}
    for v in "AB":
        s = out["variants"][v]
        assert s["units"] == s["users"] == len(users[v]) == (visits[v == "B" :: 2] > 0).sum()
        assert s["assignments"] == visits[v == "B" :: 2].sum()
        assert s["conversions"] == sum(converted[v]) and s["mean_outcome"] == pytest.approx(np.mean(means[v]))
    conversion, outcome = out["tests"]
    counts, nobs = [sum(converted["B"]), sum(converted["A"])], [len(converted["B"]), len(converted["A"])]
    z, p = proportion.proportions_ztest(counts, nobs)
    low, high = proportion.confint_proportions_2indep(counts[0], nobs[0], counts[1], nobs[1], method="wald")
    assert (conversion["statistic"], conversion["pvalue"]) == pytest.approx((z, p), rel=1e-9)
    assert (conversion["ci_low"], conversion["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    ref = stats.ttest_ind(means["B"], means["A"], equal_var=False)
    assert (outcome["statistic"], outcome["pvalue"]) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)


def test_request_unit_equals_statsmodels_on_requests():
    assignments, outcomes = _events(np.full(300, 3), _mixed, seed=2)
    out = analyse_experiment(CONFIG, assignments, outcomes, metrics=("conversion",), unit="request")
    users = _per_user(assignments, outcomes)
    counts = [sum(x > 0 for xs in users[v].values() for x in xs) for v in "BA"]
    z, p = proportion.proportions_ztest(counts, [450, 450])
    assert out["unit"] == "request" and out["variants"]["A"]["units"] == 450
    assert (out["tests"][0]["statistic"], out["tests"][0]["pvalue"]) == pytest.approx((z, p), rel=1e-9)


def test_correlated_repeat_visits_make_the_request_unit_overconfident():
    """Each user has its own propensity (Beta(0.5, 2), mean 0.2) and visits 8 times: strongly correlated."""
    propensity = np.random.default_rng(3).beta(0.5, 2.0, 800)
    assignments, outcomes = _events(np.full(800, 8), lambda rng, u, v: float(rng.random() < propensity[u]), 4)
    by_unit = {
        unit: analyse_experiment(CONFIG, assignments, outcomes, metrics=("outcome",), unit=unit)["tests"][0]
        for unit in ("user", "request")
    }
    width = {unit: t["ci_high"] - t["ci_low"] for unit, t in by_unit.items()}
    assert by_unit["user"]["estimate"] == pytest.approx(by_unit["request"]["estimate"], rel=1e-12)
    assert width["request"] < 0.7 * width["user"]  # expected ratio 1 / sqrt(1 + (8 - 1) ICC), ICC 0.29: 0.58
    table = request_table(assignments, outcomes)
    design = sm.add_constant((table["variant"] == "B").astype(float))
    fit = sm.OLS(table["value"], design).fit(
        cov_type="cluster", cov_kwds={"groups": table["user"].astype(str)}
    )
    user_se = width["user"] / (2 * stats.t.isf(0.025, 798))
    assert user_se == pytest.approx(fit.bse[1], rel=0.02)  # the user unit is the cluster-robust answer


def test_user_table_keeps_a_switching_user_as_two_units_in_first_visit_order():
    assignments = [
        {"request_id": r, "user_id": u, "variant": v, "latency_ms": lat, "created_at": t}
        for r, u, v, lat, t in [
            ("1", "bob", "B", 10, 1),
            ("2", "al", "A", 20, 2),
            ("3", "bob", "B", 30, 3),
            ("4", "bob", "A", 40, 4),
        ]
    ]
    outcomes = [{"request_id": "3", "value": -2.0}, {"request_id": "4", "value": 1.0}]
    table = user_table(request_table(assignments, outcomes))
    assert list(table["user"]) == ["bob", "al", "bob"] and list(table["variant"]) == ["B", "A", "A"]
    assert table["value"].tolist() == [-1.0, 0.0, 1.0] and table["latency_ms"].tolist() == [20.0, 20.0, 40.0]
    assert table["converted"].tolist() == [False, False, True]
    assert table["has_outcome"].tolist() == [True, False, True]
    with pytest.raises(LlmlabError, match="--unit: unknown 'session'"):
        analyse_experiment(CONFIG, assignments, outcomes, unit="session")


def test_report_help_and_text_state_the_unit(tmp_path, capsys):
    from llmlab.abtest.store import open_store

    url = str(tmp_path / "u.db")
    store = open_store(url)
    store.create_experiment("e", {"A": 0.5, "B": 0.5}, {})
    store.log_assignments([(f"r{i}", "e", f"u{i % 40}", "AB"[i % 2], {}, 1.0 + i % 5) for i in range(200)])
    for i in range(0, 60, 3):
        store.log_outcome(f"r{i}", 1.0)
    store.close()
    for unit, units in (("user", 20), ("request", 100)):
        assert main(["abtest", "report", "--store", url, "--experiment", "e", "--unit", unit, "--json"]) == 0
        assert capsys.readouterr().out.count(f'"units": {units},') == 2
    assert main(["abtest", "report", "--store", url, "--experiment", "e"]) == 0
    assert "unit: user (a user's requests aggregated" in capsys.readouterr().out
    assert main(["abtest", "report", "--help"]) == 0
    assert "--unit" in capsys.readouterr().out
