#include "codec/fp8_pairs.h"

#include <cstring>

#include "platform/cpu.h"

namespace wc::pairs {

bool supports(DType t) noexcept { return t == DType::F8_E4M3 || t == DType::F8_E5M2; }
unsigned exp_bits(DType t) noexcept { return t == DType::F8_E5M2 ? 5 : 4; }

namespace {
// Plain loops over 16-bit words that the compiler vectorises (SSE2: eight
// words a step; the decoder's pass runs far below the rANS steps' time);
// the AVX2 build of the same loop where the CPU has it.
template <unsigned E>
inline void unpack_loop(uint8_t* dst, size_t words) {
  for (size_t k = 0; k < words; ++k) {
    uint16_t p;
    std::memcpy(&p, dst + 2 * k, 2);
    p = unpack<E>(p);
    std::memcpy(dst + 2 * k, &p, 2);
  }
}
#if defined(__x86_64__)
template <unsigned E>
__attribute__((target("avx2"))) void unpack_words_avx2(uint8_t* dst, size_t words) {
  unpack_loop<E>(dst, words);
}
#endif
// The encoder's loop likewise: each pair read as one 16-bit word (two byte
// loads per pair kept the vectoriser out)
template <unsigned E>
inline void pack_loop(const uint8_t* src, size_t words, uint8_t* out) {
  for (size_t k = 0; k < words; ++k) {
    uint16_t w;
    std::memcpy(&w, src + 2 * k, 2);  // little-endian hosts (format/bytes.h's assumption): a, then b
    const uint16_t p = pack<E>(w & 0xFFu, uint32_t(w) >> 8);
    std::memcpy(out + 2 * k, &p, 2);
  }
}
#if defined(__x86_64__)
template <unsigned E>
__attribute__((target("avx2"))) void pack_words_avx2(const uint8_t* src, size_t words, uint8_t* out) {
  pack_loop<E>(src, words, out);
}
#endif
}  // namespace

void pack_all(DType t, const uint8_t* src, size_t n, uint8_t* out) noexcept {
#if defined(__x86_64__)
  if (cpu_has_avx2()) {
    if (exp_bits(t) == 5) pack_words_avx2<5>(src, n / 2, out);
    else pack_words_avx2<4>(src, n / 2, out);
    return;
  }
#endif
  if (exp_bits(t) == 5) pack_loop<5>(src, n / 2, out);
  else pack_loop<4>(src, n / 2, out);
}

void unpack_all(DType t, uint8_t* dst, size_t words) noexcept {
#if defined(__x86_64__)
  if (cpu_has_avx2()) {
    if (exp_bits(t) == 5) unpack_words_avx2<5>(dst, words);
    else unpack_words_avx2<4>(dst, words);
    return;
  }
#endif
  if (exp_bits(t) == 5) unpack_loop<5>(dst, words);
  else unpack_loop<4>(dst, words);
}

void write_head(const uint8_t* src, size_t n, uint8_t flags, uint8_t* head) noexcept {
  head[0] = kMode;
  head[1] = n % 2 ? src[n - 1] : 0;
  head[2] = flags;
  head[3] = 0;
}

bool parse_head(DType t, const uint8_t* src, size_t src_n, size_t n, uint8_t* flags) noexcept {
  if (!supports(t) || n < 2 || src_n < kHeadBytes || src[0] != kMode) return false;
  if ((src[2] & ~kFlagShift) != 0 || src[3] != 0) return false;
  *flags = src[2];
  return n % 2 == 1 || src[1] == 0;
}

}  // namespace wc::pairs
