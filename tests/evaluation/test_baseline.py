"""The linear baseline: equal to a plain scikit-learn pipeline, saved without pickle and reloaded exactly,
recognised by load_predictor, char n-grams for Chinese, and its real dev accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from llmlab.errors import LlmlabError
from llmlab.evaluation.baseline import CONFIG_FILE, WEIGHTS_FILE, LinearBaseline, cjk_share
from llmlab.evaluation.predictor import load_predictor
from llmlab.finetuning.data import read_examples


def _data(shared_data, name, n_train):
    train = read_examples(shared_data / name / "train.csv", max_examples=n_train)
    dev = read_examples(shared_data / name / "dev.csv")
    return (
        [e.text for e in train],
        [e.label for e in train],
        [e.text for e in dev],
        np.array([e.label for e in dev]),
    )


@pytest.fixture(scope="module")
def sst2(shared_data):
    return _data(shared_data, "sst2", 5000)


def test_equals_a_plain_sklearn_pipeline(sst2):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    texts, y, dev, _ = sst2
    ours = LinearBaseline().fit(texts, y)
    ref = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(C=4.0, max_iter=1000, random_state=0),
    )
    with threadpool_limits(1):  # as the baseline fits: the same BLAS summation order, the same iterates
        ref.fit(texts, y)
    np.testing.assert_allclose(ours.predict_proba(dev), ref.predict_proba(dev), rtol=0, atol=1e-12)


def test_save_load_round_trip_is_exact_and_pickle_free(sst2, tmp_path):
    texts, y, dev, _ = sst2
    model = LinearBaseline().fit(texts, y)
    model.save(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded = load_predictor(tmp_path / "b")  # recognised by its baseline.json
    assert isinstance(loaded, LinearBaseline) and loaded.labels == ["0", "1"] and loaded.name == "b"
    np.testing.assert_array_equal(loaded.predict_proba(dev), model.predict_proba(dev))
    proba = loaded.predict_proba(dev[:3], text_pairs=["x", "y", "z"])
    assert proba.shape == (3, 2) and np.allclose(proba.sum(1), 1)


def test_corrupt_or_foreign_folders_are_one_line_errors(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / CONFIG_FILE).write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(LlmlabError, match="not an llmlab linear baseline"):
        LinearBaseline.load(tmp_path / "b")
    (tmp_path / "b" / CONFIG_FILE).write_text('{"format": "llmlab-linear-baseline/1"', encoding="utf-8")
    with pytest.raises(LlmlabError, match="corrupt or truncated"):
        LinearBaseline.load(tmp_path / "b")


def test_needs_every_class():
    with pytest.raises(LlmlabError, match=r"missing \[1\]"):
        LinearBaseline().fit(["a b", "c d", "e f"], [0, 2, 2])


def test_cjk_detection():
    assert cjk_share(["酒店很好", "房间干净"]) == 1.0
    assert cjk_share(["a fine film"]) == 0.0


@pytest.mark.slow
def test_dev_accuracy_on_sst2_and_chnsenticorp(shared_data):
    """The figures reported in the README: full training sets, default settings."""
    for name, analyzer, floor in [("sst2", "word", 0.81), ("chnsenticorp_htl", "char", 0.91)]:
        texts, y, dev, y_dev = _data(shared_data, name, None)
        model = LinearBaseline().fit(texts, y)
        assert model.analyzer == analyzer
        assert (model.predict_proba(dev).argmax(1) == y_dev).mean() > floor
