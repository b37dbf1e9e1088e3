"""Every metric equals scikit-learn's to 1e-12 (random and real predictions, edge cases), and the vectorised
bootstrap equals the one-resample-at-a-time bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from llmlab.evaluation.bootstrap import Metric, bootstrap_values, resample_chunks
from llmlab.evaluation.metrics import bootstrap_ci, classification_metrics, headline, metrics_with_ci

TOL = 1e-12


@pytest.fixture(scope="module")
def real_predictions(shared_data):
    """(y, proba) of the linear baseline (trained on 10,000 SST-2 train rows) on SST-2 dev."""
    from llmlab.evaluation.baseline import LinearBaseline
    from llmlab.finetuning.data import read_examples

    train = read_examples(shared_data / "sst2" / "train.csv", max_examples=10000)
    dev = read_examples(shared_data / "sst2" / "dev.csv")
    model = LinearBaseline().fit([e.text for e in train], [e.label for e in train])
    return np.array([e.label for e in dev]), model.predict_proba([e.text for e in dev])


def _random_case(seed: int, n: int, k: int, one_class: bool = False, one_pred: bool = False):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64) if one_class else rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k) * 0.7, n)  # (N, K)
    if one_pred:
        proba = np.zeros((n, k))
        proba[:, 0] = 1.0
    return y, proba


def _reference(y: np.ndarray, proba: np.ndarray) -> dict:
    """The same metrics computed directly with scikit-learn."""
    k, pred = proba.shape[1], proba.argmax(axis=1)
    ref = {"accuracy": skm.accuracy_score(y, pred)}
    for average in ("binary", "macro", "micro", "weighted") if k == 2 else ("macro", "micro", "weighted"):
        labels = None if average == "binary" else list(range(k))
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, pred, labels=labels, average=average, zero_division=0
        )
        ref.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
    ref["log_loss"] = skm.log_loss(y, proba, labels=list(range(k)))
    if len(np.unique(y)) == k:  # AUC defined
        ref["roc_auc"] = (
            skm.roc_auc_score(y, proba[:, 1]) if k == 2 else skm.roc_auc_score(y, proba, multi_class="ovr")
        )
        ref["pr_auc"] = (
            skm.average_precision_score(y, proba[:, 1])
            if k == 2
            else skm.average_precision_score(label_binarize(y, classes=list(range(k))), proba)
        )
    return ref


def _assert_matches(y: np.ndarray, proba: np.ndarray) -> dict:
    ours = classification_metrics(y, proba)
    for name, value in _reference(y, proba).items():
        assert ours[name] == pytest.approx(value, abs=TOL), name
    k = proba.shape[1]
    cm = skm.confusion_matrix(y, proba.argmax(1), labels=list(range(k)))
    assert ours["confusion_matrix"] == cm.tolist()
    return ours


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(5, 60),
    k=st.integers(2, 4),
    one_class=st.booleans(),
    one_pred=st.booleans(),
)
def test_every_metric_equals_sklearn_on_random_predictions(seed, n, k, one_class, one_pred):
    y, proba = _random_case(seed, n, k, one_class, one_pred)
    ours = _assert_matches(y, proba)
    if len(np.unique(y)) < k:
        assert ours["roc_auc"] is None and ours["pr_auc"] is None
        assert any(note.startswith("AUC undefined") for note in ours["notes"])


def test_one_class_in_y_true_gives_null_auc_with_a_note():
    y, proba = _random_case(1, 30, 2, one_class=True)
    ours = _assert_matches(y, proba)
    assert ours["roc_auc"] is None and ours["pr_auc"] is None
    assert "one class only" in ours["notes"][0]
    assert metrics_with_ci(y, proba, n_boot=50)["ci"]["roc_auc"] == [None, None]


def test_all_predictions_one_class_use_zero_division_zero():
    y, proba = _random_case(2, 40, 3, one_pred=True)
    ours = _assert_matches(y, proba)
    assert ours["per_class"]["1"]["precision"] == 0.0  # never predicted: 0, as sklearn with zero_division=0


def test_metrics_equal_sklearn_on_real_predictions(real_predictions):
    y, proba = real_predictions
    ours = _assert_matches(y, proba)
    report = skm.classification_report(y, proba.argmax(1), output_dict=True, zero_division=0)
    assert ours["per_class"]["1"] == report["1"]
    assert ours["accuracy"] > 0.7  # the linear baseline on SST-2 dev


@pytest.mark.parametrize("k", [2, 3])
def test_vectorised_bootstrap_equals_the_loop(k):
    y, proba = _random_case(3, 80, k)
    y[:k] = np.arange(k)  # every class present
    if k == 2:  # ties in the scores, which the rank-based ROC-AUC must average as sklearn does
        proba[:, 1] = np.round(proba[:, 1], 1)
        proba[:, 0] = 1 - proba[:, 1]
    for name, metric in headline(k).items():
        if metric.batched is None:
            continue
        fast = bootstrap_values(y, proba, metric, n_boot=60, seed=4)
        slow = bootstrap_values(y, proba, Metric(metric.fn), n_boot=60, seed=4)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=TOL, err_msg=name)


def test_bootstrap_ci_is_the_percentile_interval_of_sklearn_on_resamples():
    y, proba = _random_case(5, 50, 2)
    idx = np.concatenate(list(resample_chunks(50, 200, seed=7)))  # (200, 50)
    values = [skm.roc_auc_score(y[i], proba[i, 1]) for i in idx if len(np.unique(y[i])) == 2]
    low, high = bootstrap_ci(y, proba, headline(2)["roc_auc"], n_boot=200, seed=7)
    assert (low, high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])), abs=TOL)


def test_bootstrap_accepts_a_plain_function_and_is_seeded():
    y, proba = _random_case(6, 40, 2)

    def fn(yy, pp):
        return float((pp.argmax(1) == yy).mean())

    assert bootstrap_ci(y, proba, fn, n_boot=100, seed=1) == bootstrap_ci(y, proba, fn, n_boot=100, seed=1)
    assert bootstrap_ci(y, proba, fn, n_boot=100, seed=1) != bootstrap_ci(y, proba, fn, n_boot=100, seed=2)


def test_chunked_resampling_matches_one_big_draw(monkeypatch):
    from llmlab.evaluation import bootstrap

    whole = np.random.default_rng(3).integers(0, 10, size=(25, 10))
    monkeypatch.setattr(bootstrap, "_CELLS_PER_CHUNK", 30)  # 3 rows per chunk
    chunked = np.concatenate(list(resample_chunks(10, 25, seed=3)))
    np.testing.assert_array_equal(chunked, whole)
