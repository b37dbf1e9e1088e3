"""`llmlab demo`: the whole toolkit end to end, offline, on the embedded corpus, in a few minutes on 2 cores.

Stage 1 trains the three tokenizer families on the same text and compares how they segment held-out text.
Stage 2 pretrains small causal LMs with several positional encodings on the same text (with the BPE of
stage 1) and tests them on sequences longer than they were trained on.
Stage 3 fine-tunes the RoPE model on a docstring-topic task by full fine-tuning and by LoRA, evaluates both
beside a linear baseline, and stage 4 compares the two offline with paired A/B tests (`llmlab.demo.finetune_stage`).
Every stage writes its artefacts under the run folder and adds a section to `report.html`.
The demo runs in float32 (README's figures); `precision` opts in to bf16-mixed or bf16
(`llmlab.model.precision`), which the stages hand to the same loops and predictors the other commands run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from llmlab.demo.finetune_stage import finetune_stage
from llmlab.demo.kernels import DEMO_THREADS, unpinned_kernels
from llmlab.demo.pretrain_stage import pretrain_stage
from llmlab.demo.summary import precision_note, summary_lines
from llmlab.io import atomic_write_text
from llmlab.model.precision import resolve_precision
from llmlab.pretraining.loop import latest_checkpoint
from llmlab.progress import progress_bar
from llmlab.report.html import Report
from llmlab.stdlib_text import demo_corpus
from llmlab.studies.positions.run import torch_threads
from llmlab.tokenizer.pipeline import Tokenizer
from llmlab.tokenizer.stats import SegmentationStats, segmentation_stats
from llmlab.tokenizer.train import MODEL_NAMES, train_tokenizer

DEMO_VOCAB_SIZE = 4000
SAMPLES = (
    "Tokenizers split unbelievably long words into pieces.",
    "The interpreter raises a KeyError when the dictionary lookup fails.",
    "自然语言处理需要分词器。",
)


def run_demo(out: Path, progress: bool = True, precision: str = "fp32") -> tuple[Path, list[str]]:
    """Run every demo stage into `out` on one torch thread.

    The figures equal README's in fp32 when the demo's kernels were pinned before torch loaded
    (`llmlab.demo.kernels`, as `llmlab demo` does); otherwise a line on stderr says they may not.

    Args:
        out: the run folder (created).
        progress: progress bars on stderr.
        precision: what pretraining, fine-tuning and the fine-tuned models' predictions run in: "fp32"
            (README's figures), "bf16-mixed", "bf16" or "auto" (bf16-mixed where the processor has native
            bfloat16, else fp32; said once on stderr).

    Returns:
        (the HTML report's path, the summary lines, also written to out/summary.txt).

    Raises:
        LlmlabError: an unknown precision, or "bf16" on a processor without native bfloat16.
    """
    precision = resolve_precision(precision, "cpu")
    unpinned = unpinned_kernels(precision)
    if unpinned:
        print(
            f"llmlab demo: {', '.join(unpinned)} not pinned: figures may differ from README's",
            file=sys.stderr,
        )
    with torch_threads(DEMO_THREADS):
        return _run(Path(out), progress, precision)


def _run(out: Path, progress: bool, precision: str) -> tuple[Path, list[str]]:
    out.mkdir(parents=True, exist_ok=True)
    report = Report("llmlab demo")
    lines = demo_corpus()
    cut = len(lines) * 9 // 10
    train_lines = lines[:cut]
    heldout = lines[cut:]
    report.text(
        f"Corpus: Python's own documentation (pydoc topics and standard-library docstrings), "
        f"{len(lines):,} lines, {sum(map(len, lines)):,} characters; the last 10% is held out. "
        + precision_note(precision)
    )
    toks, stats = tokenizer_stage(report, train_lines, heldout, out, progress)
    pretrained = pretrain_stage(report, out, toks["bpe"], lines, progress, precision)
    rope_run = next(row["run"] for row in pretrained["extrapolation"] if row["positional"] == "rope")
    checkpoint = latest_checkpoint(out / "pretrain" / rope_run)
    finetuned = finetune_stage(report, out, checkpoint, progress, precision)
    summary = summary_lines(stats, pretrained, finetuned, precision)
    atomic_write_text(out / "summary.txt", "\n".join(summary) + "\n")
    path = out / "report.html"
    report.save(path)
    return path, summary


def tokenizer_stage(
    report: Report, train: list[str], heldout: list[str], out: Path, progress: bool
) -> tuple[dict[str, Tokenizer], dict[str, SegmentationStats]]:
    """Train WordPiece, byte-level BPE and Unigram at the same vocabulary size and compare them; returns the
    tokenizers and their held-out segmentation statistics."""
    (out / "tokenizers").mkdir(exist_ok=True)
    rows, stats, toks = [], {}, {}
    for name in MODEL_NAMES:
        start = time.perf_counter()
        with progress_bar(f"tokenizer: training {name}", enabled=progress) as bar:
            tok = train_tokenizer(name, train, DEMO_VOCAB_SIZE, progress=bar)
        seconds = time.perf_counter() - start
        tok.save(out / "tokenizers" / f"{name}.json")
        toks[name] = tok
        s = stats[name] = segmentation_stats(tok, heldout)
        rows.append(
            [
                name,
                tok.vocab_size,
                f"{seconds:.1f}",
                s.tokens_per_word,
                s.tokens_per_char,
                f"{100 * s.unk_rate:.2f}%",
                f"{100 * s.vocab_usage:.1f}%",
                tok.fingerprint[:12],
            ]
        )
    report.section("Tokenizers: WordPiece, byte-level BPE and Unigram on the same text")
    report.text(
        f"Each trained on the same lines at vocabulary size {DEMO_VOCAB_SIZE}; measured on held-out lines."
    )
    report.table(
        ["model", "vocab", "train s", "tokens/word", "tokens/char", "[UNK]", "vocab used", "fingerprint"],
        rows,
    )
    report.figure(
        _compression_plot(stats),
        "Held-out tokens per word (lower is better compression) and "
        "share of the vocabulary the held-out text uses.",
    )
    for sample in SAMPLES:
        for name in MODEL_NAMES:
            report.segmentation(
                f"{name}: {sample}", toks[name].encode(sample, add_special_tokens=False).tokens
            )
    return toks, stats


def _compression_plot(stats: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(stats)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.bar(names, [stats[n].tokens_per_word for n in names], color=["#4c72b0", "#dd8452", "#55a868"])
    left.set_ylabel("tokens per word")
    right.bar(names, [100 * stats[n].vocab_usage for n in names], color=["#4c72b0", "#dd8452", "#55a868"])
    right.set_ylabel("vocabulary used (%)")
    fig.tight_layout()
    return fig
