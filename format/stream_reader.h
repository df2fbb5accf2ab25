// Front-to-back container reader for pipes: header and manifest first, then
// one chunk at a time, then the index and footer, which are checked against
// everything seen. Memory is bounded by the manifest plus one chunk.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "format/container.h"
#include "platform/file_io.h"
#include "format/header.h"

namespace wc {

class ContainerStreamReader {
 public:
  // Reads and validates header + manifest; `check` runs as the manifest is
  // decoded (see ManifestCheck; lib/ passes check_manifest_files).
  ContainerStreamReader(StreamIn& in, const ManifestCheck& check);
  const Manifest& manifest() const { return manifest_; }
  // Reads the next chunk's verified stored bytes into `buf`. Returns false
  // when every chunk has been read. `e` receives its index entry.
  bool next_chunk(std::vector<uint8_t>& buf, ChunkEntry& e);
  // Reads the index and footer, checks them against the chunks seen, and
  // checks that the stream ends there.
  void finish();
  uint32_t chunks_read() const { return static_cast<uint32_t>(seen_.size()); }
  // Where chunk i's payload began in the stream (i < chunks_read()).
  uint64_t payload_offset(uint32_t i) const { return seen_.at(i).offset; }
  const TensorRecord& tensor_of_chunk(uint32_t i) const;

 private:
  void skip_zeros(uint64_t n);
  void read_growing(std::vector<uint8_t>& buf, uint64_t n);
  StreamIn& in_;
  FileHeader header_;
  Manifest manifest_;
  std::optional<ChunkCursor> cursor_;  // the next chunk to read
  std::vector<ChunkEntry> seen_;  // grows only with chunks actually read
  std::vector<uint32_t> owner_;   // tensor of each chunk read
  uint64_t end_ = 0;  // end of the last structure read
};

}  // namespace wc
