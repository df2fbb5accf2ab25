// The phases of the float-ans decode kernel (gpu/float_ans_decode.cu) as
// host/device functions: the kernel is barriers and warp votes around them,
// and the CPU emulation (tests/test_gpu_emulation.cpp) runs the same
// functions in the kernel's decomposition (thread 0's preparation, batches of
// one group per warp, 32 lanes stepping together with a ballot), so the CPU
// checks the kernel's logic on every test tensor and corpus chunk. The
// arithmetic is codec/ans_layout.h's, shared with the CPU decoders.
//
// Codecs: float-ans (2), float-ans-trim (3: header byte 3's z may be > 0)
// and float-ans-mixed (4) modes 0, 1 and 3 (spec/FLOAT_ANS.md §2). A codec-4
// chunk of mode 2 is a zstd frame: the block writes nothing and reports
// kHostZstd, and the host decodes it (wc::decode_chunk).
//
// Decomposition: one thread block per chunk. Thread 0 parses the chunk (a
// mode-3 chunk: the shift's header, its list checked but not kept, then the
// inner mode-1 payload, which every later phase reads as the chunk), checks
// its word counts, normalises the table and builds the slot tables in
// shared memory. Warp w then decodes group b0 + w of each batch of nwarps
// groups (thread 0 first prefix-sums the batch's word counts): lane l holds
// sub-stream j0 + l; at step t every lane with an element decodes it
// (lane_step), the lanes that need a renormalisation word take consecutive
// words of the group's stream in lane order (ballot + popcount prefix,
// lane_take). A mode-3 chunk then has thread 0 read its list again, into the
// shared memory the slot tables held (shift_fill), and every thread adds
// the shift to every nt-th element (shift_apply, codec/channel_shift.h's
// apply_one: the CPU decoder's arithmetic).
// Plain C++ includes this header too: nothing here needs the CUDA toolkit.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "codec/ans_layout.h"
#include "codec/channel_shift.h"  // apply_one, kMaxEntries (its other declarations are host-only)

