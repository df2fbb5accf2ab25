// vq per-element arithmetic (spec/VQ.md §2), shared by the CPU decoders
// (quant/vq_repr.cpp) and the CUDA kernel (gpu/vq_kernel_body.h): the row's
// step (qrow's grid) times one codebook value (or, additive, the binary32 sum
// of one value of each of two codebooks), one binary32 multiplication.
#pragma once
#include "quant/qrow_math.h"

namespace wc::vq {

using qrow::kBF16;
using qrow::kF16;
using qrow::kF32;

// Codebook value j (F32, little-endian; any alignment).
WC_QHD float cb_value(const uint8_t* cb, size_t j) {
  const uint8_t* p = cb + 4 * j;
  return qrow::f32_from_bits(uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
}

// y = step * cb, rounded to nearest even (no contraction on the device).
WC_QHD float value_of(float step, float cbv) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(step, cbv);
#else
  return step * cbv;
#endif
}

// a + b rounded to nearest even (no contraction on the device).
WC_QHD float sum_of(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// Where a tile's rows find their codebook (VQ.md §1-2). k codes are valid.
// Flat (k2 = 0): each book holds k entries of d values, code u is entry u.
// Additive (k2 > 0): each book holds k1 = k / k2 entries, then k2 more; code
// u is the sum of entry u / k2 of the first and entry u mod k2 of the second.
// Tile row r (row row0 + r of the tensor) uses book (row0 + r) >> shift when
// shift > 0, else book 0.
struct Books {
  const uint8_t* cb;  // F32, little-endian, any alignment
  uint32_t k, d, shift;
  uint64_t row0;
  uint32_t k2;
};

// Entries of one book.
WC_QHD uint32_t book_entries(const Books& b) { return b.k2 ? b.k / b.k2 + b.k2 : b.k; }

// Value j of code u (u < k) in the book of tile row r.
WC_QHD float book_value(const Books& b, uint64_t r, uint32_t u, uint32_t j) {
  const uint64_t book = b.shift ? (b.row0 + r) >> b.shift : 0;
  const size_t base = size_t(book) * book_entries(b);
  if (!b.k2) return cb_value(b.cb, (base + u) * b.d + j);
  const uint32_t i = u / b.k2, m = u - i * b.k2;
  return sum_of(cb_value(b.cb, (base + i) * b.d + j), cb_value(b.cb, (base + b.k / b.k2 + m) * b.d + j));
}

// Element i = (r, c) of rows [0, n) of a tile into dst (dtype out): e the
// rows' step exponents, codes (code_bytes 1 or 2, one per group of d). False
// when the element's code is not below k.
WC_QHD bool element(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes, const Books& b,
                    uint64_t cols, uint64_t i, uint32_t out, uint8_t* dst) {
  const uint64_t r = i / cols, c = i - r * cols, g = r * (cols / b.d) + c / b.d;
  const uint32_t u = code_bytes == 1 ? uint32_t(codes[g]) : uint32_t(codes[2 * g] | codes[2 * g + 1] << 8);
  if (u >= b.k) return false;
  qrow::store(out, value_of(qrow::step_of(base_exp, e[r]), book_value(b, r, u, uint32_t(c % b.d))), dst, size_t(i));
  return true;
}

}  // namespace wc::vq
