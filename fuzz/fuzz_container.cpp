// Container reader over memory: open (header, footer, manifest, index), an
// inspect-like walk over the records, then every chunk verified and decoded
// through the same driver unpack and verify use.
#include <cstddef>
#include <cstdint>

#include "codec/codec.h"
#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/unit_decode.h"
#include "fuzz/fuzz_common.h"
#include "lib/chunk_sources.h"
#include "lib/decode_driver.h"
#include "lib/thread_pool.h"

namespace {

struct NullTarget : wc::AssemblyTarget {
  uint64_t n = 0;
  void begin_file(uint32_t) override {}
  void bytes(const uint8_t*, size_t k) override { n += k; }
  void end_file(uint32_t) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    wc::ContainerReader r(data, size, "fuzz.wcz", wc::kReaderChecks);
    const wc::Manifest& m = r.manifest();
    WC_FUZZ_CHECK(r.index().size() == m.chunk_count);
    // What inspect computes, with the invariants open() promises.
    uint64_t stored = 0, raw_total = 0, files_total = 0;
    for (const auto& f : m.files) {
      files_total += f.size;
      WC_FUZZ_CHECK(uint64_t(f.first_tensor) + f.tensor_count <= m.tensors.size());
      for (uint32_t i = 0; i < f.tensor_count; ++i) {
        const wc::TensorRecord& t = m.tensors[f.first_tensor + i];
        (void)t.elements();
        (void)wc::dtype_name(t.dtype);
        if (wc::codec_id_valid(t.codec)) (void)wc::codec_name(static_cast<wc::CodecId>(t.codec));
        raw_total += t.byte_size;
        for (uint32_t c = 0; c < t.chunk_count; ++c) {
          const wc::ChunkEntry& e = r.index()[t.global_chunk(c)];
          WC_FUZZ_CHECK(e.offset >= wc::kHeaderSize && e.offset <= size && e.stored_size <= size - e.offset);
          WC_FUZZ_CHECK(e.raw_size == t.chunk_raw_size(c));
          stored += e.stored_size;
        }
      }
    }
    WC_FUZZ_CHECK(stored <= size);
    WC_FUZZ_CHECK(r.overhead_bytes() == size - stored);
    if (raw_total <= wcfuzz::kMaxDecodeTotal && files_total <= 2 * wcfuzz::kMaxDecodeTotal) {
      wc::ThreadPool pool(1);
      wc::FileChunkSource src(r);
      NullTarget dst;
      wc::decode_model(m, src, dst, pool, {});
      WC_FUZZ_CHECK(dst.n == files_total);
    } else {
      // Too large to decode quickly: still verify every chunk and decode the small ones.
      std::vector<uint8_t> buf;
      for (uint32_t i = 0; i < r.index().size(); ++i) {
        auto s = r.chunk(i);
        const wc::TensorRecord& t = r.tensor_of_chunk(i);
        uint32_t raw = r.index()[i].raw_size;
        if (raw > wcfuzz::kMaxDecodeChunk) continue;
        buf.resize(raw);
        wc::decode_stored_chunk(t, i, s, buf.data(), r.path());
      }
    }
  } catch (const wc::Error& e) {
    wcfuzz::check_error(e);
  }
  return 0;
}
