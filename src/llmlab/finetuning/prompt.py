"""Prompt tuning: N learnable virtual-token embeddings in front of the input; the model stays frozen.

Paper: Lester et al. (2021), "The Power of Scale for Parameter-Efficient Prompt Tuning". Reference
implementation, tested against: HF PEFT's `PromptEmbedding` and `PeftModelForSequenceClassification.forward`
(peft/tuners/prompt_tuning/model.py, peft/peft_model.py): the prompt (P, C) is concatenated before the word
embeddings and the whole sequence goes through the model as `inputs_embeds`, so the virtual tokens get
positions 0..P-1, token type 0 and the embedding LayerNorm like real tokens; the attention mask is extended
with ones and the token type ids with zeros.

Initialisation (`prompt_init`), as peft's `PromptTuningInit`:
- "vocab": the embeddings of P token ids drawn uniformly from the vocabulary (SAMPLE_VOCAB);
- "text": the ids of `prompt_init_text` (special tokens included, as peft's `tokenizer(text)`), repeated or
  cut to P (TEXT);
- "random": N(0, σ²) with σ the standard deviation of the word-embedding table. Deliberate deviation: peft's
  RANDOM keeps nn.Embedding's N(0, 1), far larger than trained embeddings (BERT's σ ≈ 0.05).

Dimensions: B batch, T tokens, P virtual tokens, C d_model.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from llmlab.errors import LlmlabError
from llmlab.tokenizer.pipeline import Tokenizer

PROMPT_INITS = ("random", "vocab", "text")


class PromptEncoder(nn.Module):
    """The virtual-token table, `embedding.weight` (P, C) as in peft, and how it is put before the input."""

    def __init__(self, init: Tensor):
        super().__init__()
        self.embedding = nn.Embedding(*init.shape)  # (P, C)
        with torch.no_grad():
            self.embedding.weight.copy_(init)

    @property
    def num_virtual_tokens(self) -> int:
        return self.embedding.num_embeddings

    def prepend(
        self, embeds: Tensor, attention_mask: Tensor | None, token_type_ids: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Put the prompt before `embeds` (B, T, C); extend the mask with ones and the type ids with zeros.

        Returns:
            (inputs_embeds (B, P + T, C), attention_mask (B, P + T) or None, token_type_ids (B, P + T) or None).
        """
        B = embeds.shape[0]
        P = self.num_virtual_tokens
        prompt = self.embedding.weight.to(embeds.dtype)[None].expand(B, -1, -1)  # (B, P, C)
        embeds = torch.cat([prompt, embeds], dim=1)  # (B, P + T, C)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask.new_ones(B, P), attention_mask], dim=1)
        if token_type_ids is not None:
            token_type_ids = torch.cat([token_type_ids.new_zeros(B, P), token_type_ids], dim=1)
        return embeds, attention_mask, token_type_ids


def apply_prompt(
    model: nn.Module,
    tokenizer: Tokenizer,
    num_virtual_tokens: int,
    init: str = "random",
    init_text: str | None = None,
) -> PromptEncoder:
    """Freeze `model` and make its prompt encoder.

    Args:
        model: a llmlab Transformer (its `tok_emb` supplies the initial vectors).
        tokenizer: the model's tokenizer (for "text").
        num_virtual_tokens: P, at least 1.
        init: one of PROMPT_INITS (see the module docstring).
        init_text: the text for "text".

    Returns:
        A PromptEncoder on the model's device.

    Raises:
        LlmlabError: P < 1, an unknown init, "text" without a text (or one that gives no tokens).
    """
    if not isinstance(num_virtual_tokens, int) or num_virtual_tokens < 1:
        raise LlmlabError(f"num_virtual_tokens={num_virtual_tokens!r} must be a positive integer")
    model.requires_grad_(False)
    table = model.tok_emb.weight.detach()  # (V, C)
    return PromptEncoder(initial_prompt(table, tokenizer, num_virtual_tokens, init, init_text))


def initial_prompt(
    table: Tensor,
    tokenizer: Tokenizer,
    num_virtual_tokens: int,
    init: str,
    init_text: str | None,
) -> Tensor:
    """The starting prompt (P, C) from the word-embedding `table` (V, C) and torch's global random source."""
    P, (V, C) = num_virtual_tokens, table.shape
    if init == "random":
        std = table.float().std().item()
        return torch.randn(P, C).mul_(std).to(table)
    if init == "vocab":
        return table[torch.randint(0, V, (P,))].clone()
    if init == "text":
        return table[torch.tensor(text_token_ids(tokenizer, init_text, P))].clone()
    raise LlmlabError(f"prompt_init={init!r}: choose one of {', '.join(PROMPT_INITS)}")


def text_token_ids(tokenizer: Tokenizer, text: str | None, n: int) -> list[int]:
    """The ids of `text` (with special tokens, untruncated) repeated or cut to `n`, as peft's TEXT init."""
    if not text:
        raise LlmlabError("prompt_init='text' needs prompt_init_text")
    tokenizer = copy.copy(tokenizer)  # the model's own settings untouched
    tokenizer.no_truncation()
    tokenizer.no_padding()
    ids = tokenizer.encode(text).ids
    if not ids:
        raise LlmlabError(f"prompt_init_text {text!r} gives no tokens")
    return (ids * math.ceil(n / len(ids)))[:n]
