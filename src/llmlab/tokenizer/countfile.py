"""Word-count files: the exact counts of a corpus's pre-tokenized words, compact, sorted, checked.

The format (version 1, little-endian throughout; `tokenizer count` writes it, `tokenizer train --from-counts`
reads it, and the spilled runs of `counting.py` use it too):

    magic     8 bytes  b"LLMLABWC"
    header    u32 length, then that many bytes of UTF-8 JSON: {"format": 1, "fingerprint": ..., "pipeline":
              {"normalizer": ..., "pre_tokenizer": ...}} (the HF tokenizer.json sections that made the words)
    blocks    each: u32 n (words, 1..65536), u32 b (text bytes), n x i64 counts, n x u32 UTF-8 byte lengths,
              b bytes of UTF-8 text (the n words one after the other), u32 CRC-32 of the block from n on
    end       u32 0, u64 number of words, u64 CRC-32 of the header (zero-extended)

The words are the model's symbols (byte-level BPE: already mapped to the 256 printable characters), each
once, strictly ascending by code point (which is also their UTF-8 byte order), so files merge in one
streaming pass. A count is a signed 64-bit integer, 1 to 2^63 - 1: HF `tokenizers` counts pairs in 32 bits
(huggingface/tokenizers #1170), which a large corpus overflows. The fingerprint is the sha256 of the
canonical JSON of the pipeline (`llmlab.io.fingerprint`): a count file made by another normalizer or
pre-tokenizer is refused. A truncated file (no end record), a damaged block (CRC), words out of order or a
header from another program give a one-line `LlmlabError`.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from llmlab.errors import LlmlabError
from llmlab.io import atomic_open, fingerprint

MAGIC = b"LLMLABWC"
FORMAT = 1
BLOCK_WORDS = 1 << 16
MAX_COUNT = (1 << 63) - 1
_U32 = struct.Struct("<I")
_END = struct.Struct("<QQ")


def pipeline_fingerprint(pipeline: dict[str, Any]) -> str:
    """The fingerprint of {"normalizer": ..., "pre_tokenizer": ...} (HF tokenizer.json sections)."""
    return fingerprint({"normalizer": pipeline.get("normalizer"), "pre_tokenizer": pipeline["pre_tokenizer"]})


def write_counts(path: str | os.PathLike, items: Iterable[tuple[str, int]], pipeline: dict[str, Any]) -> int:
    """Write sorted (word, count) pairs as a count file, atomically; returns the number of words.

    Raises:
        LlmlabError: a count outside 1 .. 2^63 - 1, or words not strictly ascending.
    """
    with atomic_open(path, "wb") as f:
        return write_stream(f, items, pipeline, str(path))


def write_stream(
    f: BinaryIO,
    items: Iterable[tuple[str, int]],
    pipeline: dict[str, Any],
    name: str,
    block_words: int = BLOCK_WORDS,
) -> int:
    """`write_counts` to an open binary file (a spilled run, or bytes sent back by a cluster worker); a
    merge reads one block of each input at a time, so runs merged many at once use small blocks."""
    header = json.dumps(
        {"format": FORMAT, "fingerprint": pipeline_fingerprint(pipeline), "pipeline": pipeline},
        ensure_ascii=False,
        sort_keys=True,
    ).encode("utf-8")
    f.write(MAGIC + _U32.pack(len(header)) + header)
    words, block, last = 0, [], None
    for word, count in items:
        if last is not None and word <= last:
            raise LlmlabError(f"{name}: words must be strictly ascending ({last!r} then {word!r})")
        if not 0 < count <= MAX_COUNT:
            raise LlmlabError(f"{name}: the count of {word!r} ({count}) is outside 1 .. 2^63 - 1")
        block.append((word, count))
        last = word
        if len(block) == block_words:
            words += _write_block(f, block)
            block = []
    words += _write_block(f, block) if block else 0
    f.write(_U32.pack(0) + _END.pack(words, zlib.crc32(header)))
    return words


def _write_block(f: BinaryIO, block: list[tuple[str, int]]) -> int:
    encoded = [word.encode("utf-8") for word, _ in block]
    body = b"".join(
        [
            struct.pack("<II", len(block), sum(map(len, encoded))),
            struct.pack(f"<{len(block)}q", *(n for _, n in block)),
            struct.pack(f"<{len(block)}I", *map(len, encoded)),
            *encoded,
        ]
    )
    f.write(body + _U32.pack(zlib.crc32(body)))
    return len(block)


class CountFile:
    """A count file opened for reading: its header, then its words block by block (`blocks`, `items`)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.f = self.path.open("rb")
        except OSError as e:
            raise LlmlabError(f"{self.path}: cannot read count file: {e.strerror}") from None
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    def _read_header(self) -> None:
        if self.f.read(len(MAGIC)) != MAGIC:
            raise LlmlabError(
                f"{self.path}: not an llmlab count file (write one with `llmlab tokenizer count`)"
            )
        self.raw_header = self._read(_U32.unpack(self._read(4))[0])
        try:
            header = json.loads(self.raw_header)
            self.fingerprint, self.pipeline = header["fingerprint"], header["pipeline"]
        except (ValueError, KeyError, TypeError):
            raise LlmlabError(f"{self.path}: count file header is corrupt") from None
        if header.get("format") != FORMAT:
            raise LlmlabError(
                f"{self.path}: count file format {header.get('format')} (this llmlab reads {FORMAT})"
            )

    def check_pipeline(self, expected: str) -> None:
        """Refuse a file counted with another normalizer or pre-tokenizer than the one of fingerprint `expected`."""
        if self.fingerprint != expected:
            raise LlmlabError(
                f"{self.path}: counted with another normalizer/pre-tokenizer ({self._describe()}; fingerprint "
                f"{self.fingerprint[:12]}, this model needs {expected[:12]}): count again with the same --model"
            )

    def _describe(self) -> str:
        pre = self.pipeline.get("pre_tokenizer") or {}
        norm = self.pipeline.get("normalizer") or {}
        return f"pre-tokenizer {pre.get('type', '?')}, normalizer {norm.get('type', 'none')}"

    def blocks(self) -> Iterator[tuple[tuple[int, ...], tuple[int, ...], bytes]]:
        """(counts, UTF-8 byte lengths, text) of each block, checked; the end record is checked last."""
        words = 0
        while (n := _U32.unpack(self._read(4, "block"))[0]) != 0:
            size = _U32.unpack(self._read(4, "block"))[0]
            body = self._read(n * 12 + size, "block")
            crc = _U32.unpack(self._read(4, "block"))[0]
            if zlib.crc32(_U32.pack(n) + _U32.pack(size) + body) != crc:
                raise LlmlabError(
                    f"{self.path}: count file is corrupt (block after word {words:,} fails its CRC)"
                )
            counts = struct.unpack_from(f"<{n}q", body)
            lengths = struct.unpack_from(f"<{n}I", body, 8 * n)
            if min(counts) <= 0 or sum(lengths) != size:
                raise LlmlabError(
                    f"{self.path}: count file is corrupt (bad counts or lengths near word {words:,})"
                )
            words += n
            yield counts, lengths, body[12 * n :]
        total, header_crc = _END.unpack(self._read(_END.size, "end record"))
        if total != words or header_crc != zlib.crc32(self.raw_header) or self.f.read(1):
            raise LlmlabError(f"{self.path}: count file is corrupt (its end record does not match)")

    def items(self) -> Iterator[tuple[str, int]]:
        """(word, count) in ascending order of words, checked; one block's raw bytes in memory at a time."""
        last = None
        for counts, lengths, text in self.blocks():
            start = 0
            for end, count in zip(itertools.accumulate(lengths), counts, strict=True):
                try:
                    word = text[start:end].decode("utf-8")
                except UnicodeDecodeError:
                    raise LlmlabError(f"{self.path}: count file is corrupt (a word is not UTF-8)") from None
                if last is not None and word <= last:
                    raise LlmlabError(f"{self.path}: count file is corrupt (words out of order)")
                yield word, count
                last, start = word, end

    def _read(self, n: int, what: str = "header") -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise LlmlabError(f"{self.path}: count file is truncated (in its {what})")
        return data

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> CountFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
