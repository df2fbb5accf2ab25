// Manifest and index records: serialisation and validation. Every count and
// length read here is checked against what remains in the block and against
// the hard limits before anything is allocated for it.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>

#include "format/bytes.h"
#include "format/container.h"
#include "format/writer.h"
#include "format/zframe.h"
#include "format/names.h"

namespace wc {

uint64_t TensorRecord::elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n = mul_checked(n, d);
  return n;
}

uint64_t TensorRecord::cols() const {
  const uint64_t r = rows();
  return r ? elements() / r : 0;
}

uint64_t TensorRecord::tile_count() const { return chunk_size ? (rows() + chunk_size - 1) / chunk_size : 0; }

uint64_t TensorRecord::rows_in_tile(uint64_t tile) const {
  return std::min<uint64_t>(chunk_size, rows() - tile * chunk_size);
}

uint64_t TensorRecord::part_bytes(uint32_t p, uint64_t tile) const {
  const PartRecord& q = parts[p];
  switch (q.layout) {
    case PartLayout::per_element: return rows_in_tile(tile) * cols() * q.item_bytes();
    case PartLayout::per_row: return rows_in_tile(tile) * q.item_bytes();
    case PartLayout::per_group: return rows_in_tile(tile) * (cols() / q.group) * q.item_bytes();
    default: return q.items * q.item_bytes();
  }
}

uint32_t TensorRecord::global_chunk(uint32_t i) const {
  for (size_t L = 0; L < level_chunks.size(); ++L) {
    if (i < level_chunks[L]) return level_first[L] + i;
    i -= level_chunks[L];
  }
  return UINT32_MAX;
}

uint32_t TensorRecord::local_chunk(uint32_t g) const {
  uint32_t before = 0;  // the tensor's chunks of the levels below
  for (size_t L = 0; L < level_chunks.size(); ++L) {
    if (g >= level_first[L] && g - level_first[L] < level_chunks[L]) return before + (g - level_first[L]);
    before += level_chunks[L];
  }
  return UINT32_MAX;
}

namespace {

// A lossy tensor's chunks at level L (§4.3): its tensor-wide parts of that
// level that have items, one chunk each, then tile by tile the chunk of each
// tiled part. The parts in that order, and where level L's chunks begin
// among the tensor's.
struct LevelParts {
  uint32_t wide[kMaxParts], tiled[kMaxParts];
  uint32_t nwide = 0, ntiled = 0;
  uint32_t first = 0;
};

LevelParts level_parts(const TensorRecord& t, unsigned L) {
  LevelParts lp;
  for (unsigned k = 0; k < L; ++k) lp.first += t.level_chunks[k];
  for (uint32_t p = 0; p < t.parts.size() && p < kMaxParts; ++p) {
    const PartRecord& q = t.parts[p];
    if (q.level != L) continue;
    if (q.tiled()) lp.tiled[lp.ntiled++] = p;
    else if (q.layout == PartLayout::tensor_wide && q.items > 0) lp.wide[lp.nwide++] = p;
  }
  return lp;
}

}  // namespace

TensorRecord::PartChunk TensorRecord::part_chunk(uint32_t i) const {
  unsigned L = 0;
  while (L + 1 < level_chunks.size() && i >= level_chunks[L]) i -= level_chunks[L++];
  const LevelParts lp = level_parts(*this, L);
  if (i < lp.nwide) return {lp.wide[i], 0};
  if (lp.ntiled == 0) return {0, 0};  // unreachable for i < chunk_count
  return {lp.tiled[(i - lp.nwide) % lp.ntiled], (i - lp.nwide) / lp.ntiled};
}

uint32_t TensorRecord::chunk_of_part(uint32_t p, uint64_t tile) const {
  const LevelParts lp = level_parts(*this, parts[p].level);
  for (uint32_t k = 0; k < lp.nwide; ++k)
    if (lp.wide[k] == p) return lp.first + k;
  for (uint32_t k = 0; k < lp.ntiled; ++k)
    if (lp.tiled[k] == p) return lp.first + lp.nwide + static_cast<uint32_t>(tile) * lp.ntiled + k;
  return UINT32_MAX;  // an inline part has no chunk
}

