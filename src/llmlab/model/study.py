"""`llmlab study positions`: four studies of the seven positional encodings, as a report section and a JSON.

(a) permutation equivariance without positions (`study_permutation.py`); (b) telling real word order from
local shuffles, Transformers beside a GRU and a CNN (`study_word_order.py`, `baselines.py`); (c) train
short, test long, after Press et al. 2022 (`study_extrapolation.py`); (d) pictures of the encodings
(`study_pictures.py`). `QUICK` checks the mechanics in a few minutes; `FULL` gives the numbers of the
README in 15-20 minutes on a 2-core CPU. `demo_stage` is the small version the demo runs.

Tiny models run several times faster on one thread than on two busy ones, so the study sets torch to
`threads` (default 1) while it runs and restores the setting afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_json, atomic_write_text, read_json, read_lines
from llmlab.model.checkpoint import load_model
from llmlab.model.positional import POSITIONAL
from llmlab.model.study_extrapolation import ExtrapolationSizes, extrapolation_study, press_verdict
from llmlab.model.study_permutation import permutation_table
from llmlab.model.study_report import add_study_section, extrapolation_section, format_tables, loss_figure
from llmlab.model.study_word_order import WordOrderSizes, word_order_study
from llmlab.progress import progress_bar
from llmlab.report.html import Report
from llmlab.tokenizer.pipeline import Tokenizer
from llmlab.tokenizer.train import train_tokenizer

__all__ = [
    "DEMO",
    "DEMO_ENCODINGS",
    "FULL",
    "QUICK",
    "StudySizes",
    "default_data_dir",
    "demo_stage",
    "format_tables",
    "run_position_study",
    "torch_threads",
]


@dataclass
class StudySizes:
    word_order: WordOrderSizes
    extrapolation: ExtrapolationSizes
    tokenizer_vocab: int = 4096
    tokenizer_lines: int | None = None  # first lines of gutenberg_en/train.txt for BPE and LM; None: all


FULL = StudySizes(WordOrderSizes(), ExtrapolationSizes())
QUICK = StudySizes(
    WordOrderSizes(train_sentences=4000, steps=300),
    ExtrapolationSizes(d_model=64, n_layers=2, batch_size=16, steps=150, warmup_steps=15, eval_tokens=4096),
    tokenizer_vocab=2048,
    tokenizer_lines=20000,
)
DEMO_ENCODINGS = ("learned", "rope", "alibi")  # about 90 s on 2 cores; `llmlab study positions` has them all
DEMO = ExtrapolationSizes(
    d_model=64, n_layers=2, batch_size=16, steps=500, warmup_steps=30, lr=5e-3, eval_tokens=8192
)


def default_data_dir() -> Path:
    """$LLMLAB_DATA, else ../shared/data beside the source checkout (where the tests look)."""
    env = os.environ.get("LLMLAB_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch threads (None: unchanged), then restore the previous count."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_position_study(
    out_dir: Path,
    data_dir: Path | None = None,
    quick: bool = False,
    progress: bool = True,
    threads: int | None = 1,
    report: Report | None = None,
) -> dict[str, Any]:
    """Run studies (a)-(d); write out_dir/positions.json and the report section.

    Args:
        out_dir: created if missing; holds the tokenizer, one LM run per encoding (reused when finished),
            positions.json and, when `report` is None, report.html.
        data_dir: the shared data (needs sst2/ and gutenberg_en/); default `default_data_dir()`.
        quick: QUICK sizes instead of FULL.
        progress: progress bars on stderr.
        threads: torch threads while the study runs (None: leave as is).
        report: add the section to this report (the caller saves it) instead of writing report.html.

    Returns:
        The results, as written to positions.json.

    Raises:
        LlmlabError: the data folder or one of its files is missing.
    """
    data_dir = data_dir or default_data_dir()
    for needed in ["sst2/train.csv", "sst2/dev.csv", "gutenberg_en/train.txt", "gutenberg_en/valid.txt"]:
        if not (data_dir / needed).is_file():
            raise LlmlabError(f"{data_dir / needed}: not found (point --data at the shared data folder)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(threads):
        results = _run(out_dir, data_dir, QUICK if quick else FULL, progress)
    results["quick"] = quick
    atomic_write_json(out_dir / "positions.json", results)
    own = report is None
    report = report or Report("llmlab: positional encodings")
    add_study_section(report, results, _trained_t5(out_dir, results["extrapolation"]))
    if own:
        report.save(out_dir / "report.html")
    return results


def _run(out_dir: Path, data_dir: Path, sizes: StudySizes, progress: bool) -> dict[str, Any]:
    """The three measured studies; positions.json is rewritten after each, so a crash keeps what is done."""
    results: dict[str, Any] = {"sizes": dataclasses.asdict(sizes), "seconds": {}}

    def done(name: str, value: Any, start: float) -> None:
        results[name], results["seconds"][name] = value, round(time.perf_counter() - start, 1)
        atomic_write_json(out_dir / "positions.json", results)

    start = time.perf_counter()
    done("permutation", permutation_table(), start)
    start, kinds = time.perf_counter(), [*POSITIONAL, "gru", "cnn"]
    done("word_order", word_order_study(data_dir / "sst2", kinds, sizes.word_order, progress), start)
    start = time.perf_counter()
    train, valid = _corpus(data_dir / "gutenberg_en", out_dir, sizes.tokenizer_lines)
    tokenizer_path = _tokenizer(train, out_dir, sizes.tokenizer_vocab, progress)
    e = sizes.extrapolation
    rows = extrapolation_study([train], [valid], tokenizer_path, out_dir, list(POSITIONAL), e, progress)
    results["press_agrees"], results["press_verdict"] = press_verdict(rows, e.factors)
    done("extrapolation", rows, start)
    return results


def _corpus(gutenberg: Path, out_dir: Path, lines: int | None) -> tuple[Path, Path]:
    """The train and valid files; with a line limit, the first `lines` train lines copied into out_dir."""
    if lines is None:
        return gutenberg / "train.txt", gutenberg / "valid.txt"
    head = out_dir / f"gutenberg-train-{lines}.txt"
    if not head.is_file():
        text = [line for _, line in zip(range(lines), read_lines(gutenberg / "train.txt"), strict=False)]
        atomic_write_text(head, "\n".join(text) + "\n")
    return head, gutenberg / "valid.txt"


def _tokenizer(train: Path, out_dir: Path, vocab_size: int, progress: bool) -> Path:
    """A byte-level BPE of `vocab_size` trained on `train` (kept in out_dir and reused)."""
    path = out_dir / f"bpe-{vocab_size}.json"
    if not path.is_file():
        with progress_bar("study: training the BPE tokenizer", enabled=progress) as bar:
            tokenizer = train_tokenizer("bpe", read_lines(train), vocab_size, progress=bar, source=str(train))
        tokenizer.save(path)
    return path


def _trained_t5(out_dir: Path, rows: list[dict[str, Any]]):
    """The T5 bias module of the study's trained t5 LM, or None."""
    run = next((r["run"] for r in rows if r["positional"] == "t5"), None)
    pointer = out_dir / str(run) / "checkpoints" / "latest.json"
    if run is None or not pointer.is_file():
        return None
    model, _ = load_model(pointer.parent / read_json(pointer)["folder"])
    return model.pos


