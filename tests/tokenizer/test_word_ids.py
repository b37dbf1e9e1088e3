"""Word ids and position maps of an Encoding equal HF `tokenizers`: `word_ids`, `sequence_ids`, `char_to_token`,
`token_to_chars`, `word_to_tokens`, `char_to_word`, `token_to_word`, ... on the BERT (MiniLM), GPT-2 byte-level
and an NFKC Unigram pipeline, single and pair inputs, added tokens in the text, pre-tokenized input, and after
truncation (every overflowing window too) and padding."""

from __future__ import annotations

import json
import pickle

import pytest

from llmlab.errors import LlmlabError
from llmlab.tokenizer import Tokenizer, core

hf = pytest.importorskip("tokenizers")

TEXTS = [
    "Hello, world! unbelievable tokenization [SEP] x <|endoftext|>y",
    "naïve café 日本語のテキスト ☃ 🎉 it's 3.14",
    "  spaces\n\nand\ttabs  ",
    "\u0628\u0651\u064e q\u0307\u0323 \ufb01ne \u00bd \uff28\uff49",
    "é",
    "",
]
PAIRS = [None, "the pair [MASK] text <s> here", ""]
LONG = TEXTS[0] + " " + TEXTS[1]
LONG_PAIR = "the pair [MASK] text <s> here and some more words to cut"
TRUNCATIONS = [  # (max_length, stride, strategy, direction) and the inputs it cuts
    ((12, 2, "longest_first", "right"), [(LONG, LONG_PAIR), (LONG, None)]),
    ((11, 3, "longest_first", "left"), [(LONG, LONG_PAIR), (LONG, None)]),
    ((12, 1, "only_first", "right"), [(LONG, "short pair"), (LONG, None)]),
    ((10, 0, "only_first", "left"), [(LONG, "short pair")]),
    ((12, 2, "only_second", "left"), [("short", LONG_PAIR)]),
]


def positions(e, n_chars: tuple[int, int]) -> dict:
    """Everything HF's Encoding says about positions, queried at every index (and just past the ends)."""
    n = len(e.ids)
    n_words = max((w for w in e.word_ids if w is not None), default=-1) + 2
    out = {
        "ids": list(e.ids),
        "offsets": [tuple(o) for o in e.offsets],
        "word_ids": list(e.word_ids),
        "sequence_ids": list(e.sequence_ids),
        "n_sequences": e.n_sequences,
        "token_to_sequence": [e.token_to_sequence(i) for i in range(n + 2)],
        "token_to_chars": [_tuple(e.token_to_chars(i)) for i in range(n + 2)],
        "token_to_word": [e.token_to_word(i) for i in range(n + 2)],
    }
    for s in (0, 1):
        chars = range(n_chars[s] + 2)
        out[f"char_to_token {s}"] = [e.char_to_token(c, s) for c in chars]
        out[f"char_to_word {s}"] = [e.char_to_word(c, s) for c in chars]
        out[f"word_to_tokens {s}"] = [_tuple(e.word_to_tokens(w, s)) for w in range(n_words)]
        out[f"word_to_chars {s}"] = [_tuple(e.word_to_chars(w, s)) for w in range(n_words)]
    out["overflowing"] = [positions(w, n_chars) for w in e.overflowing]
    return out


def _tuple(x):
    return None if x is None else tuple(x)


def assert_same_positions(ours: Tokenizer, ref, text, pair=None, **options) -> None:
    if options.get("is_pretokenized"):
        n_chars = (max(map(len, text), default=0), max(map(len, pair or []), default=0))
    else:
        n_chars = (len(text), len(pair or ""))
    a, b = ours.encode(text, pair, **options), ref.encode(text, pair, **options)
    assert positions(a, n_chars) == positions(b, n_chars), (ascii(text), ascii(pair), options)


def _pair(ours: Tokenizer, ref) -> tuple[Tokenizer, object]:
    ours.no_truncation(), ours.no_padding(), ref.no_truncation(), ref.no_padding()
    ours.track_words = True
    return ours, ref


@pytest.fixture(scope="module")
def bert(minilm_dir):
    path = minilm_dir / "tokenizer.json"
    return _pair(Tokenizer.load(path), hf.Tokenizer.from_file(str(path)))


