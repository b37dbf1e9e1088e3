"""The compiled core's `encode_batch` on threads (_core/batch.cpp) equals one encode per input on the pure path:
the calling thread encodes and hands finished encodings over while the other threads encode, inputs the core
cannot read go to Python, batch padding waits for every length, and other Python threads may use the same
tokenizer while a batch runs (no deadlock between the GIL and the word cache's lock), a batch whose new words
outgrow the room made for them in the word cache is still right, a forked child runs batches on threads of its
own, and running out of memory on a helper thread raises MemoryError in the caller (it ended the process). `encode_batch_ids` (every input's ids in one buffer) gives the same ids on both paths."""

from __future__ import annotations

import json
import multiprocessing
import random
import string
import subprocess
import sys
import threading

import pytest

from llmlab.tokenizer import Tokenizer, core
from tests.tokenizer.test_core import fields, standard_pipelines

pytestmark = pytest.mark.skipif(not core.available(), reason="the compiled tokenizer core is not in use")


@pytest.fixture(scope="module")
def lines(shared_data) -> list[str]:
    en = (shared_data / "gutenberg_en" / "valid.txt").read_text(encoding="utf-8").splitlines()[:2500]
    zh = (shared_data / "zh_classic_novels" / "valid.txt").read_text(encoding="utf-8").splitlines()[:40]
    return [
        line for pair in zip(en[:1500], en[1000:], strict=True) for line in pair
    ] + zh  # 2,540 lines, ~140,000 characters


@pytest.fixture(scope="module")
def paths(lines, minilm_dir, tmp_path_factory) -> dict[str, str]:
    return standard_pipelines(tmp_path_factory.mktemp("batch"), minilm_dir, lines[:1500], 2000)


def pure(path: str) -> Tokenizer:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_PURE_PYTHON", "1")
        tok = Tokenizer.load(path)
    assert tok.engine == "python"
    return tok


@pytest.mark.parametrize("name", ["bert", "bpe", "unigram"])
def test_a_batch_on_threads_equals_one_encode_per_input(paths, lines, name):
    odd = [b"bytes go to Python", ("a pair", "of texts"), "", "q\u0307\u0323 ﬁ"]
    inputs = lines[:1200] + odd + list(zip(lines[1200:1500], lines[1500:1800], strict=True)) + lines[1800:]
    reference = pure(paths[name])
    want = [fields(reference.encode(*x) if isinstance(x, tuple) else reference.encode(x)) for x in inputs]
    for threads in (2, 3):
        tok = Tokenizer.load(paths[name])
        assert tok.engine == "core"
        for _ in range(2):  # cold, then with the words the first batch merged into the cache
            assert [fields(e) for e in tok.encode_batch(inputs, num_threads=threads)] == want


def test_batch_padding_waits_for_every_length(paths, lines):
    tok, reference = Tokenizer.load(paths["bpe"]), pure(paths["bpe"])
    for t in (tok, reference):
        t.enable_padding(pad_to_multiple_of=8)
    got = [fields(e) for e in tok.encode_batch(lines, num_threads=2)]
    assert got == [fields(e) for e in reference.encode_batch(lines)]
    assert len({len(ids) for ids, *_ in got}) == 1


def test_python_threads_share_a_tokenizer_while_batches_run(paths, lines):
    tok = Tokenizer.load(paths["bpe"])
    want = [e.ids for e in pure(paths["bpe"]).encode_batch(lines)]
    errors: list[BaseException] = []

    def run(job) -> None:
        try:
            job()
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)

    def batches() -> None:
        for _ in range(2):
            assert [e.ids for e in tok.encode_batch(lines, num_threads=2)] == want

    def singles() -> None:
        assert [tok.encode(t).ids for t in lines[:800]] == want[:800]

    jobs = [threading.Thread(target=run, args=(job,)) for job in (batches, singles, batches)]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join(timeout=120)
    assert not any(j.is_alive() for j in jobs), "deadlock"
    assert not errors, errors


