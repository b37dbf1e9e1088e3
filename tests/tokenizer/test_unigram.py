"""Unigram model and trainer: Viterbi parity with sentencepiece and HF `tokenizers`, compression of the trained
vocabulary against sentencepiece's trainer, sampling statistics, byte fallback round trips, bad input."""

from __future__ import annotations

import collections
import csv
import io
import itertools
import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.errors import LlmlabError
from llmlab.tokenizer.unigram import lattice as unigram_lattice
from llmlab.tokenizer.unigram.model import Unigram, byte_piece
from llmlab.tokenizer.unigram.seeds import _distinct
from llmlab.tokenizer.unigram.trainer import train_unigram

SPECIALS = ["<unk>", "<s>", "</s>"]


def words(line: str) -> list[str]:
    """A line as sentencepiece sees it (identity rule, extra spaces removed, dummy prefix), cut before each '▁'."""
    line = " ".join(x for x in line.split(" ") if x)
    if not line:
        return []
    text = "▁" + line.replace(" ", "▁")
    cuts = [i for i, ch in enumerate(text) if ch == "▁"] + [len(text)]
    return [text[a:b] for a, b in itertools.pairwise(cuts)]


def word_counts(lines: list[str]) -> collections.Counter:
    return collections.Counter(w for line in lines for w in words(line))


def read_lines(path: Path) -> list[str]:
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            return [row[0] for row in itertools.islice(csv.reader(f), 1, None)]
    return path.read_text(encoding="utf-8").split("\n")


def pieces_of(model: Unigram, line: str) -> list[str]:
    """Our tokens for a whole line, as sentencepiece prints them (an unknown token shows its text)."""
    out = []
    for word in words(line):
        for i, s, e in model.tokenize(word):
            out.append(word[s:e] if i == model.unk_id else model.id_to_token(i))
    return out


def score_of(model: Unigram, pieces: list[str]) -> float:
    return sum(model.pieces[model.vocab[p]][1] if p in model.vocab else model.unk_score for p in pieces)


def train_spm(lines: list[str], byte_fallback: bool):
    spm = pytest.importorskip("sentencepiece")
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=out,
        model_type="unigram",
        vocab_size=8000,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        split_by_whitespace=True,
        character_coverage=0.9995,
        byte_fallback=byte_fallback,
        num_threads=1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=out.getvalue())


def from_spm(sp, byte_fallback: bool) -> Unigram:
    n = sp.get_piece_size()
    return Unigram(
        [(sp.id_to_piece(i), sp.get_score(i)) for i in range(n)],
        unk_id=sp.unk_id(),
        byte_fallback=byte_fallback,
        special_ids=[i for i in range(n) if sp.is_control(i)],
    )


@pytest.fixture(scope="module")
def corpora(shared_data: Path) -> dict[str, list[str]]:
    """Training subsets and held-out text (other lines, other data sets: unseen characters included)."""
    en = read_lines(shared_data / "gutenberg_en/train.txt")
    zh = read_lines(shared_data / "zh_classic_novels/train.txt")
    return {
        "en_train": en[::5],
        "zh_train": zh[::4],
        "zh_bf_train": zh[::12],
        "en_test": en[1::40] + read_lines(shared_data / "sst2/dev.csv"),
        "zh_test": zh[1::16] + read_lines(shared_data / "chnsenticorp_htl/dev.csv"),
        "en_valid": read_lines(shared_data / "gutenberg_en/valid.txt"),
        "zh_valid": read_lines(shared_data / "zh_classic_novels/valid.txt"),
    }


@pytest.fixture(scope="module")
def spm_models(corpora):
    """sentencepiece unigram models, vocab 8000: English, Chinese, Chinese with byte fallback."""
    return {
        "en": train_spm(corpora["en_train"], False),
        "zh": train_spm(corpora["zh_train"], False),
        "zh_bf": train_spm(corpora["zh_bf_train"], True),
    }


def assert_spm_parity(sp, ours: Unigram, lines: list[str]) -> None:
    """Same pieces as `sp.encode` on every line, except exact ties (sentencepiece adds scores in float32)."""
    ties = 0
    for line in lines:
        got, want = pieces_of(ours, line), sp.encode(line, out_type=str)
        if got != want:
            assert score_of(ours, got) == pytest.approx(score_of(ours, want), abs=1e-4), line
            ties += 1
    print(f"{len(lines)} lines, {ties} differ on a tie")
    assert ties <= len(lines) // 1000


