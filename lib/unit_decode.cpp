#include "lib/unit_decode.h"

#include "codec/codec.h"
#include "quant/exact_top.h"
#include "quant/repr.h"

namespace wc {

namespace {

// The chunked parts a tile reads at levels lo..hi: its tiled parts of those
// levels, and their tensor-wide parts (one chunk each, which every tile
// reads: the exact top layer's tables, 2.7).
bool chunked(const PartRecord& p, unsigned lo, unsigned hi) {
  return (p.tiled() || (p.layout == PartLayout::tensor_wide && p.items > 0)) && p.level >= lo && p.level <= hi;
}

[[noreturn]] void fail_tensor(Errc c, const std::string& msg, const std::string& file, const TensorRecord& t) {
  Error e(c, msg);
  e.at_file(file).at_tensor(t.name);
  throw e;
}

// The same, citing the tensor's record (what it says is wrong or unknown).
[[noreturn]] void fail_record(Errc c, const std::string& msg, const std::string& file, const TensorRecord& t) {
  Error e(c, msg);
  e.at_file(file).at_tensor(t.name).at_offset(t.record_offset);
  throw e;
}

}  // namespace

uint64_t unit_count(const TensorRecord& t) {
  if (t.inline_exact()) return 1;  // the whole tensor, from its record
  return t.lossy() ? (t.byte_size ? t.tile_count() : 0) : t.chunk_count;
}

uint32_t unit_chunks(const TensorRecord& t, unsigned level) { return unit_chunks_in(t, 0, level); }

uint32_t unit_chunk(const TensorRecord& t, uint64_t u, uint32_t j, unsigned level) {
  return unit_chunk_in(t, u, j, 0, level);
}

uint32_t unit_chunks_in(const TensorRecord& t, unsigned lo, unsigned hi) {
  if (t.inline_exact()) return 0;
  if (!t.lossy()) return lo == 0 ? 1 : 0;
  uint32_t n = 0;
  for (const auto& p : t.parts) n += chunked(p, lo, hi);
  return n;
}

uint32_t unit_chunk_in(const TensorRecord& t, uint64_t u, uint32_t j, unsigned lo, unsigned hi) {
  if (!t.lossy()) return t.first_chunk + uint32_t(u);
  for (uint32_t p = 0; p < t.parts.size(); ++p)
    if (chunked(t.parts[p], lo, hi) && j-- == 0) return t.global_chunk(t.chunk_of_part(p, u));
  return UINT32_MAX;
}

uint64_t unit_out_size(const TensorRecord& t, uint64_t u, DType out) {
  if (!t.lossy()) return t.chunk_raw_size(uint32_t(u));
  return t.rows_in_tile(u) * t.cols() * (dtype_bits(out) / 8);
}

uint64_t unit_stride(const TensorRecord& t, DType out) {
  if (t.inline_exact()) return t.byte_size;  // one unit
  return t.lossy() ? uint64_t(t.tile_rows()) * t.cols() * (dtype_bits(out) / 8) : t.chunk_size;
}

static void decode_chunk_or_throw(uint8_t codec, DType t, std::span<const uint8_t> stored, uint8_t* dst, size_t n,
                                  const std::string& what, const std::string& file, const TensorRecord& rec) {
  Errc rc = codec_id_valid(codec) ? decode_chunk(static_cast<CodecId>(codec), t, stored.data(), stored.size(), dst, n)
                                  : Errc::unsupported_version;
  if (rc == Errc::ok) return;
  fail_tensor(rc,
              rc == Errc::unsupported_version
                  ? "codec id " + std::to_string(codec) + " is unknown to this reader (written by a newer version?)"
                  : what + " does not decode (" + std::string(codec_name(static_cast<CodecId>(codec))) + ")",
              file, rec);
}

void decode_one_chunk(const TensorRecord& t, uint32_t i, std::span<const uint8_t> stored, uint8_t* dst,
                      const std::string& file) {
  decode_chunk_or_throw(t.codec, t.dtype, stored, dst, t.chunk_raw_size(i),
                        t.inline_exact() ? std::string("the inline tensor (in the manifest)") : "chunk " + std::to_string(i),
                        file, t);
}

void check_decodable(const TensorRecord& t, const std::string& file) {
  if (t.lossy() && !find_repr(t.repr))
    fail_record(Errc::unsupported_version,
                "representation " + std::to_string(t.repr) + " is unknown to this reader (written by a newer version?)",
                file, t);
}

void decode_stored_chunk(const TensorRecord& t, uint32_t global, std::span<const uint8_t> stored, uint8_t* dst,
                         const std::string& file) {
  const uint32_t local = t.local_chunk(global);
  if (local == UINT32_MAX) fail_tensor(Errc::usage, "chunk " + std::to_string(global) + " is not the tensor's", file, t);
  if (!t.lossy()) {
    decode_one_chunk(t, local, stored, dst, file);
    return;
  }
  const TensorRecord::PartChunk pc = t.part_chunk(local);
  const PartRecord& part = t.parts[pc.part];
  if (part.codec == exact::kCodecExactResidual)  // coded given the level below: a tile decodes it
    fail_tensor(Errc::usage, "an exact top layer's chunk decodes only with its tile", file, t);
  decode_chunk_or_throw(part.codec, part.item, stored, dst, t.part_bytes(pc.part, pc.tile),
                        "part " + std::to_string(pc.part) + " chunk " + std::to_string(local), file, t);
}

// The bytes of t's parts of levels lo..hi for tile u (tiled parts from
// `stored`, in order; inline parts from the record, decoded when coded).
static void gather_inputs(const TensorRecord& t, uint64_t u, unsigned lo, unsigned hi,
                          const std::span<const uint8_t>* stored, UnitWork& ws, TileInputs& in, const std::string& file);

void decode_unit(const TensorRecord& t, uint64_t u, const std::span<const uint8_t>* stored, UnitWork& ws, DType out,
                 uint8_t* dst, const std::string& file, unsigned level) {
  if (t.inline_exact()) {
    decode_one_chunk(t, 0, std::span<const uint8_t>(t.payload), dst, file);
    return;
  }
  if (!t.lossy()) {
    decode_one_chunk(t, uint32_t(u), stored[0], dst, file);
    return;
  }
  check_decodable(t, file);
  const Repr* r = find_repr(t.repr);
  if (out != DType::BF16 && out != DType::F16 && out != DType::F32)
    fail_tensor(Errc::usage, "a lossy tensor decodes to BF16, F16 or F32 only", file, t);
  const unsigned L = level_of(t, level);
  if (L > 0 && out != t.dtype)
    fail_tensor(Errc::usage, "levels above 0 decode to the tensor's own dtype only", file, t);
  TileInputs in;
  gather_inputs(t, u, 0, L, stored, ws, in, file);
  const Errc rc = r->decode_tile(t, uint32_t(u), L, in, out, dst);
  if (rc != Errc::ok) fail_tensor(rc, "tile " + std::to_string(u) + " does not decode (" + std::string(r->name) + ")", file, t);
}

void upgrade_unit(const TensorRecord& t, uint64_t u, unsigned from, unsigned to, const std::span<const uint8_t>* stored,
                  UnitWork& ws, uint8_t* dst, const std::string& file) {
  check_decodable(t, file);
  const Repr* r = find_repr(t.repr);
  if (!t.lossy() || !r->upgrade_tile || from >= to || to >= t.levels.size())
    fail_tensor(Errc::usage, "no level " + std::to_string(to) + " above level " + std::to_string(from) + " to apply",
                file, t);
  TileInputs in;
  gather_inputs(t, u, from + 1, to, stored, ws, in, file);
  const Errc rc = r->upgrade_tile(t, uint32_t(u), from, to, in, dst);
  if (rc != Errc::ok)
    fail_tensor(rc, "tile " + std::to_string(u) + " does not upgrade (" + std::string(r->name) + ")", file, t);
}

static void gather_inputs(const TensorRecord& t, uint64_t u, unsigned lo, unsigned hi,
                          const std::span<const uint8_t>* stored, UnitWork& ws, TileInputs& in, const std::string& file) {
  uint32_t j = 0;
  for (uint32_t p = 0; p < t.parts.size(); ++p) {
    const PartRecord& part = t.parts[p];
    if (part.level < lo || part.level > hi) continue;
    if (part.codec == exact::kCodecExactResidual && chunked(part, lo, hi)) {  // the representation decodes it
      in.data[p] = stored[j].data(), in.size[p] = stored[j].size();
      ++j;
    } else if (part.layout == PartLayout::inline_items && part.codec == 0) {
      in.data[p] = part.data.data(), in.size[p] = part.data.size();
    } else if (part.layout == PartLayout::inline_items) {  // 2.3: a payload in the record
      const uint64_t n = part.items * part.item_bytes();
      uint8_t* d = ws.part[p].reserve(n);
      decode_chunk_or_throw(part.codec, part.item, std::span<const uint8_t>(part.data), d, n,
                            "inline part " + std::to_string(p) + " (in the manifest)", file, t);
      in.data[p] = d, in.size[p] = n;
    } else if (chunked(part, lo, hi)) {
      const uint64_t n = t.part_bytes(p, u);
      uint8_t* d = ws.part[p].reserve(n);
      decode_chunk_or_throw(part.codec, part.item, stored[j++], d, n,
                            "part " + std::to_string(p) + " of tile " + std::to_string(u), file, t);
      in.data[p] = d, in.size[p] = n;
    } else {  // a tensor-wide part of no items: no chunk
      in.data[p] = nullptr, in.size[p] = 0;
    }
  }
}

void ReconstructionCheck::bytes(const TensorRecord& t, uint64_t u, const uint8_t* p, size_t n, const std::string& file,
                                unsigned level) {
  if (!t.lossy()) return;
  if (u == 0) XXH3_64bits_reset(hs_.s);
  XXH3_64bits_update(hs_.s, p, n);
  if (u + 1 == unit_count(t) && XXH3_64bits_digest(hs_.s) != t.levels[level_of(t, level)].xxh3)
    fail_record(Errc::checksum, "the decoded tensor does not match the reconstruction hash its record stores", file, t);
}

}  // namespace wc
