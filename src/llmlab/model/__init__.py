"""The model: one Transformer (causal LM or bidirectional encoder), seven positional encodings, generation.

    config = ModelConfig(vocab_size=1000, positional="alibi")
    model = Transformer(config)
    out = model(input_ids)                     # out.logits (B, T, V)
    ids = generate(model, input_ids, max_new_tokens=20, greedy=True)

Modules: config.py (ModelConfig), transformer.py (Transformer), generate.py (KVCache, generate),
positional/ (the PositionalEncoding interface and the POSITIONAL registry).
"""

from llmlab.model.config import ModelConfig
from llmlab.model.generate import KVCache, generate
from llmlab.model.positional import POSITIONAL, PositionalEncoding, build_positional
from llmlab.model.transformer import Transformer, TransformerOutput

__all__ = [
    "POSITIONAL",
    "KVCache",
    "ModelConfig",
    "PositionalEncoding",
    "Transformer",
    "TransformerOutput",
    "build_positional",
    "generate",
]