@pytest.mark.parametrize("name", ["en", "zh", "zh_bf"])
def test_viterbi_matches_sentencepiece(name, spm_models, corpora):
    sp, bf = spm_models[name], name.endswith("_bf")
    ours = from_spm(sp, bf)
    lines = corpora["en_test" if name == "en" else "zh_test"]
    assert_spm_parity(sp, ours, lines)
    if bf:  # unseen characters really went through byte fallback
        assert any(
            ours.id_to_token(i).startswith("<0x")
            for line in lines
            for w in words(line)
            for i, _, _ in ours.tokenize(w)
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["en", "zh", "zh_bf"])
def test_viterbi_matches_sentencepiece_on_whole_corpora(name, spm_models, shared_data):
    sp, bf = spm_models[name], name.endswith("_bf")
    files = (
        ["gutenberg_en/train.txt", "tiny_shakespeare/train.txt", "sst2/train.csv"]
        if name == "en"
        else ["zh_classic_novels/train.txt", "zh_poetry/train.txt", "chnsenticorp_htl/train.csv"]
    )
    ours = from_spm(sp, bf)
    for f in files:
        assert_spm_parity(sp, ours, read_lines(shared_data / f))


def test_hf_unigram_gives_the_same_tokens(spm_models, corpora):
    models = pytest.importorskip("tokenizers.models")
    for name, test in [("en", "en_test"), ("zh", "zh_test"), ("zh_bf", "zh_test")]:
        ours = from_spm(spm_models[name], name.endswith("_bf"))
        d = ours.to_hf()
        hf = models.Unigram([tuple(v) for v in d["vocab"]], d["unk_id"], d["byte_fallback"])
        for word in word_counts(corpora[test]):
            assert [i for i, _, _ in ours.tokenize(word)] == [t.id for t in hf.tokenize(word)], word


@pytest.fixture(scope="module")
def trained(corpora, engine):
    """Trained on the compiled lattices and on the Python ones (the `engine` fixture, conftest.py)."""
    return {
        "en": train_unigram(word_counts(corpora["en_train"]), 8000, special_tokens=SPECIALS),
        "zh": train_unigram(word_counts(corpora["zh_train"]), 8000, special_tokens=SPECIALS),
    }


def tokens_per_char(tokenize, lines: list[str]) -> float:
    return sum(len(tokenize(line)) for line in lines) / sum(len(line) for line in lines)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_trained_vocabulary_compresses_like_sentencepiece(lang, trained, spm_models, corpora):
    ours, sp = trained[lang], spm_models[lang]
    valid = corpora[f"{lang}_valid"]
    ours_tpc = tokens_per_char(lambda line: pieces_of(ours, line), valid)
    spm_tpc = tokens_per_char(sp.encode, valid)
    print(f"{lang}: tokens/char ours {ours_tpc:.4f}, sentencepiece {spm_tpc:.4f}")
    assert len(ours.pieces) == 8000
    assert ours_tpc == pytest.approx(spm_tpc, rel=0.02)


def test_chinese_unknown_rate_is_small(trained, corpora, shared_data):
    """Characters beyond 99.95% coverage are unknown: rare on the corpus, and on held-out chapters too."""
    ours = trained["zh"]
    for name, lines in [
        ("corpus", read_lines(shared_data / "zh_classic_novels/train.txt")),
        ("held-out", corpora["zh_valid"]),
    ]:
        tokens = [i for line in lines for w in words(line) for i, _, _ in ours.tokenize(w)]
        rate = tokens.count(ours.unk_id) / len(tokens)
        print(f"zh {name}: [UNK] rate {rate:.5f}")
        assert rate < 0.005


def test_trained_model_layout(trained):
    ours = trained["zh"]
    assert [ours.id_to_token(i) for i in range(3)] == SPECIALS and ours.unk_id == 0
    scores = [s for _, s in ours.pieces[3:]]
    assert scores == sorted(scores, reverse=True) and max(scores) < 0
    assert all(ours.tokenize(w) != [(ours.vocab[w], 0, len(w))] for w in SPECIALS)  # never matched in text


