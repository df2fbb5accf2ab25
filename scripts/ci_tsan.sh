#!/usr/bin/env bash
# Builds the tests and the tool with ThreadSanitizer in their own build
# directory and runs the suites that drive the thread pool and the pipelined
# pack/unpack/verify (any data race report fails the run). The limits suite is
# left out: TSan's shadow memory defeats its peak-RSS bounds.
#
# Environment:
#   WCODEC_TSAN_BUILD  build directory (default build-tsan)
#   WCODEC_TSAN_JOBS   parallel build jobs (default: cores)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${WCODEC_TSAN_BUILD:-build-tsan}
JOBS=${WCODEC_TSAN_JOBS:-$(nproc 2>/dev/null || echo 2)}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

t0=$(date +%s)
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DWCODEC_CUDA=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target wcodec_tests wcodec
t1=$(date +%s)
echo "ci_tsan: build took $((t1 - t0)) s"

export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}
for suite in container capi cli safe_write corpus; do
  "$BUILD/tests/wcodec_tests" -ts="$suite"
done
echo "ci_tsan: tests took $(( $(date +%s) - t1 )) s"
