// Sign-magnitude blocks (container 2.14, spec/BITSTACK.md): BitStack's level
// above 0 of a qrow tensor. pack --refine R --block bitstack|auto gives a
// file whose blocks decode as the spec's arithmetic defines, lower each
// tensor's error, upgrade in place from their own chunks, and sit under an
// exact top layer that restores the original; hostile factors and signs are
// refused.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "format/reader.h"
#include "lib/api.h"
#include "lib/reader_checks.h"
#include "level_weights.h"
#include "quant/bitstack.h"
#include "quant/bitstack_math.h"
#include "quant/float_load.h"
#include "quant/qrow_math.h"
#include "st_builder.h"
#include "test_util.h"
#include "wcodec/wcodec.h"

using wc::DType;
using wgen::weights;

namespace {

wc::PackOptions block_options(double bits, unsigned refine, bool exact, const char* block) {
  wc::PackOptions o = wgen::exact_options(bits);
  o.exact = exact;
  o.refine = refine;
  o.block = block;
  return o;
}

uint32_t qdt(DType t) { return t == DType::F32 ? wc::qrow::kF32 : t == DType::BF16 ? wc::qrow::kBF16 : wc::qrow::kF16; }

// binary32 operations through binary64, each rounded once to binary32: for
// a product or a sum of two binary32 values this is the correctly rounded
// result (binary64 holds the exact product; 53 >= 2 x 24 + 2 bits makes the
// double rounding of a sum innocuous) — a route to BITSTACK.md §2 that does
// not share the decoder's code.
float mul32(float a, float b) { return float(double(a) * double(b)); }
float add32(float a, float b) { return float(double(a) + double(b)); }

// The bits of v in dtype t (QROW.md §3) by the reference conversions.
std::vector<uint8_t> stored(DType t, const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * (t == DType::F32 ? 4 : 2));
  for (size_t i = 0; i < v.size(); ++i) wc::qrow::store(qdt(t), v[i], out.data(), i);
  return out;
}

std::vector<uint8_t> factor_part(unsigned r, const std::vector<uint16_t>& u, const std::vector<uint16_t>& w) {
  std::vector<uint8_t> p = {uint8_t(r), 0, 0, 0};
  for (uint16_t h : u) p.push_back(uint8_t(h)), p.push_back(uint8_t(h >> 8));
  for (uint16_t h : w) p.push_back(uint8_t(h)), p.push_back(uint8_t(h >> 8));
  return p;
}

}  // namespace

