"""Labelled text for fine-tuning: CSV / JSONL readers, a streaming shuffle buffer, and batch collation.

Formats: CSV with a header (RFC 4180, read strictly by `llmlab.csvfile.csv_rows`) or JSON Lines (each line at
most `llmlab.io.MAX_JSON_DEPTH` deep), with the fields `text`, `label` (an integer 0..K-1, K at most
`llmlab.validate.MAX_CLASSES`) and optionally `text_pair`; a causal-LM corpus is a text file, one document
per line. Every problem a user can cause is a one-line `LlmlabError` naming the file and, where there is
one, the line: a missing or duplicated column, a ragged row, an unterminated quote, CR-only line ends, a
label that is not an integer or beyond the class cap, an empty text, bad UTF-8, a dev class unseen in
training.

Streaming: `iter_examples` reads one row at a time, and `shuffle_buffer` is the shuffle of
`tf.data.Dataset.shuffle` / `torchdata`'s `Shuffler` (a reservoir of `size` examples, each draw replaced by the
next row), so a set larger than memory is still seen in a seeded random order.

Collation follows `transformers.DataCollatorWithPadding`: truncate to `max_length` with the tokenizer's
longest-first rule (pairs included), then pad each batch to its own longest sequence (dynamic padding).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from llmlab.csvfile import csv_rows, numbered_lines
from llmlab.errors import LlmlabError
from llmlab.io import MAX_JSON_DEPTH, too_deep
from llmlab.tokenizer.pipeline import Tokenizer
from llmlab.validate import check_class_id

FIELDS = ("text", "label", "text_pair")


@dataclass
class Example:
    """One input: a text (or a pair of texts) and its class id (None when unlabelled, e.g. an LM document)."""

    text: str
    label: int | None
    text_pair: str | None = None


def read_examples(
    path: str | os.PathLike, max_examples: int | None = None, labeled: bool = True
) -> list[Example]:
    """All examples of a CSV or JSONL file (the first `max_examples` when given).

    Raises:
        LlmlabError: see `iter_examples`.
    """
    examples = []
    for example in iter_examples(path, labeled):
        if max_examples is not None and len(examples) >= max_examples:
            break
        examples.append(example)
    if not examples:
        raise LlmlabError(f"{path}: no examples")
    return examples


def iter_examples(path: str | os.PathLike, labeled: bool = True) -> Iterator[Example]:
    """Stream the examples of a CSV (`.csv`) or JSON Lines (any other suffix) file, one row at a time.

    Raises:
        LlmlabError: unreadable file, bad UTF-8 (line number), no `text` / `label` column, a label that is
            not a non-negative integer, or an empty text.
    """
    path = Path(path)
    rows = _csv_rows(path, labeled) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    for number, row in rows:
        yield _example(row, path, number, labeled)


def read_texts(path: str | os.PathLike, max_examples: int | None = None) -> list[Example]:
    """A causal-LM corpus: one document per non-empty line, as unlabelled examples."""
    docs = [Example(line, None) for _, line in numbered_lines(path) if line.strip()]
    if not docs:
        raise LlmlabError(f"{path}: no text")
    return docs[:max_examples]


def _csv_rows(path: Path, labeled: bool) -> Iterator[tuple[int, dict]]:
    checked = False
    for number, row in csv_rows(path):
        if not checked:
            for needed in ("text", "label") if labeled else ("text",):
                if needed not in row:
                    raise LlmlabError(f"{path}: no '{needed}' column (columns: {', '.join(row) or 'none'})")
            checked = True
        yield number, row


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        if too_deep(line):
            raise LlmlabError(f"{path}: line {number}: nested more than {MAX_JSON_DEPTH} levels deep")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise LlmlabError(f"{path}: line {number}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise LlmlabError(f"{path}: line {number}: expected a JSON object")
        yield number, row


def _example(row: dict, path: Path, number: int, labeled: bool) -> Example:
    text = row.get("text")
    pair = row.get("text_pair")
    if not isinstance(text, str) or not text.strip():
        raise LlmlabError(f"{path}: line {number}: empty or missing text")
    if pair is not None and (not isinstance(pair, str) or not pair.strip()):
        pair = None  # an empty text_pair cell means a single text
    if not labeled:
        return Example(text, None, pair)
    return Example(text, _label(row.get("label"), path, number), pair)


def _label(value, path: Path, number: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LlmlabError(f"{path}: line {number}: label {value!r:.40} is not an integer 0..K-1")
    return check_class_id(value, f"{path}: line {number}")


def label_names(train: Sequence[Example], dev: Sequence[Example], dev_path: str | os.PathLike) -> list[str]:
    """Class names "0".."K-1", K = the largest train label + 1; a dev class absent from train is an error."""
    seen = {e.label for e in train}
    for e in dev:
        if e.label not in seen:
            raise LlmlabError(f"{dev_path}: class {e.label} does not occur in the training set")
    return [str(i) for i in range(max(seen) + 1)]


def shuffle_buffer(items: Iterable, size: int, rng: random.Random) -> Iterator:
    """Yield `items` in a seeded random order, holding at most `size` of them in memory."""
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = rng.randrange(size)
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer


@dataclass
class StreamingExamples:
    """A training set read from disk each epoch and shuffled through a buffer (for sets beyond memory)."""

    path: Path
    buffer_size: int = 10000
    labeled: bool = True

    def __iter__(self) -> Iterator[Example]:
        return iter_examples(self.path, self.labeled)


def epoch_examples(train_set, seed: int, epoch: int) -> Iterator[Example]:
    """The training examples of one epoch in their seeded order: a function of (seed, epoch) alone, so a
    resumed run replays it exactly. A list is permuted; a `StreamingExamples` goes through its buffer."""
    if isinstance(train_set, StreamingExamples):
        return shuffle_buffer(iter(train_set), train_set.buffer_size, random.Random(f"{seed}:{epoch}"))
    order = np.random.default_rng([seed, epoch]).permutation(len(train_set))
    return (train_set[i] for i in order)


def length_grouped(examples: Iterable[Example], batch_size: int, n_examples: int) -> Iterator[Example]:
    """`examples` (already shuffled) reordered so that consecutive batches hold examples of similar length.

    As `transformers.trainer_pt_utils.LengthGroupedSampler`: the stream is cut into megabatches of
    min(n_examples // (4 · batch_size), 50) batches, each sorted longest first, so a batch pads little and
    the batches still come in a random order. Deviation: length counts characters (text and pair), not
    tokens, so no tokenization is needed before the epoch starts.
    """
    size = max(1, min(n_examples // (4 * batch_size), 50)) * batch_size
    stream = iter(examples)
    while megabatch := list(itertools.islice(stream, size)):
        yield from sorted(megabatch, key=lambda e: len(e.text) + len(e.text_pair or ""), reverse=True)


def count_examples(train_set) -> int:
    """How many examples one epoch holds (a stream is read through once)."""
    return len(train_set) if isinstance(train_set, Sequence) else sum(1 for _ in train_set)


class Collator:
    """Examples -> padded tensors: input_ids, attention_mask (B, T), token_type_ids (B, T) when the model
    has token types, and labels (B,) when labelled."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, token_types: bool):
        self.tokenizer = copy.copy(tokenizer)  # our own truncation / padding settings, the model's untouched
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        self.pad_id = next(
            (i for t in ("[PAD]", "<pad>", "<|endoftext|>") if (i := tokenizer.token_to_id(t)) is not None), 0
        )
        self.token_types = token_types

    def __call__(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        """Encode and pad one batch; a batch of 0 examples is an error of the caller."""
        inputs = [e.text if e.text_pair is None else (e.text, e.text_pair) for e in examples]
        encodings = self.tokenizer.encode_batch(inputs)
        T = max(len(enc) for enc in encodings)
        ids = torch.full((len(encodings), T), self.pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(encodings), T), dtype=torch.long)
        types = torch.zeros((len(encodings), T), dtype=torch.long)
        for row, enc in enumerate(encodings):
            n = len(enc)
            ids[row, :n] = torch.tensor(enc.ids)
            mask[row, :n] = 1
            types[row, :n] = torch.tensor(enc.type_ids)
        batch = {"input_ids": ids, "attention_mask": mask}
        if self.token_types:
            batch["token_type_ids"] = types
        if examples[0].label is not None:
            batch["labels"] = torch.tensor([e.label for e in examples], dtype=torch.long)  # (B,)
        return batch
