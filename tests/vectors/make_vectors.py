#!/usr/bin/env python3
"""Writes the container test vectors from spec/FORMAT.md alone.

An independent writer of the format (it shares no code with the C++ library),
so the vectors pin the spec, not the implementation. zstd frames are written
by hand as single raw blocks, which any zstd decoder accepts, so the bytes do
not depend on a zstd version. Needs the `xxhash` Python package.

Good vectors: NAME.wcz decodes to NAME.expected (or NAME.FILE.expected for
each file). Bad vectors: bad/NAME.CODE.wcz must be rejected with error CODE;
most are checksum-valid everywhere and break one rule only (see hostile()).

    python3 tests/vectors/make_vectors.py tests/vectors
"""
import json, os, struct, sys
import xxhash

H = lambda b: xxhash.xxh3_64_intdigest(b)
DT = {"BOOL": (0, 8), "U8": (1, 8), "BF16": (9, 16), "F16": (8, 16), "F32": (12, 32), "I64": (14, 64), "F4": (16, 4)}


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
              manifest_frame=zraw, index_frame=zraw, chunk_frame=zraw):
    """files: list of (kind, name, file_bytes, prefix_len, [(name, dtype, shape, raw)]).

    Names may be bytes (written verbatim). params: per-tensor params bytes (default empty).
    *_frame: how the manifest, the index and each zstd-codec chunk are framed."""
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
        cs = chunk_size if raw else 0
        pm = params[i] if params else b""
        m_t += str16(b_(name)) + struct.pack("<BBBB", DT[dt][0], codecs[i], len(shape), 0)
        m_t += b"".join(struct.pack("<Q", d) for d in shape) + struct.pack("<QIH", len(raw), cs, len(pm)) + pm
        assert codecs[i] in (0, 1) or not raw  # this writer has no float-ans encoder
        for off in range(0, len(raw), chunk_size):
            c = raw[off:off + chunk_size]
            chunks.append((c if codecs[i] == 0 else chunk_frame(c), len(c)))
    m = struct.pack("<IIII", len(files), len(tensors), len(chunks), 0) + m_files + m_t + struct.pack("<I", 0)
    ms = manifest_frame(m)
    head = b"\x89WCZ\r\n\x1a\n" + struct.pack("<HHIQQQ", major, minor, 0, len(ms), len(m), H(ms)) + b"\0" * 16
    head += struct.pack("<Q", H(head))
    out = bytearray(head + ms)
    index = struct.pack("<Q", len(chunks))
    for seq, (stored, rawlen) in enumerate(chunks):
        off = (len(out) + 16 + 63) // 64 * 64
        out += b"\0" * (off - 16 - len(out))
        out += struct.pack("<IIQ", len(stored), seq, H(stored)) + stored
        index += struct.pack("<QIIQ", off, len(stored), rawlen, H(stored))
    io = (len(out) + 63) // 64 * 64
    out += b"\0" * (io - len(out))
    ist = index_frame(index)
    out += ist
    foot = struct.pack("<QQQQQHHI", io, len(ist), len(index), H(ist), len(out) + 64, major, minor, 0)
    foot += struct.pack("<Q", H(foot)) + b"\x89WCZEND\n"
    return bytes(out + foot)


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
        open(os.path.join(d, name + ".wcz"), "wb").write(v)
    for _, n, b, _, _ in folder:
        open(os.path.join(d, "folder." + n.replace("/", "__") + ".expected"), "wb").write(b)
    open(os.path.join(d, "single_raw.expected"), "wb").write(fb)
    open(os.path.join(d, "single_zstd.expected"), "wb").write(fb)
    open(os.path.join(d, "no_tensors.expected"), "wb").write(empty)
    for n, b in (("model.safetensors.index.json", idx), ("a.safetensors", s1), ("b.safetensors", s2)):
        open(os.path.join(d, "sharded." + n + ".expected"), "wb").write(b)
    # Files every reader must reject: name.<expected error code name>.wcz
    good = vectors["single_raw"]
    bad = {
        "major2.unsupported_version": container([(0, "model.safetensors", fb, plen, ts)], 64, [0] * 5, major=2),
        "truncated.bad_magic": good[:-1],
        "appended.bad_magic": good + b"\0",
        "payload_bitflip.checksum": flip(good, first_padding(good) // 64 * 64 + 64 + 3),
        "header_bitflip.checksum": flip(good, 20),
        "padding_nonzero.corrupt": set_byte(good, first_padding(good)),
        "unknown_dtype.corrupt": container_patch_dtype(fb, plen, ts),
    }
    bad.update(hostile(ts, good, (s1, p1, ts[:2]), (s2, p2, ts[3:])))
    for name, b in bad.items():
        open(os.path.join(d, "bad", name + ".wcz"), "wb").write(b)


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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
