"""Exact word counts in bounded memory: count in a table, spill sorted runs to disk, merge them at the end.

Method: external merge sort (Knuth, TAOCP vol. 3, §5.4.1: sorted runs, then a heap-driven multiway merge)
applied to (word, count) pairs, equal words summed as they meet. The result is the same as counting in one
dict (tested with hypothesis against `collections.Counter`, under a memory limit that forces dozens of spills
and merge passes), whatever the limit, the number of workers or the order of the chunks.

- Lines are counted in chunks of about CHUNK_CHARS characters: normalized, pre-tokenized (`raw_words`),
  counted, and each distinct word mapped once (`map_word`: byte-level BPE's printable bytes): `count_chunk`,
  the reference. With workers > 1 the chunks go to forked processes, at most 2 x workers in flight, so the
  reader never runs ahead of them (`multiprocessing.Pool.imap` would queue the whole corpus).
- The table is a dict of word -> Python int (exact at any size; 64-bit in the files). Its memory is estimated
  as the dict itself + each word's `sys.getsizeof` + 40 bytes per word for its count and the sort; before it
  would pass `max_memory` it is written, sorted, as a run (a count file, `countfile.py`) in a temporary folder.
- Compiled (`_core/word_counter.h`, where the core is built and has the pipeline's stages: the trainers'
  three do): the same counts (tested on real corpora and random text), five to thirty times faster. On one
  worker the words stay in the compiled table (64-bit counts, its own memory in `nbytes`), which spills as the
  dict does and hands the trainers their `WordTable` directly; workers count each chunk on it. A line it
  cannot take (a lone surrogate, a character the Python normalizer handles itself) is counted in Python.
- At the end the runs and the table are merged, FAN_IN runs at a time (more runs take extra passes); runs
  are written in blocks of RUN_BLOCK_WORDS words, so a merge holds at most FAN_IN small blocks.
`max_memory` bounds the table; the chunks in flight get CHUNK_MEMORY each on top, so the workable minimum is
`minimum_memory(workers)`. Temporary runs go to `spill_dir` (default: the system's, e.g. $TMPDIR).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmlab.errors import LlmlabError
from llmlab.tokenizer import core
from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE
from llmlab.tokenizer.countfile import MAX_COUNT, CountFile, write_counts, write_stream
from llmlab.tokenizer.normalize import Normalizer
from llmlab.tokenizer.pretokenize import ByteLevel, PreTokenizer
from llmlab.tokenizer.word_table import WordTable, merge_sorted

if TYPE_CHECKING:  # (llmlab.progress imports rich: not needed to train)
    from llmlab.progress import ProgressFn

CHUNK_CHARS = 1 << 19
CHUNK_MEMORY = 16 << 20  # a chunk's lines and counts, in a worker and on their way back
MIN_TABLE = 4 << 20
MEMORY_SHARE = 0.25  # default max_memory: this share of the machine's RAM
FAN_IN = 64
RUN_BLOCK_WORDS = 4096  # a merge holds one block of each of its FAN_IN runs
_PER_WORD = 40  # the count's int object (32) and the key's slot in the list sorted at spill time (8)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes in a size such as "512M", "2G", "1.5GiB" or "100000" (K, M, G, T are powers of 1024).

    Raises:
        LlmlabError: not a size.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise LlmlabError(f"--max-memory: {text!r} is not a size (examples: 512M, 2G, 1.5GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def default_max_memory() -> int:
    """MEMORY_SHARE of the machine's physical memory."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * MEMORY_SHARE)


def minimum_memory(workers: int) -> int:
    """The least `max_memory` that counting with `workers` processes can keep to."""
    return MIN_TABLE + CHUNK_MEMORY * (2 * workers if workers > 1 else 1)


def pipeline_of(normalizer: Normalizer | None, pretokenizer: PreTokenizer) -> dict[str, Any]:
    """The HF tokenizer.json sections that make the words (stored in and fingerprinting count files)."""
    return {"normalizer": normalizer.to_hf() if normalizer else None, "pre_tokenizer": pretokenizer.to_hf()}


