"""The statistics of an online experiment from its event log (what `llmlab abtest report` prints).

A request's outcome is the value logged for it, 0 when none was logged. The unit of analysis is, by default,
the user, because users are what the server randomises (`assign.py` hashes the user): a user's repeat
requests are correlated, and treating them as independent understates the variance (Kohavi, Tang & Xu 2020,
"Trustworthy Online Controlled Experiments", ch. 18, on randomisation vs analysis units). With unit "user" a
user's requests are aggregated first: the user converts when any of its outcomes is > 0, its outcome is the
mean of its requests' outcomes, its latency the mean of its requests' latencies; users are ordered by their
first request. With unit "request" every request counts as an independent observation (converted when its
outcome is > 0). The sample-ratio-mismatch check always counts users per variant (as the live dashboard does).
The control is the first variant by name; every other variant is compared with it:
1. SRM first (`stats.srm_check`): when p < 0.001 the split is broken and the other results are suspect;
2. "conversion": two-proportion z-test; "outcome": Welch's t-test on the mean outcome (CUPED-adjusted when a
   pre-period covariate per user is given, `cuped.py`); "latency": Welch's t-test on mean latency;
3. each also gets the always-valid p-value of the mSPRT (`sequential.py`), looking after every unit;
4. Holm or Benjamini-Hochberg adjustment across all (variant, metric) tests;
5. the latency guardrail: a bootstrap of the p99 ratio of requests (`stats.latency_guardrail`), whatever the
   unit, since the 99th percentile that users feel is one of requests.
Whatever an older log holds, the report stands: outcomes that are not finite numbers within the store's range
(`store.OUTCOME_LIMIT`) are left out with a warning, as are assignments to variants the split does not name.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from llmlab.abtest.cuped import covariate_for, cuped_adjust
from llmlab.abtest.sequential import always_valid_test
from llmlab.abtest.stats import (
    SRM_ALPHA,
    latency_guardrail,
    multipletests,
    srm_check,
    two_proportion_ztest,
    welch_ttest,
)
from llmlab.abtest.store import OUTCOME_LIMIT
from llmlab.csvfile import csv_rows
from llmlab.errors import LlmlabError

METRICS = ("conversion", "outcome", "latency")
UNITS = ("user", "request")
UNIT_MEANING = {
    "user": "a user's requests aggregated: converted = any outcome > 0, outcome = its mean; no outcome = 0",
    "request": "each request independent: converted = outcome > 0; no outcome = 0",
}


def read_covariates(path: str | Path) -> dict[str, float]:
    """A CSV with columns user_id,value (a pre-period metric per user).

    Raises:
        LlmlabError: the file is missing, lacks the columns, or has a value that is not a number.
    """
    path = Path(path)
    values = {}
    for line, row in csv_rows(path):
        if not {"user_id", "value"} <= set(row):
            raise LlmlabError(f"{path}: expected a CSV with columns user_id,value")
        try:
            value = float(row["value"])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise LlmlabError(f"{path}: line {line}: value {row['value'][:30]!r} is not a finite number")
        values[row["user_id"]] = value
    if not values:
        raise LlmlabError(f"{path}: expected a CSV with columns user_id,value and at least one row")
    return values


def usable_events(
    split: dict[str, float], assignments: list[dict], outcomes: list[dict]
) -> tuple[list[dict], list[dict], list[str]]:
    """The events an analysis can use, and warnings naming what an (older) log held beyond them: outcomes
    that are not finite numbers within +-OUTCOME_LIMIT, and assignments to variants not in the split."""
    warnings = []
    known = [a for a in assignments if a["variant"] in split]
    if len(known) < len(assignments):
        warnings.append(f"{len(assignments) - len(known)} assignments to variants outside the split left out")
    good = [o for o in outcomes if _usable(o["value"])]
    if len(good) < len(outcomes):
        warnings.append(
            f"{len(outcomes) - len(good)} outcomes that are not finite numbers within +-{OUTCOME_LIMIT:g} left out"
        )
    return known, good, warnings


def _usable(value) -> bool:
    try:
        return abs(float(value)) <= OUTCOME_LIMIT  # False for NaN and inf
    except (TypeError, ValueError):
        return False


def request_table(assignments: list[dict], outcomes: list[dict]) -> dict[str, np.ndarray]:
    """Columns of the requests in the order they were assigned: variant, user, value (0 without outcome),
    converted (value > 0), has_outcome, latency_ms; each (N,)."""
    values = {o["request_id"]: float(o["value"]) for o in outcomes}
    rows = sorted(assignments, key=lambda a: a["created_at"])
    value = np.array([values.get(a["request_id"], 0.0) for a in rows])
    return {
        "variant": np.array([a["variant"] for a in rows], dtype=object),
        "user": np.array([a["user_id"] for a in rows], dtype=object),
        "value": value,
        "converted": value > 0,
        "has_outcome": np.array([a["request_id"] in values for a in rows], bool),
        "latency_ms": np.array([float(a["latency_ms"]) for a in rows]),
    }


def user_table(requests: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same columns with one row per (variant, user), ordered by the user's first request: value and
    latency_ms are the user's means, converted and has_outcome whether any request has them; each (U,).

    A user seen in two variants (a broken assignment) becomes two units, one per variant.
    """
    keys = np.array([f"{v}\0{u}" for v, u in zip(requests["variant"], requests["user"], strict=True)])
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)  # (U,), (N,)
    order = np.argsort(first)  # units by their first request
    count = np.bincount(inverse)  # (U,)

    def mean(column: str) -> np.ndarray:
        return (np.bincount(inverse, requests[column].astype(float)) / count)[order]

    return {
        "variant": requests["variant"][first][order],
        "user": requests["user"][first][order],
        "value": mean("value"),
        "converted": mean("converted") > 0,
        "has_outcome": mean("has_outcome") > 0,
        "latency_ms": mean("latency_ms"),
    }


