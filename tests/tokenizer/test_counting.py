"""Bounded-memory word counting equals counting in one dict: spills, merge passes, workers, repetition."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.errors import LlmlabError
from llmlab.tokenizer import counting
from llmlab.tokenizer.corpus import read_corpus
from llmlab.tokenizer.counting import SpillingCounter, count_words, counted, parse_size, pipeline_of
from llmlab.tokenizer.train import model_pipeline, train_from_counts, train_tokenizer
from llmlab.tokenizer.word_table import WordTable

PIPELINE = {"normalizer": None, "pre_tokenizer": {"type": "Whitespace"}}
words = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
batches = st.lists(st.dictionaries(words, st.integers(1, 2**40), max_size=40), max_size=30)


def reference(lines, model):
    """The plain in-memory count, as train.py counted before: one Counter, words mapped at the end."""
    normalizer, pretokenizer = model_pipeline(model)
    raw = Counter()
    for line in lines:
        raw.update(pretokenizer.raw_words(normalizer.normalize(line) if normalizer else line))
    return {pretokenizer.map_word(w): n for w, n in raw.items()}


@settings(max_examples=60)
@given(batches, st.integers(200, 4000), st.integers(2, 5))
def test_external_merge_equals_in_memory_counting(tmp_path_factory, batches, budget, fan_in):
    expected = Counter()
    for batch in batches:
        expected.update(batch)
    with SpillingCounter(budget, PIPELINE, tmp_path_factory.mktemp("spill"), fan_in) as counter:
        for batch in batches:
            counter.add(batch)
            assert counter.nbytes <= budget  # past it, the table spilled
        merged = list(counter.items())
        spills = counter.spills
    assert merged == sorted(expected.items())
    if sum(map(len, batches)) > 100:  # the budget holds a few dozen words: the test really spills
        assert spills >= 2


def test_spills_clean_up_after_themselves(tmp_path):
    with SpillingCounter(300, PIPELINE, tmp_path) as counter:
        for i in range(50):
            counter.add({f"w{i}": 1, "the": 2})
        assert counter.spills > 5 and len(list(counter.folder.iterdir())) > 5
        assert dict(counter.items())["the"] == 100
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model", ["bpe", "unigram", "wordpiece"])
def test_count_words_with_many_spills_equals_counter(shared_data, monkeypatch, model):
    lines = list(
        read_corpus([shared_data / "zh_poetry" / "valid.txt", shared_data / "tiny_shakespeare" / "valid.txt"])
    )
    monkeypatch.setattr(counting, "MIN_TABLE", 64 << 10)  # a 64 KiB table, 4k-character chunks
    monkeypatch.setattr(counting, "CHUNK_CHARS", 4096)
    normalizer, pretokenizer = model_pipeline(model)
    memory = counting.minimum_memory(1)
    with counted(lines, normalizer, pretokenizer, workers=1, max_memory=memory) as counter:
        table = WordTable.from_items(counter.items())
        assert counter.spills >= 5
    assert table.to_dict() == reference(lines, model)
    assert list(table) == sorted(table)


def test_workers_give_the_same_table(shared_data):
    lines = list(read_corpus([shared_data / "gutenberg_en" / "valid.txt"]))
    normalizer, pretokenizer = model_pipeline("bpe")
    one = count_words(lines, normalizer, pretokenizer, workers=1)
    assert count_words(iter(lines), normalizer, pretokenizer, workers=2) == one
    assert one.to_dict() == reference(lines, "bpe")


def test_max_memory_below_the_minimum_is_refused():
    normalizer, pretokenizer = model_pipeline("bpe")
    with pytest.raises(LlmlabError, match="below the workable minimum"):
        count_words(["a b c"], normalizer, pretokenizer, workers=2, max_memory=1 << 20)


@pytest.mark.parametrize(
    ("text", "size"),
    [("512M", 512 << 20), ("2G", 2 << 30), ("1.5GiB", 3 << 29), ("100000", 100000), ("64kb", 65536)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "2X"])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(LlmlabError, match="not a size"):
        parse_size(text)


@pytest.mark.slow
def test_repeating_the_corpus_k_times_gives_the_same_bpe(shared_data):
    files = [shared_data / "tiny_shakespeare" / "valid.txt", shared_data / "zh_poetry" / "valid.txt"]
    normalizer, pretokenizer = model_pipeline("bpe")
    once = count_words(read_corpus(files), normalizer, pretokenizer, workers=1)
    thrice = count_words(read_corpus(files, repeat=3), normalizer, pretokenizer, workers=1)
    assert list(thrice) == list(once) and thrice.values() == [3 * n for n in once.values()]
    a = train_from_counts("bpe", once, 1500).to_hf()["model"]
    b = train_tokenizer("bpe", read_corpus(files, repeat=3), 1500, workers=1).to_hf()["model"]
    assert a["merges"] == b["merges"] and a["vocab"] == b["vocab"]
    assert len(a["merges"]) > 1000


def test_pipeline_of_names_the_sections():
    normalizer, pretokenizer = model_pipeline("unigram")
    assert pipeline_of(normalizer, pretokenizer)["pre_tokenizer"]["type"] == "Metaspace"
    assert pipeline_of(normalizer, pretokenizer)["normalizer"] == {"type": "NFKC"}


def test_word_table_reads_like_the_dict(shared_data):
    lines = list(itertools.islice(read_corpus([shared_data / "zh_classic_novels" / "valid.txt"]), 200))
    counts = reference(lines, "bpe")
    table = WordTable.from_dict(counts)
    assert table.to_dict() == counts and len(table) == len(counts) and table.total == sum(counts.values())
    assert list(table.items()) == sorted(counts.items())
