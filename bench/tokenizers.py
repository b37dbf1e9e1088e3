"""Benchmark llmlab's tokenizers against Hugging Face `tokenizers`, `sentencepiece` and `tiktoken`.

Same process, same input, same thread count for every library. Three sections:
1. train:  training time per algorithm (WordPiece, byte-level BPE, Unigram) and vocabulary size, on an English
           and a Chinese corpus; ours is also split into word counting and the model's trainer.
2. encode: throughput in MB/s of UTF-8 input, one `encode` per line and `encode_batch` of 1,000 lines. Ours
           and HF run the *same* tokenizer (trained by us, saved as tokenizer.json, loaded by HF; ids
           compared); tiktoken runs our byte-level BPE (built from its ranks); sentencepiece runs its own
           Unigram model trained on the same corpus.
3. memory: peak resident memory of training, each trainer in a fresh subprocess.

Ratios are speed ours / speed reference: above 1 we are faster. Tables go to stdout, progress to stderr.

    python bench/tokenizers.py --quick                 # small inputs, vocab 8k, about two minutes
    python bench/tokenizers.py --json out.json         # full corpora, vocab 8k and 32k
    python bench/tokenizers.py --only encode --threads 4
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file is named tokenizers.py: keep its folder off the import path so `import tokenizers` finds HF's.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import csv  # noqa: E402
import functools  # noqa: E402
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

DATA = HERE.parent.parent / "shared" / "data"
MODELS = ("wordpiece", "bpe", "unigram")
SPECIALS = {
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bpe": ["<|endoftext|>"],
    "unigram": ["<unk>", "<s>", "</s>", "<pad>"],
}
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
BATCH = 1000
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


def read_csv_texts(path: Path) -> list[str]:
    """The `text` column of a labeled CSV."""
    with open(path, encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


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


def encode_inputs(quick: bool, max_mb: float) -> list[tuple[str, str, list[str]]]:
    """(name, lang, texts) to encode: sentiment texts and corpus lines, each capped at `max_mb`."""
    en_corpus = "tiny_shakespeare" if quick else "gutenberg_en"
    sets = [
        ("sst2", "en", read_csv_texts(DATA / "sst2" / "train.csv")),
        (en_corpus, "en", [t for t in read_lines(DATA / en_corpus / "train.txt") if t]),
        ("chnsenticorp_htl", "zh", read_csv_texts(DATA / "chnsenticorp_htl" / "train.csv")),
        ("zh_classic_novels", "zh", read_lines(DATA / "zh_classic_novels" / "train.txt")),
    ]
    return [(name, lang, take_bytes(texts, max_mb * 1e6)) for name, lang, texts in sets]


# ---------------------------------------------------------------- trainers


def train_ours(model: str, lines: list[str], vocab: int, threads: int):
    """llmlab's standard pipeline for `model` (returns a llmlab Tokenizer)."""
    from llmlab.tokenizer.train import train_tokenizer

    return train_tokenizer(model, lines, vocab, workers=threads)


def count_ours(model: str, lines: list[str], threads: int):
    """Only the word counting that `train_tokenizer` starts with."""
    from llmlab.tokenizer.normalize import normalizer_from_hf
    from llmlab.tokenizer.pretokenize import pretokenizer_from_hf
    from llmlab.tokenizer.train import count_words, pipeline_sections

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


def train_sp(model_type: str, lines: list[str], vocab: int, threads: int) -> bytes:
    """sentencepiece (`unigram` or `bpe`) on all `lines`; returns the serialized model."""
    import io

    import sentencepiece as spm

    lines = [line for line in lines if line.strip()]
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=writer,
        model_type=model_type,
        vocab_size=vocab,
        num_threads=threads,
        input_sentence_size=len(lines) + 1,
        shuffle_input_sentence=False,
        max_sentence_length=max(4192, max(len(line.encode()) for line in lines) + 1),
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        hard_vocab_limit=False,  # a small corpus may hold fewer pieces (HF and ours stop short too)
        minloglevel=2,
    )
    return writer.getvalue()


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


