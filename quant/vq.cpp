#include "quant/vq.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>

#include "quant/float_load.h"
#include "quant/qrow_math.h"
#include "quant/vq_gptq.h"
#include "quant/vq_math.h"
#include "quant/vq_nearest.h"

namespace wc::vq {

namespace {

// Per-column weights normalised to mean 1 (all 1 without importances).
std::vector<float> column_weights(uint64_t cols, const float* imp) {
  std::vector<float> w(cols, 1.0f);
  if (!imp) return w;
  double mean = 0;
  for (uint64_t c = 0; c < cols; ++c) mean += double(imp[c]);
  mean /= double(cols);
  if (mean > 0)
    for (uint64_t c = 0; c < cols; ++c) w[c] = float(std::max(double(imp[c]) / mean, 1e-6));
  return w;
}

double uniform(std::mt19937_64& g) { return double(g() >> 11) * 0x1.0p-53; }

}  // namespace

qrow::Steps row_steps(const std::vector<double>& rms, double rms_all) {
  qrow::Plan p;
  p.c = 1.0;
  p.alpha = 1.0;
  return qrow::choose_steps(rms, rms_all, p);
}

namespace {

// The rows' vectors of d values, each divided by its row's step, and their
// columns' weights (v and w alike: n x d floats).
void row_vectors(DType t, const uint8_t* data, uint64_t cols, const qrow::Steps& s, const std::vector<uint64_t>& rows,
                 uint32_t d, const float* imp, std::vector<float>& v, std::vector<float>& w) {
  const std::vector<float> cw = column_weights(cols, imp);
  const size_t eb = dtype_bits(t) / 8;
  const uint64_t gpr = cols / d;
  std::vector<float> x(cols);
  v.clear(), w.clear();
  for (uint64_t r : rows) {
    load_floats(t, data + r * cols * eb, cols, x.data());
    const float inv = 1.0f / qrow::step_of(s.base_exp, s.e[r]);
    for (uint64_t c = 0; c < gpr * d; ++c) v.push_back(x[c] * inv), w.push_back(cw[c]);
  }
}

// Additive codes (Codebook's k2 > 0) of vectors by beam search. A book is
// prepared once (its two codebooks column-major for the search, and as
// stored for the exact distance); code() then takes the kBeam entries of the
// first nearest v (ties: the lower index), for each the second's entry
// nearest v minus it, and returns the pair whose sum is nearest v (the
// distance summed over the d values in order, as nearest()'s; ties: the
// lower code).
class AdditiveCoder {
 public:
  AdditiveCoder(const float* book, uint32_t k1, uint32_t k2, uint32_t d)
      : a_(book), b_(book + size_t(k1) * d), k1_(k1), k2_(k2), d_(d), at_(column_major(a_, 1, k1, d)),
        bt_(column_major(b_, 1, k2, d)), dist_(std::max(k1, k2)), idx_(k1), r_(d), dists_(distances_fn()),
        nearest_(nearest_fn()) {}
  uint32_t code(const float* v, const float* w) {
    dists_(v, w, at_.data(), d_, k1_, dist_.data());
    for (uint32_t i = 0; i < k1_; ++i) idx_[i] = i;
    const uint32_t beam = std::min(kBeam, k1_);
    auto key = [&](uint32_t x) { return std::isnan(dist_[x]) ? std::numeric_limits<float>::infinity() : dist_[x]; };
    auto less = [&](uint32_t x, uint32_t y) { return key(x) < key(y) || (key(x) == key(y) && x < y); };
    std::partial_sort(idx_.begin(), idx_.begin() + beam, idx_.end(), less);
    uint32_t best = 0;
    float bd = std::numeric_limits<float>::infinity();
    for (uint32_t t = 0; t < beam; ++t) {
      const uint32_t i = idx_[t];
      const float* ai = a_ + size_t(i) * d_;
      for (uint32_t q = 0; q < d_; ++q) r_[q] = v[q] - ai[q];
      const uint32_t j = nearest_(r_.data(), w, bt_.data(), d_, k2_, dist_.data());
      const float* bj = b_ + size_t(j) * d_;
      float dd = 0;
      for (uint32_t q = 0; q < d_; ++q) {
        const float x = v[q] - (ai[q] + bj[q]);
        dd += w[q] * x * x;
      }
      const uint32_t u = i * k2_ + j;
      if (dd < bd || (dd == bd && u < best)) bd = dd, best = u;
    }
    return best;
  }

