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
  auto sample_size = [&](CodecId c, uint64_t stop_at) {
    uint64_t total = 0;
    for (size_t k = 0; k < npicks && total < stop_at; ++k) {
      const uint64_t off = picks[k] * chunk_size;
      encode_chunk(c, t, data + off, size_t(std::min<uint64_t>(chunk_size, byte_size - off)), tmp, opt);
      total += tmp.size();
    }
    return total;
  };
  for (CodecId c : {CodecId::float_ans, CodecId::zstd}) {
    if (!codec_supports(c, t)) continue;
    const uint64_t total = sample_size(c, best);
    if (total < best) {
      best = total;
      pick = c;
    }
  }
  // Mantissa bits zero in every element (an F32 tensor of BF16 or F16
  // values): float-ans-trim leaves them out. It makes the file 1.2, which
  // 1.0 and 1.1 readers cannot decode that tensor of, so it is taken only
  // where it pays: a sample at least 2% and 1 KiB smaller than the best of
  // the others (a tensor of zeros or ones, which has zero low bits too and
  // which zstd codes to almost nothing, stays as before).
  if (low_bits_zero(t, data, byte_size)) {
    const uint64_t total = sample_size(CodecId::float_ans_trim, best);
    if (total + 1024 <= best && double(total) <= 0.98 * double(best)) pick = CodecId::float_ans_trim;
  }
  return pick;
}

}  // namespace wc
