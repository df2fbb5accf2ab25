// unpack: container in (file or pipe), the original files out.
#include <cerrno>
#include <cstring>
#include <memory>
#include <type_traits>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/file_io.h"
#include "lib/api.h"
#include "lib/levels.h"
#include "lib/chunk_sources.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"

namespace wc {

namespace {

// A container of one file whose name has no '/' unpacks to a file; anything
// else to a folder (as OutputFiles decides).
bool single_file(const Manifest& m) { return m.files.size() == 1 && m.files[0].name.find('/') == std::string::npos; }

// unpack's destination: for one file and a folder-like `out`, the stored
// name inside it; otherwise `out` itself.
std::string unpack_destination(const Manifest& m, const std::string& out) {
  return single_file(m) && names_folder(out) ? path_join(out, m.files[0].name) : out;
}

// Every path unpack writes to `dest` must not be the container `in`.
void refuse_overwriting_container(const Manifest& m, const std::string& dest, const std::string& in) {
  if (single_file(m)) return refuse_output_onto_input(dest, {in});
  if (dest == "-") return;  // refused by OutputFiles
  for (const auto& f : m.files) refuse_output_onto_input(path_join(dest, f.name), {in});
}

struct FileId {
  dev_t dev;
  ino_t ino;
};

// The regular file behind a path ("-": the descriptor `fd`), if any.
bool regular_file_id(const std::string& p, int fd, FileId& id) {
  struct stat st;
  if ((p == "-" ? ::fstat(fd, &st) : ::stat(p.c_str(), &st)) != 0 || !S_ISREG(st.st_mode)) return false;
  id = {st.st_dev, st.st_ino};
  return true;
}

}  // namespace

void refuse_output_onto_input(const std::string& out, const std::vector<std::string>& inputs) {
  FileId o;
  if (!regular_file_id(out, 1, o)) return;  // does not exist yet (or not a regular file)
  for (const auto& in : inputs) {
    FileId i;
    if (regular_file_id(in, 0, i) && i.dev == o.dev && i.ino == o.ino) {
      Error e(Errc::usage, (in == out ? std::string("output is the input") : "output is the same file as input '" + in + "'") +
                               "; refusing to overwrite an input (-f does not either)");
      e.at_file(out == "-" ? "<stdout>" : out);
      throw e;
    }
  }
}

namespace {
// default_unpack_output for a container whose manifest is already read.
std::string default_output_for(const std::string& in, const Manifest& m) {
  const std::string ext = kContainerExt;
  const std::string base = path_basename(in);
  if (in == "-" || base.size() <= ext.size() || !path_ends_with(base, ext)) {
    Error e(Errc::usage, "unknown suffix -- ignored (name the output with -o)");
    e.at_file(in);
    throw e;
  }
  if (single_file(m)) return path_join(path_dirname(in), m.files[0].name);
  std::string s = in;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s.substr(0, s.size() - ext.size());
}
}  // namespace

std::string default_unpack_output(const std::string& in) {
  if (in != "-" && path_ends_with(path_basename(in), kContainerExt)) return default_output_for(in, ContainerReader(in, kReaderChecks).manifest());
  return default_output_for(in, Manifest{});  // refuses the name
}

namespace {

// Writes each file to a temporary beside its destination; commits all of
// them only when every file decoded and matched its checksum. A finished file
// is flushed, fsynced and closed at once (its temporary stays until commit),
// so only the file being written holds a descriptor, however many there are.
// A directory made here is removed again on failure, and by the signal
// handler, which also removes the temporaries and, during commit, the files
// already linked into place.
// An output folder that may not exist yet: made here (parents must exist),
// and removed again unless keep() is called, so a failed unpack leaves no
// folder behind; a folder that was already there is never removed. An
// owner's files must be gone before it is destroyed (declare it first).
class MadeFolder {
 public:
  MadeFolder() = default;
  explicit MadeFolder(const std::string& dir) { make(dir); }
  ~MadeFolder() {
    if (!dir_.empty() && !kept_) ::rmdir(dir_.c_str());
  }
  MadeFolder(const MadeFolder&) = delete;
  MadeFolder& operator=(const MadeFolder&) = delete;
  void make(const std::string& dir) {
    if (dir.empty() || is_directory(dir)) return;
    if (path_exists(dir)) {
      Error e(Errc::exists, "it is not a directory");
      e.at_file(dir);
      throw e;
    }
    if (::mkdir(dir.c_str(), 0755) != 0) {
      Error e(Errc::io, std::string("cannot create output directory: ") + std::strerror(errno));
      e.at_file(dir);
      throw e;
    }
    dir_ = dir;
    try {
      guard_ = SignalCleanup(dir_, SignalCleanup::directory);
    } catch (...) {
      ::rmdir(dir_.c_str());
      dir_.clear();
      throw;
    }
  }
  bool made() const { return !dir_.empty(); }
  void keep() {
    kept_ = true;
    guard_.reset();
  }

