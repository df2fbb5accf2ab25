#!/usr/bin/env bash
# Decoders agree across compilers and optimisation levels. Builds the tool
# (target wcodec_cli only, no CUDA) again with other compilers and flags, each
# in its own build-cc-NAME folder, then:
#   - packs the corpus model stories260K (F32, BF16, F16) at --bits 4.25 and
#     2.25, at 3.25 with --exact (whose unpacked file must be the original), and at 2.25 with
#     --refine 2 (every level checked by verify) without and with --exact,
#     with the default build's tool (build/wcodec), unpacks each container
#     with every build (the default one included) and compares the outputs
#     byte for byte (cmp), and runs `wcodec verify` with every build (it checks
#     the stored reconstruction hashes); prints "[SKIPPED] no corpus" for this
#     part when the corpus is absent;
#   - packs stories260K BF16 and Whisper tiny.en F16 lossless (float-ans-mixed:
#     zstd chunks and per-channel shifts) and checks the same, against the
#     original files; likewise Whisper cast to F8_E5M2 and F8_E4M3
#     (float-ans-pairs; bench/fp8_variant.py, with the venv's ml_dtypes);
#   - unpacks the lossy test vectors (tests/vectors/lossy_qrow.wcz,
#     lossy_mixed.wcz, lossy_outliers.wcz, lossy_inline23.wcz, lossy_vq.wcz, lossy_vq211*.wcz, lossy_inline_exact.wcz,
#     lossy_exact_top*.wcz; and
#     float_ans_mixed.wcz, float_ans_shift.wcz, float_ans_patch.wcz, float_ans_groups.wcz, float_ans_pairs.wcz, inline_exact.wcz) with every build, compares with
#     their .expected files, and verifies them with every build.
# Exits 1 on any difference or failure (after trying everything), 0 otherwise.
#
# Builds (WCODEC_CC_BUILDS, names separated by spaces; default clang-O0,
# gcc-O3 and clang-O3: clang at -O0 and -O3, g++ at -O3 twice, and the
# sanitizer builds' g++ -O1 and -O2 run the test suites; gcc-O0 on request,
# left out to keep .ci/run under 30 minutes; empty: the default build alone):
#   clang-O0  clang++, Debug, -O0 (assertions on)
#   clang-O3  clang++, Release, -O3
#   gcc-O0    g++, Debug, -O0
#   gcc-O3    g++, Release, -O3 -march=native (the default build is already
#             g++ -O3 for the baseline x86-64 ISA: this one lets the decoders'
#             loops use the machine's vector units, AVX2/AVX-512; FP
#             contraction stays off everywhere, as in every build)
# Environment:
#   WCODEC_REF_BUILD   the default build (default build/; built with
#                      scripts/build.sh when its tool is missing)
#   WCODEC_CORPUS_DIR  corpus folder (default ../shared/corpus)
#   WCODEC_CC_JOBS     parallel build jobs (default: cores)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REF_BUILD=${WCODEC_REF_BUILD:-build}
CORPUS=${WCODEC_CORPUS_DIR:-$ROOT/../shared/corpus}
JOBS=${WCODEC_CC_JOBS:-$(nproc 2>/dev/null || echo 2)}
BUILDS=${WCODEC_CC_BUILDS-clang-O0 gcc-O3 clang-O3}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

t0=$(date +%s)
if [ ! -x "$REF_BUILD/wcodec" ]; then
  if [ "$REF_BUILD" = build ]; then
    scripts/build.sh
  else
    echo "ci_decoders: $REF_BUILD/wcodec is missing" >&2
    exit 2
  fi
fi

