"""Encoding one very long line in bounded memory: the line is cut into chunks at pre-tokenizer boundaries,
each chunk encoded on its own, and the pieces handed on one at a time.

A 50 MB line encoded whole holds every pre-token, token string and offset of the line at once (7 GB for
WordPiece); in chunks of `CHUNK_CHARS` characters only one chunk's do. A cut goes before a single space
between two non-space characters ("x| y"): the GPT-2 split regex, BERT's whitespace split and Metaspace all
start a new pre-token there, and a normalizer maps characters one by one or strips the space the next piece
starts with, so the chunk encodings laid end to end (offsets shifted) equal the whole line's encoding. That
is checked once per tokenizer on a probe text (`chunking_is_exact`); a tokenizer for which it fails, one with
truncation or padding, or a line with no cut point in reach is encoded whole, as before. Special tokens of
the post-processor's single-sequence template go before the first piece and after the last.
Tested against `Tokenizer.encode` on the whole line (tests/hostile/test_streams.py).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from typing import IO

from llmlab.tokenizer.pipeline import Tokenizer

CHUNK_CHARS = 1 << 16  # characters per chunk; a line longer than 2 chunks is encoded in pieces
Piece = tuple[list[int], list[str], list[tuple[int, int]]]  # ids, tokens, offsets in the whole line
_CUT = re.compile(r"\S (?=\S)")
_EXACT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> chunking_is_exact
_PROBE = "Hello world, naïve café  spaces\tand tabs 中文 text; x y z 123 456"


def encode_pieces(
    tok: Tokenizer, line: str, add_special_tokens: bool = True, chunk: int = CHUNK_CHARS
) -> Iterator[Piece]:
    """The encoding of `line` as consecutive pieces whose concatenation is `tok.encode(line)`'s ids, tokens
    and offsets; a line of at most 2 * `chunk` characters (or one that cannot be cut exactly) is one piece."""
    if len(line) <= 2 * chunk or not chunking_is_exact(tok):
        yield _piece(tok.encode(line, add_special_tokens=add_special_tokens), 0)
        return
    prefix, suffix = _specials(tok) if add_special_tokens else (([], [], []), ([], [], []))
    yield prefix
    for start, end in cut_points(line, chunk):
        yield _piece(tok.encode(line[start:end], add_special_tokens=False), start)
    yield suffix


def cut_points(line: str, chunk: int = CHUNK_CHARS) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive chunks covering `line`, each cut before a space between non-spaces,
    about `chunk` characters long; a stretch with no such space within `chunk` stays in one chunk."""
    start = 0
    while len(line) - start > chunk:
        window = line[start + chunk // 2 : start + chunk]
        cut = None
        for match in _CUT.finditer(window):
            cut = match.start() + 1
        if cut is None:
            match = _CUT.search(line, start + chunk)  # none in reach: take the next one, however far
            if match is None:
                break
            end = match.start() + 1
        else:
            end = start + chunk // 2 + cut
        yield start, end
        start = end
    yield start, len(line)


def chunking_is_exact(tok: Tokenizer) -> bool:
    """Whether cutting at every cut point of a probe text gives the tokens of the whole text (cached)."""
    if tok not in _EXACT:
        _EXACT[tok] = tok.truncation is None and tok.padding is None and _probe(tok)
    return _EXACT[tok]


def _probe(tok: Tokenizer) -> bool:
    whole = _piece(tok.encode(_PROBE, add_special_tokens=True), 0)
    prefix, suffix = _specials(tok)
    pieces = [prefix]
    pieces += [_piece(tok.encode(_PROBE[s:e], add_special_tokens=False), s) for s, e in cut_points(_PROBE, 4)]
    pieces.append(suffix)
    joined = tuple([x for p in pieces for x in p[k]] for k in range(3))
    return joined == whole


def _specials(tok: Tokenizer) -> tuple[Piece, Piece]:
    """The special tokens the template puts before and after a single sequence (found on a probe)."""
    full = tok.encode("a", add_special_tokens=True)
    plain = tok.encode("a", add_special_tokens=False).ids
    n = len(plain)
    at = next((i for i in range(len(full.ids) - n + 1) if full.ids[i : i + n] == plain), 0)
    before = (full.ids[:at], full.tokens[:at], full.offsets[:at])
    after = (full.ids[at + n :], full.tokens[at + n :], full.offsets[at + n :])
    return before, after


def _piece(enc, shift: int) -> Piece:
    return list(enc.ids), list(enc.tokens), [(a + shift, b + shift) for a, b in enc.offsets]


def write_pieces(out: IO[str], pieces: Iterable[Piece], format: str) -> None:
    """Write one line's encoding, given as pieces, as one output line, streaming: "ids" or "tokens"
    (space-separated), or "jsonl" ({"ids", "tokens", "offsets"}; tokens and offsets wait in temporary files
    while the ids are written, so no list of the whole line is ever held)."""
    if format != "jsonl":
        field = 0 if format == "ids" else 1
        first = True
        for piece in pieces:
            if piece[field]:
                out.write(("" if first else " ") + " ".join(map(str, piece[field])))
                first = False
        out.write("\n")
        return
    with tempfile.TemporaryFile("w+", encoding="utf-8") as tokens, tempfile.TemporaryFile("w+") as offsets:
        out.write('{"ids": [')
        for i, (ids, toks, offs) in enumerate(p for p in pieces if p[0]):
            sep = ", " if i else ""
            out.write(sep + json.dumps(ids)[1:-1])
            tokens.write(sep + json.dumps(toks, ensure_ascii=False)[1:-1])
            offsets.write(sep + json.dumps(offs)[1:-1])
        for name, part in (("tokens", tokens), ("offsets", offsets)):
            out.write(f'], "{name}": [')
            part.seek(0)
            shutil.copyfileobj(part, out)
        out.write("]}\n")
