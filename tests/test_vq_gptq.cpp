// vq codes with GPTQ error feedback (quant/vq_gptq.h): against two slow
// references (the feedback's definition group by group, and the layer's
// output error computed from H itself), the reduction to the nearest entry
// without feedback terms, what it buys (a smaller output error than the
// nearest entries), and the usage errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "platform/error.h"
#include "quant/float_load.h"
#include "quant/gptq.h"
#include "quant/linalg.h"
#include "quant/qrow.h"
#include "quant/qrow_math.h"
#include "quant/vq.h"
#include "quant/vq_gptq.h"
#include "quant/vq_math.h"
#include "gptq_ref.h"
#include "weights_gen.h"

using wc::DType;
using wc::qrow::Feedback;
using wc::qrow::Steps;
using wc::vq::Codebook;

namespace {

// A correlated covariance: H of inputs whose channels of different energy
// share a common component (gptq_ref.h).
std::vector<float> correlated_h(size_t n, size_t samples, uint64_t seed) {
  return gref::hessian_of(gref::inputs(samples, n, seed, 0.7, 0.8), n);
}

// The rows of a matrix of dtype t as floats.
std::vector<float> floats_of(DType t, const std::vector<uint8_t>& data, size_t count) {
  std::vector<float> f(count);
  wc::load_floats(t, data.data(), count, f.data());
  return f;
}

Steps steps_of(DType t, const std::vector<uint8_t>& data, size_t rows, size_t cols) {
  double rms_all = 0;
  const auto rms = wc::qrow::row_rms(t, data.data(), rows, cols, &rms_all);
  return wc::vq::row_steps(rms, rms_all);
}

// `books` books of k random entries (values of a normalised row: about N(0, 1)).
Codebook random_codebook(uint32_t d, uint32_t k, uint32_t shift, uint64_t books, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.2f);
  Codebook cb;
  cb.d = d, cb.k = k, cb.shift = shift;
  cb.c.resize(books * k * d);
  for (auto& x : cb.c) x = g(rng);
  return cb;
}

// Decoded value of column j of row r with code c.
double decoded(const Codebook& cb, const Steps& st, uint64_t r, uint32_t c, uint32_t j) {
  return double(wc::vq::value_of(wc::qrow::step_of(st.base_exp, st.e[r]), cb.entry(r, c)[j]));
}

// The definition, in double: groups in order; a candidate's cost is
// sum_j colw_j r_j^2, r_j = (a_j - w_j) + e_j - sum_{k in group, k<j} e_k u(k, j),
// a the values after the feedback of the columns before the group, e = w - q;
// the chosen entry's errors (0 where w is not finite) move the later columns.
std::vector<uint16_t> reference_definition(const std::vector<float>& w, size_t rows, size_t cols, const Steps& st,
                                           const Codebook& cb, const Feedback& fb) {
  const uint32_t d = cb.d;
  std::vector<uint16_t> codes(rows * cols / d);
  for (size_t r = 0; r < rows; ++r) {
    const float* wr = &w[r * cols];
    std::vector<double> x(wr, wr + cols), e(d);
    for (size_t j0 = 0; j0 < cols; j0 += d) {
      double best = std::numeric_limits<double>::infinity();
      uint32_t bc = 0;
      for (uint32_t c = 0; c < cb.k; ++c) {
        double cost = 0;
        for (uint32_t j = 0; j < d; ++j) {
          e[j] = double(wr[j0 + j]) - decoded(cb, st, r, c, j);
          double rj = (x[j0 + j] - wr[j0 + j]) + e[j];
          for (uint32_t k = 0; k < j; ++k) rj -= e[k] * fb.at(j0 + k, j0 + j);
          cost += fb.colw[j0 + j] * rj * rj;
        }
        if (cost < best) best = cost, bc = c;
      }
      codes[(r * cols + j0) / d] = uint16_t(bc);
      for (uint32_t k = 0; k < d; ++k) {
        const double dk = std::isfinite(wr[j0 + k]) ? double(wr[j0 + k]) - decoded(cb, st, r, bc, k) : 0.0;
        for (size_t j = j0 + d; j < cols; ++j) x[j] -= dk * fb.at(j0 + k, j);
      }
    }
  }
  return codes;
}


