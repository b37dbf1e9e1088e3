"""Byte-level BPE: training and encoding equal Hugging Face `tokenizers`, WordPiece-via-BPE, properties, errors.

The reference is HF's `BpeTrainer` / `models.BPE` fed the same words; real corpora come from ../shared/data
(skipped when absent), everything else from the small text below.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmlab.errors import LlmlabError
from llmlab.tokenizer import core
from llmlab.tokenizer.bpe import pairs as bpe_pairs
from llmlab.tokenizer.bpe import trainer as bpe_train
from llmlab.tokenizer.bpe.model import BPE
from llmlab.tokenizer.bpe.trainer import train_bpe
from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE, UNICODE_TO_BYTE
from llmlab.tokenizer.pretokenize import ByteLevel

hf = pytest.importorskip("tokenizers")

SPECIALS = ["<|endoftext|>"]
BYTES = sorted(BYTE_TO_UNICODE.values())  # the 256 byte characters: byte-level BPE's initial alphabet
SAMPLE = (
    "The quick brown fox jumps over the lazy dog; the dog, unbothered, keeps sleeping in the sun.\n"
    "Tokenizers split text into pieces: 'don't', \"we're\", numbers like 1234 and 3.14159, and    spaces.\n"
    "Café, naïve, façade, Straße, ÆØÅ, Ελληνικά, русский текст, עברית, العربية, हिन्दी.\n"
    "中文没有空格，分词器必须自己找到词的边界。红楼梦和水浒传是古典小说。\n"
    "日本語とにほんご、한국어 문장, emoji 🙂🚀👩‍👩‍👧 and symbols ∑∫√≈ ≠ ∞ — “quotes” … ellipsis.\n"
) * 3


def corpus_lines(path: Path, limit: int | None = None) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in itertools.islice(f, limit)]


def hf_byte_level_counts(lines: list[str]) -> Counter:
    """Word counts exactly as HF's ByteLevel pre-tokenizer (the words HF's own trainer sees)."""
    pre = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    counts: Counter = Counter()
    for line in lines:
        counts.update(word for word, _ in pre.pre_tokenize_str(line))
    return counts


def hf_model_dict(tok) -> tuple[dict[str, int], list[tuple[str, str]]]:
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]


def hf_train_on_lines(lines: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """HF's byte-level BPE trainer on text, as GPT-2: ByteLevel words, all 256 bytes in the alphabet."""
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = hf.trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=BYTES, show_progress=False
    )
    tok.train_from_iterator(lines, trainer)
    return hf_model_dict(tok)


def hf_train_on_counts(word_counts: dict[str, int], vocab_size: int, **options) -> tuple[dict, list]:
    """HF's BpeTrainer on exactly these word counts (words without whitespace, each written count times)."""
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.WhitespaceSplit()
    trainer = hf.trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, **options)
    tok.train_from_iterator((" ".join([w] * n) for w, n in word_counts.items()), trainer)
    return hf_model_dict(tok)


def hf_bpe_tokenizer(model: BPE):
    """An HF Tokenizer whose model is HF's BPE read from our JSON, with no pre-tokenizer (words go in as is)."""
    sections = ("normalizer", "pre_tokenizer", "post_processor", "decoder", "truncation", "padding")
    spec = {"version": "1.0", "added_tokens": [], **dict.fromkeys(sections), "model": model.to_hf()}
    return hf.Tokenizer.from_str(json.dumps(spec))


def assert_same_tokens(model: BPE, words: list[str], batch: int = 20_000) -> None:
    """Our (id, start, end) equal HF's ids and character offsets for every word."""
    ref = hf_bpe_tokenizer(model)
    for i in range(0, len(words), batch):
        chunk = words[i : i + batch]
        for word, enc in zip(
            chunk, ref.encode_batch([[w] for w in chunk], is_pretokenized=True), strict=True
        ):
            expected = [(t, s, e) for t, (s, e) in zip(enc.ids, enc.offsets, strict=True)]
            assert model.tokenize(word) == expected, word


@pytest.fixture(scope="module")
def sample_model() -> BPE:
    """A byte-level BPE trained on SAMPLE: every byte is in its alphabet, merges cover several scripts."""
    counts = Counter(w for line in SAMPLE.splitlines() for w, _, _ in ByteLevel().split(line))
    return train_bpe(counts, 600, special_tokens=SPECIALS, initial_alphabet=BYTES)


