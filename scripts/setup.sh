#!/usr/bin/env bash
# Installs what wcodec needs to build and test, with apt-get, only when missing.
# Idempotent and non-interactive. Also creates .venv with the reference
# `safetensors` Python package (used by a test as a real client) when pip can.
# With --python (scripts/test.sh): also what the Python package builds and
# tests with (nanobind, scikit-build-core, pytest, ml_dtypes, torch,
# transformers), from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake ninja-build pkg-config libzstd-dev libxxhash-dev libcli11-dev doctest-dev zstd python3 python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import safetensors, numpy" 2>/dev/null; then
  if python3 -m venv .venv >/dev/null 2>&1 && .venv/bin/python -m pip install -q safetensors numpy >/dev/null 2>&1; then
    echo "setup: .venv ready (safetensors $(.venv/bin/python -c 'import safetensors; print(safetensors.__version__)'))"
  else
    echo "setup: could not prepare .venv with safetensors; the python-client test will skip"
  fi
fi

if [ "${1:-}" = "--python" ]; then
  py_pkgs=(nanobind scikit-build-core pytest ml_dtypes torch transformers)
  if ! .venv/bin/python -c "import nanobind, scikit_build_core, pytest, ml_dtypes, torch, transformers" 2>/dev/null; then
    echo "setup: installing ${py_pkgs[*]} into .venv (torch is large: a few minutes the first time)"
    .venv/bin/python -m pip install -q "${py_pkgs[@]}" >/dev/null 2>&1 ||
      echo "setup: could not install the Python test packages; scripts/test_python.sh will say what is missing"
  fi
fi
