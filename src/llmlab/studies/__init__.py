"""Studies that show why the building blocks behave as they do, each a command of `llmlab study`.

positions/: the seven positional encodings side by side (permutation, word order, length extrapolation,
pictures).
"""
