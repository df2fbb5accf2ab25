// Internal interface between the float_ans encoder (codec/float_ans.cpp) and
// its AVX2/BMI2 kernels (codec/float_ans_enc_avx2.cpp). The kernels produce
// exactly the bytes of the portable code (tests compare them).
#pragma once
#include <cstddef>
#include <cstdint>

namespace wc::fans::detail {

// Per-symbol entries for the vector rANS encoder, indexed by the symbol
// itself (entries below lo are never read):
//   a[sym] = (f - 1) | cum << 14   (f >= 1; 0 for absent symbols)
// One 32-bit gather per 8 lanes; the kernel multiplies by a single-precision
// reciprocal of f and corrects the quotient with the remainder, which needs
// prob_bits >= 12.
// big: some f > M / 2 (states can reach 2^31).
struct VecEncArgs {
  const uint32_t* a;
  uint32_t rbits, magmask, prob_bits;
  bool big;
};

// Runs steps t = base-1 .. 0 of one group of `lanes` lanes starting at j0 (a
// full group of 32, or the partial last group) of a chunk with nsub
// sub-streams: x[32] the lane states (in/out), *pp the word
// stack pointer (words are written at [*pp - 8, *pp) before it moves down, so
// 8 words of slack must lie below the lowest word).
// All 32 entries of x are read and written (those past `lanes` are scratch).
using EncStepsFn = void (*)(const VecEncArgs& a, const uint8_t* src, uint64_t nsub, uint64_t base, uint64_t j0,
                            unsigned lanes, uint32_t* x, uint16_t** pp);
// Groups of fewer lanes than this run the portable steps, their states in
// registers (one vector of mostly idle lanes gains nothing there).
inline constexpr unsigned kMinVecLanes = 5;
// nullptr for lanes outside kMinVecLanes .. 32 (those lanes are handled by
// the portable steps).
EncStepsFn enc_steps_avx2(unsigned W, unsigned joint, bool big, unsigned lanes);

// Packs the raw plane of n W-bit values: fields value & pmask compressed
// (pext), w = popcount(pmask) bits each, LSB-first. out holds ceil(n*w/8) bytes.
void pack_plane_bmi2(unsigned W, uint32_t pmask, const uint8_t* src, uint64_t n, uint8_t* out);
// The same plane, the fields given as rr bits from bit z on, then (unless
// joint) the sign bit: AVX2 shifts, no pext.
void pack_plane_avx2(unsigned W, uint32_t z, uint32_t rr, bool joint, const uint8_t* src, uint64_t n, uint8_t* out);

// Large chunks histogram a sample: the runs of 64 elements whose index r
// (a multiple of 64) has (r >> 6) % kSampleEvery == 0.
inline constexpr uint64_t kSampleEvery = 4;
constexpr bool in_sample(uint64_t i) noexcept { return (i >> 6) % kSampleEvery == 0; }
constexpr uint64_t sampled_count(uint64_t n) noexcept {
  const uint64_t period = 64 * kSampleEvery, rem = n % period;
  return n / period * 64 + (rem < 64 ? rem : 64);
}

// Counts the keys v >> sh of n W-bit values into the four 16-bit
// sub-histograms h[0..3] (at most 4 * 65535 counted), all of them or, with
// sample, those in_sample; and returns the least and greatest
// v & (2^(W-1) - 1) and the OR of every v over all n values.
void count_minmax_avx2(unsigned W, const uint8_t* src, uint64_t n, uint32_t sh, bool sample, uint16_t* const* h,
                       uint32_t* mn, uint32_t* mx, uint32_t* any);

// For the elements outside the sample:
// top[key] = 1 where it is 0. windows = {lo0, hi0, lo1, hi1}: two inclusive
// key ranges whose entries are all non-zero.
void mark_missing_avx2(unsigned W, const uint8_t* src, uint64_t n, uint32_t sh, const uint32_t* windows,
                       uint64_t* top);

// An unsampled chunk's histogram is first counted with at most this many
// mantissa bits, and again in full only when the choice of k needs finer
// levels (the same payload either way). force_lazy_k sets it for tests
// (-1: the default; a large value: always in full).
inline constexpr uint32_t kDefaultLazyK = 5;
void force_lazy_k(int k) noexcept;

// Whether the AVX2/BMI2 encoder kernels are usable on this CPU (and not
// disabled by force_encoder).
bool fast_encoder() noexcept;
// Whether pack_plane_bmi2 is, too: fast_encoder() on a CPU whose pext is
// fast (not AMD before Zen 3).
bool fast_pext() noexcept;
// 0 = portable, 1 = fast if available, 2 = fast with the pext-free plane
// packer (for tests on CPUs where pext is fast), -1 = auto (default).
void force_encoder(int which) noexcept;

}  // namespace wc::fans::detail
