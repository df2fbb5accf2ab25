// container_struct (WC_FUZZ_STRUCT_STREAM=0) and stream_struct (=1): the
// input is a description of a container (fuzz/struct_assembler.h) that is
// assembled with every checksum valid, so the fuzzer reaches the semantic
// checks behind them. Both readers look at every container:
//
//   container_struct: ContainerReader over memory (open, inspect-like walk,
//     every chunk verified, decode_model within the caps), the stored
//     safetensors headers against the tensor records, then the C API
//     (wcodec_open over the same bytes in a memfd, tensor info against the
//     manifest, wcodec_decode_tensor against decode_model's bytes), then the
//     stream reader's verdict.
//   stream_struct: ContainerStreamReader over a memfd (every chunk, finish()),
//     then decode_model through a StreamChunkSource (what `wcodec unpack -`
//     does) within the caps, then the random-access reader's verdict.
//
// Properties: only wc::Error escapes, with a non-ok code; what an accepting
// reader reports is self-consistent; both readers accept the same files; a
// container the assembler broke on purpose (Assembled::must_reject) is
// rejected by both.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "codec/codec.h"
#include "format/bytes.h"
#include "format/hash.h"
#include "format/reader.h"
#include "model/safetensors.h"
#include "format/stream_reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/unit_decode.h"
#include "fuzz/fuzz_common.h"
#include "fuzz/struct_assembler.h"
#include "lib/chunk_sources.h"
#include "lib/decode_driver.h"
#include "lib/thread_pool.h"
#include "wcodec/wcodec.h"

#ifndef WC_FUZZ_STRUCT_STREAM
#define WC_FUZZ_STRUCT_STREAM 0
#endif

