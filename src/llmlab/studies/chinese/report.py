"""Chinese study report: the tokenizer, pretraining, accuracy and ablation tables, their figures, HTML and text.

Rendering only: the numbers come from run.py (the results written to chinese.json), so a report can be
rebuilt from a saved JSON without training anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from llmlab.report.html import Report  # noqa: E402
from llmlab.studies.chinese.data import LABELLED  # noqa: E402

SHORT = {"chnsenticorp_htl": "ChnSentiCorp", "online_shopping_9cats": "online_shopping"}
METHODS = ("full", "lora")
_COLORS = {"all-MiniLM-L6-v2": "#dd8452", "tfidf-char": "#8c8c8c"}  # the others: our encoders, blue


def tokenizer_table(results: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """One tokenizer per row: trained size, tokens per character and unknown rates on each dev set."""
    headers = ["tokenizer", "vocab"]
    for task in LABELLED:
        headers += [f"{SHORT[task]} tokens/char", f"{SHORT[task]} [UNK] chars"]
    body = []
    for t in results["tokenizers"]:
        row: list[object] = [t["name"], f"{t['vocab_size']:,}"]
        for task in LABELLED:
            stats = t["dev"][task]
            row += [f"{stats['tokens_per_char']:.3f}", f"{100 * stats['unk_char_rate']:.2f}%"]
        body.append(row)
    return headers, body


def pretraining_table(results: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """One pretrained encoder per row: masking, parameters, steps, tokens, wall time, final MLM dev loss."""
    headers = ["encoder", "masking", "parameters", "steps", "tokens", "wall s", "MLM dev loss"]
    body = [
        [
            p["encoder"],
            p["masking"],
            f"{p['parameters']:,}",
            p["steps"],
            f"{p['tokens']:,}",
            f"{p['seconds']:.0f}",
            f"{p['val_loss']:.3f}",
        ]  # fmt: skip
        for p in results["pretraining"]
    ]
    return headers, body


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "–"
    low, high = row["accuracy_ci"]
    return f"{row['accuracy']:.3f} [{low:.3f}, {high:.3f}]"


def _index(results: dict[str, Any]) -> dict[tuple[str, str, str], dict]:
    return {(r["encoder"], r["task"], r["method"]): r for r in results["rows"]}


def accuracy_table(results: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """One model per row (per-token encoders, MiniLM, TF-IDF): dev accuracy [95% CI] per set and method."""
    rows = _index(results)
    headers = ["model", *[f"{SHORT[t]} {m}" for t in LABELLED for m in METHODS]]
    names = [p["encoder"] for p in results["pretraining"] if p["masking"] == "per token"]
    names += sorted({r["encoder"] for r in results["rows"]} - {p["encoder"] for p in results["pretraining"]})
    body = []
    for name in names:
        if name == "tfidf-char":
            cells = [_cell(rows.get((name, t, "tf-idf + LR"))) for t in LABELLED for _ in METHODS[:1]]
            body.append([f"{name} (TF-IDF char 1-3-grams + LR)", cells[0], "", cells[1], ""])
        else:
            body.append([name, *[_cell(rows.get((name, t, m))) for t in LABELLED for m in METHODS]])
    return headers, body


def ablation_table(results: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """Whole-word (jieba) against per-token masking for the ablation tokenizer, on ChnSentiCorp."""
    rows = _index(results)
    tokenizer = results["sizes"]["ablation"]
    task = LABELLED[0]
    headers = ["masking", "MLM dev loss", *[f"{SHORT[task]} {m}" for m in METHODS]]
    body = []
    for p in results["pretraining"]:
        if p["tokenizer"] == tokenizer:
            body.append([p["masking"], f"{p['val_loss']:.3f}",
                         *[_cell(rows.get((p["encoder"], task, m))) for m in METHODS]])  # fmt: skip
    return headers, body


def accuracy_figure(results: dict[str, Any]):
    """Dev accuracy with 95% intervals, one panel per labelled set and method, majority share dotted."""
    fig, axes = plt.subplots(len(LABELLED), len(METHODS), figsize=(11, 7), squeeze=False)
    by_task: dict[str, list[dict]] = {}
    for r in results["rows"]:
        by_task.setdefault(r["task"], []).append(r)
    for i, task in enumerate(LABELLED):
        rows = by_task.get(task, [])
        baseline = [r for r in rows if r["encoder"] == "tfidf-char"]
        for j, method in enumerate(METHODS):
            ax = axes[i, j]
            chosen = [r for r in rows if r["method"] == method] + baseline
            values = [r["accuracy"] for r in chosen]
            errors = [[r["accuracy"] - r["accuracy_ci"][0] for r in chosen],
                      [r["accuracy_ci"][1] - r["accuracy"] for r in chosen]]  # fmt: skip
            colors = [_COLORS.get(r["encoder"], "#4c72b0") for r in chosen]
            ax.barh(range(len(chosen)), values, xerr=errors, color=colors, capsize=2)
            ax.set_yticks(range(len(chosen)), [r["encoder"] for r in chosen], fontsize=7)
            ax.invert_yaxis()  # the table's order, top to bottom
            if chosen:
                ax.axvline(chosen[0]["majority"], color="k", ls=":", lw=0.8)
            ax.set_xlim(0.4, 1.0)
            ax.set_title(f"{SHORT[task]}: {method}", fontsize=9)
            ax.set_xlabel("dev accuracy (95% CI); dotted: majority class", fontsize=7)
    fig.tight_layout()
    return fig


def tokens_figure(results: dict[str, Any]):
    """Tokens per character of each tokenizer on each dev set."""
    names = [t["name"] for t in results["tokenizers"]]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(LABELLED)
    for k, task in enumerate(LABELLED):
        values = [t["dev"][task]["tokens_per_char"] for t in results["tokenizers"]]
        ax.bar([i + k * width for i in range(len(names))], values, width, label=SHORT[task])
    ax.set_xticks([i + width * (len(LABELLED) - 1) / 2 for i in range(len(names))], names, fontsize=7)
    ax.set_ylabel("tokens per character")
    ax.axhline(1.0, color="k", ls=":", lw=0.8)
    ax.legend(fontsize=7)
    return fig


def loss_figure(results: dict[str, Any]):
    """Masked-LM dev loss against the step, one line per encoder."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for p in results["pretraining"]:
        steps, losses = zip(*p["val_curve"], strict=True) if p["val_curve"] else ((), ())
        ax.plot(steps, losses, "o-", ms=3, label=p["encoder"])
    ax.set(xlabel="step", ylabel="MLM dev loss (nats per masked token)")
    ax.legend(fontsize=7)
    return fig