@pytest.fixture(scope="module")
def shakespeare_model(shared_data) -> BPE:
    counts = hf_byte_level_counts(corpus_lines(shared_data / "tiny_shakespeare" / "train.txt"))
    return train_bpe(counts, 8000, special_tokens=SPECIALS, initial_alphabet=BYTES)


# ---------------------------------------------------------------- 1. training equals HF's BpeTrainer


# The training tests below take the `engine` fixture (conftest.py): they run on the compiled merge loop
# (_core/bpe_trainer.cpp) and on the Python one.


@pytest.mark.usefixtures("engine")
def test_training_matches_hf_tiny_shakespeare(shared_data):
    lines = corpus_lines(shared_data / "tiny_shakespeare" / "train.txt")
    ours = train_bpe(hf_byte_level_counts(lines), 8000, special_tokens=SPECIALS, initial_alphabet=BYTES)
    vocab, merges = hf_train_on_lines(lines, 8000)
    assert ours.vocab == vocab
    assert ours.merges == merges


@pytest.mark.slow
@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("vocab_size", [8000, 32000])
def test_training_matches_hf_gutenberg(shared_data, vocab_size):
    lines = corpus_lines(shared_data / "gutenberg_en" / "train.txt")
    ours = train_bpe(hf_byte_level_counts(lines), vocab_size, special_tokens=SPECIALS, initial_alphabet=BYTES)
    vocab, merges = hf_train_on_lines(lines, vocab_size)
    assert ours.vocab == vocab
    assert ours.merges == merges


@pytest.mark.usefixtures("engine")
def test_training_matches_hf_chinese(shared_data):
    lines = corpus_lines(shared_data / "zh_poetry" / "train.txt", 600)
    ours = train_bpe(hf_byte_level_counts(lines), 2000, special_tokens=SPECIALS, initial_alphabet=BYTES)
    vocab, merges = hf_train_on_lines(lines, 2000)
    assert (ours.vocab, ours.merges) == (vocab, merges)


words_st = st.text(alphabet="abcd", min_size=1, max_size=8)

# The Python trainer's two ways to merge and its queue, forced on tiny corpora: (bpe_train.BATCH,
# bpe_pairs.PARK) = (merges visiting this many positions take numpy steps, pairs below the best count / PARK
# wait off the heap); and the compiled merge loop (None: not built here).
PYTHON_PATHS = {"python": (10**9, 10**9), "numpy-parked": (1, 1), "mixed": (3, 2)}
MERGE_PATHS = [
    *PYTHON_PATHS,
    pytest.param(
        "core", marks=pytest.mark.skipif(core._corelib is None, reason="the core is not built here")
    ),
]


@contextlib.contextmanager
def merge_path(name: str):
    if name == "core":
        with mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "0"}):
            yield
        return
    batch, park = PYTHON_PATHS[name]
    with (
        mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "1"}),
        mock.patch.object(bpe_train, "BATCH", batch),
        mock.patch.object(bpe_pairs, "PARK", park),
    ):
        yield


@pytest.mark.parametrize("path", MERGE_PATHS)
@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(words_st, st.integers(1, 6), min_size=1, max_size=25),
    st.integers(5, 60),
    st.sampled_from([0, 2, 3]),
    st.sampled_from([None, 2, 3, 5]),
)
def test_training_matches_hf_on_small_corpora(path, word_counts, vocab_size, min_frequency, max_token_length):
    """Tiny alphabets force ties, repeated letters ("aaaa", merged "aa a"), touching pairs ("abab")."""
    options = {"min_frequency": min_frequency, "max_token_length": max_token_length}
    vocab, merges = hf_train_on_counts(word_counts, vocab_size, **options)
    with merge_path(path):
        ours = train_bpe(word_counts, vocab_size, **options)
    assert (ours.vocab, ours.merges) == (vocab, merges)


