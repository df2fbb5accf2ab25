#!/usr/bin/env bash
# Builds everything with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DWCODEC_SANITIZE=ON, g++ by default) in its own build directory and runs
# the whole ctest suite there, fuzz_regression included. Any sanitizer report
# fails the test that triggered it (UBSan does not recover; ASan aborts).
#
# Environment:
#   WCODEC_SANITIZE_BUILD  build directory (default build-sanitize)
#   WCODEC_SANITIZE_JOBS   parallel build and test jobs (default: cores)
#   CTEST_ARGS             extra ctest arguments (e.g. "-L fuzz_regression")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${WCODEC_SANITIZE_BUILD:-build-sanitize}
JOBS=${WCODEC_SANITIZE_JOBS:-$(nproc 2>/dev/null || echo 2)}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

t0=$(date +%s)
# -O1 keeps sanitized tests fast enough while keeping reports readable; the
# CUDA part is not sanitized.
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DWCODEC_SANITIZE=ON -DWCODEC_CUDA=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS"
t1=$(date +%s)
echo "ci_sanitize: build took $((t1 - t0)) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# shellcheck disable=SC2086
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 900 ${CTEST_ARGS:-}
echo "ci_sanitize: tests took $(( $(date +%s) - t1 )) s"
