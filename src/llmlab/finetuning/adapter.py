"""Bases and fine-tuned model folders: an adapter saved alone next to the name of its base, or a whole model.

A base is an llmlab checkpoint folder or an HF BERT / GPT-2 folder (recognised by `model_type` in its
config.json and converted with `from_hf`; its BERT pooler, which the import drops, is read for the head).

Layout, each file written atomically:
- parameter-efficient methods (probe, prompt, prefix, lora): `adapter.safetensors` (the head and the method's
  tensors, named as in `FinetuneModel.trainable_state_dict`; prefixes folded) and `adapter.json` (method,
  settings, task, labels, the base's resolved path and its fingerprint). A few percent of the base or less.
- full fine-tuning: a whole llmlab checkpoint folder (`llmlab.model.checkpoint.save_model`), the head in
  `head.safetensors`, and `finetune.json` (the same fields) as the marker of the method.

The base fingerprint is the sha256 of the base's config (which records its tokenizer's fingerprint) and of
every weight tensor (name, dtype, shape, bytes, in name order). It does not depend on the file format, so a
base converted between HF and llmlab folders still matches, but any change of a weight changes it; an
adapter whose base does not match is refused, naming the adapter file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor, nn

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_bytes, atomic_write_json, canonical_json, ensure_folder, read_json
from llmlab.model.checkpoint import load_model, model_tensors, read_safetensors, save_model
from llmlab.model.hf_import import from_hf, read_hf_weights
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.pipeline import Tokenizer

ADAPTER_WEIGHTS, ADAPTER_META = "adapter.safetensors", "adapter.json"
HEAD_WEIGHTS, FULL_META = "head.safetensors", "finetune.json"
FORMAT = "llmlab-finetune-1"
POOLER = ("pooler.dense.weight", "pooler.dense.bias")  # in an HF BERT checkpoint, maybe under "bert."


@dataclass
class SavedFinetune:
    """What a fine-tuned folder holds: its metadata, its tensors, and which kind of folder it is."""

    meta: dict[str, Any]
    tensors: dict[str, Tensor]  # adapter + head (adapters) or the head alone (full)
    full: bool
    meta_path: Path
    weights_path: Path


def load_base(base: str | os.PathLike) -> tuple[Transformer, Tokenizer, dict[str, Tensor] | None]:
    """(model, tokenizer, HF pooler tensors or None) of an llmlab or HF (model_type in config.json) folder."""
    base = Path(base)
    config = read_json(base / "config.json", "model config") if base.is_dir() else None
    if not isinstance(config, dict) or "model_type" not in config:
        return (*load_model(base), None)
    model, tokenizer = from_hf(base)
    _, hf = read_hf_weights(base)
    names = [next((p + n for p in ("", "bert.") if p + n in hf), None) for n in POOLER]
    return model, tokenizer, None if None in names else dict(zip(POOLER, (hf[n] for n in names), strict=True))


def base_fingerprint(model: nn.Module) -> str:
    """sha256 over a Transformer's config (tokenizer fingerprint included) and all of its weights."""
    h = hashlib.sha256(canonical_json(model.config.to_dict()).encode("utf-8"))
    for name, t in sorted(model_tensors(model).items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes, any dtype
    return h.hexdigest()


def save_finetuned(model: nn.Module, out_dir: str | os.PathLike) -> None:
    """Write a FinetuneModel's folder (see the module docstring); the other kind's marker is removed.

    Raises:
        LlmlabError: the parent of `out_dir` is missing or `out_dir` is a file.
    """
    out = ensure_folder(out_dir)
    meta = {
        "format": FORMAT,
        "method": model.method,
        "task": model.task,
        "labels": list(model.labels),
        "settings": model.settings.to_dict(),
        "base": model.base_path,
        "base_fingerprint": model.base_fingerprint,
    }
    tensors = {n: t.detach().cpu().contiguous() for n, t in model.saved_tensors().items()}
    if model.method == "full":
        (out / ADAPTER_META).unlink(missing_ok=True)
        save_model(out, model.base, model.tokenizer)
        atomic_write_bytes(out / HEAD_WEIGHTS, safetensors.torch.save(tensors, metadata={"format": "pt"}))
        atomic_write_json(out / FULL_META, meta)  # last: the marker says the folder is complete
    else:
        (out / FULL_META).unlink(missing_ok=True)
        atomic_write_bytes(out / ADAPTER_WEIGHTS, safetensors.torch.save(tensors, metadata={"format": "pt"}))
        atomic_write_json(out / ADAPTER_META, meta)


def read_finetuned(out_dir: str | os.PathLike) -> SavedFinetune:
    """Read a folder written by `save_finetuned` (the base itself is not loaded here).

    Raises:
        LlmlabError: a missing folder, no adapter.json / finetune.json, corrupt files, or a missing field.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise LlmlabError(f"{out}: fine-tuned model folder not found")
    if (out / ADAPTER_META).is_file():
        meta_path = out / ADAPTER_META
        weights_path = out / ADAPTER_WEIGHTS
        full = False
    elif (out / FULL_META).is_file():
        meta_path = out / FULL_META
        weights_path = out / HEAD_WEIGHTS
        full = True
    else:
        raise LlmlabError(f"{out}: not a fine-tuned model folder (no {ADAPTER_META} or {FULL_META})")
    meta = read_json(meta_path, "fine-tuning metadata")
    fields = ("method", "task", "labels", "settings", "base", "base_fingerprint")
    missing = [f for f in fields if not isinstance(meta, dict) or f not in meta]
    if missing:
        raise LlmlabError(f"{meta_path}: missing {', '.join(missing)}")
    if not weights_path.is_file():
        raise LlmlabError(f"{weights_path}: missing from the fine-tuned model folder")
    return SavedFinetune(meta, read_safetensors(weights_path), full, meta_path, weights_path)


def check_base(saved: SavedFinetune, base: str | os.PathLike, fingerprint: str) -> None:
    """Refuse to put an adapter on a base other than the one it was trained on.

    Raises:
        LlmlabError: the fingerprints differ; names the adapter file, the base given and the one recorded.
    """
    if fingerprint != saved.meta["base_fingerprint"]:
        raise LlmlabError(
            f"{saved.meta_path}: this adapter was trained on base {saved.meta['base']} "
            f"(fingerprint {saved.meta['base_fingerprint'][:12]}), but {base} differs "
            f"(fingerprint {fingerprint[:12]}): other weights or another tokenizer"
        )
