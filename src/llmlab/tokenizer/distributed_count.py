"""Word counting on a Dask cluster: the same pipeline mapped over the corpus files, reduced to one count file.

Engine: Dask `distributed` (https://distributed.dask.org), the optional extra `dask`. Chosen over Ray and
Spark because it is pure Python on top of the standard scientific stack (a few MB to install, no JVM as
Spark needs, no 100+ MB native runtime as Ray), because a `LocalCluster` of worker processes starts in a
few seconds on one machine (so the tests run the real path), and because the same code reaches a cluster of
machines by naming its scheduler (`tcp://host:8786`). Nothing here manages machines: Dask does.

Map: one task per input file (a shard). The worker reads it as a stream (plain or compressed, `corpus.py`),
counts its words in bounded memory with the same normalizer and pre-tokenizer (`counting.py`, one process,
spilling past `max_memory`), and sends back its counts as a count file (bytes: sorted and compact, sized by
the shard's distinct words). Reduce: the client keeps each shard's counts in a temporary folder as they come
in, then merges them in one streaming pass (`word_table.merge_sorted`) into the output, atomically. The
result is byte for byte the count file a single process writes for the same files (tested on a
LocalCluster). The workers must see the input paths (a shared file system, or the same paths on every
machine) and have llmlab installed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError, require_extra
from llmlab.progress import ProgressFn
from llmlab.tokenizer.corpus import corpus_files, read_file_lines
from llmlab.tokenizer.countfile import CountFile, write_counts, write_stream
from llmlab.tokenizer.counting import counted
from llmlab.tokenizer.normalize_sp import normalizer_from_hf
from llmlab.tokenizer.pretokenize_split import pretokenizer_from_hf
from llmlab.tokenizer.word_table import merge_sorted


def count_shard(
    path: str, pipeline: dict[str, Any], errors: str, max_memory: int | None
) -> tuple[bytes, int]:
    """(On a worker) the count file, as bytes, of the words of one corpus file under `pipeline`, and how
    many distinct words it holds."""
    normalizer = normalizer_from_hf(pipeline["normalizer"])
    pretokenizer = pretokenizer_from_hf(pipeline["pre_tokenizer"])
    lines = read_file_lines(Path(path), errors)
    with counted(lines, normalizer, pretokenizer, workers=1, max_memory=max_memory) as counter:
        out = io.BytesIO()
        words = write_stream(out, counter.items(), counter.pipeline, path)
        return out.getvalue(), words


@contextlib.contextmanager
def dask_client(scheduler: str, workers: int | None) -> Iterator[Any]:
    """A Dask client: "local" starts a LocalCluster of `workers` processes (default: all cores), anything else
    is a scheduler address."""
    distributed = require_extra("distributed", "dask", "counting on a Dask cluster")
    with contextlib.ExitStack() as stack:
        if scheduler == "local":
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        else:
            try:
                client = stack.enter_context(distributed.Client(scheduler, timeout="30s"))
            except OSError as e:
                raise LlmlabError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({e})") from None
        yield client


def count_on_dask(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    pipeline: dict[str, Any],
    client: Any,
    errors: str = "strict",
    max_memory: int | None = None,
    progress: ProgressFn | None = None,
) -> int:
    """Count the words of the files `inputs` name on a Dask cluster into the count file `output`.

    Args:
        inputs: files, folders and globs (`corpus.corpus_files`); each file is one task.
        pipeline: {"normalizer": ..., "pre_tokenizer": ...} HF sections (`counting.pipeline_of`).
        client: a `distributed.Client` (`dask_client`).
        errors: invalid UTF-8: "strict" or "replace".
        max_memory: bytes each task's word table may take before it spills (default: a share of RAM).
        progress: called as `progress(shards_done, shards)`.

    Returns:
        The number of distinct words written.

    Raises:
        LlmlabError: a missing input or a bad file (raised on a worker, re-raised here), no words at all;
            nothing is written then.
    """
    distributed = require_extra("distributed", "dask", "counting on a Dask cluster")
    files = [str(p) for p in corpus_files(inputs)]
    futures = client.map(
        count_shard, files, pipeline=pipeline, errors=errors, max_memory=max_memory, pure=False
    )
    with tempfile.TemporaryDirectory(prefix="llmlab-shards-") as tmp, contextlib.ExitStack() as stack:
        index = {future.key: i for i, future in enumerate(futures)}
        shards, words = [], 0
        for done, (future, (data, n)) in enumerate(distributed.as_completed(futures, with_results=True), 1):
            shard = Path(tmp) / f"shard-{index[future.key]:06d}.counts"
            shard.write_bytes(data)
            shards.append(stack.enter_context(CountFile(shard)))
            words += n
            if progress:
                progress(done, len(files))
        if not words:
            raise LlmlabError(f"{output}: the corpus has no words to count (nothing written)")
        return write_counts(output, merge_sorted(f.items() for f in shards), shards[0].pipeline)
