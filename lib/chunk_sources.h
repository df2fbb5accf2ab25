// ChunkSource over a mapped container and over a container stream.
#pragma once
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

class StreamChunkSource : public ChunkSource {
 public:
  StreamChunkSource(ContainerStreamReader& r, std::string name) : r_(r), name_(std::move(name)) {}
  bool random_access() const override { return false; }
  std::span<const uint8_t> get(uint32_t i, std::vector<uint8_t>& buf) override {
    ChunkEntry e;
    if (i != r_.chunks_read() || !r_.next_chunk(buf, e)) fail(Errc::usage, "stream chunks requested out of order");
    return {buf.data(), buf.size()};
  }
  const std::string& name() const override { return name_; }
  uint64_t payload_offset(uint32_t i) const override { return r_.payload_offset(i); }

 private:
  ContainerStreamReader& r_;
  std::string name_;
};

}  // namespace wc
