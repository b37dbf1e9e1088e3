"""Decoders: the last stage of the tokenizer pipeline, tokens back to text.

Each follows the Hugging Face `tokenizers` decoder of the same name (tokenizers/src/decoders/*.rs and the
decoder halves of pre_tokenizers/byte_level.rs and metaspace.rs), reads/writes the same JSON and is tested
against it. As in HF, a decoder works in two steps: `decode_chain` maps the list of tokens to a list of
strings (so decoders can be chained by `Sequence`), and `decode` joins the final list.

- `WordPiece`: drop the "##" of continuing tokens, put a space before the others; `cleanup` removes the
  space BERT's tokenization put before punctuation and contractions (" ." → ".", " n't" → "n't", ...),
  token by token as HF does.
- `ByteLevel`: GPT-2's printable characters back to bytes (Radford et al. 2019), then UTF-8 with U+FFFD for
  invalid bytes; a token holding a character outside the table is kept as its own UTF-8.
- `Metaspace`: '▁' → ' ' (SentencePiece, Kudo & Richardson 2018); in the first token the '▁'s are dropped
  unless `prepend_scheme` is "never".
- `ByteFallback`: runs of "<0xXX>" tokens → their bytes as UTF-8, or one U+FFFD per byte if invalid.
- `CTC`: speech models' output (wav2vec2): repeated tokens collapse into one, the pad token goes, and with
  `cleanup` the word delimiter becomes a space (after WordPiece's clean-up).
- `Fuse` (join into one), `Strip` (drop up to n copies of a character at each end), `Replace` (a literal
  string or a regex, in each token), `BPEDecoder` (end-of-word suffix → space), `Sequence`.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf
from itertools import groupby

from llmlab.errors import LlmlabError
from llmlab.tokenizer.byte_level import UNICODE_TO_BYTE
from llmlab.tokenizer.normalize_sp import Replace as ReplaceNormalizer
from llmlab.tokenizer.normalize_sp import pattern_from_hf
from llmlab.tokenizer.pretokenize import check_prepend_scheme

_CLEANUP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" do not", " don't"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)
_HEX = frozenset("0123456789abcdefABCDEF")


class Decoder:
    """Base class: subclasses implement `decode_chain` and `to_hf`."""

    def decode_chain(self, tokens: list[str]) -> list[str]:
        raise NotImplementedError

    def to_hf(self) -> dict:
        raise NotImplementedError

    def decode(self, tokens: list[str]) -> str:
        """Turn tokens back into text.

        Args:
            tokens: the token strings, in order.

        Returns:
            The text.
        """
        return "".join(self.decode_chain(list(tokens)))


def cleanup(text: str) -> str:
    """Remove the spaces BERT's tokenization puts before punctuation and English contractions."""
    for old, new in _CLEANUP:
        text = text.replace(old, new)
    return text


class WordPiece(Decoder):
    """Join WordPiece tokens: continuing tokens lose their prefix, the others get a leading space."""

    def __init__(self, prefix: str = "##", cleanup: bool = True):
        self.prefix = prefix
        self.cleanup = cleanup

    def decode_chain(self, tokens: list[str]) -> list[str]:
        prefix = self.prefix
        out = []
        for i, token in enumerate(tokens):
            if i:
                token = token.replace(prefix, "", 1) if token.startswith(prefix) else " " + token
            out.append(cleanup(token) if self.cleanup else token)
        return out

    def to_hf(self) -> dict:
        return {"type": "WordPiece", "prefix": self.prefix, "cleanup": self.cleanup}


class ByteLevel(Decoder):
    """GPT-2 byte-level characters back to UTF-8 text."""

    def __init__(self, add_prefix_space: bool = True, trim_offsets: bool = True, use_regex: bool = True):
        self.add_prefix_space = add_prefix_space  # kept for the JSON form; decoding ignores them (as HF)
        self.trim_offsets = trim_offsets
        self.use_regex = use_regex

    def decode_chain(self, tokens: list[str]) -> list[str]:
        data = bytearray()
        for token in tokens:
            try:
                data.extend([UNICODE_TO_BYTE[c] for c in token])
            except KeyError:
                data.extend(token.encode("utf-8"))
        return [data.decode("utf-8", errors="replace")]

    def to_hf(self) -> dict:
        return {
            "type": "ByteLevel",
            "add_prefix_space": self.add_prefix_space,
            "trim_offsets": self.trim_offsets,
            "use_regex": self.use_regex,
        }


class Metaspace(Decoder):
    """SentencePiece's '▁' back to spaces; the prepended one of the first token is dropped."""

    def __init__(self, replacement: str = "▁", prepend_scheme: str = "always", split: bool = True):
        check_prepend_scheme(prepend_scheme)
        self.replacement = replacement
        self.prepend_scheme = prepend_scheme
        self.split = split

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out = [token.replace(self.replacement, " ") for token in tokens]
        if out and self.prepend_scheme != "never":
            out[0] = tokens[0].replace(self.replacement, "")
        return out

    def to_hf(self) -> dict:
        return {
            "type": "Metaspace",
            "replacement": self.replacement,
            "prepend_scheme": self.prepend_scheme,
            "split": self.split,
        }


def _byte_of(token: str) -> int | None:
    """The byte of a "<0xXX>" token, else None."""
    if len(token) == 6 and token.startswith("<0x") and token[5] == ">" and _HEX.issuperset(token[3:5]):
        return int(token[3:5], 16)
    return None


