#!/usr/bin/env bash
# Whole-tool comparison on a generated ~236 MiB (248 MB) BF16 Llama-shaped model:
# `wcodec unpack -T 1 -o - > /dev/null` against `zstd -d -T1 -c > /dev/null`
# of the same model compressed with zstd -3, run back to back, best of 5.
#   bench/unpack_vs_zstd.sh [build-dir]
set -euo pipefail
B=${1:-build}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
"$B/wcodec_gen_sample" "$d/m.safetensors" --dim 2048 --layers 1 --vocab 18000 --seed 7 >/dev/null
"$B/wcodec" pack "$d/m.safetensors" -o "$d/m.wcz" 2>/dev/null
zstd -q -3 -T1 "$d/m.safetensors" -o "$d/m.zst"
best() {  # best wall time of 5 runs of "$@", in seconds
  local b=999
  for _ in 1 2 3 4 5; do
    local s=$(date +%s.%N); "$@" >/dev/null; local e=$(date +%s.%N)
    b=$(awk -v b="$b" -v t="$(awk -v s="$s" -v e="$e" 'BEGIN{print e-s}')" 'BEGIN{print (t<b)?t:b}')
  done
  echo "$b"
}
wt=$(best "$B/wcodec" unpack -T 1 "$d/m.wcz" -o -)
zt=$(best zstd -d -T1 -c "$d/m.zst")
mt=$(best cat "$d/m.safetensors")
sz=$(stat -c %s "$d/m.safetensors"); ws=$(stat -c %s "$d/m.wcz"); zs=$(stat -c %s "$d/m.zst")
awk -v sz="$sz" -v ws="$ws" -v zs="$zs" -v wt="$wt" -v zt="$zt" -v mt="$mt" 'BEGIN {
  printf "model %.1f MiB BF16\n", sz/1048576
  printf "wcodec: %.2f%% of input, unpack -T1 %.3f s (%.2f GB/s)\n", 100*ws/sz, wt, sz/wt/1e9
  printf "zstd-3: %.2f%% of input, zstd -d -T1 %.3f s (%.2f GB/s)\n", 100*zs/sz, zt, sz/zt/1e9
  printf "cat:    %.3f s (%.2f GB/s)\n", mt, sz/mt/1e9
  printf "wcodec unpack is %.2fx as fast as zstd -d; size %.3f of zstd-3\n", zt/wt, ws/zs }'
