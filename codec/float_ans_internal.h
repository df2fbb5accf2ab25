// Internal interface between the float_ans front end and its fast CPU decoder.
#pragma once
#include <cstddef>
#include <cstdint>

#include "codec/ans_layout.h"

namespace wc::fans::detail {

// Decode tables of one chunk (on the decoder's stack; ~180 KiB).
// Packed form (prob_bits <= 12, fbits below): one u32 per slot, bits
// 0..fbits-1 freq - 1, then the symbol index (symbol - lo) in 32 - 2 fbits
// bits, then slot - cumfreq in the top fbits bits; val8[index] = the
// symbol's output bits (at most 256 symbols; larger alphabets compute them
// from the index). Wide form: see below. Otherwise slot/vals as built by
// layout::build_slots.
struct Tables {
  uint8_t q[layout::kMaxAlphabet];
  uint16_t f[layout::kMaxAlphabet];  // frequencies <= 2^14
  bool packed;
  // bits of freq - 1 and of the bias in a packed entry: those of the largest
  // frequency - 1 (at least 1, at most 12), so the index gets 32 - 2 fbits
  // (at least 8); packed needs the alphabet to fit them
  uint32_t fbits;
  // wide: a 16- or 32-bit type whose table has more than 256 symbols (prob_bits
  // <= 12): the AVX2 kernel reads 6 bytes per slot from wide3 (u16 words:
  // entry low, entry high, symbol index; entry = freq-1 | bias << 20) with
  // one 8-byte load, and so do the scalar steps (slot/vals are not built).
  // Spare words: the load at the last slot reads one word past it.
  bool wide;
  uint32_t val8[256];
  union {  // packed or wide, never both (prepare() writes the one it uses)
    uint32_t pslot[1u << 12];
    uint16_t wide3[3 * (1u << 12) + 4];
  };
  // layout::normalize_freqs's workspace (order: 2M u16) shares the slot
  // table's storage, which is free until build_slots, instead of adding 64 KiB
  // of stack. A union rather than a u16 view of slot (that would break strict
  // aliasing): prepare() assigns to a member (norm_order[0] = 0, slot[0] = 0),
  // which makes it the active one, before passing it on.
  union {
    uint32_t slot[layout::kMaxTableSlots];
    uint16_t norm_order[2 * layout::kMaxTableSlots];
  };
  uint16_t vals[layout::kMaxTableSlots + 1];  // + 1: also normalize_freqs's counts (M + 1)
};
static_assert(layout::norm_order_entries(layout::kMaxProbBits) <= 2 * layout::kMaxTableSlots);
static_assert(layout::norm_count_entries(layout::kMaxProbBits) <= layout::kMaxTableSlots + 1);

// layout::parse_chunk with the same results, faster: the table section read
// through a 64-bit window (the CPU decoders'; tests compare the two).
bool parse_chunk_cpu(uint32_t dtype_id, const uint8_t* src, size_t src_n, size_t dst_n, layout::ChunkLayout* L,
                     uint8_t* q, bool trim);

// Builds the packed table in the layout T.fbits gives (requires prob_bits <=
// 12, freq - 1 < 2^fbits, count <= 2^(32 - 2 fbits)).
void build_packed(const uint16_t* f, uint32_t count, uint32_t lo, const layout::Split& s, Tables& T);
// Builds the wide table wide3 (requires prob_bits <= 12).
void build_wide(const uint16_t* f, uint32_t count, Tables& T);

// Decodes a parsed rANS chunk (tables built) into dst. Bounds-safe for any
// input that passed parse_chunk/check_counts. Returns false on a stream error.
bool decode_fast(const uint8_t* src, size_t src_n, uint8_t* dst, const layout::ChunkLayout& L,
                 const Tables& T) noexcept;

// Which kernel decode_fast uses: 0/1 scalar, 2/3 AVX2; -1 = auto (default).
// Unavailable kernels fall back to 0.
void force_kernel(int which) noexcept;
int active_kernel() noexcept;

}  // namespace wc::fans::detail
