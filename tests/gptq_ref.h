// Test helpers shared by the GPTQ suites (test_gptq.cpp: qrow codes;
// test_vq_gptq.cpp: codebook codes): correlated layer inputs and their
// covariance H, and a plain matrix inverse for the slow references. Written
// for the tests, independent of quant/linalg.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace gref {

// Inputs (samples x n): channels of log-normal energy (spread scale_sd)
// sharing a common component (weights of spread mix_sd).
inline std::vector<float> inputs(size_t samples, size_t n, uint64_t seed, double scale_sd = 1.0, double mix_sd = 0.6) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  std::vector<double> scale(n), mix(n);
  for (size_t j = 0; j < n; ++j) scale[j] = std::exp(scale_sd * g(rng)), mix[j] = mix_sd * g(rng);
  std::vector<float> x(samples * n);
  for (size_t s = 0; s < samples; ++s) {
    const double common = g(rng);
    for (size_t j = 0; j < n; ++j) x[s * n + j] = float(scale[j] * (g(rng) + mix[j] * common));
  }
  return x;
}

// H = mean of x xᵀ over the samples.
inline std::vector<float> hessian_of(const std::vector<float>& x, size_t n) {
  const size_t samples = x.size() / n;
  std::vector<float> h(n * n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      double s = 0;
      for (size_t k = 0; k < samples; ++k) s += double(x[k * n + i]) * x[k * n + j];
      h[i * n + j] = float(s / double(samples));
    }
  return h;
}

// Inverse of an n x n matrix (Gauss-Jordan, partial pivoting).
inline std::vector<double> inverse(std::vector<double> a, size_t n) {
  std::vector<double> inv(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) inv[i * n + i] = 1;
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[p * n + c])) p = r;
    for (size_t j = 0; j < n; ++j) std::swap(a[c * n + j], a[p * n + j]), std::swap(inv[c * n + j], inv[p * n + j]);
    const double piv = a[c * n + c];
    for (size_t j = 0; j < n; ++j) a[c * n + j] /= piv, inv[c * n + j] /= piv;
    for (size_t r = 0; r < n; ++r)
      if (r != c) {
        const double f = a[r * n + c];
        for (size_t j = 0; j < n; ++j) a[r * n + j] -= f * a[c * n + j], inv[r * n + j] -= f * inv[c * n + j];
      }
  }
  return inv;
}

}  // namespace gref
