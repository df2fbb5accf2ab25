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
# When build/ (scripts/build.sh, which test.sh runs first) has the packaged
# static library, the extension links it (built in build/python, apart from
# build-py/ so that a plain `pip install .` never inherits the setting): the
# library is compiled once per test run, not twice (about 100 s on 2 cores).
pip_args=()
if [ -f build/CMakeCache.txt ] && cmake --build build --target wcodec_static >/dev/null &&
   [ -f build/package/libwcodec.a ]; then
  pip_args=(-C build-dir=build/python -C build.targets=_wcodec
            -C cmake.define.WCODEC_PYTHON_LIB="$PWD/build/package/libwcodec.a")
fi
.venv/bin/python -m pip install -q --no-build-isolation --no-deps ${pip_args[@]+"${pip_args[@]}"} . >/dev/null
# -rs prints every skip's reason (torch or the corpus absent)
.venv/bin/python -m pytest python/tests -q -rs -p no:cacheprovider
