// The public C API over ContainerReader and the codecs.
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <algorithm>
#include <atomic>
#include <vector>
#include <mutex>
#include <string_view>

#include "format/reader.h"
#include "model/file_check.h"
#include "lib/levels.h"
#include "lib/reader_checks.h"
#include "lib/unit_decode.h"
#include "quant/repr.h"
#include "format/hash.h"
#include "lib/api.h"
#include "lib/decode_driver.h"
#include "lib/thread_pool.h"
#include "platform/memory.h"
#define WCODEC_EXPERIMENTAL  // defines the experimental functions too
#include "wcodec/wcodec.h"
#include "model/safetensors.h"

static_assert(WCODEC_E_NOT_FOUND == int(wc::Errc::not_found), "C error codes mirror wc::Errc");

struct wcodec_archive {
  std::unique_ptr<wc::ContainerReader> reader;
  std::vector<uint64_t> stored;  // per tensor
  std::vector<uint32_t> file_of;  // per tensor: its file record
  // per file: its safetensors __metadata__ (empty for blobs), in stored order
  std::vector<std::vector<std::pair<std::string, std::string>>> metadata;
  // Tensor numbers sorted by (name, number), built on the first lookup: 4
  // bytes a tensor, where a hash map of names cost about 80.
  mutable std::once_flag by_name_once;
  mutable std::vector<uint32_t> by_name;
  mutable std::atomic<uint64_t> chunks_decoded{0};
};

namespace {

void put_err(char* err, size_t len, const std::string& msg) {
  if (!err || len == 0) return;
  size_t n = std::min(len - 1, msg.size());
  std::memcpy(err, msg.data(), n);
  err[n] = 0;
}

// Argument errors found before any work: the code and a message, as for
// every other failure.
int usage(char* err, size_t len, const std::string& msg) {
  put_err(err, len, std::string(wc::errc_name(wc::Errc::usage)) + ": " + msg);
  return WCODEC_E_USAGE;
}

template <class F>
int guarded(char* err, size_t len, F&& f) {
  try {
    f();
    put_err(err, len, "");
    return WCODEC_OK;
  } catch (const wc::Error& e) {
    put_err(err, len, e.describe());
    return int(e.code());
  } catch (const std::bad_alloc&) {
    put_err(err, len, "out of memory");
    return WCODEC_E_LIMIT;
  } catch (const std::exception& e) {
    put_err(err, len, e.what());
    return WCODEC_E_IO;
  }
}

// Chunks of exact tensor t as the API counts them: a tensor stored in its
// record (1.4, 2.5) has one, its payload in the manifest.
uint32_t api_chunks(const wc::TensorRecord& t) { return t.inline_exact() ? 1 : t.chunk_count; }

// Where chunk `chunk` of exact tensor t lies, for errors: its payload, or
// the manifest for an inline tensor.
uint64_t chunk_offset(const wcodec_archive* a, const wc::TensorRecord& t, uint32_t chunk) {
  return t.inline_exact() ? wc::kHeaderSize : a->reader->index()[t.global_chunk(chunk)].offset;
}

// The arguments of a call that decodes one chunk of an exact tensor: a usage
// error (with its message) unless `tensor` is an exact tensor with chunk
// `chunk` and dst holds that chunk; *out receives the tensor.
int exact_chunk_args(const wcodec_archive* a, size_t tensor, uint32_t chunk, const void* dst, size_t dst_len,
                     char* err, size_t err_len, const wc::TensorRecord** out) {
  if (!a || !dst || tensor >= a->reader->manifest().tensors.size())
    return usage(err, err_len, "no such tensor, or no destination");
  const auto& t = a->reader->manifest().tensors[tensor];
  if (t.lossy()) return usage(err, err_len, "tensor '" + t.name + "' is lossy: decode it whole (wcodec_decode_tensor_ex)");
  if (chunk >= api_chunks(t)) return usage(err, err_len, "tensor '" + t.name + "' has no chunk " + std::to_string(chunk));
  if (dst_len < t.chunk_raw_size(chunk))
    return usage(err, err_len, "a buffer of " + std::to_string(dst_len) + " bytes cannot hold chunk " +
                                   std::to_string(chunk) + " of tensor '" + t.name + "' (" +
                                   std::to_string(t.chunk_raw_size(chunk)) + " bytes)");
  *out = &t;
  return WCODEC_OK;
}

// The struct sizes of the first release with struct_size: smaller is refused.
constexpr size_t kTensorInfoV1 = sizeof(wcodec_tensor_info);
constexpr size_t kFileInfoV1 = sizeof(wcodec_file_info);
constexpr size_t kPackOptionsV1 = offsetof(wcodec_pack_options, calib);  // calib and no_act_order came later
constexpr size_t kPackResultV1 = sizeof(wcodec_pack_result);

// Copies `full` into the caller's struct, no further than its struct_size.
template <class T>
void put_struct(T* out, T full) {
  const size_t n = std::min(out->struct_size, sizeof(T));
  full.struct_size = out->struct_size;
  std::memcpy(static_cast<void*>(out), &full, n);
}

void finish_open(wcodec_archive& a) {
  const auto& m = a.reader->manifest();
  a.stored.reserve(m.tensors.size());
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    a.stored.push_back(wc::tensor_stored_bytes(m.tensors[i], a.reader->index()));
  }
  a.file_of.resize(m.tensors.size());
  a.metadata.resize(m.files.size());
  for (uint32_t f = 0; f < m.files.size(); ++f) {
    const auto& fr = m.files[f];
    for (uint32_t i = 0; i < fr.tensor_count; ++i) a.file_of[fr.first_tensor + i] = f;
    if (fr.kind == wc::FileKind::safetensors)  // checked by kReaderChecks as the manifest was read
      wc::st::scan_header(fr.prefix.data(), fr.prefix.size(), fr.size, [](wc::st::TensorInfo&&, const wc::st::EntryPos&) {},
                          [&](std::string&& k, std::string&& v, uint64_t) { a.metadata[f].emplace_back(std::move(k), std::move(v)); });
  }
}

