"""Corpus input: files, folders and globs, plain or compressed, read as the same stream of lines."""

from __future__ import annotations

import bz2
import gzip

import pytest

from llmlab.errors import LlmlabError
from llmlab.tokenizer.corpus import corpus_files, read_corpus

TEXT = "".join(f"line {i}: naïve café 中文 {'x' * (i % 50)}\n" for i in range(5000)).encode("utf-8")


def compressors():
    yield ".gz", gzip.compress
    yield ".bz2", bz2.compress
    zstd = pytest.importorskip("zstandard")
    yield ".zst", zstd.ZstdCompressor(write_checksum=True).compress  # as the zstd command line writes


def write_all(folder):
    (folder / "plain.txt").write_bytes(TEXT)
    for suffix, compress in compressors():
        (folder / f"c{suffix}").write_bytes(compress(TEXT))


def test_compressed_files_read_as_the_plain_one(tmp_path):
    write_all(tmp_path)
    plain = list(read_corpus([tmp_path / "plain.txt"]))
    assert len(plain) == 5000 and plain[1] == "line 1: naïve café 中文 x"
    for suffix in (".gz", ".bz2", ".zst"):
        assert list(read_corpus([tmp_path / f"c{suffix}"])) == plain


def test_zstd_with_several_frames(tmp_path):
    zstd = pytest.importorskip("zstandard")
    c = zstd.ZstdCompressor(write_checksum=True)
    (tmp_path / "f.zst").write_bytes(c.compress(TEXT[:70001]) + c.compress(TEXT[70001:]))
    assert list(read_corpus([tmp_path / "f.zst"])) == TEXT.decode().splitlines()


def test_folders_and_globs_in_a_fixed_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("b\n")
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "sub" / "c.txt").write_text("c\n")
    (tmp_path / ".hidden").write_text("h\n")
    assert list(read_corpus([tmp_path])) == ["a", "b", "c"]
    assert list(read_corpus([str(tmp_path / "*.txt"), tmp_path / "sub" / "c.txt"])) == ["a", "b", "c"]
    assert corpus_files([str(tmp_path / "**" / "*.txt")]) == sorted(tmp_path.rglob("*.txt"))
    assert list(read_corpus([tmp_path / "a.txt"], repeat=3)) == ["a", "a", "a"]


@pytest.mark.parametrize("item", ["missing.txt", "nothing-*.txt"])
def test_missing_inputs(tmp_path, item):
    with pytest.raises(LlmlabError, match="no such file|matches no file"):
        list(read_corpus([tmp_path / item]))


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zst"])
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_compressed_file_failing_mid_stream(tmp_path, suffix, damage):
    compress = dict(compressors())[suffix]
    data = compress(TEXT * 4)
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]
    else:
        middle = len(data) // 2
        data = data[:middle] + bytes(b ^ 0x55 for b in data[middle : middle + 64]) + data[middle + 64 :]
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(data)
    lines = read_corpus([path])
    with pytest.raises(LlmlabError, match="compressed stream is (truncated|corrupt)") as e:
        for _ in lines:
            pass
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_invalid_utf8_inside_a_compressed_file(tmp_path):
    (tmp_path / "l.gz").write_bytes(gzip.compress("ok\ncaf\xe9\n".encode("latin-1")))
    with pytest.raises(LlmlabError, match="not UTF-8 at byte offset 6"):
        list(read_corpus([tmp_path / "l.gz"]))
    assert list(read_corpus([tmp_path / "l.gz"], errors="replace")) == ["ok", "caf\ufffd"]
