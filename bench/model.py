"""Benchmark one training step of llmlab's Transformer against `transformers.GPT2LMHeadModel`, same shape.

Shape (GPT-2 small's recipe, scaled down): 6 layers, width 384, 6 heads, vocabulary 8k (a byte-level BPE
trained on tiny_shakespeare), learned positions, tied embeddings, no dropout, batch 8 x 256, AdamW.
Contenders: llmlab in fp32 and in bf16-mixed (what `llmlab pretrain --precision bf16-mixed` runs: float32
weights, bfloat16 autocast, fused AdamW, attention through model/bf16_attention.py, the loss through
model/cross_entropy.py's blockwise float32 kernel), llmlab-packed-bf16 (the same with attention kept inside 64-token
documents, as `--documents line|file` packs them: what the document mask costs), and GPT2LMHeadModel in float32 and under
`torch.autocast("cpu", torch.bfloat16)` (what `Trainer(bf16=True)` does), with the fused AdamW that
`TrainingArguments` picks by default. All live in the same process, run the same batches on the same thread
count, start from the same weights (ours copied into HF through `llmlab.model.hf_export`, so the first losses
must agree: within 1e-3 in fp32, 2e-2 between the two bf16 contenders), and their steps are interleaved so
that a change in machine load hits all of them. Reported per contender:
- tokens/s: batch tokens / the median step time over `--steps` timed steps, after warm-up steps;
- peak memory: in a fresh subprocess per contender, CPU: peak RSS (VmHWM) above the RSS before the model was
  built; CUDA: `torch.cuda.max_memory_allocated` (weights, gradients, AdamW state, activations);
- MFU: achieved FLOP/s as a fraction of the measured fp32 and bf16 matmul peaks (2048 x 2048 matmuls timed
  in the same run); FLOPs per step = 6 * N * tokens + 12 * L * C * T * tokens (PaLM's model-FLOPs formula,
  appendix B): N counts the parameters that take part in a matmul (the tied embedding once, as the LM head;
  not the position table), the second term is attention's q.k and p.v, fwd + bwd, without halving for the
  causal mask.
Each time is also taken as process CPU time: on a shared machine (more runnable tasks than cores) wall
clock mostly measures the neighbours, while CPU seconds per step, and the fractions of the matmul peaks
computed from CPU seconds, still compare the contenders fairly (best with --threads 1).
Ratios are speed ours / transformers' (above 1: we are faster) and memory ours / transformers'.

    python bench/model.py --quick                  # 2 warm-up + 3 timed steps
    python bench/model.py --steps 20 --threads 4 --json out.json
    python bench/model.py --quick --profile 2> profile.txt   # top ops of one step of each, on stderr
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Running this file puts bench/ on the import path, where tokenizers.py would shadow HF's `tokenizers`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
SHAPE = dict(n_layers=6, d_model=384, n_heads=6, vocab=8000, batch=8, seq=256)
CONTENDERS = (
    "llmlab-fp32",
    "llmlab-bf16",
    "llmlab-packed-bf16",
    "transformers-fp32",
    "transformers-autocast",
)
PACKED_DOCUMENT = 64  # llmlab-packed: windows of 64-token documents, attention kept inside each (a mask)
_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=None, help="timed steps per model (default 10; --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; --quick 2)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true", help="few steps, for a smoke run")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument(
        "--profile", action="store_true", help="torch.profiler top ops of one step each, to stderr"
    )
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated subset of " + ", ".join(CONTENDERS),
    )
    p.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.contenders = tuple(c for c in args.contenders.split(",") if c)
    if not args.contenders or set(args.contenders) - set(CONTENDERS):
        p.error(f"--contenders: choose from {', '.join(CONTENDERS)}")
    args.steps = args.steps or (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 3)
    return args


# ---------------------------------------------------------------- data and models


def token_batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`n` (inputs, targets) batches of (B, T): tiny_shakespeare through an 8k BPE, or random ids without it."""
    B, T, V = SHAPE["batch"], SHAPE["seq"], SHAPE["vocab"]
    path = DATA / "tiny_shakespeare" / "train.txt"
    if path.is_file():
        from llmlab.tokenizer.train import train_tokenizer

        lines = path.read_text(encoding="utf-8").splitlines()
        tokenizer = train_tokenizer("bpe", lines, V, workers=1)
        ids = torch.tensor([i for e in tokenizer.encode_batch(lines) for i in e.ids])
        log(f"data: tiny_shakespeare, {len(ids):,} tokens, BPE vocab {tokenizer.vocab_size}")
    else:
        ids = torch.randint(0, V, (n * B * (T + 1),), generator=torch.Generator().manual_seed(seed))
        log(f"data: {path} not found, random token ids")
    rows = ids[: len(ids) // (T + 1) * (T + 1)].view(-1, T + 1)  # (rows, T + 1)
    rows = rows.repeat(n * B // len(rows) + 1, 1)
    return [(rows[i * B : (i + 1) * B, :-1], rows[i * B : (i + 1) * B, 1:]) for i in range(n)]


def build_llmlab(device: str):
    from llmlab.model import ModelConfig, Transformer

    config = ModelConfig(
        vocab_size=SHAPE["vocab"],
        d_model=SHAPE["d_model"],
        n_layers=SHAPE["n_layers"],
        n_heads=SHAPE["n_heads"],
        max_seq_len=SHAPE["seq"],
        positional="learned",
        activation="gelu_tanh",
    )
    torch.manual_seed(0)
    return Transformer(config).to(device)


def build_transformers(device: str, weights_from=None):
    """GPT2LMHeadModel of the same shape, holding `weights_from`'s weights (our export tensors) when given."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from llmlab.model.hf_export import to_gpt2_tensors

    config = GPT2Config(
        vocab_size=SHAPE["vocab"],
        n_positions=SHAPE["seq"],
        n_embd=SHAPE["d_model"],
        n_layer=SHAPE["n_layers"],
        n_head=SHAPE["n_heads"],
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
    )
    model = GPT2LMHeadModel(config)
    if weights_from is not None:
        missing, unexpected = model.load_state_dict(to_gpt2_tensors(weights_from), strict=False)
        assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)  # lm_head: tied
    return model.to(device)


def precision_of(name: str) -> str:
    return "fp32" if name.endswith("fp32") else "bf16-mixed"


def build(name: str, device: str, weights_from=None):
    """The contender's model; transformers' copy `weights_from` (an llmlab Transformer) when given."""
    if name.startswith("llmlab"):
        return build_llmlab(device)  # seeded: every llmlab contender starts from the same weights
    return build_transformers(device, weights_from=weights_from)


def optimizer(model, name: str) -> torch.optim.Optimizer:
    """llmlab: its pretraining AdamW options for the precision; transformers: fused (`TrainingArguments`)."""
    from llmlab.model.precision import optimizer_options

    options = optimizer_options(precision_of(name)) if name.startswith("llmlab") else {"fused": True}
    return torch.optim.AdamW(model.parameters(), lr=3e-4, **options)


def logits_of(model, x: torch.Tensor, name: str) -> torch.Tensor:
    if not hasattr(model, "blocks"):
        return model(input_ids=x).logits  # (B, T, V)
    if "packed" not in name:
        return model(x).logits
    documents = (torch.arange(x.shape[1], device=x.device) // PACKED_DOCUMENT).expand_as(x)  # (B, T)
    return model(x, document_ids=documents).logits


def train_step(model, opt, x, y, name: str, device: str) -> float:
    from llmlab.model.cross_entropy import cross_entropy
    from llmlab.model.precision import autocast

    with autocast(precision_of(name), device):
        logits = logits_of(model, x, name)
    if name.startswith("llmlab"):  # as `llmlab pretrain`: float32 statistics, block by block for bf16 logits
        loss = cross_entropy(logits.flatten(0, 1), y.flatten())
    else:  # as transformers' causal-LM loss: the logits cast to float32 whole
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()  # .item() synchronises CUDA, so a step's time is its whole time


# ---------------------------------------------------------------- measurements


def time_interleaved(models: dict, opts: dict, batches, warmup: int, steps: int, device: str) -> dict:
    """Wall and process-CPU seconds of each timed step, per model, steps alternating between the models.

    The first losses are checked: equal weights and data must give the same loss in the same precision.
    """
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in models}
    for i, (x, y) in enumerate(batches[: warmup + steps]):
        x, y = x.to(device), y.to(device)
        losses = {}
        for name, model in models.items():
            wall, cpu = time.perf_counter(), time.process_time()
            losses[name] = train_step(model, opts[name], x, y, name, device)
            if i >= warmup:
                times[name]["wall"].append(time.perf_counter() - wall)
                times[name]["cpu"].append(time.process_time() - cpu)
        log(f"step {i + 1}/{warmup + steps} {'(warm-up) ' if i < warmup else ''}losses {losses}")
        if i == 0:
            _check_first_losses(losses)
    return times


def _check_first_losses(losses: dict[str, float]) -> None:
    for precision, tolerance in (("fp32", 1e-3), ("bf16-mixed", 2e-2)):
        same = [v for k, v in losses.items() if precision_of(k) == precision and "packed" not in k]
        if same and max(same) - min(same) > tolerance:
            raise SystemExit(f"first losses differ: {losses}; the models are not the same function")


def matmul_peak(device: str) -> dict[str, dict[str, float]]:
    """Best FLOP/s of a large matmul (2 n^3 FLOPs) in fp32 and in bf16 on the current threads, by wall and
    by CPU time: {"fp32": {"wall", "cpu"}, "bf16": {...}}."""
    n = 8192 if device == "cuda" else 2048
    peaks = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
        wall = cpu = float("inf")
        for _ in range(10):
            sync(device)
            w, c = time.perf_counter(), time.process_time()
            a @ b
            sync(device)
            wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
        peaks[label] = {"wall": 2 * n**3 / wall, "cpu": 2 * n**3 / cpu}
    return peaks


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def flops_per_step(model) -> float:
    """6 N tokens + 12 L C T tokens (see the module docstring)."""
    c = model.config
    n_matmul = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("pos."))
    tokens = SHAPE["batch"] * SHAPE["seq"]
    return 6 * n_matmul * tokens + 12 * c.n_layers * c.d_model * SHAPE["seq"] * tokens


def peak_memory(which: str, args) -> float:
    """Peak memory in bytes of two training steps of one contender, measured in a fresh subprocess."""
    cmd = [sys.executable, __file__, "--memory-probe", which, "--threads", str(args.threads)]
    out = subprocess.run(cmd + ["--device", args.device], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def memory_probe(args) -> None:
    """Child process of `peak_memory`: print the peak bytes of two steps of `args.memory_probe`."""
    import transformers  # noqa: F401  (all probes import everything before the baseline)

    import llmlab.model.hf_export  # noqa: F401
    import llmlab.model.precision  # noqa: F401

    batches = [(torch.randint(0, SHAPE["vocab"], (SHAPE["batch"], SHAPE["seq"])),) * 2 for _ in range(2)]
    base = _rss_kib("VmRSS")
    model = build(args.memory_probe, args.device)
    opt = optimizer(model, args.memory_probe)
    for x, y in batches:
        train_step(model, opt, x.to(args.device), y.to(args.device), args.memory_probe, args.device)
    if args.device == "cuda":
        print(torch.cuda.max_memory_allocated())
    else:
        print((_rss_kib("VmHWM") - base) * 1024)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def profile(models: dict, opts: dict, batch, device: str) -> None:
    """Top 15 ops by self time of one more training step of each model, on stderr."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    for name, model in models.items():
        with torch_profile(activities=activities) as prof:
            train_step(model, opts[name], batch[0].to(device), batch[1].to(device), name, device)
        key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
        print(f"\n=== {name} ===\n{prof.key_averages().table(sort_by=key, row_limit=15)}", file=sys.stderr)


# ---------------------------------------------------------------- report


def report(times: dict, memory: dict, flops: float, peak: dict, args) -> dict:
    """Print the table (stdout) and return the results as a dict."""
    tokens = SHAPE["batch"] * SHAPE["seq"]
    rows = {}
    for name, t in times.items():
        median, cpu = statistics.median(t["wall"]), statistics.median(t["cpu"])
        rows[name] = {
            "median_step_s": median,
            "min_step_s": min(t["wall"]),
            "median_cpu_s": cpu,
            "tokens_per_s": tokens / median,
            "cpu_tokens_per_s": tokens / cpu,
            "peak_memory_mib": memory[name] / 2**20,
            "cpu_mfu_fp32": flops / cpu / peak["fp32"]["cpu"],
            "cpu_mfu_bf16": flops / cpu / peak["bf16"]["cpu"],
        }
    _print_table(rows, flops, peak, args)
    return {"shape": SHAPE, "device": args.device, "threads": args.threads, "matmul_peak": peak, "rows": rows}


def _print_table(rows: dict, flops: float, peak: dict, args) -> None:
    print(f"\nGPT-2 shape {SHAPE}, device {args.device}, threads {args.threads}, {args.steps} timed steps")
    print(
        f"FLOPs per step {flops / 1e9:.1f} G; matmul peak by CPU time: fp32 {peak['fp32']['cpu'] / 1e9:.1f}, ",
        end="",
    )
    print(
        f"bf16 {peak['bf16']['cpu'] / 1e9:.1f} GFLOP/s; load average {args.load[0]:.1f} -> {args.load[1]:.1f}"
    )
    if args.device == "cpu" and max(args.load) > (os.cpu_count() or 1):
        print(f"warning: more runnable tasks than the {os.cpu_count()} CPUs; trust the CPU-time columns")
    head = ("contender", "median s", "CPU s", "tokens/s (CPU)", "peak MiB", "MFU fp32", "MFU bf16")
    head += ("speed / tf fp32", "speed / tf autocast")
    print("\n| " + " | ".join(head) + " |\n|" + "|".join("---" for _ in head) + "|")
    for name, r in rows.items():
        ratios = [_speedup(rows, name, ref) for ref in ("transformers-fp32", "transformers-autocast")]
        cells = [
            name,
            f"{r['median_step_s']:.3f}",
            f"{r['median_cpu_s']:.2f}",
            f"{r['cpu_tokens_per_s']:.0f}",
        ]
        cells += [
            f"{r['peak_memory_mib']:.0f}",
            f"{r['cpu_mfu_fp32']:.1%}",
            f"{r['cpu_mfu_bf16']:.1%}",
            *ratios,
        ]
        print("| " + " | ".join(cells) + " |")
    print("speed ratios by CPU time (above 1: faster than transformers); tf = transformers.GPT2LMHeadModel")


def _speedup(rows: dict, name: str, reference: str) -> str:
    return (
        "-"
        if reference not in rows
        else f"{rows[reference]['median_cpu_s'] / rows[name]['median_cpu_s']:.2f}x"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    if args.memory_probe:
        memory_probe(args)
        return 0
    batches = token_batches(args.warmup + args.steps)
    ours = build_llmlab(args.device)
    models = {name: build(name, args.device, weights_from=ours) for name in args.contenders}
    log(f"threads {torch.get_num_threads()}; measuring the fp32 and bf16 matmul peaks")
    peak = matmul_peak(args.device)
    opts = {name: optimizer(m, name) for name, m in models.items()}
    load_before = os.getloadavg()[0]
    times = time_interleaved(models, opts, batches, args.warmup, args.steps, args.device)
    args.load = (load_before, os.getloadavg()[0])
    if args.profile:
        profile(models, opts, batches[0], args.device)
    log("peak memory, one subprocess per contender")
    memory = {name: peak_memory(name, args) for name in models}
    result = report(times, memory, flops_per_step(ours), peak, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
