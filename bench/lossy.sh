#!/usr/bin/env bash
# Lossy quality on the corpus model: pack stories260K (F32) at --bits 4.25,
# 3.25 and 2.25, unpack, and score each against the original with
# ../shared/tools/kld_eval.py (mean KL divergence of next-token
# distributions over 16,384 positions; its defaults). Prints, per budget,
# bits per weight over the lossy (2-D) tensors with every byte counted (from
# inspect) beside the KLD, and the llama.cpp figures of spec'd reference.
# WCODEC_CALIB=1: also 1.6 bits, and every budget with a calibration file
# made by tools/calibrate.py (its defaults: 64 x 256 tokens sampled from the
# model with seed 4321, kld_eval's are numpy draws with 1234), packed
# with --calib (GPTQ); needs torch and transformers in the venv.
#   bench/lossy.sh [BUILD_DIR] [extra pack options...]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD=${1:-$ROOT/build}; shift || true
CORPUS=${WCODEC_CORPUS:-$ROOT/../shared/corpus}
TOOLS=${WCODEC_TOOLS:-$ROOT/../shared/tools}
REF=$CORPUS/stories260K_llama_hf_f32.safetensors
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
if [ ! -f "$REF" ] || [ ! -f "$TOOLS/kld_eval.py" ]; then echo "[SKIPPED] no corpus model or kld_eval.py"; exit 0; fi
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
echo "llama.cpp (data-free, as in the issue): Q4_K 4.5 bpw KLD 0.0826 | IQ4_XS 4.25 0.102 | Q3_K 3.44 0.542 | IQ3_S 3.44 0.672 | Q2_K 2.63 3.03 | IQ2_S 2.56 2.27"
echo "llama.cpp with imatrix: Q4_K 4.5 bpw KLD 0.0727 | IQ3_S 3.44 0.324 | IQ2_S 2.56 1.87 | IQ2_XXS 2.06 4.11"
budgets="4.25 3.25 2.25"
calib=()
if [ "${WCODEC_CALIB:-0}" = 1 ]; then
  "$PY" "$ROOT/tools/calibrate.py" "$REF" -o "$T/calib.safetensors" --threads 1 >/dev/null 2>&1
  calib=(--calib "$T/calib.safetensors")
  budgets="4.25 3.25 2.25 1.6"
fi
printf "%-8s %-10s %-10s %-8s %s\n" budget bpw kld top1 ppl
for b in $budgets; do
  "$BUILD/wcodec" pack "$REF" -o "$T/m.wcz" --bits "$b" -q -f "${calib[@]}" "$@"
  "$BUILD/wcodec" unpack "$T/m.wcz" -o "$T/m.safetensors" -q -f
  bpw=$("$BUILD/wcodec" inspect --json "$T/m.wcz" | "$PY" -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["lossy_bits_per_weight"])')
  line=$("$PY" "$TOOLS/kld_eval.py" "$REF" "$T/m.safetensors" | tail -1)
  kld=$(sed -E 's/.*kld=([^ ]+).*/\1/' <<<"$line"); top1=$(sed -E 's/.*top1=([^ ]+).*/\1/' <<<"$line")
  ppl=$(sed -E 's/.*ppl_cand=([^ ]+).*/\1/' <<<"$line")
  printf "%-8s %-10s %-10s %-8s %s\n" "$b" "$bpw" "$kld" "$top1" "$ppl"
done
