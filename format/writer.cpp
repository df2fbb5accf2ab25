#include "format/writer.h"

#include <algorithm>

#include "format/hash.h"

#include "format/bytes.h"
#include "format/footer.h"
#include "format/header.h"
#include "format/zframe.h"

namespace wc {

// Manifest and index are read by every open, so make them compact; but a
// model with 100,000 tensors has a manifest of megabytes, where level 19
// would take many seconds.
int meta_zstd_level(size_t raw_size, uint64_t model_bytes) {
  if (raw_size > (1u << 20)) return 3;
  return raw_size <= 4096 || uint64_t(raw_size) * 1024 >= model_bytes ? 19 : 9;
}

void ContainerWriter::put(const void* p, size_t n) {
  sink_.write(p, n);
  pos_ += n;
}

void ContainerWriter::zeros(uint64_t n) {
  static const uint8_t z[256] = {};
  while (n > 0) {
    size_t k = n < sizeof z ? size_t(n) : sizeof z;
    put(z, k);
    n -= k;
  }
}

void ContainerWriter::begin(const Manifest& m) {
  auto raw = encode_manifest(m);
  model_bytes_ = m.original_bytes();
  auto stored = zframe_compress(raw, meta_zstd_level(raw.size(), model_bytes_));
  FileHeader h;
  major_ = m.has_lossy() ? kVersionMajorLossy : kVersionMajor;
  minor_ = kVersionMinorFlat;
  bool mixed = false, inlined = false, patched = false, grouped = false, paired = false;
  for (const auto& t : m.tensors)
    mixed |= !t.lossy() && t.codec >= kCodecFirst13, inlined |= t.inline_exact(),
        patched |= !t.lossy() && t.codec >= kCodecFirst15, grouped |= !t.lossy() && t.codec >= kCodecGroups,
        paired |= !t.lossy() && t.codec == kCodecPairs;
  if (major_ == kVersionMajorLossy) {
    minor_ = mixed ? kVersionMinorLossyMixed : kVersionMinorLossy;
    for (const auto& t : m.tensors) {
      if (t.repr >= kReprFirst22) minor_ = std::max(minor_, kVersionMinorLossyOutliers);
      for (const auto& q : t.parts)
        if (q.layout == PartLayout::inline_items && (q.codec != 0 || q.role == PartRole::codes))
          minor_ = std::max(minor_, kVersionMinorLossyInlineCoded);
      if (t.repr >= kReprFirst24) minor_ = kVersionMinorLossyVq;
      for (const auto& q : t.parts)
        if (q.layout == PartLayout::per_group) minor_ = kVersionMinorLossyVq;
    }
    if (inlined) minor_ = kVersionMinorLossyInline;
    if (patched) minor_ = kVersionMinorLossyPatch;
    for (const auto& t : m.tensors)
      if (t.levels.size() > 1) minor_ = std::max(minor_, kVersionMinorLossyExactTop);
    // 2.8: refinement levels, or a level above 0 whose tiles' payloads carry
    // flags (a tensor of one tile: part 0 inline, the tables in the payload)
    for (const auto& t : m.tensors)
      for (const auto& q : t.parts)
        if (q.role == PartRole::residual ||
            (q.level > 0 && t.parts[0].layout == PartLayout::inline_items && t.parts[0].codec == 0) ||
            (q.level > 0 && q.layout == PartLayout::inline_items && q.items == 0))
          minor_ = kVersionMinorLossyRefine;
    if (m.chunk_order == 1) minor_ = kVersionMinorLossyOrder;
    if (grouped) minor_ = kVersionMinorLossyGroups;
    // 2.11: vq's d = 1, books per group of rows (params byte 3), additive books (6 params bytes), a tensor-wide codebook
    for (const auto& t : m.tensors)
      if (t.repr == kReprFirst24 &&
          (t.params.size() == 6 || (t.params.size() == 4 && (t.params[2] == 1 || t.params[3] != 0)) ||
           (t.parts.size() == 3 && t.parts[2].layout == PartLayout::tensor_wide)))
        minor_ = kVersionMinorLossyVqBooks;
    if (paired) minor_ = kVersionMinorLossyPairs;
    if (!m.pools.empty()) minor_ = kVersionMinorLossyPools;
    for (const auto& t : m.tensors)  // 2.14: sign-magnitude blocks
      for (const auto& q : t.parts)
        if (q.role == PartRole::block) minor_ = kVersionMinorLossyBlocks;
  }
  else {
    for (const auto& f : m.files)
      if (f.name.find('/') != std::string::npos) minor_ = kVersionMinor;
    for (const auto& t : m.tensors)
      if (t.codec >= kCodecFirst12) minor_ = kVersionMinorTrim;
    if (mixed) minor_ = kVersionMinorMixed;
    if (inlined) minor_ = kVersionMinorInline;
    if (patched) minor_ = kVersionMinorPatch;
    if (grouped) minor_ = kVersionMinorGroups;
    if (paired) minor_ = kVersionMinorPairs;
    if (!m.pools.empty()) minor_ = kVersionMinorPools;
  }
  h.major = major_;
  h.minor = minor_;
  h.manifest_stored = stored.size();
  h.manifest_raw = raw.size();
  h.manifest_xxh3 = XXH3_64bits(stored.data(), stored.size());
  uint8_t hb[64];
  write_file_header(h, hb);
  put(hb, 64);
  put(stored.data(), stored.size());
  chunks_start_ = pos_;
  shares_ = manifest_shares(m, raw.size(), stored.size());
  raw_sizes_.clear();
  for_each_chunk(m, [&](uint32_t, uint32_t t, uint32_t i) { raw_sizes_.push_back(m.tensors[t].chunk_raw_size(i)); });
  index_.clear();
  index_.reserve(raw_sizes_.size());
}

void ContainerWriter::add_chunk(const uint8_t* stored, size_t n) {
  if (index_.size() >= raw_sizes_.size()) fail(Errc::usage, "more chunks written than the manifest declares");
  ChunkEntry e;
  e.raw_size = raw_sizes_[index_.size()];
  if (n > max_stored_size(e.raw_size)) fail(Errc::codec, "stored chunk exceeds the size bound of its raw size");
  e.offset = next_payload_offset(pos_);
  e.stored_size = static_cast<uint32_t>(n);
  e.xxh3 = XXH3_64bits(stored, n);
  zeros(e.offset - kChunkHeaderSize - pos_);
  uint8_t ch[kChunkHeaderSize];
  store_u32(ch, e.stored_size);
  store_u32(ch + 4, static_cast<uint32_t>(index_.size()));
  store_u64(ch + 8, e.xxh3);
  put(ch, sizeof ch);
  put(stored, n);
  index_.push_back(e);
}

void ContainerWriter::finish() {
  if (index_.size() != raw_sizes_.size()) fail(Errc::usage, "fewer chunks written than the manifest declares");
  uint64_t index_off = align_up(pos_, kAlign);
  zeros(index_off - pos_);
  auto raw = encode_index(index_);
  auto stored = zframe_compress(raw, meta_zstd_level(raw.size(), model_bytes_));
  put(stored.data(), stored.size());
  FileFooter f;
  f.index_offset = index_off;
  f.index_stored = stored.size();
  f.index_raw = raw.size();
  f.index_xxh3 = XXH3_64bits(stored.data(), stored.size());
  f.file_size = pos_ + kFooterSize;
  f.major = major_;
  f.minor = minor_;
  uint8_t fb[64];
  write_file_footer(f, fb);
  put(fb, 64);
}

}  // namespace wc
