"""The demo's headline results as a few lines of text: printed at the end of `llmlab demo`, saved as
summary.txt, and quoted verbatim in README (a test compares the two).

The figures are deterministic for a given Python version (the corpus is its standard library's docstrings),
because the demo pins torch to one thread and float32 (`DEMO_THREADS`); another Python version ships other
docstrings and gives other figures. A run in a bf16 mode (`--precision`) says so in its first line: its figures
are not README's.
"""

from __future__ import annotations

import platform
from typing import Any

from llmlab.tokenizer.stats import SegmentationStats


def summary_lines(
    tokenizers: dict[str, SegmentationStats],
    pretrained: dict[str, Any],
    finetuned: dict[str, Any],
    precision: str = "fp32",
) -> list[str]:
    """A heading naming the Python version and precision, then one line per stage: tokenizer compression,
    extrapolation, fine-tuning accuracies, the A/B verdict."""
    python = ".".join(platform.python_version_tuple()[:2])
    ran = "float32" if precision == "fp32" else f"{precision}: figures differ from README's float32 ones"
    lines = [f"llmlab demo summary (Python {python}, 1 torch thread, {ran})"]
    lines.append(
        "tokenizers, held-out tokens/char: "
        + ", ".join(f"{name} {s.tokens_per_char:.4f}" for name, s in tokenizers.items())
    )
    for row in pretrained["extrapolation"]:
        ppl = "  ".join(
            f"{key[4:]} {row[key]:.1f}" if row[key] is not None else f"{key[4:]} n/a"
            for key in row
            if key.startswith("ppl_")
        )
        lines.append(f"extrapolation, {row['positional']:>7} perplexity: {ppl}")
    scores = finetuned["scores"]
    parts = [f"{m} dev {finetuned['dev'][m]:.3f} test {scores[m]['metrics']['accuracy']:.3f}" for m in scores]
    baseline = next(s["baseline"] for s in scores.values() if "baseline" in s)
    parts.append(f"linear baseline test {baseline['metrics']['accuracy']:.3f}")
    lines.append("fine-tuning accuracy: " + "; ".join(parts))
    lines.append(f"A/B on the test split: {finetuned['comparison']['verdict']}")
    return lines


def precision_note(precision: str) -> str:
    """A sentence for the report: what pretraining and fine-tuning ran in, and whether README shows it."""
    if precision == "fp32":
        return "Pretraining and fine-tuning run in float32, as README's figures."
    return (
        f"Pretraining and fine-tuning run in {precision} (`--precision`; the language models are scored "
        "in float32): the figures differ from README's, which are float32."
    )
