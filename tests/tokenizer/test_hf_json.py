"""tokenizer.json both ways with HF `tokenizers` (WordPiece, BPE, Unigram), vocab.txt, and clear file errors."""

from __future__ import annotations

import csv
import itertools
import json
from collections import Counter

import pytest

from llmlab.errors import LlmlabError
from llmlab.tokenizer import Tokenizer
from llmlab.tokenizer.bpe.trainer import train_bpe
from llmlab.tokenizer.byte_level import bytes_to_unicode
from llmlab.tokenizer.decoders import ByteLevel as ByteLevelDecoder
from llmlab.tokenizer.decoders import Metaspace as MetaspaceDecoder
from llmlab.tokenizer.hf_json import read_vocab_txt, write_vocab_txt
from llmlab.tokenizer.normalize import UnicodeForm
from llmlab.tokenizer.pipeline import AddedToken
from llmlab.tokenizer.postprocess import ByteLevel as ByteLevelProcessor
from llmlab.tokenizer.pretokenize import ByteLevel, Metaspace
from llmlab.tokenizer.templates import TemplateProcessing
from llmlab.tokenizer.unigram.trainer import train_unigram

hf = pytest.importorskip("tokenizers")

pytestmark = pytest.mark.usefixtures("engine")  # every test on the core and on pure Python


def texts(path, limit=None):
    with open(path, encoding="utf-8", newline="") as f:
        return [row[0] for row in csv.reader(f)][1:][:limit]


def lines_of(path, limit):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in itertools.islice(f, limit) if line.strip()]


def fields(e) -> dict:
    return {
        "ids": list(e.ids),
        "tokens": list(e.tokens),
        "offsets": [tuple(o) for o in e.offsets],
        "type_ids": list(e.type_ids),
        "attention_mask": list(e.attention_mask),
        "special_tokens_mask": list(e.special_tokens_mask),
        "overflowing": [fields(o) for o in e.overflowing],
    }


def assert_same(ours: Tokenizer, ref, lines: list[str]) -> None:
    """Same encoding (every field) and the same decoding, line by line and as pairs."""
    for line in lines:
        assert fields(ours.encode(line)) == fields(ref.encode(line)), line
        ids = ours.encode(line).ids
        assert ours.decode(ids) == ref.decode(ids), line
    for a, b in zip(lines[:50], lines[1:51], strict=False):
        assert fields(ours.encode(a, b)) == fields(ref.encode(a, b)), (a, b)


@pytest.fixture(scope="module")
def real_lines(shared_data):
    en = texts(shared_data / "sst2" / "dev.csv", 300) + lines_of(
        shared_data / "gutenberg_en" / "valid.txt", 200
    )
    zh = texts(shared_data / "chnsenticorp_htl" / "dev.csv", 150) + lines_of(
        shared_data / "zh_classic_novels" / "valid.txt", 50
    )
    return en + zh


# ---- llmlab → tokenizer.json → HF -----------------------------------------------------------------------


def test_wordpiece_written_by_us_loads_in_hf(minilm_dir, real_lines):
    ours = Tokenizer.load(minilm_dir / "tokenizer.json")
    ref = hf.Tokenizer.from_str(json.dumps(ours.to_hf()))
    assert_same(ours, ref, real_lines)
    ours.no_padding(), ref.no_padding(), ours.no_truncation(), ref.no_truncation()
    assert_same(ours, ref, real_lines[::3])


@pytest.fixture(scope="module")
def our_bpe(shared_data, engine):
    """Byte-level BPE (GPT-2 style) trained by our trainer on English and Chinese text."""
    corpus = lines_of(shared_data / "gutenberg_en" / "train.txt", 3000) + texts(
        shared_data / "online_shopping_9cats" / "train.csv", 1000
    )
    pre = ByteLevel(add_prefix_space=False)
    counts = Counter(w for line in corpus for w, _, _ in pre.split(line))
    alphabet = sorted(bytes_to_unicode().values())
    model = train_bpe(counts, 1500, special_tokens=["<|endoftext|>"], initial_alphabet=alphabet)
    return Tokenizer(
        model,
        pre_tokenizer=pre,
        post_processor=ByteLevelProcessor(),
        decoder=ByteLevelDecoder(),
        added_tokens=[AddedToken(0, "<|endoftext|>", special=True)],
    )


