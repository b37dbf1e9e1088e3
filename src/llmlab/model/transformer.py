"""The Transformer: one stack of blocks for a causal language model and for a bidirectional encoder.

Papers: Vaswani et al. (2017), "Attention Is All You Need"; the decoder-only LM of GPT-2 (Radford et al. 2019,
pre-LN), the encoder of BERT (Devlin et al. 2019, post-LN, token types, embedding LayerNorm) and Llama
(Touvron et al. 2023: RMSNorm, SwiGLU, RoPE; grouped-query attention, Ainslie et al. 2023, "GQA").
Reference implementations: nanoGPT `model.py` (layout, weight init with the 1/√(2·n_layers) residual scale)
and HF GPT-2 / BERT / Llama, whose parts map one to one onto ours (tok_emb, pos, type_emb, emb_norm,
blocks[i].attn.{q,k,v,o}, blocks[i].ln1/ln2, blocks[i].mlp.{fc,gate,proj}, ln_f, lm_head), and whose
`hidden_states` convention we keep: embeddings output, then each block, the last one after ln_f.
An encoder with `mlm_head` has BERT's masked-LM head (mlm_head.py): `logits = lm_head(mlm_transform(x))`,
lm_head tied to tok_emb with a bias; `last_hidden_state` stays the encoder's output.
Grouped-query attention: k and v have n_kv_heads heads (the cache keeps that many); query head h reads
key/value head h // (H / H_kv), as HF's `repeat_kv`.

Attention runs through `scaled_dot_product_attention`; the causal/padding mask and any positional score bias
are added into one float `attn_mask`, and a plain causal pass with no bias uses `is_causal` instead. Only an
encoding that needs the probabilities (Shaw's relative values) takes the explicit-softmax path, and bf16
training on the CPU takes bf16_attention.py's three kernels, faster there than SDPA's. Dropout layers are
dropout.py's: `F.dropout` in float32, cheaper masks in the bf16 modes.
Positions: the new tokens sit after the KV cache; prefix-tuning keys (`prefix_kv`) have no position, are
visible to every query, and never enter the cache (pass them on every call).

Dimensions:
    B batch, T new tokens (queries), L tokens already in the KV cache, S = L + T positional keys,
    P prefix-tuning keys, C d_model, H heads, Hkv key/value heads, D head size (C / H), F MLP hidden size,
    V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmlab.errors import LlmlabError
from llmlab.model.bf16_attention import bf16_attention, bf16_attention_pays
from llmlab.model.config import ModelConfig
from llmlab.model.dropout import Dropout, dropout
from llmlab.model.mlm_head import MLMTransform
from llmlab.model.mlp import MLP, build_norm
from llmlab.model.positional import PositionalEncoding, build_positional
from llmlab.model.precision import autocast_input

if TYPE_CHECKING:
    from llmlab.model.generate import KVCache


@dataclass
class TransformerOutput:
    logits: Tensor | None  # (B, T, V); None for an encoder without an LM head
    last_hidden_state: Tensor  # (B, T, C), after ln_f when there is one
    hidden_states: list[Tensor] | None = None  # n_layers + 1 of (B, T, C) when asked for
    cache: KVCache | None = None  # the cache passed in, now holding these tokens too


@dataclass
class AttentionContext:
    """What every layer's attention needs to know about this forward pass; built once by the Transformer."""

    q_pos: Tensor  # (T,) absolute positions of the new tokens
    k_pos: Tensor  # (S,) positions of all positional keys: the cached tokens, then the new ones
    mask: Tensor | None  # (B|1, 1, T, P + S) additive: 0 visible, dtype-min hidden; None: all visible
    plain_causal: bool  # `mask` is just the square causal mask, so SDPA's is_causal can stand in for it


