"""Train a tokenizer end to end: read lines, count pre-tokenized words, run the model's trainer, wrap it up.

Each model name comes with the pipeline its family uses in practice, written as the Hugging Face
tokenizer.json sections it produces (so the result loads in HF `tokenizers` unchanged):
- `wordpiece`: BERT uncased (Devlin et al. 2019): BertNormalizer, BertPreTokenizer, `[CLS] $A [SEP]`.
- `bpe`: GPT-2 byte level (Radford et al. 2019): ByteLevel pre-tokenizer, all 256 bytes in the alphabet.
- `unigram`: SentencePiece (Kudo 2018; Kudo & Richardson 2018): NFKC, Metaspace '▁', optional byte fallback.

Counting words is the part of training that touches every byte of the corpus: `counting.py` does it on
`workers` processes in bounded memory (spilling sorted runs past `max_memory`), into a `WordTable` sized by
distinct words; `train_from_counts` trains from such a table (or from count files, `word_table.load_counts`).
The trained `Tokenizer` is assembled from its stages, the very one that its tokenizer.json loads as (tested),
without writing and parsing that JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from llmlab.errors import LlmlabError
from llmlab.tokenizer.bpe.trainer import train_bpe
from llmlab.tokenizer.counting import count_words
from llmlab.tokenizer.decoders import decoder_from_hf
from llmlab.tokenizer.normalize import Normalizer
from llmlab.tokenizer.normalize_sp import normalizer_from_hf
from llmlab.tokenizer.pipeline import AddedToken, Tokenizer
from llmlab.tokenizer.postprocess import postprocessor_from_hf
from llmlab.tokenizer.pretokenize import ByteLevel, PreTokenizer
from llmlab.tokenizer.pretokenize_split import pretokenizer_from_hf
from llmlab.tokenizer.word_table import WordTable
from llmlab.tokenizer.wordpiece import train_wordpiece

if TYPE_CHECKING:  # (llmlab.progress imports rich: not needed to train)
    from llmlab.progress import ProgressFn

DEFAULT_SPECIAL_TOKENS = {
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bpe": ["<|endoftext|>"],
    "unigram": ["<unk>", "<s>", "</s>", "<pad>"],
}
MODEL_NAMES = tuple(DEFAULT_SPECIAL_TOKENS)


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
            "post_processor": None,  # filled by `bert_template` once the ids are known
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


def bert_template(cls_id: int, sep_id: int) -> dict[str, Any]:
    """BERT's post-processor as tokenizer.json writes it: [CLS] A [SEP] (B [SEP]), type ids 0 then 1."""
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


def model_pipeline(model: str) -> tuple[Normalizer | None, PreTokenizer]:
    """The normalizer and pre-tokenizer of a model family's standard pipeline (what its words are made by)."""
    sections = pipeline_sections(model)
    return normalizer_from_hf(sections["normalizer"]), pretokenizer_from_hf(sections["pre_tokenizer"])


def train_tokenizer(
    model: str,
    lines: Iterable[str],
    vocab_size: int,
    min_frequency: int = 0,
    special_tokens: Sequence[str] | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    source: str = "corpus",
    max_memory: int | None = None,
    **options: Any,
) -> Tokenizer:
    """Train a tokenizer of family `model` on `lines`: count the words (`counting.count_words`), then
    `train_from_counts`.

    Args:
        model: "wordpiece", "bpe" or "unigram".
        lines: the training text, one line at a time (a stream: it is read once and never held).
        vocab_size: the size of the final vocabulary, special tokens included.
        min_frequency: (wordpiece, bpe) a pair must occur this often to be merged.
        special_tokens: defaults to the family's usual set (DEFAULT_SPECIAL_TOKENS).
        workers: processes for counting words (default: all cores).
        progress: `progress(done, total)` callback for the trainer's progress.
        source: how to name the corpus in errors.
        max_memory: bytes the word table may take while counting before it spills to disk (default: a
            share of RAM, `counting.default_max_memory`).
        options: as `train_from_counts` (`sample`, `seed`) and the trainer: `criterion` (wordpiece),
            `character_coverage` and `byte_fallback` (unigram), `limit_alphabet`, ...

    Raises:
        LlmlabError: unknown model, empty corpus, `max_memory` too small, vocab too small (from the trainer).
    """
    normalizer, pretokenizer = model_pipeline(model)
    counts = count_words(lines, normalizer, pretokenizer, workers, max_memory)
    return train_from_counts(
        model, counts, vocab_size, min_frequency, special_tokens, progress, source, **options
    )


def train_from_counts(
    model: str,
    counts: WordTable | dict[str, int],
    vocab_size: int,
    min_frequency: int = 0,
    special_tokens: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    source: str = "counts",
    sample: int | None = None,
    seed: int = 0,
    **options: Any,
) -> Tokenizer:
    """Train a tokenizer of family `model` from counted words (made by the family's pipeline: `model_pipeline`).

    Args:
        counts: the words as the model sees them, each with its count (`WordTable`, or a dict).
        sample: (unigram) train on a random sample of about this many word occurrences
            (`WordTable.sample`), reported on stderr; None: every word.
        seed: the sample's seed.
        Others as `train_tokenizer`.

    Raises:
        LlmlabError: unknown model, no words, `sample` with another model or not positive, vocab too small.
    """
    sections = pipeline_sections(model, options.get("byte_fallback", False))
    if not len(counts):
        raise LlmlabError(f"{source}: corpus is empty (no words to train on)")
    if sample is not None:
        counts = _sampled(model, counts, sample, seed)
    specials = list(DEFAULT_SPECIAL_TOKENS[model] if special_tokens is None else special_tokens)
    if model == "unigram" and options.setdefault("unk_token", "<unk>") not in specials:
        specials.insert(0, options["unk_token"])  # Unigram needs its unknown piece in the vocabulary
    trained = _run_trainer(model, counts, vocab_size, min_frequency, specials, progress, options)
    if model == "wordpiece" and "[CLS]" in trained.vocab and "[SEP]" in trained.vocab:
        sections["post_processor"] = bert_template(trained.vocab["[CLS]"], trained.vocab["[SEP]"])
    return Tokenizer(
        trained,
        normalizer=normalizer_from_hf(sections["normalizer"]),
        pre_tokenizer=pretokenizer_from_hf(sections["pre_tokenizer"]),
        post_processor=postprocessor_from_hf(sections["post_processor"]),
        decoder=decoder_from_hf(sections["decoder"]),
        added_tokens=[AddedToken(trained.vocab[t], t, special=True, normalized=False) for t in specials],
    )


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
    from llmlab.tokenizer.unigram.trainer import train_unigram  # here: it needs numpy, the others do not

    # control_tokens=False: the model as its tokenizer.json reads back (special ids are no part of the file; the
    # pipeline's added tokens keep the specials out of the text), so a trained and a loaded tokenizer are the same
    return train_unigram(
        counts, vocab_size, special_tokens=specials, progress=progress, control_tokens=False, **options
    )


def _sampled(model: str, counts, size: int, seed: int) -> WordTable:
    if model != "unigram":
        raise LlmlabError(
            f"--sample is for unigram; {model} trains exactly on every counted word (memory grows with distinct "
            "words, not corpus size)"
        )
    table = counts if isinstance(counts, WordTable) else WordTable.from_dict(counts)
    sampled = table.sample(size, seed)
    total = table.total
    kept = sampled.total
    print(
        f"unigram: training on a sample of {kept:,} of {total:,} words ({kept / total:.2%}; "
        f"{len(sampled):,} of {len(table):,} distinct), seed {seed}",
        file=sys.stderr,
    )
    return sampled
