#!/usr/bin/env python3
"""Whole-file size and single-thread decode speed of wcodec beside ZipNN (the
lossless peer on PyPI) and zstd -3, in the same run, for safetensors files;
and the size beside blosc2 (byte shuffle + zstd level 9, type size of the
file's dtype) and zstd -19: `best` is wcodec's size over the smallest peer.

    .venv/bin/pip install zipnn blosc2   # the peers (optional: their columns say "-" without them)
    .venv/bin/python bench/peers.py [--build build] [--repeat 3] FILE.safetensors...

wcodec: `wcodec pack` (default options) for the size; the decode time of the
package's `wcodec.numpy.load` of the container held in memory into arrays, on
one thread (threads=1), against ZipNN's `decompress` of its compressed bytes
(threads=1) and zstd -3's decompression of the whole file (python
zstandard, in memory; its columns say "-" without it). Best of --repeat
runs; GB/s of original bytes.
ZipNN's bytearray_dtype follows the file's dtype (bfloat16, float16, float32).
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time


def file_dtype(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    dts = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    for d, z in (("BF16", "bfloat16"), ("F16", "float16"), ("F32", "float32")):
        if d in dts:
            return z
    return "bfloat16"


def best_of(n, fn):
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ZipNN in a child process: it aborts (a glibc heap assertion) on some files,
# e.g. the corpus's cellogpt toy model; its columns then say "-".
_ZIPNN_CHILD = '''
import json, sys, time, zipnn
path, dtype, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
z = zipnn.ZipNN(bytearray_dtype=dtype, threads=1)
comp = z.compress(bytearray(data))  # (compress reorders its input in place: a copy)
assert bytes(z.decompress(comp)) == data, "zipnn round trip"
best = float("inf")
for _ in range(repeat):
    t0 = time.perf_counter(); z.decompress(comp); best = min(best, time.perf_counter() - t0)
print(json.dumps([len(comp), best]))
'''


def zipnn_measure(path, repeat):
    r = subprocess.run([sys.executable, "-c", _ZIPNN_CHILD, path, file_dtype(path), str(repeat)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"[SKIPPED] zipnn failed on {os.path.basename(path)} (exit {r.returncode}): its columns say '-'")
        return None, None
    size, t = json.loads(r.stdout.strip().splitlines()[-1])
    return size, t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--build", default="build")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import wcodec.numpy  # noqa: F401
    try:
        import zstandard
    except ImportError:
        zstandard = None
        print("[SKIPPED] python zstandard is not installed (pip install zstandard): zstd's decode column says '-'")
    try:
        import zipnn
    except ImportError:
        zipnn = None
        print("[SKIPPED] zipnn is not installed (pip install zipnn): its columns say '-'")
    try:
        import blosc2
    except ImportError:
        blosc2 = None
        print("[SKIPPED] blosc2 is not installed (pip install blosc2): its column says '-'")
    tool = os.path.join(a.build, "wcodec")
    print(f"{'file':40s} {'bytes':>11s} {'wcodec':>8s} {'zipnn':>8s} {'blosc2':>8s} {'zstd-19':>8s} {'zstd-3':>8s} "
          f"{'wc/best':>8s} {'dec wc':>8s} {'dec zipnn':>9s} {'dec zstd':>8s} {'wc/zipnn':>8s} {'wc/zstd':>8s}")
    with tempfile.TemporaryDirectory() as d:
        for path in a.files:
            data = open(path, "rb").read()
            wcz = os.path.join(d, "x.wcz")
            subprocess.run([tool, "pack", "-q", "-f", path, "-o", wcz], check=True)
            wbytes = open(wcz, "rb").read()
            t_wc = best_of(a.repeat, lambda: wcodec.numpy.load(wbytes, threads=1))
            z3 = subprocess.run(["zstd", "-q", "-3", "-T1", "-c", path], check=True, capture_output=True).stdout
            t_z = None
            if zstandard is not None:
                dz = zstandard.ZstdDecompressor()
                assert dz.decompress(z3, max_output_size=len(data)) == data
                t_z = best_of(a.repeat, lambda: dz.decompress(z3, max_output_size=len(data)))
            zn_size, t_zn = None, None
            if zipnn is not None:
                zn_size, t_zn = zipnn_measure(path, a.repeat)
            bl_size = None
            if blosc2 is not None:
                ts = {"bfloat16": 2, "float16": 2, "float32": 4}[file_dtype(path)]
                body = data[: len(data) - len(data) % ts]  # whole elements (the header's length is arbitrary)
                bl = blosc2.compress(body, typesize=ts, clevel=9, filter=blosc2.Filter.SHUFFLE, codec=blosc2.Codec.ZSTD)
                assert blosc2.decompress(bl) == body, "blosc2 round trip"
                bl_size = len(bl) + len(data) % ts
            z19 = len(subprocess.run(["zstd", "-q", "-19", "-T1", "-c", path], check=True, capture_output=True).stdout)
            best = min(x for x in (zn_size, bl_size, z19) if x)
            n = len(data)
            gb = lambda t: f"{n / t / 1e9:.2f}" if t else "-"
            pct = lambda s: f"{100 * s / n:.2f}%" if s else "-"
            print(f"{os.path.basename(path)[:40]:40s} {n:11d} {pct(len(wbytes)):>8s} {pct(zn_size):>8s} {pct(bl_size):>8s} "
                  f"{pct(z19):>8s} {pct(len(z3)):>8s} "
                  f"{len(wbytes) / best:8.4f} {gb(t_wc):>8s} {gb(t_zn):>9s} {gb(t_z):>8s} "
                  f"{(f'{t_zn / t_wc:.2f}x' if t_zn else '-'):>8s} {(f'{t_z / t_wc:.2f}x' if t_z else '-'):>8s}")
    print("dec: GB/s of original bytes on one thread; wc/zipnn and wc/zstd: how many times faster wcodec decodes "
          "(wcodec's figure includes allocating the arrays, whose first touch faults pages in; ZipNN and zstd also return "
          "new memory)")


if __name__ == "__main__":
    sys.exit(main())
