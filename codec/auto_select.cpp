#include "codec/auto_select.h"

#include "codec/byte_groups.h"
#include "codec/fp8_pairs.h"
#include "codec/trim_patch.h"
#include "format/bytes.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

namespace wc {

namespace {

// Whether some element of `eb` bytes (1, 2 or 4) has bit 0 set: the lowest
// mantissa bit of every float type. Blocks of 4 KiB stop at the first block
// with the bit: real weights answer in the first block instead of a scan of
// the whole tensor (7 ms of a 32 MiB one).
bool any_bit0(unsigned eb, const uint8_t* data, uint64_t byte_size) {
  const uint64_t n = byte_size / eb * eb;  // whole elements
  constexpr uint64_t kBlock = 4096;        // a multiple of every eb
  for (uint64_t b = 0; b < n; b += kBlock)
    if (or_elements(data + b, std::min(n, b + kBlock) - b, eb) & 1u) return true;
  return false;
}

}  // namespace

bool low_bits_zero(DType t, const uint8_t* data, uint64_t byte_size) {
  if (t != DType::F32 && t != DType::F16 && t != DType::BF16) return false;
  return byte_size > 0 && !any_bit0(t == DType::F32 ? 4 : 2, data, byte_size);
}

namespace {
std::atomic<bool> g_full_zstd{false}, g_unshifted_trial{false};
}  // namespace

void force_full_zstd_trials(bool on) noexcept { g_full_zstd.store(on, std::memory_order_relaxed); }
void force_unshifted_trials(bool on) noexcept { g_unshifted_trial.store(on, std::memory_order_relaxed); }

namespace {

// The distance between the starts of the kZstdSlices slices of n bytes
// (n >= 2 * kZstdSlices * kZstdSliceBytes) that zstd_estimate and
// zstd_floor read: spread over n, 64-byte aligned.
uint64_t slice_span(uint64_t n) { return (n - kZstdSliceBytes) / (kZstdSlices - 1) / 64 * 64; }

}  // namespace

// The slices share one frame's window, so repeats between them count: the
// estimate errs towards zstd, and a full trial then decides.
uint64_t zstd_estimate(const uint8_t* data, uint64_t n, const EncodeOptions& opt) {
  if (n < 2 * kZstdSlices * kZstdSliceBytes) return 0;
  thread_local std::vector<uint8_t> gathered, coded;
  gathered.resize(kZstdSlices * kZstdSliceBytes);
  const uint64_t span = slice_span(n);
  for (uint64_t i = 0; i < kZstdSlices; ++i)
    std::memcpy(gathered.data() + i * kZstdSliceBytes, data + i * span, kZstdSliceBytes);
  encode_chunk(CodecId::zstd, DType::U8, gathered.data(), gathered.size(), coded, opt);
  return uint64_t(double(coded.size()) * double(n) / double(gathered.size()));
}

namespace {

// Byte counts of [p, p + n) added into h (four banks: runs of one byte value
// do not wait on one counter).
void count_bytes(const uint8_t* p, uint64_t n, uint32_t (*h)[256]) {
  uint64_t i = 0;
  for (; i + 4 <= n; i += 4) ++h[0][p[i]], ++h[1][p[i + 1]], ++h[2][p[i + 2]], ++h[3][p[i + 3]];
  for (; i < n; ++i) ++h[0][p[i]];
}

}  // namespace

uint64_t zstd_floor(const uint8_t* data, uint64_t n) {
  if (n == 0) return 0;
  uint32_t h[4][256] = {};
  uint64_t counted = n;
  if (n < 2 * kZstdSlices * kZstdSliceBytes) {
    count_bytes(data, n, h);
  } else {
    const uint64_t span = slice_span(n);
    for (uint64_t i = 0; i < kZstdSlices; ++i) count_bytes(data + i * span, kZstdSliceBytes, h);
    counted = kZstdSlices * kZstdSliceBytes;
  }
  double bits = 0;
  for (unsigned v = 0; v < 256; ++v) {
    const double c = double(h[0][v]) + h[1][v] + h[2][v] + h[3][v];
    if (c > 0) bits -= c * std::log2(c / double(counted));
  }
  return uint64_t(bits / 8 * double(n) / double(counted));
}

namespace {

// repeat_rate's lookups of `Word`-byte words (the width fixed: one load a
// sample, where a width chosen per sample cost a byte-by-byte copy).
template <size_t Word>
unsigned repeats_of(const uint8_t* data, size_t n, size_t stride) {
  constexpr unsigned kBits = 12;
  uint64_t seen[1u << kBits];
  uint8_t used[1u << kBits] = {};
  unsigned samples = 0, repeats = 0;
  for (size_t off = 0; off + Word <= n; off += stride) {
    uint64_t w = 0;
    std::memcpy(&w, data + off, Word);
    const uint32_t h = uint32_t((w * 0x9E3779B97F4A7C15ull) >> (64 - kBits));
    if (used[h] && seen[h] == w) ++repeats;
    else {
      seen[h] = w;
      used[h] = 1;
    }
    ++samples;
  }
  return unsigned(uint64_t(repeats) * 1024 / samples);
}

}  // namespace

unsigned repeat_rate(DType t, const uint8_t* data, size_t n) {
  const size_t eb = std::max<size_t>(1, dtype_bits(t) / 8);
  const size_t word = eb == 1 ? 4 : std::min<size_t>(8, 2 * eb);
  if (n < 2 * word) return 0;
  size_t stride = word;
  while (stride * 2 * 2048 <= n) stride *= 2;  // a power of two: rows of 2^k-multiple bytes line up
  return word == 4 ? repeats_of<4>(data, n, stride) : repeats_of<8>(data, n, stride);
}

bool flag_tries_zstd(uint8_t flag, DType t, const uint8_t* chunk, size_t n) {
  return flag == kTryZstdIfRepeats ? repeat_rate(t, chunk, n) >= kRepeatTryZstd : flag != 0;
}

bool chunk_tries_zstd(const CodecPlan& plan, DType t, uint32_t j, const uint8_t* chunk, size_t n) {
  return plan.try_zstd.empty() || flag_tries_zstd(plan.try_zstd[j], t, chunk, n);
}

EncodeOptions chunk_options(const EncodeOptions& base, const CodecPlan& plan, DType t, uint32_t chunk_size, uint32_t j,
                            const uint8_t* chunk, size_t n) {
  EncodeOptions ce = base;
  if (!plan.try_zstd.empty()) ce.mixed_try_zstd = chunk_tries_zstd(plan, t, j, chunk, n);
  ce.try_patch = plan.try_patch;
  if (!plan.shift.d.empty()) {
    ce.shift = &plan.shift;
    ce.first_elem = uint64_t(j) * chunk_size / (dtype_bits(t) / 8);
  }
  return ce;
}

CodecPlan plan_codec(DType t, const uint8_t* data, uint64_t byte_size, uint32_t chunk_size, const EncodeOptions& opt,
                     uint64_t cols) {
  CodecPlan plan;
  const uint64_t chunks = (byte_size + chunk_size - 1) / chunk_size;
  uint64_t picks[3] = {0, chunks / 2, chunks - 1};
  const size_t npicks = size_t(std::unique(picks, picks + 3) - picks);
  auto chunk_at = [&](uint64_t c) { return std::min<uint64_t>(chunk_size, byte_size - c * chunk_size); };
  // Trial k of the picks into `b` (by pick, not chunk index)
  auto coded_into = [&](CodecId c, size_t k, std::vector<uint8_t>& b, const EncodeOptions& o) {
    encode_chunk(c, t, data + picks[k] * chunk_size, size_t(chunk_at(picks[k])), b, o);
    return uint64_t(b.size());
  };
  // The trials' bytes, kept for the chunks whose final coding is one of
  // them: zstd's, and the per-element coding's best so far with what coded
  // it (`fkey`: the codec, whether it tried mode 4, whether it was shifted).
  struct Key {
    CodecId c = CodecId::float_ans;
    bool patch = false, shifted = false;
  };
  std::vector<uint8_t> zb[3], fb[3];
  Key fkey;
  uint64_t raw = 0, zs[3] = {}, zstd = 0;
  for (size_t k = 0; k < npicks; ++k) raw += chunk_at(picks[k]);
  if (!codec_supports(CodecId::float_ans, t)) {
    for (size_t k = 0; k < npicks; ++k) zstd += zs[k] = coded_into(CodecId::zstd, k, zb[k], opt);
    plan.codec = zstd < raw ? CodecId::zstd : CodecId::raw;
    if (plan.codec == CodecId::zstd)
      for (size_t k = 0; k < npicks; ++k) plan.samples.push_back({picks[k], std::move(zb[k])});
    return plan;
  }
  // repeat_rate of the sampled chunks, counted once
  unsigned reps[3] = {};
  bool rep_known[3] = {};
  auto pick_repeats = [&](size_t k) {
    if (!rep_known[k]) reps[k] = repeat_rate(t, data + picks[k] * chunk_size, size_t(chunk_at(picks[k])));
    rep_known[k] = true;
    return reps[k];
  };
  // float-ans, or -trim where the low mantissa bits are zero and that pays:
  // at least 2% and 256 bytes smaller than float-ans and zstd on the sample. Trim makes the file 1.2,
  // which 1.0/1.1 readers cannot decode that tensor of, so a tensor of zeros
  // or ones (zero low bits too, and almost nothing to gain) stays float-ans.
  uint64_t fs[3] = {}, fans = 0;
  CodecId family = CodecId::float_ans;
  // FP8: the per-element codings (plain and shifted) are sized, not coded
  // (size_only): the pairs replace them on nearly every tensor, and they
  // only price the pairs' slack and zstd's bar. Their bytes (fb_sized) are
  // then never handed out.
  const bool fp8_pairs = pairs::supports(t);
  EncodeOptions eo = opt;
  eo.size_only = fp8_pairs;
  bool fb_sized = eo.size_only;
  const bool low_zero = low_bits_zero(t, data, byte_size);
  // A per-channel shift (mode 3) where the tensor's channels differ in
  // scale: shift::plan measures it and prices it on a sample.
  const uint64_t eb = dtype_bits(t) / 8;
  if (cols) plan.shift = shift::plan(t, data, byte_size / eb, cols);
  // The sampled chunks' per-element coding shifted by it (codec c, options
  // o), into b with their sizes in sz; returns the sizes' sum.
  auto shifted_trials = [&](CodecId c, EncodeOptions o, std::vector<uint8_t>* b, uint64_t* sz) {
    o.shift = &plan.shift;
    o.mixed_try_zstd = false;
    uint64_t sum = 0;
    for (size_t k = 0; k < npicks; ++k) {
      o.first_elem = picks[k] * chunk_size / eb;
      sum += sz[k] = coded_into(c, k, b[k], o);
    }
    return sum;
  };
  // Where that price is sure, the shifted coding is the per-element trial
  // and no unshifted one is coded (kShiftSure). Not where the low mantissa
  // bits are zero or a patch may pay, whose trials weigh the unshifted
  // coding.
  bool may_patch = false;
  for (size_t k = 0; k < npicks && !may_patch; ++k)
    may_patch = patch::choose(t, data + picks[k] * chunk_size, chunk_at(picks[k]) / eb).z > 0;
  const bool shift_first = !fp8_pairs && !low_zero && !may_patch && !plan.shift.d.empty() &&
                           plan.shift.gain >= kShiftSure * double(dtype_bits(t)) &&
                           !g_unshifted_trial.load(std::memory_order_relaxed);
  bool shifted = false;
  if (shift_first) {
    fans = shifted_trials(CodecId::float_ans_mixed, eo, fb, fs);
    fkey = {CodecId::float_ans_mixed, false, true};
    shifted = true;
  } else {
    // Where the low mantissa bits are zero, trim's trial (below) codes them
    // in no bits where this one stores each raw: at least a bit an element,
    // 3% of F32 and 6% of 16 bits (F32 of F16 values: 35%), against the 2%
    // trim must gain. This one is then only sized, as FP8's are (a sampled
    // histogram's size, within about 0.5%): its bytes would be thrown away.
    EncodeOptions fo = eo;
    fo.size_only |= low_zero;
    fb_sized = fo.size_only;
    for (size_t k = 0; k < npicks; ++k) fans += fs[k] = coded_into(CodecId::float_ans, k, fb[k], fo);
  }
  std::vector<uint8_t> vb[3];  // a variant's trial bytes, swapped into fb where it wins
  auto take_variant = [&](const uint64_t* vs, Key key, bool sized = false) {
    std::copy(vs, vs + 3, fs);
    for (size_t k = 0; k < npicks; ++k) fb[k].swap(vb[k]);
    fkey = key;
    fb_sized = sized;
  };
  uint64_t ts[3] = {}, trim = 0;
  if (low_zero)
    for (size_t k = 0; k < npicks; ++k) trim += ts[k] = coded_into(CodecId::float_ans_trim, k, vb[k], opt);
  // Mode 4's trial (below), run first where the low bits are not all zero
  // (F16 of BF16 values but for their subnormals, F32 of BF16 with a few
  // full-precision values): where it beats the plain coding by the 2% it
  // needs, zstd is weighed against it, not against a coding that stores the
  // bits it trims raw (on Whisper tiny.en as F16 of BF16 values, zstd came
  // within kZstdSliceLoses of that one and ran in full on most sampled
  // chunks: a third of the plan).
  EncodeOptions mo = opt;  // mode 4's
  mo.mixed_try_zstd = false;
  std::vector<uint8_t> mb[3];
  uint64_t ms[3] = {}, msum = 0;
  auto patch_trial = [&] {
    for (size_t k = 0; k < npicks; ++k) msum += ms[k] = coded_into(CodecId::float_ans_patch, k, mb[k], mo);
  };
  const bool patch_first = may_patch && !low_zero && !fp8_pairs;
  if (patch_first) patch_trial();
  const bool patch_leads = patch_first && double(msum) <= 0.98 * double(fans);
  // zstd's trial at the writer's level, unless, where the low mantissa bits
  // are zero, zstd at level 1 already codes the chunk kZstdProbeLoses larger
  // than float-ans-trim: no level gains that much over level 1 on weights,
  // and on such chunks (F32 of F16 or BF16 values: zero bytes, many short
  // matches) level 3 is 3x slower than level 1 and the plan's zstd trials
  // took most of pack's time. Elsewhere levels 1 and 3 run about as fast and
  // zstd comes closer to float-ans, so the probe would only add work.
  // Level-1 bytes are never reused (zb is then empty).
  bool deferred[3] = {};  // zs[k] an estimate whose full trial waits for the pairs
  for (size_t k = 0; k < npicks; ++k) {
    // where the chunk does not repeat itself (zstd's size is then its
    // literals', which slices estimate within about 5%) and the slices say
    // zstd loses by kZstdSliceLoses, its size is the estimate: no full trial
    // (whose bytes only a chunk zstd wins would keep). FP8: zstd comes within
    // about 1% of the per-element coding, but takes a chunk only where it
    // is kPairsSlack under the pairs (the usual coding), so its full trial
    // waits for their sizes.
    const uint64_t best_fans = low_zero ? std::min(fs[k], ts[k]) : patch_leads ? std::min(fs[k], ms[k]) : fs[k];
    if (pick_repeats(k) < kSliceMaxRepeat && !g_full_zstd.load(std::memory_order_relaxed)) {
      // zstd's floor first, where no zero low bits give it matches the
      // repeat rate does not see: where even that loses, no zstd runs
      if (!low_zero) {
        const uint64_t floor = zstd_floor(data + picks[k] * chunk_size, chunk_at(picks[k]));
        if (double(floor) >= kZstdSliceLoses * double(best_fans)) {
          zstd += zs[k] = floor;
          zb[k].clear();
          continue;
        }
      }
      // Where the low mantissa bits are zero, the slices at level 1 (3x
      // faster there, see below) against the probe's margin as well.
      EncodeOptions eo_est = opt;
      double margin = kZstdSliceLoses;
      if (low_zero && opt.zstd_level > 1) eo_est.zstd_level = 1, margin *= kZstdProbeLoses;
      const uint64_t est = zstd_estimate(data + picks[k] * chunk_size, chunk_at(picks[k]), eo_est);
      const bool loses = double(est) >= margin * double(best_fans);
      if (est && (loses || fp8_pairs)) {
        zstd += zs[k] = est;
        zb[k].clear();
        deferred[k] = !loses;
        continue;
      }
    }
    if (opt.zstd_level > 1 && low_zero) {
      EncodeOptions fast = opt;
      fast.zstd_level = 1;
      const uint64_t z1 = coded_into(CodecId::zstd, k, zb[k], fast);
      if (double(z1) > kZstdProbeLoses * double(std::min(fs[k], ts[k]))) {
        zstd += zs[k] = z1;
        zb[k].clear();
        continue;
      }
    }
    zstd += zs[k] = coded_into(CodecId::zstd, k, zb[k], opt);
  }
  if (low_zero) {
    const uint64_t best = std::min(fans, zstd);
    if (trim + 256 <= best && double(trim) <= 0.98 * double(best)) {
      family = CodecId::float_ans_trim;
      fans = trim;
      take_variant(ts, {CodecId::float_ans_trim, false, false});
    }
  }
  // Low bits zero in all but a few elements (F16 of BF16 values but for
  // their subnormals): codec 5's mode 4 lists those and trims the rest,
  // where that makes the sample 2% smaller.
  bool patched = false;
  if (may_patch) {
    if (!patch_first) patch_trial();
    for (size_t k = 0; k < npicks; ++k) vb[k].swap(mb[k]);
    if (double(msum) <= 0.98 * double(std::min(fans, zstd))) {
      patched = true;
      fans = msum;
      take_variant(ms, {CodecId::float_ans_patch, mo.try_patch, false});
    }
  }
  // Otherwise the shift is taken where the sampled chunks say it pays: the
  // per-element coding shifted, into vb (ss: its sizes), where it is 0.1%
  // smaller. FP8 (sized per-element codings) decides it on the pairs below,
  // which are what its chunks get: a sized coding can be 0.5% off its bytes
  // (a sampled histogram), more than the 0.1% the shift must gain.
  uint64_t ss[3] = {}, ssum = 0;
  bool ss_sized = false;
  const CodecId sc = patched ? CodecId::float_ans_patch : CodecId::float_ans_mixed;
  const EncodeOptions so = patched ? opt : eo;  // priced as what it is weighed against
  auto element_shift_pays = [&] { return double(ssum) <= 0.999 * double(fans); };
  auto take_element_shift = [&] {
    shifted = true;
    fans = ssum;
    take_variant(ss, {sc, so.try_patch, true}, ss_sized);
  };
  if (!plan.shift.d.empty() && !shift_first) {
    ssum = shifted_trials(sc, so, vb, ss);
    ss_sized = so.size_only;
  }
  const bool shift_on_pairs = eo.size_only && !patched;
  // the per-element coding's size, shifted where that pays
  const uint64_t element_best = !plan.shift.d.empty() && element_shift_pays() ? ssum : fans;
  if (!plan.shift.d.empty() && !shift_first && !shift_on_pairs && element_shift_pays()) take_element_shift();
  // FP8 pairs (codec 8's mode 6, with the shift the per-element coding
  // took, or that pays on the pairs) where their decode speed costs at
  // most kPairsSlack in size: they replace the per-element coding (and its
  // patch) on every chunk that does not take zstd.
  bool paired = false;
  if (fp8_pairs) {
    EncodeOptions po = opt;
    po.mixed_try_zstd = false;
    auto pairs_into = [&](bool with_shift, std::vector<uint8_t>* b, uint64_t* ps) {
      po.shift = with_shift ? &plan.shift : nullptr;
      uint64_t sum = 0;
      for (size_t k = 0; k < npicks; ++k) {
        po.first_elem = picks[k] * chunk_size;  // one byte an element
        sum += ps[k] = coded_into(CodecId::float_ans_pairs, k, b[k], po);
      }
      return sum;
    };
    // the pairs' trials go to their own buffers: vb keeps the shifted
    // per-element trial for the case where the pairs lose
    std::vector<uint8_t> pb[3], wb[3];
    uint64_t ps[3] = {}, ws[3] = {};
    // Where the per-element coding's sized trials already say the shift
    // pays, the pairs take it with no unshifted trial: they code the same
    // exponents, two at a time, and on Whisper tiny.en (E4M3, E5M2) and
    // stories260K (E4M3) the shifted pairs came out 0.23-6% smaller than the
    // unshifted ones on every one of the 85 tensors with a shift (that
    // trial was a third of FP8's plan). Elsewhere both are coded.
    const bool shift_known = shift_on_pairs && !plan.shift.d.empty() && element_shift_pays();
    uint64_t sum = pairs_into(shifted || shift_known, pb, ps);
    bool pairs_shifted = shifted || shift_known;
    if (shift_on_pairs && !plan.shift.d.empty() && !shift_known) {
      const uint64_t wsum = pairs_into(true, wb, ws);
      if (double(wsum) <= 0.999 * double(sum)) {
        sum = wsum;
        std::copy(ws, ws + 3, ps);
        for (size_t k = 0; k < npicks; ++k) pb[k].swap(wb[k]);
        pairs_shifted = true;
      }
    }
    if (double(sum) <= (1.0 + kPairsSlack) * double(element_best)) {
      paired = true;
      patched = false;
      shifted = pairs_shifted;
      fans = sum;
      for (size_t k = 0; k < npicks; ++k) vb[k].swap(pb[k]);
      take_variant(ps, {CodecId::float_ans_pairs, po.try_patch, shifted});
    } else if (shift_on_pairs && !plan.shift.d.empty() && element_shift_pays()) {
      take_element_shift();  // the per-element coding stays, shifted
    }
  }
  if (!shifted) plan.shift = {};
  // the deferred zstd trials, run in full where the estimate comes within
  // kZstdDeferredSlack of taking the chunk from the coding chosen (as the
  // chunks price zstd: zstd_bar)
  for (size_t k = 0; k < npicks; ++k)
    if (deferred[k] && double(zs[k]) < kZstdDeferredSlack * zstd_bar(paired) * double(fs[k])) {
      zstd -= zs[k];
      zstd += zs[k] = coded_into(CodecId::zstd, k, zb[k], opt);
    }
  // Byte groups + zstd (codec 7's mode 5), priced on the sampled chunks
  // where zstd comes within kGroupsTry of float-ans (near-duplicate rows,
  // whose repeats the planes show zstd; elsewhere the planes rarely win and
  // the trial costs two zstd encodes of the chunk). Codec 7 where that makes
  // the sample at least kGroupsGain smaller than the best of float-ans and
  // zstd.
  uint64_t gs[3] = {};
  std::vector<uint8_t> gb[3];  // the planes' trial bytes
  bool groups_won = false;
  if (groups::supports(t)) {
    uint64_t without = 0, with = 0;
    for (size_t k = 0; k < npicks; ++k) {
      gs[k] = UINT64_MAX;
      if (double(zs[k]) <= kGroupsTry * double(fs[k])) {
        encode_byte_groups(t, data + picks[k] * chunk_size, size_t(chunk_at(picks[k])), gb[k], opt);
        gs[k] = gb[k].size();
      }
      without += std::min(zs[k], fs[k]);
      with += std::min({zs[k], fs[k], gs[k]});
    }
    groups_won = double(with) <= (1.0 - kGroupsGain) * double(without);
  }
  // The sampled chunks as the chosen codec codes them where not float-ans:
  // zstd, or under codec 7 the smaller of zstd and the planes.
  uint64_t alt[3] = {}, alts = 0;
  for (size_t k = 0; k < npicks; ++k) alts += alt[k] = groups_won ? std::min(zs[k], gs[k]) : zs[k];
  if (raw <= std::min(fans, alts)) {  // incompressible (float-ans would add its mode byte)
    plan.shift = {};
    plan.codec = CodecId::raw;
    return plan;
  }
  // Which chunks may gain from zstd (and the planes): the sampled ones where
  // it won, the others where they repeat themselves. The repeat flag answers
  // for zstd's repeats only: a sampled chunk only the planes win (repeats
  // hidden by noisy low bytes) does not say the flag missed.
  std::vector<uint8_t> tz(chunks);
  bool zstd_all_sampled = true, missed = false;
  const double bar = zstd_bar(paired);  // as codec 8's chunks price zstd
  for (size_t k = 0; k < npicks; ++k) {
    tz[picks[k]] = double(alt[k] + 1) < bar * double(fs[k]);  // mixed pays a mode byte for zstd
    zstd_all_sampled &= double(alt[k]) < bar * double(fs[k]);
    // missed: zstd would have replaced float-ans here (by the bar, as the
    // chunks price it: FP8 pairs keep up to kPairsSlack over zstd, so zstd a
    // hair smaller than them is no miss) and the flag said no
    missed |= double(zs[k] + 1) < bar * double(fs[k]) && pick_repeats(k) < kRepeatTryZstd;
  }
  // The other chunks' flags: every chunk where the flag missed; where the
  // codec below cannot depend on them (neither plain float-ans nor zstd is
  // left), each at its encode (kTryZstdIfRepeats); else read here.
  const bool mixed_sure = (shifted || patched || paired) && !(zstd_all_sampled && !groups_won);
  for (uint64_t c = 0; c < chunks; ++c) {
    if (std::find(picks, picks + npicks, c) != picks + npicks) continue;
    tz[c] = missed       ? uint8_t(1)
            : mixed_sure ? kTryZstdIfRepeats
                         : uint8_t(repeat_rate(t, data + c * chunk_size, size_t(chunk_at(c))) >= kRepeatTryZstd);
  }
  if (missed) std::fill(tz.begin(), tz.end(), uint8_t(1));
  const uint64_t trying = uint64_t(std::count(tz.begin(), tz.end(), uint8_t(1)));
  if (trying == 0 && !shifted && !patched && !paired) {
    plan.codec = family;
  } else if (zstd_all_sampled && !groups_won && (chunks == npicks || (trying == chunks && !missed))) {
    plan.shift = {};
    plan.codec = CodecId::zstd;
  } else {
    plan.codec = paired       ? CodecId::float_ans_pairs
                 : groups_won ? CodecId::float_ans_groups
                 : patched    ? CodecId::float_ans_patch
                              : CodecId::float_ans_mixed;
    plan.try_zstd = std::move(tz);
    plan.try_patch = patched;
  }
  // The sampled chunks whose final coding one of the trials made, by the
  // same call (the same codec, options and bytes in; FLOAT_ANS.md's writer
  // is deterministic): zstd's trial for codec zstd; the per-element trial
  // for its own codec; and under codecs 4, 5, 7 and 8 a trial whose coding
  // encode_chunk() takes the same way (pairs or not, mode 4 tried or not,
  // shifted or not; codec 3's coding is theirs without either), for a chunk
  // that tries zstd after choose_zstd() with zstd's and the planes' trials
  // (a chunk of a positional table or a bias: these trials were most of
  // such a tensor's encode).
  auto base = [](CodecId c, bool try_patch, bool shift) {
    return Key{c == CodecId::float_ans_pairs ? c : CodecId::float_ans_mixed,
               c != CodecId::float_ans_mixed && c != CodecId::float_ans_trim && try_patch, shift};
  };
  const bool mixed_family = plan.codec == CodecId::float_ans_mixed || plan.codec == CodecId::float_ans_patch ||
                            plan.codec == CodecId::float_ans_groups || plan.codec == CodecId::float_ans_pairs;
  // codec 2's trial is codec 3's coding (and so codec 4's unshifted one)
  // where an element has bit 0 set: trim then leaves no bit out
  auto odd_element = [&](size_t k) {
    return any_bit0(std::max(1u, dtype_bits(t) / 8), data + picks[k] * chunk_size, chunk_at(picks[k]));
  };
  // a codec-8 trial that coded pairs (mode 6) never reached mode 4, whether
  // it could try it or not
  auto paired_bytes = [](const std::vector<uint8_t>& b) { return !b.empty() && b[0] == pairs::kMode; };
  const Key fbase = fkey.c == CodecId::float_ans ? base(CodecId::float_ans_trim, false, false)
                                                 : base(fkey.c, fkey.patch, fkey.shifted);
  const Key pbase = base(plan.codec, plan.try_patch, !plan.shift.d.empty());
  for (size_t k = 0; k < npicks; ++k) {
    std::vector<uint8_t>* b = nullptr;
    if (plan.codec == CodecId::zstd) b = zb[k].empty() ? nullptr : &zb[k];
    else if (fb_sized) b = nullptr;  // sized, not coded
    else if (plan.codec == fkey.c && (plan.codec == CodecId::float_ans || plan.codec == CodecId::float_ans_trim)) b = &fb[k];
    else if (mixed_family && fbase.c == pbase.c && fbase.shifted == pbase.shifted &&
             (fbase.patch == pbase.patch || paired_bytes(fb[k])) && (fkey.c != CodecId::float_ans || odd_element(k))) {
      b = &fb[k];
      if (plan.try_zstd[picks[k]])
        choose_zstd(plan.codec, t, data + picks[k] * chunk_size, size_t(chunk_at(picks[k])), fb[k],
                    chunk_options(opt, plan, t, chunk_size, uint32_t(picks[k]), data + picks[k] * chunk_size,
                                  size_t(chunk_at(picks[k]))),
                    paired_bytes(fb[k]),
                    zb[k].empty() ? nullptr : &zb[k], gb[k].empty() ? nullptr : &gb[k]);
    }
    if (b) plan.samples.push_back({picks[k], std::move(*b)});
  }
  return plan;
}

bool take_sample(CodecPlan& plan, uint64_t j, std::vector<uint8_t>& out) {
  for (auto& s : plan.samples)
    if (s.chunk == j && !s.bytes.empty()) {
      out.swap(s.bytes);
      std::vector<uint8_t>().swap(s.bytes);  // handed out: its memory goes now
      return true;
    }
  return false;
}

uint64_t sample_bytes(const CodecPlan& plan) {
  uint64_t n = 0;
  for (const auto& s : plan.samples) n += s.bytes.size();
  return n;
}

}  // namespace wc
