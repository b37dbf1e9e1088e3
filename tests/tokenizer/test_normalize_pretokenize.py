"""Normalizers and pre-tokenizers equal Hugging Face `tokenizers` on real text and on generated text."""

from __future__ import annotations

import csv
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.errors import LlmlabError
from llmlab.tokenizer import normalize as N
from llmlab.tokenizer import pretokenize as P
from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE, UNICODE_TO_BYTE
from llmlab.tokenizer.normalize_sp import normalizer_from_hf
from llmlab.tokenizer.pretokenize_split import pretokenizer_from_hf

hf_n = pytest.importorskip("tokenizers.normalizers")
hf_p = pytest.importorskip("tokenizers.pre_tokenizers")

NORMALIZERS = {
    "bert_uncased": (N.BertNormalizer(), hf_n.BertNormalizer()),
    "bert_cased": (N.BertNormalizer(lowercase=False), hf_n.BertNormalizer(lowercase=False)),
    "nfkc": (N.UnicodeForm("NFKC"), hf_n.NFKC()),
    "nfd_strip_lower": (
        N.Sequence([N.UnicodeForm("NFD"), N.StripAccents(), N.Lowercase()]),
        hf_n.Sequence([hf_n.NFD(), hf_n.StripAccents(), hf_n.Lowercase()]),
    ),
}
PRETOKENIZERS = {
    "bert": (P.BertPreTokenizer(), hf_p.BertPreTokenizer()),
    "byte_level": (P.ByteLevel(), hf_p.ByteLevel(add_prefix_space=False)),
    "byte_level_prefix": (P.ByteLevel(add_prefix_space=True), hf_p.ByteLevel(add_prefix_space=True)),
    "metaspace": (P.Metaspace(), hf_p.Metaspace()),
    "whitespace": (P.Whitespace(), hf_p.Whitespace()),
}
# Text from the scripts users write, with combining marks, controls, odd spaces and emoji. Unassigned code
# points (Cn, e.g. U+0380) and surrogates (Cs) inside the blocks are left out on purpose: Python/regex and HF's
# Rust tables know different Unicode versions, so there the libraries disagree by table version, not algorithm.
# So is U+061D ARABIC END OF TEXT MARK, punctuation since Unicode 14 (Python 3.11) but unknown to HF's tables.
_NEWER_THAN_HF = "\u061d"
_BLOCKS = [
    (0x0, 0x24F),
    (0x300, 0x36F),
    (0x370, 0x3FF),
    (0x400, 0x4FF),
    (0x600, 0x6FF),
    (0x900, 0x97F),
    (0x2000, 0x206F),
    (0x3000, 0x30FF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),
    (0xFF00, 0xFFEF),
    (0x1F300, 0x1F64F),
]
_CHARS = [
    st.characters(
        min_codepoint=a, max_codepoint=b, exclude_categories=("Cn", "Cs"), exclude_characters=_NEWER_THAN_HF
    )
    for a, b in _BLOCKS
]
TEXT = st.text(st.one_of(_CHARS), max_size=60)


def real_lines(shared_data, limit_per_file: int = 3000) -> list[str]:
    lines = []
    for name in ("sst2/dev.csv", "chnsenticorp_htl/dev.csv", "online_shopping_9cats/dev.csv"):
        with open(shared_data / name, encoding="utf-8", newline="") as f:
            lines += [row["text"] for row in itertools.islice(csv.DictReader(f), limit_per_file)]
    for name in ("gutenberg_en/valid.txt", "zh_poetry/valid.txt"):
        with open(shared_data / name, encoding="utf-8") as f:
            lines += [line.rstrip("\n") for line in itertools.islice(f, limit_per_file)]
    return lines


@pytest.mark.parametrize("name", NORMALIZERS)
def test_normalizers_equal_hf_on_real_text(shared_data, name):
    ours, hf = NORMALIZERS[name]
    for line in real_lines(shared_data):
        assert ours.normalize(line) == hf.normalize_str(line), line


@pytest.mark.parametrize("name", PRETOKENIZERS)
def test_pretokenizers_equal_hf_on_real_text(shared_data, name):
    ours, hf = PRETOKENIZERS[name]
    for line in real_lines(shared_data):
        assert [(p, (s, e)) for p, s, e in ours.split(line)] == hf.pre_tokenize_str(line), line


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_normalizers_equal_hf_on_generated_text(text):
    for ours, hf in NORMALIZERS.values():
        assert ours.normalize(text) == hf.normalize_str(text)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_pretokenizers_equal_hf_on_generated_text(text):
    for ours, hf in PRETOKENIZERS.values():
        assert [(p, (s, e)) for p, s, e in ours.split(text)] == hf.pre_tokenize_str(text)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_alignment_points_into_the_original(text):
    bert = N.BertNormalizer()
    out, alignment = bert.normalize_aligned(text)
    assert out == bert.normalize(text)
    if alignment is None:  # only for the identity: every character became one character, in place
        assert len(out) == len(text) and all(len(bert.normalize(c)) == 1 for c in text)
    else:
        assert len(alignment) == len(out)
        assert alignment == sorted(alignment) and all(0 <= i < len(text) for i in alignment)


