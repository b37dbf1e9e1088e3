"""The `llmlab abtest` command group: compare two models offline, report on an online experiment, plan one,
and simulate: users with a known true effect against a running server, or (in process) why peeking needs
sequential tests. `register` adds the group to the main app (see llmlab.cli)."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from llmlab.errors import LlmlabError, mask_secrets
from llmlab.validate import check_output

abtest_app = typer.Typer(help="A/B tests of models: offline paired tests, online experiment statistics.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
ReportFile = Annotated[Path | None, typer.Option("--report", help="Also write an HTML report here.")]
Alpha = Annotated[
    float, typer.Option(min=1e-6, max=0.5, help="Significance level (intervals are 1 - alpha).")
]
Seed = Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Random seed.")]
RATE_RANGE = {"min": 1e-6, "max": 1 - 1e-6}  # a conversion rate strictly inside (0, 1)


class Correction(str, Enum):
    holm = "holm"
    bh = "bh"


class Unit(str, Enum):
    user = "user"
    request = "request"


UnitOption = Annotated[
    Unit,
    typer.Option(
        help="Unit of analysis. user: a user's requests are aggregated first (converted = any outcome > 0, "
        "outcome = the user's mean), as users are what is randomised; request: each request independent "
        "(narrower, overconfident intervals when users return)."
    ),
]


def register(app: typer.Typer) -> None:
    """Add `abtest` and its subcommands to `app`."""
    app.add_typer(abtest_app, name="abtest")


@abtest_app.command("compare")
def compare(
    model_a: Annotated[
        Path, typer.Argument(help="Model folder A (the reference; FOLDER1,FOLDER2 is an ensemble).")
    ],
    model_b: Annotated[
        Path, typer.Argument(help="Model folder B (the candidate; FOLDER1,FOLDER2 is an ensemble).")
    ],
    data: Annotated[Path, typer.Argument(help="Labelled CSV (text,label) or JSONL; the same rows for both.")],
    json_out: JsonFlag = False,
    report: ReportFile = None,
    n_boot: Annotated[int, typer.Option(min=1, max=10**6, help="Bootstrap resamples.")] = 2000,
    n_perm: Annotated[int, typer.Option(min=1, max=10**7, help="Permutations.")] = 10000,
    alpha: Alpha = 0.05,
    seed: Seed = 0,
) -> None:
    """Paired comparison of two models on one data set: McNemar, bootstrap CIs, DeLong, permutation test."""
    from llmlab.abtest.compare_models import compare as compare_models

    if report is not None:
        check_output(report, [*str(model_a).split(","), *str(model_b).split(","), data])
    result = compare_models(model_a, model_b, data, n_boot, n_perm, alpha, seed)
    names = result["names"]
    _emit(
        result,
        _format_compare(result, alpha),
        json_out,
        report,
        f"Offline comparison: {names[0]} vs {names[1]}",
    )


@abtest_app.command("report")
def report_command(
    store: Annotated[str, typer.Option(help="Event log: sqlite:///file.db, a path, or postgresql://...")],
    experiment: Annotated[str, typer.Option(help="Experiment name.")],
    json_out: JsonFlag = False,
    covariate: Annotated[
        Path | None, typer.Option(help="CSV user_id,value: a pre-period metric for CUPED on 'outcome'.")
    ] = None,
    metrics: Annotated[
        list[str] | None, typer.Option(help="conversion, outcome, latency (repeat or comma-separate).")
    ] = None,
    correction: Annotated[Correction, typer.Option(help="Multiple-testing adjustment.")] = Correction.holm,
    max_latency_increase: Annotated[
        float,
        typer.Option(
            min=0, max=1000, help="Guardrail: allowed relative increase of p99 latency (0.1 = 10%)."
        ),
    ] = 0.10,
    unit: UnitOption = Unit.user,
    alpha: Alpha = 0.05,
    report: ReportFile = None,
) -> None:
    """Statistics of an online experiment: SRM check, z / Welch tests, always-valid p-values, guardrail.

    Tests are per user by default (--unit user); the latency guardrail is on the p99 of requests.
    """
    from llmlab.abtest.analysis import analyse_experiment, format_analysis, read_covariates
    from llmlab.abtest.store import open_store

    chosen = tuple(m for v in (metrics or ["conversion,outcome"]) for m in v.split(",") if m)
    if report is not None:
        check_output(report, [covariate, _store_path(store)])
    covariates = read_covariates(covariate) if covariate is not None else None
    log = open_store(store, create=False)  # a typo in --store is an error, not a new empty log
    try:
        config = log.experiment(experiment)
        assignments = log.assignments(experiment)
        outcomes = log.outcomes(experiment)
    finally:
        log.close()
    result = analyse_experiment(
        config,
        assignments,
        outcomes,
        covariates,
        chosen,
        correction.value,
        alpha,
        max_latency_increase,
        unit=unit.value,
    )
    for warning in result["warnings"]:
        typer.echo(f"WARNING: {warning}", err=True)
    _emit(result, format_analysis(result, alpha), json_out, report, f"Experiment {experiment}")


@abtest_app.command("plan")
def plan_command(
    baseline: Annotated[float, typer.Option(**RATE_RANGE, help="Conversion rate of A (the control).")],
    mde: Annotated[
        float,
        typer.Option(min=-100, max=100, help="Minimum detectable effect, absolute (see --relative)."),
    ],
    relative: Annotated[bool, typer.Option(help="Read --mde as relative to the baseline.")] = False,
    alpha: Alpha = 0.05,
    power: Annotated[float, typer.Option(min=0.01, max=0.9999, help="Desired power.")] = 0.8,
    ratio: Annotated[float, typer.Option(min=0.01, max=100, help="Users in B per user in A.")] = 1.0,
    n: Annotated[
        int | None, typer.Option(min=2, max=10**12, help="Also give the power with this many users in A.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Users per variant for a two-proportion test (Cohen's h and pooled-variance formulas), or power for n."""
    from llmlab.abtest.power import plan

    out = plan(baseline, mde, relative, alpha, power, ratio, n)
    if json_out:
        print(_dumps(out))
        return
    print(
        f"A {out['p_a']:.4g} -> B {out['p_b']:.4g} (Cohen's h {out['cohens_h']:.4f}), two-sided alpha {alpha}"
    )
    print(f"users in A for power {power} (B gets {ratio:g} x):")
    print(f"  pooled-variance formula (Fleiss): {out['n_pooled']:>10,}  total {out['total_pooled']:,}")
    print(f"  Cohen's h (NormalIndPower):       {out['n_cohens_h']:>10,}  total {out['total_cohens_h']:,}")
    if n is not None:
        print(
            f"power with {n:,} users in A: pooled {out['power_pooled']:.4f}, Cohen's h {out['power_cohens_h']:.4f}"
        )


