#!/usr/bin/env python3
"""Load time of a BF16 model: wcodec.torch.load_file against the C library,
safetensors and ZipNN, in one run on one machine.

    .venv/bin/python bench/python/load_bench.py [--model M.safetensors] [--repeat 5]
        [--threads 0] [--capi build/capi_load] [--cache both|warm|cold]
        [--workdir DIR] [--reuse] [--json OUT.json] [--drop-caches]

Without --model it generates a ~250 MB Llama-shaped BF16 model with the
project's generator (build/wcodec_gen_sample). It packs the model with
wcodec.pack and compresses it with ZipNN (when `zipnn` imports), checks that
every method gives back the original tensors / bytes, then times each method
`--repeat` times, round-robin (one call of each method per round, so a noisy
neighbour slows every method alike), with a warm page cache (after one
untimed round) and with a cold one (posix_fadvise DONTNEED on the file before
each call, checked with mincore). Prints best and median wall seconds, GB/s
of decoded bytes, the ratio to the C library and the speed-up over ZipNN.

See bench/python/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ~250 MB: 16 layers of dim 768 (MLP 2112) and an 8192-token vocabulary
# (embedding and lm_head): 125.9 M BF16 weights in 147 tensors, 251.7 MB.
GEN_ARGS = ["--dim", "768", "--layers", "16", "--vocab", "8192", "--dtype", "bf16", "--seed", "1"]


# -- page cache -----------------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def resident_fraction(path: str) -> float:
    """Fraction of the file's pages in the page cache (mincore on a fresh
    read-only mapping; mapping reads nothing)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0.0
    page = os.sysconf("SC_PAGE_SIZE")
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, 1, 2, fd, 0)  # PROT_READ, MAP_PRIVATE
        if addr in (None, ctypes.c_void_p(-1).value):
            return float("nan")
        try:
            n = (size + page - 1) // page
            vec = (ctypes.c_ubyte * n)()
            if _libc.mincore(addr, size, vec) != 0:
                return float("nan")
            return sum(b & 1 for b in bytes(vec)) / n
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def drop_caches_writable() -> bool:
    return os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_from_cache(paths, use_drop_caches: bool = False) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages are not dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    if use_drop_caches:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# -- methods --------------------------------------------------------------------------
# A method is measure() -> {row name: (seconds, minor page faults)}; most give
# one row, the C baseline two. `paths` are the files it reads (dropped from the
# page cache before each cold call).

class InProcess:
    def __init__(self, name, fn, paths, nbytes, note=""):
        self.name, self.fn, self.paths, self.nbytes, self.note = name, fn, paths, nbytes, note
        self.rows = [name]

    def measure(self, cold):
        f0 = minor_faults()
        t0 = time.perf_counter()
        r = self.fn()
        t = time.perf_counter() - t0
        f = minor_faults() - f0
        del r
        gc.collect()
        return {self.name: (t, f)}


class CBaseline:
    """bench/capi_load, one repetition per call (a fresh process each time:
    its first allocation faults its pages in, as a program's first load)."""
    PRE = "C: open + decode (buffers pre-touched)"
    ALLOC = "C: open + alloc + decode (first touch)"

    def __init__(self, capi, wcz, threads, nbytes):
        self.capi, self.wcz, self.threads, self.nbytes = capi, wcz, threads, nbytes
        self.paths, self.rows, self.note = [wcz], [self.PRE, self.ALLOC], ""
        self.last = None

    def measure(self, cold):
        cmd = [self.capi, self.wcz, "--repeat", "1", "--threads", str(self.threads)]
        if cold:
            cmd.append("--fadvise")
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
        c = json.loads(p.stdout.strip().splitlines()[-1])
        self.last = c
        if c["bytes"] != self.nbytes:
            raise SystemExit(f"capi_load decoded {c['bytes']} bytes, the model has {self.nbytes}")
        # opens_s: [open before the alloc run, open before the decode run]
        return {self.PRE: (c["opens_s"][1] + c["best_s"], c["faults_median"]),
                self.ALLOC: (c["load_best_s"], c["alloc_faults_median"])}


