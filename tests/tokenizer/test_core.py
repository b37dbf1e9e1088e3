"""The compiled core (core.py, _core/) equals the pure-Python path: the standard pipelines run on it, random
Unicode text gives identical encodings, tiktoken's GPT-2 ids hold on it, it pickles into worker processes,
bad input is a one-line error or a correct result (test_core_sanitizers.py runs builds under sanitizers).
(The other parity tests run on both paths through the `engine` fixture of conftest.py.)"""

from __future__ import annotations

import csv
import json
import multiprocessing
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.errors import LlmlabError
from llmlab.tokenizer import Tokenizer, core
from llmlab.tokenizer.train import train_tokenizer

pytestmark = pytest.mark.skipif(core._corelib is None, reason="the compiled tokenizer core is not built here")
# tests of which engine a new tokenizer picks by itself: LLMLAB_PURE_PYTHON=1 switches the core off for them
core_by_default = pytest.mark.skipif(
    not core.available(), reason="LLMLAB_PURE_PYTHON=1: the core is switched off"
)


def fields(e) -> tuple:
    return (
        list(e.ids),
        list(e.tokens),
        [tuple(o) for o in e.offsets],
        list(e.type_ids),
        list(e.attention_mask),
        list(e.special_tokens_mask),
        [fields(o) for o in e.overflowing],
    )


