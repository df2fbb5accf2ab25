#include "quant/float_load.h"

#include "platform/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace wc {

namespace {

void load_scalar(DType t, const uint8_t* src, size_t i, size_t n, float* out) {
  if (t == DType::BF16) {
    for (; i < n; ++i) out[i] = bf16_to_f32(uint16_t(src[2 * i] | src[2 * i + 1] << 8));
  } else {
    for (; i < n; ++i) out[i] = f16_to_f32(uint16_t(src[2 * i] | src[2 * i + 1] << 8));
  }
}

#if defined(__x86_64__)
// Eight elements at a time, integer operations only, so every bit is
// qrow::f16_to_f32_bits's: a normal F16 rebiased, Inf and NaN (payload
// kept) to exponent 255, a subnormal or zero as man x 2^-24 (exact in
// binary32: the scalar loop's normalisation gives the same value).
__attribute__((target("avx2"))) size_t load_avx2(DType t, const uint8_t* src, size_t n, float* out) {
  size_t i = 0;
  if (t == DType::BF16) {
    for (; i + 8 <= n; i += 8) {
      const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_slli_epi32(h, 16));
    }
    return i;
  }
  const __m256i m31 = _mm256_set1_epi32(31), mman = _mm256_set1_epi32(0x3FF);
  const __m256 sub_scale = _mm256_set1_ps(0x1p-24f);
  for (; i + 8 <= n; i += 8) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i)));
    const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x8000)), 16);
    const __m256i ex = _mm256_and_si256(_mm256_srli_epi32(h, 10), m31);
    const __m256i man = _mm256_and_si256(h, mman);
    const __m256i man13 = _mm256_slli_epi32(man, 13);
    __m256i r = _mm256_or_si256(_mm256_slli_epi32(_mm256_add_epi32(ex, _mm256_set1_epi32(112)), 23), man13);
    r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_set1_epi32(0x7F800000), man13), _mm256_cmpeq_epi32(ex, m31));
    const __m256i sub = _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(man), sub_scale));
    r = _mm256_blendv_epi8(r, sub, _mm256_cmpeq_epi32(ex, _mm256_setzero_si256()));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_or_si256(r, sign));
  }
  return i;
}

__attribute__((target("avx2,f16c"))) size_t store_avx2(DType t, const float* v, size_t n, uint8_t* dst) {
  size_t i = 0;
  if (t == DType::F16) {
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i),
                       _mm256_cvtps_ph(_mm256_loadu_ps(v + i), _MM_FROUND_TO_NEAREST_INT));
    return i;
  }
  const __m256i one = _mm256_set1_epi32(1), round = _mm256_set1_epi32(0x7FFF);
  for (; i + 8 <= n; i += 8) {  // BF16: f32_to_bf16_rne's integer steps
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i));
    const __m256i h = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(b, round), _mm256_and_si256(_mm256_srli_epi32(b, 16), one)), 16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i),
                     _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
  }
  return i;
}
#endif

}  // namespace

void store_floats(DType t, const float* v, size_t n, uint8_t* dst) {
  if (t == DType::F32) {
    std::memcpy(dst, v, n * 4);
    return;
  }
  size_t i = 0;
#if defined(__x86_64__)
  if (cpu_has_avx2_f16c()) i = store_avx2(t, v, n, dst);
#endif
  const uint32_t dt = t == DType::F16 ? qrow::kF16 : qrow::kBF16;
  for (; i < n; ++i) qrow::store(dt, v[i], dst, i);
}

void load_floats(DType t, const uint8_t* src, size_t n, float* out) {
  if (t == DType::F32) {
    std::memcpy(out, src, n * 4);
    return;
  }
  size_t i = 0;
#if defined(__x86_64__)
  if (cpu_has_avx2()) i = load_avx2(t, src, n, out);
#endif
  load_scalar(t, src, i, n, out);
}

}  // namespace wc
