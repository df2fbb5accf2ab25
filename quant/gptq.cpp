#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "platform/error.h"
#include "quant/linalg.h"
#include "quant/simd_tile.h"

namespace wc::qrow {

namespace {

void set_colw(Feedback& fb, const std::vector<double>& w) {
  double mean = 0;
  for (double x : w) mean += x;
  mean /= double(std::max<size_t>(1, w.size()));
  fb.colw.resize(w.size());
  for (size_t k = 0; k < w.size(); ++k) fb.colw[k] = float(w[k] / mean);
}

// GPTQ's lazy batch update: rows i < n of c (ldc apart) lose, column by
// column, sum_k a[i][k] * b(k, j) for k = 0 .. K-1 in order (quant/simd_tile.h:
// the same bits as the plain loop), where b is `slabs` slabs of 16 columns,
// kBlock rows 16 floats apart, one after the other (Feedback::u's panels).
// Each slab (8 KB) stays in L1 across the rows; tiles of R rows by 16
// columns (AVX2: 6 rows, 12 accumulators).
template <class V, int R, int NV>
__attribute__((always_inline)) inline void update_rows(uint64_t n, uint64_t K, const float* a, uint64_t lda,
                                                       const float* b, uint64_t slabs, float* c, uint64_t ldc) {
  constexpr uint64_t S = Feedback::kSlab, SB = Feedback::kBlock * S;
  static_assert(NV * sizeof(V) / sizeof(float) == S);
  for (uint64_t s = 0; s < slabs; ++s, b += SB, c += S) {
    uint64_t i = 0;
    for (; i + R <= n; i += R) simd::tile<float, V, R, NV>(K, a + i * lda, lda, b, S, c + i * ldc, ldc);
    if (R > 3 && i + 3 <= n) simd::tile<float, V, 3, NV>(K, a + i * lda, lda, b, S, c + i * ldc, ldc), i += 3;
    for (; i < n; ++i) simd::tile<float, V, 1, NV>(K, a + i * lda, lda, b, S, c + i * ldc, ldc);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) void update_avx2(uint64_t n, uint64_t K, const float* a, uint64_t lda,
                                                 const float* b, uint64_t slabs, float* c, uint64_t ldc) {
  update_rows<simd::v8f, 6, 2>(n, K, a, lda, b, slabs, c, ldc);
}
#endif
void update_sse(uint64_t n, uint64_t K, const float* a, uint64_t lda, const float* b, uint64_t slabs, float* c,
                uint64_t ldc) {
  update_rows<simd::v4f, 2, 4>(n, K, a, lda, b, slabs, c, ldc);
}

}  // namespace

void gptq_update(uint64_t n, uint64_t K, const float* a, uint64_t lda, const float* b, uint64_t slabs, float* c,
                 uint64_t ldc) {
#if defined(__x86_64__)
  if (simd::simd_level() >= 1) return update_avx2(n, K, a, lda, b, slabs, c, ldc);
#endif
  update_sse(n, K, a, lda, b, slabs, c, ldc);
}

Feedback make_feedback(const float* H, uint64_t n, double damp, bool act_order, const ParallelFor& par) {
  Feedback fb;
  fb.n = n;
  fb.order.resize(n);
  std::iota(fb.order.begin(), fb.order.end(), 0u);
  double mean = 0;
  for (uint64_t i = 0; i < n; ++i) mean += double(H[i * n + i]);
  mean = n ? mean / double(n) : 0;
  if (!(mean > 0) || !std::isfinite(mean)) fail(Errc::usage, "calibration: a hessian has no positive diagonal");
  if (act_order)
    std::stable_sort(fb.order.begin(), fb.order.end(),
                     [&](uint32_t a, uint32_t b) { return H[uint64_t(a) * n + a] > H[uint64_t(b) * n + b]; });
  const auto loop = [&](size_t count, const std::function<void(size_t)>& fn) {
    if (par) par(count, fn);
    else
      for (size_t i = 0; i < count; ++i) fn(i);
  };
  // A = J H J: H in processing order, reversed (A[i][j] = H[o(n-1-i)][o(n-1-j)]),
  // made symmetric (the mean of H[a][b] and H[b][a]: the calibration file's
  // H is symmetric up to a tolerance), dampened. The factorization reads the
  // lower triangle.
  const uint64_t lda = linalg::padded(n), tiles = (n + 63) / 64;
  std::vector<double> a(lda * lda);
  loop(tiles, [&](size_t t) {
    for (uint64_t i = t * 64; i < std::min(n, t * 64 + 64); ++i) {
      const float* h = H + uint64_t(fb.order[n - 1 - i]) * n;
      double* ai = &a[i * lda];
      for (uint64_t j = 0; j < n; ++j) ai[j] = double(h[fb.order[n - 1 - j]]);
    }
  });
  loop(tiles, [&](size_t t) {  // row tile t against the column tiles up to it, 64 x 64 at a time
    const uint64_t i0 = t * 64, i1 = std::min(n, i0 + 64);
    for (uint64_t j0 = 0; j0 <= i0; j0 += 64)
      for (uint64_t i = i0; i < i1; ++i)
        for (uint64_t j = j0; j < std::min(j0 + 64, i); ++j) a[i * lda + j] = 0.5 * (a[i * lda + j] + a[j * lda + i]);
    for (uint64_t i = i0; i < i1; ++i) {
      double& d = a[i * lda + i];
      if (!(d > 0)) d = mean;
      d += damp * mean;
    }
  });
  if (!linalg::cholesky_lower(a.data(), n, lda, par)) fail(Errc::usage, "calibration: a hessian is not positive definite");
  // R = J L J: R[k][j] = L[n-1-k][n-1-j]; u(k, j) = -R[k][j] / R[j][j]
  constexpr uint64_t B = Feedback::kBlock, S = Feedback::kSlab;
  const uint64_t panels = (n + B - 1) / B;
  fb.panel.resize(panels);
  uint64_t size = 0;
  for (uint64_t p = 0; p < panels; ++p) fb.panel[p] = size, size += (n - p * B + S - 1) / S * B * S;
  fb.u.assign(size, 0.f);
  std::vector<double> diag(n);
  for (uint64_t c = 0; c < n; ++c) diag[c] = a[c * lda + c];
  loop(panels, [&](size_t p) {
    for (uint64_t k = p * B; k < std::min(n, p * B + B); ++k) {
      const uint64_t i = n - 1 - k;  // row i of L: row k of u, columns n-1-c for c < i
      const double* li = &a[i * lda];
      float* uk = &fb.u[fb.panel[p] + (k - p * B) * S];
      for (uint64_t j = k + 1; j < n; ++j) {
        const uint64_t c = j - p * B, col = n - 1 - j;
        uk[c / S * B * S + c % S] = float(-li[col] / diag[col]);
      }
    }
  });
  std::vector<double> w(n);
  for (uint64_t k = 0; k < n; ++k) w[k] = diag[n - 1 - k] * diag[n - 1 - k];
  set_colw(fb, w);
  return fb;
}

Feedback make_feedback_diag(const float* importance, uint64_t n, double damp) {
  Feedback fb;
  fb.n = n;
  fb.order.resize(n);
  std::iota(fb.order.begin(), fb.order.end(), 0u);
  double mean = 0;
  for (uint64_t i = 0; i < n; ++i) mean += double(importance[i]);
  mean = n ? mean / double(n) : 0;
  if (!(mean > 0) || !std::isfinite(mean)) fail(Errc::usage, "calibration: an importance vector has no positive entry");
  std::vector<double> w(n);
  for (uint64_t k = 0; k < n; ++k) w[k] = double(importance[k]) + damp * mean;
  set_colw(fb, w);
  return fb;
}

}  // namespace wc::qrow
