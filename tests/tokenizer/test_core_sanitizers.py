"""The compiled core built under sanitizers, each build in a copy of the package, running a sample of the parity
checks: AddressSanitizer (memory errors, on every kind of input and C++ exception) and ThreadSanitizer (the
batches' threads: the word cache they share, the helper threads kept between batches, a Python thread encoding
beside them).

The interpreter is not instrumented, so the sanitizer's runtime is preloaded, with libstdc++ beside it (ASan
intercepts C++ exception throwing only when it finds libstdc++'s symbols at startup)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmlab.tokenizer import core
from tests.tokenizer.test_core import corpus, pipelines  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(core._corelib is None, reason="the compiled tokenizer core is not built here"),
]
REPO = Path(__file__).resolve().parents[2]


def _runtime_library(cxx: str, name: str) -> str | None:
    """The compiler's copy of a runtime library (libasan.so, libstdc++.so), or None."""
    path = subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and Path(path).is_file() else None


def _sanitized_run(tmp_path: Path, sanitizer: str, options: dict[str, str], check: str, paths, lines):
    """Builds the core with -fsanitize=`sanitizer` into a copy of the package at tmp_path and runs the Python
    program `check` with it (its runtime preloaded) on tokenizer files `paths` and texts `lines` (given as JSON
    files); skips where the compiler or the runtime is missing."""
    pytest.importorskip("nanobind")
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        pytest.skip("no C++ compiler")
    runtime = [_runtime_library(cxx, name) for name in (f"lib{sanitizer[0]}san.so", "libstdc++.so")]
    if None in runtime:
        pytest.skip(f"the {sanitizer} sanitizer's runtime is not installed")
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    flags = {
        "LLMLAB_CORE_CFLAGS": f"-fsanitize={sanitizer} -fno-omit-frame-pointer -O1",
        "LLMLAB_CORE_LDFLAGS": f"-fsanitize={sanitizer}",
    }
    build = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--parallel", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, **flags},
    )
    built = list(tmp_path.glob("src/llmlab/tokenizer/_corelib*"))
    assert build.returncode == 0 and built, build.stderr[-3000:]
    assert (
        f"lib{sanitizer[0]}san"
        in subprocess.run(["ldd", str(built[0])], capture_output=True, text=True).stdout
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "LD_PRELOAD": " ".join(runtime), **options}
    inputs = []
    for name, value in (("paths", paths), ("lines", lines)):
        inputs.append(tmp_path / f"{name}.json")
        inputs[-1].write_text(json.dumps(value), encoding="utf-8")
    check_args = [str(tmp_path), *map(str, inputs)]
    return subprocess.run([sys.executable, "-c", check, *check_args], capture_output=True, text=True, env=env)


_ASAN_CHECK = """
import json, os, sys
from llmlab.tokenizer import Tokenizer, _corelib
root, (paths, lines) = sys.argv[1], (json.load(open(a, encoding="utf-8")) for a in sys.argv[2:4])
assert _corelib.__file__.startswith(root), _corelib.__file__
for path in paths:
    os.environ["LLMLAB_PURE_PYTHON"] = "0"; fast = Tokenizer.load(path)
    os.environ["LLMLAB_PURE_PYTHON"] = "1"; pure = Tokenizer.load(path)
    assert fast.engine == "core"
    for t in (fast, pure):
        t.enable_truncation(16, stride=2); t.enable_padding()
    assert [e.ids for e in fast.encode_batch(lines, num_threads=2)] == [e.ids for e in pure.encode_batch(lines)]
    for t in (fast, pure):
        t.no_truncation(); t.no_padding()
    kept = fast.encode_batch(lines, num_threads=2)[::3]  # (unpadded: packed into the workers' slabs)
    fast.encode_batch(lines, num_threads=2)
    assert [e.offsets for e in kept] == [pure.encode(x).offsets for x in lines[::3]]
    for a, b in zip(lines, lines[1:]):
        x, y = fast.encode(a, b), pure.encode(a, b)
        assert (x.ids, x.offsets, [w.ids for w in x.overflowing]) == (y.ids, y.offsets, [w.ids for w in y.overflowing])
        assert fast.decode(x.ids) == pure.decode(y.ids)
for bad in ({}, {"token_table": [1.5]}, {"token_table": ["\\\\ud800"]}):  # C++ exceptions, as Python errors
    try:
        _corelib.Core(bad)
    except (KeyError, TypeError, ValueError):
        pass
    else:
        raise AssertionError(bad)
print("asan ok")
"""


