"""Post-processors: the stage after the model, turning one or two token sequences into the model's input.

Follows Hugging Face `tokenizers` (tokenizers/src/processors/*.rs, tokenizer/encoding.rs), reads/writes the
same JSON and is tested against it, overflowing windows included:
- `TemplateProcessing`, `BertProcessing`, `RobertaProcessing`: special tokens placed by a template
  (`templates.py`, re-exported here).
- `ByteLevel`: no special tokens; with `trim_offsets`, a token's offsets leave out its leading and trailing
  spaces ('Ġ'), except the one space `add_prefix_space` put before the first word.
- `Sequence`: several processors in order.

A processor works on the overflowing windows of its encodings too (see `encoding.py`, which holds `Encoding`
and its merging). As HF's `PostProcessor::process`, each input (and each of its windows) is first marked as
sequence 0 or 1, so that the merged encoding knows which tokens came from which input (its sequence ranges).
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf
from itertools import compress
from operator import add, itemgetter, not_

from llmlab.errors import LlmlabError
from llmlab.tokenizer.encoding import (
    Encoding,
    merge_all,
)

SPACES = "Ġ\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
_SPACE_COUNT_CAPACITY = 1_000_000  # distinct tokens whose spaces are remembered (a vocabulary's worth)


class PostProcessor:
    """Base class: subclasses implement `process_encodings`, `added_tokens` and `to_hf`."""

    def process_encodings(self, encodings: list[Encoding], add_special_tokens: bool) -> list[Encoding]:
        raise NotImplementedError

    def added_tokens(self, is_pair: bool) -> int:
        """How many special tokens `process` adds to a single input (or a pair); truncation leaves room."""
        raise NotImplementedError

    def to_hf(self) -> dict:
        raise NotImplementedError

    def process(
        self, encoding: Encoding, pair: Encoding | None = None, add_special_tokens: bool = True
    ) -> Encoding:
        """Add the special tokens and merge the input(s) into one encoding.

        Args:
            encoding: the first sequence, as the model tokenized it (type ids 0).
            pair: the second sequence (type ids 1), if any.
            add_special_tokens: False keeps the sequences as they are (type ids still follow the processor).

        Returns:
            The merged encoding, overflowing windows processed the same way.
        """
        encodings = [encoding] if pair is None else [encoding, pair]
        for i, e in enumerate(encodings):
            for part in (e, *e.overflowing):
                part.sequence_ranges = {i: (0, len(part.ids))}
        return merge_all(self.process_encodings(encodings, add_special_tokens))


def trim_offsets(e: Encoding, add_prefix_space: bool) -> Encoding:
    """`e` (and its windows) with leading/trailing spaces ('Ġ' or whitespace) left out of each token's offsets.

    As HF's byte-level `process_offsets`: the one space `add_prefix_space` added before the first token (or a
    token starting at 0) is kept. Leading spaces are trimmed over the whole list at once, trailing ones (rare)
    token by token.
    """
    offsets = e.offsets
    n = len(e.tokens)
    leads = list(map(_LEADING.__getitem__, e.tokens))
    if any(leads):
        starts = list(map(itemgetter(0), offsets))
        ends = list(map(itemgetter(1), offsets))
        trimmed = list(map(min, map(add, starts, leads), ends))
        if add_prefix_space:  # the one space it added stays with the first token (or one starting at 0)
            for i in {0, *compress(range(n), map(not_, starts))} if n else ():
                if leads[i] == 1:
                    trimmed[i] = starts[i]
        offsets = list(zip(trimmed, ends, strict=True))
    trails = list(map(_TRAILING.__getitem__, e.tokens))
    if any(trails):
        offsets = list(offsets)
        for i in compress(range(n), trails):
            start, end = offsets[i]
            if end >= trails[i]:
                offsets[i] = (start, max(end - trails[i], start))
    windows = [trim_offsets(w, add_prefix_space) for w in e.overflowing]
    return Encoding(
        e.ids,
        e.tokens,
        list(offsets),
        e.type_ids,
        e.attention_mask,
        e.special_tokens_mask,
        windows,
        e.word_ids,
        e.sequence_ranges,
    )


class _SpaceCount(dict):
    """token -> how many space characters it starts (or ends) with; computed once per token."""

    def __init__(self, strip):
        super().__init__()
        self.strip = strip  # str.lstrip or str.rstrip

    def __missing__(self, token: str) -> int:
        count = len(token) - len(self.strip(token, SPACES))
        if len(self) < _SPACE_COUNT_CAPACITY:
            self[token] = count
        return count


_LEADING = _SpaceCount(str.lstrip)
_TRAILING = _SpaceCount(str.rstrip)


class ByteLevel(PostProcessor):
    """GPT-2 byte-level post-processing: no special tokens, optionally trimmed offsets."""

    def __init__(self, add_prefix_space: bool = True, trim_offsets: bool = True, use_regex: bool = True):
        self.add_prefix_space = add_prefix_space
        self.trim_offsets = trim_offsets
        self.use_regex = use_regex  # kept for the JSON form

    def process_encodings(self, encodings: list[Encoding], add_special_tokens: bool) -> list[Encoding]:
        if not self.trim_offsets:
            return encodings
        return [trim_offsets(e, self.add_prefix_space) for e in encodings]

    def added_tokens(self, is_pair: bool) -> int:
        return 0

    def to_hf(self) -> dict:
        return {
            "type": "ByteLevel",
            "add_prefix_space": self.add_prefix_space,
            "trim_offsets": self.trim_offsets,
            "use_regex": self.use_regex,
        }


class Sequence(PostProcessor):
    """Several post-processors, each on the encodings the previous one returned."""

    def __init__(self, processors: SequenceOf[PostProcessor]):
        self.processors = list(processors)

    def process_encodings(self, encodings: list[Encoding], add_special_tokens: bool) -> list[Encoding]:
        for p in self.processors:
            encodings = p.process_encodings(encodings, add_special_tokens)
        return encodings

    def added_tokens(self, is_pair: bool) -> int:
        return sum(p.added_tokens(is_pair) for p in self.processors)

    def to_hf(self) -> dict:
        return {"type": "Sequence", "processors": [p.to_hf() for p in self.processors]}


def postprocessor_from_hf(d: dict | None) -> PostProcessor | None:
    """Build a post-processor from the `post_processor` object of an HF tokenizer.json (None stays None).

    Raises:
        LlmlabError: an unknown or malformed post-processor.
    """
    from llmlab.tokenizer.templates import (  # built on us
        BertProcessing,
        RobertaProcessing,
        TemplateProcessing,
    )

    if d is None:
        return None
    kind = d.get("type") if isinstance(d, dict) else None
    try:
        if kind == "TemplateProcessing":
            return TemplateProcessing(d["single"], d["pair"], d["special_tokens"])
        if kind == "BertProcessing":
            return BertProcessing(tuple(d["sep"]), tuple(d["cls"]))
        if kind == "RobertaProcessing":
            return RobertaProcessing(
                tuple(d["sep"]), tuple(d["cls"]), d.get("trim_offsets", True), d.get("add_prefix_space", True)
            )
        if kind == "ByteLevel":
            return ByteLevel(
                d.get("add_prefix_space", True), d.get("trim_offsets", True), d.get("use_regex", True)
            )
        if kind == "Sequence":
            return Sequence([postprocessor_from_hf(p) for p in d["processors"]])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise LlmlabError(f"malformed post_processor {kind!r}: missing or bad field {e}") from None
    raise LlmlabError(f"unsupported post_processor {kind!r}")
