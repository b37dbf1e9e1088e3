"""The compiled tokenizer core: which pipelines run on it, and the plain description it is built from.

The core (`_core/`, C++17 bound with nanobind, compiled into `_corelib` by `pip install`) ports the Python
path step for step: added tokens, the normalizer, the BERT / GPT-2 / Metaspace pre-tokenizers, WordPiece,
BPE and Unigram, offsets, truncation, the template and byte-level post-processors, padding, and the WordPiece
/ ByteLevel / Metaspace decoders; `encode_batch` runs on threads with the GIL released. The Python modules
stay the reference it is tested against (tests/tokenizer run every parity test on both paths) and the
fallback:
- a tokenizer with a stage the core does not have (`describe` returns None) runs wholly in Python;
- a text the core must not decide (a character its tables mark as hard, a missing unk token, a truncation
  setting Python rejects with an error) goes to Python, text by text;
- without the compiled module (no compiler at install time) everything runs in Python, said once on stderr;
  `LLMLAB_PURE_PYTHON=1` asks for Python alone.
Unicode tables come from the Python stages themselves (`core_tables.py`), so both paths classify alike.
"""

from __future__ import annotations

import gc
import os
import sys
from array import array

from llmlab.tokenizer import core_tables, decoders, normalize, postprocess, pretokenize, templates
from llmlab.tokenizer.bpe.chars import char_pieces
from llmlab.tokenizer.bpe.model import BPE
from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE
from llmlab.tokenizer.unigram.model import Unigram
from llmlab.tokenizer.wordpiece import WordPiece

try:
    from llmlab.tokenizer import _corelib
except ImportError as e:  # not compiled here: the pure-Python path
    _corelib, _MISSING = None, f"{type(e).__name__}: {e}"
else:  # the lists of dropped batch Encodings wait for the next batch; at the latest, a collection frees them
    gc.callbacks.append(_corelib.free_dropped)

__all__ = ["available", "build_core", "describe"]

_MAX_IDS = 5_000_000  # ids beyond this (sparse added tokens) stay in Python
_PER_CHAR_NORMALIZERS = (
    normalize.BertNormalizer,
    normalize.Lowercase,
    normalize.UnicodeForm,
    normalize.StripAccents,
)
_said = False


def available() -> bool:
    """Whether the compiled core will be used: built, and not switched off by LLMLAB_PURE_PYTHON=1."""
    global _said
    if os.environ.get("LLMLAB_PURE_PYTHON", "") not in ("", "0"):
        return False
    if _corelib is None and not _said:
        _said = True
        print(f"llmlab: compiled tokenizer core unavailable ({_MISSING}); using pure Python", file=sys.stderr)
    return _corelib is not None


def build_core(tokenizer):
    """The compiled core of `tokenizer`, or None where a stage has no compiled form (see the module docstring).
    The caller has checked `available()`."""
    spec = describe(tokenizer)
    if spec is None:
        return None
    try:
        return _corelib.Core(spec)
    except (TypeError, ValueError):  # e.g. a token holding a lone surrogate: no UTF-8 form, Python copes
        return None


def describe(tokenizer) -> dict | None:
    """The core's description of `tokenizer` (plain Python values), or None if a stage is not supported."""
    table = _token_table(tokenizer)
    if table is None:
        return None
    n_ids = len(table)
    special_ids = [i for i, t in enumerate(table) if t in tokenizer._specials]  # before `_ref` appends
    parts = {
        "normalizer": _normalizer(tokenizer.normalizer),
        "pre_tokenizer": _pre_tokenizer(tokenizer.pre_tokenizer),
        "model": _model(tokenizer.model),
        "post": _post(tokenizer.post_processor, table),
        "decoder": _decoder(tokenizer.decoder),
    }
    added = _added(tokenizer, table)
    if added is None or any(v is False for v in parts.values()):
        return None
    model = tokenizer.model
    byte_level = isinstance(tokenizer.pre_tokenizer, pretokenize.ByteLevel)
    byte_chars = [ord(BYTE_TO_UNICODE[b]) for b in range(256)]
    if parts["model"]["kind"] == "bpe":
        parts["model"]["char_pieces"] = _char_pieces(model) if byte_level else []
    return {
        **parts,
        **added,
        "token_table": table,
        "n_ids": n_ids,
        "byte_chars": byte_chars if byte_level else None,
        "unk_as_text": model.unk_id if isinstance(model, Unigram) and model.unk_id is not None else -1,
        "space_chars": postprocess.SPACES,
        "special_ids": special_ids,
    }


def _token_table(tokenizer) -> list[str | None] | None:
    """Token by id as `Tokenizer.id_to_token` gives it (None: no token), or None for ids the core does not
    take (negative ones, or too many). Made here rather than from `Tokenizer._id_to_token`, which a tokenizer
    running on the core does not need to keep."""
    vocab = tokenizer.model.vocab
    norm = tokenizer.normalizer.normalize if tokenizer.normalizer else str
    added = tokenizer._added.read_back(norm)  # id -> token; they read back over the model's tokens
    n_ids = max(max(vocab.values(), default=-1), max(added, default=-1)) + 1
    if n_ids > _MAX_IDS or min(min(vocab.values(), default=0), min(added, default=0)) < 0:
        return None
    table: list[str | None] = [None] * n_ids
    for token, i in vocab.items():
        table[i] = token
    for i, token in added.items():
        table[i] = token
    return table


def runtime(truncation, padding) -> tuple[tuple | None, tuple | None]:
    """The core's form of the truncation and padding settings."""
    strategies = {"longest_first": 0, "only_first": 1, "only_second": 2}
    t = truncation and (
        truncation.max_length,
        truncation.stride,
        strategies[truncation.strategy],
        truncation.direction == "left",
    )
    p = padding and (
        padding.direction == "left",
        padding.pad_id,
        padding.pad_type_id,
        padding.pad_token,
        padding.length,
        padding.pad_to_multiple_of,
    )
    return t or None, p or None


