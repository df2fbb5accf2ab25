// The public C API over ContainerReader and the codecs.
#include <cstring>
#include <memory>
#include <string>
#include <algorithm>
#include <mutex>
#include <string_view>

#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/unit_decode.h"
#include "quant/repr.h"
#include "format/hash.h"
#include "lib/api.h"
#include "lib/decode_driver.h"
#include "lib/thread_pool.h"
#include "wcodec/wcodec.h"

static_assert(WCODEC_E_MISMATCH == int(wc::Errc::mismatch), "C error codes mirror wc::Errc");

struct wcodec_archive {
  std::unique_ptr<wc::ContainerReader> reader;
  std::vector<uint64_t> stored;  // per tensor
  // Tensor numbers sorted by (name, number), built on the first lookup: 4
  // bytes a tensor, where a hash map of names cost about 80.
  mutable std::once_flag by_name_once;
  mutable std::vector<uint32_t> by_name;
};

namespace {

void put_err(char* err, size_t len, const std::string& msg) {
  if (!err || len == 0) return;
  size_t n = std::min(len - 1, msg.size());
  std::memcpy(err, msg.data(), n);
  err[n] = 0;
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

}  // namespace

extern "C" {

unsigned wcodec_version_number(void) { return WCODEC_VERSION_NUMBER; }
const char* wcodec_version_string(void) { return wc::version_string(); }
const char* wcodec_error_name(int code) { return wc::errc_name(static_cast<wc::Errc>(code)); }

int wcodec_open(const char* path, wcodec_archive** out, char* err, size_t err_len) {
  if (!path || !out) return WCODEC_E_USAGE;
  *out = nullptr;
  return guarded(err, err_len, [&] {
    auto a = std::make_unique<wcodec_archive>();
    a->reader = std::make_unique<wc::ContainerReader>(path, wc::kReaderChecks);
    const auto& m = a->reader->manifest();
    a->stored.reserve(m.tensors.size());
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      uint64_t s = 0;
      for (uint32_t c = 0; c < m.tensors[i].chunk_count; ++c) s += a->reader->index()[m.tensors[i].global_chunk(c)].stored_size;
      a->stored.push_back(s);
    }
    *out = a.release();
  });
}

void wcodec_close(wcodec_archive* a) { delete a; }

size_t wcodec_tensor_count(const wcodec_archive* a) { return a ? a->reader->manifest().tensors.size() : 0; }

int wcodec_get_tensor_info(const wcodec_archive* a, size_t i, wcodec_tensor_info* out) {
  if (!a || !out || i >= wcodec_tensor_count(a)) return WCODEC_E_USAGE;
  const auto& t = a->reader->manifest().tensors[i];
  out->name = t.name.c_str();
  out->dtype = wc::dtype_name(t.dtype).data();
  out->rank = uint32_t(t.shape.size());
  out->shape = t.shape.data();
  out->byte_size = t.byte_size;
  out->chunk_count = t.chunk_count;
  out->chunk_size = t.chunk_size;
  out->codec = wc::codec_id_valid(t.codec) ? wc::codec_name(static_cast<wc::CodecId>(t.codec)).data() : "unknown";
  out->stored_size = a->stored[i];
  out->representation = wc::repr_name(t.repr).data();
  out->levels = t.lossy() ? uint32_t(t.levels.size()) : 1;
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
  if (it == a->by_name.end() || ts[*it].name != key) return WCODEC_E_USAGE;
  *tensor = *it;  // the first tensor of that name (names repeat only across files)
  return WCODEC_OK;
}

int wcodec_decode_chunk(const wcodec_archive* a, size_t tensor, uint32_t chunk, void* dst, size_t dst_len, char* err,
                        size_t err_len) {
  if (!a || !dst || tensor >= wcodec_tensor_count(a)) return WCODEC_E_USAGE;
  const auto& t = a->reader->manifest().tensors[tensor];
  if (t.lossy() || chunk >= t.chunk_count || dst_len < t.chunk_raw_size(chunk)) return WCODEC_E_USAGE;
  return guarded(err, err_len, [&] {
    wc::decode_one_chunk(t, chunk, a->reader->chunk(t.first_chunk + chunk), static_cast<uint8_t*>(dst), a->reader->path());
  });
}

int wcodec_decode_tensor(const wcodec_archive* a, size_t tensor, void* dst, size_t dst_len, unsigned threads, char* err,
                         size_t err_len) {
  return wcodec_decode_tensor_ex(a, tensor, WCODEC_LEVEL_TOP, nullptr, dst, dst_len, threads, err, err_len);
}

int wcodec_decode_tensor_ex(const wcodec_archive* a, size_t tensor, uint32_t level, const char* dtype, void* dst,
                            size_t dst_len, unsigned threads, char* err, size_t err_len) {
  if (!a || (!dst && dst_len) || tensor >= wcodec_tensor_count(a)) return WCODEC_E_USAGE;
  const auto& t = a->reader->manifest().tensors[tensor];
  const uint32_t levels = t.lossy() ? uint32_t(t.levels.size()) : 1;
  if (level != WCODEC_LEVEL_TOP && level >= levels) return WCODEC_E_USAGE;
  if (level != WCODEC_LEVEL_TOP && level + 1 != levels) return WCODEC_E_USAGE;  // one level in every 2.0 representation
  wc::DType out = t.dtype;
  if (dtype) {
    auto d = wc::dtype_from_name(dtype);
    if (!d) return WCODEC_E_USAGE;
    out = *d;
  }
  if (out != t.dtype && (!t.lossy() || (out != wc::DType::BF16 && out != wc::DType::F16 && out != wc::DType::F32)))
    return WCODEC_E_USAGE;
  const uint64_t need = t.lossy() ? t.elements() * (wc::dtype_bits(out) / 8) : t.byte_size;
  if (dst_len < need) return WCODEC_E_USAGE;
  return guarded(err, err_len, [&] {
    wc::check_decodable(t, a->reader->path());
    const uint64_t units = wc::unit_count(t);
    unsigned n = threads ? threads : wc::default_threads();
    if (n > units) n = units ? unsigned(units) : 1;
    wc::ThreadPool pool(n);
    // unit u starts where the units before it end: chunk_size bytes (exact)
    // or tile_rows rows (lossy) each
    const uint64_t stride = t.lossy() ? uint64_t(t.tile_rows()) * t.cols() * (wc::dtype_bits(out) / 8) : t.chunk_size;
    pool.parallel_for(units, [&](size_t u) {
      thread_local wc::UnitWork ws;  // per pool thread: buffers grow once, not per tile
      std::span<const uint8_t> spans[wc::kMaxParts];
      for (uint32_t c = 0; c < wc::unit_chunks(t); ++c) spans[c] = a->reader->chunk(wc::unit_chunk(t, u, c));
      wc::decode_unit(t, u, spans, ws, out, static_cast<uint8_t*>(dst) + u * stride, a->reader->path());
    });
    if (t.lossy() && out == t.dtype && XXH3_64bits(dst, need) != t.levels.back().xxh3) {
      wc::Error e(wc::Errc::checksum, "the decoded tensor does not match the reconstruction hash its record stores");
      e.at_file(a->reader->path()).at_tensor(t.name).at_offset(t.record_offset);
      throw e;
    }
  });
}

}  // extern "C"
