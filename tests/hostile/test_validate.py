"""The validation layer itself: output paths against inputs, undo on failure, strict CSV and JSON, numeric
ranges on every option, and `--errors replace` wherever an error suggests it."""

from __future__ import annotations

import math
import shlex

import pytest
import typer

from llmlab.cli import app
from llmlab.csvfile import csv_rows
from llmlab.errors import LlmlabError, RunStopped
from llmlab.io import MAX_JSON_DEPTH, loads_json, too_deep
from llmlab.validate import check_output, undo_on_failure
from tests.hostile.conftest import run_cli


@pytest.mark.parametrize(
    ("out", "kind", "needle"),
    [
        ("data/train.csv", "file", "would destroy"),
        ("data", "folder", "contains the input"),
        (".", "folder", "contains the input"),
        ("data/train.csv/x", "file", "does not exist"),
        ("model/sub", "folder", "inside the input"),
        ("link.csv", "file", "would destroy"),  # a symlink to the input
        ("model", "file", "is a folder"),
        ("data/train.csv", "folder", "not a folder"),
        ("missing/out.json", "file", "does not exist"),
    ],
)
def test_check_output_refuses(tmp_path, monkeypatch, out, kind, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("text,label\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "data" / "train.csv")
    with pytest.raises(LlmlabError, match=needle):
        check_output(out, ["data/train.csv", "model"], kind)


def test_check_output_accepts_a_sibling_and_a_new_folder_with_parents(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.csv").write_text("x")
    assert check_output("out.json", ["train.csv"]).name == "out.json"
    assert check_output("runs/demo", kind="folder", parents=True).name == "demo"


def test_undo_on_failure_removes_only_what_the_block_created(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "kept.txt").write_text("mine")
    with pytest.raises(LlmlabError), undo_on_failure(tmp_path / "run", tmp_path / "new"):
        (tmp_path / "run" / "cache.npy").write_text("new")
        (tmp_path / "run" / "sub").mkdir()
        (tmp_path / "run" / "sub" / "x").write_text("new")
        (tmp_path / "new").mkdir()
        raise LlmlabError("refused")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept.txt", "run"]


def test_undo_on_failure_keeps_a_run_that_stopped_with_a_checkpoint(tmp_path):
    with pytest.raises(RunStopped), undo_on_failure(tmp_path / "run"):
        (tmp_path / "run").mkdir()
        raise RunStopped("diverged", kept=tmp_path / "run")
    assert (tmp_path / "run").is_dir()
    with pytest.raises(KeyboardInterrupt), undo_on_failure(tmp_path / "other"):
        (tmp_path / "other").mkdir()
        raise KeyboardInterrupt  # an interrupted run keeps what it has, to resume
    assert (tmp_path / "other").is_dir()


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 64 + "]" * 64, False),
        ("[" * 65 + "]" * 65, True),
        ("[" + "[]," * 100 + "[]]", False),  # many brackets, shallow
        ('["' + "[" * 100 + '"]', False),  # brackets inside a string
        ('["\\"' + "[" * 100 + '"]', False),  # after an escaped quote, still inside the string
    ],
)
def test_too_deep(text, deep):
    assert too_deep(text) is deep


def test_loads_json_refuses_deep_nesting_before_parsing():
    with pytest.raises(LlmlabError, match="nested more than"):
        loads_json("[" * 1_000_000 + "]" * 1_000_000, "x.json")
    assert loads_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, "x.json") is not None
    assert math.isnan(loads_json("[NaN]", "x.json")[0])


def test_csv_rows_number_multiline_rows_by_their_first_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"two\nlines",1\n\nlast,0\n', encoding="utf-8")
    assert list(csv_rows(path)) == [
        (2, {"text": "two\nlines", "label": "1"}),
        (5, {"text": "last", "label": "0"}),
    ]


def _numeric_options():
    command = typer.main.get_command(app)
    stack = [(command.name, command)]
    while stack:
        path, group = stack.pop()
        for name, sub in getattr(group, "commands", {}).items():
            stack.append((f"{path} {name}", sub))
        for param in getattr(group, "params", []):
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            if annotation in (int, float) or str(annotation) in ("int | None", "float | None"):
                yield f"{path} {param.opts[-1]}", annotation, param


def test_every_numeric_option_is_range_checked_at_parse_time():
    missing = [
        name
        for name, annotation, param in _numeric_options()
        if param.min is None or (param.max is None and "float" in str(annotation))
    ]
    assert missing == []
    assert len(list(_numeric_options())) > 60


@pytest.mark.parametrize(
    "args",
    [
        "tokenizer train --quiet --vocab-size 300 --errors replace -o t.json latin1.txt",
        "tokenizer encode --tokenizer tok.json --input latin1.txt --errors replace",
        "tokenizer decode --tokenizer tok.json --input latin1.txt --errors replace",
        "pretrain --train latin1.txt --train corpus.txt --valid corpus.txt --tokenizer tok.json -o lm --errors replace "
        "--quiet --steps 1 --context 8 --batch-size 2 --d-model 16 --n-layers 1 --n-heads 2",
    ],
    ids=["tokenizer train", "tokenizer encode", "tokenizer decode", "pretrain"],
)
def test_errors_replace_exists_where_an_error_suggests_it(work, capsys, args):
    code, _, err = run_cli(capsys, *shlex.split(args))
    assert "not UTF-8" not in err
    assert code == 0 or "integer ids" in err  # decode: the replaced text is still no ids
