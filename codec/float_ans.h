// float_ans: lossless entropy codec for floating-point tensors.
//
// Each value is split into a symbol (exponent + top k mantissa bits, with or
// without the sign) coded with rANS, and a fixed-width raw bit plane (the low
// mantissa bits and, in sign-raw mode, the sign). A chunk is cut into
// interleaved sub-streams (element i belongs to sub-stream i mod nsub) that
// decode independently: several at once on a CPU core, one per GPU thread.
// The byte layout is specified in spec/FLOAT_ANS.md; codec/ans_layout.h holds
// the decode primitives shared with the CUDA kernel.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "format/dtype.h"
#include "platform/error.h"

namespace wc::fans {

// BF16, F16, F32, F8_E4M3, F8_E5M2 (floats), and U8, U16 (the integer
// items of lossy parts; a tensor of those dtypes is not given float-ans, so
// lossless files stay readable by 1.x readers).
bool supports(DType t) noexcept;
bool supports_float(DType t) noexcept;

// Encodes one chunk of n bytes (a whole number of elements); replaces out.
// Throws wc::Error(Errc::usage) on an unsupported dtype or a partial element.
void encode(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, bool trim = false);

// Decodes into exactly dst_n bytes. Never reads or writes out of bounds for any
// input, allocates nothing on the heap (tables live on the stack, ~150 KiB).
// Returns Errc::ok or Errc::codec.
// `trim`: the payload is codec float-ans-trim's (its header may leave out
// low mantissa bits); codec float-ans payloads must not.
Errc decode(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, bool trim = false) noexcept;

// The same with the tables in caller memory: `tables` points at
// tables_size() bytes aligned to tables_align() (a workspace a runtime
// allocates once per thread), so a call uses a few KiB of stack.
size_t tables_size() noexcept;
size_t tables_align() noexcept;
Errc decode_with(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, bool trim,
                 void* tables) noexcept;

// Upper bound on encode()'s output size for n input bytes.
size_t encode_bound(size_t n) noexcept;

// Statistics for `wcodec inspect --entropy` and the bench.
//  h_values:    order-0 entropy of the whole values, bits/weight. Exact for
//               8- and 16-bit types; for F32 it is H(top 16 bits) + 16, an
//               upper bound on the order-0 entropy (H(X) <= H(hi) + H(lo|hi)
//               <= H(hi) + 16); trained F32 weights have nearly uniform low
//               halves, so the bound is close.
//  h_exp_bound: H(exponent) + all other bits raw (the exponent-only design).
//  achieved_bpw: 8 * encode() size / elements (this chunk encoded whole).
struct EntropyStats {
  double h_values;
  double h_exp_bound;
  double achieved_bpw;
  uint64_t elements;
};
EntropyStats entropy_stats(DType t, const uint8_t* src, size_t n);

// The histograms behind h_values and h_exp_bound, fed a chunk at a time (so a
// tensor never has to be whole in memory). Throws Errc::usage as encode().
class EntropyCounter {
 public:
  explicit EntropyCounter(DType t);
  void add(const uint8_t* src, size_t nbytes);
  uint64_t elements() const noexcept { return n_; }
  double h_values() const;     // bits/weight, 0 when empty
  double h_exp_bound() const;  // bits/weight, 0 when empty

 private:
  uint32_t W_, E_, m_, vb_;
  uint64_t n_ = 0;
  std::vector<uint64_t> hv_, he_;
};

// ---- advanced: for tests and benchmarks ------------------------------------
// Encoder knobs; encode() uses the defaults. A negative value means "choose".
struct Params {
  int k = -1;          // mantissa bits in the symbol
  int joint = -1;      // 1: sign in the symbol, 0: sign raw
  int qshift = -1;     // table log-frequency resolution 2^-qshift, 0..3
  int sub_bits = 12;   // sub-stream length 2^sub_bits symbols (6..15)
  int prob_bits = 12;  // rANS precision (10..14); a maximum: chunks of n elements use
                       // at most max(10, bit_length(n) + 1)
  bool allow_raw = true;  // false: never fall back to the raw mode (tests)
  bool trim = false;      // float-ans-trim: leave out mantissa bits zero in every element
  // The writer's plan pricing a coding it will rarely keep: out gets the
  // mode byte and then zeros, as many bytes as the planned table, states,
  // word counts, words and raw plane would take (the rANS steps and the
  // plane are skipped), or the raw mode's bytes where those win. Within a
  // few bytes of the payload where the histogram is exact, within about
  // 0.5% where a large chunk's is sampled. Never stored.
  bool size_only = false;
};
void encode_with(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const Params& p);
// encode_with() appending the payload to the first `at` bytes of `out` (a
// head the caller wrote, kept as it is): the same payload bytes, without a
// copy of them behind the head.
void encode_after(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, size_t at, const Params& p);

// Reference decoder: decodes every sub-stream with the shared per-thread
// function (layout::decode_substream), the one the GPU kernel runs.
Errc decode_reference(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, bool trim = false) noexcept;

// What a payload holds (for inspect / tests). Returns false if unparsable.
struct ChunkInfo {
  unsigned mode;  // 0 raw, 1 rans
  unsigned k, joint, qshift, sub_bits, prob_bits;
  uint64_t nsub;
  size_t table_bytes, substream_header_bytes, stream_bytes, plane_bytes;
};
bool chunk_info(DType t, const uint8_t* src, size_t src_n, size_t dst_n, ChunkInfo* info) noexcept;

}  // namespace wc::fans
