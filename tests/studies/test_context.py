"""`llmlab study context --quick`: runs end to end and checks its own tables; passkey documents are exact."""

from __future__ import annotations

import json
import math
import random

import pytest

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.stdlib_text import demo_corpus
from llmlab.studies.context import QUICK, check_results
from llmlab.studies.context.data import study_tokenizer
from llmlab.studies.context.passkey import KEY, QUESTION, key_digits, passkey_document
from llmlab.studies.context.run import METHODS, method_fields


@pytest.fixture(scope="module")
def tokenizer():
    return study_tokenizer(demo_corpus()[:6000], 1024)


@pytest.mark.parametrize("length", [64, 200, 512])
@pytest.mark.parametrize("depth", [0.0, 0.3, 1.0])
def test_passkey_documents_fit_their_length_and_tokenize_as_assembled(tokenizer, length, depth):
    doc = passkey_document(tokenizer, length, depth, random.Random(length))
    ids = doc.prompt_ids + doc.answer_ids
    assert length - 12 <= len(ids) <= length  # filled up to less than one filler sentence
    assert tokenizer.encode(doc.text).ids == ids
    key = doc.text.rsplit(" ", 1)[1]
    key_text = KEY.format(key=key)
    filler = len(doc.text) - len(key_text) - len(QUESTION) - len(key) - 1  # characters of filler
    assert abs(doc.text.index(key_text) / filler - depth) < 0.2 and key in key_digits(tokenizer)
    assert len(doc.answer_ids) == 1  # one token: retrieval over distance, not induction (passkey.py)


def test_a_context_too_short_for_the_task_is_a_one_line_error(tokenizer):
    with pytest.raises(LlmlabError, match="cannot hold the key"):
        passkey_document(tokenizer, 20, 0.5, random.Random(0))


def test_each_method_extends_to_the_scale():
    assert method_fields("none", 4, 128) == {}
    assert method_fields("yarn", 8, 128) == {
        "rope_scaling": "yarn",
        "rope_scaling_factor": 8.0,
        "rope_original_max_position": 128,
    }
    assert method_fields("dynamic", 8, 128)["rope_scaling_factor"] == 1.0
    assert set(METHODS) == {"none", "linear", "ntk", "dynamic", "yarn", "llama3"}


@pytest.mark.slow
def test_quick_study_runs_and_its_tables_hold(tmp_path, capsys):
    out = tmp_path / "context"
    assert main(["study", "context", "-o", str(out), "--quick", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| model | stage | ppl @64" in printed and "passkey @256" in printed
    results = json.loads((out / "context.json").read_text())
    rows = results["rows"]
    n_rope = len(METHODS) * len(QUICK.scales) * 2 - (len(QUICK.scales) - 1)
    assert len(rows) == n_rope + 1 + len(QUICK.scales)  # + ALiBi zero-shot and fine-tuned
    for row in rows:
        assert set(row["perplexity"]) == {str(k) for k in QUICK.eval_scales}
        assert all(math.isfinite(v) and v > 1 for v in row["perplexity"].values())
        cells = [v for by_depth in row["passkey"].values() for v in by_depth.values()]
        assert len(cells) == len(QUICK.eval_scales) * len(QUICK.depths) and all(0 <= v <= 1 for v in cells)
    report = (out / "report.html").read_text()
    assert "Passkey accuracy by depth and length" in report and "data:image/png" in report
    assert (out / "passkey_heatmap.png").stat().st_size > 1000
    rows[0]["perplexity"]["1"] = float("nan")
    with pytest.raises(LlmlabError, match="perplexity at 1x is nan"):
        check_results(results)
