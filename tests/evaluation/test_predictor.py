"""`load_predictor`: one folder, a list, or a comma-separated string make one model or a soft-voting ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from llmlab.errors import LlmlabError
from llmlab.evaluation.baseline import LinearBaseline
from llmlab.evaluation.predictor import Ensemble, load_predictor

TEXTS = ["a fine film", "a dull film", "fine acting", "dull plot", "fine fine", "dull dull"] * 3
LABELS = [1, 0, 1, 0, 1, 0] * 3


@pytest.fixture()
def two_baselines(tmp_path):
    for name, c in (("a", 1.0), ("b", 0.1)):
        LinearBaseline(c=c, min_df=1).fit(TEXTS, LABELS).save(tmp_path / name)
    return tmp_path / "a", tmp_path / "b"


def test_comma_separated_folders_are_an_ensemble_of_mean_probabilities(two_baselines):
    a, b = two_baselines
    ensemble = load_predictor(f"{a},{b}")
    assert isinstance(ensemble, Ensemble) and ensemble.name == "ensemble(a+b)"
    expected = (load_predictor(a).predict_proba(TEXTS) + load_predictor(b).predict_proba(TEXTS)) / 2
    np.testing.assert_allclose(ensemble.predict_proba(TEXTS), expected, rtol=0, atol=1e-15)
    assert isinstance(load_predictor(a), LinearBaseline)


def test_a_missing_member_is_a_one_line_error(two_baselines, tmp_path):
    a, _ = two_baselines
    with pytest.raises(LlmlabError, match="nowhere: model folder not found"):
        load_predictor(f"{a},{tmp_path / 'nowhere'}")
