// float-ans-mixed (codec 4, container 1.3): chunk by chunk the smaller of
// float-ans-trim and zstd, for tensors whose chunks differ (padding rows,
// duplicated rows, positional tables). `pack --codec auto` picks it only
// where some chunk gains, so every other file stays as older readers know it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "codec/auto_select.h"
#include "codec/channel_shift.h"
#include "codec/codec.h"
#include "chunk_coding.h"
#include "lib/api.h"
#include "packed_check.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::CodecId;
using wc::DType;

namespace {

constexpr size_t kCols = 1024;  // BF16 row: 2 KiB, 128 rows per 256 KiB chunk

// `rows` rows of BF16 weights where the rows in [dup_lo, dup_hi) are copies
// of 16 distinct rows (what zstd finds and float-ans cannot use).
std::vector<uint8_t> bf16_with_dup_rows(size_t rows, size_t dup_lo, size_t dup_hi, uint64_t seed) {
  auto w = testdata::weights(DType::BF16, rows * kCols, seed);
  const size_t rb = kCols * 2;
  for (size_t r = dup_lo; r < dup_hi; ++r)
    std::memcpy(&w[r * rb], &w[(dup_lo + (r - dup_lo) % 16) * rb], rb);
  return w;
}

// A tensor for plan_codec, and the check that two plans chose alike (the
// codec, which chunks try zstd and mode 4, and the shift).
struct PlanCase {
  DType t;
  std::vector<uint8_t> v;
  uint64_t cols;
};
void check_same_choice(const wc::CodecPlan& a, const wc::CodecPlan& b) {
  CHECK(int(a.codec) == int(b.codec));
  CHECK(a.try_zstd == b.try_zstd);
  CHECK(a.try_patch == b.try_patch);
  CHECK(a.shift.d == b.shift.d);
  CHECK(a.shift.rows == b.shift.rows);
}

}  // namespace

