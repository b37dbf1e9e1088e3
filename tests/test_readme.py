"""README's "From Python" examples run, in order, in one namespace, in a fresh folder: they are the API's
smoke test, and they cannot drift from the code. README's `evaluate --json` keys are checked too."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_from_python_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks(section("From Python"))
    assert len(blocks) >= 6  # setup, tokenizer, pretraining, fine-tuning, evaluation, A/B
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "runs" / "lora" / "history.json").is_file()
    assert 0.0 <= namespace["result"]["metrics"]["accuracy"] <= 1.0
    assert "McNemar" in namespace["ab"]["verdict"]
    assert namespace["tok"].decode(namespace["enc"].ids) == "Return the number of items in a container."


def test_evaluate_json_keys_in_readme_exist():
    """Every key README's `--json` example shows is in `evaluation.evaluate`'s layout."""
    from llmlab.evaluation.evaluate_models import results_json
    from llmlab.evaluation.metrics import metrics_with_ci
    from llmlab.evaluation.report import Scored

    example = re.search(
        r"```json\n(.*?)```",
        section(
            "Evaluation: metrics with intervals, fit diagnosis, a linear baseline, hyperparameter search"
        ),
        flags=re.S,
    )
    assert example, "README's evaluation section has no ```json example"
    shown = json.loads(example.group(1))
    import numpy as np

    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    proba = np.stack([1 - np.linspace(0.1, 0.9, 8), np.linspace(0.1, 0.9, 8)], axis=1)
    scored = Scored("m", y, proba, metrics_with_ci(y, proba, ["0", "1"], 50, 0))
    actual = results_json([scored, scored], None)

    def missing(expected: dict, got: dict, path: str = "") -> list[str]:
        out = []
        for key, value in expected.items():
            if key not in got:
                out.append(path + key)
            elif isinstance(value, dict) and isinstance(got[key], dict) and key not in ("ci", "per_class"):
                out += missing(value, got[key], f"{path}{key}.")
        return out

    shown.pop("diagnosis", None)  # present only for a fine-tuned folder with history.json (tested above)
    assert missing(shown, actual) == []
