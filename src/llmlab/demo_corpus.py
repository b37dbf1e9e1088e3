"""The demo's embedded corpus: English text that ships with Python itself, so the demo runs anywhere offline.

Two sources, both part of every CPython install: `pydoc_data.topics` (the language reference topics that
`help()` shows, about 0.5 MB) and the docstrings of a fixed list of standard-library modules and their public
members. The list is fixed so the corpus is the same on every run of a given Python version.
"""

from __future__ import annotations

import importlib
import inspect

_MODULES = (
    "argparse", "asyncio", "collections", "contextlib", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "email", "enum", "fractions", "functools", "heapq", "http.client", "inspect", "itertools",
    "json", "logging", "math", "os", "pathlib", "pickle", "random", "re", "shutil", "socket", "sqlite3",
    "statistics", "string", "subprocess", "tarfile", "textwrap", "threading", "unittest",
    "urllib.parse", "uuid", "zipfile",
)  # fmt: skip


def _docstrings(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    docs = [inspect.getdoc(module) or ""]
    for name in sorted(vars(module)):
        member = getattr(module, name)
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        docs.append(inspect.getdoc(member) or "")
    return docs


def demo_corpus() -> list[str]:
    """The corpus as non-empty lines, in a fixed order."""
    from pydoc_data.topics import topics

    texts = [topics[key] for key in sorted(topics)]
    for name in _MODULES:
        texts.extend(_docstrings(name))
    return [line.strip() for text in texts for line in text.splitlines() if line.strip()]
