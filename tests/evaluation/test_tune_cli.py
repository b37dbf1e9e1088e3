"""`llmlab tune` through the CLI: outputs, one-line errors, workers sharing a study, the fine-tuning objective."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import optuna
import pytest
import torch

from llmlab.cli import main
from llmlab.evaluation.search import TuneConfig, create_study
from llmlab.evaluation.search_space import ParamSpec
from llmlab.io import read_lines
from llmlab.model.checkpoint import save_model
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.train import train_tokenizer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sst2(shared_data) -> list[str]:
    data = shared_data / "sst2"
    return ["--train", str(data / "train.csv"), "--dev", str(data / "dev.csv"), "--max-train-examples", "500"]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("llmlab: error: ")
    return err


def test_linear_study_prints_best_against_default(tmp_path, sst2, capsys):
    out = tmp_path / "out"
    args = [
        "tune",
        "--objective",
        "linear",
        *sst2,
        "-o",
        str(out),
        "--trials",
        "3",
        "--quiet",
        "--pruner",
        "none",
        "--max-dev-examples",
        "300",
        "--param",
        "lr=loguniform:0.01:1",
    ]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    best = json.loads((out / "best.json").read_text())
    assert lines[0] == f"best {best['best_value']:.4f} (trial {best['best_trial']}), default settings " + (
        f"{best['default_value']:.4f} (trial 0)"
    )
    assert lines[1].startswith("best parameters: lr=") and lines[3] == "trials: 3 complete"
    assert len((out / "dev_subset.csv").read_text().splitlines()) == 301  # the header and 300 examples
    assert best["config"]["settings"]["dev_path"] == str((out / "dev_subset.csv").resolve())


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--param", "lr=loguniform:1e-3"], "--param 'lr=loguniform:1e-3': expected loguniform:LOW:HIGH"),
        (["--param", "rank=int:2:8"], "unknown parameter 'rank'"),
        (
            ["--storage", "postgresql://nobody@127.0.0.1:1/x"],
            "postgresql://nobody@127.0.0.1:1/x: cannot open",
        ),
        (["--storage", "sqlite:////no/such/dir/s.db"], "sqlite:////no/such/dir/s.db: cannot open"),
    ],
)
def test_bad_input_is_one_line(tmp_path, sst2, capsys, args, problem):
    code = main(["tune", "--objective", "linear", *sst2, "-o", str(tmp_path / "o"), "--quiet", *args])
    assert code == 2 and problem in error_line(capsys)


def test_worker_of_a_missing_study_is_one_line(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(["tune", "--worker", "--storage", storage, "--study", "nope", "--quiet"]) == 2
    assert f"{storage}: no study storage there" in error_line(capsys)
    assert not (tmp_path / "study.db").exists()  # a worker creates nothing


def test_starting_without_data_is_one_line(tmp_path, capsys):
    assert main(["tune", "--objective", "linear", "-o", str(tmp_path / "o")]) == 2
    assert "--train and --dev are required" in error_line(capsys)


def run_workers(storage: str, n: int) -> None:
    """Start `n` `python -m llmlab tune --worker` processes at once and wait for them."""
    command = [
        sys.executable,
        "-m",
        "llmlab",
        "tune",
        "--worker",
        "--storage",
        storage,
        "--study",
        "s",
        "--quiet",
    ]
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    workers = [
        subprocess.Popen(
            [*command, "--seed", str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(n)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err


@pytest.mark.slow
def test_two_grid_workers_share_one_study_without_duplicates(tmp_path, shared_data):
    settings = {
        "train_path": str(shared_data / "sst2" / "train.csv"),
        "dev_path": str(shared_data / "sst2" / "dev.csv"),
        "max_train_examples": 300,
    }
    space = {
        "lr": ParamSpec("lr", "choice", choices=(0.01, 0.1, 0.5)),
        "max_features": ParamSpec("max_features", "int", 500, 2000),
    }
    config = TuneConfig("linear", settings, space, str(tmp_path), sampler="grid", trials=20, pruner="none")
    storage = f"sqlite:///{tmp_path}/study.db"
    create_study(config, storage, "s")
    run_workers(storage, 2)
    trials = optuna.load_study(study_name="s", storage=storage).trials
    complete = [tuple(sorted(t.params.items())) for t in trials if t.state.name == "COMPLETE"]
    assert (
        len(set(complete)) == len(complete) == 9
    )  # the 3 x 3 grid; the default settings are one of its points
    assert all(
        "skipped" in t.user_attrs for t in trials if t.state.name == "FAIL"
    )  # only refused trials failed
    assert json.loads((tmp_path / "best.json").read_text())["trials"]["complete"] == 9


@pytest.fixture(scope="module")
def tiny_base(shared_data, tmp_path_factory) -> Path:
    """A random 1-layer llmlab encoder with a 300-token WordPiece vocabulary trained on SST-2 text."""
    lines = [
        line.rsplit(",", 1)[0] for line in islice(read_lines(shared_data / "sst2" / "train.csv"), 1, 2000)
    ]
    tokenizer = train_tokenizer("wordpiece", lines, 300, workers=1)
    torch.manual_seed(0)
    config = ModelConfig(tokenizer.vocab_size, d_model=16, n_layers=1, n_heads=2, d_ff=32, type_vocab_size=2)
    folder = tmp_path_factory.mktemp("tiny") / "base"
    save_model(folder, Transformer(config), tokenizer)
    return folder


@pytest.mark.slow
def test_finetune_objective_trains_each_trial_into_its_folder(tmp_path, sst2, tiny_base, capsys):
    args = [
        "tune",
        "--base",
        str(tiny_base),
        "--method",
        "lora",
        *sst2[:4],
        "--max-train-examples",
        "64",
        "--max-dev-examples",
        "48",
        "--max-steps",
        "4",
        "--eval-every",
        "2",
        "--trials",
        "3",
        "--quiet",
        "--param",
        "lr=loguniform:1e-3:1e-1",
        "--param",
        "lora_rank=choice:2,4",
        "-o",
        str(tmp_path),
    ]
    assert main(args) == 0
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{tmp_path}/study.db")
    assert study.trials[0].params == {"lr": 5e-5, "lora_rank": 8}  # the trainer's and LoRA's defaults
    for trial in study.trials:
        history = json.loads((tmp_path / "trials" / str(trial.number) / "history.json").read_text())
        assert trial.value == history["best_metric"]
        assert history["method_settings"]["lora_rank"] == trial.params["lora_rank"]
        assert (
            history["train_config"]["lr"] == trial.params["lr"] and history["train_config"]["max_steps"] == 4
        )
        assert trial.intermediate_values == {r["step"]: r["dev_accuracy"] for r in history["history"]}
