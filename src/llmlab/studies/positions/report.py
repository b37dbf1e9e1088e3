"""Position study report: the tables, verdicts and figures of studies (a)-(d), as HTML sections or text.

Rendering only: the numbers come from `study.py` (the results dict written to positions.json), so a report
can be rebuilt from a saved JSON without training anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.ticker import LogLocator, ScalarFormatter

from llmlab.pretraining.data import read_metrics
from llmlab.report.html import Report
from llmlab.studies.positions.extrapolation import cell
from llmlab.studies.positions.permutation import TOLERANCE
from llmlab.studies.positions.pictures import alibi_figure, plt, rope_figure, sinusoidal_figure, t5_figure


def add_study_section(report: Report, results: dict[str, Any], trained_t5=None) -> None:
    """The study's tables, verdicts and figures, as report sections."""
    report.section("Positional encodings (a): permutation equivariance")
    report.text(
        "A random bidirectional Transformer (seed 0) reads a sequence and the same sequence permuted; "
        f"without positions the outputs permute identically (deviation < {TOLERANCE:g}), with any encoding "
        "they do not. The second column draws the encoding's own parameters at unit scale, as after training."
    )
    report.table(*_permutation_table(results["permutation"]))
    report.section("Positional encodings (b): word order in real sentences")
    report.text(_word_order_caption(results))
    report.table(*_word_order_table(results["word_order"]))
    report.section("Positional encodings (c): train short, test long")
    extrapolation_section(
        report, results["extrapolation"], results["sizes"]["extrapolation"], results["press_verdict"]
    )
    report.section("Positional encodings (d): pictures")
    report.figure(sinusoidal_figure(), "The sinusoidal table and its dot product against the offset.")
    report.figure(alibi_figure(), "ALiBi's causal bias -m|i-j| for three of eight heads.")
    report.figure(t5_figure(trained_t5), "T5's buckets (bidirectional) and, when trained, each head's bias.")
    report.figure(rope_figure(), "RoPE: q·k after rotation against the offset (long-term decay).")


def extrapolation_section(report: Report, rows, sizes: dict[str, Any], verdict: str) -> None:
    """The extrapolation table, the Press et al. verdict and the perplexity plot."""
    report.table(*_extrapolation_table(rows, sizes))
    report.text(verdict)
    ctx = sizes["train_context"]
    caption = f"Validation perplexity against evaluation length (trained at {ctx}); learned stops at {ctx}."
    report.figure(extrapolation_figure(rows, sizes), caption)


def _permutation_table(rows) -> tuple[list[str], list[list[object]]]:
    headers = ["encoding", "max deviation (init)", "max deviation (unit-scale params)", "equivariant"]
    body = [
        [
            r["positional"],
            f"{r['max_deviation_at_init']:.2e}",
            f"{r['max_deviation_unit_scale']:.2e}",
            r["equivariant"],
        ]
        for r in rows
    ]
    return headers, body


def _word_order_caption(results: dict[str, Any]) -> str:
    s = results["sizes"]["word_order"]
    return (
        f"SST-2 sentences of at least 6 words ({s['train_sentences']:,} for training, the dev set for testing), each "
        f"as written and with the words shuffled inside every window of {s['window']}; word tokens, so both copies "
        f"hold the same tokens. Same budget for every model: {s['steps']} steps of {s['batch_size']} "
        f"(each sentence beside its shuffled copy), d_model {s['d_model']}. Chance is 50%."
    )


def _word_order_table(rows) -> tuple[list[str], list[list[object]]]:
    names = {"gru": "GRU (no encoding)", "cnn": "1-D CNN (no encoding)"}
    body = [
        [
            names.get(r["model"], f"Transformer, {r['model']}"),
            f"{100 * r['dev_accuracy']:.1f}%",
            r["parameters"],
            r["verdict"],
        ]
        for r in rows
    ]
    return ["model", "dev accuracy", "parameters", "verdict (95% band around 50%)"], body


def _extrapolation_table(rows, sizes: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    ctx = sizes["train_context"]
    factors = sizes["factors"]
    headers = ["encoding", *[f"ppl @ {f * ctx} ({f}x)" for f in factors], "train s"]
    body = [
        [r["positional"], *[cell(r[f"ppl_{f}x"], ctx) for f in factors], r["train_seconds"]] for r in rows
    ]
    return headers, body


def extrapolation_figure(rows, sizes: dict[str, Any]) -> plt.Figure:
    """Perplexity against evaluation length, one line per encoding; lengths on a log-2 axis."""
    lengths = [f * sizes["train_context"] for f in sizes["factors"]]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for r in rows:
        points = [
            (n, r[f"ppl_{f}x"]) for n, f in zip(lengths, sizes["factors"], strict=True) if r[f"ppl_{f}x"]
        ]
        ax.plot(*zip(*points, strict=True), marker="o", label=r["positional"])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")  # one encoding far off must not flatten the others
    ax.minorticks_off()
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set(xlabel="evaluation length (tokens)", ylabel="validation perplexity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def format_tables(results: dict[str, Any]) -> str:
    """The three tables as plain text (for stdout) plus the Press et al. verdict."""
    parts = []
    for headers, body in [
        _permutation_table(results["permutation"]),
        _word_order_table(results["word_order"]),
        _extrapolation_table(results["extrapolation"], results["sizes"]["extrapolation"]),
    ]:
        widths = [max(len(str(x)) for x in col) for col in zip(headers, *body, strict=True)]
        lines = [
            "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)) for row in [headers, *body]
        ]
        parts.append("\n".join(lines))
    return "\n\n".join([*parts, results["press_verdict"]]) + "\n"


def loss_figure(runs: list[Path]) -> plt.Figure:
    """Training loss per step of pretraining runs (their metrics.jsonl), labelled by encoding."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for run in runs:
        records = read_metrics(run)
        label = run.name.split("-")[1]  # lm-<encoding>-<key>
        ax.plot([r["step"] for r in records], [r["loss"] for r in records], label=label, linewidth=1)
    ax.set(xlabel="step", ylabel="train loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
