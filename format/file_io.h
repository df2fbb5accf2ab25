// Files in and out. Input: a read-only mapping of a whole file, or a byte
// stream (standard input) read front to back. Output: a temporary file in the
// destination directory, renamed over the destination only when complete, so
// a failure never leaves a partial file; or standard output.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

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

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(const void* p, size_t n) = 0;
  virtual uint64_t written() const = 0;
};

// Writes to "<dir>/.<name>.XXXXXX", then commit() flushes, fsyncs and renames
// onto the destination. Destroyed without commit(), it removes the temporary.
class AtomicFile : public ByteSink {
 public:
  // Fails with Errc::exists when `path` exists and !overwrite.
  AtomicFile(const std::string& path, bool overwrite);
  ~AtomicFile() override;
  void write(const void* p, size_t n) override;
  void pwrite_at(const void* p, size_t n, uint64_t off);  // for parallel writers
  uint64_t written() const override { return written_; }
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  int slot_ = -1;  // in the signal handler's list of temporaries
  bool overwrite_;
  uint64_t written_ = 0;
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

// Removes every temporary output still open. Async-signal-safe: the CLI calls
// it from its SIGINT/SIGTERM handler so an interrupted run leaves nothing.
// (The one piece of global state: a signal handler has no other way in.)
void remove_temporaries_from_signal_handler() noexcept;

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
std::string path_basename(const std::string& path);
std::string path_dirname(const std::string& path);
std::string path_join(const std::string& dir, const std::string& name);

}  // namespace wc
