// One error type for the whole library: a stable code, a message, and where it
// happened (file, tensor, byte offset) when known. Library code throws it; the
// C API and the CLI turn it into a return code / exit status.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace wc {

// Codes are stable: never renumber, only append.
enum class Errc : int {
  ok = 0,
  io = 1,               // open/read/write/rename failed
  truncated = 2,        // file shorter than its structures say
  bad_magic = 3,        // not a wcodec container
  unsupported_version = 4,  // major version this reader does not know
  checksum = 5,         // an XXH3-64 did not match
  corrupt = 6,          // structurally invalid (bad offset, length, reserved bits)
  bad_safetensors = 7,  // input is not a valid safetensors file
  exists = 8,           // output exists and -f was not given
  limit = 9,            // a size or count exceeds a hard limit
  codec = 10,           // a codec rejected its stream
  usage = 11,           // bad arguments
  mismatch = 12,        // verify --against found different bytes
  not_found = 13,       // no tensor or file of that name (C API look-ups)
};

const char* errc_name(Errc c) noexcept;

class Error : public std::runtime_error {
 public:
  Error(Errc code, std::string msg) : std::runtime_error(std::move(msg)), code_(code) {}

  Errc code() const noexcept { return code_; }
  const std::string& file() const noexcept { return file_; }
  const std::string& tensor() const noexcept { return tensor_; }
  // UINT64_MAX when unknown.
  uint64_t offset() const noexcept { return offset_; }

  // Context is filled in as the error travels outwards; inner layers know the
  // offset, outer layers know the file name. The first value set wins.
  Error& at_file(const std::string& f) { if (file_.empty()) file_ = f; return *this; }
  Error& at_tensor(const std::string& t) { if (tensor_.empty()) tensor_ = t; return *this; }
  Error& at_offset(uint64_t o) { if (offset_ == UINT64_MAX) offset_ = o; return *this; }

  // "FILE: tensor 'T': offset N: message"
  std::string describe() const;

 private:
  Errc code_;
  std::string file_, tensor_;
  uint64_t offset_ = UINT64_MAX;
};

[[noreturn]] void fail(Errc code, std::string msg);
[[noreturn]] void fail_at(Errc code, uint64_t offset, std::string msg);
// An error about the file (or folder) at `path`.
[[noreturn]] void fail_file(Errc code, const std::string& path, std::string msg);

}  // namespace wc
