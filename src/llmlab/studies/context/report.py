"""Context study report: perplexity and passkey tables, the passkey heatmap (depth × length), HTML and text.

Rendering only: the numbers come from run.py (the results written to context.json), so a report can be
rebuilt from a saved JSON without training anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from llmlab.report.html import Report  # noqa: E402

HEATMAP_FILE = "passkey_heatmap.png"


def _name(row: dict[str, Any]) -> str:
    method = "alibi" if row["positional"] == "alibi" else row["method"]
    return (
        method if row["stage"] == "zero-shot" and method in ("none", "alibi") else f"{method} {row['scale']}x"
    )


def perplexity_table(results: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """Headers and rows: one model per row, perplexity at each evaluation length."""
    scales = results["sizes"]["eval_scales"]
    short = results["sizes"]["short"]
    headers = ["model", "stage", *[f"ppl @{k * short}" for k in scales], "fine-tune s"]
    body = [
        [
            _name(r),
            r["stage"],
            *[f"{r['perplexity'][str(k)]:.2f}" for k in scales],
            f"{r['tune_seconds']:.0f}",
        ]
        for r in results["rows"]
    ]
    return headers, body


def passkey_table(results: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """Headers and rows: passkey accuracy at each length, averaged over the depths."""
    scales = results["sizes"]["eval_scales"]
    short = results["sizes"]["short"]
    headers = ["model", "stage", *[f"passkey @{k * short}" for k in scales]]
    body = [
        [_name(r), r["stage"], *[f"{_mean(r['passkey'][str(k)]):.2f}" for k in scales]]
        for r in results["rows"]
    ]
    return headers, body


def _mean(cells: dict[str, float]) -> float:
    return sum(cells.values()) / len(cells)


def heatmap_figure(results: dict[str, Any]):
    """Passkey accuracy by depth (rows) and length (columns): one panel per model at the largest scale."""
    top = max(results["sizes"]["scales"])
    rows = [
        r
        for r in results["rows"]
        if r["scale"] == top or (r["stage"] == "zero-shot" and r["method"] == "none")
    ]
    stages = ("zero-shot", "fine-tuned")
    names = list(dict.fromkeys(_name(r).split(" ")[0] for r in rows))
    fig, axes = plt.subplots(2, len(names), figsize=(2.1 * len(names), 4.6), squeeze=False)
    scales = results["sizes"]["eval_scales"]
    depths = results["sizes"]["depths"]
    short = results["sizes"]["short"]
    for ax in axes.flat:
        ax.axis("off")
    for r in rows:
        ax = axes[stages.index(r["stage"]), names.index(_name(r).split(" ")[0])]
        grid = [[r["passkey"][str(k)][str(d)] for k in scales] for d in depths]  # (depth, length)
        ax.axis("on")
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(f"{_name(r)}\n{r['stage']}", fontsize=8)
        ax.set_xticks(range(len(scales)), [str(k * short) for k in scales], fontsize=6)
        ax.set_yticks(range(len(depths)), [f"{d:.2f}" for d in depths], fontsize=6)
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                ax.text(
                    j,
                    i,
                    f"{value:.1f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="w" if value < 0.5 else "k",
                )
    fig.supxlabel("length (tokens)", fontsize=8)
    fig.supylabel("depth of the key", fontsize=8)
    fig.tight_layout()
    return fig


def format_tables(results: dict[str, Any]) -> str:
    """Both tables as Markdown (stdout, README)."""
    parts = []
    for headers, body in (perplexity_table(results), passkey_table(results)):
        parts.append("| " + " | ".join(headers) + " |")
        parts.append("|" + "---|" * len(headers))
        parts += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
        parts.append("")
    return "\n".join(parts)


def write_report(out_dir: Path, results: dict[str, Any]) -> None:
    """out_dir/report.html (tables and heatmap) and out_dir/passkey_heatmap.png."""
    sizes = results["sizes"]
    report = Report("Longer than trained: RoPE context extension")
    report.section("Setup")
    report.text(
        f"A {sizes['n_layers']}-layer Llama-shaped LM (d_model {sizes['d_model']}) trained from scratch at "
        f"{sizes['short']} tokens ({sizes['base_steps']} steps) on the embedded demo corpus with passkey "
        f"documents mixed in, extended to {', '.join(f'{s}x' for s in sizes['scales'])} by each method, "
        f"zero-shot and after {sizes['tune_steps']} fine-tuning steps at the target length; ALiBi beside it. "
        f"Wall time {results['wall_seconds'] / 60:.1f} min."
    )
    report.section("Perplexity (validation, non-overlapping windows)")
    report.table(*perplexity_table(results))
    report.section("Passkey retrieval (greedy exact match, mean over depths)")
    report.table(*passkey_table(results))
    fig = heatmap_figure(results)
    fig.savefig(out_dir / HEATMAP_FILE, dpi=110, bbox_inches="tight")
    report.figure(fig, f"Passkey accuracy by depth and length, extension to {max(sizes['scales'])}x.")
    report.save(out_dir / "report.html")