def ratio(ours: float | None, ref: float | None) -> str:
    """Speed ours / speed reference, given two speeds."""
    return "-" if ours is None or ref is None or ref == 0 else f"{ours / ref:.2f}x"


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


def rate_ratio(ours: float | None, ref: float | None) -> str:
    """Speed ours / speed reference from two rates (above 1: ours faster)."""
    return "-" if ours is None or not ref else f"{ours / ref:.2f}x"


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
            "HF",
            "SP",
            "ours/HF",
            "ours/SP",
            "|V| ours/HF/SP",
        ],
        [train_cells(r) for r in rows],
        [
            f"threads: {args.threads} (ours workers, RAYON_NUM_THREADS, sentencepiece num_threads)",
            "ours = train_tokenizer; count = count_words alone; trainer = ours - count.",
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
    if model != "wordpiece":
        libs["sp"] = lambda: train_sp(model, lines, vocab, args.threads)
    for lib, fn in libs.items():
        log(f"train {lib:5s} {where}")
        prof = f"ours {where}" if args.profile and lib == "ours" else None
        res, err = attempt(f"{lib} {where}", lambda fn=fn, prof=prof: measure(fn, args.repeats, prof))
        row[f"{lib}_s"], row[f"{lib}_runs"] = (res[0], res[1]) if res else (None, 0)
        if err:
            row[f"{lib}_error"] = err
        elif lib != "count":
            row[f"{lib}_vocab"] = vocab_size_of(res[2])
            cache[(lib, model, lang, vocab)] = res[2]
    if row["ours_s"] is not None and row["count_s"] is not None:
        row["trainer_s"] = row["ours_s"] - row["count_s"]
    return row


def train_cells(r: dict) -> list[str]:
    sizes = "/".join(str(r.get(f"{lib}_vocab", "-")) for lib in ("ours", "hf", "sp"))
    return [
        r["corpus"],
        str(r["vocab"]),
        r["model"],
        fmt(r["ours_s"]),
        fmt(r["count_s"]),
        fmt(r.get("trainer_s")),
        fmt(r["hf_s"]),
        fmt(r["sp_s"]) if "sp_s" in r else "-",
        time_ratio(r["ours_s"], r["hf_s"]),
        time_ratio(r["ours_s"], r.get("sp_s")),
        sizes,
    ]


# ---------------------------------------------------------------- 2. encode throughput


def tiktoken_from_ours(tok):
    """A tiktoken Encoding of our byte-level BPE: token bytes -> id as the rank, GPT-2's split pattern.

    With ids given in merge order, lowest rank first is exactly BPE's lowest merge first.
    """
    import tiktoken

    from llmlab.tokenizer.pretokenize import bytes_to_unicode

    byte_of = {ch: b for b, ch in bytes_to_unicode().items()}
    spec = tok.to_hf()
    specials = {a["content"]: a["id"] for a in spec.get("added_tokens", [])}
    ranks = {bytes(byte_of[c] for c in t): i for t, i in spec["model"]["vocab"].items() if t not in specials}
    return tiktoken.Encoding(
        "llmlab-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )


Encoders = tuple[Callable[[str], list[int]], Callable[[list[str]], list]]  # (one text, one batch)


def encoder_factories(model: str, path: Path, other, threads: int) -> dict[str, Callable[[], Encoders]]:
    """library -> a function giving fresh encoders (empty word caches) of the tokenizer saved at `path`.

    Ours and HF load the same tokenizer.json; tiktoken and sentencepiece keep no caches, so one object serves.
    """
    from llmlab.tokenizer.pipeline import Tokenizer
    from tokenizers import Tokenizer as HFTokenizer

    def ours() -> Encoders:
        tok = Tokenizer.load(path)
        return lambda t: tok.encode(t).ids, lambda b: [e.ids for e in tok.encode_batch(b)]

    def hf() -> Encoders:
        tok = HFTokenizer.from_file(str(path))
        return lambda t: tok.encode(t).ids, lambda b: [e.ids for e in tok.encode_batch(b)]

    libs = {"ours": ours, "HF": hf}
    if model == "bpe" and other is not None:
        libs["tiktoken"] = lambda: (
            other.encode_ordinary,
            lambda b: other.encode_ordinary_batch(b, num_threads=threads),
        )
    if model == "unigram" and other is not None:
        libs["SP"] = lambda: (other.encode, lambda b: other.encode(b, num_threads=threads))
    return libs


def throughput(factory: Callable[[], Encoders], texts: list[str], batched: bool, repeats: int) -> float:
    """MB/s of UTF-8 input: median over up to `repeats` first passes, each by a fresh (cold cache) encoder.

    Cold because a warm cache on the very same text would count every word as a hit: on Chinese, where a
    pre-tokenized "word" is a clause or a whole line, that is far from encoding new text.
    """
    items = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)] if batched else texts
    times = []
    for _ in range(max(repeats, 1)):
        fn = factory()[batched]
        start = time.perf_counter()
        for item in items:
            fn(item)  # results are dropped at once, as a streaming caller would
        times.append(time.perf_counter() - start)
        if times[0] > CHEAP_S:
            break
    return nbytes(texts) / 1e6 / statistics.median(times)


