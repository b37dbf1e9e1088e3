"""Fine-tuning checkpoints that resume exactly and survive a crash in the middle of a save.

Layout of out_dir/checkpoint/:
    step-000040/trainable.safetensors   the tensors training changes (`model.trainable_state_dict()`)
    step-000040/best.safetensors        the best dev step's trainable tensors (early stopping restores them)
    step-000040/optimizer.pt            AdamW and scheduler state, torch (and CUDA) RNG states
    step-000040/state.json              step, epoch, position in the epoch's data order, history, per-step
                                        losses, best metric, patience count, python and numpy RNG states
    latest.json                         {"step": 40, "folder": "step-000040"}: the commit point
A save writes a whole new step folder (each file atomically, `llmlab.io`), then replaces latest.json
atomically, then removes older folders; a crash at any moment leaves latest.json naming a complete folder.
Same recipe as the pretraining checkpoints (`llmlab.model.pretrain`), which keep the whole model instead.
"""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import Tensor

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_bytes, atomic_write_json, commit_step_folder, latest_step_folder, read_json
from llmlab.model.checkpoint import read_safetensors

FOLDER = "checkpoint"


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
    root.mkdir(exist_ok=True)
    folder = root / f"step-{step:06d}"
    if folder.exists():
        shutil.rmtree(folder)  # a leftover of a save that crashed before its commit
    folder.mkdir()
    atomic_write_bytes(folder / "trainable.safetensors", _tensor_bytes(trainable))
    if best is not None:
        atomic_write_bytes(folder / "best.safetensors", _tensor_bytes(best))
    buffer = io.BytesIO()
    torch.save(torch_state, buffer)
    atomic_write_bytes(folder / "optimizer.pt", buffer.getvalue())
    atomic_write_json(folder / "state.json", state)
    commit_step_folder(root, folder, step)
    return folder


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
        "state": read_json(folder / "state.json", "checkpoint state"),
    }
