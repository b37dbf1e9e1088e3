"""Every HF normalizer / pre-tokenizer / decoder: the same ids, tokens and offsets as HF `tokenizers`, both ways.

Each component is put into a real pipeline (SentencePiece's test model, a Unigram over '▁' words, and GPT-2's
byte-level BPE), HF loads what llmlab writes and llmlab loads what HF writes, and both encode real text and
hand-picked hard cases (combining marks that NFC/NFKC reorder or compose, fullwidth forms, controls).
"""

from __future__ import annotations

import copy
import json

import pytest

from llmlab.tokenizer import Tokenizer

hf = pytest.importorskip("tokenizers")

HARD = [
    "",
    " ",
    "  Hello   world  ",
    "\u0628\u0651\u064e",
    "q\u0307\u0323",
    "e\u0301 \u1e69\u0323 caf\u00e9 \uff28\uff45\uff4c\uff4c\uff4f \u2460 \ufb01ne",
    "\t tab\r\nline\u200bzero\ufeffbom \u2581 x\x01\x7f",
    "日本語のテキスト、カタカナー ひらがな 123 4567 ١٢٣",
    "it's 3.14 -- (a) [b] {c}!? x_y a-b",
    "\u1100\u1161\u11a8 \uac00 \u0f73 \u0344 mixed\u0300\u0301\u0302",
]


def fields(e) -> dict:
    return {"ids": list(e.ids), "tokens": list(e.tokens), "offsets": [tuple(o) for o in e.offsets]}


def assert_same(ours: Tokenizer, ref, lines: list[str]) -> None:
    for line in lines:
        assert fields(ours.encode(line)) == fields(ref.encode(line)), ascii(line)
        ids = ref.encode(line).ids
        assert ours.decode(ids) == ref.decode(ids), ascii(line)


def both_ways(d: dict, lines: list[str]) -> None:
    """llmlab reads `d` as HF does; HF reads what llmlab writes; llmlab reads what HF writes."""
    ref = hf.Tokenizer.from_str(json.dumps(d))
    ours = Tokenizer.from_hf(d)
    assert_same(ours, ref, lines)
    written = ours.to_hf()
    assert_same(ours, hf.Tokenizer.from_str(json.dumps(written)), lines[::3])
    assert_same(Tokenizer.from_hf(json.loads(ref.to_str())), ref, lines[::3])
    for stage in ("normalizer", "pre_tokenizer", "decoder"):
        if d.get(stage) is not None:  # what we write is what HF writes
            assert written[stage] == json.loads(ref.to_str())[stage], stage


@pytest.fixture(scope="module")
def spm(shared_data) -> dict:
    with open(
        shared_data / "tokenizer_fixtures" / "sentencepiece" / "test_model.hf.json", encoding="utf-8"
    ) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def botchan(shared_data) -> list[str]:
    path = shared_data / "tokenizer_fixtures" / "sentencepiece" / "botchan.txt"
    return path.read_bytes().decode("utf-8").split("\n")  # lines keep their CR


@pytest.fixture(scope="module")
def lines(botchan) -> list[str]:
    return HARD + botchan[:200:2]


def with_stage(base: dict, **stages) -> dict:
    d = copy.deepcopy(base)
    d.update(stages)
    return d


def test_sentencepiece_hf_json_equals_hf_on_every_botchan_line(spm, botchan):
    ref, ours = hf.Tokenizer.from_str(json.dumps(spm)), Tokenizer.from_hf(spm)
    assert_same(ours, ref, botchan + HARD)


PRECOMPILED_SEQUENCE = None  # the fixture's own normalizer


