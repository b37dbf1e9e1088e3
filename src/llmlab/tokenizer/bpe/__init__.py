"""Byte-pair encoding: the model (`model.py`: encode a word by replaying merges, with `chars.py` for long
byte-level words) and its trainer (`trainer.py`, with the words and pairs it merges in `words.py`, `pairs.py`)."""
