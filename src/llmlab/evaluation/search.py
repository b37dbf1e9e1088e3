"""Hyperparameter search (`llmlab tune`) on Optuna: grid, random and TPE samplers, median / Hyperband pruning.

References: Optuna (Akiba et al. 2019; optuna.samplers.GridSampler/RandomSampler/TPESampler, optuna.pruners.
MedianPruner/HyperbandPruner), TPE (Bergstra et al. 2011), Hyperband (Li et al. 2018), fANOVA parameter
importance (Hutter et al. 2014, optuna.importance.FanovaImportanceEvaluator).

A study lives in an Optuna storage (SQLite under the output folder by default; any RDB URL, e.g. PostgreSQL,
for workers on many machines). Its whole configuration - objective, fixed settings, search space, sampler,
pruner, budget - is stored as a study user attribute, so `--worker` processes read it instead of repeating it
and cannot drift. The default settings are enqueued as trial 0, so "better than default" is measured within
the study.

Deliberate additions to Optuna: an admission step at the start of each trial, taken in trial-number order
(each trial waits for the earlier ones to be admitted): a trial beyond the budget, or (grid) one whose point
an earlier admitted trial already holds, is refused before any work and recorded as FAIL with a `skipped`
user attribute. Optuna's GridSampler alone can hand one point to two racing workers, and `n_trials` alone
counts per process, not per study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError, mask_secrets, require_extra
from llmlab.evaluation.search_objectives import OBJECTIVES, Objective
from llmlab.evaluation.search_report import summarise, write_outputs
from llmlab.evaluation.search_space import ParamSpec, include_defaults, space_from_dict, space_to_dict
from llmlab.io import exclusive_lock
from llmlab.progress import progress_bar

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "hyperband")
CONFIG_ATTR = "llmlab_tune"
ADMIT_WAIT_S = 60.0  # a crashed worker's unadmitted trial stops holding the queue after this


@dataclass
class TuneConfig:
    """Everything that defines a study; stored in it so that every worker runs the same search.

    objective: a key of OBJECTIVES; settings: its fixed settings (data, base model, steps); space: what is
    searched; trials: the study's budget of trials that run (complete or pruned), the default trial included.
    """

    objective: str
    settings: dict[str, Any]
    space: dict[str, ParamSpec]
    out: str
    sampler: str = "tpe"
    pruner: str = "median"
    trials: int = 20
    seed: int = 0
    grid_points: int = 3

    def __post_init__(self) -> None:
        for option, value, allowed in (
            ("--sampler", self.sampler, SAMPLERS),
            ("--pruner", self.pruner, PRUNERS),
        ):
            if value not in allowed:
                raise LlmlabError(f"{option} {value!r}: expected one of {', '.join(allowed)}")
        if self.objective not in OBJECTIVES:
            raise LlmlabError(f"--objective {self.objective!r}: expected one of {', '.join(OBJECTIVES)}")
        if self.trials < 1 or self.grid_points < 2:
            raise LlmlabError(f"--trials {self.trials}, --grid-points {self.grid_points}: need >= 1 and >= 2")

    def to_dict(self) -> dict:
        return asdict(self) | {"space": space_to_dict(self.space)}

    @classmethod
    def from_dict(cls, d: dict) -> TuneConfig:
        return cls(**(d | {"space": space_from_dict(d["space"])}))


class _Skipped(Exception):
    """A trial refused at admission (beyond the budget, or a grid point already taken)."""


def open_storage(url: str):
    """An Optuna RDB storage for `url`, with a one-line error when it cannot be reached.

    SQLite gets a 30 s lock timeout (several processes share the file); "postgresql://" uses psycopg 3.
    Heartbeats mark the trials of a crashed worker as failed.

    Raises:
        LlmlabError: naming the URL (password hidden) when the storage cannot be opened.
    """
    import optuna

    shown = shown_url(url)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).parent.is_dir():
        raise LlmlabError(f"{shown}: cannot open the study storage: its folder does not exist")
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    connect_args = {"timeout": 30} if url.startswith("sqlite") else {"connect_timeout": 10}
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no per-trial log lines (skipped trials are FAIL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": connect_args}, heartbeat_interval=30, grace_period=120
            )
    except Exception as e:  # sqlalchemy / driver errors of every kind: unreachable, refused, no driver
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LlmlabError(f"{shown}: cannot open the study storage: {reason}") from None


def shown_url(url: str) -> str:
    """The storage URL as messages show it: the password hidden.

    Raises:
        LlmlabError: not a database URL.
    """
    import sqlalchemy

    try:
        sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise LlmlabError(  # not echoed: a garbled URL may still hold a password
            "--storage: not a database URL (e.g. sqlite:///study.db or postgresql://USER@HOST/DB)"
        ) from None
    return mask_secrets(url)


def make_sampler(config: TuneConfig, seed: int):
    """The Optuna sampler named by the config, seeded (a single-worker study is reproducible)."""
    import optuna

    if config.sampler == "grid":
        grid = {name: spec.grid(config.grid_points) for name, spec in config.space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, config.trials // 4)))


def make_pruner(config: TuneConfig):
    """Median pruning (stop a trial below the median of earlier trials at the same step) or Hyperband."""
    import optuna

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def create_study(config: TuneConfig, storage_url: str, name: str):
    """Create the study (or reopen it with the same config), enqueueing the default settings as trial 0.

    Returns:
        (study, config with the defaults added to its choice lists, objective).

    Raises:
        LlmlabError: the storage cannot be opened, or a study of this name exists with another config.
    """
    import optuna

    storage = open_storage(storage_url)
    objective = OBJECTIVES[config.objective](config.settings)
    config = dataclasses.replace(config, space=include_defaults(config.space, objective.defaults))
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=objective.direction,
        load_if_exists=True,
        sampler=make_sampler(config, config.seed),
        pruner=make_pruner(config),
    )
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, config.to_dict())
        defaults = {name: objective.defaults[name] for name in config.space}
        study.enqueue_trial(defaults, user_attrs={"default": True})
    elif stored != config.to_dict():
        raise LlmlabError(
            f"{shown_url(storage_url)}: study {name!r} exists with other settings (--worker joins it; or --study)"
        )
    return study, config, objective


def join_study(storage_url: str, name: str, seed: int | None = None):
    """Open an existing study with its stored config; a worker samples with its own seed (grid: the shared one).

    Raises:
        LlmlabError: the storage cannot be opened, or it holds no llmlab study of this name.
    """
    import optuna

    storage = open_storage(storage_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise LlmlabError(
            f"{shown_url(storage_url)}: no study named {name!r} (start it with `llmlab tune` first)"
        ) from None
    if CONFIG_ATTR not in study.user_attrs:
        raise LlmlabError(f"{shown_url(storage_url)}: study {name!r} was not made by `llmlab tune`")
    config = TuneConfig.from_dict(study.user_attrs[CONFIG_ATTR])
    # GridSampler numbers its shuffled grid with the seed: every worker must share it; others must not.
    own = config.seed + 1 + (os.getpid() if seed is None else seed)
    study.sampler = make_sampler(config, config.seed if config.sampler == "grid" else own)
    study.pruner = make_pruner(config)
    return study, config, OBJECTIVES[config.objective](config.settings)


def run_trials(study, config: TuneConfig, objective: Objective, progress: bool = True) -> None:
    """Run trials in this process until the study's budget is spent (other workers may share it)."""
    import optuna

    def counted() -> int:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(study.get_trials(deepcopy=False, states=states))

    with progress_bar(f"tuning ({config.sampler})", enabled=progress) as bar:

        def after(study, trial) -> None:
            bar(counted(), config.trials)
            if counted() >= config.trials:
                study.stop()

        if counted() < config.trials:
            study.optimize(lambda t: _run_trial(t, config, objective), catch=(_Skipped,), callbacks=[after])


