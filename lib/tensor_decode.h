// A run of a container's tensors decoded in order, a window of units at a
// time in parallel (lib/chunk_windows.h), each unit checked against its
// level's reconstruction hash: for the tools that read tensors rather than
// whole files (unpack --tensor, verify's lower levels).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "format/reader.h"
#include "lib/chunk_windows.h"
#include "lib/decode_driver.h"
#include "lib/thread_pool.h"
#include "lib/unit_decode.h"

namespace wc {

// Decodes tensors [first, first + count) of the container at `level`
// (lib/unit_decode.h), chunks in parallel windows, handing each unit's bytes
// to emit() strictly in order.
template <class Emit>
void decode_tensors(const ContainerReader& r, uint32_t first, uint32_t count, ThreadPool& pool, unsigned level,
                    Emit&& emit) {
  const Manifest& m = r.manifest();
  const size_t slots = chunk_slots(pool);
  std::vector<RawBuffer> raw(slots);
  std::vector<UnitWork> work(slots);
  std::vector<std::vector<std::span<const uint8_t>>> spans(slots);
  ReconstructionCheck recon;
  for (uint32_t i = first; i < first + count; ++i) check_decodable(m.tensors[i], r.path());
  for_chunk_windows(
      m, first, count, pool, [](size_t, const ChunkJob&) {},
      [&](size_t k, const ChunkJob& j) {
        const TensorRecord& t = m.tensors[j.tensor];
        spans[k].resize(unit_chunks(t, level));
        for (uint32_t c = 0; c < spans[k].size(); ++c) spans[k][c] = r.chunk(unit_chunk(t, j.chunk, c, level));
        try {
          decode_unit(t, j.chunk, spans[k].data(), work[k], t.dtype,
                      raw[k].reserve(unit_out_size(t, j.chunk, t.dtype)), r.path(), level);
        } catch (Error& e) {  // where the unit's chunks lie (a unit of record parts only: the manifest)
          e.at_offset(spans[k].empty() ? kHeaderSize : r.index()[unit_chunk(t, j.chunk, 0, level)].offset);
          throw;
        }
      },
      [&](size_t k, const ChunkJob& j) {
        recon.bytes(m.tensors[j.tensor], j.chunk, raw[k].data(), raw[k].size(), r.path(), level);
        emit(raw[k].data(), raw[k].size());
      });
}

}  // namespace wc