@abtest_app.command("simulate")
def simulate_command(
    url: Annotated[
        str | None, typer.Option(help="A running server (http://HOST:PORT): simulate users against it.")
    ] = None,
    rate: Annotated[
        list[str] | None, typer.Option(help="With --url: VARIANT=TRUE_RATE per request; repeat per variant.")
    ] = None,
    users: Annotated[int, typer.Option(min=1, max=10**7, help="With --url: simulated users.")] = 1000,
    visits: Annotated[int, typer.Option(min=1, max=10**4, help="With --url: requests per user.")] = 1,
    clients: Annotated[int, typer.Option(min=1, max=1024, help="With --url: concurrent connections.")] = 8,
    store: Annotated[
        str | None, typer.Option(help="With --url: the server's event log, analysed as `report` does.")
    ] = None,
    unit: UnitOption = Unit.user,
    experiments: Annotated[
        int, typer.Option(min=1, max=10**7, help="Without --url: simulated experiments per scenario.")
    ] = 1000,
    peeks: Annotated[
        int, typer.Option(min=1, max=10**4, help="Without --url: looks at the data, one after every batch.")
    ] = 20,
    batch: Annotated[
        int, typer.Option(min=1, max=10**7, help="Without --url: users per variant per batch.")
    ] = 500,
    baseline: Annotated[
        float, typer.Option(**RATE_RANGE, help="Without --url: true conversion rate of A.")
    ] = 0.10,
    effect: Annotated[
        float, typer.Option(min=-1, max=1, help="Without --url: true absolute effect of B.")
    ] = 0.01,
    tau: Annotated[
        float | None,
        typer.Option(min=1e-9, max=100, help="mSPRT mixing sd; default 0.1 x sqrt(p (1 - p))."),
    ] = None,
    alpha: Alpha = 0.05,
    seed: Seed = 0,
    json_out: JsonFlag = False,
    report: ReportFile = None,
) -> None:
    """Simulated experiments with a known true effect.

    With --url: simulated users send POST /predict to a running server (`llmlab serve`) and a seeded Bernoulli outcome with their variant's --rate to POST /feedback; then the experiment is analysed as `llmlab abtest report` does (from --store, else from the events the server acknowledged, per --unit) and the observed rates and effects are compared with the true ones.

    Without --url (in process): A/A and A/B experiments peeked at after every batch, showing the false-positive rate and power of fixed-horizon vs sequential tests.
    """
    if report is not None:
        check_output(report, [_store_path(store)] if store else [])
    if url is not None:
        _simulate_live(url, rate or [], users, visits, clients, store, unit, alpha, seed, json_out, report)
        return
    from llmlab.abtest.simulate import format_peeking, peeking_figure, simulate_peeking

    if not 0 < baseline + effect < 1:
        raise LlmlabError(f"--baseline {baseline} + --effect {effect} must lie in (0, 1)")
    args = dict(n_experiments=experiments, n_peeks=peeks, batch=batch, alpha=alpha, tau=tau, seed=seed)
    null = simulate_peeking(baseline, baseline, **args)
    alt = simulate_peeking(baseline, baseline + effect, **args)
    caption = "Share of experiments rejected against the number of peeks."
    figure = (peeking_figure(null, alt), caption) if report is not None else None
    title = "Peeking: fixed-horizon vs sequential tests"
    _emit({"aa": null, "ab": alt}, format_peeking(null, alt), json_out, report, title, figure)


