#include "platform/file_io.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <new>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/error.h"

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

namespace {
// The signal handler's list of paths to remove. A doubly-linked list of heap
// nodes behind a static sentinel: writers (register/unregister, any thread)
// take g_list_mutex and publish each change with one atomic store of a
// `next` pointer; the handler takes no lock and allocates nothing, it only
// follows `next` and reads paths that never change after publication. `prev` is touched by
// writers only. A node is freed after it is unlinked only if no handler is
// running (g_handlers, seq_cst on both sides): a handler that started before
// the unlink may still hold it, so it is then leaked instead (a few nodes, and
// only when the process is being interrupted).
struct CleanupNode {
  std::atomic<CleanupNode*> next{nullptr};
  CleanupNode* prev = nullptr;
  SignalCleanup::Kind kind = SignalCleanup::file;
  char* path = nullptr;  // NUL-terminated, in the same allocation
};
static_assert(std::atomic<CleanupNode*>::is_always_lock_free);
static_assert(std::atomic<int>::is_always_lock_free);

CleanupNode g_head;  // sentinel; g_head.next is the newest entry
std::mutex g_list_mutex;
std::atomic<int> g_handlers{0};

CleanupNode* new_node(const std::string& p, SignalCleanup::Kind kind) {
  void* mem = ::operator new(sizeof(CleanupNode) + p.size() + 1);
  auto* n = new (mem) CleanupNode;
  n->kind = kind;
  n->path = reinterpret_cast<char*>(n + 1);
  std::memcpy(n->path, p.c_str(), p.size() + 1);
  return n;
}

void free_node(CleanupNode* n) {
  n->~CleanupNode();
  ::operator delete(n);
}
}  // namespace

SignalCleanup::SignalCleanup(const std::string& path, Kind kind) {
  CleanupNode* n = new_node(path, kind);
  std::lock_guard<std::mutex> lock(g_list_mutex);
  CleanupNode* first = g_head.next.load(std::memory_order_relaxed);
  n->prev = &g_head;
  n->next.store(first, std::memory_order_relaxed);
  if (first) first->prev = n;
  g_head.next.store(n, std::memory_order_seq_cst);  // publishes the node and its path
  node_ = n;
}

void SignalCleanup::reset() noexcept {
  if (!node_) return;
  auto* n = static_cast<CleanupNode*>(node_);
  node_ = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_list_mutex);
    CleanupNode* after = n->next.load(std::memory_order_relaxed);
    n->prev->next.store(after, std::memory_order_seq_cst);
    if (after) after->prev = n->prev;
  }
  // Seen no handler after the unlink: any handler starts later and cannot
  // reach the node. Otherwise one may be reading it: leak it.
  if (g_handlers.load(std::memory_order_seq_cst) == 0) free_node(n);
}

void remove_temporaries_from_signal_handler() noexcept {
  const int saved_errno = errno;  // the interrupted code may be about to read it
  g_handlers.fetch_add(1, std::memory_order_seq_cst);
  // Files, then the (now empty) directories: once per level of nesting, since
  // a folder is empty only after its subfolders went (32 levels at most).
  for (int pass = 0; pass < 34; ++pass) {
    const auto kind = pass == 0 ? SignalCleanup::file : SignalCleanup::directory;
    for (CleanupNode* n = g_head.next.load(std::memory_order_seq_cst); n; n = n->next.load(std::memory_order_seq_cst))
      if (n->kind == kind) {
        if (kind == SignalCleanup::file) ::unlink(n->path);
        else ::rmdir(n->path);
      }
  }
  g_handlers.fetch_sub(1, std::memory_order_seq_cst);
  errno = saved_errno;
}

namespace {
// Six random characters for a temporary's name, as mkostemp would pick them.
std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  uint64_t x = counter.fetch_add(1, std::memory_order_relaxed) * 0x9E3779B97F4A7C15ull;
  x ^= uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  x ^= uint64_t(::getpid()) << 40;
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) == ssize_t(sizeof r)) x ^= r;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;  // splitmix64 finaliser
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  static const char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(6, 'A');
  for (auto& c : s) {
    c = kChars[x % 62];
    x /= 62;
  }
  return s;
}
}  // namespace

AtomicFile::AtomicFile(const std::string& path, bool overwrite) : path_(path), overwrite_(overwrite) {
  if (!overwrite && path_exists(path)) {
    Error e(Errc::exists, "use -f to overwrite");
    e.at_file(path);
    throw e;
  }
  if (is_directory(path)) {
    Error e(Errc::io, "output is a directory");
    e.at_file(path);
    throw e;
  }
  // The temporary: "<dir>/.wctmp.XXXXXX", 13 bytes whatever the destination's
  // name (so it fits wherever the destination does), created exclusively. It
  // is registered for the signal handler before it is created, so there is no
  // moment when it exists unregistered; on a clash (O_EXCL) the entry goes and
  // another name is tried.
  const std::string dir = path_dirname(path);
  for (int attempt = 0; fd_ < 0; ++attempt) {
    tmp_ = path_join(dir, ".wctmp." + random_suffix());
    cleanup_ = SignalCleanup(tmp_, SignalCleanup::file);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      int err = errno;
      cleanup_.reset();
      errno = err;
      if (err != EEXIST || attempt >= 100) fail_errno(path, "cannot create temporary file in the output directory");
    }
  }
  ::fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
  cleanup_.reset();
}

void AtomicFile::write(const void* p, size_t n) {
  write_all(fd_, p, n, path_);
  written_ += n;
#if defined(__linux__)
  if (written_ - kicked_ >= kWritebackKick) {
    // a hint: a failure here changes nothing, fsync() reports what matters
    (void)::sync_file_range(fd_, off64_t(kicked_), off64_t(written_ - kicked_), SYNC_FILE_RANGE_WRITE);
    kicked_ = written_;
  }
#endif
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

void AtomicFile::finish() {
  if (finished_) return;
  if (fd_ < 0) {  // a failed finish() or commit() before
    errno = EBADF;
    fail_errno(path_, "write failed");
  }
  if (::fsync(fd_) != 0) fail_errno(path_, "fsync failed");
  int r = ::close(fd_);
  fd_ = -1;
  if (r != 0) {
    discard_temporary();
    fail_errno(path_, "close failed");
  }
  finished_ = true;
}

void AtomicFile::discard_temporary() noexcept {
  int err = errno;
  ::unlink(tmp_.c_str());
  tmp_.clear();
  cleanup_.reset();
  errno = err;
}

void AtomicFile::commit() {
  if (committed_) return;
  finish();
  if (!overwrite_) {
    // link() fails if the destination appeared meanwhile: never clobber.
    if (::link(tmp_.c_str(), path_.c_str()) != 0) {
      discard_temporary();
      if (errno == EEXIST) {
        Error e(Errc::exists, "use -f to overwrite");
        e.at_file(path_);
        throw e;
      }
      fail_errno(path_, "cannot create output");
    }
    ::unlink(tmp_.c_str());
  } else if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    discard_temporary();
    fail_errno(path_, "cannot rename output into place");
  }
  committed_ = true;
  cleanup_.reset();
}

void FdSink::write(const void* p, size_t n) {
  write_all(fd_, p, n, name_);
  written_ += n;
}

}  // namespace wc
