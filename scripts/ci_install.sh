#!/usr/bin/env bash
# Packaging check: builds wcodec (Release, no tests), installs it into a fresh
# prefix and links the installed C API the ways a runtime would:
#   - the files `cmake --install` must give (tool, header, libwcodec.so*,
#     libwcodec.a, wcodec.pc, the CMake package, LICENSE);
#   - libwcodec.so exports only wcodec_* symbols and has SONAME libwcodec.so.0;
#   - libwcodec.a is position-independent (it links into a shared library);
#   - examples/c_consumer built with cc through pkg-config, once against
#     libwcodec.so and once (pkg-config --static) against libwcodec.a;
#   - examples/cmake_consumer built through find_package(wcodec), against
#     wcodec::wcodec and wcodec::wcodec_static;
#   - all four decode a generated sample container and print the same lines,
#     and (with python3) the hashes match the original safetensors bytes.
# Prints "ci_install: PASS" or "ci_install: FAIL: ..." and exits non-zero on failure.
#
# Environment:
#   WCODEC_INSTALL_BUILD  build directory (default build-install)
#   WCODEC_INSTALL_REUSE  1: install from WCODEC_INSTALL_BUILD as it is configured
#                         (.ci/run passes build/, which scripts/test.sh has just
#                         built: a minute of compiling saved); default 0: a fresh
#                         Release build with the tests off, as a runtime author
#                         would configure it
#   WCODEC_INSTALL_JOBS   parallel build jobs (default 2)
#   WCODEC_INSTALL_KEEP   1: keep the temporary prefix and work folder
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${WCODEC_INSTALL_BUILD:-build-install}
JOBS=${WCODEC_INSTALL_JOBS:-2}
t0=$(date +%s)

fail() {
  echo "ci_install: FAIL: $*" >&2
  exit 1
}
trap 'echo "ci_install: FAIL (status $? at line $LINENO)" >&2' ERR

for tool in cmake cc c++ pkg-config nm readelf; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wcodec-install.XXXXXX")
cleanup() { if [ "${WCODEC_INSTALL_KEEP:-0}" = 1 ]; then echo "ci_install: kept $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
PREFIX=$TMP/prefix
WORK=$TMP/work
mkdir -p "$PREFIX" "$WORK"

# --- build and install -----------------------------------------------------------
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ "${WCODEC_INSTALL_REUSE:-0}" = 1 ]; then
  [ -f "$BUILD/CMakeCache.txt" ] || fail "WCODEC_INSTALL_REUSE=1 but $BUILD is not a configured build"
else
  cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DWCODEC_TESTS=OFF -DWCODEC_CUDA=OFF \
    -DWCODEC_WERROR=ON -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_UNITY_BUILD=ON >/dev/null  # unity: as ci_decoders.sh
fi
cmake --build "$BUILD" -j "$JOBS"
t1=$(date +%s)
cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null
LIB=$PREFIX/lib
for f in bin/wcodec include/wcodec/wcodec.h lib/libwcodec.so lib/libwcodec.so.0 lib/libwcodec.a \
         lib/pkgconfig/wcodec.pc lib/cmake/wcodec/wcodecConfig.cmake lib/cmake/wcodec/wcodecConfigVersion.cmake \
         lib/cmake/wcodec/wcodecTargets.cmake share/doc/wcodec/LICENSE; do
  [ -e "$PREFIX/$f" ] || fail "not installed: $f"
done
echo "ci_install: installed into $PREFIX:"
(cd "$PREFIX" && find . -type f -o -type l | sort | sed 's/^\.\//  /')

# --- (a) exported symbols, (d) SONAME --------------------------------------------
mapfile -t SYMS < <(nm -D --defined-only "$LIB/libwcodec.so" | awk '{print $NF}')
[ "${#SYMS[@]}" -gt 0 ] || fail "libwcodec.so exports nothing"
BAD=()
for s in "${SYMS[@]}"; do
  [[ $s == wcodec_* ]] || BAD+=("$s")
