#!/usr/bin/env bash
# Checks the layering rules of docs/ARCHITECTURE.md: every #include "..." in a
# layer's folder must name a folder that layer may include. Prints each
# violation as FILE:LINE: includes "X" (LAYER may include: ...) and exits 1 if
# there is any. A quoted include without a '/' is a file of the same folder.
# Run from anywhere: scripts/check_layers.sh [ROOT]. Registered as ctest `layers`.
set -euo pipefail
ROOT=${1:-"$(cd "$(dirname "$0")/.." && pwd)"}
cd "$ROOT"

# layer -> the folders (first path component of an include) it may include,
# itself among them. "wcodec" is include/wcodec/, the public C header.
# A layer's own folder need not exist yet (quant/ is planned).
declare -A ALLOWED=(
  [platform]="platform"
  [format]="format platform"
  [model]="model format platform"
  [codec]="codec format platform"
  [quant]="quant codec format platform"
  [lib]="lib model quant codec format platform wcodec"
  [include]="wcodec"
  [gpu]="gpu quant codec format platform"
  # the Python binding and the consumer examples see the C API only, as a
  # runtime linking the installed library does
  [python]="wcodec"
  [examples]="wcodec"
)
# cli/ sees the library through lib/api.h and the C header only.
CLI_ALLOWED_FILES="lib/api.h"
CLI_ALLOWED_DIRS="wcodec"

fail=0
report() {  # file line include rule
  echo "$1:$2: includes \"$3\" ($4)" >&2
  fail=1
}

check_dir() {  # folder allowed-folders allowed-files
  local dir=$1 allowed=$2 files=${3:-}
  [ -d "$dir" ] || return 0
  local f n inc top
  while IFS=: read -r f n inc; do
    inc=$(printf '%s' "$inc" | sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/')
    case $inc in
      */*) top=${inc%%/*} ;;
      *) continue ;;  # same folder
    esac
    if [[ " $files " == *" $inc "* ]]; then continue; fi
    if [[ " $allowed " != *" $top "* ]]; then
      report "$f" "$n" "$inc" "$dir/ may include: $allowed${files:+ $files}"
    fi
  done < <(find "$dir" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.c' -o -name '*.cc' -o -name '*.cpp' \
             -o -name '*.cu' -o -name '*.cuh' -o -name '*.inc' \) -print0 | sort -z |
           xargs -0 -r grep -HnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' || true)
}

for layer in platform format model codec quant lib gpu; do
  check_dir "$layer" "${ALLOWED[$layer]}"
done
check_dir include "${ALLOWED[include]}"
check_dir cli "$CLI_ALLOWED_DIRS" "$CLI_ALLOWED_FILES"
# tests/, fuzz/, bench/ and tools/ may include any layer; no layer includes them.

if [ "$fail" -ne 0 ]; then
  echo "check_layers: include rules broken (see docs/ARCHITECTURE.md)" >&2
  exit 1
fi
echo "check_layers: OK"
