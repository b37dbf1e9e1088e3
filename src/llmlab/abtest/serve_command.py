"""The `llmlab serve` command; `register` adds it to the main app (see llmlab.cli)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from llmlab.errors import LlmlabError

DEFAULT_STORE = "runs/abtest.db"


def parse_variants(specs: list[str]) -> dict[str, Path]:
    """Turn ["A=PATH", "B=PATH"] into {"A": Path, "B": Path}, in the order given.

    Raises:
        LlmlabError: a spec without "=", an empty name, or a name given twice.
    """
    variants: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise LlmlabError(f"--variant {spec!r}: expected NAME=MODEL_FOLDER, e.g. A=runs/baseline")
        if name in variants:
            raise LlmlabError(f"--variant {spec!r}: variant {name!r} is given twice")
        variants[name] = Path(path)
    return variants


def serve(
    experiment: Annotated[str, typer.Option(help="Experiment name (also salts the user hash).")],
    variant: Annotated[
        list[str],
        typer.Option(
            help="NAME=MODEL_FOLDER (or FOLDER1,FOLDER2: an ensemble); repeat for each variant (two or more)."
        ),
    ],
    split: Annotated[str, typer.Option(help="Shares of users per variant, in --variant order.")] = "50/50",
    store: Annotated[
        str,
        typer.Option(help="Event log: an SQLite file path, sqlite:///FILE, or postgresql://USER@HOST/DB."),
    ] = DEFAULT_STORE,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve an online A/B experiment: POST /predict, POST /feedback, GET /stats, and a dashboard at /."""
    import uvicorn

    from llmlab.abtest.assign import parse_split
    from llmlab.abtest.server import create_app
    from llmlab.abtest.store import open_store
    from llmlab.predictor import load_predictor

    paths = parse_variants(variant)
    shares = parse_split(split, list(paths))
    predictors = {name: load_predictor(path) for name, path in paths.items()}
    if store == DEFAULT_STORE:
        Path(store).parent.mkdir(exist_ok=True)
    log = open_store(store)
    try:
        recorded = {name: str(path.resolve()) for name, path in paths.items()}
        app = create_app(experiment, predictors, shares, log, paths=recorded)
        print(f"serving experiment {experiment!r} on http://{host}:{port}/ (log: {store})", file=sys.stderr)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        log.close()


def register(app: typer.Typer) -> None:
    """Add `serve` to `app`."""
    app.command("serve")(serve)