@pytest.fixture(scope="module")
def our_unigram(shared_data, engine):
    """SentencePiece-style Unigram (NFKC, Metaspace) trained by our trainer."""
    corpus = lines_of(shared_data / "gutenberg_en" / "train.txt", 3000) + texts(
        shared_data / "online_shopping_9cats" / "train.csv", 1000
    )
    norm, pre = UnicodeForm("NFKC"), Metaspace()
    counts = Counter(w for line in corpus for w, _, _ in pre.split(norm.normalize(line)))
    model = train_unigram(counts, 2000, special_tokens=["<unk>", "<s>", "</s>"])
    template = TemplateProcessing("<s> $A </s>", "<s> $A </s> $B:1 </s>:1", [("<s>", 1), ("</s>", 2)])
    return Tokenizer(
        model,
        normalizer=norm,
        pre_tokenizer=pre,
        post_processor=template,
        decoder=MetaspaceDecoder(),
        added_tokens=[AddedToken(i, t, special=True) for i, t in enumerate(["<unk>", "<s>", "</s>"])],
    )


@pytest.mark.parametrize("name", ["our_bpe", "our_unigram"])
def test_bpe_and_unigram_written_by_us_load_in_hf(request, name, real_lines):
    ours = request.getfixturevalue(name)
    ref = hf.Tokenizer.from_str(json.dumps(ours.to_hf()))
    assert_same(ours, ref, real_lines + ["<s>hello</s> world", " <|endoftext|> x  ", "ﬁne café", ""])
    assert ours.get_vocab() == ref.get_vocab()


@pytest.mark.parametrize("name", ["our_bpe", "our_unigram"])
def test_our_json_round_trip_is_exact(request, name, tmp_path):
    ours = request.getfixturevalue(name)
    ours.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again.to_hf() == ours.to_hf() and again.fingerprint == ours.fingerprint
    assert again.model_type == ours.model_type == name.removeprefix("our_")


# ---- HF → tokenizer.json → llmlab -----------------------------------------------------------------------


def hf_trained(kind: str, corpus: list[str]):
    if kind == "bpe":
        tok = hf.Tokenizer(hf.models.BPE())
        tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.post_processor = hf.processors.ByteLevel(trim_offsets=True)
        tok.decoder = hf.decoders.ByteLevel()
        trainer = hf.trainers.BpeTrainer(
            vocab_size=1200,
            special_tokens=["<|endoftext|>"],
            show_progress=False,
            initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(),
        )
    elif kind == "unigram":
        tok = hf.Tokenizer(hf.models.Unigram())
        tok.normalizer = hf.normalizers.NFKC()
        tok.pre_tokenizer = hf.pre_tokenizers.Metaspace(prepend_scheme="first")
        tok.decoder = hf.decoders.Metaspace(prepend_scheme="first")
        trainer = hf.trainers.UnigramTrainer(
            vocab_size=3000, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>", show_progress=False
        )
    else:
        tok = hf.Tokenizer(hf.models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = hf.normalizers.Sequence(
            [hf.normalizers.NFD(), hf.normalizers.Lowercase(), hf.normalizers.StripAccents()]
        )
        tok.pre_tokenizer = hf.pre_tokenizers.Whitespace()
        tok.decoder = hf.decoders.WordPiece()
        trainer = hf.trainers.WordPieceTrainer(
            vocab_size=1500, special_tokens=["[UNK]", "[CLS]", "[SEP]"], show_progress=False
        )
    tok.train_from_iterator(corpus, trainer=trainer)
    if kind == "unigram":
        tok.post_processor = hf.processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
        )
    if kind == "wordpiece":
        tok.post_processor = hf.processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
    return tok


@pytest.mark.parametrize("kind", ["bpe", "unigram", "wordpiece"])
def test_hf_trained_tokenizers_load_in_llmlab(shared_data, real_lines, kind, tmp_path):
    corpus = lines_of(shared_data / "tiny_shakespeare" / "train.txt", 4000) + texts(
        shared_data / "chnsenticorp_htl" / "train.csv", 500
    )
    ref = hf_trained(kind, corpus)
    ref.save(str(tmp_path / "tokenizer.json"))
    ours = Tokenizer.load(tmp_path / "tokenizer.json")
    assert ours.model_type == kind
    assert_same(ours, ref, real_lines + ["<s> x</s>", "  two  spaces ", "É\u0301cole ﬁ"])
    again = Tokenizer.from_hf(ours.to_hf())
    assert again.fingerprint == ours.fingerprint


