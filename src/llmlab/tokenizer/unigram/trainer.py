"""Unigram language-model trainer (Kudo 2018, "Subword Regularization"), as sentencepiece trains it.

Reference implementation: sentencepiece `src/unigram_model_trainer.cc` and `src/trainer_interface.cc`; compared
(tested) by the compression of the vocabulary it learns. Its steps, reproduced here:
1. Required characters: the most frequent characters that together cover `character_coverage` of all
   characters. The others are unknown: no piece holds them and the lattice gives them an unknown node.
2. Seeds: every required character, plus the `seed_size` best substrings by frequency x length among those
   that branch (are followed by two different characters somewhere: the internal nodes of the suffix tree
   that sentencepiece walks; here a substring that ends a word and occurs twice counts too, as in running
   text different words follow it) and are valid pieces: at most `max_piece_length` characters, '▁' only
   first, one Unicode script (Hiragana and Katakana count as Han). Initial score: log(score / total).
3. EM, `num_sub_iterations` times: the E-step takes each piece's expected count by forward-backward over every
   word's lattice; the M-step drops pieces expected fewer than 0.5 times and scores the others
   digamma(count) - digamma(total), the Bayesian (sparse prior) update.
4. Pruning to max(shrinking_factor * size, 1.1 * vocab_size) pieces: a piece whose best segmentation is not
   itself goes; a used single character stays; for the others the loss of removing the piece is estimated by
   handing its Viterbi count to its second-best segmentation, and the pieces that lose least go. Back to 3
   until at most 1.1 * vocab_size pieces are left.
5. Vocabulary: special tokens (`unk_token` first unless listed), the 256 "<0xXX>" pieces with byte fallback,
   every required character (one EM dropped scores min_score + 0.0001 * rank), then the best pieces up to
   `vocab_size`, ordered by score.

Modules: the corpus as one array and the seeds found by a suffix sort (`seeds.py`); the lattices of
all words, with forward-backward and Viterbi in numpy over every word at once, or compiled
(`lattice.py`, `_core/unigram_lattice.cpp` when the core is built: the same pieces, scores equal to 1e-9,
tested); the EM loop, pruning and final vocabulary (here).

Deviations: words over 1,024 characters are cut into chunks (sentencepiece skips sentences over 4,192 bytes);
Unicode scripts come from `unicodedata` names; unknown nodes count toward no piece in the E-step
(sentencepiece credits them to id 0); ties follow array order where sentencepiece's follow its hash maps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from llmlab.errors import LlmlabError
from llmlab.tokenizer.unigram.lattice import CoreLattice, Lattice, build_lattice
from llmlab.tokenizer.unigram.model import UNK_PENALTY, Unigram, byte_piece
from llmlab.tokenizer.unigram.seeds import Corpus, seeds


def train_unigram(
    word_counts: dict[str, int],
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    unk_token: str = "<unk>",
    character_coverage: float = 0.9995,
    max_piece_length: int = 16,
    seed_size: int = 1_000_000,
    shrinking_factor: float = 0.75,
    num_sub_iterations: int = 2,
    byte_fallback: bool = False,
    progress: Callable[[int, int], None] | None = None,
    control_tokens: bool = True,
) -> Unigram:
    """Learn a Unigram model from pre-tokenized word counts.

    Args:
        word_counts: each pre-tokenized word ('▁hello', or a whole space-less line) and its count.
        vocab_size: the size of the final vocabulary, special tokens and byte pieces included.
        special_tokens: pieces that get the first ids, in order; `unk_token` is put first if missing.
        unk_token: the unknown piece.
        character_coverage: the share of all characters that the required characters must cover.
        max_piece_length: the longest piece, in characters.
        seed_size: how many substrings seed the EM.
        shrinking_factor: the share of pieces each pruning round keeps.
        num_sub_iterations: EM iterations before each pruning round.
        byte_fallback: add the 256 "<0xXX>" pieces; unknown characters are then encoded as their bytes.
        progress: called as `progress(rounds_done, rounds_expected)`.
        control_tokens: the special tokens are the model's control pieces, never matched in text (False: they
            are plain pieces, as a tokenizer.json holds them, where the pipeline's added tokens handle them).

    Returns:
        The trained `Unigram` (scores are log probabilities). A small corpus can give fewer than `vocab_size`
        pieces.

    Raises:
        LlmlabError: no words, a bad setting, or `vocab_size` below the special and byte pieces plus the
            required characters.
    """
    _check_settings(vocab_size, character_coverage, max_piece_length, shrinking_factor, num_sub_iterations)
    specials = list(dict.fromkeys(special_tokens))
    if unk_token not in specials:
        specials.insert(0, unk_token)
    meta = specials + ([byte_piece(b) for b in range(256)] if byte_fallback else [])
    corpus = Corpus(word_counts)
    required = corpus.require(character_coverage, max_piece_length)
    if vocab_size < len(meta) + len(required):
        raise LlmlabError(
            f"Unigram trainer: vocab_size {vocab_size} is smaller than the {len(meta)} special/byte pieces + "
            f"{len(required)} required characters; raise vocab_size or lower character_coverage"
        )
    pieces, logp, reps, edges = seeds(corpus, required, max_piece_length, seed_size)
    del corpus.char, corpus.room  # the seeds' alone: freed before the lattice, the trainer's largest part
    lengths = pieces.lengths
    lattice = build_lattice(corpus, edges)
    alive, desired = np.ones(len(pieces), bool), int(vocab_size * 1.1)
    rounds = max(math.ceil(math.log(desired / len(pieces)) / math.log(shrinking_factor)), 0) + 1
    for done in itertools.count(1):
        for _ in range(num_sub_iterations):
            alive, logp = _m_step(lattice.expected_counts(_with_unk(logp, alive, UNK_PENALTY)), alive)
            lattice.keep(alive)
        if progress:
            progress(min(done, rounds - 1), rounds)
        if alive.sum() <= desired:  # every pruning round removes pieces, so this ends
            break
        target = max(desired, int(shrinking_factor * alive.sum()))
        alive = _prune(lattice, lengths, reps, _with_unk(logp, alive, UNK_PENALTY), alive, target)
        lattice.keep(alive)
    final = _finalize(pieces, logp, alive, [c for c, _ in required], vocab_size - len(meta), set(meta))
    if progress:
        progress(rounds, rounds)
    return Unigram(
        [(m, 0.0) for m in meta] + final,
        unk_id=specials.index(unk_token),
        byte_fallback=byte_fallback,
        special_ids=range(len(specials)) if control_tokens else (),
    )


def _check_settings(
    vocab_size: int, coverage: float, max_len: int, shrink: float, sub_iterations: int
) -> None:
    for ok, message in [
        (vocab_size >= 1, f"vocab_size must be positive, not {vocab_size}"),
        (0 < coverage <= 1, f"character_coverage must be in (0, 1], not {coverage}"),
        (max_len >= 1, f"max_piece_length must be positive, not {max_len}"),
        (0 < shrink < 1, f"shrinking_factor must be in (0, 1), not {shrink}"),
        (sub_iterations >= 1, f"num_sub_iterations must be positive, not {sub_iterations}"),
    ]:
        if not ok:
            raise LlmlabError(f"Unigram trainer: {message}")


def _with_unk(logp: np.ndarray, alive: np.ndarray, penalty: float) -> np.ndarray:
    """Scores to index by piece id: `logp`, then the unknown node's min_score - penalty (read by id -1)."""
    return np.append(logp, logp[alive].min() - penalty)