@pytest.mark.parametrize("path", MERGE_PATHS)
@pytest.mark.parametrize("word_counts", [{"####": 1}, {"####": 3, "a####": 2}])
def test_rebuilt_token_matches_hf(path, word_counts):
    """Two merges can build the same token: with the prefix "##", "####" is # ### ### ###; (###, ###) makes
    "####", then (#, ####) makes "#" + "##" = "###", a token already (its pairs are then made a second time)."""
    vocab, merges = hf_train_on_counts(word_counts, 30, continuing_subword_prefix="##")
    with merge_path(path):
        ours = train_bpe(word_counts, 30, continuing_subword_prefix="##")
    assert (ours.vocab, ours.merges) == (vocab, merges)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet="#a", min_size=1, max_size=12), st.integers(1, 9), min_size=1, max_size=20
    ),
    st.integers(8, 80),
    st.sampled_from([None, 4]),
)
def test_rebuilt_tokens_merge_alike_on_every_path(word_counts, vocab_size, max_token_length):
    """Words of "#" and "a" with the prefix "##" often rebuild tokens. HF then breaks ties between queue entries
    of one pair in heap order (and numbers "##" tokens in hash order), so our merge paths, the compiled one
    included, must agree with each other, the plain Python one being the reference."""
    trained = []
    for path in [*PYTHON_PATHS, *(["core"] if core._corelib is not None else [])]:
        with merge_path(path):
            bpe = train_bpe(
                word_counts, vocab_size, continuing_subword_prefix="##", max_token_length=max_token_length
            )
        trained.append((bpe.vocab, bpe.merges))
    assert trained[1:] == trained[:1] * (len(trained) - 1)


@pytest.mark.usefixtures("engine")
def test_special_tokens_and_initial_alphabet_come_first():
    ours = train_bpe(
        {"hello": 3, "yellow": 2}, 30, special_tokens=["<s>", "</s>"], initial_alphabet=["z", "a"]
    )
    vocab, merges = hf_train_on_counts(
        {"hello": 3, "yellow": 2}, 30, special_tokens=["<s>", "</s>"], initial_alphabet=["z", "a"]
    )
    assert list(ours.vocab)[:9] == ["<s>", "</s>", "a", "e", "h", "l", "o", "w", "y"]
    assert (ours.vocab, ours.merges) == (vocab, merges)


@pytest.mark.usefixtures("engine")
def test_limit_alphabet_keeps_the_most_frequent_characters():
    counts = {"aaab": 5, "ccd": 2, "x": 1}  # a:15 c:4 b:5 d:2 x:1 -> keep a, b, c
    ours = train_bpe(counts, 10, limit_alphabet=3)
    vocab, merges = hf_train_on_counts(counts, 10, limit_alphabet=3)
    assert (ours.vocab, ours.merges) == (vocab, merges)
    assert "x" not in ours.vocab and "d" not in ours.vocab


@pytest.mark.usefixtures("engine")
def test_progress_reports_every_merge():
    seen = []
    train_bpe({"abcabc": 4, "abd": 2}, 8, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # ab, abc, abcabc, abd


# ---------------------------------------------------------------- 2. encoding equals HF's BPE model


def unique_words(lines: list[str]) -> list[str]:
    """Every pre-tokenized word of every line, once (a word always encodes the same way)."""
    return list(dict.fromkeys(w for line in lines for w, _, _ in ByteLevel().split(line)))


@pytest.mark.parametrize("corpus", ["tiny_shakespeare", "zh_classic_novels", "zh_poetry"])
def test_encoding_matches_hf(shared_data, shakespeare_model, corpus):
    """The English-trained model on English and Chinese text (Chinese: first 1000 lines; all of it is slow)."""
    limit = None if corpus == "tiny_shakespeare" else 1000
    assert_same_tokens(
        shakespeare_model, unique_words(corpus_lines(shared_data / corpus / "train.txt", limit))
    )


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["gutenberg_en", "zh_classic_novels", "zh_poetry"])
def test_encoding_matches_hf_whole_corpora(shared_data, shakespeare_model, corpus):
    """Every word of the corpus, with the English model and with one trained on the Chinese corpus itself."""
    words = unique_words(corpus_lines(shared_data / corpus / "train.txt"))
    assert_same_tokens(shakespeare_model, words)
    if corpus.startswith("zh"):
        lines = corpus_lines(shared_data / corpus / "train.txt", 2000)
        zh_model = train_bpe(
            hf_byte_level_counts(lines), 4000, special_tokens=SPECIALS, initial_alphabet=BYTES
        )
        assert_same_tokens(zh_model, words)


