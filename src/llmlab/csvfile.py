"""Strict CSV reading: RFC 4180 (Python's `csv` in strict mode), one row at a time, every problem a one-line
`LlmlabError` naming the file and the line.

Refused, where `csv.DictReader` would go on silently or raise its own error: a duplicated column name (the
second would win), a row with more or fewer fields than the header (extra fields would be lost), CR-only line
ends (old Mac files: one endless line), an unterminated quote (it would swallow the rest of the file) and
bad UTF-8. A row's number is the line it starts on, so a quoted field over several lines still points right.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from llmlab.errors import LlmlabError


def csv_rows(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, str]]]:
    """Stream the rows of a UTF-8 CSV file with a header (RFC 4180), strictly, as (line number, row).

    Blank lines are skipped; a row's number is the line it starts on (a quoted field may span lines).

    Raises:
        LlmlabError: naming the file and line: not UTF-8, CR-only line ends, an empty or duplicated column
            name, a row with more or fewer fields than the header, an unterminated quote, or bad quoting.
    """
    path = Path(path)
    lines = _LineCounter(path)
    reader = csv.reader(lines, strict=True)
    header = _next_row(reader, lines, path)
    if header is None:
        raise LlmlabError(f"{path}: empty file, expected a CSV header")
    seen = set()
    for name in header:
        if name in seen:
            raise LlmlabError(f"{path}: line 1: column {name!r} appears twice in the header")
        seen.add(name)
    while (row := _next_row(reader, lines, path)) is not None:
        if row == []:
            continue
        if len(row) != len(header):
            raise LlmlabError(
                f"{path}: line {lines.start}: {len(row)} fields, but the header has {len(header)}"
            )
        yield lines.start, dict(zip(header, row, strict=True))


def numbered_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number from 1, the line with its end) of a UTF-8 data file (a BOM dropped), streaming.

    Raises:
        LlmlabError: a folder, an unreadable file, or a line that is not UTF-8 (its number named).
    """
    path = Path(path)
    if path.is_dir():
        raise LlmlabError(f"{path}: is a folder, expected a data file")
    try:
        f = path.open("rb")
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise LlmlabError(f"{path}: line {number} is not UTF-8") from None


class _LineCounter:
    """The lines of a CSV file, counted: `start` is the line the current row began on; CR-only line ends
    (a whole file on line 1) are refused."""

    def __init__(self, path: Path):
        self.lines, self.path, self.number, self.start = numbered_lines(path), path, 0, 1

    def __iter__(self) -> Iterator[str]:
        for number, line in self.lines:
            self.number = number
            if number == 1 and "\r" in line.removesuffix("\r\n"):
                raise LlmlabError(f"{self.path}: line 1: CR-only line ends; save the file with LF or CRLF")
            yield line


def _next_row(reader, lines: _LineCounter, path: Path) -> list[str] | None:
    lines.start = lines.number + 1
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as e:
        if lines.number >= lines.start and "unexpected end of data" in str(e):
            raise LlmlabError(
                f"{path}: line {lines.start}: unterminated quote (it runs to the end of the file)"
            ) from None
        raise LlmlabError(f"{path}: line {lines.number}: bad CSV: {e}") from None
