"""Prediction files: an exact round trip, and a one-line error naming the file and line for each bad input."""

from __future__ import annotations

import numpy as np
import pytest

from llmlab.errors import LlmlabError
from llmlab.evaluation.predictions import check_labels, read_predictions, write_predictions


def _write(path, rows, k=2):
    header = "text,label,pred," + ",".join(f"prob_{i}" for i in range(k))
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), 20)
    texts = [f'text "{i}", with a comma' for i in range(20)]
    y = rng.integers(0, 3, 20)
    write_predictions(tmp_path / "p.csv", texts, y, proba)
    back = read_predictions(tmp_path / "p.csv", n_expected=20)
    assert back.texts == texts
    np.testing.assert_array_equal(back.y, y)
    np.testing.assert_array_equal(back.proba, proba)  # repr of floats round-trips exactly


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["a,0,0,0.5,0.5", "b,1,1,1.2,-0.2"], "line 3: a probability is outside [0, 1]"),
        (["a,0,0,0.5,0.5", "b,1,0,0.6,0.3"], "line 3: probabilities do not sum to 1 (tolerance 1e-06)"),
        (["a,0,0,nan,0.5"], "line 2: a probability is NaN"),
        (["a,2,0,0.5,0.5"], "line 2: label 2 is outside the classes 0..1"),
        (["a,0,1,0.9,0.1"], "line 2: pred 1 is not the most probable class"),
        (["a,x,0,0.9,0.1"], "line 2: label 'x' is not an integer class id"),
        (["a,0,0,0.9"], "line 2: expected 2 probabilities, got 1"),
        (["a,0,0,abc,0.1"], "line 2: a probability is not a number"),
    ],
)
def test_bad_rows_are_one_line_errors_naming_file_and_line(tmp_path, rows, message):
    path = _write(tmp_path / "p.csv", rows)
    with pytest.raises(LlmlabError) as e:
        read_predictions(path)
    assert str(e.value).startswith(f"{path}: {message}") and "\n" not in str(e.value)


def test_sum_within_tolerance_is_accepted(tmp_path):
    path = _write(tmp_path / "p.csv", ["a,0,0,0.6000000005,0.4"])
    assert read_predictions(path).proba.shape == (1, 2)


def test_wrong_length_against_data(tmp_path):
    path = _write(tmp_path / "p.csv", ["a,0,0,0.5,0.5"])
    with pytest.raises(LlmlabError, match=r"p.csv: 1 prediction rows, but dev.csv has 3"):
        read_predictions(path, n_expected=3, source="dev.csv")


def test_bad_header_and_missing_file(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("text,label,prob_0\n", encoding="utf-8")
    with pytest.raises(LlmlabError, match="expected the header"):
        read_predictions(path)
    with pytest.raises(LlmlabError, match="cannot read predictions"):
        read_predictions(tmp_path / "missing.csv")


def test_labels_outside_the_model_classes():
    with pytest.raises(LlmlabError, match=r"dev.csv: line 4: label 5 is outside the model's classes 0..2"):
        check_labels(np.array([0, 1, 5]), 3, "dev.csv")
