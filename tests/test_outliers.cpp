// qrow-outliers (spec/OUTLIERS.md): planted outliers are kept exactly and cut
// the error at the budget; the outlier block's rules, each broken alone;
// values in another output dtype; the scheme option.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "format/bytes.h"
#include "lib/api.h"
#include "quant/float_load.h"
#include "quant/outlier_math.h"
#include "quant/outliers.h"
#include "quant/qrow_math.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::DType;

namespace {

// Gaussian weights (no natural outliers), and the same with a fraction
// `frac` of them (every 1/frac-th at a seeded offset) multiplied by 50.
struct Planted {
  std::vector<float> w;
  std::vector<size_t> where;
};
Planted planted(size_t n, double frac, uint32_t seed) {
  Planted p;
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 0.02f);
  p.w.resize(n);
  for (auto& x : p.w) x = g(rng);
  const size_t stride = size_t(1.0 / frac);
  for (size_t i = rng() % stride; i < n; i += stride) {
    p.w[i] *= 50.f;
    p.where.push_back(i);
  }
  return p;
}

std::vector<uint8_t> bf16_of(const std::vector<float>& w) {
  std::vector<uint8_t> b(w.size() * 2);
  for (size_t i = 0; i < w.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &w[i], 4);
    const uint16_t h = wc::qrow::f32_to_bf16_rne(u);
    std::memcpy(&b[2 * i], &h, 2);
  }
  return b;
}

wc::TensorSummary summary_of(const std::string& wcz, const std::string& name, uint16_t* minor = nullptr) {
  std::vector<wc::TensorSummary> sum;
  const auto ir = wc::inspect(wcz, false, &sum);
  if (minor) *minor = uint16_t(ir.version_minor);
  for (const auto& s : sum)
    if (s.name == name) return s;
  FAIL("no tensor " << name);
  return {};
}

// The tensor's bytes in an unpacked single-tensor safetensors file.
std::vector<uint8_t> tensor_bytes(const std::string& st, size_t n_bytes) {
  const auto b = tu::read_file(st);
  uint64_t hl = 0;
  std::memcpy(&hl, b.data(), 8);
  return std::vector<uint8_t>(b.begin() + ptrdiff_t(8 + hl), b.begin() + ptrdiff_t(8 + hl + n_bytes));
}

void put_varint(std::vector<uint8_t>& o, uint64_t v) {
  while (v >= 0x80) o.push_back(uint8_t(v | 0x80)), v >>= 7;
  o.push_back(uint8_t(v));
}

}  // namespace

