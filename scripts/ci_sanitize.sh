#!/usr/bin/env bash
# Sanitizer builds, each in its own build directory:
#   ci_sanitize.sh [address]  AddressSanitizer + UndefinedBehaviorSanitizer
#                             (-DWCODEC_SANITIZE=ON, g++ by default) on what
#                             the tests run; the whole ctest suite,
#                             fuzz_regression included. UBSan does not recover; ASan aborts.
#   ci_sanitize.sh thread     ThreadSanitizer on the tests and the tool; the
#                             suites that drive the thread pool and the
#                             pipelined pack/unpack/verify (limits is left out:
#                             TSan's shadow memory defeats its peak-RSS bounds).
# Any sanitizer report fails the run.
#
# Environment:
#   WCODEC_SANITIZE_BUILD  build directory (default build-sanitize / build-tsan)
#   WCODEC_SANITIZE_JOBS   parallel build and test jobs (default: cores)
#   CTEST_ARGS             extra ctest arguments for address (e.g. "-L fuzz_regression")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-address}
case "$MODE" in
  address) DEFAULT_BUILD=build-sanitize
           # the test sources at -O0 (they compile in about half the time;
           # the library under test keeps -O1)
           FLAGS=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DWCODEC_SANITIZE=ON
                  -DWCODEC_TEST_COMPILE_OPTIONS=-O0)
           # what ctest runs (the suites, the tool, the sample generator the
           # python_client suite drives, the fuzz regression replayer): the
           # benchmarks and the second, packaged build of the library would
           # add minutes of compiling and no test
           TARGETS=(--target wcodec_tests wcodec_cli wcodec_gen_sample wcodec_fuzz_replay) ;;
  thread)  DEFAULT_BUILD=build-tsan
           FLAGS=(-DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread"
                  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG")
           # only the test files of the suites run below (SUITES): the others
           # would be compiled with TSan for nothing (about a third of the build)
           SUITES=(container capi cli safe_write corpus chunk_windows refine)
           # the test sources at -O1 (the library keeps -O2)
           FLAGS+=(-DWCODEC_TEST_COMPILE_OPTIONS=-O1)
           FLAGS+=("-DWCODEC_TEST_FILES=$(IFS=';'; echo "${SUITES[*]}")")
           TARGETS=(--target wcodec_tests wcodec) ;;
  *) echo "usage: ci_sanitize.sh [address|thread]" >&2; exit 2 ;;
esac
BUILD=${WCODEC_SANITIZE_BUILD:-$DEFAULT_BUILD}
JOBS=${WCODEC_SANITIZE_JOBS:-$(nproc 2>/dev/null || echo 2)}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

t0=$(date +%s)
# unity build (CMAKE_UNITY_BUILD: each target's sources compiled a few to a
# translation unit): the ASan build in 236 s against 311 s one unit per file
# (same machine, one after the other). The default build (scripts/build.sh)
# stays one unit per file, which is what catches a source that lacks an
# include.
# -O1 keeps sanitized tests fast enough while keeping reports readable; -g1
# (line tables: reports still name file and line) compiles faster than -g;
# the CUDA part is not sanitized.
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${FLAGS[@]}" -DWCODEC_CUDA=OFF -DCMAKE_UNITY_BUILD=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS" ${TARGETS[@]+"${TARGETS[@]}"}
t1=$(date +%s)
echo "ci_sanitize $MODE: build took $((t1 - t0)) s"

if [ "$MODE" = address ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  # shellcheck disable=SC2086
  ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 900 ${CTEST_ARGS:-}
else
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}
  for suite in "${SUITES[@]}"; do
    "$BUILD/tests/wcodec_tests" -ts="$suite"
  done
fi
echo "ci_sanitize $MODE: tests took $(( $(date +%s) - t1 )) s"