OPTIONS = [
    {},
    {"unk_token": "<unk>"},
    {"unk_token": "<unk>", "fuse_unk": True},
    {"continuing_subword_prefix": "##", "unk_token": "<unk>"},
    {"end_of_word_suffix": "</w>"},
    {"ignore_merges": True},
    {"byte_fallback": True, "unk_token": "<unk>"},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_model_options_match_hf(options):
    prefix, suffix = options.get("continuing_subword_prefix", ""), options.get("end_of_word_suffix", "")
    words = ["lower", "newest", "widest", "low", "lowest", "new", "newer", "wide", "x"]
    counts = Counter(words)
    bpe = train_bpe(counts, 40, special_tokens=["<unk>"], continuing_subword_prefix=prefix or None)
    vocab = dict(bpe.vocab)
    if suffix:  # mark the last character of each word, as a trainer with this suffix would
        for token in [t + suffix for t in list(vocab)]:
            vocab.setdefault(token, len(vocab))
    for b in b"\xc3\xa9?":
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    vocab.setdefault("newest", len(vocab))
    ours = BPE(vocab, bpe.merges, **options)
    ref = hf.models.BPE(vocab, bpe.merges, **options)
    for word in [*words, "lowe?st", "??", "zzz", "newest", "é", "néw", "lozzw", "z"]:
        expected = [t.id for t in ref.tokenize(word)]
        assert [i for i, _, _ in ours.tokenize(word)] == expected, word


# ---------------------------------------------------------------- 3. WordPiece via BPE


def bert_word_counts(lines: list[str]) -> Counter:
    norm, pre = hf.normalizers.Lowercase(), hf.pre_tokenizers.BertPreTokenizer()
    return Counter(w for line in lines for w, _ in pre.pre_tokenize_str(norm.normalize_str(line)))


WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def hf_bert_trained(lines: list[str], trainer, model):
    tok = hf.Tokenizer(model)
    tok.normalizer, tok.pre_tokenizer = hf.normalizers.Lowercase(), hf.pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(lines, trainer)
    return tok


def in_hf_order(counts: Counter, hf_vocab: dict[str, int], prefix: str = "##") -> dict[str, int]:
    """The word counts reordered so that our "##c" ids equal those HF's run gave.

    Both number each "##c" when a word first shows c after its first character. HF meets the words in hash-map
    order, different in every run; this puts first, for each "##c" in HF's id order, a word whose new "##"
    characters come in exactly that order (HF's own first word for it always qualifies).
    """
    wanted = sorted(
        (t for t in hf_vocab if t.startswith(prefix) and len(t) == len(prefix) + 1), key=hf_vocab.get
    )
    seen: set[str] = set()
    first: dict[str, int] = {}
    while len(seen) < len(wanted):
        for word in counts:
            new = list(dict.fromkeys(prefix + ch for ch in word[1:] if prefix + ch not in seen))
            if new and new == wanted[len(seen) : len(seen) + len(new)]:
                first[word] = counts[word]
                seen.update(new)
                break
        else:
            raise AssertionError("no word order reproduces HF's ids")
    return {**first, **counts}


@pytest.mark.usefixtures("engine")
def test_wordpiece_vocab_matches_hf_wordpiece_trainer(shared_data):
    """HF's WordPieceTrainer is its BpeTrainer with "##", keeping only the vocabulary.

    HF numbers the "##c" tokens in the order its hash map yields the words, so its ids change from run to run
    and, through the tie rule (smallest ids first), so can its tokens: three HF runs here differ pairwise in
    8-12 of 4000 tokens. Given the words in an order that reproduces the run's "##c" ids, ours is identical.
    """
    lines = corpus_lines(shared_data / "tiny_shakespeare" / "train.txt")
    trainer = hf.trainers.WordPieceTrainer(
        vocab_size=4000, special_tokens=WORDPIECE_SPECIALS, show_progress=False
    )
    ref = hf_bert_trained(lines, trainer, hf.models.WordPiece(unk_token="[UNK]")).get_vocab()
    counts = in_hf_order(bert_word_counts(lines), ref)
    ours = train_bpe(counts, 4000, special_tokens=WORDPIECE_SPECIALS, continuing_subword_prefix="##")
    assert ours.vocab == ref


@pytest.mark.usefixtures("engine")
def test_prefixed_merges_match_hf(shared_data):
    lines = corpus_lines(shared_data / "tiny_shakespeare" / "train.txt")
    trainer = hf.trainers.BpeTrainer(
        vocab_size=4000,
        special_tokens=WORDPIECE_SPECIALS,
        show_progress=False,
        continuing_subword_prefix="##",
    )
    vocab, merges = hf_model_dict(hf_bert_trained(lines, trainer, hf.models.BPE()))
    counts = in_hf_order(bert_word_counts(lines), vocab)
    ours = train_bpe(counts, 4000, special_tokens=WORDPIECE_SPECIALS, continuing_subword_prefix="##")
    assert (ours.vocab, ours.merges) == (vocab, merges)


def test_likelihood_score_worked_example():
    """The HF course's WordPiece example (chapter 6): score = count(ab) / (count(a) * count(b)).

    Symbol counts: h 15, ##u 36, ##g 20, p 17, ##n 16, b 4, ##s 5 (ids b0 g1 h2 n3 p4 s5 u6, then ##u7 ##g8
    ##n9 ##s10).
    1. (##g, ##s) = 5 / (20 * 5) = 1/20 beats every pair with ##u (1/36); by count (##u, ##g) = 20 would win.
    2. All left pairs score 1/36 (##g now 15): the tie goes to the smallest ids, (b, ##u).
    3. (bu, ##n) = 4 / (4 * 16) = 1/16.
    4. ##u fell to 32: (h, ##u), (p, ##u), (##u, ##g), (##u, ##gs), (##u, ##n) all score 1/32 -> (h, ##u).
    5. (hu, ##gs) = 5 / (15 * 5) = 1/15 beats (p, ##u) = 1/17 and (hu, ##g) = 10 / (15 * 15).
    """
    counts = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}
    ours = train_bpe(counts, 16, continuing_subword_prefix="##", score="likelihood")
    assert ours.merges == [("##g", "##s"), ("b", "##u"), ("bu", "##n"), ("h", "##u"), ("hu", "##gs")]
    assert train_bpe(counts, 12, continuing_subword_prefix="##").merges[0] == ("##u", "##g")