def test_roberta_processing_equals_hf(our_bpe, real_lines):
    d = our_bpe.to_hf()
    d["post_processor"] = {
        "type": "RobertaProcessing",
        "sep": ["</s>", 2],
        "cls": ["<s>", 1],
        "trim_offsets": True,
        "add_prefix_space": True,
    }
    d["pre_tokenizer"]["add_prefix_space"] = True
    ours, ref = Tokenizer.from_hf(d), hf.Tokenizer.from_str(json.dumps(d))
    assert_same(ours, ref, real_lines[::4])
    assert ours.to_hf()["post_processor"] == json.loads(ref.to_str())["post_processor"]


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
CLS_A_CLS_B = {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
             {"SpecialToken": {"id": "[CLS]", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [101], "tokens": ["[CLS]"]}},
}  # fmt: skip
PROCESSORS = {
    "none": None,
    "bert": {"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]},
    "roberta": {
        "type": "RobertaProcessing",
        "sep": ["[SEP]", 102],
        "cls": ["[CLS]", 101],
        "trim_offsets": True,
        "add_prefix_space": True,
    },  # fmt: skip
    "byte_level": BYTE_LEVEL,
    "sequence": {"type": "Sequence", "processors": [BYTE_LEVEL, CLS_A_CLS_B]},
}


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_post_processors_equal_hf_with_overflowing_windows(minilm_dir, real_lines, name):
    """Each post-processor, with and without special tokens, plain and truncated with a stride (windows)."""
    d = json.loads((minilm_dir / "tokenizer.json").read_text(encoding="utf-8"))
    d["truncation"] = d["padding"] = None
    d["post_processor"] = PROCESSORS[name]
    ours, ref = Tokenizer.from_hf(d), hf.Tokenizer.from_str(json.dumps(d))
    assert ours.to_hf()["post_processor"] == json.loads(ref.to_str())["post_processor"]
    short = [line for line in real_lines if len(line) < 120][:40]
    for truncation in (None, {"max_length": 14, "stride": 3}):
        for tok in (ours, ref):
            tok.enable_truncation(**truncation) if truncation else tok.no_truncation()
        for add in (True, False):
            for a, b in zip(short, short[1:], strict=False):
                assert fields(ours.encode(a, add_special_tokens=add)) == fields(
                    ref.encode(a, add_special_tokens=add)
                )
                assert fields(ours.encode(a, b, add_special_tokens=add)) == fields(
                    ref.encode(a, b, add_special_tokens=add)
                ), (a, b)


DECODERS = [
    {"type": "WordPiece", "prefix": "##", "cleanup": True},
    {"type": "WordPiece", "prefix": "##", "cleanup": False},
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
    {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True},
    {"type": "ByteFallback"},
    {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 2},
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "BPEDecoder", "suffix": "</w>"},
    {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                      {"type": "ByteFallback"}, {"type": "Fuse"},
                                      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
]  # fmt: skip
TOKEN_LISTS = [
    [],
    ["hello", "##ing", "world", ".", "do", "n't", "'", "s", "?"],
    ["▁Hey", "▁friend", "!", "▁▁", "a▁b"],
    ["Ġhello", "Ġ\u4e2d", "Ã¤", "zzÿĀx", "ä¸"],
    ["<0x61>", "<0xE4>", "<0xB8>", "<0xAD>", "b", "<0xE4>", "<0xFF>", "<0x0A>", "<0x6>", "<0xgg>", "▁x"],
    ["hel", "lo</w>", "wor", "ld</w>", "  pad  ", "   "],  # (HF panics on a token shorter than Strip.stop)
]


@pytest.mark.parametrize("decoder", DECODERS, ids=[d["type"] for d in DECODERS])
def test_decoders_equal_hf(minilm_dir, decoder):
    d = json.loads((minilm_dir / "tokenizer.json").read_text(encoding="utf-8"))
    d["decoder"] = decoder
    ours, ref = Tokenizer.from_hf(d), hf.Tokenizer.from_str(json.dumps(d))
    assert ours.to_hf()["decoder"] == json.loads(ref.to_str())["decoder"]
    for tokens in TOKEN_LISTS:
        assert ours.decoder.decode(tokens) == ref.decoder.decode(tokens), tokens


# ---- vocab.txt ------------------------------------------------------------------------------------------


def test_vocab_txt_gives_the_tokenizer_json_ids(minilm_dir, real_lines, tmp_path):
    from_json = Tokenizer.load(minilm_dir / "tokenizer.json")
    from_json.no_padding(), from_json.no_truncation()
    from_txt = read_vocab_txt(minilm_dir / "vocab.txt")
    for line in real_lines:
        assert fields(from_txt.encode(line)) == fields(from_json.encode(line)), line
    assert from_txt.get_vocab() == from_json.get_vocab()
    write_vocab_txt(from_txt, tmp_path / "vocab.txt")
    assert (tmp_path / "vocab.txt").read_bytes() == (minilm_dir / "vocab.txt").read_bytes()


def test_vocab_txt_errors(our_bpe, tmp_path):
    with pytest.raises(LlmlabError, match="vocab.txt holds WordPiece vocabularies only"):
        write_vocab_txt(our_bpe, tmp_path / "vocab.txt")
    (tmp_path / "bad.txt").write_text("hello\nworld\n", encoding="utf-8")
    with pytest.raises(LlmlabError, match=r"bad.txt: not a BERT vocab file: no \[UNK\], \[CLS\], \[SEP\]"):
        read_vocab_txt(tmp_path / "bad.txt")
    with pytest.raises(LlmlabError, match="missing.txt: cannot read"):
        read_vocab_txt(tmp_path / "missing.txt")
    assert not (tmp_path / "vocab.txt").exists()


# ---- bad files ----------------------------------------------------------------------------------------------


@pytest.fixture
def good_json(minilm_dir) -> str:
    return (minilm_dir / "tokenizer.json").read_text(encoding="utf-8")


def broken(good: str, how: str) -> str:
    d = json.loads(good)
    if how == "corrupt":
        return good.replace('"model"', '"model" oops', 1)
    if how == "truncated":
        return good[: len(good) // 2]
    if how == "unknown model":
        d["model"]["type"] = "Foo"
    elif how == "no model":
        del d["model"]
    elif how == "unsupported normalizer":
        d["normalizer"] = {"type": "Foo"}
    elif how == "bad charsmap":
        d["normalizer"] = {"type": "Precompiled", "precompiled_charsmap": "AAAA"}
    elif how == "unsupported decoder":
        d["decoder"] = {"type": "Bar"}
    elif how == "not an object":
        d = [1, 2]
    return json.dumps(d)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("corrupt", r"tok.json: tokenizer file is corrupt or truncated: .* at line \d+ column \d+"),
        ("truncated", r"tok.json: tokenizer file is corrupt or truncated"),
        ("unknown model", r"unknown model type 'Foo' in .*tok.json; expected one of WordPiece, BPE, Unigram"),
        ("no model", r"tok.json: no \"model\" in the tokenizer file"),
        ("unsupported normalizer", r"tok.json: unsupported normalizer 'Foo'"),
        ("bad charsmap", r"tok.json: Precompiled: precompiled_charsmap of 3 bytes is too short"),
        ("unsupported decoder", r"tok.json: unsupported decoder 'Bar'"),
        ("not an object", r"tok.json: not a tokenizer file"),
    ],
)
def test_bad_files_are_one_line_errors_naming_the_file(good_json, tmp_path, how, message):
    path = tmp_path / "tok.json"
    path.write_text(broken(good_json, how), encoding="utf-8")
    with pytest.raises(LlmlabError, match=message) as e:
        Tokenizer.load(path)
    assert "\n" not in str(e.value)


def test_save_into_a_missing_folder_writes_nothing(minilm_dir, tmp_path):
    tok = Tokenizer.load(minilm_dir / "tokenizer.json")
    target = tmp_path / "no" / "such" / "tokenizer.json"
    with pytest.raises(LlmlabError, match="tokenizer.json: output folder .* does not exist"):
        tok.save(target)
    assert not (tmp_path / "no").exists()
    with pytest.raises(LlmlabError, match="output folder"):
        write_vocab_txt(tok, target.with_name("vocab.txt"))
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic_over_an_existing_file(minilm_dir, tmp_path):
    tok = Tokenizer.load(minilm_dir / "tokenizer.json")
    path = tmp_path / "tokenizer.json"
    path.write_text("old", encoding="utf-8")
    tok.save(path)
    assert Tokenizer.load(path).fingerprint == tok.fingerprint
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temporary file left behind
