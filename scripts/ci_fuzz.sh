#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-DWCODEC_FUZZ=ON: fuzzer + ASan +
# UBSan) and runs each for a bounded time on its seed corpus (generated from
# small models made with the library, plus the committed fuzz/corpus and
# fuzz/regressions inputs). Prints executions per target and in total.
# Exits non-zero if a target crashes; the crashing input is kept under
# $WCODEC_FUZZ_OUT/artifacts (add it to fuzz/regressions/TARGET/ with the fix).
#
# Environment:
#   WCODEC_FUZZ_SECONDS   seconds per target (default 6: 13 targets, 2 at once, ~45 s; keeps .ci/run under 30 min)
#   WCODEC_FUZZ_JOBS      targets run at once (default: number of cores, at most 2)
#   WCODEC_FUZZ_BUILD     build directory (default build-fuzz)
#   WCODEC_FUZZ_BUILD_TYPE  CMake build type (default RelWithDebInfo)
#   WCODEC_FUZZ_OUT       corpora, logs and crash artifacts (default $WCODEC_FUZZ_BUILD/fuzz-run)
#   WCODEC_FUZZ_TARGETS   space-separated subset of targets
#   WCODEC_FUZZ_NONFATAL  1: report crashes but exit 0
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER=${WCODEC_FUZZ_SECONDS:-6}
NPROC=$(nproc 2>/dev/null || echo 2)
JOBS=${WCODEC_FUZZ_JOBS:-$(( NPROC < 2 ? 1 : 2 ))}
BUILD=${WCODEC_FUZZ_BUILD:-build-fuzz}
OUT=${WCODEC_FUZZ_OUT:-$BUILD/fuzz-run}
TARGETS=${WCODEC_FUZZ_TARGETS:-"container stream container_struct stream_struct safetensors shard_index decode_raw decode_zstd decode_fans roundtrip_raw roundtrip_zstd roundtrip_fans exact_top"}

# libFuzzer comes with clang's runtime; install both when missing.
if ! command -v clang++ >/dev/null || ! dpkg -s libclang-rt-dev >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null ||
    { DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null; }
fi
CC_BIN=$(command -v clang || command -v clang-14 || true)
CXX_BIN=$(command -v clang++ || command -v clang++-14 || true)
if [[ -z "$CXX_BIN" ]]; then
  echo "ci_fuzz: clang++ not found (libFuzzer needs clang)" >&2
  exit 1
fi
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

t0=$(date +%s)
# -g1: line tables (a crash's stack still names file and line), faster to compile than -g;
# -O1 (with fuzz/CMakeLists.txt's smaller unity batches): the build in 106 s
# against 133 s at -O2 with batches of 8 (one machine, one after the other);
# a few seconds of fuzzing per target find as much either way
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE="${WCODEC_FUZZ_BUILD_TYPE:-RelWithDebInfo}" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_CXX_COMPILER="$CXX_BIN" -DWCODEC_FUZZ=ON -DWCODEC_CUDA=OFF -DCMAKE_UNITY_BUILD=ON >/dev/null  # unity: as ci_sanitize.sh
cmake --build "$BUILD" --target wcodec_fuzz_all -j "$NPROC"
t1=$(date +%s)
echo "ci_fuzz: build took $((t1 - t0)) s"

rm -rf "$OUT"
mkdir -p "$OUT/seeds" "$OUT/artifacts" "$OUT/logs"
ASAN_OPTIONS=detect_leaks=0 "$BUILD/fuzz/wcodec_fuzz_seeds_inst" "$OUT/seeds" >/dev/null

run_one() {
  local t=$1
  local corpus="$OUT/corpus/$t"
  mkdir -p "$corpus" "$OUT/artifacts/$t"
  local dirs=("$corpus" "$OUT/seeds/$t")
  [[ -d fuzz/corpus/$t ]] && dirs+=("fuzz/corpus/$t")
  [[ -d fuzz/regressions/$t ]] && dirs+=("fuzz/regressions/$t")
  # whole containers (1.0, 1.1 and 2.0 with lossy tensors, good and bad) for the container readers
  [[ $t == container || $t == stream ]] && dirs+=("tests/vectors" "tests/vectors/bad")
  # New inputs go to the first directory (a scratch corpus), never into the tree.
  # Failures: a crash, a run over 1 s (-timeout=1), a single allocation of
  # 256 MiB or more (-malloc_limit_mb=256: the targets decode at most
  # fuzz_common.h's caps, so a larger allocation is a size claim a reader
  # believed before the bytes arrived) or 2 GiB of RSS.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$BUILD/fuzz/wcodec_fuzz_$t" -max_total_time="$SECONDS_PER" -timeout=1 -rss_limit_mb=2048 \
    -malloc_limit_mb=256 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$t/" "${dirs[@]}" >"$OUT/logs/$t.log" 2>&1
}

declare -A PIDS
failed=()
running=0
for t in $TARGETS; do
  run_one "$t" &
  PIDS[$t]=$!
  running=$((running + 1))
  if (( running >= JOBS )); then
    wait -n || true
    running=$((running - 1))
  fi
done
for t in $TARGETS; do
  if ! wait "${PIDS[$t]}"; then failed+=("$t"); fi
done

total=0
printf '%-18s %12s %10s %s\n' target executions exec/s result
for t in $TARGETS; do
  log="$OUT/logs/$t.log"
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  if [[ -z "$execs" ]]; then
    # crashed before the final stats: take the last progress line
    execs=$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | tail -1 || true)
  fi
  execs=${execs:-0}
  total=$((total + execs))
  res=ok
  [[ " ${failed[*]:-} " == *" $t "* ]] && res="CRASH (see $log, artifacts in $OUT/artifacts/$t)"
  printf '%-18s %12s %10s %s\n' "$t" "$execs" "${rate:-?}" "$res"
done
echo "ci_fuzz: total executions $total in $(( $(date +%s) - t1 )) s of fuzzing (${SECONDS_PER} s per target, $JOBS at once)"

if (( ${#failed[@]} )); then
  for t in "${failed[@]}"; do
    echo "---- $t: end of log ----"
    tail -40 "$OUT/logs/$t.log"
  done
  if [[ "${WCODEC_FUZZ_NONFATAL:-0}" == 1 ]]; then
    echo "ci_fuzz: crashes in: ${failed[*]} (non-fatal run)"
    exit 0
  fi
  echo "ci_fuzz: crashes in: ${failed[*]}" >&2
  exit 1
fi
