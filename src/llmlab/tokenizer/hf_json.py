"""Hugging Face tokenizer files: tokenizer.json (read and write) and BERT's vocab.txt.

Spec: the tokenizer.json schema of Hugging Face `tokenizers` (tokenizers/src/tokenizer/serialization.rs):
{"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "post_processor",
"decoder", "model"}, each stage the JSON of its component. Reference implementation, tested both ways on the
same files: `tokenizers.Tokenizer.from_file` / `from_str` (HF reads what we write and we read what HF writes,
with identical ids, tokens and offsets).

vocab.txt is Google BERT's format (google-research/bert `tokenization.load_vocab`): one token per line, its id
the line number; it carries no pipeline, so `read_vocab_txt` assembles BERT's (as transformers'
`BertTokenizerFast` does): BertNormalizer, BertPreTokenizer, WordPiece, `[CLS] $A [SEP]`, WordPiece decoder.

Every problem is one `LlmlabError` line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_text
from llmlab.tokenizer.bpe.model import BPE
from llmlab.tokenizer.decoders import WordPiece as WordPieceDecoder
from llmlab.tokenizer.decoders import decoder_from_hf
from llmlab.tokenizer.normalize import BertNormalizer
from llmlab.tokenizer.normalize_sp import normalizer_from_hf
from llmlab.tokenizer.pipeline import AddedToken, Tokenizer, next_added_id
from llmlab.tokenizer.postprocess import postprocessor_from_hf
from llmlab.tokenizer.pretokenize import BertPreTokenizer
from llmlab.tokenizer.pretokenize_split import pretokenizer_from_hf
from llmlab.tokenizer.templates import TemplateProcessing
from llmlab.tokenizer.truncation import Padding, Truncation
from llmlab.tokenizer.unigram.model import Unigram
from llmlab.tokenizer.wordpiece import WordPiece

MODELS = {"WordPiece": WordPiece, "BPE": BPE, "Unigram": Unigram}
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def tokenizer_from_hf(d: dict, source: str = "tokenizer.json") -> Tokenizer:
    """Build a `Tokenizer` from a parsed HF tokenizer.json.

    Args:
        d: the parsed JSON object.
        source: the file it came from, named in errors.

    Returns:
        The tokenizer, truncation and padding settings included.

    Raises:
        LlmlabError: no model, an unknown model type, or an unsupported or malformed stage; the message
            names `source`.
    """
    if not isinstance(d, dict):
        raise LlmlabError(f"{source}: not a tokenizer file (expected a JSON object, got {type(d).__name__})")
    model_d = d.get("model")
    if not isinstance(model_d, dict):
        raise LlmlabError(f'{source}: no "model" in the tokenizer file')
    kind = model_d.get("type")
    if kind not in MODELS:
        raise LlmlabError(f"unknown model type {kind!r} in {source}; expected one of {', '.join(MODELS)}")
    try:
        model = MODELS[kind].from_hf(model_d)
        return Tokenizer(
            model,
            normalizer=normalizer_from_hf(d.get("normalizer")),
            pre_tokenizer=pretokenizer_from_hf(d.get("pre_tokenizer")),
            post_processor=postprocessor_from_hf(d.get("post_processor")),
            decoder=decoder_from_hf(d.get("decoder")),
            added_tokens=_added_tokens(d.get("added_tokens") or [], model),
            truncation=Truncation.from_hf(d["truncation"]) if d.get("truncation") else None,
            padding=Padding.from_hf(d["padding"]) if d.get("padding") else None,
        )
    except LlmlabError as e:
        raise LlmlabError(f"{source}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise LlmlabError(f"{source}: malformed tokenizer file ({type(e).__name__}: {e})") from None


def _added_tokens(entries: list, model) -> list[AddedToken]:
    """The added tokens with the ids HF gives them on loading: the model's id for a token it has, else the
    next free id (the file's "id" is only checked by HF, with a warning, so a stale one is ignored here too)."""
    ids: dict[str, int] = {}
    tokens = []
    for t in entries:
        if not isinstance(t, dict) or not isinstance(t.get("content"), str) or not t["content"]:
            raise LlmlabError(f"malformed added token {t!r}: needs a non-empty string content")
        content = t["content"]
        if content not in ids:
            known = model.token_to_id(content)
            ids[content] = known if known is not None else next_added_id(len(model.vocab), list(ids.values()))
        tokens.append(_added_token(t, ids[content]))
    return tokens


def _added_token(t: dict, id_: int) -> AddedToken:
    return AddedToken(
        id_,
        t["content"],
        special=bool(t.get("special", False)),
        single_word=bool(t.get("single_word", False)),
        lstrip=bool(t.get("lstrip", False)),
        rstrip=bool(t.get("rstrip", False)),
        normalized=t.get("normalized"),
    )


def read_vocab_txt(path: str | os.PathLike, lowercase: bool = True) -> Tokenizer:
    """A BERT tokenizer from a vocab.txt: one token per line, id = line number.

    Args:
        path: the vocab.txt.
        lowercase: uncased BERT (lowercase and strip accents); False for cased vocabularies.

    Returns:
        BERT's pipeline around a WordPiece model; the BERT special tokens present become special added tokens.

    Raises:
        LlmlabError: the file is missing or not UTF-8, or lacks [CLS], [SEP] or [UNK].
    """
    path = Path(path)
    try:
        lines = path.read_bytes().decode("utf-8").split("\n")
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read vocab file: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise LlmlabError(f"{path}: vocab file is not UTF-8 (byte offset {e.start})") from None
    if lines and not lines[-1]:
        lines.pop()  # the final line break ends the last line, it does not start an empty one
    vocab: dict[str, int] = {}
    for i, line in enumerate(lines):
        vocab[line.rstrip()] = i  # as HF's WordPiece::read_file (a repeated token keeps its last line)
    missing = [t for t in ("[UNK]", "[CLS]", "[SEP]") if t not in vocab]
    if missing:
        raise LlmlabError(f"{path}: not a BERT vocab file: no {', '.join(missing)} token")
    cls = vocab["[CLS]"]
    sep = vocab["[SEP]"]
    specials = sorted((vocab[t], t) for t in BERT_SPECIAL_TOKENS if t in vocab)
    return Tokenizer(
        WordPiece(vocab),
        normalizer=BertNormalizer(lowercase=lowercase),
        pre_tokenizer=BertPreTokenizer(),
        post_processor=TemplateProcessing(
            "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1", [("[CLS]", cls), ("[SEP]", sep)]
        ),
        decoder=WordPieceDecoder(),
        added_tokens=[AddedToken(i, t, special=True) for i, t in specials],
    )


def write_vocab_txt(tokenizer: Tokenizer, path: str | os.PathLike) -> None:
    """Write the vocabulary of a WordPiece tokenizer as vocab.txt (atomically), one token per line by id.

    Raises:
        LlmlabError: not a WordPiece model, ids that are not 0..n-1 without gaps, a token holding a line
            break, or a missing folder.
    """
    if not isinstance(tokenizer.model, WordPiece):
        raise LlmlabError(f"{path}: vocab.txt holds WordPiece vocabularies only, not {tokenizer.model_type}")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise LlmlabError(f"{path}: token ids have gaps, which vocab.txt (id = line number) cannot hold")
    tokens = [by_id[i] for i in range(len(by_id))]
    bad = next((t for t in tokens if not t or t != t.rstrip() or "\n" in t), None)
    if bad is not None:
        raise LlmlabError(f"{path}: token {bad!r} cannot be written on a vocab.txt line")
    atomic_write_text(path, "".join(t + "\n" for t in tokens))
