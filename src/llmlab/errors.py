"""The one error type users see.

Anything a user can get wrong (a file, a flag, a corrupt artefact) raises `LlmlabError` with one line that
names the file and the problem; the CLI prints it to stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from types import ModuleType


class LlmlabError(Exception):
    """A user-facing error: one line naming the file (or setting) and what is wrong with it."""


def require_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Import `module`, or raise a one-line LlmlabError naming the `pip install` that brings it.

    The core install (tokenizers, model, pretraining, fine-tuning, evaluation) leaves out the server, the
    search engine and the PostgreSQL driver; they come with the extras `serve`, `tune` and `postgres`.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LlmlabError(f"{feature} needs the '{extra}' extra: pip install 'llmlab[{extra}]'") from None


class RunStopped(LlmlabError):
    """A training run stopped on a problem found while training (a non-finite loss); the run folder keeps
    its last good checkpoint (`kept`, None when none was written yet) so that nothing done is thrown away."""

    def __init__(self, message: str, kept: Path | None = None):
        super().__init__(message)
        self.kept = kept


# scheme://user:password@host: the password may itself hold "@" (the last "@" of the word ends it)
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):\S*@")
# password=..., also as a libpq conninfo or a query string
_KEY_PASSWORD = re.compile(r"\b(password|passwd|pwd)=[^\s&;]+", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """`text` with the password of every URL in it (scheme://user:PASSWORD@host) and every password=VALUE
    replaced by ***: what any message, log line or report that can show a storage URL goes through."""
    return _KEY_PASSWORD.sub(r"\1=***", _URL_PASSWORD.sub(r"\1:***@", str(text)))


_held_notices: list[str] | None = None  # None: notices print at once


def notice(message: str) -> None:
    """An informational line for stderr ("precision: bf16-mixed (auto)"). While the CLI holds notices
    (`hold_notices`) it waits: shown once work starts (`release_notices`, called by the progress bar and
    the server) or when the command succeeds, dropped when it fails, so an error stays the only line."""
    if _held_notices is None:
        print(message, file=sys.stderr)
    else:
        _held_notices.append(message)


def hold_notices() -> None:
    """Keep notices back from now on (the CLI, before running a command)."""
    global _held_notices
    _held_notices = []


def release_notices(show: bool = True) -> None:
    """Print (or, with show=False, drop) the held notices; later ones print at once."""
    global _held_notices
    held, _held_notices = _held_notices or [], None
    for message in held if show else ():
        print(message, file=sys.stderr)