def ids_agree(a: Callable, b: Callable, texts: list[str]) -> tuple[int, int]:
    """(texts on which `a` and `b` give different ids, texts compared)."""
    return sum(a(t) != b(t) for t in texts), len(texts)


def reference_for(model: str, lang: str, vocab: int, tok, corpora: dict, cache: dict, threads: int):
    """tiktoken (bpe) or a sentencepiece Unigram trained on the same corpus (unigram); None for wordpiece."""
    if model == "bpe":
        return tiktoken_from_ours(tok)
    if model == "unigram":
        import sentencepiece as spm

        proto = cache.get(("sp", model, lang, vocab))
        if proto is None:
            log(f"train SP unigram vocab {vocab} for encoding")
            proto = train_sp("unigram", corpora[lang][1], vocab, threads)
        return spm.SentencePieceProcessor(model_proto=proto)
    return None


def bench_encode(args: argparse.Namespace, corpora: dict, cache: dict) -> dict:
    """Encode throughput of every algorithm on sentiment texts and corpus lines; prints the tables."""
    vocab = max(args.vocab)
    inputs = encode_inputs(args.quick, args.encode_mb)
    rows, checks = [], []
    for model in MODELS:
        for lang in corpora:
            texts = [(name, t) for name, lg, t in inputs if lg == lang]
            job = functools.partial(encode_one, args, model, lang, vocab, texts, corpora, cache)
            done, err = attempt(f"encode {model} {lang}", job)
            if done:
                rows += done[0]
                checks.append(done[1])
            else:
                checks.append({"model": model, "lang": lang, "hf": f"ERR {err}"})
    print_table(
        f"Encode throughput, MB/s of UTF-8 input (median of up to {args.repeats} passes; vocab {vocab})",
        ["input", "model", "mode", "MB", "ours", "HF", "ours/HF", "other", "other MB/s", "ours/other"],
        [encode_cells(r) for r in rows],
        [
            f"threads: {args.threads}. loop = encode() per text; batch = encode_batch() of {BATCH} texts.",
            "ours and HF run the same tokenizer.json; tiktoken runs our BPE's ranks; SP is sentencepiece's",
            "own Unigram trained on the same corpus (a different model). Every pass starts with a freshly",
            "loaded tokenizer (cold word caches), so repeats measure the first pass over the text.",
            "tiktoken's batch call maps a ThreadPoolExecutor(num_threads) over the texts: per-text overhead.",
        ],
    )
    print_table(
        "Same ids? (first 1,000 texts of each input, special tokens as each library adds them)",
        ["model", "lang", "ids identical ours vs HF", "ids identical ours vs tiktoken"],
        [[c["model"], c["lang"], c["hf"][:60], c.get("tiktoken", "-")] for c in checks],
    )
    print_errors(rows)
    return {"rows": rows, "ids": checks}


