// GPTQ error feedback for vq codes (spec/VQ.md §3): the codes of a row's
// groups of d columns chosen one group after another, each group's error
// moving the columns not yet coded through the feedback of quant/gptq.h, so
// that the layer's outputs, not the weights, stay close. Only the codes
// change: the codebook, the steps and the decoders are vq's.
#pragma once
#include <cstdint>

#include "format/dtype.h"
#include "quant/gptq.h"
#include "quant/qrow.h"
#include "quant/vq.h"

namespace wc::vq {

// How a group is chosen (Babai's nearest plane, one group of d columns at a
// time). With the identity order the layer's output error of a row is
//   sum_j colw_j (x_j - w'_j)^2,  x_j = w_j - sum_{k<j} d_k u(k, j),
// d_k = w_k - w'_k (the original value minus the decoded one, 0 where w_k is
// not finite), up to a constant factor (quant/gptq.h). The columns after a
// group can still absorb its error; those inside it cannot, so the group's
// entry is chosen jointly: with a_j the group's values after the feedback of
// every column before it, e = w - q the group's errors for the candidate
// q = step * entry, the group's cost is sum_j colw_j r_j^2 with
//   r_j = (a_j - w_j) + e_j - sum_{k in group, k<j} e_k u(k, j) = z_j - step (L entry)_j,
// L unit lower triangular (L[j][k] = -u(k, j) inside the group) and
// z_j = a_j - sum_{k in group, k<j} u(k, j) w_k (= a - w + L w). Each group's
// books are transformed by L once per call, so a row's choice is the entry
// of L book nearest to z / step under the weights colw (float, distances
// summed column by column as vq::encode_rows does; ties: the lowest index).
// Without feedback terms (fb.u empty: importances alone) it is the nearest
// entry under the weights colw.
//
// Codes of rows [r0, r0 + n) (one per group of d, row-major, as encode_rows)
// into u (n * cols / d codes). fb must have the identity order (make_feedback
// with act_order = false, or make_feedback_diag) and fb.n == cols; cols a
// multiple of cb.d; the codebook must hold the rows' books: otherwise
// wc::Error Errc::usage. One thread per call; a row's codes do not depend on
// the other rows of the call, on fb.lazy (GPTQ's lazy batches or the plain
// loop: the same operations per value in the same order) or on the SIMD level.
void encode_rows_gptq(DType t, const uint8_t* data, uint64_t cols, uint64_t r0, uint64_t n, const qrow::Steps& s,
                      const Codebook& cb, const qrow::Feedback& fb, uint16_t* u);

}  // namespace wc::vq
