// GPTQ error feedback for qrow codes (issue: lossy part 2). Rows are
// quantized column by column; each column's rounding error is spread over
// the columns not yet quantized through the inverse of the layer's input
// covariance H (the mean of x xᵀ over calibration inputs), so the layer's
// outputs, not its weights, stay close. Only the codes change: the
// container, its decoders and their arithmetic are those of qrow.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace wc::qrow {

// How it is computed (spec: the OBS recursion, tests/test_gptq.cpp's
// reference). GPTQ moves the columns not yet quantized by the error of each
// one it quantizes, through U, the upper Cholesky factor of H^-1
// (H^-1 = Uᵀ U). Forming U needs H^-1; it is not needed. With R = U^-1, the
// upper triangular factor of H = R Rᵀ (the Cholesky factor of H in reversed
// order: if J H J = L Lᵀ, R = J L J), GPTQ's updated value of column j is
//   x_j = w_j + sum_{k<j} R[k][j] (w_k - w'_k) / R[j][j]
// (w the row, w' its quantized values): quantizing x_j greedily minimises
// the layer's output error (w - w')ᵀ H (w - w') = |Rᵀ (w - w')|^2 column by
// column, which is GPTQ's choice ("GPTQ as Babai's nearest plane"). So one
// Cholesky factorization of H does: no inverse, no second factorization.
struct Feedback {
  uint64_t n = 0;               // columns
  std::vector<uint32_t> order;  // the order columns are quantized in
  // The feedback matrix, in `order`'s coordinates: u(k, j) = -R[k][j] / R[j][j]
  // for j > k: column k's error d_k = w_k - w'_k moves every later column,
  // x_j = w_j - sum_{k<j} d_k u(k, j). Stored for GPTQ's lazy batches
  // (quantize_rows): in panels of kBlock rows (k), each the columns from the
  // panel's first, in slabs of kSlab columns, a slab's rows kSlab floats
  // apart (a slab is kBlock * kSlab contiguous floats, zeros where j <= k or
  // j >= n): what a batch reads streams from memory in order. About
  // n^2 / 2 floats. Empty: no feedback (a diagonal H, from importances alone).
  static constexpr uint64_t kBlock = 128, kSlab = 16;
  std::vector<float> u;
  std::vector<uint64_t> panel;  // where each panel starts in u
  float at(uint64_t k, uint64_t j) const {  // u(k, j), j >= k's panel's first column
    const uint64_t k0 = k / kBlock * kBlock, c = j - k0;
    return u[panel[k / kBlock] + (c / kSlab * kBlock + (k - k0)) * kSlab + c % kSlab];
  }
  // per column in `order`: how much an error there costs, R[k][k]^2 =
  // 1 / (H^-1 given the columns before)[k][k], over its mean; the rounding's
  // rate term is divided by it (more precise codes where errors cost more)
  std::vector<float> colw;
  // quantize_rows: GPTQ's lazy batches (updates inside a panel's kBlock
  // columns as each column is quantized, the panel's errors applied to the
  // columns after it at once, as a matrix product), or the plain loop (every
  // update as it comes). The same codes either way: the same operations per
  // value in the same order.
  bool lazy = true;
};

// The row stride quantize_rows gives rows of n columns: n rounded up to
// kSlab floats, and an odd number of kSlab steps, so that rows do not all
// fall in the same cache sets (widths of LLM layers are multiples of 1024:
// their rows would be whole multiples of 4 KiB apart).
inline uint64_t gptq_row_stride(uint64_t n) {
  const uint64_t ld = (n + Feedback::kSlab - 1) / Feedback::kSlab * Feedback::kSlab;
  return (ld / Feedback::kSlab) % 2 ? ld : ld + Feedback::kSlab;
}

// A parallel loop for make_feedback: fn(i) for every i in [0, n), returning
// when all are done (quant/linalg.h; empty: on the calling thread).
using ParallelFor = std::function<void(size_t n, const std::function<void(size_t)>& fn)>;

// From H (n x n, symmetric, row-major): H + damp * mean(diag H) * I and the
// feedback above, from its Cholesky factorization in double precision
// (blocked, the trailing updates through `par`; the result does not depend
// on it). act_order: columns by descending diag(H) (the most used inputs
// first, while there is the most freedom left to absorb their errors), ties
// by index. Columns with diag(H) = 0 (inputs never seen) take the mean of the
// diagonal (so dead inputs are quantized like the rest). Throws Errc::usage
// when H is not positive definite after dampening (not a covariance).
Feedback make_feedback(const float* H, uint64_t n, double damp, bool act_order, const ParallelFor& par = {});

// Importances alone (the diagonal of H): no feedback, colw from H's diagonal.
Feedback make_feedback_diag(const float* importance, uint64_t n, double damp);

inline constexpr double kGptqDamp = 0.01;  // GPTQ's default dampening

// GPTQ's lazy batch update, shared by qrow's and vq's GPTQ: rows i < n of c
// (ldc apart) lose, column by column, sum_k a[i][k] * b(k, j) for k = 0 ..
// K-1 in order, where b is `slabs` slabs of kSlab columns, kBlock rows kSlab
// floats apart (Feedback::u's panels). quant/simd_tile.h: the same bits as
// the plain loop, whatever the machine.
void gptq_update(uint64_t n, uint64_t K, const float* a, uint64_t lda, const float* b, uint64_t slabs, float* c,
                 uint64_t ldc);

}  // namespace wc::qrow
