"""`llmlab study positions`: four studies of the seven positional encodings, as a report section and a JSON.

(a) permutation equivariance without positions (`study_permutation.py`); (b) telling real word order from
local shuffles, Transformers beside a GRU and a CNN (`study_word_order.py`, `baselines.py`); (c) train
short, test long, after Press et al. 2022 (`study_extrapolation.py`); (d) pictures of the encodings
(`study_pictures.py`). `QUICK` checks the mechanics in a few minutes; `FULL` gives the numbers of the
README in 15-20 minutes on a 2-core CPU.

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
from llmlab.progress import progress_bar
from llmlab.report.html import Report
from llmlab.studies.positions.extrapolation import ExtrapolationSizes, extrapolation_study, press_verdict
from llmlab.studies.positions.permutation import permutation_table
from llmlab.studies.positions.report import (
    add_study_section,
    format_tables,
)
from llmlab.studies.positions.word_order import WordOrderSizes, word_order_study
from llmlab.tokenizer.train import train_tokenizer

__all__ = [
    "FULL",
    "QUICK",
    "StudySizes",
    "default_data_dir",
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


def default_data_dir() -> Path:
    """$LLMLAB_DATA, else ../shared/data beside the source checkout (where the tests look)."""
    env = os.environ.get("LLMLAB_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[4].parent / "shared" / "data"


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
    precision: str = "fp32",
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
        precision: what the word-order classifiers and the extrapolation study's language models train in
            (`llmlab.model.precision`).

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
        results = _run(out_dir, data_dir, QUICK if quick else FULL, progress, precision)
    results["quick"], results["precision"] = quick, precision
    atomic_write_json(out_dir / "positions.json", results)
    own = report is None
    report = report or Report("llmlab: positional encodings")
    add_study_section(report, results, _trained_t5(out_dir, results["extrapolation"]))
    if own:
        report.save(out_dir / "report.html")
    return results


def _run(out_dir: Path, data_dir: Path, sizes: StudySizes, progress: bool, precision: str) -> dict[str, Any]:
    """The three measured studies; positions.json is rewritten after each, so a crash keeps what is done."""
    results: dict[str, Any] = {"sizes": dataclasses.asdict(sizes), "seconds": {}}

    def done(name: str, value: Any, start: float) -> None:
        results[name], results["seconds"][name] = value, round(time.perf_counter() - start, 1)
        atomic_write_json(out_dir / "positions.json", results)

    start = time.perf_counter()
    done("permutation", permutation_table(), start)
    start = time.perf_counter()
    kinds = [*POSITIONAL, "gru", "cnn"]
    rows = word_order_study(data_dir / "sst2", kinds, sizes.word_order, progress, precision)
    done("word_order", rows, start)
    start = time.perf_counter()
    train, valid = _corpus(data_dir / "gutenberg_en", out_dir, sizes.tokenizer_lines)
    tokenizer_path = _tokenizer(train, out_dir, sizes.tokenizer_vocab, progress)
    e = sizes.extrapolation
    rows = extrapolation_study(
        [train], [valid], tokenizer_path, out_dir, list(POSITIONAL), e, progress, precision
    )
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
