"""A very long line is encoded in chunks cut at pre-tokenizer boundaries: the same ids, tokens and offsets as
encoding it whole (and as HF `tokenizers`), in bounded memory."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmlab.cli import main
from llmlab.stdlib_text import demo_corpus
from llmlab.tokenizer.long_lines import chunking_is_exact, cut_points, encode_pieces
from llmlab.tokenizer.pipeline import Tokenizer


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("long-lines")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(demo_corpus()[:1500]) + "\n中文的句子也在这里。\n", encoding="utf-8")
    paths = {}
    for model in ("wordpiece", "bpe", "unigram"):
        paths[model] = folder / f"{model}.json"
        argv = [
            "tokenizer",
            "train",
            "--model",
            model,
            "--vocab-size",
            "500",
            "--quiet",
            "-o",
            str(paths[model]),
        ]
        assert main([*argv, str(corpus)]) == 0
    return paths


def long_line(n_words: int, seed: int = 0) -> str:
    """Real words joined by single and double spaces, tabs and punctuation, some Chinese: one line."""
    rng = random.Random(seed)
    words = " ".join(demo_corpus()[:300]).split() + ["中文", "naïve", "café", "x", "..."]
    seps = [" "] * 12 + ["  ", "\t", " , ", "   "]
    return "".join(rng.choice(words) + rng.choice(seps) for _ in range(n_words))


def joined(pieces) -> tuple[list, list, list]:
    pieces = list(pieces)
    return tuple([x for p in pieces for x in p[k]] for k in range(3))


@pytest.mark.parametrize("model", ["wordpiece", "bpe", "unigram"])
@pytest.mark.parametrize("special_tokens", [True, False])
def test_chunks_give_the_whole_lines_encoding(tokenizers, model, special_tokens):
    tok = Tokenizer.load(tokenizers[model])
    assert chunking_is_exact(tok)
    line = long_line(3000)
    whole = tok.encode(line, add_special_tokens=special_tokens)
    ids, tokens, offsets = joined(encode_pieces(tok, line, special_tokens, chunk=200))
    assert ids == whole.ids and tokens == whole.tokens
    assert offsets == [tuple(o) for o in whole.offsets]


@given(st.text(alphabet=st.sampled_from("ab é中 \t,."), max_size=400), st.integers(4, 40))
def test_cut_points_cover_the_line_and_cut_before_a_space(text, chunk):
    spans = list(cut_points(text, chunk))
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    for _, end in spans[:-1]:
        assert text[end] == " " and not text[end - 1].isspace() and not text[end + 1].isspace()


def test_a_tokenizer_with_truncation_is_encoded_whole(tokenizers):
    tok = Tokenizer.load(tokenizers["bpe"])
    tok.enable_truncation(16)
    assert not chunking_is_exact(tok)
    assert len(joined(encode_pieces(tok, long_line(2000), chunk=100))[0]) == 16


@pytest.mark.parametrize("model", ["wordpiece", "bpe", "unigram"])
def test_cli_encodes_a_long_line_like_hf(tokenizers, tmp_path, capsys, model):
    hf = pytest.importorskip("tokenizers").Tokenizer.from_file(str(tokenizers[model]))
    line = long_line(40_000, seed=1)  # about 250,000 characters: cut into pieces by the CLI
    assert len(line) > 2 * 65536
    src = tmp_path / "line.txt"
    src.write_text(f"short line first\n{line}\n", encoding="utf-8")
    argv = ["tokenizer", "encode", "--tokenizer", str(tokenizers[model]), "--input", str(src)]
    assert main([*argv, "--format", "jsonl"]) == 0
    rows = [json.loads(row) for row in capsys.readouterr().out.splitlines()]
    reference = hf.encode(line)
    assert rows[1]["ids"] == reference.ids and rows[1]["tokens"] == reference.tokens
    assert [tuple(o) for o in rows[1]["offsets"]] == [
        tuple(o) for o in Tokenizer.load(tokenizers[model]).encode(line).offsets
    ]
    assert main([*argv, "--format", "ids"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == " ".join(map(str, reference.ids))


MEASURE = """
import sys
def status(field):
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith(field + ":")).split()[1]) / 1024
from llmlab.cli import main
from llmlab.tokenizer.pipeline import Tokenizer
Tokenizer.load(sys.argv[1]).encode("warm up the imports")
base = status("VmRSS")
assert main(["tokenizer", "encode", "--tokenizer", sys.argv[1], "--input", sys.argv[2], "--output", sys.argv[3],
             "--format", "jsonl"]) == 0
print(status("VmHWM") - base)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_2_mb_line_encodes_in_bounded_memory(tokenizers, tmp_path):
    """Whole, a line holds all its pre-tokens, token strings and offsets at once (issue 14 measured 7.2 GB
    for a 50 MB line with WordPiece); in chunks the peak above the warmed-up process stays under 100 MiB
    whatever the length. (The 50 MB figure: bench/long_line.py.)"""
    line = long_line(320_000, seed=2)[:2_000_000]
    src, out = tmp_path / "line.txt", tmp_path / "out.jsonl"
    src.write_text(line + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tokenizers["wordpiece"]), str(src), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    added_mib = float(result.stdout.strip().splitlines()[-1])
    assert added_mib < 100, added_mib
    assert json.loads(out.read_text(encoding="utf-8"))["ids"][0] == Tokenizer.load(
        tokenizers["wordpiece"]
    ).token_to_id("[CLS]")
