"""The evaluation section: its figures and tables in the HTML, and the metrics it returns."""

from __future__ import annotations

import numpy as np
import pytest

from llmlab.errors import LlmlabError
from llmlab.evaluation.baseline import LinearBaseline
from llmlab.evaluation.report import evaluation_section
from llmlab.finetuning.data import Example, read_examples
from llmlab.report.html import Report


@pytest.fixture(scope="module")
def ag_news(shared_data):
    """A 4-class baseline on 1,500 AG News rows, and 200 dev examples."""
    train = read_examples(shared_data / "ag_news" / "train.csv", max_examples=1500)
    dev = read_examples(shared_data / "ag_news" / "dev.csv", max_examples=200)
    return LinearBaseline().fit([e.text for e in train], [e.label for e in train]), dev


def test_section_has_figures_tables_and_baseline(ag_news, tmp_path):
    model, dev = ag_news
    weaker = LinearBaseline(c=0.1).fit([e.text for e in dev], [e.label for e in dev])
    weaker.name = "weak-baseline"
    report = Report("test")
    result = evaluation_section(report, model, dev, baseline=weaker, n_boot=50)
    report.save(tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count("<img") == 4  # ROC, PR, confusion matrix, reliability diagram
    for caption in ("ROC curves", "Precision-recall curves", "Confusion matrix", "Reliability diagram"):
        assert caption in page
    assert "<th>metric</th><th>linear-baseline</th><th>95% CI</th><th>weak-baseline</th>" in page
    assert "n-grams with the largest coefficient" in page  # top features of the baselines
    assert result["model"] == "linear-baseline" and result["baseline"]["model"] == "weak-baseline"
    m = result["metrics"]
    assert (
        m["n_classes"] == 4 and "f1_binary" not in m and set(m["ci"]) >= {"accuracy", "f1_macro", "roc_auc"}
    )
    assert np.array(m["confusion_matrix"]).sum() == 200


def test_section_refuses_bad_probabilities(ag_news):
    model, dev = ag_news

    class Broken:
        labels, name = model.labels, "broken"

        def predict_proba(self, texts, text_pairs=None, batch_size=64):
            proba = np.full((len(texts), 4), 0.25)
            proba[3] = [0.5, 0.5, 0.5, 0.5]
            return proba

    with pytest.raises(LlmlabError, match=r"dev.csv \(model broken\): line 5: probabilities do not sum to 1"):
        evaluation_section(Report("x"), Broken(), dev, source="dev.csv", n_boot=10)
    with pytest.raises(LlmlabError, match="label 7 is outside the model's classes 0..3"):
        evaluation_section(Report("x"), model, [Example("text", 7)], n_boot=10)
