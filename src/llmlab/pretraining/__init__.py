"""Pretraining: language-model objectives on raw text, with checkpoints that resume exactly.

    from llmlab.pretraining import PretrainConfig, pretrain
    run = pretrain(PretrainConfig(["train.txt"], ["valid.txt"], "tokenizer.json", "runs/lm"))
    run = pretrain(PretrainConfig(["train.txt"], ["valid.txt"], "tokenizer.json", "runs/bert",
                                  objective="mlm", whole_word_masking=True, segmenter="jieba"))

Modules: config.py (PretrainConfig), loop.py (pretrain, checkpoints), objectives.py (causal, mlm),
mlm.py (masked-LM windows, loss, validation), masking.py (BERT masking), words.py (word starts: the
tokenizer's words or jieba's), data.py (token arrays, windows, metrics).
"""

from llmlab.pretraining.config import PretrainConfig
from llmlab.pretraining.data import read_metrics
from llmlab.pretraining.loop import latest_checkpoint, pretrain

__all__ = ["PretrainConfig", "latest_checkpoint", "pretrain", "read_metrics"]
