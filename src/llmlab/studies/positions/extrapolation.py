"""Position study (c): train short, test long — perplexity beyond the training context.

Paper: Press, Smith & Lewis (2022), "Train Short, Test Long: Attention with Linear Biases Enables Input
Length Extrapolation" (Figure 1 and section 4: sinusoidal fails a few tokens past the training length,
rotary somewhat later, the T5 bias holds better but costs more, ALiBi keeps or improves its perplexity).
Protocol, as in the paper's non-overlapping evaluation: every encoding trains the same causal LM (size,
data, steps, seed) through `pretrain` at `train_context` tokens; then the perplexity of the same first N
valid tokens is measured in non-overlapping windows of 1x, 2x, 4x and 8x the training length. A learned
table cannot place a token past its size, so that cell reads "n/a (table of 64)" (the model's LlmlabError
is caught, not hidden). Each run lives in out_dir/lm-<encoding>-<key of the sizes and data>; a finished one
is reused, an interrupted one resumed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.io import fingerprint
from llmlab.model.checkpoint import load_model
from llmlab.pretraining.data import evaluate_loss, token_array
from llmlab.pretraining.loop import PretrainConfig, pretrain

HOLDS = 1.10  # "holds": perplexity at the longest length within 10% of the training-length perplexity


@dataclass
class ExtrapolationSizes:
    """The budget every encoding gets."""

    train_context: int = 64
    factors: tuple[int, ...] = (1, 2, 4, 8)
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    batch_size: int = 16
    steps: int = 600
    lr: float = 2e-3
    warmup_steps: int = 50
    eval_tokens: int = 32768  # valid tokens scored at every length
    seed: int = 0


def extrapolation_study(
    train_files: list[Path],
    valid_files: list[Path],
    tokenizer_path: Path,
    out_dir: Path,
    encodings: list[str],
    sizes: ExtrapolationSizes,
    progress: bool = True,
    precision: str = "fp32",
) -> list[dict[str, object]]:
    """Train one causal LM per encoding at the short context and score it at every length.

    `precision` is what the models train in (`llmlab.model.precision`); a run in another precision than
    fp32 gets its own folder. Scoring runs in float32.

    Returns:
        One row per encoding: positional, run (its folder under out_dir), train_seconds, and for each
        factor f a key f"ppl_{f}x" holding the perplexity, or None where a learned table is too short.
    """
    rows = []
    for name in encodings:
        config = _pretrain_config(train_files, valid_files, tokenizer_path, out_dir, name, sizes, precision)
        start = time.perf_counter()
        folder = pretrain(config, progress=progress)
        seconds = time.perf_counter() - start
        model, tokenizer = load_model(folder)
        valid = token_array(valid_files, tokenizer, out_dir)
        row: dict[str, object] = {"positional": name, "run": config.output_dir.name}
        row["train_seconds"] = round(seconds, 1)
        row.update(_perplexities(model, valid, sizes))
        rows.append(row)
    return rows


def _pretrain_config(
    train_files, valid_files, tokenizer_path, out_dir: Path, name: str, sizes, precision: str
) -> PretrainConfig:
    model = {
        "positional": name,
        "d_model": sizes.d_model,
        "n_layers": sizes.n_layers,
        "n_heads": sizes.n_heads,
    }
    identity = [dataclasses.asdict(sizes), str(tokenizer_path), [str(p) for p in train_files]]
    key = fingerprint(identity + ([precision] if precision != "fp32" else []))[:8]
    run_dir = out_dir / f"lm-{name}-{key}"  # other sizes, data or precision train in another folder
    return PretrainConfig(
        train_files=train_files,
        valid_files=valid_files,
        tokenizer=tokenizer_path,
        output_dir=run_dir,
        model=model,
        context_length=sizes.train_context,
        batch_size=sizes.batch_size,
        steps=sizes.steps,
        lr=sizes.lr,
        warmup_steps=sizes.warmup_steps,
        eval_every=sizes.steps,
        eval_tokens=sizes.eval_tokens,
        checkpoint_every=sizes.steps,
        seed=sizes.seed,
        resume=(run_dir / "checkpoints" / "latest.json").is_file(),
        token_cache_dir=out_dir,
        precision=precision,
    )


def _perplexities(model, valid, sizes: ExtrapolationSizes) -> dict[str, float | None]:
    """ppl at every factor over the same first N tokens (N a multiple of the longest window)."""
    longest = sizes.train_context * max(sizes.factors)
    n_tokens = max(1, sizes.eval_tokens // longest) * longest
    out: dict[str, float | None] = {}
    for factor in sizes.factors:
        try:
            loss = evaluate_loss(
                model, valid, sizes.train_context * factor, n_tokens, batch=max(1, 16 // factor)
            )
            out[f"ppl_{factor}x"] = math.exp(loss)
        except LlmlabError:  # a learned table shorter than the window
            out[f"ppl_{factor}x"] = None
    return out


def cell(value: float | None, table: int) -> str:
    """A perplexity for the report table: 1 decimal, or the reason it is missing."""
    return f"n/a (table of {table})" if value is None else f"{value:.1f}"


def press_verdict(rows: list[dict[str, object]], factors: tuple[int, ...]) -> tuple[bool, str]:
    """Whether the ordering agrees with Press et al. 2022, and one paragraph saying why.

    Each encoding's ratio r = ppl(longest) / ppl(1x) either holds (r <= HOLDS) or degrades. Agreement, judged
    on the encodings present: ALiBi holds, sinusoidal and rotary degrade, learned cannot run past its table.
    """
    longest = f"ppl_{max(factors)}x"
    ratios = {str(r["positional"]): r[longest] / r["ppl_1x"] for r in rows if r.get(longest) is not None}
    holds = sorted(n for n, q in ratios.items() if q <= HOLDS)
    degrades = sorted(n for n, q in ratios.items() if q > HOLDS)
    no_table = sorted(str(r["positional"]) for r in rows if r.get(longest) is None)
    expected = {"alibi": "holds", "sinusoidal": "degrades", "rope": "degrades", "learned": "cannot run"}
    found = {
        **{n: "holds" for n in holds},
        **{n: "degrades" for n in degrades},
        **{n: "cannot run" for n in no_table},
    }
    misses = [f"{n} {found[n]}" for n, want in expected.items() if n in found and found[n] != want]
    ranked = ", ".join(f"{n} {q:.2f}x" for n, q in sorted(ratios.items(), key=lambda kv: kv[1]))
    claims = "; ".join(f"{n} {want}" for n, want in expected.items() if n in found)
    text = (
        f"Perplexity at {max(factors)}x the training length relative to 1x: {ranked}. "
        f"Holds (within {HOLDS - 1:.0%}): {', '.join(holds) or 'none'}; degrades: {', '.join(degrades) or 'none'}; "
        f"cannot run: {', '.join(no_table) or 'none'}. Press et al. (2022): {claims}. "
        + ("This run agrees." if not misses else f"This run differs: {', '.join(misses)}.")
    )
    return not misses, text
