// Files in and out. Input: a read-only mapping of a whole file, or a byte
// stream (standard input) read front to back. Output: a temporary file in the
// destination directory, renamed over the destination only when complete, so
// a failure never leaves a partial file; or standard output.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "platform/path.h"

namespace wc {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Errc::io naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// Sequential reader over a file descriptor (no seeking).
class StreamIn {
 public:
  StreamIn(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  // Reads exactly n bytes or throws Errc::truncated at the current offset.
  void read_exact(void* dst, size_t n);
  // Reads up to n bytes; returns how many (0 at end of stream).
  size_t read_some(void* dst, size_t n);
  uint64_t offset() const { return off_; }
  const std::string& name() const { return name_; }

 private:
  int fd_;
  std::string name_;
  uint64_t off_ = 0;
};

// One path that remove_temporaries_from_signal_handler() removes while the
// entry is alive: a file (unlinked) or a directory (rmdir'ed, after every
// file, so only when empty). Registration and removal are thread-safe and may
// run while a handler walks the list; there is no limit on the number of
// entries. Registration allocates (outside any handler).
class SignalCleanup {
 public:
  enum Kind : uint8_t { file, directory };
  SignalCleanup() = default;
  SignalCleanup(const std::string& path, Kind kind);
  ~SignalCleanup() { reset(); }
  SignalCleanup(SignalCleanup&& o) noexcept : node_(o.node_) { o.node_ = nullptr; }
  SignalCleanup& operator=(SignalCleanup&& o) noexcept {
    if (this != &o) {
      reset();
      node_ = o.node_;
      o.node_ = nullptr;
    }
    return *this;
  }
  void reset() noexcept;  // unregisters (the path itself is left alone)
  explicit operator bool() const { return node_ != nullptr; }

 private:
  void* node_ = nullptr;
};

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(const void* p, size_t n) = 0;
  virtual uint64_t written() const = 0;
};

// Writes to a temporary "<dir>/.wctmp.XXXXXX" (13 bytes, created exclusively
// like mkostemp; never longer than NAME_MAX, whatever the destination's name),
// then commit() flushes, fsyncs and renames (or, without overwrite, links)
// it onto the destination. finish() does the flush, fsync and close early so
// that a writer of many files holds one descriptor at a time; the temporary
// stays until commit(). Destroyed without commit(), it removes the temporary.
// write() starts the writeback of every kWritebackKick bytes as they are
// written (Linux: sync_file_range, asynchronous), so that the fsync at the end
// waits for the last of them rather than for the whole file: on Whisper
// tiny.en's 63 MB container it had taken 44 ms, a fifth of pack's time.
class AtomicFile : public ByteSink {
 public:
  // Fails with Errc::exists when `path` exists and !overwrite.
  AtomicFile(const std::string& path, bool overwrite);
  ~AtomicFile() override;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* p, size_t n) override;
  void pwrite_at(const void* p, size_t n, uint64_t off);  // for parallel writers
  uint64_t written() const override { return written_; }
  // Flushes, fsyncs and closes the temporary (no more writes); idempotent.
  void finish();
  // finish(), then moves the temporary onto path(). Throws Errc::exists when
  // !overwrite and the destination appeared meanwhile.
  void commit();
  const std::string& path() const { return path_; }
  const std::string& temporary() const { return tmp_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool overwrite_, finished_ = false, committed_ = false;
  uint64_t written_ = 0, kicked_ = 0;  // kicked_: the writeback started up to here
  static constexpr uint64_t kWritebackKick = 8u << 20;
  void discard_temporary() noexcept;  // unlinks it now (keeps errno)
  SignalCleanup cleanup_;  // removes the temporary on a fatal signal
};

class FdSink : public ByteSink {
 public:
  FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  void write(const void* p, size_t n) override;
  uint64_t written() const override { return written_; }

 private:
  int fd_;
  std::string name_;
  uint64_t written_ = 0;
};

// Removes every registered path (SignalCleanup): files first, then
// directories (rmdir, so only empty ones). Async-signal-safe, no limit on the
// number of entries: the CLI calls it from its SIGINT/SIGTERM/SIGHUP handler so
// an interrupted run leaves nothing. (The one piece of global state: a signal
// handler has no other way in.)
void remove_temporaries_from_signal_handler() noexcept;

}  // namespace wc
