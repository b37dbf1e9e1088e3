"""Llama-architecture checkpoints (`LlamaForCausalLM`): the config and tensor-name mapping, both directions.

Spec: transformers' `LlamaConfig` / `modeling_llama.py` (Touvron et al. 2023; RMSNorm, SwiGLU, RoPE in the
"half" layout, grouped-query attention) and its RoPE parameters (`modeling_rope_utils.py`). A config.json
may carry them in either format, and both are read: transformers 5's `rope_parameters` (with `rope_theta`
inside) or 4.x's top-level `rope_theta` + `rope_scaling` (`type` or `rope_type`). Export writes both, so
either version reads the folder.
Reference implementation, tested against: `transformers.LlamaForCausalLM` built from a small random config
(every hidden state and the logits within 1e-5, greedy generation with the cache identical, every scaling
type; tests/model/test_llama.py).

RoPE types: default, linear, dynamic, yarn and llama3 map one to one (transformers' dynamic takes its L0
from `max_position_embeddings`, so that is where export puts `rope_original_max_position`). Our static
`ntk` is plain RoPE with the base theta · s^(D/(D-2)), and exports so. YaRN's `mscale`/`mscale_all_dim`
(DeepSeek) become the attention factor transformers derives from them. Not supported, each a one-line
error: longrope and other types, `partial_rotary_factor` < 1, a `head_dim` other than hidden / heads,
`attention_bias` differing from `mlp_bias`, and YaRN with `truncate: false`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig

LLAMA_DEFAULTS: dict[str, Any] = {  # transformers.LlamaConfig()
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "pad_token_id": None,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "mlp_bias": False,
    "head_dim": None,
    "partial_rotary_factor": 1.0,
}
LLAMA_LAYER = {  # our block part -> LlamaDecoderLayer part
    "ln1": "input_layernorm",
    "attn.q": "self_attn.q_proj",
    "attn.k": "self_attn.k_proj",
    "attn.v": "self_attn.v_proj",
    "attn.o": "self_attn.o_proj",
    "ln2": "post_attention_layernorm",
    "mlp.gate": "mlp.gate_proj",
    "mlp.fc": "mlp.up_proj",
    "mlp.proj": "mlp.down_proj",
}
LLAMA_SHAPE = {  # what a model needs to be a LlamaForCausalLM
    "positional": "rope",
    "norm": "pre",
    "norm_type": "rms",
    "gated_mlp": True,
    "final_norm": True,
    "embedding_norm": False,
    "type_vocab_size": 0,
    "rope_layout": "half",
}
LLAMA_IGNORED = ("rotary_emb.inv_freq",)  # a buffer older checkpoints saved


def llama_settings(c: dict[str, Any], source: Path) -> dict[str, Any]:
    """ModelConfig fields of an HF Llama config.json (missing keys take LlamaConfig's defaults).

    Raises:
        LlmlabError: a setting llmlab's Transformer does not implement (named, with the file).
    """
    c = LLAMA_DEFAULTS | c
    heads = c["num_attention_heads"]
    problem = _llama_problem(c)
    if problem:
        raise LlmlabError(f"{source}: {problem}, which llmlab's Transformer does not implement")
    return {
        "vocab_size": c["vocab_size"],
        "d_model": c["hidden_size"],
        "n_layers": c["num_hidden_layers"],
        "n_heads": heads,
        "n_kv_heads": c["num_key_value_heads"] if c["num_key_value_heads"] not in (None, heads) else None,
        "d_ff": c["intermediate_size"],
        "max_seq_len": c["max_position_embeddings"],
        "positional": "rope",
        "causal": True,
        "norm": "pre",
        "norm_type": "rms",
        "gated_mlp": True,
        "layer_norm_eps": c["rms_norm_eps"],
        "attn_dropout": c["attention_dropout"],
        "bias": c["attention_bias"],
        "tie_embeddings": c["tie_word_embeddings"],
        "pad_token_id": c["pad_token_id"],
    } | rope_settings(c, source)


def _llama_problem(c: dict[str, Any]) -> str | None:
    if c["attention_bias"] != c["mlp_bias"]:
        return f"attention_bias={c['attention_bias']} with mlp_bias={c['mlp_bias']}"
    head_dim = c["head_dim"]
    if head_dim is not None and head_dim * c["num_attention_heads"] != c["hidden_size"]:
        return f"head_dim={head_dim} other than hidden_size / num_attention_heads"
    partial = _rope_dict(c).get("partial_rotary_factor", c["partial_rotary_factor"])
    if partial != 1.0:
        return f"partial_rotary_factor={partial}"
    return None


def _rope_dict(c: dict[str, Any]) -> dict[str, Any]:
    """The RoPE parameters, from transformers 5's `rope_parameters` or 4.x's `rope_scaling` (+ `rope_theta`)."""
    found = c.get("rope_scaling") or c.get("rope_parameters") or {}
    if not isinstance(found, dict):
        return {"rope_type": repr(found)}
    return {"rope_theta": c.get("rope_theta", 10000.0)} | found


def rope_settings(c: dict[str, Any], source: Path) -> dict[str, Any]:
    """The `rope_*` ModelConfig fields of a Llama config dict (defaults already merged in)."""
    rope = _rope_dict(c)
    kind = rope.get("rope_type", rope.get("type", "default"))
    out: dict[str, Any] = {"rope_theta": float(rope["rope_theta"])}
    if kind == "default":
        return out
    if kind not in ("linear", "dynamic", "yarn", "llama3"):
        raise LlmlabError(
            f"{source}: unsupported rope_type {kind!r}; llmlab reads linear, dynamic, yarn, llama3"
        )
    original = rope.get("original_max_position_embeddings", c["max_position_embeddings"])
    factor = rope.get("factor") or c["max_position_embeddings"] / original  # yarn may leave it out
    out |= {"rope_scaling": kind, "rope_scaling_factor": float(factor)}
    if kind == "linear":
        return out
    if kind == "dynamic":
        return out | {"rope_original_max_position": c["max_position_embeddings"]}
    out["rope_original_max_position"] = original
    if kind == "llama3":
        return out | {
            "rope_low_freq_factor": float(rope["low_freq_factor"]),
            "rope_high_freq_factor": float(rope["high_freq_factor"]),
        }
    return out | _yarn_settings(rope, float(factor), source)


def _yarn_settings(rope: dict[str, Any], factor: float, source: Path) -> dict[str, Any]:
    if rope.get("truncate", True) is not True:
        raise LlmlabError(f"{source}: yarn with truncate=false, which llmlab does not implement")
    attention = rope.get("attention_factor")
    mscale = rope.get("mscale")
    mscale_all = rope.get("mscale_all_dim")
    if attention is None and mscale and mscale_all:  # transformers' reading of DeepSeek's two mscales
        attention = _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all)
    return {
        "rope_beta_fast": float(rope.get("beta_fast") or 32.0),
        "rope_beta_slow": float(rope.get("beta_slow") or 1.0),
        "rope_attention_factor": None if attention is None else float(attention),
    }


def _yarn_mscale(factor: float, mscale: float) -> float:
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def llama_config(config: ModelConfig, hidden_act: str) -> dict[str, Any]:
    """The LlamaConfig dict (config.json) of an exportable config, with HF's name of its activation."""
    rope, max_positions = hf_rope_parameters(config)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.ff_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": hidden_act,
        "max_position_embeddings": max_positions,
        "rms_norm_eps": config.layer_norm_eps,
        "attention_bias": config.bias,
        "mlp_bias": config.bias,
        "attention_dropout": config.attn_dropout,
        "tie_word_embeddings": config.tie_embeddings,
        "pad_token_id": config.pad_token_id,
        "rope_parameters": rope,  # transformers 5
        "rope_theta": rope["rope_theta"],  # transformers 4.x
        "rope_scaling": None if rope["rope_type"] == "default" else rope,
        "dtype": "float32",
    }