// From H alone (dampened as make_feedback does): group by group, the entry
// whose errors, with the earlier groups' errors fixed and the later columns
// free to take any value, leave the least output error eᵀ H e. Minimised
// over the later columns that is e_Aᵀ ((H^-1)_AA)^-1 e_A, A the columns up
// to the group's last: Babai's nearest plane, without the feedback matrix.
std::vector<uint16_t> reference_from_h(const std::vector<float>& w, size_t rows, size_t cols, const Steps& st,
                                       const Codebook& cb, const std::vector<float>& h) {
  const uint32_t d = cb.d;
  double mean = 0;
  for (size_t i = 0; i < cols; ++i) mean += h[i * cols + i];
  mean /= double(cols);
  std::vector<double> hd(cols * cols);
  for (size_t i = 0; i < cols; ++i)
    for (size_t j = 0; j < cols; ++j) hd[i * cols + j] = 0.5 * (double(h[i * cols + j]) + h[j * cols + i]);
  for (size_t i = 0; i < cols; ++i) hd[i * cols + i] += wc::qrow::kGptqDamp * mean;
  const auto hinv = gref::inverse(hd, cols);
  std::vector<std::vector<double>> schur;  // per group: ((H^-1)_AA)^-1
  for (size_t m = d; m <= cols; m += d) {
    std::vector<double> a(m * m);
    for (size_t i = 0; i < m; ++i)
      for (size_t j = 0; j < m; ++j) a[i * m + j] = hinv[i * cols + j];
    schur.push_back(gref::inverse(a, m));
  }
  std::vector<uint16_t> codes(rows * cols / d);
  for (size_t r = 0; r < rows; ++r) {
    const float* wr = &w[r * cols];
    std::vector<double> e(cols, 0.0);
    for (size_t j0 = 0; j0 < cols; j0 += d) {
      const size_t m = j0 + d;
      const auto& s = schur[j0 / d];
      double best = std::numeric_limits<double>::infinity();
      uint32_t bc = 0;
      for (uint32_t c = 0; c < cb.k; ++c) {
        for (uint32_t j = 0; j < d; ++j) e[j0 + j] = double(wr[j0 + j]) - decoded(cb, st, r, c, j);
        double cost = 0;
        for (size_t i = 0; i < m; ++i)
          for (size_t j = 0; j < m; ++j) cost += e[i] * s[i * m + j] * e[j];
        if (cost < best) best = cost, bc = c;
      }
      for (uint32_t j = 0; j < d; ++j) e[j0 + j] = double(wr[j0 + j]) - decoded(cb, st, r, bc, j);
      codes[(r * cols + j0) / d] = uint16_t(bc);
    }
  }
  return codes;
}

// Codes of all rows, in one call or one call per row.
std::vector<uint16_t> gptq_codes(DType t, const std::vector<uint8_t>& data, size_t rows, size_t cols, const Steps& st,
                                 const Codebook& cb, const Feedback& fb, bool per_row = false) {
  const size_t gpr = cols / cb.d;
  std::vector<uint16_t> u(rows * gpr);
  if (!per_row) {
    wc::vq::encode_rows_gptq(t, data.data(), cols, 0, rows, st, cb, fb, u.data());
  } else {
    for (size_t r = 0; r < rows; ++r) wc::vq::encode_rows_gptq(t, data.data(), cols, r, 1, st, cb, fb, &u[r * gpr]);
  }
  return u;
}

// Output error of codes u: sum over rows of (w - w')ᵀ H (w - w').
double output_error(const std::vector<float>& w, size_t rows, size_t cols, const Steps& st, const Codebook& cb,
                    const std::vector<uint16_t>& u, const std::vector<float>& h) {
  double total = 0;
  std::vector<double> e(cols);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c)
      e[c] = double(w[r * cols + c]) - decoded(cb, st, r, u[(r * cols + c) / cb.d], uint32_t(c % cb.d));
    for (size_t i = 0; i < cols; ++i)
      for (size_t j = 0; j < cols; ++j) total += e[i] * double(h[i * cols + j]) * e[j];
  }
  return total;
}

size_t count_same(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
  size_t same = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) same += a[i] == b[i];
  return same;
}

}  // namespace