 private:
  const float *a_, *b_;
  uint32_t k1_, k2_, d_;
  std::vector<float> at_, bt_, dist_;
  std::vector<uint32_t> idx_;
  std::vector<float> r_;
  DistFn dists_;
  NearestFn nearest_;
};

}  // namespace

Codebook train(DType t, const uint8_t* data, uint64_t cols, const qrow::Steps& s, const std::vector<uint64_t>& rows,
               uint32_t d, uint32_t k, const float* imp, int iters) {
  std::vector<float> v, w;
  row_vectors(t, data, cols, s, rows, d, imp, v, w);
  return kmeans(v, w, d, k, iters);
}

Codebook kmeans(const std::vector<float>& v, const std::vector<float>& w, uint32_t d, uint32_t k, int iters) {
  const size_t n = v.size() / d;
  Codebook cb;
  cb.d = d;
  cb.k = uint32_t(std::min<size_t>(k, std::max<size_t>(n, 1)));
  cb.c.assign(size_t(cb.k) * d, 0.0f);
  if (n == 0) return cb;
  // k-means++: the first centre uniform, each next by D^2 sampling
  std::mt19937_64 g(0x5EEDC0DEull + 131 * k + d);
  std::vector<float> dist(n, std::numeric_limits<float>::infinity()), dd(n);
  // the points column-major: each centre's distances to all of them side by side
  const std::vector<float> vt = column_major(v.data(), 1, uint32_t(n), d), wt = column_major(w.data(), 1, uint32_t(n), d);
  size_t pick = size_t(uniform(g) * double(n)) % n;
  for (uint32_t j = 0; j < cb.k; ++j) {
    std::copy(&v[pick * d], &v[pick * d] + d, &cb.c[size_t(j) * d]);
    point_distances(&cb.c[size_t(j) * d], vt.data(), wt.data(), d, n, dd.data());
    double total = 0;
    for (size_t i = 0; i < n; ++i) {
      dist[i] = std::min(dist[i], dd[i]);
      total += dist[i];
    }
    if (total <= 0) break;  // fewer distinct vectors than entries: the rest repeat
    double r = uniform(g) * total;
    pick = n - 1;
    for (size_t i = 0; i < n; ++i) {
      r -= dist[i];
      if (r < 0) {
        pick = i;
        break;
      }
    }
  }
  // Lloyd iterations: weighted means per dimension; an empty entry keeps its place
  std::vector<uint32_t> a(n);
  std::vector<double> sum(size_t(cb.k) * d), wsum(size_t(cb.k) * d);
  const NearestFn nearest = nearest_fn();
  std::vector<float> dist_k(cb.k);
  for (int it = 0; it < iters; ++it) {
    const std::vector<float> bt = column_major(cb.c.data(), 1, cb.k, d);
    for (size_t i = 0; i < n; ++i) a[i] = nearest(&v[i * d], &w[i * d], bt.data(), d, cb.k, dist_k.data());
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(wsum.begin(), wsum.end(), 0.0);
    for (size_t i = 0; i < n; ++i)
      for (uint32_t q = 0; q < d; ++q) {
        sum[size_t(a[i]) * d + q] += double(w[i * d + q]) * v[i * d + q];
        wsum[size_t(a[i]) * d + q] += double(w[i * d + q]);
      }
    for (size_t j = 0; j < sum.size(); ++j)
      if (wsum[j] > 0) cb.c[j] = float(sum[j] / wsum[j]);
  }
  return cb;
}

std::vector<uint64_t> spaced_rows(uint64_t r0, uint64_t rows, uint64_t cols, uint32_t d, uint64_t vectors) {
  const uint64_t per_row = std::max<uint64_t>(cols / d, 1);
  const uint64_t want = std::max<uint64_t>(1, (vectors + per_row - 1) / per_row);
  std::vector<uint64_t> out;
  if (want >= rows)
    for (uint64_t r = 0; r < rows; ++r) out.push_back(r0 + r);
  else
    for (uint64_t j = 0; j < want; ++j) out.push_back(r0 + j * rows / want);
  return out;
}

Codebook train_additive(DType t, const uint8_t* data, uint64_t cols, const qrow::Steps& s,
                        const std::vector<uint64_t>& rows, uint32_t d, uint32_t k1, uint32_t k2, const float* imp,
                        int rounds) {
  std::vector<float> v, w;
  row_vectors(t, data, cols, s, rows, d, imp, v, w);
  const size_t n = v.size() / d;
  Codebook cb;
  cb.d = d, cb.k = k1 * k2, cb.k2 = k2;
  cb.c.assign(size_t(k1 + k2) * d, 0.0f);
  if (n == 0) return cb;
  // the first codebook by k-means, the second by k-means on its residuals
  const Codebook a = kmeans(v, w, d, k1);
  std::vector<float> res(v.size());
  {
    const std::vector<float> at = column_major(a.c.data(), 1, a.k, d);
    std::vector<float> dist(a.k);
    const NearestFn nearest = nearest_fn();
    for (size_t i = 0; i < n; ++i) {
      const uint32_t e = nearest(&v[i * d], &w[i * d], at.data(), d, a.k, dist.data());
      for (uint32_t q = 0; q < d; ++q) res[i * d + q] = v[i * d + q] - a.c[size_t(e) * d + q];
    }
  }
  const Codebook b = kmeans(res, w, d, k2);
  for (uint32_t j = 0; j < k1; ++j)  // fewer vectors than entries: the last entry repeats
    std::copy_n(&a.c[size_t(std::min(j, a.k - 1)) * d], d, &cb.c[size_t(j) * d]);
  for (uint32_t j = 0; j < k2; ++j) std::copy_n(&b.c[size_t(std::min(j, b.k - 1)) * d], d, &cb.c[size_t(k1 + j) * d]);
  // rounds: code every vector, then refit each codebook to what the other
  // leaves (weighted means per dimension; an unused entry keeps its place)
  std::vector<uint32_t> u(n);
  for (int it = 0; it < rounds; ++it) {
    AdditiveCoder coder(cb.c.data(), k1, k2, d);
    for (size_t i = 0; i < n; ++i) u[i] = coder.code(&v[i * d], &w[i * d]);
    for (int half = 0; half < 2; ++half) {
      const uint32_t kk = half ? k2 : k1, off = half ? k1 : 0;
      std::vector<double> sum(size_t(kk) * d, 0.0), wsum(size_t(kk) * d, 0.0);
      for (size_t i = 0; i < n; ++i) {
        const uint32_t mine = half ? u[i] % k2 : u[i] / k2, other = half ? u[i] / k2 : k1 + u[i] % k2;
        for (uint32_t q = 0; q < d; ++q) {
          const double x = double(v[i * d + q]) - double(cb.c[size_t(other) * d + q]);
          sum[size_t(mine) * d + q] += double(w[i * d + q]) * x;
          wsum[size_t(mine) * d + q] += double(w[i * d + q]);
        }
      }
      for (size_t j = 0; j < sum.size(); ++j)
        if (wsum[j] > 0) cb.c[size_t(off) * d + j] = float(sum[j] / wsum[j]);
    }
  }
  return cb;
}

Codebook train_books(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, const qrow::Steps& s, uint32_t d,
                     uint32_t k, uint32_t shift, uint64_t per_book, const float* imp, int iters) {
  const uint64_t span = uint64_t(1) << shift, books = (rows + span - 1) / span;
  Codebook cb;
  cb.d = d, cb.k = k, cb.shift = shift;
  cb.c.assign(books * k * d, 0.0f);
  for (uint64_t b = 0; b < books; ++b) {
    const uint64_t r0 = b * span, n = std::min(span, rows - r0);
    const Codebook x = train(t, data, cols, s, spaced_rows(r0, n, cols, d, per_book), d, k, imp, iters);
    float* dst = &cb.c[b * k * d];
    for (uint32_t j = 0; j < k; ++j)  // fewer vectors than entries: the last entry repeats
      std::copy_n(&x.c[size_t(std::min(j, x.k - 1)) * d], d, dst + size_t(j) * d);
  }
  return cb;
}

void encode_rows(DType t, const uint8_t* data, uint64_t cols, uint64_t r0, uint64_t n, const qrow::Steps& s,
                 const Codebook& cb, const float* imp, uint16_t* u) {
  const std::vector<float> cw = column_weights(cols, imp);
  const size_t eb = dtype_bits(t) / 8;
  const uint64_t gpr = cols / cb.d;
  if (n == 0) return;
  if (cb.k2) {  // additive: beam search, book by book
    std::vector<float> x(cols);
    std::unique_ptr<AdditiveCoder> coder;
    uint64_t coder_book = UINT64_MAX;
    for (uint64_t r = r0; r < r0 + n; ++r) {
      if (cb.book_of(r) != coder_book)
        coder_book = cb.book_of(r), coder = std::make_unique<AdditiveCoder>(cb.entry(r, 0), cb.k / cb.k2, cb.k2, cb.d);
      load_floats(t, data + r * cols * eb, cols, x.data());
      const float inv = 1.0f / qrow::step_of(s.base_exp, s.e[r]);
      for (uint64_t c = 0; c < cols; ++c) x[c] *= inv;
      for (uint64_t gi = 0; gi < gpr; ++gi)
        u[(r - r0) * gpr + gi] = uint16_t(coder->code(&x[gi * cb.d], &cw[gi * cb.d]));
    }
    return;
  }
  const NearestFn nearest = nearest_fn();
  // the rows' books, column-major (the search runs over entries side by side)
  const uint64_t b0 = cb.book_of(r0), nb = cb.book_of(r0 + n - 1) - b0 + 1;
  const std::vector<float> bt = column_major(cb.entry(r0, 0), nb, cb.k, cb.d);
  std::vector<float> x(cols), dist(cb.k);
  for (uint64_t r = r0; r < r0 + n; ++r) {
    load_floats(t, data + r * cols * eb, cols, x.data());
    const float inv = 1.0f / qrow::step_of(s.base_exp, s.e[r]);
    for (uint64_t c = 0; c < cols; ++c) x[c] *= inv;
    const float* book = &bt[(cb.book_of(r) - b0) * cb.k * cb.d];
    for (uint64_t gi = 0; gi < gpr; ++gi)
      u[(r - r0) * gpr + gi] = uint16_t(nearest(&x[gi * cb.d], &cw[gi * cb.d], book, cb.d, cb.k, dist.data()));
  }
}

void encode_rows_as_written(DType t, const uint8_t* data, uint64_t cols, uint64_t r0, uint64_t n,
                            const qrow::Steps& s, const Codebook& cb, const float* imp, const qrow::Feedback* gptq,
                            uint16_t* u) {
  if (gptq && !cb.k2) encode_rows_gptq(t, data, cols, r0, n, s, cb, *gptq, u);
  else encode_rows(t, data, cols, r0, n, s, cb, imp, u);
}

qrow::Point evaluate(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, const qrow::Steps& s,
                     const Codebook& cb, const std::vector<uint64_t>& sample_rows, const float* imp, const float* H,
                     const qrow::Feedback* gptq) {
  const uint64_t ns = sample_rows.size(), gpr = cols / cb.d;
  const size_t eb = dtype_bits(t) / 8;
  std::vector<uint16_t> u(gpr);
  std::vector<float> x(cols);
  std::vector<double> d(ns * cols);
  std::vector<uint64_t> hist(cb.k, 0);
  double sig = 0;
  for (uint64_t k = 0; k < ns; ++k) {
    const uint64_t r = sample_rows[k];
    encode_rows_as_written(t, data, cols, r, 1, s, cb, imp, gptq, u.data());
    load_floats(t, data + r * cols * eb, cols, x.data());
    const float step = qrow::step_of(s.base_exp, s.e[r]);
    for (uint64_t gi = 0; gi < gpr; ++gi) {
      ++hist[u[gi]];
      for (uint32_t q = 0; q < cb.d; ++q) {
        const uint64_t c = gi * cb.d + q;
        d[k * cols + c] = double(x[c]) - double(value_of(step, cb.value(r, u[gi], q)));
      }
    }
    for (uint64_t c = 0; c < cols; ++c) sig += double(x[c]) * x[c];
  }
  qrow::Point pt;
  size_t distinct = 0;
  const uint64_t ng = ns * gpr;
  pt.bits = qrow::entropy_bits(hist, ng, &distinct) * double(rows * gpr) / double(ng) + (distinct * 1.5 + 16) * 8;
  pt.bits += 32.0 * double(cb.c.size());  // the codebook(s), F32
  std::vector<uint64_t> eh(256, 0);
  for (uint8_t e : s.e) ++eh[e];
  pt.bits += qrow::entropy_bits(eh, rows, &distinct) + (distinct * 1.5 + 8) * 8;
  pt.relerr2 = sig > 0 ? qrow::error2(H, cols, d, ns) / sig : 0;
  return pt;
}

}  // namespace wc::vq
