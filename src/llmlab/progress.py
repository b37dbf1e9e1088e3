"""Progress display for long work: a rich progress bar on stderr (stdout stays clean for results)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmlab.errors import release_notices

ProgressFn = Callable[[int, int], None]
"""Called as `progress(done, total)` by long-running functions (trainers, counters)."""

_console = Console(stderr=True)


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[ProgressFn]:
    """A stderr progress bar; yields a `progress(done, total)` callback that moves it.

    Args:
        description: what is being done, shown left of the bar.
        enabled: False gives a callback that does nothing (quiet runs, tests).
    """
    if not enabled:
        yield lambda done, total: None
        return
    release_notices()  # shown work starts: the notices held back until now (`llmlab.errors.notice`) show
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_console, transient=False) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