def build_mask(
    q_pos: Tensor,
    k_pos: Tensor,
    n_prefix: int,
    key_mask: Tensor | None,
    causal: bool,
    dtype: torch.dtype,
    documents: Tensor | None = None,
) -> Tensor | None:
    """The additive attention mask (B|1, 1, T, P + S), or None when every query sees every key.

    Args:
        q_pos: (T,) query positions; k_pos: (S,) key positions (a causal query sees keys at or before it).
        n_prefix: P, prefix keys in front of the positional ones, visible to all queries.
        key_mask: (B, S) 1 keep / 0 padding, or None.
        causal: hide future keys.
        dtype: the dtype of the scores.
        documents: (B, T) document ids of queries and keys (T = S, no cache): a query sees its document only.
    """
    keep = (k_pos[None, :] <= q_pos[:, None])[None, None] if causal else None  # (1, 1, T, S)
    for part in _padding(key_mask), _same_document(documents):
        if part is not None:
            keep = part if keep is None else keep & part
    if keep is None:
        return None
    if n_prefix:
        prefix = keep.new_ones(*keep.shape[:-1], n_prefix)  # (B|1, 1, T|1, P)
        keep = torch.cat([prefix, keep.expand(*prefix.shape[:-1], -1)], dim=-1)
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, torch.finfo(dtype).min)


def _padding(key_mask: Tensor | None) -> Tensor | None:
    return None if key_mask is None else key_mask.bool()[:, None, None, :]  # (B, 1, 1, S)


def _same_document(documents: Tensor | None) -> Tensor | None:
    return (
        None if documents is None else (documents[:, :, None] == documents[:, None, :])[:, None]
    )  # (B,1,T,T)


class Attention(nn.Module):
    """Multi-head self-attention whose positional encoding is passed in at each call."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        C = config.d_model
        kv_width = config.kv_heads * config.head_dim
        self.n_heads, self.n_kv_heads = config.n_heads, config.kv_heads
        self.n_rep = config.n_heads // config.kv_heads  # query heads per key/value head
        self.q = nn.Linear(C, C, bias=config.bias)
        self.k = nn.Linear(C, kv_width, bias=config.bias)
        self.v = nn.Linear(C, kv_width, bias=config.bias)
        self.o = nn.Linear(C, C, bias=config.bias)
        self.attn_dropout = config.attn_dropout
        self.resid_dropout = Dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        pos: PositionalEncoding,
        ctx: AttentionContext,
        prefix: tuple[Tensor, Tensor] | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> Tensor:
        """x (B, T, C) -> (B, T, C); prefix: (B|1, H, P, D) keys and values; cache: this layer is `layer`."""
        B, T, C = x.shape
        x = autocast_input(x)  # one cast for q, k and v under autocast
        q = self._split_heads(self.q(x), self.n_heads)  # (B, H, T, D)
        k, v = (self._split_heads(proj(x), self.n_kv_heads) for proj in (self.k, self.v))  # (B, Hkv, T, D)
        q, k = pos.rotate(q, k, ctx.q_pos, ctx.q_pos)  # the new keys sit at the new positions
        if cache is not None:
            k, v = cache.append(layer, k, v)  # (B, Hkv, S, D)
        k, v = _repeat_kv(k, self.n_rep), _repeat_kv(v, self.n_rep)  # (B, H, S, D)
        bias = pos.bias(q, ctx.q_pos, ctx.k_pos)  # (B|1, H|1, T, S) or None
        if prefix is not None:
            k, v, bias = _prepend(prefix, k, v, bias)  # (B, H, P + S, D)
        y = self._attend(q, k, v, bias, pos, ctx)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, H, D) -> (B, T, C)
        return self.resid_dropout(self.o(y))

    @staticmethod
    def _split_heads(x: Tensor, heads: int) -> Tensor:
        B, T, width = x.shape
        return x.view(B, T, heads, width // heads).transpose(1, 2)  # (B, heads, T, D)

    def _attend(self, q, k, v, bias, pos: PositionalEncoding, ctx: AttentionContext) -> Tensor:
        """softmax(q·k/√D + bias + mask) v: through SDPA, through `bf16_attention` where that pays (bf16
        training on the CPU), or explicitly where the encoding needs the probabilities."""
        p = self.attn_dropout if self.training else 0.0
        kernels = not pos.needs_probs and bf16_attention_pays(q, k, v, p)
        if bias is None and ctx.plain_causal and not (pos.needs_probs or kernels):
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        attn_mask = _add(bias, ctx.mask, q.dtype)  # (B|1, H|1, T, P + S) or None
        if kernels:
            return bf16_attention(q, k, v, attn_mask, p)
        if not pos.needs_probs:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, P + S)
        if attn_mask is not None:
            scores = scores + attn_mask
        probs = dropout(scores.softmax(dim=-1), p)  # a bf16 softmax accumulates in float32
        n_prefix = k.shape[2] - len(ctx.k_pos)
        y = probs @ v  # (B, H, T, D)
        extra = pos.values(probs[..., n_prefix:], ctx.q_pos, ctx.k_pos)  # positional keys only
        return y if extra is None else y + extra


def _repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """(B, Hkv, S, D) -> (B, Hkv * n_rep, S, D): each key/value head serves n_rep query heads in a row."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def _prepend(prefix: tuple[Tensor, Tensor], k: Tensor, v: Tensor, bias: Tensor | None):
    """Put prefix-tuning keys/values (B|1, H, P, D) in front; they have no position, so a zero bias."""
    B = k.shape[0]
    P = prefix[0].shape[2]
    k = torch.cat([prefix[0].expand(B, -1, -1, -1), k], dim=2)  # (B, H, P + S, D)
    v = torch.cat([prefix[1].expand(B, -1, -1, -1), v], dim=2)
    return k, v, None if bias is None else F.pad(bias, (P, 0))