def demo_stage(
    report: Report, out_dir: Path, tokenizer: Tokenizer, lines: list[str], progress: bool = True
) -> dict[str, Any]:
    """Short pretraining of a few encodings on the demo corpus, and their extrapolation table.

    Args:
        report: the demo report; gets one section.
        out_dir: the demo run folder; this stage writes out_dir/pretrain/.
        tokenizer: the demo's byte-level BPE.
        lines: the demo corpus; the last 10% is the validation text.
        progress: progress bars on stderr.

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
            [folder / "train.txt"], [folder / "valid.txt"], folder / "tokenizer.json", folder,
            list(DEMO_ENCODINGS), DEMO, progress,
        )  # fmt: skip
    agrees, verdict = press_verdict(rows, DEMO.factors)
    sizes = dataclasses.asdict(DEMO)
    report.section("Pretraining: positional encodings trained short, tested long")
    report.text(
        f"Causal LMs (d_model {DEMO.d_model}, {DEMO.n_layers} layers) trained {DEMO.steps} steps of "
        f"{DEMO.batch_size} x {DEMO.train_context} tokens on the demo corpus, then scored on its held-out 10% "
        "at 1x-8x the training length (non-overlapping windows, the same tokens at every length)."
    )
    report.figure(loss_figure([folder / str(r["run"]) for r in rows]), "Training loss per step.")
    extrapolation_section(report, rows, sizes, verdict)
    return {
        "extrapolation": rows,
        "press_agrees": agrees,
        "press_verdict": verdict,
        "seconds": time.perf_counter() - start,
    }
