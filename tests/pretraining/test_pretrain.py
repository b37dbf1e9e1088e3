"""Pretraining: exact resume, the loss going down on real text, the schedule, and refusals of bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from llmlab.errors import LlmlabError
from llmlab.model.checkpoint import load_model
from llmlab.pretraining.data import random_windows
from llmlab.pretraining.loop import PretrainConfig, learning_rate, pretrain, read_metrics
from llmlab.tokenizer.train import train_tokenizer
from tests.pretraining.corpus import split_corpus

TINY = {"d_model": 32, "n_layers": 2, "n_heads": 2}


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """A slice of tiny_shakespeare (train and valid files) and a small byte-level BPE trained on it."""
    root = tmp_path_factory.mktemp("corpus")
    lines, paths = split_corpus(shared_data / "tiny_shakespeare/train.txt", root, 2700, 300)
    train_tokenizer("bpe", lines, 400, workers=1).save(root / "tok.json")
    train_tokenizer("bpe", lines, 380, workers=1).save(root / "other.json")
    return {**paths, "tok": root / "tok.json", "other": root / "other.json"}


def _config(corpus: dict[str, Path], out: Path, **overrides) -> PretrainConfig:
    settings = dict(
        train_files=[corpus["train"]],
        valid_files=[corpus["valid"]],
        tokenizer=corpus["tok"],
        output_dir=out,
        model={**TINY, "positional": "rope", "dropout": 0.1},  # dropout: the torch RNG must resume too
        context_length=16,
        batch_size=4,
        steps=20,
        lr=3e-3,
        warmup_steps=4,
        eval_every=5,
        eval_tokens=512,
        checkpoint_every=7,
        seed=3,
    )
    return PretrainConfig(**{**settings, **overrides})


@pytest.mark.parametrize(
    "precision", ["fp32", "bf16-mixed"]
)  # exact in both: the same machine rounds the same
def test_resumed_run_logs_the_same_losses_as_an_uninterrupted_one(corpus, tmp_path, precision):
    pretrain(_config(corpus, tmp_path / "a", precision=precision), progress=False)
    interrupted = _config(corpus, tmp_path / "b", stop_after=10, precision=precision)  # after step 10
    pretrain(interrupted, progress=False)
    assert [r["step"] for r in read_metrics(tmp_path / "b")] == list(range(1, 11))
    final = pretrain(_config(corpus, tmp_path / "b", resume=True, precision=precision), progress=False)
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["step"] for r in b] == list(range(1, 21))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # exactly, not approximately
    assert [r.get("val_loss") for r in a] == [r.get("val_loss") for r in b]
    assert final.name == "step-000020" and sorted(p.name for p in final.parent.glob("step-*")) == [final.name]
    model, tok = load_model(final)
    assert model.config.positional == "rope" and tok.vocab_size == 400


def test_resume_drops_steps_logged_after_the_checkpoint(corpus, tmp_path):
    pretrain(_config(corpus, tmp_path / "a", steps=10), progress=False)
    pretrain(_config(corpus, tmp_path / "b", steps=10, stop_after=7), progress=False)
    with (tmp_path / "b/metrics.jsonl").open("a") as log:  # a crash after logging steps 8-9, mid-line
        log.write(json.dumps({"step": 8, "loss": 0.0}) + "\n" + '{"step": 9, "lo')
    pretrain(_config(corpus, tmp_path / "b", steps=10, resume=True), progress=False)
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["step"] for r in b] == list(range(1, 11))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


def test_loss_decreases_on_tiny_shakespeare(corpus, tmp_path):
    config = _config(corpus, tmp_path, steps=60, checkpoint_every=60, eval_every=60, batch_size=8)
    pretrain(config, progress=False)
    records = read_metrics(tmp_path)
    first = np.mean([r["loss"] for r in records[:5]])
    last = np.mean([r["loss"] for r in records[-5:]])
    assert last < first - 0.7, (first, last)
    assert records[-1]["val_ppl"] < 200 < 400  # far below a uniform guess over 400 tokens
    assert {"step", "loss", "lr", "tokens_per_s"} <= set(records[0])
    assert list(tmp_path.glob("tokens-*.npy"))  # the token arrays are cached in the output folder


def test_bf16_mixed_tracks_fp32_and_a_changed_precision_is_refused_on_resume(corpus, tmp_path):
    losses = {}
    for precision in ("fp32", "bf16-mixed"):
        pretrain(_config(corpus, tmp_path / precision, precision=precision, steps=10), progress=False)
        losses[precision] = [r["loss"] for r in read_metrics(tmp_path / precision)]
    assert losses["fp32"] != losses["bf16-mixed"]  # bf16 did run
    assert losses["bf16-mixed"] == pytest.approx(losses["fp32"], abs=0.02)  # measured: 0.0003
    with pytest.raises(LlmlabError, match="precision"):
        pretrain(
            _config(corpus, tmp_path / "fp32", steps=10, resume=True, precision="bf16-mixed"), progress=False
        )


def test_schedule_warms_up_then_decays_to_the_floor(corpus, tmp_path):
    config = _config(corpus, tmp_path, steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [learning_rate(s, config) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_random_windows_are_seeded_and_shifted_by_one():
    tokens = np.arange(1000, dtype=np.uint16)
    x1, y1 = random_windows(tokens, 4, 8, np.random.default_rng(0))
    x2, _ = random_windows(tokens, 4, 8, np.random.default_rng(0))
    assert x1.shape == (4, 8) and (x1 == x2).all() and (y1 == x1 + 1).all()


def test_resume_refuses_a_different_tokenizer(corpus, tmp_path):
    pretrain(_config(corpus, tmp_path, stop_after=7), progress=False)
    with pytest.raises(LlmlabError, match="tokenizer"):
        pretrain(_config(corpus, tmp_path, resume=True, tokenizer=corpus["other"]), progress=False)


def test_resume_refuses_changed_settings_and_an_existing_run_without_resume(corpus, tmp_path):
    pretrain(_config(corpus, tmp_path, stop_after=7), progress=False)
    with pytest.raises(LlmlabError, match="changed settings: batch_size"):
        pretrain(_config(corpus, tmp_path, resume=True, batch_size=8), progress=False)
    with pytest.raises(LlmlabError, match="holds a pretraining run already"):
        pretrain(_config(corpus, tmp_path), progress=False)


def test_resume_without_a_checkpoint_is_refused(corpus, tmp_path):
    with pytest.raises(LlmlabError, match="no checkpoint to resume"):
        pretrain(_config(corpus, tmp_path, resume=True), progress=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train_files": ["/nonexistent/train.txt"]}, "train.txt: file not found"),
        ({"model": {"positional": "learned", "max_seq_len": 8}}, "exceeds the learned position table of 8"),
        ({"model": {"causal": False}}, "causal must be true"),
        ({"model": {"d_modle": 8}}, "unknown model settings: d_modle"),
        ({"model": {"positional": "nope"}}, "unknown positional"),
        ({"steps": 0}, "steps=0 must be a positive integer"),
        ({"lr": "fast"}, "lr=.fast. must be a number"),
        ({"stop_after": 99}, "stop_after=99"),
        ({"precision": "fp16"}, "precision='fp16': choose one of auto, fp32"),
    ],
)
def test_bad_settings_are_refused_on_construction(corpus, tmp_path, overrides, message):
    with pytest.raises(LlmlabError, match=message):
        _config(corpus, tmp_path, **overrides)


def test_too_little_text_is_refused(corpus, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("To be.\n", encoding="utf-8")
    with pytest.raises(LlmlabError, match="valid files hold"):
        pretrain(_config(corpus, tmp_path / "out", valid_files=[short]), progress=False)


def test_config_round_trips_through_json(corpus, tmp_path):
    config = _config(corpus, tmp_path)
    d = json.loads(json.dumps(config.to_dict()))
    assert dataclasses.asdict(PretrainConfig(**d)) == dataclasses.asdict(config)


def test_a_corrupt_trainer_state_is_a_one_line_error(corpus, tmp_path):
    folder = pretrain(_config(corpus, tmp_path, stop_after=7), progress=False)
    (folder / "trainer_state.pt").write_bytes(b"not a torch file")
    with pytest.raises(LlmlabError, match="trainer_state.pt: not a readable trainer state"):
        pretrain(_config(corpus, tmp_path, resume=True), progress=False)