def naive_likelihood(word_counts: dict[str, int], vocab_size: int, prefix: str) -> tuple[dict, list]:
    """The likelihood trainer straight from its definition: recount everything before every merge."""
    tokens = sorted({ch for w in word_counts for ch in w})
    tokens += list(dict.fromkeys(prefix + ch for w in word_counts for ch in w[1:]))
    ids = {t: i for i, t in enumerate(tokens)}
    words = [[ids[w[0]]] + [ids[prefix + ch] for ch in w[1:]] for w in word_counts]
    merges = []
    while len(ids) < vocab_size:
        pairs, units = Counter(), Counter()
        for word, n in zip(words, word_counts.values(), strict=True):
            units.update({s: n * k for s, k in Counter(word).items()})
            pairs.update({p: n * k for p, k in Counter(itertools.pairwise(word)).items()})
        if not pairs:
            break
        a, b = min(pairs, key=lambda p: (-pairs[p] / (units[p[0]] * units[p[1]]), p))
        token = tokens[a] + tokens[b].removeprefix(prefix)
        if token not in ids:
            ids[token] = len(tokens)
            tokens.append(token)
        merges.append((tokens[a], tokens[b]))
        for word in words:
            i = 0
            while i < len(word) - 1:
                if word[i] == a and word[i + 1] == b:
                    word[i : i + 2] = [ids[token]]
                i += 1
    last = {m: r for r, m in enumerate(merges)}
    return ids, [m for r, m in enumerate(merges) if last[m] == r]


@pytest.mark.parametrize("path", PYTHON_PATHS)  # the likelihood score runs in Python only
@settings(max_examples=60, deadline=None)
@given(st.dictionaries(words_st, st.integers(1, 9), min_size=1, max_size=20), st.integers(8, 50))
def test_likelihood_matches_naive_recount(path, word_counts, vocab_size):
    """Lazy re-scoring gives exactly what recounting from scratch gives."""
    vocab, merges = naive_likelihood(word_counts, vocab_size, "##")
    with merge_path(path):
        ours = train_bpe(word_counts, vocab_size, continuing_subword_prefix="##", score="likelihood")
    assert (ours.vocab, ours.merges) == (vocab, merges)


