// The outlier block of a qrow-outliers tensor (spec/OUTLIERS.md §2-3): where
// a tile's section lies, and its outliers written over the tile's decoded
// values. Shared by the CPU decoder (quant/outliers_repr.cpp) and the CUDA
// kernel (gpu/qrow_kernel_body.h), so both accept and reject the same blocks
// and write the same bits. Every read is checked against the block's size:
// safe on any input. Compiles as C++ and as CUDA.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "quant/qrow_math.h"

namespace wc::qrow {

inline constexpr uint32_t kOutlierRows = 1, kOutlierMask = 2;  // section forms
inline constexpr uint32_t kVarintMax = 0x7FFFFFFFu;

WC_QHD uint32_t ld_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// LEB128 at p[pos..n): at most 5 bytes, value < 2^31. Advances pos.
WC_QHD bool read_varint(const uint8_t* p, size_t n, size_t& pos, uint32_t& v) {
  uint64_t x = 0;
  for (uint32_t k = 0; k < 5; ++k) {
    if (pos >= n) return false;
    const uint8_t b = p[pos++];
    x |= uint64_t(b & 0x7Fu) << (7 * k);
    if (!(b & 0x80u)) {
      if (x > kVarintMax) return false;
      v = uint32_t(x);
      return true;
    }
  }
  return false;
}

// Tile `tile`'s section of a block of n bytes for a tensor of `tiles` tiles:
// [off, off + len). False when the table is invalid: a wrong tile count,
// ends that decrease or pass the block, the last end not the block's end
// (the whole table is checked on every call: a tensor has few tiles).
WC_QHD bool outlier_section(const uint8_t* blk, size_t n, uint64_t tiles, uint64_t tile, size_t& off, size_t& len) {
  if (n < 4 || tile >= tiles || ld_u32(blk) != tiles || (n - 4) / 4 < tiles) return false;
  const size_t base = 4 + 4 * size_t(tiles), body = n - base;
  uint32_t prev = 0, lo = 0, hi = 0;
  for (uint64_t i = 0; i < tiles; ++i) {
    const uint32_t e = ld_u32(blk + 4 + 4 * size_t(i));
    if (e < prev) return false;
    if (i == tile) lo = prev, hi = e;
    prev = e;
  }
  if (prev != body) return false;
  off = base + lo, len = hi - lo;
  return true;
}

// A stored value (dtype `dt`, bits b) as binary32 bits, exactly.
WC_QHD uint32_t widen_bits(uint32_t dt, uint32_t b) {
  if (dt == kF32) return b;
  if (dt == kBF16) return (b & 0xFFFFu) << 16;
  const uint32_t sign = (b & 0x8000u) << 16, e = (b >> 10) & 0x1Fu, m = b & 0x3FFu;
  if (e == 0x1Fu) return sign | 0x7F800000u | (m << 13);  // inf / NaN
  if (e != 0) return sign | ((e + 112u) << 23) | (m << 13);
  if (m == 0) return sign;
  // subnormal half: m x 2^-24, normalised
  uint32_t sh = 0;
  uint32_t mm = m;
  while (!(mm & 0x400u)) mm <<= 1, ++sh;
  return sign | ((113u - sh) << 23) | ((mm & 0x3FFu) << 13);
}

// Writes outlier value bits `b` (dtype dt) at element i of dst (dtype out).
WC_QHD void store_outlier(uint32_t dt, uint32_t out, uint32_t b, uint8_t* dst, size_t i) {
  if (out == dt) {
    const uint32_t nb = dtype_bytes(dt);
    for (uint32_t k = 0; k < nb; ++k) dst[nb * i + k] = uint8_t(b >> (8 * k));
    return;
  }
  store(out, f32_from_bits(widen_bits(dt, b)), dst, i);
}

// Checks one tile's section s[0..len) (rows x cols elements, values of
// dtype dt) against §2: count receives its number of outliers (0 for an
// empty section), vpos where its values start. False when it breaks §2.
WC_QHD bool outlier_section_check(const uint8_t* s, size_t len, uint64_t rows, uint64_t cols, uint32_t dt,
                                  uint64_t& count, size_t& vpos) {
  count = 0;
  vpos = 0;
  if (len == 0) return true;
  const uint32_t vb = dtype_bytes(dt);
  const uint32_t form = s[0];
  size_t pos = 1;
  if (form == kOutlierRows) {
    for (uint64_t r = 0; r < rows; ++r) {
      uint32_t nr = 0;
      if (!read_varint(s, len, pos, nr)) return false;
      uint64_t c = 0;
      for (uint32_t k = 0; k < nr; ++k) {
        uint32_t gap = 0;
        if (!read_varint(s, len, pos, gap)) return false;
        c = (k == 0 ? 0 : c + 1) + gap;
        if (c >= cols) return false;
      }
      count += nr;
    }
  } else if (form == kOutlierMask) {
    const uint64_t n = rows * cols, mb = (n + 7) / 8;
    if (len - pos < mb) return false;
    for (uint64_t k = 0; k < mb; ++k) {
      uint32_t b = s[pos + k];
      if (k + 1 == mb && (n & 7) && (b >> (n & 7))) return false;  // bits past the tile
      for (; b; b &= b - 1) ++count;
    }
    pos += size_t(mb);
  } else {
    return false;
  }
  if (count == 0 || (len - pos) % vb != 0 || (len - pos) / vb != count) return false;
  // every value finite: its exponent field not all ones
  const uint32_t top = dt == kF32 ? 0x7F80u : dt == kBF16 ? 0x7F80u : 0x7C00u;
  for (uint64_t j = 0; j < count; ++j) {
    const uint8_t* v = s + pos + j * vb;
    const uint32_t hi = uint32_t(v[vb - 2]) | uint32_t(v[vb - 1]) << 8;  // the top 16 bits
    if ((hi & top) == top) return false;
  }
  vpos = pos;
  return true;
}

// Applies one tile's section s[0..len) to dst (rows x cols elements of dtype
// `out`, already decoded as qrow); `dt` is the tensor's dtype. An empty
// section changes nothing. False (dst untouched) when the section breaks §2.
WC_QHD bool apply_outlier_section(const uint8_t* s, size_t len, uint64_t rows, uint64_t cols, uint32_t dt,
                                  uint32_t out, uint8_t* dst) {
  uint64_t count = 0;
  size_t pos = 0;
  if (!outlier_section_check(s, len, rows, cols, dt, count, pos)) return false;
  if (count == 0) return true;
  const uint32_t vb = dtype_bytes(dt);
  const uint32_t form = s[0];
  const uint8_t* val = s + pos;
  uint64_t j = 0;
  auto value = [&](uint64_t jj) {
    uint32_t b = 0;
    for (uint32_t k = 0; k < vb; ++k) b |= uint32_t(val[vb * jj + k]) << (8 * k);
    return b;
  };
  if (form == kOutlierRows) {
    size_t q = 1;
    for (uint64_t r = 0; r < rows; ++r) {
      uint32_t nr = 0, gap = 0;
      read_varint(s, len, q, nr);
      uint64_t c = 0;
      for (uint32_t k = 0; k < nr; ++k) {
        read_varint(s, len, q, gap);
        c = (k == 0 ? 0 : c + 1) + gap;
        store_outlier(dt, out, value(j++), dst, size_t(r * cols + c));
      }
    }
  } else {
    const uint64_t mb = (rows * cols + 7) / 8;
    for (uint64_t k = 0; k < mb; ++k)
      for (uint32_t b = s[1 + k]; b; b &= b - 1) {
        uint32_t bit = 0;
        while (!((b >> bit) & 1u)) ++bit;
        store_outlier(dt, out, value(j++), dst, size_t(8 * k + bit));
      }
  }
  return true;
}

}  // namespace wc::qrow