namespace wc::fans::gpu {

using namespace wc::fans::layout;

// One chunk: device pointers and sizes (dst_n is the chunk's raw size).
struct Chunk {
  const uint8_t* src;
  uint64_t src_n;
  uint8_t* dst;
  uint64_t dst_n;
};

// Status codes written per chunk. kUnsupported: the chunk may be valid but
// exceeds the launch's limits (prob_bits above max_prob_bits, a shift list
// longer than the shared memory holds) or the codec is not a float-ans one;
// kHostZstd: a float-ans-mixed chunk of mode 2 (a zstd frame). Neither writes
// to dst: the host decodes those chunks (wc::decode_chunk), and its verdict
// on their validity is the only one.
enum : int { kOk = 0, kCorrupt = 1, kUnsupported = 2, kHostZstd = 3 };

// Codec ids (codec/codec.h CodecId) and payload modes (spec §2) the kernel knows.
enum : uint32_t { kCodecFloatAns = 2, kCodecFloatAnsTrim = 3, kCodecFloatAnsMixed = 4 };
enum : uint32_t { kModeZstd = 2, kModeShift = 3 };
static_assert(kModeShift == shift::kMode, "spec 2.1 mode byte");

// Whether the kernel decodes a chunk of `codec` whose payload starts with
// `mode` (its first byte): false for a float-ans-mixed zstd chunk (mode 2)
// and for codecs other than 2, 3 and 4, which the host decodes. A loader
// that holds the first bytes can route chunks before the launch; one that
// does not reads the status (kHostZstd, kUnsupported).
WC_HD bool kernel_takes(uint32_t codec, uint8_t mode) {
  if (codec < kCodecFloatAns || codec > kCodecFloatAnsMixed) return false;
  return !(codec == kCodecFloatAnsMixed && mode == kModeZstd);
}

// Dynamic shared memory: slot u32[M] | vals u16[M + 2] | f u16[kMaxAlphabet] |
// q u8[kMaxAlphabet] (M = 2^max_pb). Until build_slots, slot and vals hold
// normalize_freqs's workspace: order u16[2 * 2^pb] and counts u16[2^pb + 1],
// pb <= max_pb (both scale with M, so checking the largest M suffices).
static_assert(norm_order_entries(kMaxProbBits) * 2 <= 4 * kMaxTableSlots, "order fits slot");
static_assert(norm_count_entries(kMaxProbBits) <= kMaxTableSlots + 2, "counts fit vals");
WC_HD size_t smem_for(uint32_t pb) {
  const size_t M = size_t(1) << pb;
  return 4 * M + 2 * (M + 2) + 2 * kMaxAlphabet + kMaxAlphabet;
}
// After the groups, the same memory holds a mode-3 chunk's list (int16 per
// entry). The launch's dynamic shared memory: the tables' size, or more when
// the caller asks for lists of up to max_list entries; and the entries that
// memory holds (chunks with longer lists report kUnsupported). At
// max_prob_bits 12 the tables' 73,732 bytes hold 36,866 entries: every
// column list of a tensor up to that many columns, and every row list of
// chunks that span fewer rows, at no cost in occupancy.
WC_HD size_t smem_bytes(uint32_t max_pb, uint32_t max_list) {
  const size_t t = smem_for(max_pb), l = 2 * size_t(max_list);
  return t > l ? t : l;
}
WC_HD uint32_t list_capacity(size_t smem_n) {
  return smem_n / 2 < shift::kMaxEntries ? uint32_t(smem_n / 2) : shift::kMaxEntries;
}

struct Smem {
  uint32_t* slot;
  uint16_t* vals;
  uint16_t* f;
  uint8_t* q;
};
WC_HD Smem smem_parts(uint8_t* smem, uint32_t max_pb) {
  const size_t M = size_t(1) << max_pb;
  Smem s;
  s.slot = reinterpret_cast<uint32_t*>(smem);
  s.vals = reinterpret_cast<uint16_t*>(smem + 4 * M);
  s.f = reinterpret_cast<uint16_t*>(smem + 4 * M + 2 * (M + 2));
  s.q = reinterpret_cast<uint8_t*>(s.f + kMaxAlphabet);
  return s;
}

// ---- mode 3 (codec 4): per-channel shift, spec §2.1 ---------------------------------
// Element e of the chunk takes entry ((o + e) / L) mod P of the list; its
// field (the exponent and the top g mantissa bits: bits s .. W - 2) moves by
// that entry, modulo 2^(E+g).
struct ShiftHead {
  uint32_t on;   // 1: a mode-3 chunk (the fields below are set)
  uint32_t egk;  // Exp-Golomb order of the list
  uint32_t L, P, o;
  uint32_t W;    // element bits
  uint32_t s;    // the field's shift
  uint32_t fmask;  // the field's mask (2^(E+g) - 1); |d| <= fmask
};
inline constexpr size_t kShiftHeaderBytes = 16;  // shift::kHeaderBytes
static_assert(kShiftHeaderBytes == shift::kHeaderBytes, "spec 2.1 header");

// LSB-first reader of Exp-Golomb codes (spec §5 item 2, §2.1's list) with
// a 64-bit window refilled a byte at a time: one code is a count of trailing
// zeros, a shift and a mask, where BitReader::eg takes a dependent step per
// bit (5.4 bits per code on a 4,096-column list; thread 0 reads every entry
// of a list twice, and a column shift puts its list in every chunk). Accepts and returns exactly
// what BitReader::eg does: a code with z > 24 or one that runs past the end
// is invalid. Bytes past the end enter the window as zeros and are never
// used.
WC_HD uint32_t ctz64(uint64_t v) {  // v != 0
#ifdef __CUDA_ARCH__
  return uint32_t(__ffsll(static_cast<long long>(v)) - 1);
#else
  return uint32_t(__builtin_ctzll(v));
#endif
}
struct EgReader {
  const uint8_t* p;
  size_t n;       // bytes
  size_t next;    // next byte to load
  uint64_t win;   // unread bits, LSB first (zero above `have`)
  uint32_t have;  // bits in win
  uint64_t pos;   // bits read
  WC_HD EgReader(const uint8_t* p_, size_t n_) : p(p_), n(n_), next(0), win(0), have(0), pos(0) {}
  WC_HD void fill() {
    while (have <= 56) {
      const uint64_t b = next < n ? p[next] : 0;
      win |= b << have;
      have += 8;
      ++next;
    }
  }
  WC_HD bool eg(uint32_t k, uint32_t* u) {
    fill();  // >= 57 bits: a valid code has at most 2 * 24 + 1 + 3 = 52
    const uint32_t z = win ? ctz64(win) : 64;
    if (z > 24) return false;
    const uint32_t len = 2 * z + 1 + k;
    if (pos + len > 8 * uint64_t(n)) return false;
    *u = ((1u << (z + k)) - (1u << k)) + uint32_t((win >> (z + 1)) & ((uint64_t(1) << (z + k)) - 1u));
    win >>= len;
    have -= len;
    pos += len;
    return true;
  }
  // The bits up to the next byte boundary are zero (they lie in the stream).
  WC_HD bool zero_padding() {
    fill();
    const uint32_t pad = uint32_t((8 - (pos & 7)) & 7);
    return (win & ((uint64_t(1) << pad) - 1u)) == 0;
  }
};

// Reads the list bit-stream after the 16-byte header: P Exp-Golomb codes of
// order egk, each |d| < 2^(E+g), zero padding to a byte. Stores the entries
// in d when d is not null. *end: the offset of the byte after the list.
WC_HD bool shift_read_list(const uint8_t* src, size_t src_n, const ShiftHead& h, int16_t* d, size_t* end) {
  EgReader br(src + kShiftHeaderBytes, src_n - kShiftHeaderBytes);
  const int32_t lim = int32_t(h.fmask) + 1;
  for (uint32_t i = 0; i < h.P; ++i) {
    uint32_t u;
    if (!br.eg(h.egk, &u)) return false;
    const int32_t v = int32_t(zigzag_dec(u));
    if (v <= -lim || v >= lim) return false;
    if (d) d[i] = int16_t(v);
  }
  if (!br.zero_padding()) return false;  // padding must be zero
  *end = kShiftHeaderBytes + size_t((br.pos + 7) / 8);
  return true;
}

// Parses and checks a mode-3 payload up to its inner mode-1 payload, which
// starts at *inner (the float-ans phases check the rest): every rule of
// spec §2.1 that codec/channel_shift.cpp's parse checks, in device code.
WC_HD bool parse_shift(uint32_t dtype_id, const uint8_t* src, size_t src_n, uint64_t dst_n, ShiftHead* h,
                       size_t* inner) {
  Geometry G;
  if (src_n < kShiftHeaderBytes || src[0] != kModeShift || !geometry_for(dtype_id, &G)) return false;
  const uint32_t eb = G.W / 8;
  if (dst_n % eb) return false;
  const uint64_t n = dst_n / eb;
  const uint32_t g = src[1] & 15u;
  h->egk = src[1] >> 4;
  if (h->egk > shift::kMaxEgk || g > G.m || G.E + g > 15 || src[2] != 0 || src[3] != 0) return false;
  h->W = G.W;
  h->s = G.W - 1 - G.E - g;
  h->fmask = (1u << (G.E + g)) - 1u;
  h->L = load32(src + 4);
  h->P = load32(src + 8);
  h->o = load32(src + 12);
  if (h->L == 0 || h->P == 0 || h->P > n || h->P > shift::kMaxEntries ||
      uint64_t(h->o) >= uint64_t(h->L) * h->P)
    return false;
  size_t at = 0;
  if (!shift_read_list(src, src_n, *h, nullptr, &at)) return false;
  if (at >= src_n || src[at] != kModeRans) return false;
  h->on = 1;
  *inner = at;
  return true;
}

// Thread 0, after the groups (the slot tables are no longer read): the list
// into d (list_capacity entries; the caller checked P fits). The header was
// valid in block_prepare, so this reads the same list again.
WC_HD void shift_fill(const Chunk& c, const ShiftHead& h, int16_t* d) {
  size_t end;
  (void)shift_read_list(c.src, c.src_n, h, d, &end);
}

// Every thread, after shift_fill: thread tid of nt adds the shift to
// elements tid, tid + nt, ... of the decoded chunk in place. The entry of
// the next element follows from the current one by one add and at most two
// compares (no division per element).
WC_HD uint32_t load_value(const uint8_t* dst, uint64_t i, uint32_t W) {
  const uint8_t* p = dst + i * (W / 8);
  if (W == 8) return p[0];
  if (W == 16) return load16(p);
  return load32(p);
}
WC_HD void shift_apply(const Chunk& c, const ShiftHead& h, const int16_t* d, uint32_t tid, uint32_t nt) {
  const uint64_t n = c.dst_n / (h.W / 8);
  const uint32_t wmask = h.W == 32 ? 0xFFFFFFFFu : (1u << h.W) - 1u;
  const uint32_t fm = h.fmask << h.s;
  const uint64_t pos = uint64_t(h.o) + tid;  // (o + e) for e = tid
  uint64_t r = pos % h.L, q = (pos / h.L) % h.P;
  const uint64_t rem = nt % h.L, adv = (nt / h.L) % h.P;
  for (uint64_t e = tid; e < n; e += nt) {
    const uint32_t ds = (uint32_t(int32_t(d[q])) << h.s) & wmask;  // d << s (mod 2^W)
    store_value(c.dst, e, h.W, shift::apply_one(load_value(c.dst, e, h.W), ds, fm));
    r += rem;
    q += adv;
    if (r >= h.L) { r -= h.L; ++q; }
    if (q >= h.P) q -= h.P;
  }
}

// Thread 0, first: everything before the groups. Returns the chunk's status.
// `in` receives the float-ans payload every later phase reads: the chunk
// itself, or a mode-3 chunk's inner payload (same dst); `sh` its shift
// (sh.on = 0 for other modes). list_cap: the list entries the block's
// shared memory holds (list_capacity).
WC_HD int block_prepare(const Chunk& c, uint32_t codec, uint32_t dtype_id, uint32_t max_pb, uint32_t list_cap,
                        ChunkLayout& L, Chunk& in, ShiftHead& sh, const Smem& S) {
  in = c;
  sh.on = 0;
  if (codec < kCodecFloatAns || codec > kCodecFloatAnsMixed) return kUnsupported;
  if (codec == kCodecFloatAnsMixed && c.src_n >= 1) {
    if (c.src[0] == kModeZstd) return kHostZstd;
    if (c.src[0] == kModeShift) {
      size_t at = 0;
      if (!parse_shift(dtype_id, c.src, c.src_n, c.dst_n, &sh, &at)) return kCorrupt;
      in.src = c.src + at;
      in.src_n = c.src_n - at;
    }
  }
  // codec 2 requires z = 0; codecs 3 and 4 read it (a mode-3 chunk's inner
  // payload is a codec-3 one)
  if (!parse_chunk(dtype_id, in.src, in.src_n, in.dst_n, &L, S.q, codec != kCodecFloatAns)) return kCorrupt;
  if (L.mode != kModeRans) return kOk;  // raw (never after a shift: parse_shift wants mode 1)
  if (L.h.prob_bits > max_pb) return kUnsupported;
  if (sh.on && sh.P > list_cap) return kUnsupported;
  if (!check_counts(in.src, L)) return kCorrupt;
  if (!normalize_freqs(S.q, L.count, L.h.qshift, L.h.prob_bits, S.f, reinterpret_cast<uint16_t*>(S.slot), S.vals))
    return kCorrupt;  // workspace sized for max_pb >= prob_bits (see smem_for)
  build_slots(S.f, L.count, L.lo, L.s, S.slot, S.vals);
  return kOk;
}

// A raw chunk: thread tid of nt copies every nt-th byte.
WC_HD void raw_copy(const Chunk& c, uint32_t tid, uint32_t nt) {
  for (uint64_t i = tid; i < c.dst_n; i += nt) c.dst[i] = c.src[1 + i];
}

// Thread 0, before each batch of nwarps groups from b0: the word offset of
// each warp's group (scan[k]), advancing `running` past the batch.
WC_HD void batch_scan(const Chunk& c, const ChunkLayout& L, uint64_t b0, uint32_t nwarps, uint64_t* scan,
                      uint64_t& running) {
  uint64_t acc = running;
  for (uint32_t k = 0; k < nwarps; ++k) {
    const uint64_t g = b0 + k;
    scan[k] = acc;
    if (g + 1 < L.ngroups) acc += load32(c.src + L.counts_off + 4 * g);
  }
  running = acc;
}

// One group, as every lane of its warp sees it.
struct Group {
  uint64_t j0;      // first sub-stream
  uint64_t steps;   // steps of its longest lane (the first)
  uint32_t lanes;   // lanes with a sub-stream
  uint32_t words;   // words of its stream
  const uint8_t* wp;  // its stream
};
WC_HD Group group_begin(const Chunk& c, const ChunkLayout& L, uint64_t g, uint64_t before) {
  Group G;
  G.j0 = g * kGroupLanes;
  G.steps = substream_len(L, G.j0);
  G.lanes = group_lanes(L, g);
  G.words = word_count(c.src, L, g, before);
  G.wp = c.src + L.streams_off + 2 * before;
  return G;
}

struct Lane {
  uint32_t x;
  bool ok;
  bool mine;  // the lane has a sub-stream
};
WC_HD Lane lane_begin(const Chunk& c, const ChunkLayout& L, const Group& G, uint32_t lane) {
  Lane s;
  s.mine = lane < G.lanes;
  s.x = s.mine ? load32(c.src + L.states_off + 4 * (G.j0 + lane)) : kLowerBound;
  s.ok = s.x >= kLowerBound;
  return s;
}
// Step t: decodes the lane's element, if it has one. Returns whether the lane
// needs a renormalisation word (the warp's ballot).
WC_HD bool lane_step(const Chunk& c, const ChunkLayout& L, const Smem& S, const Group& G, Lane& s, uint64_t t,
                     uint32_t lane) {
  const uint64_t i = t * L.nsub + G.j0 + lane;
  return s.mine && i < L.n &&
         lane_decode(L.s, L.h.prob_bits, S.slot, S.vals, s.x, i, c.src + L.plane_off, L.plane_n, c.dst);
}
WC_HD uint32_t popcount32(uint32_t v) {
#ifdef __CUDA_ARCH__
  return uint32_t(__popc(v));
#else
  return uint32_t(__builtin_popcount(v));
#endif
}
// A lane that needs a word takes word `used` + (lanes below it that need one).
WC_HD void lane_take(const Group& G, Lane& s, uint64_t used, uint32_t ballot, uint32_t lane) {
  lane_refill(s.x, G.wp, G.words, used + popcount32(ballot & ((1u << lane) - 1u)), s.ok);
}
// After the last step: the lane ended well; the group also needs used == words.
WC_HD bool lane_end(const Lane& s) { return s.ok && s.x == kLowerBound; }

}  // namespace wc::fans::gpu
