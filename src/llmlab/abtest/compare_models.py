"""Offline A/B comparison of two model folders on one labelled file: what `llmlab abtest compare` computes.

    from llmlab.abtest import compare
    result = compare("runs/full", "runs/lora", "test.csv")
    print(result["verdict"])     # "full is better than lora: accuracy -14.7 points [...], McNemar p=..."

Both models predict the same rows; `offline.compare_predictions` runs the paired tests (McNemar, paired
bootstrap, DeLong, permutation) on their probabilities. A comma-separated list of folders is an ensemble.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmlab.abtest.offline import compare_predictions
from llmlab.errors import LlmlabError
from llmlab.evaluation.predictor import load_predictor
from llmlab.finetuning.data import read_examples

__all__ = ["compare"]


def compare(
    model_a: str | Path,
    model_b: str | Path,
    data: str | Path,
    n_boot: int = 2000,
    n_perm: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Paired comparison of model A (the reference) and model B (the candidate) on the rows of `data`.

    Args:
        model_a, model_b: fine-tuned or baseline folders ("F1,F2" is an ensemble).
        data: labelled CSV (text,label) or JSONL.
        n_boot, n_perm: bootstrap resamples and permutations; alpha: the test level; seed: their seed.

    Returns:
        `offline.compare_predictions`'s dict: names, n, mcnemar, bootstrap, delong, permutation, effect, verdict.

    Raises:
        LlmlabError: the models' classes differ, or a label lies outside them.
    """
    a = load_predictor(model_a)
    b = load_predictor(model_b)
    if a.labels != b.labels:
        raise LlmlabError(f"{model_b}: classes {b.labels} differ from {model_a}'s {a.labels}")
    examples = read_examples(data)
    y = np.array([e.label for e in examples])
    if y.max() >= len(a.labels):
        raise LlmlabError(f"{data}: label {y.max()} is outside the models' {len(a.labels)} classes")
    texts, pairs = [e.text for e in examples], [e.text_pair for e in examples]
    pairs = None if all(p is None for p in pairs) else pairs
    names = (a.name, b.name) if a.name != b.name else ("A", "B")
    probas = [m.predict_proba(texts, pairs) for m in (a, b)]
    return compare_predictions(y, *probas, names=names, n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha)
