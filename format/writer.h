// Streaming container writer: header and manifest first, then each chunk in
// order as it is produced, then the index and footer. It never seeks, so it
// can write to a pipe.
#pragma once
#include <cstdint>
#include <vector>

#include "format/container.h"
#include "platform/file_io.h"

namespace wc {

// zstd level of a manifest or index of `raw_size` bytes.
int meta_zstd_level(size_t raw_size);

class ContainerWriter {
 public:
  explicit ContainerWriter(ByteSink& sink) : sink_(sink) {}
  // `m` must have derive_chunks() applied; chunk sizes must follow from it.
  void begin(const Manifest& m);
  // The next chunk in order (tensor order, then chunk order).
  void add_chunk(const uint8_t* stored, size_t n);
  void finish();
  uint64_t bytes_written() const { return pos_; }
  const std::vector<ChunkEntry>& index() const { return index_; }
  uint64_t chunks_start() const { return chunks_start_; }  // the manifest's end
  // The manifest's stored / raw size.
  // how the compressed manifest's bytes are shared (tensor_file_bytes)
  const ManifestShares& shares() const { return shares_; }

 private:
  void put(const void* p, size_t n);
  void zeros(uint64_t n);
  ByteSink& sink_;
  uint64_t pos_ = 0, chunks_start_ = 0;
  ManifestShares shares_;
  uint16_t major_ = kVersionMajor;      // 2.0 only when a tensor is lossy
  uint16_t minor_ = kVersionMinorFlat;  // 1.1 only when a file name has a '/'
  std::vector<uint32_t> raw_sizes_;
  std::vector<ChunkEntry> index_;
};

}  // namespace wc
