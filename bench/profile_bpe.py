"""Byte-level BPE, ours vs Hugging Face `tokenizers`, both on one thread: training time and encode throughput.

Times are CPU seconds of this process (`time.process_time`, steadier than wall time on a shared machine), the
best of `--repeats` runs, measured in alternation (ours, HF, ours, HF, ...).

1. Training on a corpus, GPT-2 style (ByteLevel words, all 256 bytes in the alphabet, "<|endoftext|>"):
   - ours: counting words (`count_words`, compiled where the core is built) and `train_bpe` on the counts;
   - HF: `BpeTrainer` on the file; its counting alone is estimated by a run that stops at the alphabet, so
     "HF merges" is HF's merge loop alone.
2. Encoding every pre-tokenized word of the corpus with the trained model (cache starting empty, as in use):
   - ours: `BPE.tokenize` per word (plus, separately, our pre-tokenization);
   - HF: `encode_batch` of the lines (its pre-tokenization included), and of the words pre-tokenized.

Usage: python bench/profile_bpe.py [--corpus gutenberg_en] [--vocab 8000 32000] [--repeats 3] [--profile]
       python bench/profile_bpe.py --corpus zh_classic_novels   # long byte-level "words": the numpy merge path
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
from pathlib import Path

# bench/tokenizers.py would shadow HF's package: keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers is imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from llmlab.tokenizer.bpe.model import BPE  # noqa: E402
from llmlab.tokenizer.bpe.trainer import train_bpe  # noqa: E402
from llmlab.tokenizer.counting import count_words  # noqa: E402
from llmlab.tokenizer.pretokenize import ByteLevel  # noqa: E402
from llmlab.tokenizer.word_table import WordTable  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPECIALS = ["<|endoftext|>"]
ALPHABET = pre_tokenizers.ByteLevel.alphabet()


def cpu(fn, repeats: int) -> tuple[float, object]:
    """Best CPU time of `repeats` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start = time.process_time()
        result = fn()
        best = min(best, time.process_time() - start)
    return best, result


def count_ours(lines: list[str]) -> WordTable:
    return count_words(lines, None, ByteLevel(), workers=1)


def train_hf(path: Path, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=ALPHABET, show_progress=False
    )
    tok.train([str(path)], trainer)
    return tok


def bench_training(path: Path, lines: list[str], vocab_sizes: list[int], repeats: int) -> dict[int, BPE]:
    count_s, counts = cpu(lambda: count_ours(lines), repeats)
    hf_count_s, _ = cpu(lambda: train_hf(path, len(ALPHABET) + 1), repeats)
    print(
        f"word counting: ours {count_s:.3f} s, HF {hf_count_s:.3f} s (HF: a run stopped at the alphabet, i.e. reading, counting, first pair count)"
    )
    print(
        f"{'vocab':>6} {'ours train':>10} {'ours total':>10} {'HF merges':>9} {'HF total':>8}  HF/ours total, merges"
    )
    trained = {}
    for vocab_size in vocab_sizes:
        ours_s, hf_s = float("inf"), float("inf")
        for _ in range(repeats):  # alternate, so both see the same machine load
            t, trained[vocab_size] = cpu(
                lambda v=vocab_size: train_bpe(counts, v, special_tokens=SPECIALS, initial_alphabet=ALPHABET),
                1,
            )
            ours_s = min(ours_s, t)
            hf_s = min(hf_s, cpu(lambda v=vocab_size: train_hf(path, v), 1)[0])
        ours_total, hf_merges = count_s + ours_s, max(hf_s - hf_count_s, 1e-9)
        print(
            f"{vocab_size:>6} {ours_s:>10.3f} {ours_total:>10.3f} {hf_merges:>9.3f} {hf_s:>8.3f}  "
            f"{hf_s / ours_total:.2f}x, {hf_merges / ours_s:.2f}x"
        )
    return trained


def bench_encoding(model: BPE, lines: list[str], repeats: int) -> None:
    mb = sum(len(line.encode()) + 1 for line in lines) / 1e6
    split = ByteLevel().split
    pretok_s, words = cpu(lambda: [[w for w, _, _ in split(line)] for line in lines], repeats)

    def ours() -> None:
        model._cache.clear()  # start cold, as a fresh tokenizer would
        tokenize = model.tokenize
        for line_words in words:
            for w in line_words:
                tokenize(w)

    ours_s, _ = cpu(ours, repeats)
    ref = Tokenizer(models.BPE(model.vocab, model.merges))
    model_only_s, _ = cpu(lambda: ref.encode_batch(words, is_pretokenized=True), repeats)
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    full_s, _ = cpu(lambda: ref.encode_batch(lines), repeats)
    print(f"encoding {mb:.1f} MB, MB/s (CPU):")
    print(
        f"  ours tokenize {mb / ours_s:6.1f}   HF model only (pre-tokenized words) {mb / model_only_s:6.1f}"
    )
    print(
        f"  ours pretok + tokenize {mb / (pretok_s + ours_s):6.1f}   HF encode_batch(lines) {mb / full_s:6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default="gutenberg_en")
    parser.add_argument("--vocab", type=int, nargs="+", default=[8000, 32000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one training run (first vocab size)")
    args = parser.parse_args()
    path = DATA / args.corpus / "train.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    trained = bench_training(path, lines, args.vocab, args.repeats)
    bench_encoding(trained[args.vocab[0]], lines, args.repeats)
    if args.profile:
        counts = count_ours(lines)
        with cProfile.Profile() as prof:
            train_bpe(counts, args.vocab[0], special_tokens=SPECIALS, initial_alphabet=ALPHABET)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
