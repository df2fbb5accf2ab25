#!/usr/bin/env bash
# Configures and builds into build/ (Release, warnings are errors). Extra
# arguments go to cmake. The demo and the test command both build through
# here with the same settings, so running one after the other rebuilds
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
[ -f build/CMakeCache.txt ] && gen=()
cmake -S . -B build "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DWCODEC_WERROR=ON "$@" >/dev/null
cmake --build build -j "$(nproc)"
