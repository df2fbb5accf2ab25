#!/usr/bin/env python3
"""Writes the container test vectors from spec/FORMAT.md alone.

An independent writer of the format (it shares no code with the C++ library),
so the vectors pin the spec, not the implementation. zstd frames are written
by hand as raw blocks (codec 7's mode-5 frames also as RLE blocks, zframe()),
which any zstd decoder accepts, so the bytes do not depend on a zstd version.
Needs the `xxhash` and `numpy` Python packages.

Good vectors: NAME.wcz decodes to NAME.expected (or NAME.FILE.expected for
each file). Bad vectors: bad/NAME.CODE.wcz must be rejected with error CODE;
most are checksum-valid everywhere and break one rule only (see hostile() and
lossy_bad()). Version 2.0 (lossy tensors, spec/QROW.md): see lossy_vectors(). Version 2.2 (representation
2, qrow-outliers, spec/OUTLIERS.md): outlier_vectors() and outlier_bad(). Version 2.3 (inline parts with a
codec's payload; qrow's codes inline in one-tile tensors): inline23_vectors() and inline23_bad(). Version 2.4
(part layout 4, per group, and representation 3, vq, spec/VQ.md): vq_vectors() and vq_bad(). Versions 1.4
and 2.5 (inline exact tensors: chunk_size 0, the payload in the record, no chunk): inline_exact_vectors() and
inline_exact_bad(). Version 2.7 (the exact top layer of a qrow tensor: level 1, codec 6 exact-residual,
spec/EXACT_TOP.md): exact_top_vectors() and exact_top_bad(). Version 2.8 (refinement levels of a qrow tensor,
role 4 parts at levels 1..R under an optional exact top layer at R + 1, spec/REFINE.md; the exact top layer's
tables' fourth byte is its context shift S): refine_vectors() writes lossy_refine and lossy_refine_exact, with
NAME.levelK.expected (unpack --level K) for every level K below the top, from a reference decoder of REFINE.md
§2-§4 (rf_value, rf_parse_tables, rf_decode); refine_bad() the 2.8 bad vectors (refine_*, exact_top_tables_s25,
level_xxh3_refine*). 2.8's flags of a mode-1 tile payload (EXACT_TOP.md §5 "Flags": the step bytes left to an inline
part 0, the tables in the payload of a tensor of one tile): flag_vectors() writes lossy_refine_flags (with
.levelK.expected), flag_bad() its bad vectors (refine_flag*, refine_tables_empty_*, exact_top_flag*,
exact_top_tables_empty_*); fl_tile() and fl_record() read the flags for rf_decode. Version 2.9 (chunk order 1,
FORMAT.md §4, §4.3: the model's levels are steps listed in the manifest; container2(steps=...)): order_vectors()
writes lossy_order (with .levelK.expected, the model at each step K), order_bad() its bad vectors (order_*).
Version 2.11 (vq's scalar palettes, d = 1; one codebook per group of 2^s rows, params byte 3; the codebook as a
tensor-wide part with a codec, K up to 65536; spec/VQ.md): vq_books_vectors() writes lossy_vq211 (with
.as_dtypes.expected), vq_books_bad() its bad vectors (vq211_*). 2.11's additive books (params 6 bytes, u16 K2: two
codebooks, a code the binary32 sum of one entry of each): vq_additive_vectors() writes lossy_vq211_additive (with
.as_dtypes.expected), vq_additive_bad() its bad vectors (vq211_add_*).
Versions 1.8 and 2.13 (pools, FORMAT.md §4.6: extension type 1 codes the inline exact tensors of codec 9 of each dtype
as one chunk of its codec; codec 9's records have stored_size 0): pool_vectors() writes pooled, pooled_shards,
pooled_lossy and pooled_bound, read back by pool_read() (a reader of §4.5 and §4.6), and pool_bad() its bad vectors
(pool_*).
Version 2.14 (sign-magnitude blocks of a qrow tensor, spec/BITSTACK.md: a level above 0 of role-6 parts, binary16
factors U, W and a sign byte per element): bitstack_vectors() writes lossy_bitstack and lossy_bitstack_exact (with
.levelK.expected) from block() (the writer, numpy binary32) and bs_apply_tile() (a decoder of BITSTACK.md §2-§3 in
exact rationals, which rf_decode uses for role-6 levels); bs_read() and bs_check() read each file back from its bytes
and decode its blocks; bitstack_bad() its bad vectors (bitstack_*, level_xxh3_bitstack_*).
Codec 4 (float-ans-mixed, FLOAT_ANS.md §2): mixed_vectors(); its mode 3 (§2.1, a
per-channel shift): shift_vectors(); codec 5 (float-ans-patch, 1.5, its mode 4: §2.2): patch_vectors(); codec 7 (float-ans-groups, 1.6, its mode 5, byte
planes as zstd frames: §2.3): groups_vectors(); codec 8 (float-ans-pairs, 1.7, its mode 6, two FP8 elements per
rANS symbol: §2.4): pairs_vectors(); with a float-ans encoder and decoder written
from FLOAT_ANS.md §3-§8 (the spec's §9 bytes and tests/vectors/float_ans check them).

    .venv/bin/python tests/vectors/make_vectors.py tests/vectors   # any Python 3 with xxhash and numpy
"""
import json, math, os, struct, sys
from fractions import Fraction
from types import SimpleNamespace
import numpy as np
import xxhash

H = lambda b: xxhash.xxh3_64_intdigest(b)
DT = {"BOOL": (0, 8), "U8": (1, 8), "BF16": (9, 16), "F16": (8, 16), "F32": (12, 32), "I64": (14, 64), "F4": (16, 4)}


def put(d, name, data):
    """Writes a vector file: `name` under the folder d."""
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def put_single(d, name, ts, minor):
    """d/NAME.wcz: one safetensors file of tensors ts in a 1.MINOR container; d/NAME.expected: that file."""
    fb, plen = st_file(ts)
    put(d, name + ".wcz", container2([(0, "model.safetensors", fb, plen, ts)], major=1, minor=minor))
    put(d, name + ".expected", fb)


def put_bad(d, vectors):
    """Writes {CASE.CODE: bytes} as d/bad/CASE.CODE.wcz."""
    for name, b in vectors.items():
        put(d, os.path.join("bad", name + ".wcz"), b)


def zraw(data: bytes) -> bytes:
    # Frame header: magic, descriptor (single segment, 8-byte content size), size.
    return struct.pack("<IB", 0xFD2FB528, 0xE0) + struct.pack("<Q", len(data)) + raw_blocks(data)


def raw_blocks(data: bytes) -> bytes:
    # Raw blocks of at most 64 KiB (3-byte block header: size << 3 | type 0 << 1 | last).
    out, pos = b"", 0
    while True:
        blk = data[pos:pos + 65536]
        pos += len(blk)
        last = 1 if pos >= len(data) else 0
        out += struct.pack("<I", (len(blk) << 3) | (0 << 1) | last)[:3] + blk
        if last:
            return out


def zraw_unsized(data: bytes) -> bytes:
    # A valid frame that does not declare its content size (RFC 8878 3.1.1.1.1): descriptor 0
    # (no FCS field, not single segment), then a window descriptor: exponent 7, 2^17 = 128 KiB.
    return struct.pack("<IBB", 0xFD2FB528, 0x00, 7 << 3) + raw_blocks(data)


def skippable(data: bytes, n=0) -> bytes:
    # A skippable frame (RFC 8878 3.1.2): magic 0x184D2A50 + n (n < 16), u32 size, data.
    return struct.pack("<II", 0x184D2A50 + n, len(data)) + data


def b_(s) -> bytes:
    return s if isinstance(s, bytes) else s.encode()


def str16(s: bytes) -> bytes:
    return struct.pack("<H", len(s)) + s


def safetensors(tensors, metadata=None, pad=0):
    hdr, data = {}, b""
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    j = json.dumps(hdr, separators=(",", ":")).encode() + b" " * pad
    return struct.pack("<Q", len(j)) + j + data, 8 + len(j)


def container(files, chunk_size, codecs, major=1, minor=0, params=None,
              manifest_frame=zraw, index_frame=zraw, chunk_frame=zraw, inline=()):
    """files: list of (kind, name, file_bytes, prefix_len, [(name, dtype, shape, raw)]).

    Names may be bytes (written verbatim). params: per-tensor params bytes (default empty).
    *_frame: how the manifest, the index and each zstd-codec chunk are framed. inline: numbers of the
    tensors written inline (1.4, §4.2: chunk_size 0, u32 stored_size and the payload, no chunk)."""
    m = b""
    tensors, nchunks, chunks = [], 0, []
    m_files = b""
    first = 0
    for kind, name, fb, plen, ts in files:
        m_files += struct.pack("<BB", kind, 0) + str16(b_(name)) + struct.pack("<QQII", len(fb), H(fb), first, len(ts))
        m_files += struct.pack("<Q", plen) + fb[:plen]
        first += len(ts)
        tensors += ts
    m_t = b""
    for i, (name, dt, shape, raw) in enumerate(tensors):
        cs = chunk_size if raw and i not in inline else 0
        pm = params[i] if params else b""
        m_t += str16(b_(name)) + struct.pack("<BBBB", DT[dt][0], codecs[i], len(shape), 0)
        m_t += b"".join(struct.pack("<Q", d) for d in shape) + struct.pack("<QIH", len(raw), cs, len(pm)) + pm
        assert codecs[i] in (0, 1) or not raw  # this writer has no float-ans encoder
        if i in inline:
            assert raw
            pl = raw if codecs[i] == 0 else chunk_frame(raw)
            m_t += struct.pack("<I", len(pl)) + pl
            continue
        for off in range(0, len(raw), chunk_size):
            c = raw[off:off + chunk_size]
            chunks.append((c if codecs[i] == 0 else chunk_frame(c), len(c)))
    m = struct.pack("<IIII", len(files), len(tensors), len(chunks), 0) + m_files + m_t + struct.pack("<I", 0)
    return assemble(m, chunks, major, minor, manifest_frame=manifest_frame, index_frame=index_frame)


def main(d):
    os.makedirs(os.path.join(d, "bad"), exist_ok=True)
    ts = [("w.bf16", "BF16", [2, 3], bytes(range(12))),
          ("bytes", "U8", [150], bytes((i * 7) & 255 for i in range(150))),
          ("empty", "F32", [0, 4], b""),
          ("scalar", "I64", [], struct.pack("<q", -5)),
          ("nibbles", "F4", [6], b"\x12\x34\x56")]
    fb, plen = safetensors(ts, {"format": "pt"}, pad=5)
    vectors = {
        "single_raw": container([(0, "model.safetensors", fb, plen, ts)], 64, [0] * 5),
        "single_zstd": container([(0, "model.safetensors", fb, plen, ts)], 64, [1, 1, 0, 1, 1]),
    }
    empty, eplen = safetensors([])
    vectors["no_tensors"] = container([(0, "empty.safetensors", empty, eplen, [])], 64, [])
    s1, p1 = safetensors(ts[:2])
    s2, p2 = safetensors(ts[3:])
    idx = json.dumps({"metadata": {"total_size": 170}, "weight_map": {"w.bf16": "a.safetensors", "bytes": "a.safetensors",
                      "scalar": "b.safetensors", "nibbles": "b.safetensors"}}).encode()
    vectors["sharded"] = container([(1, "model.safetensors.index.json", idx, 0, [("model.safetensors.index.json", "U8", [len(idx)], idx)]),
                                    (0, "a.safetensors", s1, p1, ts[:2]), (0, "b.safetensors", s2, p2, ts[3:])],
                                   128, [1, 0, 0, 0, 0])
    # Version 1.1: a model folder; names are relative paths, blobs hold configs.
    cfg, ucfg = b'{"model_type": "llama"}\n', b'{"sample_size": 64}\n'
    folder = [(1, "config.json", cfg, 0, [("config.json", "U8", [len(cfg)], cfg)]),
              (0, "model.safetensors", s1, p1, ts[:2]),
              (1, "unet/config.json", ucfg, 0, [("unet/config.json", "U8", [len(ucfg)], ucfg)]),
              (0, "unet/diffusion_pytorch_model.safetensors", s2, p2, ts[3:])]
    vectors["folder"] = container(folder, 64, [1, 0, 0, 0, 1, 0, 0], minor=1)
    for name, v in vectors.items():
        put(d, name + ".wcz", v)
    for _, n, b, _, _ in folder:
        put(d, "folder." + n.replace("/", "__") + ".expected", b)
    put(d, "single_raw.expected", fb)
    put(d, "single_zstd.expected", fb)
    put(d, "no_tensors.expected", empty)
    for n, b in (("model.safetensors.index.json", idx), ("a.safetensors", s1), ("b.safetensors", s2)):
        put(d, "sharded." + n + ".expected", b)
    # Files every reader must reject: name.<expected error code name>.wcz
    good = vectors["single_raw"]
    bad = {
        "major2_1x_manifest.corrupt": container([(0, "model.safetensors", fb, plen, ts)], 64, [0] * 5, major=2),
        "truncated.bad_magic": good[:-1],
        "appended.bad_magic": good + b"\0",
        "payload_bitflip.checksum": flip(good, first_padding(good) // 64 * 64 + 64 + 3),
        "header_bitflip.checksum": flip(good, 20),
        "padding_nonzero.corrupt": set_byte(good, first_padding(good)),
        "unknown_dtype.corrupt": container_patch_dtype(fb, plen, ts),
    }
    bad.update(hostile(ts, good, (s1, p1, ts[:2]), (s2, p2, ts[3:])))
    put_bad(d, bad)
    assert container2([(0, "model.safetensors", fb, plen, [Exact(*t, codec=c) for t, c in zip(ts, [1, 1, 0, 1, 1])])],
                      major=1) == vectors["single_zstd"]  # the 2.0 writer below writes 1.x as the one above
    lossy_vectors(d, ts)
    outlier_vectors(d)
    mixed_vectors(d)
    shift_vectors(d)
    patch_vectors(d)
    groups_vectors(d)
    pairs_vectors(d)
    inline23_vectors(d)
    vq_vectors(d)
    vq_books_vectors(d)
    vq_additive_vectors(d)
    inline_exact_vectors(d)
    exact_top_vectors(d)
    refine_vectors(d)
    flag_vectors(d)
    order_vectors(d)
    pool_vectors(d)
    bitstack_vectors(d)


# Codec 4, float-ans-mixed (FORMAT.md §6, FLOAT_ANS.md §2): per chunk a float-ans-trim payload (mode 0
# raw, mode 1 rANS) or mode 2 and one zstd frame. The mode 1 chunks here are the float-ans vectors of
# tests/vectors/float_ans (pinned by the float-ans suite against FLOAT_ANS.md §9); mode 3 (the per-channel
# shift) and the float-ans encoder it needs are in shift_vectors below.

MIXED, FANS, MODE_RAW, MODE_ZSTD = 4, 2, b"\x00", b"\x02"


def fans_vector(name):
    base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "float_ans", name)
    return open(base + ".fans", "rb").read(), open(base + ".raw", "rb").read()


def mixed_tensors(zstd_frame=zraw, mode2=MODE_ZSTD, fans_codec=MIXED):
    """A BF16 tensor of three chunks (zstd, raw, rANS) and an F8_E4M3 tensor of one rANS chunk."""
    fans_bf16, raw_bf16 = fans_vector("bf16_3groups.BF16")
    fans_e4, raw_e4 = fans_vector("e4m3_2groups.F8_E4M3")
    cs = 10048  # a multiple of 64; the rANS chunk (10,000 bytes) is the last, shorter one
    z = bytes((i // 7) % 5 for i in range(cs))  # repetitive, as the chunks that take mode 2 are
    r = bytes((i * 37 + 11) & 255 for i in range(cs))
    raw = z + r + raw_bf16
    return [Exact("mixed.bf16", "BF16", [len(raw) // 2], raw, codec=fans_codec, chunk_size=cs,
                  stored=[mode2 + zstd_frame(z), MODE_RAW + r, fans_bf16]),
            Exact("mixed.e4m3", "F8_E4M3", [41, 100], raw_e4, codec=fans_codec, chunk_size=4160, stored=[fans_e4])]


def mixed_vectors(d):
    put_single(d, "float_ans_mixed", mixed_tensors(), 3)

    def one(ts, **kw):
        fb, plen = st_file(ts)
        return container2([(0, "model.safetensors", fb, plen, ts)], major=1, minor=3, **kw)

    def with_params(ts):
        ts[1].params = b"\x00"
        return ts
    bad = {
        # mode 2's zstd payload is exactly one frame (codec 1's rule). mixed_mode3 predates mode 3 (§2.1): its
        # mode byte 3 before a zstd frame reads as g = 8 > m and reserved = 0xFD2F, so it stays invalid (see
        # shift_vectors for mode 3 and shift_mode4 for a mode byte above 3)
        "mixed_zstd_two_frames.codec": one(mixed_tensors(zstd_frame=lambda c: zraw(c) + zraw(b""))),
        "mixed_zstd_skippable.codec": one(mixed_tensors(zstd_frame=lambda c: zraw(c) + skippable(b"#!/bin/sh\n"))),
        "mixed_mode3.codec": one(mixed_tensors(mode2=b"\x03")),
        # mode 2 belongs to codec 4 only: the same chunks under codec 2 (float-ans) are invalid
        "fans_mode2.codec": one(mixed_tensors(fans_codec=FANS)),
        # codec 4 takes no parameters
        "params_float_ans_mixed.corrupt": one(with_params(mixed_tensors())),
    }
    put_bad(d, bad)


# Checksum-valid hostile containers. XXH3 is no defence against an attacker, who recomputes
# every checksum (header, manifest, payloads, index, footer and each file's whole-file hash), so
# each of these is consistent everywhere except in the one thing it lies about.

def st_entries(ts):
    """The honest safetensors header entries of tensors ts: (name, dtype, shape, begin, end)."""
    out, pos = [], 0
    for name, dt, shape, raw in ts:
        out.append((name, dt, shape, pos, pos + len(raw)))
        pos += len(raw)
    return out


def st_prefix(entries, metadata=None, pad=0):
    """u64 N + a JSON header of N bytes written by hand, so that it can lie: entries may repeat
    a name, be in any order, or have bytes names (written verbatim, even if not UTF-8)."""
    j = lambda v: json.dumps(v, separators=(",", ":")).encode()
    items = [b'"__metadata__":' + j(metadata)] if metadata is not None else []
    for name, dt, shape, begin, end in entries:
        key = b'"' + name + b'"' if isinstance(name, bytes) else j(name)
        items.append(key + b":" + j({"dtype": dt, "shape": shape, "data_offsets": [begin, end]}))
    h = b"{" + b",".join(items) + b"}" + b" " * pad
    return struct.pack("<Q", len(h)) + h


def edit(entries, i, **kw):
    """entries with entry i's fields replaced (name=, dtype=, shape=, begin=, end=)."""
    e = dict(zip(("name", "dtype", "shape", "begin", "end"), entries[i]))
    e.update(kw)
    return entries[:i] + [tuple(e.values())] + entries[i + 1:]


def rename(ts, i, name):
    return ts[:i] + [(name,) + tuple(ts[i][1:])] + ts[i + 1:]


def single(prefix, ts, codecs=None, name="model.safetensors", **kw):
    """One safetensors file: the stored prefix, then the records' bytes (the file record's size
    and XXH3 are those of exactly that file)."""
    fb = prefix + b"".join(t[3] for t in ts)
    return container([(0, name, fb, len(prefix), ts)], 64, codecs or [0] * len(ts), **kw)


def shards(files, index=None):
    """Safetensors shards [(name, file_bytes, prefix_len, ts)], after a blob shard index if given."""
    recs, codecs = [], []
    if index is not None:
        name, blob = index
        recs.append((1, name, blob, 0, [(name, "U8", [len(blob)], blob)]))
        codecs.append(1)
    for name, fb, plen, ts in files:
        recs.append((0, name, fb, plen, ts))
        codecs += [0] * len(ts)
    return container(recs, 128, codecs)


def shard_index(weight_map):
    return json.dumps({"metadata": {"total_size": 170}, "weight_map": weight_map}).encode()


def hostile(ts, good, a, b):
    """ts: the tensors of the good vector `good`; a, b: (file_bytes, prefix_len, ts) of two shards."""
    meta = {"format": "pt"}
    E = st_entries(ts)
    honest = st_prefix(E, meta, pad=5)
    assert single(honest, ts) == good  # st_prefix writes what safetensors() writes
    swapped = edit(edit(E, 0, begin=150, end=162), 1, begin=0, end=150)  # bytes' data first, then w.bf16's
    gap = [E[0]] + [e[:3] + (e[3] + 4, e[4] + 4) for e in E[1:]]  # 4 bytes of no tensor after w.bf16
    A = ("a.safetensors", *a)
    B = lambda name: (name, *b)  # shard b under another name
    wm = {"w.bf16": "a.safetensors", "bytes": "a.safetensors", "scalar": "b.safetensors", "nibbles": "b.safetensors"}
    dup = rename(ts, 1, "w.bf16")
    nul, bad8 = rename(ts, 0, "w\0bf16"), rename(ts, 0, b"w\xff.bf16")
    shell = b"#!/bin/sh\necho pwned > /tmp/pwned\n"
    index_name = "model.safetensors.index.json"
    return {
        # Rule: the stored prefix is a safetensors header describing exactly the file's records.
        "prefix_renamed.corrupt": single(st_prefix(edit(E, 0, name="evil.backdoor"), meta), ts),  # header: evil.backdoor, record: w.bf16
        "prefix_dtype.corrupt": single(st_prefix(edit(E, 0, dtype="F16"), meta), ts),  # header: F16, record: BF16 (same size)
        "prefix_shape.corrupt": single(st_prefix(edit(E, 0, shape=[3, 2]), meta), ts),  # header: [3,2], record: [2,3]
        "prefix_order.corrupt": single(st_prefix(swapped, meta), ts),  # header: bytes' data before w.bf16's
        "prefix_shell_script.corrupt": single(shell + b"#" * (len(honest) - len(shell) - 1) + b"\n", ts),  # not a header at all
        "prefix_len_extra.corrupt": single(honest + b"EXTRA BYTES AFTER THE HEADER\n", ts),  # prefix longer than 8 + N
        "prefix_offsets_gap.corrupt": single(st_prefix(gap, meta), ts),  # header: offsets not contiguous
        "prefix_len_short.corrupt": single(struct.pack("<Q", len(honest)) + honest[8:], ts),  # N = prefix length: 8 + N is past its end
        "prefix_extra_tensor.corrupt": single(st_prefix(E + [("evil", "U8", [0], 173, 173)], meta), ts),  # header: a 6th (empty) tensor
        "prefix_missing_tensor.corrupt": single(st_prefix(E[:2] + E[3:], meta), ts),  # header omits the empty tensor 'empty'
        # Rule: names are distinct and valid UTF-8 without NUL (headers agree with the records).
        "dup_tensor_name.corrupt": single(st_prefix(st_entries(dup), meta), dup),  # two records (and JSON keys) named w.bf16
        "nul_tensor_name.corrupt": single(st_prefix(st_entries(nul), meta), nul),  # record: "w\0bf16", header: "w\u0000bf16"
        "bad_utf8_tensor_name.corrupt": single(st_prefix(st_entries(bad8), meta), bad8),  # "w\xff.bf16" in record and header
        "nul_file_name.corrupt": shards([A, B(b"b.safetensors\0.sh")]),  # file name with NUL
        "bad_utf8_file_name.corrupt": shards([A, B(b"..\xc0\xafb.safetensors")]),  # overlong "/": "../b.safetensors" to a lax decoder
        "dup_file_name.corrupt": shards([A, B("a.safetensors")]),  # two files named a.safetensors
        # Rule (1.1): a file name is a relative path: no "..", no absolute path, no empty part.
        "path_dotdot.corrupt": shards([A, B("x/../../b.safetensors")]),  # climbs out of the output folder
        "path_absolute.corrupt": shards([A, B("/tmp/b.safetensors")]),  # absolute
        "path_empty_part.corrupt": shards([A, B("x//b.safetensors")]),  # empty component
        "path_trailing_slash.corrupt": shards([A, B("x/")]),  # a folder, not a file
        "path_backslash.corrupt": shards([A, B("x\\b.safetensors")]),  # a Windows separator
        "path_too_deep.corrupt": shards([A, B("d/" * 32 + "b.safetensors")]),  # 33 components
        "path_in_1_0.corrupt": shards([A, B("sub/b.safetensors")]),  # a valid path, but the file says version 1.0
        # Rule: a *.safetensors.index.json blob maps tensors to safetensors files of this container.
        "shard_index_traversal.corrupt": shards([A, B("b.safetensors")],
                                                (index_name, shard_index({**wm, "scalar": "../../../../etc/passwd"}))),
        "shard_index_absent_shard.corrupt": shards([A, B("b.safetensors")],
                                                   (index_name, shard_index({**wm, "extra": "c.safetensors"}))),  # no c.safetensors
        "shard_index_names_blob.corrupt": shards([A, B("b.safetensors")],
                                                 (index_name, shard_index({**wm, "scalar": index_name}))),  # a blob, not a shard
        "shard_index_no_weight_map.corrupt": shards([A, B("b.safetensors")],
                                                    (index_name, json.dumps({"metadata": {"total_size": 170}}).encode())),
        "shard_index_not_json.corrupt": shards([A, B("b.safetensors")], (index_name, shell)),  # the index is a shell script
        # Rule: the manifest and the index are each exactly one zstd frame that declares its size.
        "manifest_two_frames.corrupt": single(honest, ts, manifest_frame=lambda m: zraw(m) + zraw(b"")),  # + an empty 2nd frame
        "manifest_skippable_frame.corrupt": single(honest, ts, manifest_frame=lambda m: zraw(m) + skippable(good)),  # + a whole container
        "manifest_no_content_size.corrupt": single(honest, ts, manifest_frame=zraw_unsized),  # frame without FCS
        "index_two_frames.corrupt": single(honest, ts, index_frame=lambda i: zraw(i) + zraw(b"")),
        "index_skippable_frame.corrupt": single(honest, ts, index_frame=lambda i: zraw(i) + skippable(good, 15)),
        "index_no_content_size.corrupt": single(honest, ts, index_frame=zraw_unsized),
        # Rule: a chunk of the zstd codec is exactly one zstd frame (its decoder rejects the rest).
        "zstd_chunk_two_frames.codec": single(honest, ts, [1, 1, 0, 1, 1], chunk_frame=lambda c: zraw(c) + zraw(b"")),
        "zstd_chunk_skippable.codec": single(honest, ts, [1, 1, 0, 1, 1], chunk_frame=lambda c: zraw(c) + skippable(shell)),
        # Rule: params are empty for raw, zstd and float-ans.
        "params_raw.corrupt": single(honest, ts, params=[b"\x01\x02", b"", b"", b"", b""]),  # raw with 2 params bytes
        "params_zstd.corrupt": single(honest, ts, [1, 1, 0, 1, 1], params=[b"", b"\x13", b"", b"", b""]),  # zstd with 1 byte
        "params_float_ans.corrupt": single(honest, ts, [0, 0, 2, 0, 0], params=[b"", b"", b"\x00", b"", b""]),  # empty F32, float-ans
    }


def flip(b, i):
    b = bytearray(b); b[i] ^= 0x10; return bytes(b)


def set_byte(b, i):
    b = bytearray(b); b[i] = 1; return bytes(b)


def first_padding(b):
    ms = struct.unpack("<Q", b[16:24])[0]
    return 64 + ms  # the first byte after the manifest is padding in every vector here


def container_patch_dtype(fb, plen, ts):
    saved = DT["U8"]
    DT["U8"] = (99, 8)
    try:
        return container([(0, "model.safetensors", fb, plen, ts)], 64, [0] * 5)
    finally:
        DT["U8"] = saved


# ---------------------------------------------------------------------------------------------
# Version 2.0: lossy tensors (FORMAT.md §4, §4.2-§4.4, §10) and representation 1, qrow (QROW.md).

DTYPES = {"BOOL": (0, 8), "U8": (1, 8), "I8": (2, 8), "F8_E5M2": (3, 8), "F8_E4M3": (4, 8), "I16": (6, 16), "U16": (7, 16), "F16": (8, 16), "BF16": (9, 16),
          "I32": (10, 32), "U32": (11, 32), "F32": (12, 32), "F64": (13, 64), "I64": (14, 64), "U64": (15, 64), "F4": (16, 4)}
CODES, SCALES, CODEBOOK, OUTLIERS, RESIDUAL = 0, 1, 2, 3, 4  # part roles (§4.4)
PER_ELEMENT, PER_ROW, TENSOR_WIDE, INLINE, PER_GROUP = 0, 1, 2, 3, 4  # part layouts (§4.4; 4: 2.4)


class Exact:
    """An exact tensor (repr 0): its bytes, cut into chunks of chunk_size (§4.3)."""

    def __init__(self, name, dtype, shape, raw, codec=0, chunk_size=64, params=b"", repr=0, stored=None,
                 inline=False, stored_size=None):
        self.name, self.dtype, self.shape, self.raw, self.codec = name, dtype, list(shape), raw, codec
        self.chunk_size, self.params, self.repr = chunk_size, params, repr
        self.stored = stored  # explicit payloads, one per chunk (codecs this writer cannot frame itself)
        # 1.4, 2.5 (§4.2): inline: chunk_size 0, then u32 stored_size (the payload's length unless stored_size
        # lies) and the payload (stored[0], or the raw bytes for codec 0, a zstd frame for codec 1); no chunk
        self.inline, self.stored_size = inline, stored_size

    def payload(self):
        """An inline tensor's payload: one chunk of its codec."""
        if self.stored is not None:
            assert len(self.stored) == 1
            return self.stored[0]
        assert self.codec in (0, 1)
        return self.raw if self.codec == 0 else zraw(self.raw)

    def out(self):
        return self.raw


class Part:
    """A part of a lossy tensor (§4.4). data: all its items, little-endian. items: the record's field
    (default: what data holds). frame: how a chunk of a codec other than raw is coded (zraw: a zstd frame).
    An inline part with codec != 0 (2.3) is written as u32 stored_size, then its payload: stored (default
    frame(data)) and stored_size (default the payload's length) may lie; bare writes the items as they are
    whatever the codec (an inline part as a 2.0-2.2 writer wrote it)."""

    def __init__(self, role, layout, item, data, codec=0, level=0, items=None, params=b"", reserved=0, frame=zraw,
                 stored=None, stored_size=None, bare=False):
        self.role, self.layout, self.item, self.data, self.codec, self.level = role, layout, item, data, codec, level
        self.items = len(data) * 8 // DTYPES[item][1] if items is None else items
        self.params, self.reserved, self.frame = params, reserved, frame
        self.stored, self.stored_size, self.bare = stored, stored_size, bare

    def inline(self):
        """The bytes after `items` in the record of an inline part (§4.4: data, and in 2.3 stored_size)."""
        if self.codec == 0 or self.bare:
            return self.data
        payload = self.frame(self.data) if self.stored is None else self.stored
        return struct.pack("<I", len(payload) if self.stored_size is None else self.stored_size) + payload


class Lossy:
    """A lossy tensor (repr != 0). recon: the bytes unpack writes (top level); levels: [(xxh3, rel_rmse,
    max_abs)]. Fields the bad vectors lie about: codec, part_count, reserved, tile_rows_field."""

    def __init__(self, name, dtype, shape, recon, tile_rows, params, parts, levels, repr=1):
        self.name, self.dtype, self.shape, self.recon, self.tile_rows = name, dtype, list(shape), recon, tile_rows
        self.params, self.parts, self.levels, self.repr = params, parts, levels, repr
        self.codec, self.part_count, self.reserved, self.tile_rows_field = 0, len(parts), 0, tile_rows

    def out(self):
        return self.recon


def byte_size(dtype, shape):
    return math.prod(shape) * DTYPES[dtype][1] // 8


def tensor_chunks(t):
    """[(level, stored, raw_size)] of tensor t, in its own order within each level (§4.3)."""
    if isinstance(t, Exact) and t.inline:
        return []  # 1.4, 2.5: its payload is in its record
    if isinstance(t, Exact) and t.stored is not None:
        pieces = [t.raw[o:o + t.chunk_size] for o in range(0, len(t.raw), t.chunk_size)]
        assert len(pieces) == len(t.stored)
        return [(0, st, len(raw)) for st, raw in zip(t.stored, pieces)]
    if isinstance(t, Exact):
        return [(0, t.raw[o:o + t.chunk_size] if t.codec == 0 else zraw(t.raw[o:o + t.chunk_size]),
                 len(t.raw[o:o + t.chunk_size])) for o in range(0, len(t.raw), t.chunk_size)]
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    tiles = -(-rows // t.tile_rows)
    enc = lambda p, raw: (p.level, raw if p.codec == 0 else p.frame(raw), len(raw))
    out = []
    for level in sorted({p.level for p in t.parts}):
        out += [enc(p, p.data) for p in t.parts if p.level == level and p.layout == TENSOR_WIDE and p.data]
        for i in range(tiles):
            r0, r1 = i * t.tile_rows, min(rows, (i + 1) * t.tile_rows)
            for p in t.parts:
                if p.level == level and p.layout in (PER_ELEMENT, PER_ROW, PER_GROUP):
                    # per group (2.4): cols / g items a row; g is the record's group byte (`reserved`) unless a
                    # bad vector lies about it (chunk_group: the g its data is cut by)
                    per = (cols if p.layout == PER_ELEMENT else 1 if p.layout == PER_ROW
                           else cols // getattr(p, "chunk_group", p.reserved)) * DTYPES[p.item][1] // 8
                    raw = p.data[r0 * per:r1 * per]
                    # codec 6 (2.7, EXACT_TOP.md §5): each tile's payload is coded with the tensor's tables and
                    # contexts, so the tensor gives it (tile_stored) rather than a frame of the bytes alone
                    ts_ = getattr(p, "tile_stored", None)
                    out.append((p.level, ts_[i], len(raw)) if ts_ is not None else enc(p, raw))
    return out


def tensor_record(t, major):
    rec = str16(b_(t.name)) + struct.pack("<BBBB", DTYPES[t.dtype][0], t.codec, len(t.shape), t.repr)
    rec += b"".join(struct.pack("<Q", d) for d in t.shape)
    size = byte_size(t.dtype, t.shape)
    if isinstance(t, Exact):
        assert size == len(t.raw)
        if t.inline:
            assert size > 0
            pl = t.payload()
            rec += struct.pack("<QIH", size, 0, len(t.params)) + t.params
            return rec + struct.pack("<I", len(pl) if t.stored_size is None else t.stored_size) + pl
        return rec + struct.pack("<QIH", size, t.chunk_size if size else 0, len(t.params)) + t.params
    assert major >= 2 and size == len(t.recon)
    rec += struct.pack("<QIH", size, t.tile_rows_field, len(t.params)) + t.params
    rec += struct.pack("<BBH", t.part_count, len(t.levels), t.reserved)
    for p in t.parts:
        rec += struct.pack("<BBBBBBH", p.role, p.level, p.codec, p.layout, DTYPES[p.item][0], p.reserved, len(p.params))
        rec += p.params + struct.pack("<Q", p.items) + (p.inline() if p.layout == INLINE else b"")
    return rec + b"".join(struct.pack("<Qff", *lv) for lv in t.levels)


def container2(files, major=2, minor=0, level_count=None, chunk_order=0, reserved=0, level_first_chunk=None,
               file_xxh3=None, index_edit=None, steps=None, step_list=None, step_count=None, extensions=None):
    """files: [(kind, name, file_bytes, prefix_len, [Exact | Lossy])]. major 1 writes the 1.x manifest head
    (exact tensors only). The manifest head (level_count, level_first_chunk) is derived from the parts
    unless given; file_xxh3 {file number: value} and index_edit(seq, (offset, stored, raw, xxh3)) lie.
    steps (2.9, chunk order 1, FORMAT.md §4, §4.3): {tensor name: [the step of each of its levels 1 .. levels - 1]}
    for the tensors of more than one level (level 0 arrives at step 0): the chunks are in step order (for each step
    K, in tensor order, the chunks of the tensor levels arriving at K, each as tensor_chunks lays a level out),
    level_count is 1 + the highest step, level_first_chunk[K] the chunks before step K, and after it u32 step_count
    and the step list (each tensor of more than one level in tensor order, its levels' steps). step_list (the bytes)
    and step_count (an int, or f(bytes after the count field)) lie; chunk_order is written as given.
    extensions: the manifest's bytes after the tensor records (u32 extension_count and the extensions, §4.5; 1.8 and
    2.13: the pools, pool_vectors()), by default none (u32 0)."""
    tensors = [t for f in files for t in f[4]]
    per_tensor = [tensor_chunks(t) for t in tensors]
    levels = 1 + max([p.level for t in tensors if isinstance(t, Lossy) for p in t.parts], default=0)
    chunks, lfc = [], []
    if steps is None:
        for level in range(levels):  # level-major (§4.3)
            lfc.append(len(chunks))
            chunks += [(stored, raw) for tc in per_tensor for (lv, stored, raw) in tc if lv == level]
    else:  # 2.9: step order (§4.3)
        arrive = []  # per tensor: the step of each of its levels
        for t in tensors:
            nl = len(t.levels) if isinstance(t, Lossy) else 1
            arrive.append([0] + list(steps[t.name]) if nl > 1 else [0])
            assert len(arrive[-1]) == nl and (nl > 1 or t.name not in steps), t.name
        levels = 1 + max(s for a in arrive for s in a)
        for K in range(levels):
            lfc.append(len(chunks))
            for a, tc in zip(arrive, per_tensor):
                for L, s in enumerate(a):
                    if s == K:
                        chunks += [(stored, raw) for (lv, stored, raw) in tc if lv == L]
        assert len(chunks) == sum(len(tc) for tc in per_tensor)
        listed = bytes(s for a in arrive for s in a[1:])
        step_list = listed if step_list is None else bytes(step_list)
    if major >= 2:
        lc = levels if level_count is None else level_count
        lfc = lfc if level_first_chunk is None else level_first_chunk
        head = struct.pack("<IIIBBH", len(files), len(tensors), len(chunks), lc, chunk_order, reserved)
        head += b"".join(struct.pack("<I", c) for c in lfc)
        if steps is not None:
            head += struct.pack("<I", len(step_list) if step_count is None or callable(step_count) else step_count)
            count_at = len(head) - 4
            head += step_list
    else:
        head = struct.pack("<IIII", len(files), len(tensors), len(chunks), 0)
    m, first = head, 0
    for i, (kind, name, fb, plen, ts) in enumerate(files):
        assert fb == fb[:plen] + b"".join(t.out() for t in ts)
        h = (file_xxh3 or {}).get(i, H(fb))
        m += struct.pack("<BB", kind, 0) + str16(b_(name)) + struct.pack("<QQII", len(fb), h, first, len(ts))
        m += struct.pack("<Q", plen) + fb[:plen]
        first += len(ts)
    m += b"".join(tensor_record(t, major) for t in tensors) + (struct.pack("<I", 0) if extensions is None else extensions)
    if steps is not None and callable(step_count):  # a count from the bytes that follow it
        m = m[:count_at] + struct.pack("<I", step_count(len(m) - count_at - 4)) + m[count_at + 4:]
    return assemble(m, chunks, major, minor, index_edit)


def assemble(m, chunks, major, minor, index_edit=None, manifest_frame=zraw, index_frame=zraw):
    """Header, manifest m, chunk area, index and footer (§3, §5, §7, §8); chunks: [(stored, raw_size)].
    index_edit(seq, entry) may replace an index entry; *_frame: how the manifest and index are framed."""
    ms = manifest_frame(m)
    head = b"\x89WCZ\r\n\x1a\n" + struct.pack("<HHIQQQ", major, minor, 0, len(ms), len(m), H(ms)) + b"\0" * 16
    head += struct.pack("<Q", H(head))
    out = bytearray(head + ms)
    index = struct.pack("<Q", len(chunks))
    for seq, (stored, rawlen) in enumerate(chunks):
        off = (len(out) + 16 + 63) // 64 * 64
        out += b"\0" * (off - 16 - len(out))
        out += struct.pack("<IIQ", len(stored), seq, H(stored)) + stored
        entry = (off, len(stored), rawlen, H(stored))
        index += struct.pack("<QIIQ", *(index_edit(seq, entry) if index_edit else entry))
    io = (len(out) + 63) // 64 * 64
    out += b"\0" * (io - len(out))
    ist = index_frame(index)
    out += ist
    foot = struct.pack("<QQQQQHHI", io, len(ist), len(index), H(ist), len(out) + 64, major, minor, 0)
    foot += struct.pack("<Q", H(foot)) + b"\x89WCZEND\n"
    return bytes(out + foot)


def st_file(tensors, metadata={"format": "pt"}):
    """The unpacked safetensors file of tensors (their bytes in order) and its prefix length."""
    return safetensors([(t.name, t.dtype, t.shape, t.out()) for t in tensors], metadata)


def one_file(tensors, **kw):
    """A 2.x container (container2's keywords) of one model.safetensors holding tensors."""
    fb, plen = st_file(tensors)
    return container2([(0, "model.safetensors", fb, plen, tensors)], **kw)


def norm_exact():
    """The exact F32 tensor the bad lossy vectors put before the tensor they break."""
    return Exact("norm.weight", "F32", [4], np.array([1, -1, 2, -2], dtype="<f4").tobytes())


# qrow arithmetic (QROW.md §2, §3), written from the spec.

def zigzag(q):
    return (q << 1) ^ (-1 if q < 0 else 0)


def unzigzag(u):
    return (u >> 1) ^ -(u & 1)


def f32_bits(x):
    return int(np.float32(x).view(np.uint32))


def bf16_of(b):
    return ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFFFFFF) >> 16


def f16_of(b):
    """binary32 bits -> binary16 bits, round to nearest even, subnormals, +-inf past 65504 (pure integers).
    Returns (bits, tie): tie when the value was exactly halfway between two binary16 values."""
    sign, exp, man = (b >> 16) & 0x8000, (b >> 23) & 0xFF, b & 0x7FFFFF
    if exp == 0xFF:
        return sign | 0x7C00 | (0x200 if man else 0), False
    if exp == 0:  # a binary32 subnormal is < 2^-126: far below half the least binary16 subnormal
        return sign, False
    e, sig = exp - 127, man | 0x800000  # value = sig * 2^(e - 23)
    lsb = max(e, -14) - 10  # exponent of the result's last place: 2^-24 for subnormals
    s = lsb - (e - 23)  # >= 13: bits of sig below the last place
    r, rem, half = sig >> s, sig & ((1 << s) - 1), 1 << (s - 1)
    r += 1 if rem > half or (rem == half and r & 1) else 0
    bits = ((e + 15) << 10) + r - 1024 if e >= -14 else r  # a carry to 2^11 moves to the next exponent
    return sign | min(bits, 0x7C00), rem == half


def qrow(name, dtype, shape, B, e, q, tile_rows, code_item="U8", scales_layout=PER_ROW, scales_codec=0, codes_codec=0,
         params=None, codes_layout=PER_ELEMENT, scales_frame=zraw, codes_frame=zraw, f16_inf=False):
    """A qrow tensor from its base exponent B, row exponents e and signed codes q (row-major), reconstructed
    as QROW.md §2-§3 say; levels[0] holds the XXH3-64 of that and its error against invented originals.
    A B out of range (bad vectors) is reconstructed by the same formulas, unchecked, as a reader that
    forgot the rule would. f16_inf: an F16 value may overflow to +-Inf (QROW.md §3: past 65504, after rounding;
    the exact-top vectors use it), otherwise every value is finite."""
    ok = -126 <= B <= 96
    rows, cols = shape[0], math.prod(shape[1:])
    assert len(e) == rows and len(q) == rows * cols
    out = []
    for r in range(rows):
        E = B + (e[r] >> 4)
        step = np.array([((E + 127) << 23) | ((e[r] & 15) << 19)], dtype=np.uint32).view(np.float32)[0]
        assert float(step) == (1 + (e[r] & 15) / 16) * 2.0 ** E or not ok
        qs = q[r * cols:(r + 1) * cols]
        u = [unzigzag(zigzag(x)) for x in qs]
        assert u == qs
        y = np.array(qs, dtype=np.float32) * step  # one binary32 multiplication each (RNE)
        for x, yy in zip(qs, y):
            assert float(yy) == x * (16 + (e[r] & 15)) * 2.0 ** (E - 4) and np.isfinite(yy) or not ok  # exact
            b = f32_bits(yy)
            assert x != 0 or b == 0 or not ok  # q = 0 gives +0
            out.append(b)
    if dtype == "F32":
        bits = np.array(out, dtype=np.uint32)
        vals = bits.view(np.float32)
    elif dtype == "BF16":
        bits = np.array([bf16_of(b) for b in out], dtype=np.uint16)
        vals = (bits.astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F16":
        with np.errstate(over="ignore"):  # (f16_inf: past 65504, Inf)
            bits = np.array(out, dtype=np.uint32).view(np.float32).astype(np.float16).view(np.uint16)  # IEEE RNE
        assert [int(x) for x in bits] == [f16_of(b)[0] for b in out]  # numpy agrees with the spec's integers
        vals = bits.view(np.float16).astype(np.float32)
    else:  # a bad vector's dtype: the record is rejected before any value is made
        bits = np.array(out, dtype=np.uint32)
        vals = bits.view(np.float32)
    recon = bits.astype("<u%d" % bits.itemsize).tobytes()
    assert np.all(np.isfinite(vals)) or f16_inf and dtype == "F16" and not np.any(np.isnan(vals))
    # Invented originals: each value moved by up to 0.45 of its row's step (the error figures are informative).
    w = np.array([float(vals[i]) + (((i * 7 + 3) % 11) - 5) / 11.0 * (1 + (e[i // cols] & 15) / 16)
                  * 2.0 ** (B + (e[i // cols] >> 4)) for i in range(rows * cols)])
    with np.errstate(invalid="ignore"):  # (f16_inf: Inf - Inf; exact_top() replaces these figures)
        d = w - vals.astype(np.float64)
        rel = math.sqrt(float(np.sum(d * d)) / float(np.sum(w * w))) if np.any(w) else 0.0
    levels = [(H(recon), rel, float(np.max(np.abs(d))))]
    scales = bytes(e)
    codes = b"".join(struct.pack("<H" if code_item == "U16" else "<B", zigzag(x)) for x in q)
    parts = [Part(SCALES, scales_layout, "U8", scales, codec=scales_codec, frame=scales_frame),
             Part(CODES, codes_layout, code_item, codes, codec=codes_codec, frame=codes_frame)]
    t = Lossy(name, dtype, shape, recon, tile_rows, struct.pack("<h", B) if params is None else params, parts, levels)
    t.bits, t.f32_bits = bits, out
    return t


def check_f16_sweep():
    """f16_of against numpy's float32 -> float16 over edge cases and a deterministic sweep of bit patterns."""
    pats = [0, 0x80000000, 0x7F7FFFFF, 0x477FE000, 0x477FEFFF, 0x477FF000, 0x38800000, 0x33800000, 0x33000000,
            0x33000001, 0x33C00000, 0x387FC000, 0x387FE000, 0x00000001, 0x7F800000]
    x = 0x12345678
    for _ in range(100000):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        pats.append(x if (x >> 23) & 0xFF != 0xFF else x & 0x807FFFFF)
    pats += [(e << 23) | m for e in range(100, 145) for m in (0, 0x1000, 0x1FFF, 0x2000, 0x3000, 0x7FE000, 0x7FF000)]
    with np.errstate(over="ignore"):  # past 65504: infinity, as the spec says
        got = np.array(pats, dtype=np.uint32).view(np.float32).astype(np.float16).view(np.uint16)
    assert [int(g) for g in got] == [f16_of(p)[0] for p in pats]


def lossy_vectors(d, ts):
    check_f16_sweep()
    norm = Exact("norm.weight", "F32", [8], np.array([1, 0.5, -2.25, 3e-3, 0, -0.0, 1e30, -7.5], dtype="<f4").tobytes())
    # a: BF16, B = -126 (the bottom of the range), small row exponents, 3 tiles. 17 x 17 = 289 and
    # 19 x 17 = 17 x 19 = 323 have 9 significant bits: ties, rounding to even down (289, 361) and up (323).
    a = qrow("a.weight", "BF16", [5, 12], -126, [0x01, 0x03, 0x10, 0x2F, 0x00],
             [0, 1, -1, 17, -17, 19, -19, 127, -128, 33, 5, -6,
              17, 19, -17, -19, 2, 64, -64, 100, -100, 0, 1, 3,
              3, -3, 45, -45, 77, -77, 120, -120, 0, 8, -8, 16,
              127, -128, 126, -127, 1, -1, 99, -99, 50, -50, 0, 25,
              1, 2, 4, 8, 16, 32, 64, -128, 127, -127, 0, -1], 2)
    ties = [b for b in a.f32_bits if b & 0xFFFF == 0x8000]
    assert any(bf16_of(b) & 1 == 0 and bf16_of(b) == b >> 16 for b in ties)  # a tie rounded down (to even)
    assert any(bf16_of(b) == (b >> 16) + 1 for b in ties)  # a tie rounded up (to even)
    # b: F16 [3, 4, 5], B = -26, scales inline, U16 codes with zstd, one tile of 8 rows. Row 0 (step 2^-26):
    # subnormal results and ties among them (2 -> +0, -2 -> -0, 6 -> 2^-23, 10 -> 2 x 2^-24); row 1 (step
    # 2^-18): ties in the normal range (2049 down, 2051 up); row 2 (step 31/16 x 2^-11): the U16 extremes.
    b = qrow("b.weight", "F16", [3, 4, 5], -26, [0x00, 0x80, 0xFF],
             [0, 1, -1, 2, -2, 3, 6, -6, 10, 64, 1024, 16384, 32767, -32768, 5, 7, 12, 100, -100, 255,
              2049, 2051, -2049, -2051, 4097, 6147, 32767, -32768, 0, 1, -1, 3, 1000, -1000, 12345, -12345, 2047,
              2048, 30000, -30001,
              32767, -32768, 0, 1, -1, 127, 128, -129, 255, 256, 1000, -1000, 4096, 8191, -8191, 20000, -20000, 7, 77,
              777], 8, code_item="U16", scales_layout=INLINE, codes_codec=1)
    f16 = [(f16_of(x), int(h)) for x, h in zip(b.f32_bits, b.bits)]
    assert any(t and 0 < h & 0x7FFF < 0x400 for (_, t), h in f16)  # a subnormal tie
    assert any(t and 0x400 <= h & 0x7FFF < 0x7C00 for (_, t), h in f16)  # a normal tie
    assert any(0 < h & 0x7FFF < 0x400 for _, h in f16) and 0x8000 in [h for _, h in f16]  # subnormals, -0
    assert all(h & 0x7FFF < 0x7C00 for _, h in f16)  # finite
    # c: F32, B = 96 (the top): the largest step 31/16 x 2^111 times -128 stays finite; 2 tiles of 3 rows.
    c = qrow("c.weight", "F32", [4, 3], 96, [0xFF, 0x00, 0x8A, 0x35],
             [-128, 127, 0, 1, -1, 2, 55, -66, 77, -3, 100, 9], 3)
    qts = [norm, a, b, c]
    fb, plen = st_file(qts)
    good = {"lossy_qrow": container2([(0, "model.safetensors", fb, plen, qts)])}
    put(d, "lossy_qrow.expected", fb)
    # Exact (zstd, 3 chunks), lossy (2 tiles: scales, codes, scales, codes), exact (zstd, 2 chunks).
    embed = Exact("embed.weight", "F32", [40], np.arange(-20, 20, dtype="<f4").tobytes(), codec=1)
    mid = qrow("mid.weight", "BF16", [3, 8], -10, [0x45, 0x00, 0x9C],
               [1, -1, 2, -2, 3, -3, 4, -4, 0, 10, -10, 100, -100, 127, -128, 17, 19, 21, -23, 25, 27, -29, 31, 33], 2)
    head = Exact("head.bias", "F16", [48], np.linspace(-1, 1, 48).astype("<f2").tobytes(), codec=1)
    mts = [embed, mid, head]
    mfb, mplen = st_file(mts)
    good["lossy_mixed"] = container2([(0, "model.safetensors", mfb, mplen, mts)])
    assert struct.unpack("<I", zread_manifest(good["lossy_mixed"])[8:12])[0] == 3 + 4 + 2
    put(d, "lossy_mixed.expected", mfb)
    # An unknown representation (9) between an exact and a qrow tensor, with a tensor-wide part and a part
    # at level 1: its structure is valid (§4.4), so inspect lists it; a reader that must decode it refuses.
    # Its bytes in the file record (and the level hashes) are invented: no reader can make them.
    first = Exact("first.weight", "F32", [4], np.array([1, 2, 3, 4], dtype="<f4").tobytes())
    odd_bytes = bytes(range(64))
    odd = Lossy("odd.weight", "BF16", [4, 8], odd_bytes, 2, b"\x01\x02\x03",
                [Part(CODEBOOK, TENSOR_WIDE, "F32", np.array([-1, -0.5, 0.5, 1], dtype="<f4").tobytes()),
                 Part(CODES, PER_ELEMENT, "U8", bytes(i * 5 & 255 for i in range(32))),
                 Part(RESIDUAL, PER_ROW, "U16", struct.pack("<4H", 1, 2, 3, 4), level=1)],
                [(H(odd_bytes[:32] * 2), 0.5, 1.0), (H(odd_bytes), 0.25, 0.5)], repr=9)
    last = qrow("last.weight", "F32", [2, 3], -3, [0x11, 0x22], [1, 2, 3, -4, -5, 0], 1)
    uts = [first, odd, last]
    ufb, uplen = st_file(uts)
    good["lossy_unknown_repr"] = container2([(0, "model.safetensors", ufb, uplen, uts)])
    assert struct.unpack("<IIIBBHII", zread_manifest(good["lossy_unknown_repr"])[:24]) == (1, 3, 10, 2, 0, 0, 0, 8)
    for name, v in good.items():
        put(d, name + ".wcz", v)
    put_bad(d, lossy_bad(ts))


def zread_manifest(wcz):
    """The manifest of a container this writer made (one raw block per 64 KiB)."""
    ms = struct.unpack("<Q", wcz[16:24])[0]
    frame, out, pos = wcz[64:64 + ms], b"", 13
    while pos < len(frame):
        hdr = int.from_bytes(frame[pos:pos + 3], "little")
        out += frame[pos + 3:pos + 3 + (hdr >> 3)]
        pos += 3 + (hdr >> 3)
    return out


def lossy_bad(ts):
    """2.0 files every reader must reject, checksum-valid everywhere, each breaking one rule (or as few as
    the rule allows); ts: the tensors of the 1.0 vector single_raw."""
    def base(B=-20, dtype="BF16", shape=(4, 6), tile_rows=3, **kw):
        """An exact F32 tensor, then a qrow tensor (2 tiles) whose codes use zstd."""
        rows, cols = shape[0], math.prod(shape[1:])
        q = [((i * 37) % 255) - 127 for i in range(rows * cols)]
        e = [(0x13 * r) & 0xFF for r in range(rows)]
        t = qrow("w.weight", dtype, list(shape), B, e, q, tile_rows, codes_codec=1, **kw)
        return [norm_exact(), t]

    one = one_file

    def lie(f, **kw):
        """base(**kw) with its qrow tensor changed by f (which may return a replacement)."""
        t = base(**kw)
        t[1] = f(t[1]) or t[1]
        return one(t)

    def setattrs(obj, **kw):
        for k, v in kw.items():
            setattr(obj, k, v)

    def codes_per_row(t):  # codes one per row: consistent with layout 1 everywhere but in qrow's rule
        setattrs(t.parts[1], layout=PER_ROW, data=t.parts[1].data[:t.shape[0]], items=t.shape[0])

    def codes_f32(t):
        setattrs(t.parts[1], item="F32", data=np.array(range(24), dtype="<f4").tobytes(), items=24)

    def scales_u16(t):
        setattrs(t.parts[0], item="U16", data=b"".join(struct.pack("<H", x) for x in t.parts[0].data), items=4)

    def third_part(t):
        t.parts.append(Part(OUTLIERS, TENSOR_WIDE, "U8", b"\x00\x01\x02\x03"))
        t.part_count = 3

    def level_1_part(t):
        t.parts[1].level = 1  # the tensor has 1 level; the manifest's level count follows the parts (2)

    def two_levels(t):
        t.levels = t.levels * 2  # level 1 has no part

    def inline_scales(codec, items=None):
        def f(t):
            setattrs(t.parts[0], layout=INLINE, codec=codec, bare=True)
            if items is not None:
                setattrs(t.parts[0], data=t.parts[0].data + b"\x00" * (items - len(t.parts[0].data)), items=items)
        return f

    def raw_size_off(seq, entry):  # chunk 2: tile 0's codes (zstd; its frame declares the true size)
        return entry[:2] + (entry[2] + 1,) + entry[3:] if seq == 2 else entry

    assert struct.unpack("<I", zread_manifest(one(base()))[8:12])[0] == 5  # norm, then 2 tiles x (scales, codes)
    fb, plen = safetensors(ts, {"format": "pt"}, pad=5)
    repr_1_0 = [Exact(*t) for t in ts]
    repr_1_0[0].repr = 1
    fxxh = base()
    return {
        # QROW.md §1: -126 <= B <= 96, exactly 2 bytes of params.
        "qrow_base_97.corrupt": one(base(B=97)),
        "qrow_base_m127.corrupt": one(base(B=-127)),
        "qrow_params_3_bytes.corrupt": one(base(params=b"\xec\xff\x00")),
        # QROW.md §1: 2 parts (scales U8 per row or inline; codes U8/U16 per element), 1 level; rank >= 2;
        # BF16, F16 or F32.
        "qrow_3_parts.corrupt": lie(third_part),
        "qrow_codes_per_row.corrupt": lie(codes_per_row),
        "qrow_codes_f32.corrupt": lie(codes_f32),
        "qrow_scales_u16.corrupt": lie(scales_u16),
        "qrow_inline_scales_items.corrupt": lie(inline_scales(0, items=5)),  # inline scales: items = rows
        "qrow_rank1.corrupt": one(base(shape=(24,), tile_rows=10)),
        "qrow_dtype_i32.corrupt": one(base(dtype="I32")),
        "qrow_level_count_2.corrupt": lie(two_levels),
        # §4.2 / §4.4: generic rules of lossy tensor records.
        "part_level_1.corrupt": lie(level_1_part),  # a part's level >= the tensor's level_count (1)
        "part_reserved.corrupt": lie(lambda t: setattr(t.parts[1], "reserved", 1)),
        "part_items.corrupt": lie(lambda t: setattr(t.parts[1], "items", t.parts[1].items + 1)),  # != rows x cols
        # 2.0-2.2: inline parts take codec 0. The items follow as they are, so a 2.3 reader reads the first
        # four (0x00 0x13 0x26 0x39) as a stored_size far past the bound of 4 bytes (§5): still corrupt.
        "part_inline_codec_zstd.corrupt": lie(inline_scales(1)),
        "part_count_0.corrupt": lie(lambda t: setattrs(t, parts=[], part_count=0)),
        "lossy_codec_nonzero.corrupt": lie(lambda t: setattr(t, "codec", 1)),  # a lossy tensor's codec: 0
        "lossy_reserved.corrupt": lie(lambda t: setattr(t, "reserved", 1)),
        "lossy_tile_rows_0.corrupt": lie(lambda t: setattr(t, "tile_rows_field", 0)),
        "repr_in_1_0.corrupt": container2([(0, "model.safetensors", fb, plen, repr_1_0)], major=1),  # 1.x: reserved
        # §4 manifest head (2.0).
        "level_first_chunk_1.corrupt": one(base(), level_first_chunk=[1]),  # level 0 starts at chunk 0
        "manifest_level_count_2.corrupt": one(base(), level_count=2, level_first_chunk=[0, 5]),  # parts: 1 level
        "manifest_level_count_2_lfc.corrupt": one(base(), level_count=2, level_first_chunk=[0, 3]),  # and lfc wrong
        # (a 2.0 head with chunk order 1 and no step list: since 2.9 a reader reads the file record's first four
        # bytes, 00 00 11 00, as a step_count of 0x110000, past the manifest's end: still corrupt; order_bad())
        "chunk_order_1.corrupt": one(base(), chunk_order=1),
        "manifest_reserved.corrupt": one(base(), reserved=1),
        # §7: raw sizes against §4.3 (a tile's items x item bytes).
        "index_raw_size.corrupt": one(base(), index_edit=raw_size_off),
        # §4.4 level xxh3 (readers that decode the tensor), §4.1 file xxh3 (readers that decode the file).
        "level_xxh3_wrong.checksum": lie(lambda t: setattr(t, "levels", [(t.levels[0][0] ^ 1,) + t.levels[0][1:]])),
        "file_xxh3_wrong.checksum": one(fxxh, file_xxh3={0: H(st_file(fxxh)[0]) ^ 1}),
        # §10: a major version this reader does not know (a 2.0 file otherwise).
        "major3.unsupported_version": one(base(), major=3),
    }


# ---------------------------------------------------------------------------------------------
# Version 2.2: representation 2, qrow-outliers (OUTLIERS.md; FORMAT.md §4.4, §10): a qrow tensor plus an
# inline part, the outlier block: u32 tiles, u32 end[T], then per tile a section, empty or a form byte
# (1: row lists of LEB128 varints, 2: a bitmask) and the outliers' values in the tensor's dtype. Written
# from OUTLIERS.md alone; parse_outliers() checks every rule of its §2, and every block written here is
# parsed back by it (good ones to the reconstruction they claim, bad ones failing on their rule).

def leb128(v, nbytes=None):
    """LEB128 (§2): 7 bits a byte, least significant group first, bit 7 set on all but the last. nbytes
    writes that many bytes, the top groups zero (0x80 0x00 is a 2-byte 0)."""
    n = max(1, -(-v.bit_length() // 7)) if nbytes is None else nbytes
    assert 0 <= v < 1 << (7 * n)
    return bytes(((v >> (7 * i)) & 0x7F) | (0x80 if i < n - 1 else 0) for i in range(n))


def dtype_values(vals, dtype):
    """value[N]: V bytes each, little-endian, of the given bit patterns."""
    return b"".join(v.to_bytes(DTYPES[dtype][1] // 8, "little") for v in vals)


def section_rows(R, pos, vals, dtype, varint=None):
    """Form 1: for r = 0 .. R-1, n_r then the gaps; then the values. pos: the tile's outliers (r, c) in
    row-major order; varint(what, r, k, value) -> bytes may write one its own way (what: "n" or "gap")."""
    vi = varint or (lambda what, r, k, v: leb128(v))
    out = b"\x01"
    for r in range(R):
        cs = [c for rr, c in pos if rr == r]
        out += vi("n", r, None, len(cs))
        for k, c in enumerate(cs):
            out += vi("gap", r, k, c - (cs[k - 1] + 1 if k else 0))
    return out + dtype_values(vals, dtype)


def section_mask(R, C, pos, vals, dtype):
    """Form 2: bit k mod 8 of byte k / 8 for tile element k = r x C + c; then the values."""
    mask = bytearray(-(-R * C // 8))
    for r, c in pos:
        mask[(r * C + c) // 8] |= 1 << ((r * C + c) % 8)
    return b"\x02" + bytes(mask) + dtype_values(vals, dtype)


def outlier_block(sections, tiles=None, ends=None):
    """u32 tiles, u32 end[T] (each section's end from the first section), the sections."""
    if ends is None:
        ends = [sum(len(s) for s in sections[:i + 1]) for i in range(len(sections))]
    tiles = len(sections) if tiles is None else tiles
    return struct.pack("<I", tiles) + b"".join(struct.pack("<I", e) for e in ends) + b"".join(sections)


def tile_rows_of(rows, tile_rows):
    """R_i of each tile (FORMAT.md §4.4: tiles of tile_rows rows, the last may be shorter)."""
    return [min(tile_rows, rows - r0) for r0 in range(0, rows, tile_rows)]


def parse_varint(sec, p):
    v = 0
    for i in range(5):
        if p >= len(sec):
            raise Invalid("varint past the end of its section")
        b = sec[p]
        p += 1
        v |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if v >= 1 << 31:
                raise Invalid("varint value >= 2^31")
            return v, p
    raise Invalid("varint longer than 5 bytes")


def parse_section(sec, R, C, V):
    """One tile's section (§2): [(r, c, value bytes)], row-major; [] for an empty section."""
    if not sec:
        return []
    form, p, pos = sec[0], 1, []
    if form == 1:
        for r in range(R):
            n, p = parse_varint(sec, p)
            c = -1
            for _ in range(n):
                gap, p = parse_varint(sec, p)
                c += 1 + gap
                if c >= C:
                    raise Invalid("column past the row")
                pos.append((r, c))
    elif form == 2:
        nb = -(-R * C // 8)
        if p + nb > len(sec):
            raise Invalid("mask past the end of its section")
        mask = int.from_bytes(sec[p:p + nb], "little")
        p += nb
        if mask >> (R * C):
            raise Invalid("mask bit past the tile")
        pos = [(k // C, k % C) for k in range(R * C) if mask >> k & 1]
    else:
        raise Invalid("form byte %d" % form)
    if not pos:
        raise Invalid("a non-empty section with no outlier")
    if len(sec) - p != len(pos) * V:
        raise Invalid("section does not end after value[N-1]")
    return [(r, c, sec[p + k * V:p + (k + 1) * V]) for k, (r, c) in enumerate(pos)]


def parse_outliers(block, rows, cols, tile_rows, dtype):
    """The outlier block (§2), every rule checked: {(row, col): value bits}, or Invalid."""
    Rs, V = tile_rows_of(rows, tile_rows), DTYPES[dtype][1] // 8
    T = len(Rs)
    if len(block) < 4 or struct.unpack("<I", block[:4])[0] != T:
        raise Invalid("tile count")
    if len(block) < 4 + 4 * T:
        raise Invalid("end table past the block")
    ends = struct.unpack("<%dI" % T, block[4:4 + 4 * T])
    body = block[4 + 4 * T:]
    if any(b < a for a, b in zip((0,) + ends, ends)):
        raise Invalid("decreasing end")
    if ends[-1] != len(body):
        raise Invalid("last end is not the block's end")
    # every value finite: the exponent field (in the top 16 bits) not all ones
    top = 0x7C00 if dtype == "F16" else 0x7F80
    out = {}
    for i, R in enumerate(Rs):
        for r, c, v in parse_section(body[(ends[i - 1] if i else 0):ends[i]], R, cols, V):
            if int.from_bytes(v[-2:], "little") & top == top:
                raise Invalid("value not finite")
            out[(i * tile_rows + r, c)] = int.from_bytes(v, "little")
    return out


def widen(v, dtype):
    """§3: a stored value widened exactly to binary32 bits."""
    if dtype == "BF16":
        return v << 16
    if dtype == "F16":
        return f32_bits(np.array([v], dtype=np.uint16).view(np.float16).astype(np.float32)[0])  # exact
    return v


def convert(b, dtype):
    """QROW.md §3: binary32 bits b stored in dtype."""
    return b if dtype == "F32" else bf16_of(b) if dtype == "BF16" else f16_of(b)[0]


def decode_as(t, out_dtype):
    """The tensor t (qrow or qrow-outliers) decoded in out_dtype (QROW.md §3, OUTLIERS.md §3)."""
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    ol = parse_outliers(t.parts[2].data, rows, cols, t.tile_rows, t.dtype) if t.repr == 2 else {}
    bits = [convert(b, out_dtype) for b in t.f32_bits]
    for (r, c), v in ol.items():
        bits[r * cols + c] = v if out_dtype == t.dtype else convert(widen(v, t.dtype), out_dtype)
    return dtype_values(bits, out_dtype)


def qrow_outliers(name, dtype, shape, B, e, q, tile_rows, outliers, forms, varint=None, max_block=1 << 16, **kw):
    """A qrow-outliers tensor: qrow(...) (B, e, q as there) plus the outliers {(row, col): value bits in
    dtype}; forms: per tile 0 (an empty section), 1 (row lists) or 2 (bitmask); varint: as section_rows'
    (tile, what, r, k, value). Reconstruction (§3): each element's qrow value, then the outliers' bytes."""
    t = qrow(name, dtype, shape, B, e, q, tile_rows, **kw)
    rows, cols = shape[0], math.prod(shape[1:])
    Rs = tile_rows_of(rows, tile_rows)
    assert len(forms) == len(Rs) and all(0 <= r < rows and 0 <= c < cols for r, c in outliers)
    sections = []
    for i, R in enumerate(Rs):
        r0 = i * tile_rows
        pos = sorted((r - r0, c) for r, c in outliers if r0 <= r < r0 + R)
        vals = [outliers[(r0 + r, c)] for r, c in pos]
        assert (forms[i] == 0) == (not pos)
        vi = (lambda what, r, k, v, i=i: varint(i, what, r, k, v)) if varint else None
        sections.append(b"" if not pos else section_rows(R, pos, vals, dtype, vi) if forms[i] == 1
                        else section_mask(R, cols, pos, vals, dtype))
    block = outlier_block(sections)
    assert max_block is None or len(block) <= max_block  # an inline part: at most 2^16 bytes (FORMAT.md §4.4)
    bits = t.bits.copy()
    for (r, c), v in outliers.items():
        bits[r * cols + c] = v
    recon = bits.astype("<u%d" % bits.itemsize).tobytes()
    assert parse_outliers(block, rows, cols, tile_rows, dtype) == outliers
    # Invented originals as qrow's, the outliers' exact (the error figures are informative).
    if dtype in ("BF16", "F16", "F32"):
        vals = np.frombuffer(recon, dtype={"BF16": "<u2", "F16": "<f2", "F32": "<f4"}[dtype])
        vals = (vals.astype(np.uint32) << 16).view(np.float32) if dtype == "BF16" else vals.astype(np.float32)
    else:  # a bad vector's dtype: the record is rejected before any value is made
        vals = np.zeros(rows * cols, dtype=np.float32)
    w = np.array([float(vals[i]) if (i // cols, i % cols) in outliers else float(vals[i]) + (((i * 7 + 3) % 11) - 5)
                  / 11.0 * (1 + (e[i // cols] & 15) / 16) * 2.0 ** (B + (e[i // cols] >> 4)) for i in range(rows * cols)])
    d_ = w - vals.astype(np.float64)
    rel = math.sqrt(float(np.sum(d_ * d_)) / float(np.sum(w * w))) if np.any(w) else 0.0
    t.parts.append(Part(OUTLIERS, INLINE, "U8", block))
    t.part_count, t.repr, t.recon, t.bits = 3, 2, recon, bits
    t.levels = [(H(recon), rel, float(np.max(np.abs(d_))))]
    t.sections, t.outliers = sections, outliers
    if dtype in ("BF16", "F16", "F32"):
        assert decode_as(t, dtype) == recon
    return t


def outlier_vectors(d):
    """lossy_outliers (2.2): an exact tensor, BF16 qrow-outliers (4 tiles: row lists with a zero-padded
    varint, bitmask, empty, a 10-bit bitmask), plain qrow, F16 qrow-outliers (an empty first section, a
    5-byte varint, subnormal values), F32 qrow-outliers (a tile all outliers, an empty last section).
    lossy_outliers.as_dtypes.expected: each lossy tensor decoded in BF16, F16 and F32 in turn (QROW.md §3,
    OUTLIERS.md §3: the outliers widened exactly to binary32, then stored)."""
    norm = Exact("norm.weight", "F32", [6], np.array([1, -0.5, 2.5, 0, 3e-3, -7], dtype="<f4").tobytes(), codec=1)
    # a: BF16 [7, 10], 4 tiles of 2 rows (the last 1 row). Outliers: tile 0 row lists ((0,0) and (0,1):
    # gaps 0; (0,9): the last column; row 1: none, its n_r written 0x80 0x00), tile 1 a bitmask, tile 2 none,
    # tile 3 a bitmask of 10 bits (2 bytes). Values: -0 (over a code 0, which gives +0), the largest BF16, the
    # least subnormal, the least normal. Codes under the outliers: some 0, some not (they have no effect).
    qa = [((i * 29) % 61) - 30 for i in range(70)]
    qa[0] = 0
    assert qa[1] != 0 and qa[9] != 0
    a_out = {(0, 0): 0x8000, (0, 1): 0x7F7F, (0, 9): 0x0001, (2, 3): 0xC2F7, (3, 0): 0x3F80, (3, 9): 0x0080,
             (6, 8): 0x4049, (6, 2): 0xFF7F}
    pad = lambda i, what, r, k, v: leb128(v, 2) if (i, what, r) == (0, "n", 1) else leb128(v)
    a = qrow_outliers("a.weight", "BF16", [7, 10], -10, [0x21, 0x05, 0x40, 0x1F, 0x00, 0x33, 0x7A], qa, 2, a_out,
                      [1, 2, 0, 2], varint=pad, codes_codec=1)
    assert b"\x80\x00" in a.sections[0] and a.sections[2] == b"" and len(a.sections[3]) == 1 + 2 + 2 * 2
    assert a.recon[0:2] == b"\x00\x80" and a.bits[0] == 0x8000 and qa[0] == 0  # -0 replaced a code 0's +0
    p = qrow("p.weight", "BF16", [2, 4], -4, [0x10, 0x03], [1, -2, 3, 0, 5, -6, 7, -8], 1)
    # b: F16 [4, 4, 5] (cols 20), 2 tiles of 2 rows: tile 0 none (end[0] = 0), tile 1 row lists with row 2's
    # n_r in 5 bytes (0x82 0x80 0x80 0x80 0x00, the longest valid varint). Values: the least F16 subnormal,
    # the largest negative subnormal, 65504, -1. Scales inline, U16 codes with zstd.
    qb = [((i * 1237) % 4001) - 2000 for i in range(80)]
    b_out = {(2, 0): 0x0001, (2, 7): 0x83FF, (3, 19): 0x7BFF, (3, 4): 0xBC00}
    five = lambda i, what, r, k, v: leb128(v, 5) if (what, r) == ("n", 0) else leb128(v)
    b = qrow_outliers("b.weight", "F16", [4, 4, 5], -20, [0x30, 0x41, 0x00, 0x7F], qb, 2, b_out, [0, 1], varint=five,
                      code_item="U16", scales_layout=INLINE, codes_codec=1)
    assert b.sections[0] == b"" and b"\x82\x80\x80\x80\x00" in b.sections[1]
    # c: F32 [5, 3], 3 tiles of 2 rows: tile 0 all six elements (mask 0x3F), tile 1 row lists (a gap of 2),
    # tile 2 (the last) none. Values: the least subnormal, -0, the largest F32, 1e30, pi, -2^-126.
    qc = [3, -1, 0, 7, 2, -5, 9, 0, -9, 4, 4, -4, 1, 1, 1]
    c_out = {(0, 0): 0x00000001, (0, 1): 0x80000000, (0, 2): 0x7F7FFFFF, (1, 0): f32_bits(1e30),
             (1, 1): f32_bits(np.pi), (1, 2): 0x80800000, (2, 2): f32_bits(-3.25), (3, 0): 0x3F800000}
    c = qrow_outliers("c.weight", "F32", [5, 3], -12, [0x00, 0x12, 0x24, 0x36, 0x05], qc, 2, c_out, [2, 1, 0])
    assert c.sections[0][:2] == b"\x02\x3f" and c.sections[2] == b""
    ts = [norm, a, p, b, c]
    fb, plen = st_file(ts)
    wcz = container2([(0, "model.safetensors", fb, plen, ts)], minor=2)
    assert struct.unpack("<I", zread_manifest(wcz)[8:12])[0] == 1 + 8 + 4 + 2 + 6
    put(d, "lossy_outliers.wcz", wcz)
    put(d, "lossy_outliers.expected", fb)
    assert decode_as(p, "BF16") == p.recon
    conv = b"".join(decode_as(t, dt) for t in ts if isinstance(t, Lossy) for dt in ("BF16", "F16", "F32"))
    assert decode_as(c, "F16")[2 * 3:2 * 4] == b"\x00\x7c"  # 1e30 stored as F16: +infinity
    assert decode_as(b, "BF16")[2 * 79:2 * 80] == b"\x80\x47"  # 65504 stored as BF16 rounds up to 2^16
    put(d, "lossy_outliers.as_dtypes.expected", conv)
    put_bad(d, outlier_bad())


def outlier_bad():
    """2.2 files every reader must reject, checksum-valid everywhere, each breaking one rule of OUTLIERS.md
    (or as few as the rule allows). *.corrupt: §1's record rules, seen when the manifest is decoded;
    *.codec: §2's block rules, seen when the tensor is decoded (each such block fails parse_outliers on its
    rule). The level hash stays the intended reconstruction's, so a reader that skips a rule but decodes
    what was meant still fails, and only the rule names the fault."""
    rows, cols, tr = 5, 6, 2  # tiles of 2, 2 and 1 rows (6 bits: a mask byte with 2 bits past the tile)
    q = [((i * 37) % 255) - 127 for i in range(rows * cols)]
    e = [(0x13 * r) & 0xFF for r in range(rows)]
    out = {(0, 1): 0x4120, (0, 4): 0xC0A0, (1, 5): 0x3C00, (4, 0): 0x7F00, (4, 3): 0x8001}
    R0 = sorted(p for p in out if p[0] < 2)

    def base(dtype="BF16"):
        """An exact F32 tensor, then a qrow-outliers tensor: tile 0 row lists, tile 1 none, tile 2 a mask."""
        t = qrow_outliers("w.weight", dtype, [rows, cols], -20, e, q, tr, out, [1, 0, 2], codes_codec=1)
        return [norm_exact(), t]

    def one(tensors):
        return one_file(tensors, minor=2)

    def lie(f):
        t = base()
        t[1] = f(t[1]) or t[1]
        return one(t)

    def part(**kw):  # part 2 (the outlier block) with fields replaced
        def f(t):
            for k, v in kw.items():
                setattr(t.parts[2], k, v)
            t.parts[2].items = len(t.parts[2].data) * 8 // DTYPES[t.parts[2].item][1]
        return f

    def two_parts(t):
        t.parts, t.part_count = t.parts[:2], 2

    def four_parts(t):
        t.parts.append(Part(OUTLIERS, INLINE, "U8", t.parts[2].data))
        t.part_count = 4

    def level_1(t):  # at its own level: the tensor and the manifest then have 2 levels (level 1: no chunk)
        t.parts[2].level, t.levels = 1, t.levels * 2

    blocks = {}  # name: (the bad block, the rule parse_outliers must name)

    def block(name, why, f):
        """base() with the outlier block replaced by f(sections)."""
        blocks[name] = (f(list(base()[1].sections)), why)

    def sec0(vi):  # tile 0's section written with the varints vi(what, r, k, v)
        return lambda s: outlier_block([section_rows(2, R0, [out[p] for p in R0], "BF16", vi)] + s[1:])

    def at(where, f):  # the varint at where = (what, r, k) written as f(value), the others as leb128
        return lambda what, r, k, v: f(v) if (what, r, k) == where else leb128(v)

    def ends(f):
        return lambda s: outlier_block(s, ends=f([sum(len(x) for x in s[:i + 1]) for i in range(len(s))]))

    s = base()[1].sections
    assert s[0] == sec0(None)(s)[16:16 + len(s[0])] and s[0][:6] == b"\x01\x02\x01\x02\x01\x05"  # n 2, gaps 1 2, n 1, gap 5
    assert s[1] == b"" and s[2][:2] == b"\x02\x09" and len(outlier_block(s)) % 2 == 0
    block("outliers_tiles_4", "tile count", lambda s: outlier_block(s + [b""]))  # a 4th tile's (empty) entry
    block("outliers_tiles_2", "tile count", lambda s: outlier_block(s, tiles=2))  # the table of 3 ends after it
    block("outliers_table_short", "end table", lambda s: struct.pack("<III", 3, 0, 0))  # 2 of the 3 ends
    block("outliers_block_empty", "tile count", lambda s: b"")  # items = 0
    block("outliers_end_decreasing", "decreasing", ends(lambda x: [x[0], x[0] - 1, x[2]]))  # tile 1 (empty)
    block("outliers_end_short", "last end", lambda s: outlier_block(s) + b"\x00")  # a byte after the last section
    block("outliers_end_past", "last end", ends(lambda x: x[:2] + [x[2] + 1]))  # the last section past the block
    block("outliers_form_0", "form byte 0", lambda s: outlier_block([b"\x00" + s[0][1:]] + s[1:]))
    block("outliers_form_3", "form byte 3", lambda s: outlier_block([b"\x03" + s[0][1:]] + s[1:]))
    block("outliers_varint_6_bytes", "longer than 5", sec0(at(("n", 1, None), lambda v: leb128(v, 6))))  # 1, 6 bytes
    block("outliers_varint_2p32", ">= 2^31", sec0(at(("gap", 0, 0), lambda v: leb128(v + (1 << 32), 5))))  # 1 mod 2^32
    block("outliers_varint_2p31", ">= 2^31", sec0(at(("n", 1, None), lambda v: leb128(v + (1 << 31), 5))))
    block("outliers_varint_truncated", "varint past", lambda s: outlier_block([b"\x01\x80"] + s[1:]))  # row 0's n_r
    block("outliers_column_past_row", "column past", sec0(at(("gap", 1, 0), lambda v: leb128(v + 1))))  # c = 6 = C
    block("outliers_column_2p31", "column past", sec0(at(("gap", 1, 0), lambda v: leb128((1 << 31) - 1))))
    block("outliers_mask_bit_past_tile", "mask bit past", lambda s: outlier_block(s[:2] + [s[2][:1] + b"\x89" + s[2][2:]]))
    block("outliers_mask_truncated", "mask past", lambda s: outlier_block(s[:2] + [b"\x02"]))
    block("outliers_values_short", "value[N-1]", lambda s: outlier_block([s[0][:-2]] + s[1:]))  # one value fewer
    block("outliers_values_long", "value[N-1]", lambda s: outlier_block([s[0] + b"\x00\x3f"] + s[1:]))  # one more
    block("outliers_values_odd", "value[N-1]", lambda s: outlier_block([s[0] + b"\x00"] + s[1:]))  # half a value more
    block("outliers_rows_zero", "no outlier", lambda s: outlier_block([s[0], b"\x01\x00\x00", s[2]]))  # tile 1: 0, 0
    block("outliers_mask_zero", "no outlier", lambda s: outlier_block([s[0], b"\x02\x00\x00", s[2]]))  # 12 zero bits
    # tile 0's second value (0xC0A0) made infinite, then NaN (finite values only, §2)
    block("outliers_value_inf", "not finite", lambda s: outlier_block([s[0][:-4] + b"\x80\x7f" + s[0][-2:]] + s[1:]))
    block("outliers_value_nan", "not finite", lambda s: outlier_block([s[0][:-4] + b"\xc1\xff" + s[0][-2:]] + s[1:]))
    files = {
        # §1: part_count 3; part 2: role outliers (3), level 0, layout inline (3), item U8, codec 0.
        "outliers_2_parts.corrupt": lie(two_parts),  # a qrow tensor's parts under repr 2
        "outliers_4_parts.corrupt": lie(four_parts),  # a second outlier block
        "outliers_role_residual.corrupt": lie(part(role=RESIDUAL)),
        "outliers_role_codes.corrupt": lie(part(role=CODES)),
        "outliers_layout_tensor_wide.corrupt": lie(part(layout=TENSOR_WIDE)),  # the block as a chunk of its own
        "outliers_item_u16.corrupt": lie(part(item="U16")),  # the same bytes as U16 items
        "outliers_codec_zstd.corrupt": lie(part(codec=1, bare=True)),  # the block as it is (2.2: inline parts
        # take codec 0; OUTLIERS.md §1: the block's codec 0 still); inline_outliers_codec_zstd frames it as 2.3 does
        "outliers_level_1.corrupt": lie(level_1),  # (and 2 levels: qrow-outliers has 1)
        "outliers_dtype_i32.corrupt": one(base(dtype="I32")),  # qrow's dtypes
    }
    # FORMAT.md §4.4: an inline part is at most 2^16 bytes. A valid block of 2^16 + 1: F32 [1, 13233], tile 0
    # row lists of 13105 outliers (n_r: 2 bytes; one gap of 128: 2 bytes, the others 0), 8 + 1 + 2 + 13106 + 4 x 13105.
    n, C = 13105, 13105 + 128
    cs = list(range(64)) + list(range(64 + 128, C))
    assert len(cs) == n
    t = qrow_outliers("big.weight", "F32", [1, C], -10, [0x20], [(i % 7) - 3 for i in range(C)], 1,
                      {(0, c): f32_bits(c / 64.0 - 100) for c in cs}, [1], max_block=None)
    assert len(t.parts[2].data) == (1 << 16) + 1
    files["outliers_block_65537.corrupt"] = one([t])
    for name, (blk, why) in blocks.items():
        try:
            parse_outliers(blk, rows, cols, tr, "BF16")
            raise AssertionError("accepted: " + name)
        except Invalid as x:
            assert why in str(x), (name, why, str(x))
        files[name + ".codec"] = lie(lambda t, blk=blk: setattr(t, "parts", t.parts[:2] + [Part(OUTLIERS, INLINE, "U8", blk)]))
    return files


# ---------------------------------------------------------------------------------------------
# Codec 4 mode 3, the per-channel shift (FLOAT_ANS.md §2.1), and the float-ans payload it wraps (§3-§7).
# Mode 3 needs a mode-1 payload of the shifted values, which no stored vector has, so this writer has its
# own float-ans encoder, written from FLOAT_ANS.md §3-§8 (not from codec/), and a decoder of every mode
# that checks each rule of §2-§7. The decoder is checked against the spec's §9 bytes and the float-ans
# vectors of tests/vectors/float_ans; every chunk written below is decoded by it (so each good vector is
# right by construction) and each bad one must fail it on the rule it breaks.

GEOM = {"F8_E5M2": (8, 5, 2), "F8_E4M3": (8, 4, 3), "F16": (16, 5, 10), "BF16": (16, 8, 7), "F32": (32, 8, 23),
        "U8": (8, 4, 3), "U16": (16, 5, 10)}  # W, E, m (§1; U8 and U16 items as F8_E4M3 and F16)
TRIM, MODE_SHIFT = 3, b"\x03"
PATCH, MODE_PATCH = 5, b"\x04"  # codec 5, float-ans-patch, and its mode 4 (§2.2)
GROUPS, MODE_GROUPS = 7, b"\x05"  # codec 7, float-ans-groups, and its mode 5 (§2.3)
PAIRS, MODE_PAIRS = 8, b"\x06"  # codec 8, float-ans-pairs, and its mode 6 (§2.4)
RANS_L = 1 << 16
QW = (32768, 35734, 38968, 42495, 46341, 50535, 55109, 60097)  # §5


class Invalid(ValueError):
    """A payload a decoder must reject; the message names the rule."""


class Bits:
    """A bit-stream written LSB-first (§5: bit j is bit j mod 8 of byte j / 8)."""

    def __init__(self):
        self.acc, self.n = 0, 0

    def put(self, v, nbits):
        assert 0 <= v < 1 << nbits
        self.acc |= v << self.n
        self.n += nbits

    def eg(self, u, k, z=None):
        """Exp-Golomb of order k (§5 item 2): z zero bits, a 1 bit, z + k bits t; u = 2^(z+k) - 2^k + t."""
        if z is None:
            z = (u + (1 << k)).bit_length() - 1 - k
        t = u + (1 << k) - (1 << (z + k))
        assert 0 <= t < 1 << (z + k)
        self.put(0, z)
        self.put(1, 1)
        self.put(t, z + k)

    def bytes(self, pad=0):
        """Padded with zero bits (or the bits `pad`) to a byte boundary."""
        nb = (self.n + 7) // 8
        assert pad < 1 << (8 * nb - self.n)
        return (self.acc | pad << self.n).to_bytes(nb, "little")


class BitReader:
    def __init__(self, data, pos):
        self.v, self.nbits, self.j = int.from_bytes(data[pos:], "little"), 8 * (len(data) - pos), 0

    def get(self, nbits):
        if self.j + nbits > self.nbits:
            raise Invalid("bit-stream past the end of the payload")
        x = (self.v >> self.j) & ((1 << nbits) - 1)
        self.j += nbits
        return x

    def eg(self, k):
        z = 0
        while self.get(1) == 0:
            z += 1
            if z > 24:
                raise Invalid("Exp-Golomb code with z > 24")
        return (1 << (z + k)) - (1 << k) + self.get(z + k)

    def end(self):
        """Skips the padding to the next byte boundary (it must be zero); returns the bytes read."""
        if self.get(-self.j % 8):
            raise Invalid("non-zero padding bits")
        return self.j // 8


def q_weight(q, qshift):
    t = q - 1
    return QW[(t & ((1 << qshift) - 1)) << (3 - qshift)] << min(t >> qshift, 31)


def normalize(q, qshift, M):
    """§5: the frequencies f of the quantised log-frequencies q (the loop as written: tables here are small)."""
    present = [i for i, x in enumerate(q) if x]
    if not 1 <= len(present) <= M:
        raise Invalid("present symbol count not in [1, M]")
    w = [q_weight(x, qshift) if x else 0 for x in q]
    T = sum(w)
    f = [max(1, (wi * M + T // 2) // T) if q[i] else 0 for i, wi in enumerate(w)]
    if sum(f) < M:
        f[f.index(max(f))] += M - sum(f)  # index(): the lowest i with the largest f
    else:
        while sum(f) - M > 0:
            b = f.index(max(f))
            f[b] -= min(f[b] // 2, sum(f) - M)
    assert sum(f) == M
    return f


def split(W, E, m, k, joint, z):
    """§4: (r, rr, S, w), or Invalid."""
    if k > m:
        raise Invalid("k > m")
    r = m - k
    if z > r:
        raise Invalid("z > r")
    S = E + k + joint
    if S > 14:
        raise Invalid("S > 14")
    if W == 32 and r < 16:
        raise Invalid("r < 16 for a 32-bit type")
    return r, r - z, S, r - z + 1 - joint


def lanes(n, sub_bits):
    """§6: nsub, the symbols of each lane, the lanes of each group."""
    nsub = -(-n // (1 << sub_bits))
    held = [n // nsub + (1 if j < n % nsub else 0) for j in range(nsub)]
    return nsub, held, [range(g, min(g + 32, nsub)) for g in range(0, nsub, 32)]


def fans_encode(vals, dtype, k, joint, qshift=2, sub_bits=12, prob_bits=12, egk=0, z=None):
    """A mode-1 payload (§3) of the W-bit values vals. z (codec 3's trim): by default the trailing zero
    bits of the OR of the mantissas, at most r (§4)."""
    W, E, m = GEOM[dtype]
    n = len(vals)
    assert n >= 1 and 0 <= qshift <= 3 and 6 <= sub_bits <= 15 and 10 <= prob_bits <= 14 and 0 <= egk <= 3
    if z is None:
        ored = 0
        for v in vals:
            ored |= v & ((1 << m) - 1)
        z = min(m - k, (ored & -ored).bit_length() - 1 if ored else m)
    r, rr, S, w = split(W, E, m, k, joint, z)
    sign = lambda v: v >> (W - 1)
    mag = lambda v: (v >> r) & ((1 << (E + k)) - 1)
    sym = [(mag(v) << 1 | sign(v)) if joint else mag(v) for v in vals]
    raw = [((v >> z) & ((1 << rr) - 1)) | (0 if joint else sign(v) << rr) for v in vals]
    hist = {}
    for s in sym:
        hist[s] = hist.get(s, 0) + 1
    lo, hi = min(hist), max(hist)
    # quantised log2 counts in steps of 2^-qshift: count c -> q = 1 + round(log2(c) * 2^qshift)
    q = [min(255, 1 + round(math.log2(hist[s]) * (1 << qshift))) if s in hist else 0 for s in range(lo, hi + 1)]
    M = 1 << prob_bits
    f = normalize(q, qshift, M)
    c = [0] * len(f)
    for i in range(1, len(f)):
        c[i] = c[i - 1] + f[i - 1]
    tb = Bits()
    tb.put(lo, S)
    tb.put(hi - lo, S)
    prev = 0
    for x in q:
        tb.eg(zigzag(x - prev), egk)
        prev = x
    nsub, held, groups = lanes(n, sub_bits)
    states, streams = [0] * nsub, []
    for grp in groups:
        x = {j: RANS_L for j in grp}
        stack = []
        for t in reversed(range(held[grp[0]])):  # §8: steps from the last, lanes from the highest
            for j in reversed(grp):
                if held[j] > t:
                    i = sym[t * nsub + j] - lo
                    if x[j] >= (1 << (32 - prob_bits)) * f[i]:
                        stack.append(x[j] & 0xFFFF)
                        x[j] >>= 16
                    x[j] = ((x[j] // f[i]) << prob_bits) + x[j] % f[i] + c[i]
        for j in grp:
            states[j] = x[j]
        streams.append(stack[::-1])  # the decoder pops the last word pushed first
    plane = Bits()
    for a in raw:
        plane.put(a, w)
    head = bytes([1, k | joint << 4 | qshift << 5, (sub_bits - 6) | (prob_bits - 10) << 4, egk | z << 2])
    return (head + tb.bytes() + struct.pack("<%dI" % nsub, *states)
            + struct.pack("<%dI" % (len(streams) - 1), *[len(s) for s in streams[:-1]])
            + b"".join(struct.pack("<%dH" % len(s), *s) for s in streams) + plane.bytes())


def fans_decode(p, dtype, n, trim):
    """The n values of mode-1 payload p (§3-§7); trim: codec 3 or 4 (z may be non-zero)."""
    W, E, m = GEOM[dtype]
    if n < 1:
        raise Invalid("mode 1 with n = 0")
    if len(p) < 4 or p[0] != 1:
        raise Invalid("not a mode-1 payload")
    b1, b2, b3 = p[1], p[2], p[3]
    k, joint, qshift = b1 & 15, b1 >> 4 & 1, b1 >> 5 & 3
    sub_bits, prob_bits, egk, z = (b2 & 15) + 6, (b2 >> 4) + 10, b3 & 3, b3 >> 2 & 31
    if b1 & 0x80 or b3 & 0x80:
        raise Invalid("reserved header bit")
    if not (sub_bits <= 15 and prob_bits <= 14):
        raise Invalid("sub_bits or prob_bits out of range")
    if z and not trim:
        raise Invalid("z != 0 under codec 2")
    r, rr, S, w = split(W, E, m, k, joint, z)
    br = BitReader(p, 4)
    lo, count = br.get(S), br.get(S) + 1
    if lo + count > 1 << S:
        raise Invalid("table past 2^S")
    q, prev = [], 0
    for _ in range(count):
        prev += unzigzag(br.eg(egk))
        if not 0 <= prev <= 255:
            raise Invalid("q out of [0, 255]")
        q.append(prev)
    pos = 4 + br.end()
    M = 1 << prob_bits
    f = normalize(q, qshift, M)
    slot = []
    for i, fi in enumerate(f):
        slot += [i] * fi
    c = [sum(f[:i]) for i in range(len(f))]
    nsub, held, groups = lanes(n, sub_bits)
    plane_len = (n * w + 7) // 8
    fixed = pos + 4 * nsub + 4 * (len(groups) - 1)
    if len(p) < fixed + plane_len or (len(p) - fixed - plane_len) % 2:
        raise Invalid("payload length")
    states = struct.unpack_from("<%dI" % nsub, p, pos)
    counts = list(struct.unpack_from("<%dI" % (len(groups) - 1), p, pos + 4 * nsub))
    words = struct.unpack_from("<%dH" % ((len(p) - fixed - plane_len) // 2), p, fixed)
    gsyms = [sum(held[j] for j in grp) for grp in groups]
    if any(a > b for a, b in zip(counts, gsyms)) or sum(counts) > len(words):
        raise Invalid("group word counts")
    counts.append(len(words) - sum(counts))
    if counts[-1] > gsyms[-1]:
        raise Invalid("last group's word count")
    sym, wp = [0] * n, 0
    for grp, cnt in zip(groups, counts):
        x = {j: states[j] for j in grp}
        if min(x.values()) < RANS_L:
            raise Invalid("initial state < L")
        end = wp + cnt
        for t in range(held[grp[0]]):
            for j in grp:
                if held[j] > t:
                    s = x[j] & (M - 1)
                    i = slot[s]
                    sym[t * nsub + j] = lo + i
                    x[j] = f[i] * (x[j] >> prob_bits) + s - c[i]
                    if x[j] < RANS_L:
                        if wp == end:
                            raise Invalid("group reads past its words")
                        x[j] = x[j] << 16 | words[wp]
                        wp += 1
        if wp != end or any(v != RANS_L for v in x.values()):
            raise Invalid("group does not end at x = L with every word consumed")
    pl = int.from_bytes(p[fixed + len(words) * 2:], "little")
    out = []
    for e, s in enumerate(sym):
        a = (pl >> (e * w)) & ((1 << w) - 1)
        v = ((s >> 1) << r | (s & 1) << (W - 1)) if joint else s << r
        out.append(v | (a & ((1 << rr) - 1)) << z | ((a >> rr) & 1) << (W - 1))
    return out


def field(dtype, g):
    """§2.1: (s, mask) of the shifted field F(v) = (v >> s) & mask: the exponent and the top g mantissa bits."""
    W, E, m = GEOM[dtype]
    return W - 1 - E - g, (1 << (E + g)) - 1


def entry(o, L, P, e):
    return ((o + e) // L) % P


def unshift(vals, dtype, g, L, P, o, d):
    """The encoder's side of §2.1: F(v') = (F(v) - d_i(e)) mod 2^(E+g), every other bit unchanged."""
    s, mask = field(dtype, g)
    return [v & ~(mask << s) | ((((v >> s) & mask) - d[entry(o, L, P, e)]) & mask) << s for e, v in enumerate(vals)]


def zstd_content(frame):
    """The content of a zstd frame this writer made (zraw: raw blocks), or Invalid for anything else."""
    if len(frame) < 13 or struct.unpack_from("<IB", frame) != (0xFD2FB528, 0xE0):
        raise Invalid("not a frame of this writer")
    size, pos, out = struct.unpack_from("<Q", frame, 5)[0], 13, b""
    while True:
        if pos + 3 > len(frame):
            raise Invalid("zstd frame truncated")
        hdr = int.from_bytes(frame[pos:pos + 3], "little")
        if hdr >> 1 & 3:
            raise Invalid("not a raw block")
        out += frame[pos + 3:pos + 3 + (hdr >> 3)]
        pos += 3 + (hdr >> 3)
        if hdr & 1:
            break
    if pos != len(frame) or len(out) != size:
        raise Invalid("zstd frame: trailing bytes or wrong size")
    return out


def to_vals(raw, dtype):
    W = GEOM[dtype][0]
    return np.frombuffer(raw, dtype="<u%d" % (W // 8)).tolist()


def to_raw(vals, dtype):
    W = GEOM[dtype][0]
    return np.array(vals, dtype="<u%d" % (W // 8)).tobytes()


def read_shift(p, dtype, n):
    """The header and list of a mode-3 payload p (§2.1) for a chunk of n elements -> (g, L, P, o, d, the bytes they
    take, up to the end of the list's padding), or Invalid. Mode 6's shift block (§2.4) is the same bytes."""
    W, E, m = GEOM[dtype]
    if len(p) < 16:
        raise Invalid("mode 3 header truncated")
    g, egk_d = p[1] & 15, p[1] >> 4
    reserved, L, P, o = struct.unpack_from("<HIII", p, 2)
    if egk_d > 3:
        raise Invalid("egk_d > 3")
    if reserved:
        raise Invalid("reserved u16 != 0")
    if L < 1:
        raise Invalid("L = 0")
    if P < 1:
        raise Invalid("P = 0")
    if o >= L * P:
        raise Invalid("o >= L * P")
    if g > m:
        raise Invalid("g > m")
    if E + g > 15:
        raise Invalid("E + g > 15")
    if P > n:
        raise Invalid("P > n")
    br = BitReader(p, 16)
    d = [unzigzag(br.eg(egk_d)) for _ in range(P)]
    if any(abs(x) >= 1 << (E + g) for x in d):
        raise Invalid("|d| >= 2^(E+g)")
    return g, L, P, o, d, 16 + br.end()


def reshift(vals, dtype, g, L, P, o, d):
    """§2.1's decoding: F = (F(v'_e) + d_i(e)) mod 2^(E+g), the sign and the bits below the field unchanged."""
    s, mask = field(dtype, g)
    return [x & ~(mask << s) | ((((x >> s) & mask) + d[entry(o, L, P, e)]) & mask) << s for e, x in enumerate(vals)]


def chunk_decode(p, dtype, dst_n, codec):
    """A float-ans chunk payload of codec 2, 3, 4, 5, 7 or 8 (§2) -> its dst_n raw bytes, or Invalid."""
    W, E, m = GEOM[dtype]
    if dst_n % (W // 8):
        raise Invalid("dst_n not a multiple of the element size")
    n = dst_n // (W // 8)
    if not p:
        raise Invalid("empty payload")
    if p[0] == 0:
        if len(p) != 1 + dst_n:
            raise Invalid("mode 0 length")
        return p[1:]
    if p[0] == 1:
        return to_raw(fans_decode(p, dtype, n, codec in (TRIM, MIXED, PATCH, GROUPS, PAIRS)), dtype)
    if p[0] == 2 and codec in (MIXED, PATCH, GROUPS, PAIRS):
        out = zstd_content(p[1:])
        if len(out) != dst_n:
            raise Invalid("mode 2 content size")
        return out
    if p[0] == 4 and codec in (PATCH, GROUPS, PAIRS):
        return patch_decode(p, dtype, dst_n)
    if p[0] == 5 and codec in (GROUPS, PAIRS):
        return groups_decode(p, dtype, dst_n)
    if p[0] == 6 and codec == PAIRS:
        return pairs_decode(p, dtype, dst_n)
    if p[0] != 3 or codec not in (MIXED, PATCH, GROUPS, PAIRS):
        raise Invalid("mode byte %d under codec %d" % (p[0], codec))
    g, L, P, o, d, pos = read_shift(p, dtype, n)
    inner = p[pos:]
    if not inner or inner[0] != 1:
        raise Invalid("inner mode byte %s" % (inner[0] if inner else "missing"))
    return to_raw(reshift(fans_decode(inner, dtype, n, True), dtype, g, L, P, o, d), dtype)


def check_fans_codec():
    """The decoder and encoder above against FLOAT_ANS.md §9's 48 bytes and the float-ans vectors."""
    spec = bytes.fromhex("01100600" "00FE59" + "FF" * 31 + "CF04" "00264000" "00000000")
    assert len(spec) == 48
    vals = [0x3F80, 0xBF80, 0x0000, 0x3F80]
    assert fans_encode(vals, "BF16", 0, 1, qshift=0, sub_bits=12, prob_bits=10, egk=0, z=0) == spec
    assert chunk_decode(spec, "BF16", 8, FANS) == to_raw(vals, "BF16")
    for name in ("bf16_3groups.BF16", "f16_2groups_joint.F16", "f32_partial_group.F32", "e4m3_2groups.F8_E4M3"):
        fans, raw = fans_vector(name)
        assert chunk_decode(fans, name.split(".")[1], len(raw), FANS) == raw, name


class Rng:
    """splitmix64: the same numbers on every platform and numpy version."""

    def __init__(self, seed):
        self.x = seed

    def __call__(self, bits=64):
        self.x = (self.x + 0x9E3779B97F4A7C15) & (2 ** 64 - 1)
        z = self.x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2 ** 64 - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2 ** 64 - 1)
        return (z ^ (z >> 31)) >> (64 - bits)


def weight(rng, dtype, scale, zero_low=0):
    """A weight-like value: random sign, exponent scale - X below the format's middle (X geometric: a
    Gaussian's magnitudes, roughly), random mantissa with its zero_low lowest bits zero; 1 in 64 is zero."""
    W, E, m = GEOM[dtype]
    if rng(6) == 0:
        return rng(1) << (W - 1)  # +0 or -0 (pruned weights)
    x = rng(32)
    drop = min((x & -x).bit_length() - 1 if x else 31, 6)
    e = max(1, min((1 << E) - 2, (1 << (E - 1)) - 2 + scale - drop))
    return rng(1) << (W - 1) | e << m | (rng(m) >> zero_low << zero_low if m else 0)


def shift_list(vals, dtype, g, L, P, o):
    """d: each entry's median field value minus the median of those (so both signs occur)."""
    s, mask = field(dtype, g)
    per = [[] for _ in range(P)]
    for e, v in enumerate(vals):
        if v & ~(1 << (GEOM[dtype][0] - 1)):  # zeros do not set the channel's scale
            per[entry(o, L, P, e)].append((v >> s) & mask)
    med = [sorted(x)[len(x) // 2] if x else None for x in per]
    known = sorted(x for x in med if x is not None)
    ref = known[len(known) // 2]
    return [x - ref if x is not None else 0 for x in med]


def column_shift(first, n, cols):
    return 1, cols, first % cols


def row_shift(first, n, cols):
    return cols, (first + n - 1) // cols - first // cols + 1, first % cols


def shift_parts(vals, dtype, g, egk_d, L, P, o, d=None, **inner):
    """The pieces of a mode-3 payload: header (16 bytes), list bit-stream (Bits, unpadded), shifted values,
    inner mode-1 payload. inner: fans_encode's parameters (k and joint at least)."""
    d = shift_list(vals, dtype, g, L, P, o) if d is None else d
    assert len(d) == P
    head = MODE_SHIFT + struct.pack("<BHIII", g | egk_d << 4, 0, L, P, o)
    lst = Bits()
    for x in d:
        lst.eg(zigzag(x), egk_d)
    vp = unshift(vals, dtype, g, L, P, o, d)
    return dict(head=head, lst=lst, d=d, vp=vp, inner=fans_encode(vp, dtype, **inner))


def shift_payload(vals, dtype, g, egk_d, L, P, o, d=None, **inner):
    pt = shift_parts(vals, dtype, g, egk_d, L, P, o, d, **inner)
    return pt["head"] + pt["lst"].bytes() + pt["inner"]


def wraps(vals, dtype, g, L, P, o, d):
    """How many elements' shifted field wrapped below 0 and past 2^(E+g) - 1."""
    s, mask = field(dtype, g)
    t = [((v >> s) & mask) - d[entry(o, L, P, e)] for e, v in enumerate(vals)]
    return sum(x < 0 for x in t), sum(x > mask for x in t)


class Plan:
    """One chunk of a shift-vector tensor: mode 0, 1, 2, or 3 with a shift ("column" or "row")."""

    def __init__(self, mode, shift=None, g=0, egk_d=0, **inner):
        self.mode, self.shift, self.g, self.egk_d, self.inner = mode, shift, g, egk_d, inner


def shift_tensor(name, dtype, shape, vals, chunk_elems, plans, codec=MIXED):
    """An Exact tensor of codec `codec` whose chunks follow plans; each chunk is decoded back and compared.
    Returns (tensor, [per chunk: dict(first, n, L, P, o, d, inner)])."""
    W = GEOM[dtype][0]
    cols = math.prod(shape[1:])
    raw = to_raw(vals, dtype)
    assert len(vals) == math.prod(shape) and len(plans) == -(-len(vals) // chunk_elems)
    stored, info = [], []
    for j, pl in enumerate(plans):
        first = j * chunk_elems
        cv = vals[first:first + chunk_elems]
        craw = to_raw(cv, dtype)
        rec = dict(first=first, n=len(cv), mode=pl.mode)
        if pl.mode == 0:
            p = MODE_RAW + craw
        elif pl.mode == 1:
            p = fans_encode(cv, dtype, **pl.inner)
        elif pl.mode == 2:
            p = MODE_ZSTD + zraw(craw)
        else:
            L, P, o = (column_shift if pl.shift == "column" else row_shift)(first, len(cv), cols)
            pt = shift_parts(cv, dtype, pl.g, pl.egk_d, L, P, o, **pl.inner)
            p = pt["head"] + pt["lst"].bytes() + pt["inner"]
            rec.update(L=L, P=P, o=o, d=pt["d"], g=pl.g, inner=pt["inner"], wraps=wraps(cv, dtype, pl.g, L, P, o, pt["d"]))
        assert chunk_decode(p, dtype, len(craw), codec) == craw, (name, j)
        stored.append(p)
        info.append(rec)
    return Exact(name, dtype, shape, raw, codec=codec, chunk_size=chunk_elems * W // 8, stored=stored), info


def shift_good():
    """float_ans_shift: BF16, F16, F32 and F8_E4M3 tensors of codec 4 whose chunks mix mode 3 (column and
    row shifts, several g and egk_d) with modes 0, 1 and 2."""
    rng = Rng(0x5EED3)
    # BF16 [500, 48], chunks of 4096 elements (none but the first starts a row). Column scales, except
    # rows 256-340 (4 rows repeated: padding-like, mode 2) and rows 341-425 (row scales: the row shift).
    rows, cols = 500, 48
    col_exp = [((c * 7) % 11) - 5 for c in range(cols)]
    row_exp = [((r * 5) % 13) - 6 for r in range(rows)]
    v = []
    for r in range(rows):
        for c in range(cols):
            if 260 <= r < 341:
                v.append(v[(256 + r % 4) * cols + c])
            else:
                v.append(weight(rng, "BF16", row_exp[r] if 341 <= r < 426 else col_exp[c]))
    # chunk 0: zeros in the columns shifted up (d > 0: 0 - d wraps below 0), the largest finite value in
    # columns shifted down (d < 0: F - d wraps past 2^(E+g) - 1)
    for r in range(0, 85, 6):
        v[r * cols + col_exp.index(5)] = 0x0000 if r % 12 else 0x8000
        v[r * cols + col_exp.index(-5)] = 0x7F7F if r % 12 else 0xFF7F
    bf16, bi = shift_tensor("shift.bf16", "BF16", [rows, cols], v, 4096, [
        Plan(3, "column", g=2, egk_d=0, k=2, joint=0, qshift=2, sub_bits=6, prob_bits=12, egk=1),  # o = 0, 2 groups
        Plan(3, "column", g=0, egk_d=2, k=3, joint=1, qshift=3, sub_bits=7, prob_bits=13, egk=0),  # o = 16
        Plan(1, k=2, joint=0, qshift=1, sub_bits=6, prob_bits=12, egk=2),  # o = 32
        Plan(2),  # rows 256-341: repeated rows
        Plan(3, "row", g=7, egk_d=2, k=1, joint=1, qshift=2, sub_bits=8, prob_bits=11, egk=3),  # o = 16, P = 86
        Plan(3, "column", g=7, egk_d=2, k=0, joint=0, qshift=0, sub_bits=6, prob_bits=14, egk=1),  # 3520: 55 lanes
    ])
    c0, c4 = bi[0], bi[4]
    assert c0["wraps"][0] > 0 and c0["wraps"][1] > 0  # both ways round
    assert all(min(x["d"]) < 0 < max(x["d"]) for x in bi if x["mode"] == 3)
    assert [x.get("o") for x in bi] == [0, 16, None, None, 16, 32] and (c4["L"], c4["P"]) == (48, 86)
    assert [x["g"] for x in bi if x["mode"] == 3] == [2, 0, 7, 7]
    # F16 [64, 40], chunks of 512: values with 3 low mantissa bits zero, so the inner payloads trim (z = 3).
    rows, cols = 64, 40
    v = [weight(rng, "F16", ((c * 3) % 9) - 4 if r < 24 or r >= 40 else ((r * 7) % 9) - 4, zero_low=3)
         for r in range(rows) for c in range(cols)]
    f16, fi = shift_tensor("shift.f16", "F16", [rows, cols], v, 512, [
        Plan(3, "column", g=2, egk_d=1, k=3, joint=0, qshift=2, sub_bits=6, prob_bits=12, egk=0),  # o = 0
        Plan(1, k=2, joint=1, qshift=2, sub_bits=6, prob_bits=11, egk=1),  # o = 32, z = 3
        Plan(3, "row", g=10, egk_d=3, k=4, joint=0, qshift=1, sub_bits=6, prob_bits=12, egk=2),  # o = 24, rows 25-38
        Plan(2),
        Plan(3, "column", g=5, egk_d=0, k=1, joint=0, qshift=3, sub_bits=6, prob_bits=10, egk=0),  # o = 8
    ])
    assert all(x["inner"][3] >> 2 == 3 for x in fi if x["mode"] == 3)  # inner z = 3
    # F32 [80, 40], chunks of 1024: column shift, row shift (E + g = 15), mode 1, mode 0 (128 elements).
    rows, cols = 80, 40
    v = [weight(rng, "F32", ((c * 5) % 7) - 3 if not 25 <= r < 52 else ((r * 3) % 8) - 4) for r in range(rows) for c in range(cols)]
    f32, _ = shift_tensor("shift.f32", "F32", [rows, cols], v, 1024, [
        Plan(3, "column", g=4, egk_d=2, k=2, joint=0, qshift=2, sub_bits=6, prob_bits=12, egk=1),  # o = 0
        Plan(3, "row", g=7, egk_d=0, k=3, joint=1, qshift=2, sub_bits=6, prob_bits=12, egk=0),  # o = 24, rows 25-51
        Plan(1, k=3, joint=1, qshift=2, sub_bits=6, prob_bits=12, egk=1),  # o = 8
        Plan(0),
    ])
    # F8_E4M3 [60, 50], chunks of 1024: E = 4, m = 3, g = 3 (the whole magnitude).
    rows, cols = 60, 50
    v = [weight(rng, "F8_E4M3", ((c * 3) % 7) - 3 if not 20 <= r < 41 else ((r * 5) % 7) - 3) for r in range(rows) for c in range(cols)]
    e4, _ = shift_tensor("shift.e4m3", "F8_E4M3", [rows, cols], v, 1024, [
        Plan(3, "column", g=3, egk_d=0, k=3, joint=1, qshift=2, sub_bits=6, prob_bits=11, egk=0),  # o = 0
        Plan(3, "row", g=3, egk_d=2, k=3, joint=0, qshift=1, sub_bits=6, prob_bits=10, egk=1),  # o = 24, P = 21
        Plan(3, "column", g=3, egk_d=1, k=1, joint=0, qshift=3, sub_bits=6, prob_bits=12, egk=2),  # o = 48
    ])
    return [bf16, f16, f32, e4]


def shift_vectors(d):
    check_fans_codec()
    try:  # the older bad vector mixed_mode3 is still invalid now that mode 3 exists
        chunk_decode(mixed_tensors(mode2=MODE_SHIFT)[0].stored[0], "BF16", 10048, MIXED)
        raise AssertionError("mixed_mode3 decodes")
    except Invalid as e:
        assert "reserved" in str(e)
    put_single(d, "float_ans_shift", shift_good(), 3)
    put_bad(d, shift_bad())


def must_fail(p, dtype, dst_n, codec, why):
    """p, a chunk of codec, must be refused for the reason why (a part of the message)."""
    try:
        chunk_decode(p, dtype, dst_n, codec)
    except Invalid as e:
        assert why in str(e), (why, str(e))
        return
    raise AssertionError("accepted: " + why)


def shift_bad():
    """Codec-4 files with a mode-3 chunk that breaks one rule of FLOAT_ANS.md §2.1 (or as few as the rule
    allows), checksum-valid everywhere; each must fail chunk_decode on that rule. Where a lax decoder could
    still decode it, the shifted values are those it would undo, so only the rule catches it."""
    rng = Rng(0xBAD3)
    rows, cols = 40, 48
    col_exp = [((c * 5) % 9) - 4 for c in range(cols)]
    vals = [weight(rng, "BF16", col_exp[c]) for r in range(rows) for c in range(cols)]
    inner = dict(k=2, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1)
    n0 = 1024  # chunk 0: a good mode-3 chunk; chunk 1 (896 elements, o = 16) is the one each vector breaks
    p0 = shift_parts(vals[:n0], "BF16", 2, 1, *column_shift(0, n0, cols), **inner)
    c0 = p0["head"] + p0["lst"].bytes() + p0["inner"]
    cv = vals[n0:]
    n = len(cv)
    L, P, o = column_shift(n0, n, cols)
    base = shift_parts(cv, "BF16", 2, 1, L, P, o, **inner)
    assert p0["inner"][3] >> 2 == 0 and base["inner"][3] >> 2 == 0  # z = 0: valid under codec 2 as well
    good = base["head"] + base["lst"].bytes() + base["inner"]
    assert base["lst"].n % 8  # there are padding bits to set

    def head(g=2, egk_d=1, reserved=0, L=L, P=P, o=o):
        return MODE_SHIFT + struct.pack("<BHIII", g | egk_d << 4, reserved, L, P, o)

    def lst(d, egk_d=1, last_z=None):
        b = Bits()
        for i, x in enumerate(d):
            b.eg(zigzag(x), egk_d, z=last_z if i == len(d) - 1 else None)
        return b.bytes()

    def with_d(d, **kw):
        """head(**kw) + list d + the inner payload of the values shifted by d (what a lax decoder undoes)."""
        pl = dict(L=L, P=P, o=o)
        pl.update({x: kw[x] for x in ("L", "P", "o") if x in kw})
        vp = unshift(cv, "BF16", 2, pl["L"], pl["P"], pl["o"], d)
        return head(**kw) + lst(d, kw.get("egk_d", 1)) + fans_encode(vp, "BF16", **inner)

    big = list(base["d"])
    big[5] = 1 << 10  # |d| = 2^(E+g): as d = 0 modulo 2^10
    huge = list(base["d"])
    huge[-1] = (1 << 25) - 1  # zigzag: 2^26 - 2, whose order-1 code has z = 25
    vp_o0 = unshift(cv, "BF16", 2, 1, P, 0, base["d"])
    nested = shift_payload(base["vp"], "BF16", 2, 0, *row_shift(n0, n, cols), k=2, joint=0)  # a mode-3 payload inside
    chunks = {
        "shift_reserved": head(reserved=1) + base["lst"].bytes() + base["inner"],
        "shift_egk_d_4": head(egk_d=4) + lst(base["d"], egk_d=4) + base["inner"],
        "shift_L_0": head(L=0) + base["lst"].bytes() + base["inner"],  # (so o < L * P fails too)
        "shift_P_0": head(P=0, o=0) + base["inner"],  # an empty list (and o < L * P = 0 fails too)
        "shift_P_gt_n": with_d([0] * (n + 1), P=n + 1, o=0),  # L = 1, P = n + 1 entries, all zero
        "shift_o_eq_LP": head(o=L * P) + lst(base["d"]) + fans_encode(vp_o0, "BF16", **inner),  # o = 48 acts as 0
        "shift_eg_z25": head() + lst(huge, last_z=25) + base["inner"],  # (its |d| >= 2^(E+g) as well)
        "shift_d_range": with_d(big),
        "shift_padding": head() + base["lst"].bytes(pad=1) + base["inner"],
        "shift_inner_mode0": head() + base["lst"].bytes() + MODE_RAW + to_raw(base["vp"], "BF16"),
        "shift_inner_mode2": head() + base["lst"].bytes() + MODE_ZSTD + zraw(to_raw(base["vp"], "BF16")),
        "shift_inner_mode3": head() + base["lst"].bytes() + nested,
        "shift_inner_truncated": good[:-1],
        "shift_trailing_byte": good + b"\x00",
        "shift_mode4": b"\x04" + good[1:],  # modes above 3 are invalid
    }
    assert vp_o0 == unshift(cv, "BF16", 2, 1, P, L * P, base["d"])  # entries (48 + e) mod 48 = e mod 48
    expect = {"shift_reserved": "reserved", "shift_egk_d_4": "egk_d", "shift_L_0": "L = 0", "shift_P_0": "P = 0",
              "shift_P_gt_n": "P > n", "shift_o_eq_LP": "o >= L", "shift_eg_z25": "z > 24", "shift_d_range": "|d|",
              "shift_padding": "padding", "shift_inner_mode0": "inner mode byte 0", "shift_inner_mode2": "inner mode byte 2",
              "shift_inner_mode3": "inner mode byte 3", "shift_inner_truncated": "payload length",
              "shift_trailing_byte": "payload length", "shift_mode4": "mode byte 4"}

    def container_of(ts, minor=3):
        fb, plen = st_file(ts)
        return container2([(0, "model.safetensors", fb, plen, ts)], major=1, minor=minor)

    assert chunk_decode(c0, "BF16", 2 * n0, MIXED) == to_raw(vals[:n0], "BF16")
    assert chunk_decode(good, "BF16", 2 * n, MIXED) == to_raw(cv, "BF16")

    def bf16(c1, codec=MIXED):
        return [Exact("w.bf16", "BF16", [rows, cols], to_raw(vals, "BF16"), codec=codec, chunk_size=2 * n0, stored=[c0, c1])]

    out = {}
    for name, p in chunks.items():
        must_fail(p, "BF16", 2 * n, MIXED, expect[name])
        out[name + ".codec"] = container_of(bf16(p))
    # g > m: F8_E4M3 (m = 3, E + g = 8); E + g > 15: F32 (g = 8 <= m = 23). BF16 and F16 cannot break one alone.
    e4 = [weight(rng, "F8_E4M3", ((c * 3) % 7) - 3) for r in range(20) for c in range(48)]
    p = shift_payload(e4, "F8_E4M3", 3, 1, 1, 48, 0, k=3, joint=0, sub_bits=6)
    assert chunk_decode(p, "F8_E4M3", 960, MIXED) == to_raw(e4, "F8_E4M3")
    p = p[:1] + bytes([p[1] + 1]) + p[2:]  # g = 4
    must_fail(p, "F8_E4M3", 960, MIXED, "g > m")
    out["shift_g_gt_m.codec"] = container_of([Exact("w.e4m3", "F8_E4M3", [20, 48], to_raw(e4, "F8_E4M3"), codec=MIXED,
                                                    chunk_size=1024, stored=[p])])
    f32 = [weight(rng, "F32", ((c * 3) % 7) - 3) for r in range(8) for c in range(24)]
    p = shift_payload(f32, "F32", 8, 2, 1, 24, 0, k=4, joint=0, sub_bits=6)  # a 16-bit field, s = 15
    must_fail(p, "F32", 768, MIXED, "E + g > 15")
    out["shift_f32_e_plus_g_16.codec"] = container_of([Exact("w.f32", "F32", [8, 24], to_raw(f32, "F32"), codec=MIXED,
                                                             chunk_size=768, stored=[p])])
    # Mode 3 belongs to codec 4 only: the same (otherwise valid, z = 0) chunks under codecs 2 and 3.
    for codec, name, minor in ((FANS, "fans_mode3", 0), (TRIM, "trim_mode3", 2)):
        must_fail(c0, "BF16", 2 * n0, codec, "mode byte 3 under codec %d" % codec)
        out[name + ".codec"] = container_of(bf16(good, codec), minor)
    return out


# ---------------------------------------------------------------------------------------------
# Codec 5, float-ans-patch (1.5, 2.6; FORMAT.md §6, FLOAT_ANS.md §2.2): codec 4's payloads, and mode 4: a
# list of elements stored whole (LEB128 gaps, values) before a mode-1 or mode-3 payload of the chunk with
# those elements' low z bits cleared. patch_decode() checks every rule of §2.2 (chunk_decode calls it).

def read_leb128(p, pos):
    """A gap of §2.2: 1 to 5 bytes, 7 bits each, low group first -> (value, position after it)."""
    v = 0
    for j in range(5):
        if pos >= len(p):
            raise Invalid("list past the payload")
        v |= (p[pos] & 0x7F) << (7 * j)
        pos += 1
        if not p[pos - 1] & 0x80:
            return v, pos
    raise Invalid("LEB128 gap longer than 5 bytes")


def patch_decode(p, dtype, dst_n):
    """A mode-4 payload (§2.2) -> the chunk's dst_n raw bytes, or Invalid."""
    b = GEOM[dtype][0] // 8
    n = dst_n // b
    if len(p) < 8:
        raise Invalid("mode 4 header truncated")
    if p[1] or struct.unpack_from("<H", p, 2)[0]:
        raise Invalid("reserved")
    E = struct.unpack_from("<I", p, 4)[0]
    if E < 1:
        raise Invalid("E = 0")
    if E > n:
        raise Invalid("E > n")
    pos, i, listed = 8, -1, []
    for _ in range(E):
        gap, pos = read_leb128(p, pos)
        i += 1 + gap
        if i >= n:
            raise Invalid("index >= n")
        if pos + b > len(p):
            raise Invalid("list past the payload")
        listed.append((i, p[pos:pos + b]))
        pos += b
    inner = p[pos:]
    if not inner or inner[0] not in (1, 3):
        raise Invalid("inner mode byte %s" % (inner[0] if inner else "missing"))
    out = bytearray(chunk_decode(inner, dtype, dst_n, MIXED))  # modes 1 and 3 as codec 4 reads them
    for i, v in listed:
        out[i * b:(i + 1) * b] = v
    return bytes(out)


def patch_head(E, r8=0, r16=0):
    return MODE_PATCH + struct.pack("<BHI", r8, r16, E)


def patch_list(idx, values, dtype, gap_bytes=None):
    """The entries of §2.2 for elements idx (increasing) taking values; gap_bytes {k: LEB128 length of gap k}."""
    b, out, prev = GEOM[dtype][0] // 8, b"", -1
    for k, (i, v) in enumerate(zip(idx, values)):
        out += leb128(i - prev - 1, (gap_bytes or {}).get(k)) + v.to_bytes(b, "little")
        prev = i
    return out


def cleared(vals, idx, z):
    """vals with the low z bits of the elements idx cleared (what the encoder codes in the inner payload)."""
    s = set(idx)
    return [v >> z << z if e in s else v for e, v in enumerate(vals)]


def patch_good():
    """float_ans_patch: an F16 tensor [1051, 12] of codec 5 in chunks of 2528 elements (5056 bytes, a multiple
    of 64): mode 4 over a mode-1 payload with z = 3 (F16 of BF16 values: the listed elements are F16
    subnormals, whose low 3 bits the trim leaves out and the list restores), mode 4 over a mode-3 payload
    (column shift, inner z = 3), mode 1, mode 2, and last (2500 elements) mode 4 over the pinned mode-1 payload
    float_ans/f16_2groups_joint (z = 0: its list overwrites three elements)."""
    rng = Rng(0x9A7C5)
    rows, cols, ce = 1051, 12, 2528
    fans, raw0 = fans_vector("f16_2groups_joint.F16")
    assert len(raw0) == 5000 and fans[3] >> 2 == 0
    v0 = to_vals(raw0, "F16")
    idx0, new0 = [5, 300, 2499], [0x0001, 0x83FF, 0x7BFF]  # gaps 5, 294 and 2198 (2 LEB128 bytes each)
    assert all(v0[i] != x for i, x in zip(idx0, new0))
    for i, x in zip(idx0, new0):
        v0[i] = x
    l0 = patch_list(idx0, new0, "F16")
    p0 = patch_head(3) + l0 + fans
    col_exp = [((c * 7) % 11) - 5 for c in range(cols)]
    v = [weight(rng, "F16", col_exp[c % cols], zero_low=3) for c in range(3 * ce)]
    sub = [0x0001, 0x8007, 0x03F9, 0x8205, 0x0042]  # F16 subnormals (BF16 values below 2^-14) with low bits set
    v1, v2, v3 = v[:ce], v[ce:2 * ce], v[2 * ce:]
    idx1 = [17, 18, 700, 2527]  # gaps 17, 0, 681 (2 bytes), 1826 (2 bytes)
    idx2 = [0, 129, 2499]  # gaps 0, 128 (2 bytes), 2369 (2 bytes)
    for vv, idx in ((v1, idx1), (v2, idx2)):
        for k, i in enumerate(idx):
            vv[i] = sub[(k + i) % len(sub)]
        assert all(vv[i] & 7 for i in idx)
    in1 = fans_encode(cleared(v1, idx1, 3), "F16", k=2, joint=1, qshift=2, sub_bits=7, prob_bits=12, egk=1)
    assert in1[3] >> 2 == 3  # z = 3: the trim the listed elements would spoil
    l1 = patch_list(idx1, [v1[i] for i in idx1], "F16")
    p1 = patch_head(4) + l1 + in1
    L, P, o = column_shift(ce, ce, cols)
    pt = shift_parts(cleared(v2, idx2, 3), "F16", 2, 1, L, P, o, k=3, joint=0, qshift=2, sub_bits=6, prob_bits=12, egk=0)
    assert pt["inner"][3] >> 2 == 3 and o == 8 and min(pt["d"]) < 0 < max(pt["d"])
    l2 = patch_list(idx2, [v2[i] for i in idx2], "F16")
    p2 = patch_head(3) + l2 + pt["head"] + pt["lst"].bytes() + pt["inner"]
    p3 = fans_encode(v3, "F16", k=2, joint=0, qshift=1, sub_bits=8, prob_bits=11, egk=2)
    v4 = [(0x3C00, 0xBC00, 0x0000, 0x3800)[(e // 9) % 4] for e in range(ce)]  # values from a small set
    p4 = MODE_ZSTD + zraw(to_raw(v4, "F16"))
    vals = v1 + v2 + v3 + v4 + v0
    assert len(vals) == rows * cols
    stored = [p1, p2, p3, p4, p0]
    for j, p in enumerate(stored):
        craw = to_raw(vals[j * ce:(j + 1) * ce], "F16")
        assert chunk_decode(p, "F16", len(craw), PATCH) == craw, j
        if p[0] == 4:
            must_fail(p, "F16", len(craw), MIXED, "mode byte 4 under codec 4")
            inner = p[8 + len({0: l1, 1: l2, 4: l0}[j]):]
            assert chunk_decode(inner, "F16", len(craw), MIXED) != craw  # the list matters
    return [Exact("patch.f16", "F16", [rows, cols], to_raw(vals, "F16"), codec=PATCH, chunk_size=2 * ce, stored=stored)]


def patch_bad():
    """Codec-5 files (and one codec-4 file) with a mode-4 chunk that breaks one rule of FLOAT_ANS.md §2.2,
    checksum-valid everywhere; each must fail chunk_decode on that rule. Where it can, the rest is what a lax
    decoder would turn into the right bytes, so only the rule catches it."""
    rng = Rng(0xBAD5)
    rows, cols = 40, 48
    vals = [weight(rng, "F16", ((c * 5) % 9) - 4, zero_low=3) for r in range(rows) for c in range(cols)]
    for e in (3, 200, 1500, 1510, 1910):
        vals[e] = 0x0007 if e % 2 else 0x8005  # F16 subnormals whose low 3 bits are not zero
    opt = dict(k=2, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1)
    n0 = 1024  # chunk 0: a good mode-4 chunk; chunk 1 (896 elements) is the one each vector breaks
    i0 = [3, 200]
    c0 = patch_head(2) + patch_list(i0, [vals[i] for i in i0], "F16") + fans_encode(cleared(vals[:n0], i0, 3), "F16", **opt)
    cv = vals[n0:]
    n = len(cv)
    idx = [476, 486, 886]  # gaps 476 (2 LEB128 bytes), 9, 399 (2 bytes)
    lv = [cv[i] for i in idx]
    cl = cleared(cv, idx, 3)
    inner = fans_encode(cl, "F16", **opt)
    assert inner[3] >> 2 == 3
    lst = patch_list(idx, lv, "F16")
    good = patch_head(3) + lst + inner
    exact = fans_encode(cv, "F16", **opt)  # z = 0: the chunk's bytes without a list
    assert exact[3] >> 2 == 0
    assert chunk_decode(c0, "F16", 2 * n0, PATCH) == to_raw(vals[:n0], "F16")
    assert chunk_decode(good, "F16", 2 * n, PATCH) == to_raw(cv, "F16")
    chunks = {
        "patch_E_0": patch_head(0) + exact,  # an empty list before a payload of the exact bytes
        "patch_E_gt_n": patch_head(n + 1) + lst + inner,  # E = n + 1 (the list that follows has 3 entries)
        "patch_index_eq_n": patch_head(3) + patch_list(idx[:2] + [n], lv, "F16") + inner,  # i_2 = n (gap 409)
        "patch_list_past_payload": (patch_head(3) + lst)[:-1],  # the last value cut short, nothing after it
        "patch_gap_6_bytes": patch_head(3) + patch_list(idx, lv, "F16", gap_bytes={0: 6}) + inner,  # 476 in 6 bytes
        "patch_reserved_u8": patch_head(3, r8=1) + lst + inner,
        "patch_reserved_u16": patch_head(3, r16=1) + lst + inner,
        "patch_inner_mode0": patch_head(3) + lst + MODE_RAW + to_raw(cl, "F16"),
        "patch_inner_mode2": patch_head(3) + lst + MODE_ZSTD + zraw(to_raw(cl, "F16")),
        "patch_inner_mode4": patch_head(3) + lst + good,  # a valid mode-4 payload inside
    }
    expect = {"patch_E_0": "E = 0", "patch_E_gt_n": "E > n", "patch_index_eq_n": "index >= n",
              "patch_list_past_payload": "list past the payload", "patch_gap_6_bytes": "longer than 5 bytes",
              "patch_reserved_u8": "reserved", "patch_reserved_u16": "reserved", "patch_inner_mode0": "inner mode byte 0",
              "patch_inner_mode2": "inner mode byte 2", "patch_inner_mode4": "inner mode byte 4"}

    def container_of(c1, codec=PATCH, minor=5):
        ts = [Exact("w.f16", "F16", [rows, cols], to_raw(vals, "F16"), codec=codec, chunk_size=2 * n0, stored=[c0, c1])]
        fb, plen = st_file(ts)
        return container2([(0, "model.safetensors", fb, plen, ts)], major=1, minor=minor)

    out = {}
    for name, p in chunks.items():
        must_fail(p, "F16", 2 * n, PATCH, expect[name])
        out[name + ".codec"] = container_of(p)
    # Mode 4 belongs to codec 5 only: the same (valid) chunks under codec 4, float-ans-mixed, in a 1.3 file.
    must_fail(c0, "F16", 2 * n0, MIXED, "mode byte 4 under codec 4")
    out["mixed_mode4.codec"] = container_of(good, MIXED, 3)
    return out


def patch_vectors(d):
    put_single(d, "float_ans_patch", patch_good(), 5)
    put_bad(d, patch_bad())


# ---------------------------------------------------------------------------------------------
# Codec 7, float-ans-groups (1.6, 2.10; FORMAT.md §6, FLOAT_ANS.md §2.3): codec 5's payloads (modes 0 to 4, read as
# codec 5 reads them), and mode 5: per block of K = 16384 elements (the last block shorter), per byte plane k = 0 ..
# b - 1 (byte k of each element, little-endian), exactly one zstd frame whose content is the plane, frames back to
# back, nothing after the last. The frames are written by hand (raw and RLE blocks, the frame header's every
# content-size form, or none), so the vectors do not depend on a zstd version; zstd_frame_at() reads one frame of
# RFC 8878 (raw and RLE blocks only: the frames this writer makes) and groups_decode() checks every rule of §2.3.

GROUPS_K = 16384  # §2.3: elements per block


def zframe(data, fcs=8, rle=None):
    """One zstd frame (RFC 8878 §3.1.1) of data in raw blocks, and RLE blocks for runs of at least `rle` equal bytes.
    fcs: the Frame_Content_Size field's bytes, 8, 4, 2 or 1 (a single-segment frame: its window is its content
    size), or 0: no content size (the window descriptor then says 128 KiB, as zraw_unsized's)."""
    n = len(data)
    if fcs == 0:
        head = struct.pack("<IBB", 0xFD2FB528, 0x00, 7 << 3)
    else:
        flag, v = {8: (3, n), 4: (2, n), 2: (1, n - 256), 1: (0, n)}[fcs]
        assert 0 <= v < 1 << (8 * fcs)
        head = struct.pack("<IB", 0xFD2FB528, flag << 6 | 1 << 5) + v.to_bytes(fcs, "little")
    pieces, pos = [], 0  # (type, size, content): type 0 raw, 1 RLE
    while pos < n:
        run = 1
        while pos + run < n and data[pos + run] == data[pos]:
            run += 1
        if rle and run >= rle:
            pieces.append((1, run, data[pos:pos + 1]))
            pos += run
            continue
        end = pos + 1
        while end < n:  # up to the next run worth an RLE block
            r = 1
            while end + r < n and data[end + r] == data[end]:
                r += 1
            if rle and r >= rle:
                break
            end += r
        pieces.append((0, end - pos, data[pos:end]))
        pos = end
    out = b""
    pieces = [(t, min(sz - o, 1 << 16), c if t else c[o:o + (1 << 16)]) for t, sz, c in pieces
              for o in range(0, sz, 1 << 16)] or [(0, 0, b"")]
    for j, (t, sz, c) in enumerate(pieces):
        out += struct.pack("<I", sz << 3 | t << 1 | (j == len(pieces) - 1))[:3] + c
    return head + out


def zstd_frame_at(p, pos):
    """The zstd frame that starts at p[pos] (RFC 8878 §3.1.1) -> (content, the position after it), or Invalid.
    A skippable frame is Invalid (§2.3: not a skippable frame); so are the blocks this writer does not make
    (compressed blocks) and a frame that asks for a dictionary (there is none)."""
    if pos >= len(p):
        raise Invalid("frame missing: the payload ends before it")
    if pos + 4 > len(p):
        raise Invalid("zstd frame truncated")
    magic = struct.unpack_from("<I", p, pos)[0]
    if magic & 0xFFFFFFF0 == 0x184D2A50:
        raise Invalid("skippable frame")
    if magic != 0xFD2FB528:
        raise Invalid("not a zstd frame")
    pos += 4
    if pos >= len(p):
        raise Invalid("zstd frame truncated")
    fhd = p[pos]
    pos += 1
    fcs_flag, single, reserved, checksum, dict_flag = fhd >> 6, fhd >> 5 & 1, fhd >> 3 & 1, fhd >> 2 & 1, fhd & 3
    if reserved:
        raise Invalid("zstd frame header's reserved bit")
    window = None
    if not single:
        if pos >= len(p):
            raise Invalid("zstd frame truncated")
        wd = p[pos]
        pos += 1
        base = 1 << (10 + (wd >> 3))
        window = base + (base >> 3) * (wd & 7)
    dict_len = (0, 1, 2, 4)[dict_flag]
    fcs_len = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if pos + dict_len + fcs_len > len(p):
        raise Invalid("zstd frame truncated")
    if int.from_bytes(p[pos:pos + dict_len], "little"):
        raise Invalid("zstd frame asks for a dictionary")
    pos += dict_len
    size = int.from_bytes(p[pos:pos + fcs_len], "little") + (256 if fcs_len == 2 else 0) if fcs_len else None
    pos += fcs_len
    if single:
        window = size
    block_max = min(window, 1 << 17)
    out = bytearray()
    while True:
        if pos + 3 > len(p):
            raise Invalid("zstd frame truncated")
        bh = int.from_bytes(p[pos:pos + 3], "little")
        last, btype, bsize = bh & 1, bh >> 1 & 3, bh >> 3
        pos += 3
        if btype >= 2:
            raise Invalid("zstd block type %d (this writer reads raw and RLE blocks only)" % btype)
        if bsize > block_max:
            raise Invalid("zstd block larger than the frame's maximum")
        take = bsize if btype == 0 else 1
        if pos + take > len(p):
            raise Invalid("zstd frame truncated")
        out += p[pos:pos + bsize] if btype == 0 else p[pos:pos + 1] * bsize
        pos += take
        if size is not None and len(out) > size:
            raise Invalid("zstd frame holds more than its declared content size")
        if last:
            break
    if size is not None and len(out) != size:
        raise Invalid("zstd frame holds less than its declared content size")
    if checksum:
        if pos + 4 > len(p):
            raise Invalid("zstd frame truncated")
        if struct.unpack_from("<I", p, pos)[0] != xxhash.xxh64_intdigest(bytes(out)) & 0xFFFFFFFF:
            raise Invalid("zstd content checksum")
        pos += 4
    return bytes(out), pos


def groups_decode(p, dtype, dst_n):
    """A mode-5 payload (§2.3) -> the chunk's dst_n raw bytes, or Invalid."""
    W = GEOM[dtype][0]
    b = W // 8
    if b == 1:
        raise Invalid("mode 5 for an 8-bit dtype")
    if dtype not in ("BF16", "F16", "F32"):
        raise Invalid("mode 5 for %s" % dtype)
    n = dst_n // b
    out, pos = bytearray(), 1
    for s in range(0, n, GROUPS_K):
        m = min(GROUPS_K, n - s)
        planes = []
        for k in range(b):
            c, pos = zstd_frame_at(p, pos)
            if len(c) != m:
                raise Invalid("content of plane %d of block %d: %d bytes, not m = %d" % (k, s // GROUPS_K, len(c), m))
            planes.append(c)
        for i in range(m):
            out += bytes(pl[i] for pl in planes)
    if pos != len(p):
        raise Invalid("bytes after the last frame")
    return bytes(out)


def groups_planes(raw, dtype):
    """[per block: [plane 0, ..., plane b - 1]] of the chunk raw (§2.3)."""
    b = GEOM[dtype][0] // 8
    n = len(raw) // b
    return [[raw[s * b + k:(s + min(GROUPS_K, n - s)) * b:b] for k in range(b)] for s in range(0, n, GROUPS_K)]


def groups_payload(raw, dtype, frame=lambda pl, j, k: zraw(pl)):
    """A mode-5 payload of the chunk raw; frame(plane, block j, plane number k) -> that plane's frame."""
    return MODE_GROUPS + b"".join(frame(pl, j, k) for j, planes in enumerate(groups_planes(raw, dtype))
                                  for k, pl in enumerate(planes))


def near_rows(rng, dtype, rows, cols, scale, ulps):
    """rows copies of one row of weights, each element moved by a few units in the last place (0 to ulps - 1,
    either way; the sign kept): the untrained rows of a token embedding."""
    W = GEOM[dtype][0]
    top, sign = (0x7BFF if dtype == "F16" else 0x7F7F if dtype == "BF16" else 0x7F7FFFFF), 1 << (W - 1)
    base = [weight(rng, dtype, scale) for _ in range(cols)]
    out = []
    for _ in range(rows):
        for v in base:
            d = rng(8) % (2 * ulps - 1) - (ulps - 1)
            out.append(v & sign | max(0, min(top, (v & (sign - 1)) + d)))
    return out


def check_over_older(ts, codec, mode, older):
    """Every chunk of tensors `ts` (codec `codec`) decodes to its raw bytes; one in the codec's new `mode` is refused
    by the codec before it (`older`), and one in any other mode decodes there alike (each codec reads the modes of
    the one before it)."""
    for t in ts:
        chunks = [t.raw[o:o + t.chunk_size] for o in range(0, len(t.raw), t.chunk_size)] if not t.inline else [t.raw]
        assert len(chunks) == len(t.stored)
        for j, (p, craw) in enumerate(zip(t.stored, chunks)):
            assert chunk_decode(p, t.dtype, len(craw), codec) == craw, (t.name, j)
            if p[0] == mode:
                must_fail(p, t.dtype, len(craw), older, f"mode byte {mode} under codec {older}")
            else:
                assert chunk_decode(p, t.dtype, len(craw), older) == craw, (t.name, j)


def groups_good():
    """float_ans_groups (1.6): three tensors of codec 7.
    tok.f16 [1300, 32] F16 in chunks of 20480 elements: rows 0-899 one row with up to 3 ulps of noise (rows 560-599
    zero: padding tokens), rows 900-1299 random. Chunk 0 (rows 0-639): mode 5, two blocks (16384 elements, then a
    partial one of 4096), frames with 8-, 4- and 2-byte content sizes, RLE blocks over the zero rows; chunk 1 (rows
    640-1279): mode 1; chunk 2 (rows 1280-1299, 640 elements): mode 5, one partial block, frames without a content size.
    w.f32 [48, 96] F32 in chunks of 2048 elements: mode 5 (4 planes; near-duplicate rows), mode 4 (BF16 values with
    three listed exceptions over a mode-1 payload with z = 16), mode 2 (values from a small set; 512 elements).
    norm.bf16 [200] BF16, inline (1.4): mode 5, two planes of 200 bytes in frames with a 1-byte content size."""
    rng = Rng(0x6C7)
    rows, cols, ce = 1300, 32, 20480
    v = near_rows(rng, "F16", 900, cols, -3, 4) + [weight(rng, "F16", -3 + (c % 5) - 2) for c in range(400 * cols)]
    for e in range(560 * cols, 600 * cols):
        v[e] = 0
    raw = to_raw(v, "F16")
    c0, c1, c2 = raw[:2 * ce], raw[2 * ce:4 * ce], raw[4 * ce:]
    p0 = groups_payload(c0, "F16", lambda pl, j, k: zframe(pl, fcs=(8, 4)[k] if j == 0 else (2, 8)[k], rle=64))
    p1 = fans_encode(to_vals(c1, "F16"), "F16", k=2, joint=0, qshift=2, sub_bits=11, prob_bits=12, egk=1)
    p2 = groups_payload(c2, "F16", lambda pl, j, k: zframe(pl, fcs=0))
    assert [len(x) for x in groups_planes(c0, "F16")[1]] == [4096, 4096] and len(groups_planes(c2, "F16")) == 1
    assert p0.count(b"\x28\xb5\x2f\xfd") == 4 and len(p0) < len(c0) - 2 * 1200  # 4 frames; RLE blocks of the zero rows
    f16 = Exact("tok.f16", "F16", [rows, cols], raw, codec=GROUPS, chunk_size=2 * ce, stored=[p0, p1, p2])
    # F32: rows of one row with noise in the low mantissa byte; then BF16 values; then a small set of values
    rng = Rng(0xF32)
    fr, fc, fce = 48, 96, 2048
    w0 = near_rows(rng, "F32", 22, fc, -2, 100)[:fce]
    w1 = [weight(rng, "F32", (c % 7) - 3) >> 16 << 16 for c in range(fce)]
    idx1 = [5, 1000, 2047]
    for i in idx1:
        w1[i] |= 0x1234 + i  # F32 values BF16 cannot hold
    w2 = [(0x3F800000, 0xBF800000, 0, 0x3E800000)[(e // 5) % 4] for e in range(fr * fc - 2 * fce)]
    in1 = fans_encode(cleared(w1, idx1, 16), "F32", k=3, joint=1, qshift=1, sub_bits=8, prob_bits=12, egk=0)
    assert in1[3] >> 2 == 16  # z = 16: what the three listed elements would spoil
    q0 = groups_payload(to_raw(w0, "F32"), "F32")
    q1 = patch_head(3) + patch_list(idx1, [w1[i] for i in idx1], "F32") + in1
    q2 = MODE_ZSTD + zraw(to_raw(w2, "F32"))
    f32 = Exact("w.f32", "F32", [fr, fc], to_raw(w0 + w1 + w2, "F32"), codec=GROUPS, chunk_size=4 * fce, stored=[q0, q1, q2])
    # BF16, inline: values near 1 and -0.5 (7 mantissa bits: noise of up to 2 ulps)
    nb = [(0x3F80, 0xBF00)[e % 2] + (rng(8) % 3) for e in range(200)]
    braw = to_raw(nb, "BF16")
    r0 = groups_payload(braw, "BF16", lambda pl, j, k: zframe(pl, fcs=1))
    assert len(r0) <= bound(len(braw))
    bf16 = Exact("norm.bf16", "BF16", [200], braw, codec=GROUPS, inline=True, stored=[r0])
    ts = [f16, f32, bf16]
    check_over_older(ts, GROUPS, 5, PATCH)
    return ts


def groups_bad():
    """Codec-7 files (and codec-5, -4 and -2 ones) with a mode-5 chunk that breaks one rule of FLOAT_ANS.md §2.3,
    checksum-valid everywhere; each must fail chunk_decode on that rule. Most are a tensor whose chunk 0 is a good
    mode-5 chunk (1024 elements) and whose chunk 1 (896 elements) is the broken one; where a frame lies, the planes it
    should hold are there, so that only the rule catches it. Those about blocks are a tensor of one chunk of two
    blocks (16384 elements and 256)."""
    rng = Rng(0xBAD7)
    rows, cols = 40, 48
    vals = near_rows(rng, "F16", rows, cols, -2, 3)
    n0 = 1024
    raw0, raw1 = to_raw(vals[:n0], "F16"), to_raw(vals[n0:], "F16")
    n, m = len(raw1) // 2, len(raw1) // 2  # chunk 1: one block of 896 elements
    c0 = groups_payload(raw0, "F16")
    good = groups_payload(raw1, "F16")
    [[pl0, pl1]] = groups_planes(raw1, "F16")
    assert chunk_decode(c0, "F16", 2 * n0, GROUPS) == raw0 and chunk_decode(good, "F16", 2 * n, GROUPS) == raw1
    f0, f1 = zraw(pl0), zraw(pl1)
    assert good == MODE_GROUPS + f0 + f1
    chunks = {
        "groups_frame_short": MODE_GROUPS + zraw(pl0[:-1]) + f1,  # plane 0 one byte short (m - 1)
        "groups_frame_long": MODE_GROUPS + f0 + zraw(pl1 + b"\x00"),  # plane 1 and one byte more (m + 1)
        "groups_frame_short_unsized": MODE_GROUPS + zframe(pl0[:-1], fcs=0) + f1,  # the same without a content size
        "groups_frame_long_unsized": MODE_GROUPS + f0 + zframe(pl1 + b"\x00", fcs=0),
        "groups_trailing_byte": good + b"\x00",
        "groups_trailing_frame": good + zraw(b""),  # an empty frame after the last
        "groups_skippable": MODE_GROUPS + f0 + skippable(pl1),  # plane 1 in a skippable frame instead
        "groups_skippable_between": MODE_GROUPS + f0 + skippable(b"#!/bin/sh\n") + f1,
        "groups_planes_merged": MODE_GROUPS + zraw(pl0 + pl1),  # the block's two planes in one frame
        "groups_elements_one_frame": MODE_GROUPS + zraw(raw1),  # the elements in order in one frame (mode 2's content)
        "groups_missing_last_frame": MODE_GROUPS + f0,  # the payload ends before plane 1's frame
        "groups_last_frame_cut": good[:-1],  # plane 1's frame without its last byte
        "groups_fcs_lies": (MODE_GROUPS + f0 + struct.pack("<IBQ", 0xFD2FB528, 0xE0, m + 1)
                            + raw_blocks(pl1)),  # a frame declaring m + 1 bytes that holds plane 1's m
        "groups_mode6": b"\x06" + good[1:],  # modes above 5 are invalid
        "groups_patch_inner_mode5": patch_head(1) + patch_list([7], [vals[n0 + 7]], "F16") + good,  # mode 4's inner
        "groups_shift_inner_mode5": (MODE_SHIFT + struct.pack("<BHIII", 2 | 1 << 4, 0, 1, cols, n0 % cols)
                                     + shift_parts(vals[n0:], "F16", 2, 1, 1, cols, n0 % cols, k=2, joint=0)["lst"].bytes()
                                     + good),  # mode 3's inner
    }
    expect = {"groups_frame_short": "content of plane 0 of block 0: 895 bytes", "groups_frame_long": "plane 1 of block 0: 897",
              "groups_frame_short_unsized": "plane 0 of block 0: 895", "groups_frame_long_unsized": "plane 1 of block 0: 897",
              "groups_trailing_byte": "bytes after the last frame", "groups_trailing_frame": "bytes after the last frame",
              "groups_skippable": "skippable frame", "groups_skippable_between": "skippable frame",
              "groups_planes_merged": "plane 0 of block 0: 1792", "groups_elements_one_frame": "plane 0 of block 0: 1792",
              "groups_missing_last_frame": "frame missing", "groups_last_frame_cut": "zstd frame truncated",
              "groups_fcs_lies": "less than its declared content size", "groups_mode6": "mode byte 6 under codec 7",
              "groups_patch_inner_mode5": "inner mode byte 5", "groups_shift_inner_mode5": "inner mode byte 5"}

    def container_of(ts, minor=6):
        fb, plen = st_file(ts)
        return container2([(0, "model.safetensors", fb, plen, ts)], major=1, minor=minor)

    def f16(c1, codec=GROUPS, first=c0):
        return [Exact("w.f16", "F16", [rows, cols], raw0 + raw1, codec=codec, chunk_size=2 * n0, stored=[first, c1])]

    out = {}
    for name, p in chunks.items():
        must_fail(p, "F16", 2 * n, GROUPS, expect[name])
        out[name + ".codec"] = container_of(f16(p))
    # Mode 5 belongs to codec 7 only: the (valid) mode-5 chunk 1 under codec 5 (1.5), 4 (1.3) and 2 (1.0), after a
    # chunk 0 of mode 1 with z = 0 that each of them reads.
    m1 = fans_encode(vals[:n0], "F16", k=2, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1, z=0)
    for codec, name, minor in ((PATCH, "groups_mode5_in_codec5", 5), (MIXED, "groups_mode5_in_codec4", 3),
                               (FANS, "groups_mode5_in_codec2", 0)):
        assert chunk_decode(m1, "F16", 2 * n0, codec) == raw0
        must_fail(good, "F16", 2 * n, codec, "mode byte 5 under codec %d" % codec)
        out[name + ".codec"] = container_of(f16(good, codec, m1), minor)
    # Mode 5 is for BF16, F16 and F32 only: an F8_E4M3 chunk of one plane, in a frame of its 960 bytes.
    e4 = [weight(rng, "F8_E4M3", ((c * 3) % 7) - 3) for r in range(20) for c in range(48)]
    p = groups_payload(to_raw(e4, "F8_E4M3"), "F8_E4M3")
    assert p == MODE_GROUPS + zraw(to_raw(e4, "F8_E4M3"))
    must_fail(p, "F8_E4M3", 960, GROUPS, "mode 5 for an 8-bit dtype")
    out["groups_mode5_f8.codec"] = container_of([Exact("w.e4m3", "F8_E4M3", [20, 48], to_raw(e4, "F8_E4M3"),
                                                       codec=GROUPS, chunk_size=1024, stored=[p])])
    # Blocks: a chunk of 16640 elements is a block of 16384 and one of m = 256.
    br, bc = 520, 32
    bv = near_rows(rng, "F16", br, bc, -3, 2)
    braw = to_raw(bv, "F16")
    (a0, a1), (b0, b1) = groups_planes(braw, "F16")
    assert (len(a0), len(b0)) == (GROUPS_K, 256)
    assert chunk_decode(groups_payload(braw, "F16"), "F16", len(braw), GROUPS) == braw
    whole = [braw[k::2] for k in range(2)]
    blocks = {
        "groups_one_block": MODE_GROUPS + zraw(whole[0]) + zraw(whole[1]),  # no cut at K: frames of 16640 bytes
        "groups_plane_major": MODE_GROUPS + zraw(a0) + zraw(b0) + zraw(a1) + zraw(b1),  # block 0's plane 0, block 1's ...
        "groups_last_block_long": MODE_GROUPS + zraw(a0) + zraw(a1) + zraw(b0) + zraw(b1 + b"\x00"),  # m + 1 (< K)
        "groups_last_block_missing": MODE_GROUPS + zraw(a0) + zraw(a1),  # the partial block left out
    }
    bexpect = {"groups_one_block": "plane 0 of block 0: 16640", "groups_plane_major": "plane 1 of block 0: 256",
               "groups_last_block_long": "plane 1 of block 1: 257 bytes, not m = 256", "groups_last_block_missing": "frame missing"}
    for name, p in blocks.items():
        must_fail(p, "F16", len(braw), GROUPS, bexpect[name])
        out[name + ".codec"] = container_of([Exact("big.f16", "F16", [br, bc], braw, codec=GROUPS, chunk_size=len(braw),
                                                   stored=[p])])
    return out


def groups_vectors(d):
    put_single(d, "float_ans_groups", groups_good(), 6)
    put_bad(d, groups_bad())


# ---------------------------------------------------------------------------------------------
# Codec 8, float-ans-pairs (1.7, 2.12; FORMAT.md §6, FLOAT_ANS.md §2.4): codec 7's payloads (modes 0 to 5, read as
# codec 7 reads them), and mode 6, for F8_E5M2 and F8_E4M3 only: a 4-byte head (mode 6, the tail element n - 1 when n
# is odd, else 0; flags, bit 0: a shift block follows; a reserved 0), the shift block when flagged (a mode-3 payload's
# header and list, §2.1, for the chunk's n elements of its dtype), then a mode-1 payload of F16's geometry (codec 3's
# rules: z may be non-zero) of the h = floor(n / 2) 16-bit words that pack elements 2i and 2i + 1 each. unpair_word()
# is §2.4's formula as written; pair_word() its inverse (checked a bijection on all 65536 words); pairs_decode()
# checks every rule of §2.4 (chunk_decode calls it for mode 6 under codec 8).

def pair_word(a, b, E):
    """The word P of §2.4 of elements a (even) and b (odd) of E exponent bits: from bit 15 down a's sign, a's
    exponent, b's exponent, the mantissas' M = 7 - E bits interleaved (a's bit j at 2 + 2j, b's at 1 + 2j), b's sign."""
    M = 7 - E
    w = (a >> 7) << 15 | ((a >> M) & ((1 << E) - 1)) << (15 - E) | ((b >> M) & ((1 << E) - 1)) << (15 - 2 * E) | b >> 7
    for j in range(M):
        w |= ((a >> j) & 1) << (2 + 2 * j) | ((b >> j) & 1) << (1 + 2 * j)
    return w


def unpair_word(P, E):
    """§2.4's a_(2i) and a_(2i+1) of the word P, as the spec writes them."""
    M = 7 - E
    a = (P >> 15) << 7 | ((P >> (15 - E)) & ((1 << E) - 1)) << M | sum(((P >> (2 + 2 * j)) & 1) << j for j in range(M))
    b = (P & 1) << 7 | ((P >> (15 - 2 * E)) & ((1 << E) - 1)) << M | sum(((P >> (1 + 2 * j)) & 1) << j for j in range(M))
    return a, b


def check_pairs_map():
    """unpair_word is a bijection of the 65536 words onto the 65536 pairs of bytes, pair_word its inverse, and the
    word's top 2E bits are the two exponents (F16's exponent field and the 2E - 5 mantissa bits below it)."""
    for E in (5, 4):
        M = 7 - E
        seen = set()
        for P in range(1 << 16):
            a, b = unpair_word(P, E)
            assert 0 <= a < 256 and 0 <= b < 256 and pair_word(a, b, E) == P
            assert P >> (15 - 2 * E) & ((1 << 2 * E) - 1) == ((a >> M) & ((1 << E) - 1)) << E | ((b >> M) & ((1 << E) - 1))
            seen.add((a, b))
        assert len(seen) == 1 << 16
    assert pair_word(0x80, 0x01, 5) == 0x8002 and pair_word(0x01, 0x80, 5) == 0x0005  # signs at 15 and 0; mantissa bit 0
    assert pair_word(0x7C, 0x7C, 5) == 0x7FE0 and pair_word(0x78, 0x78, 4) == 0x7F80  # exponents all ones


def pairs_decode(p, dtype, dst_n):
    """A mode-6 payload (§2.4) -> the chunk's dst_n raw bytes, or Invalid."""
    if dtype not in ("F8_E5M2", "F8_E4M3"):
        raise Invalid("mode 6 for %s" % dtype)
    E = GEOM[dtype][1]
    n = dst_n
    if n < 2:
        raise Invalid("mode 6 with n = %d < 2" % n)
    if len(p) < 4:
        raise Invalid("mode 6 head truncated")
    tail, flags, reserved = p[1], p[2], p[3]
    if flags & ~1:
        raise Invalid("mode 6 flags 0x%02x: a bit other than bit 0" % flags)
    if reserved:
        raise Invalid("mode 6 reserved byte 3 != 0")
    if n % 2 == 0 and tail:
        raise Invalid("mode 6 tail byte 0x%02x with n even" % tail)
    pos, shift = 4, None
    if flags & 1:
        if len(p) <= pos or p[pos] != 3:
            raise Invalid("shift block's mode byte %s, not 3" % (p[pos] if len(p) > pos else "missing"))
        *shift, used = read_shift(p[pos:], dtype, n)
        pos += used
    inner = p[pos:]
    if not inner or inner[0] != 1:
        raise Invalid("inner mode byte %s" % (inner[0] if inner else "missing"))
    vals = []
    for w in fans_decode(inner, "F16", n // 2, True):
        vals += unpair_word(w, E)
    if n % 2:
        vals.append(tail)
    if shift:
        vals = reshift(vals, dtype, *shift)
    return to_raw(vals, dtype)


def shift_block(g, egk_d, L, P, o, d, reserved=0, pad=0):
    """A mode-3 payload's header and list (§2.1), padded to a byte boundary (with the bits pad, if given)."""
    lst = Bits()
    for x in d:
        lst.eg(zigzag(x), egk_d)
    return MODE_SHIFT + struct.pack("<BHIII", g | egk_d << 4, reserved, L, P, o) + lst.bytes(pad), lst.n


def pairs_parts(vals, dtype, shift=None, **inner):
    """The pieces of a mode-6 payload of the n FP8 values vals. shift: (g, egk_d, L, P, o, d or None: shift_list's).
    Returns dict(head, block, inner, words, vp: the values after the inverse shift, d, tail, listbits)."""
    E = GEOM[dtype][1]
    n = len(vals)
    assert n >= 2 and dtype in ("F8_E5M2", "F8_E4M3")
    block, vp, d, nbits = b"", vals, None, 0
    if shift is not None:
        g, egk_d, L, P, o, d = shift
        d = shift_list(vals, dtype, g, L, P, o) if d is None else d
        assert len(d) == P
        block, nbits = shift_block(g, egk_d, L, P, o, d)
        vp = unshift(vals, dtype, g, L, P, o, d)
    words = [pair_word(vp[2 * i], vp[2 * i + 1], E) for i in range(n // 2)]
    tail = vp[-1] if n % 2 else 0
    head = MODE_PAIRS + bytes([tail, 1 if shift is not None else 0, 0])
    return dict(head=head, block=block, inner=fans_encode(words, "F16", **inner), words=words, vp=vp, d=d, tail=tail,
                listbits=nbits)


def pairs_payload(vals, dtype, shift=None, **inner):
    pt = pairs_parts(vals, dtype, shift, **inner)
    return pt["head"] + pt["block"] + pt["inner"]


def pairs_good():
    """float_ans_pairs (1.7): five tensors of codec 8.
    w.e5m2 [120, 320] F8_E5M2 in chunks of 6144 elements, column scales: chunk 0 mode 6 (k = 5, the symbol both
    exponents; 48 lanes, 2 groups), chunk 1 mode 6 (k = 3, joint: the symbol the even element's sign, its exponent and
    3 of the odd one's 5 exponent bits), chunk 2 mode 2 (rows 36-59 four rows repeated), chunk 3 mode 1 (one element a
    symbol), chunk 4 mode 3 (a column shift of the elements, inner mode 1), chunk 5 mode 6 of non-negative values (every
    word's bit 0 zero: inner z = 1), chunk 6 (1536 elements) mode 0.
    w.e4m3 [37, 57] F8_E4M3 (2109 elements, odd) in chunks of 1024, every chunk mode 6 with a shift block: a column
    shift (g = 3, o = 0), a row shift (g = 1, L = 57, P = 19, o = 55), and the last chunk, n = 61 (odd: its tail byte
    shifted too), a column shift whose P = 57 exceeds the chunk's h = 30 words (P <= n is over elements).
    bytes.e5m2 [2, 256]: every byte value (zeros, subnormals, Inf, NaNs) at an even and at an odd position, mode 6.
    bytes.e4m3 [513]: every byte value at both positions and the tail 0x7F (NaN), mode 6 under a shift of L = 3,
    P = 5, o = 7 (g = 2, d up to +-63 = 2^(E+g) - 1).
    norm.e5m2 [7, 9] F8_E5M2, inline (1.4), 63 elements: mode 6 with a column shift (g = 2) and a tail."""
    rng = Rng(0xF8A1)
    # w.e5m2
    rows, cols, ce = 120, 320, 6144
    col_exp = [((c * 7) % 11) - 5 for c in range(cols)]
    v = [weight(rng, "F8_E5M2", col_exp[c]) for r in range(rows) for c in range(cols)]
    for r in range(40, 60):  # rows 36-39 repeated: padding-like rows, as the chunks that take mode 2 are
        v[r * cols:(r + 1) * cols] = v[(36 + r % 4) * cols:(37 + r % 4) * cols]
    for e in range(5 * ce, 6 * ce):  # rows 96-115: non-negative (the sign bits clear)
        v[e] &= 0x7F
    ch = [v[o:o + ce] for o in range(0, len(v), ce)]
    assert [len(c) for c in ch] == [ce] * 6 + [1536]
    s0 = pairs_parts(ch[0], "F8_E5M2", k=5, joint=0, qshift=2, sub_bits=6, prob_bits=12, egk=1)
    p0 = s0["head"] + s0["inner"]
    assert s0["inner"][3] >> 2 == 0 and lanes(ce // 2, 6)[0] == 48
    p1 = pairs_payload(ch[1], "F8_E5M2", k=3, joint=1, qshift=3, sub_bits=7, prob_bits=11, egk=0)
    p2 = MODE_ZSTD + zraw(to_raw(ch[2], "F8_E5M2"))
    p3 = fans_encode(ch[3], "F8_E5M2", k=2, joint=0, qshift=2, sub_bits=8, prob_bits=12, egk=1)
    L, P, o = column_shift(4 * ce, ce, cols)
    p4 = shift_payload(ch[4], "F8_E5M2", 2, 1, L, P, o, k=2, joint=0, qshift=1, sub_bits=7, prob_bits=12, egk=1)
    assert o == 256 and p4[0] == 3
    s5 = pairs_parts(ch[5], "F8_E5M2", k=5, joint=0, qshift=2, sub_bits=8, prob_bits=12, egk=2)
    assert s5["inner"][3] >> 2 == 1  # z = 1: bit 0 of every word (the odd element's sign) is zero
    p5 = s5["head"] + s5["inner"]
    p6 = MODE_RAW + to_raw(ch[6], "F8_E5M2")
    raw = to_raw(v, "F8_E5M2")
    e5 = Exact("w.e5m2", "F8_E5M2", [rows, cols], raw, codec=PAIRS, chunk_size=ce, stored=[p0, p1, p2, p3, p4, p5, p6])
    # w.e4m3: column scales but in rows 18-35 (row scales)
    rows, cols, ce = 37, 57, 1024
    v = [weight(rng, "F8_E4M3", ((c * 3) % 7) - 3 if not 18 <= r < 36 else ((r * 5) % 7) - 3)
         for r in range(rows) for c in range(cols)]
    ch = [v[o:o + ce] for o in range(0, len(v), ce)]
    assert [len(c) for c in ch] == [1024, 1024, 61]
    sh = [(3, 1) + column_shift(0, ce, cols), (1, 2) + row_shift(ce, ce, cols), (0, 0) + column_shift(2 * ce, 61, cols)]
    assert sh[1][2:] == (57, 19, 55) and sh[2][2:] == (1, 57, 53)
    opts = [dict(k=3, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1), dict(k=3, joint=1, qshift=1, sub_bits=6,
            prob_bits=12, egk=0), dict(k=2, joint=0, qshift=2, sub_bits=6, prob_bits=10, egk=0)]
    e4p = [pairs_parts(c, "F8_E4M3", s + (None,), **kw) for c, s, kw in zip(ch, sh, opts)]
    assert all(min(pt["d"]) < 0 < max(pt["d"]) for pt in e4p)  # lists of both signs
    assert wraps(ch[0], "F8_E4M3", sh[0][0], *sh[0][2:], e4p[0]["d"])[0] > 0  # zeros shifted below 0, mod 2^7
    last = e4p[2]
    assert last["d"][entry(53, 1, 57, 60)] != 0 and last["tail"] != ch[2][60]  # the tail is shifted too
    assert lanes(30, 6)[0] == 1 and 30 < 57 <= 61
    e4 = Exact("w.e4m3", "F8_E4M3", [rows, cols], to_raw(v, "F8_E4M3"), codec=PAIRS, chunk_size=ce,
               stored=[pt["head"] + pt["block"] + pt["inner"] for pt in e4p])
    # every byte value, at even and at odd positions
    bv = list(range(256)) + [(i + 1) & 255 for i in range(256)]
    b5 = Exact("bytes.e5m2", "F8_E5M2", [2, 256], bytes(bv), codec=PAIRS, chunk_size=512,
               stored=[pairs_payload(bv, "F8_E5M2", k=5, joint=0, qshift=2, sub_bits=6, prob_bits=12, egk=0)])
    bw = list(range(256)) + list(range(255, -1, -1)) + [0x7F]
    assert all({x for x in bw[j:512:2]} == set(range(256)) for j in (0, 1))
    d4 = [-37, 5, 0, 63, -63]
    b4p = pairs_parts(bw, "F8_E4M3", (2, 0, 3, 5, 7, d4), k=3, joint=1, qshift=2, sub_bits=6, prob_bits=12, egk=1)
    assert b4p["tail"] == (0x7F & ~(0x3F << 1)) | ((0x3F - d4[entry(7, 3, 5, 512)]) & 0x3F) << 1
    b4 = Exact("bytes.e4m3", "F8_E4M3", [513], bytes(bw), codec=PAIRS, chunk_size=576,
               stored=[b4p["head"] + b4p["block"] + b4p["inner"]])
    # inline: 63 elements, a column shift
    nv = [weight(rng, "F8_E5M2", (c % 3) - 1) for r in range(7) for c in range(9)]
    npt = pairs_parts(nv, "F8_E5M2", (2, 1, 1, 9, 0, None), k=5, joint=0, qshift=2, sub_bits=6, prob_bits=10, egk=0)
    assert any(npt["d"]) and len(npt["words"]) == 31
    np_ = npt["head"] + npt["block"] + npt["inner"]
    assert len(np_) <= bound(63)
    nt = Exact("norm.e5m2", "F8_E5M2", [7, 9], bytes(nv), codec=PAIRS, inline=True, stored=[np_])
    ts = [e5, e4, b5, b4, nt]
    check_over_older(ts, PAIRS, 6, GROUPS)
    return ts


def pairs_bad():
    """Codec-8 files (and codec-7, -5, -4 and -2 ones) with a chunk that breaks one rule of FLOAT_ANS.md §2.4,
    checksum-valid everywhere; each must fail chunk_decode on that rule. Most are an F8_E5M2 tensor [40, 48] whose chunk
    0 is a good mode-6 chunk (1024 elements) and whose chunk 1 (896 elements, even) is the broken one; those about the
    tail an F8_E4M3 tensor [37, 49] whose chunk 1 has 789 elements (odd), under a column shift. Where it can, the rest
    is what a lax decoder would turn into the right bytes, so that only the rule catches it."""
    rng = Rng(0xBAD8)
    rows, cols, n0 = 40, 48, 1024
    col_exp = [((c * 5) % 9) - 4 for c in range(cols)]
    vals = [weight(rng, "F8_E5M2", col_exp[c]) for r in range(rows) for c in range(cols)]
    opt = dict(k=5, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1)
    c0 = pairs_payload(vals[:n0], "F8_E5M2", **opt)
    cv = vals[n0:]
    n, h = len(cv), len(cv) // 2
    base = pairs_parts(cv, "F8_E5M2", **opt)
    good = base["head"] + base["inner"]
    L, P, o = column_shift(n0, n, cols)
    sp = pairs_parts(cv, "F8_E5M2", (2, 1, L, P, o, None), **opt)
    sgood = sp["head"] + sp["block"] + sp["inner"]
    assert (L, P, o) == (1, 48, 16) and any(sp["d"]) and sp["listbits"] % 8
    assert chunk_decode(c0, "F8_E5M2", n0, PAIRS) == to_raw(vals[:n0], "F8_E5M2")
    for p in (good, sgood):
        assert chunk_decode(p, "F8_E5M2", n, PAIRS) == to_raw(cv, "F8_E5M2")
    words = base["words"]

    def head(tail=0, flags=0, reserved=0):
        return MODE_PAIRS + bytes([tail, flags, reserved])

    def with_d(d, L=L, P=P, o=o, reserved=0):
        """A shift block (g = 2) of list d and the inner payload of the values shifted by d (what a lax decoder undoes)."""
        vp = unshift(cv, "F8_E5M2", 2, L, P, o, d)
        ws = [pair_word(vp[2 * i], vp[2 * i + 1], 5) for i in range(h)]
        return head(flags=1) + shift_block(2, 1, L, P, o, d, reserved)[0] + fans_encode(ws, "F16", **opt)

    big = list(sp["d"])
    big[5] = 1 << 7  # |d| = 2^(E+g): as d = 0 modulo 2^7
    wraw = to_raw(words, "F16")
    wL, wP, wo = column_shift(n0 // 2, h, cols // 2)
    chunks = {
        "pairs_tail_even": head(tail=0x3C) + base["inner"],  # n even: the tail byte must be 0
        "pairs_flags_bit1": head(flags=2) + base["inner"],  # an unknown flag
        "pairs_flags_bit7_shift": head(flags=0x81) + sp["block"] + sp["inner"],  # the shift flag and an unknown one
        "pairs_reserved": head(reserved=1) + base["inner"],  # byte 3
        "pairs_shift_no_block": head(flags=1) + base["inner"],  # the flag without a shift block
        "pairs_block_no_flag": head() + sp["block"] + sp["inner"],  # a shift block without the flag
        "pairs_inner_mode0": head() + MODE_RAW + wraw,
        "pairs_inner_mode2": head() + MODE_ZSTD + zraw(wraw),
        "pairs_inner_mode3": head() + shift_payload(words, "F16", 2, 1, wL, wP, wo, **opt),  # an F16 column shift
        "pairs_inner_mode5": head() + groups_payload(wraw, "F16"),
        "pairs_inner_mode6": head() + good,  # a valid mode-6 payload inside
        "pairs_inner_short": head() + fans_encode(words[:-1], "F16", **opt),  # h - 1 words: the last pair left out
        "pairs_inner_long": head() + fans_encode(words + [0], "F16", **opt),  # h + 1 words: a pair of zeros more
        "pairs_truncated": good[:-1],
        "pairs_trailing_byte": good + b"\x00",
        "pairs_shift_truncated": sgood[:4 + 10],  # the payload ends inside the shift block's header
        "pairs_shift_g_gt_m": head(flags=1) + shift_block(3, 1, L, P, o, sp["d"])[0] + sp["inner"],  # g = 3 > m = 2
        "pairs_shift_reserved": with_d(sp["d"], reserved=1),
        "pairs_shift_padding": head(flags=1) + shift_block(2, 1, L, P, o, sp["d"], pad=1)[0] + sp["inner"],
        "pairs_shift_P_gt_n": with_d([0] * (n + 1), L=1, P=n + 1, o=0),  # P = n + 1 entries, all zero
        "pairs_shift_d_range": with_d(big),
        "pairs_mode7": b"\x07" + good[1:],  # modes above 6 are invalid
    }
    expect = {"pairs_tail_even": "tail byte 0x3c with n even", "pairs_flags_bit1": "flags 0x02",
              "pairs_flags_bit7_shift": "flags 0x81", "pairs_reserved": "reserved byte 3",
              "pairs_shift_no_block": "shift block's mode byte 1", "pairs_block_no_flag": "inner mode byte 3",
              "pairs_inner_mode0": "inner mode byte 0", "pairs_inner_mode2": "inner mode byte 2",
              "pairs_inner_mode3": "inner mode byte 3", "pairs_inner_mode5": "inner mode byte 5",
              "pairs_inner_mode6": "inner mode byte 6", "pairs_inner_short": "group reads past its words", "pairs_inner_long": "payload length",
              "pairs_truncated": "payload length", "pairs_trailing_byte": "payload length",
              "pairs_shift_truncated": "mode 3 header truncated", "pairs_shift_g_gt_m": "g > m",
              "pairs_shift_reserved": "reserved u16", "pairs_shift_padding": "padding", "pairs_shift_P_gt_n": "P > n",
              "pairs_shift_d_range": "|d|", "pairs_mode7": "mode byte 7 under codec 8"}

    def container_of(ts, minor=7):
        fb, plen = st_file(ts)
        return container2([(0, "model.safetensors", fb, plen, ts)], major=1, minor=minor)

    def e5(c1, codec=PAIRS, first=c0):
        return [Exact("w.e5m2", "F8_E5M2", [rows, cols], to_raw(vals, "F8_E5M2"), codec=codec, chunk_size=n0,
                      stored=[first, c1])]

    out = {}
    for name, p in chunks.items():
        must_fail(p, "F8_E5M2", n, PAIRS, expect[name])
        out[name + ".codec"] = container_of(e5(p))
    # The odd tensor: chunk 1 of 789 elements under a column shift (o = 44); its inner payload coded for
    # ceil(n / 2) = 395 words (the tail paired with a zero) instead of h = 394, the tail byte right.
    orows, ocols = 37, 49
    ov = [weight(rng, "F8_E4M3", ((c * 3) % 7) - 3) for r in range(orows) for c in range(ocols)]
    oopt = dict(k=3, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1)
    oc0 = pairs_payload(ov[:n0], "F8_E4M3", (3, 1) + column_shift(0, n0, ocols) + (None,), **oopt)
    ocv = ov[n0:]
    on = len(ocv)
    oL, oP, oo = column_shift(n0, on, ocols)
    opt_ = pairs_parts(ocv, "F8_E4M3", (3, 1, oL, oP, oo, None), **oopt)
    assert on == 789 and oo == 44 and opt_["tail"]
    ogood = opt_["head"] + opt_["block"] + opt_["inner"]
    assert chunk_decode(ogood, "F8_E4M3", on, PAIRS) == to_raw(ocv, "F8_E4M3")
    assert chunk_decode(oc0, "F8_E4M3", n0, PAIRS) == to_raw(ov[:n0], "F8_E4M3")
    ceil_words = opt_["words"] + [pair_word(opt_["vp"][-1], 0, 4)]
    ochunks = {
        "pairs_odd_inner_ceil": opt_["head"] + opt_["block"] + fans_encode(ceil_words, "F16", **oopt),
        "pairs_odd_truncated": ogood[:-1],  # the inner payload's raw plane one byte short
    }
    for name, p in ochunks.items():
        must_fail(p, "F8_E4M3", on, PAIRS, "payload length")
        out[name + ".codec"] = container_of([Exact("w.e4m3", "F8_E4M3", [orows, ocols], to_raw(ov, "F8_E4M3"),
                                                   codec=PAIRS, chunk_size=n0, stored=[oc0, p])])
    # n = 1: an F8_E5M2 tensor [1025] whose last chunk is one element: a mode-6 head with that element as its tail and
    # no inner payload (a lax decoder's h = 0 words and the tail give the right byte).
    one = vals[:1025]
    p = head(tail=one[-1])
    must_fail(p, "F8_E5M2", 1, PAIRS, "n = 1")
    out["pairs_n1.codec"] = container_of([Exact("w.e5m2", "F8_E5M2", [1025], to_raw(one, "F8_E5M2"), codec=PAIRS,
                                                chunk_size=1024, stored=[c0, p])])
    # Mode 6 is for F8_E5M2 and F8_E4M3 only: F16 and BF16 tensors whose one chunk is a mode-6 payload of its bytes
    # read as F8_E5M2 elements (what a lax decoder would get right).
    for dt in ("F16", "BF16"):
        r16 = to_raw([weight(rng, dt, (c % 5) - 2) for c in range(960)], dt)
        p = pairs_payload(list(r16), "F8_E5M2", **opt)
        assert chunk_decode(p, "F8_E5M2", len(r16), PAIRS) == r16
        must_fail(p, dt, len(r16), PAIRS, "mode 6 for " + dt)
        out["pairs_mode6_%s.codec" % dt.lower()] = container_of([Exact("w." + dt.lower(), dt, [20, 48], r16,
                                                                       codec=PAIRS, chunk_size=len(r16), stored=[p])])
    # Mode 6 belongs to codec 8 only: the (valid) mode-6 chunk 1 under codecs 7 (1.6), 5 (1.5), 4 (1.3) and 2 (1.0),
    # after a chunk 0 of mode 1 with z = 0 that each of them reads.
    m1 = fans_encode(vals[:n0], "F8_E5M2", k=2, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1, z=0)
    for codec, minor in ((GROUPS, 6), (PATCH, 5), (MIXED, 3), (FANS, 0)):
        assert chunk_decode(m1, "F8_E5M2", n0, codec) == to_raw(vals[:n0], "F8_E5M2")
        for nm, p in (("", good), ("_shift", sgood)):
            if nm and codec != GROUPS:
                continue
            must_fail(p, "F8_E5M2", n, codec, "mode byte 6 under codec %d" % codec)
            out["pairs_mode6%s_in_codec%d.codec" % (nm, codec)] = container_of(e5(p, codec, m1), minor)
    return out


def pairs_vectors(d):
    check_pairs_map()
    put_single(d, "float_ans_pairs", pairs_good(), 7)
    put_bad(d, pairs_bad())


# ---------------------------------------------------------------------------------------------
# Version 2.3: inline parts with a codec (FORMAT.md §4.4: u32 stored_size, then the payload, at most §5's
# bound for items x item bytes, decoding to exactly those bytes) and qrow's codes inline when the tensor has
# one tile (QROW.md §1). The float-ans payloads of U8 and U16 items come from fans_encode above (FLOAT_ANS.md
# §1: the geometry of F8_E4M3 and F16) and are decoded back by chunk_decode.

def fans_frame(item, **kw):
    """A codec-2 (float-ans) payload of the items raw: mode 1, z = 0 (codec 2 has no trim)."""
    opt = dict(k=1, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1)
    opt.update(kw)

    def f(raw):
        p = fans_encode(to_vals(raw, item), item, z=0, **opt)
        assert chunk_decode(p, item, len(raw), FANS) == raw
        return p
    return f


def zstd_padded(data, size):
    """A zstd frame of data (content size declared) padded with empty raw blocks to at least size bytes: a
    valid frame (RFC 8878: a raw block may hold 0 bytes), as long as anyone wants."""
    head = struct.pack("<IB", 0xFD2FB528, 0xE0) + struct.pack("<Q", len(data))
    last = struct.pack("<I", (len(data) << 3) | 1)[:3] + data
    n = max(0, -(-(size - len(head) - len(last)) // 3))
    f = head + struct.pack("<I", 0)[:3] * n + last
    assert zstd_content(f) == data and len(f) >= size
    return f


def bound(raw):
    return raw + raw // 8 + 4096  # §5


def inline23_vectors(d):
    """lossy_inline23 (2.3): an exact tensor; one-tile qrow tensors whose codes are inline: U8 float-ans
    (tile_rows past the rows), U16 zstd with float-ans scales inline too (the tensor has no chunk at all),
    U8 raw (codec 0, items as they are); a one-tile qrow-outliers tensor with inline float-ans codes; and a
    qrow tensor of 3 tiles whose codes are float-ans chunks (per element), its scales inline with zstd."""
    norm = Exact("norm.weight", "F32", [6], np.array([1, -0.5, 2.5, 0, 3e-3, -7], dtype="<f4").tobytes(), codec=1)
    # a: BF16 [6, 16], tile_rows 8 > rows (one tile of 6 rows); U8 codes inline, float-ans; scales per row (raw).
    qa = [((i * 53) % 255) - 127 for i in range(96)]
    qa[:6] = [0, 1, -1, 127, -128, 0]
    a = qrow("a.weight", "BF16", [6, 16], -18, [0x00, 0x21, 0x4F, 0x13, 0x08, 0x30], qa, 8,
             codes_layout=INLINE, codes_codec=FANS, codes_frame=fans_frame("U8"))
    # b: F16 [4, 2, 5], tile_rows 4 = rows; U16 codes inline, zstd; scales inline, float-ans. No chunk.
    qb = [((i * 1237) % 4001) - 2000 for i in range(40)]
    qb[:4] = [32767, -32768, 0, -1]
    b = qrow("b.weight", "F16", [4, 2, 5], -24, [0x10, 0x00, 0x7F, 0x35], qb, 4, code_item="U16",
             scales_layout=INLINE, scales_codec=FANS, scales_frame=fans_frame("U8", k=0), codes_layout=INLINE,
             codes_codec=1)
    # c: F32 [3, 7], one tile; U8 codes inline with codec 0 (the items as they are: valid in 2.3 as in 2.0);
    # scales per row, zstd.
    c = qrow("c.weight", "F32", [3, 7], 90, [0xFF, 0x00, 0x8A],
             [-128, 127, 0, 1, -1, 2, 55, -66, 77, -3, 100, 9, 4, 4, -4, 0, 31, -32, 64, -65, 7], 3,
             codes_layout=INLINE, scales_codec=1)
    # d: qrow-outliers BF16 [5, 8], one tile (row lists); U8 codes inline, float-ans; outliers inline (codec 0).
    qd = [((i * 29) % 61) - 30 for i in range(40)]
    d_out = {(0, 3): 0x4049, (2, 7): 0xC2F7, (4, 0): 0x0001, (4, 1): 0x8000}
    dt = qrow_outliers("d.weight", "BF16", [5, 8], -12, [0x05, 0x40, 0x1F, 0x00, 0x33], qd, 5, d_out, [1],
                       codes_layout=INLINE, codes_codec=FANS, codes_frame=fans_frame("U8", joint=1))
    # e: BF16 [7, 12], 3 tiles of 3 rows (the last 1); codes per element, float-ans chunks (for contrast);
    # scales inline, zstd.
    qe = [((i * 37) % 255) - 127 for i in range(84)]
    e = qrow("e.weight", "BF16", [7, 12], -20, [0x13, 0x26, 0x39, 0x4C, 0x5F, 0x72, 0x85], qe, 3,
             scales_layout=INLINE, scales_codec=1, codes_codec=FANS, codes_frame=fans_frame("U8", k=2))
    ts = [norm, a, b, c, dt, e]
    inl = [(t.name, p.role, p.codec) for t in ts if isinstance(t, Lossy) for p in t.parts if p.layout == INLINE]
    assert inl == [("a.weight", CODES, FANS), ("b.weight", SCALES, FANS), ("b.weight", CODES, 1),
                   ("c.weight", CODES, 0), ("d.weight", CODES, FANS), ("d.weight", OUTLIERS, 0),
                   ("e.weight", SCALES, 1)]
    for t in ts:  # every coded inline payload within §5's bound, and decoding to its items
        for p in (t.parts if isinstance(t, Lossy) else []):
            if p.layout == INLINE and p.codec:
                pl = p.frame(p.data)
                assert len(pl) <= bound(len(p.data))
                assert (zstd_content(pl) if p.codec == 1 else chunk_decode(pl, p.item, len(p.data), FANS)) == p.data
    fb, plen = st_file(ts)
    wcz = container2([(0, "model.safetensors", fb, plen, ts)], minor=3)
    assert struct.unpack("<I", zread_manifest(wcz)[8:12])[0] == 1 + 1 + 0 + 1 + 1 + 3  # norm a b c d e
    put(d, "lossy_inline23.wcz", wcz)
    put(d, "lossy_inline23.expected", fb)
    put_bad(d, inline23_bad())


def inline23_bad():
    """2.3 files every reader must reject, checksum-valid everywhere, each breaking one rule of an inline
    part with a codec. *.corrupt: §4.4's record rules and QROW.md §1, seen when the manifest is decoded;
    *.codec: a payload that does not decode to exactly items x item bytes, seen when the tile is decoded.
    The level hash stays the intended reconstruction's, so a reader that skips the rule but decodes what was
    meant still fails (or, for the record rules, accepts), and only the rule names the fault."""
    rows, cols = 4, 6
    q = [((i * 37) % 255) - 127 for i in range(rows * cols)]
    e = [(0x13 * r) & 0xFF for r in range(rows)]

    def base(tile_rows=4, **kw):
        """An exact F32 tensor, then a qrow tensor of one tile whose U8 codes are inline, float-ans (the
        codes part is the manifest's last part)."""
        opt = dict(codes_layout=INLINE, codes_codec=FANS, codes_frame=fans_frame("U8"))
        opt.update(kw)
        t = qrow("w.weight", "BF16", [rows, cols], -20, e, q, tile_rows, **opt)
        return [norm_exact(), t]

    def one(tensors):
        return one_file(tensors, minor=3)

    def lie(f, **kw):
        t = base(**kw)
        f(t[1])
        return one(t)

    def codes(**kw):
        def f(t):
            for k, v in kw.items():
                setattr(t.parts[1], k, v)
        return f

    codes_raw = base()[1].parts[1].data
    assert len(codes_raw) == 24 and base()[1].parts[1].inline()[4:] == fans_frame("U8")(codes_raw)
    fans = fans_frame("U8")(codes_raw)
    u16 = dict(code_item="U16", codes_codec=1, codes_frame=zraw)  # U16 codes inline, zstd
    c16 = base(**u16)[1].parts[1].data
    assert len(c16) == 48 and bound(48) == 4150
    # a damaged float-ans stream: its last word's low byte (the plane, ceil(24 x w / 8) bytes, follows)
    w = 2 + 1  # k = 1: r = 2 raw mantissa bits, and the sign (joint = 0)
    at = len(fans) - (24 * w + 7) // 8 - 2
    damaged = fans[:at] + bytes([fans[at] ^ 0x5A]) + fans[at + 1:]
    long_fans = fans_frame("U8")(codes_raw + b"\x07")  # 25 codes for 24
    for pl, why in ((damaged, "group"), (long_fans, "")):
        try:
            chunk_decode(pl, "U8", 24, FANS)
            raise AssertionError("decodes: " + why)
        except Invalid as x:
            assert why in str(x), (why, str(x))
    scales_fans = fans_frame("U8", k=0)(bytes(e))
    try:
        chunk_decode(scales_fans[:-1], "U8", 4, FANS)
        raise AssertionError("decodes: truncated scales")
    except Invalid:
        pass
    out = {
        # QROW.md §1: codes inline only when the tensor has exactly one tile (here 2 tiles of 2 rows).
        "inline_codes_two_tiles.corrupt": one(base(tile_rows=2)),
        # §4.4: a part's codec MUST NOT be 4, inline or not (a codec-4 reader reads this mode-1 payload as
        # codec 3 would: only the rule refuses it).
        "inline_codec_4.corrupt": lie(codes(codec=MIXED)),
        # An unknown codec id on a qrow part: QROW.md §1 allows the byte codecs that support the item type and
        # rejects a record that breaks it (corrupt, at open), as for a chunked part; the record still parses
        # (codec != 0: stored_size and the payload follow), so inspect could list it.
        "inline_codec_9.corrupt": lie(codes(codec=9)),
        # §4.4: stored_size at most §5's bound for items x item bytes: 48 bytes of U16 codes, a valid zstd frame
        # of them padded with empty raw blocks to 4153 > 4150 bytes (it decodes: only the bound refuses it).
        "inline_stored_size_bound.corrupt": lie(codes(stored=zstd_padded(c16, bound(48) + 1)), **u16),
        # §4.4: the payload runs past its record and past the manifest's end (stored_size 64 more than there
        # is, within the bound; the codes part is the manifest's last part).
        "inline_stored_size_past_manifest.corrupt": lie(codes(stored_size=len(fans) + 64)),
        # §4.4: the payload decodes to exactly items x item bytes (U16 zstd: one code fewer, one more).
        "inline_codes_zstd_short.codec": lie(codes(stored=zraw(c16[:-2])), **u16),
        "inline_codes_zstd_long.codec": lie(codes(stored=zraw(c16 + b"\x07\x00")), **u16),
        # float-ans: a payload of 25 codes for 24, and a damaged word stream.
        "inline_codes_fans_long.codec": lie(codes(stored=long_fans)),
        "inline_codes_fans_damaged.codec": lie(codes(stored=damaged)),
        # inline scales with a codec (float-ans), their payload one byte short.
        "inline_scales_fans_truncated.codec": one(base(scales_layout=INLINE, scales_codec=FANS,
                                                       scales_frame=lambda raw: scales_fans[:-1])),
    }
    # §4.4: a tensor with no chunk at all (scales and codes inline) still checks its level's XXH3-64.
    t = base(scales_layout=INLINE, scales_codec=FANS, scales_frame=fans_frame("U8", k=0))
    t[1].levels = [(t[1].levels[0][0] ^ 1,) + t[1].levels[0][1:]]
    out["level_xxh3_no_chunk.checksum"] = one(t)
    # OUTLIERS.md §1: the outlier block's codec is 0; here a well-formed 2.3 inline part of codec 1 (a
    # stored_size and a zstd frame of the block).
    t = qrow_outliers("w.weight", "BF16", [rows, cols], -20, e, q, 4, {(1, 2): 0x4049, (3, 5): 0x8001}, [2],
                      codes_layout=INLINE, codes_codec=FANS, codes_frame=fans_frame("U8"))
    t.parts[2].codec = 1
    out["inline_outliers_codec_zstd.corrupt"] = one(base()[:1] + [t])
    return out


# ---------------------------------------------------------------------------------------------
# Version 2.4: part layout 4, per group (FORMAT.md §4.4: one item per g consecutive elements of a row, g in the
# part's group byte, formerly reserved), and representation 3, vq (VQ.md): per tensor a codebook of K vectors
# of d values (F32, inline, codec 0), codes per group of d (or inline in a one-tile tensor), qrow's row steps.
# Value (VQ.md §2): y = binary32(step x cb[u x d + c mod d]), one binary32 multiplication; output dtype as
# QROW.md §3.

def step_of(B, e):
    """QROW.md §2: the binary32 (1 + (e AND 15)/16) x 2^(B + (e >> 4)), from its bits."""
    E = B + (e >> 4)
    return np.array([((E + 127) << 23) | ((e & 15) << 19)], dtype=np.uint32).view(np.float32)[0]


def bf16_direct(x):
    """x (a float64, normal in binary32's range) rounded once, to nearest even, to BF16's 8 significant bits."""
    b = int(np.array([x], dtype=np.float64).view(np.uint64)[0])
    return float(np.array([(b + (1 << 44) - 1 + ((b >> 45) & 1)) >> 45 << 45], dtype=np.uint64).view(np.float64)[0])


def double_rounding(step, targets, out):
    """A float32 codebook value v such that y = binary32(step x v) lies exactly halfway between two values of
    dtype out (BF16 or F16) while step x v does not: y then rounds to even, and the product rounded once to
    out would differ (VQ.md §2 then QROW.md §3 round twice, as a decoder must). targets: candidate ties."""
    for t in targets:
        v0 = np.float32(t / float(step))
        for k in range(-4, 5):
            v = np.float32(v0 + np.float32(k) * np.spacing(v0))
            exact = float(v) * float(step)  # exact in binary64 (24 x 5 significant bits)
            y = np.float32(exact)
            b = f32_bits(y)
            if out == "BF16" and b & 0xFFFF == 0x8000 and exact != float(y) and \
                    float(np.array([bf16_of(b) << 16], dtype=np.uint32).view(np.float32)[0]) != bf16_direct(exact):
                return v
            if out == "F16" and f16_of(b)[1] and exact != float(y) and \
                    np.float16(exact) != np.array([f16_of(b)[0]], dtype=np.uint16).view(np.float16)[0]:
                return v
    raise AssertionError("no double-rounding case")


def vq(name, dtype, shape, B, d, e, u, cb, tile_rows, code_item="U8", scales_layout=PER_ROW, scales_codec=0,
       codes_layout=PER_GROUP, codes_codec=0, scales_frame=zraw, codes_frame=zraw, params=None, s=0,
       cb_layout=INLINE, cb_codec=0, cb_frame=zraw, k2=0):
    """A vq tensor from its base exponent B, group size d, row exponents e, codes u (one per group, row-major)
    and codebook cb (books x K x d values, made float32), reconstructed as VQ.md §2 and QROW.md §3 say; levels[0]
    holds the XXH3-64 of that and its error against invented originals. A record the rules refuse (bad
    vectors: d not in 1, 2, 4, 8, ...) is reconstructed by the same formulas, unchecked. 2.11 (VQ.md §1): s, the
    book shift (params byte 3): books = ceil(rows / 2^s) when s >= 1 (row r uses book r >> s), else 1; d = 1 (a
    scalar palette: the caller passes codes_layout PER_ELEMENT); the codebook part's layout (INLINE, or
    TENSOR_WIDE: one chunk of level 0 before the tiles' chunks, FORMAT.md §4.3), codec and frame. k2 >= 1 (2.11):
    additive books (params 6 bytes, u16 K2): each book's E entries are K1 = E - K2 of the first codebook, then K2
    of the second; code u stands for entry u div K2 plus entry K1 + u mod K2, one binary32 addition (VQ.md §2);
    t.K is then K1 x K2 (the codes), t.E the entries of a book."""
    rows, cols = shape[0], math.prod(shape[1:])
    G = cols // d  # groups per row
    books = 1 if s == 0 else (rows + (1 << s) - 1) >> s
    cb32 = np.array(cb, dtype=np.float32)
    E = len(cb32) // (books * d)  # entries of a book
    K = (E - k2) * k2 if k2 else E  # codes (additive: K1 x K2)
    ok = (-126 <= B <= 96 and d in (1, 2, 4, 8) and cols % d == 0 and len(cb32) == books * E * d and
          1 <= E <= 65536 and 0 <= s <= 31 and (not k2 or (E > k2 and K <= 65536)))
    assert len(e) == rows and len(u) == rows * G and all(0 <= x < K for x in u) and np.all(np.isfinite(cb32))
    out = []
    for r in range(rows):
        step = step_of(B, e[r])
        assert float(step) == (1 + (e[r] & 15) / 16) * 2.0 ** (B + (e[r] >> 4)) or not ok
        b = 0 if s == 0 else r >> s  # the row's book (VQ.md §2)
        if k2:  # additive: one binary32 addition (numpy float32: round to nearest even), checked against the
            # exact sum rounded once (f32_round; a zero sum: +0 unless both are -0, IEEE 754 §6.3)
            x1 = np.array([cb32[(b * E + u[r * G + c // d] // k2) * d + c % d] for c in range(cols)], dtype=np.float32)
            x2 = np.array([cb32[(b * E + E - k2 + u[r * G + c // d] % k2) * d + c % d] for c in range(cols)],
                          dtype=np.float32)
            v = x1 + x2
            assert v.dtype == np.float32
            for p_, q_, w_ in zip(x1, x2, v):
                want = f32_round(Fraction(float(p_)) + Fraction(float(q_)))
                if want == 0 and math.copysign(1, p_) < 0 and math.copysign(1, q_) < 0:
                    want = 0x80000000
                assert f32_bits(w_) == want, (float(p_), float(q_))
        else:
            v = np.array([cb32[(b * E + u[r * G + c // d]) * d + c % d] for c in range(cols)], dtype=np.float32)
        y = v * step  # one binary32 multiplication each (numpy float32: round to nearest even, no flush)
        assert y.dtype == np.float32
        # the same product rounded once from its exact value (binary64 holds 24 x 5 significant bits exactly)
        ref = (v.astype(np.float64) * float(step)).astype(np.float32)
        assert np.array_equal(y.view(np.uint32), ref.view(np.uint32))
        assert np.all(np.isfinite(y)) or not ok  # an encoder keeps the products finite (VQ.md §2)
        out += [int(b) for b in y.view(np.uint32)]
    if dtype == "F32":
        bits = np.array(out, dtype=np.uint32)
        vals = bits.view(np.float32)
    elif dtype == "BF16":
        bits = np.array([bf16_of(b) for b in out], dtype=np.uint16)
        vals = (bits.astype(np.uint32) << 16).view(np.float32)
    else:
        assert dtype == "F16"
        bits = np.array(out, dtype=np.uint32).view(np.float32).astype(np.float16).view(np.uint16)  # IEEE RNE
        assert [int(x) for x in bits] == [f16_of(b)[0] for b in out]
        vals = bits.view(np.float16).astype(np.float32)
    recon = bits.astype("<u%d" % bits.itemsize).tobytes()
    # Invented originals: each value moved by up to 0.45 of its row's step (the error figures are informative).
    w = np.array([float(vals[i]) + (((i * 7 + 3) % 11) - 5) / 11.0 * float(step_of(B, e[i // cols]))
                  for i in range(rows * cols)])
    dd = w - vals.astype(np.float64)
    rel = math.sqrt(float(np.sum(dd * dd)) / float(np.sum(w * w))) if np.any(w) else 0.0
    levels = [(H(recon), rel, float(np.max(np.abs(dd))))]
    codes = b"".join(struct.pack("<H" if code_item == "U16" else "<B", x) for x in u)
    parts = [Part(SCALES, scales_layout, "U8", bytes(e), codec=scales_codec, frame=scales_frame),
             Part(CODES, codes_layout, code_item, codes, codec=codes_codec, frame=codes_frame,
                  reserved=d if codes_layout == PER_GROUP else 0),
             Part(CODEBOOK, cb_layout, "F32", cb32.astype("<f4").tobytes(), codec=cb_codec, frame=cb_frame)]
    own = struct.pack("<hBB", B, d, s) + (struct.pack("<H", k2) if k2 else b"")
    t = Lossy(name, dtype, shape, recon, tile_rows, own if params is None else params, parts, levels, repr=3)
    t.bits, t.f32_bits, t.K, t.books, t.E, t.k2 = bits, out, K, books, E, k2
    return t


def vq_vectors(d):
    """lossy_vq (2.4): an exact tensor; a BF16 vq tensor (d 2, K 16, U8 codes per group coded float-ans,
    3 tiles, per-row scales in zstd chunks); a plain qrow tensor; an F16 vq tensor (d 8, K 300, U16 codes
    inline in its one tile, float-ans; per-row scales in a raw chunk); an F32 vq tensor (d 4, K 5, codes and
    scales inline, codec 0: no chunk). lossy_vq.as_dtypes.expected: each vq tensor decoded in BF16, F16 and
    F32 in turn (QROW.md §3 from the binary32 products)."""
    norm = Exact("norm.weight", "F32", [6], np.array([1, -0.5, 2.5, 0, 3e-3, -7], dtype="<f4").tobytes(), codec=1)
    f32 = lambda x: float(np.float32(x))
    # a: BF16 [7, 12], B = -8, d = 2, 3 tiles of 3 rows (the last 1). Row steps 1, 1.5, 1.5 x 2^-4, 4.75,
    # 128, 2^-8, 1.3125 x 2^-3. Entry 0: +0, -0; entry 1 (step 1): BF16 ties, to even down (1 + 2^-8) and up
    # (1 + 3 x 2^-8); entry 2 (step 1.5): a product that binary32 rounds onto a BF16 tie (then to even),
    # which rounded once would go the other way; entry 3: 600, -1000 (x 128: past F16's 65504, +-inf when
    # decoded as F16); the rest pseudo-random, full mantissas.
    ea = [0x80, 0x88, 0x48, 0xA3, 0xF0, 0x00, 0x55]
    dr = double_rounding(step_of(-8, 0x88), [1 + (2 * j + 1) * 2.0 ** -8 for j in range(128)], "BF16")
    cba = [0.0, -0.0, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, float(dr), -float(dr), 600.0, -1000.0]
    cba += [f32(((k * 37) % 101 - 50) / 17.3) for k in range(24)]
    ua = [((i * 5 + i // 6) % 16) for i in range(42)]
    ua[0:6] = [1, 0, 2, 1, 3, 5]  # row 0 (step 1)
    ua[6:12] = [2, 2, 1, 0, 7, 15]  # row 1 (step 1.5)
    ua[24:30] = [3, 3, 0, 9, 12, 1]  # row 4 (step 128)
    a = vq("a.weight", "BF16", [7, 12], -8, 2, ea, ua, cba, 3, scales_codec=1, codes_codec=FANS,
           codes_frame=fans_frame("U8"))
    ab = a.f32_bits
    assert ab[0] == 0x3F808000 and a.bits[0] == 0x3F80 and ab[1] == 0x3F818000 and a.bits[1] == 0x3F82  # ties
    assert a.bits[2] == 0 and a.bits[3] == 0x8000  # +0 and -0
    assert ab[12] & 0xFFFF == 0x8000 and float(dr) * 1.5 != float(np.uint32(ab[12]).view(np.float32))
    assert any(f16_of(b)[0] & 0x7FFF == 0x7C00 for b in ab)  # +-inf as F16
    # p: plain qrow, BF16 [2, 4], 2 tiles.
    p = qrow("p.weight", "BF16", [2, 4], -4, [0x10, 0x03], [1, -2, 3, 0, 5, -6, 7, -8], 1)
    # b: F16 [6, 4, 8] (cols 32), B = -22, d = 8, K = 300 (U16 codes, 0 to 299: 255, 256 and 299 used), one
    # tile of 6 rows: codes inline, float-ans. Row 0 (step 2^-22, F16's least subnormal 2^-24 = step / 4) with
    # entry 1: subnormal results, ties among them (0.625 -> 2.5 x 2^-24 -> 2, 0.875 -> 3.5 -> 4, 0.125 -> 0.5
    # -> +0) and -0 (-0.1, -0.0625); entry 2 (row 2, step 1.5 x 2^-10): an F16 double-rounding case.
    eb = [0x00, 0x08, 0xC8, 0xF3, 0x9C, 0x5A]
    drf = double_rounding(step_of(-22, 0xC8), [(1 + (2 * j + 1) * 2.0 ** -11) * 2.0 ** -9 for j in range(1024)], "F16")
    rng = Rng(0x7E4)
    cbb = [0.0] * 8 + [1.0, 0.3, 0.625, 0.875, -0.1, -0.0625, 0.125, 0.1875]
    cbb += [float(drf), -float(drf), 1.0, -2.5, 0.75, f32(1 / 3), -f32(2 / 3), 3.0]
    cbb += [f32((rng(24) - (1 << 23)) / float(1 << 22)) for _ in range(297 * 8)]
    ub = [1, 0, 299, 256, 1, 255, 2, 7, 2, 299, 1, 100] + [rng(16) % 300 for _ in range(12)]
    b = vq("b.weight", "F16", [6, 4, 8], -22, 8, eb, ub, cbb, 6, code_item="U16", codes_layout=INLINE,
           codes_codec=FANS, codes_frame=fans_frame("U16"))
    assert b.K == 300 and len(b.parts[2].data) <= 1 << 16
    row0 = [int(x) for x in b.bits[0:8]]  # row 0, group 0: entry 1
    assert row0 == [0x0004, 0x0001, 0x0002, 0x0004, 0x8000, 0x8000, 0x0000, 0x0001], [hex(x) for x in row0]
    assert any(0 < h & 0x7FFF < 0x400 for h in b.bits[32:64])  # subnormals in row 1 too
    assert f16_of(b.f32_bits[64 + 0])[1] and b.f32_bits[64] & 0x1FFF == 0x1000  # row 2 group 0: entry 2's tie
    # c: F32 [3, 8], B = -10, d = 4, K = 5, one tile, codes (U8) and scales inline with codec 0. Entry 0 with
    # step 1.5 x 2^-10: binary32 ties, to even up (1 + 2^-23) and down (1 + 3 x 2^-23), -0 and +0; entry 1:
    # binary32 subnormal products (2^-120 x 2^-10 and others), a subnormal codebook value 2^-140 (x 2^-10:
    # 2^-150, a tie -> +0; x 1.25 x 2^5: 1.25 x 2^-135, subnormal and non-zero); entry 2: large values (+-inf
    # as F16); entries 3 and 4 pseudo-random.
    ec = [0x08, 0x00, 0xF4]
    cbc = [1 + 2.0 ** -23, 1 + 3 * 2.0 ** -23, -0.0, 0.0,
           2.0 ** -120, -3 * 2.0 ** -121, f32(1.1 * 2.0 ** -118), 2.0 ** -140,
           2.0 ** 100, -f32(1.3 * 2.0 ** 110), 3.0, -7.25]
    cbc += [f32((rng(24) - (1 << 23)) / float(1 << 20)) for _ in range(8)]
    uc = [0, 3, 1, 4, 1, 2]
    c = vq("c.weight", "F32", [3, 8], -10, 4, ec, uc, cbc, 3, scales_layout=INLINE, codes_layout=INLINE)
    cf = c.f32_bits
    one5 = f32_bits(1.5 * 2.0 ** -10)
    assert cf[0] == one5 + 2 and cf[1] == one5 + 4 and cf[2] == 0x80000000 and cf[3] == 0  # ties, -0, +0
    assert 0 < cf[8] < 0x00800000 and 0 < cf[9] & 0x7FFFFFFF < 0x00800000  # row 1: subnormal products
    assert cf[11] == 0 and 0 < cf[16 + 3] < 0x00800000  # 2^-150 -> +0; 1.25 x 2^-135
    ts = [norm, a, p, b, c]
    kinds = [(t.name, [(q.layout, q.codec) for q in t.parts]) for t in ts if isinstance(t, Lossy) and t.repr == 3]
    assert kinds == [("a.weight", [(PER_ROW, 1), (PER_GROUP, FANS), (INLINE, 0)]),
                     ("b.weight", [(PER_ROW, 0), (INLINE, FANS), (INLINE, 0)]),
                     ("c.weight", [(INLINE, 0), (INLINE, 0), (INLINE, 0)])]
    fb, plen = st_file(ts)
    wcz = container2([(0, "model.safetensors", fb, plen, ts)], minor=4)
    assert struct.unpack("<I", zread_manifest(wcz)[8:12])[0] == 1 + 6 + 4 + 1 + 0  # norm a p b c
    put(d, "lossy_vq.wcz", wcz)
    put(d, "lossy_vq.expected", fb)
    for t in (a, b, c):
        assert decode_as(t, t.dtype) == t.recon
    conv = b"".join(decode_as(t, dt) for t in (a, b, c) for dt in ("BF16", "F16", "F32"))
    put(d, "lossy_vq.as_dtypes.expected", conv)
    put_bad(d, vq_bad())


def vq_bad():
    """2.4 files every reader must reject, checksum-valid everywhere, each breaking one rule of part layout 4
    (FORMAT.md §4.4) or of VQ.md §1 (or as few as the rule allows). *.corrupt: record rules, seen when the
    manifest is decoded; *.codec: a code >= K or a non-finite codebook value, seen when a tile is decoded
    (the level hash is the intended reconstruction's, so only the rule names the fault)."""
    rows, cols, d, K = 6, 12, 2, 8
    e = [0x83, 0x90, 0x7A, 0x88, 0xA1, 0x65]
    cb = [((k * 37) % 29 - 14) / 8.0 for k in range(K * d)]
    u = [(i * 3) % 7 for i in range(rows * cols // d)]  # entry 7 unused
    assert max(u) == K - 2

    def base(d=d, u=u, cb=cb, tile_rows=4, **kw):
        """An exact F32 tensor, then a vq tensor of 2 tiles (4 and 2 rows): scales per row (raw), U8 codes
        per group in zstd chunks, the codebook inline."""
        opt = dict(codes_codec=1)
        opt.update(kw)
        t = vq("w.weight", "BF16", [rows, cols], -6, d, e, u, cb, tile_rows, **opt)
        return [norm_exact(), t]

    def one(tensors):
        return one_file(tensors, minor=4)

    def lie(f, **kw):
        t = base(**kw)
        f(t[1])
        return one(t)

    def part(i, **kw):
        def f(t):
            for k, v in kw.items():
                setattr(t.parts[i], k, v)
        return f

    def group(g, items=None):  # the codes' group byte g (their data still cut by d = 2)
        def f(t):
            part(1, reserved=g, chunk_group=d)(t)
            if items is not None:
                t.parts[1].items = items
        return f

    def per_element(t):  # each code repeated d times: per element everywhere but in vq's rule
        t.parts[1].data = bytes(x for x in t.parts[1].data for _ in range(d))
        t.parts[1].layout, t.parts[1].reserved, t.parts[1].items = PER_ELEMENT, 0, rows * cols

    def codebook_f16(t):
        v = np.frombuffer(t.parts[2].data, dtype="<f4").astype("<f2")
        assert np.array_equal(v.astype(np.float32), np.frombuffer(t.parts[2].data, dtype="<f4"))  # same values
        part(2, item="F16", data=v.tobytes())(t)

    def codebook_value(k, v):  # entry k's first value's bits made v (entry 7: no code uses it)
        def f(t):
            data = bytearray(t.parts[2].data)
            data[4 * k * d:4 * k * d + 4] = struct.pack("<I", v)
            t.parts[2].data = bytes(data)
        return f

    def code_k(t):  # tile 1's first code (row 4, group 0) made K; the level hash stays the intended one
        data = bytearray(t.parts[1].data)
        data[4 * cols // d] = K
        t.parts[1].data = bytes(data)

    def qrow_group(t):
        q = qrow("q.weight", "BF16", [2, 4], -4, [0x10, 0x03], [1, -2, 3, 0, 5, -6, 7, -8], 1)
        q.parts[1].reserved = 2  # a plausible g on a per-element part
        return q

    qg = base()
    qg.append(qrow_group(None))
    assert base()[1].parts[1].items == 36 and base()[1].parts[2].items == K * d
    out = {
        # FORMAT.md §4.4, layout 4: g >= 2, cols a multiple of g, items = rows x cols / g. (The codes' group
        # is vq's d as well, so each of these also differs from d = 2: VQ.md has no other layout-4 part.)
        "group_0.corrupt": lie(group(0)),
        "group_1.corrupt": lie(group(1, items=rows * cols)),  # items as g = 1 makes them
        "group_9_cols_12.corrupt": lie(group(9, items=rows * cols // 9)),  # 72 / 9 = 8 items; 12 / 9 is not whole
        "group_items.corrupt": lie(part(1, items=rows * cols // d + 1)),
        # §4.4: the group byte is 0 (reserved) in the other layouts.
        "group_per_element.corrupt": one(qg),  # a qrow's per-element codes with g = 2, beside a valid vq tensor
        "group_per_row.corrupt": lie(part(0, reserved=2)),  # the vq tensor's per-row scales
        "group_inline.corrupt": lie(part(2, reserved=2)),  # its inline codebook
        # VQ.md §1: params exactly 4 bytes (i16 B, u8 d in 2, 4, 8, u8 0); d = the codes' group.
        "vq_params_2_bytes.corrupt": one(base(params=struct.pack("<h", -6))),
        "vq_params_byte3.corrupt": one(base(params=struct.pack("<hBB", -6, 2, 1))),
        "vq_d_3.corrupt": one(base(d=3, u=[(i * 3) % 7 for i in range(rows * cols // 3)], cb=(cb * 2)[:7 * 3])),  # K = 7
        "vq_d_ne_group.corrupt": one(base(d=4, u=[(i * 3) % 4 for i in range(rows * cols // 4)], cb=cb,
                                          params=struct.pack("<hBB", -6, 2, 0))),  # d 2, group 4 (K x 4 values)
        # VQ.md §1: codes per group (or inline in a one-tile tensor).
        "vq_codes_per_element.corrupt": lie(per_element),
        "vq_inline_codes_two_tiles.corrupt": one(base(codes_layout=INLINE, codes_codec=0)),
        # VQ.md §1: scales exactly as qrow's part 0: inline, items = rows (here one more).
        "vq_inline_scales_items.corrupt": lie(part(0, data=bytes(e) + b"\x00", items=rows + 1), scales_layout=INLINE),
        # VQ.md §1: the codebook: F32 items, K x d of them (K >= 1), inline with codec 0; 3 parts.
        "vq_codebook_f16.corrupt": lie(codebook_f16),
        "vq_codebook_items.corrupt": lie(part(2, data=base()[1].parts[2].data + struct.pack("<f", 0.5), items=K * d + 1)),
        "vq_codebook_empty.corrupt": lie(part(2, data=b"", items=0)),
        "vq_codebook_codec.corrupt": lie(part(2, codec=1)),  # a well-formed 2.3 inline part: stored_size, zstd frame
        "vq_2_parts.corrupt": lie(lambda t: setattr(t, "parts", t.parts[:2]) or setattr(t, "part_count", 2)),
        # VQ.md §1: a code >= K, a non-finite codebook value (in entry 7, which no code uses: a reader that
        # skips the rule decodes the intended tensor): the tile is undecodable.
        "vq_code_k.codec": lie(code_k),
        "vq_codebook_inf.codec": lie(codebook_value(7, 0x7F800000)),
        "vq_codebook_nan.codec": lie(codebook_value(7, 0xFFC00001)),
    }
    # a code >= K in inline U16 codes of a one-tile tensor (K 8, code 65535)
    t = base(tile_rows=rows, code_item="U16", codes_layout=INLINE, codes_codec=0)
    t[1].parts[1].data = t[1].parts[1].data[:-2] + b"\xff\xff"
    out["vq_code_65535_inline.codec"] = one(t)
    return out


# ---------------------------------------------------------------------------------------------
# Version 2.11: vq widened (VQ.md §1-2; FORMAT.md §4.4, §10): d = 1 (a scalar palette; the codes per element,
# layout 0), params byte 3 = s, the book shift (s >= 1: G = ceil(rows / 2^s) books, row r uses book r >> s, the
# codebook part holds G x K x d values, entry k of book b at (b x K + k) x d), and the codebook as a tensor-wide part
# (layout 2: one chunk of level 0 before the tensor's tiled chunks, FORMAT.md §4.3) with any codec that stores F32
# items, K up to 65536. Value: y = binary32(step x cb[(b x K + u) x d + c mod d]); a file with such a tensor is 2.11.

def vq_books_vectors(d):
    """lossy_vq211 (2.11): an exact tensor (zstd); a: BF16 d = 1 (palette, K 5), s = 2 (2 books), codes per element
    (U8, zstd chunks), 3 tiles of 3 rows, so tile 1 starts inside book 0 (rows 3 | 4 5) and tile 2 (row 6) inside
    book 1; b: F16 d = 2, s = 1, 5 rows (3 books, the last of one row), codes per group (raw chunks), 2 tiles of 3
    rows (tile 1: rows 3, 4 of books 1 and 2); c: F32 d = 8, K = 2100 (67,200 bytes: no inline part holds it),
    the codebook tensor-wide and zstd, U16 codes per group (zstd), scales inline, 2 tiles; e: BF16 d = 4, s = 1
    (3 books of K 3), the codebook tensor-wide and float-ans, codes inline (one tile); f: BF16 d = 1, K = 65536
    (the most), the codebook tensor-wide in a zstd frame of RLE blocks, U16 codes (65535 used), 2 tiles; then a
    plain qrow. lossy_vq211.as_dtypes.expected: each vq tensor decoded in BF16, F16 and F32 in turn."""
    norm = Exact("norm.weight", "F32", [6], np.array([1, -0.5, 2.5, 0, 3e-3, -7], dtype="<f4").tobytes(), codec=1)
    f32 = lambda x: float(np.float32(x))
    rng = Rng(0x211)
    rnd = lambda n, scale=20: [f32((rng(24) - (1 << 23)) / float(1 << scale)) for _ in range(n)]

    # a: BF16 [7, 6], B = -8, d = 1, s = 2 (rows 0-3: book 0, rows 4-6: book 1), K = 5, tile_rows 3. Row steps 1,
    # 2, 1.5 x 2^-4, 1.75 x 2^-1, 4.75, 1.5, 1.3125 x 2^-3. Book 0: +0, BF16 ties with step 1 (1 + 2^-8 to even down,
    # -(1 + 3 x 2^-8) to even up), two more; book 1: a value whose product with step 1.5 (row 5) binary32 rounds
    # onto a BF16 tie (then to even; rounded once it would go the other way), -0, three more. Every entry of
    # book 1 differs from the same entry of book 0, so a decoder that takes the book of the row within its tile
    # (rows 4, 5 and 6 are the tiles' rows 1, 2 and 0: book 0) gets other values.
    ea = [0x80, 0x90, 0x48, 0x7C, 0xA3, 0x88, 0x55]
    dr = double_rounding(step_of(-8, 0x88), [1 + (2 * j + 1) * 2.0 ** -8 for j in range(128)], "BF16")
    book0 = [0.0, 1 + 2.0 ** -8, -(1 + 3 * 2.0 ** -8), 0.8125, -3.3]
    book1 = [float(dr), -0.0, 2.75, -f32(1 / 3), 5.5]
    assert all(f32(x) != f32(y) for x, y in zip(book0, book1))
    ua = [(i * 3 + i // 6) % 5 for i in range(42)]
    ua[0:6] = [1, 2, 0, 3, 4, 1]  # row 0 (step 1, book 0): the ties and +0
    ua[30:36] = [0, 1, 4, 0, 2, 3]  # row 5 (step 1.5, book 1): the double-rounding case and -0
    a = vq("a.weight", "BF16", [7, 6], -8, 1, ea, ua, book0 + book1, 3, codes_layout=PER_ELEMENT, codes_codec=1, s=2)
    assert a.K == 5 and a.books == 2 and a.params == struct.pack("<hBB", -8, 1, 2)
    assert a.parts[1].layout == PER_ELEMENT and a.parts[1].reserved == 0 and a.parts[1].items == 42
    assert [int(x) for x in a.bits[0:3]] == [0x3F80, 0xBF82, 0x0000]  # ties to even (down, up), +0
    assert a.f32_bits[0] == 0x3F808000 and a.f32_bits[1] == 0xBF818000
    r5 = a.f32_bits[30]  # row 5, code 0: y lies on a BF16 tie that the exact product does not
    assert r5 & 0xFFFF == 0x8000 and float(dr) * 1.5 != float(np.uint32(r5).view(np.float32))
    assert a.bits[31] == 0x8000  # -0
    # b: F16 [5, 8], B = -22, d = 2, s = 1 (rows 0-1: book 0, 2-3: book 1, 4: book 2), K = 6, tile_rows 3. Row
    # steps 2^-14, 1.5 x 2^-10, 2^-22 (F16's least subnormal 2^-24 = step / 4), 1.25 x 2^-7, 2^-12. Book 0 entry 0:
    # an F16 double-rounding case for row 1; book 1 entries 0 and 1 (row 2): subnormal results and ties among them
    # (0.625 -> 2.5 x 2^-24 -> 2, 0.875 -> 3.5 -> 4, 0.125 -> 0.5 -> +0, -0.1 -> -0); the rest pseudo-random.
    eb = [0x80, 0xC8, 0x00, 0xF4, 0xA0]
    drf = double_rounding(step_of(-22, 0xC8), [(1 + (2 * j + 1) * 2.0 ** -11) * 2.0 ** -9 for j in range(1024)], "F16")
    cbb = [float(drf), -float(drf), 0.5, -1.25, 3.0, 0.0, -0.0, 7.5] + rnd(4)  # book 0
    cbb += [0.625, 0.875, 0.125, -0.1] + rnd(8)  # book 1
    cbb += rnd(12, 18)  # book 2 (values up to 32)
    ub = [1, 2, 3, 5, 0, 4, 0, 3, 0, 1, 1, 0] + [(i * 5 + 1) % 6 for i in range(8)]
    b = vq("b.weight", "F16", [5, 8], -22, 2, eb, ub, cbb, 3, scales_codec=1, s=1)
    assert b.K == 6 and b.books == 3 and b.parts[2].items == 36 and b.parts[1].reserved == 2
    assert f16_of(b.f32_bits[8])[1] and b.f32_bits[8] & 0x1FFF == 0x1000  # row 1, group 0: the F16 tie
    assert [int(x) for x in b.bits[16:20]] == [0x0002, 0x0004, 0x0000, 0x8000]  # row 2: subnormals, ties, +0, -0
    # c: F32 [3, 2, 8] (cols 16), B = -10, d = 8, K = 2100, one book, tile_rows 2. Entry 2099 with row 0's step
    # 1.5 x 2^-10: binary32 ties (1 + 2^-23 to even up, 1 + 3 x 2^-23 down), -0, +0, a subnormal product, a
    # subnormal codebook value 2^-140 (x 1.5 x 2^-10: 1.5 x 2^-150, rounded to 2^-149); entries 0, 2047, 2048, 1777,
    # 256 pseudo-random.
    ec = [0x08, 0x73, 0xA0]
    cbc = rnd(2099 * 8) + [1 + 2.0 ** -23, 1 + 3 * 2.0 ** -23, -0.0, 0.0, 2.0 ** -120, 2.0 ** -140, 3.0, -7.25]
    uc = [2099, 0, 2048, 2047, 1777, 256]
    c = vq("c.weight", "F32", [3, 2, 8], -10, 8, ec, uc, cbc, 2, code_item="U16", scales_layout=INLINE,
           codes_codec=1, cb_layout=TENSOR_WIDE, cb_codec=1)
    assert c.K == 2100 and len(c.parts[2].data) == 67200 > 1 << 16
    one5 = f32_bits(1.5 * 2.0 ** -10)
    cf = c.f32_bits
    assert cf[0:4] == [one5 + 2, one5 + 4, 0x80000000, 0] and 0 < cf[4] < 0x00800000 and cf[5] == 1
    # e: BF16 [6, 4], B = -6, d = 4, s = 1 (3 books), K = 3, one tile: codes inline (U8, codec 0), the codebook
    # tensor-wide and float-ans (codec 2).
    ee = [0x60, 0x64, 0x5C, 0x70, 0x68, 0x61]
    cbe = rnd(36)
    ue = [0, 2, 1, 1, 2, 0]
    e = vq("e.weight", "BF16", [6, 4], -6, 4, ee, ue, cbe, 6, codes_layout=INLINE, s=1, cb_layout=TENSOR_WIDE,
           cb_codec=FANS, cb_frame=fans_frame("F32"))
    assert e.K == 3 and e.books == 3
    # f: BF16 [2, 4], B = -4, d = 1, K = 65536 (the most, VQ.md §1), tile_rows 1: U16 codes per element (raw
    # chunks); the codebook (256 KiB, +0 but for the entries used) tensor-wide in a zstd frame of RLE blocks.
    cbf = [0.0] * 65536
    uf = [65535, 0, 40000, 255, 256, 65535, 1, 32768]
    for k, v in zip(sorted(set(uf)), [1.5, -0.75, 2.25, -3.0, 0.625, 1.0625, -6.5]):
        cbf[k] = v
    f = vq("f.weight", "BF16", [2, 4], -4, 1, [0x40, 0x47], uf, cbf, 1, code_item="U16", codes_layout=PER_ELEMENT,
           cb_layout=TENSOR_WIDE, cb_codec=1, cb_frame=lambda raw: zframe(raw, rle=16))
    assert f.K == 65536 and len(f.parts[2].frame(f.parts[2].data)) < 2048
    p = qrow("p.weight", "BF16", [2, 4], -4, [0x10, 0x03], [1, -2, 3, 0, 5, -6, 7, -8], 1)
    ts = [norm, a, b, c, e, f, p]
    kinds = [(t.name, [(q.layout, q.codec) for q in t.parts]) for t in ts if isinstance(t, Lossy) and t.repr == 3]
    assert kinds == [("a.weight", [(PER_ROW, 0), (PER_ELEMENT, 1), (INLINE, 0)]),
                     ("b.weight", [(PER_ROW, 1), (PER_GROUP, 0), (INLINE, 0)]),
                     ("c.weight", [(INLINE, 0), (PER_GROUP, 1), (TENSOR_WIDE, 1)]),
                     ("e.weight", [(PER_ROW, 0), (INLINE, 0), (TENSOR_WIDE, FANS)]),
                     ("f.weight", [(PER_ROW, 0), (PER_ELEMENT, 0), (TENSOR_WIDE, 1)])]
    fb, plen = st_file(ts)
    wcz = container2([(0, "model.safetensors", fb, plen, ts)], minor=11)
    # norm 1; a 3 tiles x 2; b 2 x 2; c the codebook + 2 tiles' codes; e the codebook + 1 tile's scales; f the
    # codebook + 2 x 2; p 2 x 2
    assert struct.unpack("<I", zread_manifest(wcz)[8:12])[0] == 1 + 6 + 4 + 3 + 2 + 5 + 4
    put(d, "lossy_vq211.wcz", wcz)
    put(d, "lossy_vq211.expected", fb)
    vqs = (a, b, c, e, f)
    for t in vqs:
        assert decode_as(t, t.dtype) == t.recon
    put(d, "lossy_vq211.as_dtypes.expected", b"".join(decode_as(t, dt) for t in vqs for dt in ("BF16", "F16", "F32")))
    put_bad(d, vq_books_bad())


def vq211_file(tensors, **kw):
    """A 2.11 file of these tensors (the bad vectors of vq_books_bad and vq_additive_bad)."""
    return one_file(tensors, minor=11, **kw)


def vq211_lie(base):
    """lie(f, **kw): the 2.11 file of base(**kw) with its vq tensor (the second) edited by f."""
    def lie(f, **kw):
        t = base(**kw)
        f(t[1])
        return vq211_file(t)
    return lie


def vq_books_bad():
    """2.11 files every reader must reject, checksum-valid everywhere, each breaking one rule of VQ.md §1 (or as
    few as the rule allows). The base: an exact F32 tensor, then a BF16 vq tensor [6, 8], d = 2, s = 1 (3 books:
    rows 0-1, 2-3, 4-5), K = 4 (entry 3 of every book unused), 2 tiles (4 and 2 rows), U8 codes per group in zstd
    chunks. *.corrupt: record rules (the manifest); *.codec: a code >= K, a non-finite codebook value, a codebook
    chunk of the wrong size (a tile; the level hash is the intended reconstruction's)."""
    rows, cols, d, s, K = 6, 8, 2, 1, 4
    G = 3
    e = [0x83, 0x90, 0x7A, 0x88, 0xA1, 0x65]
    cb = [((k * 37) % 29 - 14) / 8.0 for k in range(G * K * d)]
    u = [(i * 5) % 3 for i in range(rows * cols // d)]
    assert max(u) == K - 2

    def base(d=d, u=u, cb=cb, s=s, **kw):
        opt = dict(codes_codec=1)
        opt.update(kw)
        return [norm_exact(), vq("w.weight", "BF16", [rows, cols], -6, d, e, u, cb, 4, s=s, **opt)]

    one, lie = vq211_file, vq211_lie(base)

    def code_k(row, per_row=cols // d):  # row's first code made K (flat: entry 0 of the next book, or past the end)
        def f(t):
            data = bytearray(t.parts[1].data)
            data[row * per_row] = K
            t.parts[1].data = bytes(data)
        return f

    def cb_value(book, k, j, bits):  # value j of entry k of book `book` made the binary32 bits
        def f(t):
            data = bytearray(t.parts[2].data)
            at = ((book * K + k) * d + j) * 4
            data[at:at + 4] = struct.pack("<I", bits)
            t.parts[2].data = bytes(data)
        return f

    def setattrs(obj, **kw):
        for k, v in kw.items():
            setattr(obj, k, v)

    tw = dict(cb_layout=TENSOR_WIDE, cb_codec=1)  # the codebook a tensor-wide zstd chunk (chunk 1: before the tiles')
    # d = 1: 48 codes, one per element, values 0-3 (a palette of 4 per book)
    u1 = [(i * 5) % 3 for i in range(rows * cols)]
    cb1 = cb[:G * K]

    def d1_group(g):  # d = 1, the codes per group (layout 4) of g, their items rows x cols / g (the data cut by g)
        def f(t):
            setattrs(t.parts[1], layout=PER_GROUP, reserved=g, items=rows * cols // g,
                     data=t.parts[1].data[:rows * cols // g])
        return f

    def cb_raw_size(seq, entry):  # chunk 1, the codebook's: its index raw size 4 bytes more than G x K x d x 4
        return entry[:2] + (entry[2] + 4,) + entry[3:] if seq == 1 else entry

    assert base()[1].parts[2].items == G * K * d == 24 and base()[1].books == G
    assert base(d=1, u=u1, cb=cb1, codes_layout=PER_ELEMENT)[1].K == K
    return {
        # VQ.md §1: 0 <= s <= 31. With s = 32 (or 255) there would be one book (ceil(6 / 2^32) = 1) of 12 entries,
        # which the 24 values fit: only the shift's range is broken.
        "vq211_shift_32.corrupt": one(base(params=struct.pack("<hBB", -6, d, 32))),
        "vq211_shift_255.corrupt": one(base(params=struct.pack("<hBB", -6, d, 255))),
        # VQ.md §1: items a multiple of G x d (= 6): 26 is a multiple of d (K = 13 if there were one book), not of 6.
        "vq211_codebook_items_books.corrupt": lie(lambda t: setattrs(t.parts[2], data=t.parts[2].data + b"\0" * 8,
                                                                      items=26)),
        # the same with the codebook tensor-wide (zstd), and a tensor-wide codebook of 0 items (K = 0; no chunk)
        "vq211_codebook_tw_items_books.corrupt": lie(lambda t: setattrs(t.parts[2], data=t.parts[2].data + b"\0" * 8,
                                                                         items=26), **tw),
        "vq211_codebook_tw_empty.corrupt": lie(lambda t: setattrs(t.parts[2], data=b"", items=0), **tw),
        # VQ.md §1: K <= 65536: d = 1, one book of 65537 values (tensor-wide, a zstd frame of RLE blocks)
        "vq211_codebook_k_65537.corrupt": one(base(d=1, u=u1, s=0, cb=cb1 + [0.0] * (65537 - len(cb1)),
                                                   codes_layout=PER_ELEMENT, cb_layout=TENSOR_WIDE, cb_codec=1,
                                                   cb_frame=lambda raw: zframe(raw, rle=16))),
        # VQ.md §1: a tensor-wide codebook with a codec that does not store F32 parts (codec 4: exact tensors only)
        "vq211_codebook_tw_codec_4.corrupt": one(base(cb_layout=TENSOR_WIDE, cb_codec=MIXED,
                                                      cb_frame=lambda raw: MODE_RAW + raw)),
        # FORMAT.md §7 against §4.3: the codebook chunk's index raw size 4 bytes more than its items x 4
        "vq211_codebook_tw_index_raw_size.corrupt": one(base(**tw), index_edit=cb_raw_size),
        # VQ.md §1: d = 1 takes codes per element (layout 0): per group of 1 (g >= 2 anyway, §4.4) or of 2 (48 / 2
        # items: one per 2 elements)
        "vq211_d1_codes_group_1.corrupt": one(base(d=1, u=u1, cb=cb1, codes_layout=PER_GROUP)),
        "vq211_d1_codes_group_2.corrupt": lie(d1_group(2), d=1, u=u1, cb=cb1, codes_layout=PER_ELEMENT),
        # VQ.md §1: a code u >= K in a book: row 0 (book 0; the flat index 4 is book 1's entry 0), row 5 (the last
        # book; the flat index 12 is past the codebook)
        "vq211_code_k_book0.codec": lie(code_k(0)),
        "vq211_code_k_last_book.codec": lie(code_k(5)),
        # d = 1: a code K in row 2 (book 1), codes per element
        "vq211_d1_code_k.codec": lie(code_k(2, per_row=cols), d=1, u=u1, cb=cb1, codes_layout=PER_ELEMENT),
        # VQ.md §1: every codebook value finite: +inf in book 1's entry 3 (no code uses it), inline; NaN in the
        # last book's, tensor-wide
        "vq211_codebook_inf_book1.codec": lie(cb_value(1, 3, 1, 0x7F800000)),
        "vq211_codebook_tw_nan_book2.codec": lie(cb_value(2, 3, 0, 0x7FC00000), **tw),
        # FORMAT.md §4.4, VQ.md §1: the tensor-wide codebook chunk (zstd) decodes to 4 bytes fewer, or more, than
        # its G x K x d x 4 bytes (its index raw size is the record's)
        "vq211_codebook_tw_short.codec": one(base(cb_layout=TENSOR_WIDE, cb_codec=1,
                                                  cb_frame=lambda raw: zraw(raw[:-4]))),
        "vq211_codebook_tw_long.codec": one(base(cb_layout=TENSOR_WIDE, cb_codec=1,
                                                 cb_frame=lambda raw: zraw(raw + raw[:4]))),
    }



# ---------------------------------------------------------------------------------------------
# Version 2.11, additive books (VQ.md §1-2; AQLM's two codebooks): params exactly 6 bytes, i16 B, u8 d, u8 s, u16 K2
# (K2 >= 1). Each book's E = items / (G x d) entries are K1 = E - K2 (>= 1) of the first codebook, then K2 of the
# second; K = K1 x K2 codes (<= 65536). Code u of row r (book b): v = cb[(b E + u div K2) d + j] + cb[(b E + K1 +
# u mod K2) d + j], one binary32 addition (RNE), then y = binary32(step x v); the output dtype as QROW.md §3. A code
# u >= K1 x K2 (even one below E) or a non-finite codebook value (used or not) makes the tiles undecodable.

def mul_add_variants(step, x1, x2):
    """The binary32 bits of step x (x1 + x2) as a decoder that fuses or reorders would compute them, each rounded
    as IEEE 754 says (f32_round of the exact value): the exact value rounded once (no rounding of the sum),
    fma(step, x1, step x x2), fma(step, x2, step x x1), and step x x1 + step x x2 (three roundings)."""
    s, a, b = Fraction(float(step)), Fraction(float(x1)), Fraction(float(x2))
    sa, sb = f32_frac(f32_round(s * a)), f32_frac(f32_round(s * b))
    return [f32_round(s * (a + b)), f32_round(s * a + sb), f32_round(s * b + sa), f32_round(sa + sb)]


def vq_additive_vectors(d):
    """lossy_vq211_additive (2.11, additive books): an exact tensor (zstd); a: BF16 [6, 24], d = 8, K1 = 3, K2 = 5
    (E = 8 entries, 15 codes, all used), U8 codes per group (zstd chunks), 2 tiles of 3 rows, the codebook inline;
    b: F16 [3, 8], d = 2, s = 1 (2 books, the last of one row), K1 = 2, K2 = 3, 2 tiles of 2 rows (tile 1: book 1),
    sums that binary32 rounds and an element that a fused multiply-add would change; c: F32 [2, 16], d = 4,
    K1 = K2 = 256 (65536 codes, the most; 65535 and 0 used), U16 codes per group (zstd), the codebook tensor-wide
    (zstd), 2 tiles of 1 row; e: BF16 [4, 6], d = 1, s = 1, K1 = 1, K2 = 4 (K = E - 1), codes per element, 2 tiles
    (tile 1 starts inside book 1); f: F16 [2, 8], d = 4, K1 = 4, K2 = 1 (K = E - 1), every part inline (no chunk).
    lossy_vq211_additive.as_dtypes.expected: each vq tensor decoded in BF16, F16 and F32 in turn."""
    norm = Exact("norm.weight", "F32", [6], np.array([1, -0.5, 2.5, 0, 3e-3, -7], dtype="<f4").tobytes(), codec=1)
    f32 = lambda x: float(np.float32(x))
    rng = Rng(0x2111)
    rnd = lambda n, scale=21: [f32((rng(24) - (1 << 23)) / float(1 << scale)) for _ in range(n)]

    # a: BF16 [6, 24] (3 groups of 8 a row), B = -8, K1 = 3 (entries 0-2), K2 = 5 (entries 3-7), tile_rows 3. Row
    # steps 1, 1.5, 1.5 x 2^-4, 4.75, 2^-1, 1.3125 x 2. Row 0, group 0 is code 0 (entries 0 and 3): value 0,
    # (1 + 2^-8) + 2^-30 -> binary32 1 + 2^-8 (2^-30 is below half its last place), a BF16 tie -> 0x3F80 (to even),
    # where the exact sum rounded once to BF16 (binary64 arithmetic) would give 0x3F81 (with step 1 every binary32
    # product is exact, so a fused multiply-add gives the spec's value here: b's row 0 is the FMA case); value 1,
    # 1 + 2^-24 -> 1 (a binary32 tie, to even down); value 2, (1 + 2^-23) + 2^-24 -> 1 + 2^-22 (a tie, to even up;
    # seen in F32). The rest pseudo-random; every one of the 15 codes is used, so a decoder that splits u by K1
    # (u mod K1, u div K1) or reads the book flat (entry u) gets other values.
    ea = [0x80, 0x88, 0x48, 0xA3, 0x70, 0x95]
    cba = rnd(64)
    cba[0:3] = [1 + 2.0 ** -8, 1.0, 1 + 2.0 ** -23]  # entry 0 (first codebook, entry 0)
    cba[24:27] = [2.0 ** -30, 2.0 ** -24, 2.0 ** -24]  # entry 3 (second codebook, entry 0)
    ua = [0, 14, 7, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 9, 0, 14]
    a = vq("a.weight", "BF16", [6, 24], -8, 8, ea, ua, cba, 3, codes_codec=1, k2=5)
    assert a.K == 15 and a.E == 8 and a.params == struct.pack("<hBBH", -8, 8, 0, 5)
    assert sorted(set(ua)) == list(range(15))
    assert a.parts[1].layout == PER_GROUP and a.parts[1].reserved == 8 and a.parts[2].items == 64
    assert a.f32_bits[0:3] == [0x3F808000, 0x3F800000, 0x3F800002] and a.bits[0] == 0x3F80
    assert bf16_direct(cba[0] + cba[24]) == 1 + 2.0 ** -7  # the exact sum rounded once to BF16: up (0x3F81)
    # b: F16 [3, 8] (4 groups of 2), B = -8, s = 1 (rows 0-1: book 0, row 2: book 1), K1 = 2, K2 = 3 (E = 5, 6
    # codes), tile_rows 2. Row steps 1.5, 1, 1.75 x 2^-2. Book 0: entry 0 = (1 + 3 x 2^-10 - 2^-20, 1 + 2^-23),
    # entry 1 = (1 + 2^-11, 1), entries 2-4 (the second codebook) = (135 x 2^-27, 2^-24), (2^-25, 2^-24), (-0.25,
    # 0.375). Book 1: entry 0 = (-0, 0.5), entry 2 = (-0, -0.5), the rest pseudo-random (every value differs from
    # book 0's: a decoder that takes row 2's book from its row in tile 1 gets other values).
    # The element that proves no fused multiply-add: row 0, column 0 (code 0: entries 0 and 2). The binary32 sum
    # (1 + 3 x 2^-10 - 2^-20) + 135 x 2^-27 = 1 + 3 x 2^-10 + 7 x 2^-27 rounds to v = 1 + 3 x 2^-10 (7/16 of its
    # last place), and 1.5 x v = 1.5 + 9 x 2^-11 exactly: an F16 tie, to even 0x3E04. fma(step, x1, step x x2),
    # fma(step, x2, step x x1), step x x1 + step x x2 and the exact product all give 1.5 + 9 x 2^-11 + 2^-23
    # (1.5 x 7/16 = 21/32 of a last place rounds up) and F16 0x3E05. Row 0, column 1: (1 + 2^-23) + 2^-24 -> 1 +
    # 2^-22 (a binary32 tie, to even up), x 1.5 = 1.5 + 3 x 2^-23 (F32). Row 1, column 0 (code 4: entries 1 and
    # 3): (1 + 2^-11) + 2^-25 -> 1 + 2^-11, an F16 tie -> 0x3C00 (the exact sum rounded once to F16: 0x3C01);
    # column 1: 1 + 2^-24 -> 1 (a binary32 tie, to even down). Row 2, group 0 (code 0 of book 1): -0 + -0 = -0,
    # 0.5 + -0.5 = +0.
    eb = [0x88, 0x80, 0x6C]
    book0 = [1 + 3 * 2.0 ** -10 - 2.0 ** -20, 1 + 2.0 ** -23, 1 + 2.0 ** -11, 1.0,
             135 * 2.0 ** -27, 2.0 ** -24, 2.0 ** -25, 2.0 ** -24, -0.25, 0.375]
    book1 = [-0.0, 0.5] + rnd(2) + [-0.0, -0.5] + rnd(4)
    assert all(f32(x) != f32(y) for x, y in zip(book0, book1))
    ub = [0, 1, 5, 2, 4, 3, 0, 1, 0, 5, 4, 2]
    b = vq("b.weight", "F16", [3, 8], -8, 2, eb, ub, book0 + book1, 2, scales_codec=1, s=1, k2=3)
    assert b.K == 6 and b.E == 5 and b.books == 2 and b.parts[2].items == 20
    step0 = step_of(-8, 0x88)
    assert float(step0) == 1.5
    assert b.f32_bits[0] == f32_bits(1.5 + 9 * 2.0 ** -11) and b.bits[0] == 0x3E04 and f16_of(b.f32_bits[0])[1]
    assert f32_round(Fraction(book0[0]) + Fraction(book0[4])) == f32_bits(1 + 3 * 2.0 ** -10)  # the sum rounds
    alt = mul_add_variants(step0, book0[0], book0[4])
    assert alt == [b.f32_bits[0] + 1] * 4 and all(f16_of(v)[0] == 0x3E05 for v in alt), [hex(v) for v in alt]
    assert b.f32_bits[1] == f32_bits(1.5 + 3 * 2.0 ** -23)
    assert b.f32_bits[8] == f32_bits(1 + 2.0 ** -11) and b.bits[8] == 0x3C00 and b.f32_bits[9] == 0x3F800000
    assert int(np.float64(book0[2] + book0[6]).astype(np.float16).view(np.uint16)) == 0x3C01  # rounded once
    assert [int(x) for x in b.bits[16:18]] == [0x8000, 0x0000]  # -0, +0
    # c: F32 [2, 16] (4 groups of 4), B = -10, K1 = K2 = 256 (E = 512 entries, 65536 codes), the codebook
    # tensor-wide (one zstd chunk before the tiles'), U16 codes per group (zstd), tile_rows 1. Codes 65535 (entries
    # 255 and 511), 0 (0 and 256), 256, 255, 32768, 12345, 65280, 511. Code 65535 with row 0's step 1.5 x 2^-2:
    # 1 + 2^-24 -> 1, (1 + 2^-23) + 2^-24 -> 1 + 2^-22 (binary32 ties, to even), x 0.375.
    ec = [0x88, 0xA5]
    cbc = rnd(512 * 4)
    cbc[255 * 4:255 * 4 + 2] = [1.0, 1 + 2.0 ** -23]
    cbc[511 * 4:511 * 4 + 2] = [2.0 ** -24, 2.0 ** -24]
    uc = [65535, 0, 256, 255, 32768, 12345, 65280, 511]
    c = vq("c.weight", "F32", [2, 16], -10, 4, ec, uc, cbc, 1, code_item="U16", codes_codec=1,
           cb_layout=TENSOR_WIDE, cb_codec=1, k2=256)
    assert c.K == 65536 and c.E == 512 and c.parts[2].items == 2048
    assert c.f32_bits[0:2] == [f32_bits(0.375), f32_bits(0.375 * (1 + 2.0 ** -22))]
    # e: BF16 [4, 6], B = -6, d = 1 (codes per element, U8 raw chunks), s = 1 (2 books of 2 rows), K1 = 1, K2 = 4
    # (E = 5, K = 4: code u is entry 0 plus entry 1 + u), tile_rows 3 (tile 1, row 3, inside book 1).
    ee = [0x60, 0x64, 0x5C, 0x70]
    cbe = rnd(10, 20)
    ue = [(i * 3 + i // 6) % 4 for i in range(24)]
    e = vq("e.weight", "BF16", [4, 6], -6, 1, ee, ue, cbe, 3, codes_layout=PER_ELEMENT, s=1, k2=4)
    assert e.K == 4 and e.E == 5 and e.books == 2 and e.parts[1].items == 24 and sorted(set(ue)) == [0, 1, 2, 3]
    # f: F16 [2, 8], B = -12, d = 4, K1 = 4, K2 = 1 (E = 5, K = 4: code u is entry u plus entry 4), one tile: the
    # scales and the codes (U8) inline with codec 0, the codebook inline: no chunk.
    cbf = rnd(20, 22)
    f = vq("f.weight", "F16", [2, 8], -12, 4, [0x90, 0xA7], [3, 0, 1, 2], cbf, 2, scales_layout=INLINE,
           codes_layout=INLINE, k2=1)
    assert f.K == 4 and f.E == 5
    ts = [norm, a, b, c, e, f]
    kinds = [(t.name, t.params[4:], [(q.layout, q.codec) for q in t.parts]) for t in ts if isinstance(t, Lossy)]
    assert kinds == [("a.weight", b"\x05\x00", [(PER_ROW, 0), (PER_GROUP, 1), (INLINE, 0)]),
                     ("b.weight", b"\x03\x00", [(PER_ROW, 1), (PER_GROUP, 0), (INLINE, 0)]),
                     ("c.weight", b"\x00\x01", [(PER_ROW, 0), (PER_GROUP, 1), (TENSOR_WIDE, 1)]),
                     ("e.weight", b"\x04\x00", [(PER_ROW, 0), (PER_ELEMENT, 0), (INLINE, 0)]),
                     ("f.weight", b"\x01\x00", [(INLINE, 0), (INLINE, 0), (INLINE, 0)])]
    fb, plen = st_file(ts)
    wcz = container2([(0, "model.safetensors", fb, plen, ts)], minor=11)
    # norm 1; a 2 tiles x 2; b 2 x 2; c the codebook + 2 x 2; e 2 x 2; f none
    assert struct.unpack("<I", zread_manifest(wcz)[8:12])[0] == 1 + 4 + 4 + 5 + 4 + 0
    put(d, "lossy_vq211_additive.wcz", wcz)
    put(d, "lossy_vq211_additive.expected", fb)
    vqs = (a, b, c, e, f)
    for t in vqs:
        assert decode_as(t, t.dtype) == t.recon
    put(d, "lossy_vq211_additive.as_dtypes.expected",
        b"".join(decode_as(t, dt) for t in vqs for dt in ("BF16", "F16", "F32")))
    put_bad(d, vq_additive_bad())


def vq_additive_bad():
    """2.11 files with additive books every reader must reject, checksum-valid everywhere, each breaking one rule of
    VQ.md §1. The base: an exact F32 tensor, then a BF16 vq tensor [6, 8], d = 2, s = 1 (3 books: rows 0-1, 2-3,
    4-5), K1 = 2, K2 = 3 (E = 5 entries a book, 6 codes), 2 tiles (4 and 2 rows), U8 codes per group in zstd chunks,
    the codebook inline. Its codes are 0, 1, 3 and 4 only: below E (so a reader that took the book as flat would
    still find them in range), and never u mod 3 = 2 (no code uses a book's entry K1 + 2, the second codebook's
    last). *.corrupt: record rules (the manifest); *.codec: a code >= K1 x K2, a non-finite codebook value (a tile;
    the level hash is the intended reconstruction's, so only the rule names the fault)."""
    rows, cols, d, s, k1, k2 = 6, 8, 2, 1, 2, 3
    G, E = 3, k1 + k2
    e = [0x83, 0x90, 0x7A, 0x88, 0xA1, 0x65]
    cb = [((k * 37) % 29 - 14) / 8.0 for k in range(G * E * d)]
    u = [(0, 1, 3, 4)[(i * 5) % 4] for i in range(rows * cols // d)]
    assert sorted(set(u)) == [0, 1, 3, 4] and all(x % k2 != 2 for x in u)

    def base(d=d, u=u, cb=cb, s=s, k2=k2, **kw):
        opt = dict(codes_codec=1)
        opt.update(kw)
        return [norm_exact(), vq("w.weight", "BF16", [rows, cols], -6, d, e, u, cb, 4, s=s, k2=k2, **opt)]

    one, lie = vq211_file, vq211_lie(base)

    def params(*fields, fmt="<hBBH"):
        return struct.pack(fmt, -6, d, s, *fields) if fields or fmt != "<hBBH" else None

    def code(row, v, per_row=cols // d):  # row's first code made v
        def f(t):
            data = bytearray(t.parts[1].data)
            data[row * per_row] = v
            t.parts[1].data = bytes(data)
        return f

    def cb_value(book, k, j, bits, E=E):  # value j of entry k of book `book` made the binary32 bits
        def f(t):
            data = bytearray(t.parts[2].data)
            at = ((book * E + k) * d + j) * 4
            data[at:at + 4] = struct.pack("<I", bits)
            t.parts[2].data = bytes(data)
        return f

    b0 = base()[1]
    assert b0.K == 6 and b0.E == 5 and b0.books == G and b0.parts[2].items == G * E * d == 30
    assert b0.params == struct.pack("<hBBH", -6, d, s, k2)
    # K1 = 1 and K2 = 1: K = E - 1, so the code K is an entry of the book (below E) but not a code
    u3 = [min(x, 3) for x in u]
    # K = 80000: E = 600, K2 = 200, K1 = 400 (one book, d = 2: 1200 values, inline)
    cb600 = [((k * 37) % 29 - 14) / 8.0 for k in range(600 * d)]
    # K = 65538, just past the most: d = 1, one book of E = 32771 entries (tensor-wide, a zstd frame of RLE blocks),
    # K2 = 32769, K1 = 2; codes per element, U8
    u1 = [(i * 5) % 4 for i in range(rows * cols)]
    cbk = cb[:8] + [0.0] * (32771 - 8)
    return {
        # VQ.md §1: params exactly 4 or 6 bytes: 5 (K2 cut to its low byte) and 7 (a byte after K2)
        "vq211_add_params_5.corrupt": one(base(params=params(k2, fmt="<hBBB"))),
        "vq211_add_params_7.corrupt": one(base(params=params(k2, 0, fmt="<hBBHB"))),
        # VQ.md §1: 1 <= K2. With K2 = 0 the book would be flat (5 entries, codes 0-4 all below 5): only that rule
        # is broken
        "vq211_add_k2_0.corrupt": one(base(params=params(0))),
        # VQ.md §1: K1 = E - K2 >= 1: K2 = E = 5 (K1 = 0), K2 = 65535 (past E)
        "vq211_add_k2_e.corrupt": one(base(params=params(E))),
        "vq211_add_k2_65535.corrupt": one(base(params=params(65535))),
        # VQ.md §1: K1 x K2 <= 65536 (E <= 65536 holds): 400 x 200 = 80000, and 2 x 32769 = 65538
        "vq211_add_k_80000.corrupt": one(base(s=0, cb=cb600, k2=200)),
        "vq211_add_k_65538.corrupt": one(base(d=1, u=u1, s=0, cb=cbk, k2=32769, codes_layout=PER_ELEMENT,
                                              cb_layout=TENSOR_WIDE, cb_codec=1,
                                              cb_frame=lambda raw: zframe(raw, rle=16))),
        # VQ.md §1: a code u >= K1 x K2 (not E): row 0's first code made 6 (book 0; 6 div 3 = 2 is the second
        # codebook's entry 0, inside the codebook); with K1 = 4, K2 = 1 (E = 5, K = 4) row 5's made 4, and with K1 =
        # 1, K2 = 4 row 2's made 4: both an entry of their book (4 < E), not a code
        "vq211_add_code_k.codec": lie(code(0, 6)),
        "vq211_add_code_k_k2_1.codec": lie(code(5, 4), u=u3, k2=1),
        "vq211_add_code_k_k1_1.codec": lie(code(2, 4), u=u3, k2=4),
        # VQ.md §1: every codebook value finite, used or not: NaN in book 1's second codebook, its entry 2 (the
        # book's entry K1 + 2 = 4, which no code uses), inline; -inf in book 2's, the codebook tensor-wide (zstd)
        "vq211_add_nan_second.codec": lie(cb_value(1, k1 + 2, 1, 0x7FC00000)),
        "vq211_add_tw_inf_second.codec": lie(cb_value(2, k1 + 2, 0, 0xFF800000), cb_layout=TENSOR_WIDE, cb_codec=1),
    }


# ---------------------------------------------------------------------------------------------
# Versions 1.4 and 2.5: inline exact tensors (FORMAT.md §4.2): an exact tensor with byte_size > 0 and
# chunk_size 0 has, after its params, u32 stored_size and a payload that decodes as one chunk of its codec to
# its byte_size bytes (at most 2^16); it has no chunk, so the chunk numbering (§4.3) skips it.

def inline_exact_vectors(d):
    """inline_exact (1.4): one safetensors file of inline tensors of codecs 0 (raw), 1 (zstd), 2 (float-ans,
    the float-ans vector bf16_3groups) and 4 (float-ans-mixed, mode 2: a zstd frame), between and around
    chunked tensors and an empty one: chunks 0-2 are b.chunked's, 3-5 g.tail's. lossy_inline_exact (2.5): an
    inline exact norm (raw), a qrow tensor of 2 tiles, an inline zstd bias and a chunked exact tensor."""
    fans, fans_raw = fans_vector("bf16_3groups.BF16")
    assert len(fans_raw) <= 1 << 16 and len(fans) <= bound(len(fans_raw))
    assert chunk_decode(fans, "BF16", len(fans_raw), FANS) == fans_raw
    f16 = np.linspace(-2, 2, 8).astype("<f2").tobytes()
    mixed = MODE_ZSTD + zraw(f16)
    assert chunk_decode(mixed, "F16", len(f16), MIXED) == f16
    ts = [Exact("a.raw", "F32", [6], np.array([1, -1, 0.5, 0, -0.0, 3e-3], dtype="<f4").tobytes(), inline=True),
          Exact("b.chunked", "BF16", [75], bytes((i * 11 + 3) & 255 for i in range(150))),  # chunks 0, 1, 2
          Exact("c.zstd", "F16", [3, 4], np.arange(-6, 6).astype("<f2").tobytes(), codec=1, inline=True),
          Exact("d.empty", "F32", [0, 4], b""),
          Exact("e.fans", "BF16", [len(fans_raw) // 2], fans_raw, codec=FANS, inline=True, stored=[fans]),
          Exact("f.mixed", "F16", [8], f16, codec=MIXED, inline=True, stored=[mixed]),
          Exact("g.tail", "F32", [40], np.arange(-20, 20, dtype="<f4").tobytes(), codec=1)]  # chunks 3, 4, 5
    fb, plen = st_file(ts)
    wcz = container2([(0, "model.safetensors", fb, plen, ts)], major=1, minor=4)
    assert struct.unpack("<IIII", zread_manifest(wcz)[:16]) == (1, 7, 6, 0)
    # the 1.x writer container() writes the same bytes for the tensors it can code (raw and zstd)
    sub = [t for t in ts if t.codec in (0, 1)]
    sfb, splen = st_file(sub)
    assert container([(0, "model.safetensors", sfb, splen, [(t.name, t.dtype, t.shape, t.raw) for t in sub])], 64,
                     [t.codec for t in sub], minor=4, inline={i for i, t in enumerate(sub) if t.inline}) == \
        container2([(0, "model.safetensors", sfb, splen, sub)], major=1, minor=4)
    put(d, "inline_exact.wcz", wcz)
    put(d, "inline_exact.expected", fb)
    # 2.5: lossy_mixed's qrow tensor between inline exact tensors, then a chunked one.
    norm = Exact("norm.weight", "F32", [8], np.array([1, 0.5, -2.25, 3e-3, 0, -0.0, 1e30, -7.5], dtype="<f4").tobytes(),
                 inline=True)
    mid = qrow("mid.weight", "BF16", [3, 8], -10, [0x45, 0x00, 0x9C],
               [1, -1, 2, -2, 3, -3, 4, -4, 0, 10, -10, 100, -100, 127, -128, 17, 19, 21, -23, 25, 27, -29, 31, 33], 2)
    bias = Exact("mid.bias", "F16", [24], np.linspace(-1, 1, 24).astype("<f2").tobytes(), codec=1, inline=True)
    head = Exact("head.weight", "F32", [40], np.arange(-20, 20, dtype="<f4").tobytes(), codec=1)
    lts = [norm, mid, bias, head]
    lfb, lplen = st_file(lts)
    lwcz = container2([(0, "model.safetensors", lfb, lplen, lts)], minor=5)
    assert struct.unpack("<IIIBBHI", zread_manifest(lwcz)[:20]) == (1, 4, 4 + 3, 1, 0, 0, 0)  # 2 tiles x 2, 3
    put(d, "lossy_inline_exact.wcz", lwcz)
    put(d, "lossy_inline_exact.expected", lfb)
    put_bad(d, inline_exact_bad())


def inline_exact_bad():
    """1.4 files every reader must reject, checksum-valid everywhere (the file records' sizes and XXH3-64 are
    those of the intended files), each lying in one thing about an inline exact tensor, the manifest's last
    tensor. *.corrupt: §4.2's record rules, seen when the manifest is decoded; *.codec: a payload that does not
    decode to exactly byte_size bytes, seen when the tensor is decoded."""
    w = np.array([((i * 37) % 29) - 14 for i in range(12)], dtype="<f4").tobytes()  # F32 [12]: 48 bytes
    assert bound(48) == 4150

    def one(t):
        return one_file([norm_exact(), t], major=1, minor=4)

    def w_(**kw):
        return Exact("w.weight", "F32", [12], w, inline=True, **kw)

    # float-ans: the float-ans vector f16_2groups_joint, its last byte cut
    fans, fans_raw = fans_vector("f16_2groups_joint.F16")
    try:
        chunk_decode(fans[:-1], "F16", len(fans_raw), FANS)
        raise AssertionError("decodes: truncated float-ans")
    except Invalid:
        pass
    # a frame that declares 48 bytes of content but whose one raw block holds 44
    fcs_lie = struct.pack("<IB", 0xFD2FB528, 0xE0) + struct.pack("<Q", 48) + raw_blocks(w[:-4])
    for f in (zraw(w[:-4]), fcs_lie, zraw(w + b"\0" * 4)):
        try:
            assert zstd_content(f) != w
        except Invalid:
            pass
    big = bytes((i * 7) & 255 for i in range(65537))
    return {
        # §4.2: an inline tensor is at most 2^16 bytes (U8 [65537], raw, its 65537 bytes in the record).
        "exact_inline_65537.corrupt": one(Exact("w.weight", "U8", [65537], big, inline=True)),
        # §4.2, §5: stored_size at most byte_size + byte_size / 8 + 4096: 48 bytes as a valid zstd frame padded
        # with empty raw blocks to 4153 > 4150 bytes (it decodes: only the bound refuses it).
        "exact_inline_stored_bound.corrupt": one(w_(codec=1, stored=[zstd_padded(w, bound(48) + 1)])),
        # §4.2: codec 0 stores the bytes as they are, stored_size = byte_size (here 44 and 52 for 48).
        "exact_inline_raw_short.corrupt": one(w_(stored=[w[:-4]])),
        "exact_inline_raw_long.corrupt": one(w_(stored=[w + b"\0" * 4])),
        # §4.2: the payload runs past the manifest: stored_size 64 more than the zstd frame that follows (within
        # the bound); only the extension count (4 bytes) follows the record.
        "exact_inline_past_manifest.corrupt": one(w_(codec=1, stored_size=len(zraw(w)) + 64)),
        # §4.2, §6: the payload decodes to exactly byte_size bytes: a zstd frame of 44 bytes for 48, and one of
        # 52; a frame that declares 48 but holds 44 (an invalid frame); a float-ans payload one byte short.
        "exact_inline_zstd_short.codec": one(w_(codec=1, stored=[zraw(w[:-4])])),
        "exact_inline_zstd_long.codec": one(w_(codec=1, stored=[zraw(w + b"\0" * 4)])),
        "exact_inline_zstd_size_lie.codec": one(w_(codec=1, stored=[fcs_lie])),
        "exact_inline_fans_truncated.codec": one(Exact("w.weight", "F16", [len(fans_raw) // 2], fans_raw, codec=FANS,
                                                       inline=True, stored=[fans[:-1]])),
    }


# ---------------------------------------------------------------------------------------------
# Version 2.7: the exact top layer of a qrow tensor (EXACT_TOP.md). A qrow tensor of level_count 2 has, after
# qrow's scales and codes (level 0), part 2: the tables (role 5, level 1, inline, U8; codec 0 or a codec's
# payload, 2.3) and part 3: the residuals d (role 5, level 1, per element, U16 for BF16/F16, U32 for F32, codec 6
# exact-residual: per tile mode 0, the residuals as they are, or mode 1, 4-state interleaved rANS of a
# symbol per element with its raw bits after; a mode-1 tile carries its rows' step bytes e). Level 0 is qrow's
# reconstruction y; level 1 the original bits w, w = ord(ord(y) +- d). The tables' trim Z (§2, §4; 0 but in
# lossy_exact_top_trim and a few bad vectors) cuts the low Z bits, zero in every original: w = ord(ord(y >> Z) +- d)
# << Z on W = width - Z bits. An element's context comes from its level-0
# bits y (uncut) and its row's step exponent E = B + (e >> 4) (§3), the e of a mode-1 tile's own payload (§5). Written
# from EXACT_TOP.md alone: et_parse_tables() and et_decode_tile() check every rule of its §4 and §5, every good
# payload here is decoded back by them to the residuals it was made from, and every bad one fails on the rule
# it breaks.
#
# The alphabet of contexts >= 1 is A = 8 x (W - 2) (Z = 0: 112, 240: classes k of n = bit length of m, 3 .. W - 1);
# lossy_exact_top_wide uses its top symbols, 104 .. 111 (W = 16) and 232 .. 239 (W = 32): residuals of
# magnitude 2^(W-2) and more in contexts >= 1 (an Inf or a NaN at a non-zero level-0 value, a sign flip).

EXACT_TOP, EXACT_CODEC, EXACT_P = 5, 6, 12  # part role 5, codec 6 (EXACT_TOP.md §1), P as §6's writer chooses
MANT = {"BF16": 7, "F16": 10, "F32": 23}


def et_ord(x, W):
    """§2: an involution on W-bit patterns putting them in the order of their values (two's complement)."""
    h = 1 << (W - 1)
    return x ^ (h - 1) if x >= h else x


def et_residual(w, y, W):
    """The residual d (a W-bit pattern) taking the level-0 bits y to the original bits w (§2 solved for d)."""
    d = et_ord(w, W) - et_ord(y, W) if y < 1 << (W - 1) else et_ord(y, W) - et_ord(w, W)
    return d & ((1 << W) - 1)


def et_apply(y, d, W):
    """§2: the original bits from the level-0 bits y and the residual d (both W-bit patterns)."""
    t = et_ord(y, W) + d if y < 1 << (W - 1) else et_ord(y, W) - d
    return et_ord(t & ((1 << W) - 1), W)


def et_context(y, E, dtype):
    """§3: the context of an element before the clamp to C - 1, from its level-0 bits y (dtype's) and its row's
    step exponent E = B + (e >> 4): 0 for y = +-0, else clamp(1 + 2 x (L - E) + t, 1, 32) with L = floor(log2 |y|)
    and t the bit below |y|'s leading one, both from the bits (an exponent field of all ones, F16's +-Inf, by
    the normal rule: L = 31 - 15 = 16, t = 0)."""
    W, mant = DTYPES[dtype][1], MANT[dtype]
    bias = 15 if dtype == "F16" else 127
    a = y & ((1 << (W - 1)) - 1)
    if a == 0:
        return 0
    X, f = a >> mant, a & ((1 << mant) - 1)
    if X:  # normal (or Inf)
        L, t = X - bias, (f >> (mant - 1)) & 1
    else:  # subnormal: f of bit length n
        n = f.bit_length()
        L, t = n - mant - bias, (f >> (n - 2)) & 1 if n >= 2 else 0
    assert X == 0 or X == (1 << (W - 1 - mant)) - 1 or 2.0 ** L <= abs(et_value(y, dtype)) < 2.0 ** (L + 1)
    return min(32, max(1, 1 + 2 * (L - E) + t))


def et_width(dtype, Z=0):
    """§2: W, the dtype's width less the tables' trim Z (the residuals are W-bit patterns)."""
    assert 0 <= Z <= MANT[dtype] - 2
    return DTYPES[dtype][1] - Z


def et_alphabet(ctx, dtype, Z=0):
    """§3: A0 = 2^(W - R) in context 0 (R = mant - Z - 2); A = 8 x (W - 2) in the others (W = width - Z)."""
    W = et_width(dtype, Z)
    return 1 << (W - (MANT[dtype] - Z - 2)) if ctx == 0 else 8 * (W - 2)


def et_split(d, ctx, dtype, Z=0):
    """§3: the residual d (a W-bit pattern) as (sym, r, raw): a symbol, and r raw bits of value raw."""
    W = et_width(dtype, Z)
    assert 0 <= d < 1 << W
    d = d - (1 << W) if d >> (W - 1) else d  # two's complement
    s = 1 if d < 0 else 0
    m = abs(d) - s
    if ctx == 0:
        R = MANT[dtype] - Z - 2
        return 2 * (m >> R) + s, R, m & ((1 << R) - 1)
    if m < 4:
        return 2 * m + s, 0, 0
    n = m.bit_length()
    return 2 * (4 + 4 * (n - 3) + ((m >> (n - 3)) & 3)) + s, n - 3, m & ((1 << (n - 3)) - 1)


def et_raw_bits(sym, ctx, dtype, Z=0):
    """§3: how many raw bits follow symbol sym in context ctx (context 0: R = mant - Z - 2)."""
    k = sym >> 1
    return MANT[dtype] - Z - 2 if ctx == 0 else 0 if k < 4 else (k - 4) // 4


def et_join(sym, ctx, raw, dtype, Z=0):
    """§3, the decoder's side: the residual (a W-bit pattern) from its symbol and raw bits."""
    W, s, k = et_width(dtype, Z), sym & 1, sym >> 1
    if ctx == 0:
        m = (k << (MANT[dtype] - Z - 2)) | raw
    elif k < 4:
        m = k
    else:
        n = 3 + (k - 4) // 4
        m = ((4 + (k - 4) % 4) << (n - 3)) | raw
    return (-(m + 1) if s else m) & ((1 << W) - 1)


def et_normalise(counts, P):
    """Frequencies summing to 2^P, each present symbol at least 1 (any such normalisation is valid, §4):
    proportional, rounded down, the shortfall given to the most frequent symbol, an excess (from the
    symbols raised to 1) taken one at a time from the most frequent ones."""
    M, total = 1 << P, sum(counts.values())
    assert 1 <= len(counts) <= M
    f = {s: max(1, c * M // total) for s, c in counts.items()}
    order = sorted(counts, key=lambda s: (-counts[s], s))
    f[order[0]] += max(0, M - sum(f.values()))
    while sum(f.values()) > M:
        for s in order:
            if f[s] > 1 and sum(f.values()) > M:
                f[s] -= 1
    assert sum(f.values()) == M and min(f.values()) >= 1
    return sorted(f.items())


def et_cum(tables):
    """Per context {sym: (f, cum)} of tables [(sym, f)] (what et_parse_tables returns, unchecked)."""
    out = []
    for entries in tables:
        t, cum = {}, 0
        for sym, f in entries:
            t[sym] = (f, cum)
            cum += f
        out.append(t)
    return out


def et_table_bytes(tables, C, P, reserved=0, uvar=None, Z=0):
    """§4: u8 C, u8 P, u8 Z (the trim, §2), u8 reserved (2.8: S, the context shift), then per context n and
    n x (gap, f - 1) as uvar (LEB128). tables: per context [(sym, f)] in symbol order, written as given (bad
    vectors give wrong ones); uvar(value) may write a value its own way."""
    uv = uvar or leb128
    out = struct.pack("<BBBB", C, P, Z, reserved)
    for entries in tables:
        out += uv(len(entries))
        prev = -1
        for sym, f in entries:
            out += uv(sym - prev - 1) + uv(f - 1)
            prev = sym
    return out


def et_uvar(b, pos):
    """§4: an unsigned LEB128 of at most 4 bytes."""
    v = 0
    for i in range(4):
        if pos + i >= len(b):
            raise Invalid("uvar past the end of the tables")
        v |= (b[pos + i] & 0x7F) << (7 * i)
        if not b[pos + i] & 0x80:
            return v, pos + i + 1
    raise Invalid("uvar of more than 4 bytes")


def et_parse_tables(b, dtype):
    """§4, every rule: returns (C, P, Z, S, [per context {sym: (f, cum)} in symbol order, {} when unused]). S: the
    fourth byte, reserved (0) in 2.7, the context shift in 2.8 (REFINE.md §3: 0 .. 24)."""
    if len(b) < 4:
        raise Invalid("tables shorter than their head")
    C, P, Z, S = struct.unpack_from("<BBBB", b)
    if not 1 <= C <= 32:
        raise Invalid("context count C not in 1 .. 32")
    if not 8 <= P <= 15:
        raise Invalid("probability bits P not in 8 .. 15")
    if Z > MANT[dtype] - 2:
        raise Invalid("trim Z not in 0 .. mant - 2")
    if S > 24:
        raise Invalid("context shift S not in 0 .. 24")
    return (C, P, Z, S, et_parse_contexts(b, 4, C, P, lambda c: et_alphabet(c, dtype, Z)))


def et_parse_contexts(b, pos, C, P, alphabet):
    """§4: the C context lists from b[pos:] to its end (nothing may follow), each context c's symbols below
    alphabet(c); [per context {sym: (f, cum)}, {} when unused]."""
    tables = []
    for c in range(C):
        A = alphabet(c)
        n, pos = et_uvar(b, pos)
        if n > A:
            raise Invalid("more symbols than the alphabet")
        sym, t, cum = -1, {}, 0
        for _ in range(n):
            gap, pos = et_uvar(b, pos)
            fm1, pos = et_uvar(b, pos)
            sym += 1 + gap
            if sym >= A:
                raise Invalid("symbol beyond the alphabet")
            t[sym] = (fm1 + 1, cum)
            cum += fm1 + 1
        if n and cum != 1 << P:
            raise Invalid("frequencies do not sum to 2^P")
        tables.append(t)
    if pos != len(b):
        raise Invalid("bytes after the last context")
    return tables


def et_encode_tile(elems, e, tables, P, start=(1 << 16,) * 4):
    """§5 mode 1, encoded as §6 says: elems [(ctx, sym, r, raw)] in row-major order, element i on state
    i mod 4; e: the step bytes of the tile's rows (the payload carries them after its head); each state starts
    at 2^16 (start may lie) and the elements are walked backwards, a state's low 16 bits emitted when
    x >= f << (32 - P) before coding a symbol of frequency f into x. The decoder reads the words forwards, so
    the stream holds them in the reverse of their emission."""
    x, words = list(start), []
    for i in range(len(elems) - 1, -1, -1):
        ctx, sym, _, _ = elems[i]
        f, cum = tables[ctx][sym]
        j = i & 3
        if x[j] >= f << (32 - P):
            words.append(x[j] & 0xFFFF)
            x[j] >>= 16
        x[j] = ((x[j] // f) << P) + x[j] % f + cum
        assert 1 << 16 <= x[j] < 1 << 32
    ans = struct.pack("<4I", *x) + b"".join(struct.pack("<H", w) for w in reversed(words))
    bits = Bits()
    for _, _, r, raw in elems:
        bits.put(raw, r)
    return b"\x01\x00" + struct.pack("<HI", 0, len(ans)) + bytes(e) + ans + bits.bytes()


def et_decode_tile(p, ys, cols, B, tables, P, dtype, Z=0, S=0, refine=False):
    """§5, every rule: the residuals (W-bit patterns, W = the dtype's width less the trim Z) of the tile whose
    elements have the level-0 bits ys (the dtype's, uncut; row-major, cols a row; B the record's base exponent),
    with the tables (C - 1 + 1 of them, {} when unused). Mode 0 consults neither the tables nor the contexts
    (each residual in an item of the dtype's width, below 2^W); mode 1 takes each element's context from its y
    and the step byte of its row in the payload's e (§3, §5), E = B + (e >> 4) - S (2.8: S, the tables' shift).
    refine: a refinement level's codes (REFINE.md §2-§3; 16-bit patterns, every context split as EXACT_TOP.md
    §3's contexts >= 1 with W = 16; mode 0: u8 0, the rows' step bytes, the codes)."""
    W, isz, n, C = et_width(dtype, Z), DTYPES[dtype][1] // 8, len(ys), len(tables)
    rows = n // cols
    assert rows * cols == n
    if not p:
        raise Invalid("empty payload")
    if p[0] == 0 and refine:
        if len(p) != 1 + rows + 2 * n:
            raise Invalid("refinement mode 0 payload not 1 + rows + 2 x elements")
        return [int.from_bytes(p[1 + rows + 2 * i:3 + rows + 2 * i], "little") for i in range(n)]
    if p[0] == 0:
        if len(p) != 1 + n * isz:
            raise Invalid("mode 0 payload not 1 + the raw size")
        out = [int.from_bytes(p[1 + i * isz:1 + (i + 1) * isz], "little") for i in range(n)]
        if max(out) >> W:
            raise Invalid("mode 0: a residual not below 2^W")
        return out
    if p[0] != 1:
        raise Invalid("mode not 0 or 1")
    if len(p) < 8:
        raise Invalid("mode 1 head past the payload")
    r8, r16, ans = struct.unpack_from("<BHI", p, 1)
    if r8 or r16:
        raise Invalid("mode 1: reserved field not zero")
    if len(p) < 8 + rows:
        raise Invalid("the rows' step bytes past the payload")
    e = p[8:8 + rows]
    ctxs = [min(et_context(ys[i], B + (e[i // cols] >> 4) - S, dtype), C - 1) for i in range(n)]
    if ans % 2 or ans < 16:
        raise Invalid("ans_bytes odd or below 16")
    if 8 + rows + ans > len(p):
        raise Invalid("ans_bytes beyond the payload")
    x = list(struct.unpack_from("<4I", p, 8 + rows))
    if min(x) < 1 << 16:
        raise Invalid("a state below 2^16")
    pos, end, M, syms = 8 + rows + 16, 8 + rows + ans, 1 << P, []
    for i, ctx in enumerate(ctxs):
        t, j = tables[ctx], i & 3
        if not t:
            raise Invalid("an element in an unused context")
        slot = x[j] & (M - 1)
        sym = next(s for s, (f, cum) in t.items() if cum <= slot < cum + f)
        f, cum = t[sym]
        x[j] = f * (x[j] >> P) + slot - cum
        if x[j] < 1 << 16:
            if pos + 2 > end:
                raise Invalid("a word missing from the rANS stream")
            x[j] = (x[j] << 16) | struct.unpack_from("<H", p, pos)[0]
            pos += 2
        syms.append(sym)
    if pos != end:
        raise Invalid("words left in the rANS stream")
    if x != [1 << 16] * 4:
        raise Invalid("a final state not 2^16")
    # REFINE.md §2: a refinement code is split as contexts >= 1 split 16-bit patterns, whatever its context
    sc, sdt, sz = (lambda c: 1, "BF16", 0) if refine else (lambda c: c, dtype, Z)
    rs = [et_raw_bits(s, sc(c), sdt, sz) for s, c in zip(syms, ctxs)]
    if len(p) - end != (sum(rs) + 7) // 8:
        raise Invalid("raw-bit stream not ceil(total bits / 8) bytes")
    br = BitReader(p, end)
    out = [et_join(s, sc(c), br.get(r), sdt, sz) for s, c, r in zip(syms, ctxs, rs)]
    br.end()  # non-zero padding bits
    return out


def et_must_fail(t, why, tile=None, tables=None):
    """The exact-top tensor t (tables as its part 2 holds them unless given) must be refused for the reason
    why: its tables, or a tile's payload (tile: its number; all tiles when None)."""
    try:
        C, P, Z, S, tabs = et_parse_tables(t.parts[2].data if tables is None else tables, t.dtype)
        for i, p in enumerate(t.parts[3].tile_stored):
            if tile is None or i == tile:
                et_decode_tile(p, t.et_y[i], t.et_cols, t.et_B, tabs, P, t.dtype, Z, S)
    except Invalid as e:
        assert why in str(e), (why, str(e))
        return
    raise AssertionError("accepted: " + why)


def et_bits(dtype, vals):
    """Bit patterns of dtype nearest the float64 values vals (via binary32; Inf past the range)."""
    with np.errstate(over="ignore"):
        f32 = [f32_bits(np.float32(v)) for v in vals]
    return [convert(b, dtype) for b in f32]


def et_value(b, dtype):
    return float(np.array([widen(b, dtype)], dtype=np.uint32).view(np.float32)[0])


def exact_top(t, orig, C=None, P=EXACT_P, tables_codec=0, tables_frame=zraw, mode0=(), start=(1 << 16,) * 4,
              count_mode0=True, keep_mode1=False, Z=0, S=0):
    """Gives the qrow tensor t (from qrow()) an exact top layer restoring the original bits orig (row-major
    bit patterns of the dtype): parts 2 and 3 at level 1, level 1's XXH3-64 that of orig, and orig as what unpack writes
    (t.level0: the bytes at level 0). C: the tables' context count (default: the highest context used + 1, at
    most 32), P: their probability bits; tables_codec 0 or 1 (zstd, tables_frame); mode0: tiles stored in mode
    0 (others too where mode 1 is not smaller, as §6's writer does); count_mode0 False: the tables count only
    the other tiles' elements (any tables are valid; mode 0 consults none, §5), so a mode-0 tile may hold
    elements in unused contexts and symbols no table has; keep_mode1: every other tile in mode 1 even where
    it is not smaller (§6 is the writer's choice); start: the rANS states' start (bad vectors). Z: the tables'
    trim (§2, §4): every original has its low Z bits zero, and the residuals d are W-bit patterns (W = the
    dtype's width less Z) taking y >> Z (y: the level-0 bits) to w >> Z; the contexts still come from y uncut
    (§3); each residual is stored in an item of the dtype's width (§1, §5).
    t.et_ctx, t.et_d, t.et_y: each tile's unclamped contexts, residuals and level-0 bits (the dtype's, uncut),
    for the bad vectors. 2.8 (REFINE.md §1, §3): over a tensor with refinement levels (refine()), "level 0" is
    the level below (t.bits, its top), the layer is level R + 1, and S (the tables' fourth byte) shifts the
    contexts' E = B + (e >> 4) - S."""
    dtype, W, isz = t.dtype, et_width(t.dtype, Z), DTYPES[t.dtype][1] // 8
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    e, B = t.parts[0].data, struct.unpack("<h", t.params)[0]
    y, orig = [int(b) for b in t.bits], [int(w) for w in orig]
    assert len(orig) == len(y) and all(0 <= w < 1 << (8 * isz) for w in orig)
    assert all(w & ((1 << Z) - 1) == 0 for w in orig), "an original with a low bit set under the trim Z"
    d = [et_residual(w >> Z, yy >> Z, W) for w, yy in zip(orig, y)]
    assert all(et_apply(yy >> Z, dd, W) << Z == w for yy, dd, w in zip(y, d, orig))
    c = [et_context(y[i], B + (e[i // cols] >> 4) - S, dtype) for i in range(rows * cols)]  # §3: from y and E
    C = min(32, max(c) + 1) if C is None else C
    ctx = [min(x, C - 1) for x in c]
    split = [et_split(dd, cc, dtype, Z) for dd, cc in zip(d, ctx)]
    assert all(et_join(s, cc, raw, dtype, Z) == dd for (s, _, raw), cc, dd in zip(split, ctx, d))
    tiles = -(-rows // t.tile_rows)
    span = [(i * t.tile_rows * cols, min(rows, (i + 1) * t.tile_rows) * cols) for i in range(tiles)]
    hist = [{} for _ in range(C)]
    for i, (a, b) in enumerate(span):
        if count_mode0 or i not in mode0:
            for cc, (s, _, _) in zip(ctx[a:b], split[a:b]):
                hist[cc][s] = hist[cc].get(s, 0) + 1
    tables = [et_normalise(h, P) if h else [] for h in hist]  # a context no element uses: n = 0
    tb = et_table_bytes(tables, C, P, reserved=S, Z=Z)
    parsed = et_cum(tables)
    if 8 <= P <= 15:  # (bad vectors code tiles with a P out of range)
        assert et_parse_tables(tb, dtype) == (C, P, Z, S, parsed)
    payloads, t.et_ctx, t.et_d, t.et_y = [], [], [], []
    for i, (a, b) in enumerate(span):
        raw = b"".join(dd.to_bytes(isz, "little") for dd in d[a:b])
        if i in mode0:
            p = b"\x00" + raw
        else:
            p = et_encode_tile([(cc,) + sp for cc, sp in zip(ctx[a:b], split[a:b])], e[a // cols:b // cols], parsed, P,
                               start)
            if len(p) >= len(raw) and not keep_mode1:  # §6: not smaller than the raw residuals: mode 0
                p = b"\x00" + raw
        assert len(p) <= bound(len(raw))
        if start == (1 << 16,) * 4:
            assert et_decode_tile(p, y[a:b], cols, B, parsed, P, dtype, Z, S) == d[a:b]
        payloads.append(p)
        t.et_ctx.append(c[a:b])
        t.et_d.append(d[a:b])
        t.et_y.append(y[a:b])
    top = len(t.levels)  # the layer's level: 1, or R + 1 over R refinement levels (2.8)
    res = Part(EXACT_TOP, PER_ELEMENT, "U16" if isz == 2 else "U32",
               b"".join(dd.to_bytes(isz, "little") for dd in d), codec=EXACT_CODEC, level=top)
    res.tile_stored = payloads
    t.parts += [Part(EXACT_TOP, INLINE, "U8", tb, codec=tables_codec, level=top, frame=tables_frame), res]
    t.part_count = len(t.parts)
    t.level0, t.recon = t.recon, dtype_values(orig, dtype)
    if hasattr(t, "level_bytes"):  # refine(): the bytes at every level
        t.level_bytes.append(t.recon)
    # informative error figures of level 0 against the finite originals; level 1 is exact
    pairs = [(et_value(w, dtype), et_value(yy, dtype)) for w, yy in zip(orig, y)]
    pairs = [(a, b) for a, b in pairs if math.isfinite(a)]
    err = [abs(a - b) for a, b in pairs]
    s2 = sum(a * a for a, _ in pairs)
    rel = math.sqrt(sum(x * x for x in err) / s2) if s2 else 0.0
    fig = [x if math.isfinite(x) else 3e38 for x in (rel, max(err, default=0.0))]
    t.levels = t.levels[:-1] + [(H(t.level0), min(fig[0], 3e38), min(fig[1], 3e38)), (H(t.recon), 0.0, 0.0)]
    t.et_C, t.et_P, t.et_tables, t.et_mode = C, P, tables, [p[0] for p in payloads]
    t.et_split, t.et_B, t.et_cols, t.et_parsed, t.et_Z, t.et_S = split, B, cols, parsed, Z, S
    return t


def et_codes(rng, n, top, zero=6):
    """n signed codes: 1 in `zero` is 0, the others of random sign and a magnitude log-uniform in 1 .. top
    (so |q| x (16 + (e AND 15)) spans many bit lengths: many contexts)."""
    out = []
    for _ in range(n):
        if rng(16) % zero == 0:
            out.append(0)
            continue
        m = min(top, max(1, int(round(2.0 ** (rng(24) / 2 ** 24 * math.log2(top))))))
        out.append(-m if rng(1) else m)
    return out


def et_originals(t, rng, specials=None):
    """Invented originals of the qrow tensor t: each element's level-0 value moved by up to half its row's step
    (rounded to the dtype; a code of 0 gives a small value of either sign), then specials {element: bits}."""
    cols, B = math.prod(t.shape[1:]), struct.unpack("<h", t.params)[0]
    e = t.parts[0].data
    vals = [et_value(int(y), t.dtype) + (rng(20) / 2 ** 20 - 0.5) * float(step_of(B, e[i // cols]))
            for i, y in enumerate(t.bits)]
    out = et_bits(t.dtype, vals)
    for i, b in (specials or {}).items():
        out[i] = b
    return out


def et_codes_at(q, at):
    """q with the codes {element: code} set."""
    q = list(q)
    for i, v in at.items():
        q[i] = v
    return q


def et_f16_kinds(t):
    """Of the F16 exact-top tensor t's level 0: (the contexts of +Inf, of -Inf, the bit lengths of its subnormals'
    mantissas, {(y, q)} of its +-0 values y at non-zero codes q)."""
    ys, cs = sum(t.et_y, []), sum(t.et_ctx, [])
    isz = DTYPES[t.parts[1].item][1] // 8
    q = [unzigzag(int.from_bytes(t.parts[1].data[i * isz:(i + 1) * isz], "little")) for i in range(len(ys))]
    return ({c for y, c in zip(ys, cs) if y == 0x7C00}, {c for y, c in zip(ys, cs) if y == 0xFC00},
            {(y & 0x3FF).bit_length() for y in ys if y & 0x7C00 == 0 and y & 0x3FF},
            {(y, x) for y, x in zip(ys, q) if y & 0x7FFF == 0 and x})


def exact_top_vectors(d):
    """lossy_exact_top (2.7): an exact F32 norm; a: BF16 [6, 40] with an exact top, 3 tiles of 2 rows (tile 1
    in mode 0, its elements not counted in the tables: symbols no table has and an unused context, which mode 0
    never looks up, §5), U16 codes, tables codec 0 with C = 32 (contexts 0 .. 31 used, 32 clamped to 31), symbols
    104 .. 111 in contexts >= 1; a plain qrow tensor (its top is level 0); b: F16 [4, 24] with an exact top, 2
    tiles, U16 codes, tables zstd (an inline part with a codec's payload, 2.3) with unused contexts (n = 0) below
    C - 1, B = -27: level-0 subnormals of 1, 2 .. 10 bits and level-0 +0 and -0 at non-zero codes (context 0);
    c: F32 [5, 16] with an exact top (U32 residuals), 2 tiles, U8 codes, C = 6 (contexts 6 .. 16 clamped to 5).
    The originals hold +-0, subnormals, +-Inf, NaNs with payloads, the largest and smallest values, at level-0
    values of 0 (context 0: the residual is the original's bits, or counted down from ord(-0)) and at non-zero
    ones (far from the level-0 value: raw bits). Unpacked: the originals (.expected); at level 0: each qrow
    reconstruction (.level0.expected). lossy_exact_top_wide: an F16 tensor whose level 0 overflows to +-Inf,
    and an F32 one, with symbols at the top of the alphabet of contexts >= 1 (below)."""
    rng = Rng(0xE7AC7)
    norm = Exact("norm.weight", "F32", [6], np.array([1, -0.5, 2.5, 0, -0.0, 3e-3], dtype="<f4").tobytes())
    # a: rows 0 and 4 fine steps (values ~2^-20 x q), row 5 coarse (E = -5: |y| up to ~1600, so an Inf or a NaN
    # at a large code is within 2^14 representable values); rows 3 and 5 reach context 32.
    ca, ea = 40, [0x05, 0x17, 0x2A, 0x3F, 0x00, 0xF9]
    qa = et_codes(rng, 6 * ca, 32767)
    zero_a = {3: 0x0000, 17: 0x8000, 29: 0x0001, 44: 0x807F, 58: 0x0080, 71: 0x7F80, 83: 0xFF80, 99: 0x7FC0,
              105: 0x7F81, 126: 0xFFFF, 140: 0xFFC1, 151: 0x7F7F, 167: 0xFF7F, 183: 0x0100, 199: 0x3F80, 238: 0xC2F7}
    big_a = {201: 32767, 202: -32768, 203: 30000, 204: -29000, 205: 26000, 206: -31000, 130: 32767, 131: -32768}
    qa = et_codes_at(et_codes_at(qa, {i: 0 for i in zero_a}), big_a)
    qa = et_codes_at(qa, {5: 20000, 6: 12, 7: 300, 8: 1, 9: 1, 10: 50, 11: -60})  # row 0, for the far values below
    a = qrow("a.weight", "BF16", [6, 5, 8], -20, ea, qa, 2, code_item="U16")
    far_a = {201: 0x7F80, 203: 0x7FA5, 202: 0xFF80, 204: 0xFFF0, 206: 0xFFFF,  # +-Inf, NaNs near |y| ~ 1000
             5: int(a.bits[5]) + 30 * 128, 6: int(a.bits[6]) - 40 * 128,  # 2^30 x y and 2^-40 x y (an octave: 128)
             7: 0x0000, 8: 0x8000, 9: 0x0003,  # +0, -0 and a subnormal at codes 300, 1, 1 (y ~ 2^-20)
             10: int(a.bits[10]) ^ 0x8000, 11: 0x7FC0}  # a sign flip and a NaN at y ~ 2^-14: symbols 104 .. 111
    oa = et_originals(a, rng, {**zero_a, **far_a})
    exact_top(a, oa, C=32, mode0=(1,), count_mode0=False)
    # b: F16, B = -27; row 0 (step 2^-27) rounds |q| <= 4 to +-0 (4: a tie, to even), 5 .. 11 to 2^-24 (a
    # subnormal of one bit: t = 0), larger to wider subnormals (12: a tie, to 2 x 2^-24; up to 2^-15 .. 2^-14,
    # ten bits); row 1 (E = -26) subnormals and normals; rows 2 and 3 (E = -19, -12) normals.
    cb, eb = 24, [0x00, 0x1C, 0x83, 0xF0]
    qb = et_codes(rng, 4 * cb, 32767)
    zero_b = {1: 0x0000, 10: 0x8000, 20: 0x0001, 30: 0x83FF, 40: 0x7C00, 50: 0xFC00, 60: 0x7E00, 70: 0x7C01,
              80: 0xFFFF, 90: 0x7BFF, 93: 0x0400}
    qb = et_codes_at(et_codes_at(qb, {i: 0 for i in zero_b}), {2: 3000, 3: -77, 4: 5, 72: 30000, 73: -31000,
                                                                 74: 28000, 75: -32768})
    qb = et_codes_at(qb, {5: 1, 6: -1, 7: 4, 8: -4, 9: 12, 11: -11, 12: 6000, 13: -7, 14: 300})
    b = qrow("b.weight", "F16", [4, 24], -27, eb, qb, 2, code_item="U16")
    far_b = {2: int(b.bits[2]) ^ 0x8000, 3: int(b.bits[3]) ^ 0x8000, 4: 0x8001,  # sign flips, a -subnormal
             5: 0x0003, 6: 0x0000, 7: 0x8002, 8: 0x7C00,  # at level-0 +0, -0, +0, -0 of codes 1, -1, 4, -4
             72: 0x7C00, 73: 0xFE3A, 74: 0x7D23, 75: 0xFC00}  # Inf, NaNs (payloads), -Inf near |y| ~ 7
    ob = et_originals(b, rng, {**zero_b, **far_b})
    exact_top(b, ob, tables_codec=1)
    # c: F32, U8 codes, C = 6.
    cc, ec = 16, [0x10, 0x3A, 0x00, 0x7F, 0x25]
    qc = et_codes(rng, 5 * cc, 127)
    zero_c = {0: 0x00000000, 9: 0x80000000, 18: 0x00000001, 27: 0x807FFFFF, 36: 0x7F800000, 45: 0xFF800000,
              54: 0x7FC00001, 63: 0xFFBADBAD, 72: 0x7F7FFFFF, 79: 0x00800000}
    qc = et_codes_at(et_codes_at(qc, {i: 0 for i in zero_c}), {1: 127, 2: -128, 3: 1, 4: 2})
    c = qrow("c.weight", "F32", [5, 16], -30, ec, qc, 3)
    far_c = {1: int(c.bits[1]) + (10 << 23), 2: int(c.bits[2]) - (12 << 23), 3: 0x00000005, 4: 0x7F7FFFFF - (1 << 30)}
    oc = et_originals(c, rng, {**zero_c, **far_c})
    exact_top(c, oc, C=6)
    plain = qrow("plain.weight", "BF16", [2, 8], -12, [0x31, 0x07], [((i * 29) % 61) - 30 for i in range(16)], 2)
    ts = [norm, a, plain, b, c]
    # what the vector holds, as the docstring says
    assert a.et_mode == [1, 0, 1] and b.et_mode == [1, 1] and 1 in c.et_mode and b.parts[2].codec == 1
    assert set(min(x, 31) for tile in a.et_ctx for x in tile) == set(range(32)) and 32 in sum(a.et_ctx, [])
    assert max(sum(c.et_ctx, [])) > c.et_C - 1 == 5 and [] in b.et_tables[:-1]
    # a's tile 1 (mode 0) holds elements the tables cannot code (an unused context, or a symbol its table lacks)
    assert any(not a.et_parsed[min(x, 31)] or s not in a.et_parsed[min(x, 31)]
               for x, (s, _, _) in zip(a.et_ctx[1], a.et_split[2 * ca:4 * ca]))
    for t in (a, b, c):
        assert any(r for _, r, _ in t.et_split) and max(s for s, _, _ in t.et_split) >= 2 * 4
        assert t.recon != t.level0 and len(t.parts[3].tile_stored) == -(-t.shape[0] // t.tile_rows)
    # a: symbols at the top of the alphabet of contexts >= 1 (104 .. 111)
    assert any(s >= 104 for (s, _, _), x in zip(a.et_split, sum(a.et_ctx, [])) if x)
    # b: level-0 subnormals of 1, 2 and 10 bits, and level-0 +0 and -0 of non-zero codes (context 0)
    _, _, bsub, bzero = et_f16_kinds(b)
    assert {1, 2, 10} <= bsub and {y for y, _ in bzero} == {0x0000, 0x8000}, (bsub, bzero)
    assert all(c == 0 for y, c in zip(sum(b.et_y, []), sum(b.et_ctx, [])) if y & 0x7FFF == 0)
    fb, plen = st_file(ts)
    wcz = container2([(0, "model.safetensors", fb, plen, ts)], minor=7)
    head = struct.unpack("<IIIBBHII", zread_manifest(wcz)[:24])
    # level 0: norm, a's 3 tiles x (scales, codes), plain's 1, b's 2 and c's 2; level 1 (from chunk 17): a tile
    # of residuals each (the tables are inline)
    assert head == (1, 5, 1 + 3 * 2 + 2 + 2 * 2 + 2 * 2 + 3 + 2 + 2, 2, 0, 0, 0, 17)
    put(d, "lossy_exact_top.wcz", wcz)
    put(d, "lossy_exact_top.expected", fb)
    lv0 = fb[:plen] + b"".join(getattr(t, "level0", None) or t.out() for t in ts)
    assert len(lv0) == len(fb)
    put(d, "lossy_exact_top.level0.expected", lv0)
    # lossy_exact_top_tw: the same tensors with their tables as a tensor-wide part (EXACT_TOP.md §1, the writer's
    # layout: a chunk at level 1, before the tensor's tile chunks there, so a reader of level 0 fetches none of
    # it): a's and c's raw (codec 0), b's zstd. Same bytes unpacked, at either level.
    for t in (a, b, c):
        t.parts[2].layout = TENSOR_WIDE
    tw = container2([(0, "model.safetensors", fb, plen, ts)], minor=7)
    head = struct.unpack("<IIIBBHII", zread_manifest(tw)[:24])
    assert head == (1, 5, 1 + 3 * 2 + 2 + 2 * 2 + 2 * 2 + 3 + 2 + 2 + 3, 2, 0, 0, 0, 17)  # three chunks more
    put(d, "lossy_exact_top_tw.wcz", tw)
    put(d, "lossy_exact_top_tw.expected", fb)
    put(d, "lossy_exact_top_tw.level0.expected", lv0)
    for t in (a, b, c):
        t.parts[2].layout = INLINE
    # lossy_exact_top_wide: residuals of 2^(W-2) and more in contexts >= 1, whose symbols are 104 .. 111 (16-bit)
    # and 232 .. 239 (F32), the top of §3's alphabet of contexts >= 1, 8 x (W - 2). w: F16, B = 1, whose level 0
    # overflows to +-Inf (QROW.md §3: past 65504, after rounding): row 0 (E = 1, step 2) from |q| = 32760 (65520,
    # a tie, to even: Inf; context 31), row 1 (E = 15) at every |q| >= 2 (context 3; |q| = 1: 2^15, context 1).
    # Originals at +-Inf: +-0 (the whole range away, symbol 111), 0.5 (105), 1.0 (103), 65504 and NaNs (1 away).
    qw = [32767, -32768, 32760, 32751, -32760, 100, -5000, 20000, -31000, 7, 0, 32000, -32767, 1, 0, 32764,
          1, -1, 2, -3, 0, 5, 300, -32768, 4, 1, -2, 9, 0, -1, 32767, 3]
    wb = qrow("w.weight", "F16", [2, 16], 1, [0x00, 0xE0], qw, 2, code_item="U16", f16_inf=True)
    wy = [int(x) for x in wb.bits]
    pinf = [i for i, y in enumerate(wy) if y == 0x7C00]
    ninf = [i for i, y in enumerate(wy) if y == 0xFC00]
    assert 0 in pinf and 1 in ninf and 3 not in pinf and 18 in pinf and 19 in ninf and wy[16] == 0x7800
    wbo = et_originals(wb, rng, {0: 0x0000, 1: 0x8000, 2: 0x7BFF, 4: 0xFC01, 18: 0x3800, 19: 0xBC00, 21: 0x7E00,
                                 22: 0x7C01, 23: 0xFBFF, 3: 0x7C00, 16: 0xF800})
    exact_top(wb, wbo)
    wp, wn, _, _ = et_f16_kinds(wb)
    assert wp == {31, 3} and wn == {31, 3} and 1 in wb.et_ctx[0], (wp, wn)
    wf = qrow("wf.weight", "F32", [2, 8], -20, [0x00, 0x12], [((i * 5) % 13) - 6 for i in range(16)], 1)
    wfo = et_originals(wf, rng, {0: int(wf.bits[0]) ^ 0x80000000, 9: 0x7F800000, 10: 0xFFC0FFEE})
    exact_top(wf, wfo, keep_mode1=True)  # tiles of 8 elements: mode 1 is larger than mode 0, but valid
    assert wb.et_mode == [1] and wf.et_mode == [1, 1]
    for t, lo in ((wb, 104), (wf, 232)):
        assert any(s >= lo for (s, _, _), x in zip(t.et_split, sum(t.et_ctx, [])) if x)
    assert any(s == 111 for (s, _, _), x in zip(wb.et_split, sum(wb.et_ctx, [])) if x)
    wts = [norm, wb, wf]
    wfb, wplen = st_file(wts)
    put(d, "lossy_exact_top_wide.wcz", container2([(0, "model.safetensors", wfb, wplen, wts)], minor=7))
    put(d, "lossy_exact_top_wide.expected", wfb)
    put(d, "lossy_exact_top_wide.level0.expected",
        wfb[:wplen] + b"".join(getattr(t, "level0", None) or t.out() for t in wts))
    exact_top_trim_vectors(d)
    put_bad(d, exact_top_bad())


def et_narrow(bits, dtype):
    """F32 bit patterns rounded to dtype (BF16 or F16, QROW.md §3's conversion) and widened back exactly: F32
    patterns whose low 16 (BF16) or 13 (F16) bits are zero."""
    return [widen(convert(b, dtype), dtype) for b in bits]


def exact_top_trim_vectors(d):
    """lossy_exact_top_trim (2.7): exact top layers whose tables have a trim Z (EXACT_TOP.md §2, §4): the
    residuals are taken on the patterns with the low Z bits cut (y >> Z to w >> Z, W = the dtype's width less
    Z, context 0's R = mant - Z - 2), the contexts still from the level-0 bits uncut (§3), every residual in an
    item of the dtype's width (§1, §5). The tables are tensor-wide chunks of level 1 (layout 2, the writer's).
    An exact F32 norm; f: F32 [4, 24] of F16 values (Z = 13; W = 19, R = 8; 2 tiles, U16 codes, tables raw):
    +-0, F16 subnormals upcast, 65504, +-Inf, NaNs whose payloads have their low 13 bits zero (quiet and
    signalling), at level-0 values of 0 and not; g: F32 [3, 16] of BF16 values (Z = 16; W = 16, R = 5; 2 tiles,
    tables zstd), with +-0, a BF16 subnormal, the largest BF16, -Inf and a NaN; h: BF16 [4, 16] whose values
    have at most 2 mantissa bits (Z = 5; W = 11, R = 0: context 0's symbol is the whole magnitude; 2 tiles,
    tile 1 in mode 0, holding residuals of both signs as 11-bit patterns in U16 items, tables zstd)."""
    rng = Rng(0x7E1A)
    norm = Exact("norm.weight", "F32", [5], np.array([0.5, -1, 3, 0, -0.0], dtype="<f4").tobytes())
    # f: row 0 (E = -30) and row 1 (E = -23) at the F16 subnormals (2^-24 .. 2^-14), rows 2 and 3 normal.
    cf, ef = 24, [0x00, 0x73, 0xE5, 0xFA]
    qf = et_codes(rng, 4 * cf, 4000)
    zero_f = {0: 0x00000000, 7: 0x80000000, 13: 0x33800000, 26: 0xB87FC000, 31: 0x7F800000, 44: 0xFF800000,
              50: 0x7FC00000, 62: 0x7F802000, 75: 0xFFFFE000, 83: 0x477FE000, 95: 0x38800000}
    qf = et_codes_at(et_codes_at(qf, {i: 0 for i in zero_f}), {1: 3, 2: -5, 3: 700, 48: 3000, 49: -2000, 51: 1,
                                                                 52: 2, 90: 4000, 91: -3999})
    f = qrow("f.weight", "F32", [4, cf], -30, ef, qf, 2, code_item="U16")
    far_f = {1: 0x80000000, 2: 0x00000000, 3: 0x33800000,  # +-0 and 2^-24 at small non-zero level-0 values
             48: 0x7F800000, 49: 0xFFA02000, 51: 0x7FFFE000, 52: 0xB3800000,  # Inf and NaNs far from level 0
             90: 0x477FE000, 91: 0xC77FE000}  # +-65504
    of = et_narrow(et_originals(f, rng), "F16")
    for i, b in {**zero_f, **far_f}.items():
        of[i] = b
    exact_top(f, of, Z=13)
    # g: rows of E = -14, 0, 9 (tiles of 2 rows: 2 tiles).
    cg, eg = 16, [0x14, 0xE0, 0xF7]
    qg = et_codes(rng, 3 * cg, 127)
    zero_g = {0: 0x00000000, 5: 0x80000000, 17: 0x00010000, 23: 0x7F7F0000, 34: 0xFF800000, 40: 0x7FC10000}
    qg = et_codes_at(et_codes_at(qg, {i: 0 for i in zero_g}), {1: 100, 2: -3, 33: 127})
    g = qrow("g.weight", "F32", [3, cg], -30, eg, qg, 2)
    og = et_narrow(et_originals(g, rng), "BF16")
    for i, b in {**zero_g, 1: 0xFF800000, 2: 0x80000000, 33: 0x7FA50000}.items():
        og[i] = b
    exact_top(g, og, Z=16, tables_codec=1)
    # h: BF16, originals with their low 5 bits cut (at most 2 mantissa bits); tile 1 in mode 0.
    ch, eh = 16, [0x30, 0x4C, 0x61, 0xB2]
    qh = et_codes(rng, 4 * ch, 127)
    zero_h = {0: 0x0000, 9: 0x8000, 20: 0x0020, 33: 0x7F80, 41: 0xFFC0, 47: 0x80E0, 58: 0x3FE0}
    qh = et_codes_at(qh, {i: 0 for i in zero_h})
    h = qrow("h.weight", "BF16", [4, ch], -20, eh, qh, 2)
    oh = [b & 0xFFE0 for b in et_originals(h, rng)]
    for i, b in {**zero_h, 35: 0xFF80, 36: 0x7FE0, 50: int(h.bits[50]) & 0xFFE0 ^ 0x8000}.items():
        oh[i] = b
    exact_top(h, oh, Z=5, mode0=(1,), tables_codec=1)
    ts = [norm, f, g, h]
    # what the vector holds, as the docstring says
    assert (f.et_Z, g.et_Z, h.et_Z) == (13, 16, 5) and h.et_mode == [1, 0] and 1 in f.et_mode and 1 in g.et_mode
    assert f.parts[3].item == g.parts[3].item == "U32" and h.parts[3].item == "U16"
    for t in (f, g, h):
        ys, cs = sum(t.et_y, []), sum(t.et_ctx, [])
        assert 0 in cs and any(c >= 1 for c in cs) and any(r for _, r, _ in t.et_split)
        assert t.recon != t.level0 and len(t.parts[3].tile_stored) == 2
        assert any(y & ((1 << t.et_Z) - 1) for y in ys)  # level-0 bits the cut drops (the contexts keep them)
        W = et_width(t.dtype, t.et_Z)
        assert all(x < 1 << W for x in sum(t.et_d, [])) and any(x >> (W - 1) for x in sum(t.et_d, []))
    fo = [int(x) for x in np.frombuffer(f.recon, dtype="<u4")]
    assert {0x00000000, 0x80000000, 0x7F800000, 0xFF800000} <= set(fo)
    assert any(0x33800000 <= x & 0x7FFFFFFF < 0x38800000 for x in fo)  # F16 subnormals, upcast
    assert {0x7FC00000, 0x7F802000, 0xFFFFE000} <= set(fo)  # NaNs, quiet and signalling
    hm0 = h.et_d[1]  # the mode-0 tile: residuals of both signs, as 11-bit patterns
    assert any(x >= 1 << 10 for x in hm0) and any(0 < x < 1 << 10 for x in hm0)
    for t in (f, g, h):
        t.parts[2].layout = TENSOR_WIDE
    fb, plen = st_file(ts)
    wcz = container2([(0, "model.safetensors", fb, plen, ts)], minor=7)
    head = struct.unpack("<IIIBBHII", zread_manifest(wcz)[:24])
    # level 0: norm, then (scales, codes) a tile: 2 + 2 + 2 tiles; level 1 (from chunk 13): per tensor its
    # tables, then its 2 tiles of residuals
    assert head == (1, 4, 1 + 3 * 2 * 2 + 3 * 3, 2, 0, 0, 0, 13), head
    put(d, "lossy_exact_top_trim.wcz", wcz)
    put(d, "lossy_exact_top_trim.expected", fb)
    lv0 = fb[:plen] + b"".join(getattr(t, "level0", None) or t.out() for t in ts)
    assert len(lv0) == len(fb)
    put(d, "lossy_exact_top_trim.level0.expected", lv0)


def exact_top_bad():
    """2.7 files every reader must reject, checksum-valid everywhere, each lying in one thing about the exact top
    layer of a qrow tensor (the manifest's last tensor, after an exact F32 one; the level hashes are the honest
    ones). *.corrupt: §1's record rules, seen when the manifest is decoded (§1: "when the manifest is decoded").
    *.codec: §4's tables (checked "when a tile of level 1 is decoded (Errc codec)") and §5's tile payloads (Errc
    codec). Each table and payload here fails et_parse_tables / et_decode_tile on its rule. A mode-1 payload is
    u8 1, u8 0, u16 0, u32 ans_bytes, u8 e[rows] (rows: the tile's, 2 here), the rANS stream, the raw bits."""
    rows, cols = 4, 32
    n = 2 * cols  # elements a tile

    def base(dtype="BF16", **kw):
        """An exact F32 tensor, then a qrow tensor of 2 tiles (U8 codes, raw) with an exact top (tables codec 0),
        every tile in mode 1."""
        rng = Rng(0xBAD7)
        q = [((i * 37) % 255) - 127 for i in range(rows * cols)]
        q[5] = q[12] = q[21] = q[30] = 0
        t = qrow("w.weight", dtype, [rows, cols], -20, [(0x13 * r) & 0xFF for r in range(rows)], q, 2)
        exact_top(t, et_originals(t, rng), **kw)
        assert t.et_mode == [1, 1]
        return t

    def one(t):
        return one_file([norm_exact(), t], minor=7)

    def tables(t, data, why):
        """t with its tables replaced by data (the tiles as they were), refused for the reason why."""
        t.parts[2].data, t.parts[2].items = data, len(data)
        et_must_fail(t, why)
        return one(t)

    def tile(t, f, why, i=0):
        """t with tile i's payload replaced by f(payload), refused for the reason why."""
        t.parts[3].tile_stored[i] = f(t.parts[3].tile_stored[i])
        et_must_fail(t, why, i)
        return one(t)

    def field(p, at, fmt, v):
        """Payload p with the field of struct format fmt at offset `at` set to v."""
        return p[:at] + struct.pack(fmt, v) + p[at + struct.calcsize(fmt):]

    def ans_bytes(p):
        return struct.unpack_from("<I", p, 4)[0]

    R = 2  # rows a tile: the e bytes after the 8-byte head; the rANS stream from 8 + R

    def extra(p, at, b):
        """p with bytes b inserted at offset at."""
        return p[:at] + b + p[at:]

    t0 = base()
    assert t0.tile_rows == R and all(len(y) == R * cols for y in t0.et_y)
    assert t0.parts[3].tile_stored[0][8:8 + R] == t0.parts[0].data[:R]  # tile 0's e bytes: rows 0 and 1's steps
    assert et_decode_tile(t0.parts[3].tile_stored[0], t0.et_y[0], cols, -20, et_cum(t0.et_tables), 12,
                          "BF16") == t0.et_d[0]
    C, tabs = t0.et_C, t0.et_tables
    rb = [sum(r for _, r, _ in t0.et_split[k * n:(k + 1) * n]) for k in range(2)]
    assert ans_bytes(t0.parts[3].tile_stored[0]) > 16  # tile 0's stream has words
    pad_tile = next(k for k in range(2) if rb[k] % 8)  # a tile whose raw bits end within a byte
    used0 = min(t0.et_ctx[0])  # a context tile 0 uses
    ctx1 = next(c for c in range(1, C) if tabs[c])
    out = {}

    # §1: codec 6 is valid for part 3 only; part 3 is codec 6, U16 for BF16/F16 and U32 for F32; part 2 is at
    # level 1, inline; 4 parts.
    t = base()
    t.parts[1].codec, t.parts[1].frame = EXACT_CODEC, lambda raw: b"\x00" + raw  # codes: a mode-0-like payload
    out["exact_top_codec6_codes.corrupt"] = one(t)
    t = base()
    t.parts[2].codec, t.parts[2].frame = EXACT_CODEC, lambda raw: b"\x00" + raw  # tables: stored_size, payload
    out["exact_top_codec6_tables.corrupt"] = one(t)
    t = qrow("w.weight", "BF16", [rows, cols], -20, [1, 2, 3, 4], [i % 33 - 16 for i in range(rows * cols)], 2, codes_codec=EXACT_CODEC,
             codes_frame=lambda raw: b"\x00" + raw)
    out["exact_top_codec6_plain_qrow.corrupt"] = one(t)  # a qrow tensor without an exact top, in a 2.7 file
    t = base("F32")
    res = t.parts[3]
    low = [x & 0xFFFF for x in sum(t.et_d, [])]
    res.item, res.data = "U16", b"".join(struct.pack("<H", x) for x in low)
    res.tile_stored = [b"\x00" + res.data[k * 2 * n:(k + 1) * 2 * n] for k in range(2)]  # mode 0 of the low halves
    out["exact_top_residuals_u16_f32.corrupt"] = one(t)
    t = base()
    t.parts[3].codec, t.parts[3].tile_stored = 1, None  # the residuals as zstd frames (codec 1)
    out["exact_top_residuals_zstd.corrupt"] = one(t)
    t = base()
    t.parts[2].level = 0  # the tables at level 0 (listed after the codes, levels still non-decreasing)
    out["exact_top_tables_level0.corrupt"] = one(t)
    t = base()
    t.parts[2].layout = PER_ROW  # the tables as a tiled part (a tensor-wide chunk or inline are the valid layouts)
    t.parts[2].items = rows
    out["exact_top_tables_per_row.corrupt"] = one(t)
    t = base()
    del t.parts[2]  # level_count 2, parts scales, codes, residuals
    t.part_count = 3
    out["exact_top_no_tables.corrupt"] = one(t)

    # §4 (codec): C, P, Z, reserved; frequencies, symbols, trailing bytes, uvar length.
    out["exact_top_tables_c0.codec"] = tables(base(), struct.pack("<BBH", 0, 12, 0), "context count")
    out["exact_top_tables_c33.codec"] = tables(base(), et_table_bytes(tabs + [[]] * (33 - C), 33, 12), "context count")
    out["exact_top_tables_p7.codec"] = tables(base(P=7), base(P=7).parts[2].data, "probability bits")  # tiles coded at 7
    out["exact_top_tables_p16.codec"] = tables(base(P=16), base(P=16).parts[2].data, "probability bits")
    # (2.7's reserved byte 3 = 1. In 2.8 that byte is the context shift S (REFINE.md §3), and 1 is valid: the tiles,
    # coded for S = 0, are decoded with every context of a non-zero element 2 higher (E one less), and tile 0's rANS
    # stream then ends in a state not 2^16 (§5): still Errc codec, no longer for the byte itself.)
    out["exact_top_tables_reserved.codec"] = tables(base(), et_table_bytes(tabs, C, 12, reserved=1), "final state")
    # §4: Z (byte 2) in 0 .. mant - 2: mant - 1 (BF16 6, F32 22) is out, the tiles as they were (coded for Z = 0)
    out["exact_top_tables_trim_bf16_6.codec"] = tables(base(), et_table_bytes(tabs, C, 12, Z=6), "trim Z")
    tf = base("F32")
    out["exact_top_tables_trim_f32_22.codec"] = tables(tf, et_table_bytes(tf.et_tables, tf.et_C, 12, Z=22), "trim Z")
    # Z = 1 (valid) in tables whose tiles are coded for Z = 0; tile 0 has elements in context 0, whose raw bits
    # are R = mant - Z - 2 = 4 with Z = 1, 5 as coded: its raw-bit stream is not the length it must be (§5)
    assert any(x == 0 for x in t0.et_ctx[0]) and all(s < 104 for (s, _, _), x in zip(t0.et_split, sum(t0.et_ctx, []))
                                                     if x)  # (symbols within the alphabet of W = 15)
    out["exact_top_tables_trim_lie_ctx0.codec"] = tables(base(), et_table_bytes(tabs, C, 12, Z=1),
                                                         "ceil(total bits / 8)")
    bump = [list(x) for x in tabs]
    bump[ctx1][0] = (bump[ctx1][0][0], bump[ctx1][0][1] + 1)  # 2^12 + 1
    out["exact_top_tables_sum.codec"] = tables(base(), et_table_bytes(bump, C, 12), "sum to 2^P")
    past0 = [list(x) for x in tabs]
    past0[0][-1] = (2048, past0[0][-1][1])  # context 0 of BF16: A0 = 2048
    out["exact_top_tables_symbol_ctx0.codec"] = tables(base(), et_table_bytes(past0, C, 12), "beyond the alphabet")
    past1 = [list(x) for x in tabs]
    past1[ctx1][-1] = (112, past1[ctx1][-1][1])  # 112: the alphabet of contexts >= 1 is 0 .. 111
    out["exact_top_tables_symbol_112.codec"] = tables(base(), et_table_bytes(past1, C, 12), "beyond the alphabet")
    out["exact_top_tables_trailing_byte.codec"] = tables(base(), et_table_bytes(tabs, C, 12) + b"\x00", "bytes after")
    first = [True]

    def uvar5(v):  # the first uvar (context 0's n) in 5 bytes: 4 continuation bytes, then 0
        if first[0]:
            first[0] = False
            return leb128(v, nbytes=5)
        return leb128(v)
    out["exact_top_tables_uvar_5_bytes.codec"] = tables(base(), et_table_bytes(tabs, C, 12, uvar=uvar5), "more than 4")
    unused = [list(x) for x in tabs]
    unused[used0] = []
    out["exact_top_tile_unused_context.codec"] = tables(base(), et_table_bytes(unused, C, 12), "unused context")

    # §5 (codec): a tile payload (tile 0 unless said).
    out["exact_top_tile_mode2.codec"] = tile(base(), lambda p: b"\x02" + p[1:], "mode not 0 or 1")
    out["exact_top_tile_reserved.codec"] = tile(base(), lambda p: field(p, 1, "<B", 1), "reserved")
    # ans_bytes odd: one byte more, a 0 inserted after the stream (the raw bits follow it unchanged)
    out["exact_top_tile_ans_odd.codec"] = tile(base(), lambda p: extra(field(p, 4, "<I", ans_bytes(p) + 1),
                                                                    8 + R + ans_bytes(p), b"\x00"), "odd or below 16")
    out["exact_top_tile_ans_below_16.codec"] = tile(base(), lambda p: field(p, 4, "<I", 14), "odd or below 16")
    # ans_bytes 2 past the payload's end (counted after the head and the e bytes)
    out["exact_top_tile_ans_past_payload.codec"] = tile(base(), lambda p: field(p, 4, "<I", len(p) - 8 - R + 2),
                                                        "beyond")
    out["exact_top_tile_state_low.codec"] = tile(base(), lambda p: field(p, 8 + R, "<I", 0xFFFF), "below 2^16")
    # the stream's last word cut out (ans_bytes 2 less): the decoder runs out of words
    out["exact_top_tile_word_missing.codec"] = tile(base(), lambda p: field(p[:8 + R + ans_bytes(p) - 2]
                                                                         + p[8 + R + ans_bytes(p):], 4, "<I",
                                                                         ans_bytes(p) - 2), "missing")
    out["exact_top_tile_word_left.codec"] = tile(base(), lambda p: extra(field(p, 4, "<I", ans_bytes(p) + 2),
                                                                      8 + R + ans_bytes(p), b"\x5A\xA5"), "words left")
    # §5: the payload cut inside its e bytes: 8 + 1 bytes of a tile of 2 rows
    out["exact_top_tile_e_short.codec"] = tile(base(), lambda p: p[:8 + R - 1], "step bytes past the payload")
    # §5, §4: tile 0's e byte of row 0 changed (part 0 keeps it): element 0's context (from its y and the
    # payload's e) is one the tables leave unused (n = 0); it is the tile's first element, so the decoder meets
    # it before anything else
    eb = next(x for x in range(256) if not t0.et_parsed[min(et_context(t0.et_y[0][0], -20 + (x >> 4), "BF16"), C - 1)])
    assert eb != t0.parts[0].data[0]
    out["exact_top_tile_e_unused_context.codec"] = tile(base(), lambda p: field(p, 8, "<B", eb), "unused context")
    # state 0 started at 2^16 + 1 by the encoder: every word read, x0 ends at 2^16 + 1
    t = base(start=((1 << 16) + 1,) + (1 << 16,) * 3)
    out["exact_top_tile_final_state.codec"] = tile(t, lambda p: p, "final state")
    out["exact_top_tile_raw_long.codec"] = tile(base(), lambda p: p + b"\x00", "ceil(total bits / 8)")
    out["exact_top_tile_padding_bits.codec"] = tile(base(), lambda p: p[:-1] + bytes([p[-1] | 0x80]), "padding", pad_tile)
    out["exact_top_tile_mode0_short.codec"] = tile(base(), lambda p: b"\x00" + b"".join(
        x.to_bytes(2, "little") for x in t0.et_d[0][:-1]), "mode 0")

    # §5: a mode-0 residual MUST be below 2^W, W the dtype's width less Z: BF16 of Z = 5 (W = 11) and F32 of Z =
    # 16 (W = 16), the originals with their low Z bits zero, tile 1 in mode 0; one residual there with bit W set
    # (it restores the right bits if bit W is dropped, so only the rule refuses it).
    for dtype, Z in (("BF16", 5), ("F32", 16)):
        rng = Rng(0xBAD7)
        q = [((i * 37) % 255) - 127 for i in range(rows * cols)]
        q[5] = q[12] = q[70] = 0
        t = qrow("w.weight", dtype, [rows, cols], -20, [(0x13 * r) & 0xFF for r in range(rows)], q, 2)
        exact_top(t, [b >> Z << Z for b in et_originals(t, rng)], Z=Z, mode0=(1,))
        assert t.et_mode == [1, 0] and t.et_Z == Z
        isz, k = DTYPES[dtype][1] // 8, 3
        assert t.et_d[1][k] < 1 << (DTYPES[dtype][1] - Z)
        out["exact_top_tile_mode0_trim_range_%s.codec" % dtype.lower()] = tile(
            t, lambda p: p[:1 + k * isz] + (t.et_d[1][k] | 1 << (DTYPES[dtype][1] - Z)).to_bytes(isz, "little")
            + p[1 + (k + 1) * isz:], "not below 2^W", 1)

    # §4.4: level 1's XXH3-64 (the original bytes) wrong; level 0's is right.
    t = base()
    t.levels[1] = (t.levels[1][0] ^ 1,) + t.levels[1][1:]
    out["level_xxh3_exact_top.checksum"] = one(t)
    # §2, §4.4: tables that say Z = 1 (valid for BF16) over tiles coded for Z = 0, everything else honest (level
    # 1's hash that of the originals). No element is in context 0 (no code is 0) and no symbol of contexts >= 1
    # reaches 104 (the alphabet of W = 15), so the tables and both mode-1 tiles pass every rule of §4 and §5 and
    # decode to the residuals coded (contexts >= 1 split the same way whatever W; §3); applied as §2 says with
    # Z = 1 they restore other bits than the originals': only level 1's XXH3-64 tells (checksum). (A reader that
    # ignores Z restores the originals and accepts the file.)
    rng = Rng(0xBAD7)
    q = [((i * 37) % 255) - 127 or 1 for i in range(rows * cols)]
    t = qrow("w.weight", "BF16", [rows, cols], -20, [(0x13 * r) & 0xFF for r in range(rows)], q, 2)
    orig = et_originals(t, rng)
    exact_top(t, orig)
    assert t.et_mode == [1, 1] and 0 not in sum(t.et_ctx, []) and max(s for s, _, _ in t.et_split) < 104
    lie = et_table_bytes(t.et_tables, t.et_C, 12, Z=1)
    C1, P1, Z1, S1, tabs1 = et_parse_tables(lie, "BF16")
    assert Z1 == 1 and t.levels[1][0] == H(dtype_values(orig, "BF16"))
    got = []
    for i, p in enumerate(t.parts[3].tile_stored):
        dd = et_decode_tile(p, t.et_y[i], cols, t.et_B, tabs1, P1, "BF16", Z1, S1)
        sgn = [x - (1 << W) if x >> (W - 1) else x for W, xs in ((15, dd), (16, t.et_d[i])) for x in xs]
        assert sgn[:len(dd)] == sgn[len(dd):]  # the same residuals (as integers), in 15 bits now
        got += [et_apply(y >> 1, x, 15) << 1 for y, x in zip(t.et_y[i], dd)]
    assert got != orig and H(dtype_values(got, "BF16")) != t.levels[1][0]
    t.parts[2].data, t.parts[2].items = lie, len(lie)
    out["level_xxh3_exact_top_trim_lie.checksum"] = one(t)
    return out


# Refinement levels of a qrow tensor (container 2.8, spec/REFINE.md), written from the spec: rf_value() is §2's
# arithmetic (binary32 with numpy's float32, each step checked against exact rationals rounded once by f32_round),
# rf_table_bytes() / rf_parse_tables() §3's tables, et_decode_tile(..., refine=True) the tiles (EXACT_TOP.md §5
# with §3's symbols of contexts >= 1, W = 16, and REFINE.md §3's mode 0), rf_decode() a whole tensor at a level
# (refinement levels, then an exact top layer), from its parts as this writer wrote them.

REFINE_P = 12  # P as EXACT_TOP.md §6's writer chooses; any 8 .. 15 is valid
REFINE_ALPHABET = 112  # REFINE.md §2: EXACT_TOP.md §3's alphabet of contexts >= 1 with W = 16, in every context


def f32_round(x):
    """The binary32 bits nearest the rational x, ties to even, subnormals included, +-Inf past the largest finite
    value (IEEE 754 round-to-nearest-even). x = 0 gives +0 (the caller decides a zero's sign)."""
    sign = 0x80000000 if x < 0 else 0
    a = abs(Fraction(x))
    if a == 0:
        return 0
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2^e <= a < 2^(e+1), after the fix below
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    lsb = max(e, -126) - 23  # the result's last place (subnormals: 2^-149)
    q = a / Fraction(2) ** lsb
    n = q.numerator // q.denominator
    rem = q - n
    n += 1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n & 1) else 0
    if n == 0:
        return sign
    if n == 1 << 24:  # a carry into the next binade
        n, lsb = n >> 1, lsb + 1
    if n < 1 << 23:  # subnormal (lsb = -149)
        return sign | n
    E = lsb + 23 + 127
    return sign | (0x7F800000 if E >= 255 else (E << 23) | (n - (1 << 23)))


def f32_frac(b):
    """The exact value of finite binary32 bits b."""
    v = float(np.array([b], dtype=np.uint32).view(np.float32)[0])
    assert math.isfinite(v)
    return Fraction(v)


def f32_of(b):
    return np.array([b], dtype=np.uint32).view(np.float32)[0]


def rf_finite(y, dtype):
    """y (bits of dtype) is finite: its exponent field is not all ones."""
    ex = {"BF16": 0x7F80, "F16": 0x7C00, "F32": 0x7F800000}[dtype]
    return y & ex != ex


def rf_step(B, e, M):
    """§2: s = step x binary32(1 / M), each operation one binary32 rounding (RNE)."""
    inv = np.float32(1) / np.float32(M)
    s = np.float32(step_of(B, e) * inv)
    assert f32_bits(inv) == f32_round(Fraction(1, M))
    assert f32_bits(s) == f32_round(f32_frac(f32_bits(step_of(B, e))) * f32_frac(f32_bits(inv)))
    return s


def rf_code(d, y, dtype):
    """§2: r, the 16-bit pattern d as two's complement, negated when y's sign bit is set."""
    r = d - (1 << 16) if d >> 15 else d
    return -r if y >> (DTYPES[dtype][1] - 1) else r


def rf_value(y, d, dtype, B, e, M, lenient=False):
    """§2: (the element's bits at the level in dtype (QROW.md §3), v's binary32 bits) from its bits y below, its
    code d and its row's step byte e; Invalid when y or v is not finite. v = f + binary32(r) x s, a multiplication
    then an addition, each rounded to nearest even (numpy's float32; checked against exact rationals). lenient:
    what a reader that skipped the rule would store instead of Invalid (bad vectors' level hashes)."""
    if not rf_finite(y, dtype):
        if not lenient:
            raise Invalid("a value below that is not finite")
        with np.errstate(invalid="ignore"):
            v = np.float32(f32_of(widen(y, dtype)) + np.float32(np.float32(rf_code(d, y, dtype)) * rf_step(B, e, M)))
        return convert(f32_bits(v), dtype), f32_bits(v)
    fb = widen(y, dtype)
    f, s, r = f32_of(fb), rf_step(B, e, M), rf_code(d, y, dtype)
    with np.errstate(over="ignore"):
        p = np.float32(np.float32(r) * s)
        v = np.float32(f + p)
    vb = f32_bits(v)
    exact_p = Fraction(r) * f32_frac(f32_bits(s))
    assert exact_p == 0 and f32_bits(p) & 0x7FFFFFFF == 0 or f32_bits(p) == f32_round(exact_p)
    exact_v = f32_frac(fb) + f32_frac(f32_bits(p))
    assert exact_v == 0 and vb & 0x7FFFFFFF == 0 or vb == f32_round(exact_v)
    if exact_v == 0:  # IEEE 754 §6.3: an exact zero sum is +0 (RNE) unless both addends are -0
        assert vb == (0x80000000 if fb == 0x80000000 and f32_bits(p) == 0x80000000 else 0)
    if not rf_finite(vb, "F32") and not lenient:
        raise Invalid("v not finite")
    return convert(vb, dtype), vb


def rf_table_bytes(tables, C, P, S, M, reserved=0, uvar=None):
    """§3: u8 C, u8 P, u8 reserved (0), u8 S, u32 M, then per context n and n x (gap, f - 1) as uvar, as EXACT_TOP.md
    §4 (written as given: bad vectors give wrong ones)."""
    b = et_table_bytes(tables, C, P, reserved=S, uvar=uvar, Z=reserved)
    return b[:4] + struct.pack("<I", M) + b[4:]


def rf_parse_tables(b):
    """§3, every rule: (C, P, S, M, [per context {sym: (f, cum)}, {} when unused])."""
    if len(b) < 8:
        raise Invalid("refinement tables shorter than their head")
    C, P, reserved, S, M = struct.unpack_from("<BBBBI", b)
    if not 1 <= C <= 32:
        raise Invalid("context count C not in 1 .. 32")
    if not 8 <= P <= 15:
        raise Invalid("probability bits P not in 8 .. 15")
    if reserved:
        raise Invalid("refinement tables: reserved field not zero")
    if S > 24:
        raise Invalid("context shift S not in 0 .. 24")
    if not 2 <= M <= 1 << 24:
        raise Invalid("step divisor M not in 2 .. 2^24")
    return C, P, S, M, et_parse_contexts(b, 8, C, P, lambda c: REFINE_ALPHABET)


def rf_split(d):
    """§2: the code d's (sym, r, raw): EXACT_TOP.md §3's split of contexts >= 1 on 16-bit patterns."""
    return et_split(d, 1, "BF16")


def rf_decode_tile(p, ys, cols, B, tables, P, S, dtype):
    """The codes and the rows' step bytes of a refinement tile's payload p (§3; EXACT_TOP.md §5)."""
    rows = len(ys) // cols
    d = et_decode_tile(p, ys, cols, B, tables, P, dtype, S=S, refine=True)
    return d, bytes(p[1:1 + rows] if p[0] == 0 else p[8:8 + rows])


def refine(t, M, target, S=0, C=None, P=REFINE_P, at=None, tables_layout=TENSOR_WIDE, tables_codec=1, mode0=(),
           count_mode0=True, keep_mode1=False, lenient=False):
    """Gives the qrow tensor t (qrow(), perhaps refined already) a refinement level k = len(t.levels) (REFINE.md):
    parts 2k (tables, role 4, U8: tables_layout TENSOR_WIDE or INLINE, tables_codec 0 or 1, zstd) and 2k + 1 (the
    codes, role 4, per element, U16, codec 6), level k's XXH3-64 that of the tensor at level k, and that as what
    unpack writes. target: a float per element (row-major) the codes approach as §5's writer does (r the nearest
    code to (x - f) / s, stored negated when the value below is negative, clamped to the int16 range); at:
    {element: the stored code as an int16} instead. C: the context count (default: the highest context used + 1,
    at most 32; contexts above C - 1 share its table); mode0: tiles in mode 0 (others too where mode 1 is not
    smaller, unless keep_mode1); count_mode0 False: the tables count only the other tiles' elements (mode 0
    consults no table, EXACT_TOP.md §5). t.bits becomes level k's bits; t.level_bytes every level's bytes; t.rf[k - 1]
    what the bad vectors and the checks below need. lenient: a value that is not finite (v, or y) is stored as a
    reader that skipped §2's rule would (bad vectors)."""
    dtype, isz = t.dtype, DTYPES[t.dtype][1] // 8
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    n = rows * cols
    e, B = t.parts[0].data, struct.unpack("<h", t.params)[0]
    k = len(t.levels)
    if not hasattr(t, "level_bytes"):
        t.level_bytes, t.rf = [t.recon], []
    assert len(t.level_bytes) == k and len(t.parts) == 2 * k
    y = [int(b) for b in t.bits]
    codes = []
    for i in range(n):
        if at and i in at:
            c = at[i]
        else:
            f, s = float(f32_of(widen(y[i], dtype))), float(rf_step(B, e[i // cols], M))
            r = round((target[i] - f) / s) if s else 0
            c = max(-32768, min(32767, -r if y[i] >> (8 * isz - 1) else r))
        assert -32768 <= c <= 32767
        codes.append(c & 0xFFFF)
    new, v32 = zip(*[rf_value(y[i], codes[i], dtype, B, e[i // cols], M, lenient) for i in range(n)])
    raw_ctx = [et_context(y[i], B + (e[i // cols] >> 4) - S, dtype) for i in range(n)]  # §2: E = B + (e >> 4) - S
    C = min(32, max(raw_ctx) + 1) if C is None else C
    ctx = [min(x, C - 1) for x in raw_ctx]
    split = [rf_split(d) for d in codes]
    assert all(et_join(sy, 1, raw, "BF16") == d for (sy, _, raw), d in zip(split, codes))
    tiles = -(-rows // t.tile_rows)
    span = [(i * t.tile_rows * cols, min(rows, (i + 1) * t.tile_rows) * cols) for i in range(tiles)]
    hist = [{} for _ in range(C)]
    for i, (a, b) in enumerate(span):
        if count_mode0 or i not in mode0:
            for cc, (sy, _, _) in zip(ctx[a:b], split[a:b]):
                hist[cc][sy] = hist[cc].get(sy, 0) + 1
    tables = [et_normalise(h, P) if h else [] for h in hist]
    tb = rf_table_bytes(tables, C, P, S, M)
    parsed = et_cum(tables)
    assert rf_parse_tables(tb) == (C, P, S, M, parsed)
    payloads = []
    for i, (a, b) in enumerate(span):
        er = bytes(e[a // cols:b // cols])
        raw = b"".join(d.to_bytes(2, "little") for d in codes[a:b])
        m0 = b"\x00" + er + raw  # §3: u8 0, the rows' step bytes, the codes
        if i in mode0:
            p = m0
        else:
            p = et_encode_tile([(cc,) + sp for cc, sp in zip(ctx[a:b], split[a:b])], er, parsed, P)
            if len(p) >= len(m0) and not keep_mode1:
                p = m0
        assert len(p) <= bound(len(raw))
        assert rf_decode_tile(p, y[a:b], cols, B, parsed, P, S, dtype) == (codes[a:b], er)
        payloads.append(p)
    res = Part(RESIDUAL, PER_ELEMENT, "U16", b"".join(d.to_bytes(2, "little") for d in codes), codec=EXACT_CODEC,
               level=k)
    res.tile_stored = payloads
    t.parts += [Part(RESIDUAL, tables_layout, "U8", tb, codec=tables_codec, level=k), res]
    t.part_count = len(t.parts)
    t.rf.append(dict(M=M, S=S, C=C, P=P, codes=codes, ctx=raw_ctx, split=split, y=y, v32=list(v32),
                     mode=[p[0] for p in payloads], tables=tables, parsed=parsed, span=span))
    t.bits = np.array(new, dtype=np.uint32 if isz == 4 else np.uint16)
    t.recon = dtype_values(new, dtype)
    t.level_bytes.append(t.recon)
    # informative error figures against the target (the finite values; an F16 Inf counts as 3e38)
    got = [et_value(b, dtype) for b in new]
    err = [abs(w - g) if math.isfinite(g) else 3e38 for w, g in zip(target, got)]
    s2 = sum(w * w for w in target)
    rel = math.sqrt(sum(min(x, 1e30) ** 2 for x in err) / s2) if s2 else 0.0
    t.levels = t.levels + [(H(t.recon), min(rel, 3e38), min(max(err), 3e38))]
    return t


def rf_decode(t, K):
    """The bytes of tensor t (a Lossy qrow) at level K, decoded from its parts as a reader would (REFINE.md §4):
    level 0 (QROW.md, from t.level_bytes[0], which qrow() computed), then each level's tables parsed and each
    tile's payload decoded and applied; the exact top layer by EXACT_TOP.md §2. Invalid on a broken rule."""
    dtype, isz = t.dtype, DTYPES[t.dtype][1] // 8
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    e, B = t.parts[0].data, struct.unpack("<h", t.params)[0]
    y = [int.from_bytes(t.level_bytes[0][i * isz:(i + 1) * isz], "little") for i in range(rows * cols)]
    tiles = -(-rows // t.tile_rows)
    fl_record(t)  # 2.8: a tables part of no items (corrupt, seen with the manifest)
    for k in range(1, K + 1):
        tp, cp = t.parts[2 * k], t.parts[2 * k + 1]
        if BLOCK in (tp.role, cp.role):  # 2.14: a sign-magnitude block (BITSTACK.md), bitstack_vectors()
            y = bs_decode_level(t, k, y)
            continue
        for i in range(tiles):  # (the tables, the same for every tile, parsed before the first tile is decoded)
            a, b = i * t.tile_rows * cols, min(rows, (i + 1) * t.tile_rows) * cols
            p, tb = fl_tile(t, k, i)  # the payload as a flag-0 one, and the tables the tile uses (2.8: flags)
            if tp.role == EXACT_TOP:
                C, P, Z, S, tabs = et_parse_tables(tb, dtype)
                W = et_width(dtype, Z)
                d = et_decode_tile(p, y[a:b], cols, B, tabs, P, dtype, Z, S)
                y[a:b] = [et_apply(yy >> Z, dd, W) << Z for yy, dd in zip(y[a:b], d)]
                continue
            assert tp.role == RESIDUAL
            C, P, S, M, tabs = rf_parse_tables(tb)
            d, er = rf_decode_tile(p, y[a:b], cols, B, tabs, P, S, dtype)
            y[a:b] = [rf_value(yy, dd, dtype, B, er[j // cols], M)[0] for j, (yy, dd) in enumerate(zip(y[a:b], d))]
    return dtype_values(y, dtype)


def rf_must_fail(t, why, K=None):
    """Tensor t must be refused at level K (default: its top) for the reason why."""
    try:
        rf_decode(t, len(t.levels) - 1 if K is None else K)
    except Invalid as x:
        assert why in str(x), (why, str(x))
        return
    raise AssertionError("accepted: " + why)


def level_out(t, K):
    """What unpack --level K writes of tensor t: its bytes at level min(K, its top) (FORMAT.md §4.3)."""
    lb = getattr(t, "level_bytes", None) or ([t.level0, t.recon] if hasattr(t, "level0") else [t.out()])
    return lb[min(K, len(lb) - 1)]


def put_levels(d, name, files):
    """NAME.wcz's NAME.expected (the top level) and NAME.levelK.expected for every level K below the top of its one
    file; each tensor's bytes at every level checked against rf_decode and its level's XXH3-64."""
    (_, _, fb, plen, ts), = files
    top = max(len(t.levels) - 1 for t in ts if isinstance(t, Lossy))
    for t in ts:
        if isinstance(t, Lossy):
            for K in range(len(t.levels)):
                assert H(level_out(t, K)) == t.levels[K][0]
                if hasattr(t, "level_bytes"):
                    assert rf_decode(t, K) == t.level_bytes[K]
    put(d, name + ".expected", fb)
    for K in range(top):
        lv = fb[:plen] + b"".join(level_out(t, K) if isinstance(t, Lossy) else t.out() for t in ts)
        assert len(lv) == len(fb) and (K == top or lv != fb)
        put(d, "%s.level%d.expected" % (name, K), lv)


def rf_weights(rng, B, e, cols, spread, zero=8):
    """Invented weights of a qrow tensor of rows with step bytes e: each a random sign times its row's step times a
    magnitude log-uniform in 1 .. spread (1 in `zero` below 0.4 of a step: a code of 0), jittered."""
    out = []
    for r, er in enumerate(e):
        st = float(step_of(B, er))
        for _ in range(cols):
            if rng(16) % zero == 0:
                m = (rng(20) / 2 ** 20 - 0.5) * 0.8
            else:
                m = 2.0 ** (rng(24) / 2 ** 24 * math.log2(spread)) * (1 + (rng(20) / 2 ** 20 - 0.5) * 0.3)
                m = -m if rng(1) else m
            out.append(m * st)
    return out


def rf_q(x, B, e, cols, top):
    """Level 0's codes: the nearest to each x / step, clamped to +-top."""
    return [max(-top, min(top, round(v / float(step_of(B, e[i // cols]))))) for i, v in enumerate(x)]


def rf_stats(ts):
    """Of the refinement levels of tensors ts: the elements (tensor, level, element) whose stored bits a decoder
    would get wrong with a fused multiply-add (f + r x s rounded once), and those it would get wrong with s = step / M
    rounded once (no binary32(1 / M) first); the M and S values; the v that are binary32 subnormals."""
    fma, inv, Ms, Ss, sub = [], [], set(), set(), 0
    for t in ts:
        cols, B, e = math.prod(t.shape[1:]), struct.unpack("<h", t.params)[0], t.parts[0].data
        for k, lv in enumerate(t.rf):
            Ms.add(lv["M"])
            Ss.add(lv["S"])
            for i, (y, d, vb) in enumerate(zip(lv["y"], lv["codes"], lv["v32"])):
                st = f32_frac(f32_bits(step_of(B, e[i // cols])))
                s = f32_frac(f32_bits(rf_step(B, e[i // cols], lv["M"])))
                s1 = f32_frac(f32_round(st / lv["M"]))
                f, r = f32_frac(widen(y, t.dtype)), rf_code(d, y, t.dtype)
                stored = convert(vb, t.dtype)
                fused = f32_round(f + r * s)
                if fused & 0x7FFFFFFF and convert(fused, t.dtype) != stored:
                    fma.append((t.name, k + 1, i))
                once = f32_round(f + f32_frac(f32_round(r * s1)) if r * s1 else f)
                if once & 0x7FFFFFFF and convert(once, t.dtype) != stored:
                    inv.append((t.name, k + 1, i))
                sub += vb & 0x7F800000 == 0 and vb & 0x7FFFFF != 0
    return fma, inv, Ms, Ss, sub


def refine_vectors(d):
    """lossy_refine (2.8, REFINE.md): an exact F32 norm; a: BF16 [8, 4, 6] with 2 refinement levels, 3 tiles of 3,
    3 and 2 rows, U8 codes; level 1 M = 3, S = 0, its tables a tensor-wide zstd chunk (the writer's layout), tile 1
    in mode 0 (u8 0, the rows' step bytes, the codes) and not counted in the tables (a code there no table has);
    level 2 M = 7 (binary32(1/7) rounds: s is not step / 7 rounded once), S = 1, C = 6 (higher contexts clamped
    to 5), P = 11, tables a tensor-wide zstd chunk; codes 32767, -32768 and -32767 in mode-1 tiles of both
    levels, values near zero of both signs (level-0 codes 0 and +-1, level codes that cross zero, so that the
    sign folding of §2 meets negative values below); b: F16 [4, 16], 1 level, M = 2, S = 24 (every context
    clamped to C - 1 = 2 but those of +-0), tables inline (codec 0), results past 65504 stored as +-Inf (QROW.md
    §3; v itself is finite); k: BF16 [2, 8] with B = -126 (tiny steps), 1 level of M = 5 whose s is a binary32
    subnormal, results that are binary32 subnormals (stored as BF16 subnormals), tables inline zstd (2.3); c: F32
    [3, 8], 1 level (M = 7, S = 2, codes up to +-30000) where a decoder that fused f + r x s into one rounding, or
    rounded step / M once instead of step x binary32(1/M), would store other bits (rf_stats); a plain qrow tensor
    (its top is level 0). Unpacked: each tensor at its top level (.expected); lossy_refine.level0 and
    .level1.expected: at levels 0 and 1 (a tensor of fewer levels at its own top).

    lossy_refine_exact: refinement levels under an exact top layer (level R + 1, EXACT_TOP.md, its tables' S).
    f: F32 [6, 8], B = -126, 2 tiles; level 1 M = 2^24 (row 0's s = 2^-150 rounds to 0, row 1's to 2^-149:
    subnormal results), S = 0, tables tensor-wide zstd; level 2 M = 3, S = 24, C = 8, tables inline raw; exact top
    S = 1, tables tensor-wide zstd. g: F16 [4, 12], B = -30, 2 tiles, level 1 M = 2 (tables tensor-wide raw), level
    2 M = 7, S = 1 (tables inline zstd), exact top S = 2: F16 -0 at levels 0 and 1 (tiny negative values), so that
    level 1 and 2 meet y = -0 (sign bit set: the code negated; f = -0 plus a code of 0 is +0), F16 subnormals.
    h: F16 [2, 8], 1 level (M = 2) whose results overflow F16 to +-Inf, an exact top (S = 1) restoring 65504,
    NaNs and finite values there. The originals hold +-0, subnormals, +-Inf and NaNs with payloads: .expected are
    the original bytes; .level0, .level1 and .level2.expected the levels below."""
    rng = Rng(0x2EF1E)
    norm = Exact("norm.weight", "F32", [6], np.array([1, -0.25, 2.5, 0, -0.0, 7e-3], dtype="<f4").tobytes())
    # a: BF16, rows of E = -20 .. -5.
    ea, ca, Ba = [0x05, 0x17, 0x2A, 0x3F, 0x00, 0x4C, 0x63, 0xF9], 24, -20
    xa = rf_weights(rng, Ba, ea, ca, 60)
    # near zero: level-0 codes +1, -1 and 0 at elements 2 .. 7 (row 0), 30 .. 33 (row 1), 150 .. 153 (row 6)
    near = {2: 1, 3: -1, 4: 0, 5: 1, 6: -1, 7: 0, 30: 1, 31: -1, 32: 0, 33: 0, 150: 1, 151: -1, 152: 0, 153: -1}
    for i, q in near.items():
        xa[i] = (q + 0.3 * (1 if i % 2 else -1)) * float(step_of(Ba, ea[i // ca]))
    qa = rf_q(xa, Ba, ea, ca, 127)
    assert all(qa[i] == q for i, q in near.items())
    a = qrow("a.weight", "BF16", [8, 4, 6], Ba, ea, qa, 3)
    # level 1 (M = 3): codes that cross zero (a y of +step with -4: -step / 3; -step with -4, stored: +step / 3,
    # r = +4; +0 with -2 and +2), the int16 extremes in tiles 0 and 2 (mode 1) and 1 (mode 0; 20000 only there)
    at1 = {2: -4, 3: -4, 4: -2, 5: -2, 6: 2, 7: 2, 150: -5, 151: -5, 152: 1, 153: 4,
           10: 32767, 11: -32768, 12: -32767, 40: 20000, 41: -32768, 170: 32767, 171: -32768, 172: -32767}
    a.level1_at = at1
    refine(a, 3, xa, at=at1, mode0=(1,), count_mode0=False)
    # level 2 (M = 7, S = 1, C = 6, P = 11): codes crossing zero again on the values level 1 made negative
    at2 = {2: 5, 3: -5, 4: 3, 5: -1, 150: 6, 151: -6, 13: 32767, 14: -32768, 15: -32767, 160: -32768}
    refine(a, 7, xa, S=1, C=6, P=11, at=at2)
    # b: F16, B = -5: row 0 (E = -5) near zero, row 3 (E = 10, step 1024) near 65504.
    eb, cb, Bb = [0x00, 0x31, 0x97, 0xF0], 16, -5
    xb = rf_weights(rng, Bb, eb, cb, 40)
    qb = rf_q(xb, Bb, eb, cb, 127)
    qb = et_codes_at(qb, {48: 63, 49: -63, 50: 63, 51: 62, 52: -62, 53: 63, 54: 60, 55: -60, 0: 1, 1: -1, 2: 0})
    b = qrow("b.weight", "F16", [4, 16], Bb, eb, qb, 2, code_item="U16")
    # 64512 + 2 x 512 = 65536: +Inf; -64512 - 2 x 512 (a code of 2 on a negative value): -Inf; 63488 + 3 x 512 =
    # 65024: finite; 64512 - 32768 x 512: -Inf; 61440 + 32767 x 512: +Inf; -61440 + 32767 x 512 (r = -32767): -Inf
    atb = {48: 2, 49: 2, 50: 1, 51: 3, 52: -3, 53: -32768, 54: 32767, 55: 32767, 0: -3, 1: -3, 2: -1}
    refine(b, 2, xb, S=24, C=3, at=atb, tables_layout=INLINE, tables_codec=0)
    # k: BF16, B = -126: step 2^-126 and 1.1875 x 2^-126; s = step x binary32(1/5), a binary32 subnormal.
    ek, ck, Bk = [0x00, 0x03], 8, -126
    qk = [0, 1, -1, 2, 0, 3, -2, 0, 1, 0, -1, 0, 2, -3, 0, 1]
    xk = [(q + 0.2 * ((i % 5) - 2)) * float(step_of(Bk, ek[i // ck])) for i, q in enumerate(qk)]
    kt = qrow("k.weight", "BF16", [2, 8], Bk, ek, qk, 2)
    refine(kt, 5, xk, at={0: 3, 4: -7, 7: 1, 9: 32767, 11: -32768, 14: -2}, tables_layout=INLINE, tables_codec=1)
    # c: F32 (its stored bits are v's): 1 level, M = 7, S = 2, codes up to +-30000, rows whose step has mantissa
    # bits, so that a decoder fusing f + r x s, or dividing step / M once, stores other bits (rf_stats below).
    ec, cc, Bc = [0x13, 0x27, 0x3B], 8, -10
    xc = rf_weights(rng, Bc, ec, cc, 1000)
    c = qrow("c.weight", "F32", [3, cc], Bc, ec, rf_q(xc, Bc, ec, cc, 32767), 2, code_item="U16")
    refine(c, 7, xc, S=2, at={i: (i * 7919) % 60001 - 30000 for i in range(0, 3 * cc, 2)})
    plain = qrow("plain.weight", "BF16", [2, 8], -12, [0x31, 0x07], [((i * 29) % 61) - 30 for i in range(16)], 2)
    ts = [norm, a, b, kt, c, plain]
    # what the vector holds, as the docstring says
    assert a.rf[0]["mode"] == [1, 0, 1] and 1 in a.rf[1]["mode"] and b.rf[0]["mode"] and kt.rf[0]["mode"]
    span1 = a.rf[0]["span"][1]
    assert any(not a.rf[0]["parsed"][min(c, a.rf[0]["C"] - 1)] or s not in a.rf[0]["parsed"][min(c, a.rf[0]["C"] - 1)]
               for c, (s, _, _) in zip(a.rf[0]["ctx"][span1[0]:span1[1]], a.rf[0]["split"][span1[0]:span1[1]]))
    for lv in a.rf:  # the int16 extremes in mode-1 tiles
        m1 = [dd for ti, (s0, s1) in enumerate(lv["span"]) if lv["mode"][ti] == 1 for dd in lv["codes"][s0:s1]]
        assert {0x7FFF, 0x8000, 0x8001} <= set(m1)
    assert max(a.rf[1]["ctx"]) > a.rf[1]["C"] - 1 == 5 and set(b.rf[0]["ctx"]) == {0, 32} and b.rf[0]["C"] == 3
    # sign folding: negative values below with non-zero codes, and values whose sign a level changed
    for lv in a.rf:
        assert any(y >> 15 and dd for y, dd in zip(lv["y"], lv["codes"]))
    lv0 = [int(x) for x in np.frombuffer(a.level_bytes[0], dtype="<u2")]
    lv1 = [int(x) for x in np.frombuffer(a.level_bytes[1], dtype="<u2")]
    lv2 = [int(x) for x in np.frombuffer(a.level_bytes[2], dtype="<u2")]
    assert lv0[2] >> 15 == 0 and lv1[2] >> 15 == 1 and lv0[3] >> 15 == 1 and lv1[3] >> 15 == 0
    assert any(x >> 15 != y >> 15 and x & 0x7FFF and y & 0x7FFF for x, y in zip(lv1, lv2))
    bt = [int(x) for x in b.bits]
    assert {0x7C00, 0xFC00} <= set(bt) and all(rf_finite(v, "F32") for v in b.rf[0]["v32"])
    assert any(v & 0x7F800000 == 0 and v & 0x7FFFFF for v in kt.rf[0]["v32"])
    assert any(x & 0x7F80 == 0 and x & 0x7F for x in (int(v) for v in kt.bits))  # BF16 subnormals stored
    assert f32_bits(rf_step(Bk, 0x00, 5)) & 0x7F800000 == 0
    fma, inv, Ms, Ss, _ = rf_stats([a, b, kt, c])
    assert fma and inv and Ms == {3, 7, 2, 5} and Ss == {0, 1, 2, 24}, (fma, inv, Ms, Ss)
    fb, plen = st_file(ts)
    files = [(0, "model.safetensors", fb, plen, ts)]
    wcz = container2(files, minor=8)
    head = struct.unpack("<IIIBB", zread_manifest(wcz)[:14])
    # level 0: norm, a's 3 tiles x 2, b's 2 x 2, k's 1 x 2, c's 2 x 2, plain 1 x 2; level 1: a's tables and 3 tiles,
    # b's 2 tiles (tables inline), k's 1, c's tables and 2 tiles; level 2: a's tables and 3 tiles
    assert head == (1, 6, 1 + 6 + 4 + 2 + 4 + 2 + 4 + 2 + 1 + 3 + 4, 3, 0), head
    put(d, "lossy_refine.wcz", wcz)
    put_levels(d, "lossy_refine", files)

    # lossy_refine_exact
    rng = Rng(0x2EF1E7)
    norm = Exact("norm.weight", "F32", [4], np.array([0.5, -2, 0, 1e-3], dtype="<f4").tobytes())
    # f: F32, B = -126, rows of E = -126 (s = 0 at level 1), -126 (1.0625: s = 2^-149), -125, -124, -119, -111.
    ef, cf, Bf = [0x00, 0x01, 0x10, 0x25, 0x7A, 0xF3], 8, -126
    xf = rf_weights(rng, Bf, ef, cf, 300)
    xf[0] = xf[9] = 0.0
    qf = rf_q(xf, Bf, ef, cf, 32767)
    qf = et_codes_at(qf, {1: 0, 2: 1, 8: 0, 10: -1, 11: 0})
    f = qrow("f.weight", "F32", [6, 8], Bf, ef, qf, 3, code_item="U16")
    refine(f, 1 << 24, xf, at={0: 5, 1: -7, 2: -3, 8: 1, 9: -1, 10: 4, 11: -32768, 12: 32767}, tables_codec=1)
    refine(f, 3, xf, S=24, C=8, at={1: 2, 8: -2, 11: 5, 20: -32768}, tables_layout=INLINE, tables_codec=0)
    spec_f = {3: 0x00000000, 4: 0x80000000, 5: 0x00000001, 6: 0x807FFFFF, 13: 0x7F800000, 14: 0xFF800000,
              21: 0x7FC00001, 22: 0xFFBADBAD, 23: 0x7F800001, 30: 0x7F7FFFFF, 31: 0x00800000, 40: 0x80000001}
    of = et_bits("F32", xf)
    for i, v in spec_f.items():
        of[i] = v
    exact_top(f, of, S=1, tables_codec=1)
    f.parts[-2].layout = TENSOR_WIDE
    # g: F16, B = -30, rows of E = -30, -28, -24, -15: values below 2^-25 store as +-0, then F16 subnormals.
    eg, cg, Bg = [0x00, 0x2C, 0x61, 0xF8], 12, -30
    xg = rf_weights(rng, Bg, eg, cg, 100)
    qg = rf_q(xg, Bg, eg, cg, 127)
    qg = et_codes_at(qg, {0: -3, 1: 3, 2: -40, 3: 48, 4: 32, 5: 0, 6: -1, 12: -2, 13: 5})
    g = qrow("g.weight", "F16", [4, 12], Bg, eg, qg, 2)
    # level 1 (M = 2, s = 2^-31): -0 (y) + 0 = +0; -0 with code 3 (stored): r = -3, a tiny negative: -0 again;
    # +0 with -3: -0; 2^-25 x 48 ... (a subnormal) moved by codes
    refine(g, 2, xg, at={0: 0, 1: -3, 2: 3, 3: -20, 5: -5, 6: 0, 12: 40, 13: 7}, tables_codec=0)
    refine(g, 7, xg, S=1, at={0: 2, 1: 2, 2: -2, 5: 0, 6: 100}, tables_layout=INLINE, tables_codec=1)
    spec_g = {7: 0x0000, 8: 0x8000, 9: 0x0001, 10: 0x83FF, 20: 0x7C00, 21: 0xFC00, 30: 0x7E01, 31: 0xFD55,
              40: 0x7BFF, 41: 0xFBFF}
    og = et_bits("F16", xg)
    for i, v in spec_g.items():
        og[i] = v
    exact_top(g, og, S=2)
    # h: F16, B = 0, rows of E = 9 (step 512) and 10 (1024); level 1 (M = 2) past 65504: +-Inf.
    eh, ch = [0x90, 0xA0], 8
    qh = [127, -127, 120, 3, 0, -5, 100, 126, 63, -63, 62, -62, 1, 0, 60, -1]
    xh = [q * float(step_of(0, eh[i // ch])) + 100.0 for i, q in enumerate(qh)]
    h = qrow("h.weight", "F16", [2, 8], 0, eh, qh, 2, code_item="U16")
    refine(h, 2, xh, at={0: 2, 1: 2, 2: 15, 7: 1, 8: 2, 9: 2, 10: 3, 11: 3, 14: 32767, 15: -32768},
           tables_layout=INLINE, tables_codec=0)
    hb = [int(x) for x in h.bits]
    oh = et_bits("F16", xh)
    for i, v in {0: 0x7BFF, 1: 0xFC00, 8: 0x7E00, 9: 0xFBFF, 2: 0x7C00, 13: 0x8000, 14: 0x7C01}.items():
        oh[i] = v
    exact_top(h, oh, S=1, keep_mode1=True)  # 16 elements: mode 1 is larger than mode 0, but valid
    ets = [norm, f, g, h]
    # what the vector holds, as the docstring says
    assert len(f.levels) == len(g.levels) == 4 and len(h.levels) == 3 and f.et_S == 1 and g.et_S == 2
    assert f.parts[-1].level == 3 and h.parts[-1].level == 2 and f.rf[1]["S"] == 24 and g.rf[1]["S"] == 1
    assert f32_bits(rf_step(Bf, 0x00, 1 << 24)) == 0 and f32_bits(rf_step(Bf, 0x01, 1 << 24)) == 1
    assert any(v & 0x7F800000 == 0 and v & 0x7FFFFF for v in f.rf[0]["v32"])  # binary32 subnormal results
    assert g.rf[0]["y"][0] == 0x8000 and g.rf[1]["y"][0] == 0x0000  # -0, code 0: +0
    assert 0x8000 in g.rf[1]["y"] and any(y == 0x8000 and dd for y, dd in zip(g.rf[1]["y"], g.rf[1]["codes"]))
    assert any(y & 0x7C00 == 0 and y & 0x3FF for y in g.rf[1]["y"])  # F16 subnormals below level 2
    assert {0x7C00, 0xFC00} <= set(hb) and all(rf_finite(v, "F32") for v in h.rf[0]["v32"])
    fma, inv, Ms, Ss, sub = rf_stats([f, g, h])
    assert inv and Ms == {1 << 24, 3, 2, 7} and Ss == {0, 1, 24} and sub, (fma, inv, Ms, Ss)  # (fma: lossy_refine)
    for t in (f, g, h):
        assert t.recon != t.level0 and 1 in t.et_mode, (t.name, t.et_mode, [lv["mode"] for lv in t.rf])
    fb, plen = st_file(ets)
    files = [(0, "model.safetensors", fb, plen, ets)]
    wcz = container2(files, minor=8)
    head = struct.unpack("<IIIBB", zread_manifest(wcz)[:14])
    # level 0: norm, f 2 x 2, g 2 x 2, h 1 x 2; level 1: f tables + 2, g tables + 2, h 1; level 2: f 2, g 2, h's exact
    # top (tables inline) 1; level 3: f's exact tables + 2, g 2
    assert head == (1, 4, 1 + 4 + 4 + 2 + 3 + 3 + 1 + 2 + 2 + 1 + 3 + 2, 4, 0), head
    put(d, "lossy_refine_exact.wcz", wcz)
    put_levels(d, "lossy_refine_exact", files)
    put_bad(d, refine_bad())


def refine_bad():
    """2.8 files every reader must reject, checksum-valid everywhere, each lying in one thing about the refinement
    levels of a qrow tensor (the manifest's last tensor, after an exact F32 one). *.corrupt: REFINE.md §1's record
    rules (and FORMAT.md §4.2's part count), seen when the manifest is decoded. *.codec: §3's tables (checked
    whenever a tile of the level is decoded, EXACT_TOP.md §4) and the tiles (§2: v and y finite; §3's mode 0;
    EXACT_TOP.md §5). Level hashes are the honest ones; where a rule leaves no honest value (v or y not finite),
    the hash of what a reader that skipped the rule would write (the value stored as QROW.md §3 stores it), so that
    only the rule refuses the file. Each table and payload here fails rf_decode on its rule."""
    rows, cols = 4, 32

    def base(levels=1, dtype="BF16", **kw):
        """An exact F32 tensor, then a BF16 qrow tensor of 2 tiles (U8 codes, raw) with `levels` refinement levels
        (M = 3, 9, ...; S = floor(log2) of the M below; tables inline, codec 0), every tile in mode 1."""
        rng = Rng(0xBAD8)
        e = [(0x13 * r) & 0xFF for r in range(rows)]
        x = rf_weights(rng, -20, e, cols, 100)
        t = qrow("w.weight", dtype, [rows, cols], -20, e, rf_q(x, -20, e, cols, 127), 2)
        for k in range(levels):
            refine(t, 3 ** (k + 1), x, S=[0, 1, 3, 4][k], tables_layout=INLINE, tables_codec=0, keep_mode1=True, **kw)
            assert t.rf[-1]["mode"] == [1, 1]
        t.x = x
        return t

    def one(t):
        return one_file([norm_exact(), t], minor=8)

    def tables(t, data, why, k=1):
        """t with level k's tables replaced by data (the tiles as they were), refused for the reason why."""
        t.parts[2 * k].data, t.parts[2 * k].items = data, len(data)
        rf_must_fail(t, why)
        return one(t)

    def tile(t, p, why, k=1, i=0):
        """t with level k's tile i's payload replaced by p, refused for the reason why."""
        t.parts[2 * k + 1].tile_stored[i] = p
        rf_must_fail(t, why)
        return one(t)

    t0 = base()
    lv = t0.rf[0]
    C, P, tabs = lv["C"], lv["P"], lv["tables"]
    e0 = bytes(t0.parts[0].data[:2])
    codes0 = lv["codes"][:2 * cols]
    assert tabs[0] and max(lv["ctx"]) > 1
    out = {}

    # §3 (codec): the head's fields and the context lists
    out["refine_tables_m1.codec"] = tables(base(), rf_table_bytes(tabs, C, P, 0, 1), "step divisor M")
    out["refine_tables_m0.codec"] = tables(base(), rf_table_bytes(tabs, C, P, 0, 0), "step divisor M")
    out["refine_tables_m_2p24_plus_1.codec"] = tables(base(), rf_table_bytes(tabs, C, P, 0, (1 << 24) + 1),
                                                      "step divisor M")
    out["refine_tables_s25.codec"] = tables(base(), rf_table_bytes(tabs, C, P, 25, 3), "context shift S")
    out["refine_tables_reserved.codec"] = tables(base(), rf_table_bytes(tabs, C, P, 0, 3, reserved=1), "reserved")
    out["refine_tables_p16.codec"] = tables(base(), rf_table_bytes(tabs, C, 16, 0, 3), "probability bits")
    out["refine_tables_c33.codec"] = tables(base(), rf_table_bytes(tabs + [[]] * (33 - C), 33, P, 0, 3),
                                            "context count")
    out["refine_tables_head_short.codec"] = tables(base(), rf_table_bytes(tabs, C, P, 0, 3)[:7], "shorter than")
    # the tables of 2.7's exact top layer (a 4-byte head, no M): the lists read from byte 8 then fail
    out["refine_tables_exact_head.codec"] = tables(base(), et_table_bytes(tabs, C, P), "")
    # the last uvar (the last symbol's f - 1) written in 2 bytes (valid) and its second byte cut: it ends unfinished
    n_uv = sum(1 + 2 * len(x) for x in tabs)
    count = [0]

    def last2(v):
        count[0] += 1
        return leb128(v, nbytes=2) if count[0] == n_uv else leb128(v)
    cut = rf_table_bytes(tabs, C, P, 0, 3, uvar=last2)
    assert count[0] == n_uv and cut[-2] & 0x80
    out["refine_tables_uvar_truncated.codec"] = tables(base(), cut[:-1], "uvar past the end")
    # context 0's alphabet is 112 too (REFINE.md §2; the exact top layer's context 0 has 2048 symbols in BF16)
    past = [list(x) for x in tabs]
    past[0][-1] = (112, past[0][-1][1])
    out["refine_tables_symbol_112_ctx0.codec"] = tables(base(), rf_table_bytes(past, C, P, 0, 3), "beyond the alphabet")
    unused = [list(x) for x in tabs]
    unused[min(lv["ctx"][0], C - 1)] = []  # the context of tile 0's first element
    out["refine_tile_unused_context.codec"] = tables(base(), rf_table_bytes(unused, C, P, 0, 3), "unused context")

    # §3 (codec): the tables are checked whenever a tile of the level is decoded, whatever its mode: both tiles in
    # mode 0 (which consults no context list), one list's frequencies summing to 2^P + 1 (M and the head valid)
    t = base()
    for i in range(2):
        t.parts[3].tile_stored[i] = b"\x00" + bytes(t.parts[0].data[2 * i:2 * i + 2]) + b"".join(
            x.to_bytes(2, "little") for x in lv["codes"][i * 2 * cols:(i + 1) * 2 * cols])
    assert rf_decode(t, 1) == t.level_bytes[1]
    bump = [list(x) for x in tabs]
    c1 = next(c for c in range(C) if bump[c])
    bump[c1][0] = (bump[c1][0][0], bump[c1][0][1] + 1)
    out["refine_tables_sum_mode0_tiles.codec"] = tables(t, rf_table_bytes(bump, C, P, 0, 3), "sum to 2^P")

    # §3 (codec): mode 0 is u8 0, the rows' step bytes, the codes: exactly 1 + rows + 2 x elements bytes
    m0 = b"\x00" + e0 + b"".join(x.to_bytes(2, "little") for x in codes0)
    out["refine_tile_mode0_short.codec"] = tile(base(), m0[:-1], "refinement mode 0")
    out["refine_tile_mode0_long.codec"] = tile(base(), m0 + b"\x00", "refinement mode 0")
    out["refine_tile_mode0_no_steps.codec"] = tile(base(), b"\x00" + m0[1 + len(e0):], "refinement mode 0")
    out["refine_tile_mode2.codec"] = tile(base(), b"\x02" + base().parts[3].tile_stored[0][1:], "mode not 0 or 1")

    # §2 (codec): v not finite. F32 [1, 4], B = 96, E = 111 (step 1.9375 x 2^111), codes 32767: three levels of M = 2
    # each add 32767 x 1.9375 x 2^110; levels 1 and 2 stay finite (level 2 just below 2^128), level 3 overflows.
    t = qrow("w.weight", "F32", [1, 4], 96, [0xFF], [32767, -32768, 5, 0], 1, code_item="U16")
    x = [3e38, -3e38, 0.0, 0.0]
    for k in range(3):
        refine(t, 2, x, S=1 if k else 0, at={0: 32767, 1: 32767 if k < 2 else 0}, tables_layout=INLINE,
               tables_codec=0, lenient=k == 2)
    assert rf_finite(t.rf[1]["v32"][0], "F32") and t.rf[1]["v32"][0] >> 23 == 254  # level 2: in [2^127, 2^128)
    assert not rf_finite(t.rf[2]["v32"][0], "F32") and all(rf_finite(v, "F32") for v in t.rf[2]["v32"][1:])
    rf_must_fail(t, "v not finite")
    out["refine_tile_v_overflow.codec"] = one(t)
    # §2 (codec): y not finite. F16 whose level 1 stores 64512 + 2 x 512 = 65536 as +Inf (valid: the top of a
    # 1-level tensor) and whose level 2 then meets that y.
    t = qrow("w.weight", "F16", [2, 4], -5, [0xF0, 0x00], [63, -63, 1, 0, 2, -2, 0, 1], 2)
    x = [64512.0, -64512.0, 1024.0, 0.0, 0.0625, -0.0625, 0.0, 0.03125]
    refine(t, 2, x, at={0: 2}, tables_layout=INLINE, tables_codec=0)
    assert t.bits[0] == 0x7C00 and len(t.levels) == 2
    refine(t, 3, x, S=1, at={0: 0}, tables_layout=INLINE, tables_codec=0, lenient=True)
    rf_decode(t, 1)
    rf_must_fail(t, "a value below that is not finite")
    out["refine_tile_y_inf.codec"] = one(t)

    # EXACT_TOP.md §4 as 2.8 has it: the exact top layer's S (its tables' fourth byte) is 0 .. 24
    t = base()
    exact_top(t, et_bits("BF16", t.x), S=2)
    tb = bytearray(t.parts[4].data)
    tb[3] = 25
    t.parts[4].data = bytes(tb)
    rf_must_fail(t, "context shift S")
    out["exact_top_tables_s25.codec"] = one(t)

    # §1 (corrupt): the record's parts
    t = base(2)
    t.parts[4].level = 1  # level 2's tables at level 1 (levels non-decreasing, every level has a part)
    out["refine_tables_wrong_level.corrupt"] = one(t)
    t = base(2)
    t.parts[3].level = 2  # level 1's codes at level 2
    out["refine_codes_wrong_level.corrupt"] = one(t)
    t = base()
    cp = t.parts[3]
    cp.item, cp.data = "U32", b"".join(x.to_bytes(4, "little") for x in lv["codes"])
    cp.tile_stored = [b"\x00" + bytes(t.parts[0].data[2 * i:2 * i + 2])
                      + cp.data[i * 4 * 2 * cols:(i + 1) * 4 * 2 * cols] for i in range(2)]
    out["refine_codes_u32.corrupt"] = one(t)
    t = base()
    t.parts[3].codec, t.parts[3].tile_stored = 1, None  # the codes as zstd frames
    out["refine_codes_zstd.corrupt"] = one(t)
    t = base()
    t.parts[3].codec, t.parts[3].tile_stored = 0, None  # the codes as they are (codec 0)
    out["refine_codes_raw.corrupt"] = one(t)
    t = base()
    t.parts[2].codec, t.parts[2].frame = EXACT_CODEC, lambda raw: b"\x00" + raw  # tables of codec 6
    out["refine_tables_codec6.corrupt"] = one(t)
    t = base()
    t.parts[2].layout, t.parts[2].items = PER_ROW, rows  # the tables tiled
    out["refine_tables_per_row.corrupt"] = one(t)
    t = base()
    t.parts[3].layout, t.parts[3].tile_stored = TENSOR_WIDE, None  # the codes one tensor-wide chunk
    t.parts[3].codec = 0
    out["refine_codes_tensor_wide.corrupt"] = one(t)
    t = base(2)
    t.parts[2].role = t.parts[3].role = EXACT_TOP  # an exact top layer below a refinement level
    out["refine_role5_below.corrupt"] = one(t)
    t = base()
    t.parts[3].role = EXACT_TOP  # level 1: tables of role 4, codes of role 5
    out["refine_roles_mixed.corrupt"] = one(t)
    t = base()
    t.parts[1].codec, t.parts[1].frame = EXACT_CODEC, lambda raw: b"\x00" + raw  # level 0's codes of codec 6
    out["refine_codec6_level0.corrupt"] = one(t)
    # level_count 17 (REFINE.md §1: at most 8, FORMAT.md §4.4: 16 parts): 16 refinement levels of a [1, 4] F32 tensor, 34 parts (FORMAT.md
    # §4.2 allows 16, so a reader may refuse the part count first: corrupt either way)
    t = qrow("w.weight", "F32", [1, 4], -10, [0x20], [3, -2, 0, 1], 1)
    for k in range(16):
        refine(t, 2 + k, [3.1, -2.2, 0.01, 0.9], S=k, tables_layout=INLINE, tables_codec=0)
    assert len(t.levels) == 17 and len(t.parts) == 34
    out["refine_level_count_17.corrupt"] = one(t)

    # §1, FORMAT.md §4.4 (checksum): the top level's XXH3-64 (level 1's) wrong
    t = base()
    t.levels[1] = (t.levels[1][0] ^ 1,) + t.levels[1][1:]
    out["level_xxh3_refine.checksum"] = one(t)
    # §2 (checksum): tables whose M (9) is not the M (3) the level was made with, everything else honest: the tiles
    # decode (the contexts and symbols do not depend on M) to other values than level 1's hash
    t = base()
    t.parts[2].data = rf_table_bytes(tabs, C, P, 0, 9)
    assert rf_decode(t, 1) != t.level_bytes[1]
    out["level_xxh3_refine_m_lie.checksum"] = one(t)
    return out



# 2.8, a mode-1 tile payload's flags (EXACT_TOP.md §5 "Flags", REFINE.md §3), for refinement levels (role 4) and
# the exact top layer (role 5) alike: its second byte, 0 in 2.7. Flag 1: the payload has no step bytes, the
# tile's are part 0's slice (part 0 MUST be inline, codec 0). Flag 2: u16 tables_len and the level's tables (of the
# level's kind) follow the 8-byte head, before the step bytes; a level's tiles carry it iff its tables part has no
# items (inline, codec 0, 0 items: only in a tensor of one tile, else the record is corrupt), and such a level's
# tile MUST be mode 1. Any other bit: the tile is invalid. fl_tile() reads a payload by these rules (into the flag-0
# payload et_decode_tile reads, and the tables the tile uses), fl_record() the record's rule; rf_decode() uses both.

FLAG_STEPS, FLAG_TABLES = 1, 2


def fl_record(t):
    """The record rule of 2.8's flag 2 (EXACT_TOP.md §5, FORMAT.md §4.4): a tables part (parts 2, 4, ...) of no
    items is inline, codec 0, in a tensor of one tile; Invalid("corrupt: ...") otherwise."""
    tiles = -(-t.shape[0] // t.tile_rows)
    for tp in t.parts[2::2]:
        if tp.role in (RESIDUAL, EXACT_TOP) and tp.items == 0:
            if tp.layout != INLINE or tp.codec != 0:
                raise Invalid("corrupt: a tables part of no items that is not inline with codec 0")
            if tiles != 1:
                raise Invalid("corrupt: a tables part of no items in a tensor of more than one tile")


def fl_tile(t, k, i):
    """Tile i's payload of level k of tensor t read by EXACT_TOP.md §5's flags (2.8): (the payload as a flag-0 one,
    which et_decode_tile reads by every other rule, and the bytes of the tables the tile uses: its level's tables
    part's, or with flag 2 the payload's). Invalid on a broken flag rule."""
    tp, cp, p0 = t.parts[2 * k], t.parts[2 * k + 1], t.parts[0]
    r0, r1 = i * t.tile_rows, min(t.shape[0], (i + 1) * t.tile_rows)
    p, in_payload = cp.tile_stored[i], tp.items == 0
    if not p or p[0] != 1:
        if in_payload and p[:1] == b"\x00":
            raise Invalid("mode 0 on a level whose tables are in its payload")
        return p, tp.data
    if len(p) < 8:
        raise Invalid("mode 1 head past the payload")
    flags = p[1]
    if flags & ~(FLAG_STEPS | FLAG_TABLES):
        raise Invalid("unknown flag")
    if bool(flags & FLAG_TABLES) != in_payload:
        raise Invalid("flag 2 and a tables part of no items disagree")
    pos, tb = 8, tp.data
    if flags & FLAG_TABLES:
        if pos + 2 > len(p):
            raise Invalid("tables_len past the payload")
        n = struct.unpack_from("<H", p, pos)[0]
        if pos + 2 + n > len(p):
            raise Invalid("tables_len beyond the payload")
        tb, pos = bytes(p[pos + 2:pos + 2 + n]), pos + 2 + n
    if flags & FLAG_STEPS:
        if p0.layout != INLINE or p0.codec != 0:
            raise Invalid("flag 1 while part 0 is not inline with codec 0")
        e = bytes(p0.data[r0:r1])
    else:
        if pos + r1 - r0 > len(p):
            raise Invalid("the rows' step bytes past the payload")
        e, pos = bytes(p[pos:pos + r1 - r0]), pos + r1 - r0
    return b"\x01\x00" + bytes(p[2:8]) + e + bytes(p[pos:]), tb


def fl_payload(p, flags, tables=b"", rows=0, tables_len=None):
    """The flag-0 mode-1 payload p (et_encode_tile's) written with the flags byte `flags`: with flag 2, u16 tables_len
    (default: the tables' length; bad vectors lie) and the tables after the 8-byte head; with flag 1, without its
    `rows` step bytes. Other bits are written as given (bad vectors)."""
    assert p[:2] == b"\x01\x00"
    head = b"\x01" + bytes([flags]) + bytes(p[2:8])
    if flags & FLAG_TABLES:
        head += struct.pack("<H", len(tables) if tables_len is None else tables_len) + tables
    return head + (bytes(p[8 + rows:]) if flags & FLAG_STEPS else bytes(p[8:]))


def set_flags(t, k, flags, empty=None, check=True):
    """Level k of tensor t (its tiles all mode 1, flag 0, as refine() or exact_top() made them) rewritten with the
    flags byte `flags` in every tile: flag 2 carries the level's tables in each payload, and (unless empty is False)
    its tables part becomes inline, codec 0, 0 items; flag 1 drops the step bytes. check: the tensor decodes at
    level k (rf_decode) to the bytes the level was made with."""
    tp, cp = t.parts[2 * k], t.parts[2 * k + 1]
    tb = tp.data
    if flags & FLAG_TABLES if empty is None else empty:
        tp.layout, tp.codec, tp.data, tp.items = INLINE, 0, b"", 0
    rows = t.shape[0]
    cp.tile_stored = [fl_payload(p, flags, tb, min(rows, (i + 1) * t.tile_rows) - i * t.tile_rows)
                      for i, p in enumerate(cp.tile_stored)]
    if check:
        assert rf_decode(t, k) == t.level_bytes[k]
    return t


def flag_vectors(d):
    """lossy_refine_flags (2.8): the flags of a mode-1 payload (EXACT_TOP.md §5, REFINE.md §3). Every qrow tensor has
    its part 0 (the step bytes) inline with codec 0. An exact F32 norm; a: BF16 [4, 16], one tile, U8 codes per
    element, 2 refinement levels (M = 3, S = 0; M = 9, S = 1) and an exact top layer (S = 3), every level's tile in
    mode 1 with flags 3 (its tables, refinement or exact-top, in the payload after u16 tables_len; its tables part
    inline, codec 0, 0 items; no step bytes: part 0's); b: F16 [3, 10], one tile, codes inline (codec 0: the tensor
    has no chunk at level 0), 1 level (M = 2) with flag 2 only (tables in the payload, step bytes still there);
    c: F16 [4, 8], one tile, 1 level (M = 3, tables inline codec 0 with items) with flag 1 only; e: F32 [3, 8], one
    tile, 1 level (M = 3, S = 0) with flags 0 (its tables a tensor-wide zstd chunk) under an exact top layer (S = 1)
    with flag 1 (its tables a tensor-wide zstd chunk); g: BF16 [6, 8] of two tiles (4 and 2 rows), every row's step
    byte different, 1 level (M = 3, tables a tensor-wide zstd chunk) with flag 1 in both tiles: tile 1's steps are
    part 0's items 4 and 5 (a decoder that took items 0 and 1 gets other values, and level 1's hash fails).
    .expected: the top of each tensor; .level0 .. .level2.expected: the levels below (a tensor at its own top when
    it has fewer)."""
    rng = Rng(0xF1A65)
    norm = Exact("norm.weight", "F32", [3], np.array([0.75, -1.5, 0], dtype="<f4").tobytes())
    # a: BF16, 2 refinement levels and an exact top layer, flags 3 everywhere
    ea, ca, Ba = [0x05, 0x2A, 0x47, 0x13], 16, -14
    xa = rf_weights(rng, Ba, ea, ca, 60)
    a = qrow("a.weight", "BF16", [4, ca], Ba, ea, rf_q(xa, Ba, ea, ca, 127), 4, scales_layout=INLINE)
    refine(a, 3, xa, tables_layout=INLINE, tables_codec=0, keep_mode1=True)
    refine(a, 9, xa, S=1, tables_layout=INLINE, tables_codec=0, keep_mode1=True)
    oa = et_bits("BF16", xa)
    for i, v in {5: 0x7F80, 6: 0xFFC1, 7: 0x8000, 20: 0x0001}.items():  # +Inf, a NaN, -0, a subnormal
        oa[i] = v
    exact_top(a, oa, S=3, keep_mode1=True)
    for k in (1, 2, 3):
        set_flags(a, k, 3)
    # b: F16, codes inline, 1 level with flag 2 only
    eb, cb, Bb = [0x10, 0x3C, 0x22], 10, -10
    xb = rf_weights(rng, Bb, eb, cb, 40)
    b = qrow("b.weight", "F16", [3, cb], Bb, eb, rf_q(xb, Bb, eb, cb, 127), 3, scales_layout=INLINE,
             codes_layout=INLINE)
    refine(b, 2, xb, tables_layout=INLINE, tables_codec=0, keep_mode1=True)
    set_flags(b, 1, 2)
    # c: F16, 1 level with flag 1 only (tables inline, codec 0, with items)
    ec, cc, Bc = [0x00, 0x31, 0x57, 0x1F], 8, -8
    xc = rf_weights(rng, Bc, ec, cc, 50)
    c = qrow("c.weight", "F16", [4, cc], Bc, ec, rf_q(xc, Bc, ec, cc, 127), 4, scales_layout=INLINE)
    refine(c, 3, xc, tables_layout=INLINE, tables_codec=0, keep_mode1=True)
    set_flags(c, 1, 1)
    # e: F32, a level of flags 0 under an exact top layer of flag 1 with tensor-wide zstd tables
    ee, ce, Be = [0x08, 0x3B, 0x61], 8, -6
    xe = rf_weights(rng, Be, ee, ce, 200)
    e = qrow("e.weight", "F32", [3, ce], Be, ee, rf_q(xe, Be, ee, ce, 2000), 3, code_item="U16",
             scales_layout=INLINE)
    refine(e, 3, xe, keep_mode1=True)  # tables: tensor-wide zstd (refine's default)
    oe = et_bits("F32", xe)
    oe[3], oe[10] = 0x7FC00001, 0x80000000
    exact_top(e, oe, S=1, tables_codec=1, keep_mode1=True)
    e.parts[-2].layout = TENSOR_WIDE
    set_flags(e, 2, 1)
    # g: BF16 of two tiles, flag 1 in both: each tile's slice of part 0
    eg, cg, Bg = [0x01, 0x12, 0x23, 0x34, 0x45, 0x56], 8, -16
    xg = rf_weights(rng, Bg, eg, cg, 80)
    g = qrow("g.weight", "BF16", [6, cg], Bg, eg, rf_q(xg, Bg, eg, cg, 127), 4, scales_layout=INLINE)
    refine(g, 3, xg, keep_mode1=True)
    set_flags(g, 1, 1)
    ts = [norm, a, b, c, e, g]
    # what the vector holds, as the docstring says
    flags = lambda t, k: [p[1] for p in t.parts[2 * k + 1].tile_stored]
    assert [flags(a, k) for k in (1, 2, 3)] == [[3]] * 3 and flags(b, 1) == [2] and flags(c, 1) == [1]
    assert flags(e, 1) == [0] and flags(e, 2) == [1] and flags(g, 1) == [1, 1]
    assert all(a.parts[2 * k].items == 0 for k in (1, 2, 3)) and b.parts[2].items == 0 and c.parts[2].items > 0
    assert [a.parts[2 * k].role for k in (1, 2, 3)] == [RESIDUAL, RESIDUAL, EXACT_TOP]
    assert e.parts[4].layout == TENSOR_WIDE
    assert all(t.parts[0].layout == INLINE and t.parts[0].codec == 0 for t in (a, b, c, e, g))
    assert len(a.levels) == 4 and len(e.levels) == 3 and a.rf[1]["S"] == 1 and a.et_S == 3 and e.et_S == 1
    assert all(p[0] == 1 for t in (a, b, c, e, g) for q in t.parts[3::2] for p in q.tile_stored)
    # g's tile 1 read with the steps of tile 0: other contexts (its stream then fails) or values (the vector tells
    # the slices apart)
    g.parts[0].data, keep = bytes(eg[:2] + eg[2:4] + eg[:2]), g.parts[0].data
    try:
        assert rf_decode(g, 1) != g.level_bytes[1]
    except Invalid:
        pass
    g.parts[0].data = keep
    fb, plen = st_file(ts)
    files = [(0, "model.safetensors", fb, plen, ts)]
    wcz = container2(files, minor=8)
    head = struct.unpack("<IIIBB", zread_manifest(wcz)[:14])
    # level 0: norm, a's codes, c's codes, e's codes, g's 2 tiles of codes (b's inline; every part 0 inline);
    # level 1: a, b, c 1 tile each, e's tables and tile, g's tables and 2 tiles; level 2: a 1, e's tables and 1;
    # level 3: a 1
    assert head == (1, 6, 1 + 1 + 1 + 1 + 2 + 1 + 1 + 1 + 2 + 3 + 1 + 2 + 1, 4, 0), head
    put(d, "lossy_refine_flags.wcz", wcz)
    put_levels(d, "lossy_refine_flags", files)
    put_bad(d, flag_bad())



def flag_bad():
    """2.8 files every reader must reject for the flags of a mode-1 payload (EXACT_TOP.md §5 "Flags", REFINE.md §3),
    checksum-valid everywhere, the level hashes the honest ones: an exact F32 tensor, then a BF16 qrow tensor [4, 16]
    of one tile (part 0 inline, codec 0) with a refinement level (M = 3) and, in some, an exact top layer (S = 1),
    each lying in one thing. *.codec: a tile the flags make invalid (seen when it is decoded); *.corrupt: a tables
    part of no items where the record does not allow one (seen when the manifest is decoded). Each fails rf_decode
    on its rule."""
    rows, cols = 4, 16

    def base(tiles=1, exact=False, scales_layout=INLINE, scales_codec=0):
        rng = Rng(0xBAD28)
        e = [(0x15 * r + 3) & 0xFF for r in range(rows)]
        x = rf_weights(rng, -18, e, cols, 80)
        t = qrow("w.weight", "BF16", [rows, cols], -18, e, rf_q(x, -18, e, cols, 127), rows if tiles == 1 else 2,
                 scales_layout=scales_layout, scales_codec=scales_codec)
        refine(t, 3, x, tables_layout=INLINE, tables_codec=0, keep_mode1=True)
        if exact:
            exact_top(t, et_bits("BF16", x), S=1, keep_mode1=True)
        assert all(p[0] == 1 for q in t.parts[3::2] for p in q.tile_stored)
        return t

    def one(t, why):
        rf_must_fail(t, why)
        return one_file([norm_exact(), t], minor=8)

    def patch(t, k, f, i=0):
        """Level k's tile i's payload p replaced by f(bytearray(p))."""
        cp = t.parts[2 * k + 1]
        cp.tile_stored[i] = bytes(f(bytearray(cp.tile_stored[i])))
        return t

    def setb(at, v):
        def f(p):
            p[at] = v
            return p
        return f

    out = {}
    # a flag bit other than 1 and 2 (codec): 4 on a refinement level's tile of flags 3, 128 on an exact top layer's
    # of flag 1 (its tables a part with items)
    out["refine_flags_bit4.codec"] = one(patch(set_flags(base(), 1, 3), 1, setb(1, 7)), "unknown flag")
    out["exact_top_flags_bit7.codec"] = one(patch(set_flags(base(exact=True), 2, 1), 2, setb(1, 0x81)),
                                            "unknown flag")
    # flag 1 (codec): part 0 not inline with codec 0: per row (its own chunk), or inline zstd (2.3)
    out["refine_flag1_scales_per_row.codec"] = one(set_flags(base(scales_layout=PER_ROW), 1, 1, check=False),
                                                   "flag 1 while part 0")
    out["refine_flag1_scales_zstd.codec"] = one(set_flags(base(scales_codec=1), 1, 3, check=False),
                                                "flag 1 while part 0")
    out["exact_top_flag1_scales_per_row.codec"] = one(
        set_flags(base(exact=True, scales_layout=PER_ROW), 2, 1, check=False), "flag 1 while part 0")
    # flag 2 iff the tables part has no items (codec): flag 2 while the tables part has them (the payload's tables
    # are the same); a tables part of no items and a tile without flag 2 (flag 1: no tables anywhere); and such a
    # level's tile in mode 0 (refinement: u8 0, the step bytes, the codes; exact top: u8 0, the residuals)
    out["refine_flag2_tables_items.codec"] = one(set_flags(base(), 1, 3, empty=False, check=False), "disagree")
    out["exact_top_flag2_tables_items.codec"] = one(set_flags(base(exact=True), 2, 2, empty=False, check=False),
                                                    "disagree")
    out["refine_tables_empty_no_flag2.codec"] = one(set_flags(base(), 1, 1, empty=True, check=False), "disagree")
    t = set_flags(base(), 1, 3)
    lv = t.rf[0]
    t.parts[3].tile_stored[0] = b"\x00" + bytes(t.parts[0].data) + b"".join(x.to_bytes(2, "little")
                                                                            for x in lv["codes"])
    out["refine_tables_empty_mode0.codec"] = one(t, "mode 0 on a level")
    t = set_flags(set_flags(base(exact=True), 1, 3), 2, 3)
    t.parts[5].tile_stored[0] = b"\x00" + b"".join(x.to_bytes(2, "little") for x in t.et_d[0])
    out["exact_top_tables_empty_mode0.codec"] = one(t, "mode 0 on a level")
    # tables_len beyond the payload (codec): by one byte; 0xFFFF
    t = set_flags(base(), 1, 3)
    n = len(t.parts[3].tile_stored[0]) - 10 + 1
    out["refine_flag2_tables_len_past.codec"] = one(patch(t, 1, lambda p: p[:8] + struct.pack("<H", n) + p[10:]),
                                                    "tables_len beyond")
    t = set_flags(set_flags(base(exact=True), 1, 3), 2, 3)
    out["exact_top_flag2_tables_len_ffff.codec"] = one(patch(t, 2, lambda p: p[:8] + b"\xff\xff" + p[10:]),
                                                       "tables_len beyond")
    # flag 2's tables of the other kind (codec): a refinement level carrying exact-top tables (a 4-byte head, the
    # lists read from byte 8: its M, 3 contexts' bytes, is out of range) and an exact top layer carrying refinement
    # tables (M's bytes read as lists: frequencies that do not sum to 2^P)
    t = base()
    lv = t.rf[0]
    t.parts[2].data = et_table_bytes(lv["tables"], lv["C"], lv["P"])
    out["refine_flag2_exact_tables.codec"] = one(set_flags(t, 1, 3, check=False), "step divisor M")
    t = base(exact=True)
    t.parts[4].data = rf_table_bytes(t.et_tables, t.et_C, t.et_P, 1, 3)
    out["exact_top_flag2_refine_tables.codec"] = one(set_flags(t, 2, 3, check=False), "sum to 2^P")
    # a tables part of no items (corrupt) in a tensor of two tiles (each tile with flag 2 and the tables), tensor-wide
    # (no chunk), or inline with codec 1 (2.3: a zstd frame of no bytes)
    out["refine_tables_empty_two_tiles.corrupt"] = one(set_flags(base(tiles=2), 1, 3, check=False),
                                                       "more than one tile")
    out["exact_top_tables_empty_two_tiles.corrupt"] = one(set_flags(base(tiles=2, exact=True), 2, 2, check=False),
                                                          "more than one tile")
    t = set_flags(base(), 1, 3)
    t.parts[2].layout = TENSOR_WIDE
    out["refine_tables_empty_tensor_wide.corrupt"] = one(t, "not inline with codec 0")
    t = set_flags(base(), 1, 3)
    t.parts[2].codec = 1
    assert t.parts[2].inline() == struct.pack("<I", len(zraw(b""))) + zraw(b"")
    out["refine_tables_empty_zstd.corrupt"] = one(t, "not inline with codec 0")
    t = set_flags(base(exact=True), 2, 3)
    t.parts[4].layout = TENSOR_WIDE
    out["exact_top_tables_empty_tensor_wide.corrupt"] = one(t, "not inline with codec 0")
    return out


# Version 2.9: chunk order 1 (FORMAT.md §4, §4.3): the model's levels are steps, each bringing one tensor level or a
# few; the manifest lists, for each tensor of more than one level, the step of each of its levels above 0.

ORDER_STEPS = {"a.weight": [3, 4], "b.weight": [1, 2], "c.weight": [3, 5]}  # lossy_order's steps


def step_level(arrive, K):
    """The level of a tensor whose levels arrive at steps `arrive` (level 0 at 0) in the model at step K: the highest
    of its levels arrived by K (FORMAT.md §4.3)."""
    return max(L for L, s in enumerate(arrive) if s <= K)


def order_read(wcz, ts):
    """Reads back the 2.9 head of wcz (a one-file container of tensors ts, the manifest's tensor order) as a reader
    would, and checks the chunks against it: each tensor's levels' steps from the list (rising from 1, below
    level_count, every step held), then for each step K, level_first_chunk[K] and, in tensor order, the chunks of the
    tensor levels arriving at K (the stored bytes at those positions of the index: tensor_chunks of that level).
    Returns {tensor name: its levels' steps} and level_count."""
    m = zread_manifest(wcz)
    nchunks, lc, order = struct.unpack("<IBB", m[8:14])
    assert order == 1 and struct.unpack("<H", m[14:16])[0] == 0
    lfc = list(struct.unpack("<%dI" % lc, m[16:16 + 4 * lc]))
    pos = 16 + 4 * lc
    count = struct.unpack("<I", m[pos:pos + 4])[0]
    lst = list(m[pos + 4:pos + 4 + count])
    arrive, at = {}, 0
    for t in ts:
        nl = len(t.levels) if isinstance(t, Lossy) else 1
        arrive[t.name] = [0] + lst[at:at + nl - 1]
        at += nl - 1
        a = arrive[t.name]
        assert all(x < y for x, y in zip(a, a[1:])) and a[-1] < lc, (t.name, a)
    assert at == count
    assert {s for a in arrive.values() for s in a[1:]} == set(range(1, lc))  # every step holds a tensor level
    # the chunks as the index places them
    io, ist = struct.unpack("<QQ", wcz[-64:-48])
    index = zstd_content(wcz[io:io + ist])
    assert struct.unpack("<Q", index[:8])[0] == nchunks
    stored = []
    for seq in range(nchunks):
        off, sz, raw, _ = struct.unpack("<QIIQ", index[8 + 24 * seq:32 + 24 * seq])
        assert struct.unpack("<I", wcz[off - 16:off - 12])[0] == sz and struct.unpack("<I", wcz[off - 12:off - 8])[0] == seq
        stored.append((wcz[off:off + sz], raw))
    n = 0
    for K in range(lc):
        assert lfc[K] == n, (K, lfc, n)
        for t in ts:
            for L, s in enumerate(arrive[t.name]):
                if s == K:
                    want = [(st, raw) for lv, st, raw in tensor_chunks(t) if lv == L]
                    assert stored[n:n + len(want)] == want, (t.name, L, K)
                    n += len(want)
    assert n == nchunks
    return arrive, lc


def order_tensors():
    """lossy_order's tensors: an exact F32 norm; a: BF16 [6, 8], 2 tiles of 3 rows, 2 refinement levels (M = 3, S = 0;
    M = 7, S = 1; tables tensor-wide zstd chunks); p: a plain qrow BF16 [2, 8] (one level: no steps); b: F16 [2, 8],
    one tile, 1 refinement level (M = 2, tables inline codec 0) and an exact top layer (S = 1, tables inline, its tile in mode 1) over it;
    c: F32 [4, 6], 2 tiles of 2 rows, 2 refinement levels (M = 3, S = 2; M = 7, S = 0; tables tensor-wide zstd)."""
    rng = Rng(0x0D3E9)
    norm = Exact("norm.weight", "F32", [5], np.array([1, -0.5, 0, 3.25, -2e-3], dtype="<f4").tobytes())
    ea, ca, Ba = [0x07, 0x1C, 0x33, 0x00, 0x48, 0x2E], 8, -18
    xa = rf_weights(rng, Ba, ea, ca, 60)
    a = qrow("a.weight", "BF16", [6, ca], Ba, ea, rf_q(xa, Ba, ea, ca, 127), 3)
    refine(a, 3, xa)
    refine(a, 7, xa, S=1)
    p = qrow("p.weight", "BF16", [2, 8], -12, [0x21, 0x09], [((i * 23) % 51) - 25 for i in range(16)], 2)
    eb, cb, Bb = [0x14, 0x3A], 8, -12
    xb = rf_weights(rng, Bb, eb, cb, 40)
    b = qrow("b.weight", "F16", [2, cb], Bb, eb, rf_q(xb, Bb, eb, cb, 127), 2)
    refine(b, 2, xb, tables_layout=INLINE, tables_codec=0)
    ob = et_bits("F16", xb)
    ob[3], ob[12] = 0x8000, 0x7E01  # -0 and a NaN the levels below do not hold
    exact_top(b, ob, S=1, keep_mode1=True)
    ec, cc, Bc = [0x13, 0x27, 0x3B, 0x05], 6, -10
    xc = rf_weights(rng, Bc, ec, cc, 1000)
    c = qrow("c.weight", "F32", [4, cc], Bc, ec, rf_q(xc, Bc, ec, cc, 2000), 2, code_item="U16")
    refine(c, 3, xc, S=2)
    refine(c, 7, xc)
    return [norm, a, p, b, c]


def order_vectors(d):
    """lossy_order (2.9, chunk order 1): order_tensors() with the steps ORDER_STEPS: b's level 1 at step 1 and its
    exact top (level 2) at step 2, before a's and c's level 1, which share step 3 (a's chunks, then c's); a's level 2
    at 4, c's level 2 at 5 (level_count 6; the step list 3 4 1 2 3 5: a, b, c in tensor order, p of one level has
    none). .expected: the model at step 5 (every tensor at its top); .level0 .. .level4.expected: the model at each
    step below (each tensor at the highest of its levels arrived by then)."""
    ts = order_tensors()
    norm, a, p, b, c = ts
    assert [len(t.levels) for t in (a, p, b, c)] == [3, 1, 3, 3] and b.parts[-1].role == EXACT_TOP
    assert [-(-t.shape[0] // t.tile_rows) for t in (a, b, c)] == [2, 1, 2]  # tiles
    fb, plen = st_file(ts)
    files = [(0, "model.safetensors", fb, plen, ts)]
    wcz = container2(files, minor=9, chunk_order=1, steps=ORDER_STEPS)
    arrive, lc = order_read(wcz, ts)
    assert lc == 6 and {k: v[1:] for k, v in arrive.items() if len(v) > 1} == ORDER_STEPS
    head = struct.unpack("<IIIBB", zread_manifest(wcz)[:14])
    # step 0: norm 1, a 2 tiles x 2, p 1 x 2, b 1 x 2, c 2 x 2; step 1: b's level 1 (tables inline) 1; step 2: b's exact
    # top (tables inline) 1; step 3: a's tables and 2 tiles, c's tables and 2 tiles; step 4: a 3; step 5: c 3
    assert head == (1, 5, 13 + 1 + 1 + 6 + 3 + 3, 6, 1), head
    # a tensor's level 2 (b's) before another's level 1 (a's, c's): not level-major
    assert arrive["b.weight"][2] < arrive["a.weight"][1]
    put(d, "lossy_order.wcz", wcz)
    for t in ts:
        if isinstance(t, Lossy):
            for L in range(len(t.levels)):
                assert H(level_out(t, L)) == t.levels[L][0]
                assert not hasattr(t, "level_bytes") or rf_decode(t, L) == t.level_bytes[L]
    put(d, "lossy_order.expected", fb)
    prev = None
    for K in range(lc - 1):
        lv = fb[:plen] + b"".join(level_out(t, step_level(arrive[t.name], K)) for t in ts)
        assert len(lv) == len(fb) and lv != fb and lv != prev  # each step changes the model
        put(d, "lossy_order.level%d.expected" % K, lv)
        prev = lv
    put_bad(d, order_bad(ts))


def order_bad(ts):
    """2.9 files every reader must reject (corrupt, seen when the manifest is decoded), checksum-valid everywhere,
    each lying in one thing about chunk order 1 (FORMAT.md §4, §4.3); ts: lossy_order's tensors (order_tensors()),
    whose chunks are in the order of the steps given (level_count and level_first_chunk derived from them) unless
    the case lies there."""
    fb, plen = st_file(ts)
    files = [(0, "model.safetensors", fb, plen, ts)]

    def one(steps=None, **kw):
        st = dict(ORDER_STEPS)
        st.update(steps or {})
        return container2(files, minor=9, chunk_order=kw.pop("chunk_order", 1), steps=st, **kw)

    good = list(bytes(s for n in ("a.weight", "b.weight", "c.weight") for s in ORDER_STEPS[n]))
    assert good == [3, 4, 1, 2, 3, 5]
    # the level_first_chunk of 6 steps in a level-major spirit (every level 1 before every level 2: a's level 1 at 1,
    # b's and c's at 2; a's level 2 at 3, b's at 4, c's at 5), put in lossy_order (its steps and chunks)
    by_level = {"a.weight": [1, 3], "b.weight": [2, 4], "c.weight": [2, 5]}
    lfc_lm = list(struct.unpack("<6I", zread_manifest(container2(files, minor=9, chunk_order=1, steps=by_level))[16:40]))
    honest = list(struct.unpack("<6I", zread_manifest(one())[16:40]))
    assert honest == [0, 13, 14, 15, 21, 24] and lfc_lm == [0, 13, 16, 20, 23, 24], (honest, lfc_lm)
    one_level = [t for t in ts if not isinstance(t, Lossy) or len(t.levels) == 1]
    ofb, oplen = st_file(one_level)
    out = {
        "order_chunk_order_2.corrupt": one(chunk_order=2),  # reserved
        # the list one byte short (its count says so: c's level 2 has no step) and one byte long (a step no level has)
        "order_steps_short.corrupt": one(step_list=good[:-1]),
        "order_steps_long.corrupt": one(step_list=good + [5]),
        # step_count past the manifest: the bytes after the count field + 1, and 2^32 - 1
        "order_step_count_past_end.corrupt": one(step_count=lambda rest: rest + 1),
        "order_step_count_max.corrupt": one(step_count=0xFFFFFFFF),
        # a tensor's steps not rising: a's levels 1 and 2 both at step 4 (step 3: c's level 1), or 4 then 3
        "order_steps_equal.corrupt": one({"a.weight": [4, 4]}),
        "order_steps_falling.corrupt": one({"a.weight": [4, 3]}),
        # b's level 1 at step 0 (a's level 1 at 1 keeps every step held)
        "order_step_0.corrupt": one({"a.weight": [1, 4], "b.weight": [0, 2]}),
        # c's level 2 at step 6 in a file of level_count 6 (level_first_chunk: the first 6 of the 7 the steps give)
        "order_step_level_count.corrupt": one({"c.weight": [3, 6]}, level_count=6,
                                              level_first_chunk=honest),
        # c's level 2 at step 6 (level_count 7): step 5 holds no tensor level
        "order_step_empty.corrupt": one({"c.weight": [3, 6]}),
        # level_first_chunk: the numbers of the level-by-level steps above, or lossy_order's with step 4's start one
        # chunk late
        "order_lfc_level_major.corrupt": one(level_first_chunk=lfc_lm),
        "order_lfc_off.corrupt": one(level_first_chunk=honest[:4] + [honest[4] + 1] + honest[5:]),
        # chunk order 1 in a file of tensors of one level each (no step listed) with level_count 2: step 1 is empty
        "order_one_level_empty.corrupt": container2([(0, "model.safetensors", ofb, oplen, one_level)], minor=9,
                                                    chunk_order=1, steps={}, level_count=2,
                                                    level_first_chunk=[0, 3]),
    }
    return out


# ---------------------------------------------------------------------------------------------
# Versions 1.8 and 2.13: pools (FORMAT.md §4.5, §4.6, §6 codec 9). The manifest's extension list holds one
# extension of type 1 (flags 0, length its data's size) whose data is u32 pool_count (1 to 64) and per pool u8 dtype
# (BF16, F16, F32, F8_E4M3 or F8_E5M2, distinct), u8 codec (0-5, 7 or 8), u16 reserved 0, u32 stored_size and the
# payload: one chunk of that codec and dtype whose raw bytes are the pool's members' bytes, concatenated in tensor
# order. The members of a dtype's pool are the inline exact tensors (repr 0, byte_size > 0, chunk_size 0) of codec 9
# and that dtype, whose records have stored_size 0 and no payload. A pool's raw size is 1 to 2^24 and at most
# 64 x stored_size + 2^16; its stored_size at most §5's bound. Written from the spec alone: pool_read() below reads a
# container as the spec says (every rule of §4.5 and §4.6 it names), decodes each pool and rebuilds the files from it;
# every good vector is read back by it to its expected bytes and every bad one fails it on the rule it breaks.

POOLED, EXT_POOLS = 9, 1  # codec 9 (pooled), extension type 1 (the pools)
POOL_DTYPES = ("BF16", "F16", "F32", "F8_E4M3", "F8_E5M2")
POOL_CODECS = (0, 1, FANS, TRIM, MIXED, PATCH, GROUPS, PAIRS)  # 0-5, 7, 8
DTYPE_OF = {v[0]: k for k, v in DTYPES.items()}


def member(name, dtype, shape, raw, **kw):
    """A pool member (§4.2, §4.6): an inline exact tensor of codec 9, stored_size 0 and no payload."""
    return Exact(name, dtype, shape, raw, codec=POOLED, inline=True, stored=[b""], **kw)


def pool_raw(ts, dtype):
    """The raw bytes of dtype's pool: its members' bytes in tensor order (§4.6)."""
    return b"".join(t.raw for t in ts if isinstance(t, Exact) and t.inline and t.codec == POOLED and t.dtype == dtype)


def pool_entry(dtype, codec, payload, reserved=0, stored_size=None):
    """One Pool of extension type 1's data (§4.6); stored_size and reserved may lie."""
    return struct.pack("<BBHI", DTYPES[dtype][0], codec, reserved, len(payload) if stored_size is None else stored_size) + payload


def extension(data, type_=EXT_POOLS, flags=0, length=None):
    """One Extension (§4.5): u16 type, u16 flags, u32 length (its data's size unless it lies), data."""
    return struct.pack("<HHI", type_, flags, len(data) if length is None else length) + data


def pool_data(pools, count=None):
    """Extension type 1's data: u32 pool_count (len(pools) unless it lies), then the pools."""
    return struct.pack("<I", len(pools) if count is None else count) + b"".join(pools)


def ext_list(*exts):
    """The manifest's tail: u32 extension_count and the extensions."""
    return struct.pack("<I", len(exts)) + b"".join(exts)


def pool_payload(raw, dtype, codec, **opt):
    """A payload of raw as one chunk of codec: 0 the bytes, 1 a zstd frame, 2 float-ans (z = 0), 3 float-ans-trim
    (z: the zero low mantissa bits), 8 a mode-6 payload (FP8 pairs); each decoded back by pool_decode()."""
    if codec == 0:
        p = raw
    elif codec == 1:
        p = zraw(raw)
    elif codec in (FANS, TRIM):
        o = dict(k=1, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1)
        o.update(opt)
        p = fans_encode(to_vals(raw, dtype), dtype, z=0 if codec == FANS else None, **o)
    else:
        assert codec == PAIRS
        o = dict(k=3, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1)
        o.update(opt)
        p = pairs_payload(to_vals(raw, dtype), dtype, **o)
    assert pool_decode(p, dtype, codec, len(raw)) == raw
    return p


def pool_decode(p, dtype, codec, raw_size):
    """A pool's payload decoded as one chunk of its codec and dtype (§4.6, §6) -> exactly raw_size bytes, or Invalid."""
    if codec == 0:
        out = p  # §6: stored_size = raw size
    elif codec == 1:
        out, end = zstd_frame_at(p, 0)
        if end != len(p):
            raise Invalid("zstd payload: bytes after its one frame")
    else:
        out = chunk_decode(p, dtype, raw_size, codec)
    if len(out) != raw_size:
        raise Invalid("pool of %s decodes to %d bytes, not its raw size %d" % (dtype, len(out), raw_size))
    return out


class Cur:
    """A cursor over manifest bytes; reading past the end is Invalid."""

    def __init__(self, b, pos=0, end=None):
        self.b, self.pos, self.end = b, pos, len(b) if end is None else end

    def take(self, n, what="manifest"):
        if n > self.end - self.pos:
            raise Invalid("%s runs past its end" % what)
        v = self.b[self.pos:self.pos + n]
        self.pos += n
        return v

    def u(self, fmt, what="manifest"):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def pool_read(wcz):
    """Reads a container (1.x, or 2.x of one level) as FORMAT.md says, with every rule of §4.5 and §4.6: the type-1
    extension, its pools, codec 9's records; decodes each pool and slices its members' bytes (§4.6), decodes every
    other exact tensor (inline payloads and chunks, codecs 0-5, 7, 8) and rebuilds each file as its prefix and its
    tensors' bytes (§4.1), checked against the file record's size and XXH3-64. A lossy tensor's bytes are not
    decoded (None; its chunks are skipped). Returns dict(major, minor, files: [(name, bytes or None)], tensors:
    {name: bytes or None}, pools: [(dtype, codec, raw)]), or raises Invalid naming the rule broken."""
    major, minor = struct.unpack_from("<HH", wcz, 8)
    ms, mr = struct.unpack_from("<QQ", wcz, 16)
    assert wcz[:8] == b"\x89WCZ\r\n\x1a\n" and H(wcz[:56]) == struct.unpack_from("<Q", wcz, 56)[0]
    assert H(wcz[64:64 + ms]) == struct.unpack_from("<Q", wcz, 32)[0]
    m, end = zstd_frame_at(wcz[64:64 + ms], 0)
    assert end == ms and len(m) == mr
    c = Cur(m)
    if major == 1:
        nfiles, ntensors, nchunks, res = c.u("IIII")
        assert res == 0
    else:
        nfiles, ntensors, nchunks, lc, order, res = c.u("IIIBBH")
        assert lc == 1 and order == 0 and res == 0 and c.u("I") == (0,)  # this reader: one level
    files = []
    for _ in range(nfiles):
        kind, _r = c.u("BB")
        name = c.take(c.u("H")[0]).decode()
        size, xxh, first, count, plen = c.u("QQIIQ")
        files.append((name, size, xxh, first, count, c.take(plen)))
    tensors = []
    for _ in range(ntensors):
        t = dict(name=c.take(c.u("H")[0]).decode())
        did, t["codec"], rank, t["repr"] = c.u("BBBB")
        t["dtype"] = DTYPE_OF[did]
        t["shape"] = list(c.u("%dQ" % rank)) if rank else []
        t["size"], t["chunk_size"], pl = c.u("QIH")
        assert t["size"] == byte_size(t["dtype"], t["shape"])
        t["params"] = c.take(pl)
        t["inline"] = t["repr"] == 0 and t["size"] > 0 and t["chunk_size"] == 0
        t["parts"] = []
        if t["inline"]:
            t["stored"] = c.take(c.u("I")[0], "an inline tensor's payload")
        elif t["repr"] == 0:
            t["chunks"] = -(-t["size"] // t["chunk_size"]) if t["size"] else 0
        else:
            npart, nlev, res = c.u("BBH")
            assert nlev == 1 and res == 0
            rows, cols = t["shape"][0], math.prod(t["shape"][1:])
            tiles, t["chunks"] = -(-rows // t["chunk_size"]), 0
            for _ in range(npart):
                role, lev, codec, layout, item, group, ppl = c.u("BBBBBBH")
                c.take(ppl)
                items = c.u("Q")[0]
                if layout == INLINE:
                    c.take(items * DTYPES[DTYPE_OF[item]][1] // 8 if codec == 0 else c.u("I")[0])
                elif layout == TENSOR_WIDE:
                    t["chunks"] += 1 if items else 0
                else:
                    t["chunks"] += tiles
                t["parts"].append(codec)
            c.take(16 * nlev)
        tensors.append(t)
    # §4.5: the extensions; type 1 (1.8, 2.13): not critical (flags 0), at most one, length = its data's size (§4.6)
    pools, seen_type1 = [], False
    for _ in range(c.u("I")[0]):
        typ, flags, length = c.u("HHI")
        data = c.take(length, "an extension")
        if flags & ~1:
            raise Invalid("extension flags: reserved bits 1-15 set")
        if typ != EXT_POOLS:
            if flags & 1:
                raise Invalid("unknown critical extension")
            continue
        if seen_type1:
            raise Invalid("a second extension of type 1")
        seen_type1 = True
        if flags:
            raise Invalid("extension type 1 is not critical: flags must be 0")
        pc = Cur(data)
        count = pc.u("I", "the pool list")[0]
        if not 1 <= count <= 64:
            raise Invalid("pool_count %d not in 1..64" % count)
        for _ in range(count):
            did, codec, res, stored = pc.u("BBHI", "the pool list")
            pools.append(dict(dtype=DTYPE_OF.get(did, did), codec=codec, reserved=res,
                              payload=pc.take(stored, "the pool list")))
        if pc.pos != len(data):
            raise Invalid("the pool list ends before the extension's length")
    if c.pos != len(m):
        raise Invalid("bytes after the last extension")
    # §4.6: the pools' fields
    for p in pools:
        if p["dtype"] not in POOL_DTYPES:
            raise Invalid("pool dtype %s is not BF16, F16, F32, F8_E4M3 or F8_E5M2" % p["dtype"])
        if p["codec"] not in POOL_CODECS:
            raise Invalid("pool codec %d is not 0-5, 7 or 8" % p["codec"])
        if p["reserved"]:
            raise Invalid("pool reserved field not zero")
    dts = [p["dtype"] for p in pools]
    if len(set(dts)) != len(dts):
        raise Invalid("two pools of one dtype")
    # §4.2, §4.6: codec 9
    for t in tensors:
        if 9 in t["parts"]:
            raise Invalid("codec 9 as a part's codec")
        if t["codec"] != POOLED:
            continue
        if t["repr"] != 0:
            raise Invalid("codec 9 on a lossy tensor")
        if t["size"] == 0:
            raise Invalid("codec 9 tensor of byte_size 0")
        if not t["inline"]:
            raise Invalid("codec 9 tensor not inline (chunk_size != 0)")
        if t["stored"]:
            raise Invalid("codec 9 tensor with stored_size != 0")
        if t["dtype"] not in dts:
            raise Invalid("codec 9 tensor whose dtype %s has no pool" % t["dtype"])
    out_pools = []
    for p in pools:
        ms_ = [t for t in tensors if t["codec"] == POOLED and t["dtype"] == p["dtype"]]
        raw, stored = sum(t["size"] for t in ms_), len(p["payload"])
        if raw < 1:
            raise Invalid("pool of %s has no member" % p["dtype"])
        if raw > 1 << 24:
            raise Invalid("pool raw size %d > 2^24" % raw)
        if raw > 64 * stored + (1 << 16):
            raise Invalid("pool raw size %d > 64 x stored_size %d + 2^16" % (raw, stored))
        if stored > bound(raw):
            raise Invalid("pool stored_size %d beyond the §5 bound %d" % (stored, bound(raw)))
        # the pools are decoded when the manifest is read
        dec, pos = pool_decode(p["payload"], p["dtype"], p["codec"], raw), 0
        for t in ms_:
            t["bytes"] = dec[pos:pos + t["size"]]
            pos += t["size"]
        out_pools.append((p["dtype"], p["codec"], dec))
    # the chunks, in order (one level: tensor order), as the index places them
    io, ist = struct.unpack_from("<QQ", wcz, len(wcz) - 64)
    index = zstd_frame_at(wcz[io:io + ist], 0)[0]
    assert struct.unpack_from("<Q", index)[0] == nchunks == sum(t.get("chunks", 0) for t in tensors)
    seq = 0
    for t in tensors:
        if t["codec"] == POOLED:
            continue
        if t["inline"]:
            t["bytes"] = pool_decode(t["stored"], t["dtype"], t["codec"], t["size"])
            continue
        got = []
        for j in range(t["chunks"]):
            off, sz, rawlen, xh = struct.unpack_from("<QIIQ", index, 8 + 24 * seq)
            assert struct.unpack_from("<IIQ", wcz, off - 16) == (sz, seq, xh) and H(wcz[off:off + sz]) == xh
            seq += 1
            if t["repr"] == 0:
                got.append(pool_decode(wcz[off:off + sz], t["dtype"], t["codec"], rawlen))
        t["bytes"] = b"".join(got) if t["repr"] == 0 else None
        assert t["bytes"] is None or len(t["bytes"]) == t["size"]
    out = []
    for name, size, xxh, first, count, prefix in files:
        ts = tensors[first:first + count]
        fb = None if any(t["bytes"] is None for t in ts) else prefix + b"".join(t["bytes"] for t in ts)
        assert fb is None or (len(fb), H(fb)) == (size, xxh), name
        out.append((name, fb))
    return dict(major=major, minor=minor, files=out, tensors={t["name"]: t["bytes"] for t in tensors}, pools=out_pools)


def pool_container(ts, pools, major=1, minor=8, files=None, extensions=None):
    """A one-file container (or files: container2's list) of tensors ts whose extension list is one type-1 extension of
    the pools given [(dtype, codec, payload) or the bytes of a Pool], unless extensions (the bytes) say otherwise."""
    if files is None:
        fb, plen = st_file(ts)
        files = [(0, "model.safetensors", fb, plen, ts)]
    if extensions is None:
        extensions = ext_list(extension(pool_data([p if isinstance(p, bytes) else pool_entry(*p) for p in pools])))
    return container2(files, major=major, minor=minor, extensions=extensions)


def pool_good():
    """pooled (1.8): one safetensors file of 16 tensors, in data order (the pools' members in capitals of the table):
    embed.weight F16 [16, 8] chunked, zstd, 2 chunks of 128 bytes; l0.norm F16 [32] pooled; l0.bias BF16 [6] pooled;
    l0.scale F32 [4] pooled; l0.inline F16 [12] inline float-ans (an F16 tensor that is not a member); l0.q F8_E4M3 [9]
    pooled; l1.norm F16 [24] pooled; l1.empty F16 [0] (raw, no chunk); l1.bias BF16 [3] pooled; l1.raw F32 [2] inline
    raw (not a member); l1.q F8_E5M2 [7] pooled; l1.scale F32 [6] pooled; l1.weight BF16 [4, 32] raw, 4 chunks of 64;
    head.norm F16 [8] pooled; head.q F8_E4M3 [4] pooled; head.q2 F8_E5M2 [1] pooled. Five pools, listed in the
    extension as F32 (codec 3, float-ans-trim: BF16 values, z = 16), F16 (codec 2, float-ans, 64 elements), F8_E5M2
    (codec 0, raw), BF16 (codec 1, zstd) and F8_E4M3 (codec 8, mode 6: 13 elements, 6 pairs and a tail): not in
    dtype-id order, and each pool's members are not adjacent in the file."""
    rng = Rng(0x9001)
    w = lambda dt, n, scale=0, zero_low=0: to_raw([weight(rng, dt, scale, zero_low) for _ in range(n)], dt)
    f32b = lambda n: w("F32", n, 0, 16)  # F32 values that are BF16 values: the low 16 mantissa bits zero
    l0_inline = w("F16", 12, -2)
    ts = [Exact("embed.weight", "F16", [16, 8], w("F16", 128, -3), codec=1, chunk_size=128),
          member("l0.norm", "F16", [32], w("F16", 32)),
          member("l0.bias", "BF16", [6], w("BF16", 6, -4)),
          member("l0.scale", "F32", [4], f32b(4)),
          Exact("l0.inline", "F16", [12], l0_inline, codec=FANS, inline=True,
                stored=[pool_payload(l0_inline, "F16", FANS)]),
          member("l0.q", "F8_E4M3", [9], w("F8_E4M3", 9)),
          member("l1.norm", "F16", [24], w("F16", 24, 1)),
          Exact("l1.empty", "F16", [0], b""),
          member("l1.bias", "BF16", [3], w("BF16", 3, -4)),
          Exact("l1.raw", "F32", [2], w("F32", 2), inline=True),
          member("l1.q", "F8_E5M2", [7], w("F8_E5M2", 7)),
          member("l1.scale", "F32", [6], f32b(6)),
          Exact("l1.weight", "BF16", [4, 32], w("BF16", 128, -5), chunk_size=64),
          member("head.norm", "F16", [8], w("F16", 8)),
          member("head.q", "F8_E4M3", [4], w("F8_E4M3", 4)),
          member("head.q2", "F8_E5M2", [1], w("F8_E5M2", 1))]
    codecs = {"F32": TRIM, "F16": FANS, "F8_E5M2": 0, "BF16": 1, "F8_E4M3": PAIRS}
    pools = []
    for dt, codec in codecs.items():
        raw = pool_raw(ts, dt)
        opt = dict(k=2) if dt == "F32" else {}
        pools.append((dt, codec, pool_payload(raw, dt, codec, **opt)))
    assert pools[0][2][3] >> 2 == 16  # the F32 pool's trim z
    assert [len(pool_raw(ts, dt)) for dt in codecs] == [40, 128, 8, 18, 13]
    return ts, pools


def pool_check(wcz, files, pools, minor):
    """pool_read() reads wcz back to the files [(name, bytes)] (None: not rebuilt, a lossy tensor) and the pools
    [(dtype, codec, payload)] given, in a container of that minor version."""
    r = pool_read(wcz)
    assert r["minor"] == minor
    assert [(n, b) for n, b in r["files"]] == files
    assert [(dt, codec) for dt, codec, _ in r["pools"]] == [(dt, codec) for dt, codec, _ in pools]
    return r


def pool_vectors(d):
    """pooled (1.8, pool_good()); pooled_shards (1.8): a shard index (blob, zstd) and two shards whose F16 members
    (codec 2 pool) and BF16 members (codec 0 pool) lie in both, so a pool spans files: a.safetensors x.norm F16 [10]
    pooled, x.weight F32 [8] raw chunk, x.bias BF16 [4] pooled; b.safetensors y.norm F16 [6] pooled, y.bias BF16 [5]
    pooled, y.inline F16 [4] inline zstd (not a member). pooled_lossy (2.13): norm.weight F32 [8] pooled, mid.weight
    qrow BF16 [3, 8] (2 tiles), mid.bias F16 [24] pooled, head.weight F32 [40] zstd chunks of 64, tail.norm F32 [4]
    pooled; pools F16 (codec 2) then F32 (codec 1). pooled_bound (1.8): an F8_E4M3 pool of two members, [65536] and
    [1344] zeros (66880 bytes), whose zstd payload (two RLE blocks) is 21 bytes: raw size = 64 x 21 + 2^16 exactly,
    the most §4.6 allows. Then pool_bad()."""
    ts, pools = pool_good()
    fb, plen = st_file(ts)
    wcz = pool_container(ts, pools)
    r = pool_check(wcz, [("model.safetensors", fb)], pools, 8)
    assert all(r["tensors"][t.name] == t.raw for t in ts)
    m = zread_manifest(wcz)
    assert struct.unpack("<IIII", m[:16]) == (1, 16, 2 + 4, 0)  # only embed.weight's and l1.weight's chunks
    put(d, "pooled.wcz", wcz)
    put(d, "pooled.expected", fb)
    # pooled_shards: a pool spans files (tensor order is over the whole container)
    rng = Rng(0x9002)
    w = lambda dt, n, scale=0: to_raw([weight(rng, dt, scale) for _ in range(n)], dt)
    y_inline = w("F16", 4)
    a = [member("x.norm", "F16", [10], w("F16", 10)), Exact("x.weight", "F32", [8], w("F32", 8), chunk_size=64),
         member("x.bias", "BF16", [4], w("BF16", 4, -3))]
    b = [member("y.norm", "F16", [6], w("F16", 6, 2)), member("y.bias", "BF16", [5], w("BF16", 5, -3)),
         Exact("y.inline", "F16", [4], y_inline, codec=1, inline=True)]
    sa, pa = st_file(a)
    sb, pb = st_file(b)
    idx = shard_index({**{t.name: "a.safetensors" for t in a}, **{t.name: "b.safetensors" for t in b}})
    blob = [Exact("model.safetensors.index.json", "U8", [len(idx)], idx, codec=1, chunk_size=128)]
    files = [(1, "model.safetensors.index.json", idx, 0, blob), (0, "a.safetensors", sa, pa, a),
             (0, "b.safetensors", sb, pb, b)]
    sts = blob + a + b
    spools = [("F16", FANS, pool_payload(pool_raw(sts, "F16"), "F16", FANS)),
              ("BF16", 0, pool_payload(pool_raw(sts, "BF16"), "BF16", 0))]
    assert pool_raw(sts, "F16") == a[0].raw + b[0].raw and pool_raw(sts, "BF16") == a[2].raw + b[1].raw
    swcz = pool_container(None, spools, files=files)
    pool_check(swcz, [(f[1], f[2]) for f in files], spools, 8)
    put(d, "pooled_shards.wcz", swcz)
    for f in files:
        put(d, "pooled_shards." + f[1] + ".expected", f[2])
    # pooled_lossy (2.13)
    lts = [member("norm.weight", "F32", [8], np.array([1, 0.5, -2.25, 3e-3, 0, -0.0, 1e30, -7.5], dtype="<f4").tobytes()),
           qrow("mid.weight", "BF16", [3, 8], -10, [0x45, 0x00, 0x9C],
                [1, -1, 2, -2, 3, -3, 4, -4, 0, 10, -10, 100, -100, 127, -128, 17, 19, 21, -23, 25, 27, -29, 31, 33], 2),
           member("mid.bias", "F16", [24], np.linspace(-1, 1, 24).astype("<f2").tobytes()),
           Exact("head.weight", "F32", [40], np.arange(-20, 20, dtype="<f4").tobytes(), codec=1),
           member("tail.norm", "F32", [4], np.array([1, 2, 3, 4], dtype="<f4").tobytes())]
    lfb, lplen = st_file(lts)
    lpools = [("F16", FANS, pool_payload(pool_raw(lts, "F16"), "F16", FANS)),
              ("F32", 1, pool_payload(pool_raw(lts, "F32"), "F32", 1))]
    lwcz = pool_container(lts, lpools, major=2, minor=13)
    r = pool_check(lwcz, [("model.safetensors", None)], lpools, 13)
    assert all(r["tensors"][t.name] == t.raw for t in lts if isinstance(t, Exact))
    assert struct.unpack("<IIIBBHI", zread_manifest(lwcz)[:20]) == (1, 5, 4 + 3, 1, 0, 0, 0)  # qrow 2 tiles x 2, head.weight 3
    put(d, "pooled_lossy.wcz", lwcz)
    put(d, "pooled_lossy.expected", lfb)
    # pooled_bound: raw size at the §4.6 limit 64 x stored_size + 2^16
    bts, bpools = pool_bound(0)
    bfb, _ = st_file(bts)
    bwcz = pool_container(bts, bpools)
    pool_check(bwcz, [("model.safetensors", bfb)], bpools, 8)
    put(d, "pooled_bound.wcz", bwcz)
    put(d, "pooled_bound.expected", bfb)
    put_bad(d, pool_bad())


def pool_bound(over):
    """Two F8_E4M3 members of zeros, [65536] and [1344 + over], and their pool: one zstd frame of two RLE blocks
    (21 bytes), so the raw size is 64 x 21 + 2^16 + over."""
    n = 1344 + over
    ts = [member("big.q", "F8_E4M3", [65536], bytes(65536)), member("small.q", "F8_E4M3", [n], bytes(n))]
    p = zframe(bytes(65536 + n), rle=2)
    assert len(p) == 21 and zstd_frame_at(p, 0) == (bytes(65536 + n), 21) and 65536 + n == 64 * 21 + 65536 + over
    return ts, [("F8_E4M3", 1, p)]


def pool_bad():
    """1.8 files every reader must reject when the manifest is read (corrupt), checksum-valid everywhere (the file
    records' sizes and XXH3-64 are the intended files'), each breaking one rule of §4.5 or §4.6 (pool_count 65: one
    pool follows, so the list also runs past the extension); pool_part_codec_9 is 2.13. pool_read() refuses each on that rule. The base file:
    a.norm F16 [8] pooled, b.weight F32 [16] raw chunk, c.bias BF16 [6] pooled, d.norm F16 [4] pooled; pools F16
    (codec 2, float-ans) and BF16 (codec 1, zstd)."""
    rng = Rng(0x9003)
    w = lambda dt, n, scale=0: to_raw([weight(rng, dt, scale) for _ in range(n)], dt)
    a, bw, cb, dn = w("F16", 8), w("F32", 16), w("BF16", 6, -3), w("F16", 4)
    base = [member("a.norm", "F16", [8], a), Exact("b.weight", "F32", [16], bw, chunk_size=64),
            member("c.bias", "BF16", [6], cb), member("d.norm", "F16", [4], dn)]
    f16raw, bf16raw = a + dn, cb
    f16p = pool_payload(f16raw, "F16", FANS)
    bf16p = zraw(bf16raw)
    good_pools = [("F16", FANS, f16p), ("BF16", 1, bf16p)]
    pool_check(pool_container(base, good_pools), [("model.safetensors", st_file(base)[0])], good_pools, 8)
    data = pool_data([pool_entry(*p) for p in good_pools])
    out, why = {}, {}

    def one(name, reason, ts=base, pools=good_pools, **kw):
        out[name] = pool_container(ts, pools, **kw)
        why[name] = reason

    def with_ext(name, reason, *exts, ts=base):
        one(name, reason, ts=ts, extensions=ext_list(*exts))

    def t_(i, t):  # base with tensor i replaced
        return base[:i] + [t] + base[i + 1:]

    # §4.6: a codec-9 tensor whose dtype has no pool (the BF16 pool left out)
    one("pool_member_without_pool", "has no pool", pools=good_pools[:1])
    # a pool with no member: an F32 pool (zstd of 0 bytes) where the F32 tensor b.weight is chunked, not codec 9
    one("pool_without_member", "has no member", pools=good_pools + [("F32", 1, zraw(b""))])
    # two pools of one dtype (both F16, both coding the F16 members)
    one("pool_dtype_twice", "two pools of one dtype", pools=good_pools + [("F16", 1, zraw(f16raw))])
    # pools of dtypes other than BF16, F16, F32, F8_E4M3, F8_E5M2: U8 and I32 members in pools of their own (zstd)
    u8, i32 = bytes(range(10)), np.arange(-3, 3, dtype="<i4").tobytes()
    one("pool_dtype_u8", "pool dtype U8", ts=base + [member("e.u8", "U8", [10], u8)], pools=good_pools + [("U8", 1, zraw(u8))])
    one("pool_dtype_i32", "pool dtype I32", ts=base + [member("e.i32", "I32", [6], i32)],
        pools=good_pools + [("I32", 1, zraw(i32))])
    # pool codecs not 0-5, 7 or 8: 6 (exact-residual), 9 (pooled itself), 10 (none): the F16 pool's raw bytes as payload
    for codec in (6, 9, 10):
        one("pool_codec_%d" % codec, "pool codec %d" % codec, pools=[("F16", codec, f16raw), good_pools[1]])
    # the pool's u16 reserved field 1, and 0x8000
    for res in (1, 0x8000):
        one("pool_reserved_%x" % res, "reserved", pools=[pool_entry("F16", FANS, f16p, reserved=res), good_pools[1]])
    # stored_size past §5's bound for the BF16 pool's 12 bytes (12 + 1 + 4096): a valid zstd frame padded with
    # empty raw blocks to 4110 bytes (it decodes: only the bound refuses it)
    assert bound(12) == 4109
    one("pool_stored_bound", "beyond the §5 bound", pools=[good_pools[0], ("BF16", 1, zstd_padded(bf16raw, 4110))])
    # codec-9 records: stored_size 16 with d.norm's bytes as a raw payload (the pool still codes them); chunked
    # (chunk_size 64, one raw chunk; then not a member, the F16 pool codes a.norm only); byte_size 0
    one("pool_member_stored_size", "stored_size != 0", ts=t_(3, Exact("d.norm", "F16", [4], dn, codec=POOLED,
                                                                      inline=True, stored=[dn])))
    one("pool_member_chunked", "not inline",
        ts=t_(3, Exact("d.norm", "F16", [4], dn, codec=POOLED, chunk_size=64, stored=[dn])),
        pools=[("F16", FANS, pool_payload(a, "F16", FANS)), good_pools[1]])
    one("pool_member_empty", "byte_size 0", ts=base + [Exact("e.empty", "F16", [0], b"", codec=POOLED)])
    # §4.5: two type-1 extensions (the same data twice); flags 2 (a reserved bit) and 1 (critical) on type 1
    with_ext("pool_ext_twice", "second extension of type 1", extension(data), extension(data))
    with_ext("pool_ext_flags_2", "reserved bits", extension(data, flags=2))
    with_ext("pool_ext_critical", "not critical", extension(data, flags=1))
    # length != the data's size: 4 zero bytes after the pool list within the length; and a length 8 bytes short, the
    # last 8 bytes of the pool list then read as a second extension (type 0x7777, flags 0, length 0: unknown, not
    # critical, skipped), so the manifest parses and only the pool list runs past its extension. For that, the F16
    # pool is raw (codec 0) and last, and d.norm's last four values are 0x7777 0 0 0.
    with_ext("pool_ext_length_long", "ends before the extension's length", extension(data + bytes(4)))
    dn8 = dn[:-8] + struct.pack("<HHI", 0x7777, 0, 0)
    ts8 = t_(3, member("d.norm", "F16", [4], dn8))
    data8 = pool_data([pool_entry("BF16", 1, bf16p), pool_entry("F16", 0, a + dn8)])
    assert data8[-8:] == struct.pack("<HHI", 0x7777, 0, 0)
    one("pool_ext_length_short", "the pool list runs past", ts=ts8,
        extensions=struct.pack("<I", 2) + extension(data8[:-8]) + data8[-8:])
    # pool_count 0 (no codec-9 tensor: the members inline raw, so no other rule breaks); 65 (one pool follows) and
    # 2^32 - 1 (the two pools follow)
    plain = [Exact(t.name, t.dtype, t.shape, t.raw, inline=True) if t.codec == POOLED else t for t in base]
    with_ext("pool_count_0", "pool_count 0", extension(pool_data([])), ts=plain)
    with_ext("pool_count_65", "pool_count 65", extension(pool_data([pool_entry(*good_pools[0])], count=65)),
             ts=base[:2] + base[3:])
    with_ext("pool_count_max", "pool_count 4294967295", extension(pool_data([pool_entry(*p) for p in good_pools],
                                                                           count=0xFFFFFFFF)))
    # raw size past 64 x stored_size + 2^16: two F16 members of 2^16 zero bytes each (2^17) in one zstd frame of two
    # RLE blocks (21 bytes); and pool_bound(1): one byte past the limit pooled_bound reaches
    z = [member("z0", "F16", [32768], bytes(65536)), member("z1", "F16", [32768], bytes(65536))]
    zp = zframe(bytes(1 << 17), rle=2)
    assert len(zp) == 21 and zstd_frame_at(zp, 0)[0] == bytes(1 << 17)
    one("pool_raw_past_ratio", "> 64 x stored_size", ts=z, pools=[("F16", 1, zp)])
    bts, bpools = pool_bound(1)
    one("pool_raw_past_ratio_by_1", "> 64 x stored_size", ts=bts, pools=bpools)
    # raw size 2^24 + 1: 256 F8_E4M3 members of 2^16 zeros and one of 1, their zstd frame (RLE blocks) led by empty raw
    # blocks to 262144 bytes (within the ratio, 64 x 262144 + 2^16 > 2^24 + 1): only the 2^24 limit refuses it
    big = [member("z%03d" % i, "F8_E4M3", [65536], bytes(65536)) for i in range(256)] + [member("z256", "F8_E4M3", [1], b"\0")]
    rle = zframe(bytes((1 << 24) + 1), rle=2)
    head = rle[:13]
    bp = head + struct.pack("<I", 0)[:3] * (-(-(262144 - len(rle)) // 3)) + rle[13:]
    assert zstd_frame_at(bp, 0) == (bytes((1 << 24) + 1), len(bp)) and len(bp) >= 262144
    one("pool_raw_past_2p24", "> 2^24", ts=big, pools=[("F8_E4M3", 1, bp)])
    # payloads that do not decode to the raw size: a zstd frame of 1 byte less and 1 more (BF16 pool); a float-ans
    # payload of one element less and one more (F16 pool, 12 elements); a raw (codec 0) payload 2 bytes short
    one("pool_zstd_short", "decodes to 11 bytes", pools=[good_pools[0], ("BF16", 1, zraw(bf16raw[:-1]))])
    one("pool_zstd_long", "decodes to 13 bytes", pools=[good_pools[0], ("BF16", 1, zraw(bf16raw + b"\0"))])
    v16 = to_vals(f16raw, "F16")
    for nm, vals, err in (("short", v16[:-1], "payload length"), ("long", v16 + [v16[0]], "group does not end")):
        p = fans_encode(vals, "F16", k=1, joint=0, qshift=2, sub_bits=6, prob_bits=11, egk=1, z=0)
        assert chunk_decode(p, "F16", 2 * len(vals), FANS) == to_raw(vals, "F16")
        one("pool_fans_%s" % nm, err, pools=[("F16", FANS, p), good_pools[1]])
    one("pool_raw_short", "decodes to 22 bytes", pools=[("F16", 0, f16raw[:-2]), good_pools[1]])
    # payloads that are garbage for their codec: float-ans mode byte 9 then bytes; zstd: no frame magic; a zstd
    # frame followed by a second (empty) frame
    one("pool_fans_garbage", "mode byte 9", pools=[("F16", FANS, b"\x09" + bytes(range(30))), good_pools[1]])
    one("pool_zstd_garbage", "not a zstd frame", pools=[good_pools[0], ("BF16", 1, b"\x28\xb5\x2f\xfe" + bytes(12))])
    one("pool_zstd_two_frames", "bytes after its one frame", pools=[good_pools[0], ("BF16", 1, bf16p + zraw(b""))])
    # codec 9 as a part's codec (2.13): a one-tile qrow tensor whose codes part has codec 9 (its chunk the codes as
    # they are), beside a valid F16 pool
    q = qrow("q.weight", "BF16", [2, 8], -10, [0x45, 0x00], [((i * 5) % 13) - 6 for i in range(16)], 2)
    q.parts[1].codec, q.parts[1].frame = POOLED, lambda raw: raw
    one("pool_part_codec_9", "codec 9 as a part's codec", ts=[base[0], q, base[3]], pools=good_pools[:1], major=2,
        minor=13)
    for name, b in out.items():
        try:
            pool_read(b)
        except Invalid as e:
            assert why[name] in str(e), (name, why[name], str(e))
            continue
        raise AssertionError("accepted: " + name)
    return {k + ".corrupt": v for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Version 2.14: sign-magnitude blocks of a qrow tensor (BITSTACK.md). A level k above 0 may be a block: part 2k the
# factors (role 6, U8, tensor-wide or inline: u8 r, u8 0, u16 0, f16 U[rows][r], f16 W[r][cols]), part 2k + 1 the
# signs (role 6, per element, U8, 0 or 1). v = f + m or f - m, m = U[i][0] W[0][j] + U[i][1] W[1][j] + ... in turn,
# each operation binary32 RNE. block() is the writer (numpy float32 arithmetic, as the writer intends); bs_apply_tile()
# the decoder (exact rationals rounded by f32_round at each operation, integer dtype conversions) that rf_decode() uses
# for role-6 levels; bs_read() and bs_check() a reader of the container's bytes (manifest, index, chunks; §1's record
# rules) that decodes every block level from the file and compares it with the writer's bytes and the level's XXH3-64.

BLOCK = 6  # part role 6 (2.14)
U8_CODECS = (0, 1, 2, 3)  # FORMAT.md §6: the codecs that store U8 items (raw, zstd, float-ans, float-ans-trim)


def bs_h(x):
    """The binary16 bits nearest the float x (the writer's factors: any finite binary16 is valid)."""
    b = int(np.array([x], dtype=np.float64).astype(np.float16).view(np.uint16)[0])
    assert b & 0x7C00 != 0x7C00, x
    return b


def f16_np(v):
    """numpy's binary32 -> binary16 conversion (IEEE, RNE; +-Inf past 65504) of the np.float32 v: its bits."""
    with np.errstate(over="ignore"):
        return int(np.array([v], dtype=np.float32).astype(np.float16).view(np.uint16)[0])


def bs_factor_bytes(U, W, rank=None, reserved=b"\0\0\0"):
    """§3: u8 r, u8 0, u16 0, U row-major, W row-major (binary16 bits, little-endian); rank and reserved may lie."""
    r = len(W) if rank is None else rank
    return (struct.pack("<B", r) + reserved + b"".join(struct.pack("<H", h) for u in U for h in u)
            + b"".join(struct.pack("<H", h) for w in W for h in w))


def bs_f32_of_f16(h):
    """The binary32 bits of binary16 bits h (finite), exactly, from integers and rationals (no numpy)."""
    sign = (h & 0x8000) << 16
    ex, man = (h >> 10) & 0x1F, h & 0x3FF
    assert ex != 31
    if ex == 0 and man == 0:
        return sign
    a = Fraction(man, 1 << 24) if ex == 0 else Fraction(1024 + man, 1024) * Fraction(2) ** (ex - 15)
    b = f32_round(a)
    assert f32_frac(b) == a  # exact
    return sign | b


def bs_widen(y, dtype):
    """§2: f, the binary32 bits of y (dtype bits), exact: BF16 y << 16, F16 the IEEE conversion, F32 y."""
    return y << 16 if dtype == "BF16" else bs_f32_of_f16(y) if dtype == "F16" else y


def bs_mul(a, b):
    """One binary32 multiplication of finite binary32 bits a, b, RNE (IEEE 754: an exact zero has the sign XOR)."""
    v = f32_frac(a) * f32_frac(b)
    return (a ^ b) & 0x80000000 if v == 0 else f32_round(v)


def bs_add(a, b):
    """One binary32 addition, RNE; an exact zero sum is +0 unless both addends are -0 (IEEE 754 §6.3)."""
    v = f32_frac(a) + f32_frac(b)
    if v == 0:
        return 0x80000000 if a == b == 0x80000000 else 0
    return f32_round(v)


def bs_parse_factors(b, rows, cols):
    """§3, every rule: (r, U, W) of the factors' bytes b (U[i][q], W[q][j]: binary16 bits); Invalid on a broken one."""
    if len(b) < 4:
        raise Invalid("factors shorter than their head")
    r = b[0]
    if not 1 <= r <= 16:
        raise Invalid("rank r not in 1 .. 16")
    if len(b) != 4 + 2 * r * (rows + cols):
        raise Invalid("factors not 4 + 2 r (rows + cols) bytes")
    h = struct.unpack_from("<%dH" % (r * (rows + cols)), b, 4)
    if any(x & 0x7C00 == 0x7C00 for x in h):
        raise Invalid("a factor not finite")
    U = [h[i * r:(i + 1) * r] for i in range(rows)]
    W = [h[rows * r + q * cols:rows * r + (q + 1) * cols] for q in range(r)]
    return r, U, W


def bs_magnitude(U, W, i, j):
    """§2: m = U[i][0] x W[0][j], then m = m + U[i][q] x W[q][j] for q = 1 .. r - 1: (m's bits, the products' bits)."""
    p = [bs_mul(bs_f32_of_f16(U[i][q]), bs_f32_of_f16(W[q][j])) for q in range(len(W))]
    m = p[0]
    for x in p[1:]:
        m = bs_add(m, x)
    return m, p


def bs_apply_tile(fb, signs, ys, dtype, rows, cols, row0):
    """§2-§3, the decoder: the dtype bits of a tile's elements at the block's level, from the factors' bytes fb (the
    whole part), the tile's sign bytes and its elements' bits ys at the level below (row-major, its first row the
    tensor's row0). Invalid on a broken rule (the factors checked at every tile)."""
    r, U, W = bs_parse_factors(fb, rows, cols)
    if len(signs) != len(ys):
        raise Invalid("signs: not one byte an element")
    out = []
    for e, (y, s) in enumerate(zip(ys, signs)):
        i, j = row0 + e // cols, e % cols
        if not rf_finite(y, dtype):
            raise Invalid("a value below that is not finite")
        if s > 1:
            raise Invalid("sign byte not 0 or 1")
        m, _ = bs_magnitude(U, W, i, j)
        v = bs_add(bs_widen(y, dtype), m if s == 0 else m ^ 0x80000000)  # f - m = f + (-m), exactly
        if not rf_finite(v, "F32"):
            raise Invalid("v not finite")
        out.append(convert(v, dtype))
    return out


def block(t, U, W, target, at=None, factors_layout=TENSOR_WIDE, factors_codec=1, signs_codec=1, factors_frame=zraw,
          signs_frame=zraw, lenient=False):
    """Gives the qrow tensor t (qrow(), perhaps with levels above 0 already) a sign-magnitude block at level
    k = len(t.levels): factors U (rows x r) and W (r x cols) as binary16 bits; part 2k the factors (role 6, U8,
    factors_layout TENSOR_WIDE or INLINE, factors_codec), part 2k + 1 the signs (role 6, per element, U8, signs_codec).
    Signs as §5's writer chooses them: 1 where the residual target - f and m have opposite signs, else 0, the other
    sign where v would not be finite in the dtype; at: {element: sign byte} instead (a byte above 1 only with lenient:
    stored as a reader that took any non-zero byte for 1 would). The arithmetic is numpy's binary32 (each product and
    sum rounded, no FMA); t.bits becomes level k's bits, t.level_bytes every level's bytes, t.bs[...] what the checks
    need. lenient: a y that is not finite is used as a reader that skipped §2's rule would (bad vectors)."""
    dtype, isz = t.dtype, DTYPES[t.dtype][1] // 8
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    r = len(W)
    assert len(U) == rows and all(len(u) == r for u in U) and all(len(w) == cols for w in W)
    k = len(t.levels)
    if not hasattr(t, "level_bytes"):
        t.level_bytes, t.rf = [t.recon], []
    assert len(t.level_bytes) == k and len(t.parts) == 2 * k
    h2f = lambda h: np.array([h], dtype=np.uint16).view(np.float16).astype(np.float32)[0]
    Uf, Wf = [[h2f(h) for h in u] for u in U], [[h2f(h) for h in w] for w in W]
    y = [int(b) for b in t.bits]
    m32, signs, v32, new = [], [], [], []
    for e in range(rows * cols):
        i, j = divmod(e, cols)
        with np.errstate(invalid="ignore", over="ignore"):
            m = np.float32(Uf[i][0] * Wf[0][j])
            for q in range(1, r):
                m = np.float32(m + np.float32(Uf[i][q] * Wf[q][j]))
            f = f32_of(widen(y[e], dtype))
            assert rf_finite(y[e], dtype) or lenient
            both = [np.float32(f + m), np.float32(f - m)]
        store = lambda v: (f16_np(v) if dtype == "F16" else bf16_of(f32_bits(v)) if dtype == "BF16" else f32_bits(v))
        if at and e in at:
            s = at[e]
        else:
            res = target[e] - float(f)
            s = 1 if res * float(m) < 0 else 0
            if not rf_finite(store(both[s]), dtype) and rf_finite(store(both[1 - s]), dtype):
                s = 1 - s
        assert 0 <= s <= 255 and (s <= 1 or lenient)
        v = both[1 if s else 0]
        assert np.isfinite(v) or lenient
        m32.append(f32_bits(m))
        signs.append(s)
        v32.append(f32_bits(v))
        new.append(store(v))
    fb = bs_factor_bytes(U, W)
    assert bs_parse_factors(fb, rows, cols) == (r, [tuple(u) for u in U], [tuple(w) for w in W])
    t.parts += [Part(BLOCK, factors_layout, "U8", fb, codec=factors_codec, level=k, frame=factors_frame),
                Part(BLOCK, PER_ELEMENT, "U8", bytes(signs), codec=signs_codec, level=k, frame=signs_frame)]
    t.part_count = len(t.parts)
    if not hasattr(t, "bs"):
        t.bs = {}
    t.bs[k] = dict(r=r, U=U, W=W, y=y, m32=m32, signs=signs, v32=v32)
    t.bits = np.array(new, dtype=np.uint32 if isz == 4 else np.uint16)
    t.recon = dtype_values(new, dtype)
    t.level_bytes.append(t.recon)
    got = [et_value(b, dtype) for b in new]
    err = [abs(w - g) if math.isfinite(g) else 3e38 for w, g in zip(target, got)]
    s2 = sum(w * w for w in target)
    rel = math.sqrt(sum(min(x, 1e30) ** 2 for x in err) / s2) if s2 else 0.0
    t.levels = t.levels + [(H(t.recon), min(rel, 3e38), min(max(err), 3e38))]
    return t


def bs_decode_level(t, k, y):
    """rf_decode's role-6 level k of tensor t (its Part objects: the factors' data and the signs' data) applied onto
    the bits y of the level below, tile by tile."""
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    tp, cp = t.parts[2 * k], t.parts[2 * k + 1]
    if tp.role != BLOCK or cp.role != BLOCK:
        raise Invalid("corrupt: a level whose two parts do not both have role 6")
    out = list(y)
    for i in range(-(-rows // t.tile_rows)):
        a, b = i * t.tile_rows * cols, min(rows, (i + 1) * t.tile_rows) * cols
        out[a:b] = bs_apply_tile(tp.data, cp.data[a:b], y[a:b], t.dtype, rows, cols, i * t.tile_rows)
    return out


def bs_read(wcz):
    """A reader of a 2.x container in chunk order 0 (FORMAT.md §3-§8), any level count: header, manifest, index and
    chunks, every checksum. Returns {tensor name: record}, each record a dict (dtype, shape, tile_rows, levels
    [(xxh3, rel, max)], parts [namespace(role, level, codec, layout, item, params, items, payload (inline), chunks
    [(stored, raw_size)])])."""
    assert wcz[:8] == b"\x89WCZ\r\n\x1a\n" and H(wcz[:56]) == struct.unpack_from("<Q", wcz, 56)[0]
    major, minor, _fl, ms, mr, mh = struct.unpack_from("<HHIQQQ", wcz, 8)
    assert major == 2 and H(wcz[64:64 + ms]) == mh
    m, end = zstd_frame_at(wcz[64:64 + ms], 0)
    assert end == ms and len(m) == mr
    c = Cur(m)
    nfiles, ntensors, nchunks, lc, order, res = c.u("IIIBBH")
    assert order == 0 and res == 0
    lfc = c.u("%dI" % lc)
    for _ in range(nfiles):
        c.u("BB")
        c.take(c.u("H")[0])
        c.u("QQII")
        c.take(c.u("Q")[0])
    recs = []
    for _ in range(ntensors):
        t = dict(name=c.take(c.u("H")[0]).decode())
        did, t["codec"], rank, t["repr"] = c.u("BBBB")
        t["dtype"] = DTYPE_OF[did]
        t["shape"] = list(c.u("%dQ" % rank)) if rank else []
        size, t["tile_rows"], pl = c.u("QIH")
        t["params"], t["parts"], t["levels"] = c.take(pl), [], [(H(b""), 0.0, 0.0)]
        t["inline"] = t["repr"] == 0 and size > 0 and t["tile_rows"] == 0
        if t["inline"]:
            c.take(c.u("I")[0])
        elif t["repr"] == 0:
            t["n_chunks"] = -(-size // t["tile_rows"]) if size else 0
        else:
            npart, nlev, res = c.u("BBH")
            assert res == 0
            for _ in range(npart):
                role, lev, codec, layout, item, group, ppl = c.u("BBBBBBH")
                p = SimpleNamespace(role=role, level=lev, codec=codec, layout=layout, item=DTYPE_OF[item],
                                          reserved=group, params=c.take(ppl), chunks=[], payload=None)
                p.items = c.u("Q")[0]
                if layout == INLINE:
                    p.payload = c.take(p.items * DTYPES[p.item][1] // 8 if codec == 0 else c.u("I")[0])
                t["parts"].append(p)
            t["levels"] = [c.u("Qff") for _ in range(nlev)]
        recs.append(t)
    assert c.u("I") == (0,) and c.pos == len(m)
    io, ist, ir, ih, fsize, fmaj, fmin, _z, fh = struct.unpack_from("<QQQQQHHIQ", wcz, len(wcz) - 64)
    assert fsize == len(wcz) and (fmaj, fmin) == (major, minor) and H(wcz[io:io + ist]) == ih
    index, end = zstd_frame_at(wcz[io:io + ist], 0)
    assert end == ist and len(index) == ir and struct.unpack_from("<Q", index)[0] == nchunks
    chunks = []
    for seq in range(nchunks):
        off, stored, raw, xh = struct.unpack_from("<QIIQ", index, 8 + 24 * seq)
        assert struct.unpack_from("<IIQ", wcz, off - 16) == (stored, seq, xh) and H(wcz[off:off + stored]) == xh
        chunks.append((wcz[off:off + stored], raw))
    # §4.3: level-major; a lossy tensor's chunks at level L: its tensor-wide parts' (items > 0), then per tile its
    # tiled parts' (in part order)
    seq = 0
    for L in range(lc):
        assert lfc[L] == seq
        for t in recs:
            if t["repr"] == 0:
                n = t.get("n_chunks", 0) if L == 0 else 0
                seq += n
                continue
            rows, tiles = t["shape"][0], -(-t["shape"][0] // t["tile_rows"])
            for p in t["parts"]:
                if p.level == L and p.layout == TENSOR_WIDE and p.items:
                    p.chunks.append(chunks[seq])
                    seq += 1
            for _ in range(tiles):
                for p in t["parts"]:
                    if p.level == L and p.layout in (PER_ELEMENT, PER_ROW, PER_GROUP):
                        p.chunks.append(chunks[seq])
                        seq += 1
    assert seq == nchunks
    return {t["name"]: t for t in recs}


def bs_record(t):
    """§1's record rules for role-6 parts (Errc corrupt, when the manifest is decoded) of a record t (bs_read's):
    Invalid("corrupt: ...") naming the rule broken."""
    parts, L = t["parts"], len(t["levels"])
    X = 1 if L > 1 and parts[-2].role == EXACT_TOP else 0
    if len(parts) != 2 * L:
        raise Invalid("corrupt: part count not 2 x level_count")
    for k in range(L):
        a, b = parts[2 * k], parts[2 * k + 1]
        if BLOCK not in (a.role, b.role):
            continue
        if k == 0:
            raise Invalid("corrupt: role 6 at level 0")
        if a.role != BLOCK or b.role != BLOCK:
            raise Invalid("corrupt: a level whose two parts do not both have role 6")
        if X and k == L - 1:
            raise Invalid("corrupt: role 6 in the exact top layer's place")
        if a.level != k or b.level != k:
            raise Invalid("corrupt: a role-6 part at another level")
        if a.item != "U8" or a.layout not in (TENSOR_WIDE, INLINE) or a.codec not in U8_CODECS:
            raise Invalid("corrupt: factors not U8, tensor-wide or inline, of a codec that stores U8 items")
        if b.item != "U8" or b.layout != PER_ELEMENT or b.codec not in U8_CODECS or b.params:
            raise Invalid("corrupt: signs not U8, per element, of a codec that stores U8 items, without params")
    if X and parts[-1].role == BLOCK:
        raise Invalid("corrupt: role 6 in the exact top layer's place")
    for k in range(1, L):  # the exact top layer's place: its two parts role 5 (REFINE.md §1)
        if parts[2 * k].role == EXACT_TOP and parts[2 * k + 1].role == BLOCK:
            raise Invalid("corrupt: role 6 in the exact top layer's place")


def bs_part_bytes(p, raw_size):
    """A decoded part's bytes: an inline part's (codec 0: its items; else its payload decoded), a tensor-wide part's
    one chunk (FORMAT.md §6: exactly its raw size)."""
    if p.layout == INLINE:
        if p.codec == 0:
            return p.payload
        return pool_decode(p.payload, "U8", p.codec, raw_size)
    (stored, raw), = p.chunks
    assert raw == raw_size
    return pool_decode(stored, "U8", p.codec, raw)


def bs_check(wcz, ts):
    """Reads wcz (bs_read) and decodes, from its bytes, every block level of each lossy tensor of ts: the factors
    part, each tile's signs chunk, applied (bs_apply_tile) onto the writer's bytes of the level below (t.level_bytes,
    checked by rf_decode); the result must be the writer's level bytes and the record's level XXH3-64 (Invalid
    "checksum: ..." otherwise), every other level's hash the writer's too. Returns the number of block levels."""
    recs, n = bs_read(wcz), 0
    for t in ts:
        if not isinstance(t, Lossy):
            continue
        rec = recs[t.name]
        bs_record(rec)
        rows, cols = rec["shape"][0], math.prod(rec["shape"][1:])
        isz = DTYPES[rec["dtype"]][1] // 8
        for k in range(1, len(rec["levels"])):
            fp, sp = rec["parts"][2 * k], rec["parts"][2 * k + 1]
            if fp.role != BLOCK:
                assert H(t.level_bytes[k]) == rec["levels"][k][0]
                continue
            fb = bs_part_bytes(fp, fp.items)
            y = [int.from_bytes(t.level_bytes[k - 1][i * isz:(i + 1) * isz], "little") for i in range(rows * cols)]
            out = []
            for i, (stored, raw) in enumerate(sp.chunks):
                r0, r1 = i * rec["tile_rows"], min(rows, (i + 1) * rec["tile_rows"])
                assert raw == (r1 - r0) * cols
                signs = pool_decode(stored, "U8", sp.codec, raw)
                out += bs_apply_tile(fb, signs, y[r0 * cols:r1 * cols], rec["dtype"], rows, cols, r0)
            got = dtype_values(out, rec["dtype"])
            if H(got) != rec["levels"][k][0]:
                raise Invalid("checksum: level %d's XXH3-64" % k)
            assert got == t.level_bytes[k], (t.name, k)
            n += 1
    return n


def bs_alternatives(t, k):
    """Of block level k of tensor t: for each way a decoder might compute it other than §2's (m rounded once from
    the exact sum of the products, as a fused or wider accumulation gives; the products summed in reverse order;
    the products accumulated onto f one by one; v = f +- m rounded once with m exact), the elements whose stored bits
    it gets wrong."""
    lv, dtype = t.bs[k], t.dtype
    cols = math.prod(t.shape[1:])
    wrong = {"once": [], "reverse": [], "onto_f": [], "v_once": []}
    for e, (y, s, vb) in enumerate(zip(lv["y"], lv["signs"], lv["v32"])):
        i, j = divmod(e, cols)
        m, p = bs_magnitude(lv["U"], lv["W"], i, j)
        neg = lambda b: b ^ (0x80000000 if s else 0)
        f = bs_widen(y, dtype)
        exact = sum(f32_frac(x) for x in p)
        once = f32_round(exact) if exact else m
        rev = p[-1]
        for x in reversed(p[:-1]):
            rev = bs_add(rev, x)
        acc = f
        for x in p:
            acc = bs_add(acc, neg(x))
        vo = f32_round(f32_frac(f) + (-exact if s else exact)) if f32_frac(f) + (-exact if s else exact) else vb
        stored = convert(vb, dtype)
        for name, v in (("once", bs_add(f, neg(once))), ("reverse", bs_add(f, neg(rev))), ("onto_f", acc),
                        ("v_once", vo)):
            if convert(v, dtype) != stored:
                wrong[name].append(e)
    return wrong


def bitstack_vectors(d):
    """lossy_bitstack (2.14, BITSTACK.md): an exact F32 norm; a: BF16 [8, 4, 6], 3 tiles of 3, 3 and 2 rows, level 1 a
    block of rank 2 (factors a tensor-wide zstd chunk, signs zstd; a U column of negative values: m < 0), level 2 a
    refinement level (REFINE.md; M = 6, S = 1: the block counted as a factor of 2) reading the block's values; b: F16
    [5, 10], 3 tiles, level 1 (its top) a block of rank 1 with its factors inline (codec 0) and raw signs (codec 0):
    factors +-0, binary16 subnormals, negative ones (m < 0 and -0), 65504; inputs +-0 (y = -0 with m = +-0 and either
    sign: the zero's sign by IEEE 754), F16 subnormal inputs and results, results stored as +-Inf (v finite, past
    65504) and 65504; c: F32 [3, 8], 2 tiles, a block of rank 3 (factors tensor-wide raw, signs zstd) where a decoder
    that rounded m once (fused or wider), summed the products in another order, accumulated them onto f or rounded
    f +- m once would store other bits (bs_alternatives); e: BF16 [4, 8], 2 tiles, level 1 a refinement level (M = 3),
    level 2 a block of rank 1 (factors tensor-wide zstd, signs float-ans), level 3 a block of rank 16 (the most;
    factors inline zstd, signs raw) over it; a plain qrow tensor (its top is level 0). Unpacked: each tensor at its
    top (.expected); .level0, .level1, .level2.expected: at those levels (a tensor of fewer at its own top).

    lossy_bitstack_exact: blocks under an exact top layer (EXACT_TOP.md), whose level restores the original bits. f:
    BF16 [6, 8], 2 tiles, level 1 a block of rank 2 (factors inline zstd, 2.3), level 2 the exact top (S = 1, tables
    a tensor-wide zstd chunk); g: F16 [4, 12], 2 tiles, level 1 a refinement level (M = 3), level 2 a block of rank 3
    (factors tensor-wide raw, signs float-ans), level 3 the exact top (S = 2); h: F32 [2, 8], 1 tile, level 1 a block
    of rank 16, level 2 a refinement level (M = 4, S = 1), level 3 the exact top (S = 2). The originals hold +-0,
    subnormals, +-Inf and NaNs."""
    rng = Rng(0xB175AC)
    norm = Exact("norm.weight", "F32", [5], np.array([1, -0.5, 3.25, -0.0, 2e-3], dtype="<f4").tobytes())

    # a: BF16, rows of E = -8 .. 7. Rank 2: U[i][0] W[0][j] the magnitude's row and column shapes, U[i][1] W[1][j]
    # a correction of either sign (row 5's U[5][0] negative: m < 0 there, so a sign of 0 moves down).
    ea, ca, Ba = [0x05, 0x17, 0x2A, 0x3F, 0x00, 0x4C, 0x63, 0xF9], 24, -8
    xa = rf_weights(rng, Ba, ea, ca, 60)
    qa = rf_q(xa, Ba, ea, ca, 127)
    a = qrow("a.weight", "BF16", [8, 4, 6], Ba, ea, qa, 3)
    fa = [et_value(int(b), "BF16") for b in a.bits]
    A = [abs(x - f) for x, f in zip(xa, fa)]
    colm = [sum(A[i * ca + j] for i in range(8)) / 8 for j in range(ca)]
    mean = sum(colm) / ca
    Ua = [[bs_h(sum(A[i * ca:(i + 1) * ca]) / ca * (-1 if i == 5 else 1)),
           bs_h(float(step_of(Ba, ea[i])) * 0.05 * ((i % 3) - 1))] for i in range(8)]
    Wa = [[bs_h(c / mean) for c in colm], [bs_h(((j * 7) % 5 - 2) / 2) for j in range(ca)]]
    block(a, Ua, Wa, xa)
    refine(a, 6, xa, S=1, at={2: 32767, 3: -32768, 100: 5, 101: -5})

    # b: F16, B = -30: row 0 (E = -30: +-0 and F16 subnormals), row 1 (E = -26, subnormals), row 2 (E = -18,
    # normal; U = -0.5: m < 0), rows 3 and 4 (E = -15; U = 256 and -256: |m| up to 256 x 65504, past F16's range).
    eb, cb, Bb = [0x00, 0x4C, 0xC8, 0xF0, 0xF3], 10, -30
    qb = [-3, 3, -40, 48, -5, -1, 100, -127, 7, 20,  # row 0: -0, +0, -2^-24, 2^-24, -0, -0, 2^-23, -2^-23, +0, +0
          5, -9, 17, -1, -1, -1, -2, 60, -60, 1,  # row 1: 7 x 2^-28 a code, -1 at 13 .. 15: -0
          3, -7, 100, -127, 0, 1, -1, 50, 2, -2,
          9, -9, 1, 0, -3, 3, 127, -100, 20, -1,
          2, -2, 5, 0, 1, -1, 30, -30, 4, 9]
    b = qrow("b.weight", "F16", [5, cb], Bb, eb, qb, 2)
    Wb = [[0x5C00, 0x3C00, 0xBC00, 0x0001, 0x8000, 0x0000, 0x03FF, 0x7BFF, 0x5BFF, 0xB555]]
    Ub = [[0x0001], [0x1400], [0xB800], [0x5C00], [0xDC00]]
    # signs: row 0's -0 inputs with m = -0 (j = 4) and m = +0 (j = 5) under both signs (elements 4, 5 and, with y
    # = -0 at 0: m = 2^-16); row 3: y + 65536 (+Inf), y - 256 x 65504 (-Inf), y + 65504 (65504); row 4 (m < 0):
    # y - -65536 (+Inf), y + -256 x 65504 (-Inf), y + -65504 (-65504)
    sb = {i: (i * 3 + i // cb) % 2 for i in range(5 * cb)}
    sb.update({4: 0, 5: 1, 14: 1, 15: 0, 0: 1, 30: 0, 37: 1, 38: 0, 40: 1, 47: 0, 48: 0})
    xb = [et_value(int(v), "F16") for v in b.bits]
    block(b, Ub, Wb, xb, at=sb, factors_layout=INLINE, factors_codec=0, signs_codec=0)

    # c: F32, B = -30: row 0 (E = -24, step 2^-24) with hand-made traps: column 0 products 1, 2^-24, 2^-24 (§2's
    # order: 1; the exact sum 1 + 2^-23), column 1 products 1, 2^-23, 0 onto f = 2^-24 (§2: 1 + 2^-22; onto f: 1 +
    # 2^-23); rows 1 and 2 (E = -17, -15) random factors of spread exponents and either sign.
    ec, cc, Bc = [0x60, 0xD3, 0xF7], 8, -30
    xc = rf_weights(rng, Bc, ec, cc, 3000)
    qc = et_codes_at(rf_q(xc, Bc, ec, cc, 32767), {0: 0, 1: 1, 2: 0, 3: -1})
    c = qrow("c.weight", "F32", [3, cc], Bc, ec, qc, 2, code_item="U16")
    Uc = [[0x3C00, 0x0C00, 0x0C00]]
    Wc = [[0x3C00, 0x3C00, 0x3C00] + [0] * 5, [0x0C00, 0x1000, 0x0C00] + [0] * 5, [0x0C00, 0x0000, 0x0C00] + [0] * 5]
    for j in range(3, cc):
        for q in range(3):
            Wc[q][j] = bs_h((1 if rng(1) else -1) * 2.0 ** (-(rng(8) % 14)) * (1 + rng(10) / 1024))
    for i in range(1, 3):
        Uc.append([bs_h((1 if rng(3) else -1) * 2.0 ** (-(rng(8) % 12)) * (1 + rng(10) / 1024)) for _ in range(3)])
    block(c, Uc, Wc, xc, at={0: 0, 1: 0, 2: 1}, factors_codec=0)

    # e: BF16, refinement (M = 3), then a block of rank 1, then one of rank 16 (the most)
    ee, ce, Be = [0x31, 0x07, 0x5A, 0x20], 8, -12
    xe = rf_weights(rng, Be, ee, ce, 30)
    et = qrow("e.weight", "BF16", [4, ce], Be, ee, rf_q(xe, Be, ee, ce, 127), 2)
    refine(et, 3, xe, tables_layout=INLINE, tables_codec=0)
    st = [float(step_of(Be, x)) for x in ee]
    block(et, [[bs_h(s / 6)] for s in st], [[bs_h(0.5 + (j % 4) / 8) for j in range(ce)]], xe, signs_codec=FANS,
          signs_frame=fans_frame("U8"))
    block(et, [[bs_h(s / 40 * (1 + q / 16) * (-1 if (i + q) % 5 == 0 else 1)) for q in range(16)] for i, s in enumerate(st)],
          [[bs_h(((q * 3 + j * 5) % 7 - 3) / 16) for j in range(ce)] for q in range(16)], xe,
          factors_layout=INLINE, factors_codec=1, signs_codec=0)
    plain = qrow("plain.weight", "BF16", [2, 8], -12, [0x31, 0x07], [((i * 29) % 61) - 30 for i in range(16)], 2)
    ts = [norm, a, b, c, et, plain]

    # what the vector holds, as the docstring says
    assert [p.role for p in a.parts] == [1, 0, 6, 6, 4, 4] and a.rf[0]["M"] == 6 and a.rf[0]["S"] == 1
    assert a.bs[1]["r"] == 2 and any(m >> 31 for m in a.bs[1]["m32"]) and set(a.bs[1]["signs"]) == {0, 1}
    assert any(bs_read_bits(a.level_bytes[1], i, "BF16") != bs_read_bits(a.level_bytes[2], i, "BF16")
               for i in range(8 * ca))  # the refinement level changes the block's values
    lb = b.bs[1]
    bb = [int(x) for x in b.bits]
    assert [bb[i] for i in (30, 37, 38, 40, 47, 48)] == [0x7C00, 0xFC00, 0x7BFF, 0x7C00, 0xFC00, 0xFBFF]
    assert all(rf_finite(v, "F32") for v in lb["v32"])
    assert any(x & 0x7C00 == 0 and x & 0x3FF for x in bb) and any(y & 0x7C00 == 0 and y & 0x3FF for y in lb["y"])
    assert any(m >> 31 and m & 0x7FFFFFFF for m in lb["m32"]) and any(m == 0x80000000 for m in lb["m32"])
    zeros = {(y, m, s, v) for y, m, s, v in zip(lb["y"], lb["m32"], lb["signs"], lb["v32"]) if y == 0x8000 and
             m & 0x7FFFFFFF == 0}
    assert zeros == {(0x8000, 0x80000000, 0, 0x80000000), (0x8000, 0x80000000, 1, 0), (0x8000, 0, 0, 0),
                     (0x8000, 0, 1, 0x80000000)}, zeros  # -0 + -0 = -0, -0 - -0 = +0, -0 + +0 = +0, -0 - +0 = -0
    wrong = bs_alternatives(c, 1)
    assert all(wrong.values()) and 0 in wrong["once"] and 0 in wrong["reverse"] and 1 in wrong["onto_f"], wrong
    assert c.bs[1]["v32"][0] == 0x3F800000 and c.bs[1]["v32"][1] == 0x3F800002, hex(c.bs[1]["v32"][1])
    assert [p.role for p in et.parts] == [1, 0, 4, 4, 6, 6, 6, 6] and et.bs[3]["r"] == 16
    fb, plen = st_file(ts)
    files = [(0, "model.safetensors", fb, plen, ts)]
    wcz = container2(files, minor=14)
    head = struct.unpack("<IIIBB", zread_manifest(wcz)[:14])
    # level 0: norm 1, a 3 x 2, b 3 x 2, c 2 x 2, e 2 x 2, plain 1 x 2; level 1: a's factors + 3 signs, b's 3 signs
    # (factors inline), c's factors + 2, e's 2 codes (tables inline); level 2: a's tables + 3, e's factors + 2;
    # level 3: e's 2 signs (factors inline)
    assert head == (1, 6, 1 + 6 + 6 + 4 + 4 + 2 + 4 + 3 + 3 + 2 + 4 + 3 + 2, 4, 0), head
    put(d, "lossy_bitstack.wcz", wcz)
    put_levels(d, "lossy_bitstack", files)
    assert bs_check(wcz, ts) == 5

    # lossy_bitstack_exact
    rng = Rng(0xB175AC7)
    norm = Exact("norm.weight", "F32", [3], np.array([0.75, -4, 1e-3], dtype="<f4").tobytes())
    ef, cf, Bf = [0x10, 0x2C, 0x47, 0x00, 0x63, 0x35], 8, -12
    xf = rf_weights(rng, Bf, ef, cf, 80)
    f = qrow("f.weight", "BF16", [6, cf], Bf, ef, rf_q(xf, Bf, ef, cf, 127), 3)
    block(f, [[bs_h(float(step_of(Bf, x)) / 4), bs_h(float(step_of(Bf, x)) / 16 * (-1) ** i)] for i, x in enumerate(ef)],
          [[bs_h(1 - (j % 3) / 4) for j in range(cf)], [bs_h((j % 5 - 2) / 2) for j in range(cf)]], xf,
          factors_layout=INLINE, factors_codec=1)
    of = et_bits("BF16", xf)
    for i, v in {0: 0x7FC1, 1: 0xFF80, 2: 0x8000, 3: 0x0001, 12: 0x7F80, 40: 0x0000}.items():
        of[i] = v
    exact_top(f, of, S=1, tables_codec=1)
    f.parts[-2].layout = TENSOR_WIDE
    eg, cg, Bg = [0x00, 0x2C, 0x61, 0xF8], 12, -20
    xg = rf_weights(rng, Bg, eg, cg, 100)
    g = qrow("g.weight", "F16", [4, cg], Bg, eg, rf_q(xg, Bg, eg, cg, 127), 2)
    refine(g, 3, xg)
    sg = [float(step_of(Bg, x)) for x in eg]
    block(g, [[bs_h(s / 8), bs_h(s / 32), bs_h(-s / 64)] for s in sg],
          [[bs_h(1 + (j % 4) / 4) for j in range(cg)], [bs_h((j % 3) - 1) for j in range(cg)],
           [bs_h(0.5 if j % 2 else -0.25) for j in range(cg)]], xg, factors_codec=0, signs_codec=FANS,
          signs_frame=fans_frame("U8", k=0))
    og = et_bits("F16", xg)
    for i, v in {0: 0x7E01, 1: 0xFC00, 2: 0x8000, 3: 0x0003, 13: 0x7C00, 30: 0x8001}.items():
        og[i] = v
    exact_top(g, og, S=2)
    eh, ch, Bh = [0x3A, 0x71], 8, -20
    xh = rf_weights(rng, Bh, eh, ch, 500)
    h = qrow("h.weight", "F32", [2, ch], Bh, eh, rf_q(xh, Bh, eh, ch, 32767), 2, code_item="U16")
    sh = [float(step_of(Bh, x)) for x in eh]
    block(h, [[bs_h(s / 20 * (1 + q / 8)) for q in range(16)] for s in sh],
          [[bs_h(((q + 2 * j) % 5 - 1) / 8) for j in range(ch)] for q in range(16)], xh, signs_codec=0)
    refine(h, 4, xh, S=1, tables_layout=INLINE, tables_codec=1)
    oh = et_bits("F32", xh)
    for i, v in {0: 0x7F800000, 1: 0xFFC00001, 2: 0x80000000, 3: 0x00000001}.items():
        oh[i] = v
    exact_top(h, oh, S=2, tables_codec=0)
    ts = [norm, f, g, h]
    assert [p.role for p in f.parts] == [1, 0, 6, 6, 5, 5] and f.et_S == 1
    assert [p.role for p in g.parts] == [1, 0, 4, 4, 6, 6, 5, 5] and g.et_S == 2
    assert [p.role for p in h.parts] == [1, 0, 6, 6, 4, 4, 5, 5] and h.et_S == 2 and h.bs[1]["r"] == 16
    for t in (f, g, h):
        assert t.recon != t.level0 and 1 in t.et_mode, (t.name, t.et_mode)
    fb, plen = st_file(ts)
    files = [(0, "model.safetensors", fb, plen, ts)]
    wcz = container2(files, minor=14)
    head = struct.unpack("<IIIBB", zread_manifest(wcz)[:14])
    # level 0: norm 1, f 2 x 2, g 2 x 2, h 1 x 2; level 1: f 2 signs (factors inline), g tables + 2, h factors + 1;
    # level 2: f's exact tables + 2, g factors + 2, h 1 (tables inline); level 3: g 2, h 1 (tables inline)
    assert head == (1, 4, 1 + 4 + 4 + 2 + 2 + 3 + 2 + 3 + 3 + 1 + 2 + 1, 4, 0), head
    put(d, "lossy_bitstack_exact.wcz", wcz)
    put_levels(d, "lossy_bitstack_exact", files)
    assert bs_check(wcz, ts) == 3
    put_bad(d, bitstack_bad())


def bs_read_bits(b, i, dtype):
    isz = DTYPES[dtype][1] // 8
    return int.from_bytes(b[i * isz:(i + 1) * isz], "little")


def bitstack_bad():
    """2.14 files every reader must reject, checksum-valid everywhere, each lying in one thing about a block (the
    manifest's last tensor, after an exact F32 one). *.corrupt: BITSTACK.md §1's record rules, seen when the manifest
    is decoded. *.codec: §2's and §3's rules, checked whenever a tile of the level is decoded. level_xxh3_*.checksum:
    valid blocks whose decoded values are not the level's hash. Level hashes are the honest ones; where a rule leaves
    no honest value (a sign byte of 2, y not finite), what a reader that skipped the rule would write. Each is read
    back from its bytes (bs_check) and refused for its reason."""
    rows, cols = 4, 8
    out, why = {}, {}

    def base(exact=False, rank=2, **kw):
        """A BF16 qrow tensor [4, 8] of 2 tiles, level 1 a block of rank `rank` (factors tensor-wide zstd, signs
        zstd; block()'s keywords), with exact an exact top layer at level 2."""
        rng = Rng(0xBAD14)
        e = [0x35, 0x42, 0x28, 0x51]
        x = rf_weights(rng, -12, e, cols, 40)
        t = qrow("w.weight", "BF16", [rows, cols], -12, e, rf_q(x, -12, e, cols, 127), 2)
        st = [float(step_of(-12, v)) for v in e]
        block(t, [[bs_h(s / (4 + q)) for q in range(rank)] for s in st],
              [[bs_h(1 + ((j + q) % 3) / 4) for j in range(cols)] for q in range(rank)], x, **kw)
        if exact:
            exact_top(t, et_bits("BF16", x), S=1)
        t.x = x
        return t

    def one(name, t, reason):
        out[name], why[name] = one_file([norm_exact(), t], minor=14), (t, reason)

    def factors(t, data):
        t.parts[2].data, t.parts[2].items = data, len(data)
        return t

    t0 = base()
    U, W = t0.bs[1]["U"], t0.bs[1]["W"]
    for t in (t0, base(exact=True), base(factors_layout=INLINE, factors_codec=0)):  # the bases are valid
        assert bs_check(one_file([norm_exact(), t], minor=14), [t]) == 1
    fb = t0.parts[2].data
    # §2 (codec): a sign byte of 2 (element 19, tile 1), stored as a reader taking any non-zero byte for 1 would
    one("bitstack_sign_2.codec", base(at={19: 2}, lenient=True), "sign byte not 0 or 1")
    # §3 (codec): the factors' size, rank and finiteness
    one("bitstack_factors_short.codec", factors(base(), fb[:-2]), "factors not 4 + 2 r")
    one("bitstack_factors_long.codec", factors(base(), fb + b"\0\0"), "factors not 4 + 2 r")
    t = base(factors_layout=INLINE, factors_codec=0)
    t.parts[2].data, t.parts[2].items = fb + b"\0", len(fb) + 1
    one("bitstack_factors_inline_long.codec", t, "factors not 4 + 2 r")
    one("bitstack_rank0.codec", factors(base(), bs_factor_bytes([], [], rank=0)), "rank r not in 1 .. 16")
    r17 = [[0x3C00] * 17 for _ in range(rows)], [[0x3800] * cols for _ in range(17)]
    one("bitstack_rank17.codec", factors(base(), bs_factor_bytes(*r17)), "rank r not in 1 .. 16")
    one("bitstack_factor_inf.codec", factors(base(), bs_factor_bytes(U, [list(W[0][:3]) + [0x7C00] + list(W[0][4:]),
                                                                         W[1]])), "a factor not finite")
    one("bitstack_factor_nan.codec", factors(base(), bs_factor_bytes(U[:3] + [[U[3][0], 0x7E00]], W)),
        "a factor not finite")
    one("bitstack_factor_neg_inf.codec", factors(base(), bs_factor_bytes([[0xFC00, U[0][1]]] + U[1:], W)),
        "a factor not finite")
    # §2 (codec): y not finite. F16 [2, 4] whose level 1 (a refinement level) stores 64512 + 2 x 512 = 65536 as
    # +Inf, and whose level 2 (a block) then meets that y.
    t = qrow("w.weight", "F16", [2, 4], -5, [0xF0, 0x00], [63, -63, 1, 0, 2, -2, 0, 1], 2)
    x = [64512.0, -64512.0, 1024.0, 0.0, 0.0625, -0.0625, 0.0, 0.03125]
    refine(t, 2, x, at={0: 2}, tables_layout=INLINE, tables_codec=0)
    assert t.bits[0] == 0x7C00
    block(t, [[0x3C00], [0x2C00]], [[0x3800, 0x3400, 0x3000, 0x2C00]], x, at={0: 1}, lenient=True)
    one("bitstack_y_inf.codec", t, "a value below that is not finite")

    # §1 (corrupt): the record
    t = base()
    rf = qrow("w.weight", "BF16", [rows, cols], -12, t.parts[0].data, [((i * 5) % 17) - 8 for i in range(32)], 2)
    refine(rf, 3, t.x, tables_layout=INLINE, tables_codec=0)
    rf.parts[2].role = BLOCK  # a refinement level's tables as role-6 factors, beside its role-4 codes
    one("bitstack_role6_factors_role4_codes.corrupt", rf, "do not both have role 6")
    t = base()
    t.parts[2].role = RESIDUAL  # the block's factors role 4, its signs role 6
    one("bitstack_role4_factors_role6_signs.corrupt", t, "do not both have role 6")
    t = base(exact=True)
    t.parts[4].role = t.parts[5].role = BLOCK  # the exact top layer's level, role 6
    one("bitstack_role6_exact_place.corrupt", t, "")
    t = base(exact=True)
    t.parts[5].role = BLOCK  # the exact top layer's tables role 5, its residuals role 6
    one("bitstack_role6_exact_residuals.corrupt", t, "")
    t = base()
    t.parts[3].codec, t.parts[3].frame = EXACT_CODEC, lambda raw: b"\x00" + raw
    one("bitstack_signs_codec6.corrupt", t, "signs not U8")
    t = base()
    t.parts[3].item, t.parts[3].data = "U16", b"".join(bytes([s, 0]) for s in t.bs[1]["signs"])
    one("bitstack_signs_u16.corrupt", t, "signs not U8")
    t = base()
    t.parts[3].layout, t.parts[3].codec = TENSOR_WIDE, 1
    one("bitstack_signs_tensor_wide.corrupt", t, "signs not U8")
    t = base()
    t.parts[3].params = b"\x01"
    one("bitstack_signs_params.corrupt", t, "signs not U8")
    t = base()
    t.parts[2].codec, t.parts[2].frame = EXACT_CODEC, lambda raw: b"\x00" + raw
    one("bitstack_factors_codec6.corrupt", t, "factors not U8")
    t = base()
    t.parts[2].item, t.parts[2].items = "U16", len(fb) // 2
    one("bitstack_factors_u16.corrupt", t, "factors not U8")
    t = base()
    t.parts[2].layout, t.parts[2].items, t.parts[2].data = PER_ROW, rows, fb[:rows]
    one("bitstack_factors_per_row.corrupt", t, "factors not U8")
    t = base()
    t.parts[3].level = 2  # the signs a level above the factors (level 2 then has one part)
    one("bitstack_signs_wrong_level.corrupt", t, "")

    # §2, FORMAT.md §4.4 (checksum): valid blocks, other values than the level's hash
    t = base()
    t.parts[3].data = bytes(s ^ (i == 9) for i, s in enumerate(t.bs[1]["signs"]))  # element 9's sign flipped
    one("level_xxh3_bitstack_sign_lie.checksum", t, "checksum")
    t = base()
    t.parts[2].data = bs_factor_bytes(U, [[W[0][0] + 0x200] + list(W[0][1:]), W[1]])  # W[0][0] 1.5, not 1
    one("level_xxh3_bitstack_factor_lie.checksum", t, "checksum")
    # under an exact top layer: a sign flipped (the first element where the top then still decodes, by the contexts
    # of the new y, to other bytes than its hash): the top's hash, the one unpack checks, and level 1's both differ
    t = base(exact=True)
    for i in range(rows * cols):
        t.parts[3].data = bytes(s ^ (j == i) for j, s in enumerate(t.bs[1]["signs"]))
        try:
            if rf_decode(t, 2) != t.level_bytes[2]:
                break
        except Invalid:
            pass
    else:
        raise AssertionError("no sign whose flip the exact top layer decodes")
    one("level_xxh3_bitstack_under_exact.checksum", t, "checksum")

    for name, wcz in out.items():
        t, reason = why[name]
        try:
            bs_check(wcz, [t])
        except (Invalid, AssertionError) as x:
            if name.endswith(".corrupt") and not reason:  # rules REFINE.md §1 has too (the parts' levels, role 5)
                continue
            assert isinstance(x, Invalid) and reason in str(x), (name, reason, str(x))
            assert name.endswith(".corrupt") == str(x).startswith("corrupt:"), (name, str(x))
            continue
        raise AssertionError("accepted: " + name)
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