NORMALIZERS = {
    "nfc": {"type": "NFC"},
    "nfd": {"type": "NFD"},
    "nfkc": {"type": "NFKC"},
    "nfkd": {"type": "NFKD"},
    "nmt": {"type": "Nmt"},
    "strip": {"type": "Strip", "strip_left": True, "strip_right": True},
    "lstrip": {"type": "Strip", "strip_left": True, "strip_right": False},
    "prepend": {"type": "Prepend", "prepend": "\u2581"},
    "byte_level": {"type": "ByteLevel"},
    "replace_string": {"type": "Replace", "pattern": {"String": "ll"}, "content": "L"},
    "replace_regex": {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": "  "},
    "replace_delete": {"type": "Replace", "pattern": {"Regex": "[aeiou]"}, "content": ""},
    "lowercase_strip_accents": {
        "type": "Sequence",
        "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}],
    },  # fmt: skip
    "sequence_nmt_nfkc_strip_replace": {
        "type": "Sequence",
        "normalizers": [
            {"type": "Nmt"},
            {"type": "NFKC"},
            {"type": "Strip", "strip_left": False, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"},
        ],
    },
    "bert_strip_accents": {
        "type": "BertNormalizer",
        "clean_text": True,
        "handle_chinese_chars": True,
        "strip_accents": True,
        "lowercase": True,
    },  # fmt: skip
}


@pytest.mark.parametrize("name", NORMALIZERS)
def test_normalizer_equals_hf_both_ways(spm, lines, name):
    both_ways(with_stage(spm, normalizer=NORMALIZERS[name]), lines)


def test_precompiled_alone_equals_hf_both_ways(spm, lines):
    precompiled = spm["normalizer"]["normalizers"][0]
    both_ways(with_stage(spm, normalizer=precompiled), lines)


S = {"type": "Split", "invert": False}
PRE_TOKENIZERS = {
    "whitespace_split": {"type": "WhitespaceSplit"},
    **{
        f"split_{b}": {**S, "pattern": {"String": " "}, "behavior": b}
        for b in ("Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous")
    },
    **{
        f"split_regex_{b}_invert": {**S, "pattern": {"Regex": r"\w+"}, "behavior": b, "invert": True}
        for b in ("Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous")
    },
    "punctuation": {"type": "Punctuation", "behavior": "Isolated"},
    "punctuation_contiguous": {"type": "Punctuation", "behavior": "Contiguous"},
    "digits": {"type": "Digits", "individual_digits": False},
    "digits_individual": {"type": "Digits", "individual_digits": True},
    "unicode_scripts": {"type": "UnicodeScripts"},
    "char_delimiter": {"type": "CharDelimiterSplit", "delimiter": "e"},
    "fixed_length": {"type": "FixedLength", "length": 3},
    "t5_sequence": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        ],
    },  # fmt: skip
    "first_scheme_sequence": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Punctuation", "behavior": "Isolated"},
            {"type": "Digits", "individual_digits": True},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
        ],
    },  # fmt: skip
}


@pytest.mark.parametrize("name", PRE_TOKENIZERS)
def test_pre_tokenizer_equals_hf_both_ways(spm, lines, name):
    pre = PRE_TOKENIZERS[name]
    if pre["type"] != "Sequence":  # '▁' words for the model: the splitter, then Metaspace
        meta = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}
        pre = {"type": "Sequence", "pretokenizers": [pre, meta]}
    both_ways(with_stage(spm, pre_tokenizer=pre), lines)


