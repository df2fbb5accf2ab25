#!/usr/bin/env python3
"""Refinement levels (spec/REFINE.md) against separate single-budget encodes, in one run.

  bench/refine.py MODEL.safetensors [--bits 2.25] [--refine 3] [--exact] [--block refine|bitstack|auto]
                  [--block-rank R] [--refine-factor F] [--kld] [--points 8] [--png OUT.png]
                  [--overlay RUN.txt=LABEL ...] [--wcodec PATH]

Packs MODEL once with `--bits B --refine R` (the progressive file; --block
picks its levels' kind: refinement levels, BitStack's sign-magnitude blocks,
spec/BITSTACK.md, or either per tensor and level) and reads
each level's prefix size from `inspect --json` (a --refine file's levels are
steps, one tensor level each: --points of them, evenly spread by bytes, the
first and the last included); for each decodes it
(`unpack --level K`) and, at the same bits per weight, packs a separate file
with `--scheme quant --bits` (part 1's single-budget encode). Reports per
level: bits per weight (all-in, the prefix), the weight-space relative RMSE
of the 2-D tensors (sqrt(sum err^2 / sum w^2)) of both, and with --kld the KL
divergence of each against MODEL (../shared/tools/kld_eval.py, a llama model
only) and the ratio progressive / separate (issue target: at most 1.25). With
--png, a plot of KLD (or relative RMSE) against bits per weight, llama.cpp's
imatrix points (issue 10) beside (needs matplotlib: .venv/bin/pip install matplotlib); --overlay adds the
progressive curve of an earlier run (its output saved to RUN.txt: the JSON rows of its last line).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.environ.get("WCODEC_TOOLS", os.path.join(ROOT, "..", "shared", "tools"))
LLAMA_CPP = [(4.5, 0.0727, "Q4_K"), (3.44, 0.324, "IQ3_S"), (2.56, 1.87, "IQ2_S"), (2.06, 4.11, "IQ2_XXS")]


def load(path):
    from safetensors.numpy import load_file
    import ml_dtypes  # noqa: F401  (bfloat16)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    out = {}
    raw = open(path, "rb").read()
    base = 8 + n
    for k, v in header.items():
        if k == "__metadata__" or len(v["shape"]) < 2:
            continue
        a, b = v["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16, "BF16": "bfloat16"}.get(v["dtype"])
        if dt is None:
            continue
        if dt == "bfloat16":
            u = np.frombuffer(raw[base + a:base + b], dtype=np.uint16).astype(np.uint32) << 16
            out[k] = u.view(np.float32).astype(np.float64)
        else:
            out[k] = np.frombuffer(raw[base + a:base + b], dtype=dt).astype(np.float64)
    return out


def rel_rmse(ref, got):
    e = s = 0.0
    for k, w in ref.items():
        m = np.isfinite(w)
        e += float(((w[m] - got[k][m]) ** 2).sum())
        s += float((w[m] ** 2).sum())
    return (e / s) ** 0.5


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def kld(py, model, cand):
    out = run(py, os.path.join(TOOLS, "kld_eval.py"), model, cand).strip().splitlines()[-1]
    return float(dict(kv.split("=") for kv in out.split())["kld"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--bits", type=float, default=2.25)
    ap.add_argument("--refine", type=int, default=3)
    ap.add_argument("--exact", action="store_true")
    ap.add_argument("--block", default="refine", choices=["refine", "bitstack", "auto"])
    ap.add_argument("--block-rank", type=int, default=2)
    ap.add_argument("--refine-factor", type=int, default=3)
    ap.add_argument("--kld", action="store_true")
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--png")
    ap.add_argument("--overlay", action="append", default=[])
    ap.add_argument("--wcodec", default=os.path.join(ROOT, "build", "wcodec"))
    a = ap.parse_args()
    py = sys.executable
    ref = load(a.model)
    with tempfile.TemporaryDirectory() as t:
        prog = os.path.join(t, "p.wcz")
        extra = (["--exact"] if a.exact else []) + ["--block", a.block, "--block-rank", str(a.block_rank),
                                                      "--refine-factor", str(a.refine_factor)]
        run(a.wcodec, "pack", a.model, "-o", prog, "--bits", str(a.bits), "--refine", str(a.refine), "-q", *extra)
        info = json.loads(run(a.wcodec, "inspect", prog, "--json"))
        levels = info["levels"]
        if len(levels) > a.points:  # steps: points evenly spread by bytes
            lo, hi = levels[0]["bytes"], levels[-1]["bytes"]
            keep = {0, len(levels) - 1}
            for i in range(1, a.points - 1):
                target = lo + (hi - lo) * i / (a.points - 1)
                keep.add(min(range(len(levels)), key=lambda k: abs(levels[k]["bytes"] - target)))
            levels = [levels[k] for k in sorted(keep)]
        rows = []
        print(f"{'level':>5} {'bpw':>7} {'relRMSE':>9} {'sep relRMSE':>11} {'ratio':>6}" +
              (f" {'KLD':>9} {'sep KLD':>9} {'ratio':>6}" if a.kld else ""))
        for lv in levels:
            k = lv["level"]
            bpw = lv["bits_per_weight"]
            out = os.path.join(t, f"l{k}.safetensors")
            run(a.wcodec, "unpack", prog, "-o", out, "--level", str(k), "-q", "-f")
            got = load(out)
            r = rel_rmse(ref, got)
            row = {"level": k, "bpw": bpw, "rel": r}
            sep_ok = bpw <= 12 and r > 0
            if sep_ok:  # part 1 at the same size (the whole file's bits per weight, as the prefix counts them)
                # --bits counts the lossy tensors, the prefix the whole file: aim --bits so that the separate
                # file's whole-file bits per weight meet the prefix's (two corrections)
                sep = os.path.join(t, "s.wcz")
                target = bpw
                for _ in range(3):
                    run(a.wcodec, "pack", a.model, "-o", sep, "--bits", f"{target:.4f}", "--scheme", "quant", "-q",
                        "-f")
                    sbpw = json.loads(run(a.wcodec, "inspect", sep, "--json"))["bits_per_weight"]
                    target += bpw - sbpw
                sout = os.path.join(t, "s.safetensors")
                run(a.wcodec, "unpack", sep, "-o", sout, "-q", "-f")
                row.update(sep_bpw=sbpw, sep_rel=rel_rmse(ref, load(sout)))
            if a.kld and r > 0:
                row["kld"] = kld(py, a.model, out)
                if sep_ok:
                    row["sep_kld"] = kld(py, a.model, sout)
            rows.append(row)
            line = f"{k:>5} {bpw:>7.3f} {r:>9.5f}"
            if "sep_rel" in row:
                line += f" {row['sep_rel']:>11.5f} {r / row['sep_rel']:>6.2f}"
            else:
                line += f" {'-':>11} {'-':>6}"
            if a.kld and "kld" in row:
                line += f" {row['kld']:>9.5f}"
                if "sep_kld" in row:
                    line += f" {row['sep_kld']:>9.5f} {row['kld'] / row['sep_kld']:>6.2f}"
            print(line, flush=True)
        print(json.dumps(rows))
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        key = "kld" if a.kld else "rel"
        fig, ax = plt.subplots(figsize=(6, 4))
        p = [r for r in rows if key in r]
        kind = f"--refine-factor {a.refine_factor}" if a.block == "refine" else f"--block {a.block}"
        ax.plot([r["bpw"] for r in p], [r[key] for r in p], "o-",
                label=f"progressive (--bits {a.bits} --refine {a.refine} {kind})")
        for o in a.overlay:
            path, _, label = o.partition("=")
            prev = [r for r in json.loads(open(path).read().strip().splitlines()[-1]) if key in r]
            ax.plot([r["bpw"] for r in prev], [r[key] for r in prev], "x-", label=label or path)
        s = [r for r in rows if "sep_" + key in r]
        ax.plot([r["sep_bpw"] for r in s], [r["sep_" + key] for r in s], "s--", label="separate encodes (--scheme quant)")
        if a.kld:
            ax.plot([x[0] for x in LLAMA_CPP], [x[1] for x in LLAMA_CPP], "^:", label="llama.cpp + imatrix")
        ax.set_yscale("log")
        ax.set_xlabel("bits per weight (all-in)")
        ax.set_ylabel("KLD (nats)" if a.kld else "relative RMSE")
        ax.set_title(os.path.basename(a.model))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.png, dpi=120)
        print("wrote", a.png)


if __name__ == "__main__":
    main()
