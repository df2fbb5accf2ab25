// The codec interface: a codec turns one chunk of raw tensor bytes into stored
// bytes and back. Chunks are independent, so any chunk decodes alone and many
// decode in parallel. Codec ids are stored in the container (stable forever).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "format/dtype.h"
#include "platform/error.h"

namespace wc {
namespace shift {
struct Plan;
}

enum class CodecId : uint8_t {
  raw = 0,         // stored bytes == raw bytes
  zstd = 1,        // one zstd frame per chunk
  float_ans = 2,   // field-split floats, rANS-coded symbols (codec/float_ans.h)
  float_ans_trim = 3,  // float-ans leaving out mantissa bits zero in every element (container 1.2)
  // Chunk by chunk the smaller of float-ans-trim and zstd (container 1.3):
  // a float-ans-trim payload, or mode byte 2 and a zstd frame
  // (spec/FLOAT_ANS.md §2). For tensors whose chunks differ: padding rows,
  // positional tables, values from a small set in part of a tensor.
  float_ans_mixed = 4,
  // float-ans-mixed plus mode 4 (container 1.5, 2.6): a trim of the low bits
  // zero in all but a few listed elements (spec/FLOAT_ANS.md §2.2): F16 of
  // BF16 values, whose smallest values (F16 subnormals) keep no zero bits.
  float_ans_patch = 5,
  // (6 is exact-residual, a lossy part's codec: quant/exact_top.h)
  // float-ans-patch plus mode 5 (container 1.6, 2.10): byte groups, the
  // chunk's byte planes in one zstd frame (spec/FLOAT_ANS.md §2.3), for
  // chunks of near-duplicate rows: the untrained rows of a token embedding.
  float_ans_groups = 7,
  // float-ans-groups plus mode 6 (container 1.7, 2.12): FP8 pairs, two
  // elements per rANS step (spec/FLOAT_ANS.md §2.4, codec/fp8_pairs.h), for
  // FP8 tensors that decode twice as fast for a little size.
  float_ans_pairs = 8,
};
// The codec ids of exact tensors, in id order.
inline constexpr CodecId kCodecs[] = {CodecId::raw,           CodecId::zstd,           CodecId::float_ans,
                                      CodecId::float_ans_trim, CodecId::float_ans_mixed, CodecId::float_ans_patch,
                                      CodecId::float_ans_groups, CodecId::float_ans_pairs};

std::string_view codec_name(CodecId c) noexcept;
bool codec_from_name(std::string_view s, CodecId* out) noexcept;
bool codec_id_valid(uint8_t id) noexcept;

struct EncodeOptions {
  int zstd_level = 3;
  // float-ans sub-stream length 2^substream_bits symbols (6..15): shorter
  // ones give a decoder more independent lanes (a GPU: one warp per 32) at a
  // small cost in size; 0: the codec's default (2^12)
  int substream_bits = 0;
  // float-ans-mixed: whether this chunk tries zstd as well (the writer's
  // plan says which chunks may gain; true: every chunk tries both), and
  // under float-ans-groups byte groups + zstd (mode 5) too
  bool mixed_try_zstd = true;
  // float-ans-mixed: the tensor's per-channel shift (mode 3) when the
  // writer's plan found one that pays, and the chunk's first element in the
  // tensor (where the chunk lies in the shift's pattern)
  const shift::Plan* shift = nullptr;
  uint64_t first_elem = 0;
  // float-ans-patch, -groups and -pairs: whether the chunk tries mode 4 (a
  // patched trim; the writer's plan says whether the tensor's samples gained)
  bool try_patch = true;
  // float-ans's payloads (modes 1 and 3) sized, not coded (fans::Params's
  // size_only): the plan's trials of a coding it usually replaces. The bytes
  // are not a chunk's and must never be stored.
  bool size_only = false;
};

// Whether `c` can encode tensors of `t` (raw and zstd take everything).
bool codec_supports(CodecId c, DType t) noexcept;
// Whether `c` can encode the items of a lossy tensor's part (float-ans also
// takes U8 and U16 items there).
bool codec_supports_part(CodecId c, DType item) noexcept;

// Encodes one chunk (`n` raw bytes, a whole number of elements) and replaces
// `out` with the stored bytes. Throws wc::Error on failure.
void encode_chunk(CodecId c, DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out,
                  const EncodeOptions& opt);

// A float-ans-groups chunk that tries zstd tries the byte planes (mode 5)
// as well when zstd codes it at most this much larger than float-ans: the
// planes beat float-ans where zstd comes close, rarely elsewhere.
inline constexpr double kGroupsTry = 1.05;
// ... and always below this many bytes, where the trial costs little (a
// bias of 1152 F32 values: the planes 21% under float-ans, zstd 6% over).
inline constexpr size_t kGroupsAlwaysBelow = 64u << 10;
// The planes of a chunk of at least this many bytes go through zstd at
// level 1 where the writer's level is 3 or less: on Whisper tiny.en's
// positional table and token embedding (F16, BF16, F32) level 1 codes the
// planes within 0.8% of level 3's size either way (the files 0.0007-0.010%
// smaller in all) in 0.6 of the time, and those trials were a fifth of
// encode_chunk's time over the F16 file. Smaller chunks keep the level:
// their trials cost little, and stories260K's 64 KiB token embedding (F16)
// is 1.5% larger at level 1.
inline constexpr size_t kGroupsFastFrom = 128u << 10;

// Decode speed priced in bytes: FP8 pairs (codec 8's mode 6) decode in
// half the rANS steps of float-ans's per-element coding (Whisper tiny.en as
// E5M2, whole file, one thread: 1.55-1.67 against 0.98-1.12 GB/s in the
// same runs, 1.0-1.15 times zstd -3's speed): a codec 8 writer keeps them where they are at most
// this much larger than per-element coding (the tensor's choice, on
// sampled chunks) or than zstd (each chunk's).
inline constexpr double kPairsSlack = 0.05;
// The fraction of a chunk's coded size zstd must come under to replace it:
// 1, or against FP8 pairs 1 - kPairsSlack (their decode speed).
inline double zstd_bar(bool pairs) { return pairs ? 1.0 - kPairsSlack : 1.0; }

// The float-ans-groups mode-5 payload of a chunk alone (its byte planes'
// zstd frames), which encode_chunk keeps where it is the smallest: the
// writer's plan prices it on sampled chunks. t: a 16- or 32-bit float.
void encode_byte_groups(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const EncodeOptions& opt);

// The end of encode_chunk for codecs 4, 5, 7 and 8 where the chunk tries
// zstd (opt.mixed_try_zstd): `out` holds the chunk's float-ans coding
// (paired: FP8 pairs, mode 6) and becomes the smallest of it, zstd and (codec
// 7 and up) the byte planes, as encode_chunk chooses. zstd's frame of the
// chunk at opt.zstd_level (encode_chunk(CodecId::zstd, ...)) and its planes
// (encode_byte_groups) come from `frame` and `planes` where given (the
// writer's trials of the same bytes: the same result), else are coded here.
void choose_zstd(CodecId c, DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const EncodeOptions& opt,
                 bool paired, const std::vector<uint8_t>* frame = nullptr,
                 const std::vector<uint8_t>* planes = nullptr);

// Decodes one chunk into exactly `dst_n` bytes the caller owns. Never reads
// outside [src, src+src_n) or writes outside [dst, dst+dst_n), whatever the
// input. Returns Errc::ok, or Errc::codec when the stream is invalid.
// Allocates nothing on the heap for raw and float_ans.
Errc decode_chunk(CodecId c, DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n) noexcept;

// Decoding with caller memory (runtimes): decode_workspace_size() bytes,
// any alignment, reused call after call by one thread at a time. Then no
// codec allocates on the heap (zstd's context is built in the workspace)
// and a call needs a few KiB of stack. Same results as decode_chunk.
size_t decode_workspace_size() noexcept;
Errc decode_chunk_ws(CodecId c, DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, void* ws,
                     size_t ws_n) noexcept;

// Upper bound on stored size, used to size buffers.
size_t encode_bound(CodecId c, size_t n) noexcept;

}  // namespace wc
