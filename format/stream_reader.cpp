#include "format/stream_reader.h"

#include <algorithm>
#include <cstring>
#include "format/hash.h"

#include "format/bytes.h"
#include "format/footer.h"
#include "format/reader.h"
#include "format/zframe.h"

namespace wc {

// Reads n bytes into buf, growing it as they arrive: a size the stream merely
// claims never costs more memory than the bytes that actually came (plus one
// step).
void ContainerStreamReader::read_growing(std::vector<uint8_t>& buf, uint64_t n) {
  buf.clear();
  while (buf.size() < n) {
    const size_t k = size_t(std::min<uint64_t>(n - buf.size(), std::max<size_t>(buf.size(), 1u << 16)));
    buf.resize(buf.size() + k);
    in_.read_exact(buf.data() + buf.size() - k, k);
  }
}

ContainerStreamReader::ContainerStreamReader(StreamIn& in, const ManifestCheck& check) : in_(in) {
  try {
    uint8_t hb[64];
    size_t got = in_.read_some(hb, 64);
    if (got >= 8 && std::memcmp(hb, kHeadMagic, 8) != 0) fail_not_container(hb, got);
    if (got < 64) fail_at(Errc::truncated, got, "stream too short to be a wcodec container");
    header_ = read_file_header(hb, UINT64_MAX);
    // Grow with the bytes that actually arrive, not with what the header claims.
    std::vector<uint8_t> stored;
    read_growing(stored, header_.manifest_stored);
    if (XXH3_64bits(stored.data(), stored.size()) != header_.manifest_xxh3)
      fail_at(Errc::checksum, kHeaderSize, "manifest");
    auto raw = zframe_decompress(stored.data(), stored.size(), header_.manifest_raw, "manifest", kHeaderSize);
    manifest_ = decode_manifest(raw.data(), raw.size(), kHeaderSize, check, header_.minor, header_.major);
    cursor_.emplace(manifest_);
    end_ = kHeaderSize + stored.size();
  } catch (Error& e) {
    e.at_file(in_.name());
    throw;
  }
}

const TensorRecord& ContainerStreamReader::tensor_of_chunk(uint32_t i) const {
  if (i >= owner_.size()) fail(Errc::usage, "chunk " + std::to_string(i) + " has not been read");
  return manifest_.tensors[owner_[i]];
}

void ContainerStreamReader::skip_zeros(uint64_t n) {
  uint8_t buf[256];
  while (n > 0) {
    size_t k = n < sizeof buf ? size_t(n) : sizeof buf;
    uint64_t at = in_.offset();
    in_.read_exact(buf, k);
    for (size_t j = 0; j < k; ++j)
      if (buf[j] != 0) fail_at(Errc::corrupt, at + j, "padding byte is not zero");
    n -= k;
  }
}

bool ContainerStreamReader::next_chunk(std::vector<uint8_t>& buf, ChunkEntry& e) {
  uint32_t i = chunks_read();
  if (i == manifest_.chunk_count) return false;
  // Per-chunk tables would cost memory in proportion to a count the file
  // claims; a cursor over the tensors costs nothing.
  uint32_t ti = 0, ci = 0;
  if (!cursor_->next(&ti, &ci)) fail_at(Errc::corrupt, end_, "more chunks than the tensors have");
  const TensorRecord& t = manifest_.tensors[ti];
  owner_.push_back(ti);
  try {
    e.offset = next_payload_offset(end_);
    skip_zeros(e.offset - kChunkHeaderSize - end_);
    uint8_t ch[kChunkHeaderSize];
    uint64_t h = in_.offset();
    in_.read_exact(ch, sizeof ch);
    e.stored_size = load_u32(ch);
    e.raw_size = t.chunk_raw_size(ci);
    e.xxh3 = load_u64(ch + 8);
    if (load_u32(ch + 4) != i) fail_at(Errc::corrupt, h + 4, "chunk sequence number " + std::to_string(load_u32(ch + 4)) + " where " + std::to_string(i) + " was expected");
    // A codec never needs more than its raw size plus a small margin; a larger
    // claim is corruption, and refusing it bounds memory.
    if (e.stored_size > max_stored_size(e.raw_size))
      fail_at(Errc::corrupt, h, "chunk stored size " + std::to_string(e.stored_size) + " is implausible for its raw size");
    read_growing(buf, e.stored_size);
    if (XXH3_64bits(buf.data(), buf.size()) != e.xxh3) fail_at(Errc::checksum, e.offset, "chunk " + std::to_string(i));
    end_ = e.offset + e.stored_size;
    seen_.push_back(e);
  } catch (Error& err) {
    err.at_file(in_.name()).at_tensor(t.name);
    throw;
  }
  return true;
}

void ContainerStreamReader::finish() {
  try {
    if (seen_.size() != manifest_.chunk_count) fail(Errc::usage, "finish() before every chunk was read");
    uint64_t index_off = align_up(end_, kAlign);
    skip_zeros(index_off - end_);
    // The index length is only known from the footer, so read to the end of
    // the stream; the index is at most kMaxIndexSize.
    std::vector<uint8_t> tail;
    uint8_t buf[65536];
    for (;;) {
      size_t got = in_.read_some(buf, sizeof buf);
      if (got == 0) break;
      if (tail.size() + got > kMaxIndexSize + kFooterSize) fail_at(Errc::corrupt, index_off, "data after the last chunk exceeds the index limit");
      tail.insert(tail.end(), buf, buf + got);
    }
    if (tail.size() < kFooterSize) fail_at(Errc::truncated, in_.offset(), "stream ends before the footer");
    uint64_t foot_at = index_off + tail.size() - kFooterSize;
    FileFooter f = read_file_footer(tail.data() + tail.size() - kFooterSize, foot_at);
    if (f.index_offset != index_off) fail_at(Errc::corrupt, foot_at, "footer points to a wrong index offset");
    if (f.minor != header_.minor || f.major != header_.major) fail_at(Errc::corrupt, foot_at + 42, "header and footer versions differ");
    if (XXH3_64bits(tail.data(), f.index_stored) != f.index_xxh3) fail_at(Errc::checksum, index_off, "index");
    auto raw = zframe_decompress(tail.data(), f.index_stored, f.index_raw, "index", index_off);
    auto idx = decode_index(raw.data(), raw.size(), index_off);
    check_index_layout(manifest_, idx, kHeaderSize + header_.manifest_stored, index_off);
    for (size_t i = 0; i < idx.size(); ++i)
      if (idx[i].stored_size != seen_[i].stored_size || idx[i].xxh3 != seen_[i].xxh3)
        fail_at(Errc::corrupt, index_off, "index entry " + std::to_string(i) + " differs from the chunk in the stream");
  } catch (Error& e) {
    e.at_file(in_.name());
    throw;
  }
}

}  // namespace wc
