"""Atomic writes, fingerprints and strict UTF-8 reading."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from llmlab.errors import LlmlabError
from llmlab.io import atomic_open, atomic_write_json, exclusive_lock, fingerprint, read_json, read_lines


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"x": 1})
    atomic_write_json(path, {"x": 2})
    assert read_json(path) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half of the new")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_missing_output_folder_is_named(tmp_path):
    with pytest.raises(LlmlabError, match="output folder .*nope does not exist"):
        atomic_write_json(tmp_path / "nope" / "a.json", {})


def test_fingerprint_ignores_key_order_and_sees_values():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert len(fingerprint({})) == 64


def test_read_lines_names_file_and_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nsecond \xff line\n")
    with pytest.raises(LlmlabError, match=r"bad.txt: not UTF-8 at byte offset 17"):
        list(read_lines(path))
    assert list(read_lines(path, errors="replace")) == ["good line", "second \ufffd line"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"model": {"type": ', "corrupt or truncated"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2,, 3]", "corrupt"),
    ],
)
def test_read_json_errors(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_bytes(content)
    with pytest.raises(LlmlabError, match=message):
        read_json(path)


def test_read_json_missing_file(tmp_path):
    with pytest.raises(LlmlabError, match="missing.json: cannot read"):
        read_json(tmp_path / "missing.json")


def test_written_files_get_the_usual_mode(tmp_path):
    path = tmp_path / "m.txt"
    atomic_write_json(path, 1)
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.skipif(sys.platform == "win32", reason="no flock: the lock is a no-op there")
def test_exclusive_lock_makes_processes_take_turns(tmp_path):
    lock, held = tmp_path / ".lock", tmp_path / "held"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib; from llmlab.io import exclusive_lock\n"
            "with exclusive_lock(sys.argv[1]):\n"
            "    pathlib.Path(sys.argv[2]).touch(); time.sleep(1.0)",
            str(lock),
            str(held),
        ]
    )
    deadline = time.monotonic() + 60
    while not held.exists():
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.01)
    start = time.monotonic()
    with exclusive_lock(lock):  # (waits for the child's block to end)
        waited = time.monotonic() - start
    assert child.wait(timeout=60) == 0
    assert waited > 0.5, waited
