// Streaming container writer: header and manifest first, then each chunk in
// order as it is produced, then the index and footer. It never seeks, so it
// can write to a pipe.
#pragma once
#include <cstdint>
#include <vector>

#include "format/container.h"
#include "platform/file_io.h"

namespace wc {

// zstd level of a manifest or index of `raw_size` bytes in the container of
// a model of `model_bytes` (Manifest::original_bytes): 19 up to 4 KiB (about a
// millisecond) or where it is at least 1/1024 of the model, so that its
// bytes matter (small models, whose manifests hold their inline tensors:
// the corpus ones), 9 otherwise, 3 over 1 MiB.
// Level 19 runs at about 3 MB/s (9 ms on Whisper tiny.en's 27 KB manifest,
// 4% of its pack on one thread) for 1.8% fewer bytes than level 9's there
// (0.0003% of the file).
int meta_zstd_level(size_t raw_size, uint64_t model_bytes);

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
  uint64_t pos_ = 0, chunks_start_ = 0, model_bytes_ = 0;
  ManifestShares shares_;
  uint16_t major_ = kVersionMajor;      // 2.0 only when a tensor is lossy
  uint16_t minor_ = kVersionMinorFlat;  // 1.1 only when a file name has a '/'
  std::vector<uint32_t> raw_sizes_;
  std::vector<ChunkEntry> index_;
};

}  // namespace wc
