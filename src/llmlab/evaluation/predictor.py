"""A trained text classifier, whatever made it: the one interface evaluation, serving and A/B tests call.

A model folder is either a fine-tuned Transformer (written by `llmlab finetune`: full weights, or an adapter
that names its base) or the TF-IDF + logistic-regression baseline (written by `llmlab baseline`, recognised by
its `baseline.json`). `load_predictor` opens either; several folders (a list, or one comma-separated string)
make an ensemble that averages the predicted class probabilities (the classes must agree).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from llmlab.errors import LlmlabError

BASELINE_FILE = "baseline.json"


class Predictor(Protocol):
    """Anything that turns texts into class probabilities."""

    labels: list[str]  # class names; index = class id
    name: str  # a short name for tables (the folder name by default)

    def predict_proba(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """(N, K) float64 probabilities, rows summing to 1, in the order of `labels`."""
        ...


class Ensemble:
    """The mean of its members' predicted probabilities (soft voting)."""

    def __init__(self, members: Sequence[Predictor]):
        labels = members[0].labels
        for m in members[1:]:
            if m.labels != labels:
                raise LlmlabError(
                    f"ensemble: {m.name} has classes {m.labels}, {members[0].name} has {labels}"
                )
        self.members, self.labels = list(members), list(labels)
        self.name = "ensemble(" + "+".join(m.name for m in members) + ")"

    def predict_proba(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        return np.mean([m.predict_proba(texts, text_pairs, batch_size) for m in self.members], axis=0)


def load_predictor(
    paths: str | os.PathLike | Sequence[str | os.PathLike], precision: str = "fp32"
) -> Predictor:
    """Open one model folder, or several as an `Ensemble`.

    Args:
        paths: a folder, a list of folders, or one string of comma-separated folders (so that every command
            option that takes a model, such as `--variant A=DIR1,DIR2`, also takes an ensemble).
        precision: what fine-tuned models predict in (fp32, bf16-mixed, bf16: `llmlab.model.precision`);
            the linear baseline ignores it.

    Raises:
        LlmlabError: a missing folder, or one that is neither a fine-tuned model nor a baseline.
    """
    if isinstance(paths, (str, os.PathLike)):
        text = os.fspath(paths)
        paths = text.split(",") if "," in text and not Path(text).is_dir() else [text]
    members = [_load_one(Path(p), precision) for p in paths]
    if not members:
        raise LlmlabError("no model folder given")
    return members[0] if len(members) == 1 else Ensemble(members)


def _load_one(path: Path, precision: str) -> Predictor:
    if not path.is_dir():
        raise LlmlabError(f"{path}: model folder not found")
    if (path / BASELINE_FILE).is_file():
        from llmlab.evaluation.baseline import LinearBaseline

        return LinearBaseline.load(path)
    from llmlab.finetuning.methods import load_classifier

    return load_classifier(path, precision)
