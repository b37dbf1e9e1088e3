"""Tokenizer training at corpus scale: time and peak memory for 1x, 4x, 16x the shared raw corpora.

The corpus is the four raw corpora of ../shared/data (tiny_shakespeare, gutenberg_en, zh_classic_novels,
zh_poetry; train + valid, 17.4 MB), read k times in a row as one stream (`read_corpus(..., repeat=k)`): no
copy is written anywhere. Each library trains byte-level BPE (GPT-2 pipeline) at the same vocabulary size in
a fresh child process, fed the same generator of lines, one thread each:
- llmlab: `count_words` (bounded memory, `--max-memory`) then `train_from_counts`; the two phases are timed
  apart. The merges are hashed: they must be the same at every k (the repetition invariant) and equal HF's;
- HF `tokenizers`: `BpeTrainer` with the ByteLevel pre-tokenizer (RAYON_NUM_THREADS=1), `train_from_iterator`;
- sentencepiece: `SentencePieceTrainer` BPE from a `sentence_iterator` (num_threads=1), its own pipeline
  (it keeps every sentence in memory: the memory sentencepiece's users work around with
  `--input_sentence_size`, google/sentencepiece #680).
Peak memory is the child's VmHWM (/proc/self/status), the whole process, imports included; `base` is after
the imports; "llmlab count MiB" is the peak when counting ends, before training; "train adds" is the peak of
training above the memory held when it starts (VmHWM reset through /proc/self/clear_refs), also per distinct
word. Ratios are llmlab / reference (below 1: llmlab uses less).

    python bench/tokenizer_scale.py                         # 1x 4x 16x, vocab 8000, every library
    python bench/tokenizer_scale.py --multiples 1 4 --only llmlab hf --json scale.json
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/tokenizers.py sits in this folder: keep it off the import path so `import tokenizers` finds HF's.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
CORPORA = ("tiny_shakespeare", "gutenberg_en", "zh_classic_novels", "zh_poetry")
LIBRARIES = ("llmlab", "hf", "sentencepiece")
SPECIALS = ["<|endoftext|>"]
_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def corpus_files() -> list[Path]:
    return [DATA / name / split for name in CORPORA for split in ("train.txt", "valid.txt")]


def rss_mib(field: str) -> float:
    """ "VmRSS" (now) or "VmHWM" (peak) of this process, MiB (not ru_maxrss: it survives fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux /proc/self/clear_refs "5"), so that a later VmHWM is the peak of
    what runs after; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# ---------------------------------------------------------------- one library, in a child process


def lines(k: int):
    from llmlab.tokenizer.corpus import read_corpus

    return read_corpus(corpus_files(), repeat=k)


def run_llmlab(k: int, vocab: int, max_memory: int | None) -> dict:
    from llmlab.tokenizer.counting import count_words
    from llmlab.tokenizer.train import model_pipeline, train_from_counts

    normalizer, pretokenizer = model_pipeline("bpe")
    start = time.perf_counter()
    counts = count_words(lines(k), normalizer, pretokenizer, workers=1, max_memory=max_memory)
    counted, count_peak = time.perf_counter(), rss_mib("VmHWM")
    before = rss_mib("VmRSS")
    reset = reset_peak()
    tok = train_from_counts("bpe", counts, vocab, special_tokens=SPECIALS)
    train_s = time.perf_counter() - counted
    merges = [" ".join(m) for m in tok.to_hf()["model"]["merges"]]
    return {
        "count_s": counted - start,
        "train_s": train_s,
        "train_adds_mib": rss_mib("VmHWM") - before if reset else None,
        "count_peak_mib": count_peak,
        "distinct_words": len(counts),
        "table_mib": counts.nbytes / 2**20,
        "merges_sha": hashlib.sha256("\n".join(merges).encode()).hexdigest()[:16],
    }


def run_hf(k: int, vocab: int, max_memory: int | None) -> dict:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines(k), trainer=trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    return {"merges_sha": hashlib.sha256("\n".join(merges).encode()).hexdigest()[:16]}


def run_sentencepiece(k: int, vocab: int, max_memory: int | None) -> dict:
    import io

    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=lines(k),
        model_writer=io.BytesIO(),
        model_type="bpe",
        vocab_size=vocab,
        byte_fallback=True,
        num_threads=1,
        max_sentence_length=1 << 16,
        minloglevel=2,
    )
    return {}


