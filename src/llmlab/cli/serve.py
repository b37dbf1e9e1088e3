"""The `llmlab serve` command; `register` adds it to the main app (see llmlab.cli)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from llmlab.cli.options import PRECISION_HELP
from llmlab.errors import LlmlabError, mask_secrets, release_notices, require_extra
from llmlab.validate import undo_on_failure

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
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    precision: Annotated[str, typer.Option(help="Fine-tuned models: " + PRECISION_HELP)] = "auto",
) -> None:
    """Serve an online A/B experiment: POST /predict, POST /feedback, GET /stats, and a dashboard at /.

    The port is bound before anything is recorded: a start that fails (port taken, unknown host, a model
    that does not load) leaves the event log as it was, and no new log file behind.
    """
    require_extra("starlette", "serve", "llmlab serve")
    uvicorn = require_extra("uvicorn", "serve", "llmlab serve")
    from llmlab.abtest.assign import parse_split
    from llmlab.abtest.server import create_app
    from llmlab.abtest.store import open_store
    from llmlab.evaluation.predictor import load_predictor

    paths = parse_variants(variant)
    shares = parse_split(split, list(paths))
    from llmlab.model.precision import resolve_precision

    precision = resolve_precision(precision)
    predictors = {name: load_predictor(path, precision) for name, path in paths.items()}
    listener = bind(host, port)
    try:
        with undo_on_failure(*_store_files(store)):
            if store == DEFAULT_STORE:
                Path(store).parent.mkdir(exist_ok=True)
            log = open_store(store)
            try:
                recorded = {name: str(path.resolve()) for name, path in paths.items()}
                app = create_app(
                    experiment, predictors, shares, log, paths=recorded
                )  # records the experiment
            except BaseException:
                log.close()
                raise
    except BaseException:
        listener.close()
        raise
    try:
        release_notices()
        shown = mask_secrets(store)
        print(f"serving experiment {experiment!r} on http://{host}:{port}/ (log: {shown})", file=sys.stderr)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.run(sockets=[listener])
    finally:
        log.close()
        listener.close()


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), not yet listening (uvicorn listens on it).

    Raises:
        LlmlabError: the host does not resolve, or the port cannot be bound (taken, privileged).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as e:
        raise LlmlabError(
            f"--host {host!r}: cannot resolve it ({getattr(e, 'strerror', None) or e})"
        ) from None
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as e:
        listener.close()
        raise LlmlabError(f"{host}:{port}: cannot listen there: {e.strerror}") from None
    return listener


def _store_files(store: str) -> list[Path]:
    """The files (and the default folder) an SQLite store creates, to remove when the start fails."""
    if "://" in store and not store.startswith("sqlite:///"):
        return []
    path = Path(store.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return files + ([path.parent] if store == DEFAULT_STORE else [])


def register(app: typer.Typer) -> None:
    """Add `serve` to `app`."""
    app.command("serve")(serve)