def variant_summary(requests: dict[str, np.ndarray], units: dict[str, np.ndarray], variant: str) -> dict:
    """Counts of one variant's requests, and its conversion rate and mean outcome over the analysis units."""
    mine, unit_mine = requests["variant"] == variant, units["variant"] == variant
    latency = requests["latency_ms"][mine]
    n = int(unit_mine.sum())
    return {
        "assignments": int(mine.sum()),
        "users": len(set(requests["user"][mine])),
        "outcomes": int(requests["has_outcome"][mine].sum()),
        "units": n,
        "conversions": int(units["converted"][unit_mine].sum()),
        "conversion_rate": float(units["converted"][unit_mine].mean()) if n else None,
        "mean_outcome": float(units["value"][unit_mine].mean()) if n else None,
        "mean_latency_ms": float(latency.mean()) if mine.any() else None,
        "p99_latency_ms": float(np.quantile(latency, 0.99)) if mine.any() else None,
    }


def analyse_experiment(
    config: dict,
    assignments: list[dict],
    outcomes: list[dict],
    covariates: dict[str, float] | None = None,
    metrics: tuple[str, ...] = ("conversion", "outcome"),
    correction: str = "holm",
    alpha: float = 0.05,
    max_latency_increase: float = 0.10,
    seed: int = 0,
    unit: str = "user",
) -> dict:
    """Everything `llmlab abtest report` shows, as one JSON-ready dict.

    Args:
        config: the store's experiment record ({"name", "split", ...}).
        assignments, outcomes: the store's event lists (contracts: EventStore.assignments / outcomes).
        covariates: pre-period value per user for CUPED on "outcome", or None.
        metrics: a subset of METRICS.
        correction: "holm" or "bh", across all (variant, metric) tests.
        alpha: level of every test and interval.
        max_latency_increase: the guardrail's allowed relative p99 increase.
        seed: bootstrap seed of the guardrail.
        unit: "user" (a user's requests aggregated before the tests; the default, since users are what is
            randomised) or "request" (every request an independent observation).

    Returns:
        {"experiment", "unit", "control", "variants", "srm", "tests", "correction", "guardrail", "cuped",
         "warnings"}.

    Raises:
        LlmlabError: an unknown metric or unit, or a variant with fewer than 2 units.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise LlmlabError(f"--metrics: unknown {sorted(unknown)}; choose from {', '.join(METRICS)}")
    if unit not in UNITS:
        raise LlmlabError(f"--unit: unknown {unit!r}; choose from {', '.join(UNITS)}")
    assignments, outcomes, warnings = usable_events(config["split"], assignments, outcomes)
    requests = request_table(assignments, outcomes)
    table = user_table(requests) if unit == "user" else requests
    names = sorted(config["split"])
    variants = {v: variant_summary(requests, table, v) for v in names}
    empty = [v for v, s in variants.items() if s["units"] < 2]
    if empty:
        raise LlmlabError(f"experiment {config['name']!r}: variants {empty} have fewer than 2 {unit}s")
    srm = srm_check({v: s["users"] for v, s in variants.items()}, config["split"])
    control = names[0]
    tests = []
    cuped = {}
    guardrail = {}
    if srm["mismatch"]:
        warnings.append(
            f"SAMPLE RATIO MISMATCH: users per variant do not follow the split {config['split']} "
            f"(chi-square p={srm['pvalue']:.2g} < {SRM_ALPHA}); the assignment is broken, do not trust the tests"
        )
    for v in names[1:]:
        pair = (table["variant"] == control) | (table["variant"] == v)
        sub = {k: col[pair] for k, col in table.items()}
        is_b = sub["variant"] == v
        for metric in metrics:
            test, stream = _metric_test(metric, sub, is_b, variants, control, v, covariates, alpha, cuped)
            sequential = always_valid_test(is_b, stream, alpha=alpha)
            tests.append({"variant": v, "metric": metric, **test.to_dict(), "sequential": sequential})
        a, b = (requests["latency_ms"][requests["variant"] == name] for name in (control, v))
        guardrail[v] = latency_guardrail(a, b, max_latency_increase, alpha=alpha, seed=seed)
        if guardrail[v]["status"] == "flagged":
            warnings.append(
                f"GUARDRAIL: p99 latency of {v} is more than {max_latency_increase:.0%} above {control}"
            )
    if tests:
        reject, adjusted = multipletests([t["pvalue"] for t in tests], correction, alpha)
        for t, r, a in zip(tests, reject, adjusted, strict=True):
            t.update(pvalue_adjusted=float(a), significant=bool(r))
    return {
        "experiment": config["name"],
        "unit": unit,
        "control": control,
        "variants": variants,
        "srm": srm,
        "tests": tests,
        "correction": correction,
        "guardrail": guardrail,
        "cuped": cuped or None,
        "warnings": warnings,
    }


def format_analysis(r: dict, alpha: float) -> str:
    """The text `llmlab abtest report` prints for an `analyse_experiment` result."""
    lines = [*(f"WARNING: {w}" for w in r["warnings"])]
    srm = r["srm"]
    lines.append(
        f"SRM (users vs split): chi2={srm['statistic']:.3f} p={srm['pvalue']:.4g} {'MISMATCH' if srm['mismatch'] else 'ok'}"
    )
    lines.append(f"unit: {r['unit']} ({UNIT_MEANING[r['unit']]}); control: {r['control']}")
    lines.append(
        f"{'variant':<12}{'requests':>9}{'users':>8}{'outcomes':>9}{'conv.':>8}{'mean':>10}{'p99 ms':>9}"
    )
    for v, s in r["variants"].items():
        lines.append(
            f"{v:<12}{s['assignments']:>9}{s['users']:>8}{s['outcomes']:>9}{s['conversion_rate']:>8.4f}{s['mean_outcome']:>10.4g}{s['p99_latency_ms']:>9.1f}"
        )
    lines.append(f"conv. and mean are per {r['unit']}; p99 is of requests")
    lines.append(f"tests (B - {r['control']}; {r['correction']}-adjusted p; always-valid p from the mSPRT):")
    for t in r["tests"]:
        sig = "significant" if t["significant"] else "not significant"
        lines.append(
            f"  {t['variant']} {t['metric']:<10} {t['test']:<17} {t['estimate']:+.4g} [{t['ci_low']:+.4g}, {t['ci_high']:+.4g}] p={t['pvalue']:.4g} adj={t['pvalue_adjusted']:.4g} seq={t['sequential']['pvalue']:.4g} {sig}"
        )
    for v, c in (r["cuped"] or {}).items():
        lines.append(f"CUPED {v}: theta={c['theta']:.4g}, variance reduced by {c['variance_reduction']:.1%}")
    for v, g in r["guardrail"].items():
        lines.append(
            f"guardrail {v}: p99 {g['latency_b']:.1f} ms vs {g['latency_a']:.1f} ms ({g['increase']:+.1%}, one-sided {1 - alpha:.0%} bootstrap [{g['lower']:+.1%}, {g['upper']:+.1%}], limit +{g['max_increase']:.0%}): {g['status']}"
        )
    return "\n".join(lines)


def _metric_test(metric, sub, is_b, variants, control, v, covariates, alpha, cuped):
    """(TestResult, the per-unit values the sequential test streams) of one metric, B = v."""
    if metric == "conversion":
        a = variants[control]
        b = variants[v]
        test = two_proportion_ztest(a["conversions"], a["units"], b["conversions"], b["units"], alpha)
        return test, sub["converted"].astype(float)
    if metric == "latency":
        return welch_ttest(sub["latency_ms"][~is_b], sub["latency_ms"][is_b], alpha), sub["latency_ms"]
    y = sub["value"]
    if covariates is None:
        return welch_ttest(y[~is_b], y[is_b], alpha), y
    y_cv, theta, reduction = cuped_adjust(y, covariate_for(list(sub["user"]), covariates))
    cuped[v] = {"theta": theta, "variance_reduction": reduction}
    test = welch_ttest(y_cv[~is_b], y_cv[is_b], alpha)
    test.test = "Welch t (CUPED)"
    return test, y
