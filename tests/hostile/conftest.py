"""Fixtures of the hostile-input tests: one folder of tiny, valid artefacts and the hostile files beside them,
built once per session and copied for each test, plus a snapshot of a folder's files to prove nothing changed."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from llmlab.abtest.store import open_store
from llmlab.cli import main
from llmlab.model import precision
from llmlab.model.checkpoint import save_model
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.stdlib_text import demo_corpus
from llmlab.tokenizer.pipeline import Tokenizer

DEEP = "[" * 200_000 + "]" * 200_000  # JSON nested 200,000 deep


def _csv(path: Path, rows: list[list], header=("text", "label")) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _tiny_base(folder: Path, tokenizer: Path, seed: int = 0) -> None:
    """A random 1-layer encoder (weights from `seed`) with the fixture tokenizer: a valid --base that
    fine-tunes in a second. Seeded, so that two bases differ whatever the global RNG went through before."""
    torch.manual_seed(seed)
    tok = Tokenizer.load(tokenizer)
    config = ModelConfig(
        tok.vocab_size,
        d_model=16,
        n_layers=1,
        n_heads=2,
        d_ff=32,
        causal=False,
        positional="learned",
        max_seq_len=64,
    )
    save_model(folder, Transformer(config), tok)


def _valid(root: Path, lines: list[str]) -> None:
    (root / "corpus.txt").write_text("\n".join(lines[:400]) + "\n", encoding="utf-8")
    rows = [[line[:60], i % 2] for i, line in enumerate(lines[:64])]
    _csv(root / "train.csv", rows)
    _csv(root / "dev.csv", [[line[:60], i % 2] for i, line in enumerate(lines[64:96])])
    assert main(["tokenizer", "train", "--vocab-size", "300", "--quiet", "-o", "tok.json", "corpus.txt"]) == 0
    _tiny_base(root / "base", root / "tok.json")
    assert main(["baseline", "train.csv", "-o", "linear"]) == 0
    (root / "run").mkdir()
    history = [{"step": s, "train_loss": 1.0 / s, "dev_loss": 1.1 / s} for s in (1, 2, 3)]
    (root / "run" / "history.json").write_text(json.dumps({"history": history}), encoding="utf-8")
    log = open_store(root / "events.db")
    log.create_experiment("exp", {"A": 0.5, "B": 0.5}, {"A": "a", "B": "b"})
    log.close()


def _hostile(root: Path, lines: list[str]) -> None:
    (root / "latin1.txt").write_bytes("plain line\ncaf\xe9 au lait\n".encode("latin-1"))
    (root / "latin1.csv").write_bytes("text,label\ncaf\xe9,1\nok,0\n".encode("latin-1"))
    (root / "oneline.txt").write_text("hello\n", encoding="utf-8")
    (root / "deep.json").write_text(DEEP, encoding="utf-8")
    (root / "deep.jsonl").write_text('{"text": "a", "label": ' + DEEP + "}\n", encoding="utf-8")
    (root / "trunc.json").write_text(
        '{"version": "1.0", "model": {"type": "BPE", "vocab": {"a"', encoding="utf-8"
    )
    (root / "array.json").write_text("[]", encoding="utf-8")
    (root / "existing.txt").write_text("a file where a folder is expected\n", encoding="utf-8")
    (root / "adir").mkdir()
    good = [[line[:60], i % 2] for i, line in enumerate(lines[:64])]
    _csv(root / "biglabel.csv", good[:-1] + [["one huge label", 1_000_000_000]])
    _csv(root / "neglabel.csv", good[:-1] + [["a negative label", -3]])
    _csv(root / "textlabel.csv", good[:-1] + [["a word label", "positive"]])
    _csv(root / "emptytext.csv", good[:-1] + [["", 1]])
    _csv(root / "punct.csv", [["!!! ...", 0], ["?? ,,", 1], ["-- ;", 0], ["... !!", 1]])
    _csv(root / "three.csv", [[line[:60], i % 3] for i, line in enumerate(lines[:90])])
    assert main(["baseline", "three.csv", "-o", "linear3"]) == 0  # three classes: no ensemble with linear/
    (root / "dup.csv").write_text("text,text,label\nfirst,second,1\nthird,fourth,0\n", encoding="utf-8")
    (root / "ragged.csv").write_text("text,label\na,1\nb,0,lost field\n", encoding="utf-8")
    (root / "cr.csv").write_bytes(b"text,label\ra,1\rb,0\r")
    (root / "unterminated.csv").write_text('text,label\na,1\n"b,0\nc,1\n', encoding="utf-8")
    for name, history in {
        "deeprun": None,
        "strrun": {"history": [{"train_loss": "low", "dev_loss": 1.0}] * 3},
        "listrun": [],
    }.items():
        (root / name).mkdir()
        text = DEEP if history is None else json.dumps(history)
        (root / name / "history.json").write_text(text, encoding="utf-8")
    (root / "latin1run").mkdir()
    (root / "latin1run" / "history.json").write_bytes(b'{"history": "\xe9"}')
    shutil.copytree(root / "linear", root / "badlinear")
    config = json.loads((root / "badlinear" / "baseline.json").read_text(encoding="utf-8"))
    config["labels"] = "not a list"
    (root / "badlinear" / "baseline.json").write_text(json.dumps(config), encoding="utf-8")
    (root / "garbage.db").write_bytes(b"this is not a database at all" * 100)
    other = sqlite3.connect(root / "other.db")
    other.execute("CREATE TABLE notes (x TEXT)")
    other.commit()
    other.close()
    (root / "cov_ragged.csv").write_text("user_id,value\nu1,1.0,extra\n", encoding="utf-8")
    (root / "cov_inf.csv").write_text("user_id,value\nu1,inf\n", encoding="utf-8")
    (root / "preds_bad.csv").write_text("text,label,pred,prob_0,prob_1\nx,1,0,0.2,0.9\n", encoding="utf-8")


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Path:
    """The session's template folder: valid artefacts (corpus, tok.json, base/, linear/, train/dev CSVs,
    run/history.json, events.db) and the hostile files the table refers to."""
    root = tmp_path_factory.mktemp("hostile-assets")
    lines = demo_corpus()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        _valid(root, lines)
        _hostile(root, lines)
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def work(assets, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the assets as the current folder."""
    folder = tmp_path / "work"
    shutil.copytree(assets, folder, symlinks=True)
    monkeypatch.chdir(folder)
    monkeypatch.setattr(precision, "_announced", set())  # as in a fresh process: "auto" is announced again
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` (relative path -> sha256 of the content, or "dir")."""
    result = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            result[os.path.relpath(os.path.join(root, name), folder)] = "dir"
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                result[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return result


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`llmlab ARGS` in process: (exit status, stdout, stderr)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, needle: str = "") -> None:
    """Exit status 2 and exactly one stderr line, `llmlab: error: ...`, containing `needle`."""
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and err.startswith("llmlab: error: "), err
    assert needle in err, (needle, err)
