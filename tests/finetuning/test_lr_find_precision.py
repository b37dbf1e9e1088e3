"""The LR range test runs in the run's precision: bf16-mixed tracks float32 and the model comes back float32.

Tolerance (measured on an AMD EPYC with avx512_bf16, MiniLM + LoRA, 12 steps of 8 SST-2 sentences, lr swept
1e-6 to 1e-2): the smoothed losses of bf16-mixed differ from float32's by at most 0.0001; the test allows
0.02 per step. Both runs draw the same dropout masks (same seed, same shapes), so the gap is rounding alone.
"""

from __future__ import annotations

import torch

from llmlab.finetuning.data import read_examples
from llmlab.finetuning.lr_find import lr_find
from llmlab.finetuning.methods import MethodSettings, build_model
from llmlab.finetuning.trainer import TrainConfig


def _range_test(minilm_dir, train_set, precision: str):
    torch.manual_seed(0)
    model = build_model(minilm_dir, "lora", "classification", ["0", "1"], MethodSettings())
    before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    config = TrainConfig(batch_size=8, max_length=32, precision=precision)
    torch.manual_seed(0)
    result = lr_find(model, train_set, config, start_lr=1e-6, end_lr=1e-2, num_steps=12)
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # handed back in float32
    after = model.trainable_state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the trainable weights put back
    return result


def test_bf16_mixed_range_test_tracks_fp32(minilm_dir, shared_data):
    torch.set_num_threads(1)
    train_set = read_examples(shared_data / "sst2" / "train.csv", 96)
    fp32 = _range_test(minilm_dir, train_set, "fp32")
    mixed = _range_test(minilm_dir, train_set, "bf16-mixed")
    assert fp32.lrs == mixed.lrs and len(fp32.losses) == 12
    assert fp32.losses != mixed.losses  # bf16 did run
    gap = max(abs(a - b) for a, b in zip(fp32.losses, mixed.losses, strict=True))
    assert gap < 0.02
