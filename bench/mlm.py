"""Benchmark masked-LM pretraining steps: llmlab (`llmlab pretrain --objective mlm --whole-word-masking
--segmenter jieba`) against HF `BertForMaskedLM` fed by HF's whole-word-masking collator, same shape.

Data: the first `--lines` lines of zh_classic_novels (../shared/data), a character WordPiece (BERT-Chinese
style) trained on them, jieba words. Both sides get the words precomputed, as in a real run (ours: the cached
word-start array; HF: `offset_mapping`, the form its collator reads words from), so the timed step is: draw
B random windows [CLS] + (T - 2) tokens + [SEP], mask whole words, forward, masked cross-entropy, backward,
AdamW. HF's collator: transformers >= 5 `DataCollatorForLanguageModeling(whole_word_mask=True)` (4.x's
`DataCollatorForWholeWordMask` where 5 is absent is not supported here); it masks 15% of words rather than
of tokens, so it predicts more tokens per step than we do (both counts are printed).
Same model: ours (`PretrainConfig(objective="mlm")`'s BERT shape) exported with `llmlab.model.hf_export`
and loaded by `BertForMaskedLM.from_pretrained`; the first step checks that one masked batch gives the same
loss in both (1e-4). Steps alternate between the two so that machine load hits both; wall and process-CPU
seconds per step, median over the timed steps; tokens/s = B * T / median step time. Ratio: ours / HF (above
1: we are faster).

    python bench/mlm.py            # 4 layers, width 256, 4 heads, batch 16 x 128, 1 thread (~1 min)
    python bench/mlm.py --steps 20 --threads 2 --precision bf16-mixed
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Running this file puts bench/ on the import path, where tokenizers.py would shadow HF's `tokenizers`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
CORPUS = DATA / "zh_classic_novels" / "train.txt"
_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per contender")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--lines", type=int, default=3000, help="corpus lines to tokenize and segment")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--vocab", type=int, default=8000, help="WordPiece vocabulary size at most")
    p.add_argument("--precision", choices=["fp32", "bf16-mixed"], default="fp32")
    return p.parse_args(argv)


def prepare(args, folder: Path):
    """(our objective, our model, HF model, HF tokenizer): the corpus tokenized and segmented, one model."""
    from llmlab.io import read_lines
    from llmlab.model.hf_export import to_hf
    from llmlab.model.transformer import Transformer
    from llmlab.pretraining import PretrainConfig
    from llmlab.pretraining.objectives import build_objective
    from llmlab.tokenizer.train import train_tokenizer

    lines = list(itertools.islice(read_lines(CORPUS), args.lines))
    (folder / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tok = train_tokenizer("wordpiece", lines, args.vocab, workers=1)
    tok.save(folder / "tok.json")
    model = {"d_model": args.d_model, "n_layers": args.layers, "n_heads": args.heads}
    config = PretrainConfig(
        *([folder / "train.txt"],) * 2, folder / "tok.json", folder / "run", model=model, objective="mlm",
        whole_word_masking=True, segmenter="jieba", context_length=args.seq, batch_size=args.batch,
        precision=args.precision, token_cache_dir=folder,
    )  # fmt: skip
    objective = build_objective(config, tok, progress=False)
    log(f"data: {len(lines)} lines, {len(objective.train):,} tokens, vocab {tok.vocab_size}, jieba words")
    torch.manual_seed(0)
    ours = Transformer(config.model_config(tok.vocab_size, tok.fingerprint))
    to_hf(ours, tok, folder / "hf")
    import transformers

    transformers.logging.set_verbosity_error()
    hf = transformers.BertForMaskedLM.from_pretrained(folder / "hf")
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder / "hf")
    hf_tok.mask_token, hf_tok.pad_token = "[MASK]", "[PAD]"
    return objective, ours.train(), hf.train(), hf_tok


def hf_examples(objective, rng: np.random.Generator) -> list[dict]:
    """B random windows as HF examples, words as offsets: a word's first token starts one past the last
    token's end."""
    ids, maskable, starts = objective.windows(rng)
    gap = starts | ~maskable  # a word start, or a special token (which HF never masks anyway)
    ends = np.cumsum(1 + gap, axis=1)  # (B, T)
    return [
        {
            "input_ids": row,
            "special_tokens_mask": (~m).astype(np.int64),
            "offset_mapping": np.stack([e - 1, e], 1),
        }
        for row, m, e in zip(ids, maskable, ends, strict=True)
    ]