DECODERS = {
    "ctc": {"type": "CTC", "pad_token": "<unk>", "word_delimiter_token": "\u2581", "cleanup": True},
    "ctc_no_cleanup": {"type": "CTC", "pad_token": "s", "word_delimiter_token": "|", "cleanup": False},
    "fuse": {"type": "Fuse"},
    "strip_start": {"type": "Strip", "content": "\u2581", "start": 1, "stop": 0},
    "strip_stop": {
        "type": "Strip",
        "content": "e",
        "start": 0,
        "stop": 1,
    },  # HF panics when both cut one char
    "replace_string": {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    "replace_regex": {"type": "Replace", "pattern": {"Regex": "[\u2581e]+"}, "content": "_"},
    "byte_fallback": {"type": "ByteFallback"},
    "sequence": {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    },  # fmt: skip
}


@pytest.mark.parametrize("name", DECODERS)
def test_decoder_equals_hf_both_ways(spm, botchan, name):
    d = with_stage(spm, decoder=DECODERS[name])
    ours, ref = Tokenizer.from_hf(d), hf.Tokenizer.from_str(json.dumps(d))
    again = hf.Tokenizer.from_str(json.dumps(ours.to_hf()))
    assert ours.to_hf()["decoder"] == json.loads(ref.to_str())["decoder"]
    for line in botchan[:300:3] + HARD:
        ids = ref.encode(line).ids
        ids = [i for pair in zip(ids, ids, strict=True) for i in pair][1:]  # repeats, as CTC output has
        assert ours.decode(ids) == ref.decode(ids) == again.decode(ids), ascii(line)


@pytest.fixture(scope="module")
def bpe_json(botchan) -> dict:
    """An HF-trained BPE with a continuing-subword prefix and an end-of-word suffix, a few byte tokens."""
    tok = hf.Tokenizer(
        hf.models.BPE(unk_token="<unk>", continuing_subword_prefix="##", end_of_word_suffix="</w>")
    )
    tok.pre_tokenizer = hf.pre_tokenizers.Whitespace()
    trainer = hf.trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<unk>", "<0xC3>", "<0xA9>", "<0x21>"],
        continuing_subword_prefix="##",
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tok.train_from_iterator(botchan[:2000], trainer=trainer)
    return json.loads(tok.to_str())


BPE_OPTIONS = {
    "plain": {},
    "byte_fallback": {"byte_fallback": True},
    "byte_fallback_fuse_unk": {"byte_fallback": True, "fuse_unk": True},
    "fuse_unk": {"fuse_unk": True},
    "ignore_merges": {"ignore_merges": True},
    "dropout_always": {"dropout": 1.0},
    "no_suffix": {"end_of_word_suffix": None},
}


@pytest.mark.parametrize("name", BPE_OPTIONS)
def test_bpe_options_equal_hf_both_ways(bpe_json, lines, name):
    d = copy.deepcopy(bpe_json)
    d["model"].update(BPE_OPTIONS[name])
    both_ways(d, lines + ["é! éè!x ☃☃ 日本 naïve"])


def test_bpe_dropout_samples_valid_splits_and_none_at_zero(bpe_json, botchan):
    d = copy.deepcopy(bpe_json)
    plain = Tokenizer.from_hf(d)
    d["model"]["dropout"] = 0.5
    sampled = Tokenizer.from_hf(d)
    longer = 0
    for line in botchan[:200]:
        a, b = plain.encode(line), sampled.encode(line)
        assert "".join(b.tokens).replace("##", "") == "".join(a.tokens).replace("##", "")  # same text
        longer += len(b.ids) > len(a.ids)
    assert longer > 150  # at p = 0.5 most lines lose merges
    d["model"]["dropout"] = 0.0
    assert [Tokenizer.from_hf(d).encode(x).ids for x in botchan[:50]] == [
        plain.encode(x).ids for x in botchan[:50]
    ]


def test_unigram_partial_byte_fallback_and_fuse_unk(spm):
    d = copy.deepcopy(spm)
    d["model"]["byte_fallback"] = True
    d["model"]["vocab"] += [["<0xC3>", -20.0], ["<0xA9>", -20.0], ["<0xE2>", -20.0]]  # not all 256
    lines = ["café crème naïve", "☃ snow ☃☃", "é" * 5 + "x"]
    both_ways(d, HARD + lines)
    from llmlab.tokenizer.unigram.model import Unigram

    model = Unigram.from_hf(d["model"])
    unfused = Unigram([tuple(p) for p in d["model"]["vocab"]], unk_id=0, fuse_unk=False)
    assert [t[0] for t in model.tokenize("▁☃☃")] == [4, 0]  # one unknown token for the run
    assert [t[0] for t in unfused.tokenize("▁☃☃")] == [4, 0, 0]
