// `--codec auto`: which codec a tensor gets.
#pragma once
#include "codec/codec.h"

namespace wc {

// Tries the candidates (float-ans where the dtype allows, then zstd) on a
// sample of the tensor and returns the one with the fewest stored bytes; raw
// when none is smaller than the input. The sample is up to three chunks
// spread over the tensor (first, middle, last): the first rows of a token
// embedding (padding, unused tokens) are not like the rest, and a choice made
// on them alone stored a 51864x384 F16 embedding 8% larger than float-ans.
// Whether bit 0 (the lowest mantissa bit) is zero in every element of a
// BF16/F16/F32 tensor: float-ans-trim can then leave bits out.
bool low_bits_zero(DType t, const uint8_t* data, uint64_t byte_size);

CodecId choose_codec(DType t, const uint8_t* data, uint64_t byte_size, uint32_t chunk_size, const EncodeOptions& opt);

}  // namespace wc
