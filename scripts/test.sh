#!/usr/bin/env bash
# Builds (warnings are errors) and runs every test: the C++ suites (ctest),
# then the Python package's (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python
scripts/build.sh
(cd build && ctest --output-on-failure -j "$(nproc)")
scripts/test_python.sh