 private:
  std::string dir_;
  bool kept_ = false;
  SignalCleanup guard_;
};

class OutputFiles : public AssemblyTarget {
 public:
  OutputFiles(const Manifest& m, const std::string& out, bool force) : m_(m), out_(out), force_(force) {
    single_ = single_file(m);
    if (single_) return;
    if (out == "-") fail(Errc::usage, "a model of several files unpacks to a folder, not to standard output (--file NAME picks one)");
    folder_.make(out);
    // Check every destination before writing anything.
    for (const auto& f : m.files)
      if (!force && path_exists(path_join(out, f.name))) {
        Error e(Errc::exists, "use -f to overwrite");
        e.at_file(path_join(out, f.name));
        throw e;
      }
  }
  ~OutputFiles() override {
    if (committed_) return;
    files_.clear();  // removes every temporary
    // Files a failed commit had already put in place that this run created.
    for (const auto& p : linked_) ::unlink(p.c_str());
    linked_guard_.clear();
    for (auto it = made_subdirs_.rbegin(); it != made_subdirs_.rend(); ++it) ::rmdir(it->c_str());
    subdir_guard_.clear();
    // folder_, a member, goes after this: removed when made here and empty
  }
  void begin_file(uint32_t f) override {
    if (single_ && out_ == "-") {
      if (::isatty(1)) fail(Errc::usage, "refusing to write binary output to a terminal (use -o FILE)");
      stdout_ = std::make_unique<FdSink>(1, "<stdout>");
      cur_ = stdout_.get();
      return;
    }
    if (!single_) make_parents(m_.files[f].name);
    std::string path = single_ ? out_ : path_join(out_, m_.files[f].name);
    files_.push_back(std::make_unique<AtomicFile>(path, force_));
    cur_ = files_.back().get();
  }
  void bytes(const uint8_t* p, size_t n) override { cur_->write(p, n); }
  void end_file(uint32_t) override {
    if (!stdout_ && !files_.empty()) files_.back()->finish();  // releases its descriptor
  }
  void commit() {
    // Files this run creates (no -f: link() never replaces anything; or a
    // directory made here) are taken back if the commit fails half way, and
    // removed by the signal handler until every file is in place. Each is
    // registered only once linked, so a name that someone else created
    // meanwhile is never removed.
    const bool track = !force_ || folder_.made();
    if (track) {
      linked_.reserve(files_.size());
      linked_guard_.reserve(files_.size());
    }
    for (auto& f : files_) {
      f->commit();
      if (track) {
        linked_.push_back(f->path());
        linked_guard_.emplace_back(f->path(), SignalCleanup::file);
      }
    }
    committed_ = true;
    linked_guard_.clear();
    subdir_guard_.clear();
    folder_.keep();
  }

 private:
  const Manifest& m_;
  std::string out_;
  bool force_, single_ = true, committed_ = false;
  MadeFolder folder_;  // a folder container's output folder, when made here
  std::vector<std::unique_ptr<AtomicFile>> files_;
  std::vector<std::string> linked_;            // created by a commit not yet complete
  std::vector<SignalCleanup> linked_guard_;    // the same, for the signal handler
  std::vector<std::string> made_subdirs_;     // subfolders made here, parents first
  std::vector<SignalCleanup> subdir_guard_;   // the same, for the signal handler
  std::unique_ptr<FdSink> stdout_;
  ByteSink* cur_ = nullptr;