def step(model, opt, compute_loss) -> tuple[float, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    loss = compute_loss()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item(), time.perf_counter() - wall, time.process_time() - cpu


def check_same_loss(objective, ours, hf) -> None:
    """One masked batch through both models: the losses must agree (same weights, same masked tokens)."""
    from llmlab.pretraining.mlm import masked_loss

    inputs, labels = objective.batch(np.random.default_rng(99))
    with torch.no_grad():
        a = masked_loss(ours, inputs, labels, "fp32").item()
        b = hf(input_ids=torch.from_numpy(inputs), labels=torch.from_numpy(labels)).loss.item()
    log(f"same batch, same weights: loss ours {a:.5f}, HF {b:.5f}")
    assert abs(a - b) < 1e-4, (a, b)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not CORPUS.is_file():
        print(f"{CORPUS} not found: nothing to benchmark", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    from transformers import DataCollatorForLanguageModeling

    from llmlab.model.precision import autocast

    with tempfile.TemporaryDirectory() as tmp:
        objective, ours, hf, hf_tok = prepare(args, Path(tmp))
    check_same_loss(objective, ours, hf)
    collator = DataCollatorForLanguageModeling(hf_tok, whole_word_mask=True, mlm_probability=0.15, seed=0)
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in [("ours", ours), ("hf", hf)]}
    rng_ours, rng_hf = np.random.default_rng(0), np.random.default_rng(0)

    def hf_loss():
        batch = collator(hf_examples(objective, rng_hf))
        predicted["hf"].append(int((batch["labels"] != -100).sum()))
        with autocast(args.precision, "cpu"):
            logits = hf(input_ids=batch["input_ids"]).logits  # (B, T, V)
        chosen = batch["labels"] != -100
        return torch.nn.functional.cross_entropy(logits[chosen].float(), batch["labels"][chosen])

    contenders = {"ours": (ours, lambda: objective.loss(ours, rng_ours)), "hf": (hf, hf_loss)}
    times = {name: {"wall": [], "cpu": []} for name in contenders}
    predicted = {"hf": []}
    for i in range(args.warmup + args.steps):
        for name, (model, loss_fn) in contenders.items():
            _, wall, cpu = step(model, opts[name], loss_fn)
            if i >= args.warmup:
                times[name]["wall"].append(wall)
                times[name]["cpu"].append(cpu)
        log(f"step {i + 1}/{args.warmup + args.steps}")
    args.vocab = objective.vocab_size  # a character WordPiece stops at the alphabet plus the non-CJK words
    report(args, times, {"ours": predicted_by_us(objective, args.steps), "hf": predicted["hf"]})
    return 0


def predicted_by_us(objective, n: int) -> list[int]:
    """Masked tokens per batch of our masking (whole words may fall a little short of the budget), untimed."""
    rng = np.random.default_rng(1)
    counts = [int((objective.batch(rng)[1] != -100).sum()) for _ in range(n)]
    return counts


def report(args, times: dict, predicted: dict[str, list[int]]) -> None:
    tokens = args.batch * args.seq
    print(
        f"MLM pretraining step, whole-word masking (jieba), {args.precision}, {args.threads} thread(s): "
        f"{args.layers} layers, width {args.d_model}, {args.heads} heads, batch {args.batch} x {args.seq}, "
        f"vocab {args.vocab}; median of {args.steps} steps"
    )
    print(f"{'':14}{'s/step wall':>12}{'tok/s wall':>12}{'s/step cpu':>12}{'tok/s cpu':>12}{'predicted':>11}")
    rows = {}
    for name, label in [("ours", "llmlab"), ("hf", "transformers")]:
        wall, cpu = (statistics.median(times[name][k]) for k in ("wall", "cpu"))
        rows[name] = (wall, cpu)
        n = statistics.mean(predicted[name])
        print(f"{label:14}{wall:12.3f}{tokens / wall:12,.0f}{cpu:12.3f}{tokens / cpu:12,.0f}{n:11,.0f}")
    (ow, oc), (hw, hc) = rows["ours"], rows["hf"]
    print(f"{'ratio':14}{'':12}{hw / ow:12.2f}{'':12}{hc / oc:12.2f}   (ours / transformers, tokens/s)")


if __name__ == "__main__":
    sys.exit(main())
