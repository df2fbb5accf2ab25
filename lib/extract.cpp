// Parts of a container: the list of its files, one file restored, one tensor
// written as a NumPy .npy file. Each decodes only the chunks it needs, in
// order (in parallel windows), and writes through an AtomicFile, so a failure
// leaves nothing behind.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "format/names.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "platform/file_io.h"
#include "format/reader.h"
#include "lib/api.h"
#include "lib/chunk_sources.h"
#include "lib/decode_driver.h"
#include "lib/tensor_decode.h"
#include "lib/thread_pool.h"
#include "lib/unit_decode.h"

namespace wc {

namespace {

// The output path: `out`; FOLDER/<name> for a folder-like `out`; <name>
// beside the container when `out` is empty.
std::string destination(const std::string& in, const std::string& out, const std::string& name) {
  if (out.empty()) return path_join(path_dirname(in), name);
  return names_folder(out) ? path_join(out, name) : out;
}

// Standard output (never a terminal) or an AtomicFile.
struct Sink {
  std::unique_ptr<AtomicFile> file;
  std::unique_ptr<FdSink> out;
  ByteSink* sink = nullptr;
  Sink(const std::string& path, bool force) {
    if (path == "-") {
      if (::isatty(1)) fail(Errc::usage, "refusing to write binary output to a terminal (use -o FILE)");
      out = std::make_unique<FdSink>(1, "<stdout>");
      sink = out.get();
    } else {
      file = std::make_unique<AtomicFile>(path, force);
      sink = file.get();
    }
  }
  void commit() {
    if (file) file->commit();
  }
};

// "a, b, c, ... (N in all)": what the container holds, for a name not found.
std::string listing(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 8; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 8) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s;
}

struct NpyType {
  const char* descr;
  const char* note;  // nullptr: a NumPy type of its own
};

NpyType npy_type(DType t) {
  switch (t) {
    case DType::BOOL: return {"|b1", nullptr};
    case DType::U8: return {"|u1", nullptr};
    case DType::I8: return {"|i1", nullptr};
    case DType::U16: return {"<u2", nullptr};
    case DType::I16: return {"<i2", nullptr};
    case DType::U32: return {"<u4", nullptr};
    case DType::I32: return {"<i4", nullptr};
    case DType::U64: return {"<u8", nullptr};
    case DType::I64: return {"<i8", nullptr};
    case DType::F16: return {"<f2", nullptr};
    case DType::F32: return {"<f4", nullptr};
    case DType::F64: return {"<f8", nullptr};
    case DType::C64: return {"<c8", nullptr};
    case DType::BF16:
      return {"<u2", "BF16 has no NumPy dtype: written as its raw 16-bit patterns ('<u2'); "
                     "a.view(ml_dtypes.bfloat16) reads them as bfloat16"};
    case DType::F8_E4M3:
      return {"|u1", "F8_E4M3 has no NumPy dtype: written as raw bytes ('|u1'); a.view(ml_dtypes.float8_e4m3fn)"};
    case DType::F8_E5M2:
      return {"|u1", "F8_E5M2 has no NumPy dtype: written as raw bytes ('|u1'); a.view(ml_dtypes.float8_e5m2)"};
    case DType::F8_E8M0:
      return {"|u1", "F8_E8M0 has no NumPy dtype: written as raw bytes ('|u1'); a.view(ml_dtypes.float8_e8m0fnu)"};
    case DType::F4:
      return {"|u1", "F4 has no NumPy dtype: written as its packed bytes as stored ('|u1', two values a byte, "
                     "the last dimension halved)"};
    case DType::F6_E2M3:
    case DType::F6_E3M2:
      return {"|u1", "F6 has no NumPy dtype: written as its packed bytes as stored ('|u1', four values in three "
                     "bytes, the last dimension times 3/4)"};
  }
  return {"|u1", "unknown dtype: written as raw bytes ('|u1')"};
}

// The .npy shape: the tensor's, except for sub-byte types, whose last
// dimension counts bytes (one flat dimension when it does not divide).
std::vector<uint64_t> npy_shape(const TensorRecord& t) {
  const unsigned bits = dtype_bits(t.dtype);
  if (bits % 8 == 0) return t.shape;
  std::vector<uint64_t> s = t.shape;
  if (!s.empty() && s.back() <= UINT64_MAX / bits && (s.back() * bits) % 8 == 0) {
    s.back() = s.back() * bits / 8;
    return s;
  }
  return {t.byte_size};
}

// Format 1.0: magic, version, u16 header length, the dict padded with spaces
// and ended by '\n' so the data starts at a multiple of 64.
std::string npy_header(const std::string& descr, const std::vector<uint64_t>& shape) {
  std::string d = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) d += (i ? ", " : "") + std::to_string(shape[i]);
  d += shape.size() == 1 ? ",), }" : "), }";
  size_t total = 10 + d.size() + 1;
  d.append((64 - total % 64) % 64, ' ');
  d += '\n';
  if (d.size() > 65535) fail(Errc::limit, "tensor shape too long for a .npy 1.0 header");
  std::string h("\x93NUMPY\x01\x00", 8);
  h += char(d.size() & 0xff);
  h += char(d.size() >> 8);
  return h + d;
}

}  // namespace

