"""Added tokens: strings matched in the text before the model sees it, such as [CLS] or <|endoftext|>.

Follows Hugging Face `tokenizers` (tokenizers/src/tokenizer/added_vocabulary.rs) and is tested against it
through the pipeline, ids and offsets included:
- tokens are found leftmost-longest; those with `normalized=False` (special tokens, as a rule) in the raw
  text, the others in each remaining piece once it is normalized;
- `single_word` skips a match inside a word (Rust regex's `\\w` on either side), `lstrip` / `rstrip` let the
  match swallow the whitespace on its left / right;
- a new token gets the model's vocabulary size as id, or one past the largest added id beyond it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import regex

__all__ = ["SPACE_CHAR", "WORD_CHAR", "AddedToken", "AddedTokenMatcher", "AddedVocabulary", "next_added_id"]

WORD_CHAR = regex.compile(r"[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]")  # Rust regex's \w
SPACE_CHAR = regex.compile(r"\p{White_Space}")  # what lstrip / rstrip swallow
_SPACES_BEFORE = regex.compile(r"\p{White_Space}*\Z")
_SPACES_AFTER = regex.compile(r"\p{White_Space}*")


@dataclass(frozen=True)
class AddedToken:
    """A token matched in the text before the model sees it (HF `AddedToken`).

    Attributes:
        id: its id (the model's id when the model has the token).
        content: the text it matches.
        special: skipped by `decode(skip_special_tokens=True)`.
        single_word: match only when not inside a word.
        lstrip, rstrip: the match swallows the whitespace on its left / right.
        normalized: match in the normalized text (default: not for special tokens, as HF).
    """

    id: int
    content: str
    special: bool = False
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool | None = None

    def __post_init__(self):
        if self.normalized is None:
            object.__setattr__(self, "normalized", not self.special)

    def to_hf(self) -> dict:
        return {
            "id": self.id,
            "content": self.content,
            "single_word": self.single_word,
            "lstrip": self.lstrip,
            "rstrip": self.rstrip,
            "normalized": self.normalized,
            "special": self.special,
        }


class AddedTokenMatcher:
    """Leftmost-longest search for a set of added tokens, with HF's single_word / lstrip / rstrip rules."""

    def __init__(self, tokens: dict[str, AddedToken]):
        """Args: tokens: the text each token matches -> the token."""
        self.tokens = tokens
        longest_first = sorted(tokens, key=len, reverse=True)  # alternation tries them in order
        self.pattern = regex.compile("|".join(map(regex.escape, longest_first))) if tokens else None

    def split(self, text: str) -> list[tuple[int, int, AddedToken | None]] | None:
        """(start, end, token or None) pieces covering `text`, or None when no token occurs in it."""
        if self.pattern is None or self.pattern.search(text) is None:
            return None
        pieces, pos = [], 0
        for m in self.pattern.finditer(text):
            start, stop = m.span()
            tok = self.tokens[m.group()]
            if tok.single_word and (
                (start > 0 and WORD_CHAR.match(text, start - 1))
                or (stop < len(text) and WORD_CHAR.match(text, stop))
            ):
                continue
            if tok.lstrip:
                start = max(_SPACES_BEFORE.search(text, 0, start).start(), pos)
            if tok.rstrip:
                stop = _SPACES_AFTER.match(text, stop).end()
            if pos < start:
                pieces.append((pos, start, None))
            pieces.append((start, stop, tok))
            pos = stop
        if pos < len(text):
            pieces.append((pos, len(text), None))
        return pieces


def next_added_id(vocab_size: int, added_ids: list[int]) -> int:
    """The id HF gives a new added token: the model's size, or one past the largest added id beyond it."""
    top = max(added_ids, default=None)
    return vocab_size if top is None or (top < vocab_size and vocab_size) else top + 1


class AddedVocabulary:
    """The added tokens of a tokenizer, in the order they were added (HF `AddedVocabulary`)."""

    def __init__(self, tokens: Iterable[AddedToken] = ()):
        self.tokens: list[AddedToken] = []
        for token in tokens:
            self.add(token)

    def add(self, token: AddedToken) -> bool:
        """Add one token, replacing one of the same content; False when it is already there (or empty)."""
        if not token.content or token in self.tokens:
            return False
        self.tokens = [t for t in self.tokens if t.content != token.content] + [token]
        return True

    def ids(self) -> dict[str, int]:
        """content -> id."""
        return {t.content: t.id for t in self.tokens}

    def read_back(self, normalize: Callable[[str], str]) -> dict[int, str]:
        """id -> token, as HF reads it back: a normalized token in its normalized form."""
        return {t.id: normalize(t.content) if t.normalized else t.content for t in self.tokens}

    def matchers(self, normalize: Callable[[str], str]) -> tuple[AddedTokenMatcher, AddedTokenMatcher]:
        """The matchers for the raw text (tokens with `normalized=False`) and for the normalized text.

        As HF: special tokens take precedence over the others, and among normalized tokens that normalize
        alike the earliest wins.
        """
        ordered = [t for t in self.tokens if t.special] + [t for t in self.tokens if not t.special]
        raw = AddedTokenMatcher({t.content: t for t in ordered if not t.normalized})
        return raw, AddedTokenMatcher({normalize(t.content): t for t in reversed(ordered) if t.normalized})