TEST_SUITE("vq_gptq") {
  TEST_CASE("GPTQ vq codes: the slow references' (the definition, and the output error from H alone)") {
    const size_t rows = 6, cols = 16;
    const auto h = correlated_h(cols, 64, 5);
    const Feedback fb = wc::qrow::make_feedback(h.data(), cols, wc::qrow::kGptqDamp, false);
    size_t runs = 0;
    for (DType t : {DType::F32, DType::BF16})
      for (uint32_t d : {2u, 4u})
        for (uint32_t shift : {0u, 1u}) {
          CAPTURE(int(t));
          CAPTURE(d);
          CAPTURE(shift);
          const auto data = testdata::weights(t, rows * cols, 40 + d + shift);
          const auto w = floats_of(t, data, rows * cols);
          const Steps st = steps_of(t, data, rows, cols);
          const Codebook cb = random_codebook(d, 8, shift, shift ? rows >> shift : 1, 70 + d + shift);
          const auto got = gptq_codes(t, data, rows, cols, st, cb, fb);
          CHECK(count_same(got, reference_definition(w, rows, cols, st, cb, fb)) == got.size());
          CHECK(count_same(got, reference_from_h(w, rows, cols, st, cb, h)) == got.size());
          CHECK(gptq_codes(t, data, rows, cols, st, cb, fb, true) == got);  // rows alone
          // the feedback changes codes: the nearest entries are others
          std::vector<uint16_t> plain(got.size());
          wc::vq::encode_rows(t, data.data(), cols, 0, rows, st, cb, nullptr, plain.data());
          CHECK(plain != got);
          ++runs;
        }
    CHECK(runs == 8);
  }

  TEST_CASE("GPTQ vq codes: lazy batches, the plain loop, one row per call and every SIMD level agree; a NaN") {
    // several panels, a partial slab, two books
    const size_t rows = 7, cols = 296;
    const auto h = correlated_h(cols, 400, 9);
    Feedback fb = wc::qrow::make_feedback(h.data(), cols, wc::qrow::kGptqDamp, false);
    for (uint32_t d : {2u, 4u, 8u}) {
      CAPTURE(d);
      auto data = testdata::weights(DType::F32, rows * cols, 90 + d);
      const Steps st = steps_of(DType::F32, data, rows, cols);
      const float nan = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(&data[(2 * cols + 131) * 4], &nan, 4);  // row 2, column 131: its group takes code 0
      const auto w = floats_of(DType::F32, data, rows * cols);
      const Codebook cb = random_codebook(d, 16, 2, 2, 30 + d);
      fb.lazy = true;
      const auto lazy = gptq_codes(DType::F32, data, rows, cols, st, cb, fb);
      CHECK(count_same(lazy, reference_definition(w, rows, cols, st, cb, fb)) == lazy.size());
      CHECK(lazy[(2 * cols + 131) / d] == 0);
      CHECK(gptq_codes(DType::F32, data, rows, cols, st, cb, fb, true) == lazy);
      fb.lazy = false;
      CHECK(gptq_codes(DType::F32, data, rows, cols, st, cb, fb) == lazy);
      fb.lazy = true;
      wc::simd::force_simd_level(0);
      const auto portable = gptq_codes(DType::F32, data, rows, cols, st, cb, fb);
      wc::simd::force_simd_level(-1);
      CHECK(portable == lazy);
    }
  }

  TEST_CASE("GPTQ vq codes without feedback terms: the nearest entries under the weights colw") {
    const size_t rows = 9, cols = 48;
    std::mt19937_64 rng(3);
    std::vector<float> imp(cols);
    for (auto& x : imp) x = float(std::exp(std::normal_distribution<double>(0, 1)(rng)));
    const Feedback fb = wc::qrow::make_feedback_diag(imp.data(), cols, wc::qrow::kGptqDamp);
    REQUIRE(fb.u.empty());
    for (uint32_t d : {2u, 4u, 8u})
      for (uint32_t shift : {0u, 2u}) {
        CAPTURE(d);
        CAPTURE(shift);
        const auto data = testdata::weights(DType::F32, rows * cols, 17 + d);
        const auto w = floats_of(DType::F32, data, rows * cols);
        const Steps st = steps_of(DType::F32, data, rows, cols);
        const Codebook cb = random_codebook(d, 32, shift, shift ? (rows >> shift) + 1 : 1, 50 + d);
        const auto got = gptq_codes(DType::F32, data, rows, cols, st, cb, fb);
        std::vector<uint16_t> brute(got.size());
        for (size_t r = 0; r < rows; ++r) {
          const double step = wc::qrow::step_of(st.base_exp, st.e[r]);
          for (size_t j0 = 0; j0 < cols; j0 += d) {
            double best = std::numeric_limits<double>::infinity();
            for (uint32_t c = 0; c < cb.k; ++c) {
              double dist = 0;
              for (uint32_t j = 0; j < d; ++j) {
                const double x = double(w[r * cols + j0 + j]) / step - cb.entry(r, c)[j];
                dist += fb.colw[j0 + j] * x * x;
              }
              if (dist < best) best = dist, brute[(r * cols + j0) / d] = uint16_t(c);
            }
          }
        }
        CHECK(count_same(got, brute) == got.size());
        if (shift == 0) {  // vq's own encoder, with colw as the importances (mean 1 already)
          std::vector<uint16_t> enc(got.size());
          wc::vq::encode_rows(DType::F32, data.data(), cols, 0, rows, st, cb, fb.colw.data(), enc.data());
          CHECK(count_same(got, enc) == got.size());
        }
      }
  }

  TEST_CASE("GPTQ vq codes: less output error than the nearest entries on a correlated H") {
    const size_t rows = 64, cols = 128;
    const auto h = correlated_h(cols, 512, 21);
    const Feedback fb = wc::qrow::make_feedback(h.data(), cols, wc::qrow::kGptqDamp, false);
    std::vector<float> diag(cols);
    for (size_t i = 0; i < cols; ++i) diag[i] = h[i * cols + i];
    struct Candidate {
      uint32_t d, k;
    };
    for (const Candidate cand : {Candidate{2, 16}, Candidate{4, 16}, Candidate{4, 256}, Candidate{8, 256}}) {
      const uint32_t d = cand.d;
      CAPTURE(d);
      CAPTURE(cand.k);
      const auto data = testdata::weights(DType::F32, rows * cols, 60 + d);
      const auto w = floats_of(DType::F32, data, rows * cols);
      const Steps st = steps_of(DType::F32, data, rows, cols);
      std::vector<uint64_t> all(rows);
      for (size_t r = 0; r < rows; ++r) all[r] = r;
      const Codebook cb = wc::vq::train(DType::F32, data.data(), cols, st, all, d, cand.k, diag.data());
      const auto got = gptq_codes(DType::F32, data, rows, cols, st, cb, fb);
      std::vector<uint16_t> plain(got.size()), weighted(got.size());
      wc::vq::encode_rows(DType::F32, data.data(), cols, 0, rows, st, cb, nullptr, plain.data());
      wc::vq::encode_rows(DType::F32, data.data(), cols, 0, rows, st, cb, diag.data(), weighted.data());
      const double eg = output_error(w, rows, cols, st, cb, got, h);
      const double ep = output_error(w, rows, cols, st, cb, plain, h);
      const double ew = output_error(w, rows, cols, st, cb, weighted, h);
      MESSAGE("d = " << d << ", K = " << cand.k << ": output error GPTQ / nearest = " << eg / ep
                     << ", GPTQ / importance-weighted nearest = " << eg / ew);
      CHECK(eg < 0.9 * ep);  // measured: 0.60, 0.63, 0.41, 0.44
      CHECK(eg < 0.9 * ew);  // measured: 0.74, 0.84, 0.70, 0.85
    }
  }

  TEST_CASE("GPTQ vq codes: act-order feedback, a wrong size, a missing book are usage errors") {
    const size_t rows = 4, cols = 32;
    const auto h = correlated_h(cols, 64, 8);
    const auto data = testdata::weights(DType::F32, rows * cols, 1);
    const Steps st = steps_of(DType::F32, data, rows, cols);
    const Codebook cb = random_codebook(4, 8, 0, 1, 2);
    std::vector<uint16_t> u(rows * cols / 4);
    auto usage = [&](const Feedback& fb, uint64_t ncols, const Codebook& book) {
      try {
        wc::vq::encode_rows_gptq(DType::F32, data.data(), ncols, 0, rows, st, book, fb, u.data());
      } catch (const wc::Error& e) {
        return e.code() == wc::Errc::usage;
      }
      return false;
    };
    const Feedback act = wc::qrow::make_feedback(h.data(), cols, wc::qrow::kGptqDamp, true);
    bool identity = true;
    for (size_t k = 0; k < cols; ++k) identity = identity && act.order[k] == k;
    REQUIRE(!identity);
    CHECK(usage(act, cols, cb));
    const Feedback fb = wc::qrow::make_feedback(h.data(), cols, wc::qrow::kGptqDamp, false);
    CHECK(!usage(fb, cols, cb));
    CHECK(usage(fb, cols - 4, cb));
    Codebook two = random_codebook(4, 8, 1, 1, 2);  // rows 2, 3 would need book 1
    CHECK(usage(fb, cols, two));
  }
}
