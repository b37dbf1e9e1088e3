"""The runtime settings that reshape encodings: truncation into overflowing windows, and padding.

Follows Hugging Face `tokenizers` (tokenizers/src/utils/truncation.rs, utils/padding.rs, the `truncate` and
`pad` of tokenizer/encoding.rs) and is tested against it through the pipeline, overflowing windows included:
- `truncate_pair` is HF's `truncate_encodings`: the cut-off tokens become overflowing windows overlapping by
  `stride`; strategies longest_first / only_first / only_second, direction right or left.
- `pad_encodings` pads a batch to a fixed length or to its longest encoding, rounded up to a multiple.
Word ids are cut and padded with the tokens (padding: None); left padding moves the sequence ranges.
Deviation: `max_length` below the number of special tokens is an error (HF's unsigned subtraction wraps
around there and nothing is truncated).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.errors import LlmlabError
from llmlab.tokenizer.encoding import Encoding, empty, shifted_ranges

__all__ = ["Padding", "Truncation", "pad", "pad_encodings", "truncate", "truncate_pair"]

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
    """Tokens [start, stop) of `e`, with no windows and no sequence ranges (HF's truncation drops them)."""
    return Encoding(
        e.ids[start:stop],
        e.tokens[start:stop],
        e.offsets[start:stop],
        e.type_ids[start:stop],
        e.attention_mask[start:stop],
        e.special_tokens_mask[start:stop],
        [],
        None if e.word_ids is None else e.word_ids[start:stop],
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
        out = empty()
        out.overflowing = [e]
        return out
    if stride >= max_length:
        raise LlmlabError(
            f"truncation stride {stride} must be smaller than the room left for the sequence ({max_length} "
            "tokens: max_length minus the special tokens)"
        )
    step = max_length - stride
    windows = []
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
            n1 = max_length // 2
            n2 = max_length // 2 + max_length % 2
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
    """Pad `e` and its windows in place to `length` tokens (nothing when already as long).

    `e` may be an encoding of the compiled core, which has no word ids or sequence ranges.
    """
    for window in e.overflowing:
        pad(window, length, p)
    k = length - len(e.ids)
    if k <= 0:
        return e
    fields = [
        (e.ids, p.pad_id),
        (e.tokens, p.pad_token),
        (e.offsets, (0, 0)),
        (e.type_ids, p.pad_type_id),
        (e.attention_mask, 0),
        (e.special_tokens_mask, 1),
    ]
    words = getattr(e, "word_ids", None)
    if words is not None:
        fields.append((words, None))
    for values, filler in fields:
        if p.direction == "right":
            values.extend([filler] * k)
        else:
            values[:0] = [filler] * k
    if p.direction == "left" and getattr(e, "sequence_ranges", None):
        e.sequence_ranges = shifted_ranges(e.sequence_ranges, k)
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