def _add(bias: Tensor | None, mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """bias + mask, either of which may be None, in the dtype SDPA wants (the query's); converted to a
    narrower dtype, float32's minimum would round to -inf (a row of those softmaxes to NaN), so it is clamped."""
    total = mask if bias is None else (bias if mask is None else bias + mask)
    if total is None or total.dtype == dtype:
        return total
    return total.to(dtype).clamp_(min=torch.finfo(dtype).min)


class Block(nn.Module):
    """Attention then MLP, each with a residual; a norm before each (pre) or after each sum (post, BERT)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pre_norm = config.norm == "pre"
        self.ln1 = build_norm(config)
        self.attn = Attention(config)
        self.ln2 = build_norm(config)
        self.mlp = MLP(config)

    def forward(
        self, x: Tensor, pos: PositionalEncoding, ctx: AttentionContext, prefix=None, cache=None, layer=0
    ):
        if self.pre_norm:
            x = x + self.attn(self.ln1(x), pos, ctx, prefix, cache, layer)
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x, pos, ctx, prefix, cache, layer))
        return self.ln2(x + self.mlp(x))


class Transformer(nn.Module):
    """Token (+ type) embeddings, a positional encoding, `n_layers` blocks, a final norm and an LM head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        C = config.d_model
        V = config.vocab_size
        self.tok_emb = nn.Embedding(V, C)
        self.pos = build_positional(config)
        self.type_emb = nn.Embedding(config.type_vocab_size, C) if config.type_vocab_size else None
        self.emb_norm = build_norm(config) if config.embedding_norm else None
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = build_norm(config) if config.final_norm else None
        self.mlm_transform = MLMTransform(config) if config.mlm_head else None
        has_head = config.causal or config.tie_embeddings
        self.lm_head = nn.Linear(C, V, bias=config.mlm_head) if has_head else None  # BERT: an output bias
        self.apply(_init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by 1/√(2·n_layers)
            if name.endswith(("attn.o.weight", "mlp.proj.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))
        if self.lm_head is not None and config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        prefix_kv: list[tuple[Tensor, Tensor]] | None = None,
        cache: KVCache | None = None,
        output_hidden_states: bool = False,
        logits_at: Tensor | None = None,
        document_ids: Tensor | None = None,
    ) -> TransformerOutput:
        """Run the model on T new tokens.

        Args:
            input_ids: (B, T) token ids; or give inputs_embeds (B, T, C) instead (prompt tuning).
            attention_mask: (B, T) 1 keep / 0 padding for these tokens (a cache remembers earlier ones).
            token_type_ids: (B, T) segment ids (needs type_vocab_size > 0); None means all 0.
            prefix_kv: per layer (keys, values), each (B|1, H, P, D) with the same P in every layer,
                prepended to that layer's keys/values; not rotated, not cached, seen by every query.
            cache: a KVCache; the tokens continue at position cache.length and are appended to it.
            output_hidden_states: also return the n_layers + 1 hidden states.
            logits_at: (B, T) bool; the logits only at its True positions, (N, V) in row-major order
                (masked-LM training scores ~15% of the tokens, so the head skips the rest).
            document_ids: (B, T) ints; a token attends only to tokens of its own document (packed
                training windows; no cache, no prefix). Positions are not reset at a document start.

        Returns:
            TransformerOutput with logits (B, T, V) (None without an LM head) and last_hidden_state (B, T, C).

        Raises:
            LlmlabError: inconsistent inputs, or a sequence longer than a learned position table.
        """
        x = self._embed_tokens(input_ids, inputs_embeds, token_type_ids)  # (B, T, C)
        B, T, _ = x.shape
        past = 0 if cache is None else cache.length
        self.pos.check_length(past + T)
        ctx = self._context(x, past, attention_mask, prefix_kv, cache, document_ids)
        x = self.pos.embed(x, ctx.q_pos)
        x = self.drop(x if self.emb_norm is None else self.emb_norm(x))
        hidden = [x] if output_hidden_states else None
        for i, block in enumerate(self.blocks):
            prefix = None if prefix_kv is None else prefix_kv[i]
            x = block(x, self.pos.for_layer(i), ctx, prefix, cache, i)
            if hidden is not None:
                hidden.append(x)
        if self.ln_f is not None:
            x = self.ln_f(x)
        if hidden is not None:
            hidden[-1] = x  # as HF: the last hidden state is taken after the final norm
        if cache is not None:
            cache.length += T
        return TransformerOutput(self._logits(x if logits_at is None else x[logits_at]), x, hidden, cache)

    def _logits(self, x: Tensor) -> Tensor | None:
        """(..., C) -> (..., V) through the LM head (after BERT's MLM transform); None without a head."""
        if self.lm_head is None:
            return None
        return self.lm_head(x if self.mlm_transform is None else self.mlm_transform(x))

    def _embed_tokens(self, input_ids, inputs_embeds, token_type_ids) -> Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise LlmlabError("Transformer.forward: pass exactly one of input_ids and inputs_embeds")
        x = self.tok_emb(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        if token_type_ids is not None and self.type_emb is None:
            raise LlmlabError(
                "Transformer.forward: token_type_ids given but the config has type_vocab_size=0"
            )
        if self.type_emb is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)
            x = x + self.type_emb(token_type_ids)
        return x

    def _context(self, x: Tensor, past: int, attention_mask, prefix_kv, cache, documents) -> AttentionContext:
        B, T, _ = x.shape
        if documents is not None and (cache is not None or prefix_kv is not None):
            raise LlmlabError("Transformer.forward: document_ids work without a cache and without prefix_kv")
        if documents is not None and tuple(documents.shape) != (B, T):
            raise LlmlabError(f"document_ids has shape {tuple(documents.shape)}; expected {(B, T)}")
        if attention_mask is not None and tuple(attention_mask.shape) != (B, T):
            raise LlmlabError(f"attention_mask has shape {tuple(attention_mask.shape)}; expected {(B, T)}")
        if prefix_kv is not None and len(prefix_kv) != self.config.n_layers:
            raise LlmlabError(
                f"prefix_kv has {len(prefix_kv)} entries; the model has {self.config.n_layers} layers"
            )
        key_mask = attention_mask if cache is None else cache.extend_mask(attention_mask, B, T)  # (B, S)
        if key_mask is not None and bool(key_mask.all()):
            key_mask = None  # no padding: SDPA then runs its fused kernels without a mask
        n_prefix = 0 if prefix_kv is None else prefix_kv[0][0].shape[2]
        q_pos = torch.arange(past, past + T, device=x.device)
        k_pos = torch.arange(past + T, device=x.device)
        causal = self.config.causal
        mask = build_mask(q_pos, k_pos, n_prefix, key_mask, causal, x.dtype, documents)
        plain_causal = causal and key_mask is None and past == 0 and n_prefix == 0 and documents is None
        return AttentionContext(q_pos, k_pos, mask, plain_causal)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (tied weights once); only those with requires_grad when trainable_only."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def _init_weights(module: nn.Module) -> None:
    """GPT-2 / nanoGPT init: N(0, 0.02) for linear and embedding weights, zero biases, LayerNorm as built."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
