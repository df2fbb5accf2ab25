// Random-access container reader over a mapped file. Opening validates the
// header, footer, manifest and index (checksums, limits, and that every chunk
// sits exactly where the layout rule puts it) without touching the payloads;
// chunk() validates one chunk's header, padding and checksum before handing
// its bytes out.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/container.h"
#include "platform/file_io.h"
#include "format/header.h"
#include "format/footer.h"

namespace wc {

class ContainerReader {
 public:
  // `check` runs as the manifest is decoded, before the index is read (see
  // ManifestCheck; lib/ passes check_manifest_files). Errors name `path`.
  ContainerReader(const std::string& path, const ManifestCheck& check);
  // Over bytes the caller keeps alive (fuzzing, embedded use); errors name `name`.
  ContainerReader(const uint8_t* data, uint64_t size, std::string name, const ManifestCheck& check);
  // A prefix of a container (a partial download of a file packed with
  // levels, spec/FORMAT.md §4.3): the header and manifest, then the chunks
  // whose headers and payloads lie wholly in the file, walked front to back
  // as a stream reader walks them (each header against the layout rule and
  // the manifest's raw sizes; payload hashes when read); no footer or index
  // is needed. complete_level() is the highest level all of whose chunks
  // are there (kMaxLevels for a file that holds them all). Errc::truncated
  // when level 0 is not complete.
  struct Prefix {};
  ContainerReader(const std::string& path, const ManifestCheck& check, Prefix);
  ContainerReader(const uint8_t* data, uint64_t size, std::string name, const ManifestCheck& check, Prefix);
  unsigned complete_level() const { return complete_level_; }
  const Manifest& manifest() const { return manifest_; }
  const std::vector<ChunkEntry>& index() const { return index_; }
  const FileHeader& header() const { return header_; }
  const FileFooter& footer() const { return footer_; }
  uint64_t file_size() const { return size_; }
  // Where the manifest ends (the chunk area begins).
  uint64_t manifest_end() const { return kHeaderSize + header_.manifest_stored; }
  const std::string& path() const { return name_; }
  // Verified stored bytes of chunk `i` (global chunk number): its framing
  // and, unless turned off, its XXH3-64.
  std::span<const uint8_t> chunk(uint32_t i) const;
  // The stored bytes of chunk i of exact tensor t: chunk() of its global
  // number, or the payload its record holds (an inline tensor, 1.4/2.5:
  // its one chunk, checked with the manifest).
  std::span<const uint8_t> exact_chunk(const TensorRecord& t, uint32_t i) const {
    return t.inline_exact() ? std::span<const uint8_t>(t.payload) : chunk(t.global_chunk(i));
  }
  // For trusted, already verified files (a runtime's own cache): chunk()
  // skips the payload hash. Offsets and sizes are still checked; set before
  // any chunk is read, not while other threads read.
  void set_verify_payloads(bool on) { verify_payloads_ = on; }
  bool verify_payloads() const { return verify_payloads_; }
  // Tensor owning global chunk `i`.
  const TensorRecord& tensor_of_chunk(uint32_t i) const;
  // Bytes that are neither payload, manifest, index nor fixed structures
  // (padding and chunk headers); used by inspect's accounting.
  uint64_t overhead_bytes() const;

 private:
  void open(const ManifestCheck& check);
  void map(const std::string& path);  // maps the file; errors name it
  void open_prefix(const ManifestCheck& check);
  void walk_prefix(const ManifestCheck& check);
  unsigned complete_level_ = kMaxLevels;
  std::unique_ptr<MappedFile> file_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::string name_;
  FileHeader header_;
  FileFooter footer_;
  Manifest manifest_;
  std::vector<ChunkEntry> index_;
  std::vector<uint32_t> chunk_tensor_;
  bool verify_payloads_ = true;
};

// Checks the layout rule and the raw sizes of an index against a manifest;
// `payload_start` is the first byte after the manifest. Returns where the
// index must begin. Shared by the file and stream readers.
uint64_t check_index_layout(const Manifest& m, const std::vector<ChunkEntry>& idx, uint64_t payload_start,
                            uint64_t index_offset);

}  // namespace wc