uint64_t rows_of(const wc::TensorRecord& t) { return t.shape.empty() ? 1 : t.shape[0]; }

// Bytes of one row in dtype `out` (0 when rows do not end on byte boundaries).
uint64_t row_bytes_of(const wc::TensorRecord& t, wc::DType out) {
  const uint64_t rows = rows_of(t);
  if (rows == 0) return 0;
  const uint64_t per_row = t.elements() / rows, bits = per_row * wc::dtype_bits(out);
  return bits % 8 == 0 ? bits / 8 : 0;
}

// The dtype a tensor decodes to: its own, or BF16/F16/F32 for a lossy one.
bool output_dtype(const wc::TensorRecord& t, const char* name, wc::DType* out) {
  *out = t.dtype;
  if (!name) return true;
  auto d = wc::dtype_from_name(name);
  if (!d) return false;
  if (*d != t.dtype && (!t.lossy() || (*d != wc::DType::BF16 && *d != wc::DType::F16 && *d != wc::DType::F32)))
    return false;
  *out = *d;
  return true;
}

uint64_t output_bytes(const wc::TensorRecord& t, wc::DType out) {
  return t.lossy() ? t.elements() * (wc::dtype_bits(out) / 8) : t.byte_size;
}

// Units smaller than this are written without prefaulting (a system call
// costs more than the few faults it saves).
constexpr uint64_t kPrefaultMin = 64 << 10;

// Bytes [b0, b1) of a tensor's decoded output, written to dst.
struct Span {
  const wc::TensorRecord* t;
  wc::DType out;
  uint64_t b0, b1;
  uint8_t* dst;
  unsigned level = wc::kTopLevel;  // a lossy tensor's level (min(level, its top))
};

// Decodes spans on one set of threads: every unit (chunk or tile) any span
// touches is one job; a unit wholly inside its span decodes in place, a
// partly needed one through a per-thread buffer. A lossy tensor decoded whole
// in its own dtype is then checked against its reconstruction hash.
// `exec`, when set, runs the jobs on the caller's threads instead of ours.
struct Executor {
  wcodec_executor_fn run = nullptr;
  void* ctx = nullptr;
};

