"""The result of a `llmlab tune` study: OUT/best.json, OUT/report.html and the lines printed on stdout.

Best trial against the default settings (trial 0), parameter importance by fANOVA (Hutter et al. 2014,
optuna.importance.FanovaImportanceEvaluator, seeded), and Optuna's optimisation-history plot (matplotlib
backend, `optuna.visualization.matplotlib.plot_optimization_history`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_json


def summarise(study, config: dict, where: str) -> dict:
    """The study's result: best and default trials, counts and parameter importance (written as best.json)."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise LlmlabError(f"{where}: study {study.study_name!r} has no complete trial yet")
    default = next((t for t in complete if t.user_attrs.get("default")), None)
    best = study.best_trial
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    return {
        "study": study.study_name,
        "objective": config["objective"],
        "direction": study.direction.name.lower(),
        "best_value": best.value,
        "best_params": best.params,
        "best_trial": best.number,
        "default_value": default.value if default else None,
        "default_params": default.params if default else None,
        "trials": {state.lower(): states.count(state) for state in sorted(set(states))},
        "importance": _importance(study),
        "config": config,
    }


def _importance(study) -> dict[str, float]:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len({t.value for t in complete}) < 2:  # nothing to explain (fANOVA would split it evenly)
        return {}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError):  # fewer than two complete trials, or nothing varied
        return {}


def write_outputs(study, summary: dict, out: Path) -> None:
    """OUT/best.json (atomic) and OUT/report.html: best parameters, importance, optimisation history."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna

    from llmlab.report.html import Report

    atomic_write_json(out / "best.json", summary)
    report = Report(f"llmlab tune: study {summary['study']}")
    report.section("Best trial against the default settings")
    default = summary["default_value"] if summary["default_value"] is not None else "-"
    best = (f"best (trial {summary['best_trial']})", summary["best_value"])
    report.table(["settings", "dev score"], [("default (trial 0)", default), best])
    report.table(
        ["parameter", "default", "best"],
        [(k, (summary["default_params"] or {}).get(k, "-"), v) for k, v in summary["best_params"].items()],
    )
    report.section("Parameter importance (fANOVA)")
    report.table(["parameter", "importance"], list(summary["importance"].items()))
    report.section("Optimisation history")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots as experimental
        axes = optuna.visualization.matplotlib.plot_optimization_history(study)
    report.figure(axes.figure, "Dev score of each trial and the best so far.")
    report.section("Trials")
    report.table(["trial", "state", "value", "parameters", "note"], [_trial_row(t) for t in study.trials])
    report.save(out / "report.html")


def _trial_row(trial) -> tuple:
    note = trial.user_attrs.get("skipped") or ("default settings" if trial.user_attrs.get("default") else "")
    value = trial.value if trial.value is not None else "-"
    return trial.number, trial.state.name, value, _params(trial.params), note


def _params(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def format_summary(summary: dict, out: Path) -> str:
    """The lines `llmlab tune` prints: best against default, the best parameters, importance, the files."""
    default = summary["default_value"]
    return "\n".join(
        [
            f"best {summary['best_value']:.4f} (trial {summary['best_trial']}), default settings "
            + (f"{default:.4f} (trial 0)" if default is not None else "not evaluated"),
            "best parameters: " + _params(summary["best_params"]),
            "importance: " + (", ".join(f"{k} {v:.2f}" for k, v in summary["importance"].items()) or "-"),
            "trials: " + ", ".join(f"{n} {state}" for state, n in summary["trials"].items()),
            f"best.json: {out / 'best.json'}  report: {out / 'report.html'}",
        ]
    )
