"""Pretraining objectives: what one training batch's loss and the validation score are, for loop.py.

- "causal": next-token prediction (GPT-2, Radford et al. 2019) on nanoGPT's random windows (data.py).
- "mlm": masked language modelling (BERT, Devlin et al. 2019), token or whole-word masking (mlm.py).
Both draw their windows (and masks) from the run's numpy generator, which checkpoints save, and validate on
fixed text without touching it: a resumed run logs the same losses as one that never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from llmlab.errors import LlmlabError
from llmlab.model import precision as mp
from llmlab.model.cross_entropy import cross_entropy
from llmlab.model.transformer import Transformer
from llmlab.pretraining.data import EOS, document_ids, evaluate_loss, random_windows, token_array
from llmlab.pretraining.mlm import MaskedObjective, mlm_tokens
from llmlab.pretraining.words import word_start_array
from llmlab.tokenizer.pipeline import Tokenizer

if TYPE_CHECKING:
    from llmlab.pretraining.config import PretrainConfig

OBJECTIVES = ("causal", "mlm")
DOCUMENTS = ("none", "file", "line")  # causal windows: cross documents freely, or attend per file / line


class Objective(Protocol):
    def loss(self, model: Transformer, rng: np.random.Generator) -> torch.Tensor:
        """The loss of one fresh training batch drawn with `rng` (a scalar, to backpropagate)."""

    def evaluate(self, model: Transformer) -> float:
        """The validation loss on fixed text (draws nothing from the training generator)."""


@dataclass
class CausalObjective:
    """Next-token loss on random windows of `context + 1` tokens; validation on the first valid tokens."""

    train: np.ndarray
    valid: np.ndarray
    context: int
    batch_size: int
    eval_tokens: int
    precision: str
    eos: int | None = None  # set: attention stays inside the documents this token ends

    def loss(self, model: Transformer, rng: np.random.Generator) -> torch.Tensor:
        x, y = random_windows(self.train, self.batch_size, self.context, rng)  # (B, T) each
        documents = None if self.eos is None else document_ids(x, self.eos)  # (B, T)
        with mp.autocast(self.precision, "cpu"):
            logits = model(x, document_ids=documents).logits  # (B, T, V)
        return cross_entropy(logits.flatten(0, 1), y.flatten())  # softmax statistics in float32

    def evaluate(self, model: Transformer) -> float:
        with mp.autocast(self.precision, "cpu"):
            return evaluate_loss(model, self.valid, self.context, self.eval_tokens, eos=self.eos)


def build_objective(config: PretrainConfig, tokenizer: Tokenizer, progress: bool) -> Objective:
    """The run's objective, its text tokenized (and, for whole-word masking, segmented) through the caches.

    Raises:
        LlmlabError: a tokenizer without the tokens MLM needs, a missing segmenter, too little text.
    """
    specials = mlm_tokens(tokenizer, str(config.tokenizer)) if config.objective == "mlm" else None
    eos = _document_end(config, tokenizer)
    cache = config.token_cache_dir or config.output_dir
    arrays = {}
    for role, files in [("train", config.train_files), ("valid", config.valid_files)]:
        line_documents = config.documents == "line"
        arrays[role] = token_array(files, tokenizer, cache, progress, config.text_errors, line_documents)
        _check_enough(arrays[role], role, files, config, tokenizer)
    train, valid = arrays["train"], arrays["valid"]
    if specials is None:
        return CausalObjective(
            train,
            valid,
            config.context_length,
            config.batch_size,
            config.eval_tokens,
            config.precision,
            eos,
        )
    starts = {"train": None, "valid": None}
    if config.whole_word_masking:
        for role, files in [("train", config.train_files), ("valid", config.valid_files)]:
            starts[role] = word_start_array(
                files, tokenizer, config.segmenter, arrays[role], cache, progress, config.text_errors
            )
    return MaskedObjective(
        train,
        valid,
        starts["train"],
        starts["valid"],
        specials,
        tokenizer.vocab_size,
        config.context_length,
        config.batch_size,
        config.eval_tokens,
        config.mask_prob,
        config.precision,
        config.seed,
    )


def _document_end(config: PretrainConfig, tokenizer: Tokenizer) -> int | None:
    """The end-of-text id that splits windows into documents, or None when attention crosses them."""
    if config.documents == "none":
        return None
    eos = tokenizer.token_to_id(EOS)
    if eos is None:
        raise LlmlabError(
            f"{config.tokenizer}: documents={config.documents!r} needs an {EOS} token; it has none"
        )
    return eos


def _check_enough(tokens: np.ndarray, role: str, files, config: PretrainConfig, tokenizer: Tokenizer) -> None:
    if len(tokens) <= config.context_length + 1:
        raise LlmlabError(
            f"{files[0]}: the {role} files hold {len(tokens)} tokens; "
            f"context_length={config.context_length} needs more"
        )
    if role == "train" and int(tokens.max()) >= tokenizer.vocab_size:
        raise LlmlabError(f"{config.tokenizer}: token id {int(tokens.max())} is beyond the vocabulary")
