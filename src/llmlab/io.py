"""Files in and out: atomic writes, fingerprints, and strict UTF-8 reading with clear errors.

Atomic writes follow the usual POSIX recipe: write to a temporary file in the same folder, flush and fsync,
then `os.replace` it over the target, so a reader sees either the old file or the new one, never half of one.
A fingerprint is the sha256 of a canonical JSON serialisation (sorted keys, no whitespace), so two objects
that mean the same thing have the same fingerprint whatever order their keys were built in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask once: temp files are 0600, the final file gets the usual mode


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Open a temporary file beside `path` for writing; on success it replaces `path`, on error it vanishes.

    Args:
        path: the final file.
        mode: "w" (UTF-8 text) or "wb".

    Raises:
        LlmlabError: the folder of `path` does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise LlmlabError(f"{path}: output folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that the file is either entirely old or entirely new (see `atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented UTF-8 JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def canonical_json(obj: Any) -> str:
    """The canonical serialisation used for fingerprints: sorted keys, no whitespace, raw UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(obj: Any) -> str:
    """sha256 hex digest of `canonical_json(obj)`."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Load a JSON file, turning a missing, non-UTF-8, truncated or corrupt file into a one-line LlmlabError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read {what}: {e.strerror}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise LlmlabError(f"{path}: {what} is not UTF-8 (byte offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise LlmlabError(
            f"{path}: {what} is corrupt or truncated: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None


def read_lines(path: str | os.PathLike, errors: str = "strict") -> Iterator[str]:
    """Yield the lines of a UTF-8 text file without their line ends, streaming.

    Args:
        path: the file.
        errors: "strict" raises on the first invalid byte; "replace" puts U+FFFD in its place and goes on.

    Raises:
        LlmlabError: the file cannot be opened, or (strict) it is not UTF-8; the message gives the byte offset.
    """
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        offset = 0
        for raw in f:
            try:
                line = raw.decode("utf-8", errors)
            except UnicodeDecodeError as e:
                raise LlmlabError(
                    f"{path}: not UTF-8 at byte offset {offset + e.start} (use --errors replace to continue)"
                ) from None
            offset += len(raw)
            yield line.rstrip("\r\n")


def commit_step_folder(root: Path, folder: Path, step: int) -> None:
    """Make `folder` (complete, under `root`) the run's checkpoint, then drop the older step-* folders.

    root/latest.json, replaced atomically, is the commit point: a crash at any moment leaves it naming a
    complete folder. Used by pretraining and fine-tuning checkpoints alike.
    """
    atomic_write_json(root / "latest.json", {"step": step, "folder": folder.name})
    for old in root.glob("step-*"):
        if old != folder and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def latest_step_folder(root: Path) -> Path | None:
    """The folder root/latest.json names, or None when nothing was committed there."""
    pointer = root / "latest.json"
    return root / read_json(pointer, "checkpoint pointer")["folder"] if pointer.is_file() else None
