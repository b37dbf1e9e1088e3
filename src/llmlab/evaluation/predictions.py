"""Prediction files: per-row class probabilities written as CSV, read back and validated.

Format (UTF-8 CSV, RFC 4180 quoting via Python's `csv`, header first):
    text,label,pred,prob_0,...,prob_{K-1}
`label` is the true class id (0..K-1), `pred` the predicted one (the most probable class) and `prob_k` the
probability of class k. Files are written atomically (`llmlab.io.atomic_open`). Reading checks everything a
metric relies on and raises a one-line `LlmlabError` naming the file and the line: a missing column, a
non-number or NaN, a probability outside [0, 1], a row whose probabilities do not sum to 1 (tolerance 1e-6),
a label outside the classes, a pred that is not the most probable class, and (against a DATA file) a
different number of rows.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmlab.errors import LlmlabError
from llmlab.io import atomic_open

SUM_TOLERANCE = 1e-6
_HEAD = ("text", "label", "pred")


@dataclass
class Predictions:
    """Rows of a prediction file: texts (N,), true class ids y (N,) and probabilities proba (N, K)."""

    texts: list[str]
    y: np.ndarray
    proba: np.ndarray


def write_predictions(
    path: str | os.PathLike, texts: Sequence[str], y: Sequence[int], proba: np.ndarray
) -> None:
    """Write one row per example (see the module docstring), atomically.

    Raises:
        LlmlabError: the output folder does not exist.
    """
    proba = np.asarray(proba, dtype=np.float64)  # (N, K)
    with atomic_open(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*_HEAD, *(f"prob_{k}" for k in range(proba.shape[1]))])
        for text, label, row in zip(texts, y, proba, strict=True):
            writer.writerow([text, int(label), int(row.argmax()), *(repr(float(p)) for p in row)])


def read_predictions(
    path: str | os.PathLike, n_expected: int | None = None, source: str | None = None
) -> Predictions:
    """Read and validate a prediction file.

    Args:
        path: the CSV file.
        n_expected: the number of rows the file must have (the DATA file's), or None.
        source: what `n_expected` counts (named in the error).

    Raises:
        LlmlabError: one line naming the file and line, for every problem listed in the module docstring.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LlmlabError(f"{path}: cannot read predictions: {e}") from None
    k = _check_header(path, rows[0] if rows else [])
    body = rows[1:]
    if n_expected is not None and len(body) != n_expected:
        raise LlmlabError(f"{path}: {len(body)} prediction rows, but {source or 'the data'} has {n_expected}")
    if not body:
        raise LlmlabError(f"{path}: no prediction rows")
    proba = np.array([_numbers(path, i + 2, r[3:], k) for i, r in enumerate(body)])  # (N, K)
    check_probabilities(proba, path, first_line=2)
    y = np.array([_class_id(path, i + 2, r[1], k, "label") for i, r in enumerate(body)], dtype=np.int64)
    for i, r in enumerate(body):
        pred = _class_id(path, i + 2, r[2], k, "pred")
        if proba[i, pred] < proba[i].max():
            raise LlmlabError(f"{path}: line {i + 2}: pred {pred} is not the most probable class")
    return Predictions([r[0] for r in body], y, proba)


def _check_header(path: Path, header: list[str]) -> int:
    k = len(header) - len(_HEAD)
    if tuple(header[:3]) != _HEAD or k < 2 or header[3:] != [f"prob_{i}" for i in range(k)]:
        raise LlmlabError(
            f"{path}: expected the header text,label,pred,prob_0..prob_K-1 (K >= 2), got {','.join(header)[:80]}"
        )
    return k


def _numbers(path: Path, line: int, cells: list[str], k: int) -> list[float]:
    if len(cells) != k:
        raise LlmlabError(f"{path}: line {line}: expected {k} probabilities, got {len(cells)}")
    try:
        return [float(c) for c in cells]
    except ValueError:
        raise LlmlabError(f"{path}: line {line}: a probability is not a number") from None


def _class_id(path: Path, line: int, cell: str, k: int, column: str) -> int:
    try:
        value = int(cell)
    except ValueError:
        raise LlmlabError(f"{path}: line {line}: {column} {cell!r} is not an integer class id") from None
    if not 0 <= value < k:
        raise LlmlabError(f"{path}: line {line}: {column} {value} is outside the classes 0..{k - 1}")
    return value


def check_probabilities(proba: np.ndarray, source: str | os.PathLike, first_line: int = 1) -> None:
    """Refuse NaN, values outside [0, 1] and rows not summing to 1 (tolerance `SUM_TOLERANCE`).

    Args:
        proba: (N, K) probabilities.
        source: the file (or model) named in the error.
        first_line: the line number of row 0 in `source`.

    Raises:
        LlmlabError: naming the first offending line.
    """
    problems = [
        (np.isnan(proba).any(axis=1), "a probability is NaN"),
        (((proba < 0) | (proba > 1)).any(axis=1), "a probability is outside [0, 1]"),
        (
            np.abs(proba.sum(axis=1) - 1) > SUM_TOLERANCE,
            f"probabilities do not sum to 1 (tolerance {SUM_TOLERANCE:g})",
        ),
    ]
    for bad, what in problems:
        if bad.any():
            row = int(np.argmax(bad))
            raise LlmlabError(f"{source}: line {first_line + row}: {what}: {proba[row].tolist()}"[:200])


def check_labels(y: np.ndarray, k: int, source: str | os.PathLike, first_line: int = 2) -> None:
    """Refuse true class ids outside 0..k-1 (the model's classes).

    Raises:
        LlmlabError: naming the first offending line of `source`.
    """
    bad = (y < 0) | (y >= k)
    if bad.any():
        row = int(np.argmax(bad))
        raise LlmlabError(
            f"{source}: line {first_line + row}: label {int(y[row])} is outside the model's classes 0..{k - 1}"
        )
