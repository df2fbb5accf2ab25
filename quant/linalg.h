// Dense double-precision factorization for GPTQ (quant/gptq.cpp): a blocked
// Cholesky factorization, vectorised (quant/simd_tile.h) and parallel
// through a caller's loop. It computes every element with the same
// operations in the same order as its plain reference (cholesky_lower_ref),
// so blocked, vectorised and threaded results are bit-identical to the
// reference: tested on odd sizes in tests/test_gptq.cpp.
#pragma once
#include <cstddef>
#include <functional>

namespace wc::linalg {

// Runs fn(i) for every i in [0, n), in any order and possibly in parallel;
// returns when all are done. Empty: a plain loop on the calling thread.
using ParallelFor = std::function<void(size_t n, const std::function<void(size_t)>& fn)>;

// n rounded up to the kernels' column tile (8): the room cholesky_lower needs.
size_t padded(size_t n);

// Lower Cholesky factor in place: a is row-major with leading dimension lda;
// its lower triangle (n x n) is read and overwritten with L, a = L Lᵀ. The
// strict upper triangle is scratch (left undefined). a must have room for
// padded(n) rows and columns (lda >= padded(n)); the padding is overwritten.
// False when a pivot is not positive (not positive definite, or NaN).
// Panels of 128 columns; the trailing updates run through `par`.
bool cholesky_lower(double* a, size_t n, size_t lda, const ParallelFor& par = {});

// The reference: column by column, sums in index order. Upper triangle set to 0.
bool cholesky_lower_ref(double* a, size_t n, size_t lda);

}  // namespace wc::linalg

namespace wc::simd {
// Tests: run the kernels at a lower level than the machine has (0 portable,
// 1 AVX2; -1 restores the machine's own).
void force_simd_level(int level);
}  // namespace wc::simd
