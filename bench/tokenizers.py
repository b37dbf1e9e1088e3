"""Benchmark llmlab's tokenizers against Hugging Face `tokenizers`, `sentencepiece` and `tiktoken`.

Same process, same input, same thread count for every library. Three sections:
1. train:  training time per algorithm (WordPiece, byte-level BPE, Unigram) and vocabulary size, on an English
           and a Chinese corpus; ours is also split into word counting and the model's trainer.
2. encode: MB/s of UTF-8 input against HF, tiktoken, kitoken, sentencepiece and flash-tokenizer on the same
           vocabularies, cold and warm, loop and batch (1 and 2 threads), per-call overhead on SST-2 and peak
           memory (tokenizer_engines.py, tokenizer_encode.py).
3. memory: peak resident memory of training, each trainer in a fresh subprocess.

Ratios are speed ours / speed reference: above 1 we are faster. Tables go to stdout, progress to stderr.

    python bench/tokenizers.py --quick                 # small inputs, vocab 8k, about two minutes
    python bench/tokenizers.py --json out.json         # full corpora, vocab 8k and 32k
    python bench/tokenizers.py --only encode --memory   # issue 10's table: every engine, every row
    python bench/tokenizers.py --only train --python-trainer   # also our trainers on the pure-Python path
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file is named tokenizers.py: keep its folder off the import path so `import tokenizers` finds HF's.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.append(str(HERE))  # last: the helper modules here are found, HF's `tokenizers` still comes first

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from tokenizer_engines import train_sp  # noqa: E402  (a helper module beside this file)

DATA = HERE.parent.parent / "shared" / "data"
MODELS = ("wordpiece", "bpe", "unigram")
SPECIALS = {
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bpe": ["<|endoftext|>"],
    "unigram": ["<unk>", "<s>", "</s>", "<pad>"],
}
CHEAP_S = 3.0  # a measurement that took less than this is repeated (median of `--repeats`)
_T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress line on stderr, stamped with the seconds since start."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data


def read_lines(path: Path, max_bytes: int | None = None) -> list[str]:
    """Lines of a UTF-8 text file, the first `max_bytes` worth when given."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines if max_bytes is None else take_bytes(lines, max_bytes)


def take_bytes(lines: list[str], max_bytes: float) -> list[str]:
    """The leading lines whose UTF-8 size adds up to at most `max_bytes`."""
    out, size = [], 0
    for line in lines:
        size += len(line.encode()) + 1
        if size > max_bytes:
            break
        out.append(line)
    return out


def nbytes(texts: list[str]) -> int:
    return sum(len(t.encode()) for t in texts)


def training_corpora(quick: bool, langs: tuple[str, ...] | list[str] = ("en", "zh")) -> dict:
    """lang -> (corpus name, lines): English and Chinese training text."""
    sources = {
        "en": ("tiny_shakespeare", None) if quick else ("gutenberg_en", None),
        "zh": ("zh_classic_novels", 1_000_000 if quick else None),
    }
    corpora = {}
    for lang in langs:
        name, cap = sources[lang]
        label = f"{name}[:1MB]" if cap else name
        corpora[lang] = (label, read_lines(DATA / name / "train.txt", cap))
    return corpora


# ---------------------------------------------------------------- trainers


def train_ours(model: str, lines: list[str], vocab: int, threads: int, pure_python: bool = False):
    """llmlab's standard pipeline for `model` (returns a llmlab Tokenizer); `pure_python`: the trainer's
    Python path (LLMLAB_PURE_PYTHON=1) instead of the compiled core."""
    from llmlab.tokenizer.train import train_tokenizer

    saved = os.environ.get("LLMLAB_PURE_PYTHON")
    os.environ["LLMLAB_PURE_PYTHON"] = "1" if pure_python else (saved or "0")
    try:
        return train_tokenizer(model, lines, vocab, workers=threads)
    finally:
        if saved is None:
            del os.environ["LLMLAB_PURE_PYTHON"]
        else:
            os.environ["LLMLAB_PURE_PYTHON"] = saved


def count_ours(model: str, lines: list[str], threads: int):
    """Only the word counting that `train_tokenizer` starts with."""
    from llmlab.tokenizer.counting import count_words
    from llmlab.tokenizer.normalize_sp import normalizer_from_hf
    from llmlab.tokenizer.pretokenize_split import pretokenizer_from_hf
    from llmlab.tokenizer.train import pipeline_sections

    sections = pipeline_sections(model)
    normalizer = normalizer_from_hf(sections["normalizer"])
    pretokenizer = pretokenizer_from_hf(sections["pre_tokenizer"])
    return count_words(lines, normalizer, pretokenizer, threads)


