"""The token ↔ id lookups that every model with a `vocab` dict shares (WordPiece, BPE)."""

from __future__ import annotations


class VocabLookup:
    """Mixin: `vocab` (token → id) and `_id_to_token` (its inverse), set by the model's constructor."""

    vocab: dict[str, int]
    _id_to_token: dict[int, str]

    def id_to_token(self, id: int) -> str | None:
        """The token of `id`, or None when no token has it."""
        return self._id_to_token.get(id)

    def token_to_id(self, token: str) -> int | None:
        """The id of `token`, or None when it is not in the vocabulary."""
        return self.vocab.get(token)
