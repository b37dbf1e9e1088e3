"""Studies that show why the building blocks behave as they do, each a command of `llmlab study`.

positions/: the seven positional encodings side by side (permutation, word order, length extrapolation,
pictures).
context/: RoPE context extension (linear, ntk, dynamic, yarn, llama3) beside ALiBi: perplexity and passkey
retrieval past the training length.
chinese/: which tokenizer serves Chinese best: WordPiece, BPE and Unigram, each with a masked-LM pretrained
encoder fine-tuned on two Chinese sentiment sets, beside all-MiniLM-L6-v2 and the TF-IDF baseline.
"""
