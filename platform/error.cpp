#include "platform/error.h"

#include "platform/text.h"

namespace wc {

const char* errc_name(Errc c) noexcept {
  switch (c) {
    case Errc::ok: return "ok";
    case Errc::io: return "I/O error";
    case Errc::truncated: return "truncated";
    case Errc::bad_magic: return "bad magic";
    case Errc::unsupported_version: return "unsupported version";
    case Errc::checksum: return "checksum mismatch";
    case Errc::corrupt: return "corrupt";
    case Errc::bad_safetensors: return "invalid safetensors";
    case Errc::exists: return "output exists";
    case Errc::limit: return "limit exceeded";
    case Errc::codec: return "codec error";
    case Errc::usage: return "usage";
    case Errc::mismatch: return "mismatch";
    case Errc::not_found: return "not found";
  }
  return "unknown error";
}

std::string Error::describe() const {
  std::string s;
  if (!file_.empty()) s += file_ + ": ";
  if (!tensor_.empty()) s += "tensor '" + tensor_ + "': ";
  if (offset_ != UINT64_MAX) s += "offset " + std::to_string(offset_) + ": ";
  s += errc_name(code_);
  s += ": ";
  s += what();
  return escape_for_terminal(s);  // names in it come from files
}

void fail(Errc code, std::string msg) { throw Error(code, std::move(msg)); }

void fail_file(Errc code, const std::string& path, std::string msg) {
  Error e(code, std::move(msg));
  e.at_file(path);
  throw e;
}

void fail_at(Errc code, uint64_t offset, std::string msg) {
  Error e(code, std::move(msg));
  e.at_offset(offset);
  throw e;
}

}  // namespace wc
