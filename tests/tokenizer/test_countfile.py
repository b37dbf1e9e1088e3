"""Count files: exact round trips, 64-bit counts, summing, and every kind of damage refused in one line."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmlab.errors import LlmlabError
from llmlab.tokenizer.countfile import MAX_COUNT, CountFile, pipeline_fingerprint, write_counts, write_stream
from llmlab.tokenizer.counting import pipeline_of
from llmlab.tokenizer.train import model_pipeline, train_from_counts
from llmlab.tokenizer.word_table import WordTable, load_counts

BPE = pipeline_of(*model_pipeline("bpe"))
BPE_PRINT = pipeline_fingerprint(BPE)
words = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
tables = st.dictionaries(words, st.integers(1, MAX_COUNT), max_size=200)


@given(tables)
def test_round_trip(tmp_path_factory, counts):
    path = tmp_path_factory.mktemp("c") / "words.counts"
    assert write_counts(path, sorted(counts.items()), BPE) == len(counts)
    with CountFile(path) as f:
        assert f.fingerprint == BPE_PRINT and f.pipeline == BPE
        assert list(f.items()) == sorted(counts.items())
    assert load_counts([path], BPE_PRINT).to_dict() == counts


@given(st.lists(tables, min_size=1, max_size=4))
def test_several_files_sum(tmp_path_factory, parts):
    folder = tmp_path_factory.mktemp("c")
    paths = []
    for i, part in enumerate(parts):
        paths.append(folder / f"{i}.counts")
        write_counts(paths[-1], sorted((w, n >> 2) for w, n in part.items() if n >> 2), BPE)
    total: dict[str, int] = {}
    for part in parts:
        for w, n in part.items():
            if n >> 2:
                total[w] = total.get(w, 0) + (n >> 2)
    assert load_counts(paths, BPE_PRINT) == WordTable.from_dict(total)


def test_counts_past_two_to_the_32_train_as_64_bit(tmp_path):
    # truncated to 32 bits, "ab" (2^32 + 5) would count 5 and lose to "cd" (7); in 64 bits it wins
    big = 1 << 32
    counts = {"ab": big + 5, "cd": 7, "ef": 3}
    a, b = tmp_path / "a.counts", tmp_path / "b.counts"
    write_counts(a, sorted(counts.items()), BPE)
    write_counts(b, [("cd", big - 1), ("ef", big - 1)], BPE)  # summed: cd = 2^32 + 6, ef = 2^32 + 2
    one = load_counts([a], BPE_PRINT)
    assert one.counts.tolist() == [big + 5, 7, 3]
    merges = train_from_counts("bpe", one, 259, special_tokens=[]).to_hf()["model"]["merges"]
    assert [tuple(m) for m in merges] == [("a", "b"), ("c", "d"), ("e", "f")]
    both = load_counts([a, b], BPE_PRINT)
    assert both.counts.tolist() == [big + 5, big + 6, big + 2]
    merges = train_from_counts("bpe", both, 259, special_tokens=[]).to_hf()["model"]["merges"]
    assert [tuple(m) for m in merges] == [("c", "d"), ("a", "b"), ("e", "f")]


def test_a_sum_past_63_bits_is_refused(tmp_path):
    a, b = tmp_path / "a.counts", tmp_path / "b.counts"
    write_counts(a, [("x", MAX_COUNT)], BPE)
    write_counts(b, [("x", 1)], BPE)
    with pytest.raises(LlmlabError, match="passes 2\\^63 - 1"):
        load_counts([a, b], BPE_PRINT)


@pytest.mark.parametrize(
    ("items", "needle"),
    [([("b", 1), ("a", 1)], "strictly ascending"), ([("a", 0)], "outside"), ([("a", 1 << 63)], "outside")],
)
def test_writer_refuses_bad_items(tmp_path, items, needle):
    path = tmp_path / "w.counts"
    with pytest.raises(LlmlabError, match=needle):
        write_counts(path, items, BPE)
    assert not path.exists()


def _valid(tmp_path, n=70_000):
    """A count file of two blocks (65,536 words, then the rest)."""
    path = tmp_path / "w.counts"
    write_counts(path, ((f"w{i:06d}", i + 1) for i in range(n)), BPE)
    return path, path.read_bytes()


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:-7], "truncated"),
        (lambda b: b[: len(b) - 20], "truncated"),
        (lambda b: b[: len(b) // 3] + bytes([b[len(b) // 3] ^ 0x40]) + b[len(b) // 3 + 1 :], "CRC"),
        (lambda b: b[:-30] + bytes([b[-30] ^ 1]) + b[-29:], "CRC"),
        (lambda b: b + b"x", "end record"),
        (lambda b: b"NOTCOUNT" + b[8:], "not an llmlab count file"),
        (lambda b: b[:12] + b"!" + b[13:], "header is corrupt"),
        (lambda b: b[:10], "truncated"),
        (lambda b: b"", "not an llmlab count file"),
    ],
)
def test_damaged_files_are_refused_in_one_line(tmp_path, damage, needle):
    path, data = _valid(tmp_path)
    path.write_bytes(damage(data))
    with pytest.raises(LlmlabError, match=needle) as e:
        load_counts([path], BPE_PRINT)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_another_pipeline_is_refused(tmp_path):
    path = tmp_path / "u.counts"
    write_counts(path, [("▁a", 2)], pipeline_of(*model_pipeline("unigram")))
    with pytest.raises(LlmlabError, match="another normalizer/pre-tokenizer.*Metaspace"):
        load_counts([path], BPE_PRINT)


def test_write_stream_to_memory_reads_back(tmp_path):
    out = io.BytesIO()
    assert write_stream(out, [("a", 1), ("b", 2)], BPE, "<memory>") == 2
    path = tmp_path / "m.counts"
    path.write_bytes(out.getvalue())
    assert load_counts([path], BPE_PRINT).to_dict() == {"a": 1, "b": 2}