def _run_trial(trial, config: TuneConfig, objective: Objective) -> float:
    import optuna

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Fixed parameter")  # the defaults (trial 0) may lie off the space
        params = objective.defaults | {name: spec.suggest(trial) for name, spec in config.space.items()}
    _admit(trial, config)
    trial_dir = Path(config.out) / "trials" / str(trial.number)
    trial_dir.mkdir(parents=True, exist_ok=True)

    def report(step: int, value: float) -> None:
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"trial {trial.number} pruned at step {step} ({value:.4g})")

    return objective.evaluate(params, trial_dir, report)


def _admit(trial, config: TuneConfig) -> None:
    """Admit the trial or raise _Skipped, after every earlier trial has been decided (see the module doc)."""
    holding = [t for t in _decided_earlier(trial) if t.state.name != "FAIL" and "skipped" not in t.user_attrs]
    reason = None
    if len(holding) >= config.trials:
        reason = f"budget of {config.trials} trials spent"
        trial.study.stop()
    elif config.sampler == "grid":
        same = [t.number for t in holding if t.params == trial.params]
        reason = f"duplicate of trial {same[0]}" if same else None
    if reason:
        trial.set_user_attr("skipped", reason)
        raise _Skipped(f"trial {trial.number} skipped: {reason}")
    trial.set_user_attr("admitted", True)


def _decided_earlier(trial) -> list:
    """The earlier trials, once none is still waiting for admission (or after ADMIT_WAIT_S)."""
    deadline = time.monotonic() + ADMIT_WAIT_S
    while True:
        earlier = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number]
        pending = [
            t
            for t in earlier
            if t.state.name in ("RUNNING", "WAITING") and not {"admitted", "skipped"} & t.user_attrs.keys()
        ]
        if not pending or time.monotonic() > deadline:
            return earlier
        time.sleep(0.05)


def tune(
    config: TuneConfig | None,
    storage_url: str,
    name: str,
    worker_seed: int | None = None,
    progress: bool = True,
    evaluate: Callable | None = None,
) -> dict:
    """Create (config given) or join (config None: a worker) a study, run its trials, write the outputs.

    Args:
        config: the study's config; None joins the existing study `name` as a worker.
        storage_url: an Optuna storage URL.
        name: the study name.
        worker_seed: a worker's sampler seed offset (default: its process id, so workers sample differently).
        progress: show a progress bar on stderr.
        evaluate: replaces the objective's evaluate function (tests).

    Returns:
        The summary written to OUT/best.json.

    Raises:
        LlmlabError: bad storage, unknown or mismatched study, bad settings.
    """
    require_extra("optuna", "tune", "llmlab tune")
    if config is None:
        study, config, objective = join_study(storage_url, name, worker_seed)
    else:
        study, config, objective = create_study(config, storage_url, name)
    if evaluate is not None:
        objective = Objective(evaluate, objective.defaults, objective.direction)
    run_trials(study, config, objective, progress)
    # Workers sharing OUT write it in turn, each from the study as it is once it holds the lock: the last one's
    # outputs are never older than an earlier one's (without the lock, a worker that read the study first
    # could write last, one complete trial short). (No OUT yet: this worker ran no trial; nothing is made.)
    out = Path(config.out)
    with exclusive_lock(out / ".outputs.lock") if out.is_dir() else contextlib.nullcontext():
        summary = summarise(study, config.to_dict(), shown_url(storage_url))
        write_outputs(study, summary, out)
    return summary
