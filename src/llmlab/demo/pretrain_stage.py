"""Demo stage 2: short pretraining of three positional encodings on the demo corpus, trained short, tested long.

The small version of `llmlab study positions` (c), the length-extrapolation study after Press et al. 2022
(`llmlab.studies.positions.extrapolation`): the same code, with sizes that run in about a minute on 2 cores.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from llmlab.io import atomic_write_text
from llmlab.report.html import Report
from llmlab.studies.positions.extrapolation import ExtrapolationSizes, extrapolation_study, press_verdict
from llmlab.studies.positions.report import extrapolation_section, loss_figure
from llmlab.studies.positions.run import torch_threads
from llmlab.tokenizer.pipeline import Tokenizer

DEMO_ENCODINGS = ("learned", "rope", "alibi")  # about 90 s on 2 cores; `llmlab study positions` has them all
DEMO = ExtrapolationSizes(
    d_model=64, n_layers=2, batch_size=16, steps=500, warmup_steps=30, lr=5e-3, eval_tokens=8192
)


def pretrain_stage(
    report: Report,
    out_dir: Path,
    tokenizer: Tokenizer,
    lines: list[str],
    progress: bool = True,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Short pretraining of a few encodings on the demo corpus, and their extrapolation table.

    Args:
        report: the demo report; gets one section.
        out_dir: the demo run folder; this stage writes out_dir/pretrain/.
        tokenizer: the demo's byte-level BPE.
        lines: the demo corpus; the last 10% is the validation text.
        progress: progress bars on stderr.
        precision: what the models train in (fp32, bf16-mixed, bf16: `llmlab.model.precision`); a bf16 run
            trains in its own folder (out_dir/pretrain/lm-<encoding>-<key>). Scoring runs in float32.

    Returns:
        {"extrapolation": rows, "press_agrees": bool, "press_verdict": str, "seconds": float}.
    """
    start = time.perf_counter()
    folder = out_dir / "pretrain"
    folder.mkdir(parents=True, exist_ok=True)
    cut = len(lines) * 9 // 10
    atomic_write_text(folder / "train.txt", "\n".join(lines[:cut]) + "\n")
    atomic_write_text(folder / "valid.txt", "\n".join(lines[cut:]) + "\n")
    tokenizer.save(folder / "tokenizer.json")
    with torch_threads(1):
        rows = extrapolation_study(
            [folder / "train.txt"],
            [folder / "valid.txt"],
            folder / "tokenizer.json",
            folder,
            list(DEMO_ENCODINGS),
            DEMO,
            progress,
            precision,
        )
    agrees, verdict = press_verdict(rows, DEMO.factors)
    sizes = dataclasses.asdict(DEMO)
    report.section("Pretraining: positional encodings trained short, tested long")
    report.text(
        f"Causal LMs (d_model {DEMO.d_model}, {DEMO.n_layers} layers) trained in {precision} for "
        f"{DEMO.steps} steps of {DEMO.batch_size} x {DEMO.train_context} tokens on the demo corpus, then "
        "scored in float32 on its held-out 10% at 1x-8x the training length (non-overlapping windows, the "
        "same tokens at every length)."
    )
    report.figure(loss_figure([folder / str(r["run"]) for r in rows]), "Training loss per step.")
    extrapolation_section(report, rows, sizes, verdict)
    return {
        "extrapolation": rows,
        "press_agrees": agrees,
        "press_verdict": verdict,
        "seconds": time.perf_counter() - start,
    }