class SpillingCounter:
    """A word -> count table that spills sorted runs to disk past `max_memory` bytes; `items` merges all.

    With `compiled` (a `core_counter`), lines are counted into that compiled table (`add_lines`), which spills
    with the dict; the dict then only holds the lines the core leaves to Python.
    """

    def __init__(
        self, max_memory: int, pipeline: dict[str, Any], spill_dir=None, fan_in: int = FAN_IN, compiled=None
    ):
        """Args: max_memory: bytes the table may take (estimated); pipeline: what made the words (written in
        the runs); spill_dir: where the temporary runs go; fan_in: runs merged at once (at least 2);
        compiled: a compiled table for `add_lines`."""
        if max_memory <= 0 or fan_in < 2:
            raise LlmlabError(
                f"max_memory must be positive and fan_in at least 2, not {max_memory}, {fan_in}"
            )
        self.max_memory, self.pipeline, self.fan_in = max_memory, pipeline, fan_in
        self.table: dict[str, int] = {}
        self.compiled = compiled
        self.key_bytes = 0
        self.runs: list[Path] = []
        self.folder = Path(tempfile.mkdtemp(prefix="llmlab-counts-", dir=spill_dir))
        self.spills = 0
        self.made = 0  # runs written, merged ones included: names them

    @property
    def nbytes(self) -> int:
        """The estimated memory of the table (the compiled one's included)."""
        own = sys.getsizeof(self.table) + self.key_bytes + _PER_WORD * len(self.table)
        return own + (self.compiled.nbytes if self.compiled is not None else 0)

    @property
    def empty(self) -> bool:
        """Whether nothing was counted (or everything was taken out by `items`)."""
        return not (self.table or self.runs or (self.compiled is not None and len(self.compiled)))

    def add(self, counts: Mapping[str, int]) -> None:
        """Add `counts` (word -> count); spill the table first if the new words would take it past the limit."""
        new = counts.keys() - self.table.keys()
        new_bytes = sum(map(sys.getsizeof, new))
        if self.table and self.nbytes + new_bytes + _PER_WORD * len(new) > self.max_memory:
            self.spill()
            new_bytes = sum(map(sys.getsizeof, counts))  # every word is new now
        table = self.table
        if not table:
            table.update(counts)
        else:
            for word, n in counts.items():
                table[word] = table.get(word, 0) + n
        self.key_bytes += new_bytes
        if self.nbytes > self.max_memory:  # one chunk alone is over the limit
            self.spill()

    def add_lines(self, lines: list[str], normalizer: Normalizer | None, pretokenizer: PreTokenizer) -> None:
        """Count `lines` into the compiled table (those it leaves to Python through `add`); spill past the
        limit."""
        skipped = self.compiled.add(lines)
        if skipped:
            self.add(count_chunk([lines[i] for i in skipped], normalizer, pretokenizer))
        if self.nbytes > self.max_memory:
            self.spill()

    def spill(self) -> None:
        """Write the table, sorted, as a run and empty it."""
        if self.table or (self.compiled is not None and len(self.compiled)):
            self._write_run(self._in_memory())
            self.spills += 1

    def _in_memory(self) -> Iterable[tuple[str, int]]:
        """The words in memory (the dict's and the compiled table's), ascending; empties both."""
        table, self.table, self.key_bytes = self.table, {}, 0
        if table and max(table.values()) > MAX_COUNT:
            raise LlmlabError(f"a word's count passes 2^63 - 1 ({max(table.values())})")
        streams: list[Iterable[tuple[str, int]]] = [((w, table[w]) for w in sorted(table))] if table else []
        if self.compiled is not None and len(self.compiled):
            streams.append(WordTable(*self.compiled.drain()).items())
        return streams[0] if len(streams) == 1 else merge_sorted(streams)

    def _write_run(self, items: Iterable[tuple[str, int]]) -> None:
        path = self.folder / f"run-{self.made:06d}.counts"
        self.made += 1
        with path.open("wb") as f:
            write_stream(f, items, self.pipeline, str(path), RUN_BLOCK_WORDS)
        self.runs.append(path)

    def items(self) -> Iterator[tuple[str, int]]:
        """Every word and its total count, ascending by word (runs merged, FAN_IN at a time); takes the
        words out of memory."""
        while len(self.runs) + (not self.empty) > self.fan_in:  # a merge pass: the oldest runs become one
            group, self.runs = self.runs[: self.fan_in], self.runs[self.fan_in :]
            with contextlib.ExitStack() as stack:
                files = [stack.enter_context(CountFile(p)) for p in group]
                self._write_run(merge_sorted(f.items() for f in files))
            for p in group:
                p.unlink()
        if not self.runs:  # nothing spilled: the table alone
            yield from self._in_memory()
            return
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(CountFile(p)) for p in self.runs]
            yield from merge_sorted([*(f.items() for f in files), self._in_memory()])

    def word_table(self) -> WordTable:
        """`items` as a `WordTable` (straight from the compiled table when it holds every word)."""
        if not self.runs and not self.table and self.compiled is not None:
            return WordTable(*self.compiled.drain())
        return WordTable.from_items(self.items())

    def close(self) -> None:
        """Remove the temporary runs."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SpillingCounter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def count_chunk(lines: list[str], normalizer: Normalizer | None, pretokenizer: PreTokenizer) -> Counter:
    """The words of `lines` as the model sees them (normalized, pre-tokenized, mapped), counted."""
    counts: Counter = Counter()
    for line in lines:
        counts.update(pretokenizer.raw_words(normalizer.normalize(line) if normalizer else line))
    if type(pretokenizer).map_word is PreTokenizer.map_word:  # the identity
        return counts
    return Counter({pretokenizer.map_word(word): n for word, n in counts.items()})  # each word once


def core_counter(normalizer: Normalizer | None, pretokenizer: PreTokenizer):
    """The compiled `count_chunk` of this pipeline (`_core/word_counter.h`), or None where it runs in Python
    (no core, or a stage the core does not have)."""
    if not core.available():
        return None
    stages = core._normalizer(normalizer), core._pre_tokenizer(pretokenizer)  # the encoder's descriptions
    mapped = type(pretokenizer).map_word is not PreTokenizer.map_word
    if False in stages or (mapped and type(pretokenizer) is not ByteLevel):
        return None
    byte_chars = [ord(BYTE_TO_UNICODE[b]) for b in range(256)] if mapped else None
    return core._corelib.WordCounter(*stages, byte_chars)


def _count_on(counter, lines: list[str], normalizer, pretokenizer) -> Mapping[str, int]:
    """`count_chunk` on the compiled `counter` when there is one; the lines it leaves to Python (a character
    that only the Python normalizer handles, a lone surrogate) are counted in Python."""
    if counter is None:
        return count_chunk(lines, normalizer, pretokenizer)
    counts, skipped = counter.count(lines)
    if skipped:
        for word, n in count_chunk([lines[i] for i in skipped], normalizer, pretokenizer).items():
            counts[word] = counts.get(word, 0) + n
    return counts


_WORKER_COUNTER: list = [None]  # in a forked worker: the compiled counter it inherited (`_chunk_counts`)


def _worker_count(lines: list[str], normalizer, pretokenizer) -> Mapping[str, int]:
    return _count_on(_WORKER_COUNTER[0], lines, normalizer, pretokenizer)


def _chunks(lines: Iterable[str], progress: ProgressFn | None) -> Iterator[list[str]]:
    """Lists of lines of about CHUNK_CHARS characters; `progress(characters_read, 0)` after each."""
    chunk: list[str] = []
    size = done = 0
    for line in lines:
        chunk.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            yield chunk
            done += size
            if progress:
                progress(done, 0)
            chunk, size = [], 0
    if chunk:
        yield chunk


def _chunk_counts(
    chunks: Iterable[list[str]], normalizer, pretokenizer, workers: int
) -> Iterator[Mapping[str, int]]:
    """`count_chunk` of each chunk (on the core where it can), in order, on `workers` forked processes with
    2 x workers in flight."""
    if workers == 1:
        yield from (count_chunk(chunk, normalizer, pretokenizer) for chunk in chunks)
        return
    import multiprocessing  # here: one worker (the compiled counter's case) never needs it (~1 MiB of RSS)

    counter = core_counter(normalizer, pretokenizer)
    # forked workers inherit the counter through the initializer's arguments (fork pickles nothing)
    pool = multiprocessing.get_context("fork").Pool(workers, _WORKER_COUNTER.__setitem__, (0, counter))
    pending: deque = deque()
    try:
        for chunk in chunks:
            pending.append(pool.apply_async(_worker_count, (chunk, normalizer, pretokenizer)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
    finally:
        pool.terminate()


@contextlib.contextmanager
def counted(
    lines: Iterable[str],
    normalizer: Normalizer | None,
    pretokenizer: PreTokenizer,
    workers: int | None = None,
    max_memory: int | None = None,
    progress: ProgressFn | None = None,
    spill_dir=None,
) -> Iterator[SpillingCounter]:
    """Count the words of `lines` in bounded memory; yields the filled counter (read it with `items()`).

    Args:
        lines: the text, one line at a time (a stream: it is read once).
        normalizer, pretokenizer: the pipeline that turns text into the model's words.
        workers: processes that count (default: all cores).
        max_memory: bytes for the table before it spills (default: `default_max_memory()`).
        progress: called as `progress(characters_counted, 0)`.
        spill_dir: the folder for temporary runs.

    Raises:
        LlmlabError: `max_memory` below `minimum_memory(workers)`, or an error reading `lines`.
    """
    workers = workers or os.cpu_count() or 1
    max_memory = default_max_memory() if max_memory is None else max_memory
    if max_memory < minimum_memory(workers):
        raise LlmlabError(
            f"--max-memory {max_memory:,} bytes is below the workable minimum of {minimum_memory(workers):,} "
            f"bytes for {workers} worker(s) (a table of {MIN_TABLE >> 20} MiB + {CHUNK_MEMORY >> 20} MiB per chunk in flight)"
        )
    reserve = minimum_memory(workers) - MIN_TABLE
    compiled = core_counter(normalizer, pretokenizer) if workers == 1 else None
    pipeline = pipeline_of(normalizer, pretokenizer)
    with SpillingCounter(max_memory - reserve, pipeline, spill_dir, compiled=compiled) as counter:
        if compiled is not None:
            for chunk in _chunks(lines, progress):
                counter.add_lines(chunk, normalizer, pretokenizer)
        else:
            for counts in _chunk_counts(_chunks(lines, progress), normalizer, pretokenizer, workers):
                counter.add(counts)
        yield counter


def count_words(
    lines: Iterable[str],
    normalizer: Normalizer | None,
    pretokenizer: PreTokenizer,
    workers: int | None = None,
    max_memory: int | None = None,
    progress: ProgressFn | None = None,
) -> WordTable:
    """Count the words of `lines` (see `counted`) into a `WordTable`, ascending by word."""
    with counted(lines, normalizer, pretokenizer, workers, max_memory, progress) as counter:
        return counter.word_table()


def count_to_file(
    lines: Iterable[str],
    output: str | os.PathLike,
    normalizer: Normalizer | None,
    pretokenizer: PreTokenizer,
    workers: int | None = None,
    max_memory: int | None = None,
    progress: ProgressFn | None = None,
) -> int:
    """Count the words of `lines` (see `counted`) into the count file `output` (atomic); returns the words.

    Raises:
        LlmlabError: as `counted`; the corpus has no words (nothing is written).
    """
    with counted(lines, normalizer, pretokenizer, workers, max_memory, progress) as counter:
        if counter.empty:
            raise LlmlabError(f"{output}: the corpus has no words to count (nothing written)")
        return write_counts(output, counter.items(), counter.pipeline)