void decode_spans(const wcodec_archive& a, const std::vector<Span>& spans, unsigned threads, Executor exec = {}) {
  struct Job {
    uint32_t span;
    uint64_t unit;
  };
  std::vector<Job> jobs;
  std::vector<uint64_t> stride(spans.size());
  for (uint32_t s = 0; s < spans.size(); ++s) {
    const auto& sp = spans[s];
    wc::check_decodable(*sp.t, a.reader->path());
    if (sp.b0 >= sp.b1) continue;
    stride[s] = wc::unit_stride(*sp.t, sp.out);
    for (uint64_t u = sp.b0 / stride[s]; u <= (sp.b1 - 1) / stride[s]; ++u) jobs.push_back({s, u});
  }
  auto run = [&](size_t j) {
    thread_local wc::UnitWork ws;  // per thread: buffers grow once, not per unit
    thread_local std::vector<uint8_t> part;
    const Span& sp = spans[jobs[j].span];
    const wc::TensorRecord& t = *sp.t;
    const uint64_t u = jobs[j].unit, begin = u * stride[jobs[j].span], size = wc::unit_out_size(t, u, sp.out);
    std::span<const uint8_t> chunks[wc::kMaxParts];
    const uint32_t nc = wc::unit_chunks(t, sp.level);
    for (uint32_t c = 0; c < nc; ++c) chunks[c] = a.reader->chunk(wc::unit_chunk(t, u, c, sp.level));
    a.chunks_decoded.fetch_add(t.inline_exact() ? 1 : nc, std::memory_order_relaxed);  // an inline tensor: its one
    if (begin >= sp.b0 && begin + size <= sp.b1) {
      // fresh caller memory: fault its pages in with one call, not one trap
      // a page as the decoder writes (about 15% of loading a new model here)
      if (size >= kPrefaultMin) wc::prefault_for_write(sp.dst + (begin - sp.b0), size);
      wc::decode_unit(t, u, chunks, ws, sp.out, sp.dst + (begin - sp.b0), a.reader->path(), sp.level);
      return;
    }
    part.resize(size);
    wc::decode_unit(t, u, chunks, ws, sp.out, part.data(), a.reader->path(), sp.level);
    const uint64_t lo = std::max(begin, sp.b0), hi = std::min(begin + size, sp.b1);
    std::memcpy(sp.dst + (lo - sp.b0), part.data() + (lo - begin), hi - lo);
  };
  if (exec.run) {
    // The caller's tasks cannot throw through its executor: each records
    // its first error, rethrown here once every task has returned.
    struct Shared {
      decltype(run)* fn;
      std::mutex mu;
      std::exception_ptr error;
    } shared{&run, {}, {}};
    exec.run(exec.ctx, jobs.size(), [](void* arg, size_t i) {
      auto* sh = static_cast<Shared*>(arg);
      try {
        (*sh->fn)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(sh->mu);
        if (!sh->error) sh->error = std::current_exception();
      }
    }, &shared);
    if (shared.error) std::rethrow_exception(shared.error);
  } else if (unsigned n = std::min<size_t>(threads ? threads : wc::default_threads(), std::max<size_t>(jobs.size(), 1));
             n == 1) {
    for (size_t j = 0; j < jobs.size(); ++j) run(j);
  } else {
    wc::ThreadPool pool(n);
    pool.parallel_for(jobs.size(), run);
  }
  for (const auto& sp : spans) {
    const wc::TensorRecord& t = *sp.t;
    if (t.lossy() && sp.out == t.dtype && sp.b0 == 0 && sp.b1 == output_bytes(t, sp.out) &&
        XXH3_64bits(sp.dst, sp.b1) != t.levels[wc::level_of(t, sp.level)].xxh3) {
      wc::Error e(wc::Errc::checksum, "the decoded tensor does not match the reconstruction hash its record stores");
      e.at_file(a.reader->path()).at_tensor(t.name).at_offset(t.record_offset);
      throw e;
    }
  }
}

wc::PackOptions pack_options(const wcodec_pack_options* o) {
  wc::PackOptions p;
  if (!o) return p;
  p.threads = o->threads;
  p.force = o->force != 0;
  if (o->codec) p.codec = o->codec;
  if (o->zstd_level) p.level = o->zstd_level;
  if (o->chunk_size) p.chunk_size = o->chunk_size;
  p.bits = o->bits;
  if (o->keep) p.keep = o->keep;
  if (o->sensitivity) p.sensitivity = o->sensitivity;
  if (o->min_elements) p.min_elements = o->min_elements;
  if (o->parallel) p.parallel = o->parallel;
  if (o->struct_size >= offsetof(wcodec_pack_options, no_act_order) + sizeof(o->no_act_order)) {
    if (o->calib) p.calib = o->calib;
    p.act_order = o->no_act_order == 0;
  }
  if (o->struct_size >= offsetof(wcodec_pack_options, scheme) + sizeof(o->scheme) && o->scheme) p.scheme = o->scheme;
  if (o->struct_size >= offsetof(wcodec_pack_options, inline_small) + sizeof(o->inline_small) && o->inline_small)
    p.inline_small = o->inline_small;
  if (o->struct_size >= offsetof(wcodec_pack_options, exact) + sizeof(o->exact)) p.exact = o->exact != 0;
  if (o->struct_size >= offsetof(wcodec_pack_options, refine) + sizeof(o->refine)) p.refine = o->refine;
  if (o->struct_size >= offsetof(wcodec_pack_options, block_rank) + sizeof(o->block_rank)) {
    if (o->block) p.block = o->block;
    if (o->block_rank) p.block_rank = o->block_rank;
  }
  if (o->struct_size >= offsetof(wcodec_pack_options, refine_factor) + sizeof(o->refine_factor) && o->refine_factor)
    p.refine_factor = o->refine_factor;
  return p;
}

void put_pack_result(wcodec_pack_result* out, const wc::PackResult& r) {
  if (!out) return;
  wcodec_pack_result full = WCODEC_PACK_RESULT_INIT;
  full.input_bytes = r.input_bytes;
  full.output_bytes = r.output_bytes;
  full.weights = r.weights;
  full.lossy_tensors = r.lossy_tensors;
  full.lossy_bits_per_weight = r.lossy_bits_per_weight;
  put_struct(out, full);
}

}  // namespace