@pytest.fixture(scope="module")
def bert_processing(minilm_dir):
    """MiniLM with HF's BertProcessing in place of its template."""
    d = json.loads((minilm_dir / "tokenizer.json").read_text(encoding="utf-8"))
    d["post_processor"] = {"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}
    return _pair(Tokenizer.from_hf(d), hf.Tokenizer.from_str(json.dumps(d)))


@pytest.fixture(scope="module")
def gpt2(shared_data):
    ours = Tokenizer.load(shared_data / "tokenizer_fixtures" / "gpt2")
    return _pair(ours, hf.Tokenizer.from_str(json.dumps(ours.to_hf())))


@pytest.fixture(scope="module")
def unigram_nfkc(shared_data):
    """SentencePiece's test model (Unigram, Metaspace, no post-processor) behind an NFKC normalizer."""
    path = shared_data / "tokenizer_fixtures" / "sentencepiece" / "test_model.hf.json"
    d = json.loads(path.read_text(encoding="utf-8"))
    d["normalizer"] = {"type": "NFKC"}
    return _pair(Tokenizer.from_hf(d), hf.Tokenizer.from_str(json.dumps(d)))


PIPELINES = ["bert", "bert_processing", "gpt2", "unigram_nfkc"]


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("add_special_tokens", [True, False])
def test_positions_equal_hf_single_and_pair(request, name, add_special_tokens):
    ours, ref = request.getfixturevalue(name)
    for text in TEXTS:
        for pair in PAIRS:
            assert_same_positions(ours, ref, text, pair, add_special_tokens=add_special_tokens)


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize(("truncation", "inputs"), TRUNCATIONS)
@pytest.mark.parametrize("padding", ["right", "left"])
def test_positions_equal_hf_after_truncation_and_padding(request, name, truncation, inputs, padding):
    ours, ref = request.getfixturevalue(name)
    max_length, stride, strategy, direction = truncation
    ours.enable_truncation(max_length, stride, strategy, direction)
    ref.enable_truncation(max_length, stride=stride, strategy=strategy, direction=direction)
    ours.enable_padding(direction=padding, length=20, pad_token="[PAD]")
    ref.enable_padding(direction=padding, length=20, pad_token="[PAD]")
    try:
        for text, pair in inputs:
            assert_same_positions(ours, ref, text, pair)
    finally:
        _pair(ours, ref)


@pytest.mark.parametrize("name", PIPELINES)
def test_pretokenized_word_ids_are_the_input_words_as_hf(request, name):
    ours, ref = request.getfixturevalue(name)
    words = ["Hello", "wor ld", "[SEP]x", "", "naïve", "日本", "tokenization"]
    for pair in (None, ["pair", "", "words"]):
        assert_same_positions(ours, ref, words, pair, is_pretokenized=True)


def test_word_ids_of_a_batch_equal_single_encodes(bert):
    ours, _ = bert
    batch = ours.encode_batch([(t, "pair words") for t in TEXTS])
    assert [e.word_ids for e in batch] == [ours.encode(t, "pair words").word_ids for t in TEXTS]


def test_track_words_encodes_on_the_python_path_with_the_cores_results(minilm_dir):
    """The compiled core does not track words: `track_words` asks for the Python path, same tokens."""
    if not core.available():
        pytest.skip("the compiled tokenizer core is not built here")
    tok = Tokenizer.load(minilm_dir / "tokenizer.json")
    fast = [tok.encode(t, p) for t in TEXTS for p in PAIRS]
    assert tok.engine == "core" and fast[0].word_ids is None  # the core's encodings carry no word ids
    with pytest.raises(LlmlabError, match="track_words"):
        fast[0].token_to_word(1)
    tok.track_words = True
    slow = [tok.encode(t, p) for t in TEXTS for p in PAIRS]
    assert tok.engine == "python" and all(e.word_ids is not None for e in slow)
    assert [(e.ids, e.offsets, e.type_ids) for e in slow] == [(e.ids, e.offsets, e.type_ids) for e in fast]
    tok.track_words = False
    assert tok.engine == "core"
    untracked = pickle.loads(pickle.dumps(fast[0]))  # a core encoding unpickles as a Python one, no words
    assert untracked.word_ids is None and untracked.offsets == slow[0].offsets
    for position in ("word_to_tokens", "char_to_token", "token_to_chars", "token_to_sequence"):
        with pytest.raises(
            LlmlabError, match="track_words"
        ):  # no sequence ranges either: refused, not guessed
            getattr(untracked, position)(0)
