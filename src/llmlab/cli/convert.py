"""`llmlab convert`: checkpoints between Hugging Face and llmlab formats (Python: `llmlab.model.hf_export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmlab.errors import LlmlabError
from llmlab.validate import check_input, check_output


def convert(
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder (created; its parent must exist).")],
    from_hf: Annotated[
        Path | None, typer.Option("--from-hf", help="HF BERT, GPT-2 or Llama folder to import.")
    ] = None,
    to_hf: Annotated[Path | None, typer.Option("--to-hf", help="llmlab checkpoint folder to export.")] = None,
) -> None:
    """Convert a checkpoint folder between Hugging Face (BERT, GPT-2, Llama) and llmlab formats, tokenizer included."""
    from llmlab.model.hf_export import convert as convert_checkpoint

    if (from_hf is None) == (to_hf is None):
        raise LlmlabError("convert: give exactly one of --from-hf HF_DIR and --to-hf LLMLAB_DIR")
    src, direction = (from_hf, "from-hf") if from_hf is not None else (to_hf, "to-hf")
    check_input(src, "folder", f"--{direction}")
    check_output(out, [src], kind="folder")
    print(convert_checkpoint(src, out, direction))


def register(app: typer.Typer) -> None:
    """Add this topic's command to `app`."""
    app.command("convert")(convert)
