// The float_ans encoder's statistics of a chunk: the histogram of its top
// bits (sign + exponent + kmax mantissa bits), counted in full or, for large
// chunks, on a sample whose missing symbols are then marked present.
// Encoder-only (codec/float_ans.cpp); nothing here is normative.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "format/bytes.h"

namespace wc::fans::detail {

// Large chunks (kSampleMin elements or more) whose symbol the encoder
// chooses (not forced, as FP8 pairs force theirs: see encode_impl) count a
// sample (runs of 64 elements, see in_sample in float_ans_enc.h) and price
// symbols of at most kSampleMaxK mantissa bits; a symbol that occurs only
// outside the sample is then given a count of 1 (top_histogram), so every
// value stays codable: exact presence, sampled frequencies (+0.0007
// bits/weight on generated BF16).
inline constexpr uint32_t kSampleMaxK = 4;
inline constexpr uint64_t kSampleMin = uint64_t(1) << 16;

// Histogram of the top `topbits` bits of n W-bit values into top (indexed by
// v >> (W - topbits)): of every element, or with `sample` of the sample with
// every key that occurs anywhere at least 1. Also the occupied magnitude keys
// widened to whole k = 0 keys as [*ma, *mb), so that every coarser level's
// range is the pair-sum image of this one. Entries outside [ma, mb) (both
// signs) are never written and must not be read. *any: the OR of every
// value (the pass that finds the range reads them all; trim needs it). fast:
// use the AVX2 kernels (identical results).
void top_histogram(unsigned W, const uint8_t* src, uint64_t n, uint32_t topbits, uint32_t kmax, bool fast,
                   bool sample, uint32_t* ma, uint32_t* mb, uint32_t* any, std::vector<uint64_t>& top);

// Makes v at least n long. The thread-local work vectors only grow: a resize
// to a smaller size and back would zero-fill the regrown part on every chunk
// of alternating sizes (each user writes what it later reads).
template <class T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// Element i of n W-bit little-endian values.
template <unsigned W>
inline uint32_t load_val(const uint8_t* src, uint64_t i) {
  if constexpr (W == 8) return src[i];
  else if constexpr (W == 16) return load_u16(src + 2 * i);
  else return load_u32(src + 4 * i);
}

}  // namespace wc::fans::detail
