"""A training corpus as a stream of lines: files, folders and globs, plain or compressed, never held whole.

Inputs are expanded in a fixed order (each argument in turn; a folder's files sorted by path, hidden ones
left out; a glob's matches sorted), so the same command always reads the same lines in the same order.
Compressed files are recognised by their suffix and decompressed while they are read: `.gz` (RFC 1952, the
standard library's `gzip`), `.bz2` (`bz2`) and `.zst` (RFC 8878, the `zstandard` package: the optional
extra `zstd`). Only one line of text is in memory at a time.

A compressed file that breaks off or is corrupt raises a one-line `LlmlabError` naming the file and how much
of it was read, whenever the damage is found: the callers write their outputs atomically, so nothing is
written. Damage often decompresses to garbage before a checksum fails, so when a compressed file's text is
not UTF-8 the rest of the file is decompressed first, and a corrupt stream is named as such. The `zstandard`
package's own stream reader ends quietly at a truncated frame; ours (`_ZstdReader`) raises.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import itertools
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from llmlab.errors import LlmlabError, require_extra
from llmlab.io import decode_lines

COMPRESSED = (".gz", ".bz2", ".zst")


def corpus_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The files that `inputs` name: a file as it is, a folder's files (recursively), a glob's matches.

    Raises:
        LlmlabError: an input that is neither a file nor a folder and matches no file.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(str(item)):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            if not matches:
                raise LlmlabError(f"{item}: the pattern matches no file")
            files += matches
        else:
            raise LlmlabError(f"{item}: no such file or folder")
    return files


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def read_corpus(
    inputs: Sequence[str | os.PathLike], errors: str = "strict", repeat: int = 1
) -> Iterator[str]:
    """Stream the lines (without line ends) of every file `inputs` name, decompressing on the way.

    Args:
        inputs: files, folders and glob patterns (see `corpus_files`).
        errors: "strict" stops at invalid UTF-8; "replace" puts U+FFFD in its place and goes on.
        repeat: read the whole corpus this many times (benchmarks of a k-fold corpus, without k copies).

    Raises:
        LlmlabError: a missing input, invalid UTF-8 (strict), or a compressed file that is corrupt or truncated.
    """
    files = corpus_files(inputs)  # checked before the first line is read
    for path in itertools.chain.from_iterable(itertools.repeat(files, repeat)):
        yield from read_file_lines(path, errors)


def read_file_lines(path: Path, errors: str = "strict") -> Iterator[str]:
    """The lines of one file, plain or compressed (by its suffix), streaming."""
    try:
        stream = open_binary(path)
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read: {e.strerror or e}") from None
    with stream:
        raw = _checked(stream, path)
        try:
            yield from decode_lines(raw, path, errors)
        except LlmlabError:
            if path.suffix.lower() in COMPRESSED:  # damage decompresses to garbage before its checksum fails:
                for _ in raw:  # read on, so that a corrupt stream is named as such
                    pass
            raise


def open_binary(path: Path) -> BinaryIO:
    """`path` opened for reading bytes, decompressing `.gz`, `.bz2` and `.zst` files."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix == ".zst":
        zstandard = require_extra("zstandard", "zstd", f"{path}: reading .zst files")
        return io.BufferedReader(_ZstdReader(path.open("rb"), zstandard.ZstdDecompressor()), 1 << 16)
    return path.open("rb")


class _ZstdReader(io.RawIOBase):
    """Zstandard frames, one after the other, decompressed; a frame cut short raises EOFError (the package's
    own stream reader ends quietly there). Corruption is found where the frames carry checksums (the `zstd`
    command line writes them by default)."""

    def __init__(self, raw: BinaryIO, decompressor):
        self.raw, self.decompressor = raw, decompressor
        self.frame, self.started = decompressor.decompressobj(), False
        self.pending, self.at = b"", 0  # decompressed bytes not yet handed out: pending[at:]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.at == len(self.pending):
            chunk = self.raw.read(1 << 16)
            if not chunk:
                if self.started and not self.frame.eof:
                    raise EOFError("the last zstandard frame is incomplete")
                return 0
            self.pending, self.at = self._decompress(chunk), 0
        n = min(len(buffer), len(self.pending) - self.at)
        buffer[:n] = memoryview(self.pending)[self.at : self.at + n]
        self.at += n
        return n

    def _decompress(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            if self.frame.eof:  # the next frame starts
                self.frame = self.decompressor.decompressobj()
            self.started = True
            try:
                out.append(self.frame.decompress(chunk))
            except Exception as e:  # zstandard.ZstdError: corrupt data, a checksum that does not match
                raise ValueError(str(e)) from None
            chunk = self.frame.unused_data if self.frame.eof else b""
        return b"".join(out)

    def close(self) -> None:
        self.raw.close()
        super().close()


def _checked(stream: BinaryIO, path: Path) -> Iterable[bytes]:
    """The raw lines of `stream`; a decompression failure becomes a one-line error naming the file."""
    done = 0
    try:
        for raw in stream:
            done += len(raw)
            yield raw
    except (EOFError, OSError, zlib.error, ValueError) as e:
        if path.suffix.lower() not in COMPRESSED and not isinstance(e, OSError):
            raise
        what = "truncated" if isinstance(e, EOFError) else f"corrupt ({_reason(e)})"
        raise LlmlabError(f"{path}: compressed stream is {what} after {done:,} bytes of text") from None


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
