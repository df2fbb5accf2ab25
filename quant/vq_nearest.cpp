#include "quant/vq_nearest.h"

#include <limits>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "quant/simd_tile.h"

namespace wc::vq {

namespace {

// The loops of NearestFn's contract; compiled once per target below (the
// distance loop over the k entries vectorizes; the order over j does not
// change).
__attribute__((always_inline)) inline void distances_t(const float* v, const float* w, const float* t, uint32_t d,
                                                      uint32_t k, float* dist) {
  for (uint32_t c = 0; c < k; ++c) dist[c] = 0.f;
  for (uint32_t j = 0; j < d; ++j) {
    const float vj = v[j], wj = w[j];
    const float* tj = t + size_t(j) * k;
    for (uint32_t c = 0; c < k; ++c) {
      const float x = vj - tj[c];
      dist[c] += wj * x * x;
    }
  }
}

// The first index of the least distance below +inf (NaN is never less), 0
// when there is none: the definition, one compare a step.
inline uint32_t argmin_scalar(const float* dist, uint32_t k) {
  uint32_t best = 0;
  float bd = std::numeric_limits<float>::infinity();
  for (uint32_t c = 0; c < k; ++c)
    if (dist[c] < bd) bd = dist[c], best = c;
  return best;
}

__attribute__((always_inline)) inline uint32_t nearest_t(const float* v, const float* w, const float* t, uint32_t d,
                                                         uint32_t k, float* dist) {
  distances_t(v, w, t, d, k, dist);
  return argmin_scalar(dist, k);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) void distances_avx2(const float* v, const float* w, const float* t, uint32_t d,
                                                    uint32_t k, float* dist) {
  distances_t(v, w, t, d, k, dist);
}
// argmin_scalar's answer eight lanes at a time: the least value first
// (minps(x, m) is x < m ? x : m, so a NaN never enters m), then the first
// index holding it. The scalar scan's serial compare-and-select had cost
// several times the distances themselves (k = 256, d = 2).
__attribute__((target("avx2"))) uint32_t argmin_avx2(const float* dist, uint32_t k) {
  __m256 m = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  uint32_t c = 0;
  for (; c + 8 <= k; c += 8) m = _mm256_min_ps(_mm256_loadu_ps(dist + c), m);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float bd = std::numeric_limits<float>::infinity();
  for (float x : lanes) bd = x < bd ? x : bd;  // no NaN among them: the order does not matter
  for (; c < k; ++c) bd = dist[c] < bd ? dist[c] : bd;
  if (!(bd < std::numeric_limits<float>::infinity())) return 0;
  const __m256 b = _mm256_set1_ps(bd);
  for (c = 0; c + 8 <= k; c += 8)
    if (const unsigned hit = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(dist + c), b, _CMP_EQ_OQ))))
      return c + unsigned(__builtin_ctz(hit));
  for (; c < k; ++c)
    if (dist[c] == bd) return c;
  return 0;  // (not reached: bd is one of the distances)
}
__attribute__((target("avx2"))) uint32_t nearest_avx2(const float* v, const float* w, const float* t, uint32_t d,
                                                      uint32_t k, float* dist) {
  distances_t(v, w, t, d, k, dist);
  return argmin_avx2(dist, k);
}
#endif
uint32_t nearest_base(const float* v, const float* w, const float* t, uint32_t d, uint32_t k, float* dist) {
  return nearest_t(v, w, t, d, k, dist);
}
void distances_base(const float* v, const float* w, const float* t, uint32_t d, uint32_t k, float* dist) {
  distances_t(v, w, t, d, k, dist);
}

__attribute__((always_inline)) inline void point_distances_t(const float* c, const float* vt, const float* wt, uint32_t d,
                                                            size_t n, float* dd) {
  for (size_t i = 0; i < n; ++i) dd[i] = 0.f;
  for (uint32_t j = 0; j < d; ++j) {
    const float cj = c[j];
    const float* vj = vt + j * n;
    const float* wj = wt + j * n;
    for (size_t i = 0; i < n; ++i) {
      const float x = vj[i] - cj;
      dd[i] += wj[i] * x * x;
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) void point_distances_avx2(const float* c, const float* vt, const float* wt, uint32_t d,
                                                          size_t n, float* dd) {
  point_distances_t(c, vt, wt, d, n, dd);
}
#endif
void point_distances_base(const float* c, const float* vt, const float* wt, uint32_t d, size_t n, float* dd) {
  point_distances_t(c, vt, wt, d, n, dd);
}

}  // namespace

void point_distances(const float* c, const float* vt, const float* wt, uint32_t d, size_t n, float* dd) {
#if defined(__x86_64__)
  if (simd::simd_level() >= 1) return point_distances_avx2(c, vt, wt, d, n, dd);
#endif
  point_distances_base(c, vt, wt, d, n, dd);
}

NearestFn nearest_fn() {
#if defined(__x86_64__)
  if (simd::simd_level() >= 1) return nearest_avx2;
#endif
  return nearest_base;
}

DistFn distances_fn() {
#if defined(__x86_64__)
  if (simd::simd_level() >= 1) return distances_avx2;
#endif
  return distances_base;
}

std::vector<float> column_major(const float* books, uint64_t nbooks, uint32_t k, uint32_t d) {
  std::vector<float> out(nbooks * k * d);
  for (uint64_t b = 0; b < nbooks; ++b)
    for (uint32_t e = 0; e < k; ++e)
      for (uint32_t j = 0; j < d; ++j) out[(b * d + j) * k + e] = books[(b * k + e) * d + j];
  return out;
}

}  // namespace wc::vq
