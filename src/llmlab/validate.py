"""The input-validation layer every command goes through before it does any work, and its undo on failure.

Three rules, checked the same way by every command (the CLI calls them first; the Python API may too):
1. An output may not be an input, contain one, or lie inside one (paths resolved, symlinks followed), so
   `-o` pointing at the corpus, the base model or a data file is refused instead of destroying it.
2. An output's kind is checked up front: a file output may not be an existing folder, a folder output may
   not be an existing file; its folder must exist and be writable (a read-only mount is named).
3. A command that fails leaves nothing new behind (`undo_on_failure`): a run folder, a cache, a database or
   a config it created is removed again, unless the error is a `RunStopped` that kept a good checkpoint.
The caps on what the data may ask of memory live here too (`MAX_CLASSES`), so that a single label of
1,000,000,000 is refused before anything is sized from it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from llmlab.errors import LlmlabError, RunStopped

MAX_CLASSES = 10_000  # class ids are 0..MAX_CLASSES-1: a label beyond is a typo, not a class


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def check_output(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    kind: str = "file",
    parents: bool = False,
) -> Path:
    """Refuse an output path before any work starts (see the module docstring, rules 1 and 2).

    Args:
        path: where the command will write.
        inputs: what it reads (files or folders; None entries are skipped).
        kind: "file" (written whole, e.g. tokenizer.json) or "folder" (filled with files, e.g. a run folder).
        parents: the command creates missing parent folders (else the parent must exist: a typo stays one).

    Returns:
        `path` as a Path.

    Raises:
        LlmlabError: one line naming the path and the problem.
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise LlmlabError(f"{path}: is a folder; give a file name")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise LlmlabError(f"{path}: exists and is not a folder")
    target = _resolved(path)
    if not target.parent.is_dir() and not parents:
        raise LlmlabError(f"{path}: output folder {path.parent} does not exist")
    candidates = (target, *target.parents) if kind == "folder" else target.parents
    writable = next(p for p in candidates if p.exists())  # the folder the first write goes into
    if not writable.is_dir():
        raise LlmlabError(f"{path}: {writable} is a file, not a folder")
    if not os.access(writable, os.W_OK):
        raise LlmlabError(f"{path}: cannot write: {writable} is read-only")
    for given in inputs:
        if given is not None:
            _check_apart(path, target, Path(given))
    return path


def _check_apart(path: Path, target: Path, given: Path) -> None:
    source = _resolved(given)
    if target == source:
        raise LlmlabError(f"{path}: is also an input; writing it would destroy {given}")
    if source.is_relative_to(target):
        raise LlmlabError(f"{path}: contains the input {given}; write somewhere else")
    if target.is_relative_to(source):
        raise LlmlabError(f"{path}: lies inside the input {given}; write somewhere else")


def check_input(path: str | os.PathLike, kind: str = "file", what: str = "input") -> Path:
    """An input that must exist as a file ("file"), a folder ("folder") or either ("any").

    Raises:
        LlmlabError: it is missing or of the wrong kind.
    """
    path = Path(path)
    if not path.exists():
        raise LlmlabError(f"{path}: no such file or folder ({what})")
    if kind == "file" and path.is_dir():
        raise LlmlabError(f"{path}: is a folder, expected a file ({what})")
    if kind == "folder" and not path.is_dir():
        raise LlmlabError(f"{path}: is a file, expected a folder ({what})")
    return path


def check_class_id(label: int, where: str) -> int:
    """`label` if it is a usable class id 0..MAX_CLASSES-1.

    Raises:
        LlmlabError: naming `where` (file and line).
    """
    if not 0 <= label < MAX_CLASSES:
        raise LlmlabError(f"{where}: label {label} is outside 0..{MAX_CLASSES - 1} (class ids are 0..K-1)")
    return label


def _snapshot(path: Path) -> set[Path] | None:
    """What exists at `path` now: None (nothing), or the set of paths in the folder (a file: itself)."""
    if not os.path.lexists(path):
        return None
    if not path.is_dir() or path.is_symlink():
        return {path}
    return {path, *(Path(root) / name for root, dirs, files in os.walk(path) for name in dirs + files)}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _undo(path: Path, before: set[Path] | None) -> None:
    if before is None:
        if os.path.lexists(path):
            _remove(path)
        return
    for new in sorted((_snapshot(path) or set()) - before, key=lambda p: len(p.parts)):
        if os.path.lexists(new):
            _remove(new)  # a new folder goes with everything in it


@contextmanager
def undo_on_failure(*paths: str | os.PathLike | None) -> Iterator[None]:
    """On a LlmlabError inside the block, remove what the block created at `paths`: a path that did not
    exist goes entirely; inside a folder that existed, the files and folders that are new go.

    Files that existed are left as they are (writes are atomic, so a failed write never changed them). A
    `RunStopped` that kept a checkpoint undoes nothing: the run folder is the user's to resume. Other
    exceptions (Ctrl-C included) undo nothing either: an interrupted run resumes from its checkpoint.
    """
    watched = [Path(p) for p in paths if p is not None]
    before = {p: _snapshot(p) for p in watched}
    try:
        yield
    except LlmlabError as e:
        if not (isinstance(e, RunStopped) and e.kept is not None):
            for p in watched:
                _undo(p, before[p])
        raise
