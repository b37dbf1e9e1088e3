"""BERT masking for masked-language-model pretraining: which tokens to predict, and what the model sees there.

Devlin et al. 2019, "BERT" §3.1 and Appendix A.1, as Google's `create_pretraining_data.py` implements it
(`create_masked_lm_predictions`):
- a budget of max(1, round(mask_prob * n)) positions per sequence, n its maskable tokens; special tokens
  ([CLS], [SEP], padding: `maskable` False) are never chosen;
- token masking: that many maskable positions, drawn uniformly without replacement;
- whole-word masking (Google BERT's WWM release of 2019; HF transformers 4.x
  `DataCollatorForWholeWordMask._whole_word_mask` follows the same rule, and so does this module): the words
  in random order, each taken whole while it fits the budget, a word that would overflow it skipped, so every
  token of a chosen word is masked and no word is ever split (the share may fall a little short of the
  budget). transformers 5 replaced that collator by `DataCollatorForLanguageModeling(whole_word_mask=True)`,
  which draws 15% of the words rather than of the tokens and never puts in a random token; we keep BERT's;
- each chosen position on its own: 80% the mask token, 10% a token drawn uniformly from the whole vocabulary
  (as Google and HF draw it), 10% left as it is. Labels: the original id at the chosen positions, -100
  (PyTorch's `ignore_index`) everywhere else.

Deviations: n counts the maskable tokens only (Google and HF also count [CLS] and [SEP]); there is no
`max_predictions_per_seq` cap. Dynamic masking (RoBERTa, Liu et al. 2019 §4.1): the caller draws a fresh mask
each time it draws a window, from its seeded numpy Generator, so a run that saves the generator resumes bit
for bit. Tested (tests/pretraining/test_mlm.py): the 15% and 80/10/10 shares on a large sample, specials never
chosen, words never split (hypothesis), same seed same mask.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100  # label of the positions not predicted (torch cross_entropy's default ignore_index)
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen positions; the rest keep their token


def mask_tokens(
    ids: np.ndarray,
    maskable: np.ndarray,
    mask_prob: float,
    mask_id: int,
    vocab_size: int,
    rng: np.random.Generator,
    word_starts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose the positions to predict and corrupt them, BERT's way.

    Args:
        ids: (B, T) token ids.
        maskable: (B, T) bool, True where a token may be chosen (False: special tokens, padding).
        mask_prob: share of the maskable tokens to choose (BERT: 0.15).
        mask_id: the mask token's id ([MASK]).
        vocab_size: random replacements are drawn from [0, vocab_size).
        rng: draws everything (its state moves on).
        word_starts: (B, T) bool, True where a token begins a word: whole-word masking; None: token masking.

    Returns:
        (inputs, labels), both (B, T) int64: the corrupted ids, and the original ids at the chosen positions
        with IGNORE_INDEX elsewhere.
    """
    ids = np.asarray(ids, dtype=np.int64)
    maskable = np.asarray(maskable, dtype=bool)
    keys = rng.random(ids.shape)  # (B, T): the random order of tokens (or of words, by their first token)
    if word_starts is None:
        chosen = _choose_tokens(keys, maskable, mask_prob)
    else:
        chosen = _choose_words(keys, maskable, np.asarray(word_starts, dtype=bool), mask_prob)
    return _corrupt(ids, chosen, mask_id, vocab_size, rng)


def budget(maskable: np.ndarray, mask_prob: float) -> np.ndarray:
    """(B,) positions to choose per row: max(1, round(mask_prob * maskable tokens)), 0 for a row with none."""
    n = maskable.sum(axis=1)
    return np.where(n > 0, np.maximum(1, np.rint(n * mask_prob)), 0).astype(np.int64)


def _choose_tokens(keys: np.ndarray, maskable: np.ndarray, mask_prob: float) -> np.ndarray:
    """(B, T) bool: the `budget` maskable positions of each row with the smallest keys."""
    keys = np.where(maskable, keys, 2.0)  # never among the first: keys are in [0, 1)
    rank = keys.argsort(axis=1, kind="stable").argsort(axis=1, kind="stable")  # (B, T)
    return rank < budget(maskable, mask_prob)[:, None]


def word_numbers(maskable: np.ndarray, word_starts: np.ndarray) -> np.ndarray:
    """(B, T) int: the 1-based word of each maskable token within its row, 0 for the others.

    A word begins at a flagged token, at a row's first maskable token (a window may begin inside a word) and
    after a token that is not maskable.
    """
    after_special = np.ones_like(maskable)
    after_special[:, 1:] = ~maskable[:, :-1]  # (B, T)
    starts = maskable & (word_starts | after_special)
    return np.where(maskable, np.cumsum(starts, axis=1), 0)


def _choose_words(
    keys: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray, mask_prob: float
) -> np.ndarray:
    """(B, T) bool: whole words in the order of their first token's key, each taken if it fits the budget."""
    words = word_numbers(maskable, word_starts)  # (B, T)
    limits = budget(maskable, mask_prob)
    chosen = np.zeros(words.shape, dtype=bool)
    for row, limit in enumerate(limits):
        n_words = int(words[row].max())
        if n_words == 0:
            continue
        sizes = np.bincount(words[row], minlength=n_words + 1)  # sizes[w]: tokens of word w (w >= 1)
        first = np.flatnonzero(np.diff(words[row], prepend=0) > 0)  # (n_words,): each word's first token
        taken = np.zeros(n_words + 1, dtype=bool)
        used = 0
        for word in words[row, first[np.argsort(keys[row, first], kind="stable")]]:
            if used + sizes[word] <= limit:  # Google / HF: a word that would overflow the budget is skipped
                taken[word], used = True, used + sizes[word]
                if used == limit:
                    break
        chosen[row] = taken[words[row]]
    return chosen


def _corrupt(
    ids: np.ndarray, chosen: np.ndarray, mask_id: int, vocab_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """80% of the chosen positions become `mask_id`, 10% a random token, 10% stay; labels as documented."""
    labels = np.where(chosen, ids, IGNORE_INDEX)
    u = rng.random(ids.shape)  # (B, T)
    inputs = ids.copy()
    inputs[chosen & (u < MASK_SHARE)] = mask_id
    replace = chosen & (u >= MASK_SHARE) & (u < MASK_SHARE + RANDOM_SHARE)
    inputs[replace] = rng.integers(0, vocab_size, size=int(replace.sum()))
    return inputs, labels
