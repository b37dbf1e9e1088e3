"""A password planted in every storage URL a command takes never reaches stdout, stderr or a written file."""

from __future__ import annotations

import shlex

import pytest

from llmlab.errors import mask_secrets
from tests.hostile.conftest import assert_one_line_error, run_cli

PLANTED = "hunter2-PLANTED"
PG = f"postgresql://alice:{PLANTED}@127.0.0.1:1/events"  # port 1: refused at once
SERVE = "serve --experiment e --variant A=linear --variant B=linear --port 59999"
TUNE = "tune -o study --train train.csv --dev dev.csv --objective linear --quiet"

COMMANDS = [
    ("abtest report", f"abtest report --store {PG} --experiment exp --report r.html"),
    (
        "abtest report, postgres://",
        f"abtest report --store {PG.replace('postgresql', 'postgres')} --experiment exp",
    ),
    (
        "abtest report, bad port",
        f"abtest report --store postgresql://alice:{PLANTED}@127.0.0.1:notaport/db --experiment exp",
    ),
    (
        "abtest report, password with @",
        f"abtest report --store postgresql://alice:{PLANTED}@x@127.0.0.1:1/db --experiment exp",
    ),
    (
        "abtest report, unknown scheme",
        f"abtest report --store mysql://alice:{PLANTED}@127.0.0.1:1/db --experiment exp",
    ),
    (
        "abtest simulate --store",
        f"abtest simulate --url http://127.0.0.1:9 --rate A=0.1 --rate B=0.1 --store {PG}",
    ),
    (
        "abtest simulate --url",
        f"abtest simulate --url http://bob:{PLANTED}@127.0.0.1:9 --rate A=0.1 --rate B=0.1",
    ),
    ("serve --store", f"{SERVE} --store {PG}"),
    ("tune --storage", f"{TUNE} --storage {PG}"),
    ("tune --worker --storage", f"tune --worker --storage {PG} --quiet"),
    ("tune --storage not a URL", f"{TUNE} --storage alice:{PLANTED}@::nonsense"),
]


@pytest.mark.parametrize("args", [c[1] for c in COMMANDS], ids=[c[0] for c in COMMANDS])
def test_a_planted_password_is_never_printed_or_written(work, capsys, monkeypatch, args):
    monkeypatch.setattr("uvicorn.Server.run", lambda self, sockets=None: None)
    code, out, err = run_cli(capsys, *shlex.split(args))
    assert_one_line_error(code, err)
    assert PLANTED not in out + err
    for path in work.rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"postgresql://alice:{PLANTED}@db:5432/x", "postgresql://alice:***@db:5432/x"),
        (f"postgresql://alice:p@ss{PLANTED}@db/x: refused", "postgresql://alice:***@db/x: refused"),
        (f"host=db password={PLANTED} user=alice", "host=db password=*** user=alice"),
        (f"https://db/?user=a&password={PLANTED}&x=1", "https://db/?user=a&password=***&x=1"),
        ("sqlite:///runs/abtest.db", "sqlite:///runs/abtest.db"),
        ("postgresql://alice@db/x", "postgresql://alice@db/x"),
    ],
)
def test_mask_secrets(text, shown):
    assert mask_secrets(text) == shown
