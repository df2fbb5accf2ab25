// `--codec auto`: which codec a tensor gets.
#pragma once
#include "codec/codec.h"

namespace wc {

// Tries the candidates (float-ans where the dtype allows, then zstd) on a
// sample of the tensor (its first chunk) and returns the one with the fewest
// stored bytes; raw when none is smaller than the input.
CodecId choose_codec(DType t, const uint8_t* sample, size_t n, const EncodeOptions& opt);

}  // namespace wc
