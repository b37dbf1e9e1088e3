"""Byte-level BPE on long words, starting from each character's bytes merged on their own (bpe/chars.py), gives
the plain merge loop's tokens and HF's: on a table trained on Chinese, on random bytes, on tables it refuses."""

from __future__ import annotations

import itertools
import json
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.tokenizer.bpe.chars import CharMerges, _vocab_chars, char_pieces
from llmlab.tokenizer.bpe.model import BPE
from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE, UNICODE_TO_BYTE, to_byte_level
from llmlab.tokenizer.pretokenize import ByteLevel

hf = pytest.importorskip("tokenizers")

BYTES = sorted(BYTE_TO_UNICODE.values())


def lines_of(path, limit: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in itertools.islice(f, limit)]


def plain_tokens(model: BPE, word: str) -> list[tuple[int, int, int]]:
    """The merge loop on the word's bytes, without the character shortcut."""
    ids, _ = model._symbols(word)
    sizes = model._merge(ids)
    return [(i, end - n, end) for i, n, end in zip(ids, sizes, accumulate(sizes), strict=True)]


def hf_tokens(model: BPE, words: list[str]) -> list[list[tuple[int, int, int]]]:
    sections = ("normalizer", "pre_tokenizer", "post_processor", "decoder", "truncation", "padding")
    spec = {"version": "1.0", "added_tokens": [], **dict.fromkeys(sections), "model": model.to_hf()}
    ref = hf.Tokenizer.from_str(json.dumps(spec))
    encs = ref.encode_batch([[w] for w in words], is_pretokenized=True)
    return [[(t, s, e) for t, (s, e) in zip(e.ids, e.offsets, strict=True)] for e in encs]


@pytest.fixture(scope="module")
def chinese(shared_data) -> tuple[BPE, list[str]]:
    """HF's byte-level BPE trained on Chinese novels, and the long words of other Chinese text."""
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = hf.trainers.BpeTrainer(vocab_size=4000, initial_alphabet=BYTES, show_progress=False)
    tok.train_from_iterator(lines_of(shared_data / "zh_classic_novels" / "train.txt", 3000), trainer)
    model = BPE.from_hf(json.loads(tok.to_str())["model"])
    text = lines_of(shared_data / "zh_poetry" / "valid.txt", 400)
    text += lines_of(shared_data / "zh_classic_novels" / "valid.txt", 200)
    words = sorted({w for line in text for w, _, _ in ByteLevel().split(line) if len(w) >= 12})
    return model, words


def test_long_chinese_words_equal_the_plain_loop_and_hf(chinese):
    model, words = chinese
    assert len(words) > 1000
    got = [model.tokenize(w) for w in words]
    assert got == [plain_tokens(model, w) for w in words]
    assert got == hf_tokens(model, words)


def test_most_characters_start_merged(chinese):
    """The shortcut is in use: most characters of real text are one token or fewer pieces before the loop."""
    model, words = chinese
    model.tokenize(words[0])
    chars = model._char_merges
    assert isinstance(chars, CharMerges)
    pieces = [chars.symbols(w) for w in words[:300]]
    assert sum(len(ids) for ids, _ in pieces) < 0.6 * sum(map(len, words[:300]))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(BYTES, min_size=12, max_size=60), st.text(min_size=4, max_size=30).map(to_byte_level))
)
def test_any_byte_string_equals_the_plain_loop(chinese, word):
    """Invalid UTF-8 and stray continuation bytes keep their bytes; everything else merges as before."""
    model, _ = chinese
    assert model.tokenize(word) == plain_tokens(model, word)


def test_a_table_that_uses_a_token_before_making_it_is_refused():
    vocab = {c: i for i, c in enumerate("abcd")} | {"ab": 4, "abc": 5, "cd": 6, "abcd": 7}
    merges = [("ab", "c"), ("a", "b"), ("c", "d"), ("ab", "cd")]  # rank 0 uses "ab", made at rank 1
    model = BPE(vocab, merges)
    assert CharMerges.build(model.vocab, model._ranks, model._merged) is None
    words = ["abcd" * 4, "abababcdcd" * 2, "dcba" * 5]
    assert [model.tokenize(w) for w in words] == [plain_tokens(model, w) for w in words]
    assert [model.tokenize(w) for w in words] == hf_tokens(model, words)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(BYTES, max_size=8), st.text(max_size=4)), max_size=30))
def test_vocab_chars_are_the_characters_whole_inside_one_byte_level_token(tokens):
    """`_vocab_chars` (one pass over the joined vocabulary) = token by token: the multi-byte characters that
    a byte-level token holds whole; a token with a character outside the byte alphabet holds none."""

    def naive(token: str) -> set[str]:
        if not all(c in UNICODE_TO_BYTE for c in token):
            return set()
        text = bytes(UNICODE_TO_BYTE[c] for c in token).decode("utf-8", "ignore")
        return {c for c in text if len(c.encode()) > 1}

    tokens += [to_byte_level("中文"), to_byte_level("é")[:1]]
    assert _vocab_chars(tokens) == set().union(*map(naive, tokens))


def test_char_pieces_are_each_characters_own_merges(chinese):
    """`char_pieces`, what the compiled core starts long words from: every listed character's pieces are the
    ones the Python model starts from, and they are fewer than its bytes."""
    model, _ = chinese
    pieces = char_pieces(model.vocab, model._ranks, model._merged)
    assert len(pieces) > 500
    merges = CharMerges.build(model.vocab, model._ranks, model._merged)
    for key, ids, sizes in pieces:
        char = key.to_bytes(4, "little").rstrip(b"\0").decode()
        assert merges.symbols(to_byte_level(char)) == (ids, sizes)
        assert len(ids) < len(char.encode()) == sum(sizes)