def flat(ids: memoryview, offsets: memoryview) -> list[list[int]]:
    assert (ids.format, ids.itemsize, offsets.format, offsets.itemsize) == ("i", 4, "q", 8)
    o, every = offsets.tolist(), ids.tolist()
    return [every[o[i] : o[i + 1]] for i in range(len(o) - 1)]


@pytest.mark.parametrize("name", ["bert", "bpe", "unigram"])
def test_flat_ids_of_a_batch_equal_encode_batch_on_both_paths(paths, lines, name):
    pairs = list(zip(lines[1200:1400], lines[1400:1600], strict=True))
    inputs = lines[:1200] + pairs + ["", "q\u0307\u0323 ﬁ"] + lines[1800:]
    reference = pure(paths[name])
    want = [e.ids for e in reference.encode_batch(inputs)]
    assert flat(*reference.encode_batch_ids(inputs)) == want  # the pure path flattens encode_batch
    for threads in (1, 2, 3):
        tok = Tokenizer.load(paths[name])
        for _ in range(2):  # cold, then warm
            assert flat(*tok.encode_batch_ids(inputs, num_threads=threads)) == want
        assert flat(*tok.encode_batch_ids(inputs, add_special_tokens=False, num_threads=threads)) == [
            e.ids for e in reference.encode_batch(inputs, add_special_tokens=False)
        ]


def test_flat_ids_with_inputs_left_to_python_or_batch_padding(paths, lines):
    tok, reference = Tokenizer.load(paths["bpe"]), pure(paths["bpe"])
    inputs = lines[:300] + [b"bytes go to Python"] + lines[300:600]
    assert flat(*tok.encode_batch_ids(inputs, num_threads=2)) == [
        e.ids for e in reference.encode_batch(inputs)
    ]
    for t in (tok, reference):
        t.enable_padding(pad_to_multiple_of=8)
    got = flat(*tok.encode_batch_ids(lines, num_threads=2))
    assert got == [e.ids for e in reference.encode_batch(lines)]
    assert len({len(ids) for ids in got}) == 1


def test_new_words_beyond_the_room_made_for_a_batch_stay_correct(paths):
    """The workers insert a batch's new words into room made for it beforehand (batch.cpp: one word per 12
    characters): a batch of ~27,000 words never seen in ~250,000 characters runs out of it; the words left out
    of the cache are split again where they recur, with the same result. (Its ids are gathered on threads.)"""
    rng = random.Random(0)
    words = ["".join(rng.choices(string.ascii_lowercase + "éß", k=rng.randint(3, 9))) for _ in range(60000)]
    inputs = [" ".join(rng.choices(words, k=40)) for _ in range(900)]
    assert len({w for x in inputs for w in x.split()}) > sum(map(len, inputs)) / 12  # (more than the room)
    for name in ("bert", "bpe", "unigram"):
        want = [e.ids for e in pure(paths[name]).encode_batch(inputs)]
        for threads in (2, 4):
            tok = Tokenizer.load(paths[name])
            for _ in range(2):
                ids, offsets = tok.encode_batch_ids(inputs, num_threads=threads)
                assert len(ids) >= 1 << 16  # (so large that the helpers gather the ids too: py_batch.cpp)
                assert flat(ids, offsets) == want
            assert [e.ids for e in tok.encode_batch(inputs[::-1], num_threads=threads)] == want[::-1]


def _batch_in_child(path_and_inputs: tuple[str, list[str]]) -> list[list[int]]:
    path, inputs = path_and_inputs
    return [e.ids for e in _forked[path].encode_batch(inputs, num_threads=2)]


_forked: dict[str, Tokenizer] = {}


