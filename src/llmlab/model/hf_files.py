"""The files of a Hugging Face checkpoint folder: its weights and its tokenizer, read with one-line errors.

Weights: model.safetensors, else pytorch_model.bin (loaded with `weights_only=True`, so no pickle code
runs); sharded checkpoints are refused by name. Tokenizer: tokenizer.json (HF `tokenizers` format), or for
BERT a vocab.txt read as `BertTokenizerFast` would (with tokenizer_config.json's `do_lower_case`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from llmlab.errors import LlmlabError
from llmlab.io import read_json
from llmlab.model.checkpoint import read_safetensors
from llmlab.tokenizer.hf_json import read_vocab_txt
from llmlab.tokenizer.pipeline import Tokenizer


def read_hf_tokenizer(hf_dir: Path, kind: str) -> Tokenizer:
    """tokenizer.json, or for BERT a vocab.txt (cased or not as tokenizer_config.json's `do_lower_case`)."""
    if (hf_dir / "tokenizer.json").is_file():
        return Tokenizer.load(hf_dir / "tokenizer.json")
    if kind == "bert" and (hf_dir / "vocab.txt").is_file():
        settings_path = hf_dir / "tokenizer_config.json"
        settings = read_json(settings_path, "tokenizer config") if settings_path.is_file() else {}
        lowercase = settings.get("do_lower_case", True) if isinstance(settings, dict) else True
        return read_vocab_txt(hf_dir / "vocab.txt", lowercase=bool(lowercase))
    needs = (
        "tokenizer.json or vocab.txt"
        if kind == "bert"
        else "tokenizer.json (vocab.json + merges.txt alone are not read)"
    )
    raise LlmlabError(f"{hf_dir}: no tokenizer found; llmlab needs {needs}")


def read_hf_weights(hf_dir: Path) -> tuple[Path, dict[str, Tensor]]:
    """(path, tensors) of model.safetensors, else pytorch_model.bin (loaded with weights_only=True)."""
    path = hf_dir / "model.safetensors"
    if path.is_file():
        return path, read_safetensors(path)
    path = hf_dir / "pytorch_model.bin"
    if path.is_file():
        try:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle errors come in many types; all mean "not a state dict we can read"
            raise LlmlabError(f"{path}: cannot load weights ({type(e).__name__})") from None
        if not isinstance(tensors, dict):
            raise LlmlabError(f"{path}: holds a {type(tensors).__name__}, not a state dict")
        return path, tensors
    if (hf_dir / "model.safetensors.index.json").is_file():
        raise LlmlabError(f"{hf_dir}: sharded checkpoints (model.safetensors.index.json) are not supported")
    raise LlmlabError(f"{hf_dir}: no model.safetensors or pytorch_model.bin")
