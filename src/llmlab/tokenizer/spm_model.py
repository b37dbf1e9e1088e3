"""SentencePiece model files (.model): the serialized `ModelProto`, read without protobuf.

Spec: sentencepiece `src/sentencepiece_model.proto` (proto2) and the protobuf wire format (varints, tag =
field << 3 | wire type; 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32). Only the fields that decide how
text is tokenized are kept: the pieces (text, score, type), the model type and byte fallback of the
TrainerSpec, and the NormalizerSpec (precompiled charsmap, add_dummy_prefix, remove_extra_whitespaces,
escape_whitespaces). Tested against the `sentencepiece` library reading the same files (`convert.py` turns the
model into a tokenizer that gives sentencepiece's ids).

Every problem (a truncated or corrupt file, a field of the wrong kind) is one `LlmlabError` naming the file.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from llmlab.errors import LlmlabError

__all__ = ["PIECE_TYPES", "SpmModel", "read_spm_model"]

PIECE_TYPES = {1: "normal", 2: "unknown", 3: "control", 4: "user_defined", 5: "unused", 6: "byte"}
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}


@dataclass
class SpmModel:
    """What a SentencePiece model says about tokenizing (field names as in sentencepiece_model.proto)."""

    pieces: list[tuple[str, float, str]] = field(default_factory=list)  # (piece, score, type name)
    model_type: str = "unigram"
    byte_fallback: bool = False
    treat_whitespace_as_suffix: bool = False
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


class _Reader:
    """Protobuf wire-format fields of one message: (field number, wire type, value)."""

    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            if self.pos >= len(self.data):
                raise LlmlabError(f"{self.what}: truncated varint at byte {self.pos}")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise LlmlabError(f"{self.what}: corrupt varint at byte {self.pos}")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise LlmlabError(
                f"{self.what}: truncated: a field of {n} bytes at byte {self.pos} runs past the end"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def fields(self):
        while self.pos < len(self.data):
            tag = self.varint()
            number = tag >> 3
            wire = tag & 7
            if number == 0:
                raise LlmlabError(f"{self.what}: corrupt: field number 0 at byte {self.pos}")
            if wire == 0:
                yield number, wire, self.varint()
            elif wire == 1:
                yield number, wire, self.take(8)
            elif wire == 2:
                yield number, wire, self.take(self.varint())
            elif wire == 5:
                yield number, wire, self.take(4)
            else:
                raise LlmlabError(f"{self.what}: corrupt: unknown wire type {wire} at byte {self.pos}")


def _expect(wire: int, wanted: int, what: str, name: str) -> None:
    if wire != wanted:
        raise LlmlabError(f"{what}: corrupt: field {name} has wire type {wire}, expected {wanted}")


def _text(value: bytes, what: str, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise LlmlabError(f"{what}: corrupt: {name} is not UTF-8") from None


def _piece(data: bytes, what: str) -> tuple[str, float, str]:
    piece, score, kind = None, 0.0, 1
    for number, wire, value in _Reader(data, what).fields():
        if number == 1:
            _expect(wire, 2, what, "piece")
            piece = _text(value, what, "a piece")
        elif number == 2:
            _expect(wire, 5, what, "score")
            (score,) = struct.unpack("<f", value)
        elif number == 3:
            _expect(wire, 0, what, "type")
            kind = value
    if not piece or kind not in PIECE_TYPES:
        raise LlmlabError(f"{what}: corrupt: a piece is empty or has unknown type {kind}")
    return piece, score, PIECE_TYPES[kind]


def _trainer_spec(data: bytes, model: SpmModel, what: str) -> None:
    for number, wire, value in _Reader(data, what).fields():
        if number == 3:
            _expect(wire, 0, what, "model_type")
            if value not in MODEL_TYPES:
                raise LlmlabError(f"{what}: corrupt: unknown model type {value}")
            model.model_type = MODEL_TYPES[value]
        elif number == 24:
            model.treat_whitespace_as_suffix = bool(value)
        elif number == 35:
            model.byte_fallback = bool(value)


def _normalizer_spec(data: bytes, model: SpmModel, what: str) -> None:
    for number, wire, value in _Reader(data, what).fields():
        if number == 2:
            _expect(wire, 2, what, "precompiled_charsmap")
            model.precompiled_charsmap = value
        elif number in (3, 4, 5):
            _expect(wire, 0, what, "a normalizer flag")
            name = {3: "add_dummy_prefix", 4: "remove_extra_whitespaces", 5: "escape_whitespaces"}[number]
            setattr(model, name, bool(value))


def parse_spm_model(data: bytes, what: str = "model") -> SpmModel:
    """Parse the bytes of a serialized ModelProto.

    Raises:
        LlmlabError: truncated or corrupt data, or no pieces; the message starts with `what`.
    """
    model = SpmModel()
    for number, wire, value in _Reader(data, what).fields():
        if number == 1:
            _expect(wire, 2, what, "pieces")
            model.pieces.append(_piece(value, what))
        elif number == 2:
            _expect(wire, 2, what, "trainer_spec")
            _trainer_spec(value, model, what)
        elif number == 3:
            _expect(wire, 2, what, "normalizer_spec")
            _normalizer_spec(value, model, what)
    if not model.pieces:
        raise LlmlabError(f"{what}: not a SentencePiece model (no pieces)")
    return model


def read_spm_model(path: str | os.PathLike) -> SpmModel:
    """Read a SentencePiece .model file.

    Raises:
        LlmlabError: the file is missing, truncated or corrupt.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read SentencePiece model: {e.strerror}") from None
    return parse_spm_model(data, str(path))
