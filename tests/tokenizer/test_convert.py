"""Converters: SentencePiece .model, tiktoken ranks and GPT-2's files give their libraries' ids (and HF's offsets).

References built from the very same files: `sentencepiece.SentencePieceProcessor`, a `tiktoken.Encoding` from
the ranks, HF `tokenizers`' `BPE.from_file`. Bad input is one stderr line, exit 2, nothing written.
"""

from __future__ import annotations

import base64
import json
import struct

import pytest

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.tokenizer import Tokenizer
from llmlab.tokenizer.convert import PATTERNS, from_gpt2, from_spm, from_tiktoken
from llmlab.tokenizer.spm_model import parse_spm_model, read_spm_model

hf = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def fixtures(shared_data):
    return shared_data / "tokenizer_fixtures"


@pytest.fixture(scope="module")
def botchan(fixtures) -> list[str]:
    text = (fixtures / "sentencepiece" / "botchan.txt").read_bytes().decode("utf-8")
    return text.split("\n")  # every line keeps its '\r', a piece of the model


HARD = ["", "   ", "  two  spaces  ", "x   ", "\tTab ｈｅｌｌｏ ①  end", "ﬁne café naïve 日本語"]


def test_spm_model_fields_are_read(fixtures):
    model = read_spm_model(fixtures / "sentencepiece" / "test_model.model")
    assert len(model.pieces) == 1000 and model.model_type == "unigram" and not model.byte_fallback
    assert model.pieces[:3] == [("<unk>", 0.0, "unknown"), ("<s>", 0.0, "control"), ("</s>", 0.0, "control")]
    assert (
        model.add_dummy_prefix and model.remove_extra_whitespaces and len(model.precompiled_charsmap) > 1000
    )


def test_from_spm_gives_sentencepiece_ids_on_every_botchan_line(fixtures, botchan, tmp_path):
    spm = pytest.importorskip("sentencepiece")
    path = fixtures / "sentencepiece" / "test_model.model"
    ref = spm.SentencePieceProcessor(model_file=str(path))
    ours = from_spm(path)
    for line in botchan + HARD:
        assert ours.encode(line).ids == ref.encode(line), repr(line)
    saved = tmp_path / "tok.json"
    ours.save(saved)  # the file it writes: the same ids in llmlab and in HF, offsets too
    again, theirs = Tokenizer.load(saved), hf.Tokenizer.from_file(str(saved))
    for line in botchan[::7] + HARD:
        a, b = again.encode(line), theirs.encode(line)
        assert (a.ids, a.offsets) == (b.ids, [tuple(o) for o in b.offsets]) and a.ids == ref.encode(line)
    assert Tokenizer.load(path).to_hf() == ours.to_hf()  # Tokenizer.load reads .model files directly


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_from_spm_models_trained_by_sentencepiece(botchan, tmp_path, kind):
    spm = pytest.importorskip("sentencepiece")
    prefix = tmp_path / kind
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(botchan[:3000]),
        model_prefix=str(prefix),
        vocab_size=700,
        model_type=kind,
        byte_fallback=True,
        character_coverage=0.98,
        minloglevel=3,
        num_threads=1,
        user_defined_symbols=["<sep>"],
    )
    ref = spm.SentencePieceProcessor(model_file=f"{prefix}.model")
    ours = from_spm(f"{prefix}.model")
    lines = botchan[3000:] + HARD + ["a <sep> b 日本 ☃☃", "Ω≈ç√∫"]  # (glued to text, <sep> differs)
    for line in lines:
        assert ours.encode(line).ids == ref.encode(line), repr(line)
        assert ours.decode(ref.encode(line)) == ref.decode(ref.encode(line)), repr(line)


@pytest.fixture(scope="module")
def gpt2_encoding(fixtures):
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    g = fixtures / "gpt2"
    ranks = data_gym_to_mergeable_bpe_ranks(str(g / "vocab.bpe"), str(g / "encoder.json"))
    return tiktoken.Encoding(
        "gpt2_from_files",
        pat_str=PATTERNS["gpt2"],
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


@pytest.fixture(scope="module")
def mixed_lines(shared_data, botchan) -> list[str]:
    with open(shared_data / "chnsenticorp_htl" / "dev.csv", encoding="utf-8") as f:
        zh = [line.split(",")[0] for line in f][1:150]
    return botchan[:1200] + zh + ["hello  world \n\n x", "it's   3.14 ☃ <|endoftext|> end", "  ", ""]


def test_gpt2_files_give_tiktoken_ids_and_hf_offsets(fixtures, gpt2_encoding, mixed_lines):
    g = fixtures / "gpt2"
    ours = from_gpt2(g / "encoder.json", g / "vocab.bpe")
    ref = hf.Tokenizer(hf.models.BPE.from_file(str(g / "encoder.json"), str(g / "vocab.bpe")))
    ref.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    ref.post_processor = hf.processors.ByteLevel(trim_offsets=False)
    ref.decoder = hf.decoders.ByteLevel()
    ref.add_special_tokens(["<|endoftext|>"])
    for line in mixed_lines:
        a, b = ours.encode(line), ref.encode(line)
        assert a.ids == gpt2_encoding.encode(line, allowed_special="all") == b.ids, repr(line)
        assert a.offsets == [tuple(o) for o in b.offsets], repr(line)
        assert ours.decode(a.ids, skip_special_tokens=False) == line
    assert Tokenizer.load(g).to_hf() == ours.to_hf()  # a folder with encoder.json + vocab.bpe loads directly


def test_tiktoken_ranks_give_tiktoken_ids(gpt2_encoding, mixed_lines, tmp_path):
    path = tmp_path / "gpt2.tiktoken"
    ranks = gpt2_encoding._mergeable_ranks
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in ranks.items()))
    ours = from_tiktoken(path, "gpt2")
    theirs = hf.Tokenizer.from_str(json.dumps(ours.to_hf()))
    for line in mixed_lines:
        assert ours.encode(line).ids == gpt2_encoding.encode_ordinary(line) == theirs.encode(line).ids, repr(
            line
        )
    assert Tokenizer.load(path, pattern=PATTERNS["gpt2"]).to_hf() == ours.to_hf()
    with pytest.raises(LlmlabError, match="needs a split pattern"):
        Tokenizer.load(
            path.with_name("x.tiktoken").write_bytes(path.read_bytes()) and path.with_name("x.tiktoken")
        )


