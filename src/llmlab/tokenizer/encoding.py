"""What the tokenizer returns, and the runtime settings that reshape it: `Encoding`, merging, truncation, padding.

Follows Hugging Face `tokenizers` (tokenizers/src/tokenizer/encoding.rs, utils/truncation.rs, utils/padding.rs)
and is tested against it through the pipeline, overflowing windows included:
- `merge` concatenates two encodings and combines their overflowing windows exactly as HF's
  `Encoding::merge_with` does (every window of the first with the second, window by window, nested), so pairs
  with overflow give HF's encodings in HF's order.
- `truncate_pair` is HF's `truncate_encodings`: the cut-off tokens become overflowing windows overlapping by
  `stride`; strategies longest_first / only_first / only_second, direction right or left.
- `pad_encodings` pads a batch to a fixed length or to its longest encoding, rounded up to a multiple.
Deviation: `max_length` below the number of special tokens is an error (HF's unsigned subtraction wraps
around there and nothing is truncated).
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field

from llmlab.errors import LlmlabError

__all__ = [
    "Encoding",
    "Padding",
    "Truncation",
    "merge",
    "merge_all",
    "pad",
    "pad_encodings",
    "truncate",
    "truncate_pair",
]


@dataclass(slots=True)
class Encoding:
    """What the tokenizer gives for one input: parallel lists, one entry per token.

    Attributes:
        ids: token ids.
        tokens: token strings.
        offsets: (start, end) character span of each token in its input text ((0, 0) for added ones).
        type_ids: segment id of each token (0 for the first sequence, 1 for the pair, as the template says).
        attention_mask: 1 for real tokens, 0 for padding.
        special_tokens_mask: 1 for special tokens added by the post-processor and for padding.
        overflowing: the further windows that truncation cut off, each a full Encoding.
    """

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    type_ids: list[int]
    attention_mask: list[int]
    special_tokens_mask: list[int]
    overflowing: list[Encoding] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def merge(first: Encoding, second: Encoding) -> Encoding:
    """Concatenate two encodings; their overflowing windows are combined as HF's `merge_with` does."""
    overflowing = []
    for window in first.overflowing:
        overflowing.append(merge(window, second))
        overflowing.extend(merge(window, other) for other in second.overflowing)
    overflowing.extend(merge(first, other) for other in second.overflowing)
    return Encoding(
        first.ids + second.ids,
        first.tokens + second.tokens,
        first.offsets + second.offsets,
        first.type_ids + second.type_ids,
        first.attention_mask + second.attention_mask,
        first.special_tokens_mask + second.special_tokens_mask,
        overflowing,
    )


def merge_all(encodings: SequenceOf[Encoding]) -> Encoding:
    """Merge a list of encodings left to right (one copy of the first when alone)."""
    if not any(e.overflowing for e in encodings):  # the common case: plain concatenation
        ids, tokens, offsets, types, attention, special = [], [], [], [], [], []
        for e in encodings:
            ids += e.ids
            tokens += e.tokens
            offsets += e.offsets
            types += e.type_ids
            attention += e.attention_mask
            special += e.special_tokens_mask
        return Encoding(ids, tokens, offsets, types, attention, special, [])
    out = encodings[0]
    for e in encodings[1:]:
        out = merge(out, e)
    return out if len(encodings) > 1 else merge(out, Encoding([], [], [], [], [], [], []))


_STRATEGIES = {"longest_first": "LongestFirst", "only_first": "OnlyFirst", "only_second": "OnlySecond"}
_DIRECTIONS = {"right": "Right", "left": "Left"}


def _choice(value: str, allowed: dict[str, str], what: str) -> str:
    """Accept our name ("longest_first") or HF's ("LongestFirst"); return ours."""
    for ours, hf in allowed.items():
        if value in (ours, hf):
            return ours
    raise LlmlabError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


@dataclass(frozen=True)
class Truncation:
    """Cut encodings to `max_length` tokens, special tokens included.

    Attributes:
        max_length: the most tokens an encoding may have.
        stride: tokens each overflowing window repeats from the one before.
        strategy: "longest_first" (pairs: cut the longer one first), "only_first" or "only_second".
        direction: "right" keeps the start, "left" keeps the end.
    """

    max_length: int
    stride: int = 0
    strategy: str = "longest_first"
    direction: str = "right"

    def __post_init__(self):
        if self.max_length < 0 or self.stride < 0:
            raise LlmlabError(
                f"truncation max_length {self.max_length} and stride {self.stride} must be >= 0"
            )
        object.__setattr__(self, "strategy", _choice(self.strategy, _STRATEGIES, "truncation strategy"))
        object.__setattr__(self, "direction", _choice(self.direction, _DIRECTIONS, "truncation direction"))

    def to_hf(self) -> dict:
        return {
            "direction": _DIRECTIONS[self.direction],
            "max_length": self.max_length,
            "strategy": _STRATEGIES[self.strategy],
            "stride": self.stride,
        }

    @classmethod
    def from_hf(cls, d: dict) -> Truncation:
        return cls(
            d["max_length"],
            d.get("stride", 0),
            d.get("strategy", "LongestFirst"),
            d.get("direction", "Right"),
        )