def train_hf(model: str, lines: list[str], vocab: int, threads: int):
    """HF `tokenizers` with the same pipeline (threads set through RAYON_NUM_THREADS)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if model == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab, special_tokens=SPECIALS[model], show_progress=False
        )
    elif model == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab,
            special_tokens=SPECIALS[model],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    else:
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab, special_tokens=SPECIALS[model], unk_token="<unk>", show_progress=False
        )
    tok.train_from_iterator(lines, trainer, length=len(lines))
    return tok


def vocab_size_of(result: Any) -> int:
    """The vocabulary size of a trained tokenizer of any library."""
    if isinstance(result, bytes):
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=result).get_piece_size()
    return result.get_vocab_size() if hasattr(result, "get_vocab_size") else result.vocab_size


# ---------------------------------------------------------------- timing and tables


def measure(fn: Callable[[], Any], repeats: int, profile: str | None = None) -> tuple[float, int, Any]:
    """Median wall time of `fn()`; repeated (up to `repeats` runs) only when a run is cheap.

    Returns:
        (median seconds, runs, result of the last run). With `profile`, one extra, untimed run is profiled
        first and its top 10 functions by own time go to stderr under that title.
    """
    if profile:
        profiled(fn, profile)
    times, result = [], None
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        if times[0] > CHEAP_S:
            break
    return statistics.median(times), len(times), result


def profiled(fn: Callable[[], Any], title: str) -> Any:
    """Run `fn` under cProfile and print its top 10 by own time to stderr."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    result = prof.runcall(fn)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(10)
    log(f"cProfile {title}:\n{out.getvalue()}")
    return result


