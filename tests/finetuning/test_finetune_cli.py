"""`llmlab finetune` end to end on tiny bases: the run folder, history.json's keys, errors, --lr-find, lm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llmlab.cli import main
from llmlab.finetuning.methods import DEFAULT_LR, load_finetuned
from llmlab.model.checkpoint import save_model
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.pipeline import Tokenizer
from tests.finetuning.test_trainer import sst2_small_fixture  # noqa: F401

HISTORY_KEYS = {
    "history",
    "best_step",
    "best_metric",
    "metric",
    "stopped_early",
    "method",
    "trainable_parameters",
    "total_parameters",
    "peak_memory_mb",
    "step_time_s",
    "padding_share",
    "wall_time_s",
    "train_config",
    "method_settings",
}
RECORD_KEYS = {"step", "epoch", "lr", "train_loss", "dev_loss", "dev_accuracy", "dev_f1", "time_s"}


def tiny_base(folder: Path, tokenizer_path: Path, causal: bool = False) -> Path:
    """A tiny random llmlab model folder with the MiniLM tokenizer (an encoder, or a causal LM)."""
    tokenizer = Tokenizer.load(tokenizer_path)
    config = ModelConfig(
        tokenizer.vocab_size,
        d_model=16,
        n_layers=1,
        n_heads=2,
        d_ff=32,
        causal=causal,
        type_vocab_size=0 if causal else 2,
        positional="learned",
        max_seq_len=128,
        tie_embeddings=causal,
    )
    save_model(folder, Transformer(config), tokenizer)
    return folder


@pytest.fixture(scope="module")
def encoder_base(minilm_dir, tmp_path_factory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("base") / "encoder", minilm_dir / "tokenizer.json")


def _run(*args: str) -> int:
    return main(["finetune", *args, "--quiet"])


@pytest.mark.parametrize("method", ["full", "lora"])
def test_finetune_writes_the_run_folder(method, encoder_base, sst2_small, tmp_path, capsys):
    train, dev = sst2_small
    out = tmp_path / method
    code = _run(
        "--base",
        str(encoder_base),
        "--method",
        method,
        "--train",
        str(train),
        "--dev",
        str(dev),
        "-o",
        str(out),
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--eval-every",
        "2",
    )
    assert code == 0
    summary = capsys.readouterr().out
    assert f"{method} best dev accuracy" in summary and "at step" in summary
    history = json.loads((out / "history.json").read_text())
    assert set(history) == HISTORY_KEYS and [r["step"] for r in history["history"]] == [2, 4]
    assert all(set(r) == RECORD_KEYS for r in history["history"])
    assert history["trainable_parameters"] <= history["total_parameters"]
    assert (history["trainable_parameters"] < history["total_parameters"]) == (method == "lora")
    assert len(json.loads((out / "step_losses.json").read_text())) == 4
    assert json.loads((out / "train_config.json").read_text())["method"] == method
    assert load_finetuned(out).method == method


def _tiny_run(base: Path, sst2_small, out: Path, *options: str) -> int:
    train, dev = sst2_small
    args = ["--base", str(base), "--method", "lora", "--train", str(train), "--dev", str(dev), "-o", str(out)]
    return _run(*args, "--max-steps", "2", "--batch-size", "8", *options)


@pytest.mark.parametrize(
    "precision, message",
    [("fp16", "choose one of auto, fp32, bf16-mixed, bf16"), ("bf16", "no native bfloat16")],
)
def test_bad_precision_is_one_line_error(
    precision, message, encoder_base, sst2_small, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("LLMLAB_NO_BF16", "1")  # a processor without bfloat16
    code = _tiny_run(encoder_base, sst2_small, tmp_path / "o", "--precision", precision)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("llmlab: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_without_bf16_the_default_precision_is_fp32(encoder_base, sst2_small, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LLMLAB_NO_BF16", "1")
    assert _tiny_run(encoder_base, sst2_small, tmp_path / "auto", "--group-by-length") == 0
    assert "% padding)" in capsys.readouterr().out
    settings = json.loads((tmp_path / "auto" / "train_config.json").read_text())["train"]
    assert settings["precision"] == "fp32" and settings["group_by_length"] is True
    assert 0 <= json.loads((tmp_path / "auto" / "history.json").read_text())["padding_share"] < 1


def test_bf16_mixed_runs_and_is_recorded(encoder_base, sst2_small, tmp_path):
    assert _tiny_run(encoder_base, sst2_small, tmp_path / "mixed", "--precision", "bf16-mixed") == 0
    settings = json.loads((tmp_path / "mixed" / "train_config.json").read_text())["train"]
    assert settings["precision"] == "bf16-mixed"
    model = load_finetuned(tmp_path / "mixed")
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # saved from the float32 masters


def test_without_lr_the_method_gets_its_own_default(encoder_base, sst2_small, tmp_path):
    train, dev = sst2_small
    out = tmp_path / "lora"
    code = _run(
        "--base",
        str(encoder_base),
        "--method",
        "lora",
        "--train",
        str(train),
        "--dev",
        str(dev),
        "-o",
        str(out),
        "--max-steps",
        "1",
        "--batch-size",
        "8",
    )
    assert code == 0
    assert json.loads((out / "train_config.json").read_text())["train"]["lr"] == DEFAULT_LR["lora"] != 5e-5


@pytest.mark.slow
def test_lr_find_prints_a_suggestion_and_writes_a_plot(encoder_base, sst2_small, tmp_path, capsys):
    train, dev = sst2_small
    code = _run(
        "--base",
        str(encoder_base),
        "--train",
        str(train),
        "--dev",
        str(dev),
        "-o",
        str(tmp_path),
        "--lr-find",
        "--lr-find-steps",
        "12",
        "--batch-size",
        "8",
    )
    assert code == 0
    assert "suggested lr" in capsys.readouterr().out
    found = json.loads((tmp_path / "lr_find.json").read_text())
    assert 1e-7 <= found["suggestion"] <= 10 and found["lrs"] == sorted(found["lrs"])
    assert "<img" in (tmp_path / "lr_find.html").read_text()


def test_lm_task_on_a_text_file(minilm_dir, tmp_path, capsys):
    base = tiny_base(tmp_path / "lm", minilm_dir / "tokenizer.json", causal=True)
    text = tmp_path / "train.txt"
    text.write_text("the cat sat on the mat\na dog ran in the park\n\nthe sun is hot\n" * 3, encoding="utf-8")
    code = _run(
        "--base",
        str(base),
        "--task",
        "lm",
        "--method",
        "lora",
        "--train",
        str(text),
        "--dev",
        str(text),
        "-o",
        str(tmp_path / "out"),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "1e-2",
    )
    assert code == 0
    assert "best dev loss" in capsys.readouterr().out
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert history["metric"] == "loss" and history["history"][0]["dev_perplexity"] > 1


@pytest.mark.parametrize(
    "content, message",
    [
        ("text,lab\nhi,0\n", "no 'label' column"),
        ("text,label\nhi,pos\n", "line 2: label 'pos'"),
        ("text,label\nhi,0\n,1\n", "line 3: empty"),
    ],
)
def test_bad_data_is_one_line_error(content, message, encoder_base, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(content, encoding="utf-8")
    code = _run(
        "--base", str(encoder_base), "--train", str(bad), "--dev", str(bad), "-o", str(tmp_path / "o")
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("llmlab: error: ") and str(bad) in err and message in err
    assert err.count("\n") == 1


def test_dev_class_absent_from_train_names_the_class(encoder_base, tmp_path, capsys):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    train.write_text("text,label\ngood,0\nbad,1\n", encoding="utf-8")
    dev.write_text("text,label\nmeh,2\n", encoding="utf-8")
    code = _run(
        "--base", str(encoder_base), "--train", str(train), "--dev", str(dev), "-o", str(tmp_path / "o")
    )
    assert code == 2 and "class 2 does not occur" in capsys.readouterr().err