TEST_SUITE("bitstack") {
  TEST_CASE("apply_tile: each element as BITSTACK.md §2 defines it, for every dtype and rank") {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> val(-3.f, 3.f);
    for (DType t : {DType::BF16, DType::F16, DType::F32})
      for (unsigned r : {1u, 2u, 3u, 16u}) {
        CAPTURE(wc::dtype_name(t));
        CAPTURE(r);
        const uint64_t rows = 7, cols = 13, row0 = 2, tile_rows = 4, n = tile_rows * cols;
        // factors: binary16 of both signs, subnormals (0x0001..0x03FF) and zeros among them
        std::vector<uint16_t> u(rows * r), w(r * cols);
        // (magnitudes up to 16 x 16 a term: F16 results stay finite)
        for (auto& h : u) h = uint16_t(rng() % 0x4C00u) | uint16_t(rng() % 4 == 0 ? 0x8000 : 0);
        for (size_t k = 0; k < w.size(); ++k) w[k] = k % 9 == 0 ? uint16_t(rng() % 0x400u) : uint16_t(rng() % 0x4C00u);
        const auto f = factor_part(r, u, w);
        REQUIRE(wc::bitstack::parse_rank(f.data(), f.size(), rows, cols) == r);
        std::vector<float> below(n);
        for (auto& x : below) x = val(rng);
        below[3] = -0.0f, below[4] = 0.0f;
        const auto below_bits = stored(t, below);
        std::vector<uint8_t> signs(n);
        for (auto& s : signs) s = uint8_t(rng() & 1);
        // the definition
        std::vector<float> want(n), y(n);
        wc::load_floats(t, below_bits.data(), n, y.data());
        bool all_finite = true;
        for (uint64_t i = 0; i < tile_rows; ++i)
          for (uint64_t j = 0; j < cols; ++j) {
            auto U = [&](unsigned q) { return wc::f16_to_f32(u[(row0 + i) * r + q]); };
            auto Wv = [&](unsigned q) { return wc::f16_to_f32(w[q * cols + j]); };
            float m = mul32(U(0), Wv(0));
            for (unsigned q = 1; q < r; ++q) m = add32(m, mul32(U(q), Wv(q)));
            const float v = signs[i * cols + j] ? add32(y[i * cols + j], -m) : add32(y[i * cols + j], m);
            all_finite &= std::isfinite(v);
            want[i * cols + j] = v;
          }
        std::vector<uint8_t> got = below_bits;
        const wc::Errc rc = wc::bitstack::apply_tile(f.data(), f.size(), signs.data(), signs.size(), qdt(t), rows, row0,
                                                     tile_rows, cols, got.data());
        if (!all_finite) {
          CHECK(rc == wc::Errc::codec);
          continue;
        }
        REQUIRE(rc == wc::Errc::ok);
        CHECK(got == stored(t, want));
        // the encoder's values are the decoder's
        wc::bitstack::Factors F;
        F.r = r, F.rows = rows, F.cols = cols, F.u = u, F.w = w;
        for (uint16_t h : u) F.uf.push_back(wc::f16_to_f32(h));
        for (uint16_t h : w) F.wf.push_back(wc::f16_to_f32(h));
        CHECK(F.bytes() == f);
        std::vector<float> x(n);
        for (auto& v : x) v = val(rng);
        std::vector<uint8_t> s2(n), above(below_bits.size());
        REQUIRE(wc::bitstack::encode_tile(F, qdt(t), x.data(), below_bits.data(), row0, tile_rows, cols, s2.data(),
                                          above.data()));
        std::vector<uint8_t> dec = below_bits;
        REQUIRE(wc::bitstack::apply_tile(f.data(), f.size(), s2.data(), s2.size(), qdt(t), rows, row0, tile_rows, cols,
                                         dec.data()) == wc::Errc::ok);
        CHECK(dec == above);
        // each sign is the one whose value is nearer the original (0 on a tie)
        std::vector<float> a(n);
        wc::load_floats(t, above.data(), n, a.data());
        for (uint64_t k = 0; k < n; ++k) {
          std::vector<uint8_t> other = s2;
          other[k] ^= 1;
          std::vector<uint8_t> alt = below_bits;
          REQUIRE(wc::bitstack::apply_tile(f.data(), f.size(), other.data(), other.size(), qdt(t), rows, row0,
                                           tile_rows, cols, alt.data()) == wc::Errc::ok);
          std::vector<float> b(n);
          wc::load_floats(t, alt.data(), n, b.data());
          CHECK(std::fabs(double(x[k]) - a[k]) <= std::fabs(double(x[k]) - b[k]) + 1e-6 * std::fabs(double(x[k])));
        }
      }
  }

  TEST_CASE("apply_tile refuses hostile factors and signs; parse_rank the sizes and ranks §3 forbids") {
    const uint64_t rows = 3, cols = 5;
    std::vector<uint16_t> u(rows * 2, 0x3C00), w(2 * cols, 0x3800);  // 1.0, 0.5
    auto f = factor_part(2, u, w);
    std::vector<uint8_t> signs(rows * cols, 0), dst = stored(DType::F16, std::vector<float>(rows * cols, 1.f));
    auto dec = [&](const std::vector<uint8_t>& fp, const std::vector<uint8_t>& sg, std::vector<uint8_t> d) {
      return wc::bitstack::apply_tile(fp.data(), fp.size(), sg.data(), sg.size(), wc::qrow::kF16, rows, 0, rows, cols,
                                      d.data());
    };
    REQUIRE(dec(f, signs, dst) == wc::Errc::ok);
    std::vector<uint8_t> d2 = dst;
    REQUIRE(wc::bitstack::apply_tile(f.data(), f.size(), signs.data(), signs.size(), wc::qrow::kF16, rows, 0, rows, cols,
                                     d2.data()) == wc::Errc::ok);
    CHECK(d2 == stored(DType::F16, std::vector<float>(rows * cols, 2.f)));  // 1 + (1 x 0.5 + 1 x 0.5)
    auto bad_sign = signs;
    bad_sign[7] = 2;
    CHECK(dec(f, bad_sign, dst) == wc::Errc::codec);
    CHECK(dec(f, std::vector<uint8_t>(signs.begin(), signs.end() - 1), dst) == wc::Errc::codec);
    for (uint16_t h : {uint16_t(0x7C00), uint16_t(0xFC00), uint16_t(0x7E01)}) {  // Inf, -Inf, NaN in W, then in U
      auto g = factor_part(2, u, w);
      std::memcpy(g.data() + 4 + 2 * u.size() + 2 * 6, &h, 2);
      CHECK(dec(g, signs, dst) == wc::Errc::codec);
      g = factor_part(2, u, w);
      std::memcpy(g.data() + 4 + 2 * 3, &h, 2);
      CHECK(dec(g, signs, dst) == wc::Errc::codec);
    }
    auto g = f;
    g.push_back(0);
    CHECK(wc::bitstack::parse_rank(g.data(), g.size(), rows, cols) == 0);
    CHECK(dec(g, signs, dst) == wc::Errc::codec);
    g = f;
    g[0] = 0;
    CHECK(wc::bitstack::parse_rank(g.data(), g.size(), rows, cols) == 0);
    g[0] = 1;  // the size of rank 2, read as rank 1
    CHECK(wc::bitstack::parse_rank(g.data(), g.size(), rows, cols) == 0);
    g = f;
    g[2] = 1;  // reserved
    CHECK(wc::bitstack::parse_rank(g.data(), g.size(), rows, cols) == 0);
    const auto r17 = factor_part(17, std::vector<uint16_t>(rows * 17), std::vector<uint16_t>(17 * cols));
    CHECK(wc::bitstack::parse_rank(r17.data(), r17.size(), rows, cols) == 0);
    // a value below that is not finite; a result past F16's top is stored as +Inf (QROW.md §3)
    for (uint8_t hi : {uint8_t(0x7C), uint8_t(0x7E)}) {
      auto inf_below = stored(DType::F16, std::vector<float>(rows * cols, 1.f));
      inf_below[2 * 4] = 0x00, inf_below[2 * 4 + 1] = hi;
      CHECK(dec(f, signs, inf_below) == wc::Errc::codec);
    }
    const auto big = factor_part(1, std::vector<uint16_t>(rows, 0x5BFF), std::vector<uint16_t>(cols, 0x5BFF));
    auto top = stored(DType::F16, std::vector<float>(rows * cols, 60000.f));
    REQUIRE(wc::bitstack::apply_tile(big.data(), big.size(), signs.data(), signs.size(), wc::qrow::kF16, rows, 0, rows,
                                     cols, top.data()) == wc::Errc::ok);
    CHECK(top == stored(DType::F16, std::vector<float>(rows * cols, INFINITY)));
  }

  TEST_CASE("fit: a rank-2 non-negative matrix is recovered to binary16 precision") {
    const uint64_t rows = 300, cols = 40;
    std::vector<float> A(rows * cols);
    for (uint64_t i = 0; i < rows; ++i)
      for (uint64_t j = 0; j < cols; ++j)
        A[i * cols + j] = float(0.01 * (1 + i % 7) * (1 + j % 3) + 0.003 * (1 + (i * 7) % 5) * (j % 4 == 0 ? 1 : 0));
    auto seq = [](size_t n, const std::function<void(size_t)>& fn) {
      for (size_t i = 0; i < n; ++i) fn(i);
    };
    for (unsigned r : {1u, 2u}) {
      const wc::bitstack::Factors F = wc::bitstack::fit(A.data(), rows, cols, r, seq);
      double e = 0, s = 0;
      for (uint64_t i = 0; i < rows; ++i)
        for (uint64_t j = 0; j < cols; ++j) {
          const double m = wc::bitstack::magnitude(F.uf.data() + i * r, F.wf.data() + j, cols, r);
          e += (m - A[i * cols + j]) * (m - A[i * cols + j]), s += double(A[i * cols + j]) * A[i * cols + j];
        }
      CAPTURE(r);
      if (r == 1) CHECK(std::sqrt(e / s) < 0.2);
      else CHECK(std::sqrt(e / s) < 2e-3);  // binary16's rounding
    }
  }

  TEST_CASE("--refine 2 --exact --block bitstack: blocks at levels 1 and 2, error falling, the top the original") {
    tu::TempDir d;
    std::vector<stb::StTensor> ts;
    uint64_t seed = 41;
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      ts.push_back(wgen::tensor_of(t, "w", 300, 160, seed++));
      ts.push_back(wgen::tensor_of(t, "special", 64, 96, seed++, true));
    }
    ts.push_back({"norm", DType::F32, {160}, {}});
    const std::string src = d / "m.safetensors", wcz = d / "b.wcz";
    tu::write_file(src, stb::build(ts));
    wc::pack(src, wcz, block_options(2.5, 2, true, "bitstack"));
    wc::ContainerReader r(wcz, wc::kReaderChecks);
    const wc::Manifest& m = r.manifest();
    CHECK(r.header().minor == 14);
    const auto orig = tu::read_file(src);
    unsigned lossy = 0;
    for (const auto& t : m.tensors) {
      if (!t.lossy()) continue;
      CAPTURE(t.name);
      ++lossy;
      REQUIRE(t.levels.size() == 4);
      for (unsigned k = 1; k <= 2; ++k) {
        CHECK(t.parts[2 * k].role == wc::PartRole::block);
        CHECK(t.parts[2 * k + 1].role == wc::PartRole::block);
      }
      CHECK(t.parts[6].role == wc::PartRole::exact_top);
      if (t.name.find("special") == std::string::npos) {
        // each block about halves the error (a sign bit and the residual's mean magnitude)
        CHECK(t.levels[1].rel_rmse < 0.75f * t.levels[0].rel_rmse);
        CHECK(t.levels[2].rel_rmse < 0.75f * t.levels[1].rel_rmse);
      }
    }
    CHECK(lossy == 6);
    // inspect names each level's kind
    std::vector<wc::TensorSummary> listing;
    wc::inspect(wcz, false, &listing);
    unsigned listed = 0;
    for (const auto& t : listing)
      if (t.levels > 1) {
        CHECK(t.level_kinds == std::vector<std::string>{"block", "block", "exact"});
        ++listed;
      }
    CHECK(listed == 6);
    const auto text = tu::run(tu::cli() + " inspect " + wcz);
    CHECK(text.out.find("levels above 0: 12 sign-magnitude block(s), 6 exact top layer(s)") != std::string::npos);
    // every step unpacks, the last to the original; each level's bytes are the hash its record stores (verify)
    for (unsigned k = 0; k < m.level_count; k += 3) {
      wc::UnpackOptions o;
      o.level = int(k);
      wc::unpack(wcz, d / "l.safetensors", o);
      CHECK(tu::read_file(d / "l.safetensors").size() == orig.size());
      std::remove((d / "l.safetensors").c_str());
    }
    wc::unpack(wcz, d / "top.safetensors", {});
    CHECK(tu::read_file(d / "top.safetensors") == orig);
    CHECK(wc::verify(wcz, src, 2, {}).compared);
    // upgrade in place: from level 0 to 1 to 2 equals decoding level 2, reading each block's chunks only
    wcodec_archive* a = nullptr;
    char err[512];
    REQUIRE(wcodec_open(wcz.c_str(), &a, err, sizeof err) == WCODEC_OK);
    for (size_t i = 0; i < wcodec_tensor_count(a); ++i) {
      const auto& t = m.tensors[i];
      if (!t.lossy()) continue;
      CAPTURE(t.name);
      std::vector<uint8_t> held(t.byte_size), fresh(t.byte_size);
      REQUIRE(wcodec_decode_tensor_ex(a, i, 0, nullptr, held.data(), held.size(), 1, err, sizeof err) == WCODEC_OK);
      for (unsigned to = 1; to <= 2; ++to) {
        const uint64_t before = wcodec_chunks_decoded(a);
        REQUIRE(wcodec_upgrade_tensor(a, i, to - 1, to, held.data(), held.size(), 2, err, sizeof err) == WCODEC_OK);
        CHECK(wcodec_chunks_decoded(a) - before == t.tile_count() + 1);  // the signs of each tile, the factors
        REQUIRE(wcodec_decode_tensor_ex(a, i, to, nullptr, fresh.data(), fresh.size(), 1, err, sizeof err) ==
                WCODEC_OK);
        CHECK(held == fresh);
      }
    }
    wcodec_close(a);
  }

  TEST_CASE("--block auto: each level a block or a refinement, as rate and distortion choose; options checked") {
    tu::TempDir d;
    // rows of very different scales at a coarse base: the residual's magnitude follows the rows
    std::vector<stb::StTensor> ts = {{"w", DType::F32, {256, 128}, weights(DType::F32, 256, 128, 5)},
                                     {"v", DType::BF16, {128, 256}, weights(DType::BF16, 128, 256, 6)}};
    const std::string src = d / "m.safetensors";
    tu::write_file(src, stb::build(ts));
    wc::pack(src, d / "auto.wcz", block_options(1.5, 2, false, "auto"));
    wc::pack(src, d / "ref.wcz", block_options(1.5, 2, false, "refine"));
    wc::ContainerReader r(d / "auto.wcz", wc::kReaderChecks);
    for (const auto& t : r.manifest().tensors) {
      if (!t.lossy()) continue;
      REQUIRE(t.levels.size() == 3);
      for (unsigned k = 1; k <= 2; ++k) {
        CHECK(t.parts[2 * k].role == t.parts[2 * k + 1].role);
        CHECK((t.parts[2 * k].role == wc::PartRole::block || t.parts[2 * k].role == wc::PartRole::residual));
        CHECK(t.levels[k].rel_rmse < t.levels[k - 1].rel_rmse);
      }
    }
    CHECK(wc::verify(d / "auto.wcz", "", 2, {}).chunks > 0);  // every level's hash
    // --block refine is the files of before (no role-6 part, so no 2.14)
    CHECK(wc::ContainerReader(d / "ref.wcz", wc::kReaderChecks).header().minor < 14);
    wc::PackOptions o = block_options(3, 0, false, "bitstack");  // no --refine
    CHECK_THROWS_AS(wc::pack(src, d / "x.wcz", o), wc::Error);
    o = block_options(3, 1, false, "bitstack");
    o.block_rank = 17;
    CHECK_THROWS_AS(wc::pack(src, d / "x.wcz", o), wc::Error);
    o.block_rank = 0;
    CHECK_THROWS_AS(wc::pack(src, d / "x.wcz", o), wc::Error);
    o = block_options(3, 1, false, "bitstak");
    CHECK_THROWS_AS(wc::pack(src, d / "x.wcz", o), wc::Error);
    o = block_options(0, 0, false, "auto");  // lossless
    CHECK_THROWS_AS(wc::pack(src, d / "x.wcz", o), wc::Error);
    CHECK_FALSE(wc::path_exists(d / "x.wcz"));
    const auto cli = tu::run(tu::cli() + " pack " + src + " -o " + (d / "c.wcz") +
                             " --bits 1.5 --refine 2 --block auto -q");
    CHECK(cli.status == 0);
    CHECK(tu::read_file(d / "c.wcz") == tu::read_file(d / "auto.wcz"));
    const auto bad = tu::run(tu::cli() + " pack " + src + " -o " + (d / "e.wcz") + " --bits 3 --refine 1 --block foo -q");
    CHECK(bad.status != 0);
  }
}