def test_a_forked_child_runs_batches_on_threads_of_its_own(paths, lines):
    """The helper threads are kept between batches; a child forked after a batch has none of them (fork copies
    only the calling thread) and starts its own instead of waiting for threads that are not there."""
    tok = _forked[paths["bpe"]] = Tokenizer.load(paths["bpe"])
    want = [e.ids for e in tok.encode_batch(lines, num_threads=2)]  # the parent's helpers now exist
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.map_async(_batch_in_child, [(paths["bpe"], lines)]).get(timeout=120)
    assert got == [want]
    assert [e.ids for e in tok.encode_batch(lines, num_threads=2)] == want  # and the parent's still work


_OUT_OF_MEMORY = """
import json, resource, sys
from llmlab.tokenizer import Tokenizer
tok = Tokenizer.load(sys.argv[1])
small = [f"a short line of words, {i} of them" for i in range(2000)]
tok.encode_batch_ids(small, num_threads=2)  # (the helper thread exists before the limit)
vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
_, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (vm + (300 << 20), hard))
huge = ["word " * (4 << 18)] * 30  # 4 MiB each: more than 300 MiB to encode, on both threads
raised = []
for call in (tok.encode_batch_ids, tok.encode_batch):
    try:
        call(small[:5] + huge, num_threads=2)
    except MemoryError:
        raised.append(call.__name__)
resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
print(json.dumps([raised, [e.ids for e in tok.encode_batch(small, num_threads=2)]]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS limits memory on Linux")
def test_running_out_of_memory_on_a_helper_thread_raises_memory_error(minilm_dir):
    """std::bad_alloc thrown on a helper thread (an exception leaving a thread calls std::terminate) is caught,
    and thrown in the calling thread once the batch is over: MemoryError, as on one thread, and the tokenizer and
    its helper threads go on working. In a child whose address space is limited so that 30 lines of 4 MiB cannot
    all be encoded, whichever thread meets them."""
    path = str(minilm_dir / "tokenizer.json")
    child = subprocess.run(
        [sys.executable, "-c", _OUT_OF_MEMORY, path], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, child.stderr[-2000:]
    raised, ids = json.loads(child.stdout)
    assert raised == ["encode_batch_ids", "encode_batch"]
    small = [f"a short line of words, {i} of them" for i in range(2000)]
    assert ids == [e.ids for e in Tokenizer.load(path).encode_batch(small, num_threads=1)]


def test_a_batch_leaves_its_ids_lists_to_the_collector_only_once_read(paths, lines):
    """The ids lists a batch makes stay out of the garbage collector's young generation until read (else the
    first container made after the batch starts a collection that goes through every one of them), and a list
    once read is tracked like any other: a cycle through it is collected."""
    import gc
    import weakref

    tok = Tokenizer.load(paths["bert"])
    gc.collect()
    gc.disable()  # (else listing the young generation would start the collection that empties it)
    try:
        encodings = tok.encode_batch(lines[:1000], num_threads=2)
        young = {id(x) for x in gc.get_objects(generation=0)}
    finally:
        gc.enable()
    assert len(encodings) == 1000 and len(young) < 100  # (1,000 tracked lists before)

    ids = encodings[0].ids
    assert gc.is_tracked(ids) and id(ids) not in young
    assert ids == pure(paths["bert"]).encode(lines[0]).ids

    class Holder:  # (a list cannot be weakly referenced: a cycle through it and an object that can)
        pass

    holder = Holder()
    holder.ids, gone = ids, weakref.ref(holder)
    ids.append(holder)
    del holder, ids, encodings
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("threads", [1, 2])
def test_encodings_kept_from_a_dropped_batch_keep_their_fields(paths, lines, threads):
    """A batch's workers pack its encodings into shared slabs of memory, each freed with the last encoding in
    it: a few kept while the rest of their batch is dropped, and later batches reuse the memory, still read
    what they were (a slab freed early would show other batches' tokens here; under ASan, a use after free)."""
    tok, reference = Tokenizer.load(paths["bpe"]), pure(paths["bpe"])
    long_line = " ".join(lines[:400])  # (its arrays exceed a slab's quarter: a block of its own)
    batch = lines[:1500] + [long_line]
    kept = {
        i: e for i, e in enumerate(tok.encode_batch(batch, num_threads=threads)) if i % 97 == 0 or i == 1500
    }
    for start in range(0, 2400, 600):
        assert len(tok.encode_batch(lines[start : start + 600], num_threads=threads)) == 600
    assert len(kept) == 17
    for i, e in kept.items():  # (fields built from the packed arrays only now, long after the batch)
        assert fields(e) == fields(reference.encode(batch[i]))


def test_the_fields_of_dropped_batch_encodings_are_freed_by_the_next_batch_or_a_collection(paths, lines):
    """A batch's Encoding, dropped, leaves its lists to be freed by the next batches' calling threads while
    their helpers encode (Python freed them after the batch, serial work), as many as each batch makes, the
    last dropped first; or all at the start of a garbage collection, or when their tokenizer goes, or once
    16,384 wait; an Encoding of a single `encode` frees its own at once."""
    import gc
    import weakref

    class Field(list):  # (a list that can be weakly referenced, set as a field)
        pass

    def dropped(encodings) -> list:
        gone = []
        for e in encodings:
            e.tokens = Field(e.tokens)
            gone.append(weakref.ref(e.tokens))
        return gone

    tok = Tokenizer.load(paths["bpe"])
    enabled = gc.isenabled()
    gc.disable()  # (a collection would free them at any allocation)
    try:
        single = dropped([tok.encode(lines[0])])
        assert [r() for r in single] == [None]
        waiting = dropped(tok.encode_batch(lines[:600], num_threads=2))
        assert all(r() is not None for r in waiting)
        assert len(tok.encode_batch(lines[600:900], num_threads=2)) == 300
        assert sum(r() is None for r in waiting) == 150  # (300 lists: two of each Encoding)
        assert len(tok.encode_batch(lines[:1200], num_threads=2)) == 1200  # (the 300's lists, then the rest)
        assert all(r() is None for r in waiting)

        waiting = dropped(tok.encode_batch(lines[:600], num_threads=1))
        assert all(r() is not None for r in waiting)
        gc.collect()
        assert all(r() is None for r in waiting)

        many = dropped(tok.encode_batch(lines[:50] * 400, num_threads=2))  # 20,000 (each has two lists)
        assert sum(r() is not None for r in many) <= 16384 // 2

        other = Tokenizer.load(paths["bpe"])
        waiting = dropped(other.encode_batch(lines[:600], num_threads=2))
        assert all(r() is not None for r in waiting)
        del other  # (what they left goes with it: not in another tokenizer's next batch)
        assert all(r() is None for r in waiting)
    finally:
        if enabled:
            gc.enable()


@pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="CPython 3.14's incremental collector counts otherwise"
)
def test_batches_that_drop_the_last_ones_encodings_start_no_garbage_collection(paths, lines):
    """Python's collector counts the containers made minus those freed and collects generation 0 once the
    count passes 700. A batch frees what the last one's dropped Encodings left as it makes its own (as many
    lists as it makes, after making them): a loop of batches of 1,000 that reads their ids and drops them
    keeps the count where it was (freeing them all first, then making 1,000, started a collection after
    every batch: serial work on 2 threads)."""
    import gc

    tok = Tokenizer.load(paths["bert"])
    cycled = lines * 8  # (2,540 lines: 20,320)
    batches = [cycled[i : i + 1000] for i in range(0, 20_000, 1000)]
    for threads in (1, 2):
        before = gc.get_stats()[0]["collections"]
        for batch in batches:
            assert len([e.ids for e in tok.encode_batch(batch, num_threads=threads)]) == 1000
        assert gc.get_stats()[0]["collections"] - before <= 2  # (20 before)
