"""Train a tokenizer end to end: read lines, count pre-tokenized words, run the model's trainer, wrap it up.

Each model name comes with the pipeline its family uses in practice, written as the Hugging Face
tokenizer.json sections it produces (so the result loads in HF `tokenizers` unchanged):
- `wordpiece`: BERT uncased (Devlin et al. 2019): BertNormalizer, BertPreTokenizer, `[CLS] $A [SEP]`.
- `bpe`: GPT-2 byte level (Radford et al. 2019): ByteLevel pre-tokenizer, all 256 bytes in the alphabet.
- `unigram`: SentencePiece (Kudo 2018; Kudo & Richardson 2018): NFKC, Metaspace '▁', optional byte fallback.

Counting words is the part of training that touches every byte of the corpus; it runs on `workers`
processes (chunks of lines, Counters merged), as HF parallelises it over its thread pool.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.progress import ProgressFn
from llmlab.tokenizer.bpe import train_bpe
from llmlab.tokenizer.normalize import Normalizer, normalizer_from_hf
from llmlab.tokenizer.pipeline import Tokenizer
from llmlab.tokenizer.pretokenize import ByteLevel, PreTokenizer, pretokenizer_from_hf
from llmlab.tokenizer.unigram import train_unigram
from llmlab.tokenizer.wordpiece import train_wordpiece

DEFAULT_SPECIAL_TOKENS = {
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bpe": ["<|endoftext|>"],
    "unigram": ["<unk>", "<s>", "</s>", "<pad>"],
}
MODEL_NAMES = tuple(DEFAULT_SPECIAL_TOKENS)
_LINES_PER_CHUNK = 20_000


def pipeline_sections(model: str, byte_fallback: bool = False) -> dict[str, Any]:
    """The tokenizer.json sections (all but the model) of a model family's standard pipeline."""
    if model == "wordpiece":
        return {
            "normalizer": {
                "type": "BertNormalizer",
                "clean_text": True,
                "handle_chinese_chars": True,
                "strip_accents": None,
                "lowercase": True,
            },
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": None,  # filled by `_bert_template` once the ids are known
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        }
    if model == "bpe":
        byte_level = ByteLevel().to_hf()
        return {
            "normalizer": None,
            "pre_tokenizer": byte_level,
            "post_processor": byte_level,
            "decoder": byte_level,
        }
    if model == "unigram":
        metaspace = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        decoder = (
            {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, metaspace]}
            if byte_fallback
            else metaspace
        )
        return {
            "normalizer": {"type": "NFKC"},
            "pre_tokenizer": metaspace,
            "post_processor": None,
            "decoder": decoder,
        }
    raise LlmlabError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")


def _bert_template(cls_id: int, sep_id: int) -> dict[str, Any]:
    cls, sep = (
        {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
        {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
    )
    return {
        "type": "TemplateProcessing",
        "single": [cls, {"Sequence": {"id": "A", "type_id": 0}}, sep],
        "pair": [
            cls,
            {"Sequence": {"id": "A", "type_id": 0}},
            sep,
            {"Sequence": {"id": "B", "type_id": 1}},
            {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
        ],
        "special_tokens": {
            "[CLS]": {"id": "[CLS]", "ids": [cls_id], "tokens": ["[CLS]"]},
            "[SEP]": {"id": "[SEP]", "ids": [sep_id], "tokens": ["[SEP]"]},
        },
    }


def _count_chunk(args: tuple[list[str], Normalizer | None, PreTokenizer]) -> Counter:
    lines, normalizer, pretokenizer = args
    counts: Counter = Counter()
    for line in lines:
        counts.update(pretokenizer.raw_words(normalizer.normalize(line) if normalizer else line))
    return counts


def count_words(
    lines: Iterable[str],
    normalizer: Normalizer | None,
    pretokenizer: PreTokenizer,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> Counter:
    """Count the pre-tokenized words of `lines` (normalized first), on `workers` processes.

    Returns:
        Counter mapping each word (as the model sees it, e.g. byte-level mapped) to its count.
    """
    workers = workers or os.cpu_count() or 1
    it = iter(lines)
    chunks = iter(lambda: list(itertools.islice(it, _LINES_PER_CHUNK)), [])
    jobs = ((chunk, normalizer, pretokenizer) for chunk in chunks)
    total: Counter = Counter()
    done = 0
    if workers == 1:
        results: Iterable[Counter] = map(_count_chunk, jobs)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(workers)
        results = pool.imap(_count_chunk, jobs)
    try:
        for counts in results:
            total.update(counts)
            done += 1
            if progress:
                progress(done, 0)
    finally:
        if pool:
            pool.terminate()
    return Counter({pretokenizer.map_word(word): n for word, n in total.items()})  # each distinct word once


def train_tokenizer(
    model: str,
    lines: Iterable[str],
    vocab_size: int,
    min_frequency: int = 0,
    special_tokens: Sequence[str] | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    source: str = "corpus",
    **options: Any,
) -> Tokenizer:
    """Train a tokenizer of family `model` on `lines`.

    Args:
        model: "wordpiece", "bpe" or "unigram".
        lines: the training text, one line at a time.
        vocab_size: the size of the final vocabulary, special tokens included.
        min_frequency: (wordpiece, bpe) a pair must occur this often to be merged.
        special_tokens: defaults to the family's usual set (DEFAULT_SPECIAL_TOKENS).
        workers: processes for counting words (default: all cores).
        progress: `progress(done, total)` callback for the trainer's progress.
        source: how to name the corpus in errors.
        options: passed to the trainer: `criterion` (wordpiece: "frequency" | "likelihood"),
            `character_coverage` and `byte_fallback` (unigram), `limit_alphabet`, ...

    Raises:
        LlmlabError: unknown model, empty corpus, vocab too small (from the trainer).
    """
    sections = pipeline_sections(model, options.get("byte_fallback", False))
    specials = list(DEFAULT_SPECIAL_TOKENS[model] if special_tokens is None else special_tokens)
    if model == "unigram" and options.setdefault("unk_token", "<unk>") not in specials:
        specials.insert(0, options["unk_token"])  # Unigram needs its unknown piece in the vocabulary
    normalizer = normalizer_from_hf(sections["normalizer"])
    pretokenizer = pretokenizer_from_hf(sections["pre_tokenizer"])
    counts = count_words(lines, normalizer, pretokenizer, workers)
    if not counts:
        raise LlmlabError(f"{source}: corpus is empty (no words to train on)")
    trained = _run_trainer(model, counts, vocab_size, min_frequency, specials, progress, options)
    if model == "wordpiece" and "[CLS]" in trained.vocab and "[SEP]" in trained.vocab:
        sections["post_processor"] = _bert_template(trained.vocab["[CLS]"], trained.vocab["[SEP]"])
    added = [
        {
            "id": trained.vocab[t],
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for t in specials
    ]
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        **sections,
        "model": trained.to_hf(),
    }
    return Tokenizer.from_hf(spec, source=source)


def _run_trainer(model, counts, vocab_size, min_frequency, specials, progress, options):
    if model == "wordpiece":
        return train_wordpiece(
            counts,
            vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            progress=progress,
            **options,
        )
    if model == "bpe":
        return train_bpe(
            counts,
            vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=sorted(ByteLevel.alphabet()),
            progress=progress,
            **options,
        )
    return train_unigram(counts, vocab_size, special_tokens=specials, progress=progress, **options)
