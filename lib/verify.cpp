// verify: decode everything, check every checksum, optionally compare with
// the original bytes.
#include <algorithm>
#include <cstring>
#include <memory>

#include "platform/file_io.h"
#include "lib/api.h"
#include "lib/chunk_sources.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/tensor_decode.h"

namespace wc {

namespace {

class Comparer : public AssemblyTarget {
 public:
  Comparer(const Manifest& m, const std::string& against) : m_(m), against_(against) {}
  void begin_file(uint32_t f) override {
    pos_ = 0;
    file_ = f;
    if (against_.empty()) return;
    std::string p = m_.files.size() == 1 && !is_directory(against_) ? against_ : path_join(against_, m_.files[f].name);
    orig_ = std::make_unique<MappedFile>(p);
    if (orig_->size() != m_.files[f].size) {
      Error e(Errc::mismatch, "original is " + std::to_string(orig_->size()) + " bytes, the container holds " +
                                  std::to_string(m_.files[f].size));
      e.at_file(p);
      throw e;
    }
  }
  void bytes(const uint8_t* p, size_t n) override {
    if (orig_ && n != 0 && std::memcmp(orig_->data() + pos_, p, n) != 0) {
      size_t k = 0;
      while (orig_->data()[pos_ + k] == p[k]) ++k;
      Error e(Errc::mismatch, "decoded bytes differ from the original");
      e.at_file(orig_->path()).at_offset(pos_ + k);
      throw e;
    }
    pos_ += n;
  }
  void end_file(uint32_t) override { orig_.reset(); }

 private:
  const Manifest& m_;
  std::string against_;
  std::unique_ptr<MappedFile> orig_;
  uint64_t pos_ = 0;
  uint32_t file_ = 0;
};

}  // namespace

VerifyResult verify(const std::string& in, const std::string& against, unsigned threads, const ProgressFn& progress) {
  ThreadPool pool(threads ? threads : default_threads());
  ContainerReader r(in, kReaderChecks);
  const Manifest& m = r.manifest();
  // a lossy tensor with an exact top layer (EXACT_TOP.md) unpacks to its original bits
  bool all_exact = true;
  for (const auto& t : m.tensors)
    if (t.lossy())
      all_exact &= std::any_of(t.parts.begin(), t.parts.end(), [](const PartRecord& p) { return p.role == PartRole::exact_top; });
  if (!against.empty() && !all_exact)
    fail_file(Errc::usage,
              in, "holds lossy tensors, so it cannot equal the original byte for byte; verify without --against "
                  "checks every stored hash (reconstructions included)");
  // every level below the top of each tensor that has several, against its
  // hash; then the whole model at the top (and the original)
  for (uint32_t i = 0; i < m.tensors.size(); ++i)
    for (unsigned level = 0; level + 1 < m.tensors[i].levels.size(); ++level)
      decode_tensors(r, i, 1, pool, level, [](const uint8_t*, size_t) {});
  FileChunkSource src(r);
  Comparer cmp(m, against);
  decode_model(m, src, cmp, pool, progress);
  VerifyResult v;
  v.chunks = r.index().size();
  v.bytes = r.manifest().original_bytes();
  v.files = r.manifest().files.size();
  v.compared = !against.empty();
  return v;
}

}  // namespace wc
