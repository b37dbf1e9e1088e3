"""Fine-tuning checkpoints that resume exactly and survive a crash in the middle of a save.

Layout of out_dir/checkpoint/:
    step-000040/trainable.safetensors   the tensors training changes (`model.trainable_state_dict()`)
    step-000040/best.safetensors        the best dev step's trainable tensors (early stopping restores them)
    step-000040/optimizer.pt            AdamW and scheduler state, torch (and CUDA) RNG states
    step-000040/state.json              step, epoch, position in the epoch's data order, history, per-step
                                        losses, best metric, patience count, python and numpy RNG states
    latest.json                         {"step": 40, "folder": "step-000040"}: the commit point
A save writes a whole new step folder under a hidden name (`llmlab.io.new_step_folder`), renames it, then
replaces latest.json atomically, then removes older folders; a crash or a failed write at any moment leaves
latest.json naming a complete folder and no empty or partial step folder. Same recipe as the pretraining
checkpoints (`llmlab.pretraining.loop`), which keep the whole model instead.

Resume safety: state.json also holds the run's identity (`run_identity`): the sha256 of the base model's
files and of each data file, and the settings outside the training config; resuming with any of them
changed is refused, naming what changed (`changed_keys`). A hand-edited state.json with fields of the
wrong type is refused on load (`load_checkpoint`).
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import Tensor

from llmlab.errors import LlmlabError
from llmlab.io import (
    atomic_write_bytes,
    atomic_write_json,
    file_sha256,
    fingerprint,
    latest_step_folder,
    new_step_folder,
    read_json,
)
from llmlab.model.checkpoint import read_safetensors

FOLDER = "checkpoint"
_STATE_TYPES = {"step": int, "epoch": int, "position": int, "history": list, "step_losses": list, "rng": dict}
_MODEL_SUFFIXES = {".json", ".safetensors", ".bin", ".txt", ".model"}  # what defines a base model folder


def capture_rng() -> dict[str, Any]:
    """The python, numpy and torch RNG states (JSON-ready parts apart from the torch tensors)."""
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()
    version, internal, gauss = random.getstate()
    torch_state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        torch_state["cuda"] = torch.cuda.get_rng_state_all()
    return {"python": [version, list(internal), gauss], "numpy": np_state, "torch": torch_state}


def restore_rng(states: dict[str, Any]) -> None:
    """Set the RNGs back to what `capture_rng` returned."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(states["numpy"])
    np_state["state"] = {**np_state["state"], "key": np.array(np_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(np_state)
    torch.set_rng_state(states["torch"]["torch"])
    if "cuda" in states["torch"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch"]["cuda"])


def _tensor_bytes(tensors: dict[str, Tensor]) -> bytes:
    return safetensors.torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def save_checkpoint(
    out_dir: Path,
    step: int,
    trainable: dict[str, Tensor],
    best: dict[str, Tensor] | None,
    torch_state: dict[str, Any],
    state: dict[str, Any],
) -> Path:
    """Write checkpoint/step-NNNNNN/, then point latest.json at it, then drop older step folders.

    Args:
        out_dir: the run folder.
        step: optimizer steps done.
        trainable: the current trainable tensors; best: the best step's (None before any evaluation).
        torch_state: optimizer / scheduler state dicts and torch RNG tensors (saved with torch.save).
        state: everything else, JSON-ready.

    Returns:
        The new step folder.
    """
    root = Path(out_dir) / FOLDER
    with new_step_folder(root, step) as folder:
        atomic_write_bytes(folder / "trainable.safetensors", _tensor_bytes(trainable))
        if best is not None:
            atomic_write_bytes(folder / "best.safetensors", _tensor_bytes(best))
        buffer = io.BytesIO()
        torch.save(torch_state, buffer)
        atomic_write_bytes(folder / "optimizer.pt", buffer.getvalue())
        atomic_write_json(folder / "state.json", state)
    return root / f"step-{step:06d}"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The folder latest.json names, or None when the run has no committed checkpoint."""
    return latest_step_folder(Path(out_dir) / FOLDER)


def load_checkpoint(out_dir: Path) -> dict[str, Any]:
    """Read the committed checkpoint of a run.

    Returns:
        {"trainable": tensors, "best": tensors | None, "torch": torch_state, "state": state} as saved.

    Raises:
        LlmlabError: no checkpoint, or a missing / unreadable file in it.
    """
    folder = latest_checkpoint(out_dir)
    if folder is None:
        raise LlmlabError(f"{Path(out_dir) / FOLDER}: no checkpoint to resume from")
    best_path = folder / "best.safetensors"
    try:
        torch_state = torch.load(folder / "optimizer.pt", weights_only=True)
    except Exception as e:  # missing, truncated or foreign: file, zip and pickle errors alike
        raise LlmlabError(
            f"{folder / 'optimizer.pt'}: not a readable optimizer state ({type(e).__name__})"
        ) from None
    return {
        "trainable": read_safetensors(folder / "trainable.safetensors"),
        "best": read_safetensors(best_path) if best_path.is_file() else None,
        "torch": torch_state,
        "state": _checked_state(folder / "state.json"),
    }


def _checked_state(path: Path) -> dict[str, Any]:
    state = read_json(path, "checkpoint state")
    if not isinstance(state, dict):
        raise LlmlabError(f"{path}: checkpoint state must be a JSON object")
    for key, kind in _STATE_TYPES.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise LlmlabError(f"{path}: checkpoint state field {key!r} is missing or not a {kind.__name__}")
    if not isinstance(state.get("config"), dict):
        raise LlmlabError(f"{path}: checkpoint state field 'config' is missing or not an object")
    return state


def path_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a data file, or of a model folder's defining files (config, weights, tokenizer) by name."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in _MODEL_SUFFIXES)
    return fingerprint({f.name: file_sha256(f) for f in files})


def run_identity(base: str | os.PathLike, data: dict[str, str | os.PathLike], settings: dict) -> dict:
    """What a resumed run must share with the one that wrote the checkpoint.

    Args:
        base: the base model folder (fingerprinted by content, so moving it is fine, changing it is not).
        data: name -> data file, e.g. {"train data": ..., "dev data": ...} (fingerprinted by content).
        settings: the remaining settings that shape the run (method, its settings, task, ...), JSON-ready.
    """
    return {
        "base model": path_fingerprint(base),
        **{name: path_fingerprint(p) for name, p in data.items()},
        "settings": settings,
    }


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted names at which two JSON-like values differ ("settings.method_settings.lora_rank")."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new), key=str)
        return [c for k in keys for c in changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]
