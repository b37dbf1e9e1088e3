"""llmlab: the building blocks of large language models, implemented correctly, fast, and easy to read.

Subpackages mirror the four topics: `tokenizer` (WordPiece, byte-level BPE, Unigram), `model`
(Transformer and positional encodings), `finetune`, `evaluation`; `report` draws the HTML report.
"""

__version__ = "0.1.0"
