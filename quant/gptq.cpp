#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "platform/error.h"

namespace wc::qrow {

namespace {

// In-place lower Cholesky factor of an n x n SPD matrix (row-major, lower
// triangle used). False when a pivot is not positive.
bool cholesky_lower(std::vector<double>& a, uint64_t n) {
  for (uint64_t j = 0; j < n; ++j) {
    double* rj = &a[j * n];
    double d = rj[j];
    for (uint64_t k = 0; k < j; ++k) d -= rj[k] * rj[k];
    if (!(d > 0)) return false;
    const double l = std::sqrt(d);
    rj[j] = l;
    const double inv = 1.0 / l;
    for (uint64_t i = j + 1; i < n; ++i) {
      double* ri = &a[i * n];
      double s = ri[j];
      for (uint64_t k = 0; k < j; ++k) s -= ri[k] * rj[k];
      ri[j] = s * inv;
    }
  }
  for (uint64_t i = 0; i < n; ++i)
    for (uint64_t j = i + 1; j < n; ++j) a[i * n + j] = 0;
  return true;
}

void set_colw(Feedback& fb, const std::vector<double>& w) {
  double mean = 0;
  for (double x : w) mean += x;
  mean /= double(std::max<size_t>(1, w.size()));
  fb.colw.resize(w.size());
  for (size_t k = 0; k < w.size(); ++k) fb.colw[k] = float(w[k] / mean);
}

}  // namespace

Feedback make_feedback(const float* H, uint64_t n, double damp, bool act_order) {
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
  // H in processing order, dampened
  std::vector<double> a(n * n);
  for (uint64_t i = 0; i < n; ++i)
    for (uint64_t j = 0; j < n; ++j) a[i * n + j] = double(H[uint64_t(fb.order[i]) * n + fb.order[j]]);
  for (uint64_t i = 0; i < n; ++i) {
    if (!(a[i * n + i] > 0)) a[i * n + i] = mean;
    a[i * n + i] += damp * mean;
  }
  if (!cholesky_lower(a, n)) fail(Errc::usage, "calibration: a hessian is not positive definite");
  // H^-1 = L^-T L^-1: invert L (lower) in place, column by column
  std::vector<double> li(n * n, 0);
  for (uint64_t j = 0; j < n; ++j) {
    li[j * n + j] = 1.0 / a[j * n + j];
    for (uint64_t i = j + 1; i < n; ++i) {
      double s = 0;
      for (uint64_t k = j; k < i; ++k) s += a[i * n + k] * li[k * n + j];
      li[i * n + j] = -s / a[i * n + i];
    }
  }
  std::vector<double> hinv(n * n, 0);
  for (uint64_t i = 0; i < n; ++i)
    for (uint64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (uint64_t k = i; k < n; ++k) s += li[k * n + i] * li[k * n + j];
      hinv[i * n + j] = hinv[j * n + i] = s;
    }
  if (!cholesky_lower(hinv, n)) fail(Errc::usage, "calibration: a hessian is too ill-conditioned to invert");
  fb.u.assign(n * n, 0.f);  // U = Lᵀ of H^-1's lower factor
  for (uint64_t i = 0; i < n; ++i)
    for (uint64_t j = i; j < n; ++j) fb.u[i * n + j] = float(hinv[j * n + i]);
  std::vector<double> w(n);
  for (uint64_t k = 0; k < n; ++k) w[k] = 1.0 / (double(fb.u[k * n + k]) * double(fb.u[k * n + k]));
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
