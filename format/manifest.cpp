// Manifest and index records: serialisation and validation. Every count and
// length read here is checked against what remains in the block and against
// the hard limits before anything is allocated for it.
#include <algorithm>
#include <numeric>
#include <string>

#include "format/bytes.h"
#include "format/container.h"
#include "format/names.h"

namespace wc {

uint64_t TensorRecord::elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n = mul_checked(n, d);
  return n;
}

uint32_t TensorRecord::chunk_raw_size(uint32_t i) const {
  uint64_t start = uint64_t(i) * chunk_size;
  return static_cast<uint32_t>(std::min<uint64_t>(chunk_size, byte_size - start));
}

void Manifest::derive_chunks() {
  uint64_t total = 0;
  for (auto& t : tensors) {
    uint64_t n = 0;
    if (t.byte_size > 0) {
      if (t.chunk_size == 0) fail(Errc::corrupt, "tensor '" + t.name + "' has data but chunk size 0");
      n = (t.byte_size - 1) / t.chunk_size + 1;
    }
    if (n > kMaxChunks || total + n > kMaxChunks) fail(Errc::limit, "too many chunks");
    t.first_chunk = static_cast<uint32_t>(total);
    t.chunk_count = static_cast<uint32_t>(n);
    total += n;
  }
  chunk_count = static_cast<uint32_t>(total);
}

std::vector<uint8_t> encode_manifest(const Manifest& m) {
  ByteWriter w;
  w.u32(static_cast<uint32_t>(m.files.size()));
  w.u32(static_cast<uint32_t>(m.tensors.size()));
  w.u32(m.chunk_count);
  w.u32(0);  // reserved
  for (const auto& f : m.files) {
    w.u8(static_cast<uint8_t>(f.kind));
    w.u8(0);
    w.str16(f.name);
    w.u64(f.size);
    w.u64(f.xxh3);
    w.u32(f.first_tensor);
    w.u32(f.tensor_count);
    w.u64(f.prefix.size());
    w.bytes(f.prefix.data(), f.prefix.size());
  }
  for (const auto& t : m.tensors) {
    w.str16(t.name);
    w.u8(static_cast<uint8_t>(t.dtype));
    w.u8(t.codec);
    w.u8(static_cast<uint8_t>(t.shape.size()));
    w.u8(0);
    for (uint64_t d : t.shape) w.u64(d);
    w.u64(t.byte_size);
    w.u32(t.chunk_size);
    if (t.params.size() > 0xFFFF) fail(Errc::limit, "codec parameters too long");
    w.u16(static_cast<uint16_t>(t.params.size()));
    w.bytes(t.params.data(), t.params.size());
  }
  w.u32(0);  // extension records (none in 1.0)
  return std::move(w.buf);
}

static void must_be_zero(uint64_t v, uint64_t off, const char* what) {
  if (v != 0) fail_at(Errc::corrupt, off, std::string("reserved field '") + what + "' is not zero");
}

[[noreturn]] static void refuse(uint64_t base, const FileRecord& f, const std::string& msg,
                                const std::string* tensor = nullptr) {
  Error e(Errc::corrupt, "file '" + f.name + "': " + msg);
  e.at_offset(base);
  if (tensor) e.at_tensor(*tensor);
  throw e;
}

// Rules across the decoded records (spec §4.1): file names are distinct,
// tensor names are text, and a blob's one tensor is U8 of rank 1; then, file
// by file, the user's check. Errors carry the manifest's offset. O(n log n)
// in the number of files.
static void check_records(const Manifest& m, uint64_t base, const ManifestCheck& check) {
  // Distinct file names: sort, then compare neighbours (65,536 names sort in
  // milliseconds where comparing every pair took minutes).
  std::vector<uint32_t> order(m.files.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return m.files[a].name < m.files[b].name; });
  for (size_t i = 1; i < order.size(); ++i)
    if (m.files[order[i]].name == m.files[order[i - 1]].name)
      refuse(base, m.files[order[i]], "the name is used by two file records");
  for (const auto& t : m.tensors)
    if (!valid_record_text(t.name)) {
      Error e(Errc::corrupt, "tensor name contains NUL or is not valid UTF-8");
      e.at_offset(base).at_tensor(t.name);
      throw e;
    }
  for (const auto& f : m.files) {
    if (f.kind == FileKind::blob) {
      const TensorRecord& t = m.tensors[f.first_tensor];
      if (t.dtype != DType::U8 || t.shape.size() != 1) refuse(base, f, "a blob's tensor must be U8 of rank 1", &t.name);
    }
    if (check.file) check.file(m, f, base);
  }
}

