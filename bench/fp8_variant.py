#!/usr/bin/env python3
"""fp8_variant.py IN.safetensors OUT.safetensors --dtype F8_E4M3|F8_E5M2

An FP8 checkpoint made from a real one, as FP8 models are published: every
2-D float weight (F32, F16, BF16) scaled per tensor so that its largest
magnitude is the format's largest finite value, cast to FP8 (round to
nearest even, ml_dtypes), with its F32 scalar `NAME_scale_inv` (multiply to
get the weights back) stored after it; norms, biases and other tensors stay
as they are. Needs numpy and ml_dtypes (scripts/setup.sh --python). For
bench/real.sh: the corpus has no FP8 model.
"""
import argparse
import json
import struct
import sys

import numpy as np

try:
    import ml_dtypes
except ImportError:
    sys.exit("fp8_variant.py: needs ml_dtypes (pip install ml_dtypes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--dtype", required=True, choices=["F8_E4M3", "F8_E5M2"])
    a = ap.parse_args()
    b = open(a.src, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    base = 8 + n
    meta = hdr.pop("__metadata__", None)
    f8 = {"F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2}[a.dtype]
    fmax = float(ml_dtypes.finfo(f8).max)
    np_of = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16}
    out, blobs, off = {}, [], 0
    for name, v in sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        s, e = v["data_offsets"]
        raw = b[base + s:base + e]
        if v["dtype"] in np_of and len(v["shape"]) == 2:
            w = np.frombuffer(raw, np_of[v["dtype"]]).astype(np.float32)
            scale = (float(np.abs(w).max()) or 1.0) / fmax
            items = [(name, a.dtype, v["shape"], (w / scale).astype(f8).tobytes()),
                     (name + "_scale_inv", "F32", [], np.float32(scale).tobytes())]
        else:
            items = [(name, v["dtype"], v["shape"], raw)]
        for nm, dt, shape, r in items:
            out[nm] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(r)]}
            blobs.append(r)
            off += len(r)
    if meta:
        out["__metadata__"] = meta
    h = json.dumps(out, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(a.dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for r in blobs:
            f.write(r)


if __name__ == "__main__":
    main()