def _digamma(x: np.ndarray) -> np.ndarray:
    """sentencepiece's digamma: the recurrence up to 7, then the asymptotic series."""
    x, result = x.astype(float), np.zeros(len(x))
    while (small := x < 7).any():
        result[small] -= 1 / x[small]
        x[small] += 1
    x = x - 0.5
    xx2 = 1 / (x * x)
    xx4 = xx2 * xx2
    return result + np.log(x) + xx2 / 24 - 7 / 960 * xx4 + 31 / 8064 * xx4 * xx2 - 127 / 30720 * xx4 * xx4


def _m_step(expected: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M-step: pieces expected < 0.5 times die; score = digamma(count) - digamma(total)."""
    alive = alive & (expected >= 0.5)
    logp = np.full(len(expected), -np.inf)
    logp[alive] = _digamma(expected[alive]) - _digamma(expected[alive].sum(keepdims=True))
    return alive, logp


def _prune(lattice: Lattice | CoreLattice, lengths, reps, scores, alive, target: int) -> np.ndarray:
    """Keep `target` pieces: the used characters, then the pieces whose removal loses most likelihood."""
    freq = lattice.viterbi_counts(scores)
    ids = np.flatnonzero(alive)
    chars, multi = ids[lengths[ids] == 1], ids[lengths[ids] > 1]
    alt_score, (win, alt) = lattice.second_best(reps[multi], lengths[multi], scores)
    # removing piece i hands its Viterbi count f_i to the n pieces of its second-best segmentation
    f_i, n = freq[multi], np.bincount(win, minlength=len(multi))
    total, alt_freq = freq.sum(), np.where(alt >= 0, freq[alt], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_alt = np.bincount(win, np.log(alt_freq + f_i[win]), len(multi))
        log_alt -= n * np.log(total + f_i * (n - 1))  # the total count grows by f_i * (n - 1)
        loss = f_i / lattice.corpus.count.sum() * (np.log(f_i) - math.log(total) - log_alt)
    candidates = (f_i > 0) & (alt_score <= scores[multi])  # used, and its own best segmentation
    ranked = multi[candidates][np.argsort(-loss[candidates], kind="stable")]
    kept = chars[freq[chars] > 0]
    new = np.zeros(len(alive), bool)
    new[kept] = True
    new[ranked[: max(target - len(kept), 0)]] = True
    return new


def _finalize(pieces, logp, alive, required: list[str], size: int, meta: set[str]) -> list[tuple[str, float]]:
    """The required characters, then the best pieces up to `size`, ordered by score (ties: by piece)."""
    # 12 significant digits: HF reads tokenizer.json floats with serde_json's fast parser, which can be one
    # unit in the last place off for 17-digit decimals, and two pieces that tie that closely would then swap
    ids = np.flatnonzero(alive)
    scores = {pieces[i]: float(f"{x:.12g}") for i, x in zip(ids.tolist(), logp[ids].tolist(), strict=True)}
    low = min(scores.values())
    missing = [c for c in required if c not in scores]  # EM dropped them: scored as sentencepiece does
    final = {c: low + 0.0001 * rank for rank, c in enumerate(missing)}
    final.update((c, scores[c]) for c in required if c in scores)
    for piece, score in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(final) >= size:
            break
        if piece not in meta:
            final.setdefault(piece, score)
    return sorted(((p, s) for p, s in final.items() if p not in meta), key=lambda kv: (-kv[1], kv[0]))
