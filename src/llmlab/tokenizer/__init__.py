"""Tokenizers: normalizer → pre-tokenizer → model → post-processor → decoder, HF tokenizer.json compatible.

`MODELS` is the CLI registry: model name → model class (its `from_hf` reads the tokenizer.json "model").
"""

from llmlab.tokenizer.bpe.model import BPE
from llmlab.tokenizer.pipeline import AddedToken, Encoding, Tokenizer, check_fingerprint
from llmlab.tokenizer.unigram.model import Unigram
from llmlab.tokenizer.wordpiece import WordPiece

MODELS = {"wordpiece": WordPiece, "bpe": BPE, "unigram": Unigram}

__all__ = [
    "MODELS",
    "AddedToken",
    "BPE",
    "Encoding",
    "Tokenizer",
    "Unigram",
    "WordPiece",
    "check_fingerprint",
]
