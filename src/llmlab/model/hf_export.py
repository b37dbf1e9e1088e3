"""Export to Hugging Face BERT / GPT-2 / Llama folders, and `convert` between the two checkpoint formats.

Spec: the folder `transformers`' `save_pretrained` writes (config.json, model.safetensors) plus the
tokenizer files (tokenizer.json, tokenizer_config.json, and vocab.txt for WordPiece). Reference: the output
loads in `transformers.AutoModel` / `GPT2LMHeadModel` / `LlamaForCausalLM.from_pretrained` and gives our
hidden states and logits within 1e-4 (tests/model/test_hf_interop.py, test_llama.py: 1e-5); the names are
hf_import.py's and hf_llama.py's tables run backwards.

Exportable configs are the ones with an exact HF equivalent:
- causal, pre-LN, final norm, no embedding norm or token types  ->  GPT-2 (`GPT2LMHeadModel`);
- bidirectional, post-LN, embedding norm, no final norm         ->  BERT (`BertModel`; with `mlm_head`,
  `BertForMaskedLM`: the encoder under `bert.`, the head as `cls.predictions.*` without the tied decoder,
  as `save_pretrained` writes it);
- causal with RoPE ("half" layout), pre-RMSNorm, gated MLP      ->  Llama (`LlamaForCausalLM`), any
  n_kv_heads, biases or not, every RoPE scaling (hf_llama.py).
BertModel has no LM head: an encoder's tied head without `mlm_head` is left out (its weight is the word
embedding, so no tensor is lost, but it comes back from `from_hf` without a head), and BertModel's pooler
is not written (`transformers` reports it as newly initialised; `pooler_output` means nothing). An encoder
without token types gets one all-zero type row, which adds nothing.
GPT-2 and BERT need learned absolute positions and biases; anything else (ALiBi, T5 or Shaw relative
positions, sinusoids, bias=False, ...) raises an LlmlabError saying why. A failed export leaves nothing behind: every
file is written into a hidden sibling folder first and moved into place only when all are there.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import safetensors.torch
import torch
from torch import Tensor

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_bytes, atomic_write_json
from llmlab.model.checkpoint import check_vocab_fits, load_model, model_tensors, save_model
from llmlab.model.config import ModelConfig
from llmlab.model.hf_import import GPT2_CONV1D, bert_names, from_hf, gpt2_names
from llmlab.model.hf_llama import LLAMA_SHAPE, llama_config, llama_names
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.hf_json import write_vocab_txt
from llmlab.tokenizer.pipeline import Tokenizer

HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}  # ours -> HF
GPT2_SHAPE = {"norm": "pre", "final_norm": True, "embedding_norm": False, "type_vocab_size": 0}
BERT_SHAPE = {"norm": "post", "final_norm": False, "embedding_norm": True}
Direction = Literal["from-hf", "to-hf"]


def to_hf(model: Transformer, tokenizer: Tokenizer, out_dir: str | os.PathLike) -> Path:
    """Write `model` and `tokenizer` as an HF folder that `transformers` loads.

    Args:
        model: a Transformer whose config maps onto GPT-2 (causal) or BERT (encoder); see the module docstring.
        tokenizer: its tokenizer; written as tokenizer.json (+ vocab.txt when it is WordPiece).
        out_dir: the folder; created when missing (its parent must exist); files of the same names replaced.

    Returns:
        out_dir as a Path.

    Raises:
        LlmlabError: the config has no BERT / GPT-2 equivalent (the message says which setting and why), the
            tokenizer does not fit the vocabulary, or the parent folder is missing. Nothing is written then.
    """
    kind = hf_architecture(model.config)
    out_dir = Path(out_dir)
    check_vocab_fits(tokenizer, model.config.vocab_size, out_dir / "tokenizer.json")
    if kind == "bert":
        hf_config = bert_config(model.config)
        tensors = to_bert_tensors(model)
    elif kind == "llama":
        hf_config = llama_config(model.config, HF_ACTIVATIONS[model.config.activation]) | _special_ids(
            tokenizer
        )
        tensors = to_llama_tensors(model)
    else:
        hf_config = gpt2_config(model.config, tokenizer)
        tensors = to_gpt2_tensors(model)
    with staged_folder(out_dir) as tmp:
        atomic_write_json(tmp / "config.json", hf_config)
        atomic_write_bytes(
            tmp / "model.safetensors", safetensors.torch.save(tensors, metadata={"format": "pt"})
        )
        tokenizer.save(tmp / "tokenizer.json")
        atomic_write_json(tmp / "tokenizer_config.json", tokenizer_config(tokenizer, model.config))
        if tokenizer.model_type == "wordpiece":
            write_vocab_txt(tokenizer, tmp / "vocab.txt")
    return out_dir


def convert(src: str | os.PathLike, out: str | os.PathLike, direction: Direction) -> Path:
    """Convert a checkpoint folder: HF -> llmlab ("from-hf") or llmlab -> HF ("to-hf").

    `llmlab convert --from-hf HF_DIR -o OUT` is `convert(HF_DIR, OUT, "from-hf")`, and
    `llmlab convert --to-hf LLMLAB_DIR -o OUT` is `convert(LLMLAB_DIR, OUT, "to-hf")`.

    Returns:
        out as a Path (created when missing; its parent must exist).

    Raises:
        LlmlabError: an unknown direction, or any error of `from_hf`, `load_model`, `save_model`, `to_hf`;
            nothing is written then.
    """
    if direction == "from-hf":
        model, tokenizer = from_hf(src)
        with staged_folder(Path(out)) as tmp:
            save_model(tmp, model, tokenizer)
        return Path(out)
    if direction == "to-hf":
        model, tokenizer = load_model(src)
        return to_hf(model, tokenizer, out)
    raise LlmlabError(f"convert: unknown direction {direction!r}; choose 'from-hf' or 'to-hf'")


def hf_architecture(config: ModelConfig) -> str:
    """ "gpt2", "bert" or "llama": the HF architecture `config` is exactly equivalent to.

    Raises:
        LlmlabError: no exact equivalent; the message names the first setting in the way and why.
    """
    if config.causal and config.positional == "rope":
        _check_shape(config, LLAMA_SHAPE, "a causal RoPE model exports as Llama")
        return "llama"
    if config.positional != "learned":
        raise LlmlabError(
            f"model config: positional {config.positional!r} has no GPT-2 or BERT equivalent "
            "(both add a learned absolute position table, positional='learned'), nor a Llama one (causal, 'rope')"
        )
    if not config.bias:
        raise LlmlabError(
            "model config: bias=false has no GPT-2 or BERT equivalent (both use biases everywhere)"
        )
    kind, shape = ("gpt2", GPT2_SHAPE) if config.causal else ("bert", BERT_SHAPE)
    role = "a causal model exports as GPT-2" if config.causal else "an encoder exports as BERT"
    _check_shape(config, shape | {"n_kv_heads": None, "norm_type": "layer", "gated_mlp": False}, role)
    return kind


def _check_shape(config: ModelConfig, shape: dict[str, Any], role: str) -> None:
    for name, want in shape.items():
        if getattr(config, name) != want:
            raise LlmlabError(
                f"model config: {name}={getattr(config, name)!r} cannot be exported: {role}, which has {name}={want!r}"
            )


def gpt2_config(config: ModelConfig, tokenizer: Tokenizer) -> dict[str, Any]:
    """The GPT2Config dict of an exportable causal config; bos/eos are <|endoftext|> when the vocab has it."""
    eos = tokenizer.token_to_id("<|endoftext|>")
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.max_seq_len,
        "n_embd": config.d_model,
        "n_layer": config.n_layers,
        "n_head": config.n_heads,
        "n_inner": config.d_ff,
        "activation_function": HF_ACTIVATIONS[config.activation],
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.attn_dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "scale_attn_weights": True,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "pad_token_id": config.pad_token_id,
        "dtype": "float32",
    }


def bert_config(config: ModelConfig) -> dict[str, Any]:
    """The BertConfig dict of an exportable encoder config (no token types -> one all-zero type row)."""
    return {
        "architectures": ["BertForMaskedLM" if config.mlm_head else "BertModel"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "intermediate_size": config.ff_dim,
        "hidden_act": HF_ACTIVATIONS[config.activation],
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attn_dropout,
        "max_position_embeddings": config.max_seq_len,
        "type_vocab_size": max(config.type_vocab_size, 1),
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": config.pad_token_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,  # BertForMaskedLM's decoder is the word embeddings (BertModel has none)
        "dtype": "float32",
    }


def tokenizer_config(tokenizer: Tokenizer, config: ModelConfig) -> dict[str, Any]:
    """tokenizer_config.json: load tokenizer.json as it is (PreTrainedTokenizerFast) with its special tokens."""
    d: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": config.max_seq_len}
    roles = {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "mask_token": "[MASK]",
    }
    return d | {role: token for role, token in roles.items() if tokenizer.token_to_id(token) is not None}


def to_bert_tensors(model: Transformer) -> dict[str, Tensor]:
    """BertModel's state dict (no pooler) from ours; an all-zero token-type row when we have no types.

    With `mlm_head`, BertForMaskedLM's: the encoder's names under `bert.`, then `cls.predictions.*`.
    """
    ours = model_tensors(model)  # an encoder's LM head, if any, is tied: tok_emb.weight
    if "type_emb.weight" not in ours:
        ours["type_emb.weight"] = torch.zeros(1, model.config.d_model)
    mlm = model.config.mlm_head
    hf = {theirs: ours[name] for name, theirs in bert_names(model.config.n_layers, mlm).items()}
    if not mlm:
        return hf
    return {n if n.startswith("cls.") else f"bert.{n}": t for n, t in hf.items()}  # BertForMaskedLM's names


def to_gpt2_tensors(model: Transformer) -> dict[str, Tensor]:
    """GPT2LMHeadModel's state dict from ours: Linear (out, in) -> Conv1D (in, out), q, k, v -> c_attn."""
    ours = model_tensors(model)
    L = model.config.n_layers
    hf = {f"transformer.{theirs}": ours[name] for name, theirs in gpt2_names(L).items()}
    for i in range(L):
        for part, theirs in GPT2_CONV1D.items():
            hf[f"transformer.h.{i}.{theirs}.weight"] = ours[f"blocks.{i}.{part}.weight"].T.contiguous()
            hf[f"transformer.h.{i}.{theirs}.bias"] = ours[f"blocks.{i}.{part}.bias"]
        qkv = [f"blocks.{i}.attn.{n}" for n in "qkv"]
        hf[f"transformer.h.{i}.attn.c_attn.weight"] = torch.cat(
            [ours[f"{n}.weight"] for n in qkv]
        ).T.contiguous()
        hf[f"transformer.h.{i}.attn.c_attn.bias"] = torch.cat([ours[f"{n}.bias"] for n in qkv])  # (3C,)
    if not model.config.tie_embeddings:
        hf["lm_head.weight"] = ours["lm_head.weight"]
    return hf