def _simulate_live(url, rate, users, visits, clients, store, unit, alpha, seed, json_out, report) -> None:
    from llmlab.abtest.analysis import format_analysis
    from llmlab.abtest.simulate_users import format_truth, parse_rates, simulate_against_server

    if min(users, visits, clients) < 1:
        raise LlmlabError(f"--users {users}, --visits {visits}, --clients {clients}: each must be at least 1")
    result = simulate_against_server(
        url, parse_rates(rate), users, visits, clients, store, unit.value, alpha, seed
    )
    analysis = result["analysis"]
    for warning in analysis["warnings"]:
        typer.echo(f"WARNING: {warning}", err=True)
    text = f"{format_analysis(analysis, alpha)}\n{format_truth(result)}"
    _emit(result, text, json_out, report, f"Simulated users against {mask_secrets(url)}")


def _store_path(store: str) -> str | None:
    """The file of an SQLite store (an input the report may not overwrite); None for PostgreSQL."""
    return None if "://" in store and not store.startswith("sqlite:///") else store.removeprefix("sqlite:///")


def _format_compare(r: dict, alpha: float) -> str:
    a, b = r["names"]
    level = f"{1 - alpha:.0%} CI"
    lines = [
        f"{a} (A) vs {b} (B) on {r['n']} rows; differences are B - A",
        f"{'metric':<10}{'A':>9}{'B':>9}{'B-A':>9}  {level}",
    ]
    for m, s in r["bootstrap"].items():
        lines.append(
            f"{m:<10}{s['a']:>9.4f}{s['b']:>9.4f}{s['diff']:>+9.4f}  [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}]"
        )
    mc = r["mcnemar"]
    e = r["effect"]
    lines.append(
        f"McNemar: only A right {mc['table'][0][1]}, only B right {mc['table'][1][0]}; exact p={mc['exact_pvalue']:.4g}, chi2 (corrected) p={mc['chi2_pvalue']:.4g}"
    )
    if r["delong"]:
        d = r["delong"]
        lines.append(
            f"DeLong AUC: B-A {d['estimate']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}], z={d['statistic']:.3f}, p={d['pvalue']:.4g}"
        )
    lines.append(f"permutation ({r['permutation']['n_perm']} swaps): p={r['permutation']['pvalue']:.4g}")
    odds = (
        f", discordant odds ratio {e['odds_ratio']:.3g} [{e['odds_ratio_ci'][0]:.3g}, {e['odds_ratio_ci'][1]:.3g}]"
        if e["odds_ratio"] is not None
        else ""
    )
    lines.append(f"effect: Cohen's h {e['cohens_h']:+.4f}{odds}")
    return "\n".join([*lines, r["verdict"]])


def _dumps(obj) -> str:
    """Indented JSON in which non-finite numbers (an AUC without positives, an odds ratio of n/0) are null."""

    def finite(o):
        if isinstance(o, dict):
            return {k: finite(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [finite(v) for v in o]
        return None if isinstance(o, float) and not math.isfinite(o) else o

    return json.dumps(finite(obj), indent=2, allow_nan=False)


def _emit(result: dict, text: str, json_out: bool, report: Path | None, title: str, figure=None) -> None:
    """Print the result (text or JSON) and, when asked, write the text (and a figure) as an HTML report."""
    print(_dumps(result) if json_out else text)
    if report is not None:
        from llmlab.report.html import Report

        page = Report(title)
        page.pre(text)
        if figure is not None:
            page.figure(*figure)
        page.save(report)
