"""The online experiment server: predictions from the user's variant, outcomes, a live dashboard.

An ASGI app on Starlette (run by uvicorn). `POST /predict` hashes the user onto a variant
(`llmlab.abtest.assign`), runs that variant's model and commits the assignment to the event log
(`llmlab.abtest.store`) before answering; `POST /feedback` commits the request's outcome; `GET /stats` and
`GET /` show the comparison so far. Inference and log writes run in worker threads so the event loop keeps
serving, and both are batched opportunistically (`Batcher`): whatever arrived while the previous batch was
busy goes in the next one, the way dynamic batching in model servers works (e.g. NVIDIA Triton), without the
wait: a lone request is never delayed. Batched log writes share one transaction, that is one fsync (group
commit, as databases do for their own logs). Bad input gets a 4xx JSON `{"error": ...}` and changes nothing:
a body that is not UTF-8 or not JSON, nested more than `llmlab.io.MAX_JSON_DEPTH` deep, or holding a string
with a lone surrogate (not encodable as UTF-8) is 400, as is an outcome that is not a finite number within
+-`store.OUTCOME_LIMIT`; over `MAX_BODY_BYTES` is 413.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from llmlab.abtest.assign import assign_variant, check_split
from llmlab.abtest.dashboard import render_page, stats_payload
from llmlab.abtest.store import OUTCOME_LIMIT, DuplicateOutcome, EventStore, UnknownRequest
from llmlab.errors import LlmlabError, mask_secrets
from llmlab.evaluation.predictor import Predictor
from llmlab.io import loads_json

MAX_BODY_BYTES = 64 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


class Batcher:
    """Coalesces concurrent `submit(item)` calls into calls of `fn(items) -> results`, in a worker thread.

    One batch runs at a time; items that arrive meanwhile wait for the next one (at most `max_batch`).
    """

    def __init__(self, fn: Callable[[list], list], max_batch: int = 64):
        self.fn, self.max_batch = fn, max_batch
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        """Queue `item` and wait for its result (or the batch's exception)."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    results = await run_in_threadpool(self.fn, [item for item, _ in batch])
                except Exception as e:  # every caller of the batch gets the error
                    results = [None] * len(batch)
                    error = e
                else:
                    error = None
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller went away
                        continue
                    if error is None:
                        future.set_result(result)
                    else:
                        future.set_exception(error)
        finally:
            self._worker = None


def _fail(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> dict:
    """The request body as a JSON object, at most `limit` bytes (checked on Content-Length and while reading).

    Raises:
        HTTPException: 413 for a body over the limit, 400 for anything but a JSON object.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:  # the HTTP parser checked it
        raise _fail(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _fail(413, f"request body is over the limit of {limit} bytes")
    try:
        data = loads_json(bytes(body), "request body", "JSON")
    except LlmlabError as e:
        raise _fail(400, f"request body is not valid JSON: {str(e).removeprefix('request body: ')}") from None
    except ValueError as e:  # an integer of more than 4300 digits
        raise _fail(400, f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise _fail(400, f"request body must be a JSON object, not {type(data).__name__}")
    _check_strings(data)
    return data


def _check_strings(value: Any) -> None:
    """400 for a string holding a lone surrogate ("\\ud800" is valid JSON but not encodable as UTF-8)."""
    if isinstance(value, str) and _SURROGATE.search(value):
        raise _fail(400, "request body holds a string with a lone surrogate (not valid Unicode text)")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def _field(data: dict, name: str, types: tuple[type, ...], what: str) -> Any:
    if name not in data:
        raise _fail(400, f"missing field {name!r} ({what})")
    value = data[name]
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise _fail(400, f"field {name!r} must be {what}, not {type(value).__name__}")
    return value


def _user_id(data: dict) -> str:
    user_id = str(_field(data, "user_id", (str, int), "a non-empty string or an integer"))
    if not user_id:
        raise _fail(400, "field 'user_id' must not be empty")
    return user_id


def _outcome(data: dict) -> float:
    raw = _field(data, "outcome", (int, float, bool), "a number or a boolean")
    value = float(raw) if isinstance(raw, float) or abs(raw) <= OUTCOME_LIMIT else math.inf
    if not math.isfinite(value) or abs(value) > OUTCOME_LIMIT:
        raise _fail(
            400, f"field 'outcome' must be finite and within +-{OUTCOME_LIMIT:g}, not {str(raw)[:30]}"
        )
    return value


def _predict_batch(predictor: Predictor) -> Callable[[list[str]], list[dict]]:
    def predict(texts: list[str]) -> list[dict]:
        proba = predictor.predict_proba(texts)  # (N, K)
        labels = proba.argmax(axis=1)  # (N,)
        return [
            {
                "label": int(k),
                "label_name": predictor.labels[k],
                "probabilities": dict(zip(predictor.labels, map(float, row), strict=True)),
            }
            for k, row in zip(labels.tolist(), np.asarray(proba), strict=True)
        ]

    return predict


def create_app(
    experiment: str,
    variants: Mapping[str, Predictor],
    split: Mapping[str, float],
    store: EventStore,
    paths: Mapping[str, str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Starlette:
    """The experiment server as an ASGI app; it records the experiment in `store` first.

    Args:
        experiment: the experiment's name (also the assignment hash's salt).
        variants: variant name -> a loaded Predictor.
        split: variant name -> share of users (positive, summing to 1).
        store: the event log (shared by every instance serving this experiment).
        paths: variant -> model folder, recorded with the experiment (default: each predictor's name).
        max_body_bytes: larger request bodies get 413.

    Raises:
        LlmlabError: the split names a variant without a model (or misses one), or `store` holds a different
            configuration under `experiment`.
    """
    split = check_split(dict(split))
    if set(split) != set(variants):
        raise LlmlabError(
            f"experiment {experiment!r}: the split has variants {sorted(split)} but models were given for "
            f"{sorted(variants)}"
        )
    store.create_experiment(experiment, split, dict(paths or {v: p.name for v, p in variants.items()}))
    predictors = {name: Batcher(_predict_batch(p)) for name, p in variants.items()}

    def log_batch(rows: list[tuple]) -> list[None]:
        store.log_assignments(rows)  # one transaction: all of the batch is durable, or none of it
        return [None] * len(rows)

    log = Batcher(log_batch, max_batch=256)

    async def predict(request: Request) -> JSONResponse:
        data = await read_json(request, max_body_bytes)
        user_id = _user_id(data)
        text = _field(data, "text", (str,), "a string")
        start = time.perf_counter()
        variant = assign_variant(experiment, user_id, split)
        prediction = await predictors[variant].submit(text)
        latency_ms = (time.perf_counter() - start) * 1000
        request_id = uuid.uuid4().hex
        await log.submit((request_id, experiment, user_id, variant, prediction, latency_ms))
        return JSONResponse(
            {"request_id": request_id, "variant": variant, "prediction": prediction, "latency_ms": latency_ms}
        )

    async def feedback(request: Request) -> JSONResponse:
        data = await read_json(request, max_body_bytes)
        request_id = _field(data, "request_id", (str,), "a string")
        value = _outcome(data)
        try:
            await run_in_threadpool(store.log_outcome, request_id, value)
        except UnknownRequest as e:
            raise _fail(404, str(e)) from None
        except DuplicateOutcome as e:
            raise _fail(409, str(e)) from None
        return JSONResponse({"request_id": request_id, "outcome": value})

    async def stats(request: Request) -> JSONResponse:
        summary = await run_in_threadpool(store.summary, experiment)
        return JSONResponse(stats_payload(experiment, split, summary))

    async def dashboard(request: Request) -> HTMLResponse:
        return HTMLResponse(render_page(experiment))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "experiment": experiment, "variants": sorted(split)})

    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/stats", stats),
        Route("/health", health),
        Route("/", dashboard),
    ]
    handlers = {HTTPException: _http_error, Exception: _server_error}
    return Starlette(routes=routes, exception_handlers=handlers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    message = mask_secrets(f"internal error: {type(exc).__name__}: {exc}")
    return JSONResponse({"error": message}, status_code=500)