TEST_SUITE("mixed") {
  TEST_CASE("codec 4 keeps the smaller of zstd (mode 2) and float-ans-trim per chunk, and decodes both") {
    const auto dup = bf16_with_dup_rows(128, 0, 128, 7);
    const auto w = testdata::weights(DType::BF16, 128 * kCols, 8);
    const auto s_dup = tu::encode_chunk(CodecId::float_ans_mixed, DType::BF16, dup);
    const auto s_w = tu::encode_chunk(CodecId::float_ans_mixed, DType::BF16, w);
    REQUIRE(!s_dup.empty());
    REQUIRE(!s_w.empty());
    CHECK(s_dup[0] == 2);  // zstd frame
    CHECK(s_w[0] != 2);    // float-ans-trim payload
    CHECK(s_dup.size() <= tu::encode_chunk(CodecId::zstd, DType::BF16, dup).size() + 1);
    CHECK(s_dup.size() < tu::encode_chunk(CodecId::float_ans, DType::BF16, dup).size() / 4);
    CHECK(s_w.size() <= tu::encode_chunk(CodecId::float_ans_trim, DType::BF16, w).size());
    // not asked to try zstd: float-ans-trim even where zstd would win
    const auto s_no = tu::encode_chunk(CodecId::float_ans_mixed, DType::BF16, dup, false);
    REQUIRE(!s_no.empty());
    CHECK(s_no[0] != 2);

    std::vector<uint8_t> ws(wc::decode_workspace_size());
    for (const auto* p : {&s_dup, &s_w, &s_no}) {
      const auto& orig = (p == &s_w) ? w : dup;
      std::vector<uint8_t> back(orig.size(), 0xAB);
      CHECK(wc::decode_chunk(CodecId::float_ans_mixed, DType::BF16, p->data(), p->size(), back.data(),
                             back.size()) == wc::Errc::ok);
      CHECK(back == orig);
      std::fill(back.begin(), back.end(), 0xAB);
      CHECK(wc::decode_chunk_ws(CodecId::float_ans_mixed, DType::BF16, p->data(), p->size(), back.data(),
                                back.size(), ws.data(), ws.size()) == wc::Errc::ok);
      CHECK(back == orig);
    }
    // a zstd frame of the wrong size, or cut short, is a codec error
    std::vector<uint8_t> back(dup.size() - 2);
    CHECK(wc::decode_chunk(CodecId::float_ans_mixed, DType::BF16, s_dup.data(), s_dup.size(), back.data(),
                           back.size()) == wc::Errc::codec);
    back.resize(dup.size());
    CHECK(wc::decode_chunk(CodecId::float_ans_mixed, DType::BF16, s_dup.data(), s_dup.size() - 3, back.data(),
                           back.size()) == wc::Errc::codec);
    // mode 2 is not a float-ans (codec 2) mode
    CHECK(wc::decode_chunk(CodecId::float_ans, DType::BF16, s_dup.data(), s_dup.size(), back.data(),
                           back.size()) == wc::Errc::codec);
  }

  TEST_CASE("repeat_rate flags zeros, duplicated rows and small value sets, not weights") {
    const size_t n = 128 * kCols;
    const std::vector<uint8_t> zeros(n * 2, 0);
    CHECK(wc::repeat_rate(DType::BF16, zeros.data(), n) >= wc::kRepeatTryZstd);
    const auto dup = bf16_with_dup_rows(128, 0, 128, 3);
    CHECK(wc::repeat_rate(DType::BF16, dup.data(), n) >= wc::kRepeatTryZstd);
    // 16 distinct values (a dequantized 4-bit tensor)
    auto few = testdata::weights(DType::BF16, n, 4);
    std::mt19937 rng(5);
    for (size_t i = 0; i < n; ++i) std::memcpy(&few[2 * i], &few[2 * (rng() % 16)], 2);
    CHECK(wc::repeat_rate(DType::BF16, few.data(), n) >= wc::kRepeatTryZstd);
    for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
      CAPTURE(static_cast<int>(t));
      const auto w = testdata::weights(t, n, 6);
      CHECK(wc::repeat_rate(t, w.data(), n) < wc::kRepeatTryZstd);
    }
  }

  TEST_CASE("zstd's sliced estimate: within 6% of a full trial where a chunk does not repeat; repeats get the full trial") {
    wc::EncodeOptions eo;
    const size_t bytes = 256u << 10;
    for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
      CAPTURE(static_cast<int>(t));
      const auto w = testdata::weights(t, bytes * 8 / wc::dtype_bits(t), 21);
      CHECK(wc::repeat_rate(t, w.data(), w.size()) < wc::kSliceMaxRepeat);
      std::vector<uint8_t> full;
      wc::encode_chunk(CodecId::zstd, t, w.data(), w.size(), full, eo);
      const double est = double(wc::zstd_estimate(w.data(), w.size(), eo));
      CHECK(est >= 0.97 * double(full.size()));
      CHECK(est <= 1.06 * double(full.size()));
      CHECK(wc::zstd_estimate(w.data(), 2 * wc::kZstdSlices * wc::kZstdSliceBytes - 1, eo) == 0);
    }
    // a 256 KiB chunk whose second half repeats its first: no two slices
    // overlap a repeat, so the estimate sees none, but the repeat rate does
    // and the plan's full trial finds zstd (about half float-ans's size)
    auto v = testdata::weights(DType::BF16, 3 * bytes / 2, 22);
    std::memcpy(v.data() + bytes / 2, v.data(), bytes / 2);
    CHECK(wc::repeat_rate(DType::BF16, v.data(), bytes) >= wc::kSliceMaxRepeat);
    std::vector<uint8_t> fans, zs;
    wc::encode_chunk(CodecId::float_ans, DType::BF16, v.data(), bytes, fans, eo);
    wc::encode_chunk(CodecId::zstd, DType::BF16, v.data(), bytes, zs, eo);
    CHECK(double(zs.size()) < 0.7 * double(fans.size()));
    CHECK(double(wc::zstd_estimate(v.data(), bytes, eo)) >= wc::kZstdSliceLoses * double(fans.size()));
    wc::CodecPlan plan = wc::plan_codec(DType::BF16, v.data(), v.size(), uint32_t(bytes), eo, kCols);
    std::vector<uint8_t> got;
    wc::encode_chunk(plan.codec, DType::BF16, v.data(), bytes, got, wc::chunk_options(eo, plan, DType::BF16, uint32_t(bytes), 0, v.data(), bytes));
    CHECK(double(got.size()) < 0.7 * double(fans.size()));
  }

  TEST_CASE("zstd's floor: never above zstd's size where a chunk does not repeat; the bytes' order-0 entropy") {
    wc::EncodeOptions eo;
    for (size_t bytes : {size_t(256u << 10), size_t(96u << 10), size_t(3000)}) {  // sliced, whole, small
      for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
        CAPTURE(static_cast<int>(t));
        CAPTURE(bytes);
        const auto w = testdata::weights(t, bytes * 8 / wc::dtype_bits(t), 23);
        REQUIRE(wc::repeat_rate(t, w.data(), w.size()) < wc::kSliceMaxRepeat);
        std::vector<uint8_t> full;
        wc::encode_chunk(CodecId::zstd, t, w.data(), w.size(), full, eo);
        const uint64_t floor = wc::zstd_floor(w.data(), w.size());
        CHECK(floor <= full.size());
        CHECK(double(floor) >= 0.9 * double(full.size()));  // and close to it: a floor of 0 would pass the first
      }
    }
    // two byte values, equally often: one bit a byte; one value: nothing
    std::vector<uint8_t> two(1u << 20);
    for (size_t i = 0; i < two.size(); ++i) two[i] = uint8_t((i * 0x9E3779B97F4A7C15ull) >> 63 ? 7 : 200);
    CHECK(wc::zstd_floor(two.data(), 40000) >= 4900);
    CHECK(wc::zstd_floor(two.data(), 40000) <= 5000);
    CHECK(wc::zstd_floor(two.data(), two.size()) >= 130000);  // slices, scaled to the whole
    CHECK(wc::zstd_floor(two.data(), two.size()) <= 131072);
    const std::vector<uint8_t> one(5000, 3);
    CHECK(wc::zstd_floor(one.data(), one.size()) == 0);
    CHECK(wc::zstd_floor(one.data(), 0) == 0);
  }

  TEST_CASE("zstd's estimates change no plan: codec, flags, shift and sampled bytes as with every trial in full") {
    std::vector<PlanCase> cases;
    const size_t rows = 768;  // 3 chunks of 256 KiB in 16 bits
    for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
      cases.push_back({t, testdata::weights(t, rows * 512, 31), 512});
      cases.push_back({t, testdata::weights_channels(t, rows, 512, false, 32), 512});  // shifted
      auto z = testdata::weights(t, rows * 512, 33);  // a run of zeros in the middle chunk
      std::fill(z.begin() + ptrdiff_t(z.size() / 2 - z.size() / 16), z.begin() + ptrdiff_t(z.size() / 2), uint8_t(0));
      cases.push_back({t, std::move(z), 512});
    }
    // F32 of BF16 values (low mantissa bits zero: the level-1 estimate)
    auto lz = testdata::weights(DType::F32, rows * 512, 34);
    for (size_t i = 0; i < lz.size(); i += 4) lz[i] = lz[i + 1] = 0;
    cases.push_back({DType::F32, lz, 512});
    // F16 with its low 3 bits zero but in a few (mode 4's trial first, zstd
    // weighed against it)
    auto p3 = testdata::weights(DType::F16, rows * 512, 35);
    for (size_t i = 0; i < p3.size(); i += 2)
      if (i % 1000) p3[i] &= 0xF8;
    cases.push_back({DType::F16, p3, 512});
    for (const auto& c : cases) {
      CAPTURE(static_cast<int>(c.t));
      CAPTURE(c.v.size());
      wc::EncodeOptions eo;
      wc::force_full_zstd_trials(true);
      const wc::CodecPlan full = wc::plan_codec(c.t, c.v.data(), c.v.size(), 256u << 10, eo, c.cols);
      wc::force_full_zstd_trials(false);
      const wc::CodecPlan est = wc::plan_codec(c.t, c.v.data(), c.v.size(), 256u << 10, eo, c.cols);
      check_same_choice(est, full);
      // the sampled bytes the plan hands out: those of full trials, or none
      // where only a (skipped) zstd trial would have had them
      for (const auto& s : est.samples) {
        const auto it = std::find_if(full.samples.begin(), full.samples.end(),
                                     [&](const wc::CodecPlan::Sample& f) { return f.chunk == s.chunk; });
        REQUIRE(it != full.samples.end());
        CHECK(it->bytes == s.bytes);
      }
    }
  }

  TEST_CASE("a shifted tensor's chunks not sampled read their repeat rate at their encode: the same flags") {
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      CAPTURE(static_cast<int>(t));
      auto v = testdata::weights_channels(t, 768, 512, false, 44);
      const uint32_t chunk = 64u << 10;
      const uint64_t chunks = (v.size() + chunk - 1) / chunk;  // 12 (16 bits) or 24: sampled 0, middle, last
      REQUIRE(chunks >= 12);
      std::fill(v.begin() + 2 * chunk, v.begin() + 3 * chunk, uint8_t(0));  // chunk 2 repeats
      wc::EncodeOptions eo;
      const wc::CodecPlan plan = wc::plan_codec(t, v.data(), v.size(), chunk, eo, 512);
      REQUIRE(plan.codec == CodecId::float_ans_mixed);
      REQUIRE_FALSE(plan.shift.d.empty());
      REQUIRE(plan.try_zstd.size() == chunks);
      int waiting = 0;
      for (uint64_t c = 0; c < chunks; ++c) {
        CAPTURE(c);
        const uint8_t* src = v.data() + c * chunk;
        const size_t n = size_t(std::min<uint64_t>(chunk, v.size() - c * chunk));
        const bool sampled = c == 0 || c == chunks / 2 || c == chunks - 1;
        waiting += plan.try_zstd[c] == wc::kTryZstdIfRepeats;
        CHECK((plan.try_zstd[c] == wc::kTryZstdIfRepeats) == !sampled);
        if (!sampled)
          CHECK(wc::chunk_tries_zstd(plan, t, uint32_t(c), src, n) ==
                (wc::repeat_rate(t, src, n) >= wc::kRepeatTryZstd));
      }
      CHECK(waiting == int(chunks) - 3);
      // the zeros try zstd (a few bytes), the weights around them do not
      const uint8_t* z = v.data() + 2 * chunk;
      CHECK(wc::chunk_tries_zstd(plan, t, 2, z, chunk));
      CHECK_FALSE(wc::chunk_tries_zstd(plan, t, 1, v.data() + chunk, chunk));
      std::vector<uint8_t> got;
      wc::encode_chunk(plan.codec, t, z, chunk, got, wc::chunk_options(eo, plan, t, chunk, 2, z, chunk));
      CHECK(got.size() < 200);
    }
  }

  TEST_CASE("a sure shift changes no plan: codec, flags, shift and sampled bytes as with the unshifted trial too") {
    std::vector<PlanCase> cases;
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      cases.push_back({t, testdata::weights_channels(t, 768, 512, false, 41), 512});  // column shift
      cases.push_back({t, testdata::weights_channels(t, 1024, 256, true, 42), 256});  // row shift
      auto z = testdata::weights_channels(t, 768, 512, false, 43);  // and a chunk zstd may take
      const size_t rb = 512 * wc::dtype_bits(t) / 8;
      for (size_t r = 1; r < 200; ++r) std::memcpy(&z[r * rb], &z[(r % 3) * rb], rb);
      cases.push_back({t, std::move(z), 512});
    }
    int sure = 0;
    for (const auto& c : cases) {
      CAPTURE(static_cast<int>(c.t));
      CAPTURE(c.cols);
      wc::EncodeOptions eo;
      wc::force_unshifted_trials(true);
      const wc::CodecPlan full = wc::plan_codec(c.t, c.v.data(), c.v.size(), 256u << 10, eo, c.cols);
      wc::force_unshifted_trials(false);
      const wc::CodecPlan fast = wc::plan_codec(c.t, c.v.data(), c.v.size(), 256u << 10, eo, c.cols);
      sure += !fast.shift.d.empty() && fast.shift.gain >= wc::kShiftSure * wc::dtype_bits(c.t);
      check_same_choice(fast, full);
      REQUIRE(fast.samples.size() == full.samples.size());
      for (size_t i = 0; i < fast.samples.size(); ++i) {
        CHECK(fast.samples[i].chunk == full.samples[i].chunk);
        CHECK(fast.samples[i].bytes == full.samples[i].bytes);
      }
    }
    CHECK(sure >= 6);  // the cases take the short way (else this proves nothing)
  }

  TEST_CASE("pack --codec auto: a tensor with duplicated rows in one chunk gets float-ans-mixed, file 1.3") {
    tu::TempDir t;
    const std::string m = t / "m.safetensors", c = t / "m.wcz";
    // 8 chunks of 128 rows; rows 128..255 (chunk 1, not a sampled one) are
    // copies of 16 rows, the rest are weights
    std::vector<stb::StTensor> ts = {
        {"emb.weight", DType::BF16, {1024, kCols}, bf16_with_dup_rows(1024, 128, 256, 11)},
        {"w.weight", DType::BF16, {256, kCols}, testdata::weights(DType::BF16, 256 * kCols, 12)},
    };
    tu::write_file(m, stb::build(ts));
    auto size_with = [&](const std::string& codec) {
      wc::PackOptions po;
      po.threads = 2;
      po.force = true;
      po.codec = codec;
      return wc::pack(m, c, po).output_bytes;
    };
    const uint64_t s_fans = size_with("float-ans");
    const uint64_t s_zstd = size_with("zstd");
    const uint64_t s_all = size_with("float-ans-mixed");  // every chunk tries zstd
    const uint64_t s_auto = size_with("auto");
    // the second tensor is homogeneous: no need for mixed
    tu::check_packed(c, m, 3, {"float-ans-mixed", "float-ans"}, t / "back.safetensors");
    // the plan found the one chunk that gains: as small as trying zstd everywhere
    CHECK(s_auto == s_all);
    CHECK(s_auto + 100 * 1024 < s_fans);  // 16 distinct rows of 128: ~7/8 of a 256 KiB chunk saved
    CHECK(s_auto < s_zstd);
  }

  TEST_CASE("homogeneous weights never get float-ans-mixed: the file stays 1.0") {
    tu::TempDir t;
    const std::string m = t / "m.safetensors", c = t / "m.wcz";
    std::vector<stb::StTensor> ts = {
        {"a.weight", DType::BF16, {1024, kCols}, testdata::weights(DType::BF16, 1024 * kCols, 21)},
        {"b.weight", DType::F16, {512, kCols}, testdata::weights(DType::F16, 512 * kCols, 22)},
        {"zeros", DType::BF16, {512, kCols}, std::vector<uint8_t>(512 * kCols * 2, 0)},
    };
    tu::write_file(m, stb::build(ts));
    wc::PackOptions po;
    po.threads = 2;
    wc::pack(m, c, po);
    // zero everywhere: zstd on every chunk
    tu::check_packed(c, m, 0, {"float-ans", "float-ans", "zstd"});
  }

  TEST_CASE("per-channel shift: header_size is the size write_header writes") {
    // the plan prices lists by header_size (a tall tensor's row list has
    // tens of thousands of entries): every Exp-Golomb order wins somewhere
    std::mt19937 rng(91);
    std::set<int> orders;
    for (uint32_t P : {1u, 2u, 7u, 64u, 383u, 5000u, 49152u})
      for (int spread : {0, 1, 3, 40, 1000}) {
        std::vector<int16_t> d(P);
        for (auto& x : d) x = int16_t(int(rng() % uint32_t(2 * spread + 1)) - spread);
        wc::shift::Chunk c;
        c.P = P;
        c.L = 3, c.o = 1;
        c.d = d.data();
        std::vector<uint8_t> out(5, 0xAB);  // written after what is there
        wc::shift::write_header(c, out);
        CAPTURE(P);
        CAPTURE(spread);
        CHECK(wc::shift::header_size(c) == out.size() - 5);
        orders.insert(out[5 + 1] >> 4);
      }
    CHECK(orders.size() >= 3);
  }

  TEST_CASE("per-channel shift: write_header reads back as its list, one list after another") {
    // write_header keeps the last list's coding: a list that differs in one
    // entry, or in its length, or the same list again, must each read back
    std::mt19937 rng(92);
    std::vector<int16_t> a(384);
    for (auto& x : a) x = int16_t(int(rng() % 9) - 4);
    auto b = a;
    b[200] = int16_t(b[200] + 1);
    const std::vector<int16_t> c3(a.begin(), a.begin() + 383);
    const std::vector<const std::vector<int16_t>*> lists = {&a, &a, &b, &a, &c3, &a, &b, &b};
    for (const std::vector<int16_t>* d : lists) {
      wc::shift::Chunk c;
      c.P = uint32_t(d->size());
      c.L = 1, c.o = 5;
      c.d = d->data();
      std::vector<uint8_t> out;
      wc::shift::write_header(c, out);
      out.push_back(wc::fans::layout::kModeRans);  // parse wants an inner payload after the list
      std::vector<int16_t> back(wc::shift::kMaxEntries);
      wc::shift::Chunk r;
      size_t inner = 0;
      REQUIRE(wc::shift::parse(DType::BF16, out.data(), out.size(), 1u << 20, back.data(), &r, &inner));
      CHECK(r.P == c.P);
      CHECK(r.o == c.o);
      CHECK(std::vector<int16_t>(back.begin(), back.begin() + r.P) == *d);
      CHECK(inner == out.size() - 1);
    }
  }

  TEST_CASE("per-channel shift: apply undoes unapply for any list, wrapping fields included") {
    for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
      CAPTURE(static_cast<int>(t));
      const size_t n = 3001;
      auto v = testdata::weights(t, n, 31);
      v[0] = v[1] = 0;  // a zero's field wraps below 0
      std::mt19937 rng(32);
      for (uint32_t L : {1u, 7u, 64u}) {
        for (uint32_t P : {1u, 5u, 77u}) {
          std::vector<int16_t> d(P);
          for (auto& x : d) x = int16_t(int(rng() % 61) - 30);
          wc::shift::Chunk c;
          c.g = t == DType::F8_E5M2 ? 2 : 1;
          c.L = L, c.P = P, c.o = uint32_t(rng() % (uint64_t(L) * P));
          c.d = d.data();
          std::vector<uint8_t> moved(v.size());
          const size_t eb = v.size() / n;
          wc::shift::unapply(t, c, v.data(), moved.data(), n);
          CHECK(moved != v);
          wc::shift::apply(t, c, moved.data(), n);
          CHECK(moved == v);
          // the arithmetic the spec gives, element by element
          wc::shift::unapply(t, c, v.data(), moved.data(), n);
          for (size_t e = 0; e < n; e += 97) {
            uint32_t a = 0, b = 0;
            std::memcpy(&a, &moved[e * eb], eb);
            std::memcpy(&b, &v[e * eb], eb);
            const int32_t de = d[((c.o + e) / L) % P];
            const uint32_t W = uint32_t(eb * 8), E = t == DType::F16 || t == DType::F8_E5M2 ? 5 : t == DType::F8_E4M3 ? 4 : 8;
            const uint32_t s = W - 1 - E - c.g, fm = (1u << (E + c.g)) - 1;
            CHECK(((a >> s) & fm) == ((((b >> s) & fm) - uint32_t(de)) & fm));
            CHECK((a & ~(fm << s)) == (b & ~(fm << s)));
          }
        }
      }
    }
  }

  TEST_CASE("per-channel shift: planned on column and row scales, not on uniform weights") {
    const size_t rows = 256, cols = 384;
    const auto wc_ = testdata::weights_channels(DType::BF16, rows, cols, false, 41);
    const auto wr = testdata::weights_channels(DType::BF16, rows, cols, true, 42);
    const auto wu = testdata::weights(DType::BF16, rows * cols, 43);
    const auto pc = wc::shift::plan(DType::BF16, wc_.data(), rows * cols, cols);
    const auto pr = wc::shift::plan(DType::BF16, wr.data(), rows * cols, cols);
    const auto pu = wc::shift::plan(DType::BF16, wu.data(), rows * cols, cols);
    CHECK(pc.d.size() == cols);
    CHECK(!pc.rows);
    CHECK(pr.d.size() == rows);
    CHECK(pr.rows);
    CHECK(pu.d.empty());
    // rank 1 or one row: nothing to shift
    CHECK(wc::shift::plan(DType::BF16, wc_.data(), rows * cols, 0).d.empty());
    CHECK(wc::shift::plan(DType::BF16, wc_.data(), cols, cols).d.empty());
  }

  // The offsets plan() measures, written out from its rule: the mean field
  // (exponent and top g = 2 mantissa bits, zeros left out) per column over
  // every rstep-th row and per row over every cstep-th column, less the mean
  // over the row samples, rounded half to even and clamped. Tall tensors
  // sample their columns (cstep > 1), the others read every column, one
  // pass feeding both sums.
  TEST_CASE("per-channel shift: the offsets are the channels' mean fields against the tensor's") {
    struct Shape {
      size_t rows, cols;
    };
    for (Shape sh : {Shape{300, 200}, Shape{1000, 300}, Shape{65536, 64}}) {
      for (bool by_rows : {false, true}) {
        CAPTURE(sh.rows);
        CAPTURE(by_rows);
        const size_t rows = sh.rows, cols = sh.cols;
        const auto w = testdata::weights_channels(DType::BF16, rows, cols, by_rows, 61 + rows);
        const auto p = wc::shift::plan(DType::BF16, w.data(), rows * cols, cols);
        REQUIRE(p.d.size() == (by_rows ? rows : cols));
        REQUIRE(p.rows == by_rows);
        auto field = [&](size_t r, size_t c) {  // BF16: 1 sign, 8 exponent bits, then g = 2
          const uint32_t v = uint32_t(w[2 * (r * cols + c)]) | uint32_t(w[2 * (r * cols + c) + 1]) << 8;
          return (v >> 5) & 0x3FFu;
        };
        const size_t rstep = std::max<size_t>(1, rows / 256);
        const size_t per_row = std::min<size_t>(cols, std::max<size_t>(16, (size_t(1) << 20) / rows));
        const size_t cstep = std::max<size_t>(1, cols / per_row);
        if (rows == 65536) CHECK(cstep > 1);
        else CHECK(cstep == 1);
        uint64_t gsum = 0, gcnt = 0;
        std::vector<uint64_t> rsum(rows), rcnt(rows), csum(cols), ccnt(cols);
        for (size_t r = 0; r < rows; ++r)
          for (size_t c = 0; c < cols; ++c) {
            const uint32_t F = field(r, c);
            if (c % cstep == 0) rsum[r] += F, rcnt[r] += F != 0, gsum += F, gcnt += F != 0;
            if (r % rstep == 0) csum[c] += F, ccnt[c] += F != 0;
          }
        const double gm = double(gsum) / double(gcnt);
        const auto& sum = by_rows ? rsum : csum;
        const auto& cnt = by_rows ? rcnt : ccnt;
        size_t wrong = 0;
        for (size_t i = 0; i < p.d.size(); ++i) {
          const double want = cnt[i] ? std::clamp(std::nearbyint(double(sum[i]) / double(cnt[i]) - gm), -1023.0, 1023.0) : 0;
          wrong += double(p.d[i]) != want;
        }
        CHECK(wrong == 0);
      }
    }
  }

  TEST_CASE("mode 3 chunks: smaller than float-ans on scaled channels, every chunk position decodes exactly") {
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      for (bool by_rows : {false, true}) {
        CAPTURE(static_cast<int>(t));
        CAPTURE(by_rows);
        const size_t rows = 300, cols = 200;
        const auto w = testdata::weights_channels(t, rows, cols, by_rows, 51);
        const size_t eb = w.size() / (rows * cols);
        const auto p = wc::shift::plan(t, w.data(), rows * cols, cols);
        REQUIRE(!p.d.empty());
        CHECK(p.rows == by_rows);
        std::vector<uint8_t> ws(wc::decode_workspace_size());
        // chunks that start mid-row, one shorter than a row, and the whole tensor
        const size_t spans[][2] = {{0, rows * cols}, {130, 9000}, {7777, 150}, {rows * cols - 4321, 4321}};
        for (const auto& sp : spans) {
          CAPTURE(sp[0]);
          const std::vector<uint8_t> src(w.begin() + ptrdiff_t(sp[0] * eb), w.begin() + ptrdiff_t((sp[0] + sp[1]) * eb));
          wc::EncodeOptions o;
          o.mixed_try_zstd = false;
          o.shift = &p;
          o.first_elem = sp[0];
          std::vector<uint8_t> s3, s1;
          wc::encode_chunk(CodecId::float_ans_mixed, t, src.data(), src.size(), s3, o);
          wc::encode_chunk(CodecId::float_ans, t, src.data(), src.size(), s1, o);
          REQUIRE(!s3.empty());
          // a chunk shorter than a row pays a list entry per element: there
          // the encoder may keep plain float-ans-trim (mode 1)
          const bool shifted = s3[0] == wc::shift::kMode;
          CHECK((shifted || sp[1] < cols));
          if (sp[1] >= 4000) CHECK(double(s3.size()) < (t == DType::F32 ? 0.99 : 0.97) * double(s1.size()));
          std::vector<uint8_t> back(src.size(), 0xCD);
          CHECK(wc::decode_chunk(CodecId::float_ans_mixed, t, s3.data(), s3.size(), back.data(), back.size()) ==
                wc::Errc::ok);
          CHECK(back == src);
          std::fill(back.begin(), back.end(), 0xCD);
          CHECK(wc::decode_chunk_ws(CodecId::float_ans_mixed, t, s3.data(), s3.size(), back.data(), back.size(),
                                    ws.data(), ws.size()) == wc::Errc::ok);
          CHECK(back == src);
          if (!shifted) continue;
          // codecs 2 and 3 do not know mode 3
          CHECK(wc::decode_chunk(CodecId::float_ans, t, s3.data(), s3.size(), back.data(), back.size()) ==
                wc::Errc::codec);
          CHECK(wc::decode_chunk(CodecId::float_ans_trim, t, s3.data(), s3.size(), back.data(), back.size()) ==
                wc::Errc::codec);
          // every truncation and every single-byte change of the header and
          // list is refused or decodes without writing outside the chunk
          for (size_t cut = 0; cut < std::min<size_t>(s3.size(), 64); ++cut)
            CHECK(wc::decode_chunk(CodecId::float_ans_mixed, t, s3.data(), cut, back.data(), back.size()) ==
                  wc::Errc::codec);
          std::vector<uint8_t> guard(back.size() + 64, 0xEE);
          for (size_t at = 0; at < std::min<size_t>(s3.size(), 48); ++at) {
            auto bad = s3;
            bad[at] ^= 0x5A;
            (void)wc::decode_chunk(CodecId::float_ans_mixed, t, bad.data(), bad.size(), guard.data(), back.size());
            for (size_t g = back.size(); g < guard.size(); ++g) REQUIRE(guard[g] == 0xEE);
          }
        }
      }
    }
  }

  TEST_CASE("pack --codec auto: a tensor with scaled columns is shifted (float-ans-mixed, mode 3), restored exactly") {
    tu::TempDir t;
    const std::string m = t / "m.safetensors", c = t / "m.wcz";
    std::vector<stb::StTensor> ts = {
        {"cols.weight", DType::BF16, {1024, 384}, testdata::weights_channels(DType::BF16, 1024, 384, false, 61)},
        {"rows.weight", DType::F16, {768, 512}, testdata::weights_channels(DType::F16, 768, 512, true, 62)},
        {"plain.weight", DType::BF16, {512, 512}, testdata::weights(DType::BF16, 512 * 512, 63)},
    };
    tu::write_file(m, stb::build(ts));
    wc::PackOptions po;
    po.threads = 2;
    po.force = true;
    po.codec = "float-ans";
    const uint64_t s_fans = wc::pack(m, c, po).output_bytes;
    po.codec = "auto";
    const uint64_t s_auto = wc::pack(m, c, po).output_bytes;
    tu::check_packed(c, m, 3, {"float-ans-mixed", "float-ans-mixed", "float-ans"}, t / "back.safetensors");
    MESSAGE("scaled channels: auto " << s_auto << " bytes, float-ans " << s_fans);
    CHECK(double(s_auto) < 0.97 * double(s_fans));
  }

  TEST_CASE("mode 3: a list longer than 2^16 entries is refused, one of 2^16 is read") {
    // n = 2^16 + 1 BF16 elements; a zero list (EG order 0: one 1 bit each)
    // of P entries, then a real mode-1 payload of the same elements
    const size_t n = (size_t(1) << 16) + 1;
    const auto w = testdata::weights(DType::BF16, n, 71);
    std::vector<uint8_t> inner;
    wc::encode_chunk(CodecId::float_ans_trim, DType::BF16, w.data(), w.size(), inner, {});
    REQUIRE(inner[0] == 1);
    for (uint32_t P : {uint32_t(1) << 16, (uint32_t(1) << 16) + 1}) {
      CAPTURE(P);
      std::vector<uint8_t> s = {3, 2, 0, 0, 1, 0, 0, 0};
      for (int k = 0; k < 4; ++k) s.push_back(uint8_t(P >> (8 * k)));
      s.insert(s.end(), 4, 0);
      s.insert(s.end(), (P + 7) / 8, 0xFF);
      if (P % 8) s.back() = uint8_t((1u << (P % 8)) - 1);
      s.insert(s.end(), inner.begin(), inner.end());
      std::vector<uint8_t> back(w.size());
      const auto r = wc::decode_chunk(CodecId::float_ans_mixed, DType::BF16, s.data(), s.size(), back.data(), back.size());
      CHECK(r == (P <= wc::shift::kMaxEntries ? wc::Errc::ok : wc::Errc::codec));
      if (r == wc::Errc::ok) CHECK(back == w);  // zero shifts
    }
  }
}