def child(lib: str, k: int, vocab: int, max_memory: int | None) -> None:
    """Train once and print {"seconds", "peak_mib", "base_mib", ...} as JSON on stdout."""
    import llmlab.tokenizer.corpus  # noqa: F401  (the reader: in the baseline of every library)

    __import__(
        {"llmlab": "llmlab.tokenizer.train", "hf": "tokenizers", "sentencepiece": "sentencepiece"}[lib]
    )
    base = rss_mib("VmRSS")
    start = time.perf_counter()
    extra = {"llmlab": run_llmlab, "hf": run_hf, "sentencepiece": run_sentencepiece}[lib](
        k, vocab, max_memory
    )
    seconds = time.perf_counter() - start
    peak = max(rss_mib("VmHWM"), extra.get("count_peak_mib", 0))  # VmHWM was reset before llmlab trains
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "base_mib": base, **extra}))


# ---------------------------------------------------------------- parent: one row per multiple


def measure(lib: str, k: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", lib, str(k), "--vocab", str(args.vocab)]
    cmd += ["--max-memory", args.max_memory] if args.max_memory else []
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    log(f"{lib} {k}x ...")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        log(f"{lib} {k}x: over {args.timeout} s, stopped")
        return {"error": f"timeout {args.timeout}s"}
    if proc.returncode != 0:
        log(f"{lib} {k}x FAILED:\n{proc.stderr[-2000:]}")
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:80]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    log(f"{lib} {k}x: {result['seconds']:.1f} s, peak {result['peak_mib']:.0f} MiB")
    return result


def fmt(result: dict | None, key: str, spec: str) -> str:
    if not result:
        return "-"
    return result["error"] if "error" in result else format(result[key], spec)


def table(rows: list[dict], libs: list[str], mb: float) -> None:
    head = ["k", "MB"] + [f"{lib} {x}" for lib in libs for x in ("s", "MiB")]
    head += [
        "llmlab count s/MB",
        "llmlab count MiB",
        "llmlab train adds MiB (B/word)",
        "mem llmlab/hf",
        "mem llmlab/spm",
        "merges",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    first = rows[0].get("llmlab") if rows else None
    for row in rows:
        cells = [f"{row['k']}x", f"{row['k'] * mb:.1f}"]
        for lib in libs:
            cells += [fmt(row.get(lib), "seconds", ".1f"), fmt(row.get(lib), "peak_mib", ".0f")]
        ours = row.get("llmlab") or {}
        cells.append(f"{ours['count_s'] / (row['k'] * mb):.2f}" if "count_s" in ours else "-")
        cells.append(fmt(ours, "count_peak_mib", ".0f"))
        cells.append(train_memory(ours))
        for ref in ("hf", "sentencepiece"):
            other = row.get(ref) or {}
            ok = "peak_mib" in ours and "peak_mib" in other
            cells.append(f"{ours['peak_mib'] / other['peak_mib']:.2f}" if ok else "-")
        cells.append(merges_note(ours, row.get("hf") or {}, first or {}))
        print("| " + " | ".join(cells) + " |")


def train_memory(ours: dict) -> str:
    """What training adds to the resident memory at its peak, and that per distinct word."""
    if ours.get("train_adds_mib") is None:
        return "-"
    adds = ours["train_adds_mib"]
    return f"{adds:.0f} ({adds * 2**20 / ours['distinct_words']:.0f})"


def merges_note(ours: dict, hf: dict, first: dict) -> str:
    if "merges_sha" not in ours:
        return "-"
    same_k = "= 1x" if ours["merges_sha"] == first.get("merges_sha") else "DIFFERS from 1x"
    same_hf = (
        ""
        if "merges_sha" not in hf
        else ("; = HF" if hf["merges_sha"] == ours["merges_sha"] else "; DIFFERS from HF")
    )
    return same_k + same_hf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--only", nargs="+", choices=LIBRARIES, default=list(LIBRARIES))
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--max-memory", help="llmlab's --max-memory (default: a share of RAM)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per library and multiple")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", nargs=2, metavar=("LIB", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from llmlab.tokenizer.counting import parse_size

        memory = parse_size(args.max_memory) if args.max_memory else None
        child(args.child[0], int(args.child[1]), args.vocab, memory)
        return 0
    if not all(p.is_file() for p in corpus_files()):
        print(f"shared data not found under {DATA}: nothing to measure", file=sys.stderr)
        return 0
    mb = sum(p.stat().st_size for p in corpus_files()) / 1e6
    rows = []
    for k in args.multiples:
        rows.append({"k": k, **{lib: measure(lib, k, args) for lib in args.only}})
    print(
        f"Byte-level BPE, vocab {args.vocab}, one thread each; corpus {mb:.1f} MB x k, streamed; "
        "peak = VmHWM of a fresh process (imports included)\n"
    )
    table(rows, args.only, mb)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
