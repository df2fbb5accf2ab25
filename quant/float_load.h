// Exact conversions of BF16, F16 and F32 elements to binary32, for encoders
// and error figures (every BF16 and F16 value is a binary32 value).
#pragma once
#include <cstdint>
#include <cstring>

#include "format/dtype.h"
#include "quant/qrow_math.h"

namespace wc {

inline float f16_to_f32(uint16_t h) {
  const uint32_t b = qrow::f16_to_f32_bits(h);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t b = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// n elements of dtype t (BF16, F16 or F32) at src, as binary32 (the bits of
// f16_to_f32 and bf16_to_f32, NaN payloads included; an AVX2 loop where the
// CPU has it: the encoders convert every sampled row of every plan).
void load_floats(DType t, const uint8_t* src, size_t n, float* out);

// The inverse for decoders: n binary32 values, none of them NaN, as dtype t
// (BF16, F16 or F32, little-endian) at dst, rounded to nearest even: the
// bits of qrow::store (an AVX2 + F16C loop where the CPU has it: vcvtps2ph
// is IEEE's conversion, as qrow::f32_to_f16_rne is for every value but NaN).
void store_floats(DType t, const float* v, size_t n, uint8_t* dst);

}  // namespace wc