def to_llama_tensors(model: Transformer) -> dict[str, Tensor]:
    """LlamaForCausalLM's state dict from ours: a renaming (no lm_head.weight when tied)."""
    ours = model_tensors(model)
    names = llama_names(model.config.n_layers, model.config.tie_embeddings)
    return {theirs: ours[name] for name, theirs in names.items() if name in ours}


def _special_ids(tokenizer: Tokenizer) -> dict[str, int | None]:
    """bos/eos ids for a Llama config.json: Llama's own tokens when the vocabulary has them, else GPT-2's."""
    ids = {}
    for role, names in [
        ("bos_token_id", ("<s>", "<|begin_of_text|>")),
        ("eos_token_id", ("</s>", "<|end_of_text|>")),
    ]:
        found = [tokenizer.token_to_id(n) for n in (*names, "<|endoftext|>")]
        ids[role] = next((i for i in found if i is not None), None)
    return ids


@contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """Yield a hidden sibling folder to write into; on success its files move into `out_dir`, on error it goes.

    A new `out_dir` appears in one rename, so it is complete or absent; into an existing folder each file is
    moved with `os.replace` (atomic per file).

    Raises:
        LlmlabError: the parent of `out_dir` is missing, or `out_dir` is a file.
    """
    if not out_dir.parent.is_dir():
        raise LlmlabError(f"{out_dir}: parent folder {out_dir.parent} does not exist")
    if out_dir.exists() and not out_dir.is_dir():
        raise LlmlabError(f"{out_dir}: exists and is not a folder")
    tmp = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()  # mkdir, not mkdtemp: the folder gets the umask's mode, as out_dir would
    try:
        yield tmp
        if not out_dir.exists():
            tmp.rename(out_dir)
            return
        for f in tmp.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
