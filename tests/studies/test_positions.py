"""Position studies: the permutation result, the word-order task's mechanics, extrapolation past a learned
table, the Press et al. verdict, the baselines, and the whole study and demo stage on tiny sizes."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.positional import POSITIONAL
from llmlab.model.transformer import Transformer
from llmlab.studies.positions import run as study
from llmlab.studies.positions.baselines import CNNClassifier, GRUClassifier
from llmlab.studies.positions.extrapolation import ExtrapolationSizes, _perplexities, cell, press_verdict
from llmlab.studies.positions.permutation import TOLERANCE, permutation_deviation
from llmlab.studies.positions.word_order import (
    WordOrderSizes,
    accuracy,
    build_data,
    local_shuffle,
    make_model,
    train_classifier,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_WORD_ORDER = WordOrderSizes(train_sentences=1500, steps=60, d_model=32, n_heads=2, batch_size=32)
TINY_LM = ExtrapolationSizes(
    train_context=16,
    d_model=16,
    n_layers=1,
    n_heads=2,
    batch_size=4,
    steps=6,
    warmup_steps=2,
    eval_tokens=1024,
)


@pytest.mark.parametrize("name", list(POSITIONAL))
def test_only_none_is_permutation_equivariant(name):
    deviations = [permutation_deviation(name), permutation_deviation(name, unit_scale=True)]
    if name == "none":
        assert max(deviations) < TOLERANCE
    else:
        assert min(deviations) > 100 * TOLERANCE


def test_local_shuffle_moves_words_only_inside_their_window():
    rng = random.Random(0)
    words = list(range(10))
    out = local_shuffle(words, 3, rng)
    assert out != words
    for i in range(0, 10, 3):
        assert sorted(out[i : i + 3]) == words[i : i + 3]
    assert local_shuffle([7, 7, 7], 3, rng) == [7, 7, 7]  # nothing to shuffle: returned as is


@pytest.fixture(scope="module")
def word_order_data(shared_data: Path):
    return build_data(shared_data / "sst2", TINY_WORD_ORDER)


def test_word_order_pairs_hold_the_same_tokens_in_another_order(word_order_data):
    data = word_order_data
    assert len(data.dev) % 2 == 0 and len(data.dev) > 1500  # SST-2 dev: 872 sentences, nearly all kept
    for (original, y1), (shuffled, y0) in zip(data.train[0::2], data.train[1::2], strict=True):
        assert (y1, y0) == (1, 0) and original != shuffled and Counter(original) == Counter(shuffled)
        assert len(original) >= 6
    assert max(max(ids) for ids, _ in data.train) < data.vocab_size


def test_without_positions_the_transformer_is_exactly_at_chance(word_order_data):
    """Not a statistical claim: an order-blind model gives both copies of a sentence the same class."""
    torch.manual_seed(0)
    model = make_model("none", word_order_data.vocab_size, TINY_WORD_ORDER)
    assert train_classifier(model, word_order_data, TINY_WORD_ORDER, lambda done, total: None) == 0.5


def test_a_convolution_learns_word_order_on_a_tiny_budget(word_order_data):
    torch.manual_seed(0)
    sizes = WordOrderSizes(**{**TINY_WORD_ORDER.__dict__, "steps": 300, "lr": 3e-3})
    model = make_model("cnn", word_order_data.vocab_size, sizes)
    assert accuracy(model, word_order_data.dev) == pytest.approx(0.5, abs=0.05)  # untrained
    assert train_classifier(model, word_order_data, sizes, lambda done, total: None) > 0.6


@pytest.mark.parametrize("cls", [GRUClassifier, CNNClassifier])
def test_baselines_ignore_right_padding_and_see_order(cls):
    torch.manual_seed(0)
    model = cls(50).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 0, 0]])
    mask = (ids != 0).long()
    short = model(ids[:, :5], mask[:, :5])
    padded = model(ids, mask)
    swapped = model(torch.tensor([[6, 5, 7, 8, 9]]), mask[:, :5])
    assert torch.allclose(short, padded, atol=1e-6)
    assert not torch.allclose(short, swapped, atol=1e-4)


def test_learned_table_beyond_its_size_reads_n_a_instead_of_crashing():
    torch.manual_seed(0)
    model = Transformer(
        ModelConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, positional="learned", max_seq_len=16)
    )
    tokens = np.random.default_rng(0).integers(0, 50, 2000).astype(np.uint16)
    ppl = _perplexities(model, tokens, TINY_LM)
    assert ppl["ppl_1x"] == pytest.approx(50, rel=0.2)  # an untrained model guesses uniformly
    assert ppl["ppl_2x"] is None and ppl["ppl_8x"] is None
    assert cell(ppl["ppl_2x"], 16) == "n/a (table of 16)" and cell(ppl["ppl_1x"], 16)[0].isdigit()


def test_press_verdict():
    def row(name, base, longest):
        return {"positional": name, "ppl_1x": base, "ppl_8x": longest}

    rows = [row("alibi", 100.0, 98.0), row("sinusoidal", 100.0, 400.0), row("learned", 110.0, None)]
    agrees, text = press_verdict(rows, (1, 8))
    assert agrees and "alibi 0.98x" in text and "cannot run: learned" in text and "This run agrees" in text
    agrees, text = press_verdict([row("alibi", 100.0, 300.0), row("rope", 100.0, 105.0)], (1, 8))
    assert not agrees and "differs: alibi degrades, rope holds" in text
    assert press_verdict([row("t5", 100.0, 180.0)], (1, 8))[0]  # no claim about t5: nothing to contradict


def test_pictures_draw():
    from llmlab.studies.positions.pictures import alibi_figure, rope_figure, sinusoidal_figure, t5_figure

    for fig in [sinusoidal_figure(), alibi_figure(), t5_figure(), rope_figure()]:
        assert fig.axes


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(LlmlabError, match="sst2/train.csv: not found"):
        study.run_position_study(tmp_path / "out", data_dir=tmp_path, progress=False)


def test_whole_study_on_tiny_sizes_writes_json_and_report(shared_data, tmp_path, monkeypatch):
    tiny = study.StudySizes(TINY_WORD_ORDER, TINY_LM, tokenizer_vocab=300, tokenizer_lines=2000)
    monkeypatch.setattr(study, "QUICK", tiny)
    monkeypatch.setattr(
        study, "POSITIONAL", {"none": None, "learned": None, "alibi": None}
    )  # three encodings
    results = study.run_position_study(tmp_path, data_dir=shared_data, quick=True, progress=False)
    saved = json.loads((tmp_path / "positions.json").read_text())
    assert saved["quick"] and [r["model"] for r in saved["word_order"]] == [
        "none",
        "learned",
        "alibi",
        "gru",
        "cnn",
    ]
    assert results["word_order"][0]["dev_accuracy"] == 0.5
    learned = next(r for r in saved["extrapolation"] if r["positional"] == "learned")
    assert learned["ppl_1x"] > 1 and learned["ppl_2x"] is None
    html = (tmp_path / "report.html").read_text()
    assert "n/a (table of 16)" in html and "train short, test long" in html
    assert "n/a (table of 16)" in study.format_tables(results)
    alibi = tmp_path / next(r["run"] for r in saved["extrapolation"] if r["positional"] == "alibi")
    before = (alibi / "metrics.jsonl").read_text()
    study.run_position_study(tmp_path, data_dir=shared_data, quick=True, progress=False)  # reuses the LMs
    assert (alibi / "metrics.jsonl").read_text() == before
