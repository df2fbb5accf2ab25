// Codec dispatch, and the two generic codecs (raw, zstd) that take any dtype.
#include "codec/codec.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_initStaticDCtx: a context in caller memory
#include <zstd.h>

#include "codec/byte_groups.h"
#include "codec/channel_shift.h"
#include "codec/fp8_pairs.h"
#include "codec/trim_patch.h"
#include "codec/float_ans.h"
#include "format/zframe.h"

namespace wc {

std::string_view codec_name(CodecId c) noexcept {
  switch (c) {
    case CodecId::raw: return "raw";
    case CodecId::zstd: return "zstd";
    case CodecId::float_ans: return "float-ans";
    case CodecId::float_ans_trim: return "float-ans-trim";
    case CodecId::float_ans_mixed: return "float-ans-mixed";
    case CodecId::float_ans_patch: return "float-ans-patch";
    case CodecId::float_ans_groups: return "float-ans-groups";
    case CodecId::float_ans_pairs: return "float-ans-pairs";
  }
  return "?";
}

bool codec_from_name(std::string_view s, CodecId* out) noexcept {
  for (CodecId c : kCodecs)
    if (codec_name(c) == s) {
      *out = c;
      return true;
    }
  return false;
}

bool codec_id_valid(uint8_t id) noexcept {
  for (CodecId c : kCodecs)
    if (uint8_t(c) == id) return true;
  return false;
}

bool codec_supports(CodecId c, DType t) noexcept {
  switch (c) {
    case CodecId::raw:
    case CodecId::zstd: return true;
    case CodecId::float_ans:
    case CodecId::float_ans_trim:
    case CodecId::float_ans_mixed:
    case CodecId::float_ans_patch:
    case CodecId::float_ans_groups:
    case CodecId::float_ans_pairs:
      return fans::supports_float(t);
  }
  return false;
}

bool codec_supports_part(CodecId c, DType item) noexcept {
  if (c == CodecId::float_ans_mixed || c == CodecId::float_ans_patch || c == CodecId::float_ans_groups ||
      c == CodecId::float_ans_pairs)
    return false;  // exact tensors only (FORMAT.md §4.4)
  return c == CodecId::float_ans ? fans::supports(item) : codec_supports(c, item);
}

size_t encode_bound(CodecId c, size_t n) noexcept {
  switch (c) {
    case CodecId::raw: return n;
    case CodecId::zstd: return ZSTD_compressBound(n);
    case CodecId::float_ans:
    case CodecId::float_ans_trim:
      return fans::encode_bound(n);
    case CodecId::float_ans_mixed:
    case CodecId::float_ans_patch:
    case CodecId::float_ans_groups:
    case CodecId::float_ans_pairs:
      return std::max(fans::encode_bound(n), 1 + ZSTD_compressBound(n));
  }
  return n;
}

namespace {

constexpr uint8_t kMixedZstdMode = 2;  // FLOAT_ANS.md §2: codec 4's zstd payload

void encode_zstd(const uint8_t* src, size_t n, std::vector<uint8_t>& out, size_t at, int level) {
  out.resize(at + ZSTD_compressBound(n));
  // One context per thread: creating one per chunk costs more than small chunks take to compress.
  thread_local struct Ctx {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ~Ctx() { ZSTD_freeCCtx(c); }
  } ctx;
  size_t r = ZSTD_compressCCtx(ctx.c, out.data() + at, out.size() - at, src, n, level);
  if (ZSTD_isError(r)) fail(Errc::codec, std::string("zstd: ") + ZSTD_getErrorName(r));
  out.resize(at + r);
}

// k >= 0: the symbol's mantissa bits forced (FP8 pairs: both exponents),
// joint >= 0 the sign's place likewise; at > 0: the payload after the first
// `at` bytes of out (a head, kept)
void encode_fans(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const EncodeOptions& opt, bool trim,
                 int k = -1, size_t at = 0, int joint = -1) {
  fans::Params p;
  if (opt.substream_bits) p.sub_bits = opt.substream_bits;
  p.trim = trim;
  p.k = k;
  p.joint = joint;
  p.size_only = opt.size_only;
  fans::encode_after(t, src, n, out, at, p);
}

// One zstd frame and nothing else (spec §6), exactly dst_n bytes.
Errc decode_zstd(ZSTD_DCtx* d, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n) noexcept {
  if (!d) return Errc::codec;
  if (!zstd_single_frame(src, src_n)) return Errc::codec;
  size_t r = ZSTD_decompressDCtx(d, dst, dst_n, src, src_n);
  if (ZSTD_isError(r) || r != dst_n) return Errc::codec;
  return Errc::ok;
}

// Mode 5 (FLOAT_ANS.md §2.3): the mode byte, then per block of
// groups::kBlockElems elements one zstd frame per byte plane (at level 1 on
// a chunk of kGroupsFastFrom bytes or more, where `level` is 3 or less).
void encode_groups(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, int level) {
  if (n >= kGroupsFastFrom && level <= 3) level = std::min(level, 1);
  const unsigned eb = dtype_bits(t) / 8;
  const size_t count = n / eb;
  thread_local std::vector<uint8_t> pl;
  out.assign(1, groups::kMode);
  for (size_t s = 0; s < count; s += groups::kBlockElems) {
    const size_t m = std::min(groups::kBlockElems, count - s);
    pl.resize(m);
    for (unsigned k = 0; k < eb; ++k) {
      groups::plane(src + s * eb, m, eb, k, pl.data());
      encode_zstd(pl.data(), m, out, out.size(), level);
    }
  }
}

// Each frame decodes into its plane of the block's scratch, then the block
// goes to dst in element order; the frames must end exactly at src_n.
Errc decode_groups(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, ZSTD_DCtx* zd,
                   uint8_t* scratch) noexcept {
  if (!groups::supports(t)) return Errc::codec;
  const unsigned eb = dtype_bits(t) / 8;
  const size_t count = dst_n / eb;
  size_t at = 1;
  for (size_t s = 0; s < count; s += groups::kBlockElems) {
    const size_t m = std::min(groups::kBlockElems, count - s);
    for (unsigned k = 0; k < eb; ++k) {
      const size_t f = ZSTD_findFrameCompressedSize(src + at, src_n - at);
      if (ZSTD_isError(f)) return Errc::codec;
      const Errc e = decode_zstd(zd, src + at, f, scratch + k * m, m);
      if (e != Errc::ok) return e;
      at += f;
    }
    groups::interleave(scratch, m, eb, dst + s * eb);
  }
  return at == src_n ? Errc::ok : Errc::codec;
}

// The chunk (n bytes) with every field moved back by the writer's shift, in
// a thread-local copy, and the shift's mode-3 header and list appended to
// `head` (modes 3 and 6 carry it); null where there is no shift or the chunk
// cannot carry it.
const uint8_t* unshifted(DType t, const uint8_t* src, size_t n, const EncodeOptions& opt, std::vector<uint8_t>& head) {
  const size_t eb = dtype_bits(t) / 8;
  thread_local std::vector<int16_t> list;
  thread_local std::vector<uint8_t> moved;
  shift::Chunk c;
  if (!opt.shift || !eb || !shift::chunk_of(*opt.shift, opt.first_elem, n / eb, list, &c)) return nullptr;
  moved.resize(n);
  shift::unapply(t, c, src, moved.data(), n / eb);
  shift::write_header(c, head);
  return moved.data();
}

// Whether out, a head of `at` bytes and then a payload encode_fans() put
// after it, is what the mode wants: a mode-1 payload, and the whole no
// larger than the chunk's n raw bytes (else float-ans's raw mode is smaller,
// and encode_bound holds).
bool headed_rans(const std::vector<uint8_t>& out, size_t at, size_t n) {
  return out.size() > at && out[at] == fans::layout::kModeRans && out.size() <= n;
}

// float-ans-trim's decode (codec 3's rules), with the workspace `fans_ws` when given.
Errc decode_fans_trim(DType t, const uint8_t* in, size_t in_n, uint8_t* dst, size_t dst_n, void* fans_ws) noexcept {
  return fans_ws ? fans::decode_with(t, in, in_n, dst, dst_n, true, fans_ws) : fans::decode(t, in, in_n, dst, dst_n, true);
}

// Mode 3 (FLOAT_ANS.md §2.1): the header and list, then a float-ans-trim
// payload of the shifted elements, written in place after the header. False
// where the chunk cannot carry the shift or float-ans falls back to its raw
// mode (out then holds anything: the caller codes the chunk otherwise).
bool encode_shifted(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const EncodeOptions& opt) {
  out.clear();
  const uint8_t* moved = unshifted(t, src, n, opt, out);
  if (!moved) return false;
  const size_t at = out.size();
  encode_fans(t, moved, n, out, opt, true, -1, at);
  return headed_rans(out, at, n);
}

// Mode 3's decode: list into `list` (kMaxEntries entries), the inner payload
// through float-ans (with the workspace `fans_ws` when given), then the shift.
Errc decode_shifted(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, int16_t* list,
                    void* fans_ws) noexcept {
  const size_t eb = dtype_bits(t) / 8;
  if (!list || !eb || dst_n % eb) return Errc::codec;
  shift::Chunk c;
  size_t at = 0;
  if (!shift::parse(t, src, src_n, dst_n / eb, list, &c, &at)) return Errc::codec;
  const Errc e = decode_fans_trim(t, src + at, src_n - at, dst, dst_n, fans_ws);
  if (e != Errc::ok) return e;
  shift::apply_owned(t, c, list, dst, dst_n / eb);
  return Errc::ok;
}

// Mode 4 (FLOAT_ANS.md §2.2): where a trim of more low bits pays with the
// few elements that spoil it listed whole (choice c), the header and list,
// then the mode-1 or mode-3 payload of the chunk with those elements' low
// bits cleared; replaces `out` when smaller, or (`always`) whenever it can
// be coded. True where it replaced `out`.
bool encode_patched(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const EncodeOptions& opt,
                    const patch::Choice& c, bool always) {
  const size_t eb = dtype_bits(t) / 8;
  if (!c.z) return false;
  thread_local std::vector<uint8_t> cleared, inner, head;
  cleared.resize(n);
  patch::clear_listed(t, c, src, cleared.data(), n / eb);
  if (!encode_shifted(t, cleared.data(), n, inner, opt)) encode_fans(t, cleared.data(), n, inner, opt, true);
  if (inner.empty() || (inner[0] != fans::layout::kModeRans && inner[0] != shift::kMode)) return false;
  patch::write_head(t, c, src, head);
  if (!always && head.size() + inner.size() >= out.size()) return false;
  out.assign(head.begin(), head.end());
  out.insert(out.end(), inner.begin(), inner.end());
  return true;
}

// Mode 6 (FLOAT_ANS.md §2.4): the head, the chunk's shift (mode 3's header
// and list) when the writer's plan has one, then a float-ans-trim payload
// of the (shifted) chunk's pair words as F16 elements (F16 geometry;
// any bits are lossless), written in place after the head. False where the
// chunk has no pair or float-ans falls back to its raw mode for them (out
// then holds anything: the caller codes the chunk otherwise).
bool encode_pairs(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const EncodeOptions& opt) {
  if (!pairs::supports(t) || n < 2) return false;
  const size_t words = n / 2;
  thread_local std::vector<uint8_t> packed;
  out.assign(pairs::kHeadBytes, 0);
  const uint8_t* moved = unshifted(t, src, n, opt, out);
  const uint8_t* from = moved ? moved : src;
  pairs::write_head(from, n, moved ? pairs::kFlagShift : 0, out.data());
  packed.resize(2 * words);
  pairs::pack_all(t, from, n, packed.data());
  // the symbol: both exponents, F16's exponent field and 2E - 5 bits below
  // it (on Whisper tiny.en 0.7% smaller than the mantissa bits the sampled
  // choice stops at, k <= 4; more bits than both exponents only lose), the
  // even element's sign raw (joint 0): pricing the joint sign as well
  // doubled the tables to plan for 0.013% of the bytes (Whisper tiny.en
  // E5M2 and E4M3; none on stories260K); without it the encode runs at
  // 0.90 against 0.81 (E5M2) and 0.90 against 0.86 GB/s (E4M3), best of 4
  // interleaved runs on one thread
  const size_t at = out.size();
  encode_fans(DType::F16, packed.data(), 2 * words, out, opt, true, int(2 * pairs::exp_bits(t)) - 5, at, 0);
  return headed_rans(out, at, n);
}

// Mode 6's decode: the head checked, the shift's list parsed into `list`
// when flagged, the inner mode-1 payload decoded as F16 pair words into dst
// (with the workspace `fans_ws` when given), the words rewritten in place as
// elements, the odd tail element, then the shift.
Errc decode_pairs(DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, int16_t* list,
                  void* fans_ws) noexcept {
  uint8_t flags = 0;
  if (!pairs::parse_head(t, src, src_n, dst_n, &flags)) return Errc::codec;
  size_t at = pairs::kHeadBytes;
  shift::Chunk c;
  if (flags & pairs::kFlagShift) {
    size_t inner = 0;
    if (!list || !shift::parse(t, src + at, src_n - at, dst_n, list, &c, &inner)) return Errc::codec;
    at += inner;
  }
  const uint8_t* in = src + at;
  const size_t in_n = src_n - at, words = dst_n / 2;
  if (in_n == 0 || in[0] != fans::layout::kModeRans) return Errc::codec;  // mode 1 only
  const Errc e = decode_fans_trim(DType::F16, in, in_n, dst, 2 * words, fans_ws);
  if (e != Errc::ok) return e;
  pairs::unpack_all(t, dst, words);
  if (dst_n % 2) dst[dst_n - 1] = src[1];
  if (flags & pairs::kFlagShift) shift::apply_owned(t, c, list, dst, dst_n);
  return Errc::ok;
}

// Codecs 4, 5, 7 and 8 (`c`; each reads the modes of the one before it and
// one more): a zstd frame (mode 2, through `zd`), a shifted payload (mode 3,
// its list in `list`), a float-ans-trim payload (modes 0 and 1, with the
// workspace `fans_ws` when given), from codec 5 on mode 4: its list checked,
// the inner mode-1 or mode-3 payload decoded, the list's values written,
// from codec 7 on mode 5: the byte planes through `zd`, regrouped through
// `groups_scratch`, and under codec 8 mode 6: FP8 pairs. A mode byte the
// codec does not read is float-ans's to refuse.
Errc decode_mixed(CodecId c, DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, int16_t* list,
                  void* fans_ws, ZSTD_DCtx* zd, uint8_t* groups_scratch) noexcept {
  const size_t eb = std::max<size_t>(1, dtype_bits(t) / 8);
  if (dst_n % eb) return Errc::codec;  // §1, whatever the mode
  const uint8_t mode = src_n ? src[0] : 0xFF;
  if (mode == kMixedZstdMode) return decode_zstd(zd, src + 1, src_n - 1, dst, dst_n);
  if (c >= CodecId::float_ans_groups && mode == groups::kMode)
    return groups_scratch ? decode_groups(t, src, src_n, dst, dst_n, zd, groups_scratch) : Errc::codec;
  if (c == CodecId::float_ans_pairs && mode == pairs::kMode) return decode_pairs(t, src, src_n, dst, dst_n, list, fans_ws);
  size_t at = 0;
  const bool patched = c != CodecId::float_ans_mixed && mode == patch::kMode;
  if (patched && !patch::parse(t, src, src_n, dst_n / eb, &at)) return Errc::codec;
  const uint8_t* in = src + at;
  const size_t in_n = src_n - at;
  Errc e;
  if (in_n && in[0] == shift::kMode) e = decode_shifted(t, in, in_n, dst, dst_n, list, fans_ws);
  else e = decode_fans_trim(t, in, in_n, dst, dst_n, fans_ws);
  if (e != Errc::ok) return e;
  if (patched) patch::apply(t, src, src_n, dst);
  return Errc::ok;
}

int16_t* thread_list() noexcept {
  thread_local std::unique_ptr<int16_t[]> list(new (std::nothrow) int16_t[shift::kMaxEntries]);
  return list.get();
}

uint8_t* thread_groups_scratch() noexcept {
  thread_local std::unique_ptr<uint8_t[]> s(new (std::nothrow) uint8_t[groups::kScratchBytes]);
  return s.get();
}

ZSTD_DCtx* thread_dctx() noexcept {
  thread_local struct Ctx {
    ZSTD_DCtx* d = ZSTD_createDCtx();
    ~Ctx() { ZSTD_freeDCtx(d); }
  } ctx;
  return ctx.d;
}

}  // namespace

void encode_chunk(CodecId c, DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out,
                  const EncodeOptions& opt) {
  switch (c) {
    case CodecId::raw:
      out.assign(src, src + n);
      return;
    case CodecId::zstd:
      encode_zstd(src, n, out, 0, opt.zstd_level);
      return;
    case CodecId::float_ans:
    case CodecId::float_ans_trim:
      encode_fans(t, src, n, out, opt, c == CodecId::float_ans_trim);
      return;
    case CodecId::float_ans_mixed:
    case CodecId::float_ans_patch:
    case CodecId::float_ans_groups:
    case CodecId::float_ans_pairs: {
      // codec 8 codes FP8 as pairs (the writer chose it for their decode
      // speed) and everything else as codec 7
      const bool paired = c == CodecId::float_ans_pairs && encode_pairs(t, src, n, out, opt);
      // mode 4 (codecs 5, 7, 8 with try_patch): the coding without it is
      // tried as well unless the patch is sure to win (patch::sure)
      const size_t eb = dtype_bits(t) / 8;
      patch::Choice pc;  // (z = 0: none)
      if (!paired && c != CodecId::float_ans_mixed && opt.try_patch && eb && n % eb == 0)
        pc = patch::choose(t, src, n / eb);
      const bool done =
          paired || (pc.z && patch::sure(pc, n / eb, unsigned(eb)) && encode_patched(t, src, n, out, opt, pc, true));
      if (!done) {
        if (!encode_shifted(t, src, n, out, opt)) encode_fans(t, src, n, out, opt, true);
        encode_patched(t, src, n, out, opt, pc, false);  // (nothing where pc.z is 0)
      }
      if (opt.mixed_try_zstd) choose_zstd(c, t, src, n, out, opt, paired);
      return;
    }
  }
  fail(Errc::codec, "unknown codec id " + std::to_string(int(c)));
}

void choose_zstd(CodecId c, DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const EncodeOptions& opt,
                 bool paired, const std::vector<uint8_t>* frame, const std::vector<uint8_t>* planes) {
  thread_local std::vector<uint8_t> z;
  z.assign(1, kMixedZstdMode);
  if (frame) z.insert(z.end(), frame->begin(), frame->end());
  else encode_zstd(src, n, z, 1, opt.zstd_level);
  // the planes where zstd came close (as the writer's plan prices them):
  // where zstd trails float-ans by more, they rarely win and would halve
  // the encode speed; and on small chunks, where they cost little
  const bool try_planes = c >= CodecId::float_ans_groups && groups::supports(t) &&
                          (double(z.size()) <= kGroupsTry * double(out.size()) || n < kGroupsAlwaysBelow);
  if (double(z.size()) < zstd_bar(paired) * double(out.size())) out.swap(z);
  if (try_planes) {
    if (planes) z.assign(planes->begin(), planes->end());
    else encode_groups(t, src, n, z, opt.zstd_level);
    if (z.size() < out.size()) out.swap(z);
  }
}

void encode_byte_groups(DType t, const uint8_t* src, size_t n, std::vector<uint8_t>& out, const EncodeOptions& opt) {
  if (!groups::supports(t)) fail(Errc::usage, "byte groups: a 16- or 32-bit float dtype only");
  encode_groups(t, src, n, out, opt.zstd_level);
}

Errc decode_chunk(CodecId c, DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n) noexcept {
  switch (c) {
    case CodecId::raw:
      if (src_n != dst_n) return Errc::codec;
      if (dst_n) std::memcpy(dst, src, dst_n);
      return Errc::ok;
    case CodecId::zstd:
      return decode_zstd(thread_dctx(), src, src_n, dst, dst_n);
    case CodecId::float_ans:
      return fans::decode(t, src, src_n, dst, dst_n);
    case CodecId::float_ans_trim:
      return fans::decode(t, src, src_n, dst, dst_n, true);
    case CodecId::float_ans_mixed:
    case CodecId::float_ans_patch:
      return decode_mixed(c, t, src, src_n, dst, dst_n, thread_list(), nullptr, thread_dctx(), nullptr);
    case CodecId::float_ans_groups:
    case CodecId::float_ans_pairs: {
      uint8_t* scratch = thread_groups_scratch();
      if (!scratch) return Errc::codec;  // no memory for it: refused rather than misread
      return decode_mixed(c, t, src, src_n, dst, dst_n, thread_list(), nullptr, thread_dctx(), scratch);
    }
  }
  return Errc::codec;
}

namespace {
// The workspace: [float-ans tables][zstd context][shift list][byte groups'
// scratch], each 64-byte aligned from wherever the caller's block starts.
constexpr size_t kWsAlign = 64;
size_t round_up(size_t n) { return (n + kWsAlign - 1) / kWsAlign * kWsAlign; }
}  // namespace

size_t decode_workspace_size() noexcept {
  static_assert(kWsAlign % alignof(std::max_align_t) == 0);
  return kWsAlign + round_up(fans::tables_size()) + round_up(ZSTD_estimateDCtxSize()) +
         round_up(shift::kMaxEntries * sizeof(int16_t)) + round_up(groups::kScratchBytes);
}

Errc decode_chunk_ws(CodecId c, DType t, const uint8_t* src, size_t src_n, uint8_t* dst, size_t dst_n, void* ws,
                     size_t ws_n) noexcept {
  if (!ws || ws_n < decode_workspace_size()) return Errc::usage;
  uint8_t* base = static_cast<uint8_t*>(ws);
  base += (kWsAlign - reinterpret_cast<uintptr_t>(base) % kWsAlign) % kWsAlign;
  switch (c) {
    case CodecId::raw:
      return decode_chunk(c, t, src, src_n, dst, dst_n);
    case CodecId::zstd:
    case CodecId::float_ans_mixed:
    case CodecId::float_ans_patch:
    case CodecId::float_ans_groups:
    case CodecId::float_ans_pairs: {
      uint8_t* zws = base + round_up(fans::tables_size());
      const bool grouped = c >= CodecId::float_ans_groups;
      // the zstd context is built only for a chunk that is a zstd frame
      const bool z = c == CodecId::zstd || (src_n && (src[0] == kMixedZstdMode || (grouped && src[0] == groups::kMode)));
      ZSTD_DCtx* d = z ? ZSTD_initStaticDCtx(zws, round_up(ZSTD_estimateDCtxSize())) : nullptr;
      if (c == CodecId::zstd) return decode_zstd(d, src, src_n, dst, dst_n);
      uint8_t* after = zws + round_up(ZSTD_estimateDCtxSize());
      int16_t* list = reinterpret_cast<int16_t*>(after);
      uint8_t* scratch = grouped ? after + round_up(shift::kMaxEntries * sizeof(int16_t)) : nullptr;
      return decode_mixed(c, t, src, src_n, dst, dst_n, list, base, d, scratch);
    }
    case CodecId::float_ans:
    case CodecId::float_ans_trim:
      return fans::decode_with(t, src, src_n, dst, dst_n, c == CodecId::float_ans_trim, base);
  }
  return Errc::codec;
}

}  // namespace wc