def hf_rope_parameters(config: ModelConfig) -> tuple[dict[str, Any], int]:
    """(transformers' `rope_parameters` dict, `max_position_embeddings`) for a RoPE ModelConfig."""
    kind = config.rope_scaling
    factor = config.rope_scaling_factor
    if kind is None:
        return {"rope_type": "default", "rope_theta": config.rope_theta}, config.max_seq_len
    if kind == "ntk":  # a static base change: plain RoPE with the new base
        base = config.rope_theta * factor ** (config.head_dim / (config.head_dim - 2))
        return {"rope_type": "default", "rope_theta": base}, config.max_seq_len
    rope = {"rope_type": kind, "rope_theta": config.rope_theta, "factor": factor}
    if kind == "dynamic":
        return rope, config.rope_original_max_position
    max_positions = config.max_seq_len
    if kind in ("yarn", "llama3"):  # transformers expects max_position_embeddings to be the extended length
        rope["original_max_position_embeddings"] = config.rope_original_max_position
        max_positions = max(max_positions, math.ceil(factor * config.rope_original_max_position))
    if kind == "llama3":
        rope |= {
            "low_freq_factor": config.rope_low_freq_factor,
            "high_freq_factor": config.rope_high_freq_factor,
        }
    if kind == "yarn":
        rope |= {"beta_fast": config.rope_beta_fast, "beta_slow": config.rope_beta_slow}
        if config.rope_attention_factor is not None:
            rope["attention_factor"] = config.rope_attention_factor
    return rope, max_positions


def llama_names(n_layers: int, tied: bool) -> dict[str, str]:
    """Our name -> LlamaForCausalLM's name for every tensor (biases included; absent ones are skipped)."""
    names = {"tok_emb.weight": "model.embed_tokens.weight", "ln_f.weight": "model.norm.weight"}
    if not tied:
        names["lm_head.weight"] = "lm_head.weight"
    for i in range(n_layers):
        for ours, theirs in LLAMA_LAYER.items():
            for p in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{p}"] = f"model.layers.{i}.{theirs}.{p}"
    return names
