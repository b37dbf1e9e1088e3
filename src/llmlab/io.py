"""Files in and out: atomic writes, fingerprints, and strict UTF-8 / JSON reading with clear errors.

Atomic writes follow the usual POSIX recipe: write to a temporary file in the same folder, flush and fsync,
then `os.replace` it over the target, so a reader sees either the old file or the new one, never half of one.
A fingerprint is the sha256 of a canonical JSON serialisation (sorted keys, no whitespace), so two objects
that mean the same thing have the same fingerprint whatever order their keys were built in; a data file's
fingerprint is the sha256 of its bytes. JSON is read with a nesting limit (`MAX_JSON_DEPTH`), checked before
parsing, so a hostile file nested 200,000 deep is a one-line error rather than a RecursionError.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import accumulate
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask once: temp files are 0600, the final file gets the usual mode
MAX_JSON_DEPTH = 64  # real files nest < 10 deep (an HF tokenizer.json: 5)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP_FOLDER = re.compile(r"step-\d+")


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
    if path.is_dir():
        raise LlmlabError(f"{path}: is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise LlmlabError(f"{path}: cannot write: {e.strerror}") from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise LlmlabError(f"{path}: cannot write: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that the file is either entirely old or entirely new (see `atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


@contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (made if missing, in a folder that exists) for the block, so that
    processes writing the same outputs take turns (POSIX `flock`; where there is none, no lock)."""
    with open(path, "a", encoding="utf-8") as f:
        try:
            import fcntl
        except ImportError:
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
    import hashlib  # here, not at the top: OpenSSL costs ~4 MiB of RSS that encoding never needs

    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks (a data file's fingerprint).

    Raises:
        LlmlabError: the file cannot be read.
    """
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read: {e.strerror}") from None
    return digest.hexdigest()


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the arrays and objects of a JSON text nest more than `limit` deep (brackets inside strings do
    not count); a text with fewer opening brackets than that is not scanned."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0) > limit


def loads_json(text: str | bytes, where: str, what: str = "JSON") -> Any:
    """Parse JSON text: UTF-8, nested at most MAX_JSON_DEPTH deep (NaN and Infinity parse, as in `json`).

    Args:
        text: the JSON (bytes are decoded as UTF-8).
        where: the file (and line) named in errors.
        what: what the text is, for errors ("tokenizer file").

    Raises:
        LlmlabError: not UTF-8, too deep, or not JSON; one line naming `where`.
    """
    if isinstance(text, bytes):
        text = _decode_utf8(text, where, what)
    if too_deep(text):
        raise LlmlabError(f"{where}: {what} is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LlmlabError(
            f"{where}: {what} is corrupt or truncated: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Load a JSON file, turning a missing, non-UTF-8, too deep, truncated or corrupt file into a one-line
    LlmlabError (see `loads_json`)."""
    path = Path(path)
    if path.is_dir():
        raise LlmlabError(f"{path}: is a folder, expected a {what}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read {what}: {e.strerror}") from None
    text = _decode_utf8(raw, str(path), what)
    del (
        raw
    )  # freed before parsing: the bytes, the text and the parsed objects at once would be the load's peak
    return loads_json(text, str(path), what)


def _decode_utf8(raw: bytes, where: str, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LlmlabError(f"{where}: {what} is not UTF-8 (byte offset {e.start})") from None


def read_lines(path: str | os.PathLike, errors: str = "strict") -> Iterator[str]:
    """Yield the lines of a UTF-8 text file without their line ends, streaming.

    Args:
        path: the file.
        errors: "strict" raises on the first invalid byte; "replace" puts U+FFFD in its place and goes on.

    Raises:
        LlmlabError: the file cannot be opened, or (strict) it is not UTF-8; the message gives the byte offset.
    """
    path = Path(path)
    if path.is_dir():
        raise LlmlabError(f"{path}: is a folder, expected a text file")
    try:
        f = path.open("rb")
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        yield from decode_lines(f, path, errors)


def decode_lines(
    raw_lines: Iterable[bytes], path: str | os.PathLike, errors: str = "strict"
) -> Iterator[str]:
    """Decode a stream of raw UTF-8 lines (a binary file, or a decompressing reader) as `read_lines` does.

    Raises:
        LlmlabError: (strict) a line is not UTF-8; the message gives the byte offset in the (decompressed) text.
    """
    offset = 0
    for raw in raw_lines:
        try:
            line = raw.decode("utf-8", errors)
        except UnicodeDecodeError as e:
            raise LlmlabError(
                f"{path}: not UTF-8 at byte offset {offset + e.start} (use --errors replace to continue)"
            ) from None
        offset += len(raw)
        yield line.rstrip("\r\n")


@contextmanager
def new_step_folder(root: Path, step: int) -> Iterator[Path]:
    """Yield a hidden folder to write checkpoint `step` into; on success it becomes root/step-NNNNNN and is
    committed (`commit_step_folder`), on error it vanishes: no empty or half-written step folder remains.

    Raises:
        LlmlabError: root cannot be written.
    """
    name = f"step-{step:06d}"
    tmp = root / f".{name}.tmp"
    try:
        root.mkdir(exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # the leftover of a save that crashed
        tmp.mkdir()
    except OSError as e:
        raise LlmlabError(f"{root}: cannot write a checkpoint: {e.strerror}") from None
    try:
        yield tmp
        folder = root / name
        shutil.rmtree(folder, ignore_errors=True)  # a leftover of a save that crashed before its commit
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    commit_step_folder(root, folder, step)


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
    """The folder root/latest.json names, or None when nothing was committed there.

    Raises:
        LlmlabError: latest.json is corrupt, or names anything but a step-NNNNNN folder directly in `root`
            (a hand-edited "../.." is refused, never followed).
    """
    pointer = root / "latest.json"
    if not pointer.is_file():
        return None
    data = read_json(pointer, "checkpoint pointer")
    name = data.get("folder") if isinstance(data, dict) else None
    if not isinstance(name, str) or not _STEP_FOLDER.fullmatch(name):
        raise LlmlabError(f'{pointer}: expected {{"folder": "step-NNNNNN"}} naming a folder beside it')
    folder = root / name
    if not folder.is_dir() or folder.resolve().parent != root.resolve():
        raise LlmlabError(f"{pointer}: names {name}, which is not a checkpoint folder in {root}")
    return folder


def ensure_folder(directory: str | os.PathLike) -> Path:
    """`directory` as a Path, created if missing; its parent must already exist (a typo stays a typo)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise LlmlabError(f"{directory}: exists and is not a folder")
    if not directory.parent.is_dir():
        raise LlmlabError(f"{directory}: parent folder {directory.parent} does not exist")
    directory.mkdir(exist_ok=True)
    return directory
