"""Optional extras: a command whose extra is missing says which `pip install` to run (one line, exit 2);
the core API works without any of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmlab.cli import main
from llmlab.errors import LlmlabError, require_extra


def test_require_extra_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "starlette", None)  # None in sys.modules: the import fails
    with pytest.raises(LlmlabError, match=r"pip install 'llmlab\[serve\]'"):
        require_extra("starlette", "serve", "llmlab serve")


@pytest.mark.parametrize(
    "module, args, extra",
    [
        ("uvicorn", ["serve", "--experiment", "e", "--variant", "a=x", "--variant", "b=y"], "serve"),
        ("optuna", ["tune", "--objective", "linear", "-o", "OUT"], "tune"),
        (
            "psycopg",
            ["abtest", "report", "--store", "postgresql://u@127.0.0.1:1/db", "--experiment", "e"],
            "postgres",
        ),
    ],
)
def test_missing_extra_is_one_line(monkeypatch, capsys, tmp_path, module, args, extra):
    monkeypatch.setitem(sys.modules, module, None)
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"llmlab: error: {err[0].split('error: ', 1)[1]}"]
    assert f"pip install 'llmlab[{extra}]'" in err[0]


def test_core_api_without_extras(tmp_path):
    """Tokenizer training through the top-level API with the server, search and driver packages unimportable."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 50, encoding="utf-8")
    code = (
        "import sys\n"
        "for m in ('starlette', 'uvicorn', 'optuna', 'psycopg'): sys.modules[m] = None\n"
        "import llmlab\n"
        f"tok = llmlab.train_tokenizer({str(corpus)!r}, model='unigram', vocab_size=40)\n"
        "print(tok.encode('the lazy dog').tokens)\n"
        "assert 'torch' not in sys.modules, 'training a tokenizer should not import torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dog" in done.stdout
