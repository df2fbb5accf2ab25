#include "lib/decode_driver.h"

#include <memory>

#include "model/file_check.h"
#include "format/hash.h"
#include "lib/chunk_windows.h"
#include "lib/unit_decode.h"

namespace wc {

namespace {

// Shard indexes are JSON the size of a weight map: a few MB for the largest
// models. A larger one is refused rather than buffered.
constexpr uint64_t kMaxShardIndexSize = 64u << 20;

}  // namespace

void decode_model(const Manifest& m, ChunkSource& src, AssemblyTarget& dst, ThreadPool& pool,
                  const ProgressFn& progress, unsigned level) {
  decode_files(m, 0, uint32_t(m.files.size()), src, dst, pool, progress, level);
}

void decode_files(const Manifest& m, uint32_t first, uint32_t count, ChunkSource& src, AssemblyTarget& dst,
                  ThreadPool& pool, const ProgressFn& progress, unsigned level) {
  if (!src.random_access() && (first != 0 || count != m.files.size()))
    fail(Errc::usage, "a stream decodes every file in order");
  uint64_t total = 0, done = 0;
  for (uint32_t fi = first; fi < first + count; ++fi) total += m.files[fi].size;
  const size_t slots = chunk_slots(pool);
  std::vector<RawBuffer> raw(slots);
  std::vector<UnitWork> work(slots);
  ReconstructionCheck recon;
  std::vector<std::vector<std::vector<uint8_t>>> stored(slots);  // per slot, per chunk of the unit
  std::vector<uint8_t> shard_index;  // the bytes of a shard index, checked before it is committed
  std::vector<std::vector<std::span<const uint8_t>>> spans(slots);
  HashState hs;

  for (uint32_t fi = first; fi < first + count; ++fi) {
    const FileRecord& f = m.files[fi];
    const bool is_index = f.kind == FileKind::blob && is_shard_index_name(f.name);
    if (is_index && f.size > kMaxShardIndexSize) {
      Error e(Errc::limit, "shard index '" + f.name + "' is larger than " + std::to_string(kMaxShardIndexSize) + " bytes");
      e.at_file(src.name());
      throw e;
    }
    shard_index.clear();
    XXH3_64bits_reset(hs.s);
    dst.begin_file(fi);
    dst.bytes(f.prefix.data(), f.prefix.size());
    XXH3_64bits_update(hs.s, f.prefix.data(), f.prefix.size());
    done += f.prefix.size();
    // A unit's chunks: a stream yields them in order only, so they are
    // fetched in the ordered stage before the parallel one; a mapped file
    // is read by the workers.
    auto fetch = [&](size_t k, const ChunkJob& j) {
      const TensorRecord& t = m.tensors[j.tensor];
      if (j.chunk == 0) check_decodable(t, src.name());
      const unsigned L = level_at(t, level);  // the model's level: this tensor's
      const uint32_t n = unit_chunks(t, L);
      stored[k].resize(n), spans[k].resize(n);
      for (uint32_t c = 0; c < n; ++c) spans[k][c] = src.get(unit_chunk(t, j.chunk, c, L), stored[k][c]);
    };
    for_chunk_windows(
        m, f.first_tensor, f.tensor_count, pool,
        [&](size_t k, const ChunkJob& j) {
          if (!src.random_access()) fetch(k, j);
        },
        [&](size_t k, const ChunkJob& j) {
          const TensorRecord& t = m.tensors[j.tensor];
          if (src.random_access()) fetch(k, j);
          try {
            decode_unit(t, j.chunk, spans[k].data(), work[k], t.dtype, raw[k].reserve(unit_out_size(t, j.chunk, t.dtype)),
                        src.name(), level_at(t, level));
          } catch (Error& e) {
            // where the unit's chunks lie; a tile of inline parts only has none: they lie in the
            // (compressed) manifest, which starts at kHeaderSize
            e.at_offset(unit_chunks(t) > 0 ? src.payload_offset(unit_chunk(t, j.chunk, 0)) : kHeaderSize);
            throw;
          }
        },
        [&](size_t k, const ChunkJob& j) {
          const TensorRecord& t = m.tensors[j.tensor];
          recon.bytes(t, j.chunk, raw[k].data(), raw[k].size(), src.name(), level_at(t, level));
          if (is_index) shard_index.insert(shard_index.end(), raw[k].data(), raw[k].data() + raw[k].size());
          dst.bytes(raw[k].data(), raw[k].size());
          XXH3_64bits_update(hs.s, raw[k].data(), raw[k].size());
          done += raw[k].size();
          if (progress) progress(done, total);  // throttled by the caller
        });
    bool top = true;  // every tensor of the file at its top level: the file's own hash applies
    for (uint32_t i = f.first_tensor; i < f.first_tensor + f.tensor_count; ++i)
      top &= m.tensors[i].levels.size() <= 1 || level_at(m.tensors[i], level) + 1 == m.tensors[i].levels.size();
    if (top && XXH3_64bits_digest(hs.s) != f.xxh3) {
      Error e(Errc::checksum, "decoded file '" + f.name + "' does not match the checksum of the original");
      e.at_file(src.name());
      throw e;
    }
    if (is_index) {
      try {
        check_shard_index(m, f, shard_index.data(), shard_index.size(), UINT64_MAX);
      } catch (Error& e) {
        const TensorRecord& t = m.tensors[f.first_tensor];
        e.at_file(src.name()).at_tensor(t.name);
        if (t.chunk_count) e.at_offset(src.payload_offset(t.first_chunk));  // the index's first bytes
        throw;
      }
    }
    dst.end_file(fi);
    if (progress) progress(done, total);  // a file may end in bytes outside chunks
  }
}

}  // namespace wc
