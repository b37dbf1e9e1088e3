"""`llmlab tokenizer count` and `train --from-counts`: shards sum to one pass; bad input is one line, no file."""

from __future__ import annotations

import bz2
import gzip
import itertools
import json

import pytest

from llmlab.cli import main
from llmlab.tokenizer.countfile import CountFile


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def count(capsys, source, out, *options):
    """`llmlab tokenizer count source -o out`, which must succeed."""
    code, stdout, err = run(capsys, "tokenizer", "count", "--quiet", *options, source, "-o", out)
    assert code == 0 and "distinct words" in stdout, err


def assert_clean_failure(code, err, *needles):
    assert code == 2 and err.count("\n") == 1 and err.startswith("llmlab: error: "), err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    """6,000 lines of English and Chinese, whole and in 4 shards (plain, .gz, .bz2, .zst when available)."""
    folder = tmp_path_factory.mktemp("corpus")
    with open(shared_data / "tiny_shakespeare" / "train.txt", encoding="utf-8") as en:
        lines = list(itertools.islice(en, 4000))
    with open(shared_data / "zh_poetry" / "valid.txt", encoding="utf-8") as zh:
        lines += list(itertools.islice(zh, 2000))
    text = "".join(lines).encode("utf-8")
    (folder / "all.txt").write_bytes(text)
    shards = folder / "shards"
    shards.mkdir()
    quarter = len(lines) // 4
    parts = ["".join(lines[i * quarter : (i + 1) * quarter if i < 3 else None]).encode() for i in range(4)]
    (shards / "0.txt").write_bytes(parts[0])
    (shards / "1.txt.gz").write_bytes(gzip.compress(parts[1]))
    (shards / "2.txt.bz2").write_bytes(bz2.compress(parts[2]))
    try:
        import zstandard

        (shards / "3.txt.zst").write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(parts[3]))
    except ImportError:
        (shards / "3.txt").write_bytes(parts[3])
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bpe", "unigram"])
def test_four_shards_summed_train_as_one_pass(capsys, corpus, tmp_path, model):
    shards = sorted((corpus / "shards").iterdir())
    counts = []
    for i, shard in enumerate(shards):
        counts.append(tmp_path / f"{i}.counts")
        count(capsys, shard, counts[-1], "--model", model, "--workers", 1)
    from_counts = [x for c in counts for x in ("--from-counts", c)]
    vocab = 1200 if model == "bpe" else 5000  # unigram holds every required Chinese character
    common = ["--model", model, "--vocab-size", vocab, "--quiet", "--workers", 1]
    code, _, err = run(capsys, "tokenizer", "train", *common, *from_counts, "-o", tmp_path / "shards.json")
    assert code == 0, err
    code, _, err = run(capsys, "tokenizer", "train", *common, corpus / "all.txt", "-o", tmp_path / "one.json")
    assert code == 0, err
    sharded = json.loads((tmp_path / "shards.json").read_text())
    assert sharded == json.loads((tmp_path / "one.json").read_text())
    assert len(sharded["model"]["vocab"]) == vocab
    # the folder as input: the same words as the one file
    count(capsys, corpus / "shards", tmp_path / "f.counts", "--model", model)
    count(capsys, corpus / "all.txt", tmp_path / "a.counts", "--model", model)
    assert (tmp_path / "f.counts").read_bytes() == (tmp_path / "a.counts").read_bytes()


def test_max_memory_gives_the_same_file(capsys, corpus, tmp_path):
    count(capsys, corpus / "all.txt", tmp_path / "a.counts", "--workers", 1)
    count(capsys, corpus / "all.txt", tmp_path / "b.counts", "--workers", 1, "--max-memory", "21M")
    assert (tmp_path / "a.counts").read_bytes() == (tmp_path / "b.counts").read_bytes()
    with CountFile(tmp_path / "a.counts") as f:
        assert f.pipeline["pre_tokenizer"]["type"] == "ByteLevel"
        assert sum(n for _, n in f.items()) > 40_000


