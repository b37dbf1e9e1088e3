"""What the tokenizer returns: `Encoding`, its positions (characters, tokens, words, sequences) and merging.

Follows Hugging Face `tokenizers` (tokenizers/src/tokenizer/encoding.rs) and is tested against it through the
pipeline, overflowing windows included:
- `merge` concatenates two encodings and combines their overflowing windows exactly as HF's
  `Encoding::merge_with` does (every window of the first with the second, window by window, nested), so pairs
  with overflow give HF's encodings in HF's order.
- Word ids and sequence ranges (HF `words`, `sequence_ranges`) follow the tokens through merging, truncation
  and padding (`truncation.py`), and `Encoding` maps between characters, tokens, words and sequences as HF's
  does (`char_to_token`, `word_to_tokens`, ...), quirks included: a range is looked up per sequence, and where
  no sequence has one (a single input without post-processor) the whole encoding is sequence 0.
Deviation: a negative index gives None (HF raises OverflowError). An encoding without word ids (the compiled
core's, which does not track them yet) answers no position query: an LlmlabError names the way out.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
from itertools import repeat

from llmlab.errors import LlmlabError

__all__ = ["Encoding", "empty", "merge", "merge_all", "shifted_ranges"]


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
        word_ids: the index of the word each token comes from, within its sequence (None: a special token or
            padding); the words are the pre-tokenizer's pieces and the added tokens in the text, or the input
            words of pre-tokenized input. None when not tracked (an encoding of the compiled core).
        sequence_ranges: sequence index -> (start, stop) of its tokens, as the post-processor sets them.
    """

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    type_ids: list[int]
    attention_mask: list[int]
    special_tokens_mask: list[int]
    overflowing: list[Encoding] = field(default_factory=list)
    word_ids: list[int | None] | None = None
    sequence_ranges: dict[int, tuple[int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    # ---- positions: characters, tokens, words, sequences (HF encoding.rs) -------------------------------

    @property
    def n_sequences(self) -> int:
        """How many input sequences the encoding holds (1 when the post-processor set no ranges)."""
        return len(self._ranges()) or 1

    @property
    def sequence_ids(self) -> list[int | None]:
        """The sequence each token belongs to (None: a special token or padding)."""
        out: list[int | None] = [None] * len(self.ids)
        for sequence in range(self.n_sequences):
            start, stop = self._range(sequence)
            out[start:stop] = repeat(sequence, stop - start)
        return out

    def _range(self, sequence_index: int) -> tuple[int, int]:
        return self._ranges().get(sequence_index, (0, len(self.ids)))

    def _ranges(self) -> dict[int, tuple[int, int]]:
        """The sequence ranges, tracked together with the word ids (an encoding without word ids has no
        trustworthy ranges either: the positions below are refused rather than guessed)."""
        self._words()
        return self.sequence_ranges

    def _words(self) -> list[int | None]:
        if self.word_ids is None:
            raise LlmlabError(
                "this Encoding has no word ids or sequence ranges (the compiled core does not track them yet: "
                "set Tokenizer.track_words = True to encode on the Python path, which does)"
            )
        return self.word_ids

    def token_to_sequence(self, token_index: int) -> int | None:
        """The sequence of token `token_index` (0 for a single input), or None."""
        if not 0 <= token_index <= len(self.ids):  # HF: the index one past the end still counts
            return None
        ranges = self._ranges().items()
        return next((s for s, (a, b) in ranges if a <= token_index < b), None) if ranges else 0

    def token_to_chars(self, token_index: int) -> tuple[int, int] | None:
        """The (start, end) character span of token `token_index` in its sequence, or None."""
        if self.token_to_sequence(token_index) is None or token_index >= len(self.ids):
            return None
        return self.offsets[token_index]

    def token_to_word(self, token_index: int) -> int | None:
        """The word of token `token_index` in its sequence, or None (a special token, out of range)."""
        words = self._words()
        if self.token_to_sequence(token_index) is None or token_index >= len(words):
            return None
        return words[token_index]

    def char_to_token(self, char_pos: int, sequence_index: int = 0) -> int | None:
        """The first token of sequence `sequence_index` whose span holds character `char_pos`, or None."""
        start, stop = self._range(sequence_index)
        offsets = self.offsets
        return next((i for i in range(start, stop) if offsets[i][0] <= char_pos < offsets[i][1]), None)

    def char_to_word(self, char_pos: int, sequence_index: int = 0) -> int | None:
        """The word holding character `char_pos` of sequence `sequence_index`, or None."""
        token = self.char_to_token(char_pos, sequence_index)
        return None if token is None else self.token_to_word(token)

    def word_to_tokens(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        """(first token, last token + 1) of word `word_index` of sequence `sequence_index`, or None.

        As HF: the tokens are read in order up to the first of a later word.
        """
        words, (start, stop) = self._words(), self._range(sequence_index)
        first = last = None
        for i in range(start, stop):
            word = words[i]
            if word is not None and word > word_index:
                break
            if word == word_index:
                first, last = i if first is None else first, i
        return None if first is None else (first, last + 1)

    def word_to_chars(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        """The character span of word `word_index` of sequence `sequence_index`, or None."""
        tokens = self.word_to_tokens(word_index, sequence_index)
        return None if tokens is None else (self.offsets[tokens[0]][0], self.offsets[tokens[1] - 1][1])


def _join(a: list | None, b: list | None) -> list | None:
    """Two word-id lists one after the other (None, not tracked, wins)."""
    return None if a is None or b is None else a + b


def shifted_ranges(ranges: dict[int, tuple[int, int]], shift: int) -> dict[int, tuple[int, int]]:
    """Sequence ranges moved `shift` tokens to the right."""
    return {s: (a + shift, b + shift) for s, (a, b) in ranges.items()}


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
        _join(first.word_ids, second.word_ids),
        first.sequence_ranges | shifted_ranges(second.sequence_ranges, len(first.ids)),
    )


def merge_all(encodings: SequenceOf[Encoding]) -> Encoding:
    """Merge a list of encodings left to right (one copy of the first when alone)."""
    if not any(e.overflowing for e in encodings):  # the common case: plain concatenation
        ids, tokens, offsets, types, attention, special, words, ranges = [], [], [], [], [], [], [], {}
        for e in encodings:
            ranges |= shifted_ranges(e.sequence_ranges, len(ids))
            ids += e.ids
            tokens += e.tokens
            offsets += e.offsets
            types += e.type_ids
            attention += e.attention_mask
            special += e.special_tokens_mask
            if words is not None and e.word_ids is not None:
                words += e.word_ids
            else:
                words = None  # not tracked in one of them
        return Encoding(ids, tokens, offsets, types, attention, special, [], words, ranges)
    out = encodings[0]
    for e in encodings[1:]:
        out = merge(out, e)
    return out if len(encodings) > 1 else merge(out, empty())


def empty() -> Encoding:
    """An encoding of no tokens."""
    return Encoding([], [], [], [], [], [], [], [])
