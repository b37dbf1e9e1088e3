"""Tokenizer APIs that HF users reach for: DecodeStream, pre-tokenized input, encode_special_tokens (vs HF)."""

from __future__ import annotations

import json

import pytest

from llmlab.tokenizer import Tokenizer
from llmlab.tokenizer.decode_stream import DecodeStream

hf = pytest.importorskip("tokenizers")

TEXTS = ["Hello 世界! naïve ☃ 日本語", "  spaces\n\nand 🎉 emoji <|endoftext|> after", "", "é"]


@pytest.fixture(scope="module")
def gpt2(shared_data):
    ours = Tokenizer.load(shared_data / "tokenizer_fixtures" / "gpt2")
    return ours, hf.Tokenizer.from_str(json.dumps(ours.to_hf()))


@pytest.fixture(scope="module")
def spm(shared_data):
    path = shared_data / "tokenizer_fixtures" / "sentencepiece" / "test_model.hf.json"
    return Tokenizer.load(path), hf.Tokenizer.from_file(str(path))


@pytest.mark.parametrize("name", ["gpt2", "spm"])
@pytest.mark.parametrize("skip", [False, True])
def test_decode_stream_equals_hf_token_by_token(request, name, skip):
    ours, ref = request.getfixturevalue(name)
    for text in TEXTS:
        ids = ref.encode(text).ids
        a, b = DecodeStream(skip_special_tokens=skip), hf.decoders.DecodeStream(skip_special_tokens=skip)
        steps = [(a.step(ours, i), b.step(ref, i)) for i in ids]
        assert [x for x, _ in steps] == [y for _, y in steps], text
        assert "".join(x or "" for x, _ in steps) == ours.decode(ids, skip_special_tokens=skip)


def test_decode_stream_holds_back_partial_characters(gpt2):
    ours, _ = gpt2
    stream = DecodeStream()
    ids = ours.encode("☃").ids  # three byte tokens for one character
    assert len(ids) > 1 and [stream.step(ours, i) for i in ids] == [None] * (len(ids) - 1) + ["☃"]


@pytest.mark.parametrize("name", ["gpt2", "spm"])
def test_pretokenized_input_equals_hf(request, name):
    ours, ref = request.getfixturevalue(name)
    words = ["Hello", "wor ld", "<|endoftext|>x", "", "naïve", "日本"]
    for pair in (None, ["pair", "words"]):
        a, b = ours.encode(words, pair, is_pretokenized=True), ref.encode(words, pair, is_pretokenized=True)
        assert (a.ids, a.tokens, a.type_ids) == (b.ids, b.tokens, b.type_ids)
        assert a.offsets == [tuple(o) for o in b.offsets]  # within each word


def test_encode_special_tokens_equals_hf(gpt2):
    ours, ref = gpt2
    text = "a <|endoftext|> b<|endoftext|>"
    assert ours.encode(text).ids == ref.encode(text).ids and 50256 in ours.encode(text).ids
    ours.encode_special_tokens = ref.encode_special_tokens = True
    try:
        a, b = ours.encode(text), ref.encode(text)
        assert (a.ids, a.offsets) == (b.ids, [tuple(o) for o in b.offsets]) and 50256 not in a.ids
    finally:
        ours.encode_special_tokens = ref.encode_special_tokens = False
    assert 50256 in ours.encode(text).ids
