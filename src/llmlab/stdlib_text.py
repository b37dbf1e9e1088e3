"""Text that ships with Python itself, so the demo, the studies and the examples run anywhere offline.

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


# The demo's classification task: is a docstring about the system (files, processes, network, concurrency)
# or about data (numbers, text, containers)? Labelled by the module it comes from.
TOPIC_LABELS = ("data", "system")
_TOPIC_MODULES = (
    ("math", "statistics", "decimal", "fractions", "random", "re", "string", "textwrap", "difflib", "csv",
     "json", "collections", "itertools", "functools", "heapq", "datetime", "enum", "dataclasses"),
    ("os", "pathlib", "shutil", "subprocess", "tarfile", "zipfile", "socket", "http.client", "urllib.parse",
     "email", "asyncio", "threading", "sqlite3", "logging"),
)  # fmt: skip


def _first_paragraphs(module_name: str) -> list[str]:
    """The first paragraph of each public docstring of a module, its classes and their methods."""
    module = importlib.import_module(module_name)
    objects = []
    for name in sorted(vars(module)):
        member = vars(module)[name]
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        objects.append(member)
        if inspect.isclass(member):
            objects.extend(v for k, v in sorted(vars(member).items()) if not k.startswith("_"))
    docs = (inspect.getdoc(obj) if callable(obj) or inspect.isclass(obj) else None for obj in objects)
    return [" ".join(d.split("\n\n")[0].split()) for d in docs if d]


def demo_classification() -> list[tuple[str, int]]:
    """(text, label) pairs, label an index into TOPIC_LABELS; distinct texts of at least 30 characters."""
    seen = set()
    examples = []
    for label, modules in enumerate(_TOPIC_MODULES):
        for name in modules:
            for text in _first_paragraphs(name):
                if len(text) >= 30 and text not in seen:
                    seen.add(text)
                    examples.append((text, label))
    return examples
