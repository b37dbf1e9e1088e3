"""DistributedDataParallel: `torchrun --nproc_per_node 2` follows a one-process run at the same global batch.

Run by torchrun (`python -m torch.distributed.run --nproc_per_node 2 tests/finetuning/test_ddp.py TOKENIZER
TRAIN DEV OUT PRECISION`), this file is the training script; rank 0 writes the checkpoint the test reads.
In bf16-mixed the ranks all-reduce float32 gradients of the float32 master weights; the shards' forward passes
round differently from the whole batch's, so the tolerance there is 1e-3 (float32: 1e-5).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from llmlab.finetuning.checkpoint import load_checkpoint  # noqa: E402
from llmlab.finetuning.data import read_examples  # noqa: E402
from llmlab.finetuning.trainer import TrainConfig, train  # noqa: E402
from llmlab.tokenizer.pipeline import Tokenizer  # noqa: E402
from tests.finetuning.test_trainer import TinyClassifier, sst2_small_fixture, tokenizer_fixture  # noqa: E402, F401

# 3 micro-batches of 5 per step (the last of each epoch shorter): shards of 3 and 2 examples, and 1 and 0
CONFIG = TrainConfig(
    lr=1e-3,
    batch_size=5,
    grad_accum=3,
    epochs=2,
    eval_every=2,
    checkpoint_every=100,
    seed=5,
    augment_rate=0.1,
    warmup_ratio=0.0,
)


def run(tokenizer: Tokenizer, train_path, dev_path, out: Path, precision: str = "fp32"):
    """A tiny model without dropout (dropout masks differ between ranks) on 31 SST-2 rows."""
    torch.set_num_threads(1)
    model = TinyClassifier(tokenizer, dropout=0.0, seed=2)
    config = dataclasses.replace(CONFIG, precision=precision)
    return train(
        model, read_examples(train_path, 31), read_examples(dev_path, 16), config, out, progress=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("bf16-mixed", 1e-3)])
def test_two_processes_equal_one(tokenizer, sst2_small, minilm_dir, tmp_path, precision, tolerance):
    single = run(tokenizer, *sst2_small, tmp_path / "one", precision)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        __file__,
        str(minilm_dir / "tokenizer.json"),
        *map(str, sst2_small),
        str(tmp_path / "two"),
        precision,
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert len(single.step_losses) == 6
    assert two["state"]["step_losses"] == pytest.approx(one["state"]["step_losses"], abs=tolerance)
    for name, tensor in one["trainable"].items():
        assert tensor.dtype == torch.float32  # master weights
        torch.testing.assert_close(two["trainable"][name], tensor, atol=tolerance, rtol=10 * tolerance)
    assert [r["dev_loss"] for r in two["state"]["history"]] == pytest.approx(
        [r["dev_loss"] for r in one["state"]["history"]], abs=tolerance
    )


if __name__ == "__main__":
    tok, train_csv, dev_csv, out_dir, precision = sys.argv[1:6]
    run(Tokenizer.load(tok), train_csv, dev_csv, Path(out_dir), precision)
