// Deterministic weight-like test data (tests and fuzz seeds): roughly
// Gaussian values of scale 0.05 with 1% outliers 40 times larger, as the bit
// patterns of the dtype, so that the float codec really codes them.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "format/dtype.h"

namespace testdata {

// Appends float `f` as the bit pattern of `t` (F8: bits mixed from f's, not a conversion).
inline void put(wc::DType t, float f, std::vector<uint8_t>& out) {
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

struct Rng {
  uint64_t x;
  explicit Rng(uint64_t seed) : x(seed * 0x9E3779B97F4A7C15ull + 1) {}
  double uni() {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return double(x >> 11) / double(1ull << 53);
  }
  double weight() {
    double g = (uni() + uni() + uni() + uni() - 2.0) * 0.05;
    if (uni() < 0.01) g *= 40;
    return g;
  }
};

inline std::vector<uint8_t> weights(wc::DType t, size_t count, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> out;
  for (size_t i = 0; i < count; ++i) put(t, static_cast<float>(rng.weight()), out);
  return out;
}

// A [rows, cols] matrix of weights() whose channels differ in scale, as real
// layers do: every column (or every row, by_rows) times 2^s, s uniform in
// [-3, 3] per channel.
inline std::vector<uint8_t> weights_channels(wc::DType t, size_t rows, size_t cols, bool by_rows, uint64_t seed) {
  Rng rng(seed), srng(seed + 7777);
  std::vector<double> sc(by_rows ? rows : cols);
  for (auto& v : sc) v = std::exp2(srng.uni() * 6.0 - 3.0);
  std::vector<uint8_t> out;
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) put(t, static_cast<float>(rng.weight() * sc[by_rows ? r : c]), out);
  return out;
}

}  // namespace testdata
