"""The statistics of an online experiment from its event log (what `llmlab abtest report` prints).

The unit of analysis is the request (one assignment): a request's outcome is the value logged for it, 0 when
none was logged; it "converts" when its outcome is > 0. Users are the unit of randomisation, so the
sample-ratio-mismatch check counts users per variant (as the live dashboard does); requests of one user are
treated as independent, which understates the variance when users repeat a lot. The control is the first
variant by name; every other variant is compared with it:
1. SRM first (`stats.srm_check`): when p < 0.001 the split is broken and the other results are suspect;
2. "conversion": two-proportion z-test; "outcome": Welch's t-test on the mean outcome (CUPED-adjusted when a
   pre-period covariate per user is given, `cuped.py`); "latency": Welch's t-test on mean latency;
3. each also gets the always-valid p-value of the mSPRT (`sequential.py`), looking after every request;
4. Holm or Benjamini-Hochberg adjustment across all (variant, metric) tests;
5. the latency guardrail: a bootstrap of the p99 ratio (`stats.latency_guardrail`).
"""

from __future__ import annotations

import csv
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
from llmlab.errors import LlmlabError

METRICS = ("conversion", "outcome", "latency")


def read_covariates(path: str | Path) -> dict[str, float]:
    """A CSV with columns user_id,value (a pre-period metric per user).

    Raises:
        LlmlabError: the file is missing, lacks the columns, or has a value that is not a number.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read covariates: {e.strerror}") from None
    if not rows or not {"user_id", "value"} <= set(rows[0]):
        raise LlmlabError(f"{path}: expected a CSV with columns user_id,value")
    try:
        return {r["user_id"]: float(r["value"]) for r in rows}
    except (TypeError, ValueError):
        raise LlmlabError(f"{path}: a value is not a number") from None


def request_table(assignments: list[dict], outcomes: list[dict]) -> dict[str, np.ndarray]:
    """Columns of the requests in the order they were assigned: variant, user, value (0 without outcome),
    has_outcome, latency_ms; each (N,)."""
    values = {o["request_id"]: float(o["value"]) for o in outcomes}
    rows = sorted(assignments, key=lambda a: a["created_at"])
    return {
        "variant": np.array([a["variant"] for a in rows], dtype=object),
        "user": np.array([a["user_id"] for a in rows], dtype=object),
        "value": np.array([values.get(a["request_id"], 0.0) for a in rows]),
        "has_outcome": np.array([a["request_id"] in values for a in rows], bool),
        "latency_ms": np.array([float(a["latency_ms"]) for a in rows]),
    }


def variant_summary(table: dict[str, np.ndarray], variant: str) -> dict:
    """Counts and means of one variant's requests."""
    mine = table["variant"] == variant
    values, latency = table["value"][mine], table["latency_ms"][mine]
    n = int(mine.sum())
    return {
        "assignments": n,
        "users": len(set(table["user"][mine])),
        "outcomes": int(table["has_outcome"][mine].sum()),
        "conversions": int((values > 0).sum()),
        "conversion_rate": float((values > 0).mean()) if n else None,
        "mean_outcome": float(values.mean()) if n else None,
        "mean_latency_ms": float(latency.mean()) if n else None,
        "p99_latency_ms": float(np.quantile(latency, 0.99)) if n else None,
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

    Returns:
        {"experiment", "unit", "control", "variants", "srm", "tests", "correction", "guardrail", "cuped",
         "warnings"}.

    Raises:
        LlmlabError: an unknown metric, or a variant without requests.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise LlmlabError(f"--metrics: unknown {sorted(unknown)}; choose from {', '.join(METRICS)}")
    table = request_table(assignments, outcomes)
    names = sorted(config["split"])
    variants = {v: variant_summary(table, v) for v in names}
    empty = [v for v, s in variants.items() if s["assignments"] < 2]
    if empty:
        raise LlmlabError(f"experiment {config['name']!r}: variants {empty} have fewer than 2 requests")
    srm = srm_check({v: s["users"] for v, s in variants.items()}, config["split"])
    control, warnings, tests, cuped, guardrail = names[0], [], [], {}, {}
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
        guardrail[v] = latency_guardrail(
            sub["latency_ms"][~is_b], sub["latency_ms"][is_b], max_latency_increase, alpha=alpha, seed=seed
        )
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
        "unit": "request",
        "control": control,
        "variants": variants,
        "srm": srm,
        "tests": tests,
        "correction": correction,
        "guardrail": guardrail,
        "cuped": cuped or None,
        "warnings": warnings,
    }


def _metric_test(metric, sub, is_b, variants, control, v, covariates, alpha, cuped):
    """(TestResult, the per-request values the sequential test streams) of one metric, B = v."""
    if metric == "conversion":
        a, b = variants[control], variants[v]
        test = two_proportion_ztest(
            a["conversions"], a["assignments"], b["conversions"], b["assignments"], alpha
        )
        return test, (sub["value"] > 0).astype(float)
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
