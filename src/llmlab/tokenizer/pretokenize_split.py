"""Splitting pre-tokenizers: cut the text at a pattern, keeping or dropping the delimiters; pieces are substrings.

Each follows the Hugging Face `tokenizers` pre-tokenizer of the same name (tokenizers/src/pre_tokenizers/
split.rs, punctuation.rs, digits.rs, delimiter.rs, whitespace.rs, unicode_scripts/, fixed_length.rs, and the
`Pattern` / `NormalizedString::split` machinery of tokenizer/pattern.rs, normalizer.rs), reads/writes the same
JSON and is tested against it. A pattern cuts the text into matches and non-matches (`_find`); the behaviour
says what becomes of a match (HF `SplitDelimiterBehavior`):
removed (dropped), isolated (its own piece), merged_with_previous / merged_with_next (joined to the piece
before / after), contiguous (consecutive matches form one piece). Empty pieces are dropped.
- `Split`: a literal string or a regex (HF: Oniguruma; here `regex`), `invert` swaps matches and the rest.
- `Punctuation`: each punctuation character (P* and ASCII punctuation) is a delimiter.
- `Digits`: numeric characters (Unicode N*) apart from the rest, one by one or in runs.
- `CharDelimiterSplit`: one character, removed. `WhitespaceSplit`: White_Space, removed.
P* and White_Space are HF's classes (the unicode_categories crate's, Rust's: `unicode_classes.py`).
- `UnicodeScripts` (`unicode_scripts.py`): a cut wherever the script changes.
- `FixedLength`: pieces of `length` characters.
- `Sequence`: several pre-tokenizers, each splitting the pieces of the one before (through `split_aligned`
  when a member's pieces are not substrings, as ByteLevel's and Metaspace's).
`pretokenizer_from_hf` reads every pre-tokenizer of a tokenizer.json.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf

import regex

from llmlab.errors import LlmlabError
from llmlab.tokenizer.normalize_sp import compile_pattern, pattern_from_hf
from llmlab.tokenizer.pretokenize import (
    Aligned,
    BertPreTokenizer,
    ByteLevel,
    Metaspace,
    Piece,
    PreTokenizer,
    Whitespace,
)
from llmlab.tokenizer.unicode_classes import PUNCTUATION, WHITE_SPACE, stand_in
from llmlab.tokenizer.unicode_scripts import UnicodeScripts

Spans = tuple[list[str], list[tuple[int, int]]]
Match = tuple[int, int, bool]  # (start, end, is_match)

BEHAVIORS = {
    "removed": "Removed",
    "isolated": "Isolated",
    "merged_with_previous": "MergedWithPrevious",
    "merged_with_next": "MergedWithNext",
    "contiguous": "Contiguous",
}
_PUNCT = regex.compile(f"[{PUNCTUATION}\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e]")
_DIGIT = regex.compile(r"\p{N}")
_SPACE = regex.compile(f"[{WHITE_SPACE}]")


def behavior_name(value: str) -> str:
    """Our name of a split behaviour, from ours ("merged_with_next") or HF's ("MergedWithNext")."""
    for ours, hf in BEHAVIORS.items():
        if value in (ours, hf):
            return ours
    raise LlmlabError(f"split behavior must be one of {', '.join(BEHAVIORS)}, not {value!r}")


def _find(pattern: regex.Pattern, text: str) -> list[Match]:
    """Matches and the text between them, covering `text` (HF `Pattern::find_matches`; a character class
    makes each matching character a match of its own)."""
    out: list[Match] = []
    prev = 0
    for m in pattern.finditer(text):
        start, end = m.span()
        if prev != start:
            out.append((prev, start, False))
        out.append((start, end, True))
        prev = end
    if prev != len(text):
        out.append((prev, len(text), False))
    return out


def split_matches(text: str, matches: list[Match], behavior: str) -> Spans:
    """The pieces the behaviour makes of `matches`, empty ones dropped (HF `NormalizedString::split`)."""
    spans: list[list[int]] = []
    if behavior in ("isolated", "removed"):
        spans = [[a, b] for a, b, hit in matches if not (hit and behavior == "removed")]
    elif behavior == "contiguous":
        previous = False
        for a, b, hit in matches:
            if spans and hit == previous:
                spans[-1][1] = b
            else:
                spans.append([a, b])
            previous = hit
    elif behavior == "merged_with_previous":
        previous = False
        for a, b, hit in matches:
            if spans and hit and not previous:
                spans[-1][1] = b
            else:
                spans.append([a, b])
            previous = hit
    else:  # merged_with_next, walking backwards
        previous = False
        for a, b, hit in reversed(matches):
            if spans and hit and not previous:
                spans[-1][0] = a
            else:
                spans.append([a, b])
            previous = hit
        spans.reverse()
    kept = [(a, b) for a, b in spans if b > a]
    return [text[a:b] for a, b in kept], kept


class _PatternSplit(PreTokenizer):
    """A pre-tokenizer that cuts at a pattern with a behaviour (subclasses set them)."""

    pattern: regex.Pattern
    behavior = "isolated"
    invert = False
    hf_classes = False  # the pattern matches HF's character classes: run it on `stand_in(text)`

    def split_spans(self, text: str) -> Spans:
        matches = _find(self.pattern, stand_in(text) if self.hf_classes else text)
        if self.invert:
            matches = [(a, b, not hit) for a, b, hit in matches]
        return split_matches(text, matches, self.behavior)


