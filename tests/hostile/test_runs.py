"""Training runs against hostile changes: resuming with other data, base or settings; a hand-edited pointer or
state; a corrupt token cache; a loss that turns NaN; a save that fails half-way; a diverged history."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from llmlab.errors import LlmlabError
from llmlab.io import new_step_folder
from tests.hostile.conftest import _tiny_base, assert_one_line_error, run_cli, snapshot

FT = ["--quiet", "--max-steps", "2", "--batch-size", "8", "--max-length", "16", "--checkpoint-every", "1"]
LM = [
    "--quiet",
    "--context",
    "8",
    "--batch-size",
    "2",
    "--d-model",
    "16",
    "--n-layers",
    "1",
    "--n-heads",
    "2",
]


def finetune(capsys, *extra: str, base: str = "base", train: str = "train.csv"):
    return run_cli(
        capsys, "finetune", "--base", base, "--train", train, "--dev", "dev.csv", "-o", "ft", *FT, *extra
    )


def pretrain(capsys, steps: int, *extra: str):
    args = ["--train", "corpus.txt", "--valid", "corpus.txt", "--tokenizer", "tok.json", "-o", "lm", *LM]
    return run_cli(
        capsys,
        "pretrain",
        *args,
        "--steps",
        str(steps),
        "--eval-every",
        "1",
        "--checkpoint-every",
        "1",
        *extra,
    )


@pytest.fixture
def finetuned(work, capsys):
    code, _, err = finetune(capsys)
    assert code == 0, err
    return work


@pytest.mark.parametrize(
    ("change", "extra", "needle"),
    [
        ("edit the training file", [], "train data"),
        ("another base", ["--base", "base2"], "base model"),
        ("another dropout", ["--dropout", "0.3"], "settings.dropout"),
        ("another learning rate", ["--lr", "0.01"], "lr"),
        ("another method", ["--method", "probe"], "settings.method"),
    ],
)
def test_finetune_resume_refuses_what_changed(finetuned, capsys, change, extra, needle):
    if change == "edit the training file":
        with open("train.csv", "a", encoding="utf-8") as f:
            f.write("an extra row,1\n")
    if change == "another base":
        _tiny_base(finetuned / "base2", finetuned / "tok.json", seed=1)
    before = snapshot(finetuned)
    code, _, err = finetune(capsys, "--resume", *extra)
    assert_one_line_error(code, err, needle)
    assert "cannot resume with changed settings" in err
    assert snapshot(finetuned) == before


def test_finetune_resume_with_nothing_changed_works(finetuned, capsys):
    code, _, err = finetune(capsys, "--resume")
    assert code == 0, err


@pytest.mark.parametrize(
    ("pointer", "needle"),
    [
        ({"step": 2, "folder": "../.."}, "step-NNNNNN"),
        ({"step": 2, "folder": "step-000099"}, "not a checkpoint folder"),
        (["step-000002"], "step-NNNNNN"),
    ],
)
def test_latest_json_may_only_name_a_step_folder_beside_it(finetuned, capsys, pointer, needle):
    (finetuned / "ft" / "checkpoint" / "latest.json").write_text(json.dumps(pointer), encoding="utf-8")
    before = snapshot(finetuned)
    code, _, err = finetune(capsys, "--resume")
    assert_one_line_error(code, err, needle)
    assert snapshot(finetuned) == before


def test_hand_edited_state_json_is_refused(finetuned, capsys):
    state = next((finetuned / "ft" / "checkpoint").glob("step-*/state.json"))
    data = json.loads(state.read_text(encoding="utf-8"))
    data["position"] = "three"
    state.write_text(json.dumps(data), encoding="utf-8")
    code, _, err = finetune(capsys, "--resume")
    assert_one_line_error(code, err, "'position'")


def test_pretrain_resume_refuses_an_edited_data_file(work, capsys):
    code, _, err = pretrain(capsys, 2)
    assert code == 0, err
    with open("corpus.txt", "a", encoding="utf-8") as f:
        f.write("one more line of training text\n")
    before = snapshot(work)
    code, _, err = pretrain(capsys, 2, "--resume")
    assert_one_line_error(code, err, "train file corpus.txt")
    assert snapshot(work) == before


def test_pretrain_pointer_outside_the_run_is_refused(work, capsys):
    assert pretrain(capsys, 2)[0] == 0
    (work / "lm" / "checkpoints" / "latest.json").write_text('{"step": 2, "folder": "../../base"}')
    code, _, err = pretrain(capsys, 2, "--resume")
    assert_one_line_error(code, err, "step-NNNNNN")


def test_corrupt_token_cache_is_rebuilt(work, capsys):
    assert pretrain(capsys, 2)[0] == 0
    cache = next((work / "lm").glob("tokens-*.npy"))
    good = np.load(cache)
    cache.write_bytes(b"\x93NUMPY garbage")
    code, _, err = pretrain(capsys, 2, "--resume")
    assert code == 0, err
    assert np.array_equal(np.load(cache), good)


def test_pretrain_stops_on_a_nan_loss_and_keeps_the_last_checkpoint(work, capsys, monkeypatch):
    from llmlab.pretraining import loop

    real = loop._train_step

    def poisoned(run, config, tokens, lr):
        loss = real(run, config, tokens, lr)
        return math.nan if run.step >= 2 else loss  # the third step's loss is NaN

    monkeypatch.setattr(loop, "_train_step", poisoned)
    code, _, err = pretrain(capsys, 5)
    assert_one_line_error(code, err, "at step 3")
    assert "step-000002" in err and "lower --lr" in err
    assert json.loads((work / "lm" / "checkpoints" / "latest.json").read_text())["folder"] == "step-000002"
    log = (work / "lm" / "metrics.jsonl").read_text(encoding="utf-8")
    assert "NaN" not in log and len(log.splitlines()) == 2


def test_finetune_stops_on_a_nan_loss_and_keeps_the_last_checkpoint(work, capsys, monkeypatch):
    from llmlab.finetuning import trainer

    real = trainer._step
    calls = []

    def poisoned(run, examples):
        calls.append(1)
        loss = real(run, examples)
        return math.inf if len(calls) == 2 else loss

    monkeypatch.setattr(trainer, "_step", poisoned)
    code, _, err = finetune(capsys)
    assert_one_line_error(code, err, "at step 2")
    assert (work / "ft" / "checkpoint" / "step-000001").is_dir()
    assert not (work / "ft" / "model.safetensors").exists()  # no model saved from a diverged run


def test_finetune_nan_before_any_checkpoint_leaves_nothing(work, capsys, monkeypatch):
    from llmlab.finetuning import trainer

    monkeypatch.setattr(trainer, "_step", lambda run, examples: math.nan)
    before = snapshot(work)
    code, _, err = run_cli(
        capsys,
        "finetune",
        "--base",
        "base",
        "--train",
        "train.csv",
        "--dev",
        "dev.csv",
        "-o",
        "ft",
        "--quiet",
        "--max-steps",
        "2",
        "--max-length",
        "16",
    )
    assert_one_line_error(code, err, "no checkpoint was written")
    assert snapshot(work) == before


def test_a_failed_save_leaves_no_step_folder(tmp_path):
    root = tmp_path / "checkpoints"
    with new_step_folder(root, 1) as folder:
        (folder / "weights").write_text("complete")
    with pytest.raises(LlmlabError), new_step_folder(root, 2) as folder:
        (folder / "weights").write_text("half")
        raise LlmlabError("disk full")
    assert sorted(p.name for p in root.iterdir()) == ["latest.json", "step-000001"]
    assert json.loads((root / "latest.json").read_text())["folder"] == "step-000001"


@pytest.mark.parametrize(
    ("history", "evidence"),
    [
        (
            [
                {"train_loss": 51.0, "dev_loss": 60.0},
                {"train_loss": 120.0, "dev_loss": 150.0},
                {"train_loss": 233.0, "dev_loss": 260.0},
            ],
            "rose 51.0000 -> 233.0000",
        ),
        ([{"train_loss": 0.7, "dev_loss": 0.7}, {"train_loss": math.nan, "dev_loss": math.nan}], "nan"),
        (
            [{"train_loss": 0.7, "dev_loss": 0.7}, {"train_loss": 0.5, "dev_loss": math.inf}],
            "dev loss is inf",
        ),
    ],
    ids=["loss rising 51 to 233 (LoRA at lr 10)", "NaN losses", "an infinite dev loss"],
)
def test_diagnose_calls_a_diverging_run_diverging(work, capsys, history, evidence):
    (work / "run" / "history.json").write_text(json.dumps({"history": history}), encoding="utf-8")
    code, out, err = run_cli(capsys, "diagnose", "run")
    assert code == 0, err
    assert "diagnosis: diverging" in out and evidence in out
    assert "lower learning rate" in out and "gradient clipping" in out
    code, out, _ = run_cli(capsys, "diagnose", "run", "--json")
    assert json.loads(out)["label"] == "diverging"


def test_a_refused_pretrain_leaves_no_tokens_cache_in_an_existing_folder(work, capsys):
    (work / "lm").mkdir()
    (work / "lm" / "notes.txt").write_text("mine\n", encoding="utf-8")
    before = snapshot(work)
    code, _, err = run_cli(
        capsys,
        "pretrain",
        "--train",
        "oneline.txt",
        "--valid",
        "corpus.txt",
        "--tokenizer",
        "tok.json",
        "-o",
        "lm",
        *LM,
        "--steps",
        "2",
    )
    assert_one_line_error(code, err, "oneline.txt")
    assert snapshot(work) == before
    shutil.rmtree(work / "lm")
