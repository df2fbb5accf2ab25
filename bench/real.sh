#!/usr/bin/env bash
# Real weights, side by side with zstd: every file in ../shared/corpus and its
# converted variants (BF16, F16, F32 via ../shared/tools/convert_dtype.py,
# which needs numpy: scripts/setup.sh makes .venv with it; F8_E4M3 and
# F8_E5M2 of the files of 1 MB or more via bench/fp8_variant.py, which needs
# ml_dtypes: scripts/setup.sh --python). For each file:
#   1. the whole tool: `wcodec pack` size against zstd -3 and zstd -19 of the
#      same file (whole-file percentages);
#   2. wcodec_bench: bits per weight, encode/decode GB/s at 1 and all threads
#      beside zstd -3 and memcpy, in the same process;
#   3. float_ans_bench --no-gen --quick: the float codec alone against the
#      per-tensor order-0 entropy (h_values) and H(exponent)+raw bits.
# Corpus files and conversions stay out of the repository (a temporary dir).
#   bench/real.sh [build-dir] [corpus-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
C=${2:-../shared/corpus}
TOOLS=$(dirname "$C")/tools
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
[ -d "$C" ] || { echo "real.sh: no corpus at $C; nothing to measure" >&2; exit 0; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
files=()
for f in "$C"/*.safetensors; do
  files+=("$f")
  base=$(basename "$f" .safetensors)
  for dt in BF16 F16 F32; do
    case "$base" in *_"${dt,,}") continue ;; esac  # already that dtype
    out="$d/${base}__as_${dt,,}.safetensors"
    if "$PY" "$TOOLS/convert_dtype.py" "$f" "$out" --dtype "$dt" >/dev/null 2>&1; then files+=("$out"); fi
  done
  # FP8 as published (2-D weights scaled per tensor, bench/fp8_variant.py;
  # needs ml_dtypes) of the files of at least 1 MB
  if [ "$(stat -c %s "$f")" -ge 1000000 ]; then
    for dt in F8_E4M3 F8_E5M2; do
      out="$d/${base}__as_${dt,,}.safetensors"
      if "$PY" bench/fp8_variant.py "$f" "$out" --dtype "$dt" >/dev/null 2>&1; then files+=("$out")
      else echo "[SKIPPED] $dt variant of $(basename "$f"): bench/fp8_variant.py needs ml_dtypes (scripts/setup.sh --python)"; fi
    done
  fi
done
printf '%-52s %10s %8s %8s %8s\n' file bytes wcodec zstd-3 zstd-19
for f in "${files[@]}"; do
  sz=$(stat -c %s "$f")
  "$B/wcodec" pack -q -f "$f" -o "$d/x.wcz"
  ws=$(stat -c %s "$d/x.wcz")
  z3=$(zstd -q -3 -T1 -c "$f" | wc -c)
  z19=$(zstd -q -19 -T1 -c "$f" | wc -c)
  awk -v n="$(basename "$f")" -v sz="$sz" -v ws="$ws" -v z3="$z3" -v z19="$z19" \
    'BEGIN { printf "%-52s %10d %7.2f%% %7.2f%% %7.2f%%\n", n, sz, 100*ws/sz, 100*z3/sz, 100*z19/sz }'
done
for f in "${files[@]}"; do
  echo "== $(basename "$f")"
  "$B/wcodec_bench" "$f" | sed 's/^/  /'
  "$B/float_ans_bench" --no-gen --quick "$f" | grep -E "^==|payload|h_values|h_exp_bound|decode" | sed 's/^/  /'
done
