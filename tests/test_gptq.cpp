// pack --calib (spec/CALIB.md): GPTQ error feedback against a slow
// reference, the calibration file's checks, and what it buys: a smaller
// error in the layer's outputs at the same budget.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "lib/api.h"
#include "lib/thread_pool.h"
#include "platform/error.h"
#include "quant/gptq.h"
#include "quant/linalg.h"
#include "quant/qrow.h"
#include "quant/qrow_math.h"
#include "st_builder.h"
#include "gptq_ref.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::DType;

namespace {

std::vector<float> as_floats(const std::vector<uint8_t>& b) {
  std::vector<float> f(b.size() / 4);
  std::memcpy(f.data(), b.data(), b.size());
  return f;
}
std::vector<uint8_t> as_bytes(const std::vector<float>& f) {
  std::vector<uint8_t> b(f.size() * 4);
  std::memcpy(b.data(), f.data(), b.size());
  return b;
}

// Inputs with correlated channels of different energy, and their H (gptq_ref.h).
using gref::hessian_of;
using gref::inputs;

// GPTQ as the OBS recursion states it, in double: quantize column k of the
// remaining set, move the others by -e * Hinv[k][j] / Hinv[k][k], and remove
// k from Hinv by a rank-1 downdate.
std::vector<uint16_t> gptq_reference(const std::vector<float>& w, size_t rows, size_t n, const std::vector<float>& h,
                                     const wc::qrow::Steps& st, bool act_order) {
  std::vector<uint32_t> order(n);
  for (uint32_t j = 0; j < n; ++j) order[j] = j;
  if (act_order)
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return h[a * n + a] > h[b * n + b]; });
  double mean = 0;
  for (size_t i = 0; i < n; ++i) mean += h[i * n + i];
  mean /= double(n);
  // Hinv of the dampened H (Gauss-Jordan)
  std::vector<double> a(n * n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) a[i * n + j] = h[i * n + j];
    a[i * n + i] += wc::qrow::kGptqDamp * mean;
  }
  const std::vector<double> inv = gref::inverse(std::move(a), n);
  std::vector<uint16_t> codes(rows * n);
  for (size_t r = 0; r < rows; ++r) {
    std::vector<double> x(w.begin() + ptrdiff_t(r * n), w.begin() + ptrdiff_t((r + 1) * n));
    std::vector<double> hi = inv;
    const float step = wc::qrow::step_of(st.base_exp, st.e[r]);
    const double lim = wc::qrow::max_code(DType::F32, step, 2);
    for (size_t t = 0; t < n; ++t) {
      const size_t k = order[t];
      const double q = std::min(std::floor(std::fabs(x[k]) / step + 0.5), lim) * (x[k] < 0 ? -1 : 1);
      codes[r * n + k] = uint16_t(wc::qrow::zigzag(int32_t(q)));
      const double e = x[k] - q * step;
      const double hkk = hi[k * n + k];
      for (size_t u = t + 1; u < n; ++u) x[order[u]] -= e * hi[k * n + order[u]] / hkk;
      std::vector<double> hk(n);
      for (size_t j = 0; j < n; ++j) hk[j] = hi[k * n + j];
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < n; ++j) hi[i * n + j] -= hk[i] * hk[j] / hkk;
    }
  }
  return codes;
}

// sum over samples of ||(W - W') x||^2, W [rows, n] row-major
double output_error(const std::vector<float>& w, const std::vector<float>& w2, const std::vector<float>& x, size_t rows,
                    size_t n) {
  const size_t samples = x.size() / n;
  double e = 0;
  for (size_t s = 0; s < samples; ++s)
    for (size_t r = 0; r < rows; ++r) {
      double d = 0;
      for (size_t j = 0; j < n; ++j) d += (double(w[r * n + j]) - w2[r * n + j]) * x[s * n + j];
      e += d * d;
    }
  return e;
}