def test_trainer_small_corpus_byte_fallback_and_determinism():
    counts = word_counts(["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 3)
    first = train_unigram(counts, 300, special_tokens=["<pad>"], byte_fallback=True)
    assert first.pieces == train_unigram(counts, 300, special_tokens=["<pad>"], byte_fallback=True).pieces
    assert [first.id_to_token(i) for i in range(2)] == ["<unk>", "<pad>"] and first.unk_id == 0
    assert first.token_to_id("<0x00>") == 2 and first.token_to_id("<0xFF>") == 257
    assert {"▁the", "▁cat", "t", "▁"} <= set(first.vocab)
    assert [first.id_to_token(i) for i, _, _ in first.tokenize("▁cat€")][-3:] == [
        "<0xE2>",
        "<0x82>",
        "<0xAC>",
    ]


def test_trainer_batches_do_not_change_the_model(shared_data, monkeypatch):
    """The E-step (by edges) and the pruning's second-best segmentations (by pieces) run in batches to bound
    memory; batches of a few edges and pieces give the same model as the default ones."""
    monkeypatch.setenv("LLMLAB_PURE_PYTHON", "1")  # the batches are the Python lattice's
    counts = word_counts(read_lines(shared_data / "gutenberg_en/train.txt")[:3000])
    default = train_unigram(counts, 600, special_tokens=SPECIALS)
    monkeypatch.setattr(unigram_lattice, "CHUNK", 1000)
    monkeypatch.setattr(unigram_lattice, "PIECES", 7)
    assert train_unigram(counts, 600, special_tokens=SPECIALS).pieces == default.pieces


# --- hand-built models: worked examples and properties -------------------------------------------------------

TOY = [("<unk>", 0.0), ("a", -2.0), ("b", -2.5), ("ab", -3.0), ("ba", -4.0), ("abab", -5.5), ("▁", -1.0)]
TOY += [("▁a", -2.2), ("c", -3.0)]


def toy(byte_fallback: bool = False) -> Unigram:
    extra = [(byte_piece(b), 0.0) for b in range(256)] if byte_fallback else []
    return Unigram(TOY + extra, unk_id=0, byte_fallback=byte_fallback)


def segmentations(model: Unigram, word: str):
    """Every segmentation of `word` with its score, by brute force (an unmatched character is an unknown node)."""
    if not word:
        yield [], 0.0
        return
    for n in range(1, len(word) + 1):
        piece = word[:n]
        if piece in model.vocab and model.vocab[piece] != model.unk_id:
            score = model.pieces[model.vocab[piece]][1]
        elif n == 1:
            score = model.unk_score
        else:
            continue
        for rest, rest_score in segmentations(model, word[n:]):
            yield [piece, *rest], score + rest_score


def score_of_tokens(model: Unigram, tokens) -> float:
    return sum(model.unk_score * (e - s) if i == model.unk_id else model.pieces[i][1] for i, s, e in tokens)


def assert_spans(tokens, word: str) -> None:
    """Spans tile the word; the tokens of one character's bytes share its span."""
    assert tokens[0][1] == 0 and tokens[-1][2] == len(word)
    for (_, s0, e0), (_, s1, e1) in itertools.pairwise(tokens):
        assert s1 == e0 or (s1, e1) == (s0, e0)


def test_viterbi_worked_example_and_unknowns():
    model = toy()
    assert [model.id_to_token(i) for i, _, _ in model.tokenize("abab")] == ["abab"]  # -5.5 beats ab+ab = -6
    assert model.tokenize("▁aab") == [(7, 0, 2), (3, 2, 4)]  # ▁a + ab = -5.2
    # ab+abab and abab+ab tie at -8.5: the path whose last token starts first wins (sentencepiece, HF)
    assert [model.id_to_token(i) for i, _, _ in model.tokenize("abababc")] == ["ab", "abab", "c"]
    assert model.unk_score == -15.5  # min score - 10
    assert model.tokenize("xyab") == [(0, 0, 2), (3, 2, 4)]  # unknowns fused into one token
    assert model.tokenize("xaz") == [(0, 0, 1), (1, 1, 2), (0, 2, 3)]
    with pytest.raises(LlmlabError, match="unk_id"):
        Unigram(TOY, unk_id=None).tokenize("x")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab▁cx", max_size=9))
def test_viterbi_is_the_best_segmentation(word):
    model = toy()
    best = max(s for _, s in segmentations(model, word))
    assert score_of_tokens(model, model.tokenize(word)) == pytest.approx(best)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab▁cxé", max_size=12), st.booleans())
def test_toy_model_matches_hf_on_ties_and_unknowns(word, byte_fallback):
    models = pytest.importorskip("tokenizers.models")
    model = toy(byte_fallback)
    d = model.to_hf()
    hf = models.Unigram([tuple(v) for v in d["vocab"]], d["unk_id"], d["byte_fallback"])
    assert [i for i, _, _ in model.tokenize(word)] == [t.id for t in hf.tokenize(word)]


def decode(model: Unigram, tokens) -> str:
    """Concatenate pieces, reassembling "<0xXX>" byte tokens into UTF-8."""
    out, pending = [], b""
    for i, _, _ in tokens:
        piece = model.id_to_token(i)
        if piece.startswith("<0x") and len(piece) == 6:
            pending += bytes([int(piece[3:5], 16)])
            continue
        out.append(pending.decode("utf-8") + piece)
        pending = b""
    return "".join(out) + pending.decode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20), st.floats(0, 5), st.integers(0, 2**32))
