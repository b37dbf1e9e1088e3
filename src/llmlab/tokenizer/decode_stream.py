"""Streaming decoding for generation: text comes out token by token, never half a character.

Follows Hugging Face `tokenizers` `DecodeStream` (tokenizers/src/tokenizer/mod.rs, `step_decode_stream`) and is
tested against it token for token: the ids since the last emitted text are decoded together with a few
before them (the "prefix", so decoders that look at a token's neighbours, such as Metaspace's leading space
and WordPiece's "##", decode as in the full text); new text is emitted only once it is longer than the
prefix's and does not end in U+FFFD, so the bytes of a partial UTF-8 character (byte-level BPE, byte
fallback) are held back until the character is complete.
"""

from __future__ import annotations

from llmlab.errors import LlmlabError

__all__ = ["DecodeStream"]


class DecodeStream:
    """Decode one id at a time: `step` returns the new text, or None while it holds bytes back."""

    def __init__(self, skip_special_tokens: bool = False):
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.prefix = ""
        self.prefix_index = 0

    def step(self, tokenizer, id: int) -> str | None:
        """Add one id.

        Args:
            tokenizer: the `Tokenizer` whose ids these are.
            id: the next id.

        Returns:
            The text this id completes, or None when there is none yet.

        Raises:
            LlmlabError: the decoded text no longer starts with what was emitted (a decoder that rewrites
                earlier text; HF raises "InvalidPrefix" there).
        """
        self.ids.append(id)
        text = tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)
        if len(text.encode()) <= len(self.prefix.encode()) or text.endswith("\ufffd"):  # HF counts bytes
            return None
        if not text.startswith(self.prefix):
            raise LlmlabError("DecodeStream: the decoded text does not start with the text already emitted")
        new_text = text[len(self.prefix) :]
        new_prefix_index = len(self.ids) - self.prefix_index
        self.ids = self.ids[self.prefix_index :]
        self.prefix = tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)
        self.prefix_index = new_prefix_index
        return new_text
