#!/usr/bin/env bash
# The whole tool's encode against zstd's: `wcodec pack -T N` (plan, encode,
# checksums, the output written and synced) beside `zstd -3 -T N` of the same
# file, rounds alternating (a noisy neighbour slows both alike), best of R
# wall and CPU (user + sys) seconds, at one thread and at every core.
#   bench/pack_vs_zstd.sh [build-dir] [rounds] FILE.safetensors...
# Without files: the corpus files of 1 MB or more (../shared/corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
R=${2:-5}
shift $(( $# >= 2 ? 2 : $# ))
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  for f in ../shared/corpus/*.safetensors; do
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -ge 1000000 ] && files+=("$f")
  done
fi
[ ${#files[@]} -gt 0 ] || { echo "pack_vs_zstd.sh: no files to measure" >&2; exit 0; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
TIMEFORMAT="%R %U %S"
run() {  # prints "wall cpu" of one run of "$@"
  local t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%.3f %.3f\n", a[1], a[2] + a[3] }'
}
printf '%-40s %3s %22s %22s %12s %8s\n' file T "wcodec wall/cpu s" "zstd-3 wall/cpu s" "wall ratio" "GB/s"
for f in "${files[@]}"; do
  sz=$(stat -c %s "$f")
  for T in 1 "$(nproc)"; do
    ww=999 wc=999 zw=999 zc=999
    for _ in $(seq "$R"); do
      read -r w c < <(run "$B/wcodec" pack -q -f -T "$T" "$f" -o "$d/x.wcz")
      ww=$(awk -v a="$ww" -v b="$w" 'BEGIN{print (b<a)?b:a}'); wc=$(awk -v a="$wc" -v b="$c" 'BEGIN{print (b<a)?b:a}')
      read -r w c < <(run zstd -q -f -3 -T"$T" "$f" -o "$d/x.zst")
      zw=$(awk -v a="$zw" -v b="$w" 'BEGIN{print (b<a)?b:a}'); zc=$(awk -v a="$zc" -v b="$c" 'BEGIN{print (b<a)?b:a}')
    done
    awk -v n="$(basename "$f")" -v T="$T" -v ww="$ww" -v wc="$wc" -v zw="$zw" -v zc="$zc" -v sz="$sz" \
      'BEGIN { printf "%-40s %3s %10.3f / %9.3f %10.3f / %9.3f %11.2fx %8.2f\n", n, T, ww, wc, zw, zc, zw/ww, sz/ww/1e9 }'
  done
done
echo "(wall ratio: zstd's time / wcodec's, above 1 where wcodec pack is faster; GB/s: wcodec's, of the input)"