@dataclass(frozen=True)
class Padding:
    """Pad encodings with `pad_token` to `length`, or to the longest of the batch when `length` is None.

    `pad_to_multiple_of` rounds the target length up. Padding has attention 0 and special-tokens mask 1.
    """

    direction: str = "right"
    pad_id: int = 0
    pad_type_id: int = 0
    pad_token: str = "[PAD]"
    length: int | None = None
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "direction", _choice(self.direction, _DIRECTIONS, "padding direction"))

    def to_hf(self) -> dict:
        strategy = "BatchLongest" if self.length is None else {"Fixed": self.length}
        return {
            "strategy": strategy,
            "direction": _DIRECTIONS[self.direction],
            "pad_to_multiple_of": self.pad_to_multiple_of,
            "pad_id": self.pad_id,
            "pad_type_id": self.pad_type_id,
            "pad_token": self.pad_token,
        }

    @classmethod
    def from_hf(cls, d: dict) -> Padding:
        strategy = d.get("strategy", "BatchLongest")
        length = strategy["Fixed"] if isinstance(strategy, dict) else None
        return cls(
            d.get("direction", "Right"),
            d.get("pad_id", 0),
            d.get("pad_type_id", 0),
            d.get("pad_token", "[PAD]"),
            length,
            d.get("pad_to_multiple_of"),
        )


def _slice(e: Encoding, start: int, stop: int) -> Encoding:
    return Encoding(
        e.ids[start:stop],
        e.tokens[start:stop],
        e.offsets[start:stop],
        e.type_ids[start:stop],
        e.attention_mask[start:stop],
        e.special_tokens_mask[start:stop],
        [],
    )


def truncate(e: Encoding, max_length: int, stride: int = 0, direction: str = "right") -> Encoding:
    """Keep `max_length` tokens of `e`; the rest becomes overflowing windows that overlap by `stride`.

    Raises:
        LlmlabError: `stride` is not smaller than `max_length` (HF panics there).
    """
    n = len(e.ids)
    if max_length >= n:
        return e
    if max_length == 0:
        return Encoding([], [], [], [], [], [], [e])
    if stride >= max_length:
        raise LlmlabError(
            f"truncation stride {stride} must be smaller than the room left for the sequence ({max_length} "
            "tokens: max_length minus the special tokens)"
        )
    step, windows = max_length - stride, []
    if direction == "right":
        for start in range(0, n, step):
            windows.append((start, min(start + max_length, n)))
            if windows[-1][1] == n:
                break
    else:
        for stop in range(n, 0, -step):
            windows.append((max(stop - max_length, 0), stop))
            if windows[-1][0] == 0:
                break
    out = _slice(e, *windows[0])
    out.overflowing = [_slice(e, *w) for w in windows[1:]]
    return out


def truncate_pair(
    a: Encoding, b: Encoding | None, t: Truncation, n_added: int = 0
) -> tuple[Encoding, Encoding | None]:
    """HF's `truncate_encodings`, leaving room for `n_added` special tokens.

    Raises:
        LlmlabError: `t.max_length` is smaller than `n_added` (HF's unsigned subtraction wraps around there
            and silently truncates nothing); the sequence `t.strategy` names is too short (or absent).
    """
    if t.max_length < n_added:
        raise LlmlabError(
            f"truncation max_length {t.max_length} leaves no room for the {n_added} special tokens"
        )
    max_length = t.max_length - n_added
    cut = lambda e, n: truncate(e, n, t.stride, t.direction)  # noqa: E731
    if max_length == 0:
        return cut(a, 0), None if b is None else cut(b, 0)
    total = len(a.ids) + (len(b.ids) if b is not None else 0)
    if total <= max_length:
        return a, b
    if t.strategy == "longest_first":
        if b is None:
            return cut(a, max_length), None
        n1, n2 = sorted((len(a.ids), len(b.ids)))
        n2 = n1 if n1 > max_length else max(n1, max_length - n1)
        if n1 + n2 > max_length:
            n1, n2 = max_length // 2, max_length // 2 + max_length % 2
        if len(a.ids) > len(b.ids):
            n1, n2 = n2, n1
        return cut(a, n1), cut(b, n2)
    if t.strategy == "only_second" and b is None:
        raise LlmlabError("truncation strategy only_second needs a pair of sequences")
    target = a if t.strategy == "only_first" else b
    remove = total - max_length
    if len(target.ids) <= remove:
        raise LlmlabError(
            f"truncation {t.strategy}: the sequence has {len(target.ids)} tokens, too few to remove {remove}"
        )
    target = cut(target, len(target.ids) - remove)
    return (target, b) if t.strategy == "only_first" else (a, target)


def pad(e: Encoding, length: int, p: Padding) -> Encoding:
    """Pad `e` and its windows in place to `length` tokens (nothing when already as long)."""
    for window in e.overflowing:
        pad(window, length, p)
    k = length - len(e.ids)
    if k <= 0:
        return e
    fields = (
        (e.ids, p.pad_id),
        (e.tokens, p.pad_token),
        (e.offsets, (0, 0)),
        (e.type_ids, p.pad_type_id),
        (e.attention_mask, 0),
        (e.special_tokens_mask, 1),
    )
    for values, filler in fields:
        if p.direction == "right":
            values.extend([filler] * k)
        else:
            values[:0] = [filler] * k
    return e


def pad_encodings(encodings: list[Encoding], p: Padding) -> list[Encoding]:
    """Pad a batch to `p.length`, or to its longest encoding; rounded up to `p.pad_to_multiple_of`."""
    if not encodings:
        return encodings
    length = p.length if p.length is not None else max(len(e.ids) for e in encodings)
    m = p.pad_to_multiple_of
    if m and length % m:
        length += m - length % m
    return [pad(e, length, p) for e in encodings]
