#!/usr/bin/env bash
# The main job, end to end: install, build, generate a sample Llama-shaped BF16
# model, pack it, inspect it, verify it, unpack it, compare bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
W=build/wcodec
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
build/wcodec_gen_sample "$d/model.safetensors" --dim 512 --layers 2 --vocab 4096 --seed 1
$W pack "$d/model.safetensors"
$W inspect "$d/model.safetensors.wcz" | tail -n 4
$W verify "$d/model.safetensors.wcz" --against "$d/model.safetensors"
mv "$d/model.safetensors" "$d/original.safetensors"
$W unpack "$d/model.safetensors.wcz"
a=$(sha256sum < "$d/original.safetensors" | cut -d' ' -f1)
b=$(sha256sum < "$d/model.safetensors" | cut -d' ' -f1)
in=$(stat -c %s "$d/original.safetensors"); out=$(stat -c %s "$d/model.safetensors.wcz")
echo "sha256 original: $a"
echo "sha256 unpacked: $b"
[ "$a" = "$b" ] || { echo "demo: MISMATCH"; exit 1; }
awk -v i="$in" -v o="$out" 'BEGIN { printf "demo: identical after round trip; %d -> %d bytes, size ratio %.4f (%.2f%% of the original)\n", i, o, o/i, 100*o/i }'