extern "C" {

unsigned wcodec_version_number(void) { return WCODEC_VERSION_NUMBER; }
const char* wcodec_version_string(void) { return wc::version_string(); }
const char* wcodec_error_name(int code) { return wc::errc_name(static_cast<wc::Errc>(code)); }

int wcodec_open(const char* path, wcodec_archive** out, char* err, size_t err_len) {
  if (!path || !out) return usage(err, err_len, "wcodec_open needs a path and an output pointer");
  *out = nullptr;
  return guarded(err, err_len, [&] {
    auto a = std::make_unique<wcodec_archive>();
    a->reader = std::make_unique<wc::ContainerReader>(path, wc::kReaderChecks);
    finish_open(*a);
    *out = a.release();
  });
}

int wcodec_open_memory(const void* data, size_t size, const char* name, wcodec_archive** out, char* err,
                       size_t err_len) {
  if ((!data && size) || !out) return usage(err, err_len, "wcodec_open_memory needs the bytes and an output pointer");
  *out = nullptr;
  return guarded(err, err_len, [&] {
    auto a = std::make_unique<wcodec_archive>();
    a->reader = std::make_unique<wc::ContainerReader>(static_cast<const uint8_t*>(data), size,
                                                      name ? std::string(name) : "<memory>", wc::kReaderChecks);
    finish_open(*a);
    *out = a.release();
  });
}

void wcodec_close(wcodec_archive* a) { delete a; }

int wcodec_set_verify_chunks(wcodec_archive* a, int on) {
  if (!a) return WCODEC_E_USAGE;
  a->reader->set_verify_payloads(on != 0);
  return WCODEC_OK;
}

size_t wcodec_file_count(const wcodec_archive* a) { return a ? a->reader->manifest().files.size() : 0; }

int wcodec_get_file_info(const wcodec_archive* a, size_t i, wcodec_file_info* out) {
  if (!a || !out || out->struct_size < kFileInfoV1 || i >= wcodec_file_count(a)) return WCODEC_E_USAGE;
  const auto& f = a->reader->manifest().files[i];
  wcodec_file_info full = WCODEC_FILE_INFO_INIT;
  full.name = f.name.c_str();
  full.kind = f.kind == wc::FileKind::safetensors ? "safetensors" : "blob";
  full.size = f.size;
  full.first_tensor = f.first_tensor;
  full.tensor_count = f.tensor_count;
  full.metadata_count = a->metadata[i].size();
  put_struct(out, full);
  return WCODEC_OK;
}

int wcodec_get_metadata(const wcodec_archive* a, size_t file, size_t k, const char** key, const char** value) {
  if (!a || !key || !value || file >= wcodec_file_count(a) || k >= a->metadata[file].size()) return WCODEC_E_USAGE;
  *key = a->metadata[file][k].first.c_str();
  *value = a->metadata[file][k].second.c_str();
  return WCODEC_OK;
}

int wcodec_find_file(const wcodec_archive* a, const char* name, size_t* file) {
  if (!a || !name || !file) return WCODEC_E_USAGE;
  const auto& fs = a->reader->manifest().files;
  for (size_t i = 0; i < fs.size(); ++i)  // files are few: a linear search
    if (fs[i].name == name) {
      *file = i;
      return WCODEC_OK;
    }
  return WCODEC_E_NOT_FOUND;
}

size_t wcodec_tensor_count(const wcodec_archive* a) { return a ? a->reader->manifest().tensors.size() : 0; }

int wcodec_get_tensor_info(const wcodec_archive* a, size_t i, wcodec_tensor_info* out) {
  if (!a || !out || out->struct_size < kTensorInfoV1 || i >= wcodec_tensor_count(a)) return WCODEC_E_USAGE;
  const auto& t = a->reader->manifest().tensors[i];
  wcodec_tensor_info full = WCODEC_TENSOR_INFO_INIT;
  full.name = t.name.c_str();
  full.dtype = wc::dtype_name(t.dtype).data();
  full.rank = uint32_t(t.shape.size());
  full.shape = t.shape.data();
  full.byte_size = t.byte_size;
  full.chunk_count = t.lossy() ? t.chunk_count : api_chunks(t);
  full.chunk_size = t.inline_exact() ? uint32_t(t.byte_size) : t.chunk_size;
  full.codec = wc::codec_id_valid(t.codec) ? wc::codec_name(static_cast<wc::CodecId>(t.codec)).data() : "unknown";
  full.stored_size = a->stored[i];
  full.representation = wc::repr_name(t.repr).data();
  full.levels = t.lossy() ? uint32_t(t.levels.size()) : 1;
  full.file = a->file_of[i];
  full.rows = rows_of(t);
  full.row_bytes = row_bytes_of(t, t.dtype);
  put_struct(out, full);
  return WCODEC_OK;
}

int wcodec_find_tensor(const wcodec_archive* a, const char* name, size_t* tensor) {
  if (!a || !name || !tensor) return WCODEC_E_USAGE;
  const auto& ts = a->reader->manifest().tensors;
  try {
    std::call_once(a->by_name_once, [&] {
      a->by_name.resize(ts.size());
      for (uint32_t i = 0; i < ts.size(); ++i) a->by_name[i] = i;
      std::sort(a->by_name.begin(), a->by_name.end(), [&](uint32_t x, uint32_t y) {
        return ts[x].name != ts[y].name ? ts[x].name < ts[y].name : x < y;
      });
    });
  } catch (const std::bad_alloc&) {
    return WCODEC_E_LIMIT;
  }
  const std::string_view key(name);
  auto it = std::lower_bound(a->by_name.begin(), a->by_name.end(), key,
                             [&](uint32_t k, std::string_view n) { return std::string_view(ts[k].name) < n; });
  if (it == a->by_name.end() || ts[*it].name != key) return WCODEC_E_NOT_FOUND;
  *tensor = *it;  // the first tensor of that name (names repeat only across files)
  return WCODEC_OK;
}

int wcodec_decode_chunk(const wcodec_archive* a, size_t tensor, uint32_t chunk, void* dst, size_t dst_len, char* err,
                        size_t err_len) {
  const wc::TensorRecord* tp = nullptr;
  if (const int rc = exact_chunk_args(a, tensor, chunk, dst, dst_len, err, err_len, &tp)) return rc;
  const wc::TensorRecord& t = *tp;
  return guarded(err, err_len, [&] {
    a->chunks_decoded.fetch_add(1, std::memory_order_relaxed);
    wc::decode_one_chunk(t, chunk, a->reader->exact_chunk(t, chunk), static_cast<uint8_t*>(dst), a->reader->path());
  });
}

int wcodec_decode_tensor(const wcodec_archive* a, size_t tensor, void* dst, size_t dst_len, unsigned threads, char* err,
                         size_t err_len) {
  return wcodec_decode_tensor_ex(a, tensor, WCODEC_LEVEL_TOP, nullptr, dst, dst_len, threads, err, err_len);
}

namespace {

int decode_jobs(const wcodec_archive* a, const wcodec_decode_job* jobs, size_t job_count, unsigned threads,
                Executor exec, char* err, size_t err_len, unsigned level = wc::kTopLevel) {
  if (!a || (!jobs && job_count)) return usage(err, err_len, "no archive or no jobs");
  std::vector<Span> spans;
  try {
    spans.reserve(job_count);
  } catch (const std::bad_alloc&) {
    put_err(err, err_len, "out of memory");
    return WCODEC_E_LIMIT;
  }
  for (size_t j = 0; j < job_count; ++j) {
    if (jobs[j].tensor >= wcodec_tensor_count(a)) return usage(err, err_len, "job " + std::to_string(j) + ": no such tensor");
    const auto& t = a->reader->manifest().tensors[jobs[j].tensor];
    wc::DType out;
    if (!output_dtype(t, jobs[j].dtype, &out))
      return usage(err, err_len, "tensor '" + t.name + "' (" + std::string(wc::dtype_name(t.dtype)) +
                                     ") cannot be decoded as " + jobs[j].dtype);
    const uint64_t need = output_bytes(t, out);
    if (jobs[j].dst_len < need || (!jobs[j].dst && need))
      return usage(err, err_len, "a buffer of " + std::to_string(jobs[j].dst_len) + " bytes cannot hold tensor '" +
                                     t.name + "' (" + std::to_string(need) + " bytes)");
    spans.push_back({&t, out, 0, need, static_cast<uint8_t*>(jobs[j].dst), level});
  }
  return guarded(err, err_len, [&] { decode_spans(*a, spans, threads, exec); });
}

}  // namespace

int wcodec_decode_tensor_ex(const wcodec_archive* a, size_t tensor, uint32_t level, const char* dtype, void* dst,
                            size_t dst_len, unsigned threads, char* err, size_t err_len) {
  if (!a || tensor >= wcodec_tensor_count(a)) return usage(err, err_len, "no such tensor");
  const auto& t = a->reader->manifest().tensors[tensor];
  const uint32_t levels = t.lossy() ? uint32_t(t.levels.size()) : 1;
  if (level != WCODEC_LEVEL_TOP && level >= levels)
    return usage(err, err_len, "tensor '" + t.name + "' has no level " + std::to_string(level));
  wcodec_decode_job job{tensor, dst, dst_len, dtype};
  return decode_jobs(a, &job, 1, threads, {}, err, err_len, level == WCODEC_LEVEL_TOP ? wc::kTopLevel : level);
}

int wcodec_decode_tensors(const wcodec_archive* a, const wcodec_decode_job* jobs, size_t job_count, unsigned threads,
                          char* err, size_t err_len) {
  return decode_jobs(a, jobs, job_count, threads, {}, err, err_len);
}

int wcodec_decode_tensors_exec(const wcodec_archive* a, const wcodec_decode_job* jobs, size_t job_count,
                               wcodec_executor_fn run, void* ctx, char* err, size_t err_len) {
  if (!run) return usage(err, err_len, "wcodec_decode_tensors_exec needs an executor");
  return decode_jobs(a, jobs, job_count, 1, {run, ctx}, err, err_len);
}

int wcodec_decode_rows(const wcodec_archive* a, size_t tensor, uint64_t row_begin, uint64_t row_end, const char* dtype,
                       void* dst, size_t dst_len, unsigned threads, char* err, size_t err_len) {
  return wcodec_decode_rows_ex(a, tensor, WCODEC_LEVEL_TOP, row_begin, row_end, dtype, dst, dst_len, threads, err,
                               err_len);
}

int wcodec_decode_rows_ex(const wcodec_archive* a, size_t tensor, uint32_t level, uint64_t row_begin, uint64_t row_end,
                          const char* dtype, void* dst, size_t dst_len, unsigned threads, char* err, size_t err_len) {
  if (!a || tensor >= wcodec_tensor_count(a)) return usage(err, err_len, "no such tensor");
  const auto& t = a->reader->manifest().tensors[tensor];
  const uint32_t levels = t.lossy() ? uint32_t(t.levels.size()) : 1;
  if (level != WCODEC_LEVEL_TOP && level >= levels)
    return usage(err, err_len, "tensor '" + t.name + "' has no level " + std::to_string(level));
  wc::DType out;
  if (!output_dtype(t, dtype, &out))
    return usage(err, err_len, "tensor '" + t.name + "' (" + std::string(wc::dtype_name(t.dtype)) +
                                   ") cannot be decoded as " + dtype);
  const uint64_t rows = rows_of(t), rb = row_bytes_of(t, out);
  if (row_begin > row_end || row_end > rows)
    return usage(err, err_len, "rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                                   ") are not within tensor '" + t.name + "' (" + std::to_string(rows) + " rows)");
  if (rb == 0 && row_end > row_begin)
    return usage(err, err_len, "rows of tensor '" + t.name + "' do not fall on byte boundaries");
  const uint64_t need = (row_end - row_begin) * rb;
  if (dst_len < need || (!dst && need))
    return usage(err, err_len, "a buffer of " + std::to_string(dst_len) + " bytes cannot hold " +
                                   std::to_string(row_end - row_begin) + " rows of tensor '" + t.name + "'");
  return guarded(err, err_len, [&] {
    decode_spans(*a,
                 {Span{&t, out, row_begin * rb, row_end * rb, static_cast<uint8_t*>(dst),
                       level == WCODEC_LEVEL_TOP ? wc::kTopLevel : level}},
                 threads);
  });
}

size_t wcodec_workspace_size(void) { return wc::decode_workspace_size(); }

namespace {

// Decodes chunk `chunk` of exact tensor t from `stored` with the caller's
// workspace: nothing allocated unless it fails.
int decode_chunk_in(const wcodec_archive* a, const wc::TensorRecord& t, uint32_t chunk, const uint8_t* stored,
                    size_t stored_n, void* dst, void* ws, size_t ws_len, char* err, size_t err_len) {
  const wc::Errc rc = wc::codec_id_valid(t.codec)
                          ? wc::decode_chunk_ws(static_cast<wc::CodecId>(t.codec), t.dtype, stored, stored_n,
                                                static_cast<uint8_t*>(dst), t.chunk_raw_size(chunk), ws, ws_len)
                          : wc::Errc::unsupported_version;
  a->chunks_decoded.fetch_add(1, std::memory_order_relaxed);
  if (rc == wc::Errc::ok) {
    put_err(err, err_len, "");
    return WCODEC_OK;
  }
  return guarded(err, err_len, [&] {
    wc::Error e(rc, rc == wc::Errc::usage ? "the workspace is smaller than wcodec_workspace_size()"
                                          : "chunk " + std::to_string(chunk) + " does not decode");
    e.at_file(a->reader->path()).at_tensor(t.name).at_offset(chunk_offset(a, t, chunk));
    throw e;
  });
}

}  // namespace

int wcodec_decode_chunk_ws(const wcodec_archive* a, size_t tensor, uint32_t chunk, void* dst, size_t dst_len,
                           void* workspace, size_t workspace_len, char* err, size_t err_len) {
  const wc::TensorRecord* tp = nullptr;
  if (const int rc = exact_chunk_args(a, tensor, chunk, dst, dst_len, err, err_len, &tp)) return rc;
  const wc::TensorRecord& t = *tp;
  std::span<const uint8_t> stored;
  const int rc = guarded(err, err_len, [&] { stored = a->reader->exact_chunk(t, chunk); });
  if (rc != WCODEC_OK) return rc;
  return decode_chunk_in(a, t, chunk, stored.data(), stored.size(), dst, workspace, workspace_len, err, err_len);
}

int wcodec_plan_chunks(const wcodec_archive* a, const size_t* tensors, size_t tensor_count, wcodec_chunk_desc* out,
                       size_t capacity, size_t* count, char* err, size_t err_len) {
  if (!a || (!tensors && tensor_count) || !count || (!out && capacity)) return usage(err, err_len, "bad arguments");
  size_t n = 0;
  for (size_t k = 0; k < tensor_count; ++k) {
    if (tensors[k] >= wcodec_tensor_count(a)) return usage(err, err_len, "no tensor " + std::to_string(tensors[k]));
    const auto& t = a->reader->manifest().tensors[tensors[k]];
    if (t.lossy()) return usage(err, err_len, "tensor '" + t.name + "' is lossy: decode it with wcodec_decode_tensor_ex");
    if (t.inline_exact()) {  // its bytes lie in the manifest: the archive holds them
      if (n < capacity)
        out[n] = wcodec_chunk_desc{tensors[k], 0, t.codec, wc::dtype_name(t.dtype).data(), WCODEC_OFFSET_INLINE,
                                   t.payload.size(), XXH3_64bits(t.payload.data(), t.payload.size()), 0, t.byte_size};
      ++n;
      continue;
    }
    for (uint32_t c = 0; c < t.chunk_count; ++c, ++n) {
      if (n >= capacity) continue;
      const wc::ChunkEntry& e = a->reader->index()[t.global_chunk(c)];
      out[n] = wcodec_chunk_desc{tensors[k], c, t.codec, wc::dtype_name(t.dtype).data(), e.offset, e.stored_size,
                                 e.xxh3, uint64_t(c) * t.chunk_size, t.chunk_raw_size(c)};
    }
  }
  *count = n;
  put_err(err, err_len, "");
  return WCODEC_OK;
}

int wcodec_decode_desc(const wcodec_archive* a, const wcodec_chunk_desc* d, const void* stored, size_t stored_len,
                       void* dst, size_t dst_len, void* workspace, size_t workspace_len, char* err, size_t err_len) {
  if (!d || (!stored && stored_len)) return usage(err, err_len, "no chunk descriptor, or no stored bytes");
  const wc::TensorRecord* tp = nullptr;
  if (const int rc = exact_chunk_args(a, d->tensor, d->chunk, dst, dst_len, err, err_len, &tp)) return rc;
  const wc::TensorRecord& t = *tp;
  if (t.inline_exact()) {  // the archive's own bytes (checked with the manifest)
    if (stored || stored_len)
      return usage(err, err_len, "tensor '" + t.name + "' lies in the manifest: pass no stored bytes (NULL, 0)");
    return decode_chunk_in(a, t, 0, t.payload.data(), t.payload.size(), dst, workspace, workspace_len, err, err_len);
  }
  const wc::ChunkEntry& e = a->reader->index()[t.global_chunk(d->chunk)];
  if (stored_len != e.stored_size)
    return usage(err, err_len, "tensor '" + t.name + "' chunk " + std::to_string(d->chunk) + " has " +
                                   std::to_string(e.stored_size) + " stored bytes, not " + std::to_string(stored_len));
  const auto* p = static_cast<const uint8_t*>(stored);
  if (a->reader->verify_payloads() && XXH3_64bits(p, stored_len) != e.xxh3)
    return guarded(err, err_len, [&] {
      wc::Error x(wc::Errc::checksum, "chunk " + std::to_string(d->chunk) + " (bytes read by the caller)");
      x.at_file(a->reader->path()).at_tensor(t.name).at_offset(e.offset);
      throw x;
    });
  return decode_chunk_in(a, t, d->chunk, p, stored_len, dst, workspace, workspace_len, err, err_len);
}

int wcodec_pack(const char* in, const char* out, const wcodec_pack_options* options, wcodec_pack_result* result,
                char* err, size_t err_len) {
  if (!in) return usage(err, err_len, "wcodec_pack needs an input path");
  if ((options && options->struct_size < kPackOptionsV1) || (result && result->struct_size < kPackResultV1))
    return usage(err, err_len, "struct_size of the options or the result is not set");
  return guarded(err, err_len, [&] {
    // as the tool: no output is IN.wcz beside it; a folder gets that name inside
    std::string o = out ? std::string(out) : wc::default_pack_output(in);
    if (out && wc::names_folder(o)) o = wc::path_join(o, wc::path_basename(wc::default_pack_output(in)));
    put_pack_result(result, wc::pack(in, o, pack_options(options)));
  });
}

int wcodec_pack_memory(const void* data, size_t size, const char* name, const char* out,
                       const wcodec_pack_options* options, wcodec_pack_result* result, char* err, size_t err_len) {
  if ((!data && size) || !name || !out) return usage(err, err_len, "wcodec_pack_memory needs the bytes, a name and an output");
  if ((options && options->struct_size < kPackOptionsV1) || (result && result->struct_size < kPackResultV1))
    return usage(err, err_len, "struct_size of the options or the result is not set");
  return guarded(err, err_len, [&] {
    put_pack_result(result, wc::pack_memory(static_cast<const uint8_t*>(data), size, name, out, pack_options(options)));
  });
}

int wcodec_unpack(const char* in, const char* out, unsigned threads, int force, char* written, size_t written_len,
                  char* err, size_t err_len) {
  if (!in) return usage(err, err_len, "wcodec_unpack needs an input path");
  return guarded(err, err_len, [&] {
    wc::UnpackOptions o;
    o.threads = threads;
    o.force = force != 0;
    put_err(written, written_len, wc::unpack(in, out ? out : "", o));
  });
}

int wcodec_unpack_file(const char* in, const char* name, const char* out, unsigned threads, int force, char* written,
                       size_t written_len, char* err, size_t err_len) {
  if (!in || !name) return usage(err, err_len, "wcodec_unpack_file needs an input path and a stored file name");
  return guarded(err, err_len, [&] {
    wc::UnpackOptions o;
    o.threads = threads;
    o.force = force != 0;
    put_err(written, written_len, wc::unpack_file(in, name, out ? out : "", o));
  });
}

int wcodec_verify(const char* in, unsigned threads, uint64_t* chunks, uint64_t* bytes, char* err, size_t err_len) {
  if (!in) return usage(err, err_len, "wcodec_verify needs an input path");
  return guarded(err, err_len, [&] {
    const wc::VerifyResult r = wc::verify(in, "", threads, {});
    if (chunks) *chunks = r.chunks;
    if (bytes) *bytes = r.bytes;
  });
}

uint64_t wcodec_chunks_decoded(const wcodec_archive* a) {
  return a ? a->chunks_decoded.load(std::memory_order_relaxed) : 0;
}

int wcodec_upgrade_tensor(const wcodec_archive* a, size_t tensor, uint32_t from, uint32_t to, void* dst,
                          size_t dst_len, unsigned threads, char* err, size_t err_len) {
  if (!a || tensor >= wcodec_tensor_count(a)) return usage(err, err_len, "no such tensor");
  const auto& t = a->reader->manifest().tensors[tensor];
  const uint32_t levels = t.lossy() ? uint32_t(t.levels.size()) : 1;
  if (to == WCODEC_LEVEL_TOP) to = levels - 1;
  if (from >= to || to >= levels)
    return usage(err, err_len, "tensor '" + t.name + "' has no level " + std::to_string(to) + " above level " +
                                   std::to_string(from));
  if (dst_len < t.byte_size || !dst)
    return usage(err, err_len, "a buffer of " + std::to_string(dst_len) + " bytes cannot hold tensor '" + t.name +
                                   "' (" + std::to_string(t.byte_size) + " bytes)");
  return guarded(err, err_len, [&] {
    wc::check_decodable(t, a->reader->path());
    const uint64_t units = wc::unit_count(t), stride = wc::unit_stride(t, t.dtype);
    auto* out = static_cast<uint8_t*>(dst);
    auto run = [&](size_t u) {
      thread_local wc::UnitWork ws;
      std::span<const uint8_t> chunks[wc::kMaxParts];
      const uint32_t nc = wc::unit_chunks_in(t, from + 1, to);
      for (uint32_t c = 0; c < nc; ++c) chunks[c] = a->reader->chunk(wc::unit_chunk_in(t, u, c, from + 1, to));
      a->chunks_decoded.fetch_add(nc, std::memory_order_relaxed);
      try {
        wc::upgrade_unit(t, u, from, to, chunks, ws, out + u * stride, a->reader->path());
      } catch (wc::Error& e) {  // where the tile's new chunks lie
        if (nc) e.at_offset(a->reader->index()[wc::unit_chunk_in(t, u, 0, from + 1, to)].offset);
        throw;
      }
    };
    const unsigned n = std::min<uint64_t>(threads ? threads : wc::default_threads(), std::max<uint64_t>(units, 1));
    if (n == 1) {
      for (uint64_t u = 0; u < units; ++u) run(u);
    } else {
      wc::ThreadPool pool(n);
      pool.parallel_for(units, run);
    }
    if (XXH3_64bits(out, t.byte_size) != t.levels[to].xxh3) {
      wc::Error e(wc::Errc::checksum, "the upgraded tensor does not match level " + std::to_string(to) +
                                          "'s hash (was dst the tensor at level " + std::to_string(from) + "?)");
      e.at_file(a->reader->path()).at_tensor(t.name).at_offset(t.record_offset);
      throw e;
    }
  });
}

uint32_t wcodec_step_count(const wcodec_archive* a) { return a ? a->reader->manifest().level_count : 0; }

int wcodec_budget_step(const wcodec_archive* a, const char* budget, uint32_t* step, uint64_t* bytes, char* err,
                       size_t err_len) {
  if (!a || !budget) return usage(err, err_len, "no archive or no budget");
  return guarded(err, err_len, [&] {
    const wc::ContainerReader& r = *a->reader;
    const wc::LevelPoint p = wc::point_for_budget(r, wc::parse_budget(budget, r.manifest().weights()));
    if (step) *step = p.level == 255 ? 0 : p.level;  // a one-level file: its one step
    if (bytes) *bytes = p.bytes;
  });
}

uint32_t wcodec_tensor_level_at(const wcodec_archive* a, size_t tensor, uint32_t step) {
  if (!a || tensor >= wcodec_tensor_count(a)) return 0;
  const auto& t = a->reader->manifest().tensors[tensor];
  return t.lossy() ? wc::level_at(t, step) : 0;
}

}  // extern "C"