_FRESH = r"""
import resource, sys, time, json
import wcodec.torch
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t0 = time.perf_counter()
d = wcodec.torch.load_file(sys.argv[1], threads=int(sys.argv[2]))
t = time.perf_counter() - t0
print(json.dumps([t, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0]))
"""


class FreshProcess:
    """wcodec.torch.load_file as the first load of a new Python process (torch
    imported before the timing): its tensors' pages are faulted in for the
    first time, as when a program loads its model once."""

    def __init__(self, name, wcz, threads, nbytes):
        self.name, self.wcz, self.threads, self.nbytes = name, wcz, threads, nbytes
        self.paths, self.rows, self.note = [wcz], [name], ""

    def measure(self, cold):
        p = subprocess.run([sys.executable, "-W", "ignore", "-c", _FRESH, self.wcz, str(self.threads)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"fresh-process load failed: {p.stderr.strip()[-2000:]}")
        t, f = json.loads(p.stdout.strip().splitlines()[-1])
        return {self.name: (t, f)}


def run_round_robin(methods, repeat, cold, use_dc):
    """`repeat` rounds; each round calls every method once. Warm: one untimed
    round first."""
    samples = {r: [] for m in methods for r in m.rows}
    resident = {}
    rounds = repeat if cold else repeat + 1
    for i in range(rounds):
        for m in methods:
            if cold:
                if not m.paths:
                    continue
                drop_from_cache(m.paths, use_dc)
                resident[m.rows[0]] = max(resident.get(m.rows[0], 0.0),
                                          max(resident_fraction(p) for p in m.paths))
            got = m.measure(cold)
            if cold or i > 0:
                for r, v in got.items():
                    samples[r].append(v)
    out = {}
    for m in methods:
        for r in m.rows:
            s = samples[r]
            if not s:
                continue
            ts = [t for t, _ in s]
            out[r] = {"best_s": min(ts), "median_s": statistics.median(ts), "times_s": ts,
                      "faults_median": statistics.median([f for _, f in s]), "bytes": m.nbytes}
            if cold:
                out[r]["resident_after_drop"] = resident.get(m.rows[0], 0.0)
    return out


# -- the model ------------------------------------------------------------------------

def prepare(args) -> dict:
    os.makedirs(args.workdir, exist_ok=True)
    info = {}
    if args.model:
        model = os.path.abspath(args.model)
        info["generated"] = None
    else:
        model = os.path.join(args.workdir, "model.safetensors")
        gen = os.path.join(REPO, "build", "wcodec_gen_sample")
        cmd = [gen, model] + GEN_ARGS
        info["generated"] = " ".join(["build/wcodec_gen_sample", "OUT"] + GEN_ARGS)
        if not (args.reuse and os.path.exists(model)):
            print("generating:", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wcz = os.path.join(args.workdir, os.path.basename(model) + ".wcz")
    import wcodec
    if not (args.reuse and os.path.exists(wcz)):
        print("packing with wcodec.pack ...", flush=True)
        t0 = time.perf_counter()
        wcodec.pack(model, wcz, force=True, threads=args.threads)
        info["wcz_pack_s"] = time.perf_counter() - t0
    info.update(model=model, wcz=wcz)
    return info


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def zipnn_prepare(args, model: str, info: dict):
    """ZipNN's byte API on the whole safetensors file: compressed once here and
    written to MODEL.znn, so reading it can be timed from the disk too."""
    try:
        from zipnn import ZipNN
    except Exception as e:  # not installed, or its import fails
        print(f"[SKIPPED] zipnn: {type(e).__name__}: {e}", flush=True)
        info["zipnn_skipped"] = f"{type(e).__name__}: {e}"
        return None
    threads = os.cpu_count() or 1
    znn_path = os.path.join(args.workdir, os.path.basename(model) + ".znn")
    try:
        from importlib.metadata import version
        zv = version("zipnn")
    except Exception:
        zv = "?"
    try:
        znn = ZipNN(bytearray_dtype="bfloat16", threads=threads)
        data = _read(model)
        # zipnn 0.5.4's compress reorders the bytes of its input in place (even
        # of an immutable bytes object): give it a copy it may scribble on.
        scratch = bytearray(data)
        print("compressing with ZipNN ...", flush=True)
        t0 = time.perf_counter()
        comp = bytes(znn.compress(scratch))
        info["zipnn_compress_s"] = time.perf_counter() - t0
        info["zipnn_mutates_input"] = bytes(scratch) != data
        del scratch
        with open(znn_path, "wb") as f:
            f.write(comp)
        info.update(zipnn_version=zv, zipnn_threads=threads, znn=znn_path,
                    zipnn_api=f"ZipNN(bytearray_dtype='bfloat16', threads={threads}): compress() then decompress() "
                              "of the whole safetensors file's bytes (byte API, not streaming)")
        out = znn.decompress(comp)
        ok = bytes(out) == data
        info["zipnn_roundtrip_equal"] = ok
        if not ok:
            print("ERROR: ZipNN's decompressed bytes differ from the original file", flush=True)
        return znn, comp
    except Exception as e:
        print(f"[SKIPPED] zipnn: {type(e).__name__}: {e}", flush=True)
        info["zipnn_skipped"] = f"{type(e).__name__}: {e}"
        return None


# -- checks ----------------------------------------------------------------------------

def check_tensors(wcz: str, model: str) -> dict:
    import safetensors.torch
    import torch
    import wcodec.torch
    a = wcodec.torch.load_file(wcz)
    b = safetensors.torch.load_file(model)
    bad = []
    if sorted(a) != sorted(b):
        bad.append(f"names differ: {sorted(set(a) ^ set(b))[:5]}")
    for k in b:
        if k not in a:
            continue
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y):
            bad.append(k)
    return {"tensors": len(b), "equal": not bad, "mismatches": bad[:10],
            "bytes": sum(t.numel() * t.element_size() for t in b.values())}


# -- where wcodec.torch.load_file spends its time ---------------------------------------

def profile_wcodec(wcz: str, repeat: int, threads: int) -> dict:
    """The steps of wcodec.torch.load_file (warm cache), timed one by one
    through the package's own classes, with the page faults of each."""
    from wcodec import _core
    from wcodec.torch import BACKEND
    parts: dict = {}

    def rec(k, t, f):
        parts.setdefault(k, []).append((t, f))

    for _ in range(repeat + 1):
        marks = [(time.perf_counter(), minor_faults())]

        def mark():
            marks.append((time.perf_counter(), minor_faults()))

        c = _core.Container(wcz)
        mark()
        ts = c.model_tensors()
        mark()
        objs, jobs = [], []
        for t in ts:
            o, addr, n = BACKEND.empty(t.shape, t.dtype)
            objs.append(o)
            jobs.append((t, addr, n, None))
        mark()
        c.decode_into(jobs, threads)
        mark()
        c.decode_into(jobs, threads)  # the same destinations, now touched
        mark()
        c.close()
        mark()
        names = ["open (Container)", "model_tensors()", "torch.empty x N", "decode (1st, into new tensors)",
                 "decode again (touched)", "close"]
        for k, (a, b) in zip(names, zip(marks, marks[1:])):
            rec(k, b[0] - a[0], b[1] - a[1])
        del objs, jobs
        gc.collect()
    # drop the first (warm-up) round
    return {k: {"best_s": min(t for t, _ in v[1:]), "median_s": statistics.median(t for t, _ in v[1:]),
                "faults_median": statistics.median(f for _, f in v[1:])} for k, v in parts.items()}


# -- main ------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a .safetensors file (default: generate a ~250 MB BF16 model)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="wcodec decode threads (0: all cores)")
    ap.add_argument("--capi", default=None,
                    help="the capi_load executable (default: build/capi_load, else build-bench/capi_load)")
    ap.add_argument("--cache", choices=("both", "warm", "cold"), default="both")
    ap.add_argument("--drop-caches", action="store_true",
                    help="also write 1 to /proc/sys/vm/drop_caches before each cold call (the whole machine's "
                         "page cache: off by default on a shared machine)")
    ap.add_argument("--no-fresh", action="store_true", help="skip the fresh-process wcodec loads (they re-import torch)")
    ap.add_argument("--workdir", default="/tmp/wcodec_load_bench")
    ap.add_argument("--reuse", action="store_true", help="keep a model / .wcz already in --workdir")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()

    import safetensors.torch
    import torch
    import wcodec.torch

    capi = args.capi
    if capi is None:
        for cand in ("build/capi_load", "build-bench/capi_load"):
            path = os.path.join(REPO, cand)
            # skip a build older than this script (its --help lacks --fadvise)
            if os.access(path, os.X_OK) and "--fadvise" in subprocess.run(
                    [path, "--help"], capture_output=True, text=True).stdout:
                capi = path
                break
    if capi is None or not os.access(capi, os.X_OK):
        print("capi_load not found: build it (cmake --build BUILD --target capi_load) or pass --capi", file=sys.stderr)
        return 2

    info = prepare(args)
    model, wcz = info["model"], info["wcz"]
    zn = zipnn_prepare(args, model, info)
    sizes = {"original": os.path.getsize(model), "wcz": os.path.getsize(wcz)}
    if zn:
        sizes["zipnn"] = len(zn[1])

    print("checking correctness ...", flush=True)
    checks = {"wcodec_vs_safetensors": check_tensors(wcz, model)}
    if zn:
        checks["zipnn_bytes_equal_original"] = info.get("zipnn_roundtrip_equal")
    decoded = checks["wcodec_vs_safetensors"]["bytes"]

    def st_touch():
        d = safetensors.torch.load_file(model)
        for t in d.values():
            t.reshape(-1).view(torch.uint8)[::4096].sum()  # one byte a page: every page read
        return d

    W = "wcodec.torch.load_file"
    methods = [
        InProcess(W, lambda: wcodec.torch.load_file(wcz, threads=args.threads), [wcz], decoded),
        CBaseline(capi, wcz, args.threads, decoded),
    ]
    if not args.no_fresh:
        methods.append(FreshProcess(W + " (fresh process)", wcz, args.threads, decoded))
    methods += [
        InProcess("safetensors load_file (mmap, lazy)", lambda: safetensors.torch.load_file(model), [model], decoded),
        InProcess("safetensors load_file (mmap) + touch", st_touch, [model], decoded),
        InProcess("safetensors load_file (pread)", lambda: safetensors.torch.load_file(model, backend="pread"),
                  [model], decoded),
    ]
    ZM = "zipnn decompress (bytes in memory)"
    if zn:
        znn, comp = zn
        znn_path = info["znn"]
        methods += [
            InProcess(ZM, lambda: znn.decompress(comp), [], sizes["original"]),
            InProcess("zipnn read .znn + decompress", lambda: znn.decompress(_read(znn_path)), [znn_path],
                      sizes["original"]),
        ]
    for p in [model, wcz] + ([info["znn"]] if zn else []):
        drop_from_cache([p])  # flush what was just written, so later drops take

    modes = {"both": ["warm", "cold"], "warm": ["warm"], "cold": ["cold"]}[args.cache]
    use_dc = args.drop_caches and drop_caches_writable()
    results = {}
    for mode in modes:
        print(f"timing ({mode}, {args.repeat} rounds) ...", flush=True)
        results[mode] = run_round_robin(methods, args.repeat, mode == "cold", use_dc)
    if "cold" in results and "warm" in results and ZM in results["warm"]:
        results["cold"][ZM] = dict(results["warm"][ZM], note="in memory: no file read (the warm figure)")

    print("profiling wcodec.torch.load_file ...", flush=True)
    prof = profile_wcodec(wcz, args.repeat, args.threads)

    # -- report ------------------------------------------------------------------------
    report = {"command": " ".join([os.path.relpath(sys.executable, REPO) if sys.executable.startswith(REPO)
                                   else sys.executable] + sys.argv),
              "info": info, "sizes": sizes, "checks": checks, "results": results, "profile_warm": prof,
              "cores": os.cpu_count(), "threads": args.threads, "repeat": args.repeat,
              "drop_caches_writable": drop_caches_writable(), "drop_caches_used": use_dc,
              "capi": capi, "torch": torch.__version__, "tables": {}}
    print()
    print(f"model: {model}  ({decoded / 1e6:.1f} MB of tensors, "
          f"{checks['wcodec_vs_safetensors']['tensors']} tensors)"
          + (f", generated with {info['generated']}" if info.get("generated") else ""))
    line = (f"sizes: original {sizes['original']:,} B   wcz {sizes['wcz']:,} B "
            f"({sizes['wcz'] / sizes['original']:.2%})")
    if "zipnn" in sizes:
        line += f"   zipnn {sizes['zipnn']:,} B ({sizes['zipnn'] / sizes['original']:.2%})"
    print(line)
    print(f"machine: {os.cpu_count()} cores (shared); wcodec threads={args.threads or 'all'}; "
          f"zipnn {info.get('zipnn_version', '-')} threads={info.get('zipnn_threads', '-')}; "
          f"{args.repeat} rounds, round-robin")
    print(f"C baseline: {capi}; wcodec package: {os.path.dirname(wcodec.__file__)}")

    for mode, res in results.items():
        cb, ca = res[CBaseline.PRE], res[CBaseline.ALLOC]
        zref = res.get(ZM)
        label = "warm"
        if mode == "cold":
            worst = max(r.get("resident_after_drop", 0.0) for r in res.values())
            effective = worst < 0.05
            label = "cold (fadvise)" if effective else "warm (fadvise ineffective)"
            report["cold_check"] = {"max_resident_after_drop": worst, "effective": effective}
        print()
        print(f"[{label}]  ratios of best times: 'vs C' = t / C open+decode (pre-touched); "
              f"'vs C+alloc' = t / C open+alloc+decode; 'ZipNN/t' = ZipNN in-memory decompress / t")
        hdr = (f"{'method':42s} {'best s':>7s} {'median s':>8s} {'GB/s':>6s} {'vs C':>5s} {'vs C+alloc':>10s} "
               f"{'ZipNN/t':>7s} {'faults':>7s}")
        print(hdr)
        print("-" * len(hdr))
        table = []
        for m in methods:
            for name in m.rows:
                if name not in res:
                    continue
                r = res[name]
                b, md = r["best_s"], r["median_s"]
                gbps = r["bytes"] / b / 1e9
                vs_c, vs_ca = b / cb["best_s"], b / ca["best_s"]
                vz = zref["best_s"] / b if zref else float("nan")
                tag = " *" if r.get("note") else ""
                print(f"{name + tag:42s} {b:7.4f} {md:8.4f} {gbps:6.2f} {vs_c:5.2f} {vs_ca:10.2f} {vz:7.2f} "
                      f"{r['faults_median']:7.0f}")
                table.append({"method": name, "best_s": b, "median_s": md, "gbps": gbps, "vs_c": vs_c,
                              "vs_c_alloc": vs_ca, "zipnn_over_t": vz, "faults_median": r["faults_median"]})
        report["tables"][label] = table
        if mode == "cold":
            star = "  * the in-memory ZipNN figure reads no file: the warm one is repeated." if ZM in res else " "
            print(f"{star} Cold check: page-cache residency right after each drop <= "
                  f"{report['cold_check']['max_resident_after_drop']:.1%} for every file (mincore)")
        first, rest = res[W]["times_s"][0], res[W]["times_s"][1:]
        if rest:
            print(f"  {W}: first timed call {first:.4f} s, later median {statistics.median(rest):.4f} s")

    print()
    print("wcodec.torch.load_file step by step (warm, best of %d; faults: median minor page faults):" % args.repeat)
    for k, v in prof.items():
        print(f"  {k:32s} {v['best_s']:8.4f} s  (median {v['median_s']:.4f})  faults {v['faults_median']:7.0f}")

    print()
    ok = checks["wcodec_vs_safetensors"]["equal"] and checks.get("zipnn_bytes_equal_original", True) is not False
    print("correctness: wcodec.torch.load_file == safetensors.torch.load_file (names, dtype, shape, torch.equal): "
          f"{checks['wcodec_vs_safetensors']['equal']}"
          + (f"; ZipNN decompressed bytes == original file: {checks['zipnn_bytes_equal_original']}" if zn else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print("wrote", args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
