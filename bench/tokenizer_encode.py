"""The encode section of `bench/tokenizers.py`: llmlab against every engine of `tokenizer_engines.py`.

For each vocabulary (BPE, Unigram, WordPiece) and text (English gutenberg_en, Chinese zh_classic_novels,
valid.txt, one encode per line, MB/s of UTF-8 input):
- cold loop: a freshly loaded encoder per pass (no cache has seen the text), best of --repeats passes, the
  engines taking turns (a pass of each, then the next: one engine after another, a slow spell of the machine
  moved a row's ours/fastest by a third);
- warm loop: the same encoder again after one pass;
- batch: batches of 1,000 lines on 1 and 2 threads (engines whose batch threads can be set), cold, the 1- and
  2-thread passes of every engine and row taking turns (a slow spell of the machine costs each row a few
  passes, not all of one row's); "ids batch": the same through llmlab's `encode_batch_ids` (one ids buffer
  per batch, no Python list per line); a last section prints 2 threads over 1 for each, beside what the machine
  gives two processes that share nothing (llmlab's 1-thread ids batch pass in 2 processes at once over 1
  process alone, in turn with its 1- and 2-thread passes): 2 threads cannot beat that, and on a shared
  machine it varies from run to run;
- overhead: microseconds per call on SST-2 sentences (about 10 words), warm;
- memory: peak RSS of loading and encoding every line, one fresh subprocess per engine.
Every row prints ours/HF and ours/fastest (the fastest other engine of that row). The machine is shared and
noisy: compare ratios, not absolute figures.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tokenizer_engines import CORPUS, build_vocabularies, engines, log

MODELS = ("bpe", "unigram", "wordpiece")
LABELS = ("model", "lang", "mode", "unit")  # a row's fields that are not an engine's figure
BATCH = 1000


def valid_lines(data: Path, lang: str, quick: bool) -> list[str]:
    lines = (data / CORPUS[lang] / "valid.txt").read_text(encoding="utf-8").splitlines()
    return lines[: len(lines) // 4] if quick else lines


def sst2_sentences(data: Path, n: int = 3000) -> list[str]:
    with open(data / "sst2" / "dev.csv", encoding="utf-8", newline="") as f:
        rows = [r[0] for r in csv.reader(f)][1:]
    with open(data / "sst2" / "train.csv", encoding="utf-8", newline="") as f:
        rows += [r[0] for r in csv.reader(f)][1:]
    return [r for r in rows if 8 <= len(r.split()) <= 14][:n]


def mb(texts: list[str]) -> float:
    return sum(len(t.encode()) for t in texts) / 1e6


def seconds_in_turn(measures, factory, texts: list[str], repeats: int, label: str = "") -> list[list[float]]:
    """Seconds of `repeats` passes of each measure, the measures taking turns (a pass of each, then the next
    pass of each): a slow spell of a shared machine hits them alike, so that their ratio holds. `label`: a
    progress line per turn."""
    seconds = [[] for _ in measures]
    for turn in range(repeats):
        if label:
            log(f"{label}, turn {turn + 1} of {repeats}")
        for k, measure in enumerate(measures):
            seconds[k].append(measure(factory, texts))
    return seconds


def median_ratio(slower: list[float], faster: list[float]) -> float:
    """The median over the turns of one measure's seconds over another's (each turn's two passes ran one after
    the other: a steadier figure than the ratio of the bests where the machine's speed drifts)."""
    return statistics.median(a / b for a, b in zip(slower, faster, strict=True))


def of_engine(measure, factory):
    """`measure` bound to one engine: a measure that ignores the factory it is given (engines taking turns)."""
    return lambda _factory, texts: measure(factory, texts)


def in_this_process(run):
    """A measure: seconds of one pass of `run` over the texts by a fresh encoder."""

    def seconds(factory, texts: list[str]) -> float:
        encoder = factory()
        start = time.perf_counter()
        run(encoder, texts)
        return time.perf_counter() - start

    return seconds


def loop(encoder, texts):
    one = encoder[0]
    for t in texts:
        one(t)


def batches(threads: int, call: int = 1):
    """Batches of BATCH texts through the encoder's batch call (1: lists of ids; 2: llmlab's ids buffer)."""

    def run(encoder, texts):
        for i in range(0, len(texts), BATCH):
            encoder[call](texts[i : i + BATCH], threads)

    return run


def in_processes(run, processes: int):
    """A measure: `processes` forked processes, started together, each make a fresh encoder and run `run` over
    the texts; the slowest one's seconds over `processes` (a pass's worth of work, the machine shared)."""

    def seconds(factory, texts: list[str]) -> float:
        context = multiprocessing.get_context("fork")
        ready, times = context.Barrier(processes), context.Queue()

        def child():
            encoder = factory()
            sum(map(len, texts))  # (touches each text's reference count: the parent's pages are copied now)
            ready.wait()
            start = time.perf_counter()
            run(encoder, texts)
            times.put(time.perf_counter() - start)

        workers = [context.Process(target=child) for _ in range(processes)]
        for w in workers:
            w.start()
        slowest = max(times.get() for _ in workers)
        for w in workers:
            w.join()
        return slowest / processes

    return seconds


def warm_rate(factory, texts: list[str], repeats: int) -> float:
    encoder = factory()
    loop(encoder, texts)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        loop(encoder, texts)
        best = min(best, time.perf_counter() - start)
    return mb(texts) / best


def per_call_us(factory, sentences: list[str], repeats: int) -> float:
    encoder = factory()
    loop(encoder, sentences)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        loop(encoder, sentences)
        best = min(best, time.perf_counter() - start)
    return best / len(sentences) * 1e6


def peak_rss(engine: str, model: str, lang: str, args) -> float | None:
    """Peak RSS (MiB) of a fresh process that loads `engine` and encodes every line (--memory-child)."""
    spec = json.dumps({"engine": engine, "model": model, "lang": lang})
    cmd = [sys.executable, str(Path(__file__).with_name("tokenizers.py")), "--memory-child", spec]
    cmd += ["--quick"] if args.quick else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        log(f"memory {engine} {model} {lang} failed: {proc.stderr[-500:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"]


def memory_child(spec_json: str, data: Path, work: Path, quick: bool) -> dict:
    """In the child: load one engine, encode every line, report the peak RSS."""
    spec = json.loads(spec_json)
    paths = build_vocabularies(data, work, spec["model"], spec["lang"], quick)
    encoder = engines(spec["model"], paths, probe=False)[spec["engine"]]()  # this engine alone in memory
    loop(encoder, valid_lines(data, spec["lang"], quick))
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return {"peak_mib": int(line.split()[1]) / 1024}
    return {"peak_mib": None}


def bench_encode(args, data: Path, work: Path) -> list[dict]:
    """Every row of every vocabulary and language; prints the tables."""
    contexts = []  # (model, lang, engines, texts) of every row
    for model in MODELS:
        for lang in ("en", "zh"):
            try:
                paths = build_vocabularies(data, work, model, lang, args.quick)
            except Exception as e:  # noqa: BLE001
                log(f"no {model} {lang} vocabulary: {e}")
                continue
            contexts.append((model, lang, engines(model, paths), valid_lines(data, lang, args.quick)))
    batch_seconds = batch_turns(contexts, args.repeats)
    rows, overhead = [], []
    for model, lang, found, texts in contexts:
        rows += measure_rows(args, model, lang, found, texts, batch_seconds)
        if lang == "en":
            overhead.append(overhead_row(args, model, found, sst2_sentences(data)))
    print_rows(rows, overhead)
    return rows + overhead


def batch_turns(contexts: list, repeats: int) -> dict:
    """(engine factory, batch call) -> seconds of each of its batch measures' passes (1 thread, 2 threads; for
    llmlab's ids batch also 1 process, 2 processes), every row's measures taking turns: a pass of each measure
    of every row, then the next. The machine has slow spells of seconds in which two threads that share memory
    scale far less (two processes do not): taking turns across the rows, such a spell costs each row a few of
    its passes instead of all of one row's (see README, "2 threads over 1")."""
    keys, bound = [], []  # (factory, call) of each measure; the measure bound to its engine and texts
    for _model, _lang, found, texts in contexts:
        for f in found.values():
            encoder = f()
            for call in (1, 2):
                if len(encoder) <= call or not encoder[call]:
                    continue
                measures = [in_this_process(batches(1, call)), in_this_process(batches(2, call))]
                if f is found.get("llmlab") and call == 2:  # what 2 processes get, in the same turns
                    measures += [in_processes(batches(1, call), 1), in_processes(batches(1, call), 2)]
                keys += [(f, call)] * len(measures)
                bound += [lambda _f, _t, m=m, f=f, texts=texts: m(f, texts) for m in measures]
    seconds = {}
    for key, s in zip(keys, seconds_in_turn(bound, None, None, repeats, "encode batch passes"), strict=True):
        seconds.setdefault(key, []).append(s)
    return seconds


def measure_rows(
    args, model: str, lang: str, found: dict, texts: list[str], batch_seconds: dict
) -> list[dict]:
    def batch(threads: int, call: int = 1):
        def rate(f):
            seconds = batch_seconds.get((f, call))
            return mb(texts) / min(seconds[threads - 1]) if seconds else None

        return rate

    cold = {}  # factory -> MB/s of its best cold pass, the engines taking turns

    def cold_loop(f):
        if not cold:
            measures = [of_engine(in_this_process(loop), g) for g in found.values()]
            seconds = seconds_in_turn(measures, None, texts, args.repeats)
            cold.update({g: mb(texts) / min(s) for g, s in zip(found.values(), seconds, strict=True)})
        return cold[f]

    modes = {
        "cold loop": cold_loop,
        "warm loop": lambda f: warm_rate(f, texts, args.repeats),
        "batch 1 thread": batch(1),
        "batch 2 threads": batch(2),
        "ids batch 1 thread": batch(1, 2),
        "ids batch 2 threads": batch(2, 2),
    }
    rows = []
    for mode, fn in modes.items():
        row = {"model": model, "lang": lang, "mode": mode, "unit": "MB/s"}
        for name, factory in found.items():
            log(f"encode {model} {lang} {mode}: {name}")
            row[name] = fn(factory)
        rows.append(row)
    turns = batch_seconds.get((found.get("llmlab"), 2), ())
    if len(turns) == 4:  # seconds of each turn's passes: 1 thread, 2 threads, 1 process, 2 processes
        over = {
            "2 processes over 1": min(turns[2]) / min(turns[3]),
            "ids 2 threads over 1, median of turns": median_ratio(turns[0], turns[1]),
            "2 processes over 1, median of turns": median_ratio(turns[2], turns[3]),
        }
        rows += [{"model": model, "lang": lang, "mode": m, "unit": "x", "llmlab": x} for m, x in over.items()]
    if args.memory:
        row = {"model": model, "lang": lang, "mode": "peak RSS", "unit": "MiB"}
        for name in found:
            log(f"memory {model} {lang}: {name}")
            row[name] = peak_rss(name, model, lang, args)
        rows.append(row)
    return rows


def overhead_row(args, model: str, found: dict, sentences: list[str]) -> dict:
    row = {"model": model, "lang": "en", "mode": "per call (SST-2)", "unit": "us"}
    for name, factory in found.items():
        row[name] = per_call_us(factory, sentences, args.repeats)
    return row


def ratios(row: dict) -> tuple[str, str, str]:
    """(ours/HF, fastest other, ours/fastest): speed ratios, above 1 = ours faster (lower is better for us/MiB)."""
    lower_better = row["unit"] in ("us", "MiB")
    others = {k: v for k, v in row.items() if k not in (*LABELS, "llmlab") and v}
    ours = row.get("llmlab")
    if not ours or not others:
        return "-", "-", "-"

    def r(x):
        return f"{(x / ours if lower_better else ours / x):.2f}x"

    best = (min if lower_better else max)(others, key=others.get)
    return (r(row["HF"]) if row.get("HF") else "-"), best, r(others[best])


def print_rows(rows: list[dict], overhead: list[dict]) -> None:
    names = []
    for r in rows + overhead:
        names += [k for k in r if k not in LABELS and k not in names]
    headers = [*LABELS, *names, "ours/HF", "fastest", "ours/fastest"]
    table = []
    for r in [r for r in rows if r["unit"] != "x"] + overhead:  # (the machine's scaling: print_scaling)
        cells = [r["model"], r["lang"], r["mode"], r["unit"]]
        cells += [f"{r[n]:.2f}" if isinstance(r.get(n), float) else "-" for n in names]
        table.append(cells + list(ratios(r)))
    widths = [max(len(str(x[i])) for x in [headers, *table]) for i in range(len(headers))]
    print("\n## Encode (issue 10 targets: cold loop, 1 thread)")
    print(
        "ratios: ours/other speed (above 1: llmlab faster; for us and MiB: other/ours, above 1: llmlab lower)"
    )
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for cells in table:
        print("  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True)))
    print_scaling(rows)
    sys.stdout.flush()


TURNS = ("2 processes over 1", "ids 2 threads over 1, median of turns", "2 processes over 1, median of turns")


def print_scaling(rows: list[dict]) -> None:
    """2 threads over 1 thread for every engine with both (issue 10: llmlab's batch on 2 threads >= 1.8x its
    1-thread speed), the two measured in turn; for llmlab also its ids batch on 2 threads over its loop."""
    by = {(r["model"], r["lang"], r["mode"]): r for r in rows}
    print("\n## Batch on 2 threads over 1 thread (batches of 1,000 lines, cold, measured in turn)")
    for model, lang, mode in by:
        if mode != "batch 1 thread":
            continue
        one, two = by[model, lang, "batch 1 thread"], by[model, lang, "batch 2 threads"]
        cells = [f"{name} {two[name] / one[name]:.2f}x" for name in one if name not in LABELS and one[name]]
        ids_one, ids_two = by[model, lang, "ids batch 1 thread"], by[model, lang, "ids batch 2 threads"]
        loop = by[model, lang, "cold loop"]
        turns = {m: by[model, lang, m]["llmlab"] for m in TURNS if (model, lang, m) in by}
        if ids_one.get("llmlab"):
            median = f" (median of turns {turns[TURNS[1]]:.2f}x)" if turns else ""
            cells.append(f"llmlab ids {ids_two['llmlab'] / ids_one['llmlab']:.2f}x{median}")
            cells.append(f"llmlab ids 2 threads / cold loop {ids_two['llmlab'] / loop['llmlab']:.2f}x")
        if turns:
            cells.append(
                f"machine: 2 processes / 1 {turns[TURNS[0]]:.2f}x (median of turns {turns[TURNS[2]]:.2f}x)"
            )
        print(f"{model:9} {lang}: " + ", ".join(cells))
