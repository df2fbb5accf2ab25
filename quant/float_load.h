// Exact conversions of BF16, F16 and F32 elements to binary32, for encoders
// and error figures (every BF16 and F16 value is a binary32 value).
#pragma once
#include <cstdint>
#include <cstring>

#include "format/dtype.h"

namespace wc {

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, ex = (h >> 10) & 31u, man = h & 0x3FFu;
  uint32_t b;
  if (ex == 31) b = sign | 0x7F800000u | (man << 13);
  else if (ex != 0) b = sign | ((ex + 112u) << 23) | (man << 13);
  else if (man == 0) b = sign;
  else {  // subnormal: normalise
    int e = -1;
    uint32_t m = man;
    do ++e, m <<= 1; while (!(m & 0x400u));
    b = sign | (uint32_t(112 - e) << 23) | ((m & 0x3FFu) << 13);
  }
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