  // The folders on the way to `name` (a path relative to out_, checked by the
  // reader: no "..", no empty or absolute part). A part that exists must be a
  // real folder, not a link: writing through a link could land outside the
  // output folder.
  void make_parents(const std::string& name) {
    for (size_t k = name.find('/'); k != std::string::npos; k = name.find('/', k + 1)) {
      const std::string dir = path_join(out_, name.substr(0, k));
      struct stat st;
      if (::lstat(dir.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
          Error e(Errc::exists, "it is not a folder (a link or a file); refusing to write through it");
          e.at_file(dir);
          throw e;
        }
        continue;
      }
      if (::mkdir(dir.c_str(), 0755) != 0) {
        Error e(Errc::io, std::string("cannot create folder: ") + std::strerror(errno));
        e.at_file(dir);
        throw e;
      }
      made_subdirs_.push_back(dir);
      subdir_guard_.emplace_back(dir, SignalCleanup::directory);
    }
  }
};

}  // namespace

namespace {
// The destination, the output files, the decode and the commit, for either
// reader (a mapped file, or a pipe read front to back).
template <class Reader, class Source>
std::string unpack_with(const std::string& in, const std::string& out, const UnpackOptions& opt, Reader& r, Source& src) {
  ThreadPool pool(opt.threads ? opt.threads : default_threads());
  unsigned level = opt.level;  // before any output exists: a budget no level fits leaves nothing behind
  if constexpr (std::is_same_v<Reader, ContainerReader>)
    if (opt.budget_bytes) level = point_for_budget(r, opt.budget_bytes).level;
  const std::string dest = out.empty() ? default_output_for(in, r.manifest()) : unpack_destination(r.manifest(), out);
  refuse_overwriting_container(r.manifest(), dest, in);
  // a one-file container into a folder named with a trailing '/' that does
  // not exist yet: made as a folder container's is
  MadeFolder folder(single_file(r.manifest()) && !out.empty() && out.back() == '/' ? out : std::string());
  OutputFiles dst(r.manifest(), dest, opt.force);
  decode_model(r.manifest(), src, dst, pool, opt.progress, level);
  if (opt.decoded_level)
    *opt.decoded_level = r.manifest().level_count > 1 ? std::min<unsigned>(level, r.manifest().level_count - 1u) : 255u;
  if constexpr (std::is_same_v<Reader, ContainerStreamReader>) {
    // the chunks of levels above the one decoded are read (and checked) to reach the index
    std::vector<uint8_t> skip;
    ChunkEntry e;
    while (r.next_chunk(skip, e)) {
    }
    r.finish();
  }
  dst.commit();
  folder.keep();
  return dest;
}
}  // namespace

std::string unpack(const std::string& in, const std::string& out, const UnpackOptions& opt) {
  if (opt.partial) {  // a prefix: the levels it holds whole (FORMAT.md §4.3), read at random
    std::vector<uint8_t> bytes;
    std::unique_ptr<ContainerReader> r;
    if (in == "-") {
      StreamIn sin(0, "<stdin>");
      for (;;) {  // grows with the bytes read
        const size_t at = bytes.size();
        bytes.resize(at + (1u << 20));
        const size_t n = sin.read_some(bytes.data() + at, 1u << 20);
        bytes.resize(at + n);
        if (n == 0) break;
      }
      r = std::make_unique<ContainerReader>(bytes.data(), bytes.size(), "<stdin>", kReaderChecks, ContainerReader::Prefix{});
    } else {
      r = std::make_unique<ContainerReader>(in, kReaderChecks, ContainerReader::Prefix{});
    }
    UnpackOptions o = opt;
    if (r->complete_level() < kMaxLevels) o.level = std::min(opt.level, r->complete_level());
    FileChunkSource src(*r);
    return unpack_with(in, out, o, *r, src);
  }
  if (in == "-") {
    if (opt.budget_bytes)  // where each level ends is in the index, at a stream's end
      fail(Errc::usage, "--budget needs a container file (a stream's levels are known only at its end): use --level");
    StreamIn sin(0, "<stdin>");
    ContainerStreamReader r(sin, kReaderChecks);
    StreamChunkSource src(r, "<stdin>");
    return unpack_with(in, out, opt, r, src);
  }
  ContainerReader r(in, kReaderChecks);
  FileChunkSource src(r);
  return unpack_with(in, out, opt, r, src);
}

}  // namespace wc
