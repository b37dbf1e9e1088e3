"""Train and valid text files cut from a shared corpus, for the pretraining tests."""

from __future__ import annotations

from pathlib import Path

from llmlab.io import read_lines


def split_corpus(source: Path, root: Path, n_train: int, n_valid: int) -> tuple[list[str], dict[str, Path]]:
    """The first n_train lines of `source` as root/train.txt, the next n_valid as root/valid.txt; returns the
    train lines and {"train": path, "valid": path}."""
    lines = list(read_lines(source))[: n_train + n_valid]
    paths = {"train": root / "train.txt", "valid": root / "valid.txt"}
    paths["train"].write_text("\n".join(lines[:n_train]) + "\n", encoding="utf-8")
    paths["valid"].write_text("\n".join(lines[n_train:]) + "\n", encoding="utf-8")
    return lines[:n_train], paths
