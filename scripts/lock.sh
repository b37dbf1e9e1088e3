#!/usr/bin/env bash
# Regenerate requirements.lock: install the test extras (which include every runtime extra) into a fresh venv,
# unconstrained but for torch, and freeze the exact versions pip chose.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0 -e '.[test]'
{
    echo "# Exact versions of every dependency, as the install commands use them (pip's -c constraints)."
    echo "# Regenerate with: bash scripts/lock.sh (a fresh venv, the test extras, pip freeze)."
    "$venv/bin/pip" freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+cpu$/torch==\1/'
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
