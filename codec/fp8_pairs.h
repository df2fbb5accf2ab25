// FP8 pairs (float-ans mode 6, codec 8 float-ans-pairs; spec/FLOAT_ANS.md
// §2.4): two consecutive FP8 elements recoded as one 16-bit word, both
// exponents in its top bits, the signs and mantissas below, so that one rANS
// step of F16's geometry decodes two elements. float-ans takes one step per
// symbol whatever the symbol's width, and an FP8 element is a whole symbol:
// its decoders run at about 1.5 G elements/s, below zstd -3's Huffman
// literals; a pair's symbol (both exponents, the mantissas raw) costs a
// little size (Whisper tiny.en as E5M2: 0.9%, E4M3: 0.8%) for a step per two
// elements. The framing (float-ans calls) is in codec.cpp; this is the
// layout and the per-element arithmetic.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/dtype.h"

namespace wc::pairs {

inline constexpr uint8_t kMode = 6;
// mode byte, the odd tail element, flags, a reserved byte
inline constexpr size_t kHeadBytes = 4;
// flags bit 0: a per-channel shift (mode 3's header and list, §2.1) follows
// the head and applies to the elements once paired back
inline constexpr uint8_t kFlagShift = 1;

// Whether mode 6 is defined for t: F8_E4M3 and F8_E5M2.
bool supports(DType t) noexcept;
// Exponent bits E of an FP8 dtype (5 for E5M2, 4 for E4M3); M = 7 - E.
unsigned exp_bits(DType t) noexcept;

// The pair word of elements a (even index) and b (§2.4), from bit 15 down:
// sign(a), exp(a), exp(b), the mantissas' bits interleaved from the top
// (a's, then b's, of each weight), sign(b). The word's top bits are what
// float-ans codes as the symbol: both exponents, and as many of the
// mantissas' top bits as pay.
// (M = 7 - E <= 3 bits: the loops unroll into shifts and masks, which the
// compiler vectorises over 16-bit lanes)
template <unsigned M>
inline uint32_t spread(uint32_t m) {  // bit j of m to bit 2j
  uint32_t r = 0;
  for (unsigned j = 0; j < M; ++j) r |= ((m >> j) & 1u) << (2 * j);
  return r;
}
template <unsigned M>
inline uint32_t gather(uint32_t x) {  // bit 2j of x to bit j
  uint32_t r = 0;
  for (unsigned j = 0; j < M; ++j) r |= ((x >> j) & (1u << j));
  return r;
}
template <unsigned E>
inline uint16_t pack(uint32_t a, uint32_t b) {
  constexpr unsigned M = 7 - E;
  constexpr uint32_t em = (1u << E) - 1u, mm = (1u << M) - 1u;
  return uint16_t((a >> 7) << 15 | ((a >> M) & em) << (15 - E) | ((b >> M) & em) << (15 - 2 * E) |
                  spread<M>(a & mm) << 2 | spread<M>(b & mm) << 1 | (b >> 7));
}
// Its inverse: the two elements as one little-endian 16-bit value (a in
// the low byte), so a decoder rewrites each word in place.
template <unsigned E>
inline uint16_t unpack(uint16_t p) {
  constexpr unsigned M = 7 - E;
  constexpr uint32_t em = (1u << E) - 1u;
  const uint32_t a = uint32_t(p >> 15) << 7 | ((p >> (15 - E)) & em) << M | gather<M>(p >> 2);
  const uint32_t b = (p & 1u) << 7 | ((p >> (15 - 2 * E)) & em) << M | gather<M>(p >> 1);
  return uint16_t(a | b << 8);
}

// The pair words of n elements (n / 2 words, little-endian) into out.
void pack_all(DType t, const uint8_t* src, size_t n, uint8_t* out) noexcept;
// In place: `words` pair words at dst become 2 * words elements.
void unpack_all(DType t, uint8_t* dst, size_t words) noexcept;

// The 4-byte head of a chunk of n elements (the tail: element n - 1 when n
// is odd, else 0).
void write_head(const uint8_t* src, size_t n, uint8_t flags, uint8_t* head) noexcept;
// Whether src is a valid head for a chunk of n elements of t (t supported,
// n >= 2, at least kHeadBytes, known flags, the reserved byte 0, the tail 0
// when n is even); its flags into *flags.
bool parse_head(DType t, const uint8_t* src, size_t src_n, size_t n, uint8_t* flags) noexcept;

}  // namespace wc::pairs
