"""Counting on a Dask LocalCluster writes the same count file as one process (extra 'dask'; skipped without)."""

from __future__ import annotations

import gzip
import itertools

import pytest

from llmlab.errors import LlmlabError
from llmlab.tokenizer.corpus import read_corpus
from llmlab.tokenizer.counting import count_to_file, pipeline_of
from llmlab.tokenizer.train import model_pipeline

pytest.importorskip("distributed")
from llmlab.tokenizer.distributed_count import count_on_dask, dask_client  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with dask_client("local", workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def shards(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    sources = ["tiny_shakespeare/valid.txt", "zh_poetry/valid.txt", "gutenberg_en/valid.txt"]
    for i, name in enumerate(sources):
        with open(shared_data / name, "rb") as f:
            head = b"".join(itertools.islice(f, 1500))
        if i == 1:
            (folder / f"{i}.txt.gz").write_bytes(gzip.compress(head))
        else:
            (folder / f"{i}.txt").write_bytes(head)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bpe", "wordpiece"])
def test_dask_counts_equal_single_process_counts(client, shards, tmp_path, model):
    normalizer, pretokenizer = model_pipeline(model)
    single, spread = tmp_path / "single.counts", tmp_path / "dask.counts"
    words = count_to_file(read_corpus([shards]), single, normalizer, pretokenizer, workers=1)
    assert count_on_dask([shards], spread, pipeline_of(normalizer, pretokenizer), client) == words > 1000
    assert spread.read_bytes() == single.read_bytes()


@pytest.mark.slow
def test_a_bad_shard_fails_on_the_worker_and_writes_nothing(client, shards, tmp_path):
    bad = tmp_path / "in" / "bad.txt.gz"
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(b"some words\n" * 5000)[:-40])
    out = tmp_path / "out.counts"
    with pytest.raises(LlmlabError, match="compressed stream is truncated"):
        count_on_dask([shards, bad.parent], out, pipeline_of(*model_pipeline("bpe")), client)
    assert not out.exists()