done
if [ "${#BAD[@]}" -gt 0 ]; then
  printf '  %s\n' "${BAD[@]}" >&2
  fail "libwcodec.so exports ${#BAD[@]} symbol(s) not named wcodec_* (listed above)"
fi
echo "ci_install: libwcodec.so exports ${#SYMS[@]} symbols, all wcodec_*"
SONAME=$(readelf -d "$LIB/libwcodec.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$SONAME" = libwcodec.so.0 ] || fail "SONAME is '$SONAME', not libwcodec.so.0"
echo "ci_install: SONAME $SONAME"

# --- pkg-config --------------------------------------------------------------------
export PKG_CONFIG_PATH=$LIB/pkgconfig
pkg-config --validate wcodec || fail "pkg-config --validate wcodec"
PC_VERSION=$(pkg-config --modversion wcodec)
HDR_VERSION=$(sed -n 's/^#define WCODEC_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' "$PREFIX/include/wcodec/wcodec.h" | paste -sd.)
[ "$PC_VERSION" = "$HDR_VERSION" ] || fail "wcodec.pc says $PC_VERSION, wcodec.h says $HDR_VERSION"
read -r -a CFLAGS <<<"$(pkg-config --cflags wcodec)"
read -r -a LIBS_SHARED <<<"$(pkg-config --libs wcodec)"
# -l:libwcodec.a: the archive even though libwcodec.so lies beside it.
read -r -a LIBS_STATIC <<<"$(pkg-config --static --libs wcodec | sed 's/-lwcodec\b/-l:libwcodec.a/')"
echo "ci_install: pkg-config wcodec $PC_VERSION: ${CFLAGS[*]} | ${LIBS_SHARED[*]} | --static: ${LIBS_STATIC[*]}"

# libwcodec.a is PIC: all of it links into a shared library.
DEPS=()
for f in "${LIBS_STATIC[@]}"; do [ "$f" = -l:libwcodec.a ] || DEPS+=("$f"); done
cc -shared -o "$WORK/libpic_probe.so" -Wl,--whole-archive "$LIB/libwcodec.a" -Wl,--no-whole-archive "${DEPS[@]}" \
  -Wl,--no-undefined || fail "libwcodec.a does not link into a shared library (not PIC?)"

# --- a sample container ------------------------------------------------------------
"$BUILD/wcodec_gen_sample" "$WORK/sample.safetensors" --dim 128 --layers 1 --vocab 256 --dtype bf16 >/dev/null
# --inline always: its norms lie in the manifest, so the runtime-style loop meets WCODEC_OFFSET_INLINE descs
"$PREFIX/bin/wcodec" pack -q --inline always "$WORK/sample.safetensors" -o "$WORK/sample.safetensors.wcz"

# --- (b) the C consumer, shared and static -----------------------------------------
CWARN=(-std=c99 -Wall -Wextra -Wpedantic -Werror -O2)
cc "${CWARN[@]}" "${CFLAGS[@]}" examples/c_consumer/main.c -o "$WORK/c_shared" "${LIBS_SHARED[@]}" \
  -Wl,-rpath,"$LIB" || fail "examples/c_consumer does not build against libwcodec.so"
cc "${CWARN[@]}" "${CFLAGS[@]}" examples/c_consumer/main.c -o "$WORK/c_static" "${LIBS_STATIC[@]}" \
  || fail "examples/c_consumer does not build against libwcodec.a"
readelf -d "$WORK/c_shared" | grep -q 'NEEDED.*\[libwcodec\.so\.0\]' || fail "c_shared does not load libwcodec.so.0"
if readelf -d "$WORK/c_static" | grep -q 'NEEDED.*libwcodec'; then fail "c_static loads libwcodec.so"; fi