// H of n inputs from `samples` correlated inputs, in double (for the factorization tests).
std::vector<double> spd(size_t n, uint64_t seed) {
  const auto h = hessian_of(inputs(n + 20, n, seed), n);
  std::vector<double> d(h.begin(), h.end());
  for (size_t i = 0; i < n; ++i) d[i * n + i] += 0.01;
  return d;
}

// Bytes of two float or double vectors compared (NaN-safe, -0 apart from +0).
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// GPTQ's codes (rows x n weights of seed wseed, H from nx inputs of seed
// xseed, nearest rounding) equal the slow OBS reference, with and without
// act-order; and feedback changes codes (plain rounding gives others).
void check_gptq_against_reference(size_t rows, size_t n, uint64_t wseed, size_t nx, uint64_t xseed) {
  const auto wb = testdata::weights(DType::F32, rows * n, wseed);
  const auto w = as_floats(wb);
  const auto h = hessian_of(inputs(nx, n, xseed), n);
  double rms_all = 0;
  const auto rms = wc::qrow::row_rms(DType::F32, wb.data(), rows, n, &rms_all);
  wc::qrow::Plan p;
  p.c = 0.5;
  p.mu = 0;  // nearest: the reference's rounding
  const auto st = wc::qrow::choose_steps(rms, rms_all, p);
  for (bool act : {false, true}) {
    CAPTURE(act);
    const auto fb = wc::qrow::make_feedback(h.data(), n, wc::qrow::kGptqDamp, act);
    std::vector<uint16_t> got(rows * n);
    wc::qrow::quantize_rows(DType::F32, wb.data(), n, 0, rows, st, p, {}, 2, got.data(), &fb);
    const auto want = gptq_reference(w, rows, n, h, st, act);
    size_t same = 0;
    for (size_t i = 0; i < got.size(); ++i) same += got[i] == want[i];
    CHECK(same == got.size());
    std::vector<uint16_t> plain(rows * n);
    wc::qrow::quantize_rows(DType::F32, wb.data(), n, 0, rows, st, p, {}, 2, plain.data());
    CHECK(plain != got);
  }
}

// pack must refuse with a usage error whose message names `file` and, when
// given, `what`.
void expect_pack_usage(const std::string& model, const std::string& out, const wc::PackOptions& po,
                       const std::string& file, const std::string& what) {
  try {
    wc::pack(model, out, po);
    FAIL("accepted");
  } catch (const wc::Error& e) {
    CHECK(e.code() == wc::Errc::usage);
    const std::string msg = e.describe();
    CHECK(msg.find(file) != std::string::npos);
    if (!what.empty()) CHECK(msg.find(what) != std::string::npos);
  }
}

}  // namespace

