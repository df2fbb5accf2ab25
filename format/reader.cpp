#include "format/reader.h"

#include <cstring>
#include "format/hash.h"

#include "format/bytes.h"
#include "format/zframe.h"

namespace wc {

uint64_t check_index_layout(const Manifest& m, const std::vector<ChunkEntry>& idx, uint64_t payload_start,
                            uint64_t index_offset) {
  if (idx.size() != m.chunk_count) fail_at(Errc::corrupt, index_offset, "index lists a different number of chunks than the manifest");
  uint64_t end = payload_start;
  ChunkCursor cursor(m);
  uint32_t ti, i;
  for (size_t c = 0; cursor.next(&ti, &i); ++c) {
    {
      const TensorRecord& t = m.tensors[ti];
      const ChunkEntry& e = idx[c];
      if (e.offset != next_payload_offset(end))
        fail_at(Errc::corrupt, index_offset, "index entry " + std::to_string(c) + " has a wrong offset");
      if (e.raw_size != t.chunk_raw_size(i))
        fail_at(Errc::corrupt, index_offset, "index entry " + std::to_string(c) + " has a wrong raw size");
      if (e.stored_size > max_stored_size(e.raw_size))
        fail_at(Errc::corrupt, index_offset, "index entry " + std::to_string(c) + " has an implausible stored size");
      end = add_checked(e.offset, e.stored_size);
      if (end > index_offset) fail_at(Errc::corrupt, index_offset, "chunk " + std::to_string(c) + " runs into the index");
    }
  }
  if (align_up(end, kAlign) != index_offset) fail_at(Errc::corrupt, index_offset, "index is not where the last chunk ends");
  return end;
}

void ContainerReader::map(const std::string& path) {
  try {
    file_ = std::make_unique<MappedFile>(path);
  } catch (Error& e) {
    e.at_file(path);
    throw;
  }
  data_ = file_->data();
  size_ = file_->size();
}

ContainerReader::ContainerReader(const std::string& path, const ManifestCheck& check) : name_(path) {
  map(path);
  open(check);
}

ContainerReader::ContainerReader(const std::string& path, const ManifestCheck& check, Prefix) : name_(path) {
  map(path);
  open_prefix(check);
}

ContainerReader::ContainerReader(const uint8_t* data, uint64_t size, std::string name, const ManifestCheck& check,
                                 Prefix)
    : data_(data), size_(size), name_(std::move(name)) {
  open_prefix(check);
}

void ContainerReader::open_prefix(const ManifestCheck& check) {
  try {
    walk_prefix(check);
  } catch (Error& e) {
    e.at_file(name_);
    throw;
  }
}

void ContainerReader::walk_prefix(const ManifestCheck& check) {
  const uint8_t* p = data_;
  const uint64_t n = size_;
  if (n < kHeaderSize) {
    if (n >= 8 && std::memcmp(p, kHeadMagic, 8) != 0) fail_not_container(p, n);
    fail_at(Errc::truncated, n, "file is too short to be a wcodec container");
  }
  header_ = read_file_header(p, n);
  const uint64_t mend = add_checked(kHeaderSize, header_.manifest_stored);
  if (mend > n) fail_at(Errc::truncated, n, "the file ends inside the manifest");
  if (XXH3_64bits(p + kHeaderSize, header_.manifest_stored) != header_.manifest_xxh3)
    fail_at(Errc::checksum, kHeaderSize, "manifest");
  {
    auto mraw = zframe_decompress(p + kHeaderSize, header_.manifest_stored, header_.manifest_raw, "manifest", kHeaderSize);
    manifest_ = decode_manifest(mraw.data(), mraw.size(), kHeaderSize, check, header_.minor, header_.major);
  }
  // the chunks wholly in the file, each header checked as a stream reader checks it
  uint64_t end = mend;
  ChunkCursor cursor(manifest_);
  uint32_t ti, i;
  for (uint32_t c = 0; cursor.next(&ti, &i); ++c) {
    const uint64_t off = next_payload_offset(end);
    if (off > n) break;
    const uint64_t h = off - kChunkHeaderSize;
    for (uint64_t k = end; k < h; ++k)
      if (p[k] != 0) fail_at(Errc::corrupt, k, "padding byte is not zero");
    ChunkEntry e;
    e.offset = off;
    e.stored_size = load_u32(p + h);
    e.raw_size = manifest_.tensors[ti].chunk_raw_size(i);
    e.xxh3 = load_u64(p + h + 8);
    if (load_u32(p + h + 4) != c) fail_at(Errc::corrupt, h + 4, "chunk header sequence number is not " + std::to_string(c));
    if (e.stored_size > max_stored_size(e.raw_size)) fail_at(Errc::corrupt, h, "chunk header claims an implausible size");
    if (off + e.stored_size > n) break;
    index_.push_back(e);
    end = off + e.stored_size;
  }
  const uint32_t have = uint32_t(index_.size());
  if (have < manifest_.chunk_count) {
    const auto& first = manifest_.level_first_chunk;
    if (first.size() < 2 || have < first[1])
      fail_at(Errc::truncated, n,
              "the file ends inside level 0 (" + std::to_string(have) + " of its chunks are whole): no model to decode");
    complete_level_ = 0;
    while (complete_level_ + 2 < first.size() && have >= first[complete_level_ + 2]) ++complete_level_;
  }
  chunk_tensor_.resize(manifest_.chunk_count);
  for_each_chunk(manifest_, [&](uint32_t g, uint32_t t, uint32_t) { chunk_tensor_[g] = t; });
}

ContainerReader::ContainerReader(const uint8_t* data, uint64_t size, std::string name, const ManifestCheck& check)
    : data_(data), size_(size), name_(std::move(name)) {
  open(check);
}

void ContainerReader::open(const ManifestCheck& check) {
  try {
    const uint8_t* p = data_;
    uint64_t n = size_;
    if (n < kHeaderSize + kFooterSize) {
      if (n >= 8 && std::memcmp(p, kHeadMagic, 8) != 0) fail_not_container(p, n);
      fail_at(Errc::truncated, n, "file is too short to be a wcodec container");
    }
    header_ = read_file_header(p, n);
    footer_ = read_file_footer(p + n - kFooterSize, n - kFooterSize);
    if (header_.minor != footer_.minor || header_.major != footer_.major)
      fail_at(Errc::corrupt, n - 24, "header and footer versions differ");
    uint64_t mend = kHeaderSize + header_.manifest_stored;
    if (mend > footer_.index_offset) fail_at(Errc::corrupt, 16, "manifest overlaps the index");
    if (XXH3_64bits(p + kHeaderSize, header_.manifest_stored) != header_.manifest_xxh3)
      fail_at(Errc::checksum, kHeaderSize, "manifest");
    {  // the decompressed manifest goes before the index is decompressed
      auto mraw = zframe_decompress(p + kHeaderSize, header_.manifest_stored, header_.manifest_raw, "manifest", kHeaderSize);
      manifest_ = decode_manifest(mraw.data(), mraw.size(), kHeaderSize, check, header_.minor, header_.major);
    }
    // Chunk payloads start 64 bytes apart at least (a 16-byte header before
    // each aligned payload), the first 16 bytes after the manifest at least,
    // and the index's size follows from the chunk count: check both before
    // decompressing the index, so its size is bounded by the file's, not by
    // what the manifest claims.
    const uint64_t area = footer_.index_offset - mend;
    if (manifest_.chunk_count > 0 && area < kChunkHeaderSize + kAlign * (uint64_t(manifest_.chunk_count) - 1))
      fail_at(Errc::corrupt, kHeaderSize, "manifest claims more chunks than the file can hold");
    if (footer_.index_raw != 8 + 24 * uint64_t(manifest_.chunk_count))
      fail_at(Errc::corrupt, n - kFooterSize + 16, "index size does not match the manifest's chunk count");
    if (XXH3_64bits(p + footer_.index_offset, footer_.index_stored) != footer_.index_xxh3)
      fail_at(Errc::checksum, footer_.index_offset, "index");
    auto iraw = zframe_decompress(p + footer_.index_offset, footer_.index_stored, footer_.index_raw, "index", footer_.index_offset);
    index_ = decode_index(iraw.data(), iraw.size(), footer_.index_offset);
    check_index_layout(manifest_, index_, mend, footer_.index_offset);
    if (index_.empty())
      for (uint64_t k = mend; k < footer_.index_offset; ++k)
        if (p[k] != 0) fail_at(Errc::corrupt, k, "padding byte is not zero");
    chunk_tensor_.resize(index_.size());
    for_each_chunk(manifest_, [&](uint32_t g, uint32_t t, uint32_t) { chunk_tensor_[g] = t; });
  } catch (Error& e) {
    e.at_file(name_);
    throw;
  }
}

const TensorRecord& ContainerReader::tensor_of_chunk(uint32_t i) const { return manifest_.tensors.at(chunk_tensor_.at(i)); }

std::span<const uint8_t> ContainerReader::chunk(uint32_t i) const {
  const uint8_t* p = data_;
  const ChunkEntry& e = index_.at(i);
  try {
    uint64_t prev_end = i == 0 ? kHeaderSize + header_.manifest_stored : index_[i - 1].offset + index_[i - 1].stored_size;
    uint64_t h = e.offset - kChunkHeaderSize;
    for (uint64_t k = prev_end; k < h; ++k)
      if (p[k] != 0) fail_at(Errc::corrupt, k, "padding byte is not zero");
    if (load_u32(p + h) != e.stored_size) fail_at(Errc::corrupt, h, "chunk header size differs from the index");
    if (load_u32(p + h + 4) != i) fail_at(Errc::corrupt, h + 4, "chunk header sequence number differs from the index");
    if (load_u64(p + h + 8) != e.xxh3) fail_at(Errc::checksum, h + 8, "chunk header checksum differs from the index");
    if (verify_payloads_ && XXH3_64bits(p + e.offset, e.stored_size) != e.xxh3)
      fail_at(Errc::checksum, e.offset, "chunk " + std::to_string(i));
    if (i + 1 == index_.size())
      for (uint64_t k = e.offset + e.stored_size; k < footer_.index_offset; ++k)
        if (p[k] != 0) fail_at(Errc::corrupt, k, "padding byte is not zero");
  } catch (Error& err) {
    err.at_file(path()).at_tensor(tensor_of_chunk(i).name);
    throw;
  }
  return {p + e.offset, e.stored_size};
}

uint64_t ContainerReader::overhead_bytes() const {
  uint64_t payload = 0;
  for (const auto& e : index_) payload += e.stored_size;
  return file_size() - payload;
}

}  // namespace wc
