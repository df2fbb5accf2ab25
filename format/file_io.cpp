#include "format/file_io.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/error.h"

namespace wc {

[[noreturn]] static void fail_errno(const std::string& path, const std::string& what) {
  Error e(Errc::io, what + ": " + std::strerror(errno));
  e.at_file(path);
  throw e;
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno(path, "cannot open");
  struct stat st;
  if (::fstat(fd, &st) != 0) { ::close(fd); fail_errno(path, "cannot stat"); }
  if (!S_ISREG(st.st_mode)) { ::close(fd); errno = EINVAL; fail_errno(path, "not a regular file"); }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) { ::close(fd); fail_errno(path, "cannot map"); }
    data_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

size_t StreamIn::read_some(void* dst, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd_, d + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno(name_, "read failed");
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  off_ += got;
  return got;
}

void StreamIn::read_exact(void* dst, size_t n) {
  uint64_t at = off_;
  if (read_some(dst, n) != n) {
    Error e(Errc::truncated, "stream ended early (needed " + std::to_string(n) + " bytes)");
    e.at_file(name_).at_offset(at);
    throw e;
  }
}

static void write_all(int fd, const void* p, size_t n, const std::string& name) {
  auto* c = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t r = ::write(fd, c, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno(name, "write failed");
    }
    c += r;
    n -= static_cast<size_t>(r);
  }
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string path_basename(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  auto k = s.rfind('/');
  return k == std::string::npos ? s : s.substr(k + 1);
}

std::string path_dirname(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  auto k = s.rfind('/');
  if (k == std::string::npos) return ".";
  if (k == 0) return "/";
  return s.substr(0, k);
}

std::string path_join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir == ".") return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

namespace {
// Fixed slots so the signal handler touches no heap: each holds a temporary's
// path while its AtomicFile is open.
constexpr int kTempSlots = 64;
constexpr size_t kTempPathMax = 4096;
char g_temp_paths[kTempSlots][kTempPathMax];
std::atomic<bool> g_temp_used[kTempSlots];

int register_temp(const std::string& p) {
  if (p.size() >= kTempPathMax) return -1;
  for (int i = 0; i < kTempSlots; ++i) {
    bool expected = false;
    if (g_temp_used[i].compare_exchange_strong(expected, true)) {
      std::memcpy(g_temp_paths[i], p.c_str(), p.size() + 1);
      std::atomic_signal_fence(std::memory_order_seq_cst);
      return i;
    }
  }
  return -1;
}

void unregister_temp(int slot) {
  if (slot >= 0) g_temp_used[slot] = false;
}
}  // namespace

void remove_temporaries_from_signal_handler() noexcept {
  for (int i = 0; i < kTempSlots; ++i)
    if (g_temp_used[i].load()) ::unlink(g_temp_paths[i]);
}

AtomicFile::AtomicFile(const std::string& path, bool overwrite) : path_(path), overwrite_(overwrite) {
  if (!overwrite && path_exists(path)) {
    Error e(Errc::exists, "output exists (use -f to overwrite)");
    e.at_file(path);
    throw e;
  }
  if (is_directory(path)) {
    Error e(Errc::io, "output is a directory");
    e.at_file(path);
    throw e;
  }
  tmp_ = path_join(path_dirname(path), "." + path_basename(path) + ".wctmp.XXXXXX");
  fd_ = ::mkostemp(tmp_.data(), O_CLOEXEC);
  if (fd_ < 0) fail_errno(path, "cannot create temporary file in the output directory");
  ::fchmod(fd_, 0644);
  slot_ = register_temp(tmp_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
  unregister_temp(slot_);
}

void AtomicFile::write(const void* p, size_t n) {
  write_all(fd_, p, n, path_);
  written_ += n;
}

void AtomicFile::pwrite_at(const void* p, size_t n, uint64_t off) {
  auto* c = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t r = ::pwrite(fd_, c, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno(path_, "write failed");
    }
    c += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail_errno(path_, "fsync failed");
  if (::close(fd_) != 0) { fd_ = -1; ::unlink(tmp_.c_str()); fail_errno(path_, "close failed"); }
  fd_ = -1;
  if (!overwrite_) {
    // link() fails if the destination appeared meanwhile: never clobber.
    if (::link(tmp_.c_str(), path_.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp_.c_str());
      errno = err;
      if (err == EEXIST) {
        Error e(Errc::exists, "output exists (use -f to overwrite)");
        e.at_file(path_);
        throw e;
      }
      fail_errno(path_, "cannot create output");
    }
    ::unlink(tmp_.c_str());
  } else if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp_.c_str());
    errno = err;
    fail_errno(path_, "cannot rename output into place");
  }
}

void FdSink::write(const void* p, size_t n) {
  write_all(fd_, p, n, name_);
  written_ += n;
}

}  // namespace wc
