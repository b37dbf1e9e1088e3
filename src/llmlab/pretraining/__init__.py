"""Pretraining: language-model objectives on raw text, with checkpoints that resume exactly.

    from llmlab.pretraining import PretrainConfig, pretrain
    run = pretrain(PretrainConfig(["train.txt"], ["valid.txt"], "tokenizer.json", "runs/lm"))

Modules: loop.py (PretrainConfig, pretrain, checkpoints), data.py (token arrays, windows, metrics).
"""

from llmlab.pretraining.data import read_metrics
from llmlab.pretraining.loop import PretrainConfig, latest_checkpoint, pretrain

__all__ = ["PretrainConfig", "latest_checkpoint", "pretrain", "read_metrics"]