uint32_t TensorRecord::chunk_raw_size(uint32_t i) const {
  if (inline_exact()) return static_cast<uint32_t>(byte_size);  // its one unit, in the record
  if (!lossy()) {
    uint64_t start = uint64_t(i) * chunk_size;
    return static_cast<uint32_t>(std::min<uint64_t>(chunk_size, byte_size - start));
  }
  const PartChunk pc = part_chunk(i);
  return static_cast<uint32_t>(part_bytes(pc.part, pc.tile));
}

uint64_t Manifest::weights() const {
  uint64_t n = 0;
  for (const auto& f : files)
    if (f.kind == FileKind::safetensors)
      for (uint32_t i = 0; i < f.tensor_count; ++i) n += tensors[f.first_tensor + i].elements();
  return n;
}

uint64_t Manifest::original_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files) n += f.size;
  return n;
}

bool Manifest::has_lossy() const {
  for (const auto& t : tensors)
    if (t.lossy()) return true;
  return false;
}

void Manifest::derive_chunks() {
  // Chunks per tensor and level; then numbered level-major (§4.3).
  unsigned levels = 1;
  for (auto& t : tensors) {
    t.level_chunks.clear();
    if (!t.lossy()) {
      uint64_t n = 0;
      if (t.byte_size > 0 && t.chunk_size > 0) n = (t.byte_size - 1) / t.chunk_size + 1;  // else inline: none
      if (n > kMaxChunks) fail(Errc::limit, "too many chunks");
      t.level_chunks.push_back(static_cast<uint32_t>(n));
      continue;
    }
    t.level_chunks.assign(t.levels.size(), 0);
    const uint64_t tiles = t.tile_count();
    for (const auto& q : t.parts) {
      uint64_t n = q.tiled() ? tiles : (q.layout == PartLayout::tensor_wide && q.items > 0);
      n += t.level_chunks[q.level];
      if (n > kMaxChunks) fail(Errc::limit, "too many chunks");
      t.level_chunks[q.level] = static_cast<uint32_t>(n);
    }
    levels = std::max<unsigned>(levels, unsigned(t.levels.size()));
  }
  // Level-major: a tensor's level L arrives at model level L. Chunk order 1
  // (2.9): at the step its level_step gives (checked by the reader).
  unsigned steps = levels;
  if (chunk_order == 0) {
    for (auto& t : tensors) {
      t.level_step.resize(t.level_chunks.size());
      for (size_t L = 0; L < t.level_step.size(); ++L) t.level_step[L] = uint8_t(L);
    }
  } else {
    steps = 1;
    for (auto& t : tensors) {
      if (t.level_step.size() != t.level_chunks.size()) fail(Errc::corrupt, "a tensor's steps do not match its levels");
      for (uint8_t s : t.level_step) steps = std::max<unsigned>(steps, unsigned(s) + 1);
    }
  }
  level_count = static_cast<uint8_t>(steps);
  level_first_chunk.assign(steps, 0);
  uint64_t total = 0;
  for (auto& t : tensors) t.level_first.assign(t.level_chunks.size(), 0);
  for (unsigned K = 0; K < steps; ++K) {
    level_first_chunk[K] = static_cast<uint32_t>(total);
    for (auto& t : tensors)
      for (size_t L = 0; L < t.level_step.size(); ++L) {
        if (t.level_step[L] != K) continue;
        t.level_first[L] = static_cast<uint32_t>(total);
        total += t.level_chunks[L];
        if (total > kMaxChunks) fail(Errc::limit, "too many chunks");
      }
  }
  for (auto& t : tensors) {
    t.first_chunk = t.level_first.empty() ? 0 : t.level_first[0];
    t.chunk_count = 0;
    for (uint32_t n : t.level_chunks) t.chunk_count += n;
  }
  chunk_count = static_cast<uint32_t>(total);
  major = has_lossy() ? kVersionMajorLossy : kVersionMajor;
}

