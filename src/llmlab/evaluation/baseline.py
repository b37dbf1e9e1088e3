"""The linear baseline: TF-IDF n-grams + logistic regression (scikit-learn), saved without pickle.

The classic strong text-classification baseline (e.g. Wang & Manning 2012, "Baselines and Bigrams"; the
scikit-learn text tutorial): `TfidfVectorizer` (word 1-2 grams, or character 1-3 grams for Chinese text,
detected by the share of CJK ideographs) and `LogisticRegression` (L2, lbfgs, seeded). It is a `Predictor`
(`llmlab.evaluation.predictor`), so `llmlab evaluate`, serving and A/B tests use it like a fine-tuned model.

Saved folder: `baseline.json` (settings, class names, the vocabulary in column order) and
`weights.safetensors` (idf (F,), coef (K', F), intercept (K',)). Why not a pickle / joblib file: unpickling
runs arbitrary code, so a downloaded model folder could execute anything, and a pickle breaks across
scikit-learn versions; plain JSON + safetensors is safe to open, readable, and loads into fresh sklearn
objects whose predictions equal the trained ones exactly (tested).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_bytes, atomic_write_json, read_json

CONFIG_FILE = "baseline.json"  # the name llmlab.evaluation.predictor looks for
WEIGHTS_FILE = "weights.safetensors"
FORMAT = "llmlab-linear-baseline/1"
_CJK_SHARE = 0.2  # texts whose characters are at least this share CJK ideographs are "Chinese"


def cjk_share(texts: Sequence[str], sample: int = 500) -> float:
    """The share of CJK Unified Ideographs (U+4E00..U+9FFF, U+3400..U+4DBF) among the non-space characters
    of the first `sample` texts."""
    chars = "".join(texts[:sample]).replace(" ", "")
    cjk = sum(1 for c in chars if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    return cjk / max(len(chars), 1)


class LinearBaseline:
    """TF-IDF + logistic regression; a `Predictor` once fitted or loaded."""

    def __init__(self, c: float = 4.0, min_df: int = 2, analyzer: str | None = None, seed: int = 0):
        """Args:
        c: inverse L2 strength of the logistic regression (sklearn's C).
        min_df: drop n-grams seen in fewer training texts.
        analyzer: "word" (1-2 grams) or "char" (1-3 grams); None detects it from the training texts.
        seed: the solver's random_state.
        """
        self.c, self.min_df, self.analyzer, self.seed = c, min_df, analyzer, seed
        self.labels: list[str] = []
        self.name = "linear-baseline"
        self.vectorizer = self.classifier = None

    def _vectorizer(self, vocabulary: Sequence[str] | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        ngrams = (1, 3) if self.analyzer == "char" else (1, 2)
        return TfidfVectorizer(
            analyzer=self.analyzer,
            ngram_range=ngrams,
            min_df=1 if vocabulary is not None else self.min_df,
            sublinear_tf=True,
            vocabulary=vocabulary,
            dtype=np.float64,
        )

    def fit(
        self, texts: Sequence[str], labels: Sequence[int], vocabulary: Sequence[str] | None = None
    ) -> LinearBaseline:
        """Fit on texts and class ids 0..K-1 (every class must occur); `vocabulary` fixes the features.

        Raises:
            LlmlabError: fewer than two classes, or a class id in 0..max missing from the labels.
        """
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        y = np.asarray(labels, dtype=np.int64)
        k = int(y.max()) + 1 if len(y) else 0
        missing = sorted(set(range(k)) - set(y.tolist()))
        if k < 2 or missing:
            raise LlmlabError(
                f"baseline: training labels need classes 0..K-1 (K >= 2); missing {missing or [0, 1]}"
            )
        self.analyzer = self.analyzer or ("char" if cjk_share(texts) >= _CJK_SHARE else "word")
        self.vectorizer = self._vectorizer(vocabulary)
        try:
            x = self.vectorizer.fit_transform(texts)  # (N, F) sparse
        except ValueError as e:  # "empty vocabulary": punctuation only, or every n-gram below min_df
            raise LlmlabError(f"baseline: no usable features in the training texts ({e})") from None
        with threadpool_limits(1):  # BLAS threads only contend on a sparse problem (7 s vs 0.2 s on 2 cores)
            self.classifier = LogisticRegression(C=self.c, max_iter=1000, random_state=self.seed).fit(x, y)
        self.labels = [str(i) for i in range(k)]
        return self

    @property
    def terms(self) -> np.ndarray:
        """The feature names (F,), in column order."""
        return self.vectorizer.get_feature_names_out()

    def features(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None):
        """TF-IDF matrix (N, F) (scipy sparse) of texts; a pair is joined to its text by a space."""
        if text_pairs is not None:
            texts = [f"{a} {b}" for a, b in zip(texts, text_pairs, strict=True)]
        return self.vectorizer.transform(texts)

    def predict_proba(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """(N, K) float64 class probabilities (`batch_size` is unused: sklearn takes all rows at once)."""
        if self.classifier is None:
            raise LlmlabError("baseline: predict_proba before fit or load")
        return self.classifier.predict_proba(self.features(texts, text_pairs)).astype(np.float64)

    def save(self, directory: str | os.PathLike) -> None:
        """Write baseline.json and weights.safetensors into `directory` (created; its parent must exist).

        Raises:
            LlmlabError: the parent folder is missing.
        """
        directory = Path(directory)
        if not directory.parent.is_dir():
            raise LlmlabError(f"{directory}: parent folder {directory.parent} does not exist")
        directory.mkdir(exist_ok=True)
        clf = self.classifier
        tensors = {"idf": self.vectorizer.idf_, "coef": clf.coef_, "intercept": clf.intercept_}
        data = save({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()})
        atomic_write_bytes(directory / WEIGHTS_FILE, data)
        config = {
            "format": FORMAT,
            "labels": self.labels,
            "c": self.c,
            "min_df": self.min_df,
            "analyzer": self.analyzer,
            "seed": self.seed,
            "vocabulary": self.terms.tolist(),
        }
        atomic_write_json(directory / CONFIG_FILE, config)  # last: a folder with baseline.json is complete

    @classmethod
    def load(cls, directory: str | os.PathLike) -> LinearBaseline:
        """Read a folder written by `save`; predictions equal the saved model's exactly.

        Raises:
            LlmlabError: a missing or corrupt file, or an unknown format.
        """
        from sklearn.linear_model import LogisticRegression

        directory = Path(directory)
        config = read_json(directory / CONFIG_FILE, "baseline config")
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise LlmlabError(f"{directory / CONFIG_FILE}: not an llmlab linear baseline ({FORMAT})")
        try:
            weights = load_file(str(directory / WEIGHTS_FILE))
        except Exception as e:  # safetensors raises several types for missing / corrupt files
            raise LlmlabError(f"{directory / WEIGHTS_FILE}: cannot read baseline weights: {e}") from None
        _check_saved(directory, config, weights)
        model = cls(config["c"], config["min_df"], config["analyzer"], config["seed"])
        model.labels, model.name = list(config["labels"]), directory.name
        model.vectorizer = model._vectorizer(config["vocabulary"])
        model.vectorizer.idf_ = weights["idf"]
        model.classifier = LogisticRegression(C=model.c)
        model.classifier.coef_, model.classifier.intercept_ = weights["coef"], weights["intercept"]
        model.classifier.classes_ = np.arange(len(model.labels))
        return model


_CONFIG_TYPES = {
    "labels": list,
    "c": (int, float),
    "min_df": int,
    "analyzer": str,
    "seed": int,
    "vocabulary": list,
}


def _check_saved(directory: Path, config: dict, weights: dict[str, np.ndarray]) -> None:
    """Refuse a hand-edited baseline.json (wrong types, an unknown analyzer) or weights that do not fit it."""
    where = directory / CONFIG_FILE
    for key, kind in _CONFIG_TYPES.items():
        if not isinstance(config.get(key), kind) or isinstance(config.get(key), bool):
            raise LlmlabError(f"{where}: field {key!r} is missing or of the wrong type")
    if config["analyzer"] not in ("word", "char") or not all(
        isinstance(t, str) for t in config["vocabulary"]
    ):
        raise LlmlabError(f"{where}: analyzer must be word or char, and the vocabulary a list of strings")
    k, f = len(config["labels"]), len(config["vocabulary"])
    shapes = {"idf": (f,), "coef": (1 if k == 2 else k, f), "intercept": (1 if k == 2 else k,)}
    for name, shape in shapes.items():
        if name not in weights or weights[name].shape != shape:
            raise LlmlabError(
                f"{directory / WEIGHTS_FILE}: {name} should have shape {shape} for {k} labels and {f} features"
            )
    if k < 2:
        raise LlmlabError(f"{where}: needs at least two labels")
