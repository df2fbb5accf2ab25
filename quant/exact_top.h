// The exact top layer of a qrow tensor (spec/EXACT_TOP.md): per element the
// residual from the level-0 value to the original bits, coded with tables
// chosen by the element's level-0 code. Tables (part 2, inline) are parsed
// and checked here; tiles (part 3, codec 6) are decoded onto the level-0
// reconstruction in place, and encoded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "platform/error.h"
#include "quant/exact_top_math.h"

namespace wc::exact {

// Part 3's codec id: valid for the exact top layer's residuals only.
inline constexpr uint8_t kCodecExactResidual = 6;
inline constexpr unsigned kProbBits = 12;  // the encoder's P

struct Context {
  std::vector<uint32_t> sym, freq, cum;  // symbols with a frequency, ascending; cum has n + 1 entries
  // per symbol, for the decoder: the magnitude's bits above the raw ones,
  // the raw bit count and the sign (§3), so join() is an OR
  struct Entry {
    uint32_t base;
    uint16_t freq, cum;
    uint8_t nraw, sign;
  };
  std::vector<Entry> dec;
};
struct Tables {
  unsigned C = 0, P = 0, Z = 0;  // contexts, probability bits, trim (§4)
  Context ctx[kMaxContexts];
};

// Parses and checks part 2's bytes (§4) for a tensor of dtype `dt` (qrow's
// ids: F16 8, BF16 9, F32 12). False when a rule is broken.
bool parse_tables(const uint8_t* p, size_t n, uint32_t dt, Tables& out);

// Tile decode (§5): dst holds the tile's level-0 bits in dtype dt (rows ×
// cols elements) and receives the original bits; base_exp is the tensor's
// (qrow's params). Needs nothing of level 0 but its values: the payload
// carries the rows' step bytes. Errc::codec when the payload is not valid.
Errc apply_tile(const Tables& tb, const uint8_t* payload, size_t n, uint32_t dt, int32_t base_exp, uint64_t rows,
                uint64_t cols, uint8_t* dst);

// Encoder. Symbol counts per raw context (0..32) over a whole tensor.
struct Counts {
  std::vector<uint64_t> c[kRawContexts];
  void add(const Counts& o);
};
// The trim of n originals (§4): how many low bits are zero in every one's
// magnitude, at most the mantissa's width less 2 (an F32 tensor of F16
// values: 13). A tensor's is the least of its tiles'.
unsigned trim_bits(uint32_t dt, const uint8_t* orig, uint64_t n);
// Counts a tile: original and level-0 bits (dtype dt), the tensor's trim,
// base exponent and the rows' step bytes.
void count_tile(Counts& k, uint32_t dt, unsigned z, const uint8_t* orig, const uint8_t* recon, int32_t base_exp,
                const uint8_t* e, uint64_t rows, uint64_t cols);
// Chooses the context count and frequencies for the counts; returns part
// 2's bytes and fills tb as parse_tables would. *coded_bits (if given): the
// estimated size of the tensor's level 1 (order-0 bits, raw bits, tables).
std::vector<uint8_t> build_tables(const Counts& k, uint32_t dt, unsigned z, Tables& tb, double* coded_bits = nullptr);
// One tile's payload (§5): mode 1, or mode 0 when that is not smaller.
void encode_tile(const Tables& tb, uint32_t dt, const uint8_t* orig, const uint8_t* recon, int32_t base_exp,
                 const uint8_t* e, uint64_t rows, uint64_t cols, std::vector<uint8_t>& out);

}  // namespace wc::exact