# ---- the CLI and bad input -------------------------------------------------------------------------------


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_convert_from_spm_and_gpt2(capsys, fixtures, tmp_path):
    out = tmp_path / "spm.json"
    code, stdout, _ = run(
        capsys,
        "tokenizer",
        "convert",
        "--from-spm",
        str(fixtures / "sentencepiece" / "test_model.model"),
        "-o",
        str(out),
    )
    assert code == 0 and "unigram tokenizer, vocab 1000" in stdout
    assert Tokenizer.load(out).encode("I was born").tokens == [
        "▁I",
        "▁was",
        "▁b",
        "or",
        "n",
    ]  # as sentencepiece
    g = fixtures / "gpt2"
    code, stdout, _ = run(
        capsys,
        "tokenizer",
        "convert",
        "--from-gpt2",
        str(g / "encoder.json"),
        str(g / "vocab.bpe"),
        "-o",
        str(tmp_path / "gpt2.json"),
    )
    assert code == 0 and "bpe tokenizer, vocab 50257" in stdout


def corrupt_models(good: bytes) -> dict[str, bytes]:
    return {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "garbage": b"\xff" * 64,
        "bad wire type": b"\x0f" + good,
        "no pieces": b"\x1a\x02\x18\x01",  # a NormalizerSpec only
        "bad charsmap": b"\x0a\x05\x0a\x01a\x15\x00" + b"\x1a\x05\x12\x03\x04\x00\x00",
    }


@pytest.mark.parametrize(
    "name", ["truncated", "empty", "garbage", "bad wire type", "no pieces", "bad charsmap"]
)
def test_bad_model_files_are_one_line_errors_and_write_nothing(capsys, fixtures, tmp_path, name):
    good = (fixtures / "sentencepiece" / "test_model.model").read_bytes()
    bad = tmp_path / "bad.model"
    bad.write_bytes(corrupt_models(good)[name])
    out = tmp_path / "tok.json"
    code, stdout, err = run(capsys, "tokenizer", "convert", "--from-spm", str(bad), "-o", str(out))
    assert code == 2 and not out.exists() and stdout == ""
    assert len(err.strip().splitlines()) == 1 and "bad.model" in err or "charsmap" in err, err
    with pytest.raises(LlmlabError):
        from_spm(bad)


def test_bad_tokenizer_json_components_are_one_line_errors(capsys, fixtures, tmp_path):
    d = json.loads((fixtures / "sentencepiece" / "test_model.hf.json").read_text(encoding="utf-8"))
    cases = {
        "unknown normalizer": (
            "normalizer",
            {"type": "Transliterate"},
            "unsupported normalizer 'Transliterate'",
        ),
        "unknown pre-tokenizer": ("pre_tokenizer", {"type": "Words"}, "unsupported pre_tokenizer 'Words'"),
        "unknown decoder": ("decoder", {"type": "Speech"}, "unsupported decoder 'Speech'"),
        "charsmap not base64": (
            "normalizer",
            {"type": "Precompiled", "precompiled_charsmap": "@@"},
            "base64",
        ),
        "charsmap too short": (
            "normalizer",
            {"type": "Precompiled", "precompiled_charsmap": "AAA="},
            "too short",
        ),
        "charsmap trie too long": (
            "normalizer",
            {
                "type": "Precompiled",
                "precompiled_charsmap": base64.b64encode(struct.pack("<I", 400)).decode(),
            },
            "trie has 400 bytes",
        ),
    }
    for stage, value, message in cases.values():
        path = tmp_path / "tok.json"
        path.write_text(json.dumps({**d, stage: value}), encoding="utf-8")
        code, stdout, err = run(capsys, "tokenizer", "inspect", str(path))
        assert code == 2 and stdout == "" and message in err and len(err.strip().splitlines()) == 1, err


def test_read_spm_model_names_the_file(tmp_path):
    with pytest.raises(LlmlabError, match="nothing.model: cannot read"):
        read_spm_model(tmp_path / "nothing.model")
    with pytest.raises(LlmlabError, match="x: truncated"):
        parse_spm_model(b"\x0a\x10abc", "x")