"$WORK/c_shared" "$WORK/sample.safetensors.wcz" >"$WORK/c_shared.out" || fail "c_shared failed"
"$WORK/c_static" "$WORK/sample.safetensors.wcz" >"$WORK/c_static.out" || fail "c_static failed"
if "$WORK/c_shared" "$WORK/missing.wcz" >/dev/null 2>"$WORK/c_missing.err"; then fail "c_shared succeeded on a missing file"; fi
grep -q 'wcodec_open: .*missing\.wcz.*\[' "$WORK/c_missing.err" || fail "c_shared gave no error message for a missing file"
COUNT=$(sed -n 's/^tensors: //p' "$WORK/c_shared.out")
if [ -z "$COUNT" ] || [ "$COUNT" -le 0 ]; then fail "c_shared printed no tensor count"; fi
[ "$(($(wc -l <"$WORK/c_shared.out") - 1))" -eq "$COUNT" ] || fail "c_shared listed a different number of tensors than $COUNT"
cmp -s "$WORK/c_shared.out" "$WORK/c_static.out" || { diff "$WORK/c_shared.out" "$WORK/c_static.out" >&2 || true; fail "shared and static C consumers differ"; }
echo "ci_install: C consumer (shared, static): $COUNT tensors, same output"

# The hashes are those of the original tensors' bytes.
if command -v python3 >/dev/null; then
  python3 - "$WORK/sample.safetensors" "$WORK/c_shared.out" <<'EOF' || fail "decoded bytes differ from the original safetensors"
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
base = 8 + n
want = {}
for name, t in header.items():
    if name == "__metadata__":
        continue
    b, e = t["data_offsets"]
    h = 14695981039346656037
    for byte in data[base + b:base + e]:
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    want[name] = (t["dtype"], e - b, "%016x" % h)
lines = open(sys.argv[2]).read().splitlines()[1:]
got = {}
for line in lines:
    name, dtype, size, h = line.split(" ")
    got[name] = (dtype, int(size), h)
if got != want:
    for k in sorted(set(got) | set(want)):
        if got.get(k) != want.get(k):
            print("  %s: decoded %s, original %s" % (k, got.get(k), want.get(k)), file=sys.stderr)
    sys.exit(1)
EOF
  echo "ci_install: decoded hashes match the original safetensors"
fi

# --- (c) the CMake consumer, shared and static -------------------------------------
for mode in shared static; do
  static=OFF
  [ "$mode" = static ] && static=ON
  cmake -S examples/cmake_consumer -B "$WORK/cmake_$mode" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DWCODEC_CONSUMER_STATIC=$static >"$WORK/cmake_$mode.log" 2>&1 ||
    { cat "$WORK/cmake_$mode.log" >&2; fail "examples/cmake_consumer ($mode) does not configure"; }
  grep -q 'license Apache-2.0' "$WORK/cmake_$mode.log" || fail "the CMake package does not give wcodec_LICENSE"
  cmake --build "$WORK/cmake_$mode" >"$WORK/cmake_$mode.build.log" 2>&1 ||
    { cat "$WORK/cmake_$mode.build.log" >&2; fail "examples/cmake_consumer ($mode) does not build"; }
  "$WORK/cmake_$mode/wcodec_consumer" "$WORK/sample.safetensors.wcz" >"$WORK/cmake_$mode.out" 2>/dev/null ||
    fail "cmake_consumer ($mode) failed"
  cmp -s "$WORK/c_shared.out" "$WORK/cmake_$mode.out" ||
    { diff "$WORK/c_shared.out" "$WORK/cmake_$mode.out" >&2 || true; fail "cmake_consumer ($mode) differs from the C consumer"; }
done
readelf -d "$WORK/cmake_shared/wcodec_consumer" | grep -q 'NEEDED.*\[libwcodec\.so\.0\]' ||
  fail "cmake_consumer (shared) does not load libwcodec.so.0"
if readelf -d "$WORK/cmake_static/wcodec_consumer" | grep -q 'NEEDED.*libwcodec'; then
  fail "cmake_consumer (static) loads libwcodec.so"
fi
echo "ci_install: CMake consumer (wcodec::wcodec, wcodec::wcodec_static): same output"

echo "ci_install: PASS (build $((t1 - t0)) s, checks $(( $(date +%s) - t1 )) s)"
