"""The compiled word counter (_core/word_counter.h) counts exactly the words of counting.py's `count_chunk`: on
every pipeline the trainers use, on real corpora and on random Unicode; the lines it leaves to Python (a lone
surrogate, a character only the Python normalizer handles) are counted there, and the totals still agree."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.tokenizer import core
from llmlab.tokenizer.counting import _count_on, core_counter, count_chunk, count_words
from llmlab.tokenizer.train import MODEL_NAMES, model_pipeline

pytestmark = pytest.mark.skipif(core._corelib is None, reason="the compiled tokenizer core is not built here")
CORPORA = ("gutenberg_en", "zh_classic_novels", "zh_poetry", "tiny_shakespeare")


@pytest.fixture(autouse=True)
def on_the_core(monkeypatch):
    monkeypatch.setenv("LLMLAB_PURE_PYTHON", "0")


def read(path, limit: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in itertools.islice(f, limit)]


@pytest.fixture(scope="module")
def lines(shared_data) -> list[str]:
    sst2 = [row.rsplit(",", 1)[0] for row in read(shared_data / "sst2" / "dev.csv", 900)[1:]]
    return [line for name in CORPORA for line in read(shared_data / name / "train.txt", 1500)] + sst2


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_core_counts_equal_python_on_real_text(lines, model):
    normalizer, pretokenizer = model_pipeline(model)
    counter = core_counter(normalizer, pretokenizer)
    assert counter is not None  # every standard pipeline counts on the core
    counts, skipped = counter.count(lines)
    assert len(skipped) < len(lines) / 100  # the core really counted (nearly) everything
    assert _count_on(counter, lines, normalizer, pretokenizer) == count_chunk(lines, normalizer, pretokenizer)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=40),
            st.text("ab \u00e9\u0301\u0300\u4e00\u3000\t\n'sy1!\u2581\ufb01\u00ad", max_size=30),
        ),
        max_size=20,
    )
)
def test_core_counts_equal_python_on_any_text(text_lines):
    for model in MODEL_NAMES:
        normalizer, pretokenizer = model_pipeline(model)
        counter = core_counter(normalizer, pretokenizer)
        expected = count_chunk(text_lines, normalizer, pretokenizer)
        assert _count_on(counter, text_lines, normalizer, pretokenizer) == expected, model


# (byte-level BPE refuses a lone surrogate in Python too)
@pytest.mark.parametrize("model", ["unigram", "wordpiece"])
def test_lines_the_core_cannot_read_are_counted_in_python(model):
    normalizer, pretokenizer = model_pipeline(model)
    counter = core_counter(normalizer, pretokenizer)
    text = ["a lone \ud800 surrogate", "plain words", 'a "quote"']
    assert counter.count(text)[1] == [0]
    assert _count_on(counter, text, normalizer, pretokenizer) == count_chunk(text, normalizer, pretokenizer)


def test_count_words_is_the_same_on_both_engines(lines, monkeypatch):
    normalizer, pretokenizer = model_pipeline("unigram")
    on_core = count_words(lines, normalizer, pretokenizer, workers=1)
    monkeypatch.setenv("LLMLAB_PURE_PYTHON", "1")
    assert core_counter(normalizer, pretokenizer) is None
    assert count_words(lines, normalizer, pretokenizer, workers=1) == on_core