def test_core_under_address_sanitizer(pipelines, corpus, tmp_path):  # noqa: F811
    lines = corpus[::40] + [
        "",
        "\x00",
        "q\u0307\u0323",
        "[CLS] x <|endoftext|>",
        "\U0001f600" * 50,
        "a " * 3000,
    ]
    paths = [pipelines["bert"], pipelines["bpe"], pipelines["unigram"]]
    run = _sanitized_run(
        tmp_path,
        "address",
        {"ASAN_OPTIONS": "detect_leaks=0"},
        _ASAN_CHECK,
        paths,
        lines,
    )
    assert run.returncode == 0 and "asan ok" in run.stdout, run.stderr[-4000:]


_TSAN_CHECK = """
import json, os, sys, threading
from llmlab.tokenizer import Tokenizer, _corelib
root, (paths, lines) = sys.argv[1], (json.load(open(a, encoding="utf-8")) for a in sys.argv[2:4])
assert _corelib.__file__.startswith(root), _corelib.__file__
for path in paths:
    os.environ["LLMLAB_PURE_PYTHON"] = "1"; pure = Tokenizer.load(path)
    os.environ["LLMLAB_PURE_PYTHON"] = "0"
    want = [e.ids for e in pure.encode_batch(lines)]
    for threads in (2, 4):
        tok = Tokenizer.load(path)  # cold: the batches' workers fill its word cache together
        assert tok.engine == "core"
        beside = []
        single = threading.Thread(target=lambda: beside.extend(tok.encode(x).ids for x in lines[:100]))
        single.start()
        for i in range(0, len(lines), 200):
            ids, offsets = tok.encode_batch_ids(lines[i : i + 200], num_threads=threads)
            ids, o = ids.tolist(), offsets.tolist()
            assert [ids[o[k] : o[k + 1]] for k in range(len(o) - 1)] == want[i : i + 200]
        assert [e.ids for e in tok.encode_batch(lines, num_threads=threads)] == want
        times = 1 + (1 << 16) // sum(map(len, want))  # (ids enough to be gathered on the helpers too)
        ids, offsets = tok.encode_batch_ids(lines * times, num_threads=threads)
        ids, o = ids.tolist(), offsets.tolist()
        assert [ids[o[k] : o[k + 1]] for k in range(len(o) - 1)] == want * times
        single.join()
        assert beside == want[:100]
print("tsan ok")
"""


def test_batches_under_thread_sanitizer(pipelines, corpus, tmp_path):  # noqa: F811
    """No data race in cold batches on 2 and 4 threads while another Python thread encodes (a build whose
    word cache is read without its atomic loads fails this test: checked by hand)."""
    paths = [pipelines["bert"], pipelines["bpe"], pipelines["unigram"]]
    texts = [
        " ".join(corpus[i : i + 6]) for i in range(0, len(corpus), 6)
    ]  # (batches above the core's minimum)
    options = {"TSAN_OPTIONS": "halt_on_error=1 exitcode=66 report_signal_unsafe=0"}
    run = _sanitized_run(tmp_path, "thread", options, _TSAN_CHECK, paths, texts)
    if "FATAL: ThreadSanitizer" in run.stderr:  # (a kernel whose memory layout the runtime cannot use)
        pytest.skip(run.stderr.strip().splitlines()[0])
    assert run.returncode == 0 and "tsan ok" in run.stdout, run.stderr[-4000:]
