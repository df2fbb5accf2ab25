// safetensors header parser: any bytes as a whole file. On success, checks
// the guarantees pack relies on (sizes, order, contiguity, exact length).
#include <cstddef>
#include <cstdint>

#include "model/safetensors.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    wc::st::Header h = wc::st::parse_header(data, size, size);
    WC_FUZZ_CHECK(h.data_start == 8 + h.json_len);
    WC_FUZZ_CHECK(h.data_start <= size);
    WC_FUZZ_CHECK(h.json.size() == h.json_len);
    uint64_t pos = 0;
    for (const auto& t : h.tensors) {
      WC_FUZZ_CHECK(t.begin == pos);  // no holes, no overlaps
      WC_FUZZ_CHECK(t.end >= t.begin);
      WC_FUZZ_CHECK(t.end - t.begin == wc::st::tensor_nbytes(t.dtype, t.shape));
      WC_FUZZ_CHECK(t.shape.size() <= wc::st::kMaxRank);
      pos = t.end;
    }
    WC_FUZZ_CHECK(h.data_start + pos == size);  // file length exact
    for (size_t i = 1; i < h.tensors.size(); ++i)
      for (size_t j = i >= 8 ? i - 8 : 0; j < i; ++j) WC_FUZZ_CHECK(h.tensors[i].name != h.tensors[j].name);
  } catch (const wc::Error& e) {
    wcfuzz::check_error(e);
  }
  return 0;
}
