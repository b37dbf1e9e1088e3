"""The `llmlab tune` command: command-line values to a study config, then `search.tune` (create or join).

A new study takes its data, base model and fixed training settings from the options and its search space
from `--param` (or the method's default space); `--worker` takes everything from the stored study instead.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from llmlab.cli.options import PRECISION_HELP
from llmlab.errors import LlmlabError, mask_secrets, require_extra
from llmlab.evaluation.search import PRUNERS, SAMPLERS, TuneConfig, tune
from llmlab.evaluation.search_objectives import OBJECTIVES, write_subset
from llmlab.evaluation.search_space import parse_space
from llmlab.validate import check_input, check_output, undo_on_failure


def new_config(
    objective: str, settings: dict[str, Any], params: list[str], out: Path, **options
) -> TuneConfig:
    """The config of a new study from command-line values.

    Args:
        objective: a key of OBJECTIVES.
        settings: the objective's fixed settings; "train_path", "dev_path" and "base" are made absolute (workers
            may start elsewhere), and "max_dev_examples" becomes a dev subset file OUT/dev_subset.csv.
        params: `--param` texts; none: the objective's default space.
        out: the output folder (created; its parent must exist).
        options: sampler, pruner, trials, seed, grid_points.

    Raises:
        LlmlabError: a missing file or folder, a bad --param, a bad option.
    """
    if not settings.get("train_path") or not settings.get("dev_path"):
        raise LlmlabError("tune: --train and --dev are required to start a study (a --worker reads them)")
    for key in ("train_path", "dev_path", "base"):
        if settings.get(key) is not None:
            check_input(settings[key], "folder" if key == "base" else "file", key.removesuffix("_path"))
            settings[key] = str(Path(settings[key]).resolve())
    check_output(out, [settings["train_path"], settings["dev_path"], settings.get("base")], kind="folder")
    out.mkdir(exist_ok=True)
    max_dev = settings.pop("max_dev_examples", None)
    if max_dev:
        subset = write_subset(Path(settings["dev_path"]), max_dev, out / "dev_subset.csv")
        settings["dev_path"] = str(subset.resolve())
    made = OBJECTIVES[objective](settings)
    space = parse_space(params, made.defaults) if params else made.space
    return TuneConfig(objective, settings, space, str(out.resolve()), **options)


Sampler = Enum("Sampler", {name: name for name in SAMPLERS}, type=str)
Pruner = Enum("Pruner", {name: name for name in PRUNERS}, type=str)
ObjectiveName = Enum("ObjectiveName", {name: name for name in OBJECTIVES}, type=str)


def tune_command(
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="Folder for study.db, trials/<n>/, best.json, report.html."),
    ] = None,
    train: Annotated[Path | None, typer.Option(help="Training CSV/JSONL (text,label[,text_pair]).")] = None,
    dev: Annotated[Path | None, typer.Option(help="Dev CSV/JSONL that scores each trial.")] = None,
    base: Annotated[
        Path | None, typer.Option(help="Base model folder (llmlab or Hugging Face), finetune objective.")
    ] = None,
    method: Annotated[str, typer.Option(help="full, probe, prompt, prefix or lora.")] = "lora",
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH or choice:A,B,... (repeat); "
            "default: the method's search space."
        ),
    ] = None,
    sampler: Annotated[Sampler, typer.Option(help="tpe (Bayesian), random or grid.")] = Sampler.tpe,
    pruner: Annotated[
        Pruner, typer.Option(help="Stop poor trials early: median, hyperband or none.")
    ] = Pruner.median,
    trials: Annotated[
        int,
        typer.Option(
            min=1, max=10**6, help="Trials in the study (all workers), the default settings included."
        ),
    ] = 20,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0, max=2**32 - 1, help="Sampler seed (default 0; a worker's default: its process id)."
        ),
    ] = None,
    grid_points: Annotated[int, typer.Option(min=2, max=1000, help="Grid: values per range parameter.")] = 3,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL (default sqlite:///OUT/study.db; postgresql://...)."),
    ] = None,
    study: Annotated[str, typer.Option(help="Study name in the storage.")] = "tune",
    worker: Annotated[
        bool, typer.Option(help="Join the existing study --study in --storage; reads its settings.")
    ] = False,
    objective: Annotated[
        ObjectiveName, typer.Option(help="finetune, or linear (TF-IDF + logistic regression, seconds).")
    ] = ObjectiveName.finetune,
    max_train_examples: Annotated[
        int | None, typer.Option(min=1, max=10**9, help="Use the first N training examples.")
    ] = None,
    max_dev_examples: Annotated[
        int | None, typer.Option(min=1, max=10**9, help="Score on the first N dev examples.")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(min=1, max=10**9, help="Optimizer steps per trial (overrides epochs).")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, max=10**6, help="Epochs per trial.")] = 3,
    eval_every: Annotated[
        int | None, typer.Option(min=1, max=10**9, help="Steps between dev evaluations (pruning points).")
    ] = None,
    metric: Annotated[str, typer.Option(help="accuracy, f1 or loss (minimised).")] = "accuracy",
    max_length: Annotated[int, typer.Option(min=1, max=2**20, help="Tokens per example.")] = 128,
    precision: Annotated[str, typer.Option(help="Finetune objective: " + PRECISION_HELP)] = "auto",
    group_by_length: Annotated[
        bool, typer.Option(help="Finetune objective: batches of similar length (less padding).")
    ] = True,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Search hyperparameters with Optuna (grid, random, TPE; median or Hyperband pruning); many workers share
    one study through --storage. Prints the best parameters against the default settings."""
    from llmlab.evaluation.search_report import format_summary
    from llmlab.model.precision import resolve_precision

    require_extra("optuna", "tune", "llmlab tune")
    if worker:
        if storage is None and out is None:
            raise LlmlabError("tune --worker: give --storage URL (or --out of the study's folder)")
        url = storage or f"sqlite:///{out.resolve()}/study.db"
        _check_existing_storage(url)
        summary = tune(None, url, study, seed, not quiet)
    else:
        if out is None:
            raise LlmlabError("tune: give --out, the folder for the study's results")
        settings = {
            "train_path": train,
            "dev_path": dev,
            "base": base,
            "method": method,
            "max_train_examples": max_train_examples,
            "max_dev_examples": max_dev_examples,
            "seed": seed or 0,
            "train": {
                "max_steps": max_steps,
                "epochs": epochs,
                "eval_every": eval_every,
                "metric": metric,
                "max_length": max_length,
                "precision": resolve_precision(precision),  # the study keeps the choice for every worker
                "group_by_length": group_by_length,
                "seed": seed or 0,
            },
        }
        with undo_on_failure(out):  # a refused study leaves no folder, subset or database behind
            config = new_config(
                objective.value,
                settings,
                param or [],
                out,
                sampler=sampler.value,
                pruner=pruner.value,
                trials=trials,
                seed=seed or 0,
                grid_points=grid_points,
            )
            url = storage or f"sqlite:///{Path(config.out)}/study.db"
            summary = tune(config, url, study, progress=not quiet)
    print(format_summary(summary, Path(summary["config"]["out"])))


def _check_existing_storage(url: str) -> None:
    """A worker joins a study: an SQLite storage file that is not there is an error, not a new database."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise LlmlabError(
            f"{mask_secrets(url)}: no study storage there; start the study with `llmlab tune --out ...` first"
        )


def register(app: typer.Typer) -> None:
    """Add this topic's command to `app`."""
    app.command("tune")(tune_command)