# Each stage: its description, None for no stage, False when the core does not have it.


def _normalizer(n):
    if n is None:
        return None
    parts = n.normalizers if type(n) is normalize.Sequence else [n]
    if not parts or any(type(p) not in _PER_CHAR_NORMALIZERS for p in parts):
        return False
    return core_tables.normalizer_table(n)


def _pre_tokenizer(p):
    base = {"classes": None, "add_prefix_space": False, "use_regex": True, "replacement": " ", "prepend": 0}
    if p is None:
        return None
    if type(p) is pretokenize.BertPreTokenizer and not p.isolate_cjk:
        return {**base, "kind": "bert", "classes": core_tables.bert_classes(), "split": True}
    if type(p) is pretokenize.ByteLevel:
        classes = core_tables.gpt2_classes() if p.use_regex else None
        return {
            **base,
            "kind": "byte_level",
            "classes": classes,
            "add_prefix_space": p.add_prefix_space,
            "use_regex": p.use_regex,
            "split": True,
        }
    if type(p) is pretokenize.Metaspace and len(p.replacement) == 1:
        prepend = ("always", "first", "never").index(p.prepend_scheme)
        return {
            **base,
            "kind": "metaspace",
            "replacement": p.replacement,
            "prepend": prepend,
            "split": p.split_words,
        }
    return False


def _model(m):
    if type(m) is WordPiece:
        return {
            "kind": "wordpiece",
            "vocab": m.vocab,
            "unk_id": m.vocab.get(m.unk_token, -1),
            "prefix": m.continuing_subword_prefix,
            "max_chars": m.max_input_chars_per_word,
        }
    if type(m) is BPE:
        merges = array("i")
        for (left, right), merged in zip(m._merge_pairs(), m._merged, strict=True):
            merges.extend((left, right, merged))
        return {
            "kind": "bpe",
            "vocab": m.vocab,
            "merges": merges.tobytes(),  # (left id, right id, merged id) by rank, as int32
            "unk_id": m.vocab.get(m.unk_token, -1) if m.unk_token is not None else -1,
            "has_unk": m.unk_token is not None,
            "prefix": m.continuing_subword_prefix or "",
            "suffix": m.end_of_word_suffix or "",
            "ignore_merges": m.ignore_merges,
            "fuse_unk": m.fuse_unk,
            "byte_fallback": m.byte_fallback,
        }
    if type(m) is Unigram:
        hidden = m.special_ids | {m.unk_id} | set(m._byte_ids)
        matched = [(piece, i) for i, (piece, _) in enumerate(m.pieces) if i not in hidden]
        return {
            "kind": "unigram",
            "matched": matched,
            "scores": m._scores,
            "unk_id": -1 if m.unk_id is None else m.unk_id,
            "unk_score": m.unk_score,
            "byte_fallback": m.byte_fallback,
            "byte_ids": m._byte_ids or [-1] * 256,
        }
    return False


def _char_pieces(m: BPE) -> list[tuple[int, list[int], list[int]]]:
    """The characters whose byte-level merges join them on their own (see `bpe.chars.char_pieces`)."""
    return char_pieces(m.vocab, m.merge_ranks(), m._merged) if m._simple else []


def _ref(table: list, token: str) -> int:
    """The token table entry of `token`, appended when new."""
    table.append(token)
    return len(table) - 1


def _post(p, table: list):
    if p is None:
        return None
    if type(p) in (templates.TemplateProcessing, templates.BertProcessing):

        def pieces(template):
            out = []
            for kind, name, type_id in template:
                special = p.special_tokens.get(name, {"ids": [], "tokens": []})
                refs = [_ref(table, t) for t in special["tokens"]] if kind == "special" else []
                out.append((kind == "seq", int(name == "B"), type_id, special["ids"] if refs else [], refs))
            return out

        return {"kind": "template", "single": pieces(p.single), "pair": pieces(p.pair)}
    if type(p) is postprocess.ByteLevel:
        return {"kind": "byte_level", "trim_offsets": p.trim_offsets, "add_prefix_space": p.add_prefix_space}
    return False


def _decoder(d):
    if d is None:
        return None
    if type(d) is decoders.WordPiece:
        return {"kind": "wordpiece", "prefix": d.prefix, "cleanup": d.cleanup}
    if type(d) is decoders.ByteLevel:
        return {"kind": "byte_level", "byte_chars": [ord(BYTE_TO_UNICODE[b]) for b in range(256)]}
    if type(d) is decoders.Metaspace and len(d.replacement) == 1:
        return {
            "kind": "metaspace",
            "replacement": d.replacement,
            "prepend_never": d.prepend_scheme == "never",
        }
    return {"kind": "python"}  # encoding still runs on the core; decoding goes to Python


def _added(tokenizer, table: list) -> dict | None:
    """The added tokens matched in raw and in normalized text, and the tables their options need."""
    raw, normalized = tokenizer._encoder_matchers

    def entries(matcher):
        return [
            (content, t.id, _ref(table, content), t.single_word, t.lstrip, t.rstrip)
            for content, t in matcher.tokens.items()
        ]

    if any(not content for content in normalized.tokens):
        return None
    everything = [*raw.tokens.values(), *normalized.tokens.values()]
    options = any(t.single_word or t.lstrip or t.rstrip for t in everything)
    word_chars, spaces = core_tables.added_token_classes() if options else (None, None)
    return {
        "raw_added": entries(raw),
        "normalized_added": entries(normalized),
        "word_chars": word_chars,
        "spaces": spaces,
    }
