"""Autoregressive generation with a KV cache: greedy, temperature, top-k and nucleus (top-p) sampling.

The cache keeps, per layer, the keys and values of every token seen so far (keys already rotated, for RoPE),
so each step runs the model on one new token at position `cache.length` instead of the whole sequence
(the loop of nanoGPT's `generate`, with the cache HF keeps in `DynamicCache`, but owned here).
Tested: greedy generation with the cache yields exactly the tokens of full recomputation, for every
positional encoding, with batch > 1, and for every RoPE scaling, dynamic NTK past its original length
included (rotary.py: a token keeps the frequencies of the length at which it is written). With grouped-query
attention the cache holds only the key/value heads.

Sampling: temperature divides the logits; top-k (Fan et al. 2018, "Hierarchical Neural Story Generation")
keeps the k most likely tokens; top-p (Holtzman et al. 2020, "The Curious Case of Neural Text
Degeneration") keeps the smallest set of most likely tokens whose probability reaches p (never empty), as
HF's `TopPLogitsWarper`. Filters apply in that order. There is no end-of-sequence stop: every row gets
exactly `max_new_tokens` tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from llmlab.errors import LlmlabError

if TYPE_CHECKING:
    from llmlab.model.transformer import Transformer


class KVCache:
    """Per-layer keys and values of the tokens seen so far, their padding, and how many there are.

    Attributes:
        keys, values: per layer, (B, H, L, D) or None before the first call.
        key_mask: (B, L) 1 keep / 0 padding, or None while no call has passed an attention_mask.
        length: L, the number of cached tokens; the Transformer advances it after each forward.
    """

    def __init__(self, n_layers: int):
        self.keys: list[Tensor | None] = [None] * n_layers
        self.values: list[Tensor | None] = [None] * n_layers
        self.key_mask: Tensor | None = None
        self.length = 0

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new keys/values (B, H, T, D) of `layer`; returns all of them, (B, H, L + T, D)."""
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def extend_mask(self, attention_mask: Tensor | None, batch: int, new: int) -> Tensor | None:
        """Remember the padding of `new` tokens; returns the (B, L + new) mask of all keys, or None if none."""
        if attention_mask is None and self.key_mask is None:
            return None
        device = (attention_mask if attention_mask is not None else self.key_mask).device
        old = self.key_mask if self.key_mask is not None else torch.ones(batch, self.length, device=device)
        new_mask = attention_mask if attention_mask is not None else torch.ones(batch, new, device=device)
        self.key_mask = torch.cat([old.long(), new_mask.long()], dim=1)
        return self.key_mask


@torch.no_grad()
def generate(
    model: Transformer,
    input_ids: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    prefix_kv: list[tuple[Tensor, Tensor]] | None = None,
) -> Tensor:
    """Continue each row of `input_ids` by `max_new_tokens` tokens.

    The model runs in eval mode (no dropout) for the call and gets its previous mode back afterwards.

    Args:
        model: a causal Transformer.
        input_ids: (B, T) prompts, all of the same length (no padding).
        max_new_tokens: how many tokens to add to each row.
        temperature: divides the logits before sampling (> 0; ignored when greedy).
        top_k: keep only the k most likely tokens, or None.
        top_p: keep the most likely tokens up to probability mass p (0 < p <= 1), or None.
        greedy: take the most likely token instead of sampling.
        generator: the random generator for sampling (reproducible runs).
        use_cache: reuse keys/values (True) or recompute the whole sequence every step (same tokens).
        prefix_kv: prefix-tuning keys/values passed to every forward (see `Transformer.forward`).

    Returns:
        (B, T + max_new_tokens) the prompts followed by the new tokens.

    Raises:
        LlmlabError: the model is not causal, an argument is out of range, or the sequence would not fit a
            learned position table (checked before generating anything).
    """
    _check_arguments(model, input_ids, max_new_tokens, temperature, top_k, top_p)
    model.pos.check_length(input_ids.shape[1] + max_new_tokens - 1)  # the last token is never fed back
    was_training = model.training
    model.eval()
    try:
        cache = KVCache(model.config.n_layers) if use_cache else None
        ids, step_input = input_ids, input_ids
        for _ in range(max_new_tokens):
            logits = model(step_input, prefix_kv=prefix_kv, cache=cache).logits[:, -1, :]  # (B, V)
            token = sample_next(logits, temperature, top_k, top_p, greedy, generator)  # (B, 1)
            ids = torch.cat([ids, token], dim=1)
            step_input = token if use_cache else ids
        return ids
    finally:
        model.train(was_training)


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick one token per row from logits (B, V); returns (B, 1) token ids."""
    if greedy:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # drop a token once the ones before it reach p
        sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)


def _check_arguments(model, input_ids, max_new_tokens, temperature, top_k, top_p) -> None:
    if not model.config.causal:
        raise LlmlabError("generate: the model is a bidirectional encoder (config causal=false)")
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise LlmlabError(
            f"generate: input_ids must be (batch, tokens) with tokens > 0, not {tuple(input_ids.shape)}"
        )
    if max_new_tokens < 0:
        raise LlmlabError(f"generate: max_new_tokens={max_new_tokens} must be >= 0")
    if temperature <= 0:
        raise LlmlabError(f"generate: temperature={temperature} must be > 0 (use greedy=True for argmax)")
    if top_k is not None and top_k < 1:
        raise LlmlabError(f"generate: top_k={top_k} must be >= 1")
    if top_p is not None and not 0 < top_p <= 1:
        raise LlmlabError(f"generate: top_p={top_p} must be in (0, 1]")