# ---------------------------------------------------------------- 4. properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_byte_level_round_trip(sample_model, text):
    """Tokens tile each word; their characters map back to the text's UTF-8 bytes."""
    out = b""
    for word, start, end in ByteLevel().split(text):
        tokens = sample_model.tokenize(word)
        assert [s for _, s, _ in tokens] == [0] + [e for _, _, e in tokens[:-1]] and tokens[-1][2] == len(
            word
        )
        pieces = "".join(sample_model.id_to_token(i) for i, _, _ in tokens)
        assert pieces == word
        assert bytes(UNICODE_TO_BYTE[ch] for ch in pieces) == text[start:end].encode()
        out += bytes(UNICODE_TO_BYTE[ch] for ch in pieces)
    assert out == text.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_hf_model_from_our_json_gives_the_same_tokens(sample_model, text):
    assert_same_tokens(sample_model, [w for w, _, _ in ByteLevel().split(text)])


def test_to_hf_from_hf_round_trip(sample_model):
    d = sample_model.to_hf()
    assert list(d)[:9] == [
        "type",
        "dropout",
        "unk_token",
        "continuing_subword_prefix",
        "end_of_word_suffix",
        "fuse_unk",
        "byte_fallback",
        "ignore_merges",
        "vocab",
    ]
    again = BPE.from_hf(json.loads(json.dumps(d)))
    assert again.to_hf() == d
    assert list(d["vocab"].values()) == sorted(d["vocab"].values())
    older = dict(
        d, merges=[f"{a} {b}" for a, b in d["merges"]]
    )  # merges as strings, as before tokenizers 0.20
    assert BPE.from_hf(older).to_hf() == d
    assert json.loads(hf_bpe_tokenizer(sample_model).to_str())["model"] == d  # HF reads it and writes it back


def test_lookups_and_cache(sample_model):
    assert sample_model.token_to_id("<|endoftext|>") == 0
    assert sample_model.id_to_token(0) == "<|endoftext|>"
    assert sample_model.token_to_id("no such token") is None and sample_model.id_to_token(10**9) is None
    first = sample_model.tokenize("Ġquick")
    first.append((0, 0, 0))  # callers get their own list
    assert sample_model.tokenize("Ġquick") == first[:-1]
    assert sample_model.tokenize("") == []


# ---------------------------------------------------------------- 5. bad input


def test_vocab_size_smaller_than_alphabet_names_both_numbers():
    with pytest.raises(LlmlabError, match=r"vocab_size 100 .*1 special tokens \+ 256 alphabet"):
        train_bpe({"hello": 1}, 100, special_tokens=SPECIALS, initial_alphabet=BYTES)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"score": "best"}, "score"), ({"vocab_size": 0}, "vocab_size")],
)
def test_bad_trainer_options(options, message):
    with pytest.raises(LlmlabError, match=message):
        train_bpe({"hello": 1}, **{"vocab_size": 100, **options})


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"merges": []}, "vocab"),
        ({"vocab": ["a", "b"], "merges": []}, "vocab"),
        ({"vocab": {"a": 0, "b": "1"}, "merges": []}, "vocab"),
        ({"vocab": {"a": 0, "b": 1}, "merges": "a b"}, "merges"),
        ({"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b", "c"]]}, "merge 0"),
        ({"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b c"]}, "merge 0"),
        ({"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "c"]]}, "'c' is not in the vocabulary"),
        ({"vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}, "'ab' is not in the vocabulary"),
        ({"type": "WordPiece", "vocab": {}}, "BPE"),
        ({"vocab": {"a": 0}, "dropout": 1.5}, "dropout"),
        ("not a dict", "BPE"),
    ],
)
def test_from_hf_rejects_malformed_input(model, message):
    with pytest.raises(LlmlabError, match=message):
        BPE.from_hf(model)


def test_unknown_character_without_unk_in_vocab():
    with pytest.raises(LlmlabError, match="unk_token '<unk>' is not in the vocabulary"):
        BPE({"a": 0}, [], unk_token="<unk>").tokenize("ab")
    assert BPE({"a": 0}, []).tokenize("ab") == [(0, 0, 1)]  # no unk_token: dropped, as HF
