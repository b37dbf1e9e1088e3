"""The `llmlab serve` command; `register` adds it to the main app (see llmlab.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add `serve` to `app`."""
