#include "codec/auto_select.h"

#include <algorithm>

namespace wc {

CodecId choose_codec(DType t, const uint8_t* data, uint64_t byte_size, uint32_t chunk_size, const EncodeOptions& opt) {
  const uint64_t chunks = (byte_size + chunk_size - 1) / chunk_size;
  uint64_t picks[3] = {0, chunks / 2, chunks - 1};
  const size_t npicks = size_t(std::unique(picks, picks + 3) - picks);
  uint64_t raw = 0;
  for (size_t k = 0; k < npicks; ++k) raw += std::min<uint64_t>(chunk_size, byte_size - picks[k] * chunk_size);
  uint64_t best = raw;
  CodecId pick = CodecId::raw;
  std::vector<uint8_t> tmp;
  for (CodecId c : {CodecId::float_ans, CodecId::zstd}) {
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