TEST_SUITE("outliers") {
  TEST_CASE("planted outliers (0.1% x 50): auto keeps them exactly; error at the budget >= 30% below quant alone") {
    tu::TempDir t;
    const size_t rows = 512, cols = 768, n = rows * cols;
    const Planted p = planted(n, 0.001, 5);
    const auto raw = bf16_of(p.w);
    const std::string m = t / "m.safetensors";
    tu::write_file(m, stb::build({{"layer.weight", DType::BF16, {rows, cols}, raw}}));
    for (double bits : {3.0, 4.0}) {
      CAPTURE(bits);
      auto pack_with = [&](const std::string& scheme, const std::string& out) {
        wc::PackOptions po;
        po.bits = bits;
        po.force = true;
        po.scheme = scheme;
        const auto r = wc::pack(m, out, po);
        CHECK(r.lossy_bits_per_weight <= bits);
        CHECK(wc::verify(out, "", 2, {}).files == 1);  // every level's reconstruction hash
        return summary_of(out, "layer.weight");
      };
      const auto quant = pack_with("quant", t / "q.wcz");
      uint16_t minor = 0;
      const auto a = pack_with("auto", t / "a.wcz");
      (void)summary_of(t / "a.wcz", "layer.weight", &minor);
      CHECK(quant.repr == "qrow");
      CHECK(a.repr == "qrow-outliers");
      CHECK(minor == 2);  // representation 2: container 2.2
      // a planted value is an outlier when it is large: 50 x a small Gaussian
      // draw need not be (those below 10 sigma are not asked to be kept)
      size_t large = 0;
      for (size_t i : p.where) large += std::fabs(p.w[i]) >= 0.2f;
      CHECK(a.outliers >= large);
      MESSAGE(bits << " bits: rel. RMSE quant " << quant.rel_rmse << ", auto (outliers: " << a.outliers << ") "
                   << a.rel_rmse);
      CHECK(a.rel_rmse * a.rel_rmse <= 0.7 * quant.rel_rmse * quant.rel_rmse);  // squared error, 30% below
      // the planted values come back exactly
      wc::UnpackOptions uo;
      uo.force = true;
      wc::unpack(t / "a.wcz", t / "a.safetensors", uo);
      const auto back = tensor_bytes(t / "a.safetensors", raw.size());
      size_t exact = 0;
      for (size_t i : p.where) exact += std::fabs(p.w[i]) >= 0.2f && std::memcmp(&back[2 * i], &raw[2 * i], 2) == 0;
      CHECK(exact == large);
      MESSAGE("planted " << p.where.size() << ", of them >= 10 sigma " << large << ", kept exactly " << exact);
      // --scheme outliers: at least 0.1% of the elements
      const auto o = pack_with("outliers", t / "o.wcz");
      CHECK(o.repr == "qrow-outliers");
      CHECK(o.outliers >= (n + 999) / 1000);
    }
  }

  TEST_CASE("no natural outliers: auto stays qrow; --scheme outliers forces 0.1%; an unknown scheme is refused") {
    tu::TempDir t;
    const size_t rows = 256, cols = 256;
    std::vector<float> w(rows * cols);
    std::mt19937 rng(9);
    std::normal_distribution<float> g(0.f, 0.02f);
    for (auto& x : w) x = std::clamp(g(rng), -0.08f, 0.08f);  // nothing beyond 4 sigma
    const std::string m = t / "m.safetensors";
    tu::write_file(m, stb::build({{"w", DType::BF16, {rows, cols}, bf16_of(w)}}));
    wc::PackOptions po;
    po.bits = 4;
    po.force = true;
    wc::pack(m, t / "a.wcz", po);
    CHECK(summary_of(t / "a.wcz", "w").repr == "qrow");
    po.scheme = "outliers";
    wc::pack(m, t / "o.wcz", po);
    const auto s = summary_of(t / "o.wcz", "w");
    CHECK(s.repr == "qrow-outliers");
    CHECK(s.outliers == (rows * cols + 999) / 1000);
    CHECK(wc::verify(t / "o.wcz", "", 2, {}).files == 1);
    po.scheme = "nope";
    CHECK_THROWS_AS(wc::pack(m, t / "c.wcz", po), wc::Error);
  }

  TEST_CASE("outlier block: both forms decode; the encoder picks the smaller; every rule broken alone is refused") {
    using namespace wc::qrow;
    const uint64_t rows = 3, cols = 10;
    // outliers at (0,2), (0,9), (2,0) of one tile, F32 values 1, 2, 3
    std::vector<float> vals = {1.f, 2.f, 3.f};
    std::vector<uint8_t> data(rows * cols * 4, 0);
    const std::vector<uint64_t> pos = {2, 9, 20};
    for (size_t k = 0; k < pos.size(); ++k) std::memcpy(&data[pos[k] * 4], &vals[k], 4);
    auto decode = [&](const std::vector<uint8_t>& sec, uint32_t out_dt, std::vector<uint8_t>& dst) {
      dst.assign(rows * cols * dtype_bytes(out_dt), 0xEE);
      return apply_outlier_section(sec.data(), sec.size(), rows, cols, kF32, out_dt, dst.data());
    };
    auto expect_values = [&](const std::vector<uint8_t>& dst) {
      for (size_t k = 0; k < pos.size(); ++k) {
        float f;
        std::memcpy(&f, &dst[pos[k] * 4], 4);
        CHECK(f == vals[k]);
      }
      CHECK(dst[0] == 0xEE);  // the others untouched
    };
    // form 1
    std::vector<uint8_t> f1 = {1};
    put_varint(f1, 2), put_varint(f1, 2), put_varint(f1, 6);  // row 0: cols 2, 9
    put_varint(f1, 0);                                        // row 1: none
    put_varint(f1, 1), put_varint(f1, 0);                     // row 2: col 0
    for (float v : vals) { uint8_t b[4]; std::memcpy(b, &v, 4); f1.insert(f1.end(), b, b + 4); }
    std::vector<uint8_t> dst;
    REQUIRE(decode(f1, kF32, dst));
    expect_values(dst);
    // form 2
    std::vector<uint8_t> f2 = {2, 0, 0, 0, 0};
    for (uint64_t q : pos) f2[1 + q / 8] |= uint8_t(1u << (q % 8));
    f2.insert(f2.end(), f1.end() - 12, f1.end());
    REQUIRE(decode(f2, kF32, dst));
    expect_values(dst);
    // the encoder's block holds the smaller form (form 1: 7 bytes of index, form 2: 4)
    const auto blk = outlier_block(DType::F32, data.data(), rows, cols, rows, pos);
    REQUIRE(blk.size() == 8 + f2.size());
    CHECK(std::vector<uint8_t>(blk.begin() + 8, blk.end()) == f2);
    size_t off = 0, len = 0;
    REQUIRE(outlier_section(blk.data(), blk.size(), 1, 0, off, len));
    CHECK(off == 8);
    CHECK(len == f2.size());
    // BF16 output of F32 outliers: rounded as QROW.md §3
    std::vector<uint8_t> d16;
    REQUIRE(decode(f1, kBF16, d16));
    CHECK(d16[2 * 2 + 1] == 0x3F);  // 1.0 = 0x3F80
    CHECK(d16[2 * 2] == 0x80);
    // each rule broken alone
    auto refused = [&](std::vector<uint8_t> sec, const char* why) {
      CAPTURE(why);
      CHECK_FALSE(decode(sec, kF32, dst));
    };
    auto with = [](std::vector<uint8_t> v, size_t i, uint8_t b) { v[i] = b; return v; };
    refused(with(f1, 0, 3), "unknown form");
    refused(with(f1, 0, 0), "form 0");
    refused(std::vector<uint8_t>(f1.begin(), f1.end() - 1), "values cut short");
    { auto v = f1; v.push_back(0); refused(v, "a byte after the values"); }
    refused(with(f1, 3, 7), "column 2 + 1 + 7 = 10 past the row");
    { std::vector<uint8_t> v = {1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}; refused(v, "varint of 6 bytes"); }
    { std::vector<uint8_t> v = {1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}; refused(v, "varint of 2^32 - 1"); }
    { std::vector<uint8_t> v = {1, 0, 0, 0}; refused(v, "no outlier in a non-empty section"); }
    { auto v = f2; v[4] |= 0x80; refused(v, "mask bit past the tile (element 31 of 30)"); }
    { auto v = f2; v[1] |= 0x01; refused(v, "mask with one more bit than values"); }
    { std::vector<uint8_t> v = {2, 0, 0}; refused(v, "mask cut short"); }
    { auto v = f1; v[v.size() - 1] = 0x7F, v[v.size() - 2] = 0x80; refused(v, "an infinite value"); }
    { auto v = f1; v[v.size() - 5] = 0xFF, v[v.size() - 6] = 0xC0; refused(v, "a NaN value"); }
    // a zero-padded varint is valid
    { std::vector<uint8_t> v = f1; v.erase(v.begin() + 1); v.insert(v.begin() + 1, {0x82, 0x00});
      CHECK(decode(v, kF32, dst)); expect_values(dst); }
    // the table: tile count, ends out of order or past the block, last end not the block's
    auto table = [&](std::vector<uint32_t> ends, uint32_t tiles, size_t body) {
      std::vector<uint8_t> b(4 + 4 * ends.size() + body, 0);
      wc::store_u32(b.data(), tiles);
      for (size_t i = 0; i < ends.size(); ++i) wc::store_u32(b.data() + 4 + 4 * i, ends[i]);
      return b;
    };
    auto sec_ok = [&](const std::vector<uint8_t>& b, uint64_t tiles, uint64_t tile) {
      size_t o = 0, l = 0;
      return outlier_section(b.data(), b.size(), tiles, tile, o, l);
    };
    CHECK(sec_ok(table({0, 5, 9}, 3, 9), 3, 1));
    CHECK_FALSE(sec_ok(table({0, 5, 9}, 2, 9), 3, 1));   // tile count
    CHECK_FALSE(sec_ok(table({6, 5, 9}, 3, 9), 3, 2));   // decreasing (read from tile 2 too)
    CHECK_FALSE(sec_ok(table({0, 5, 8}, 3, 9), 3, 0));   // last end short of the block
    CHECK_FALSE(sec_ok(table({0, 5, 10}, 3, 9), 3, 0));  // past it
    CHECK_FALSE(sec_ok(table({0, 5, 9}, 3, 9), 3, 3));   // no tile 3
    CHECK_FALSE(sec_ok(std::vector<uint8_t>(6, 0), 1, 0));
  }

  TEST_CASE("zero_outliers_rows: the sampled rows as zero_outliers has them, the others untouched") {
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      CAPTURE(static_cast<int>(t));
      const uint64_t rows = 40, cols = 37, vb = wc::dtype_bits(t) / 8;
      const auto w = testdata::weights(t, rows * cols, 7);
      // outliers in sampled and unsampled rows, a row's first and last element among them
      const std::vector<uint64_t> pos = {0, 5, 36, 37, 3 * cols + 1, 9 * cols, 9 * cols + 36, 20 * cols + 3, 39 * cols + 36};
      const std::vector<uint64_t> sample = {0, 1, 9, 21, 39};
      const auto full = wc::qrow::zero_outliers(t, w.data(), rows * cols, pos);
      std::vector<uint8_t> out(w.size(), 0xA5);
      wc::qrow::zero_outliers_rows(t, w.data(), cols, pos, sample, out.data());
      for (uint64_t r = 0; r < rows; ++r) {
        CAPTURE(r);
        const bool sampled = std::find(sample.begin(), sample.end(), r) != sample.end();
        const auto b = out.begin() + ptrdiff_t(r * cols * vb), e = b + ptrdiff_t(cols * vb);
        if (sampled) CHECK(std::equal(b, e, full.begin() + ptrdiff_t(r * cols * vb)));
        else CHECK(std::all_of(b, e, [](uint8_t x) { return x == 0xA5; }));
      }
      // and the sampled rows' outliers are zero there (the copy is not the input)
      for (uint64_t p : {uint64_t(0), uint64_t(5), uint64_t(36), uint64_t(37), 9 * cols + 36, 39 * cols + 36})
        CHECK(std::all_of(out.begin() + ptrdiff_t(p * vb), out.begin() + ptrdiff_t((p + 1) * vb), [](uint8_t x) { return x == 0; }));
    }
  }

  TEST_CASE("outlier values widen exactly: every F16 and BF16 pattern to binary32") {
    using namespace wc::qrow;
    for (uint32_t h = 0; h < 65536; ++h) {
      CAPTURE(h);
      const float f16 = wc::f16_to_f32(uint16_t(h)), b16 = wc::bf16_to_f32(uint16_t(h));
      const uint32_t w16 = widen_bits(kF16, h), wb = widen_bits(kBF16, h);
      if (std::isnan(f16)) CHECK(std::isnan(f32_from_bits(w16)));
      else REQUIRE(f32_bits(f16) == w16);
      if (std::isnan(b16)) CHECK(std::isnan(f32_from_bits(wb)));
      else REQUIRE(f32_bits(b16) == wb);
    }
  }
}
