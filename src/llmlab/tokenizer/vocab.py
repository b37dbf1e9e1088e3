"""The token ↔ id lookups that every model with a `vocab` dict shares (WordPiece, BPE)."""

from __future__ import annotations

import functools


class VocabLookup:
    """Mixin: `vocab` (token → id), set by the model's constructor, and its inverse."""

    vocab: dict[str, int]

    @functools.cached_property
    def _id_to_token(self) -> dict[int, str]:
        """id -> token, made on first use (a tokenizer running on the compiled core seldom asks)."""
        return {i: t for t, i in self.vocab.items()}

    def id_to_token(self, id: int) -> str | None:
        """The token of `id`, or None when no token has it."""
        return self._id_to_token.get(id)

    def token_to_id(self, token: str) -> int | None:
        """The id of `token`, or None when it is not in the vocabulary."""
        return self.vocab.get(token)
