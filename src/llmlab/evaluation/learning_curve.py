"""Learning curves: score against training-set size, and cheap epoch-by-epoch training histories.

- `by_data_size` fits a model on seeded random 10%, 30% and 100% subsets of the training set and scores each
  on its own training subset and on dev (scikit-learn's `learning_curve` idea, with a given fit function:
  the linear baseline by default, or a transformer via `finetune_fit`). A dev score still rising at 100%
  says more data would help; a wide train-dev gap says the model is over-fitting.
- `epoch_history` trains a logistic regression on TF-IDF features epoch by epoch with
  `sklearn.linear_model.SGDClassifier.partial_fit`, recording train/dev loss and accuracy after each epoch in
  the history.json record format, so under-, good and over-fitting runs can be built on real data in seconds
  by choosing the capacity (features, L2 strength `alpha`) and the training-set size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from llmlab.evaluation.baseline import LinearBaseline
from llmlab.evaluation.metrics import accuracy, log_loss
from llmlab.evaluation.predictor import Predictor

FRACTIONS = (0.1, 0.3, 1.0)
FitFn = Callable[[Sequence[str], Sequence[int]], Predictor]


def fit_baseline(texts: Sequence[str], labels: Sequence[int]) -> Predictor:
    """The default fit function: a `LinearBaseline` with its default settings."""
    return LinearBaseline().fit(texts, labels)


def _subset(n_total: int, fraction: float, seed: int) -> np.ndarray:
    """The first round(fraction * n) rows of a seeded permutation (nested: 10% is inside 30%)."""
    order = np.random.default_rng(seed).permutation(n_total)
    return order[: max(2, round(fraction * n_total))]


def by_data_size(
    train, dev, fit: FitFn = fit_baseline, fractions: Sequence[float] = FRACTIONS, seed: int = 0
) -> list[dict]:
    """Train and dev accuracy of `fit` on growing subsets of `train`.

    Args:
        train, dev: sequences of examples (objects with .text and .label).
        fit: (texts, labels) -> Predictor.
        fractions: shares of the training set.
        seed: seed of the subsets.

    Returns:
        [{"fraction", "n", "train", "dev"}] in the order of `fractions`.
    """
    dev_texts = [e.text for e in dev]
    dev_y = np.array([e.label for e in dev])
    points = []
    for fraction in fractions:
        rows = [train[i] for i in _subset(len(train), fraction, seed)]
        texts = [e.text for e in rows]
        y = np.array([e.label for e in rows])
        model = fit(texts, y)
        scores = [accuracy(yy, model.predict_proba(tt)) for tt, yy in ((texts, y), (dev_texts, dev_y))]
        points.append({"fraction": fraction, "n": len(rows), "train": scores[0], "dev": scores[1]})
    return points


def finetune_fit(settings, work_dir: str | os.PathLike) -> FitFn:
    """A fit function that fine-tunes a transformer with `llmlab.finetuning.run.finetune`.

    Args:
        settings: a `FinetuneSettings` template; its train_path and out_dir are replaced per subset.
        work_dir: a folder for the subsets' CSV files and model folders (created).
    """
    import csv
    import dataclasses

    from llmlab.finetuning.methods import load_classifier
    from llmlab.finetuning.run import finetune
    from llmlab.io import atomic_open

    def fit(texts: Sequence[str], labels: Sequence[int]) -> Predictor:
        run = Path(work_dir) / f"n{len(texts)}"
        run.mkdir(parents=True, exist_ok=True)
        with atomic_open(run / "train.csv") as f:
            rows = zip(texts, (int(y) for y in labels), strict=True)
            csv.writer(f, lineterminator="\n").writerows([("text", "label"), *rows])
        finetune(
            dataclasses.replace(settings, train_path=run / "train.csv", out_dir=run / "model"), progress=False
        )
        return load_classifier(run / "model")

    return fit


def epoch_history(
    train, dev, alpha: float, epochs: int, max_features: int | None = None, eta0: float = 0.05, seed: int = 0
) -> list[dict]:
    """Logistic regression trained by SGD epoch by epoch; one history record before training and one per epoch.

    Args:
        train, dev: examples (objects with .text and .label).
        alpha: L2 strength (capacity control: large = under-fit, ~0 = free to over-fit).
        epochs: passes over `train`.
        max_features: the vocabulary size of the word 1-2 gram TF-IDF (None: all n-grams).
        eta0: constant learning rate.
        seed: shuffling seed.

    Returns:
        [{"step", "epoch", "train_loss", "dev_loss", "train_accuracy", "dev_accuracy"}]; step counts examples.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), max_features=max_features, sublinear_tf=True)
    x_train = vectorizer.fit_transform([e.text for e in train])  # (N, F)
    x_dev = vectorizer.transform([e.text for e in dev])
    y_train = np.array([e.label for e in train])
    y_dev = np.array([e.label for e in dev])
    classes = np.arange(int(max(y_train.max(), y_dev.max())) + 1)
    clf = SGDClassifier(loss="log_loss", alpha=alpha, learning_rate="constant", eta0=eta0, random_state=seed)
    uniform = np.full((1, len(classes)), 1 / len(classes))
    history = [
        _record(0, 0, y_train, np.repeat(uniform, len(y_train), 0), y_dev, np.repeat(uniform, len(y_dev), 0))
    ]
    for epoch in range(1, epochs + 1):
        clf.partial_fit(x_train, y_train, classes=classes)
        history.append(
            _record(
                epoch,
                epoch * len(y_train),
                y_train,
                clf.predict_proba(x_train),
                y_dev,
                clf.predict_proba(x_dev),
            )
        )
    return history


def _record(epoch: int, step: int, y_train, p_train, y_dev, p_dev) -> dict:
    return {
        "step": step,
        "epoch": epoch,
        "train_loss": log_loss(y_train, p_train),
        "dev_loss": log_loss(y_dev, p_dev),
        "train_accuracy": accuracy(y_train, p_train),
        "dev_accuracy": accuracy(y_dev, p_dev),
    }
