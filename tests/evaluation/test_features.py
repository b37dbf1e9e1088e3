"""Feature importance and selection: Pearson r equals numpy's, the pruning invariant holds, RFE equals
sklearn's RFE, and `llmlab baseline --select` refits on the kept features."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.evaluation.baseline import LinearBaseline
from llmlab.evaluation.features import (
    correlation_prune,
    importance,
    pearson_matrix,
    ranked_columns,
    rfe_select,
    select_features,
    top_features,
)
from llmlab.finetuning.data import read_examples


@pytest.fixture(scope="module")
def fitted(shared_data):
    train = read_examples(shared_data / "sst2" / "train.csv", max_examples=3000)
    texts, y = [e.text for e in train], [e.label for e in train]
    return LinearBaseline().fit(texts, y), texts, y


def test_pearson_matrix_equals_numpy_corrcoef():
    rng = np.random.default_rng(0)
    x = rng.random((50, 6)) * (rng.random((50, 6)) > 0.6)
    x[:, 5] = 0.0  # a constant column: r set to 0
    ours = pearson_matrix(sp.csr_matrix(x))
    ref = np.corrcoef(x[:, :5].T)
    np.testing.assert_allclose(ours[:5, :5], ref, atol=1e-12)
    assert not ours[5].any()


def test_correlation_pruning_invariant(fitted):
    model, texts, _ = fitted
    x, columns = model.features(texts), ranked_columns(model, 300)
    kept = correlation_prune(x, columns, threshold=0.5)
    r = np.abs(pearson_matrix(x[:, kept]))
    np.fill_diagonal(r, 0)
    assert r.max() <= 0.5  # no kept pair above the threshold
    dropped = np.setdiff1d(columns, kept)
    assert len(dropped) > 0
    full = np.abs(pearson_matrix(x[:, columns]))
    position = {c: i for i, c in enumerate(columns)}
    for c in dropped:  # each dropped feature is too close to a more important kept one
        assert any(full[position[c], position[k]] > 0.5 for k in kept if position[k] < position[c])


def test_rfe_equals_sklearn(fitted):
    from sklearn.feature_selection import RFE
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    model, texts, y = fitted
    x, columns = model.features(texts), ranked_columns(model, 60)
    ours = rfe_select(x, np.array(y), columns, 20, 0.25)
    ref = RFE(LogisticRegression(max_iter=1000, random_state=0), n_features_to_select=20, step=0.25)
    with threadpool_limits(1):
        ref.fit(x[:, columns], y)
    assert ours.tolist() == sorted(columns[ref.support_].tolist())


def test_importance_and_top_features(fitted):
    model = fitted[0]
    w = importance(model)
    np.testing.assert_array_equal(w[1], model.classifier.coef_[0])
    np.testing.assert_array_equal(w[0], -model.classifier.coef_[0])
    top = top_features(model, 5)
    assert list(top) == ["0", "1"] and len(top["1"]) == 5
    assert top["1"][0][1] == w[1].max() and top["0"][0][1] == w[0].max()


def test_select_refits_on_kept_features(fitted):
    model, texts, y = fitted
    refit, info = select_features(model, texts, y, "corr", top_n=200, threshold=0.5)
    assert info["features_after"] == len(refit.terms) < 200 and info["features_before"] == len(model.terms)
    assert set(refit.terms) <= set(model.terms)
    with pytest.raises(LlmlabError, match="unknown method 'pca'"):
        select_features(model, texts, y, "pca")


def test_baseline_command_with_rfe(shared_data, tmp_path, capsys):
    train = tmp_path / "train.csv"
    lines = (shared_data / "sst2" / "train.csv").read_text(encoding="utf-8").splitlines()[:1501]
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = main(
        [
            "baseline",
            str(train),
            "--dev",
            str(shared_data / "sst2" / "dev.csv"),
            "-o",
            str(tmp_path / "b"),
            "--select",
            "rfe",
            "--top-n",
            "200",
            "--n-select",
            "50",
            "--step",
            "0.5",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "50 features (selection rfe" in out and "dev accuracy:" in out and "class 1:" in out
    assert len(LinearBaseline.load(tmp_path / "b").terms) == 50
