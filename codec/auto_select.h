// `--codec auto`: which codec a tensor gets, and for float-ans-mixed which
// of its chunks try zstd as well.
#pragma once
#include <vector>

#include "codec/channel_shift.h"
#include "codec/codec.h"

namespace wc {

// Whether bit 0 (the lowest mantissa bit) is zero in every element of a
// BF16/F16/F32 tensor: float-ans-trim can then leave bits out.
bool low_bits_zero(DType t, const uint8_t* data, uint64_t byte_size);

// How much of a chunk repeats itself, in 1/1024ths: words of two elements
// (four for 8-bit types) are sampled at a power-of-two stride (about 2048 per
// chunk, so rows of a power-of-two multiple of the stride line up) and each
// is looked up among the earlier samples. A word that repeats is what zstd
// finds and float-ans cannot code below its raw bits: runs of zeros,
// duplicated rows, values from a small set. Two elements keep real weights
// out: a pair carries 20 or more bits, so 2048 samples rarely meet twice by
// chance (BF16 at 10.6 bits per value: about 1 in 2048).
unsigned repeat_rate(DType t, const uint8_t* data, size_t n);
// zstd's trial on a sampled chunk whose low mantissa bits are zero runs at
// the writer's level only where level 1 codes the chunk less than this many
// times float-ans's size.
inline constexpr double kZstdProbeLoses = 1.25;
// zstd's trial on a sampled chunk of 128 KiB or more that repeats itself
// less than kSliceMaxRepeat (repeat_rate) is first estimated on kZstdSlices
// slices of kZstdSliceBytes each, and runs in full only where the estimate
// comes within kZstdSliceLoses of float-ans's size. Measured on Whisper
// tiny.en (F16, BF16, F32, FP8; 77 to 129 sampled chunks each), the estimate
// of such a chunk was 0.988 to 1.056 times the full trial's size (on chunks
// that repeat, up to 1.5: the slices miss runs the chunk has elsewhere).
inline constexpr uint64_t kZstdSlices = 4, kZstdSliceBytes = 16u << 10;
inline constexpr unsigned kSliceMaxRepeat = 8;  // 1/128
inline constexpr double kZstdSliceLoses = 1.07;
// FP8 (pairs): the estimate stands where it is at least this much over
// zstd_bar times the chosen coding's size (on Whisper tiny.en's FP8 chunks
// that do not repeat, the estimate was 0.988 to 1.008 times the full trial).
inline constexpr double kZstdDeferredSlack = 1.02;
// zstd's size (at opt.zstd_level) on n bytes, estimated from the kZstdSlices
// slices coded as one frame (a quarter of a full trial's work on a 256 KiB
// chunk); 0 where n < 2 * kZstdSlices * kZstdSliceBytes.
uint64_t zstd_estimate(const uint8_t* data, uint64_t n, const EncodeOptions& opt);
// A floor under zstd's size on n bytes that do not repeat themselves: the
// order-0 entropy of their bytes (over the whole of n below 2 *
// kZstdSlices * kZstdSliceBytes, else over zstd_estimate's slices, scaled
// to n), in bytes. zstd codes such bytes as Huffman literals, which cannot go
// below it. Measured with every trial in full on Whisper tiny.en (F16, BF16,
// F32, E4M3, E5M2), stories260K (BF16, F32) and the generated model: on the
// 1077 sampled chunks with a repeat_rate under kSliceMaxRepeat and low
// mantissa bits not all zero, zstd -3 came out 1.0019 to 17 times the
// whole-chunk floor. A byte histogram costs a fifth of zstd's trial of the
// slices, and a chunk under the slices' size gets one too.
uint64_t zstd_floor(const uint8_t* data, uint64_t n);
// Tests: every sampled chunk's zstd trial in full (true), or estimated where
// the rules above allow (false, the default).
void force_full_zstd_trials(bool on) noexcept;
// A per-channel shift that shift::plan prices at this fraction of the
// element's bits or more is taken without trying the tensor unshifted: on
// Whisper tiny.en, stories260K and the generated model (F16, BF16, F32; 126
// tensors with a shift) none of those that did not pay (0.1% smaller
// shifted, as the plan asks) was priced above 0.0027. (At 0.005, the ten
// Whisper F16 and BF16 tensors priced between 0.003 and 0.005 each paid,
// by 0.13-0.81%, after both trials.)
inline constexpr double kShiftSure = 0.003;
// Tests: the unshifted per-element trial even where the shift is sure
// (kShiftSure), to check that skipping it changes no plan.
void force_unshifted_trials(bool on) noexcept;
// A chunk repeating at least this much tries zstd as well (float-ans-mixed).
inline constexpr unsigned kRepeatTryZstd = 32;  // 1/32
// Codec 7 (float-ans-groups) for a tensor whose sampled chunks it codes at
// least kGroupsGain smaller than the best of float-ans and zstd
// (kGroupsTry, the chunks that try the planes, is in codec.h).
inline constexpr double kGroupsGain = 0.01;
// Codec 8 (float-ans-pairs) for an FP8 tensor whose sampled chunks it codes
// at most kPairsSlack (codec.h) larger than float-ans's best per-element
// coding; zstd then takes a chunk only where it is kPairsSlack smaller.

struct CodecPlan {
  CodecId codec = CodecId::raw;
  // float-ans-mixed only: per chunk, whether it tries zstd beside
  // float-ans-trim (it keeps the smaller): 0, 1, or kTryZstdIfRepeats;
  // empty for other codecs
  std::vector<uint8_t> try_zstd;
  // float-ans-mixed only: the per-channel shift every chunk carries (mode 3),
  // empty `d` for none
  shift::Plan shift;
  // float-ans-patch and -groups: whether chunks try mode 4
  bool try_patch = true;
  // Sampled chunks the plan's trials already coded exactly as
  // encode_chunk(codec, chunk_options(...)) codes them (take_sample() hands
  // them out instead of a second encode); empty bytes: code it afresh.
  struct Sample {
    uint64_t chunk = 0;
    std::vector<uint8_t> bytes;
  };
  std::vector<Sample> samples;
};

// The codec of one exact tensor. Up to three chunks spread over the tensor
// (first, middle, last: the first rows of a token embedding are not like the
// rest) are coded with each candidate; a dtype float-ans cannot take gets the
// smaller of zstd and raw. A float tensor gets float-ans (float-ans-trim
// where its low mantissa bits are zero and that is smaller), or zstd where
// zstd won every sampled chunk and every other chunk repeats itself, or
// float-ans-mixed where its chunks differ: then a sampled chunk tries zstd
// when zstd won it, another chunk when repeat_rate flags it, and every chunk
// when zstd won a sampled chunk the flag missed (the flag is then not to be
// trusted for this tensor). A tensor of one chunk never needs mixed, unless
// a per-channel shift (`cols`: its last dimension, 0 for rank < 2) makes the
// sampled chunks at least 0.1% smaller: then it is float-ans-mixed with every
// chunk shifted (mode 3).
CodecPlan plan_codec(DType t, const uint8_t* data, uint64_t byte_size, uint32_t chunk_size, const EncodeOptions& opt,
                     uint64_t cols = 0);

// A try_zstd flag that waits for the chunk's encode: the chunk tries zstd
// when its repeat_rate is kRepeatTryZstd or more. The plan leaves the chunks
// it did not sample so where their flags cannot change the tensor's codec
// (a shifted, patched or paired tensor is float-ans-mixed, -patch or -pairs
// whatever they say): the repeat rate then reads the chunk just before it is
// coded, with its bytes in cache, where the plan's pass over every chunk of
// the tensor read them from memory (a tenth of the plan's time on Whisper
// tiny.en F32, a third on a 1.9 GB generated BF16 model).
inline constexpr uint8_t kTryZstdIfRepeats = 2;

// Whether a chunk (raw bytes [chunk, chunk + n), dtype t) with try_zstd
// flag `flag` tries zstd beside the plan's float-ans coding: the flag, or
// its repeat rate where the flag is kTryZstdIfRepeats.
bool flag_tries_zstd(uint8_t flag, DType t, const uint8_t* chunk, size_t n);
// The same for chunk j under `plan`: true for a plan without flags.
bool chunk_tries_zstd(const CodecPlan& plan, DType t, uint32_t j, const uint8_t* chunk, size_t n);

// The options chunk j (raw bytes [chunk, chunk + n) of a tensor cut into
// chunks of chunk_size, dtype t) is encoded with: `base`, with the plan's
// per-chunk zstd flag (when it has flags), its shift (when it has one),
// placed at the chunk's first element, and its patch flag.
EncodeOptions chunk_options(const EncodeOptions& base, const CodecPlan& plan, DType t, uint32_t chunk_size, uint32_t j,
                            const uint8_t* chunk, size_t n);

// Chunk j's stored bytes from the plan's trials, moved into `out` (true), or
// false where chunk j must be encoded. Each sample is handed out once.
bool take_sample(CodecPlan& plan, uint64_t j, std::vector<uint8_t>& out);

// The bytes the plan's samples hold (to bound memory across many plans).
uint64_t sample_bytes(const CodecPlan& plan);

}  // namespace wc
