#include "codec/auto_select.h"

namespace wc {

CodecId choose_codec(DType t, const uint8_t* sample, size_t n, const EncodeOptions& opt) {
  size_t best = n;
  CodecId pick = CodecId::raw;
  std::vector<uint8_t> tmp;
  for (CodecId c : {CodecId::float_ans, CodecId::zstd}) {
    if (!codec_supports(c, t)) continue;
    encode_chunk(c, t, sample, n, tmp, opt);
    if (tmp.size() < best) {
      best = tmp.size();
      pick = c;
    }
  }
  return pick;
}

}  // namespace wc
