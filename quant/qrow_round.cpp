#include "quant/qrow_round.h"

#include <algorithm>
#include <cmath>

#include "platform/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace wc::qrow {

namespace {

inline uint32_t zigzag_code(float v, const RoundParams& p) {
  const bool neg = v < 0;
  const int32_t q = round_one(float(std::fabs(double(v)) * p.inv), neg, p);
  return zigzag(neg ? -q : q);
}

#if defined(__x86_64__)
// zigzag(neg ? -k : k) of eight k >= -1 (neg: all ones or zero per lane):
// 2k, less one where neg and k > 0.
__attribute__((target("avx2"), always_inline)) inline __m256i zigzag8(__m256i k, __m256i neg) {
  const __m256i sub = _mm256_and_si256(_mm256_and_si256(neg, _mm256_cmpgt_epi32(k, _mm256_setzero_si256())),
                                       _mm256_set1_epi32(1));
  return _mm256_sub_epi32(_mm256_add_epi32(k, k), sub);
}

// Eight values at a time, lane by lane the operations of round_one: the
// same binary32 (and, for a, binary64) operations in the same order, the
// candidates k tried in increasing order with a strict "less than", so the
// first of equal costs wins as in the scalar loop. Lanes round_one settles
// before the candidates (NaN, a >= flim) take their code from a blend; their
// candidate arithmetic runs on a = 0 so that every table index stays in
// range. (No FMA in the target: d * d + mu_r * bits stays two roundings.)
__attribute__((target("avx2"))) uint32_t round_row_avx2(const float* x, size_t n, const RoundParams& p,
                                                        uint16_t* out) {
  const __m256 zero = _mm256_setzero_ps(), flim = _mm256_set1_ps(p.flim), mu = _mm256_set1_ps(p.mu_r);
  const __m256d inv = _mm256_set1_pd(p.inv);
  const __m256d absd = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
  const __m256i nb = _mm256_set1_epi32(int32_t(p.nb)), izero = _mm256_setzero_si256();
  const __m256i qtop = _mm256_set1_epi32(int32_t(p.flim));
  __m256i vmax = izero;
  size_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 v = _mm256_loadu_ps(x + c);
    const __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(v, zero, _CMP_LT_OQ));
    const __m256d lo = _mm256_mul_pd(_mm256_and_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), absd), inv);
    const __m256d hi = _mm256_mul_pd(_mm256_and_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), absd), inv);
    const __m256 a = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    const __m256 ok = _mm256_cmp_ps(a, zero, _CMP_GE_OQ);  // false for NaN
    __m256i q;
    if (!p.bits) {
      const __m256 r = _mm256_floor_ps(_mm256_add_ps(a, _mm256_set1_ps(0.5f)));
      q = _mm256_cvttps_epi32(_mm256_blendv_ps(flim, r, _mm256_cmp_ps(r, flim, _CMP_LT_OQ)));
    } else {
      const __m256 top = _mm256_cmp_ps(a, flim, _CMP_GE_OQ);
      const __m256 as = _mm256_and_ps(a, _mm256_andnot_ps(top, ok));
      const __m256i f = _mm256_cvttps_epi32(as);
      __m256 best = _mm256_set1_ps(INFINITY);
      __m256i bq = izero;
      for (int j = -1; j <= 2; ++j) {
        const __m256i k = _mm256_add_epi32(f, _mm256_set1_epi32(j));
        const __m256 kf = _mm256_cvtepi32_ps(k);
        const __m256i valid = _mm256_and_si256(_mm256_cmpgt_epi32(k, _mm256_set1_epi32(-1)),
                                               _mm256_castps_si256(_mm256_cmp_ps(kf, flim, _CMP_LE_OQ)));
        const __m256 d = _mm256_sub_ps(as, kf);
        // clamped into the table (invalid lanes: k = -1)
        const __m256i z = _mm256_min_epi32(_mm256_max_epi32(zigzag8(k, neg), izero), nb);
        const __m256 b = _mm256_i32gather_ps(p.bits, z, 4);
        const __m256 cost = _mm256_add_ps(_mm256_mul_ps(d, d), _mm256_mul_ps(mu, b));
        const __m256 better = _mm256_and_ps(_mm256_castsi256_ps(valid), _mm256_cmp_ps(cost, best, _CMP_LT_OQ));
        best = _mm256_blendv_ps(best, cost, better);
        bq = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bq), _mm256_castsi256_ps(k), better));
      }
      q = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bq), _mm256_castsi256_ps(qtop), top));
    }
    q = _mm256_and_si256(q, _mm256_castps_si256(ok));
    const __m256i z = zigzag8(q, neg);
    vmax = _mm256_max_epu32(vmax, z);
    // z <= 2 * 32767: packus (signed in, unsigned saturate out) keeps it
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(z), _mm256_extracti128_si256(z, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c), packed);
  }
  alignas(32) uint32_t m[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(m), vmax);
  uint32_t umax = *std::max_element(m, m + 8);
  for (; c < n; ++c) {
    const uint32_t z = zigzag_code(x[c], p);
    out[c] = uint16_t(z);
    umax = std::max(umax, z);
  }
  return umax;
}
#endif

}  // namespace

uint32_t round_row_scalar(const float* x, size_t n, const RoundParams& p, uint16_t* out) {
  uint32_t umax = 0;
  for (size_t c = 0; c < n; ++c) {
    const uint32_t z = zigzag_code(x[c], p);
    out[c] = uint16_t(z);
    umax = std::max(umax, z);
  }
  return umax;
}

uint32_t round_row(const float* x, size_t n, const RoundParams& p, uint16_t* out) {
#if defined(__x86_64__)
  if (cpu_has_avx2()) return round_row_avx2(x, n, p, out);
#endif
  return round_row_scalar(x, n, p, out);
}

}  // namespace wc::qrow
