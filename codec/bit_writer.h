// LSB-first bit writer with Exp-Golomb codes: the encoder's side of
// layout::BitReader (codec/ans_layout.h), for float-ans tables and the
// channel-shift lists (spec/FLOAT_ANS.md §5, §2.1).
#pragma once
#include <cstdint>
#include <vector>

namespace wc {

inline uint32_t zigzag_enc(int32_t d) { return (uint32_t(d) << 1) ^ uint32_t(d >> 31); }

struct BitWriter {
  std::vector<uint8_t>& out;
  uint64_t acc = 0;
  uint32_t nb = 0;
  explicit BitWriter(std::vector<uint8_t>& o) : out(o) {}
  void put(uint32_t v, uint32_t k) {  // k <= 32
    acc |= uint64_t(v) << nb;
    nb += k;
    while (nb >= 8) { out.push_back(uint8_t(acc)); acc >>= 8; nb -= 8; }
  }
  // order k: z zero bits, a 1, then z + k bits of u - (2^(z+k) - 2^k)
  void eg(uint32_t u, uint32_t k) {
    uint32_t z = 31 - __builtin_clz((u >> k) + 1);
    uint32_t base = (1u << (z + k)) - (1u << k);
    uint32_t rem = u - base;
    if (2 * z + 1 + k <= 32) {  // the usual short code: one put of all its bits
      put((1u | rem << 1) << z, 2 * z + 1 + k);
      return;
    }
    put(0, z);
    put(1, 1);
    // z + k bits, possibly > 24: split
    if (z + k > 24) { put(rem & 0xFFFFFu, 20); put(rem >> 20, z + k - 20); }
    else put(rem, z + k);
  }
  // zero bits up to the next byte boundary
  void flush() { if (nb) { out.push_back(uint8_t(acc)); acc = 0; nb = 0; } }
};

}  // namespace wc