def test_count_file_from_another_pretokenizer(capsys, corpus, tmp_path):
    counts = tmp_path / "u.counts"
    count(capsys, corpus / "all.txt", counts, "--model", "unigram")
    out = tmp_path / "tok.json"
    code, _, err = run(
        capsys, "tokenizer", "train", "--model", "bpe", "--quiet", "--from-counts", counts, "-o", out
    )
    assert_clean_failure(code, err, str(counts), "another normalizer/pre-tokenizer", "Metaspace")
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_count_file(capsys, corpus, tmp_path, damage):
    counts = tmp_path / "c.counts"
    count(capsys, corpus / "all.txt", counts)
    data = counts.read_bytes()
    middle = len(data) // 2
    data = (
        data[:middle]
        if damage == "truncated"
        else data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]
    )
    counts.write_bytes(data)
    out = tmp_path / "tok.json"
    code, _, err = run(capsys, "tokenizer", "train", "--quiet", "--from-counts", counts, "-o", out)
    assert_clean_failure(code, err, str(counts), "truncated" if damage == "truncated" else "CRC")
    assert not out.exists()


def test_max_memory_below_the_minimum(capsys, corpus, tmp_path):
    for command in ("count", "train"):
        out = tmp_path / f"{command}.out"
        code, _, err = run(
            capsys, "tokenizer", command, "--quiet", "--max-memory", "1M", corpus / "all.txt", "-o", out
        )
        assert_clean_failure(code, err, "--max-memory", "below the workable minimum")
        assert not out.exists()
    code, _, err = run(capsys, "tokenizer", "count", "--max-memory", "lots", corpus / "all.txt", "-o", out)
    assert_clean_failure(code, err, "not a size")


def test_compressed_file_failing_mid_stream(capsys, corpus, tmp_path):
    data = gzip.compress((corpus / "all.txt").read_bytes())
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(data[: len(data) * 3 // 4])
    for command in ("count", "train"):
        out = tmp_path / f"{command}.out"
        code, _, err = run(capsys, "tokenizer", command, "--quiet", corpus / "all.txt", bad, "-o", out)
        assert_clean_failure(code, err, str(bad), "compressed stream is truncated")
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir()] == ["bad.txt.gz"]  # no temporary file left behind


def test_corpus_and_counts_together_or_neither(capsys, corpus, tmp_path):
    out = tmp_path / "tok.json"
    code, _, err = run(capsys, "tokenizer", "train", "--quiet", "-o", out)
    assert_clean_failure(code, err, "either CORPUS files or --from-counts")
    code, _, err = run(
        capsys,
        "tokenizer",
        "train",
        "--quiet",
        corpus / "all.txt",
        "--from-counts",
        tmp_path / "x.counts",
        "-o",
        out,
    )
    assert_clean_failure(code, err, "either CORPUS files or --from-counts")


def test_unigram_sample_is_reported(capsys, corpus, tmp_path):
    counts = tmp_path / "u.counts"
    count(capsys, corpus / "all.txt", counts, "--model", "unigram")
    args = ["tokenizer", "train", "--model", "unigram", "--vocab-size", 4500, "--from-counts", counts]
    code, _, err = run(capsys, *args, "--quiet", "--sample", 8000, "--seed", 3, "-o", tmp_path / "a.json")
    assert code == 0, err
    assert "unigram: training on a sample of" in err and "of 19,292 words" in err and "seed 3" in err
    kept = int(err.split("sample of ")[1].split(" ")[0].replace(",", ""))
    assert abs(kept - 8000) < 400  # binomial thinning of 19,292 words: the standard deviation is about 70
    assert run(capsys, *args, "--quiet", "--sample", 8000, "--seed", 3, "-o", tmp_path / "b.json")[0] == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    out = tmp_path / "bpe.json"
    code, _, err = run(
        capsys, "tokenizer", "train", "--quiet", corpus / "all.txt", "--sample", 100, "-o", out
    )
    assert_clean_failure(code, err, "--sample is for unigram")
    assert not out.exists()
