"""The masked-language-model objective (BERT, Devlin et al. 2019): random windows [CLS] + tokens + [SEP] of
the token array, masked afresh each time one is drawn (masking.py), the loss on the masked positions only.

Reference: HF `BertForMaskedLM` trained on batches of `DataCollatorForLanguageModeling` or
`DataCollatorForWholeWordMask` (bench/mlm.py runs both at one shape): the same loss, cross-entropy over the
positions whose label is not -100. Deviation from BERT's data pipeline: windows are cut from the flat token
array as nanoGPT cuts them (no sentence pairs, no next-sentence prediction: RoBERTa's FULL-SENTENCES
without NSP, Liu et al. 2019 §4.2), all of type 0.
Validation: non-overlapping windows over the first `eval_tokens` valid tokens, masked by a generator seeded
with the run's seed at each evaluation, so every evaluation scores the same masked text and draws nothing from
the training generator (exact resume).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from llmlab.errors import LlmlabError
from llmlab.model import precision as mp
from llmlab.model.transformer import Transformer
from llmlab.pretraining.masking import IGNORE_INDEX, mask_tokens
from llmlab.tokenizer.pipeline import Tokenizer

CLS_NAMES, SEP_NAMES, MASK_NAMES = ("[CLS]", "<s>", "<cls>"), ("[SEP]", "</s>", "<sep>"), ("[MASK]", "<mask>")


@dataclass(frozen=True)
class MlmTokens:
    """The special tokens MLM windows use, and which ids are special (never masked)."""

    cls_id: int
    sep_id: int
    mask_id: int
    special: np.ndarray  # (V,) bool: True for the tokenizer's special tokens


def mlm_tokens(tokenizer: Tokenizer, source: str) -> MlmTokens:
    """The [CLS], [SEP] and [MASK] of `tokenizer` (or RoBERTa's <s>, </s>, <mask>), read from its tokens.

    Raises:
        LlmlabError: the tokenizer lacks one of them (one line naming `source` and what to add).
    """
    ids = []
    for role, names in [("mask", MASK_NAMES), ("classification", CLS_NAMES), ("separator", SEP_NAMES)]:
        found = next((i for i in map(tokenizer.token_to_id, names) if i is not None), None)
        if found is None:
            raise LlmlabError(
                f"{source}: the tokenizer has no {role} token ({' or '.join(names)}), which masked-LM "
                "pretraining needs; train it with that special token"
            )
        ids.append(found)
    special = np.zeros(tokenizer.vocab_size, dtype=bool)
    special[[t.id for t in tokenizer.added_tokens if t.special and t.id < tokenizer.vocab_size]] = True
    special[ids] = True
    return MlmTokens(cls_id=ids[1], sep_id=ids[2], mask_id=ids[0], special=special)


def random_windows(
    tokens: np.ndarray,
    starts: np.ndarray | None,
    specials: MlmTokens,
    batch: int,
    context: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`batch` random windows [CLS] + (context - 2) tokens + [SEP].

    Returns:
        ids (B, T), maskable (B, T) bool (not a special token), word starts (B, T) bool or None.
    """
    offsets = rng.integers(0, len(tokens) - (context - 2) + 1, size=batch)[:, None] + np.arange(context - 2)
    return _framed(tokens[offsets], None if starts is None else starts[offsets], specials)


def fixed_windows(
    tokens: np.ndarray, starts: np.ndarray | None, specials: MlmTokens, context: int, max_tokens: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Non-overlapping windows [CLS] + (context - 2) tokens + [SEP] over tokens[:max_tokens] (as
    `random_windows` returns them).

    Raises:
        LlmlabError: fewer than context - 2 tokens.
    """
    inner = context - 2
    n = min(len(tokens), max_tokens) // inner * inner
    if n == 0:
        raise LlmlabError(f"evaluation needs at least {inner} tokens; the text has {len(tokens)}")
    body = tokens[:n].reshape(-1, inner)
    return _framed(body, None if starts is None else starts[:n].reshape(-1, inner), specials)


def _framed(body: np.ndarray, starts: np.ndarray | None, specials: MlmTokens):
    """[CLS] + body + [SEP] for each row; maskable and word starts to match (the frame starts no word)."""
    ids = np.empty((len(body), body.shape[1] + 2), dtype=np.int64)  # (B, T)
    ids[:, 0], ids[:, 1:-1], ids[:, -1] = specials.cls_id, body, specials.sep_id
    maskable = ~specials.special[ids]
    if starts is None:
        return ids, maskable, None
    word_starts = np.zeros(ids.shape, dtype=bool)
    word_starts[:, 1:-1] = starts
    return ids, maskable, word_starts


def masked_loss(
    model: Transformer, inputs: np.ndarray, labels: np.ndarray, precision: str, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy over the positions whose label is not IGNORE_INDEX (softmax statistics in float32).

    Args:
        inputs, labels: (B, T) int64, as `mask_tokens` returns them.
        precision: fp32, bf16-mixed or bf16 (the forward pass runs under its autocast).
        reduction: "mean" over the predicted positions, or "sum".
    """
    targets = torch.from_numpy(labels)  # (B, T)
    chosen = targets != IGNORE_INDEX  # (B, T)
    with mp.autocast(precision, "cpu"):
        logits = model(torch.from_numpy(inputs), logits_at=chosen).logits  # (N, V): the chosen positions only
    if logits is None:
        raise LlmlabError("masked-LM pretraining needs a model with an LM head (tie_embeddings or mlm_head)")
    return F.cross_entropy(logits.float(), targets[chosen], reduction=reduction)


@dataclass
class MaskedObjective:
    """Masked-LM batches and validation for the pretraining loop (the interface of objectives.py)."""

    train: np.ndarray
    valid: np.ndarray
    train_starts: np.ndarray | None  # word starts aligned with `train`: whole-word masking; None: tokens
    valid_starts: np.ndarray | None
    specials: MlmTokens
    vocab_size: int
    context: int
    batch_size: int
    eval_tokens: int
    mask_prob: float
    precision: str
    seed: int  # the run's seed; the validation masks come from the stream [seed, 1]

    def windows(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """`batch_size` random training windows: ids, maskable and word starts (`random_windows`)."""
        return random_windows(
            self.train, self.train_starts, self.specials, self.batch_size, self.context, rng
        )

    def batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels), both (B, T): fresh random windows, masked with `rng`."""
        return self._mask(*self.windows(rng), rng)

    def loss(self, model: Transformer, rng: np.random.Generator) -> torch.Tensor:
        """The masked loss of one fresh batch (`batch`)."""
        return masked_loss(model, *self.batch(rng), self.precision)

    @torch.no_grad()
    def evaluate(self, model: Transformer, batch: int = 16) -> float:
        """Mean masked loss per predicted token over the fixed validation windows and masks."""
        ids, maskable, starts = fixed_windows(
            self.valid, self.valid_starts, self.specials, self.context, self.eval_tokens
        )
        masks = np.random.default_rng([self.seed, 1])  # its own stream, the same at every evaluation
        inputs, labels = self._mask(ids, maskable, starts, masks)
        was_training = model.training
        model.eval()
        total = sum(
            masked_loss(model, inputs[i : i + batch], labels[i : i + batch], self.precision, "sum").item()
            for i in range(0, len(inputs), batch)
        )
        model.train(was_training)
        return total / max(1, int((labels != IGNORE_INDEX).sum()))

    def _mask(self, ids, maskable, starts, rng) -> tuple[np.ndarray, np.ndarray]:
        specials = self.specials
        return mask_tokens(ids, maskable, self.mask_prob, specials.mask_id, self.vocab_size, rng, starts)