TEST_SUITE("mixed") {
  TEST_CASE("--codec auto: a sampled chunk the plan hands out is the bytes encode_chunk gives it, for every kind of choice") {
    // pack takes these instead of coding the chunk again (take_sample); the
    // file stays the same only if each is exactly what the chunk's own encode
    // writes. Tensors that lead to each codec auto picks, at two chunk sizes.
    std::vector<std::pair<DType, std::vector<uint8_t>>> cases;
    std::vector<uint64_t> colss;
    auto add = [&](DType t, std::vector<uint8_t> v, uint64_t cols) { cases.push_back({t, std::move(v)}), colss.push_back(cols); };
    add(DType::BF16, testdata::weights(DType::BF16, 256 * kCols, 1), kCols);                    // float-ans
    add(DType::BF16, bf16_with_dup_rows(512, 0, 160, 2), kCols);                                 // mixed, some chunks zstd
    add(DType::BF16, bf16_with_dup_rows(512, 0, 512, 3), kCols);                                 // zstd
    add(DType::BF16, testdata::weights_channels(DType::BF16, 256, kCols, false, 4), kCols);      // shifted (mode 3)
    add(DType::F16, testdata::weights_channels(DType::F16, 512, 256, true, 5), 256);             // row shift
    add(DType::F8_E5M2, testdata::weights_channels(DType::F8_E5M2, 512, 512, false, 6), 512);    // pairs
    add(DType::F8_E4M3, testdata::weights(DType::F8_E4M3, 300001, 7), 0);                        // odd length
    {
      auto v = testdata::weights(DType::F32, 128 * kCols, 8);  // F32 of BF16 values: trim
      for (size_t i = 0; i < v.size(); i += 4) v[i] = v[i + 1] = 0;
      add(DType::F32, std::move(v), kCols);
    }
    {
      auto v = testdata::weights(DType::F16, 128 * kCols, 9);  // low 3 bits zero but a few: patch
      for (size_t i = 0; i < v.size(); i += 2)
        if (i % 1000) v[i] &= 0xF8;
      add(DType::F16, std::move(v), kCols);
    }
    {
      std::vector<uint8_t> v(4 * 70000);  // integers: zstd or raw
      for (size_t i = 0; i < v.size(); i += 4) v[i] = uint8_t(i % 7), v[i + 1] = uint8_t(i / 4000);
      add(DType::I32, std::move(v), 0);
    }
    add(DType::BF16, testdata::weights(DType::BF16, 300, 10), 0);  // one small chunk
    {
      // F32 with bit 0 clear: low bits zero, but trim gains under 256 bytes
      // and stays out; the unshifted per-element trial is then only sized
      // (never handed out), and float-ans codes the chunk afresh
      auto v = testdata::weights(DType::F32, 1000, 14);
      for (size_t i = 0; i < v.size(); i += 4) v[i] &= 0xFE;
      add(DType::F32, std::move(v), 0);
    }
    {
      auto v = testdata::weights_channels(DType::BF16, 512, kCols, false, 11);  // shifted, the first chunk zstd's
      const size_t rb = kCols * 2;
      for (size_t r = 1; r < 128; ++r) std::memcpy(&v[r * rb], &v[(r % 4) * rb], rb);
      add(DType::BF16, std::move(v), kCols);
    }
    {
      auto v = testdata::weights(DType::F16, 128 * kCols, 12);  // patch, and rows zstd takes
      for (size_t i = 0; i < v.size(); i += 2)
        if (i % 1000) v[i] &= 0xF8;
      for (size_t r = 1; r < 128; ++r) std::memcpy(&v[r * kCols * 2], &v[0], kCols * 2);
      add(DType::F16, std::move(v), kCols);
    }
    {
      // codec 4 (chunk 2 zstd's) where chunk 0 has bit 0 clear in every
      // element: its codec-2 trial is not codec 4's coding (which trims it)
      auto v = bf16_with_dup_rows(512, 256, 384, 13);
      for (size_t i = 0; i < 128 * kCols * 2; i += 2) v[i] &= 0xFE;
      add(DType::BF16, std::move(v), kCols);
    }
    int samples = 0, zstd_tried = 0;  // zstd_tried: samples of chunks that try zstd (choose_zstd on the trials)
    std::set<int> codecs;
    for (uint32_t chunk : {uint32_t(256) << 10, uint32_t(16) << 10})
      for (size_t c = 0; c < cases.size(); ++c) {
        const auto& [t, v] = cases[c];
        wc::EncodeOptions eo;
        wc::CodecPlan plan = wc::plan_codec(t, v.data(), v.size(), chunk, eo, colss[c]);
        codecs.insert(int(plan.codec));
        const auto kept = plan.samples;
        for (const auto& s : kept) {
          const int codec_id = int(plan.codec);
          CAPTURE(c);
          CAPTURE(chunk);
          CAPTURE(s.chunk);
          CAPTURE(codec_id);
          const uint64_t off = s.chunk * chunk, n = std::min<uint64_t>(chunk, v.size() - off);
          std::vector<uint8_t> fresh, taken;
          wc::encode_chunk(plan.codec, t, v.data() + off, size_t(n), fresh,
                           wc::chunk_options(eo, plan, t, chunk, uint32_t(s.chunk), v.data() + off, size_t(n)));
          CHECK(s.bytes == fresh);
          CHECK(wc::take_sample(plan, s.chunk, taken));
          CHECK(taken == fresh);
          CHECK_FALSE(wc::take_sample(plan, s.chunk, taken));  // handed out once
          ++samples;
          zstd_tried += !plan.try_zstd.empty() && plan.try_zstd[s.chunk] == 1;
        }
      }
    CHECK(samples >= 30);
    CHECK(zstd_tried >= 1);
    for (CodecId c : {CodecId::float_ans, CodecId::float_ans_trim, CodecId::zstd, CodecId::float_ans_mixed,
                      CodecId::float_ans_patch, CodecId::float_ans_pairs})
      CHECK_MESSAGE(codecs.count(int(c)), "no case led to ", wc::codec_name(c));
  }
}
