#!/usr/bin/env bash
# Builds and installs the Python package (python/, pyproject.toml) into .venv
# and runs its tests. The build folder build-py/ persists, so a second run
# recompiles only what changed. Needs scripts/setup.sh --python first.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import nanobind, scikit_build_core, pytest" 2>/dev/null; then
  echo "test_python: .venv lacks nanobind, scikit-build-core or pytest (scripts/setup.sh --python installs them)"
  exit 1
fi
echo "test_python: building and installing the wcodec package into .venv"
# python -m pip: a venv that was copied or moved keeps its scripts' shebang (the
# old path), so .venv/bin/pip would install into the original venv
.venv/bin/python -m pip install -q --no-build-isolation --no-deps . >/dev/null
# -rs prints every skip's reason (torch or the corpus absent)
.venv/bin/python -m pytest python/tests -q -rs -p no:cacheprovider