# --- the other builds -----------------------------------------------------------
TOOLS=("$REF_BUILD/wcodec")
NAMES=("default($REF_BUILD)")
for name in $BUILDS; do
  case $name in
    clang-O0) args=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O0) ;;
    clang-O3) args=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-O3) ;;
    gcc-O0) args=(-DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O0) ;;
    gcc-O3) args=(-DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS=-O3 -march=native") ;;
    *) echo "ci_decoders: unknown build '$name' (clang-O0 clang-O3 gcc-O0 gcc-O3)" >&2; exit 2 ;;
  esac
  dir=build-cc-$name
  tb=$(date +%s)
  mkdir -p "$dir"
  log=$dir/ci_decoders.log
  # unity build (CMAKE_UNITY_BUILD: sources compiled a few to a translation
  # unit): half the compile time at -O0 (clang 40 -> 19 s), and a
  # different inlining picture from the default build's, which the
  # comparison welcomes
  if ! { cmake -S "$ROOT" -B "$dir" "${GEN[@]}" "${args[@]}" -DWCODEC_CUDA=OFF -DCMAKE_UNITY_BUILD=ON &&
         cmake --build "$dir" -j "$JOBS" --target wcodec_cli; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "ci_decoders: FAILED: the $name build failed (log: $log)" >&2
    exit 1
  fi
  echo "ci_decoders: built $dir in $(( $(date +%s) - tb )) s"
  TOOLS+=("$dir/wcodec")
  NAMES+=("$name")
done
t1=$(date +%s)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wcodec-ci-decoders.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail=0
bad() {
  echo "FAIL: $*" >&2
  fail=1
}

# Unpacks $1 with every build into $TMP/out.K, compares each output with the
# first build's (or with $3 when given), and verifies $1 with every build.
# $2 names the case in messages.
check_all() {
  local wcz=$1 what=$2 want=${3:-} k ok=1
  for k in "${!TOOLS[@]}"; do
    local out=$TMP/out.$k
    rm -f "$out"
    if ! "${TOOLS[$k]}" unpack -q "$wcz" -o "$out"; then
      bad "$what: unpack with ${NAMES[$k]} failed"; ok=0; continue
    fi
    local ref=${want:-$TMP/out.0}
    if [ -n "$want" ] || [ "$k" -gt 0 ]; then
      if ! cmp -s "$out" "$ref"; then
        bad "$what: ${NAMES[$k]} unpacks different bytes from ${want:-${NAMES[0]}} ($(cmp "$out" "$ref" 2>&1 | head -1))"
        ok=0
      fi
    fi
    if ! "${TOOLS[$k]}" verify -q "$wcz"; then
      bad "$what: verify with ${NAMES[$k]} failed"; ok=0
    fi
  done
  [ "$ok" = 1 ] && echo "ok   $what: ${#TOOLS[@]} builds unpack identical bytes ($(wc -c <"$TMP/out.0") B), verify passes"
  return 0
}

# --- the corpus model, packed lossy by the default build ---------------------------
have_corpus=1
for m in f32 bf16 f16; do
  [ -f "$CORPUS/stories260K_llama_hf_$m.safetensors" ] || have_corpus=0
done
if [ "$have_corpus" = 1 ]; then
  for m in f32 bf16 f16; do
    src=$CORPUS/stories260K_llama_hf_$m.safetensors
    for bits in 4.25 2.25; do
      wcz=$TMP/stories260K_$m-$bits.wcz
      what="stories260K ${m^^} --bits $bits"
      if ! "${TOOLS[0]}" pack -q --bits "$bits" "$src" -o "$wcz"; then
        bad "$what: pack failed"; continue
      fi
      # the container must hold lossy tensors, or the comparison proves little
      # (the listing is read whole: grep -q on a pipe may stop inspect early)
      if ! listing=$("${TOOLS[0]}" inspect "$wcz") || ! grep -q ' qrow ' <<<"$listing"; then
        bad "$what: no qrow tensor in the container"
      fi
      check_all "$wcz" "$what"
    done
    # --scheme codebook (spec/VQ.md): palettes, vector and additive books of real weights
    wcz=$TMP/stories260K_$m-codebook.wcz
    what="stories260K ${m^^} --bits 2.25 --scheme codebook"
    if "${TOOLS[0]}" pack -q --bits 2.25 --scheme codebook "$src" -o "$wcz"; then
      if ! listing=$("${TOOLS[0]}" inspect "$wcz") || ! grep -q ' vq ' <<<"$listing"; then
        bad "$what: no vq tensor in the container"
      fi
      check_all "$wcz" "$what"
    else
      bad "$what: pack failed"
    fi
    # --exact (container 2.7): the top level is the original, decoded by every build
    wcz=$TMP/stories260K_$m-exact.wcz
    what="stories260K ${m^^} --bits 3.25 --exact"
    if "${TOOLS[0]}" pack -q --bits 3.25 --exact "$src" -o "$wcz"; then
      check_all "$wcz" "$what" "$src"
    else
      bad "$what: pack failed"
    fi
    # --refine (container 2.8): the top is the last refinement level, which every build must
    # write alike (verify checks every level below it against its hash in every build); with
    # --exact above refinements, the original again
    for extra in "" "--exact"; do
      wcz=$TMP/stories260K_$m-refine$extra.wcz
      what="stories260K ${m^^} --bits 2.25 --refine 2 $extra"
      if "${TOOLS[0]}" pack -q --bits 2.25 --refine 2 $extra "$src" -o "$wcz"; then
        if [ -n "$extra" ]; then check_all "$wcz" "$what" "$src"; else check_all "$wcz" "$what"; fi
      else
        bad "$what: pack failed"
      fi
    done
  done
else
  echo "[SKIPPED] no corpus ($CORPUS): the stories260K containers are not checked"
fi

# --- lossless with the adaptive codec (float-ans-mixed: zstd chunks, per-channel
# shifts; float-ans-groups: byte planes) on real weights, packed by the default build
for src in "$CORPUS/stories260K_llama_hf_bf16.safetensors" "$CORPUS/whisper_tiny_en_f16.safetensors"; do
  [ -f "$src" ] || { echo "[SKIPPED] no $src"; continue; }
  wcz=$TMP/$(basename "$src").wcz
  what="$(basename "$src") lossless"
  if ! "${TOOLS[0]}" pack -q "$src" -o "$wcz"; then
    bad "$what: pack failed"; continue
  fi
  if ! listing=$("${TOOLS[0]}" inspect "$wcz") || ! grep -q 'float-ans-mixed' <<<"$listing"; then
    bad "$what: no float-ans-mixed tensor in the container"
  fi
  if ! grep -q 'float-ans-groups' <<<"$listing"; then  # byte planes (codec 7): the embedding's untrained rows
    bad "$what: no float-ans-groups tensor in the container"
  fi
  check_all "$wcz" "$what" "$src"
done

# --- FP8 pairs (codec 8) on real weights: Whisper tiny.en cast to F8_E5M2 and
# F8_E4M3 as FP8 checkpoints are published (bench/fp8_variant.py; needs the
# venv's ml_dtypes), packed by the default build
PY=${WCODEC_PYTHON:-$ROOT/.venv/bin/python}
wh=$CORPUS/whisper_tiny_en_f16.safetensors
if [ -f "$wh" ] && "$PY" -c 'import ml_dtypes' 2>/dev/null; then
  for dt in F8_E5M2 F8_E4M3; do
    src=$TMP/whisper_$dt.safetensors
    what="Whisper tiny.en as $dt lossless"
    if ! "$PY" bench/fp8_variant.py "$wh" "$src" --dtype "$dt" >/dev/null || ! "${TOOLS[0]}" pack -q "$src" -o "$src.wcz"; then
      bad "$what: variant or pack failed"; continue
    fi
    if ! listing=$("${TOOLS[0]}" inspect "$src.wcz") || ! grep -q 'float-ans-pairs' <<<"$listing"; then
      bad "$what: no float-ans-pairs tensor in the container"
    fi
    check_all "$src.wcz" "$what" "$src"
  done
else
  echo "[SKIPPED] FP8 pairs on real weights: no $wh or no ml_dtypes in $PY"
fi

# --- the test vectors of lossy tensors and of the adaptive codec ---------------------
for v in lossy_qrow lossy_mixed lossy_outliers lossy_inline23 lossy_vq lossy_vq211 lossy_vq211_additive lossy_inline_exact lossy_refine lossy_refine_exact lossy_refine_flags lossy_order float_ans_mixed float_ans_shift \
  float_ans_patch float_ans_groups float_ans_pairs inline_exact lossy_exact_top lossy_exact_top_wide lossy_exact_top_tw lossy_exact_top_trim; do
  check_all "tests/vectors/$v.wcz" "vector $v" "tests/vectors/$v.expected"
done

t2=$(date +%s)
echo "ci_decoders: builds $((t1 - t0)) s, checks $((t2 - t1)) s (${NAMES[*]})"
if [ "$fail" -ne 0 ]; then
  echo "ci_decoders: FAILED" >&2
  exit 1
fi
echo "ci_decoders: all builds agree"
