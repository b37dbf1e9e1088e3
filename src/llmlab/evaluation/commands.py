"""The `llmlab` subcommands of this topic; `register` adds them to the main app (see llmlab.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this topic's commands to `app`."""
