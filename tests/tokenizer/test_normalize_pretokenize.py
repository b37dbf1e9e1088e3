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
# Text from the scripts users write, with combining marks, controls, odd spaces and emoji. Rare code points
# whose Unicode category changed between versions (Python 3.11 knows Unicode 14, HF's Rust tables differ) are
# left out on purpose: there the two libraries disagree by table version, not by algorithm.
_BLOCKS = [(0x0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x600, 0x6FF), (0x900, 0x97F),
           (0x2000, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF),
           (0x1F300, 0x1F64F)]  # fmt: skip
TEXT = st.text(st.one_of([st.characters(min_codepoint=a, max_codepoint=b) for a, b in _BLOCKS]), max_size=60)


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
    out, alignment = N.BertNormalizer().normalize_aligned(text)
    assert out == N.BertNormalizer().normalize(text) or alignment is not None
    if alignment is not None:
        assert len(alignment) == len(out)
        assert alignment == sorted(alignment) and all(0 <= i < len(text) for i in alignment)


def test_byte_level_map_is_a_bijection_on_bytes():
    assert len(P.BYTE_TO_UNICODE) == 256 and len(set(P.BYTE_TO_UNICODE.values())) == 256
    assert P.BYTE_TO_UNICODE[ord(" ")] == "Ġ" and P.BYTE_TO_UNICODE[ord("A")] == "A"
    assert P.ByteLevel.alphabet() == set(hf_p.ByteLevel.alphabet())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_byte_level_pieces_reassemble_the_text(text):
    pieces = P.ByteLevel().split(text)
    raw = bytes(P.UNICODE_TO_BYTE[c] for piece, _, _ in pieces for c in piece)
    assert raw.decode("utf-8") == text


def test_byte_level_span_maps_bytes_to_characters():
    text = "a 中文"
    piece, start, end = P.ByteLevel().split(text)[1]  # 'Ġ' + 6 bytes of 中文
    assert (start, end) == (1, 4)
    assert P.ByteLevel().span(text, piece, start, end, 1, 4) == (2, 3)  # the three bytes of 中
    assert P.ByteLevel().span(text, piece, start, end, 2, 5) == (2, 4)  # bytes straddling 中 and 文


def test_unknown_components_are_clear_errors():
    with pytest.raises(LlmlabError, match="unsupported normalizer 'Precompiled'"):
        N.normalizer_from_hf({"type": "Precompiled"})
    with pytest.raises(LlmlabError, match="unsupported pre_tokenizer 'Digits'"):
        P.pretokenizer_from_hf({"type": "Digits"})
    with pytest.raises(LlmlabError, match="malformed normalizer"):
        N.normalizer_from_hf({"type": "BertNormalizer"})