std::vector<ContainerFile> container_files(const std::string& in) {
  ContainerReader r(in, kReaderChecks);
  std::vector<ContainerFile> v;
  for (const auto& f : r.manifest().files)
    v.push_back({f.name, f.kind == FileKind::safetensors ? "safetensors" : "blob", f.size, f.tensor_count});
  return v;
}

std::string unpack_file(const std::string& in, const std::string& name, const std::string& out,
                        const UnpackOptions& opt) {
  if (in == "-") fail(Errc::usage, "--file needs a container file, not standard input");
  ContainerReader r(in, kReaderChecks);
  const Manifest& m = r.manifest();
  const FileRecord* f = nullptr;
  for (const auto& x : m.files)
    if (x.name == name) f = &x;
  if (!f) {
    std::vector<std::string> names;
    for (const auto& x : m.files) names.push_back(x.name);
    fail_file(Errc::usage, in, "no file '" + name + "' in the container (it holds: " + listing(names) + ")");
  }
  const std::string dest = destination(in, out, path_basename(f->name));
  refuse_output_onto_input(dest, {in});
  ThreadPool pool(opt.threads ? opt.threads : default_threads());
  Sink sink(dest, opt.force);
  // The decode driver's whole-file path: the prefix, the chunks in order,
  // the file's XXH3 and (for a shard index) its check.
  struct ToSink : AssemblyTarget {
    ByteSink* s;
    void begin_file(uint32_t) override {}
    void bytes(const uint8_t* p, size_t n) override { s->write(p, n); }
    void end_file(uint32_t) override {}
  } target;
  target.s = sink.sink;
  FileChunkSource src(r);
  decode_files(m, uint32_t(f - m.files.data()), 1, src, target, pool, opt.progress, opt.level);
  sink.commit();
  return dest;
}

NpyResult unpack_tensor_npy(const std::string& in, const std::string& file, const std::string& tensor,
                            const std::string& out, const UnpackOptions& opt) {
  if (in == "-") fail(Errc::usage, "--tensor needs a container file, not standard input");
  ContainerReader r(in, kReaderChecks);
  const Manifest& m = r.manifest();
  std::vector<uint32_t> found;
  std::vector<std::string> in_files;
  bool file_found = file.empty();
  for (const auto& f : m.files) {
    if (!file.empty() && f.name != file) continue;
    file_found = true;
    if (f.kind != FileKind::safetensors) continue;
    for (uint32_t k = 0; k < f.tensor_count; ++k)
      if (m.tensors[f.first_tensor + k].name == tensor) {
        found.push_back(f.first_tensor + k);
        in_files.push_back(f.name);
      }
  }
  if (!file_found) fail_file(Errc::usage, in, "no file '" + file + "' in the container");
  if (found.empty())
    fail_file(Errc::usage, in, "no tensor '" + tensor + "' in " + (file.empty() ? "the container" : "file '" + file + "'"));
  if (found.size() > 1)
    fail_file(Errc::usage, in, "tensor '" + tensor + "' is in several files (" + listing(in_files) + "); choose one with --file");
  const TensorRecord& t = m.tensors[found[0]];

  if (out.empty() || names_folder(out)) {
    const std::string n = tensor + ".npy";
    if (!valid_file_name(n) || n.find('/') != std::string::npos)
      fail_file(Errc::usage, in, "tensor name '" + tensor + "' is no file name; name the output with -o");
  }
  NpyResult res;
  res.path = destination(in, out, tensor + ".npy");
  const NpyType ty = npy_type(t.dtype);
  res.descr = ty.descr;
  if (ty.note) res.note = ty.note;
  res.shape = npy_shape(t);
  res.bytes = t.byte_size;
  refuse_output_onto_input(res.path, {in});

  ThreadPool pool(opt.threads ? opt.threads : default_threads());
  Sink sink(res.path, opt.force);
  const std::string h = npy_header(res.descr, res.shape);
  sink.sink->write(h.data(), h.size());
  uint64_t done = 0;
  decode_tensors(r, found[0], 1, pool, level_at(t, opt.level), [&](const uint8_t* p, size_t n) {
    sink.sink->write(p, n);
    done += n;
    if (opt.progress) opt.progress(done, t.byte_size);
  });
  if (done != t.byte_size) fail_file(Errc::corrupt, in, "tensor '" + tensor + "' decoded to the wrong length");
  if (opt.progress) opt.progress(done, t.byte_size);
  sink.commit();
  return res;
}

}  // namespace wc
