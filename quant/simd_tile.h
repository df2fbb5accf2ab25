// The inner kernel of the GPTQ arithmetic (quant/linalg.cpp: Cholesky and
// triangular inverse in double; quant/qrow.cpp: GPTQ's lazy batch update in
// float): a tile of R rows and TW contiguous columns of C loses
//   sum over k = 0 .. K-1, in that order, of a[r][k] * b[k][cols],
// each product rounded, then subtracted (no fused multiply-add: the build has
// -ffp-contract=off, and the loops below are written as multiply, then
// subtract). Every element of C thus sees the same operations in the same
// order as a plain triple loop over k, whatever the vector width: the SSE2
// and AVX2 builds of a caller give the same bits, so results do not depend
// on the machine, the thread count or the blocking.
//
// Callers instantiate their loops inside functions carrying
// __attribute__((target(...))) and pick one at run time (simd_level()); the
// helpers here are always_inline so they compile for the caller's target.
#pragma once
#include <cstddef>
#include <cstring>

namespace wc::simd {

typedef double v2d __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));
typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));

// Unaligned views of the vectors (memcpy compiles to a copy through the
// stack for some of these types and targets).
template <class V>
struct Unaligned;
#define WC_SIMD_UNALIGNED(V, T)                                   \
  template <>                                                     \
  struct Unaligned<V> {                                           \
    typedef V type __attribute__((aligned(sizeof(T)), may_alias)); \
  };
WC_SIMD_UNALIGNED(v2d, double)
WC_SIMD_UNALIGNED(v4d, double)
WC_SIMD_UNALIGNED(v8d, double)
WC_SIMD_UNALIGNED(v4f, float)
WC_SIMD_UNALIGNED(v8f, float)
WC_SIMD_UNALIGNED(v16f, float)
#undef WC_SIMD_UNALIGNED

// (loads through an out-parameter: no vector return value, whose ABI
// differs between the targets)
template <class V>
__attribute__((always_inline)) inline void load(V& v, const void* p) {
  v = *static_cast<const typename Unaligned<V>::type*>(p);
}
template <class V>
__attribute__((always_inline)) inline void store(void* p, const V& v) {
  *static_cast<typename Unaligned<V>::type*>(p) = v;
}

// C[r][0 .. NV * W) -= sum_k a[r * ars + k] * b[k * bks + 0 .. NV * W), for
// r < R, k = 0 .. K-1 in order (T: double or float, V a vector of W T's).
template <class T, class V, int R, int NV>
__attribute__((always_inline)) inline void tile(size_t K, const T* a, size_t ars, const T* b, size_t bks, T* c,
                                                size_t crs) {
  constexpr int W = int(sizeof(V) / sizeof(T));
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) load(acc[r][v], c + size_t(r) * crs + size_t(v) * W);
  for (size_t k = 0; k < K; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) load(bv[v], b + k * bks + size_t(v) * W);
    for (int r = 0; r < R; ++r) {
      const T s = a[size_t(r) * ars + k];
      for (int v = 0; v < NV; ++v) {
        const V p = s * bv[v];
        acc[r][v] = acc[r][v] - p;
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store(c + size_t(r) * crs + size_t(v) * W, acc[r][v]);
}

// The same for any number of columns m (scalar; edges of a matrix).
template <class T>
__attribute__((always_inline)) inline void tile_any(size_t rows, size_t m, size_t K, const T* a, size_t ars,
                                                    const T* b, size_t bks, T* c, size_t crs) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < m; ++j) {
      T x = c[r * crs + j];
      for (size_t k = 0; k < K; ++k) {
        const T p = a[r * ars + k] * b[k * bks + j];
        x = x - p;
      }
      c[r * crs + j] = x;
    }
}

// 0: portable (SSE2 on x86-64), 1: AVX2 (AVX-512 measured no faster on
// Zen 4: its 512-bit operations are split in two).
int simd_level();

}  // namespace wc::simd