def attempt(label: str, fn: Callable[[], Any]) -> tuple[Any, str | None]:
    """`(fn(), None)`, or `(None, error)` with the traceback on stderr: one failure must not end the run."""
    try:
        return fn(), None
    except Exception as exc:  # noqa: BLE001  (any library may fail; report it and go on)
        log(f"FAILED {label}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        return None, f"{type(exc).__name__}: {exc}"[:200]


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "ERR" if x is None else format(x, spec)


def print_table(title: str, headers: list[str], rows: list[list[str]], notes: list[str] = ()) -> None:
    """A plain left/right aligned text table on stdout."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    print(f"\n## {title}")
    for note in notes:
        print(note)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(line)
    for r in rows:
        print(
            "  ".join(
                str(c).rjust(w) if i > 1 else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    sys.stdout.flush()


def time_ratio(ours_s: float | None, ref_s: float | None) -> str:
    """Speed ours / speed reference from two durations (above 1: ours faster)."""
    return "-" if not ours_s or ref_s is None else f"{ref_s / ours_s:.2f}x"


# ---------------------------------------------------------------- 1. training time


def bench_train(args: argparse.Namespace, corpora: dict, cache: dict) -> list[dict]:
    """Training time of every algorithm, library, corpus and vocabulary size; prints the table."""
    rows = []
    for lang, (name, lines) in corpora.items():
        for vocab in args.vocab:
            for model in MODELS:
                rows.append(train_row(args, name, lang, lines, vocab, model, cache))
    print_table(
        f"Training time, seconds (median of up to {args.repeats} runs; runs over {CHEAP_S:.0f} s once)",
        [
            "corpus",
            "vocab",
            "model",
            "ours",
            "(count",
            "trainer)",
            *(["trainer py", "core/py"] if args.python_trainer else []),
            "HF",
            "SP",
            "ours/HF",
            "ours/SP",
            "|V| ours/HF/SP",
        ],
        [train_cells(r, args.python_trainer) for r in rows],
        [
            f"threads: {args.threads} (ours workers, RAYON_NUM_THREADS, sentencepiece num_threads)",
            "ours = train_tokenizer; count = count_words alone; trainer = ours - count (compiled where the core "
            "is built); trainer py = the same on the pure-Python path, core/py = its speed-up.",
            "SP = sentencepiece, model_type bpe or unigram (it has no WordPiece).",
            "Ratios: speed ours / speed reference (above 1: ours faster).",
        ],
    )
    print_errors(rows)
    return rows


def print_errors(rows: list[dict]) -> None:
    """One stdout line per failed measurement (details and tracebacks are on stderr)."""
    for r in rows:
        for key, err in r.items():
            if key.endswith("error"):
                print(f"  error: {r.get('corpus', r.get('input'))} {r['model']} {key[:-6] or 'run'}: {err}")


def train_row(args, name: str, lang: str, lines: list[str], vocab: int, model: str, cache: dict) -> dict:
    """Time ours (whole and counting alone), HF and sentencepiece on one configuration."""
    where = f"{model} vocab {vocab} on {name}"
    row: dict[str, Any] = {
        "corpus": name,
        "lang": lang,
        "mb": nbytes(lines) / 1e6,
        "vocab": vocab,
        "model": model,
    }
    libs: dict[str, Callable[[], Any]] = {
        "ours": lambda: train_ours(model, lines, vocab, args.threads),
        "count": lambda: count_ours(model, lines, args.threads),
        "hf": lambda: train_hf(model, lines, vocab, args.threads),
    }
    if args.python_trainer:
        libs["py"] = lambda: train_ours(model, lines, vocab, args.threads, pure_python=True)
    if model != "wordpiece":
        libs["sp"] = lambda: train_sp(model, lines, vocab, args.threads)
    for lib, fn in libs.items():
        log(f"train {lib:5s} {where}")
        prof = f"ours {where}" if args.profile and lib == "ours" else None
        res, err = attempt(f"{lib} {where}", lambda fn=fn, prof=prof: measure(fn, args.repeats, prof))
        row[f"{lib}_s"], row[f"{lib}_runs"] = (res[0], res[1]) if res else (None, 0)
        if err:
            row[f"{lib}_error"] = err
        elif lib not in ("count", "py"):
            row[f"{lib}_vocab"] = vocab_size_of(res[2])
            cache[(lib, model, lang, vocab)] = res[2]
    if row["ours_s"] is not None and row["count_s"] is not None:
        row["trainer_s"] = row["ours_s"] - row["count_s"]
        if row.get("py_s") is not None:
            row["trainer_py_s"] = row["py_s"] - row["count_s"]
    return row


def train_cells(r: dict, python_trainer: bool = False) -> list[str]:
    sizes = "/".join(str(r.get(f"{lib}_vocab", "-")) for lib in ("ours", "hf", "sp"))
    py = [fmt(r.get("trainer_py_s")), time_ratio(r.get("trainer_s"), r.get("trainer_py_s"))]
    return [
        r["corpus"],
        str(r["vocab"]),
        r["model"],
        fmt(r["ours_s"]),
        fmt(r["count_s"]),
        fmt(r.get("trainer_s")),
        *(py if python_trainer else []),
        fmt(r["hf_s"]),
        fmt(r["sp_s"]) if "sp_s" in r else "-",
        time_ratio(r["ours_s"], r["hf_s"]),
        time_ratio(r["ours_s"], r.get("sp_s")),
        sizes,
    ]


# ---------------------------------------------------------------- 2. encode (tokenizer_encode.py)


def bench_encode(args: argparse.Namespace) -> list[dict]:
    """Encode speed against every engine installed here (see tokenizer_encode.py)."""
    from tokenizer_encode import bench_encode as run

    return run(args, DATA, args.work)


# ---------------------------------------------------------------- 3. peak memory


def bench_memory(args: argparse.Namespace, langs: list[str]) -> list[dict]:
    """Peak RSS of each trainer, each in a fresh subprocess; prints the table."""
    vocab = min(args.vocab)
    rows = []
    for lang in langs:
        for model in MODELS:
            for lib in ("ours", "hf", "sp"):
                if lib == "sp" and model == "wordpiece":
                    continue
                log(f"memory {lib} {model} {lang} vocab {vocab} (subprocess)")
                rows.append(memory_row(args, lib, model, lang, vocab))
    print_table(
        f"Peak memory of training, MiB (fresh subprocess each; vocab {vocab})",
        ["corpus", "model", "library", "peak RSS", "before training", "training adds", "seconds"],
        [
            [
                r["corpus"],
                r["model"],
                r["lib"],
                fmt(r.get("peak_mib"), ".0f"),
                fmt(r.get("base_mib"), ".0f"),
                fmt(r.get("added_mib"), ".0f"),
                fmt(r.get("seconds")),
            ]
            for r in rows
        ],
        [
            f"threads: {args.threads}. peak RSS = VmHWM of the child (or of its own workers, if higher);",
            "before training = VmRSS after imports and reading the corpus.",
        ],
    )
    print_errors(rows)
    return rows


def memory_row(args: argparse.Namespace, lib: str, model: str, lang: str, vocab: int) -> dict:
    """Run one trainer in a child process (this script with --child) and collect its figures."""
    spec = {"lib": lib, "model": model, "lang": lang, "vocab": vocab}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        json.dumps(spec),
        "--threads",
        str(args.threads),
    ]
    cmd += ["--quick"] if args.quick else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    row = {"corpus": training_corpora(args.quick, [lang])[lang][0], **spec}
    if proc.returncode != 0:
        log(f"FAILED memory {spec}:\n{proc.stderr[-3000:]}")
        return {**row, "error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return {**row, **json.loads(proc.stdout.strip().splitlines()[-1])}


def child(args: argparse.Namespace) -> int:
    """Child process of the memory section: train once, print {peak_mib, base_mib, ...} as JSON."""
    spec = json.loads(args.child)
    lines = training_corpora(args.quick, [spec["lang"]])[spec["lang"]][1]
    train = {"ours": train_ours, "hf": train_hf, "sp": train_sp}[spec["lib"]]
    if spec["lib"] == "ours":
        import llmlab.tokenizer.train  # noqa: F401  (imports count as the baseline, as for the others)
    else:
        __import__("tokenizers" if spec["lib"] == "hf" else "sentencepiece")
    base = rss_mib("VmRSS")
    start = time.perf_counter()
    train(spec["model"], lines, spec["vocab"], args.threads)
    seconds = time.perf_counter() - start
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    peak = max(rss_mib("VmHWM"), workers)
    print(json.dumps({"peak_mib": peak, "base_mib": base, "added_mib": peak - base, "seconds": seconds}))
    return 0


def rss_mib(field: str) -> float:
    """Current ("VmRSS") or peak ("VmHWM") resident memory of this process, MiB.

    Not ru_maxrss: Linux carries it over from the parent's image across fork + exec, so every child of a big
    parent would report the parent's size. /proc's high-water mark starts afresh with the new image.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny_shakespeare and 1 MB of Chinese, vocab 8k")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads/processes for every library (default 1)"
    )
    parser.add_argument("--only", choices=["train", "encode", "memory"], help="run one section")
    parser.add_argument("--json", type=Path, help="also save every figure to this JSON file")
    parser.add_argument(
        "--vocab", type=int, nargs="+", help="vocabulary sizes (default 8000, full: 8000 32000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per cheap measurement (median)")
    parser.add_argument("--encode-mb", type=float, help="MB of each encode input (default 0.25, full: 2)")
    parser.add_argument("--profile", action="store_true", help="cProfile top 10 of our training, on stderr")
    parser.add_argument(
        "--python-trainer", action="store_true", help="train section: also time our trainers in pure Python"
    )
    parser.add_argument("--memory", action="store_true", help="encode section: also peak RSS per engine")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "llmlab-bench-tokenizers",
        help="folder for the encode section's vocabularies (built once, reused)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    args.vocab = args.vocab or ([8000] if args.quick else [8000, 32000])
    args.encode_mb = args.encode_mb or (0.25 if args.quick else 2.0)
    return args


