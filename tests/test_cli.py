"""The command line: every command has --help; bad input gives one clear line, exit 2, and writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llmlab.cli import main
from llmlab.stdlib_text import demo_corpus

COMMANDS = [
    [],
    ["demo"],
    ["tokenizer"],
    ["tokenizer", "train"],
    ["tokenizer", "encode"],
    ["tokenizer", "decode"],
    ["tokenizer", "inspect"],
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(demo_corpus()[:3000]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """One small tokenizer of each family, trained through the CLI."""
    out = tmp_path_factory.mktemp("tok")
    paths = {}
    for model in ("wordpiece", "bpe", "unigram"):
        paths[model] = out / f"{model}.json"
        args = [
            "tokenizer",
            "train",
            "--model",
            model,
            "--vocab-size",
            "600",
            "--quiet",
            "-o",
            str(paths[model]),
        ]
        assert main([*args, str(corpus)]) == 0
    return paths


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "llmlab")
def test_every_command_has_help(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and "Usage" in out


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "llmlab", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "tokenizer" in result.stdout


@pytest.mark.parametrize("model", ["wordpiece", "bpe", "unigram"])
def test_trained_tokenizer_encodes_like_hf(capsys, trained, corpus, model, tmp_path):
    hf = pytest.importorskip("tokenizers").Tokenizer.from_file(str(trained[model]))
    lines = corpus.read_text(encoding="utf-8").splitlines()[:300]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run(
        capsys, "tokenizer", "encode", "--tokenizer", str(trained[model]), "--input", str(src)
    )
    assert code == 0, err
    ours = [list(map(int, row.split())) for row in out.splitlines()]
    assert ours == [e.ids for e in hf.encode_batch(lines)]


def test_encode_decode_round_trip_through_files(capsys, trained, tmp_path):
    text = ["byte-level BPE keeps every byte: naïve café, 中文, emoji 🙂", "second line"]
    src, ids, back = tmp_path / "in.txt", tmp_path / "ids.txt", tmp_path / "back.txt"
    src.write_text("\n".join(text) + "\n", encoding="utf-8")
    tok = str(trained["bpe"])
    assert (
        run(capsys, "tokenizer", "encode", "--tokenizer", tok, "--input", str(src), "--output", str(ids))[0]
        == 0
    )
    assert (
        run(capsys, "tokenizer", "decode", "--tokenizer", tok, "--input", str(ids), "--output", str(back))[0]
        == 0
    )
    assert back.read_text(encoding="utf-8").splitlines() == text


def test_encode_formats(capsys, trained, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello world\n", encoding="utf-8")
    tok = str(trained["wordpiece"])
    _, tokens, _ = run(
        capsys, "tokenizer", "encode", "--tokenizer", tok, "--input", str(src), "--format", "tokens"
    )
    assert tokens.split()[0] == "[CLS]" and tokens.split()[-1] == "[SEP]"
    _, jsonl, _ = run(
        capsys, "tokenizer", "encode", "--tokenizer", tok, "--input", str(src), "--format", "jsonl"
    )
    row = json.loads(jsonl)
    assert set(row) == {"ids", "tokens", "offsets"} and len(row["ids"]) == len(row["offsets"])


def test_inspect_shows_fingerprint(capsys, trained):
    code, out, _ = run(capsys, "tokenizer", "inspect", str(trained["unigram"]))
    assert code == 0 and "model:          unigram" in out and "fingerprint:" in out


# --- bad input: one line on stderr naming the file, exit 2, nothing half-written -----------------------


def assert_clean_failure(code, err, *needles):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("llmlab: error: ")
    for needle in needles:
        assert needle in err, err


def test_non_utf8_corpus_names_file_and_offset(capsys, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("plain ascii line\ncaf\xe9 au lait\n".encode("latin-1"))
    out = tmp_path / "tok.json"
    code, _, err = run(
        capsys, "tokenizer", "train", "--vocab-size", "300", "--quiet", "-o", str(out), str(bad)
    )
    assert_clean_failure(code, err, str(bad), "byte offset 20", "--errors replace")
    assert not out.exists()
    code, _, err = run(
        capsys,
        "tokenizer",
        "train",
        "--vocab-size",
        "300",
        "--quiet",
        "--errors",
        "replace",
        "-o",
        str(out),
        str(bad),
    )
    assert code == 0, err
    assert out.exists()


def test_empty_corpus(capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    out = tmp_path / "tok.json"
    code, _, err = run(capsys, "tokenizer", "train", "--quiet", "-o", str(out), str(empty))
    assert_clean_failure(code, err, str(empty), "empty")
    assert not out.exists()


@pytest.mark.parametrize("model", ["wordpiece", "bpe", "unigram"])
def test_vocab_smaller_than_alphabet(capsys, corpus, tmp_path, model):
    out = tmp_path / "tok.json"
    code, _, err = run(
        capsys,
        "tokenizer",
        "train",
        "--model",
        model,
        "--vocab-size",
        "10",
        "--quiet",
        "-o",
        str(out),
        str(corpus),
    )
    assert_clean_failure(code, err, "vocab")
    assert not out.exists()


def test_missing_output_folder_fails_before_training(capsys, corpus, tmp_path):
    out = tmp_path / "no" / "such" / "tok.json"
    code, _, err = run(capsys, "tokenizer", "train", "--quiet", "-o", str(out), str(corpus))
    assert_clean_failure(code, err, str(out.parent), "does not exist")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"version": "1.0", "model": {"type": "WordPiece", "vocab": {"a"', "corrupt or truncated"),
        ("not json at all", "corrupt or truncated"),
        ('{"version": "1.0", "model": {"type": "Foo", "vocab": {}}}', "Foo"),
        ('{"version": "1.0", "normalizer": null}', "model"),
    ],
    ids=["truncated", "corrupt", "unknown-model-type", "no-model"],
)
def test_bad_tokenizer_json(capsys, tmp_path, content, needle):
    path = tmp_path / "tok.json"
    path.write_text(content, encoding="utf-8")
    code, _, err = run(capsys, "tokenizer", "inspect", str(path))
    assert_clean_failure(code, err, str(path), needle)


def test_decode_rejects_non_ids(capsys, trained, tmp_path):
    src = tmp_path / "ids.txt"
    src.write_text("1 2 3\n4 x 5\n", encoding="utf-8")
    out = tmp_path / "text.txt"
    code, _, err = run(
        capsys,
        "tokenizer",
        "decode",
        "--tokenizer",
        str(trained["bpe"]),
        "--input",
        str(src),
        "--output",
        str(out),
    )
    assert_clean_failure(code, err, f"{src}:2", "integer ids")
    assert not out.exists()


def test_convert_both_ways(capsys, minilm_dir, tmp_path):
    code, out, err = run(capsys, "convert", "--from-hf", str(minilm_dir), "-o", str(tmp_path / "ours"))
    assert code == 0, err
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "ours").iterdir()
    }
    code, out, err = run(capsys, "convert", "--to-hf", str(tmp_path / "ours"), "-o", str(tmp_path / "hf"))
    assert code == 0, err
    assert (tmp_path / "hf" / "config.json").exists()


def test_convert_needs_exactly_one_direction(capsys, tmp_path):
    code, _, err = run(capsys, "convert", "-o", str(tmp_path / "x"))
    assert_clean_failure(code, err, "exactly one of --from-hf")
