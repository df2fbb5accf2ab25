// pack: safetensors in, container out.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <unistd.h>
#include "format/hash.h"

#include "codec/auto_select.h"
#include "format/names.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "platform/file_io.h"
#include "model/safetensors.h"
#include "format/reader.h"
#include "format/writer.h"
#include "lib/api.h"
#include "lib/pools.h"
#include "lib/chunk_windows.h"
#include "lib/model_source.h"
#include "lib/pack_lossy.h"
#include "lib/thread_pool.h"

namespace wc {

std::string default_pack_output(const std::string& in) { return default_container_name(in); }

namespace {

// The largest exact tensor the writer stores in its record (the format
// allows kMaxInlineTensor): norms and biases of models up to 8192 wide in
// 16 bits. Larger tensors keep their chunks, so a reader that opens a file
// does not decompress much tensor data with the manifest.
constexpr uint64_t kInlineTensorBytes = 16u << 10;
// What a chunk costs beside its payload: its 16-byte header, 32 bytes of
// alignment on average, and its index entry once compressed.
constexpr uint64_t kChunkOverhead = 64;

struct Input {
  std::vector<std::unique_ptr<MappedFile>> maps;
  Manifest manifest;
  std::vector<const uint8_t*> data;  // raw bytes of each tensor
  std::vector<std::string> file_of;  // source path of each tensor (for errors)
};

Input load_inputs(const std::vector<SourceFile>& sources) {
  Input in;
  for (const auto& s : sources) in.maps.push_back(std::make_unique<MappedFile>(s.path));
  // (each file's checksum: pack() computes it beside the codec plans)
  for (size_t i = 0; i < sources.size(); ++i) {
    const SourceFile& s = sources[i];
    const MappedFile& mf = *in.maps[i];
    FileRecord f;
    f.kind = s.kind;
    f.name = s.name;
    f.size = mf.size();
    f.first_tensor = static_cast<uint32_t>(in.manifest.tensors.size());
    if (s.kind == FileKind::blob) {
      TensorRecord t;
      t.name = s.name;
      t.dtype = DType::U8;
      t.shape = {mf.size()};
      t.byte_size = mf.size();
      in.manifest.tensors.push_back(t);
      in.data.push_back(mf.data());
      in.file_of.push_back(s.path);
    } else {
      st::Header h;
      if (mf.size() >= 8 && std::memcmp(mf.data(), kHeadMagic, 8) == 0) {
        Error e(Errc::usage, "already a wcodec container (to restore the original: wcodec unpack)");
        e.at_file(s.path);
        throw e;
      }
      try {
        h = st::parse_header(mf.data(), mf.size(), mf.size());
      } catch (Error& e) {
        // The first 8 bytes are no header length, or no JSON object follows:
        // say what the file is not, not what its first bytes would mean.
        const bool not_st = e.offset() == 0 || (mf.size() > 8 && mf.data()[8] != '{');
        if (not_st) {
          Error n(Errc::bad_safetensors, std::string("not a safetensors file (") + e.what() + ")");
          n.at_file(s.path);
          throw n;
        }
        e.at_file(s.path);
        throw;
      }
      f.prefix.assign(mf.data(), mf.data() + h.data_start);
      for (const auto& ti : h.tensors) {
        TensorRecord t;
        t.name = ti.name;
        t.dtype = ti.dtype;
        t.shape = ti.shape;
        t.byte_size = ti.end - ti.begin;
        in.manifest.tensors.push_back(t);
        in.data.push_back(mf.data() + h.data_start + ti.begin);
        in.file_of.push_back(s.path);
      }
    }
    f.tensor_count = static_cast<uint32_t>(in.manifest.tensors.size()) - f.first_tensor;
    in.manifest.files.push_back(std::move(f));
  }
  return in;
}

// Readers refuse some inputs the safetensors format allows (a tensor name
// with NUL, a file name that is not UTF-8); refuse them here, before any
// output, rather than write a container nothing can read.
void refuse_unreadable(Input& in, const std::vector<SourceFile>& sources) {
  for (size_t i = 0; i < in.manifest.files.size(); ++i) {
    const FileRecord& f = in.manifest.files[i];
    if (!valid_file_name(f.name)) {
      Error e(Errc::usage, "file name '" + f.name + "' cannot be stored (it must be UTF-8, at most 255 bytes)");
      e.at_file(sources[i].path);
      throw e;
    }
    for (uint32_t k = 0; k < f.tensor_count; ++k)
      if (!valid_record_text(in.manifest.tensors[f.first_tensor + k].name)) {
        Error e(Errc::bad_safetensors, "tensor name contains NUL or is not valid UTF-8; wcodec cannot store it");
        e.at_file(sources[i].path).at_tensor(in.manifest.tensors[f.first_tensor + k].name);
        throw e;
      }
  }
}

}  // namespace

PackResult pack(const std::string& in_path, const std::string& out, const PackOptions& opt) {
  ThreadPool pool(opt.threads ? opt.threads : default_threads());
  EncodeOptions eo;
  eo.zstd_level = opt.level;
  if (opt.parallel == "gpu") eo.substream_bits = kGpuSubstreamBits;
  else if (opt.parallel != "cpu") fail(Errc::usage, "--parallel takes cpu or gpu, not '" + opt.parallel + "'");
  CodecId forced = CodecId::raw;
  bool is_auto = opt.codec == "auto";
  if (!is_auto && !codec_from_name(opt.codec, &forced)) fail(Errc::usage, "unknown codec '" + opt.codec + "'");
  uint32_t chunk = opt.chunk_size;
  if (chunk < kAlign || chunk > kMaxChunkSize || chunk % kAlign) fail(Errc::usage, "chunk size must be a multiple of 64 up to 256 MiB");
  if (opt.pool != "auto" && opt.pool != "never") fail(Errc::usage, "--pool takes auto or never, not '" + opt.pool + "'");
  if (opt.inline_small != "auto" && opt.inline_small != "always" && opt.inline_small != "never")
    fail(Errc::usage, "--inline takes auto, always or never, not '" + opt.inline_small + "'");

  auto sources = resolve_model_input(in_path);
  {  // -f never replaces an input (the file itself, a link to it, or a file of the folder)
    std::vector<std::string> paths;
    for (const auto& s : sources) paths.push_back(s.path);
    refuse_output_onto_input(out, paths);
  }
  Input in = load_inputs(sources);
  auto& m = in.manifest;
  refuse_unreadable(in, sources);
  for (auto& t : m.tensors) t.chunk_size = t.byte_size ? chunk : 0;
  m.derive_chunks();
  // --bits: the chosen tensors become lossy records (and the chunks follow).
  const LossyPlan lossy = plan_lossy(m, in.data, opt, pool);

  // Codec per exact tensor (and, for float-ans-mixed, which chunks try zstd).
  // float-ans-mixed's per-channel shifts (mode 3): the plan's, or with the
  // codec forced, whatever shift::plan expects to pay.
  // Beside them, the whole-file checksum of every file without a lossy
  // tensor (hash_files gave the others theirs, of what they unpack to):
  // these jobs first, so that one thread reads a single-file model through
  // while the others plan its tensors (the checksums ran alone before: 0.2 s
  // of a 1.87 GB model's 1.3 s pack on two threads).
  std::vector<CodecPlan> plans(m.tensors.size());
  const size_t nf = m.files.size();
  pool.parallel_for(nf + m.tensors.size(), [&](size_t j) {
    if (j < nf) {
      FileRecord& f = m.files[j];
      bool has_lossy = false;
      for (uint32_t k = f.first_tensor; k < f.first_tensor + f.tensor_count; ++k) has_lossy |= m.tensors[k].lossy();
      if (!has_lossy) f.xxh3 = XXH3_64bits(in.maps[j]->data(), in.maps[j]->size());
      return;
    }
    const size_t i = j - nf;
    TensorRecord& t = m.tensors[i];
    if (t.lossy()) return;
    const uint64_t cols = t.shape.size() >= 2 ? t.shape.back() : 0;
    CodecPlan& p = plans[i];
    if (t.byte_size == 0) {
      p.codec = CodecId::raw;
    } else if (is_auto) {
      p = plan_codec(t.dtype, in.data[i], t.byte_size, t.chunk_size, eo, cols);
    } else {
      p.codec = codec_supports(forced, t.dtype) ? forced : CodecId::zstd;
      if ((p.codec == CodecId::float_ans_mixed || p.codec == CodecId::float_ans_patch ||
           p.codec == CodecId::float_ans_groups || p.codec == CodecId::float_ans_pairs) && cols)
        p.shift = shift::plan(t.dtype, in.data[i], t.byte_size / (dtype_bits(t.dtype) / 8), cols);
    }
    t.codec = static_cast<uint8_t>(p.codec);
  });
  // Chunk j of exact tensor i, as its codec plan says.
  // The plans' sampled chunks (coded while choosing) are taken instead of
  // coded again, within a bound on the memory they hold: beyond 256 MiB
  // over all plans, the later tensors' chunks are coded afresh.
  {
    uint64_t held = 0;
    for (CodecPlan& p : plans)
      if ((held += sample_bytes(p)) > (uint64_t(256) << 20)) p.samples.clear();
  }
  auto encode_exact = [&](size_t i, uint32_t j, std::vector<uint8_t>& dst) {
    if (take_sample(plans[i], j, dst)) return;
    const TensorRecord& t = m.tensors[i];
    // (forced float-ans-mixed has no flags: every chunk tries both)
    const uint8_t* src = in.data[i] + uint64_t(j) * t.chunk_size;
    const EncodeOptions ce = chunk_options(eo, plans[i], t.dtype, t.chunk_size, j, src, t.chunk_raw_size(j));
    encode_chunk(static_cast<CodecId>(t.codec), t.dtype, src, t.chunk_raw_size(j), dst, ce);
  };
  // Tensors of one small chunk go in their records (1.4, 2.5), where a
  // chunk's header, alignment and index entry would cost them about 64 bytes
  // each; by default only where that is worth a newer minor version.
  auto small = [&](const TensorRecord& t) {
    return !t.lossy() && t.byte_size > 0 && t.byte_size <= kInlineTensorBytes && t.chunk_count == 1;
  };
  uint64_t n_small = 0, tensor_bytes = 0;
  for (const auto& t : m.tensors) n_small += small(t), tensor_bytes += t.byte_size;
  if (opt.inline_small == "always" || (opt.inline_small == "auto" && n_small * kChunkOverhead * 256 >= tensor_bytes)) {
    pool.parallel_for(m.tensors.size(), [&](size_t i) {
      TensorRecord& t = m.tensors[i];
      if (!small(t)) return;
      try {
        encode_exact(i, 0, t.payload);
      } catch (Error& e) {
        e.at_file(in.file_of[i]).at_tensor(t.name);
        throw;
      }
      t.chunk_size = 0;
    });
    m.derive_chunks();
    // their payloads pooled by dtype where that pays (1.8, 2.13; §4.6)
    if (is_auto && opt.pool == "auto") make_pools(m, in.data, eo);
  }

  std::unique_ptr<ByteSink> sink;
  AtomicFile* file = nullptr;
  if (out == "-") {
    if (::isatty(1)) fail(Errc::usage, "refusing to write a container to a terminal");
    sink = std::make_unique<FdSink>(1, "<stdout>");
  } else {
    auto af = std::make_unique<AtomicFile>(out, opt.force);
    file = af.get();
    sink = std::move(af);
  }
  ContainerWriter w(*sink);
  w.begin(m);

  uint64_t total = 0, done = 0;
  for (const auto& t : m.tensors) total += t.byte_size;
  // Each unit's stored chunks: an exact tensor's chunk, a lossy tile's parts.
  // The container goes by model level (FORMAT.md §4.3): every tensor's
  // level-0 chunks, then at each next model level (level-major: level L;
  // chunk order 1: a step) the chunks of the tensors' levels that arrive then.
  std::vector<std::vector<std::vector<uint8_t>>> bufs(chunk_slots(pool));
  std::vector<LossyScratch> scratch(chunk_slots(pool));
  for (unsigned step = 0; step < m.level_count; ++step)
    for_chunk_windows(
        m, 0, uint32_t(m.tensors.size()), pool, [&](size_t, const ChunkJob&) {},
        [&](size_t k, const ChunkJob& j) {
          const TensorRecord& t = m.tensors[j.tensor];
          const uint32_t level = t.level_arriving(step);  // or none
          try {
            if (level == UINT32_MAX || (level >= t.levels.size() && level > 0)) {
              bufs[k].clear();  // an exact tensor, or a lossy one without a level at this step
            } else if (t.lossy()) {
              encode_lossy_tile(t, lossy.tensors[j.tensor], in.data[j.tensor], j.chunk, bufs[k], scratch[k], level);
            } else if (t.inline_exact()) {
              bufs[k].clear();  // its payload is in its record
            } else {
              bufs[k].resize(1);
              encode_exact(j.tensor, j.chunk, bufs[k][0]);
            }
          } catch (Error& e) {
            e.at_file(in.file_of[j.tensor]).at_tensor(t.name);
            throw;
          }
        },
        [&](size_t k, const ChunkJob& j) {
          for (const auto& b : bufs[k]) w.add_chunk(b.data(), b.size());
          if (step > 0) return;
          const TensorRecord& t = m.tensors[j.tensor];
          done += t.lossy() ? t.rows_in_tile(j.chunk) * t.cols() * (dtype_bits(t.dtype) / 8) : t.chunk_raw_size(j.chunk);
          if (opt.progress) opt.progress(done, total);  // throttled by the caller
        });
  w.finish();
  if (file) file->commit();

  PackResult r;
  r.input_bytes = m.original_bytes();
  r.output_bytes = w.bytes_written();
  r.weights = m.weights();
  r.lossy_tensors = lossy.lossy_tensors;
  r.lossy_weights = lossy.lossy_weights;
  if (r.lossy_tensors) {  // every byte of the lossy tensors as written (padding included)
    double bytes = 0;
    for (const auto& t : m.tensors)
      if (t.lossy()) bytes += tensor_file_bytes(t, w.index(), w.chunks_start(), w.shares());
    r.lossy_bits_per_weight = 8.0 * double(bytes) / double(r.lossy_weights);
  }
  return r;
}

RemovedInputs remove_packed_inputs(const std::string& in, const std::string& container, unsigned threads,
                                   const ProgressFn& progress) {
  const bool folder = is_directory(in);
  RemovedInputs r;
  // What verify compares with: the file, or the folder the files lie in.
  const std::string against = folder ? in : path_ends_with(in, ".index.json") ? path_dirname(in) : in;
  r.verified = verify(container, against, threads, progress);
  // Exactly the files verify compared (a file that appeared in the folder
  // since the pack is not one of them, and stays).
  const ContainerReader c(container, kReaderChecks);
  const auto& files = c.manifest().files;
  std::vector<std::string> dirs;
  for (const auto& f : files) {
    const std::string p = files.size() == 1 && !is_directory(against) ? against : path_join(against, f.name);
    if (::unlink(p.c_str()) != 0) {
      Error e(Errc::io, std::string("--rm: cannot remove the input: ") + std::strerror(errno));
      e.at_file(p);
      throw e;
    }
    ++r.files;
    if (folder)
      for (std::string d = path_dirname(p); d.size() > in.size() && d.compare(0, in.size(), in) == 0; d = path_dirname(d))
        dirs.push_back(d);
  }
  if (folder) {  // deepest first; rmdir removes only empty folders
    std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
    for (const auto& d : dirs) ::rmdir(d.c_str());
    ::rmdir(in.c_str());
  }
  return r;
}

}  // namespace wc