TEST_SUITE("gptq") {
  TEST_CASE("blocked Cholesky: the reference's bits, at every SIMD level and thread count") {
    wc::ThreadPool pool(3);
    const wc::linalg::ParallelFor par = [&](size_t n, const std::function<void(size_t)>& fn) { pool.parallel_for(n, fn); };
    for (size_t n : {1, 2, 7, 8, 9, 129, 300, 600}) {
      CAPTURE(n);
      const auto h = spd(n, 100 + n);
      std::vector<double> ref = h;
      REQUIRE(wc::linalg::cholesky_lower_ref(ref.data(), n, n));
      for (int level : {0, 1}) {
        for (bool threads : {false, true}) {
          CAPTURE(level);
          CAPTURE(threads);
          wc::simd::force_simd_level(level);
          const size_t lda = wc::linalg::padded(n) + 3;  // a leading dimension past the padding
          std::vector<double> a(wc::linalg::padded(n) * lda, 5.0);
          for (size_t i = 0; i < n; ++i)
            for (size_t j = 0; j < n; ++j) a[i * lda + j] = h[i * n + j];
          REQUIRE(wc::linalg::cholesky_lower(a.data(), n, lda, threads ? par : wc::linalg::ParallelFor{}));
          wc::simd::force_simd_level(-1);
          size_t differ = 0;
          for (size_t i = 0; i < n; ++i)
            for (size_t j = 0; j <= i; ++j) differ += std::memcmp(&a[i * lda + j], &ref[i * n + j], 8) != 0;
          CHECK(differ == 0);
        }
      }
      // and a = L Lᵀ
      double worst = 0;
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j <= i; ++j) {
          double s = 0;
          for (size_t k = 0; k <= j; ++k) s += ref[i * n + k] * ref[j * n + k];
          worst = std::max(worst, std::fabs(s - h[i * n + j]) / std::sqrt(h[i * n + i] * h[j * n + j]));
        }
      CHECK(worst < 1e-12);
    }
    std::vector<double> bad = {1, 2, 2, 1};  // indefinite
    CHECK_FALSE(wc::linalg::cholesky_lower_ref(bad.data(), 2, 2));
    const size_t lda = wc::linalg::padded(2);
    std::vector<double> room(lda * lda, 0);
    room[0] = 1, room[lda] = 2, room[lda + 1] = 1;
    CHECK_FALSE(wc::linalg::cholesky_lower(room.data(), 2, lda));
  }

  TEST_CASE("make_feedback: the same bits with and without threads") {
    wc::ThreadPool pool(2);
    const wc::qrow::ParallelFor par = [&](size_t n, const std::function<void(size_t)>& fn) { pool.parallel_for(n, fn); };
    const size_t n = 300;
    const auto h = hessian_of(inputs(400, n, 21), n);
    for (bool act : {false, true}) {
      const auto a = wc::qrow::make_feedback(h.data(), n, wc::qrow::kGptqDamp, act);
      const auto b = wc::qrow::make_feedback(h.data(), n, wc::qrow::kGptqDamp, act, par);
      CHECK(a.order == b.order);
      CHECK(same_bits(a.u, b.u));
      CHECK(same_bits(a.colw, b.colw));
    }
  }

  TEST_CASE("GPTQ lazy batches: the plain loop's codes on odd sizes, at every SIMD level") {
    for (size_t n : {1, 2, 129, 300}) {  // not multiples of the lazy batch (128) or of the kernels' 16 columns
      const size_t rows = 11;  // nor of their row tiles (6, then 3 and 1)
      CAPTURE(n);
      const auto wb = testdata::weights(DType::BF16, rows * n, 30 + n);
      const auto h = hessian_of(inputs(n + 50, n, 40 + n), n);
      double rms_all = 0;
      const auto rms = wc::qrow::row_rms(DType::BF16, wb.data(), rows, n, &rms_all);
      for (double mu : {0.0, 0.2}) {
        CAPTURE(mu);
        wc::qrow::Plan p;
        p.c = 0.7;
        p.mu = mu;
        const auto st = wc::qrow::choose_steps(rms, rms_all, p);
        std::vector<uint64_t> all(rows);
        for (size_t r = 0; r < rows; ++r) all[r] = r;
        const auto rd = wc::qrow::train_rd(DType::BF16, wb.data(), n, st, p, all, 2);
        for (bool act : {false, true}) {
          CAPTURE(act);
          auto fb = wc::qrow::make_feedback(h.data(), n, wc::qrow::kGptqDamp, act);
          fb.lazy = false;
          std::vector<uint16_t> plain(rows * n);
          const uint32_t m0 = wc::qrow::quantize_rows(DType::BF16, wb.data(), n, 0, rows, st, p, rd, 2, plain.data(), &fb);
          fb.lazy = true;
          for (int level : {0, 1}) {
            CAPTURE(level);
            wc::simd::force_simd_level(level);
            std::vector<uint16_t> got(rows * n);
            const uint32_t m1 = wc::qrow::quantize_rows(DType::BF16, wb.data(), n, 0, rows, st, p, rd, 2, got.data(), &fb);
            wc::simd::force_simd_level(-1);
            CHECK(got == plain);
            CHECK(m1 == m0);
          }
          // rows quantized together or one tile at a time: the same codes
          std::vector<uint16_t> split(rows * n);
          wc::qrow::quantize_rows(DType::BF16, wb.data(), n, 0, 2, st, p, rd, 2, split.data(), &fb);
          wc::qrow::quantize_rows(DType::BF16, wb.data(), n, 2, rows - 2, st, p, rd, 2, split.data() + 2 * n, &fb);
          CHECK(split == plain);
        }
      }
    }
  }

  TEST_CASE("evaluate with H: the figures of a row-by-row plain computation") {
    const size_t rows = 40, n = 131;  // sizes off the kernels' tiles
    const auto wb = testdata::weights(DType::F32, rows * n, 51);
    const auto w = as_floats(wb);
    const auto h = hessian_of(inputs(200, n, 52), n);
    double rms_all = 0;
    const auto rms = wc::qrow::row_rms(DType::F32, wb.data(), rows, n, &rms_all);
    wc::qrow::Plan p;
    p.c = 0.6;
    p.mu = 0.1;
    const auto fb = wc::qrow::make_feedback(h.data(), n, wc::qrow::kGptqDamp, true);
    std::vector<uint64_t> sample;
    for (uint64_t r = 1; r < rows; r += 4) sample.push_back(r);  // 10 rows: two groups of 8 in the kernel
    // expected: as evaluate computed it row by row
    const auto st = wc::qrow::choose_steps(rms, rms_all, p);
    const auto rd = wc::qrow::train_rd(DType::F32, wb.data(), n, st, p, sample, 2);
    double err = 0, sig = 0, trh = 0;
    for (size_t c = 0; c < n; ++c) trh += double(h[c * n + c]);
    std::vector<uint16_t> u(n);
    std::vector<double> d(n);
    for (uint64_t r : sample) {
      wc::qrow::quantize_rows(DType::F32, wb.data(), n, r, 1, st, p, rd, 2, u.data(), &fb);
      const float step = wc::qrow::step_of(st.base_exp, st.e[r]);
      for (size_t c = 0; c < n; ++c) {
        d[c] = double(w[r * n + c]) - double(wc::qrow::value_of(u[c], step));
        sig += double(w[r * n + c]) * w[r * n + c];
      }
      for (size_t i = 0; i < n; ++i) {
        double hi = 0;
        for (size_t j = 0; j < n; ++j) hi += double(h[i * n + j]) * d[j];
        err += d[i] * hi;
      }
    }
    err *= double(n) / trh;
    for (int level : {0, 1}) {
      CAPTURE(level);
      wc::simd::force_simd_level(level);
      const auto pt = wc::qrow::evaluate(DType::F32, wb.data(), rows, n, rms, rms_all, p, sample, &fb, h.data());
      wc::simd::force_simd_level(-1);
      CHECK(pt.relerr2 == err / sig);
    }
  }

  TEST_CASE("GPTQ codes equal the OBS reference on a larger matrix (several lazy batches)") {
    check_gptq_against_reference(6, 300, 8, 500, 9);
  }

  TEST_CASE("GPTQ codes equal the OBS reference (with and without act-order)") {
    check_gptq_against_reference(12, 40, 3, 400, 4);
  }

  TEST_CASE("a hessian that is not positive definite is refused") {
    const size_t n = 4;
    std::vector<float> h(n * n, 0);
    h[0] = 1, h[5] = 1, h[10] = 1, h[15] = 1;
    h[1] = h[4] = 5;  // |off-diagonal| > diagonal
    CHECK_THROWS_AS(wc::qrow::make_feedback(h.data(), n, 0.0, false), wc::Error);
    std::vector<float> z(n * n, 0);
    CHECK_THROWS_AS(wc::qrow::make_feedback(z.data(), n, wc::qrow::kGptqDamp, false), wc::Error);
  }

  TEST_CASE("pack --calib: smaller output error at the same budget, deterministic, verified") {
    tu::TempDir t;
    const size_t rows = 256, n = 96;
    const auto x = inputs(600, n, 11);
    std::vector<float> w(rows * n);
    {
      const auto g = as_floats(testdata::weights(DType::F32, rows * n, 12));
      std::copy(g.begin(), g.end(), w.begin());
    }
    std::vector<stb::StTensor> ts = {
        {"layer.weight", DType::F32, {rows, n}, as_bytes(w)},
        {"norm.weight", DType::F32, {n}, as_bytes(std::vector<float>(n, 1.f))},
    };
    const std::string m = t / "m.safetensors";
    tu::write_file(m, stb::build(ts));
    const auto h = hessian_of(x, n);
    std::vector<float> imp(n);
    for (size_t j = 0; j < n; ++j) imp[j] = h[j * n + j];
    const std::string cal = t / "calib.safetensors";
    tu::write_file(cal, stb::build({{"hessian.layer.weight", DType::F32, {n, n}, as_bytes(h)},
                                    {"importance.layer.weight", DType::F32, {n}, as_bytes(imp)},
                                    {"sensitivity.layer.weight", DType::F32, {}, as_bytes({2.0f})}}));
    auto packed = [&](const std::string& calib, unsigned threads, const std::string& out) {
      wc::PackOptions po;
      po.bits = 4;
      po.threads = threads;
      po.force = true;
      po.calib = calib;
      po.scheme = "quant";  // GPTQ against plain rounding of the same representation
      wc::pack(m, out, po);
      CHECK(wc::verify(out, "", threads, {}).files == 1);  // (its codes may lie in the record: no chunk)
      wc::UnpackOptions uo;
      uo.force = true;
      wc::unpack(out, out + ".st", uo);
      const auto b = tu::read_file(out + ".st");
      const uint64_t hl = [&] {
        uint64_t v = 0;
        std::memcpy(&v, b.data(), 8);
        return v;
      }();
      // the layer's bytes lie first in the data section (build() order)
      return std::vector<float>(reinterpret_cast<const float*>(b.data() + 8 + hl),
                                reinterpret_cast<const float*>(b.data() + 8 + hl) + rows * n);
    };
    const auto plain = packed("", 2, t / "plain.wcz");
    const auto g1 = packed(cal, 1, t / "g1.wcz");
    const auto g2 = packed(cal, 2, t / "g2.wcz");
    CHECK(tu::read_file(t / "g1.wcz") == tu::read_file(t / "g2.wcz"));  // thread count changes nothing
    CHECK(plain != g1);
    const double e_plain = output_error(w, plain, x, rows, n), e_gptq = output_error(w, g1, x, rows, n);
    MESSAGE("output error: plain " << e_plain << ", GPTQ " << e_gptq);
    CHECK(e_gptq < 0.9 * e_plain);
  }

  TEST_CASE("pack --calib: bad calibration files are usage errors naming the file and entry") {
    tu::TempDir t;
    const size_t rows = 64, n = 32;
    const std::string m = t / "m.safetensors";
    tu::write_file(m, stb::build({{"a.weight", DType::F32, {rows, n}, testdata::weights(DType::F32, rows * n, 1)}}));
    const auto h = hessian_of(inputs(100, n, 2), n);
    auto expect_usage = [&](std::vector<stb::StTensor> entries, const std::string& what) {
      CAPTURE(what);
      const std::string cal = t / "c.safetensors";
      tu::write_file(cal, stb::build(std::move(entries)));
      wc::PackOptions po;
      po.bits = 4;
      po.force = true;
      po.calib = cal;
      expect_pack_usage(m, t / "o.wcz", po, "c.safetensors", what);
    };
    expect_usage({{"hessian.b.weight", DType::F32, {n, n}, as_bytes(h)}}, "does not have");
    expect_usage({{"hessian.a.weight", DType::F32, {n - 1, n - 1}, as_bytes(std::vector<float>((n - 1) * (n - 1), 1))}},
                 "input size");
    auto asym = h;
    asym[1] += 10 * h[0];
    expect_usage({{"hessian.a.weight", DType::F32, {n, n}, as_bytes(asym)}}, "symmetric");
    expect_usage({{"importance.a.weight", DType::F32, {n}, as_bytes(std::vector<float>(n, -1.f))}}, ">= 0");
    expect_usage({{"importance.a.weight", DType::F16, {n}, std::vector<uint8_t>(n * 2, 0)}}, "F32");
    expect_usage({{"gradient.a.weight", DType::F32, {n}, as_bytes(std::vector<float>(n, 1.f))}}, "gradient.a.weight");
    expect_usage({{"sensitivity.a.weight", DType::F32, {2}, as_bytes({1.f, 2.f})}}, "one value");
    // --calib without --bits
    wc::PackOptions po;
    po.calib = t / "c.safetensors";
    CHECK_THROWS_AS(wc::pack(m, t / "o.wcz", po), wc::Error);
  }

  TEST_CASE("pack --calib: llama.cpp's legacy imatrix (.dat) is read as importances under Hugging Face names") {
    tu::TempDir t;
    const size_t rows = 64, n = 32;
    const std::string m = t / "m.safetensors";
    const auto wq = testdata::weights(DType::F32, rows * n, 5);
    tu::write_file(m, stb::build({{"model.layers.0.self_attn.q_proj.weight", DType::F32, {rows, n}, wq},
                                  {"model.embed_tokens.weight", DType::F32, {rows, n}, wq}}));
    auto dat = [&](const std::vector<std::pair<std::string, std::vector<float>>>& entries, bool cut = false) {
      std::vector<uint8_t> b;
      auto put32 = [&](int32_t v) {
        uint8_t x[4];
        std::memcpy(x, &v, 4);
        b.insert(b.end(), x, x + 4);
      };
      put32(int32_t(entries.size()));
      for (const auto& [name, v] : entries) {
        put32(int32_t(name.size()));
        b.insert(b.end(), name.begin(), name.end());
        put32(7);  // calls
        put32(int32_t(v.size()));
        const auto vb = as_bytes(v);
        b.insert(b.end(), vb.begin(), vb.end());
      }
      put32(7);  // the trailer: last call, and no dataset name
      put32(0);
      if (cut) b.resize(b.size() - 20);
      const std::string path = t / "imatrix.dat";
      tu::write_file(path, b);
      return path;
    };
    std::vector<float> imp(n);
    for (size_t j = 0; j < n; ++j) imp[j] = float(1 + (j % 7) * (j % 7));  // uneven channels
    auto pack_with = [&](const std::string& calib, const std::string& out) {
      wc::PackOptions po;
      po.bits = 3;
      po.force = true;
      po.calib = calib;
      wc::pack(m, out, po);
      CHECK(wc::verify(out, "", 2, {}).files == 1);
      return tu::read_file(out);
    };
    const auto plain = pack_with("", t / "plain.wcz");
    const auto with = pack_with(dat({{"blk.0.attn_q.weight", imp}, {"token_embd.weight", imp}}), t / "imx.wcz");
    CHECK(plain != with);  // importance-weighted rounding changed codes
    // a name the model lacks, a wrong length, a file cut short: usage errors
    for (const auto& bad_file : {dat({{"blk.3.attn_q.weight", imp}}), dat({{"blk.0.attn_q.weight", {1.f, 2.f}}}),
                                 dat({{"blk.0.attn_q.weight", imp}, {"token_embd.weight", imp}}, true)}) {
      wc::PackOptions po;
      po.bits = 3;
      po.force = true;
      po.calib = bad_file;
      expect_pack_usage(m, t / "x.wcz", po, "imatrix.dat", "");
    }
  }
}
