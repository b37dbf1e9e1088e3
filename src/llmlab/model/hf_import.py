"""Import Hugging Face BERT, GPT-2 and Llama checkpoints: config.json + weights + tokenizer -> (Transformer, Tokenizer).

Spec: the checkpoint layouts of HF `transformers` (models/bert/modeling_bert.py, models/gpt2/modeling_gpt2.py)
and their config classes (`BertConfig`, `GPT2Config`, whose defaults fill keys a config.json leaves out).
Reference implementation, tested against: `transformers.AutoModel` / `GPT2LMHeadModel` on the same folder
(every hidden state within 1e-4; MiniLM-L6 on real sentences, a seeded tiny GPT-2).

- BERT (`model_type` "bert": BertModel, sentence-transformers MiniLM, BertFor* with a `bert.` prefix): post-LN,
  learned absolute positions, token types, embedding LayerNorm, no final norm. A checkpoint holding BERT's
  masked-LM head (`cls.predictions.transform.*`: BertForMaskedLM, BertForPreTraining) comes with it, as
  `mlm_head=True` (its decoder must be the word embeddings, as HF ties it). The pooler and the other task
  heads (`pooler.*`, `cls.seq_relationship.*`, `classifier.*`) are dropped; without the MLM head `logits`
  is None.
- GPT-2 (`model_type` "gpt2"): pre-LN, learned positions, final `ln_f`. Its Conv1D layers store weights as
  (in, out), so they are transposed into `nn.Linear`'s (out, in); the fused `c_attn` is split into q, k, v;
  a tied `lm_head` is `wte`.
- Llama (`model_type` "llama", LlamaForCausalLM): RMSNorm, SwiGLU, RoPE (every scaling type), grouped-query
  attention; the config and name mapping live in hf_llama.py.

The name tables here serve both directions: hf_export.py writes the same names back.
Deliberate deviation: GPT-2's `embd_pdrop` and `resid_pdrop` become our single `dropout` (resid_pdrop's
value); it only matters in training.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from llmlab.errors import LlmlabError
from llmlab.io import read_json
from llmlab.model.checkpoint import check_vocab_fits, load_weights, short_list
from llmlab.model.config import ModelConfig
from llmlab.model.hf_files import read_hf_tokenizer, read_hf_weights
from llmlab.model.hf_llama import LLAMA_DEFAULTS, LLAMA_IGNORED, llama_names, llama_settings
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.pipeline import Tokenizer

ACTIVATIONS = {  # HF `hidden_act` / `activation_function` -> ours
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
BERT_DEFAULTS: dict[str, Any] = {  # transformers.BertConfig()
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}
GPT2_DEFAULTS: dict[str, Any] = {  # transformers.GPT2Config()
    "vocab_size": 50257,
    "n_positions": 1024,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "n_inner": None,
    "activation_function": "gelu_new",
    "resid_pdrop": 0.1,
    "attn_pdrop": 0.1,
    "layer_norm_epsilon": 1e-5,
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "tie_word_embeddings": True,
    "pad_token_id": None,
}
DEFAULTS = {"bert": BERT_DEFAULTS, "gpt2": GPT2_DEFAULTS, "llama": LLAMA_DEFAULTS}
BERT_LAYER = {  # our block part -> BertLayer part
    "attn.q": "attention.self.query",
    "attn.k": "attention.self.key",
    "attn.v": "attention.self.value",
    "attn.o": "attention.output.dense",
    "ln1": "attention.output.LayerNorm",
    "mlp.fc": "intermediate.dense",
    "mlp.proj": "output.dense",
    "ln2": "output.LayerNorm",
}
BERT_MLM_HEAD = {  # our MLM head (mlm_head.py) -> BertForMaskedLM's `cls.predictions`; the decoder is tied
    "mlm_transform.dense.weight": "cls.predictions.transform.dense.weight",
    "mlm_transform.dense.bias": "cls.predictions.transform.dense.bias",
    "mlm_transform.norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "mlm_transform.norm.bias": "cls.predictions.transform.LayerNorm.bias",
    "lm_head.bias": "cls.predictions.bias",
}
TIED_DECODER = "cls.predictions.decoder.weight"  # saved by older transformers; must equal the word embeddings
GPT2_CONV1D = {"attn.o": "attn.c_proj", "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}  # weights (in, out)
GPT2_NORMS = {"ln1": "ln_1", "ln2": "ln_2"}
IGNORED = {  # HF tensors with no llmlab counterpart: buffers, the pooler, task heads
    "bert": ("embeddings.position_ids", "pooler.", "cls.", "classifier.", "qa_outputs."),
    "gpt2": (".attn.bias", ".attn.masked_bias"),
    "llama": LLAMA_IGNORED,
}


def from_hf(hf_dir: str | os.PathLike) -> tuple[Transformer, Tokenizer]:
    """Load an HF BERT, GPT-2 or Llama checkpoint folder as an llmlab model and tokenizer.

    Args:
        hf_dir: a folder with config.json, model.safetensors (or pytorch_model.bin) and tokenizer.json
            (BERT: or vocab.txt, read with tokenizer_config.json's `do_lower_case`).

    Returns:
        (model in eval mode, its config's `tokenizer_fingerprint` set; tokenizer).

    Raises:
        LlmlabError: a missing folder or file, an unsupported `model_type` or option, missing or unexpected
            tensors, or a tokenizer with ids beyond the vocabulary; the message names the file.
    """
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise LlmlabError(f"{hf_dir}: HF checkpoint folder not found")
    hf_config = read_json(hf_dir / "config.json", "HF model config")
    kind = model_type(hf_config, hf_dir / "config.json")
    config = llmlab_config(hf_config, kind, hf_dir / "config.json")
    tokenizer = read_hf_tokenizer(hf_dir, kind)
    check_vocab_fits(tokenizer, config.vocab_size, hf_dir / "tokenizer.json")
    config.tokenizer_fingerprint = tokenizer.fingerprint
    weights_path, hf_tensors = read_hf_weights(hf_dir)
    if kind == "bert" and has_mlm_head(hf_tensors):
        config = dataclasses.replace(config, tie_embeddings=True, mlm_head=True)
    model = Transformer(config)
    load_weights(model, to_llmlab_tensors(hf_tensors, kind, config, weights_path), weights_path)
    return model.eval(), tokenizer


def has_mlm_head(hf_tensors: dict[str, Tensor]) -> bool:
    """Whether BERT weights hold the masked-LM head's transform (BertForMaskedLM, BertForPreTraining)."""
    return BERT_MLM_HEAD["mlm_transform.dense.weight"] in hf_tensors


def model_type(hf_config: Any, source: Path) -> str:
    """The config's `model_type`, "bert", "gpt2" or "llama"; anything else is an LlmlabError naming it."""
    kind = hf_config.get("model_type") if isinstance(hf_config, dict) else None
    if kind not in ("bert", "gpt2", "llama"):
        raise LlmlabError(
            f"{source}: unsupported model_type {kind!r}; llmlab imports 'bert', 'gpt2' and 'llama'"
        )
    return kind


def llmlab_config(hf_config: dict, kind: str, source: Path) -> ModelConfig:
    """The ModelConfig equivalent to an HF BERT, GPT-2 or Llama config.json (missing keys: HF's defaults)."""
    c = DEFAULTS[kind] | hf_config
    activation_key = "activation_function" if kind == "gpt2" else "hidden_act"
    if c[activation_key] not in ACTIVATIONS:
        raise LlmlabError(f"{source}: unsupported {activation_key} {c[activation_key]!r}")
    settings = _settings(c, kind, source) | {"activation": ACTIVATIONS[c[activation_key]]}
    return ModelConfig.from_dict(settings, str(source))


def _settings(c: dict, kind: str, source: Path) -> dict[str, Any]:
    if kind == "llama":
        return llama_settings(c, source)
    problem = _bert_problem(c) if kind == "bert" else _gpt2_problem(c)
    if problem:
        raise LlmlabError(f"{source}: {problem}, which llmlab's Transformer does not implement")
    return (_bert_settings(c) if kind == "bert" else _gpt2_settings(c)) | {"positional": "learned"}


def _bert_problem(c: dict) -> str | None:
    if c["position_embedding_type"] != "absolute":
        return f"position_embedding_type {c['position_embedding_type']!r}"
    if c.get("is_decoder") or c.get("add_cross_attention"):
        return "a BERT decoder (is_decoder / add_cross_attention)"
    return None


def _gpt2_problem(c: dict) -> str | None:
    if not c["scale_attn_weights"]:
        return "scale_attn_weights=false"
    if c["scale_attn_by_inverse_layer_idx"]:
        return "scale_attn_by_inverse_layer_idx=true"
    if c.get("add_cross_attention"):
        return "add_cross_attention=true"
    return None


def _bert_settings(c: dict) -> dict[str, Any]:
    return {
        "vocab_size": c["vocab_size"],
        "d_model": c["hidden_size"],
        "n_layers": c["num_hidden_layers"],
        "n_heads": c["num_attention_heads"],
        "d_ff": c["intermediate_size"],
        "max_seq_len": c["max_position_embeddings"],
        "causal": False,
        "norm": "post",
        "layer_norm_eps": c["layer_norm_eps"],
        "dropout": c["hidden_dropout_prob"],
        "attn_dropout": c["attention_probs_dropout_prob"],
        "tie_embeddings": False,  # BertModel has no LM head
        "type_vocab_size": c["type_vocab_size"],
        "embedding_norm": True,
        "final_norm": False,
        "pad_token_id": c["pad_token_id"],
    }


def _gpt2_settings(c: dict) -> dict[str, Any]:
    return {
        "vocab_size": c["vocab_size"],
        "d_model": c["n_embd"],
        "n_layers": c["n_layer"],
        "n_heads": c["n_head"],
        "d_ff": c["n_inner"],
        "max_seq_len": c["n_positions"],
        "causal": True,
        "norm": "pre",
        "layer_norm_eps": c["layer_norm_epsilon"],
        "dropout": c["resid_pdrop"],
        "attn_dropout": c["attn_pdrop"],
        "tie_embeddings": c["tie_word_embeddings"],
        "pad_token_id": c["pad_token_id"],
    }


def to_llmlab_tensors(
    hf: dict[str, Tensor], kind: str, config: ModelConfig, source: Path
) -> dict[str, Tensor]:
    """HF tensors renamed (and for GPT-2 transposed / split) to our state dict names.

    Raises:
        LlmlabError: an HF tensor this mapping does not know (ignored buffers and heads aside), or a fused
            c_attn whose width is not 3 * d_model.
    """
    hf = _normalised(hf, kind)
    if kind == "gpt2":
        ours = _gpt2_to_llmlab(hf, config, source)
    else:
        names = (
            bert_names(config.n_layers, config.mlm_head)
            if kind == "bert"
            else llama_names(config.n_layers, config.tie_embeddings)
        )
        ours = {name: hf.pop(theirs) for name, theirs in names.items() if theirs in hf}
        if config.mlm_head:
            _check_tied_decoder(hf, ours, source)
        if kind == "llama" and config.tie_embeddings:
            hf.pop("lm_head.weight", None)  # some tied checkpoints store the shared matrix twice
    unknown = [n for n in hf if not _ignored(n, kind)]
    if unknown:
        raise LlmlabError(
            f"{source}: {len(unknown)} tensors that a {kind} model does not have: {short_list(unknown)}"
        )
    return ours  # load_weights names any that are missing


def bert_names(n_layers: int, mlm_head: bool = False) -> dict[str, str]:
    """Our name -> BertModel's name (and BertForMaskedLM's `cls.predictions.*` with `mlm_head`), every tensor."""
    names = {
        "tok_emb.weight": "embeddings.word_embeddings.weight",
        "pos.table.weight": "embeddings.position_embeddings.weight",
        "type_emb.weight": "embeddings.token_type_embeddings.weight",
        "emb_norm.weight": "embeddings.LayerNorm.weight",
        "emb_norm.bias": "embeddings.LayerNorm.bias",
    }
    for i in range(n_layers):
        for ours, theirs in BERT_LAYER.items():
            for p in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
    return (names | BERT_MLM_HEAD) if mlm_head else names


def _check_tied_decoder(hf: dict[str, Tensor], ours: dict[str, Tensor], source: Path) -> None:
    """Refuse an MLM decoder stored apart from the word embeddings with other values: ours is tied to them."""
    decoder, embeddings = hf.get(TIED_DECODER), ours.get("tok_emb.weight")
    if decoder is not None and embeddings is not None and not torch.equal(decoder, embeddings):
        raise LlmlabError(
            f"{source}: {TIED_DECODER} differs from the word embeddings; llmlab's MLM head is tied to them"
        )


def gpt2_names(n_layers: int) -> dict[str, str]:
    """Our name -> GPT2Model's name for the tensors copied as they are (not the Conv1D ones, not lm_head)."""
    names = {"tok_emb.weight": "wte.weight", "pos.table.weight": "wpe.weight"}
    names |= {f"ln_f.{p}": f"ln_f.{p}" for p in ("weight", "bias")}
    for i in range(n_layers):
        for ours, theirs in GPT2_NORMS.items():
            for p in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{p}"] = f"h.{i}.{theirs}.{p}"
    return names


def _gpt2_to_llmlab(hf: dict[str, Tensor], config: ModelConfig, source: Path) -> dict[str, Tensor]:
    """Pop GPT-2 tensors from `hf` into our names: Conv1D (in, out) -> Linear (out, in), c_attn -> q, k, v."""
    ours = {name: hf.pop(theirs) for name, theirs in gpt2_names(config.n_layers).items() if theirs in hf}
    C = config.d_model
    for i in range(config.n_layers):
        for part, theirs in GPT2_CONV1D.items():
            if f"h.{i}.{theirs}.weight" in hf:
                ours[f"blocks.{i}.{part}.weight"] = hf.pop(f"h.{i}.{theirs}.weight").T  # (out, in)
                ours[f"blocks.{i}.{part}.bias"] = hf.pop(f"h.{i}.{theirs}.bias")
        if f"h.{i}.attn.c_attn.weight" not in hf:
            continue
        weight, bias = (
            hf.pop(f"h.{i}.attn.c_attn.weight"),
            hf.pop(f"h.{i}.attn.c_attn.bias"),
        )  # (C, 3C), (3C,)
        if weight.shape != (C, 3 * C) or bias.shape != (3 * C,):
            found = f"{tuple(weight.shape)} and {tuple(bias.shape)}"
            raise LlmlabError(
                f"{source}: h.{i}.attn.c_attn has shapes {found}; expected {(C, 3 * C)} and {(3 * C,)}"
            )
        for name, w, b in zip("qkv", weight.T.split(C), bias.split(C), strict=True):  # 3 x (C, C), 3 x (C,)
            ours[f"blocks.{i}.attn.{name}.weight"], ours[f"blocks.{i}.attn.{name}.bias"] = w, b
    head = hf.pop("lm_head.weight", None)
    if not config.tie_embeddings and head is not None:
        ours["lm_head.weight"] = head
    return ours


def _normalised(hf: dict[str, Tensor], kind: str) -> dict[str, Tensor]:
    """A copy with the task model's prefix (`bert.`, `transformer.`) dropped and old gamma/beta renamed."""
    prefix = {"bert": "bert.", "gpt2": "transformer."}.get(kind, "")
    out = {}
    for name, t in hf.items():
        name = name.removeprefix(prefix)
        if kind == "bert" and name.endswith("LayerNorm.gamma"):  # TF-era BERT checkpoints
            name = name.removesuffix("gamma") + "weight"
        elif kind == "bert" and name.endswith("LayerNorm.beta"):
            name = name.removesuffix("beta") + "bias"
        out[name] = t
    return out


def _ignored(name: str, kind: str) -> bool:
    patterns = IGNORED[kind]
    return any(name.startswith(p) or name.endswith(p) for p in patterns)
