#!/usr/bin/env python3
"""Writes the container test vectors from spec/FORMAT.md alone.

An independent writer of the format (it shares no code with the C++ library),
so the vectors pin the spec, not the implementation. zstd frames are written
by hand as single raw blocks, which any zstd decoder accepts, so the bytes do
not depend on a zstd version. Needs the `xxhash` Python package.

    python3 tests/vectors/make_vectors.py tests/vectors
"""
import json, os, struct, sys
import xxhash

H = lambda b: xxhash.xxh3_64_intdigest(b)
DT = {"BOOL": (0, 8), "U8": (1, 8), "BF16": (9, 16), "F16": (8, 16), "F32": (12, 32), "I64": (14, 64), "F4": (16, 4)}


def zraw(data: bytes) -> bytes:
    # Frame header: magic, descriptor (single segment, 8-byte content size), size.
    out = struct.pack("<IB", 0xFD2FB528, 0xE0) + struct.pack("<Q", len(data))
    pos = 0
    while True:
        blk = data[pos:pos + 65536]
        pos += len(blk)
        last = 1 if pos >= len(data) else 0
        out += struct.pack("<I", (len(blk) << 3) | (0 << 1) | last)[:3] + blk
        if last:
            return out


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


def container(files, chunk_size, codecs, major=1, minor=0):
    """files: list of (kind, name, file_bytes, prefix_len, [(name, dtype, shape, raw)])."""
    m = b""
    tensors, nchunks, chunks = [], 0, []
    m_files = b""
    first = 0
    for kind, name, fb, plen, ts in files:
        m_files += struct.pack("<BB", kind, 0) + str16(name.encode()) + struct.pack("<QQII", len(fb), H(fb), first, len(ts))
        m_files += struct.pack("<Q", plen) + fb[:plen]
        first += len(ts)
        tensors += ts
    m_t = b""
    for i, (name, dt, shape, raw) in enumerate(tensors):
        cs = chunk_size if raw else 0
        m_t += str16(name.encode()) + struct.pack("<BBBB", DT[dt][0], codecs[i], len(shape), 0)
        m_t += b"".join(struct.pack("<Q", d) for d in shape) + struct.pack("<QIH", len(raw), cs, 0)
        for off in range(0, len(raw), chunk_size):
            c = raw[off:off + chunk_size]
            chunks.append((c if codecs[i] == 0 else zraw(c), len(c)))
    m = struct.pack("<IIII", len(files), len(tensors), len(chunks), 0) + m_files + m_t + struct.pack("<I", 0)
    ms = zraw(m)
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
    ist = zraw(index)
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
    for name, v in vectors.items():
        open(os.path.join(d, name + ".wcz"), "wb").write(v)
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
    for name, b in bad.items():
        open(os.path.join(d, "bad", name + ".wcz"), "wb").write(b)


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
