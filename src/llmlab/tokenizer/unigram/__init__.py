"""Unigram language model: the model (`model.py`: Viterbi segmentation, sampling) and its trainer (`trainer.py`,
EM over the lattices of `lattice.py`, seeded by the suffix sort of `seeds.py`)."""