def meta(args: argparse.Namespace) -> dict:
    """Versions and settings, saved with the figures."""
    import platform
    from importlib.metadata import version

    from llmlab.tokenizer import core

    return {
        "threads": args.threads,
        "quick": args.quick,
        "vocab": args.vocab,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tokenizers": version("tokenizers"),
        "sentencepiece": version("sentencepiece"),
        "tiktoken": version("tiktoken"),
        "llmlab engine": "core" if core.available() else "python",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Must happen before HF tokenizers is imported: its thread pool reads these once.
    assert "tokenizers" not in sys.modules, "tokenizers was imported before RAYON_NUM_THREADS was set"
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if args.threads > 1 else "false"
    if not DATA.is_dir():
        print(f"data folder {DATA} not found; nothing to benchmark")
        return 0
    if args.child:
        return child(args)
    if args.memory_child:
        from tokenizer_encode import memory_child

        print(json.dumps(memory_child(args.memory_child, DATA, args.work, args.quick)))
        return 0
    results: dict[str, Any] = {"meta": meta(args)}
    print(f"# llmlab tokenizers vs references: {json.dumps(results['meta'])}")
    corpora = training_corpora(args.quick)
    cache: dict = {}
    if args.only in (None, "train"):
        results["train"] = bench_train(args, corpora, cache)
    if args.only in (None, "encode"):
        results["encode"] = bench_encode(args)
    if args.only in (None, "memory"):
        results["memory"] = bench_memory(args, list(corpora))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))
        log(f"figures saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
