"""Hyperparameter search: the space syntax, the Optuna study (samplers, pruning, seeds, admission), outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmlab.errors import LlmlabError
from llmlab.evaluation.search import TuneConfig, create_study, join_study, open_storage, run_trials, tune
from llmlab.evaluation.search_objectives import LINEAR_DEFAULTS, Objective, linear_objective
from llmlab.evaluation.search_space import (
    ParamSpec,
    default_space,
    include_defaults,
    parse_param,
    parse_space,
)

DEFAULTS = {"lr": 5e-5, "batch_size": 32, "schedule": "linear", "prefix_projection": True}


# --- the space syntax -----------------------------------------------------------------------------------


def test_parse_each_kind():
    assert parse_param("lr=loguniform:1e-5:1e-3", DEFAULTS) == ParamSpec("lr", "loguniform", 1e-5, 1e-3)
    assert parse_param("batch_size=int:8:64", DEFAULTS) == ParamSpec("batch_size", "int", 8, 64)
    assert parse_param("batch_size=choice:16,32", DEFAULTS).choices == (16, 32)
    assert parse_param("schedule=choice:linear,cosine", DEFAULTS).choices == ("linear", "cosine")
    assert parse_param("prefix_projection=choice:true,False", DEFAULTS).choices == (True, False)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("lr", "expected NAME=KIND:ARGS"),
        ("lr=loguniform", "expected NAME=KIND:ARGS"),
        ("rank=int:2:16", "unknown parameter 'rank'"),
        ("lr=normal:0:1", "unknown kind 'normal'"),
        ("lr=uniform:1e-3", "expected uniform:LOW:HIGH"),
        ("lr=uniform:0.1:0.01", "needs LOW < HIGH"),
        ("lr=loguniform:0:1", "loguniform needs LOW > 0"),
        ("lr=uniform:a:1", "'a' is not a valid float"),
        ("batch_size=uniform:8:64", "not a real-valued setting"),
        ("lr=int:1:3", "not an integer setting"),
        ("batch_size=choice:16,x", "'x' is not a valid int"),
        ("batch_size=choice:16,16", "choice needs distinct values"),
        ("prefix_projection=choice:yes", "'yes' is not true or false"),
    ],
)
def test_bad_params_are_one_line_errors(text, problem):
    with pytest.raises(LlmlabError) as excinfo:
        parse_param(text, DEFAULTS)
    message = str(excinfo.value)
    assert problem in message and "\n" not in message and message.startswith("--param")


def test_a_name_given_twice_is_refused():
    with pytest.raises(LlmlabError, match="lr is given twice"):
        parse_space(["lr=uniform:0.1:0.2", "lr=uniform:0.2:0.3"], DEFAULTS)


def test_default_spaces_are_valid_for_every_method():
    for method in ("full", "probe", "prompt", "prefix", "lora"):
        assert "lr" in default_space(method)
    assert "lora_rank" in default_space("lora") and "num_virtual_tokens" in default_space("prompt")
    with pytest.raises(LlmlabError, match="--method 'adapter': unknown method"):
        default_space("adapter")


@given(
    low=st.floats(1e-6, 10.0),
    ratio=st.floats(1.01, 1e4),
    points=st.integers(2, 9),
    kind=st.sampled_from(["loguniform", "uniform"]),
)
def test_grid_of_a_range_spans_it(low, ratio, points, kind):
    spec = ParamSpec("x", kind, low, low * ratio)
    grid = spec.grid(points)
    assert len(grid) == points and grid == sorted(grid)
    assert grid[0] == pytest.approx(low) and grid[-1] == pytest.approx(low * ratio)
    assert ParamSpec.from_dict("x", json.loads(json.dumps(spec.to_dict()))) == spec


@given(low=st.integers(-50, 50), width=st.integers(1, 100), points=st.integers(2, 9))
def test_integer_grid_is_distinct_integers_within_the_range(low, width, points):
    grid = ParamSpec("n", "int", low, low + width).grid(points)
    assert grid[0] == low and grid[-1] == low + width
    assert len(set(grid)) == len(grid) <= points and all(isinstance(v, int) for v in grid)


# --- studies with the cheap objective on SST-2 ----------------------------------------------------------


@pytest.fixture(scope="module")
def sst2(shared_data) -> dict:
    data = shared_data / "sst2"
    return {
        "train_path": str(data / "train.csv"),
        "dev_path": str(data / "dev.csv"),
        "max_train_examples": 1500,
    }


def config(out: Path, settings: dict, **overrides) -> TuneConfig:
    space = {
        "lr": ParamSpec("lr", "loguniform", 1e-3, 1.0),
        "max_features": ParamSpec("max_features", "int", 300, 3000),
    }
    return TuneConfig(
        **(
            {
                "objective": "linear",
                "settings": settings,
                "space": space,
                "out": str(out),
                "trials": 6,
                "pruner": "none",
            }
            | overrides
        )
    )


def url(out: Path) -> str:
    return f"sqlite:///{out}/study.db"


def run_study(cfg: TuneConfig, evaluate, name: str = "s") -> optuna.Study:
    """A study of `cfg` run with a stand-in evaluate function, without the report (seconds)."""
    study, cfg, objective = create_study(cfg, url(Path(cfg.out)), name)
    run_trials(study, cfg, Objective(evaluate, objective.defaults), progress=False)
    return study


def trial_params(out: Path, name: str = "s") -> list[dict]:
    study = optuna.load_study(study_name=name, storage=url(out))
    return [t.params for t in study.trials]


def test_study_writes_best_json_report_and_trial_folders(tmp_path, sst2):
    summary = tune(config(tmp_path, sst2), url(tmp_path), "s", progress=False)
    assert json.loads((tmp_path / "best.json").read_text()) == summary
    assert summary["trials"] == {"complete": 6}
    assert summary["default_params"] == {
        "lr": LINEAR_DEFAULTS["lr"],
        "max_features": LINEAR_DEFAULTS["max_features"],
    }
    assert summary["best_value"] >= summary["default_value"]
    assert set(summary["importance"]) == {"lr", "max_features"}
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == [str(i) for i in range(6)]
    page = (tmp_path / "report.html").read_text()
    assert "Parameter importance" in page and "data:image/png;base64," in page and "default settings" in page


def test_default_trial_scores_as_the_objective_alone(tmp_path, sst2):
    summary = tune(config(tmp_path, sst2, trials=1), url(tmp_path), "s", progress=False)
    params = LINEAR_DEFAULTS | summary["default_params"]
    direct = linear_objective(sst2).evaluate(params, tmp_path, lambda step, value: None)
    assert summary["default_value"] == direct


def test_a_seeded_study_is_reproducible(tmp_path, sst2):
    def evaluate(params, trial_dir, report):  # a smooth score with its optimum inside the space
        return -((params["lr"] - 0.1) ** 2) - ((params["max_features"] - 1000) / 1000) ** 2

    for name, seed in (("a", 0), ("b", 0), ("c", 1)):  # three studies in one storage
        run_study(config(tmp_path, sst2, sampler="tpe", seed=seed, trials=8), evaluate, name)
    assert trial_params(tmp_path, "a") == trial_params(tmp_path, "b")
    assert trial_params(tmp_path, "a") != trial_params(tmp_path, "c")


def test_grid_runs_each_point_once_and_stops(tmp_path, sst2):
    space = {
        "lr": ParamSpec("lr", "choice", choices=(0.01, 0.1, 0.5)),
        "epochs": ParamSpec("epochs", "int", 1, 3),
    }
    cfg = config(tmp_path, sst2, space=space, sampler="grid", grid_points=2, trials=50)
    study = run_study(cfg, lambda p, d, r: p["lr"] * p["epochs"])
    complete = [(p["lr"], p["epochs"]) for p in trial_params(tmp_path)]
    assert complete[0] == (0.01, 5)  # the default settings, off the grid, run first
    assert sorted(complete[1:]) == [(lr, e) for lr in (0.01, 0.1, 0.5) for e in (1, 3)]
    assert study.best_params == {"lr": 0.5, "epochs": 3} and len(study.trials) == 7


def test_median_pruning_stops_trials_that_report_badly(tmp_path, sst2):
    def evaluate(params, trial_dir, report):  # a score that is known at every step: lr itself
        for step in range(1, 6):
            report(step, params["lr"])
        return params["lr"]

    cfg = config(tmp_path, sst2, pruner="median", trials=12, sampler="random")
    study = run_study(cfg, evaluate)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned and len(study.trials) == 12
    for t in pruned:  # pruned at the first step, because its value was below the median of earlier trials
        earlier = [u.intermediate_values[1] for u in study.trials[: t.number] if u.state.name == "COMPLETE"]
        assert list(t.intermediate_values) == [1] and t.params["lr"] < np.median(earlier)


def test_a_grid_point_taken_by_an_earlier_trial_is_refused(tmp_path, sst2):
    space = {"lr": ParamSpec("lr", "choice", choices=(0.1, 0.5))}
    study, cfg, objective = create_study(
        config(tmp_path, sst2, space=space, sampler="grid"), url(tmp_path), "s"
    )
    study.enqueue_trial({"lr": 0.5})
    study.enqueue_trial({"lr": 0.5})  # as if a second worker had been handed the same grid point
    run_trials(study, cfg, Objective(lambda p, d, r: p["lr"], objective.defaults), progress=False)
    assert study.trials[2].user_attrs["skipped"] == "duplicate of trial 1"
    complete = sorted(t.params["lr"] for t in study.trials if t.state.name == "COMPLETE")
    assert complete == [0.01, 0.1, 0.5]  # each point once (enqueued trials hold no grid id, so later grid
    # trials drew 0.5 and 0.01 again and were refused too)
    assert all(
        t.user_attrs.get("skipped", "").startswith("duplicate")
        for t in study.trials
        if t.state.name == "FAIL"
    )


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # study.ask() outside optimize, on purpose
def test_the_budget_counts_trials_running_in_other_workers(tmp_path, sst2):
    study, cfg, objective = create_study(config(tmp_path, sst2, trials=3), url(tmp_path), "s")
    elsewhere = study.ask()  # trial 0, the defaults, running in "another worker"
    elsewhere.set_user_attr("admitted", True)
    run_trials(study, cfg, Objective(lambda p, d, r: p["lr"], objective.defaults), progress=False)
    states = [(t.state.name, t.user_attrs.get("skipped")) for t in study.trials]
    assert states == [
        ("RUNNING", None),
        ("COMPLETE", None),
        ("COMPLETE", None),
        ("FAIL", "budget of 3 trials spent"),
    ]


def test_choice_lists_gain_the_default_so_trial_zero_fits(tmp_path, sst2):
    space = {"lr": ParamSpec("lr", "choice", choices=(0.1, 0.5))}
    _, cfg, _ = create_study(config(tmp_path, sst2, space=space), url(tmp_path), "s")
    assert cfg.space["lr"].choices == (0.1, 0.5, LINEAR_DEFAULTS["lr"])
    assert include_defaults(cfg.space, LINEAR_DEFAULTS) == cfg.space


@pytest.mark.slow
def test_tpe_beats_the_default_settings_within_eight_trials(tmp_path, sst2):
    summary = tune(config(tmp_path, sst2, trials=8, pruner="median"), url(tmp_path), "s", progress=False)
    assert summary["best_value"] > summary["default_value"] + 0.05


# --- storage, joining, drift ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["postgresql://nobody@127.0.0.1:1/x", "sqlite:////no/such/folder/study.db", "nonsense"]
)
def test_unreachable_storage_is_one_line_naming_the_url(bad):
    """A URL that does not parse is not echoed (it could hold a password); the others are, masked."""
    with pytest.raises(LlmlabError) as excinfo:
        open_storage(bad)
    message = str(excinfo.value)
    named = "not a database URL" if bad == "nonsense" else bad.split("@")[-1]
    assert "\n" not in message and named in message


def test_password_is_hidden(tmp_path):
    with pytest.raises(LlmlabError) as excinfo:
        open_storage("postgresql://user:secret@127.0.0.1:1/x")
    assert "secret" not in str(excinfo.value) and "user:***@127.0.0.1:1/x" in str(excinfo.value)


def test_joining_needs_an_existing_study(tmp_path):
    with pytest.raises(LlmlabError, match="no study named 'missing'"):
        join_study(url(tmp_path), "missing")


def test_a_worker_reads_the_stored_config(tmp_path, sst2):
    cfg = config(tmp_path, sst2, sampler="random", seed=3)
    create_study(cfg, url(tmp_path), "s")
    _, joined, objective = join_study(url(tmp_path), "s")
    assert joined == cfg and objective.defaults == LINEAR_DEFAULTS


def test_reopening_a_study_with_other_settings_is_refused(tmp_path, sst2):
    create_study(config(tmp_path, sst2), url(tmp_path), "s")
    create_study(config(tmp_path, sst2), url(tmp_path), "s")  # the same settings: resumed
    with pytest.raises(LlmlabError, match="exists with other settings"):
        create_study(config(tmp_path, sst2, trials=7), url(tmp_path), "s")