def both(build) -> tuple[Tokenizer, Tokenizer]:
    """(core, pure) tokenizers from the same builder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_PURE_PYTHON", "0")
        fast = build()
        mp.setenv("LLMLAB_PURE_PYTHON", "1")
        pure = build()
    assert fast.engine == "core" and pure.engine == "python"
    return fast, pure


def texts(path: Path, limit: int) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return [row[0] for row in csv.reader(f)][1:][:limit]


@pytest.fixture(scope="module")
def corpus(shared_data) -> list[str]:
    en = (shared_data / "tiny_shakespeare" / "train.txt").read_text(encoding="utf-8").splitlines()[:3000]
    zh = (shared_data / "zh_classic_novels" / "train.txt").read_text(encoding="utf-8").splitlines()[:200]
    return en + zh + texts(shared_data / "chnsenticorp_htl" / "train.csv", 300)


def standard_pipelines(folder: Path, minilm_dir: Path, lines: list[str], vocab_size: int) -> dict[str, str]:
    """The three standard pipelines as tokenizer.json files: BERT (MiniLM's), and byte-level BPE and Unigram
    trained on `lines` into `folder`."""
    paths = {"bert": str(minilm_dir / "tokenizer.json")}
    for model in ("bpe", "unigram"):
        paths[model] = str(folder / f"{model}.json")
        train_tokenizer(model, lines, vocab_size).save(paths[model])
    return paths


@pytest.fixture(scope="module")
def pipelines(corpus, minilm_dir, tmp_path_factory) -> dict[str, str]:
    return standard_pipelines(tmp_path_factory.mktemp("pipelines"), minilm_dir, corpus, 4000)


@pytest.mark.parametrize("name", ["bert", "bpe", "unigram"])
def test_standard_pipelines_run_on_the_core_with_identical_results(pipelines, corpus, name):
    fast, pure = both(lambda: Tokenizer.load(pipelines[name]))
    for t in (fast, pure):
        t.enable_truncation(32, stride=4)
        t.enable_padding(pad_to_multiple_of=8)
    lines = corpus[::7] + [
        "",
        " ",
        "[CLS] [SEP] <|endoftext|> <s>",
        "q\u0307\u0323 e\u0301 ﬁ ①",
        "\x00\ufffd",
    ]
    assert [fields(e) for e in fast.encode_batch(lines, num_threads=2)] == [
        fields(e) for e in pure.encode_batch(lines)
    ]
    for a, b in zip(lines[:60], lines[1:61], strict=True):
        assert fields(fast.encode(a, b)) == fields(pure.encode(a, b)), (a, b)
        assert fast.decode(fast.encode(a).ids) == pure.decode(pure.encode(a).ids)


@pytest.mark.parametrize("name", ["bert", "bpe"])
def test_single_calls_reuse_one_encoding_whatever_came_before(pipelines, corpus, name):
    """Single encodes write into one encoding kept by the core (module.cpp `Core::output`, dropped once a text
    grew it past 65,536 tokens) and hand Python a packed copy (py_encoding.h): texts long and short, pairs and
    windows, one after another, each equal to the pure path's, and the Encodings made earlier unchanged."""
    fast, pure = both(lambda: Tokenizer.load(pipelines[name]))
    for t in (fast, pure):
        t.no_truncation()
        t.no_padding()
    long_text = " ".join(corpus[:3000] * 4)
    calls = [(long_text,), (corpus[0],), (corpus[1], corpus[2]), ("",), (long_text[:5000],), (corpus[3],)]
    kept = [fast.encode(*c) for c in calls]
    assert len(kept[0].ids) > 1 << 16
    want = [fields(pure.encode(*c)) for c in calls]
    assert [fields(e) for e in kept] == want
    for t in (fast, pure):
        t.enable_truncation(16, stride=4)
    assert fields(fast.encode(corpus[4], corpus[5])) == fields(pure.encode(corpus[4], corpus[5]))
    assert fields(fast.encode(long_text[:3000])) == fields(pure.encode(long_text[:3000]))
    assert [fields(e) for e in kept] == want


def test_the_core_encodings_fields_read_set_and_refuse_deletion(pipelines, corpus):
    """The core's Encoding exposes its fields as attribute descriptors of its type (py_encoding.cpp): each
    reads as the pure path's, a field set reads back (its length follows the ids), and deleting one is an
    AttributeError; any other attribute comes from the pure-Python Encoding of the same fields (the type's
    own attribute lookup), and one neither has is an AttributeError."""
    fast, pure = both(lambda: Tokenizer.load(pipelines["bert"]))
    e, want = fast.encode(corpus[0], corpus[1]), pure.encode(corpus[0], corpus[1])
    assert type(e).__name__ == "Encoding" and type(e) is not type(want)
    assert fields(e) == fields(want)
    # `ids` under a name that is not the interned "ids" code passes: the type's lookup, not the fast path
    name = "".join(["i", "ds"])
    assert name is not "ids" and getattr(e, name) is e.ids  # noqa: F632
    e.ids, e.tokens = [7, 8], ["a", "b"]
    assert (e.ids, e.tokens, len(e), getattr(e, name)) == ([7, 8], ["a", "b"], 2, [7, 8])
    with pytest.raises(AttributeError, match="cannot be deleted"):
        del e.attention_mask
    assert e.attention_mask == want.attention_mask
    # (the core tracks no words: see test_word_ids.py)
    assert e.word_ids is None and callable(e.char_to_token)
    for missing in ("no_such_field", "__no_such_dunder__"):
        with pytest.raises(AttributeError, match=missing):
            getattr(e, missing)


@core_by_default
def test_unsupported_stages_run_in_python(pipelines):
    from llmlab.tokenizer.pretokenize import Whitespace

    tok = Tokenizer.load(pipelines["bert"])
    assert tok.engine == "core"
    tok.pre_tokenizer = Whitespace()
    assert tok.engine == "python"


# ---- 100,000 random strings ------------------------------------------------------------------------------

UNICODE = st.text(st.characters(codec="utf-8"), max_size=40)  # any code point but lone surrogates


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert", "bpe", "unigram"])
def test_random_unicode_is_identical_on_both_paths(pipelines, name):
    """1,000 batches of 100 strings = 100,000 strings per pipeline."""
    fast, pure = both(lambda: Tokenizer.load(pipelines[name]))
    fast.no_padding(), pure.no_padding()

    @settings(max_examples=1000, deadline=None, database=None)
    @given(st.lists(UNICODE, min_size=100, max_size=100))
    def check(batch):
        ours = fast.encode_batch(batch, num_threads=1)
        for text, enc in zip(batch, ours, strict=True):
            assert fields(enc) == fields(pure.encode(text)), text

    check()


# ---- one-character words: the core's word cache knows WordPiece's from its vocabulary ----------------------


@pytest.mark.parametrize("max_chars", [0, 1, 100])
def test_one_character_words_under_wordpiece_are_identical_on_both_paths(max_chars):
    """The core caches every one-character token before any text (Model::single_character_tokens); characters
    that are only a continuation ("##b"), absent (unk) or not below U+10000 go the usual way."""
    from llmlab.tokenizer.normalize import BertNormalizer
    from llmlab.tokenizer.pretokenize import BertPreTokenizer
    from llmlab.tokenizer.wordpiece import WordPiece

    vocab = {"[UNK]": 0, "a": 1, "##b": 2, "中": 3, "文": 4, "ab": 5, ",": 6, "𝔸": 7, "##中": 8}

    def build():
        model = WordPiece(vocab, max_input_chars_per_word=max_chars)
        return Tokenizer(model, normalizer=BertNormalizer(), pre_tokenizer=BertPreTokenizer())

    fast, pure = both(build)
    lines = ["中文,a b ab 中b 𝔸 x 国", "b,中 中中文 a", "ab, 文 a中 𝔸𝔸"] * 700  # (enough for 2 threads)
    for text in lines[:3]:
        assert fields(fast.encode(text)) == fields(pure.encode(text)), text
    want = [fields(pure.encode(t)) for t in lines[:3]]
    for threads in (1, 2):
        got = [fields(e) for e in build().encode_batch(lines, num_threads=threads)]  # a fresh (cold) core
        assert got == want * 700


# ---- tiktoken's GPT-2 ids on the core ---------------------------------------------------------------------


@core_by_default
def test_gpt2_ids_equal_tiktoken_on_the_core(shared_data, corpus):
    tiktoken = pytest.importorskip("tiktoken")
    folder = shared_data / "tokenizer_fixtures" / "gpt2"
    try:
        tok = Tokenizer.load(folder)
    except LlmlabError as e:
        pytest.skip(f"GPT-2 files do not load here: {e}")
    assert tok.engine == "core"
    encoder = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    byte_of = {c: b for b, c in _bytes_to_unicode().items()}
    ranks = {bytes(byte_of[c] for c in token): i for token, i in encoder.items() if token != "<|endoftext|>"}
    ref = tiktoken.Encoding(
        "gpt2-fixture",
        pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks=ranks,
        special_tokens={},
    )
    for line in corpus:
        assert tok.encode(line, add_special_tokens=False).ids == ref.encode_ordinary(line), line


def _bytes_to_unicode() -> dict[int, str]:
    from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE

    return BYTE_TO_UNICODE


# ---- pickling and processes ------------------------------------------------------------------------------


def _ids(args):
    tok, text = args
    return tok.encode(text).ids, tok.engine


@core_by_default
def test_pickles_with_its_core_into_a_process_pool(pipelines, corpus):
    tok = Tokenizer.load(pipelines["bpe"])
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.engine == "core"
    assert [copy.encode(t).ids for t in corpus[:50]] == [tok.encode(t).ids for t in corpus[:50]]
    assert pickle.loads(pickle.dumps(tok.encode(corpus[0]))) == tok.encode(corpus[0])
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.map(_ids, [(tok, t) for t in corpus[:20]])
    assert got == [(tok.encode(t).ids, "core") for t in corpus[:20]]


@core_by_default
def test_a_pickled_tokenizer_keeps_its_truncation_and_padding_on_the_core(pipelines, corpus):
    tok = Tokenizer.load(pipelines["bert"])
    tok.enable_truncation(8, stride=2), tok.enable_padding(length=12)
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.engine == "core"
    for text in corpus[:20]:
        assert fields(copy.encode(text)) == fields(tok.encode(text))
    assert len(copy.encode("a").ids) == 12 and len(copy.encode("a b c d e f g h i j").overflowing) > 0


_LIGHT_CHECK = """
import json, sys
from llmlab.tokenizer import Tokenizer, core_tables
if core_tables._committed() is None:
    print("tables not committed for this Unicode data")
    sys.exit(0)
for path, numpy_free in json.loads(sys.argv[1]):
    tok = Tokenizer.load(path)
    assert tok.engine == "core", path
    tok.encode("Hello, wörld! 你好 ﬁ"), tok.encode_batch(["a b", "c d"], num_threads=2)
    assert "llmlab.tokenizer.tables.scan" not in sys.modules, path
    assert not numpy_free or "numpy" not in sys.modules, path
print("light")
"""


@core_by_default
def test_encoding_on_the_core_imports_no_numpy_and_scans_no_table(pipelines):
    """Peak memory: a table scan costs tens of MiB and numpy ~12, so the standard pipelines scan no table
    (theirs are committed, tables/core_runs.py), and BERT and Unigram import no numpy (byte-level BPE does:
    bpe/chars.py checks its merge table with it)."""
    paths = json.dumps([(pipelines["bert"], True), (pipelines["unigram"], True), (pipelines["bpe"], False)])
    run = subprocess.run([sys.executable, "-c", _LIGHT_CHECK, paths], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    if "light" not in run.stdout:
        pytest.skip(run.stdout.strip())


_LOOKUPS = ("_id_to_token", "_encoder", "_ranks")  # the Python path's, made from the stages on first use


@core_by_default
@pytest.mark.parametrize("name", ["bert", "bpe", "unigram"])
def test_the_core_path_builds_no_python_lookups_until_one_is_asked_for(pipelines, name):
    """Peak memory: a tokenizer on the core encodes and decodes without the Python path's tables (id -> token,
    its encoder, BPE's merge ranks: megabytes for a large vocabulary); asking for one builds it, and a change
    of the added tokens drops it."""
    tok = Tokenizer.load(pipelines[name])
    text = "Hello, wörld! 你好 ﬁ [CLS]"
    enc = tok.encode(text)
    tok.decode(enc.ids), tok.encode_batch([text, "a b"], num_threads=2)
    built = [k for k in _LOOKUPS if k in vars(tok) or k in vars(tok.model)]
    assert tok.engine == "core" and built == []
    assert all(tok.token_to_id(tok.id_to_token(i)) == i for i in enc.ids)
    assert "_id_to_token" in vars(tok)
    tok.add_special_tokens(["<extra>"])
    assert "_id_to_token" not in vars(tok) and tok.id_to_token(tok.token_to_id("<extra>")) == "<extra>"


# ---- bad input ------------------------------------------------------------------------------------------


def test_bad_input_is_an_error_or_a_correct_result(pipelines):
    fast, pure = both(lambda: Tokenizer.load(pipelines["bpe"]))
    with pytest.raises(LlmlabError, match="not valid UTF-8") as e:
        fast.encode(b"ab\xffcd")
    assert "\n" not in str(e.value)
    assert fast.encode(b"abc").ids == pure.encode("abc").ids
    with pytest.raises(LlmlabError, match="must be str"):
        fast.encode(12)
    for tok in (fast, pure):  # an input of a batch that is neither a text nor a (text, pair)
        for call in (tok.encode_batch, tok.encode_batch_ids):
            with pytest.raises(LlmlabError, match="must be str or UTF-8 bytes, not NoneType"):
                call(["a text", None])
            with pytest.raises(LlmlabError, match="not tuple"):
                call([("one", "pair", "too many")])
    for text in ["a\x00b", "\x00" * 10, "\ud800 lone surrogate", "a" * 100_000]:
        try:
            want = fields(pure.encode(text))
        except (LlmlabError, UnicodeError) as err:
            with pytest.raises(type(err)):
                fast.encode(text)
        else:
            assert fields(fast.encode(text)) == want


@pytest.mark.slow
def test_a_50_mb_line(pipelines):
    tok = Tokenizer.load(pipelines["bert"])
    tok.no_truncation(), tok.no_padding()
    words = 10_000_000
    enc = tok.encode("word " * words)
    assert len(enc) == words + 2 and enc.offsets[-2] == (5 * words - 5, 5 * words - 1)


def test_corrupt_tokenizer_json_is_a_one_line_error(pipelines, tmp_path):
    good = json.loads(Path(pipelines["bpe"]).read_text(encoding="utf-8"))
    bad = {
        "truncated.json": Path(pipelines["bpe"]).read_text(encoding="utf-8")[:5000],
        "merge.json": json.dumps({**good, "model": {**good["model"], "merges": [["zz", "qq"]]}}),
        "vocab.json": json.dumps({**good, "model": {**good["model"], "vocab": {"a": "x"}}}),
    }
    for name, content in bad.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        with pytest.raises(LlmlabError) as e:
            Tokenizer.load(tmp_path / name)
        assert "\n" not in str(e.value) and name in str(e.value)
