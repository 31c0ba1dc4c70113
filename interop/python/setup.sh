#!/usr/bin/env bash
# Creates (once) the virtualenv of the Python oracles in interop/python/.venv and installs the
# pinned requirements; reruns are no-ops until requirements.txt changes. Prints nothing on a no-op.
# Override the interpreter with PYTHON=..., the location with SEALKIT_PY_VENV=...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${SEALKIT_PY_VENV:-$here/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
echo "$want" > "$stamp"
