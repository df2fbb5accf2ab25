// Deterministic weight-like test data (tests and fuzz seeds): roughly
// Gaussian values of scale 0.05 with 1% outliers 40 times larger, as the bit
// patterns of the dtype, so that the float codec really codes them.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "format/dtype.h"

namespace testdata {

inline std::vector<uint8_t> weights(wc::DType t, size_t count, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  auto uni = [&] {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return double(x >> 11) / double(1ull << 53);
  };
  std::vector<uint8_t> out;
  for (size_t i = 0; i < count; ++i) {
    double g = (uni() + uni() + uni() + uni() - 2.0) * 0.05;
    if (uni() < 0.01) g *= 40;
    const float f = static_cast<float>(g);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    switch (t) {
      case wc::DType::F32: for (int k = 0; k < 4; ++k) out.push_back(uint8_t(u >> (8 * k))); break;
      case wc::DType::BF16: out.push_back(uint8_t(u >> 16)); out.push_back(uint8_t(u >> 24)); break;
      case wc::DType::F16: {  // crude float -> half (normal range only; enough for test data)
        const int e = int((u >> 23) & 0xFF) - 127 + 15;
        uint16_t h = uint16_t((u >> 16) & 0x8000);
        if (e > 0 && e < 31) h |= uint16_t(e << 10) | uint16_t((u >> 13) & 0x3FF);
        out.push_back(uint8_t(h)); out.push_back(uint8_t(h >> 8));
        break;
      }
      case wc::DType::F8_E4M3:
      case wc::DType::F8_E5M2: out.push_back(uint8_t((u >> 24) ^ (u >> 17))); break;
      default: out.push_back(uint8_t(u >> 16)); break;
    }
  }
  return out;
}

}  // namespace testdata