def test_alignment_is_none_only_for_the_identity():
    bert, nfkc = N.BertNormalizer(), N.UnicodeForm("NFKC")
    assert bert.normalize_aligned("Hello World") == ("hello world", None)
    # two characters dropped and two spaces put in: the same length, but not in place
    assert bert.normalize_aligned("\x00\x00中") == (" 中 ", [2, 2, 2])
    assert bert.normalize_aligned("中a") == (" 中 a", [0, 0, 0, 1])
    assert nfkc.normalize_aligned("ﬁ，") == ("fi,", [0, 0, 1])
    assert nfkc.normalize_aligned("Ａ，") == ("A,", None)  # full-width forms, one character each


def test_strip_accents_drops_every_combining_mark_as_hf():
    """HF's StripAccents drops marks Mn, Mc and Me; BERT's strip_accents only Mn (a Devanagari vowel stays)."""
    for text in ["का", "e\u0301", "\u0488x", "ü"]:
        assert N.StripAccents().normalize(text) == hf_n.StripAccents().normalize_str(text), text
    bert, ref = N.BertNormalizer(lowercase=False, strip_accents=True), hf_n.BertNormalizer(strip_accents=True)
    assert bert.normalize("का") == ref.normalize_str("का") == "का"


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_split_spans_and_raw_split_agree_with_split(text):
    for ours, _ in PRETOKENIZERS.values():
        pieces, spans = ours.split_spans(text)
        assert [(p, s, e) for p, (s, e) in zip(pieces, spans, strict=True)] == ours.split(text)
        words, raw_spans = ours.raw_split(text)
        assert list(map(ours.map_word, words)) == pieces and raw_spans == spans


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=60))
def test_ascii_splits_equal_the_unicode_ones(text):
    assert P._BERT_SPLIT_ASCII.findall(text) == P._BERT_SPLIT.findall(text)
    assert P._GPT2_SPLIT_ASCII.findall(text) == P._GPT2_SPLIT.findall(text)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_isolating_cjk_equals_splitting_bert_spaced_text(text):
    """What the pipeline does in place of BertNormalizer's spaces around CJK ideographs."""
    bert, fused = N.BertNormalizer(), N.BertNormalizer().without_cjk_spaces()
    spaced = [w for w, _, _ in P.BertPreTokenizer().split(bert.normalize(text))]
    assert [w for w, _, _ in P.BertPreTokenizer(isolate_cjk=True).split(fused.normalize(text))] == spaced


def test_byte_level_map_is_a_bijection_on_bytes():
    assert len(BYTE_TO_UNICODE) == 256 and len(set(BYTE_TO_UNICODE.values())) == 256
    assert BYTE_TO_UNICODE[ord(" ")] == "Ġ" and BYTE_TO_UNICODE[ord("A")] == "A"
    assert P.ByteLevel.alphabet() == set(hf_p.ByteLevel.alphabet())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_byte_level_pieces_reassemble_the_text(text):
    pieces = P.ByteLevel().split(text)
    raw = bytes(UNICODE_TO_BYTE[c] for piece, _, _ in pieces for c in piece)
    assert raw.decode("utf-8") == text


def test_byte_level_span_maps_bytes_to_characters():
    text = "a 中文"
    piece, start, end = P.ByteLevel().split(text)[1]  # 'Ġ' + 6 bytes of 中文
    assert (start, end) == (1, 4)
    assert P.ByteLevel().span(text, piece, start, end, 1, 4) == (2, 3)  # the three bytes of 中
    assert P.ByteLevel().span(text, piece, start, end, 2, 5) == (2, 4)  # bytes straddling 中 and 文


def test_unknown_components_are_clear_errors():
    with pytest.raises(LlmlabError, match="unsupported normalizer 'Accents'"):
        normalizer_from_hf({"type": "Accents"})
    with pytest.raises(LlmlabError, match="malformed normalizer 'Precompiled'"):
        normalizer_from_hf({"type": "Precompiled"})
    with pytest.raises(LlmlabError, match="unsupported pre_tokenizer 'Numbers'"):
        pretokenizer_from_hf({"type": "Numbers"})
    with pytest.raises(LlmlabError, match="malformed normalizer"):
        normalizer_from_hf({"type": "BertNormalizer"})
