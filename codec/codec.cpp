// Codec dispatch, and the two generic codecs (raw, zstd) that take any dtype.
#include "codec/codec.h"

#include <cstddef>
#include <cstring>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_initStaticDCtx: a context in caller memory
#include <zstd.h>

#include "codec/float_ans.h"
#include "format/zframe.h"

namespace wc {

std::string_view codec_name(CodecId c) noexcept {
  switch (c) {
    case CodecId::raw: return "raw";
    case CodecId::zstd: return "zstd";
    case CodecId::float_ans: return "float-ans";
    case CodecId::float_ans_trim: return "float-ans-trim";
  }
  return "?";
}

bool codec_from_name(std::string_view s, CodecId* out) noexcept {
  for (int i = 0; i < kCodecCount; ++i)
    if (codec_name(static_cast<CodecId>(i)) == s) {
      *out = static_cast<CodecId>(i);
      return true;
    }
  return false;
}

bool codec_id_valid(uint8_t id) noexcept { return id < kCodecCount; }

bool codec_supports(CodecId c, DType t) noexcept {
  switch (c) {
    case CodecId::raw:
    case CodecId::zstd: return true;
    case CodecId::float_ans:
    case CodecId::float_ans_trim:
      return fans::supports_float(t);
  }
  return false;
}

bool codec_supports_part(CodecId c, DType item) noexcept {
  return c == CodecId::float_ans ? fans::supports(item) : codec_supports(c, item);
}

size_t encode_bound(CodecId c, size_t n) noexcept {
  switch (c) {
    case CodecId::raw: return n;
    case CodecId::zstd: return ZSTD_compressBound(n);
    case CodecId::float_ans:
    case CodecId::float_ans_trim:
      return fans::encode_bound(n);
  }
  return n;
}

void encode_chunk(CodecId c, DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out,
                  const EncodeOptions& opt) {
  switch (c) {
    case CodecId::raw:
      out.assign(src, src + n);
      return;
    case CodecId::zstd: {
      out.resize(ZSTD_compressBound(n));
      // One context per thread: creating one per chunk costs more than small chunks take to compress.
      thread_local struct Ctx {
        ZSTD_CCtx* c = ZSTD_createCCtx();
        ~Ctx() { ZSTD_freeCCtx(c); }
      } ctx;
      size_t r = ZSTD_compressCCtx(ctx.c, out.data(), out.size(), src, n, opt.zstd_level);
      if (ZSTD_isError(r)) fail(Errc::codec, std::string("zstd: ") + ZSTD_getErrorName(r));
      out.resize(r);
      return;
    }
    case CodecId::float_ans:
    case CodecId::float_ans_trim:
      if (opt.substream_bits) {
        fans::Params p;
        p.sub_bits = opt.substream_bits;
        p.trim = c == CodecId::float_ans_trim;
        fans::encode_with(t, src, n, out, p);
      } else {
        fans::encode(t, src, n, out, c == CodecId::float_ans_trim);
      }
      return;
  }
  fail(Errc::codec, "unknown codec id " + std::to_string(int(c)));
}

Errc decode_chunk(CodecId c, DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n) noexcept {
  switch (c) {
    case CodecId::raw:
      if (src_n != dst_n) return Errc::codec;
      if (dst_n) std::memcpy(dst, src, dst_n);
      return Errc::ok;
    case CodecId::zstd: {
      thread_local struct Ctx {
        ZSTD_DCtx* d = ZSTD_createDCtx();
        ~Ctx() { ZSTD_freeDCtx(d); }
      } ctx;
      if (!ctx.d) return Errc::codec;
      if (!zstd_single_frame(src, src_n)) return Errc::codec;  // spec §6: one frame
      size_t r = ZSTD_decompressDCtx(ctx.d, dst, dst_n, src, src_n);
      if (ZSTD_isError(r) || r != dst_n) return Errc::codec;
      return Errc::ok;
    }
    case CodecId::float_ans:
      return fans::decode(t, src, src_n, dst, dst_n);
    case CodecId::float_ans_trim:
      return fans::decode(t, src, src_n, dst, dst_n, true);
  }
  return Errc::codec;
}

namespace {
// The workspace: [float-ans tables][zstd context], each 64-byte aligned from
// wherever the caller's block starts.
constexpr size_t kWsAlign = 64;
size_t round_up(size_t n) { return (n + kWsAlign - 1) / kWsAlign * kWsAlign; }
}  // namespace

size_t decode_workspace_size() noexcept {
  static_assert(kWsAlign % alignof(std::max_align_t) == 0);
  return kWsAlign + round_up(fans::tables_size()) + round_up(ZSTD_estimateDCtxSize());
}

Errc decode_chunk_ws(CodecId c, DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, void* ws,
                     size_t ws_n) noexcept {
  if (!ws || ws_n < decode_workspace_size()) return Errc::usage;
  uint8_t* base = static_cast<uint8_t*>(ws);
  base += (kWsAlign - reinterpret_cast<uintptr_t>(base) % kWsAlign) % kWsAlign;
  switch (c) {
    case CodecId::raw:
      return decode_chunk(c, t, src, src_n, dst, dst_n);
    case CodecId::zstd: {
      ZSTD_DCtx* d = ZSTD_initStaticDCtx(base + round_up(fans::tables_size()), round_up(ZSTD_estimateDCtxSize()));
      if (!d) return Errc::codec;
      if (!zstd_single_frame(src, src_n)) return Errc::codec;  // spec §6: one frame
      size_t r = ZSTD_decompressDCtx(d, dst, dst_n, src, src_n);
      if (ZSTD_isError(r) || r != dst_n) return Errc::codec;
      return Errc::ok;
    }
    case CodecId::float_ans:
    case CodecId::float_ans_trim:
      return fans::decode_with(t, src, src_n, dst, dst_n, c == CodecId::float_ans_trim, base);
  }
  return Errc::codec;
}

}  // namespace wc