static void encode_tensor(ByteWriter& w, const TensorRecord& t) {
  w.str16(t.name);
  w.u8(static_cast<uint8_t>(t.dtype));
  w.u8(t.codec);
  w.u8(static_cast<uint8_t>(t.shape.size()));
  w.u8(t.repr);
  for (uint64_t d : t.shape) w.u64(d);
  w.u64(t.byte_size);
  w.u32(t.chunk_size);
  if (t.params.size() > 0xFFFF) fail(Errc::limit, "codec parameters too long");
  w.u16(static_cast<uint16_t>(t.params.size()));
  w.bytes(t.params.data(), t.params.size());
  if (t.inline_exact()) {  // 1.4, 2.5: the payload in the record
    w.u32(static_cast<uint32_t>(t.payload.size()));
    w.bytes(t.payload.data(), t.payload.size());
  }
  if (!t.lossy()) return;
  w.u8(static_cast<uint8_t>(t.parts.size()));
  w.u8(static_cast<uint8_t>(t.levels.size()));
  w.u16(0);
  for (const auto& q : t.parts) {
    w.u8(static_cast<uint8_t>(q.role));
    w.u8(q.level);
    w.u8(q.codec);
    w.u8(static_cast<uint8_t>(q.layout));
    w.u8(static_cast<uint8_t>(q.item));
    w.u8(q.layout == PartLayout::per_group ? q.group : 0);
    w.u16(static_cast<uint16_t>(q.params.size()));
    w.bytes(q.params.data(), q.params.size());
    w.u64(q.items);
    if (q.layout == PartLayout::inline_items) {
      if (q.codec != 0) w.u32(static_cast<uint32_t>(q.data.size()));  // 2.3: the payload's size
      w.bytes(q.data.data(), q.data.size());
    }
  }
  for (const auto& l : t.levels) {
    w.u64(l.xxh3);
    uint32_t b[2];
    std::memcpy(&b[0], &l.rel_rmse, 4);
    std::memcpy(&b[1], &l.max_abs, 4);
    w.u32(b[0]);
    w.u32(b[1]);
  }
}

uint64_t tensor_record_size(const TensorRecord& t) {
  ByteWriter w;
  encode_tensor(w, t);
  return w.buf.size();
}

uint64_t tensor_stored_bytes(const TensorRecord& t, const std::vector<ChunkEntry>& idx) {
  uint64_t n = t.pool != UINT32_MAX ? t.pool_share : t.payload.size();
  for (const auto& q : t.parts)
    if (q.layout == PartLayout::inline_items) n += q.data.size();
  for (uint32_t c = 0; c < t.chunk_count; ++c) n += idx[t.global_chunk(c)].stored_size;
  return n;
}

uint64_t coded_inline_bytes(const TensorRecord& t) {
  uint64_t n = !t.inline_exact() ? 0 : t.pool != UINT32_MAX ? 4 + t.pool_share : 4 + t.payload.size();
  for (const auto& q : t.parts)
    if (q.layout == PartLayout::inline_items && q.codec != 0) n += 4 + q.data.size();
  return n;
}

ManifestShares manifest_shares(const Manifest& m, uint64_t raw, uint64_t stored) {
  ManifestShares s;
  uint64_t coded = 0;
  for (const auto& t : m.tensors) coded += coded_inline_bytes(t);
  if (coded == 0 || raw <= coded) {
    s.ratio = raw ? double(stored) / double(raw) : 1.0;
    return s;
  }
  Manifest base = m;  // the same records, payloads empty
  for (auto& q : base.pools) q.payload.clear();
  for (auto& t : base.tensors) {
    t.payload.clear();
    for (auto& q : t.parts)
      if (q.layout == PartLayout::inline_items && q.codec != 0) q.data.clear();
  }
  const auto braw = encode_manifest(base);
  const uint64_t bstored = zframe_compress(braw, meta_zstd_level(raw, m.original_bytes())).size();
  s.ratio = braw.empty() ? 1.0 : double(bstored) / double(braw.size());
  s.payload_scale = stored > bstored ? double(stored - bstored) / double(coded) : 0.0;
  return s;
}