def test_byte_fallback_round_trips_and_samples_concatenate(text, alpha, seed):
    model, word = toy(byte_fallback=True), "▁" + text
    tokens = model.tokenize(word)
    assert decode(model, tokens) == word
    assert_spans(tokens, word)
    sampled = model.sample(word, alpha, random.Random(seed))
    assert decode(model, sampled) == word
    assert_spans(sampled, word)


def test_large_alpha_samples_viterbi_more_often():
    model, word, rng = toy(), "▁ababcab", random.Random(0)  # best -12.5, next -13
    best = model.tokenize(word)
    share = {
        alpha: sum(model.sample(word, alpha, rng) == best for _ in range(2000)) / 2000
        for alpha in (0.2, 1, 10)
    }
    assert share[0.2] < share[1] < share[10] and share[10] > 0.95


def test_sampling_matches_exact_distribution():
    model, word, alpha = toy(), "abab", 0.5
    exact = {}
    for pieces, score in segmentations(model, word):
        exact[tuple(pieces)] = math.exp(alpha * score)
    total = sum(exact.values())
    rng, n = random.Random(1234), 40_000
    counts = collections.Counter(
        tuple(word[s:e] for _, s, e in model.sample(word, alpha, rng)) for _ in range(n)
    )
    assert set(counts) <= set(exact)
    for seg, weight in exact.items():
        p = weight / total
        assert counts[seg] / n == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n) + 1e-3), seg


def test_hf_round_trip_and_cache():
    model = toy(byte_fallback=True)
    again = Unigram.from_hf(model.to_hf())
    assert again.pieces == model.pieces and again.unk_id == 0 and again.byte_fallback
    first = model.tokenize("▁abab")
    expected = list(first)
    first.append((99, 0, 0))  # the caller's list; the cache keeps its own
    assert model.tokenize("▁abab") == expected == again.tokenize("▁abab")
    assert (
        model.token_to_id("ab") == 3 and model.token_to_id("zz") is None and model.id_to_token(10_000) is None
    )


# --- bad input ----------------------------------------------------------------------------------------------


def test_trainer_rejects_bad_input():
    with pytest.raises(LlmlabError, match="no words"):
        train_unigram({}, 100)
    with pytest.raises(LlmlabError, match="no words"):
        train_unigram({"": 3, "▁a": 0}, 100)
    with pytest.raises(LlmlabError, match="smaller than"):
        train_unigram({"▁abcdefgh": 2}, 8, special_tokens=SPECIALS)
    with pytest.raises(LlmlabError, match="smaller than"):
        train_unigram({"▁ab": 2}, 200, byte_fallback=True)
    with pytest.raises(LlmlabError, match="character_coverage"):
        train_unigram({"▁ab": 2}, 100, character_coverage=0)


@pytest.mark.parametrize(
    "d, message",
    [
        ([], "expected a Unigram"),
        ({"type": "BPE", "vocab": []}, "expected a Unigram"),
        ({"type": "Unigram"}, "'vocab'"),
        ({"type": "Unigram", "vocab": [["a"]]}, "'vocab'"),
        ({"type": "Unigram", "vocab": []}, "empty"),
        ({"type": "Unigram", "vocab": [["a", "x"]]}, "score"),
        ({"type": "Unigram", "vocab": [["a", float("nan")]]}, "score"),
        ({"type": "Unigram", "vocab": [["", -1.0]]}, "non-empty"),
        ({"type": "Unigram", "vocab": [["a", -1.0], ["a", -2.0]]}, "twice"),
        ({"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 3}, "unk_id"),
        ({"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": "0"}, "unk_id"),
        ({"type": "Unigram", "vocab": [["a", -1.0]], "byte_fallback": "yes"}, "byte_fallback"),
    ],
)
def test_from_hf_rejects_malformed_models(d, message):
    with pytest.raises(LlmlabError, match=message):
        Unigram.from_hf(d)


@given(st.lists(st.integers(-1, 0x10FFFF), max_size=200))
def test_distinct_code_points_as_numpy_unique(codes):
    """The corpus's characters are found by counting (seeds.py `_distinct`): the same as np.unique."""
    codes = np.array(codes, np.int32)
    want_uniq, want_inverse = np.unique(codes, return_inverse=True)
    uniq, inverse = _distinct(codes)
    assert uniq.dtype == want_uniq.dtype and np.array_equal(uniq, want_uniq)
    assert np.array_equal(inverse, want_inverse)
