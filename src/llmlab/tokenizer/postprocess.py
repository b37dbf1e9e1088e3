"""Post-processors: the stage after the model, turning one or two token sequences into the model's input.

Follows Hugging Face `tokenizers` (tokenizers/src/processors/*.rs, tokenizer/encoding.rs), reads/writes the
same JSON and is tested against it, overflowing windows included:
- `TemplateProcessing`: a template per input kind, e.g. `[CLS] $A [SEP]` and `[CLS] $A [SEP] $B:1 [SEP]:1`,
  each piece a sequence or a special token with its type id (BERT, Devlin et al. 2019; BOS/EOS).
- `BertProcessing`, `RobertaProcessing`: the fixed BERT and RoBERTa (Liu et al. 2019) templates, run as
  templates; RoBERTa also trims offsets as `ByteLevel` does.
- `ByteLevel`: no special tokens; with `trim_offsets`, a token's offsets leave out its leading and trailing
  spaces ('Ġ'), except the one space `add_prefix_space` put before the first word.
- `Sequence`: several processors in order.

An `Encoding` may carry `overflowing` encodings (the windows truncation cut off). Merging two encodings
combines their windows exactly as HF's `Encoding::merge_with` does (every window of the first with the second,
window by window, nested), so pairs with overflow give HF's encodings in HF's order.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field

from llmlab.errors import LlmlabError

_SPACES = frozenset(
    "Ġ\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
)


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


def _with_type_id(e: Encoding, type_id: int) -> Encoding:
    """`e` with every type id set to `type_id`; its overflowing windows keep theirs (as HF)."""
    return Encoding(
        e.ids,
        e.tokens,
        e.offsets,
        [type_id] * len(e.ids),
        e.attention_mask,
        e.special_tokens_mask,
        e.overflowing,
    )


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
        return merge_all(self.process_encodings(encodings, add_special_tokens))


def _parse_piece(piece: str | dict) -> tuple[str, str, int]:
    """One template piece as (kind, name, type_id): kind "seq" (name "A"/"B") or "special" (name its key).

    Accepts HF's JSON form ({"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {...}}) and its string
    shorthand ("$A", "$B:1", "$1", "[SEP]:1").
    """
    if isinstance(piece, dict) and len(piece) == 1:
        ((kind, body),) = piece.items()
        if kind in ("Sequence", "SpecialToken") and isinstance(body, dict):
            return ("seq" if kind == "Sequence" else "special"), body["id"], int(body.get("type_id", 0))
    if isinstance(piece, str) and piece:
        name, _, type_id = piece.partition(":")
        if type_id and not type_id.isdigit():
            raise LlmlabError(f"template piece {piece!r}: the type id after ':' must be a number")
        if not name.startswith("$"):
            return "special", name, int(type_id or 0)
        rest = name[1:].upper()
        if rest in ("", "A", "B") or rest.isdigit():
            seq = "B" if rest == "B" else "A"
            return "seq", seq, int(rest if rest.isdigit() else type_id or 0)
    raise LlmlabError(f"bad template piece {piece!r}")


class TemplateProcessing(PostProcessor):
    """Special tokens placed by a template, one for single inputs and one for pairs."""

    def __init__(self, single: list | str, pair: list | str, special_tokens: dict | list):
        """Build the processor.

        Args:
            single: template for one sequence: HF JSON pieces, or a string such as "[CLS] $A [SEP]".
            pair: template for two sequences; must use both $A and $B.
            special_tokens: {name: {"id": name, "ids": [...], "tokens": [...]}} (HF JSON), or a list of
                (token, id) pairs.

        Raises:
            LlmlabError: a malformed piece, a pair template without both sequences, a special token the
                templates use but `special_tokens` lacks, ids and tokens of different lengths.
        """
        if isinstance(special_tokens, list):
            special_tokens = {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in special_tokens}
        self.special_tokens = {
            k: {"id": k, "ids": list(v["ids"]), "tokens": list(v["tokens"])}
            for k, v in special_tokens.items()
        }
        self.single = [_parse_piece(p) for p in (single.split() if isinstance(single, str) else single)]
        self.pair = [_parse_piece(p) for p in (pair.split() if isinstance(pair, str) else pair)]
        self._check()
        self._specials = {
            (name, t): self._special(name, t)
            for kind, name, t in self.single + self.pair
            if kind == "special"
        }

    def _check(self) -> None:
        if {name for kind, name, _ in self.pair if kind == "seq"} != {"A", "B"}:
            raise LlmlabError("template for pairs must use both sequences $A and $B")
        for kind, name, _ in self.single + self.pair:
            if kind == "special" and name not in self.special_tokens:
                raise LlmlabError(
                    f"template uses special token {name!r}, which special_tokens does not define"
                )
        for name, st in self.special_tokens.items():
            if len(st["ids"]) != len(st["tokens"]):
                raise LlmlabError(f"special token {name!r}: ids and tokens must have the same length")

    def _special(self, name: str, type_id: int) -> Encoding:
        ids, tokens = self.special_tokens[name]["ids"], self.special_tokens[name]["tokens"]
        n = len(ids)
        return Encoding(ids, tokens, [(0, 0)] * n, [type_id] * n, [1] * n, [1] * n, [])

    def process(
        self, encoding: Encoding, pair: Encoding | None = None, add_special_tokens: bool = True
    ) -> Encoding:
        plain = type(self).process_encodings is TemplateProcessing.process_encodings
        if not plain or encoding.overflowing or (pair is not None and pair.overflowing):
            return super().process(encoding, pair, add_special_tokens)
        # the common case, no windows: concatenate the template's parts directly (what merge_all would do)
        ids, tokens, offsets, types, attention, special = [], [], [], [], [], []
        for kind, name, type_id in self.single if pair is None else self.pair:
            if kind == "seq":
                e = pair if name == "B" else encoding
                types += [type_id] * len(e.ids)
            elif add_special_tokens:
                e = self._specials[name, type_id]
                types += e.type_ids
            else:
                continue
            ids += e.ids
            tokens += e.tokens
            offsets += e.offsets
            attention += e.attention_mask
            special += e.special_tokens_mask
        return Encoding(ids, tokens, offsets, types, attention, special, [])

    def process_encodings(self, encodings: list[Encoding], add_special_tokens: bool) -> list[Encoding]:
        template = self.pair if len(encodings) == 2 else self.single
        out = []
        for kind, name, type_id in template:
            if kind == "seq":
                out.append(_with_type_id(encodings[name == "B"], type_id))
            elif add_special_tokens:
                out.append(self._specials[name, type_id])
        return out

    def added_tokens(self, is_pair: bool) -> int:
        template = self.pair if is_pair else self.single
        return sum(len(self.special_tokens[name]["ids"]) for kind, name, _ in template if kind == "special")

    def to_hf(self) -> dict:
        def pieces(template: list[tuple[str, str, int]]) -> list[dict]:
            return [
                {"Sequence" if k == "seq" else "SpecialToken": {"id": n, "type_id": t}}
                for k, n, t in template
            ]

        return {
            "type": "TemplateProcessing",
            "single": pieces(self.single),
            "pair": pieces(self.pair),
            "special_tokens": {k: dict(v) for k, v in sorted(self.special_tokens.items())},
        }


def trim_offsets(e: Encoding, add_prefix_space: bool) -> Encoding:
    """`e` (and its windows) with leading/trailing spaces ('Ġ' or whitespace) left out of each token's offsets.

    As HF's byte-level `process_offsets`: the one space `add_prefix_space` added before the first token (or a
    token starting at 0) is kept.
    """
    offsets = []
    for i, (token, (start, end)) in enumerate(zip(e.tokens, e.offsets, strict=True)):
        lead = next((k for k, c in enumerate(token) if c not in _SPACES), len(token))
        trail = next((k for k, c in enumerate(reversed(token)) if c not in _SPACES), len(token))
        if lead and not (add_prefix_space and lead == 1 and (i == 0 or start == 0)):
            start = min(start + lead, end)
        if trail and end >= trail:
            end = max(end - trail, start)
        offsets.append((start, end))
    windows = [trim_offsets(w, add_prefix_space) for w in e.overflowing]
    return Encoding(e.ids, e.tokens, offsets, e.type_ids, e.attention_mask, e.special_tokens_mask, windows)


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


class BertProcessing(TemplateProcessing):
    """BERT: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` (B's part type 1); nothing added without specials."""

    def __init__(self, sep: tuple[str, int], cls: tuple[str, int]):
        self.sep, self.cls = (sep[0], int(sep[1])), (cls[0], int(cls[1]))
        c, s = self.cls[0], self.sep[0]
        super().__init__([c, "$A", s], [c, "$A", s, "$B:1", f"{s}:1"], [self.cls, self.sep])

    def process_encodings(self, encodings: list[Encoding], add_special_tokens: bool) -> list[Encoding]:
        return super().process_encodings(encodings, True) if add_special_tokens else encodings

    def to_hf(self) -> dict:
        return {"type": "BertProcessing", "sep": list(self.sep), "cls": list(self.cls)}


def _all_type_ids_zero(e: Encoding) -> Encoding:
    """`e` with type id 0 everywhere, its windows included (RoBERTa has no segment embeddings)."""
    return Encoding(e.ids, e.tokens, e.offsets, [0] * len(e.ids), e.attention_mask, e.special_tokens_mask,
                    [_all_type_ids_zero(w) for w in e.overflowing])  # fmt: skip


class RobertaProcessing(TemplateProcessing):
    """RoBERTa: `<s> A </s>` and `<s> A </s> </s> B </s>` (all type 0), byte-level offset trimming."""

    def __init__(
        self,
        sep: tuple[str, int],
        cls: tuple[str, int],
        trim_offsets: bool = True,
        add_prefix_space: bool = True,
    ):
        self.sep, self.cls = (sep[0], int(sep[1])), (cls[0], int(cls[1]))
        self.trim_offsets, self.add_prefix_space = trim_offsets, add_prefix_space
        c, s = self.cls[0], self.sep[0]
        super().__init__([c, "$A", s], [c, "$A", s, s, "$B", s], [self.cls, self.sep])

    def process_encodings(self, encodings: list[Encoding], add_special_tokens: bool) -> list[Encoding]:
        if self.trim_offsets:
            encodings = [trim_offsets(e, self.add_prefix_space) for e in encodings]
        if not add_special_tokens:  # HF: type ids 0, but the windows keep theirs
            return [_with_type_id(e, 0) for e in encodings]
        return super().process_encodings([_all_type_ids_zero(e) for e in encodings], True)

    def added_tokens(self, is_pair: bool) -> int:
        return 4 if is_pair else 2

    def to_hf(self) -> dict:
        return {
            "type": "RobertaProcessing",
            "sep": list(self.sep),
            "cls": list(self.cls),
            "trim_offsets": self.trim_offsets,
            "add_prefix_space": self.add_prefix_space,
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


# ---- truncation and padding (HF utils/truncation.rs, utils/padding.rs, Encoding::truncate / pad) -------------

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
