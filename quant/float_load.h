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

// n elements of dtype t (BF16, F16 or F32) at src, as binary32.
inline void load_floats(DType t, const uint8_t* src, size_t n, float* out) {
  if (t == DType::F32) {
    std::memcpy(out, src, n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = uint16_t(src[2 * i] | src[2 * i + 1] << 8);
      out[i] = t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
}

}  // namespace wc
