"""Pretraining data: text files as one cached token array, random training windows, a fixed validation
loss, and the per-step metrics log.

The recipe is nanoGPT's (Karpathy): tokenize once into a flat array (`prepare.py` writes train.bin), draw
`batch_size` windows at random offsets (`get_batch`), and estimate the loss on held-out text. Deviation: the
validation loss uses the first `max_tokens` valid tokens in non-overlapping windows, not random batches, so
evaluating draws no random numbers (exact resume) and every evaluation scores the same text.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from llmlab.errors import LlmlabError
from llmlab.io import atomic_open, fingerprint, loads_json, read_lines
from llmlab.model.transformer import Transformer
from llmlab.progress import progress_bar
from llmlab.tokenizer.pipeline import Tokenizer

METRICS_FILE = "metrics.jsonl"
EOS = "<|endoftext|>"  # ends each file (and, with line_documents, each line) in the token array
_LINES_PER_CHUNK = 5000  # lines encoded per batch: streams the files, keeps the progress bar moving


def random_windows(
    tokens: np.ndarray, batch_size: int, context: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows of `context + 1` tokens: inputs (B, T) and next-token targets (B, T)."""
    starts = rng.integers(0, len(tokens) - context, size=batch_size)  # (B,)
    windows = torch.from_numpy(tokens[starts[:, None] + np.arange(context + 1)].astype(np.int64))  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]


def document_ids(inputs: torch.Tensor, eos: int) -> torch.Tensor:
    """(B, T) -> (B, T): the index of each token's document inside its window; an end-of-text token
    belongs to the document it ends (packed windows: `Transformer(..., document_ids=)` keeps attention
    inside a document, as in Llama 3's pretraining)."""
    ends = inputs == eos
    return ends.cumsum(dim=1) - ends.long()


@torch.no_grad()
def evaluate_loss(
    model: Transformer,
    tokens: np.ndarray,
    context: int,
    max_tokens: int,
    batch: int = 16,
    eos: int | None = None,
) -> float:
    """Mean next-token loss over non-overlapping windows of `context` tokens covering tokens[:max_tokens];
    with `eos`, attention stays inside the documents it ends (`document_ids`).

    Raises:
        LlmlabError: `context` is longer than a learned position table (from the model).
    """
    n = min(len(tokens) - 1, max_tokens) // context * context
    if n == 0:
        raise LlmlabError(f"evaluation needs more than {context} tokens; the text has {len(tokens)}")
    inputs = torch.from_numpy(tokens[:n].astype(np.int64)).view(-1, context)  # (N, T)
    targets = torch.from_numpy(tokens[1 : n + 1].astype(np.int64)).view(-1, context)  # (N, T)
    was_training = model.training
    total = 0.0
    model.eval()
    for i in range(0, len(inputs), batch):
        x = inputs[i : i + batch]  # (b, T)
        logits = model(x, document_ids=None if eos is None else document_ids(x, eos)).logits  # (b, T, V)
        total += F.cross_entropy(
            logits.flatten(0, 1).float(), targets[i : i + batch].flatten(), reduction="sum"
        ).item()
    model.train(was_training)
    return total / n


def token_array(
    files: list[Path],
    tokenizer: Tokenizer,
    cache_dir: Path,
    progress: bool = False,
    errors: str = "strict",
    line_documents: bool = False,
) -> np.ndarray:
    """The files tokenized line by line (newlines kept) into one flat array, cached as tokens-<key>.npy.

    The key covers the tokenizer fingerprint, `errors` (invalid UTF-8: "strict" or "replace"),
    `line_documents` and each file's path, size and modification time. Files are separated by <|endoftext|>
    when the tokenizer has it; with `line_documents`, every line ends with one too (each line a document,
    e.g. one poem per line). A corrupt cache file is rebuilt.
    """
    extra = {"documents": "line"} if line_documents else {}
    path = cache_path("tokens", files, tokenizer, cache_dir, errors, **extra)
    cached = load_cached(path)
    if cached is not None:
        return cached
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.int32
    eos = tokenizer.token_to_id(EOS)
    if line_documents and eos is None:
        raise LlmlabError(f"{files[0]}: one document per line needs the tokenizer's {EOS} token; it has none")
    parts: list[np.ndarray] = []
    for file in files:
        for chunk in line_chunks(file, progress, errors):
            ids, offsets = tokenizer.encode_batch_ids(chunk, add_special_tokens=False)  # (no list per line)
            flat = np.frombuffer(ids, dtype=np.int32)
            if line_documents:  # <|endoftext|> after each line: before where the next one begins
                flat = np.insert(flat, np.frombuffer(offsets, dtype=np.int64)[1:], eos)
            parts.append(flat.astype(dtype))
        if eos is not None and not line_documents:
            parts.append(np.asarray([eos], dtype=dtype))
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    save_cached(path, tokens)
    return tokens


def cache_path(
    kind: str, files: list[Path], tokenizer: Tokenizer, cache_dir: Path, errors: str, **extra: str
) -> Path:
    """<cache_dir>/<kind>-<key>.npy, keyed by the tokenizer, the files' identities, `errors` and `extra`."""
    ident = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    key = {
        "tokenizer": tokenizer.fingerprint,
        "files": ident,
        **({"errors": errors} if errors != "strict" else {}),
        **extra,
    }
    return cache_dir / f"{kind}-{fingerprint(key)[:16]}.npy"


def load_cached(path: Path) -> np.ndarray | None:
    """The array cached at `path`, or None when there is none or it is unreadable (it is then rebuilt)."""
    if path.is_file():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            pass  # a truncated or foreign cache file: build it again and replace it
    return None


def save_cached(path: Path, array: np.ndarray) -> None:
    """Write `array` to `path` atomically (.npy)."""
    with atomic_open(path, "wb") as f:
        np.save(f, array)


def line_chunks(file: Path, progress: bool, errors: str, what: str = "tokenizing") -> Iterator[list[str]]:
    """The lines of `file` (each ending in a newline), a chunk at a time for the caller to encode, with a
    progress bar on stderr."""
    with progress_bar(f"{what} {file.name}", enabled=progress) as bar:
        lines = read_lines(file, errors)
        done = 0
        total = file.stat().st_size
        while chunk := [line + "\n" for line in itertools.islice(lines, _LINES_PER_CHUNK)]:
            yield chunk
            done += sum(map(len, chunk))  # characters: fewer than bytes outside ASCII, so the bar is ...
            bar(min(done, total), total)
        bar(total, total)  # ... completed here


def open_metrics(out: Path):
    """The metrics log opened for appending (one JSON object per line, flushed by the caller)."""
    return (out / METRICS_FILE).open("a", encoding="utf-8")


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    """The metrics log of a run folder, one dict per step (empty when there is none).

    A last line cut short by an interruption is dropped, as are any lines after it.
    """
    path = Path(out) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            record = loads_json(line, f"{path}: line {number}")
        except LlmlabError:
            break  # a line cut short by an interruption ends the log
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            break
        records.append(record)
    return records


def write_metrics(out: Path, records: list[dict[str, Any]]) -> None:
    """Replace the metrics log with `records`, atomically."""
    with atomic_open(out / METRICS_FILE, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