def format_tables(results: dict[str, Any]) -> str:
    """The tables as Markdown (stdout, README)."""
    parts = []
    for headers, body in (tokenizer_table(results), pretraining_table(results), accuracy_table(results),
                          ablation_table(results)):  # fmt: skip
        parts.append("| " + " | ".join(headers) + " |")
        parts.append("|" + "---|" * len(headers))
        parts += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
        parts.append("")
    return "\n".join(parts)


def _setup(results: dict[str, Any]) -> str:
    s = results["sizes"]
    tasks = ", ".join(
        f"{SHORT[name]} {t['steps']} steps x {s['finetune_batch']} at {t['max_length']} tokens"
        f" ({'all' if t['train_rows'] is None else t['train_rows']} train rows,"
        f" {'all' if t['dev_rows'] is None else t['dev_rows']} dev rows)"
        for name, t in zip(LABELLED, s["tasks"], strict=True)
    )
    return (
        f"Each tokenizer gets the same BERT-shaped encoder ({s['n_layers']} layers, d_model {s['d_model']}, "
        f"{s['n_heads']} heads, d_ff {s['d_ff']}), masked-LM pretrained for {s['pretrain_steps']} steps of "
        f"{s['pretrain_batch']} x {s['context']} tokens (lr {s['pretrain_lr']:g}), then fine-tuned in full "
        f"(lr {s['lr_full']:g}) and with LoRA (rank 8, all linear layers, lr {s['lr_lora']:g}): {tasks}. "
        "One evaluation at the end of each run: no step is picked on dev. all-MiniLM-L6-v2 is fine-tuned the "
        f"same way. Precision {results['precision']}; wall time {results['wall_seconds'] / 60:.1f} min."
    )


def write_report(out_dir: Path, results: dict[str, Any]) -> None:
    """OUT/report.html: setup, the four tables and three figures."""
    report = Report("Chinese end to end: which tokenizer serves Chinese best")
    report.section("Setup")
    report.text(_setup(results))
    report.section("Tokenizers (dev texts)")
    report.table(*tokenizer_table(results))
    report.figure(tokens_figure(results), "Tokens per character on the dev texts (1 = one per character).")
    report.section("Masked-LM pretraining (the same budget for every encoder)")
    report.table(*pretraining_table(results))
    report.figure(loss_figure(results), "Masked-LM loss on the dev texts during pretraining.")
    report.section("Fine-tuned dev accuracy [95% bootstrap interval]")
    report.table(*accuracy_table(results))
    report.figure(accuracy_figure(results), "Dev accuracy with 95% intervals, per set and method.")
    report.section("Ablation: whole-word masking (jieba) against per-token masking")
    report.text(
        "The MLM losses are not comparable across maskings (whole words are harder to fill in); the "
        "fine-tuned accuracies are."
    )
    report.table(*ablation_table(results))
    report.save(out_dir / "report.html")
