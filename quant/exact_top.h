// The residual coder of a qrow tensor's levels above 0: the exact top layer
// (spec/EXACT_TOP.md: per element the residual from the value below to the
// original bits) and refinement levels (spec/REFINE.md: per element a code
// of a finer step). Both code per element a symbol chosen by the value
// below, with the same tables and tile payloads (codec 6); tables are
// parsed and checked here, tiles decoded onto the level below in place, and
// encoded.
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
  unsigned S = 0;                // context shift (REFINE.md §3; 0 over level 0)
  uint32_t M = 0;                // a refinement level's step divisor; 0: the exact top layer
  Context ctx[kMaxContexts];
};

// Parses and checks the exact top layer's tables (§4) for a tensor of dtype
// `dt` (qrow's ids: F16 8, BF16 9, F32 12). False when a rule is broken.
bool parse_tables(const uint8_t* p, size_t n, uint32_t dt, Tables& out);
// The same for a refinement level's tables (REFINE.md §3).
bool parse_refine_tables(const uint8_t* p, size_t n, Tables& out);

// Tile decode (§5): dst holds the tile's bits at the level below in dtype dt
// (rows × cols elements) and receives the level's (the original bits, or
// REFINE.md §2's); base_exp is the tensor's (qrow's params). Needs nothing
// of the level below but its values: the payload carries the rows' step
// bytes. Errc::codec when the payload is not valid.
Errc apply_tile(const Tables& tb, const uint8_t* payload, size_t n, uint32_t dt, int32_t base_exp, uint64_t rows,
                uint64_t cols, uint8_t* dst);
// What a mode-1 payload may leave to its tensor (2.8, its flags byte):
// steps, part 0's step bytes of the tile when part 0 is inline as they are
// (flag 1: the payload has none); tables_in_payload, the level's tables
// part has no items, so they ride in the payload (flag 2), of the kind
// `refine` says, parsed into `scratch` (then `tb` is not read).
struct TileContext {
  const uint8_t* steps = nullptr;
  bool tables_in_payload = false, refine = false;
};
Errc apply_tile(const Tables& tb, const TileContext& cx, Tables& scratch, const uint8_t* payload, size_t n,
                uint32_t dt, int32_t base_exp, uint64_t rows, uint64_t cols, uint8_t* dst);

// Encoder. Symbol counts per raw context (0..32) over a whole tensor.
struct Counts {
  std::vector<uint64_t> c[kRawContexts];
  void add(const Counts& o);
};
// The trim of n originals (§4): how many low bits are zero in every one's
// magnitude, at most the mantissa's width less 2 (an F32 tensor of F16
// values: 13). A tensor's is the least of its tiles'.
unsigned trim_bits(uint32_t dt, const uint8_t* orig, uint64_t n);
// Counts a tile: original bits and those of the level below (dtype dt),
// the tensor's trim, the context shift, base exponent and the rows' step
// bytes.
void count_tile(Counts& k, uint32_t dt, unsigned z, unsigned shift, const uint8_t* orig, const uint8_t* recon,
                int32_t base_exp, const uint8_t* e, uint64_t rows, uint64_t cols);
// Chooses the context count and frequencies for the counts; returns the
// tables' bytes and fills tb as parse_tables would. *coded_bits (if given):
// the estimated size of the level (order-0 bits, raw bits, tables).
std::vector<uint8_t> build_tables(const Counts& k, uint32_t dt, unsigned z, unsigned shift, Tables& tb,
                                  double* coded_bits = nullptr);
// What a payload leaves out (TileContext): its step bytes (omit_steps) and,
// with `tables`, the level's tables it carries (mode 1 then, always).
struct PayloadLayout {
  bool omit_steps = false;
  const std::vector<uint8_t>* tables = nullptr;
};
// One tile's payload (§5): mode 1, or mode 0 when that is not smaller.
void encode_tile(const Tables& tb, uint32_t dt, const uint8_t* orig, const uint8_t* recon, int32_t base_exp,
                 const uint8_t* e, uint64_t rows, uint64_t cols, std::vector<uint8_t>& out,
                 const PayloadLayout& lay = {});

// Refinement levels (REFINE.md). The codes of a tile for step divisor M:
// x the target values, `below` the level below's bits (dtype dt); d gets
// each element's code (the nearest, kept finite) and `above` (may be
// `below`) the level's bits. `odd`: the nearest odd code, for a level
// whose bins are two of its steps wide (an even factor, REFINE.md §5: the
// values below are its bins' edges, so the nearest odd multiple is the
// centre of the half, third... of the bin below the element lies in).
void refine_codes(uint32_t dt, const float* x, const uint8_t* below, int32_t base_exp, const uint8_t* e, uint32_t M,
                  uint64_t rows, uint64_t cols, uint16_t* d, uint8_t* above, bool odd = false);
void count_codes(Counts& k, uint32_t dt, unsigned shift, const uint8_t* below, int32_t base_exp, const uint8_t* e,
                 uint64_t rows, uint64_t cols, const uint16_t* d);
std::vector<uint8_t> build_refine_tables(const Counts& k, unsigned shift, uint32_t M, Tables& tb,
                                         double* coded_bits = nullptr);
void encode_codes(const Tables& tb, uint32_t dt, const uint8_t* below, int32_t base_exp, const uint8_t* e,
                  uint64_t rows, uint64_t cols, const uint16_t* d, std::vector<uint8_t>& out,
                  const PayloadLayout& lay = {});

}  // namespace wc::exact
