"""Converters: SentencePiece .model, tiktoken rank files and GPT-2's encoder.json + vocab.bpe to a `Tokenizer`.

Each gives the ids of the library that reads the same files, tested on real text: sentencepiece
(`SentencePieceProcessor.encode`), tiktoken (an `Encoding` built from the same ranks), and, for GPT-2's files,
tiktoken's `gpt2` ids and HF `tokenizers`' offsets. The result is an ordinary tokenizer.json pipeline:
- SentencePiece (Kudo & Richardson 2018): the precompiled charsmap (`Precompiled`), sentencepiece's whitespace
  rules as two regex `Replace`s (remove_extra_whitespaces: spaces trimmed at both ends, runs collapsed to
  one), a `Metaspace` (escape_whitespaces; add_dummy_prefix puts '▁' before the text), and the model: Unigram
  with its scores, or BPE with merges ordered by the score of the piece they make (as transformers'
  `SentencePieceExtractor`). Control and user-defined pieces become added tokens, byte pieces the byte fallback.
- tiktoken: a byte-level BPE whose merges are rebuilt from the ranks (each token from the pair of tokens that
  make it, in rank order, as transformers' `TikTokenConverter`), the split regex as a `Split` pre-tokenizer,
  and `ignore_merges` (tiktoken takes a whole piece that is a token as it is).
- GPT-2: OpenAI's files as they are (Radford et al. 2019), the pipeline of HF's gpt2 tokenizer.json.
Deviations: pieces of type UNUSED are kept as ordinary pieces; text that spells a control piece ("<s>") is
that control token here and in HF, while sentencepiece cuts it into pieces.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.tokenizer.bpe.model import BPE
from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE
from llmlab.tokenizer.decoders import ByteFallback, Fuse, Strip
from llmlab.tokenizer.decoders import ByteLevel as ByteLevelDecoder
from llmlab.tokenizer.decoders import Metaspace as MetaspaceDecoder
from llmlab.tokenizer.decoders import Replace as ReplaceDecoder
from llmlab.tokenizer.decoders import Sequence as DecoderSequence
from llmlab.tokenizer.normalize import Sequence
from llmlab.tokenizer.normalize_sp import Precompiled, Replace
from llmlab.tokenizer.pipeline import AddedToken, Tokenizer
from llmlab.tokenizer.postprocess import ByteLevel as ByteLevelProcessor
from llmlab.tokenizer.pretokenize import ByteLevel, Metaspace
from llmlab.tokenizer.pretokenize_split import Sequence as PreSequence
from llmlab.tokenizer.pretokenize_split import Split
from llmlab.tokenizer.spm_model import SpmModel, read_spm_model
from llmlab.tokenizer.unigram.model import Unigram

__all__ = ["PATTERNS", "from_gpt2", "from_spm", "from_tiktoken", "read_tiktoken_ranks"]

_R50K = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
PATTERNS = {  # tiktoken's split regexes (tiktoken_ext/openai_public.py)
    "gpt2": _R50K,
    "r50k_base": _R50K,
    "p50k_base": _R50K,
    "cl100k_base": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
    r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}


# ---- SentencePiece -----------------------------------------------------------------------------------


def from_spm(model: SpmModel | str | os.PathLike) -> Tokenizer:
    """A tokenizer giving sentencepiece's ids for a SentencePiece model (a parsed one or a .model path).

    Raises:
        LlmlabError: an unreadable model, or settings this pipeline cannot express (a WORD or CHAR model,
            whitespace as a suffix, whitespace not escaped).
    """
    spm = model if isinstance(model, SpmModel) else read_spm_model(model)
    if (
        spm.model_type not in ("unigram", "bpe")
        or spm.treat_whitespace_as_suffix
        or not spm.escape_whitespaces
    ):
        raise LlmlabError(
            f"SentencePiece {spm.model_type} model with treat_whitespace_as_suffix={spm.treat_whitespace_as_suffix}"
            f", escape_whitespaces={spm.escape_whitespaces}: only unigram/bpe models with escaped whitespace "
            "as a prefix can be converted"
        )
    pieces = [p for p, _, _ in spm.pieces]
    unk = next((i for i, (_, _, kind) in enumerate(spm.pieces) if kind == "unknown"), None)
    added = [
        AddedToken(i, p, special=kind != "user_defined", normalized=kind == "user_defined")
        for i, (p, _, kind) in enumerate(spm.pieces)
        if kind in ("unknown", "control", "user_defined")
    ]
    if spm.model_type == "unigram":
        core = Unigram([(p, s) for p, s, _ in spm.pieces], unk_id=unk, byte_fallback=spm.byte_fallback)
    else:
        core = BPE(
            {p: i for i, p in enumerate(pieces)},
            _spm_merges(spm),
            unk_token=None if unk is None else pieces[unk],
            fuse_unk=True,
            byte_fallback=spm.byte_fallback,
        )
    scheme = (
        "always" if spm.add_dummy_prefix else "never"
    )  # "first" would miss text whose spaces were trimmed
    split = not any("\u2581" in p[1:] for p in pieces)  # no piece spans a word boundary: words are apart
    return Tokenizer(
        core,
        normalizer=_spm_normalizer(spm),
        pre_tokenizer=Metaspace("\u2581", scheme, split),
        decoder=_spm_decoder(spm, scheme),
        added_tokens=added,
    )


def _spm_normalizer(spm: SpmModel) -> Sequence | None:
    steps = [Precompiled(spm.precompiled_charsmap)] if spm.precompiled_charsmap else []
    if spm.remove_extra_whitespaces:  # sentencepiece trims spaces and collapses runs (after the charsmap)
        steps += [Replace(r"\A +| +\z", "", is_regex=True), Replace(" {2,}", " ", is_regex=True)]
    return Sequence(steps) if steps else None


def _spm_decoder(spm: SpmModel, scheme: str):
    if not spm.byte_fallback:
        return MetaspaceDecoder("\u2581", scheme)
    steps = [ReplaceDecoder("\u2581", " "), ByteFallback(), Fuse()]
    return DecoderSequence(steps + ([Strip(" ", 1, 0)] if spm.add_dummy_prefix else []))


def _spm_merges(spm: SpmModel) -> list[tuple[str, str]]:
    """BPE merges from the pieces: each piece from every pair of pieces that make it, best score first."""
    vocab = {p: i for i, (p, _, kind) in enumerate(spm.pieces) if kind in ("normal", "user_defined")}
    score = {p: s for p, s, _ in spm.pieces}
    merges = []
    for piece, i in vocab.items():
        for k in range(1, len(piece)):
            left = piece[:k]
            right = piece[k:]
            if left in vocab and right in vocab:
                merges.append((-score[piece], i, vocab[left], vocab[right], left, right))
    return [(left, right) for *_, left, right in sorted(merges)]


# ---- tiktoken and GPT-2 --------------------------------------------------------------------------------


def read_tiktoken_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """A tiktoken rank file: one `base64(token bytes) rank` per line.

    Raises:
        LlmlabError: the file is missing or a line is malformed (the message names the line).
    """
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read tiktoken ranks: {e.strerror}") from None
    ranks: dict[bytes, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise LlmlabError(f"{path}: line {n} is not 'base64-token rank'") from None
    if not ranks:
        raise LlmlabError(f"{path}: no ranks in the file")
    return ranks


def _merges_from_ranks(ranks: dict[bytes, int]) -> list[tuple[str, str]]:
    """BPE merges that rebuild tiktoken's byte-pair ranks (transformers' `TikTokenConverter` order)."""
    merges = []
    for token, rank in ranks.items():
        local = [
            (rank, ranks[token[:k]], ranks[token[k:]], token[:k], token[k:])
            for k in range(1, len(token))
            if token[:k] in ranks and token[k:] in ranks
        ]
        merges += sorted(local)
    merges.sort(key=lambda m: m[0])
    return [(_bytes_to_level(a), _bytes_to_level(b)) for *_, a, b in merges]


def _bytes_to_level(token: bytes) -> str:
    return "".join(map(BYTE_TO_UNICODE.__getitem__, token))


def from_tiktoken(path: str | os.PathLike, pattern: str) -> Tokenizer:
    """A tokenizer giving tiktoken's ids for a rank file and a split pattern (a name in `PATTERNS` or a regex).

    Raises:
        LlmlabError: an unreadable rank file or an invalid regex.
    """
    ranks = read_tiktoken_ranks(path)
    regex_source = PATTERNS.get(pattern, pattern)
    vocab = {_bytes_to_level(t): r for t, r in ranks.items()}
    model = BPE(vocab, _merges_from_ranks(ranks), ignore_merges=True)
    return Tokenizer(
        model,
        pre_tokenizer=PreSequence([Split(regex_source, "isolated", is_regex=True), ByteLevel(False, False)]),
        post_processor=ByteLevelProcessor(trim_offsets=False),
        decoder=ByteLevelDecoder(),
    )


def from_gpt2(encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike) -> Tokenizer:
    """GPT-2's tokenizer from OpenAI's encoder.json (token -> id) and vocab.bpe (merges, one per line).

    Raises:
        LlmlabError: a missing or malformed file, or a merge of tokens not in the vocabulary.
    """
    try:
        vocab = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
        lines = Path(vocab_bpe).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LlmlabError(f"cannot read GPT-2 files {encoder_json}, {vocab_bpe}: {e}") from None
    if not isinstance(vocab, dict):
        raise LlmlabError(f"{encoder_json}: expected a JSON object token -> id")
    merges = []
    for n, line in enumerate(lines, 1):
        if line.startswith("#version") or not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise LlmlabError(f"{vocab_bpe}: line {n} is not a merge 'left right'")
        merges.append((parts[0], parts[1]))
    specials = [AddedToken(i, t, special=True) for t, i in vocab.items() if t == "<|endoftext|>"]
    return Tokenizer(
        BPE(vocab, merges),
        pre_tokenizer=ByteLevel(add_prefix_space=False),
        post_processor=ByteLevelProcessor(trim_offsets=False),
        decoder=ByteLevelDecoder(),
        added_tokens=specials,
    )


# ---- any tokenizer file --------------------------------------------------------------------------------


def load_any(path: str | os.PathLike, pattern: str | None = None) -> Tokenizer:
    """Read whatever tokenizer `path` holds (see `Tokenizer.load`).

    Raises:
        LlmlabError: nothing readable there, a tiktoken file without a known pattern, or a bad file.
    """
    from llmlab.io import read_json

    path = Path(path)
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            path = path / "tokenizer.json"
        elif (path / "encoder.json").is_file() and (path / "vocab.bpe").is_file():
            return from_gpt2(path / "encoder.json", path / "vocab.bpe")
        else:
            models = sorted(path.glob("*.model"))
            if len(models) != 1:
                raise LlmlabError(
                    f"{path}: no tokenizer.json, encoder.json + vocab.bpe or single SentencePiece .model here"
                )
            path = models[0]
    if path.suffix == ".model":
        return from_spm(path)
    if path.suffix == ".tiktoken":
        name = pattern or (path.stem if path.stem in PATTERNS else None)
        if name is None:
            raise LlmlabError(
                f"{path}: a tiktoken rank file needs a split pattern: one of {', '.join(PATTERNS)} or a regex"
            )
        return from_tiktoken(path, name)
    return Tokenizer.from_hf(read_json(path, "tokenizer file"), source=str(path))
