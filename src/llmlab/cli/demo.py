"""`llmlab demo`: the end-to-end demo on the embedded corpus (Python: `llmlab.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmlab.cli.options import PRECISION_HELP
from llmlab.validate import check_output


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the run's artefacts and report.html.")] = Path(
        "runs/demo"
    ),
    precision: Annotated[
        str,
        typer.Option(
            help="Pretraining and fine-tuning: fp32 by default, whose figures README quotes and every x86 "
            "machine reproduces; the others give other figures. " + PRECISION_HELP
        ),
    ] = "fp32",
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
) -> None:
    """Run the end-to-end demo offline on the embedded corpus, write an HTML report, print the headline results."""
    from llmlab.demo.kernels import pin_kernels

    pin_kernels(precision)  # before torch loads: in fp32, the same figures on every machine
    from llmlab.demo.run import run_demo

    check_output(out, kind="folder", parents=True)
    report, summary = run_demo(out, progress=not quiet, precision=precision)
    print("\n".join(summary))
    print(f"report: {report}")


def register(app: typer.Typer) -> None:
    """Add this topic's command to `app`."""
    app.command("demo")(demo)