double tensor_file_bytes(const TensorRecord& t, const std::vector<ChunkEntry>& idx, uint64_t chunks_start,
                         const ManifestShares& shares) {
  const uint64_t coded = coded_inline_bytes(t);
  double n = double(tensor_record_size(t) - t.name.size() - coded) * shares.ratio + double(coded) * shares.payload_scale;
  for (uint32_t c = 0; c < t.chunk_count; ++c) {
    const uint32_t g = t.global_chunk(c);
    const uint64_t prev_end = g == 0 ? chunks_start : idx[g - 1].offset + idx[g - 1].stored_size;
    n += double(idx[g].offset + idx[g].stored_size - prev_end + 24);
  }
  return n;
}

std::vector<uint8_t> encode_manifest(const Manifest& m) {
  ByteWriter w;
  w.u32(static_cast<uint32_t>(m.files.size()));
  w.u32(static_cast<uint32_t>(m.tensors.size()));
  w.u32(m.chunk_count);
  if (m.major == kVersionMajor) {
    w.u32(0);  // reserved
  } else {
    w.u8(m.level_count);
    w.u8(m.chunk_order);  // 0 level-major; 1 (2.9) steps, listed below
    w.u16(0);             // reserved
    for (uint32_t c : m.level_first_chunk) w.u32(c);
    if (m.chunk_order == 1) {  // each multi-level tensor's steps of its levels above 0, in tensor order
      uint32_t n = 0;
      for (const auto& t : m.tensors) n += t.levels.size() > 1 ? uint32_t(t.levels.size() - 1) : 0;
      w.u32(n);
      for (const auto& t : m.tensors)
        for (size_t L = 1; L < t.levels.size(); ++L) w.u8(t.level_step[L]);
    }
  }
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
  for (const auto& t : m.tensors) encode_tensor(w, t);
  if (m.pools.empty()) {
    w.u32(0);  // extension records (none in 1.0)
  } else {  // the pools (1.8, 2.13): one extension of type 1, not critical
    ByteWriter x;
    x.u32(static_cast<uint32_t>(m.pools.size()));
    for (const auto& p : m.pools) {
      x.u8(static_cast<uint8_t>(p.dtype));
      x.u8(p.codec);
      x.u16(0);
      x.u32(static_cast<uint32_t>(p.payload.size()));
      x.bytes(p.payload.data(), p.payload.size());
    }
    w.u32(1);
    w.u16(kExtPools);
    w.u16(0);
    w.u32(static_cast<uint32_t>(x.buf.size()));
    w.bytes(x.buf.data(), x.buf.size());
  }
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

// The rest of a lossy tensor record (§4.4): its parts and levels, and the
// rules every representation shares. Shape, dtype and byte size are read.
static void decode_lossy(ByteReader& r, TensorRecord& t, uint64_t at) {
  auto bad = [&](const std::string& why) { fail_at(Errc::corrupt, at, "tensor '" + t.name + "': " + why); };
  if (t.codec != 0) bad("a lossy tensor's codec field must be 0");
  if (t.shape.size() < 2) bad("a lossy tensor must have rank 2 or more");
  for (uint64_t d : t.shape)
    if (d == 0) bad("a lossy tensor has an empty dimension");
  if (t.chunk_size == 0) bad("rows per tile is 0");
  const unsigned nparts = r.u8(), nlevels = r.u8();
  must_be_zero(r.u16(), r.abs_pos() - 2, "tensor.lossy.reserved");
  if (nparts == 0 || nparts > kMaxParts) bad("part count " + std::to_string(nparts) + " is not in 1..16");
  if (nlevels == 0) bad("level count is 0");
  const uint64_t rows = t.rows(), cols = t.cols();
  const uint64_t tile_rows = std::min<uint64_t>(t.chunk_size, rows);
  t.parts.resize(nparts);
  std::vector<bool> level_used(nlevels, false);
  unsigned prev_level = 0;
  for (auto& q : t.parts) {
    const uint64_t pat = r.abs_pos();
    auto bad_part = [&](const std::string& why) {
      fail_at(Errc::corrupt, pat, "tensor '" + t.name + "', part " + std::to_string(&q - t.parts.data()) + ": " + why);
    };
    const uint8_t role = r.u8();
    q.level = r.u8();
    q.codec = r.u8();
    const uint8_t layout = r.u8(), item = r.u8();
    if (layout == uint8_t(PartLayout::per_group)) q.group = r.u8();  // 2.4: the group size
    else must_be_zero(r.u8(), pat + 5, "part.reserved");
    const uint16_t plen = r.u16();
    const uint8_t* pb = r.bytes(plen);
    q.params.assign(pb, pb + plen);
    q.items = r.u64();
    if (role >= kPartRoleCount) bad_part("unknown role " + std::to_string(role));
    if (layout >= kPartLayoutCount) bad_part("unknown layout " + std::to_string(layout));
    auto it = dtype_from_id(item);
    if (!it || (dtype_bits(*it) != 8 && dtype_bits(*it) != 16 && dtype_bits(*it) != 32 && dtype_bits(*it) != 64))
      bad_part("item type " + std::to_string(item) + " is not a whole-byte dtype");
    q.role = static_cast<PartRole>(role);
    q.layout = static_cast<PartLayout>(layout);
    q.item = *it;
    if (q.level >= nlevels) bad_part("level " + std::to_string(q.level) + " beyond the tensor's levels");
    if (q.level < prev_level) bad_part("parts are not in level order");
    prev_level = q.level;
    level_used[q.level] = true;
    if (plen != 0 && q.codec < kCodecIdsWithoutParams) bad_part("codec " + std::to_string(q.codec) + " takes no parameters");
    const unsigned ib = q.item_bytes();
    switch (q.layout) {
      case PartLayout::per_element:
        if (q.items != t.elements()) bad_part("a per-element part must have one item per element");
        if (mul_checked(mul_checked(tile_rows, cols), ib) > kMaxChunkSize) bad_part("a tile's chunk exceeds 2^28 bytes");
        break;
      case PartLayout::per_row:
        if (q.items != rows) bad_part("a per-row part must have one item per row");
        if (mul_checked(tile_rows, ib) > kMaxChunkSize) bad_part("a tile's chunk exceeds 2^28 bytes");
        break;
      case PartLayout::per_group:
        if (q.group < 2 || cols % q.group != 0) bad_part("a per-group part's group must be >= 2 and divide the columns");
        if (q.items != rows * (cols / q.group)) bad_part("a per-group part must have one item per group of a row");
        if (mul_checked(mul_checked(tile_rows, cols / q.group), ib) > kMaxChunkSize)
          bad_part("a tile's chunk exceeds 2^28 bytes");
        break;
      case PartLayout::tensor_wide:
        if (q.items > kMaxChunkSize / ib) bad_part("a tensor-wide part exceeds 2^28 bytes");
        break;
      case PartLayout::inline_items: {
        if (q.items > kMaxInlinePart / ib) bad_part("an inline part exceeds 65536 bytes");
        uint64_t n = q.items * ib;
        if (q.codec != 0) {  // 2.3: a codec's payload, at most the chunk bound of its items' bytes
          n = r.u32();
          if (n > max_stored_size(q.items * ib)) bad_part("an inline part's payload exceeds the bound of its items");
        }
        const uint8_t* d = r.bytes(n);
        q.data.assign(d, d + n);
        break;
      }
    }
  }
  for (unsigned L = 0; L < nlevels; ++L)
    if (!level_used[L]) bad("level " + std::to_string(L) + " has no part");
  t.levels.resize(nlevels);
  for (auto& l : t.levels) {
    l.xxh3 = r.u64();
    const uint32_t a = r.u32(), b = r.u32();
    std::memcpy(&l.rel_rmse, &a, 4);
    std::memcpy(&l.max_abs, &b, 4);
  }
}

// The pools extension's data (§4.6), `at` its data's offset: each pool's
// fields; members are matched by link_pools once every record is read.
static void decode_pools(const uint8_t* p, size_t n, uint64_t at, Manifest& m) {
  ByteReader r(p, n, at);
  const uint32_t count = r.u32();
  if (count == 0 || count > kMaxPools)
    fail_at(Errc::corrupt, at, "a pools extension of " + std::to_string(count) + " pools (1 to 64)");
  for (uint32_t i = 0; i < count; ++i) {
    PoolRecord q;
    q.offset = r.abs_pos();
    const uint8_t dt = r.u8();
    const auto d = dtype_from_id(dt);
    if (!d || !pool_dtype(*d))
      fail_at(Errc::corrupt, q.offset, "a pool of dtype id " + std::to_string(dt) + " (BF16, F16, F32 or FP8 only)");
    q.dtype = *d;
    q.codec = r.u8();
    if (!pool_codec(q.codec))
      fail_at(Errc::corrupt, q.offset + 1, "a pool of codec " + std::to_string(q.codec) + " (0 to 5, 7 or 8)");
    must_be_zero(r.u16(), q.offset + 2, "pool.reserved");
    const uint32_t stored = r.u32();
    if (stored > r.remaining()) fail_at(Errc::corrupt, q.offset + 4, "a pool's payload runs past its extension");
    const uint8_t* b = r.bytes(stored);
    q.payload.assign(b, b + stored);
    for (const auto& o : m.pools)
      if (o.dtype == q.dtype) fail_at(Errc::corrupt, q.offset, "two pools of " + std::string(dtype_name(q.dtype)));
    m.pools.push_back(std::move(q));
  }
  if (r.remaining() != 0) fail_at(Errc::corrupt, r.abs_pos(), "bytes after the last pool of the pools extension");
}

void link_pools(Manifest& m) {
  for (auto& q : m.pools) q.raw_size = 0;
  for (uint32_t i = 0; i < m.tensors.size(); ++i) {
    TensorRecord& t = m.tensors[i];
    if (t.repr != 0 || t.codec != kCodecPooled) continue;  // (codec 9 off inline tensors is refused as read)
    uint32_t k = 0;
    while (k < m.pools.size() && m.pools[k].dtype != t.dtype) ++k;
    if (k == m.pools.size())
      fail_at(Errc::corrupt, t.record_offset, "tensor '" + t.name + "': codec 9 but no pool of " + std::string(dtype_name(t.dtype)));
    t.pool = k;
    m.pools[k].raw_size += t.byte_size;  // at most 10^7 inline tensors of 2^16 bytes: no overflow
  }
  for (const auto& q : m.pools) {
    const std::string what = "the pool of " + std::string(dtype_name(q.dtype));
    if (q.raw_size == 0) fail_at(Errc::corrupt, q.offset, what + " has no member");
    if (q.raw_size > kMaxPoolRaw || q.raw_size > kPoolRawPerStored * q.payload.size() + (uint64_t(1) << 16))
      fail_at(Errc::corrupt, q.offset, what + ": " + std::to_string(q.raw_size) + " raw bytes from " +
                                           std::to_string(q.payload.size()) + " stored (at most 2^24 and 64 x stored + 2^16)");
    if (q.payload.size() > max_stored_size(q.raw_size))
      fail_at(Errc::corrupt, q.offset + 4, what + ": a payload beyond the stored-size bound of its raw size");
  }
  // each member's share of its pool's payload, in proportion to its bytes,
  // the shares adding up to the payload (the last member takes the rest)
  std::vector<uint64_t> raw_before(m.pools.size(), 0), given(m.pools.size(), 0);
  for (auto& t : m.tensors) {
    if (t.pool == UINT32_MAX) continue;
    const PoolRecord& q = m.pools[t.pool];
    raw_before[t.pool] += t.byte_size;
    const uint64_t upto = uint64_t((unsigned __int128)q.payload.size() * raw_before[t.pool] / q.raw_size);
    t.pool_share = upto - given[t.pool];
    given[t.pool] = upto;
  }
}

Manifest decode_manifest(const uint8_t* p, size_t n, uint64_t base, const ManifestCheck& check, uint16_t minor,
                         uint16_t major) {
  ByteReader r(p, n, base);
  Manifest m;
  m.major = major;
  uint32_t nfiles = r.u32(), ntensors = r.u32(), nchunks = r.u32();
  std::vector<uint32_t> level_first;
  std::vector<uint8_t> step_bytes;
  uint64_t steps_at = 0;
  if (major == kVersionMajor) {
    must_be_zero(r.u32(), r.abs_pos() - 4, "manifest.reserved");
  } else {
    const unsigned levels = r.u8();
    if (levels == 0) fail_at(Errc::corrupt, base + 12, "manifest level count is 0");
    const unsigned order = r.u8();
    if (order > 1) fail_at(Errc::corrupt, base + 13, "unknown chunk order " + std::to_string(order));
    m.chunk_order = uint8_t(order);
    must_be_zero(r.u16(), base + 14, "manifest.reserved");
    level_first.resize(levels);
    for (auto& c : level_first) c = r.u32();
    if (order == 1) {  // 2.9: the steps of every multi-level tensor's levels above 0
      steps_at = r.abs_pos();
      const uint32_t count = r.u32();
      if (count > r.remaining()) fail_at(Errc::corrupt, steps_at, "the step list exceeds the manifest");
      const uint8_t* s = r.bytes(count);
      step_bytes.assign(s, s + count);
    }
  }
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
    if (major == kVersionMajor && minor == 0 && f.name.find('/') != std::string::npos)
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
    t.record_offset = at;
    t.name = r.str16();
    uint8_t dt = r.u8();
    auto d = dtype_from_id(dt);
    if (!d) fail_at(Errc::corrupt, at, "tensor '" + t.name + "': unknown dtype id " + std::to_string(dt));
    t.dtype = *d;
    t.codec = r.u8();
    unsigned rank = r.u8();
    if (major == kVersionMajor) must_be_zero(r.u8(), r.abs_pos() - 1, "tensor.reserved");
    else t.repr = r.u8();
    if (rank > kMaxRank) fail_at(Errc::limit, at, "tensor '" + t.name + "': rank " + std::to_string(rank) + " exceeds limit");
    t.shape.resize(rank);
    for (auto& s : t.shape) s = r.u64();
    t.byte_size = r.u64();
    t.chunk_size = r.u32();
    uint16_t plen = r.u16();
    auto* b = r.bytes(plen);
    t.params.assign(b, b + plen);
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
    if (t.lossy()) {
      decode_lossy(r, t, at);
      if (check.tensor) check.tensor(t, at);
      continue;
    }
    if (plen != 0 && (t.codec < kCodecIdsWithoutParams || t.codec == kCodecGroups || t.codec == kCodecPairs ||
                      t.codec == kCodecPooled))
      fail_at(Errc::corrupt, at, "tensor '" + t.name + "': codec " + std::to_string(t.codec) + " takes no parameters");
    if (t.inline_exact()) {  // 1.4, 2.5: the payload follows
      if (t.byte_size > kMaxInlineTensor)
        fail_at(Errc::corrupt, at, "tensor '" + t.name + "': an inline tensor of " + std::to_string(t.byte_size) +
                                       " bytes exceeds the " + std::to_string(kMaxInlineTensor) + "-byte limit");
      const uint64_t at_size = r.abs_pos();
      const uint32_t stored = r.u32();
      if (stored > max_stored_size(t.byte_size) || (t.codec == 0 && stored != t.byte_size) ||
          (t.codec == kCodecPooled && stored != 0))
        fail_at(Errc::corrupt, at_size, "tensor '" + t.name + "': inline payload of " + std::to_string(stored) +
                                            " bytes for " + std::to_string(t.byte_size) + " raw bytes");
      if (stored > r.remaining()) fail_at(Errc::corrupt, at_size, "tensor '" + t.name + "': inline payload runs past the manifest");
      auto* pb = r.bytes(stored);
      t.payload.assign(pb, pb + stored);
      continue;
    }
    if (t.codec == kCodecPooled)
      fail_at(Errc::corrupt, at, "tensor '" + t.name + "': codec 9 (a pool member) on a tensor that is not inline");
    if (t.byte_size > 0 && (t.chunk_size > kMaxChunkSize || t.chunk_size % kAlign != 0))
      fail_at(Errc::corrupt, at, "tensor '" + t.name + "': invalid chunk size " + std::to_string(t.chunk_size));
    if (t.byte_size == 0 && t.chunk_size != 0)
      fail_at(Errc::corrupt, at, "tensor '" + t.name + "': empty tensor with a chunk size");
  }
  uint32_t next = r.u32();
  bool pooled = false;
  for (uint32_t i = 0; i < next; ++i) {
    uint64_t at = r.abs_pos();
    const uint16_t type = r.u16();
    uint16_t flags = r.u16();
    uint32_t len = r.u32();
    const uint8_t* data = r.bytes(len);
    if (type == kExtPools) {  // 1.8, 2.13: §4.6
      if (pooled) fail_at(Errc::corrupt, at, "a second pools extension");
      if (flags != 0) fail_at(Errc::corrupt, at + 2, "the pools extension's flags are not 0");
      pooled = true;
      decode_pools(data, len, at + 8, m);
      continue;
    }
    if (flags & 1) fail_at(Errc::unsupported_version, at, "file needs a critical extension this reader does not know");
    if (flags & ~1u) fail_at(Errc::corrupt, at, "reserved extension flags set");
  }
  link_pools(m);
  if (r.remaining() != 0) fail_at(Errc::corrupt, r.abs_pos(), "trailing bytes after the manifest records");
  // Files' sizes must add up: prefix + tensor bytes.
  for (auto& f : m.files) {
    uint64_t sz = f.prefix.size();
    for (uint32_t i = 0; i < f.tensor_count; ++i) sz = add_checked(sz, m.tensors[f.first_tensor + i].byte_size);
    if (sz != f.size) fail_at(Errc::corrupt, base, "file '" + f.name + "': size does not match its tensors");
  }
  if (m.chunk_order == 1) {  // each tensor's steps: 0, then rising, below the model's level count
    size_t at = 0;
    std::vector<uint32_t> held(level_first.size(), 0);
    for (auto& t : m.tensors) {
      t.level_step.assign(1, 0);
      if (t.levels.size() <= 1) continue;
      for (size_t L = 1; L < t.levels.size(); ++L) {
        if (at == step_bytes.size()) fail_at(Errc::corrupt, steps_at, "the step list is shorter than the tensors' levels");
        const uint8_t s = step_bytes[at++];
        if (s <= t.level_step.back() || s >= level_first.size())
          fail_at(Errc::corrupt, steps_at + 4 + at - 1,
                  "tensor '" + t.name + "': level " + std::to_string(L) + " arrives at step " + std::to_string(s) +
                      " (steps rise from 1 and stay below the level count)");
        t.level_step.push_back(s);
        ++held[s];
      }
    }
    if (at != step_bytes.size()) fail_at(Errc::corrupt, steps_at, "the step list is longer than the tensors' levels");
    for (size_t K = 1; K < held.size(); ++K)
      if (!held[K]) fail_at(Errc::corrupt, steps_at, "step " + std::to_string(K) + " holds no tensor's level");
  }
  m.derive_chunks();
  if (m.chunk_count != nchunks) fail_at(Errc::corrupt, base + 8, "chunk count does not match the tensors");
  if (major != kVersionMajor) {
    if (level_first.size() != m.level_count)
      fail_at(Errc::corrupt, base + 12, "manifest level count differs from the tensors' levels");
    if (level_first != m.level_first_chunk)
      fail_at(Errc::corrupt, base + 16, "where the levels start differs from the tensors' chunks");
  }
  m.major = major;
  check_records(m, base, check);
  if (check.pools && !m.pools.empty()) check.pools(m);
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