class Split(_PatternSplit):
    """Split at a literal string or a regex."""

    def __init__(
        self, pattern: str, behavior: str = "isolated", invert: bool = False, is_regex: bool = False
    ):
        self.source = pattern
        self.is_regex = is_regex
        self.behavior = behavior_name(behavior)
        self.invert = invert
        self.pattern = compile_pattern(pattern, is_regex, "Split")

    def split_spans(self, text: str) -> Spans:
        if not self.source:  # HF: an empty string matches nothing
            return ([text], [(0, len(text))]) if text else ([], [])
        return super().split_spans(text)

    def to_hf(self) -> dict:
        return {
            "type": "Split",
            "pattern": {"Regex" if self.is_regex else "String": self.source},
            "behavior": BEHAVIORS[self.behavior],
            "invert": self.invert,
        }


class Punctuation(_PatternSplit):
    """Each punctuation character is a delimiter."""

    pattern, hf_classes = _PUNCT, True

    def __init__(self, behavior: str = "isolated"):
        self.behavior = behavior_name(behavior)

    def to_hf(self) -> dict:
        return {"type": "Punctuation", "behavior": BEHAVIORS[self.behavior]}


class Digits(_PatternSplit):
    """Numbers apart from the rest: each digit alone (`individual_digits`) or runs of them."""

    pattern = _DIGIT

    def __init__(self, individual_digits: bool = False):
        self.individual_digits = individual_digits
        self.behavior = "isolated" if individual_digits else "contiguous"

    def to_hf(self) -> dict:
        return {"type": "Digits", "individual_digits": self.individual_digits}


class CharDelimiterSplit(_PatternSplit):
    """Split at one character, which is dropped."""

    behavior = "removed"

    def __init__(self, delimiter: str):
        if len(delimiter) != 1:
            raise LlmlabError(f"CharDelimiterSplit delimiter must be one character, not {delimiter!r}")
        self.delimiter = delimiter
        self.pattern = regex.compile(regex.escape(delimiter))

    def to_hf(self) -> dict:
        return {"type": "CharDelimiterSplit", "delimiter": self.delimiter}


class WhitespaceSplit(_PatternSplit):
    """Split at whitespace, which is dropped."""

    pattern, behavior, hf_classes = _SPACE, "removed", True

    def to_hf(self) -> dict:
        return {"type": "WhitespaceSplit"}


class FixedLength(PreTokenizer):
    """Pieces of `length` characters (the last one shorter)."""

    def __init__(self, length: int = 5):
        if length < 1:
            raise LlmlabError(f"FixedLength length must be at least 1, not {length}")
        self.length = length

    def split_spans(self, text: str) -> Spans:
        spans = [(a, min(a + self.length, len(text))) for a in range(0, len(text), self.length)]
        return [text[a:b] for a, b in spans], spans

    def to_hf(self) -> dict:
        return {"type": "FixedLength", "length": self.length}


class Sequence(PreTokenizer):
    """Apply several pre-tokenizers, each to the pieces of the previous one."""

    def __init__(self, pretokenizers: SequenceOf[PreTokenizer]):
        self.pretokenizers = list(pretokenizers)
        self.substring = all(p.substring for p in self.pretokenizers)

    def split(self, text: str) -> list[Piece]:
        if not self.substring:
            raise LlmlabError("this pre-tokenizer Sequence changes its pieces: use split_aligned")
        pieces = [(text, 0, len(text))]
        for p in self.pretokenizers:
            pieces = [(w, s + a, s + b) for piece, s, _ in pieces for w, a, b in p.split(piece)]
        return pieces

    def split_aligned(self, pieces: list[Aligned], first: bool) -> list[Aligned]:
        for p in self.pretokenizers:
            pieces = p.split_aligned(pieces, first)
        return pieces

    def to_hf(self) -> dict:
        return {"type": "Sequence", "pretokenizers": [p.to_hf() for p in self.pretokenizers]}


def pretokenizer_from_hf(d: dict | None) -> PreTokenizer | None:
    """Build a pre-tokenizer from the `pre_tokenizer` object of an HF tokenizer.json (None stays None).

    Raises:
        LlmlabError: an unknown or malformed pre-tokenizer.
    """
    if d is None:
        return None
    kind = d.get("type") if isinstance(d, dict) else None
    try:
        if kind in _SIMPLE:
            return _SIMPLE[kind]()
        if kind == "ByteLevel":
            return ByteLevel(
                d.get("add_prefix_space", False), d.get("use_regex", True), d.get("trim_offsets", True)
            )
        if kind == "Metaspace":
            scheme = d.get("prepend_scheme", "always" if d.get("add_prefix_space", True) else "never")
            return Metaspace(d.get("replacement", "▁"), scheme, d.get("split", True))
        if kind == "Split":
            pattern, is_regex = pattern_from_hf(d["pattern"], "Split")
            return Split(pattern, d["behavior"], bool(d.get("invert", False)), is_regex)
        if kind == "Punctuation":
            return Punctuation(d.get("behavior", "Isolated"))
        if kind == "Digits":
            return Digits(bool(d.get("individual_digits", False)))
        if kind == "CharDelimiterSplit":
            return CharDelimiterSplit(d["delimiter"])
        if kind == "FixedLength":
            return FixedLength(int(d.get("length", 5)))
        if kind == "Sequence":
            return Sequence([pretokenizer_from_hf(p) for p in d["pretokenizers"]])
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise LlmlabError(f"malformed pre_tokenizer {kind!r}: missing or bad field {e}") from None
    raise LlmlabError(f"unsupported pre_tokenizer {kind!r}")


_SIMPLE = {
    "BertPreTokenizer": BertPreTokenizer,
    "Whitespace": Whitespace,
    "WhitespaceSplit": WhitespaceSplit,
    "UnicodeScripts": UnicodeScripts,
}
