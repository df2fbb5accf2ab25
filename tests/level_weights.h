// Weight-like test tensors for the level tests (exact top layer,
// refinement levels): Student-t values with per-row scales, special values
// of each dtype, and the pack options those tests share.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "format/bytes.h"
#include "format/dtype.h"
#include "lib/api.h"
#include "quant/qrow_math.h"
#include "st_builder.h"

namespace wgen {

using wc::DType;

// xorshift64*: weight-like values (normal / sqrt(chi2_5 / 5), Student t(5))
// with per-row scales 0.02 x 2^[-2, 2).
struct Rng {
  uint64_t x;
  explicit Rng(uint64_t seed) : x(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    return x * 0x2545F4914F6CDD1Dull;
  }
  double uni() { return double(next() >> 11) / double(1ull << 53); }
  double normal() { return std::sqrt(-2.0 * std::log(1.0 - uni())) * std::cos(6.283185307179586 * uni()); }
};

inline std::vector<uint8_t> weights(DType t, uint64_t rows, uint64_t cols, uint64_t seed) {
  Rng g(seed);
  std::vector<uint8_t> out(rows * cols * (wc::dtype_bits(t) / 8));
  for (uint64_t r = 0; r < rows; ++r) {
    const double scale = 0.02 * std::exp2(4.0 * g.uni() - 2.0);
    for (uint64_t c = 0; c < cols; ++c) {
      double chi = 0;
      for (int k = 0; k < 5; ++k) chi += std::pow(g.normal(), 2);
      const float v = float(g.normal() / std::sqrt(chi / 5.0) * scale);
      uint32_t b;
      std::memcpy(&b, &v, 4);
      const uint64_t i = r * cols + c;
      if (t == DType::F32) wc::store_u32(out.data() + 4 * i, b);
      else wc::store_u16(out.data() + 2 * i, t == DType::BF16 ? wc::qrow::f32_to_bf16_rne(b) : wc::qrow::f32_to_f16_rne(b));
    }
  }
  return out;
}

// Every kind of value the dtype has, at scattered places: ±0, the smallest
// and largest subnormals, the largest finite, ±Inf, quiet and signalling
// NaNs with payloads.
inline void add_specials(DType t, std::vector<uint8_t>& v) {
  const std::vector<uint32_t> s =
      t == DType::F32 ? std::vector<uint32_t>{0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF,
                                              0x7F800000, 0xFF800000, 0x7FC00001, 0xFFC12345, 0x7F800001, 0xFFBFFFFF}
      : t == DType::F16 ? std::vector<uint32_t>{0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
                                                0x7E01, 0xFE55, 0x7C01, 0xFDFF}
                        : std::vector<uint32_t>{0x0000, 0x8000, 0x0001, 0x807F, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80,
                                                0x7FC1, 0xFFC5, 0x7F81, 0xFFBF};
  const size_t eb = wc::dtype_bits(t) / 8, n = v.size() / eb;
  for (size_t k = 0; k < 3 * s.size(); ++k) {
    const size_t i = (k * 7919 + 13) % n;
    if (eb == 4) wc::store_u32(v.data() + 4 * i, s[k % s.size()]);
    else wc::store_u16(v.data() + 2 * i, uint16_t(s[k % s.size()]));
  }
}

// A rows x cols tensor of weights() named "<dtype>.<name>", with
// add_specials()'s values where `specials`.
inline stb::StTensor tensor_of(DType t, const std::string& name, uint64_t rows, uint64_t cols, uint64_t seed,
                               bool specials = false) {
  auto w = weights(t, rows, cols, seed);
  if (specials) add_specials(t, w);
  return {std::string(wc::dtype_name(t)) + "." + name, t, {rows, cols}, std::move(w)};
}

inline wc::PackOptions exact_options(double bits) {
  wc::PackOptions o;
  o.bits = bits;
  o.exact = true;
  o.min_elements = 256;
  o.threads = 2;
  return o;
}

// Hostile versions of a coded payload, in turn a flipped bit (kind 0), a cut
// (1) and an extra byte (2), each in a heap buffer of exactly its size so that
// a sanitizer sees any stray access: f(buf, kind) for each of `trials`.
template <class F>
void for_mutations(const std::vector<uint8_t>& payload, uint64_t seed, int trials, F&& f) {
  Rng g(seed);
  for (int trial = 0; trial < trials; ++trial) {
    std::vector<uint8_t> p = payload;
    const int kind = trial % 3;
    if (kind == 0) p[g.next() % p.size()] ^= uint8_t(1u << (g.next() % 8));
    else if (kind == 1) p.resize(g.next() % p.size());
    else p.push_back(uint8_t(g.next()));
    std::vector<uint8_t> buf(p.begin(), p.end());
    f(buf, kind);
  }
}

}  // namespace wgen
