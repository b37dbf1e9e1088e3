"""Exact resume: a run killed with SIGKILL and resumed logs the same per-step losses as one that never stopped,
and a crash in the middle of a checkpoint save leaves the previous checkpoint loadable. Resume stays exact
(tolerance 1e-7, as in float32) in bf16-mixed with length-grouped batches: the same machine rounds the same.

Run as a script (`python tests/finetuning/test_resume.py TOKENIZER TRAIN DEV OUT SETTINGS_JSON [--resume]`),
this file is the training process the SIGKILL test starts and kills.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from llmlab.finetuning import checkpoint as ckpt  # noqa: E402
from llmlab.finetuning.data import read_examples  # noqa: E402
from llmlab.finetuning.trainer import TrainConfig, train  # noqa: E402
from llmlab.tokenizer.pipeline import Tokenizer  # noqa: E402
from tests.finetuning.test_trainer import TinyClassifier, sst2_small_fixture, tokenizer_fixture  # noqa: E402, F401

CONFIG = TrainConfig(
    lr=1e-3, batch_size=4, epochs=3, eval_every=5, checkpoint_every=3, seed=7, augment_rate=0.2
)


def run(
    tokenizer: Tokenizer,
    train_path,
    dev_path,
    out: Path,
    resume: bool = False,
    pause: float = 0.0,
    settings: dict | None = None,
):
    """The run under test: a tiny model with dropout and EDA on 32 SST-2 rows, 24 steps; `settings` replace
    TrainConfig fields (precision, group_by_length)."""
    torch.set_num_threads(1)
    model = TinyClassifier(tokenizer, seed=3)
    train_set, dev_set = read_examples(train_path, 32), read_examples(dev_path, 16)
    return train(
        model,
        train_set,
        dev_set,
        dataclasses.replace(CONFIG, **(settings or {})),
        out,
        resume=resume,
        progress=False,
        on_eval=lambda record: time.sleep(pause),
    )


def _committed_step(out: Path) -> int:
    folder = ckpt.latest_checkpoint(out)
    return -1 if folder is None else int(folder.name.split("-")[1])


@pytest.mark.slow
@pytest.mark.parametrize("settings", [{}, {"precision": "bf16-mixed", "group_by_length": True}])
def test_sigkill_then_resume_gives_the_same_losses(tokenizer, sst2_small, minilm_dir, tmp_path, settings):
    whole = run(tokenizer, *sst2_small, tmp_path / "whole", settings=settings)
    out = tmp_path / "killed"
    paths = [str(minilm_dir / "tokenizer.json"), *map(str, sst2_small), str(out), json.dumps(settings)]
    command = [sys.executable, __file__, *paths]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _committed_step(out) < 9 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()  # still running: killed mid-run
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = _committed_step(out)
    assert 9 <= killed_at < 24
    resumed = run(tokenizer, *sst2_small, out, resume=True, settings=settings)
    assert len(resumed.step_losses) == len(whole.step_losses) == 24
    assert resumed.step_losses == pytest.approx(whole.step_losses, abs=1e-7)
    assert [r["dev_loss"] for r in resumed.history] == pytest.approx([r["dev_loss"] for r in whole.history])


def test_a_crash_during_save_leaves_the_previous_checkpoint(tokenizer, sst2_small, tmp_path, monkeypatch):
    calls = []
    real_save = torch.save

    def crashing_save(obj, f):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("power cut")  # the second checkpoint dies half-written
        real_save(obj, f)

    monkeypatch.setattr(ckpt.torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        run(tokenizer, *sst2_small, tmp_path)
    assert _committed_step(tmp_path) == 3
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == [
        "latest.json",
        "step-000003",
    ]  # torn save gone
    saved = ckpt.load_checkpoint(tmp_path)
    assert saved["state"]["step"] == 3 and saved["trainable"]
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    assert len(run(tokenizer, *sst2_small, tmp_path, resume=True).step_losses) == 24


if __name__ == "__main__":
    tok, train_csv, dev_csv, out_dir, settings_json = sys.argv[1:6]
    resume = "--resume" in sys.argv
    run(Tokenizer.load(tok), train_csv, dev_csv, Path(out_dir), resume, 0.3, json.loads(settings_json))
