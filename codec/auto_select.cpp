#include "codec/auto_select.h"

#include <algorithm>

namespace wc {

bool low_bits_zero(DType t, const uint8_t* data, uint64_t byte_size) {
  if (t != DType::F32 && t != DType::F16 && t != DType::BF16) return false;
  if (byte_size == 0) return false;
  if (t == DType::F32) {
    uint32_t any = 0;
    for (uint64_t i = 0; i + 4 <= byte_size; i += 4) any |= uint32_t(data[i]) | uint32_t(data[i + 1]) << 8;
    return (any & 1u) == 0;  // the lowest mantissa bit (bit 0 of the low byte)
  }
  uint32_t any = 0;
  for (uint64_t i = 0; i + 2 <= byte_size; i += 2) any |= data[i];
  return (any & 1u) == 0;
}

CodecId choose_codec(DType t, const uint8_t* data, uint64_t byte_size, uint32_t chunk_size, const EncodeOptions& opt) {
  const uint64_t chunks = (byte_size + chunk_size - 1) / chunk_size;
  uint64_t picks[3] = {0, chunks / 2, chunks - 1};
  const size_t npicks = size_t(std::unique(picks, picks + 3) - picks);
  uint64_t raw = 0;
  for (size_t k = 0; k < npicks; ++k) raw += std::min<uint64_t>(chunk_size, byte_size - picks[k] * chunk_size);
  uint64_t best = raw;
  CodecId pick = CodecId::raw;
  std::vector<uint8_t> tmp;
  // Mantissa bits zero in every element (an F32 tensor of BF16 or F16
  // values): float-ans-trim leaves them out, and is then never larger than
  // float-ans; otherwise it is float-ans, and files stay readable by 1.0.
  const CodecId fans = low_bits_zero(t, data, byte_size) ? CodecId::float_ans_trim : CodecId::float_ans;
  for (CodecId c : {fans, CodecId::zstd}) {
    if (!codec_supports(c, t)) continue;
    uint64_t total = 0;
    for (size_t k = 0; k < npicks && total < best; ++k) {
      const uint64_t off = picks[k] * chunk_size;
      encode_chunk(c, t, data + off, size_t(std::min<uint64_t>(chunk_size, byte_size - off)), tmp, opt);
      total += tmp.size();
    }
    if (total < best) {
      best = total;
      pick = c;
    }
  }
  return pick;
}

}  // namespace wc
