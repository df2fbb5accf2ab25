#include "quant/vq_gptq.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "platform/error.h"
#include "quant/float_load.h"
#include "quant/qrow_math.h"
#include "quant/vq_math.h"
#include "quant/vq_nearest.h"

namespace wc::vq {

namespace {

constexpr uint64_t kB = qrow::Feedback::kBlock, kS = qrow::Feedback::kSlab;

}  // namespace

void encode_rows_gptq(DType t, const uint8_t* data, uint64_t cols, uint64_t r0, uint64_t n, const qrow::Steps& s,
                      const Codebook& cb, const qrow::Feedback& fb, uint16_t* u) {
  if (fb.n != cols || fb.order.size() != cols || fb.colw.size() != cols)
    fail(Errc::usage, "calibration: a hessian's size is not the tensor's column count");
  for (uint64_t k = 0; k < cols; ++k)
    if (fb.order[k] != k) fail(Errc::usage, "vq with GPTQ: the feedback must keep the columns' order (no act-order)");
  if (cb.k2) fail(Errc::usage, "vq with GPTQ: additive codebooks are coded by their beam search (encode_rows)");
  const uint32_t d = cb.d, K = cb.k;
  if (d == 0 || K == 0 || cols % d) fail(Errc::usage, "vq with GPTQ: the column count is not a multiple of d");
  if (n == 0) return;
  const uint64_t bk0 = cb.book_of(r0), nbooks = cb.book_of(r0 + n - 1) - bk0 + 1;
  if (cb.book_of(r0 + n - 1) >= cb.books()) fail(Errc::usage, "vq with GPTQ: the codebook has no book for a row");
  const uint64_t gpr = cols / d;
  const size_t eb = dtype_bits(t) / 8;
  const bool feed = !fb.u.empty();
  const NearestFn nearest = nearest_fn();
  std::vector<float> step(n), inv(n);
  for (uint64_t i = 0; i < n; ++i) step[i] = qrow::step_of(s.base_exp, s.e[r0 + i]), inv[i] = 1.0f / step[i];
  // the current group's books, column-major per book (tb[(b * d + j) * K + c]),
  // and its feedback terms inside the group (ug[k * d + j] = u(j0 + k, j0 + j))
  std::vector<float> tb(nbooks * d * K), dist(K), ug(size_t(d) * d, 0.f), v(d);
  auto transform = [&](uint64_t j0) {
    if (feed)
      for (uint32_t k = 0; k < d; ++k)
        for (uint32_t j = k + 1; j < d; ++j) ug[k * d + j] = fb.at(j0 + k, j0 + j);
    for (uint64_t b = 0; b < nbooks; ++b)
      for (uint32_t c = 0; c < K; ++c) {
        const float* e = &cb.c[((bk0 + b) * K + c) * d];
        for (uint32_t j = 0; j < d; ++j) {
          float x = e[j];
          for (uint32_t k = 0; k < j; ++k) x -= ug[k * d + j] * e[k];
          tb[(b * d + j) * K + c] = x;
        }
      }
  };

  if (!feed) {  // importances alone: the nearest entry under colw
    transform(0);
    std::vector<float> x(cols);
    for (uint64_t i = 0; i < n; ++i) {
      load_floats(t, data + (r0 + i) * cols * eb, cols, x.data());
      const float* bt = &tb[(cb.book_of(r0 + i) - bk0) * d * K];
      for (uint64_t g = 0; g < gpr; ++g) {
        for (uint32_t j = 0; j < d; ++j) v[j] = x[g * d + j] * inv[i];
        u[i * gpr + g] = uint16_t(nearest(v.data(), &fb.colw[g * d], bt, d, K, dist.data()));
      }
    }
    return;
  }

  // Rows padded to whole slabs (the padding stays 0: u is 0 there); w the
  // values as the feedback moves them, w0 as loaded.
  const uint64_t wld = qrow::gptq_row_stride(cols);
  std::vector<float> w(n * wld, 0.f), buf(cols);
  for (uint64_t i = 0; i < n; ++i) {
    load_floats(t, data + (r0 + i) * cols * eb, cols, buf.data());
    std::copy(buf.begin(), buf.end(), &w[i * wld]);
  }
  const std::vector<float> w0 = w;
  // Row i's code of the group at j0 (transform(j0) done), and its d errors
  // (w0 - the decoded value; 0 where w0 is not finite) into err.
  auto choose = [&](uint64_t i, uint64_t j0, float* err) {
    const float* a = &w[i * wld + j0];
    const float* o = &w0[i * wld + j0];
    for (uint32_t j = 0; j < d; ++j) {
      float z = a[j];
      for (uint32_t k = 0; k < j; ++k) z -= ug[k * d + j] * o[k];
      v[j] = z * inv[i];
    }
    const uint64_t r = r0 + i;
    const uint32_t c = nearest(v.data(), &fb.colw[j0], &tb[(cb.book_of(r) - bk0) * d * K], d, K, dist.data());
    u[i * gpr + j0 / d] = uint16_t(c);
    const float* e = cb.entry(r, c);
    for (uint32_t j = 0; j < d; ++j) err[j] = std::isfinite(o[j]) ? o[j] - value_of(step[i], e[j]) : 0.f;
  };

  if (!fb.lazy || kS % d) {  // the plain loop: every group's errors as they come
    std::vector<float> err(n * d), uk(cols);
    for (uint64_t j0 = 0; j0 < cols; j0 += d) {
      transform(j0);
      for (uint64_t i = 0; i < n; ++i) choose(i, j0, &err[i * d]);
      for (uint32_t k = 0; k < d; ++k) {
        for (uint64_t j = j0 + d; j < cols; ++j) uk[j] = fb.at(j0 + k, j);
        for (uint64_t i = 0; i < n; ++i) {
          float* wi = &w[i * wld];
          const float e = err[i * d + k];
          for (uint64_t j = j0 + d; j < cols; ++j) wi[j] -= e * uk[j];
        }
      }
    }
    return;
  }
  // Lazy batches (d divides kSlab: groups never straddle a slab): each
  // group's errors move the rest of its slab at once; after each slab, the
  // panel's later slabs, and after each panel (kBlock columns), every column
  // after it, as matrix products. Each value loses its terms in the plain
  // loop's order (k ascending).
  std::vector<float> err(n * kB);
  for (uint64_t k0 = 0; k0 < cols; k0 += kB) {
    const uint64_t k1 = std::min(k0 + kB, cols);
    const float* panel = &fb.u[fb.panel[k0 / kB]];
    for (uint64_t s0 = k0; s0 < k1; s0 += kS) {
      const uint64_t s1 = std::min(s0 + kS, k1);
      const float* slab = panel + (s0 - k0) / kS * kB * kS;
      for (uint64_t j0 = s0; j0 < s1; j0 += d) {
        transform(j0);
        for (uint64_t i = 0; i < n; ++i) {
          float* ei = &err[i * kB + (j0 - k0)];
          choose(i, j0, ei);
          float* wi = &w[i * wld + s0];
          for (uint32_t k = 0; k < d; ++k) {
            const float* uk = slab + (j0 + k - k0) * kS;  // uk[c] = u(j0 + k, s0 + c)
            const float e = ei[k];
            for (uint64_t c = j0 + d - s0; c < s1 - s0; ++c) wi[c] -= e * uk[c];
          }
        }
      }
      if (s1 < k1)
        qrow::gptq_update(n, s1 - s0, &err[s0 - k0], kB, panel + (s1 - k0) / kS * kB * kS + (s0 - k0) * kS,
                        (k1 - s1 + kS - 1) / kS, &w[s1], wld);
    }
    if (k1 < cols)
      qrow::gptq_update(n, k1 - k0, err.data(), kB, panel + kB / kS * kB * kS, (cols - k1 + kS - 1) / kS, &w[k1], wld);
  }
}

}  // namespace wc::vq