namespace {

using wcfuzz::check_error;
namespace sa = wcfuzz::sa;

int the_memfd() {
  static int fd = memfd_create("wcodec-fuzz-struct", MFD_CLOEXEC);
  WC_FUZZ_CHECK(fd >= 0);
  return fd;
}

void fill(int fd, const std::vector<uint8_t>& b) {
  WC_FUZZ_CHECK(ftruncate(fd, 0) == 0);
  size_t done = 0;
  while (done < b.size()) {
    ssize_t w = pwrite(fd, b.data() + done, b.size() - done, off_t(done));
    WC_FUZZ_CHECK(w > 0);
    done += size_t(w);
  }
}

uint64_t files_total(const wc::Manifest& m) {
  uint64_t s = 0;
  for (const auto& f : m.files) s += f.size;
  return s;
}

bool within_caps(const wc::Manifest& m) {
  uint64_t raw = 0;
  for (const auto& t : m.tensors) raw += t.byte_size;
  return raw <= wcfuzz::kMaxDecodeTotal && files_total(m) <= 2 * wcfuzz::kMaxDecodeTotal;
}

// What decode_model hands out, checked file by file against the records.
struct CheckingTarget : wc::AssemblyTarget {
  const wc::Manifest& m;
  std::vector<uint8_t>* keep;  // all files' bytes, when wanted
  std::vector<uint64_t> start;  // each file's offset in *keep
  XXH3_state_t* hs = XXH3_createState();
  int64_t cur = -1;
  uint32_t next = 0;
  uint64_t file_n = 0, total = 0;
  CheckingTarget(const wc::Manifest& mm, std::vector<uint8_t>* k) : m(mm), keep(k) {}
  ~CheckingTarget() override { XXH3_freeState(hs); }
  void begin_file(uint32_t f) override {
    WC_FUZZ_CHECK(cur == -1 && f == next && f < m.files.size());
    cur = f;
    file_n = 0;
    XXH3_64bits_reset(hs);
    start.push_back(keep ? keep->size() : 0);
  }
  void bytes(const uint8_t* p, size_t k) override {
    WC_FUZZ_CHECK(cur >= 0);
    XXH3_64bits_update(hs, p, k);
    file_n += k;
    total += k;
    if (keep) keep->insert(keep->end(), p, p + k);
  }
  void end_file(uint32_t f) override {
    WC_FUZZ_CHECK(int64_t(f) == cur);
    WC_FUZZ_CHECK(file_n == m.files[f].size);
    WC_FUZZ_CHECK(XXH3_64bits_digest(hs) == m.files[f].xxh3);
    cur = -1;
    ++next;
  }
  void done() const {
    WC_FUZZ_CHECK(cur == -1 && next == m.files.size());
    WC_FUZZ_CHECK(total == files_total(m));
  }
};

// What a reader promises about a manifest it accepted (spec §4).
void check_manifest(const wc::Manifest& m) {
  uint64_t chunks = 0;
  for (const auto& t : m.tensors) {
    WC_FUZZ_CHECK(t.shape.size() <= wc::kMaxRank);
    uint64_t el = 1, bits = 0;  // as spec §4.2 says: product(shape), then x bits, no overflow
    bool ovf = false;
    for (uint64_t d : t.shape) ovf |= __builtin_mul_overflow(el, d, &el);
    ovf |= __builtin_mul_overflow(el, uint64_t(wc::dtype_bits(t.dtype)), &bits);
    WC_FUZZ_CHECK(!ovf && bits % 8 == 0 && bits / 8 == t.byte_size);
    WC_FUZZ_CHECK(t.first_chunk == chunks);
    if (t.byte_size == 0) {
      WC_FUZZ_CHECK(t.chunk_count == 0 && t.chunk_size == 0);
    } else if (t.inline_exact()) {  // 1.4: the payload in the record
      WC_FUZZ_CHECK(t.chunk_count == 0 && t.byte_size <= wc::kMaxInlineTensor);
      WC_FUZZ_CHECK(t.payload.size() <= wc::max_stored_size(t.byte_size) && (t.codec != 0 || t.payload.size() == t.byte_size));
    } else {
      WC_FUZZ_CHECK(t.chunk_size % wc::kAlign == 0 && t.chunk_size >= wc::kAlign && t.chunk_size <= wc::kMaxChunkSize);
      WC_FUZZ_CHECK(t.chunk_count == (t.byte_size - 1) / t.chunk_size + 1);
    }
    chunks += t.chunk_count;
  }
  WC_FUZZ_CHECK(chunks == m.chunk_count && chunks <= wc::kMaxChunks);
  uint64_t expect = 0;
  for (const auto& f : m.files) {
    WC_FUZZ_CHECK(f.first_tensor == expect && uint64_t(f.first_tensor) + f.tensor_count <= m.tensors.size());
    expect += f.tensor_count;
    uint64_t size = f.prefix.size();
    for (uint32_t i = 0; i < f.tensor_count; ++i) size += m.tensors[f.first_tensor + i].byte_size;
    WC_FUZZ_CHECK(size == f.size);
    if (f.kind == wc::FileKind::blob) {
      WC_FUZZ_CHECK(f.tensor_count == 1 && f.prefix.empty());
      WC_STRUCT_CHECK("blob_tensor", m.tensors[f.first_tensor].dtype == wc::DType::U8 && m.tensors[f.first_tensor].shape.size() == 1);
    }
    WC_FUZZ_CHECK(!f.name.empty() && f.name.find_first_of(std::string("\\\0", 2)) == std::string::npos &&
                  f.name.front() != '/' && f.name.back() != '/');
  }
  WC_FUZZ_CHECK(expect == m.tensors.size());
  WC_FUZZ_CHECK(m.files.size() <= wc::kMaxFiles && m.tensors.size() <= wc::kMaxTensors);
}

// Spec §4.1: a safetensors file's prefix is its own header, whose tensors are
// the file's records in data order, laid out back to back. (Headers up to
// 16 KiB: the parser builds a tree, too slow under ASan for thousands of
// entries; the readers' own check is linear and sees them all.)
void check_st_headers(const wc::Manifest& m) {
  for (const auto& f : m.files) {
    if (f.kind != wc::FileKind::safetensors || f.prefix.size() > (16u << 10)) continue;
    bool ok = true;
    try {
      auto h = wc::st::parse_header(f.prefix.data(), f.prefix.size(), f.size);
      ok = h.data_start == f.prefix.size() && h.tensors.size() == f.tensor_count;
      uint64_t off = 0;
      for (uint32_t i = 0; ok && i < f.tensor_count; ++i) {
        const auto& s = h.tensors[i];
        const auto& t = m.tensors[f.first_tensor + i];
        ok = s.name == t.name && s.dtype == t.dtype && s.shape == t.shape && s.begin == off && s.end == off + t.byte_size;
        off += t.byte_size;
      }
    } catch (const wc::Error& e) {
      check_error(e);
      ok = false;
    }
    WC_STRUCT_CHECK("st_header", ok);
  }
}

// Spec §4.1: a blob named *.safetensors.index.json that decoded names only
// safetensors files of this container, in its own folder (decode_model
// checks it before it hands the bytes on).
void check_shard_indexes(const wc::Manifest& m, const std::vector<uint8_t>& files, const std::vector<uint64_t>& starts) {
  const std::string suffix = ".safetensors.index.json";
  for (uint32_t fi = 0; fi < m.files.size(); ++fi) {
    const wc::FileRecord& f = m.files[fi];
    if (f.kind != wc::FileKind::blob || f.name.size() < suffix.size() ||
        f.name.compare(f.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    bool ok = true;
    try {
      const size_t slash = f.name.rfind('/');
      const std::string folder = slash == std::string::npos ? "" : f.name.substr(0, slash + 1);
      for (const auto& shard : wc::st::parse_shard_index(files.data() + starts[fi], size_t(f.size))) {
        bool found = false;
        for (const auto& g : m.files) found |= g.kind == wc::FileKind::safetensors && g.name == folder + shard;
        ok &= found;
      }
    } catch (const wc::Error& e) {
      check_error(e);
      ok = false;
    }
    WC_STRUCT_CHECK("shard_index", ok);
  }
}

// The C API over the same bytes (a file this time) must tell the same story.
// `files`: decode_model's output and each file's offset in it, when it decoded.
void check_capi(const std::string& path, const wc::ContainerReader& r, const std::vector<uint8_t>* files,
                const std::vector<uint64_t>* starts) {
  wcodec_archive* a = nullptr;
  char err[512];
  int rc = wcodec_open(path.c_str(), &a, err, sizeof err);
  WC_STRUCT_CHECK("capi_open", rc == WCODEC_OK);
  if (rc != WCODEC_OK) return;
  const wc::Manifest& m = r.manifest();
  WC_FUZZ_CHECK(wcodec_tensor_count(a) == m.tensors.size());
  uint64_t budget = wcfuzz::kMaxDecodeTotal;
  std::vector<uint8_t> buf;
  for (uint32_t fi = 0; fi < m.files.size(); ++fi) {
    const wc::FileRecord& f = m.files[fi];
    uint64_t off = f.prefix.size();
    for (uint32_t k = 0; k < f.tensor_count; ++k) {
      const size_t ti = f.first_tensor + k;
      const wc::TensorRecord& t = m.tensors[ti];
      wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
      WC_FUZZ_CHECK(wcodec_get_tensor_info(a, ti, &info) == WCODEC_OK);
      WC_FUZZ_CHECK(std::memcmp(info.name, t.name.data(), t.name.size()) == 0 && info.name[t.name.size()] == 0);
      WC_FUZZ_CHECK(std::string(info.dtype) == wc::dtype_name(t.dtype));
      WC_FUZZ_CHECK(info.rank == t.shape.size());
      WC_FUZZ_CHECK(t.shape.empty() || std::memcmp(info.shape, t.shape.data(), 8 * t.shape.size()) == 0);
      // an inline tensor is one chunk of byte_size bytes to the API
      const uint32_t api_chunks = t.inline_exact() ? 1 : t.chunk_count;
      const uint32_t api_chunk_size = t.inline_exact() ? uint32_t(t.byte_size) : t.chunk_size;
      WC_FUZZ_CHECK(info.byte_size == t.byte_size && info.chunk_count == api_chunks && info.chunk_size == api_chunk_size);
      WC_FUZZ_CHECK(std::string(info.codec) ==
                    (wc::codec_id_valid(t.codec) ? std::string(wc::codec_name(wc::CodecId(t.codec))) : "unknown"));
      uint64_t stored = t.payload.size();
      for (uint32_t c = 0; c < t.chunk_count; ++c) stored += r.index()[t.first_chunk + c].stored_size;
      WC_FUZZ_CHECK(info.stored_size == stored);
      if (t.name.find('\0') == std::string::npos) {
        size_t found = SIZE_MAX;
        WC_FUZZ_CHECK(wcodec_find_tensor(a, t.name.c_str(), &found) == WCODEC_OK);
        WC_FUZZ_CHECK(found < m.tensors.size() && m.tensors[found].name == t.name);
      }
      if (t.byte_size <= budget) {
        budget -= t.byte_size;
        buf.assign(size_t(t.byte_size), 0);
        rc = wcodec_decode_tensor(a, ti, buf.data(), buf.size(), 1, err, sizeof err);
        if (rc == WCODEC_OK) {
          if (files)
            WC_FUZZ_CHECK(t.byte_size == 0 ||
                          std::memcmp(buf.data(), files->data() + (*starts)[fi] + off, size_t(t.byte_size)) == 0);
          if (api_chunks) {  // the last chunk alone, and with a buffer one byte short
            const uint32_t c = api_chunks - 1, n = t.chunk_raw_size(c);
            std::vector<uint8_t> cb(n);
            WC_FUZZ_CHECK(wcodec_decode_chunk(a, ti, c, cb.data(), n, err, sizeof err) == WCODEC_OK);
            WC_FUZZ_CHECK(std::memcmp(cb.data(), buf.data() + uint64_t(c) * api_chunk_size, n) == 0);
            WC_FUZZ_CHECK(n == 0 || wcodec_decode_chunk(a, ti, c, cb.data(), n - 1, err, sizeof err) == WCODEC_E_USAGE);
          }
        } else {
          WC_FUZZ_CHECK(rc > 0 && rc <= WCODEC_E_MISMATCH && err[0] != 0);
          WC_FUZZ_CHECK(!files);  // decode_model decoded every chunk of it
          // Every chunk passed its checks when the reader opened: only the codec can fail now.
          WC_STRUCT_CHECK("capi_decode_code",
                          rc == (wc::codec_id_valid(t.codec) ? WCODEC_E_CODEC : WCODEC_E_UNSUPPORTED_VERSION));
        }
      }
      off += t.byte_size;
    }
  }
  wcodec_close(a);
}

// Random-access reader. Returns whether it accepts the container: open() and
// every chunk's header, padding and checksum (`why`: its error otherwise).
// With `full`, also decodes and runs the C API on an accepted one.
bool random_reader(const std::vector<uint8_t>& b, bool full, std::string& why) {
  try {
    wc::ContainerReader r(b.data(), b.size(), "fuzz.wcz", wc::kReaderChecks);
    const wc::Manifest& m = r.manifest();
    check_manifest(m);
    WC_FUZZ_CHECK(r.index().size() == m.chunk_count);
    uint64_t stored = 0, end = wc::kHeaderSize + r.header().manifest_stored;
    for (uint32_t i = 0; i < r.index().size(); ++i) {
      const wc::ChunkEntry& e = r.index()[i];
      const wc::TensorRecord& t = r.tensor_of_chunk(i);
      WC_FUZZ_CHECK(i >= t.first_chunk && i - t.first_chunk < t.chunk_count);
      WC_FUZZ_CHECK(e.offset == wc::next_payload_offset(end));  // the layout rule (§5)
      WC_FUZZ_CHECK(e.offset <= b.size() && e.stored_size <= b.size() - e.offset);
      WC_FUZZ_CHECK(e.raw_size == t.chunk_raw_size(i - t.first_chunk));
      WC_FUZZ_CHECK(e.stored_size <= wc::max_stored_size(e.raw_size));
      end = e.offset + e.stored_size;
      stored += e.stored_size;
    }
    WC_FUZZ_CHECK(wc::align_up(end, wc::kAlign) == r.footer().index_offset);
    WC_FUZZ_CHECK(r.overhead_bytes() == b.size() - stored);
    for (uint32_t i = 0; i < r.index().size(); ++i) {
      auto s = r.chunk(i);
      WC_FUZZ_CHECK(s.size() == r.index()[i].stored_size && s.data() == b.data() + r.index()[i].offset);
    }
    if (!full) return true;

    check_st_headers(m);
    std::vector<uint8_t> files;
    std::vector<uint64_t> starts;
    bool decoded = false;
    if (within_caps(m)) {
      try {
        wc::ThreadPool pool(1);
        wc::FileChunkSource src(r);
        CheckingTarget dst(m, &files);
        wc::decode_model(m, src, dst, pool, {});
        dst.done();
        starts = dst.start;
        decoded = true;
        check_shard_indexes(m, files, starts);
      } catch (const wc::Error& e) {
        check_error(e);
      }
    } else {
      std::vector<uint8_t> buf;
      for (uint32_t i = 0; i < r.index().size(); ++i) {
        uint32_t raw = r.index()[i].raw_size;
        if (raw > wcfuzz::kMaxDecodeChunk) continue;
        buf.resize(raw);
        const wc::TensorRecord& t = r.tensor_of_chunk(i);
        try {
          wc::decode_stored_chunk(t, i, r.chunk(i), buf.data(), r.path());
        } catch (const wc::Error& e) {
          check_error(e);
        }
      }
    }
    check_capi("/proc/self/fd/" + std::to_string(the_memfd()), r, decoded ? &files : nullptr, &starts);
    return true;
  } catch (const wc::Error& e) {
    check_error(e);
    why = e.describe();
    return false;
  }
}

// Stream reader over the memfd, structure only. Returns whether it accepts.
bool stream_reader(size_t size, std::string& why) {
  WC_FUZZ_CHECK(lseek(the_memfd(), 0, SEEK_SET) == 0);
  wc::StreamIn in(the_memfd(), "<fuzz-stream>");
  try {
    wc::ContainerStreamReader r(in, wc::kReaderChecks);
    check_manifest(r.manifest());
    std::vector<uint8_t> buf;
    wc::ChunkEntry e;
    uint32_t i = 0;
    while (r.next_chunk(buf, e)) {
      WC_FUZZ_CHECK(buf.size() == e.stored_size);
      WC_FUZZ_CHECK(in.offset() == e.offset + e.stored_size && in.offset() <= size);
      const wc::TensorRecord& t = r.tensor_of_chunk(i);
      WC_FUZZ_CHECK(i >= t.first_chunk && i - t.first_chunk < t.chunk_count);
      WC_FUZZ_CHECK(e.raw_size == t.chunk_raw_size(i - t.first_chunk));
      WC_FUZZ_CHECK(XXH3_64bits(buf.data(), buf.size()) == e.xxh3);
      ++i;
    }
    WC_FUZZ_CHECK(i == r.manifest().chunk_count && r.chunks_read() == i);
    r.finish();
    WC_FUZZ_CHECK(in.offset() == size);
    return true;
  } catch (const wc::Error& e) {
    check_error(e);
    why = e.describe();
    return false;
  }
}

// What `wcodec unpack -` does: decode_model over the stream, then finish().
[[maybe_unused]] void stream_decode(size_t size) {
  WC_FUZZ_CHECK(lseek(the_memfd(), 0, SEEK_SET) == 0);
  wc::StreamIn in(the_memfd(), "<fuzz-stream>");
  try {
    wc::ContainerStreamReader r(in, wc::kReaderChecks);
    const wc::Manifest& m = r.manifest();
    if (!within_caps(m)) return;
    wc::ThreadPool pool(1);
    wc::StreamChunkSource src(r, "<fuzz-stream>");
    CheckingTarget dst(m, nullptr);
    wc::decode_model(m, src, dst, pool, {});
    dst.done();
    r.finish();
    WC_FUZZ_CHECK(in.offset() == size);
  } catch (const wc::Error& e) {
    check_error(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const sa::Assembled a = sa::assemble(sa::parse(data, size));
  fill(the_memfd(), a.bytes);
  std::string r_why, s_why;
#if WC_FUZZ_STRUCT_STREAM
  const bool s_ok = stream_reader(a.bytes.size(), s_why);
  if (s_ok) stream_decode(a.bytes.size());
  const bool r_ok = random_reader(a.bytes, false, r_why);
#else
  const bool r_ok = random_reader(a.bytes, true, r_why);
  const bool s_ok = stream_reader(a.bytes.size(), s_why);
#endif
  if (a.must_reject && (r_ok || s_ok)) {
    const std::string tag = std::string("reject:") + a.why;
    if (!sa::ignored(tag.c_str())) {
      std::fprintf(stderr, "fuzz property failed [%s]: the %s reader accepts a container assembled with: %s\n",
                   tag.c_str(), r_ok && s_ok ? "random-access and stream" : r_ok ? "random-access" : "stream", a.why);
      std::abort();
    }
  }
  if (r_ok != s_ok && !sa::ignored("readers_agree", r_ok ? s_why : r_why)) {
    std::fprintf(stderr, "fuzz property failed [readers_agree]: the random-access reader %s, the stream reader %s\n",
                 r_ok ? "accepts" : ("rejects (" + r_why + ")").c_str(), s_ok ? "accepts" : ("rejects (" + s_why + ")").c_str());
    std::abort();
  }
  return 0;
}

// --- structure-aware mutations (libFuzzer builds only) ---------------------------
#ifdef WC_FUZZ_LIBFUZZER
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using Rng = std::minstd_rand;

// libFuzzer's own mutations on one part of the description, which may grow by `room`.
void mutate_part(std::vector<uint8_t>& v, size_t room) {
  if (v.empty()) v.push_back(0);
  size_t old = v.size();
  v.resize(old + room);
  v.resize(LLVMFuzzerMutate(v.data(), old, v.size()));
}

uint64_t interesting(Rng& rng) {
  static const uint64_t vals[] = {0, 1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 65, 127, 128, 255, 256, 1000, 1024, 4095, 4096,
                                  65535, 65536, 1u << 20, (1u << 28) - 1, 1u << 28, (1u << 28) + 64, 1ull << 31,
                                  (1ull << 32) - 1, 1ull << 32, 1ull << 40, 1ull << 62, 1ull << 63, ~0ull};
  if (rng() % 4 == 0) return rng() % 300;
  return vals[rng() % (sizeof vals / sizeof vals[0])];
}

// One edit of a manifest field, record or count, with the lengths kept straight.
// Makes sure the description keeps its prefixes as given (kFixups bit 5).
void keep_prefixes(sa::Description& d) {
  for (size_t i = 0; i + sa::kTweakSize <= d.tweaks.size() && i < sa::kMaxTweaks * sa::kTweakSize; i += sa::kTweakSize)
    if (d.tweaks[i] % sa::kOpCount == sa::kFixups && (wc::load_u32(d.tweaks.data() + i + 2) & 32)) return;
  d.tweaks.resize(d.tweaks.size() / sa::kTweakSize * sa::kTweakSize);
  if (d.tweaks.size() >= sa::kMaxTweaks * sa::kTweakSize) d.tweaks.resize((sa::kMaxTweaks - 1) * sa::kTweakSize);
  sa::add_tweak(d, sa::kFixups, 0, 32);
}

// One edit of a manifest field, record or count, with the lengths kept
// straight. Returns true when it edited a stored safetensors header.
bool mutate_manifest_field(std::vector<uint8_t>& m, Rng& rng, size_t room) {
  sa::MLayout L;
  if (!sa::parse_layout(m, L) || (L.tensors.empty() && L.files.empty())) {
    mutate_part(m, room);
    return false;
  }
  uint8_t* p = m.data();
  const sa::MTensor* t = L.tensors.empty() ? nullptr : &L.tensors[rng() % L.tensors.size()];
  const sa::MFile* f = L.files.empty() ? nullptr : &L.files[rng() % L.files.size()];
  switch (rng() % 12) {
    case 0:
      if (t && t->rank) wc::store_u64(p + t->shape_at() + 8 * (rng() % t->rank), interesting(rng));
      break;
    case 1:
      if (t) p[t->dtype_at()] = uint8_t(rng() % 22);
      break;
    case 2:
      if (t) p[t->dtype_at() + 1] = uint8_t(rng() % 4);
      break;
    case 3: {
      static const uint32_t cs[] = {0, 64, 128, 192, 256, 4096, 65536, 1u << 20, 1u << 28, (1u << 28) + 64, 65, 100};
      if (t) wc::store_u32(p + t->chunk_size_at(), rng() % 3 ? cs[rng() % (sizeof cs / sizeof cs[0])] : 64 * (1 + rng() % 64));
      break;
    }
    case 4:  // one dimension more or less
      if (t && (rng() % 2 || t->rank == 0) && room >= 8) {
        uint8_t d[8];
        wc::store_u64(d, interesting(rng));
        size_t at = t->shape_at() + 8 * t->rank;
        p[t->dtype_at() + 2] = uint8_t(t->rank + 1);
        m.insert(m.begin() + long(at), d, d + 8);
      } else if (t && t->rank) {
        size_t at = t->shape_at() + 8 * (t->rank - 1);
        p[t->dtype_at() + 2] = uint8_t(t->rank - 1);
        m.erase(m.begin() + long(at), m.begin() + long(at + 8));
      }
      break;
    case 5:  // codec parameters
      if (t && room >= 4) {
        size_t plen = wc::load_u16(p + t->params_at());
        size_t k = 1 + rng() % 4;
        wc::store_u16(p + t->params_at(), uint16_t(plen + k));
        std::vector<uint8_t> b(k);
        for (auto& x : b) x = uint8_t(rng());
        m.insert(m.begin() + long(t->params_at() + 2 + plen), b.begin(), b.end());
      }
      break;
    case 6:  // a file's prefix (the stored safetensors header), any length
      if (f) {
        std::vector<uint8_t> pre(p + f->prefix_at(), p + f->prefix_at() + f->prefix_len);
        mutate_part(pre, std::min<size_t>(room, 256));
        wc::store_u64(p + f->plen_at(), pre.size());
        size_t at = f->prefix_at();
        m.erase(m.begin() + long(at), m.begin() + long(at + f->prefix_len));
        m.insert(m.begin() + long(at), pre.begin(), pre.end());
        return true;
      }
      break;
    case 7:  // a file's range or kind
      if (f) {
        switch (rng() % 3) {
          case 0: wc::store_u32(p + f->first_at(), uint32_t(f->first + (rng() % 2 ? 1 : -1))); break;
          case 1: wc::store_u32(p + f->count_at(), uint32_t(f->count + (rng() % 2 ? 1 : -1))); break;
          default: p[f->at] ^= 1; break;
        }
      }
      break;
    case 8:  // a count in the manifest header
      wc::store_u32(p + 4 * (rng() % 3), uint32_t(rng() % 2 ? wc::load_u32(p + 4 * (rng() % 3)) + (rng() % 2 ? 1 : -1)
                                                              : interesting(rng)));
      break;
    case 9:  // a name
      if (t && room >= 8) {
        size_t at = t->at + 2;
        std::vector<uint8_t> name(p + at, p + at + t->name_len);
        mutate_part(name, 8);
        name.resize(std::min<size_t>(name.size(), 0xFFFF));
        wc::store_u16(p + t->at, uint16_t(name.size()));
        m.erase(m.begin() + long(at), m.begin() + long(at + t->name_len));
        m.insert(m.begin() + long(at), name.begin(), name.end());
      }
      break;
    case 11:  // a tensor of one chunk of 2^28 bytes (the largest a reader must take)
      if (t && t->rank && wc::dtype_from_id(t->dtype) && (8u << 28) % wc::dtype_bits(*wc::dtype_from_id(t->dtype)) == 0) {
        wc::store_u64(p + t->shape_at(), (8ull << 28) / wc::dtype_bits(*wc::dtype_from_id(t->dtype)));
        for (unsigned r = 1; r < t->rank; ++r) wc::store_u64(p + t->shape_at() + 8 * r, 1);
        wc::store_u32(p + t->chunk_size_at(), 1u << 28);
      }
      break;
    default:  // an extension record at the end
      if (L.tensors_end + 4 <= m.size() && room >= 16) {
        wc::store_u32(p + L.tensors_end, wc::load_u32(p + L.tensors_end) + 1);
        wc::ByteWriter w;
        w.u16(uint16_t(rng()));
        w.u16(uint16_t(rng() % 4 == 0 ? rng() : rng() % 2));
        uint32_t len = rng() % 8;
        w.u32(len);
        for (uint32_t i = 0; i < len; ++i) w.u8(uint8_t(rng()));
        m.insert(m.end(), w.buf.begin(), w.buf.end());
      }
      break;
  }
  return false;
}

void mutate_tweaks(std::vector<uint8_t>& tw, Rng& rng, size_t room) {
  const size_t n = tw.size() / sa::kTweakSize;
  switch (rng() % 4) {
    case 0:
    case 1:
      if (room >= sa::kTweakSize && n < sa::kMaxTweaks) {
        sa::Description d;
        uint32_t v = rng() % 2 ? uint32_t(interesting(rng)) : uint32_t(rng() % 2 ? 1 : -1) * uint32_t(1 + rng() % 64);
        if (rng() % 8 == 0) v = (rng() % 2 ? 0x80000000u : 0u) | (1 + rng() % 20000);  // clone counts
        sa::add_tweak(d, uint8_t(rng() % sa::kOpCount), uint8_t(rng() % 4), v);
        tw.resize(n * sa::kTweakSize);
        tw.insert(tw.end(), d.tweaks.begin(), d.tweaks.end());
        break;
      }
      [[fallthrough]];
    case 2:
      if (n) {
        size_t k = rng() % n;
        tw.erase(tw.begin() + long(k * sa::kTweakSize), tw.begin() + long((k + 1) * sa::kTweakSize));
        break;
      }
      [[fallthrough]];
    default:
      mutate_part(tw, std::min<size_t>(room, sa::kTweakSize));
      break;
  }
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  Rng rng(seed);
  const unsigned pick = rng() % 100;
  if (pick < 10 || size == 0) return LLVMFuzzerMutate(data, size, max_size);
  sa::Description d = sa::parse(data, size);
  const size_t room = std::min<size_t>(max_size > size ? max_size - size : 0, 4096);
  if (pick < 40) {
    mutate_part(d.manifest, room);
  } else if (pick < 60) {
    if (mutate_manifest_field(d.manifest, rng, room)) keep_prefixes(d);
  } else if (pick < 78 && !d.chunks.empty()) {
    mutate_part(d.chunks[rng() % d.chunks.size()], room);
  } else if (pick < 92) {
    mutate_tweaks(d.tweaks, rng, room);
  } else if (!d.chunks.empty()) {
    size_t i = rng() % d.chunks.size(), j = rng() % d.chunks.size();
    switch (rng() % 3) {
      case 0: if (d.chunks[i].size() <= room) d.chunks.insert(d.chunks.begin() + long(i), d.chunks[j]); break;
      case 1: d.chunks.erase(d.chunks.begin() + long(i)); break;
      default: std::swap(d.chunks[i], d.chunks[j]); break;
    }
  } else {
    d.chunks.emplace_back();
  }
  std::vector<uint8_t> out = sa::serialize(d);
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
#endif  // WC_FUZZ_LIBFUZZER
