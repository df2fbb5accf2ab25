// Patched trim (float-ans mode 4, codec 5 float-ans-patch; spec/FLOAT_ANS.md
// §2.2): float-ans-trim leaves out the low mantissa bits that are zero in
// every element of a chunk; an F16 tensor of BF16 values has its low 3 bits
// zero in all but its smallest values (F16 subnormals below 2^-16), so one
// element spoils the trim for all. Mode 4 lists those elements whole and
// trims the rest: the chunk decodes as its inner mode-1 or mode-3 payload,
// then each listed element takes its listed value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "format/dtype.h"

namespace wc::patch {

inline constexpr uint8_t kMode = 4;
inline constexpr size_t kHeaderBytes = 8;

// The encoder's choice for a chunk of n elements of t: the low bits z to
// trim (0: none pays) and the elements whose low z bits are not all zero.
// Only worth a list beside trimming: z above what every element allows,
// and the bits saved more than the list costs.
struct Choice {
  unsigned z = 0;
  std::vector<uint32_t> idx;
  double gain_bits = 0;  // what the choice expects to save: the bits trimmed less the list's (estimated) bytes
};
Choice choose(DType t, const uint8_t* src, uint64_t n);

// Whether choice c on n elements of eb bytes saves so much (kSure of their
// raw bits) that the chunk's coding without it need not be tried: it only
// moves the trimmed bits (stored raw otherwise) into none. On Whisper
// tiny.en and stories260K as F16 of BF16 values (427 chunks), the patched
// coding came out 5-24% under the plain one on every chunk, expected at
// 11-18% of the raw bits.
inline constexpr double kSure = 0.04;
inline bool sure(const Choice& c, uint64_t n, unsigned eb) { return c.z && c.gain_bits >= kSure * 8.0 * double(eb) * double(n); }

// A copy of the chunk with the listed elements' low z bits cleared (what the
// inner payload codes), and the mode-4 header and list for them.
void clear_listed(DType t, const Choice& c, const uint8_t* src, uint8_t* dst, uint64_t n);
void write_head(DType t, const Choice& c, const uint8_t* src, std::vector<uint8_t>& out);

// Parses a mode-4 payload's header and list for n elements of t: false when
// a rule of §2.2 before the inner payload is broken; else *inner is where
// the inner payload starts.
bool parse(DType t, const uint8_t* src, size_t src_n, uint64_t n, size_t* inner) noexcept;
// After the inner payload decoded into dst: the listed elements' values
// (the list parse() accepted).
void apply(DType t, const uint8_t* src, size_t src_n, uint8_t* dst) noexcept;

}  // namespace wc::patch
