"""The command line starts light: importing it loads neither torch nor numpy (each command imports what it
needs), so `llmlab --help` is quick and `llmlab demo` can pin its numerical kernels before they load."""

from __future__ import annotations

import subprocess
import sys


def test_command_line_imports_neither_torch_nor_numpy():
    code = "import sys, llmlab.cli, llmlab.demo.kernels; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
