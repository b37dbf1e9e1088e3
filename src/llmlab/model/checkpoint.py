"""The llmlab checkpoint folder: config.json + model.safetensors + tokenizer.json, written and read back.

Layout (each file written atomically through `llmlab.io`):
    config.json        `ModelConfig.to_dict()`, with `tokenizer_fingerprint` set to the tokenizer's fingerprint
    model.safetensors  the state dict in the safetensors format (huggingface/safetensors); a tied `lm_head`
                       shares `tok_emb`'s storage, so it is stored once, under `tok_emb.weight`
    tokenizer.json     the tokenizer in HF `tokenizers` format (`Tokenizer.save`)

Loading is strict, like `nn.Module.load_state_dict(strict=True)` but with one-line `LlmlabError`s that name
the file: missing or extra tensors (the first few named), a shape that differs from the config's, and a
tokenizer (passed in, or the folder's own tokenizer.json) whose fingerprint differs from the one recorded
in config.json. Models come back in eval mode, on the CPU, in float32 (saved tensors are cast as
`load_state_dict` casts them).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import Tensor

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_bytes, ensure_folder
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.pipeline import Tokenizer, check_fingerprint

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
TIED = "lm_head.weight"  # stored only when it is not tok_emb.weight
_NAMED = 3  # how many tensor names an error message lists before "and N more"


def save_model(directory: str | os.PathLike, model: Transformer, tokenizer: Tokenizer) -> None:
    """Write `model` and `tokenizer` as an llmlab checkpoint folder.

    Args:
        directory: the folder; created when missing (its parent must exist). Existing files are replaced.
        model: the Transformer; its config is saved with `tokenizer_fingerprint` set (the model's own
            config object is left as it is).
        tokenizer: the tokenizer the model was trained with.

    Raises:
        LlmlabError: the parent folder is missing, `directory` is a file, or the tokenizer has token ids
            beyond the model's vocabulary.
    """
    directory = ensure_folder(directory)
    check_vocab_fits(tokenizer, model.config.vocab_size, directory / TOKENIZER_FILE)
    config = dataclasses.replace(model.config, tokenizer_fingerprint=tokenizer.fingerprint)
    atomic_write_bytes(directory / WEIGHTS_FILE, weights_bytes(model))
    tokenizer.save(directory / TOKENIZER_FILE)
    config.save(directory / CONFIG_FILE)  # last: a folder with a config.json is complete


def load_model(
    directory: str | os.PathLike, tokenizer: Tokenizer | None = None
) -> tuple[Transformer, Tokenizer]:
    """Read a folder written by `save_model`.

    Args:
        directory: the checkpoint folder.
        tokenizer: use this tokenizer instead of the folder's tokenizer.json (which is then not read); it
            must be the one the model was saved with.

    Returns:
        (model in eval mode, tokenizer).

    Raises:
        LlmlabError: a missing folder or file, an invalid config.json (e.g. an unknown positional encoding),
            a corrupt model.safetensors, missing / extra / mis-shaped tensors, or a tokenizer whose
            fingerprint differs from the one in config.json. The message names the file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LlmlabError(f"{directory}: checkpoint folder not found")
    config = ModelConfig.load(_existing(directory / CONFIG_FILE))
    model = Transformer(config)
    load_weights(model, read_safetensors(_existing(directory / WEIGHTS_FILE)), directory / WEIGHTS_FILE)
    return model.eval(), _checked_tokenizer(directory, config, tokenizer)


def check_vocab_fits(tokenizer: Tokenizer, vocab_size: int, where: str | os.PathLike) -> None:
    """Refuse a tokenizer whose largest token id has no row in an embedding table of `vocab_size` rows."""
    top = max(tokenizer.get_vocab().values(), default=-1)
    if top >= vocab_size:
        raise LlmlabError(
            f"{where}: the tokenizer has token id {top} but the model's vocab_size is {vocab_size}"
        )


def weights_bytes(model: Transformer) -> bytes:
    """The model's state dict as safetensors bytes, a tied lm_head left out (it is tok_emb.weight)."""
    return safetensors.torch.save(model_tensors(model), metadata={"format": "pt"})


def model_tensors(model: Transformer) -> dict[str, Tensor]:
    """name -> contiguous CPU tensor of everything `load_weights` expects (tied lm_head excluded)."""
    state = model.state_dict()
    if model.config.tie_embeddings and TIED in state:
        del state[TIED]
    return {name: t.detach().cpu().contiguous() for name, t in state.items()}


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """All tensors of a safetensors file, a corrupt or truncated file turned into an LlmlabError."""
    try:
        return safetensors.torch.load_file(path)
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read: {e.strerror}") from None
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise LlmlabError(f"{path}: not a valid safetensors file ({_first_line(e)})") from None


def load_weights(model: Transformer, tensors: dict[str, Tensor], source: str | os.PathLike) -> None:
    """Copy `tensors` into `model` after checking that the names and shapes are exactly the expected ones.

    Raises:
        LlmlabError: missing or extra names (the first few listed), or a shape mismatch; names `source`.
    """
    expected = model_tensors(model)
    missing = [n for n in expected if n not in tensors]
    extra = [n for n in tensors if n not in expected]
    if missing:
        raise LlmlabError(f"{source}: missing {_count(missing, 'tensor')}: {short_list(missing)}")
    if extra:
        raise LlmlabError(f"{source}: unexpected {_count(extra, 'tensor')}: {short_list(extra)}")
    for name, want in expected.items():
        found = tuple(tensors[name].shape)
        if found != tuple(want.shape):
            raise LlmlabError(
                f"{source}: tensor {name} has shape {found}; the config expects {tuple(want.shape)}"
            )
    with torch.no_grad():
        model.load_state_dict(tensors, strict=False)  # strict=False only for the tied lm_head.weight


def _checked_tokenizer(directory: Path, config: ModelConfig, given: Tokenizer | None) -> Tokenizer:
    """The tokenizer passed in or the folder's, checked against the fingerprint recorded in config.json."""
    expected = config.tokenizer_fingerprint
    if given is not None:
        if expected is not None:
            check_fingerprint(expected, given.fingerprint, f"model {directory}")
        return given
    path = _existing(directory / TOKENIZER_FILE)
    tokenizer = Tokenizer.load(path)
    if expected is not None:
        try:
            check_fingerprint(expected, tokenizer.fingerprint, f"model {directory / CONFIG_FILE}")
        except LlmlabError as e:
            raise LlmlabError(f"{path}: changed since the model was saved: {e}") from None
    return tokenizer


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise LlmlabError(f"{path}: missing from the checkpoint folder")
    return path


def _count(names: list[str], noun: str) -> str:
    return f"{len(names)} {noun}{'' if len(names) == 1 else 's'}"


def short_list(names: list[str]) -> str:
    """The first few names, then how many more: one short line whatever the count."""
    shown = ", ".join(names[:_NAMED])
    return shown if len(names) <= _NAMED else f"{shown} and {len(names) - _NAMED} more"


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
