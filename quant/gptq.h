// GPTQ error feedback for qrow codes (issue: lossy part 2). Rows are
// quantized column by column; each column's rounding error is spread over
// the columns not yet quantized through the inverse of the layer's input
// covariance H (the mean of x xᵀ over calibration inputs), so the layer's
// outputs, not its weights, stay close. Only the codes change: the
// container, its decoders and their arithmetic are those of qrow.
#pragma once
#include <cstdint>
#include <vector>

namespace wc::qrow {

struct Feedback {
  uint64_t n = 0;               // columns
  std::vector<uint32_t> order;  // the order columns are quantized in
  // n x n, row-major, in `order`'s coordinates: the upper Cholesky factor U
  // of H^-1 (H^-1 = Uᵀ U); row k drives column k's error into columns > k.
  // empty: no feedback (a diagonal H, from importances alone)
  std::vector<float> u;
  // per column in `order`: how much an error there costs, 1 / U[k][k]^2 =
  // 1 / (H^-1 given the columns before)[k][k], over its mean; the rounding's
  // rate term is divided by it (more precise codes where errors cost more)
  std::vector<float> colw;
};

// From H (n x n, symmetric, row-major): H + damp * mean(diag H) * I, its
// inverse, and that inverse's upper Cholesky factor (double precision).
// act_order: columns by descending diag(H) (the most used inputs first, while
// there is the most freedom left to absorb their errors), ties by index.
// Columns with diag(H) = 0 (inputs never seen) take the mean of the diagonal
// (so dead inputs are quantized like the rest). Throws Errc::usage when H
// is not positive definite after dampening (not a covariance).
Feedback make_feedback(const float* H, uint64_t n, double damp, bool act_order);

// Importances alone (the diagonal of H): no feedback, colw from H's diagonal.
Feedback make_feedback_diag(const float* importance, uint64_t n, double damp);

inline constexpr double kGptqDamp = 0.01;  // GPTQ's default dampening

}  // namespace wc::qrow
