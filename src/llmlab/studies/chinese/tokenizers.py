"""The study's tokenizers: three families at two vocabulary sizes, trained by llmlab on the Chinese corpus,
and what each makes of Chinese text (tokens per character, unknown tokens).

Families (llmlab.tokenizer.train pipelines, so each loads in HF `tokenizers` unchanged):
- "wordpiece": BERT-Chinese's recipe (Devlin et al. 2019, google-research/bert `tokenization.py`):
  BertPreTokenizer splits every CJK ideograph into a word of its own, so Chinese is tokenized character by
  character and the vocabulary beyond the characters is Latin and digit pieces. The corpus has 8,194 distinct
  characters; where they do not all fit, the alphabet keeps the most frequent 95% of the vocabulary
  (`limit_alphabet`) and the rest become [UNK]. On this corpus WordPiece stops growing near 15k tokens.
- "bpe": GPT-2's byte-level BPE (Radford et al. 2019): no unknown token by construction; merges build words.
- "unigram": SentencePiece's Unigram (Kudo 2018) with NFKC and Metaspace: a space-less Chinese line is one
  "word" that the lattice segments; characters outside the 99.95% coverage become [UNK].
All three get BERT's special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]) and BERT's template `[CLS] $A [SEP]`
(byte-level BPE after its own ByteLevel post-processor), so masked-LM pretraining finds its tokens and
a classifier pools the same [CLS] position whatever the family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmlab.tokenizer.pipeline import Tokenizer
from llmlab.tokenizer.train import bert_template, train_tokenizer

FAMILIES = ("wordpiece", "bpe", "unigram")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ALPHABET_SHARE = 0.95  # wordpiece: the share of the vocabulary the characters may take


@dataclass(frozen=True)
class TokenizerSpec:
    """One tokenizer of the study: a family at a vocabulary size."""

    family: str
    vocab_size: int

    @property
    def name(self) -> str:
        return f"{self.family}-{self.vocab_size // 1000}k"


def train_study_tokenizer(spec: TokenizerSpec, lines: Sequence[str], alphabet_size: int) -> Tokenizer:
    """Train `spec` on `lines` with BERT's special tokens and [CLS] ... [SEP] framing.

    Args:
        alphabet_size: distinct characters of `lines` (wordpiece limits its alphabet when they do not fit).
    """
    options: dict = {}
    if spec.family == "unigram":
        options["unk_token"] = "[UNK]"
    room = spec.vocab_size - len(SPECIALS)
    if spec.family == "wordpiece" and alphabet_size > room:
        options["limit_alphabet"] = min(int(ALPHABET_SHARE * spec.vocab_size), room)
    tokenizer = train_tokenizer(
        spec.family, lines, spec.vocab_size, special_tokens=SPECIALS, workers=1, **options
    )
    return with_bert_template(tokenizer) if spec.family != "wordpiece" else tokenizer


def with_bert_template(tokenizer: Tokenizer) -> Tokenizer:
    """The tokenizer with `[CLS] $A [SEP]` added after its own post-processor (if any)."""
    spec = tokenizer.to_hf()
    template = bert_template(tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]"))
    own = spec.get("post_processor")
    spec["post_processor"] = template if own is None else {"type": "Sequence", "processors": [own, template]}
    return Tokenizer.from_hf(spec)


def tokenizer_stats(tokenizer: Tokenizer, texts: Sequence[str]) -> dict[str, float]:
    """What `tokenizer` makes of `texts` (no special tokens added).

    Returns:
        {"tokens_per_char": tokens / characters, "unk_rate": [UNK] tokens / tokens,
        "unk_char_rate": characters inside [UNK] tokens / characters, "vocab_size": the trained size}.
    """
    unk = tokenizer.token_to_id("[UNK]")
    tokens = unknown = unknown_chars = 0
    for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        tokens += len(enc.ids)
        for i, (start, end) in zip(enc.ids, enc.offsets, strict=True):
            if i == unk:
                unknown += 1
                unknown_chars += end - start
    chars = max(1, sum(map(len, texts)))
    return {
        "vocab_size": tokenizer.vocab_size,
        "tokens_per_char": tokens / chars,
        "unk_rate": unknown / max(1, tokens),
        "unk_char_rate": unknown_chars / chars,
    }
