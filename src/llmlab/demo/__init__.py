"""`llmlab demo`: the whole toolkit end to end, offline, on text that ships with Python.

Stages: tokenizers (run.py), pretraining with three positional encodings (pretrain_stage.py), fine-tuning,
evaluation and an offline A/B comparison (finetune_stage.py); the corpus and the labelled task come from
`llmlab.stdlib_text`; kernels.py pins the numerical kernels so the figures match on every machine.
"""

from llmlab.lazy import lazy_exports

__all__ = ["run_demo"]
__getattr__, __dir__ = lazy_exports(__name__, {"run_demo": "llmlab.demo.run"})
