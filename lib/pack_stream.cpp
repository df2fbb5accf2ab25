// pack from a stream (standard input): the safetensors bytes are read front to
// back into an anonymous memory file, which is then packed like a file on
// disk under the name the caller gives.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <string>
#include <vector>

#include "format/container.h"
#include "format/names.h"
#include "platform/file_io.h"
#include "model/safetensors.h"
#include "lib/api.h"

namespace wc {

namespace {

void write_all_fd(int fd, const uint8_t* p, size_t n, const std::string& name) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_file(Errc::io, name, std::string("cannot hold the input in memory: ") + std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
}

// The memory file and the name it is opened under: "<tmp>/wcodec-stdin.XXXXXX/NAME",
// a symbolic link to /proc/self/fd/N. All removed at scope exit (and by the
// signal handler: the link, then the folder).
class NamedMemoryFile {
 public:
  NamedMemoryFile(const std::string& name, const std::string& stream) {
    fd_ = ::memfd_create("wcodec-stdin", MFD_CLOEXEC);
    if (fd_ < 0) fail_file(Errc::io, stream, std::string("cannot create a memory file: ") + std::strerror(errno));
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wcodec-stdin.XXXXXX";
    if (!::mkdtemp(tmpl.data())) fail_file(Errc::io, tmpl, std::string("cannot create a temporary folder: ") + std::strerror(errno));
    dir_ = tmpl;
    dir_guard_ = SignalCleanup(dir_, SignalCleanup::directory);
    link_ = path_join(dir_, name);
    link_guard_ = SignalCleanup(link_, SignalCleanup::file);
    const std::string target = "/proc/self/fd/" + std::to_string(fd_);
    if (::symlink(target.c_str(), link_.c_str()) != 0)
      fail_file(Errc::io, link_, std::string("cannot create a link to the memory file: ") + std::strerror(errno));
    struct stat st;
    if (::stat(link_.c_str(), &st) != 0)
      fail_file(Errc::io, stream, "packing from a stream needs /proc (to open the memory file by name)");
  }
  ~NamedMemoryFile() {
    if (!link_.empty()) ::unlink(link_.c_str());
    link_guard_.reset();
    if (!dir_.empty()) ::rmdir(dir_.c_str());
    dir_guard_.reset();
    if (fd_ >= 0) ::close(fd_);
  }
  NamedMemoryFile(const NamedMemoryFile&) = delete;
  NamedMemoryFile& operator=(const NamedMemoryFile&) = delete;
  int fd() const { return fd_; }
  const std::string& path() const { return link_; }

 private:
  int fd_ = -1;
  std::string dir_, link_;
  SignalCleanup dir_guard_, link_guard_;
};

}  // namespace

namespace {

void check_stored_name(const std::string& name) {
  if (!valid_file_name(name) || name.find('/') != std::string::npos)
    fail(Errc::usage, "'" + name + "' cannot be stored as a file name (one path component, UTF-8, at most 255 bytes)");
  if (name.size() >= 11 && name.compare(name.size() - 11, 11, ".index.json") == 0)
    fail(Errc::usage, "a sharded model (an index and its shards) cannot be packed from a stream");
}

// The first 8 bytes: a container, or bytes that are no safetensors header
// length, are refused before the rest of the input is read.
void check_head(const uint8_t* head, size_t got, const std::string& stream) {
  if (got == 8 && std::memcmp(head, kHeadMagic, 8) == 0)
    fail_file(Errc::usage, stream, "already a wcodec container (to restore the original: wcodec unpack)");
  if (got < 8) fail_file(Errc::bad_safetensors, stream, "not a safetensors file (" + std::to_string(got) + " bytes)");
  try {
    (void)st::header_json_len(head, 8, UINT64_MAX);
  } catch (const Error& e) {
    fail_file(Errc::bad_safetensors, stream, std::string("not a safetensors file (") + e.what() + ")");
  }
}

// pack() of the memory file, with errors naming the stream rather than the
// temporary link.
PackResult pack_named(const NamedMemoryFile& mem, const std::string& stream, const std::string& out,
                      const PackOptions& opt) {
  try {
    return pack(mem.path(), out, opt);
  } catch (const Error& e) {
    if (e.file() != mem.path()) throw;
    Error r(e.code(), e.what());
    r.at_file(stream).at_tensor(e.tensor());
    if (e.offset() != UINT64_MAX) r.at_offset(e.offset());
    throw r;
  }
}

}  // namespace

PackResult pack_fd(int fd, const std::string& name, const std::string& out, const PackOptions& opt) {
  const std::string stream = fd == 0 ? "<stdin>" : "<fd " + std::to_string(fd) + ">";
  check_stored_name(name);
  if (::isatty(fd)) fail(Errc::usage, "refusing to read a model from a terminal");
  {  // the stream itself must not be the output
    struct stat si, so;
    const bool out_ok = out == "-" ? ::fstat(1, &so) == 0 : ::stat(out.c_str(), &so) == 0;
    if (::fstat(fd, &si) == 0 && out_ok && S_ISREG(si.st_mode) && S_ISREG(so.st_mode) && si.st_dev == so.st_dev &&
        si.st_ino == so.st_ino)
      fail_file(Errc::usage, out == "-" ? "<stdout>" : out,
                 "output is the same file as the input stream; refusing to overwrite an input (-f does not either)");
  }

  StreamIn sin(fd, stream);
  uint8_t head[8];
  size_t got = 0;
  while (got < sizeof head) {
    size_t n = sin.read_some(head + got, sizeof head - got);
    if (n == 0) break;
    got += n;
  }
  check_head(head, got, stream);

  NamedMemoryFile mem(name, stream);
  write_all_fd(mem.fd(), head, 8, stream);
  std::vector<uint8_t> buf(1u << 20);
  for (;;) {  // the header's JSON and the data: pack() checks them as for a file
    const size_t n = sin.read_some(buf.data(), buf.size());
    if (n == 0) break;
    write_all_fd(mem.fd(), buf.data(), n, stream);
  }
  return pack_named(mem, stream, out, opt);
}

PackResult pack_memory(const uint8_t* data, size_t size, const std::string& name, const std::string& out,
                       const PackOptions& opt) {
  const std::string stream = "<memory>";
  check_stored_name(name);
  check_head(data, std::min<size_t>(size, 8), stream);
  NamedMemoryFile mem(name, stream);
  write_all_fd(mem.fd(), data, size, stream);
  return pack_named(mem, stream, out, opt);
}

}  // namespace wc
