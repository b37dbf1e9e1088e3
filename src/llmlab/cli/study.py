"""`llmlab study ...`: studies that show why the building blocks behave as they do (Python: `llmlab.studies`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmlab.cli.options import PRECISION_HELP
from llmlab.validate import check_input, check_output, undo_on_failure

app = typer.Typer(help="Studies that show why the building blocks behave as they do.", no_args_is_help=True)


@app.command("positions")
def study_positions(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for positions.json and report.html.")
    ],
    quick: Annotated[bool, typer.Option(help="Small sizes (minutes) instead of the full study.")] = False,
    data: Annotated[
        Path | None, typer.Option(help="The shared data folder (default: ../shared/data).")
    ] = None,
    threads: Annotated[int, typer.Option(min=1, max=1024, help="Torch threads.")] = 1,
    precision: Annotated[
        str,
        typer.Option(
            help="Word-order classifiers and language models: fp32 by default, as README's figures (on CPUs "
            "without AMX, bf16 runs these head-dim-16 models slower and moved rope's word-order accuracy by "
            "2.8 points). " + PRECISION_HELP
        ),
    ] = "fp32",
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Positional encodings side by side: permutation, word order, length extrapolation, and pictures."""
    from llmlab.studies.positions.report import format_tables
    from llmlab.studies.positions.run import run_position_study

    if data is not None:
        check_input(data, "folder", "--data")
    check_output(output, [data], kind="folder")
    from llmlab.model.precision import resolve_precision

    precision = resolve_precision(precision, "cpu")
    with undo_on_failure(output):
        results = run_position_study(
            output, data, quick=quick, progress=not quiet, threads=threads, precision=precision
        )
    print(format_tables(results))
    print(f"report: {output / 'report.html'}")


@app.command("context")
def study_context(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for context.json and report.html.")],
    quick: Annotated[
        bool, typer.Option(help="Small sizes (about a minute) instead of the full study.")
    ] = False,
    threads: Annotated[int, typer.Option(min=1, max=1024, help="Torch threads.")] = 1,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """RoPE context extension (linear, ntk, dynamic, yarn, llama3) and ALiBi: perplexity and passkey retrieval."""
    from llmlab.studies.context.report import format_tables
    from llmlab.studies.context.run import run_context_study

    check_output(output, [], kind="folder")
    with undo_on_failure(output):
        results = run_context_study(output, quick=quick, progress=not quiet, threads=threads)
    print(format_tables(results))
    print(f"wall time {results['wall_seconds'] / 60:.1f} min; report: {output / 'report.html'}")


@app.command("chinese")
def study_chinese(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for chinese.json, report.html and every run.")
    ],
    quick: Annotated[
        bool, typer.Option(help="Tiny sizes (under two minutes) instead of the full study.")
    ] = False,
    data: Annotated[
        Path | None, typer.Option(help="The shared data folder (default: ../shared/data).")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Processes running the study's jobs (one thread each).")
    ] = 2,
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = "auto",
    quiet: Annotated[bool, typer.Option(help="No progress lines.")] = False,
) -> None:
    """Which tokenizer serves Chinese best: WordPiece, byte-level BPE and Unigram at two sizes, each with a
    masked-LM pretrained encoder fine-tuned (full, LoRA) on ChnSentiCorp and online_shopping, beside
    all-MiniLM-L6-v2 and the TF-IDF baseline. Finished jobs are kept in the folder: rerun to continue."""
    from llmlab.studies.chinese.report import format_tables
    from llmlab.studies.chinese.run import run_chinese_study

    if data is not None:
        check_input(data, "folder", "--data")
    check_output(output, [data], kind="folder")
    results = run_chinese_study(
        output, data, quick=quick, progress=not quiet, workers=workers, precision=precision
    )  # no undo_on_failure: the finished jobs stay, and a rerun continues from them
    print(format_tables(results))
    print(f"wall time {results['wall_seconds'] / 60:.1f} min; report: {output / 'report.html'}")