def encode_one(args, model: str, lang: str, vocab: int, texts: list, corpora: dict, cache: dict):
    """Rows and the id check for one model and language."""
    tok = cache.get(("ours", model, lang, vocab))
    if tok is None:
        log(f"train ours {model} vocab {vocab} on {corpora[lang][0]} for encoding")
        tok = train_ours(model, corpora[lang][1], vocab, args.threads)
    job = functools.partial(reference_for, model, lang, vocab, tok, corpora, cache, args.threads)
    other, _ = attempt(f"reference for {model} {lang}", job)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        tok.save(path)
        libs = encoder_factories(model, path, other, args.threads)
        check = id_check(model, lang, path, libs, [t for _, ts in texts for t in ts[:1000]])
        rows = []
        for name, ts in texts:
            for mode in ("loop", "batch"):
                log(f"encode {model} {name} {mode}")
                rows.append(encode_row(name, model, mode, ts, libs, args.repeats))
    return rows, check


def id_check(model: str, lang: str, path: Path, libs: dict, sample: list[str]) -> dict:
    """Do ours and HF (and tiktoken, without special tokens) give the same ids on `sample`?"""
    from llmlab.tokenizer.pipeline import Tokenizer

    tok = Tokenizer.load(path)
    check = {
        "model": model,
        "lang": lang,
        "hf": yes_no(*ids_agree(libs["ours"]()[0], libs["HF"]()[0], sample)),
    }
    if "tiktoken" in libs:
        plain = lambda t: tok.encode(t, add_special_tokens=False).ids  # noqa: E731
        check["tiktoken"] = yes_no(*ids_agree(plain, libs["tiktoken"]()[0], sample))
    return check


def encode_row(name: str, model: str, mode: str, texts: list[str], libs: dict, repeats: int) -> dict:
    """Throughput of every library on one input in one mode (a failing library gets None)."""
    batched = mode == "batch"
    row: dict[str, Any] = {"input": name, "model": model, "mode": mode, "mb": nbytes(texts) / 1e6}
    for lib, factory in libs.items():
        key = lib if lib in ("ours", "HF") else "other"
        job = functools.partial(throughput, factory, texts, batched, repeats)
        row[key], err = attempt(f"{lib} {model} {name} {mode}", job)
        if err:
            row[f"{lib}_error"] = err
        if key == "other":
            row["other_lib"] = lib
    return row


def yes_no(differ: int, total: int) -> str:
    return "yes" if differ == 0 else f"no ({differ}/{total} texts differ)"


def encode_cells(r: dict) -> list[str]:
    other = r.get("other_lib")
    return [
        r["input"],
        r["model"],
        r["mode"],
        f"{r['mb']:.2f}",
        fmt(r["ours"]),
        fmt(r["HF"]),
        rate_ratio(r["ours"], r["HF"]),
        other or "-",
        fmt(r.get("other")) if other else "-",
        rate_ratio(r["ours"], r.get("other")) if other else "-",
    ]


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
    parser.add_argument("--child", help=argparse.SUPPRESS)
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

    return {
        "threads": args.threads,
        "quick": args.quick,
        "vocab": args.vocab,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tokenizers": version("tokenizers"),
        "sentencepiece": version("sentencepiece"),
        "tiktoken": version("tiktoken"),
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
    results: dict[str, Any] = {"meta": meta(args)}
    print(f"# llmlab tokenizers vs references: {json.dumps(results['meta'])}")
    corpora = training_corpora(args.quick)
    cache: dict = {}
    if args.only in (None, "train"):
        results["train"] = bench_train(args, corpora, cache)
    if args.only in (None, "encode"):
        results["encode"] = bench_encode(args, corpora, cache)
    if args.only in (None, "memory"):
        results["memory"] = bench_memory(args, list(corpora))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))
        log(f"figures saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