class ByteFallback(Decoder):
    """Runs of "<0xXX>" tokens become the text their bytes spell (one U+FFFD per byte when not UTF-8)."""

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out: list[str] = []
        pending = bytearray()
        for token in [*tokens, None]:
            byte = _byte_of(token) if token is not None else None
            if byte is not None:
                pending.append(byte)
                continue
            if pending:
                try:
                    out.append(pending.decode("utf-8"))
                except UnicodeDecodeError:
                    out.extend(["\ufffd"] * len(pending))
                pending.clear()
            if token is not None:
                out.append(token)
        return out

    def to_hf(self) -> dict:
        return {"type": "ByteFallback"}


class Fuse(Decoder):
    """Join all tokens into one."""

    def decode_chain(self, tokens: list[str]) -> list[str]:
        return ["".join(tokens)]

    def to_hf(self) -> dict:
        return {"type": "Fuse"}


class Strip(Decoder):
    """Remove up to `start` copies of `content` from the start of each token and `stop` from its end."""

    def __init__(self, content: str = " ", start: int = 0, stop: int = 0):
        self.content = content
        self.start = start
        self.stop = stop

    def decode_chain(self, tokens: list[str]) -> list[str]:
        return [self._strip(token) for token in tokens]

    def _strip(self, token: str) -> str:
        begin = 0
        end = len(token)
        while begin < min(self.start, len(token)) and token[begin] == self.content:
            begin += 1
        while end > begin and len(token) - end < self.stop and token[end - 1] == self.content:
            end -= 1
        return token[begin:end]

    def to_hf(self) -> dict:
        return {"type": "Strip", "content": self.content, "start": self.start, "stop": self.stop}


class Replace(Decoder):
    """Replace every match of a literal string or a regex in each token (HF's Replace normalizer, per token)."""

    def __init__(self, pattern: str, content: str, is_regex: bool = False):
        self.replace = ReplaceNormalizer(pattern, content, is_regex)

    def decode_chain(self, tokens: list[str]) -> list[str]:
        return list(map(self.replace.normalize, tokens))

    def to_hf(self) -> dict:
        return self.replace.to_hf()


class CTC(Decoder):
    """CTC output: repeats collapse, the pad token goes, the word delimiter becomes a space."""

    def __init__(self, pad_token: str = "<pad>", word_delimiter_token: str = "|", cleanup: bool = True):
        self.pad_token = pad_token
        self.word_delimiter_token = word_delimiter_token
        self.cleanup = cleanup

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out = []
        for token, _ in groupby(tokens):
            token = token.replace(self.pad_token, "")
            if self.cleanup:
                token = cleanup(token).replace(self.word_delimiter_token, " ")
            if token:
                out.append(token)
        return out

    def to_hf(self) -> dict:
        return {
            "type": "CTC",
            "pad_token": self.pad_token,
            "word_delimiter_token": self.word_delimiter_token,
            "cleanup": self.cleanup,
        }


class BPEDecoder(Decoder):
    """Classic BPE with an end-of-word suffix: the suffix becomes a space (none after the last token)."""

    def __init__(self, suffix: str = "</w>"):
        self.suffix = suffix

    def decode_chain(self, tokens: list[str]) -> list[str]:
        last = len(tokens) - 1
        return [t.replace(self.suffix, "" if i == last else " ") for i, t in enumerate(tokens)]

    def to_hf(self) -> dict:
        return {"type": "BPEDecoder", "suffix": self.suffix}


class Sequence(Decoder):
    """Apply several decoders' `decode_chain` in order."""

    def __init__(self, decoders: SequenceOf[Decoder]):
        self.decoders = list(decoders)

    def decode_chain(self, tokens: list[str]) -> list[str]:
        for d in self.decoders:
            tokens = d.decode_chain(tokens)
        return tokens

    def to_hf(self) -> dict:
        return {"type": "Sequence", "decoders": [d.to_hf() for d in self.decoders]}


def decoder_from_hf(d: dict | None) -> Decoder | None:
    """Build a decoder from the `decoder` object of an HF tokenizer.json (None stays None).

    Raises:
        LlmlabError: an unknown or malformed decoder.
    """
    if d is None:
        return None
    kind = d.get("type") if isinstance(d, dict) else None
    try:
        if kind == "WordPiece":
            return WordPiece(d.get("prefix", "##"), d.get("cleanup", True))
        if kind == "ByteLevel":
            return ByteLevel(
                d.get("add_prefix_space", True), d.get("trim_offsets", True), d.get("use_regex", True)
            )
        if kind == "Metaspace":
            scheme = d.get("prepend_scheme", "always" if d.get("add_prefix_space", True) else "never")
            return Metaspace(d.get("replacement", "▁"), scheme, d.get("split", True))
        if kind == "ByteFallback":
            return ByteFallback()
        if kind == "Fuse":
            return Fuse()
        if kind == "Strip":
            return Strip(d["content"], d["start"], d["stop"])
        if kind == "Replace":
            pattern, is_regex = pattern_from_hf(d["pattern"], "Replace")
            return Replace(pattern, d["content"], is_regex)
        if kind == "CTC":
            return CTC(
                d.get("pad_token", "<pad>"), d.get("word_delimiter_token", "|"), d.get("cleanup", True)
            )
        if kind == "BPEDecoder":
            return BPEDecoder(d.get("suffix", "</w>"))
        if kind == "Sequence":
            return Sequence([decoder_from_hf(x) for x in d["decoders"]])
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise LlmlabError(f"malformed decoder {kind!r}: missing or bad field {e}") from None
    raise LlmlabError(f"unsupported decoder {kind!r}")
