// Walks a manifest's files, tensors and chunks in file order, decoding chunks
// in parallel windows and handing the bytes to a target strictly in order.
// Used by unpack (target: output files) and verify (target: comparisons).
// Every file's bytes are hashed on the way and checked against the manifest.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "format/container.h"
#include "format/hash.h"
#include "lib/api.h"
#include "lib/thread_pool.h"

namespace wc {

class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  // True when get() may be called from worker threads in any order (mapped
  // files); false when it must be called in chunk order on one thread (pipes).
  virtual bool random_access() const = 0;
  // Verified stored bytes of chunk i; `buf` may be used as storage.
  virtual std::span<const uint8_t> get(uint32_t i, std::vector<uint8_t>& buf) = 0;
  virtual const std::string& name() const = 0;
  // File offset of chunk i's payload (for error messages; i already got).
  virtual uint64_t payload_offset(uint32_t i) const = 0;
};

class AssemblyTarget {
 public:
  virtual ~AssemblyTarget() = default;
  virtual void begin_file(uint32_t f) = 0;
  virtual void bytes(const uint8_t* p, size_t n) = 0;
  virtual void end_file(uint32_t f) = 0;
};

// A chunk's output buffer: grown (never shrunk) without zero-filling, so a
// chunk that claims a large raw size and fails to decode early costs no
// memory for the pages its decoder never wrote.
class RawBuffer {
 public:
  uint8_t* reserve(size_t n) {
    if (n > cap_) p_.reset(new uint8_t[n]), cap_ = n;
    n_ = n;
    return p_.get();
  }
  const uint8_t* data() const { return p_.get(); }
  size_t size() const { return n_; }

 private:
  std::unique_ptr<uint8_t[]> p_;
  size_t cap_ = 0, n_ = 0;
};

// An XXH3-64 streaming state, freed with its owner.
struct HashState {
  XXH3_state_t* s = XXH3_createState();
  ~HashState() { XXH3_freeState(s); }
  HashState() = default;
  HashState(const HashState&) = delete;
  HashState& operator=(const HashState&) = delete;
};

// `level`: each lossy tensor at min(level, its top level) (lib/unit_decode.h
// kTopLevel: the top). A file whose tensors are all at their top levels is
// checked against its XXH3-64; below, each lossy tensor against its
// level's (exact tensors against their chunks').
void decode_model(const Manifest& m, ChunkSource& src, AssemblyTarget& dst, ThreadPool& pool,
                  const ProgressFn& progress, unsigned level = 255);
// The same for files [first, first + count) only (a random-access source;
// a stream decodes every file): unpack --file.
void decode_files(const Manifest& m, uint32_t first, uint32_t count, ChunkSource& src, AssemblyTarget& dst,
                  ThreadPool& pool, const ProgressFn& progress, unsigned level = 255);

// Decodes one chunk of exact tensor `t` into dst (exactly t.chunk_raw_size(i)
// bytes); throws naming the tensor and chunk (lib/unit_decode.cpp, beside
// the lossy parts' chunk decoder whose errors it shares).
void decode_one_chunk(const TensorRecord& t, uint32_t i, std::span<const uint8_t> stored, uint8_t* dst,
                      const std::string& file);

}  // namespace wc
