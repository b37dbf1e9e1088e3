"""PretrainConfig: every setting of one pretraining run, validated on construction, saved beside the run.

The model is described by `model`, a dict of ModelConfig fields laid over the objective's shape: a causal LM
(`objective="causal"`) or, for `objective="mlm"`, BERT's encoder (`BERT_SHAPE`, the settings of HF
`BertConfig` / `BertForMaskedLM`: post-LN, embedding LayerNorm, learned positions, two token types, the MLM
head tied to the embeddings). Settings that belong to one objective only (mask_prob, whole_word_masking,
segmenter; documents) are refused with the other, as is a causal model under mlm or an encoder under causal.
`documents` packs documents into the causal windows with attention kept inside each one (Llama 3's
pretraining does so): "file" (each file a document) or "line" (each line one, e.g. a poem per line).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.model import precision as mp
from llmlab.model.config import ModelConfig
from llmlab.pretraining.objectives import DOCUMENTS, OBJECTIVES
from llmlab.pretraining.words import SEGMENTERS, load_segmenter

RESUME_MAY_CHANGE = {
    "resume",
    "stop_after",
    "eval_every",
    "checkpoint_every",
    "token_cache_dir",
    "tokenizer",
    "output_dir",
}
_FROM_TOKENIZER = ("vocab_size", "tokenizer_fingerprint")  # ModelConfig fields pretraining fills in itself
BERT_SHAPE = {  # objective mlm's encoder unless the model settings say otherwise (BERT, HF BertConfig)
    "causal": False,
    "norm": "post",
    "embedding_norm": True,
    "final_norm": False,
    "positional": "learned",
    "type_vocab_size": 2,
    "tie_embeddings": True,
    "mlm_head": True,
    "layer_norm_eps": 1e-12,
}


@dataclass
class PretrainConfig:
    """Every setting of one pretraining run; validated on construction (one-line LlmlabError)."""

    train_files: list[Path]
    valid_files: list[Path]
    tokenizer: Path  # a tokenizer.json saved by llmlab (Tokenizer.save)
    output_dir: Path
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields; vocab comes from the tokenizer
    context_length: int = 128
    batch_size: int = 32
    steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_steps: int | None = None  # None: 10% of the steps, at most 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    eval_every: int = 100
    eval_tokens: int = 32768  # valid tokens per evaluation
    checkpoint_every: int = 500
    seed: int = 0
    resume: bool = False
    stop_after: int | None = None  # end this invocation after that step (checkpointed), as if interrupted
    token_cache_dir: Path | None = None  # where tokens-<key>.npy live; None: output_dir
    text_errors: str = "strict"  # invalid UTF-8 in the text files: "strict" stops, "replace" goes on
    precision: str = "fp32"  # fp32 | bf16-mixed | bf16 (llmlab.model.precision); "auto" resolves here
    objective: str = "causal"  # causal (next token, a decoder) | mlm (masked tokens, an encoder)
    mask_prob: float = 0.15  # mlm: share of the tokens predicted (80% [MASK], 10% random, 10% kept)
    whole_word_masking: bool = False  # mlm: mask whole words (words.py) instead of single tokens
    segmenter: str = "tokenizer"  # whole-word masking: the words of "tokenizer" or "jieba"
    documents: str = (
        "none"  # causal: "none" (windows cross documents), "file" or "line" (attention per document)
    )

    def __post_init__(self) -> None:
        self.train_files = [Path(p) for p in self.train_files]
        self.valid_files = [Path(p) for p in self.valid_files]
        self.tokenizer, self.output_dir = Path(self.tokenizer), Path(self.output_dir)
        self.token_cache_dir = None if self.token_cache_dir is None else Path(self.token_cache_dir)
        if self.warmup_steps is None and isinstance(self.steps, int):
            self.warmup_steps = min(100, self.steps // 10)
        if self.precision in mp.CHOICES:
            self.precision = mp.resolve_precision(self.precision, "cpu")
        problem = self._number_problem() or mp.check_precision(self.precision)
        problem = problem or self._objective_problem() or self._model_problem() or self._file_problem()
        if problem:
            raise LlmlabError(f"pretrain config: {problem}")

    def _number_problem(self) -> str | None:
        counts = ["context_length", "batch_size", "steps", "eval_every", "eval_tokens", "checkpoint_every"]
        for name in counts:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return f"{name}={value!r} must be a positive integer"
        if not isinstance(self.warmup_steps, int) or not 0 <= self.warmup_steps <= self.steps:
            return f"warmup_steps={self.warmup_steps!r} must be an integer in [0, steps={self.steps}]"
        ranges = {
            "lr": (0, math.inf),
            "min_lr_ratio": (0, 1),
            "weight_decay": (0, math.inf),
            "grad_clip": (0, math.inf),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
                return f"{name}={value!r} must be a number in [{low}, {high}]"
            if not math.isfinite(value):
                return f"{name}={value!r} must be finite"
        if self.lr == 0:
            return "lr must be above 0"
        if self.stop_after is not None and not 1 <= self.stop_after <= self.steps:
            return f"stop_after={self.stop_after} must lie in [1, steps={self.steps}]"
        if self.text_errors not in ("strict", "replace"):
            return f"text_errors={self.text_errors!r}; choose strict or replace"
        return None

    def _objective_problem(self) -> str | None:
        if self.objective not in OBJECTIVES:
            return f"unknown objective {self.objective!r}; choose one of: {', '.join(OBJECTIVES)}"
        if self.segmenter not in SEGMENTERS:
            return f"unknown segmenter {self.segmenter!r}; choose one of: {', '.join(SEGMENTERS)}"
        if not isinstance(self.whole_word_masking, bool):
            return f"whole_word_masking={self.whole_word_masking!r} must be true or false"
        if self.documents not in DOCUMENTS:
            return f"unknown documents {self.documents!r}; choose one of: {', '.join(DOCUMENTS)}"
        if self.objective == "causal":
            if self.whole_word_masking or self.segmenter != "tokenizer" or self.mask_prob != 0.15:
                return "whole_word_masking, segmenter and mask_prob belong to objective mlm"
            return None
        if self.documents != "none":
            return "documents (attention kept inside each document) belongs to objective causal"
        if not isinstance(self.mask_prob, float) or not 0 < self.mask_prob < 1:
            return f"mask_prob={self.mask_prob!r} must be a number in (0, 1)"
        if self.context_length < 3:
            return (
                f"context_length={self.context_length} leaves no room between [CLS] and [SEP]; give 3 or more"
            )
        if self.segmenter != "tokenizer" and not self.whole_word_masking:
            return f"segmenter {self.segmenter!r} only matters with whole_word_masking"
        if self.whole_word_masking:
            load_segmenter(self.segmenter)  # raises, one line, when its extra is missing
        return None

    def _model_problem(self) -> str | None:
        if not isinstance(self.model, dict):
            return f"model must be a dict of ModelConfig fields, not {type(self.model).__name__}"
        known = {f.name for f in dataclasses.fields(ModelConfig)} - set(_FROM_TOKENIZER)
        unknown = sorted(set(self.model) - known)
        if unknown:
            return f"unknown model settings: {', '.join(unknown)}"
        causal = self.objective == "causal"
        if self.model.get("causal", causal) is not causal:
            if causal:
                return "pretraining with objective causal trains a causal LM; model causal must be true"
            return "objective mlm trains a bidirectional encoder; the model config says causal=true"
        settings = self._model_settings()
        table = settings["max_seq_len"]
        if settings.get("positional") == "learned" and table < self.context_length:
            return f"context_length={self.context_length} exceeds the learned position table of {table}"
        try:
            self.model_config(vocab_size=1 << 30, tokenizer_fingerprint=None)
        except LlmlabError as e:
            return str(e)
        return None

    def _file_problem(self) -> str | None:
        if not self.train_files or not self.valid_files:
            return "give at least one train file and one valid file"
        for path in [*self.train_files, *self.valid_files, self.tokenizer]:
            if not path.is_file():
                return f"{path}: file not found"
        return None

    def model_config(self, vocab_size: int, tokenizer_fingerprint: str | None) -> ModelConfig:
        """The ModelConfig of the model: these settings over a causal LM (objective causal) or over
        `BERT_SHAPE` (objective mlm), the position table sized to the context."""
        return ModelConfig(
            vocab_size=vocab_size, tokenizer_fingerprint=tokenizer_fingerprint, **self._model_settings()
        )

    def _model_settings(self) -> dict[str, Any]:
        shape = {"causal": True} if self.objective == "causal" else BERT_SHAPE
        return {"max_seq_len": self.context_length, **shape, **self.model}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        d = dataclasses.asdict(self)
        return json.loads(json.dumps(d, default=str))
