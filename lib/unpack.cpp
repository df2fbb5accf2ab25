// unpack: container in (file or pipe), the original files out.
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

#include "format/file_io.h"
#include "lib/api.h"
#include "lib/chunk_sources.h"

namespace wc {

std::string default_unpack_output(const std::string& in) {
  std::string ext = kContainerExt;
  if (in.size() > ext.size() && in.compare(in.size() - ext.size(), ext.size(), ext) == 0)
    return in.substr(0, in.size() - ext.size());
  return in + ".out";
}

namespace {

// Writes each file to a temporary beside its destination; commits all of
// them only when every file decoded and matched its checksum.
class OutputFiles : public AssemblyTarget {
 public:
  OutputFiles(const Manifest& m, const std::string& out, bool force) : m_(m), out_(out), force_(force) {
    single_ = m.files.size() == 1;
    if (single_) return;
    if (out == "-") fail(Errc::usage, "a sharded model unpacks to a directory, not to standard output");
    if (!is_directory(out)) {
      if (path_exists(out)) {
        Error e(Errc::exists, "output exists and is not a directory");
        e.at_file(out);
        throw e;
      }
      if (::mkdir(out.c_str(), 0755) != 0) {
        Error e(Errc::io, "cannot create output directory");
        e.at_file(out);
        throw e;
      }
      made_dir_ = true;
    }
    // Check every destination before writing anything.
    for (const auto& f : m.files)
      if (!force && path_exists(path_join(out, f.name))) {
        Error e(Errc::exists, "output exists (use -f to overwrite)");
        e.at_file(path_join(out, f.name));
        throw e;
      }
  }
  ~OutputFiles() override {
    if (!committed_ && made_dir_) {
      files_.clear();
      ::rmdir(out_.c_str());
    }
  }
  void begin_file(uint32_t f) override {
    if (single_ && out_ == "-") {
      if (::isatty(1)) fail(Errc::usage, "refusing to write binary output to a terminal (use -o FILE)");
      stdout_ = std::make_unique<FdSink>(1, "<stdout>");
      cur_ = stdout_.get();
      return;
    }
    std::string path = single_ ? out_ : path_join(out_, m_.files[f].name);
    files_.push_back(std::make_unique<AtomicFile>(path, force_));
    cur_ = files_.back().get();
  }
  void bytes(const uint8_t* p, size_t n) override { cur_->write(p, n); }
  void end_file(uint32_t) override {}
  void commit() {
    for (auto& f : files_) f->commit();
    committed_ = true;
  }

 private:
  const Manifest& m_;
  std::string out_;
  bool force_, single_ = true, made_dir_ = false, committed_ = false;
  std::vector<std::unique_ptr<AtomicFile>> files_;
  std::unique_ptr<FdSink> stdout_;
  ByteSink* cur_ = nullptr;
};

}  // namespace

void unpack(const std::string& in, const std::string& out, const UnpackOptions& opt) {
  ThreadPool pool(opt.threads ? opt.threads : default_threads());
  if (in == "-") {
    StreamIn sin(0, "<stdin>");
    ContainerStreamReader r(sin);
    StreamChunkSource src(r, "<stdin>");
    OutputFiles dst(r.manifest(), out, opt.force);
    decode_model(r.manifest(), src, dst, pool, opt.progress);
    r.finish();
    dst.commit();
    return;
  }
  ContainerReader r(in);
  FileChunkSource src(r);
  OutputFiles dst(r.manifest(), out, opt.force);
  decode_model(r.manifest(), src, dst, pool, opt.progress);
  dst.commit();
}

}  // namespace wc
