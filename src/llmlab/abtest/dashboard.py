"""The live dashboard of an online experiment: the `/stats` numbers and the page that shows them.

Per variant: users, assignments, outcomes, the mean outcome (the conversion rate for 0/1 outcomes) with a
normal-approximation 95% interval, and the difference from the control (the first variant by name) with a
Welch interval; plus the sample-ratio-mismatch check (Pearson chi-square of users per variant against the
split, as in Fabijan et al., "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD 2019).
These are the quick live figures; `llmlab abtest report` does the careful analysis from the same log.
Whatever an old log holds, `/stats` answers 200 with finite numbers or null: outcomes beyond the store's
range are left out and reported in "warnings".
The page is plain HTML with inline JavaScript that fetches `/stats` every few seconds (no CDN, works offline).
"""

from __future__ import annotations

import html
import math

from scipy.stats import chisquare

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal


def _moments(row: dict) -> tuple[float | None, float | None]:
    """Mean and sample variance of a variant's outcomes (None when there are too few)."""
    n = row["outcomes"]
    if n == 0:
        return None, None
    mean = row["total"] / n
    if n < 2:
        return mean, None
    return mean, max(row["total_sq"] - n * mean * mean, 0.0) / (n - 1)


def _interval(centre: float | None, variance_of_centre: float | None) -> list[float] | None:
    if centre is None or variance_of_centre is None:
        return None
    half = Z95 * math.sqrt(variance_of_centre)
    return [centre - half, centre + half]


def stats_payload(experiment: str, split: dict[str, float], summary: dict[str, dict]) -> dict:
    """The JSON `/stats` answers.

    Args:
        experiment: its name.
        split: variant -> planned share of users.
        summary: `EventStore.summary(experiment)`: per variant assignments, users, outcomes, total, total_sq.

    Returns:
        {"experiment", "control", "srm_p_value", "variants": {name: {"share", "users", "assignments",
        "outcomes", "mean_outcome", "ci95", "difference", "difference_ci95"}}, "warnings"}.
    """
    empty = {
        "assignments": 0,
        "users": 0,
        "outcomes": 0,
        "total": 0.0,
        "total_sq": 0.0,
        "skipped_outcomes": 0,
    }
    rows = {name: summary.get(name, empty) for name in sorted(split)}
    control = next(iter(rows))
    c_mean, c_var = _moments(rows[control])
    variants = {}
    for name, row in rows.items():
        mean, var = _moments(row)
        se2 = None if var is None else var / row["outcomes"]
        diff = None if mean is None or c_mean is None or name == control else mean - c_mean
        diff_se2 = (
            None if diff is None or var is None or c_var is None else se2 + c_var / rows[control]["outcomes"]
        )
        variants[name] = {
            "share": split[name],
            **{key: row[key] for key in ("users", "assignments", "outcomes")},
            "mean_outcome": mean,
            "ci95": _interval(mean, se2),
            "difference": diff,
            "difference_ci95": _interval(diff, diff_se2),
        }
    users = {name: row["users"] for name, row in rows.items()}
    skipped = sum(row.get("skipped_outcomes") or 0 for row in rows.values())
    warnings = [f"{skipped} logged outcomes are not finite numbers within range; left out"] if skipped else []
    return _finite(
        {
            "experiment": experiment,
            "control": control,
            "srm_p_value": srm_p_value(users, split),
            "variants": variants,
            "warnings": warnings,
        }
    )


def _finite(obj):
    """`obj` with every NaN or infinite float as None, so that the JSON is valid whatever the log holds."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def srm_p_value(users: dict[str, int], split: dict[str, float]) -> float | None:
    """Chi-square p-value of the users per variant against the planned split (None before any user)."""
    total = sum(users.values())
    if total == 0:
        return None
    names = sorted(split)
    return float(chisquare([users.get(n, 0) for n in names], [split[n] * total for n in names]).pvalue)


def render_page(experiment: str) -> str:
    """The dashboard's HTML: a table that fills itself from `/stats` and refreshes every 3 seconds."""
    return PAGE.replace("__EXPERIMENT__", html.escape(experiment))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A/B: __EXPERIMENT__</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: .35em .9em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, td:last-child { text-align: left; }
td:last-child { width: 200px; }
.bar { display: inline-block; height: .8em; background: #4a7ebb; }
#srm.bad { color: #b00; font-weight: bold; }
</style></head>
<body>
<h1>Experiment <code>__EXPERIMENT__</code></h1>
<p>Live figures from the event log, refreshed every 3 s. Last update: <span id="updated">never</span>.</p>
<table id="variants">
<thead><tr><th>variant</th><th>planned share</th><th>users</th><th>assignments</th><th>outcomes</th>
<th>mean outcome</th><th>95% interval</th><th>difference vs control</th><th>95% interval</th><th></th></tr></thead>
<tbody></tbody></table>
<p>Sample ratio check (users per variant vs the split): p = <span id="srm">-</span></p>
<script>
function fmt(x, digits) { return x === null ? "-" : Number(x).toFixed(digits); }
function range(ci) { return ci === null ? "-" : "[" + fmt(ci[0], 4) + ", " + fmt(ci[1], 4) + "]"; }
function render(stats) {
  const body = document.querySelector("#variants tbody");
  body.replaceChildren();
  for (const [name, v] of Object.entries(stats.variants)) {
    const row = body.insertRow();
    row.dataset.variant = name;
    const cells = [name + (name === stats.control ? " (control)" : ""), fmt(v.share, 3), v.users,
      v.assignments, v.outcomes, fmt(v.mean_outcome, 4), range(v.ci95), fmt(v.difference, 4),
      range(v.difference_ci95)];
    for (const text of cells) { row.insertCell().textContent = String(text); }
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = (v.mean_outcome === null ? 0 : Math.max(0, Math.min(1, v.mean_outcome)) * 200) + "px";
    row.insertCell().appendChild(bar);
  }
  const srm = document.getElementById("srm");
  srm.textContent = fmt(stats.srm_p_value, 4);
  srm.className = stats.srm_p_value !== null && stats.srm_p_value < 0.001 ? "bad" : "";
  document.getElementById("updated").textContent = new Date().toLocaleTimeString();
}
function refresh() { fetch("stats").then(r => r.json()).then(render).catch(e => console.error(e)); }
refresh();
setInterval(refresh, 3000);
</script>
</body></html>
"""
