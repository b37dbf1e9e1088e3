"""WordPiece model: split one pre-tokenized word greedily into the longest vocabulary pieces, left to right.

Paper: Schuster & Nakajima (2012), "Japanese and Korean Voice Search"; the greedy longest-match-first
encoding is Google BERT's `WordpieceTokenizer` (google-research/bert `tokenization.py`, Devlin et al. 2019).
Reference implementation, matched token for token (tested): Hugging Face `tokenizers` `models.WordPiece`
(tokenizers/src/models/wordpiece/mod.rs), including its JSON form (the "model" of tokenizer.json).

Encoding a word: from the current position take the longest substring that is a token (written with
`continuing_subword_prefix` when it does not start the word), move past it, repeat. A word longer than
`max_input_chars_per_word` characters, or one with a position where no substring is a token, becomes a
single `unk_token` spanning the whole word (as BERT and HF do).

Training: HF's WordPieceTrainer is its BpeTrainer with `continuing_subword_prefix="##"`; the trained vocabulary
(special tokens, alphabet, "##"-prefixed alphabet, merges) becomes the WordPiece vocabulary unchanged and the
merges are dropped. `train_wordpiece` does exactly that on top of `train_bpe`.

Deviation: offsets are character indices into the word (HF gives bytes; its pipeline converts them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from llmlab.errors import LlmlabError
from llmlab.tokenizer.vocab import VocabLookup

Token = tuple[int, int, int]  # (id, start, end), start/end character indices into the word


class WordPiece(VocabLookup):
    """Model stage of the pipeline. Works on one pre-tokenized word at a time.

    Attributes:
        vocab: token -> id.
        unk_token: the token of a word that cannot be split.
        continuing_subword_prefix: prefix of tokens that continue a word ("##").
        max_input_chars_per_word: longer words are a single `unk_token`.
    """

    def __init__(
        self,
        vocab: dict[str, int],
        unk_token: str = "[UNK]",
        continuing_subword_prefix: str = "##",
        max_input_chars_per_word: int = 100,
        cache_capacity: int = 100_000,
    ):
        """Build the model.

        Args:
            vocab: token -> id.
            unk_token: token for a word that cannot be split (it must be in `vocab` once one is met).
            continuing_subword_prefix: prefix of the tokens that do not start a word.
            max_input_chars_per_word: words longer than this (in characters) are `unk_token`.
            cache_capacity: how many words to remember (0: no cache).
        """
        self.vocab = dict(vocab)
        self.unk_token = unk_token
        self.continuing_subword_prefix = continuing_subword_prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        n = len(continuing_subword_prefix)
        cont = [len(t) - n for t in self.vocab if n and t.startswith(continuing_subword_prefix)]
        # no token is longer than these, so the search for the longest match can start there
        self._max_first = max(map(len, self.vocab), default=0)
        self._max_next = max(cont, default=0) if n else self._max_first
        self._cache: dict[str, tuple[Token, ...]] = {}
        self._cache_capacity = cache_capacity

    def tokenize(self, word: str) -> list[Token]:
        """Split one pre-tokenized word into tokens, greedy longest match first.

        Args:
            word: the word as the model sees it.

        Returns:
            (id, start, end) for each token; start/end are character indices into `word`. Cached per word
            (bounded cache).

        Raises:
            LlmlabError: the word cannot be split and `unk_token` is not in the vocabulary.
        """
        hit = self._cache.get(word)
        if hit is not None:
            return list(hit)
        tokens = self._split(word)
        if len(self._cache) < self._cache_capacity:
            self._cache[word] = tuple(tokens)
        return tokens

    def _split(self, word: str) -> list[Token]:
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [(self._unk_id(), 0, n)]
        whole = self.vocab.get(word)
        if whole is not None:
            return [(whole, 0, n)]
        vocab = self.vocab
        prefix = self.continuing_subword_prefix
        tokens: list[Token] = []
        start = 0
        while start < n:
            end = min(n, start + (self._max_next if start else self._max_first))
            while end > start:
                id_ = vocab.get(prefix + word[start:end] if start else word[start:end])
                if id_ is not None:
                    break
                end -= 1
            else:
                return [(self._unk_id(), 0, n)]
            tokens.append((id_, start, end))
            start = end
        return tokens

    def _unk_id(self) -> int:
        id_ = self.vocab.get(self.unk_token)
        if id_ is None:
            raise LlmlabError(f"WordPiece unk_token {self.unk_token!r} is not in the vocabulary")
        return id_

    def to_hf(self) -> dict:
        """The "model" object of an HF tokenizer.json (vocab in id order)."""
        return {
            "type": "WordPiece",
            "unk_token": self.unk_token,
            "continuing_subword_prefix": self.continuing_subword_prefix,
            "max_input_chars_per_word": self.max_input_chars_per_word,
            "vocab": dict(sorted(self.vocab.items(), key=lambda item: item[1])),
        }

    @classmethod
    def from_hf(cls, d: dict) -> WordPiece:
        """Build from the "model" object of an HF tokenizer.json (HF's defaults for missing options).

        Raises:
            LlmlabError: not a WordPiece model, or a missing or malformed vocab or option.
        """
        if not isinstance(d, dict) or d.get("type", "WordPiece") != "WordPiece":
            kind = d.get("type") if isinstance(d, dict) else type(d).__name__
            raise LlmlabError(f"expected a WordPiece model object, got {kind!r}")
        vocab = d.get("vocab")
        if not isinstance(vocab, dict) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in vocab.values()
        ):
            raise LlmlabError("WordPiece model: 'vocab' is missing or not a mapping of token -> integer id")
        unk = d.get("unk_token", "[UNK]")
        prefix = d.get("continuing_subword_prefix", "##")
        max_chars = d.get("max_input_chars_per_word", 100)
        if not isinstance(unk, str) or not isinstance(prefix, str) or not isinstance(max_chars, int):
            raise LlmlabError(
                "WordPiece model: unk_token and continuing_subword_prefix must be strings, "
                "max_input_chars_per_word an integer"
            )
        return cls(vocab, unk, prefix, max_chars)


def train_wordpiece(
    word_counts: dict[str, int],
    vocab_size: int,
    min_frequency: int = 0,
    special_tokens: Sequence[str] = (),
    limit_alphabet: int | None = None,
    initial_alphabet: Iterable[str] = (),
    continuing_subword_prefix: str = "##",
    criterion: str = "frequency",
    progress: Callable[[int, int], None] | None = None,
    unk_token: str = "[UNK]",
    max_input_chars_per_word: int = 100,
) -> WordPiece:
    """Learn a WordPiece vocabulary from pre-tokenized word counts, as HF's WordPieceTrainer does.

    Args:
        word_counts: each pre-tokenized word and its count.
        vocab_size: the size to stop at, special tokens included.
        min_frequency: a pair must occur at least this often to be merged.
        special_tokens: tokens that get the first ids, in this order (include `unk_token`).
        limit_alphabet: keep at most this many characters, the most frequent.
        initial_alphabet: characters to include even if the words lack them.
        continuing_subword_prefix: prefix of the tokens that do not start a word.
        criterion: "frequency" (HF: the most frequent pair) or "likelihood" (Schuster & Nakajima's
            count(ab) / (count(a) * count(b))).
        progress: called as `progress(merges_done, merges_wanted)`.
        unk_token: the model's unknown token (HF keeps its default "[UNK]").
        max_input_chars_per_word: the model's word-length limit (HF keeps its default 100).

    Returns:
        The trained `WordPiece` model: the BPE trainer's vocabulary, unchanged.

    Raises:
        LlmlabError: unknown `criterion`, or `vocab_size` too small for the special tokens and the alphabet.
    """
    from llmlab.tokenizer.bpe.trainer import train_bpe  # import here: bpe is only needed for training

    if criterion not in ("frequency", "likelihood"):
        raise LlmlabError(f"WordPiece criterion must be 'frequency' or 'likelihood', not {criterion!r}")
    bpe = train_bpe(
        word_counts,
        vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=initial_alphabet,
        limit_alphabet=limit_alphabet,
        continuing_subword_prefix=continuing_subword_prefix,
        score=criterion,
        progress=progress,
    )
    return WordPiece(bpe.vocab, unk_token, continuing_subword_prefix, max_input_chars_per_word)
