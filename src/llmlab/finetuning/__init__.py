"""Fine-tuning pretrained Transformers: one training loop and five methods (full, probe, prompt, prefix, LoRA).

    from llmlab.finetuning import FinetuneSettings, MethodSettings, TrainConfig, finetune
    settings = FinetuneSettings("base/", "lora", "train.csv", "dev.csv", "runs/lora",
                                TrainConfig(lr=1e-3, epochs=3), MethodSettings(lora_rank=8))
    result = finetune(settings)

Or build a model and train it yourself: `build_model(base, "lora", labels=...)`, `train(model, ...)`;
`apply_lora(transformer)` turns any llmlab Transformer into a LoRA model (q, v, rank 8, alpha 16).
"""

from llmlab.finetuning.lora import apply_lora, merge_lora
from llmlab.finetuning.methods import DEFAULT_LR, METHODS, MethodSettings, build_model, load_finetuned
from llmlab.finetuning.run import FinetuneSettings, finetune
from llmlab.finetuning.trainer import TrainConfig, TrainResult, train

__all__ = [
    "DEFAULT_LR",
    "METHODS",
    "FinetuneSettings",
    "MethodSettings",
    "TrainConfig",
    "TrainResult",
    "apply_lora",
    "build_model",
    "finetune",
    "load_finetuned",
    "merge_lora",
    "train",
]