Manifest decode_manifest(const uint8_t* p, size_t n, uint64_t base, const ManifestCheck& check, uint16_t minor) {
  ByteReader r(p, n, base);
  Manifest m;
  uint32_t nfiles = r.u32(), ntensors = r.u32(), nchunks = r.u32();
  must_be_zero(r.u32(), r.abs_pos() - 4, "manifest.reserved");
  if (nfiles > kMaxFiles) fail_at(Errc::limit, base, "file count " + std::to_string(nfiles) + " exceeds limit");
  if (ntensors > kMaxTensors) fail_at(Errc::limit, base + 4, "tensor count " + std::to_string(ntensors) + " exceeds limit");
  if (nchunks > kMaxChunks) fail_at(Errc::limit, base + 8, "chunk count " + std::to_string(nchunks) + " exceeds limit");
  // Each file record takes at least 38 bytes and each tensor at least 20, so
  // counts that cannot fit in the block are rejected before reserving memory.
  if (uint64_t(nfiles) * 38 + uint64_t(ntensors) * 20 > r.remaining())
    fail_at(Errc::corrupt, base, "manifest counts exceed the manifest size");
  m.files.resize(nfiles);
  uint64_t expect_first = 0;
  for (auto& f : m.files) {
    uint64_t at = r.abs_pos();
    uint8_t kind = r.u8();
    if (kind > 1) fail_at(Errc::corrupt, at, "unknown file kind " + std::to_string(kind));
    f.kind = static_cast<FileKind>(kind);
    must_be_zero(r.u8(), at + 1, "file.reserved");
    f.name = r.str16();
    if (!valid_file_name(f.name)) fail_at(Errc::corrupt, at, "invalid file name '" + f.name + "'");
    if (minor == 0 && f.name.find('/') != std::string::npos)
      fail_at(Errc::corrupt, at, "file name '" + f.name + "' is a path, which a 1.0 container cannot hold (1.1 can)");
    f.size = r.u64();
    f.xxh3 = r.u64();
    f.first_tensor = r.u32();
    f.tensor_count = r.u32();
    if (f.first_tensor != expect_first || uint64_t(f.first_tensor) + f.tensor_count > ntensors)
      fail_at(Errc::corrupt, at, "file '" + f.name + "' tensor range is not contiguous");
    expect_first += f.tensor_count;
    if (f.kind == FileKind::blob && f.tensor_count != 1)
      fail_at(Errc::corrupt, at, "blob file '" + f.name + "' must hold exactly one tensor");
    uint64_t plen = r.u64();
    if (plen > r.remaining()) fail_at(Errc::corrupt, r.abs_pos() - 8, "file prefix runs past the manifest");
    if (f.kind == FileKind::blob && plen != 0) fail_at(Errc::corrupt, at, "blob file with a prefix");
    auto* b = r.bytes(plen);
    f.prefix.assign(b, b + plen);
    if (check.record) check.record(f, at);
  }
  if (expect_first != ntensors) fail_at(Errc::corrupt, base, "files do not cover every tensor");
  m.tensors.resize(ntensors);
  for (auto& t : m.tensors) {
    uint64_t at = r.abs_pos();
    t.name = r.str16();
    uint8_t dt = r.u8();
    auto d = dtype_from_id(dt);
    if (!d) fail_at(Errc::corrupt, at, "tensor '" + t.name + "': unknown dtype id " + std::to_string(dt));
    t.dtype = *d;
    t.codec = r.u8();
    unsigned rank = r.u8();
    must_be_zero(r.u8(), r.abs_pos() - 1, "tensor.reserved");
    if (rank > kMaxRank) fail_at(Errc::limit, at, "tensor '" + t.name + "': rank " + std::to_string(rank) + " exceeds limit");
    t.shape.resize(rank);
    for (auto& s : t.shape) s = r.u64();
    t.byte_size = r.u64();
    t.chunk_size = r.u32();
    uint16_t plen = r.u16();
    auto* b = r.bytes(plen);
    t.params.assign(b, b + plen);
    if (plen != 0 && t.codec < kCodecIdsWithoutParams)
      fail_at(Errc::corrupt, at, "tensor '" + t.name + "': codec " + std::to_string(t.codec) + " takes no parameters");
    // byte size must agree with shape and dtype
    uint64_t bits;
    try {
      bits = mul_checked(t.elements(), dtype_bits(t.dtype));
    } catch (Error& e) {
      e.at_offset(at).at_tensor(t.name);
      throw;
    }
    if (bits % 8 != 0 || bits / 8 != t.byte_size)
      fail_at(Errc::corrupt, at, "tensor '" + t.name + "': byte size does not match shape and dtype");
    if (t.byte_size > 0 && (t.chunk_size == 0 || t.chunk_size > kMaxChunkSize || t.chunk_size % kAlign != 0))
      fail_at(Errc::corrupt, at, "tensor '" + t.name + "': invalid chunk size " + std::to_string(t.chunk_size));
    if (t.byte_size == 0 && t.chunk_size != 0)
      fail_at(Errc::corrupt, at, "tensor '" + t.name + "': empty tensor with a chunk size");
  }
  uint32_t next = r.u32();
  for (uint32_t i = 0; i < next; ++i) {
    uint64_t at = r.abs_pos();
    r.u16();  // type: none known in 1.0
    uint16_t flags = r.u16();
    uint32_t len = r.u32();
    r.bytes(len);
    if (flags & 1) fail_at(Errc::unsupported_version, at, "file needs a critical extension this reader does not know");
    if (flags & ~1u) fail_at(Errc::corrupt, at, "reserved extension flags set");
  }
  if (r.remaining() != 0) fail_at(Errc::corrupt, r.abs_pos(), "trailing bytes after the manifest records");
  // Files' sizes must add up: prefix + tensor bytes.
  for (auto& f : m.files) {
    uint64_t sz = f.prefix.size();
    for (uint32_t i = 0; i < f.tensor_count; ++i) sz = add_checked(sz, m.tensors[f.first_tensor + i].byte_size);
    if (sz != f.size) fail_at(Errc::corrupt, base, "file '" + f.name + "': size does not match its tensors");
  }
  m.derive_chunks();
  if (m.chunk_count != nchunks) fail_at(Errc::corrupt, base + 8, "chunk count does not match the tensors");
  check_records(m, base, check);
  return m;
}

std::vector<uint8_t> encode_index(const std::vector<ChunkEntry>& idx) {
  ByteWriter w;
  w.u64(idx.size());
  for (const auto& c : idx) {
    w.u64(c.offset);
    w.u32(c.stored_size);
    w.u32(c.raw_size);
    w.u64(c.xxh3);
  }
  return std::move(w.buf);
}

std::vector<ChunkEntry> decode_index(const uint8_t* p, size_t n, uint64_t base) {
  ByteReader r(p, n, base);
  uint64_t count = r.u64();
  if (count > kMaxChunks || count * 24 != r.remaining())
    fail_at(Errc::corrupt, base, "index chunk count does not match the index size");
  std::vector<ChunkEntry> v(count);
  for (auto& c : v) {
    c.offset = r.u64();
    c.stored_size = r.u32();
    c.raw_size = r.u32();
    c.xxh3 = r.u64();
  }
  return v;
}

}  // namespace wc
