// ChunkSource over a mapped container and over a container stream.
#pragma once
#include <map>

#include "format/reader.h"
#include "format/stream_reader.h"
#include "lib/decode_driver.h"

namespace wc {

class FileChunkSource : public ChunkSource {
 public:
  explicit FileChunkSource(const ContainerReader& r) : r_(r) {}
  bool random_access() const override { return true; }
  std::span<const uint8_t> get(uint32_t i, std::vector<uint8_t>&) override { return r_.chunk(i); }
  const std::string& name() const override { return r_.path(); }
  uint64_t payload_offset(uint32_t i) const override { return r_.index().at(i).offset; }

 private:
  const ContainerReader& r_;
};

// A stream yields chunks in container order. Decoding a multi-level file at
// its top level (an exact top layer, EXACT_TOP.md) needs each tile's
// level-1 chunk beside its level-0 ones, which the level-major order puts
// after every level-0 chunk: the chunks skipped to reach it are kept (their
// stored bytes, up to kMaxStreamStash) until they are asked for.
inline constexpr uint64_t kMaxStreamStash = uint64_t(4) << 30;

class StreamChunkSource : public ChunkSource {
 public:
  StreamChunkSource(ContainerStreamReader& r, std::string name) : r_(r), name_(std::move(name)) {}
  bool random_access() const override { return false; }
  std::span<const uint8_t> get(uint32_t i, std::vector<uint8_t>& buf) override {
    ChunkEntry e;
    if (auto k = kept_.find(i); k != kept_.end()) {  // a tensor-wide part's chunk, read by every tile
      buf = k->second;
      return {buf.data(), buf.size()};
    }
    if (i < r_.chunks_read()) {  // skipped earlier on the way to a later level
      auto it = stash_.find(i);
      if (it == stash_.end()) fail(Errc::usage, "stream chunks requested out of order");
      buf.swap(it->second);
      stashed_ -= buf.size();
      stash_.erase(it);
      keep(i, buf);
      return {buf.data(), buf.size()};
    }
    while (r_.chunks_read() < i) {
      const uint32_t c = r_.chunks_read();
      std::vector<uint8_t> kept;
      if (!r_.next_chunk(kept, e)) fail(Errc::usage, "stream chunks requested out of order");
      stashed_ += kept.size();
      if (stashed_ > kMaxStreamStash) {
        Error err(Errc::limit, "decoding this multi-level container from a stream keeps more than " +
                                   std::to_string(kMaxStreamStash >> 30) +
                                   " GiB of its lower level's chunks: read it from a file, or decode level 0");
        err.at_file(name_).at_tensor(r_.tensor_of_chunk(c).name).at_offset(r_.payload_offset(c));
        throw err;
      }
      stash_.emplace(c, std::move(kept));
    }
    if (!r_.next_chunk(buf, e)) fail(Errc::usage, "stream chunks requested out of order");
    keep(i, buf);
    return {buf.data(), buf.size()};
  }
  const std::string& name() const override { return name_; }
  uint64_t payload_offset(uint32_t i) const override { return r_.payload_offset(i); }

 private:
  ContainerStreamReader& r_;
  std::string name_;
  // A chunk of a tensor-wide part is asked for by each tile of its tensor:
  // a copy is kept (these are small: the exact top layer's tables, at most
  // 2^16 bytes raw).
  void keep(uint32_t i, const std::vector<uint8_t>& b) {
    const TensorRecord& t = r_.tensor_of_chunk(i);
    if (t.lossy() && t.parts[t.part_chunk(t.local_chunk(i)).part].layout == PartLayout::tensor_wide) kept_.emplace(i, b);
  }
  std::map<uint32_t, std::vector<uint8_t>> stash_, kept_;
  uint64_t stashed_ = 0;
};

}  // namespace wc
