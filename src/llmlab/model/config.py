"""ModelConfig: every setting of the Transformer, validated when it is built, saved as JSON beside the weights.

One config describes a decoder-only language model (GPT-2: `causal=True`, pre-LN), a Llama-architecture
one (`norm_type="rms"`, `gated_mlp=True` with `activation="silu"` for SwiGLU, `n_kv_heads` for grouped-query
attention, `bias=False`, `positional="rope"`) and a bidirectional encoder (BERT: `causal=False`,
`norm="post"`, `embedding_norm=True`, `final_norm=False`, `type_vocab_size=2`). The positional encoding is
picked by name from `llmlab.model.positional.POSITIONAL`.

Rules worth knowing (each is checked, none is silent):
- `d_ff=None` means 4 * d_model; read the resolved size from `ff_dim`.
- The LM head exists when `causal` or `tie_embeddings`: an encoder with untied embeddings has no head
  (logits None), like a plain `BertModel`.
- `mlm_head=True` puts BERT's masked-LM transform (dense, activation, norm; mlm_head.py) before the tied
  head and gives the head an output bias, as `BertForMaskedLM`; only for an encoder with tied embeddings.
- `n_kv_heads=None` means n_heads (multi-head attention); otherwise it must divide n_heads.
- `rope_scaling` only makes sense with `positional="rope"`, and each `rope_*` parameter only with a scaling
  type that reads it (positional/rope_scaling.py says which, and checks them).
- `max_seq_len` bounds only the learned position table; the other encodings run at any length.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_json, read_json
from llmlab.model.positional import POSITIONAL
from llmlab.model.positional.rope_scaling import SCALINGS, scaling_problem

NORMS = ("pre", "post")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")
ROPE_LAYOUTS = ("half", "interleaved")
NORM_TYPES = ("layer", "rms")
ROPE_SCALINGS = (None, *SCALINGS)


@dataclass
class ModelConfig:
    """All settings of one Transformer; see the module docstring for how they interact."""

    vocab_size: int
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # grouped-query attention (Ainslie et al. 2023); None: n_heads
    d_ff: int | None = None  # None: 4 * d_model
    max_seq_len: int = 512  # size of the learned position table
    positional: str = "rope"  # a key of POSITIONAL
    causal: bool = True  # decoder-only LM (True) or bidirectional encoder (False)
    norm: str = "pre"  # "pre" (GPT-2, Llama) or "post" (original Transformer, BERT)
    norm_type: str = "layer"  # "layer" (LayerNorm) or "rms" (RMSNorm, Zhang & Sennrich 2019; Llama)
    activation: str = "gelu"  # gelu (erf), gelu_tanh (GPT-2 "gelu_new"), relu, silu
    gated_mlp: bool = False  # act(gate(x)) * fc(x) (Shazeer 2020, "GLU Variants"; SwiGLU with silu)
    layer_norm_eps: float = 1e-5
    dropout: float = 0.0
    attn_dropout: float = 0.0
    bias: bool = True  # biases in the linear layers and LayerNorms
    tie_embeddings: bool = True  # lm_head shares tok_emb's weight
    mlm_head: bool = False  # BERT's MLM head: transform, then the tied lm_head with a bias
    type_vocab_size: int = 0  # BERT token-type embeddings when > 0
    embedding_norm: bool = False  # LayerNorm right after the embeddings (BERT)
    final_norm: bool = True  # LayerNorm after the last block (GPT-2 ln_f; False for BERT post-LN)
    pad_token_id: int | None = None  # recorded for collation and export; the model reads attention_mask
    rope_theta: float = 10000.0
    rope_layout: str = "half"  # "half" (HF Llama / GPT-NeoX) or "interleaved" (GPT-J / Meta Llama)
    rope_scaling: str | None = None  # None, linear, ntk, dynamic, yarn, llama3 (positional/rope_scaling.py)
    rope_scaling_factor: float = 1.0  # s
    rope_original_max_position: int | None = None  # L0, the trained length (dynamic, yarn, llama3)
    rope_beta_fast: float = 32.0  # yarn
    rope_beta_slow: float = 1.0  # yarn
    rope_attention_factor: float | None = None  # yarn; None: 0.1 ln(s) + 1
    rope_low_freq_factor: float = 1.0  # llama3
    rope_high_freq_factor: float = 4.0  # llama3
    relative_max_distance: int = 16  # Shaw et al.: distances clipped to ±k
    t5_num_buckets: int = 32
    t5_max_distance: int = 128
    tokenizer_fingerprint: str | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise LlmlabError(f"model config: {problem}")

    @property
    def head_dim(self) -> int:
        """Size D of one attention head: d_model / n_heads."""
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads: `n_kv_heads`, or n_heads when it is None."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def ff_dim(self) -> int:
        """Hidden size of the MLP: `d_ff`, or 4 * d_model when it is None."""
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    def _problem(self) -> str | None:
        """The first thing wrong with this config, as one line, or None."""
        positive = ["vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len", "relative_max_distance"]
        for name in positive:
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                return f"{name}={getattr(self, name)!r} must be a positive integer"
        if self.d_ff is not None and (not _is_int(self.d_ff) or self.d_ff < 1):
            return f"d_ff={self.d_ff!r} must be None or a positive integer"
        pad = self.pad_token_id
        if pad is not None and (not _is_int(pad) or not 0 <= pad < self.vocab_size):
            return f"pad_token_id={pad!r} must be None or a token id below vocab_size={self.vocab_size}"
        flags = ["causal", "bias", "tie_embeddings", "mlm_head", "embedding_norm", "final_norm", "gated_mlp"]
        for name in flags:
            if not isinstance(getattr(self, name), bool):
                return f"{name}={getattr(self, name)!r} must be true or false"
        if self.mlm_head and self.causal:
            return "mlm_head=true is BERT's masked-LM head; it needs an encoder (causal=false)"
        if self.mlm_head and not self.tie_embeddings:
            return "mlm_head=true needs tie_embeddings=true (its decoder is the token embedding matrix)"
        if self.d_model % self.n_heads:
            return f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}"
        kv = self.n_kv_heads
        if kv is not None and (not _is_int(kv) or kv < 1 or self.n_heads % kv):
            return f"n_kv_heads={kv!r} must be None or a positive integer dividing n_heads={self.n_heads}"
        choices = [
            ("positional", tuple(POSITIONAL)),
            ("norm", NORMS),
            ("norm_type", NORM_TYPES),
            ("activation", ACTIVATIONS),
            ("rope_layout", ROPE_LAYOUTS),
            ("rope_scaling", ROPE_SCALINGS),
        ]
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                names = ", ".join(str(a) if a is None else a for a in allowed)
                return f"unknown {name} {getattr(self, name)!r}; choose one of: {names}"
        return self._number_problem() or self._positional_problem()

    def _number_problem(self) -> str | None:
        if not _is_number(self.layer_norm_eps) or self.layer_norm_eps <= 0:
            return f"layer_norm_eps={self.layer_norm_eps!r} must be a positive number"
        for name in ["dropout", "attn_dropout"]:
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < 1:
                return f"{name}={value!r} must be a number in [0, 1)"
        if not _is_int(self.type_vocab_size) or self.type_vocab_size < 0:
            return f"type_vocab_size={self.type_vocab_size!r} must be a non-negative integer"
        if self.tokenizer_fingerprint is not None and not isinstance(self.tokenizer_fingerprint, str):
            return f"tokenizer_fingerprint={self.tokenizer_fingerprint!r} must be a string or None"
        return None

    def _positional_problem(self) -> str | None:
        if not _is_number(self.rope_theta) or self.rope_theta <= 1:
            return f"rope_theta={self.rope_theta!r} must be a number above 1"
        if not _is_number(self.rope_scaling_factor) or self.rope_scaling_factor <= 0:
            return f"rope_scaling_factor={self.rope_scaling_factor!r} must be a positive number"
        problem = scaling_problem(self)
        if problem:
            return problem
        if self.positional == "rope" and (self.head_dim % 2 or self.head_dim < 4):
            return f"rope needs an even head size of at least 4; d_model / n_heads = {self.head_dim}"
        if not _is_int(self.t5_num_buckets) or self.t5_num_buckets < 4:
            return f"t5_num_buckets={self.t5_num_buckets!r} must be an integer of at least 4"
        if not _is_int(self.t5_max_distance) or self.t5_max_distance <= self.t5_num_buckets // 2:
            return f"t5_max_distance={self.t5_max_distance!r} must be an integer above t5_num_buckets / 2"
        return None

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain JSON-ready dict (`d_ff` stays None when it was None)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> ModelConfig:
        """Build and validate a config from a dict.

        Args:
            d: field name -> value; missing fields take their defaults (`vocab_size` is required).
            source: where `d` came from (a path), named in error messages.

        Raises:
            LlmlabError: `d` is not a dict, has unknown or missing keys, or a value is invalid.
        """
        if not isinstance(d, dict):
            raise LlmlabError(f"{source}: a model config must be a JSON object, not {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LlmlabError(f"{source}: unknown model config keys: {', '.join(unknown)}")
        if "vocab_size" not in d:
            raise LlmlabError(f"{source}: model config is missing vocab_size")
        try:
            return cls(**d)
        except LlmlabError as e:
            raise LlmlabError(f"{source}: {e}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the config to `path` as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        """Read a config written by `save`.

        Raises:
            LlmlabError: the file is missing or corrupt, or its content is not a valid config (names the path).
        """
        return cls.from_dict(read_json(path, "model config"), source=str(path))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))
