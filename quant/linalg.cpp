#include "quant/linalg.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "quant/simd_tile.h"

namespace wc::simd {

namespace {
std::atomic<int> g_forced{-1};

int machine_level() {
  static const int level = [] {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return 1;
#endif
    return 0;
  }();
  return level;
}
}  // namespace

int simd_level() {
  const int f = g_forced.load(std::memory_order_relaxed);
  return f >= 0 ? std::min(f, machine_level()) : machine_level();
}

void force_simd_level(int level) { g_forced.store(level, std::memory_order_relaxed); }

}  // namespace wc::simd

namespace wc::linalg {

namespace {

using namespace wc::simd;

constexpr size_t kS = 8;     // columns of a kernel tile (doubles)
constexpr size_t kNb = 128;  // Cholesky: columns per panel
constexpr size_t kMc = 256;  // Cholesky: rows per trailing-update task
constexpr size_t kJc = 256;  // Cholesky: columns per pass over those rows

void run(const ParallelFor& par, size_t n, const std::function<void(size_t)>& fn) {
  if (par && n > 1) par(n, fn);
  else
    for (size_t i = 0; i < n; ++i) fn(i);
}

// ---- Cholesky ----------------------------------------------------------------
// Column j of L: L[j][j] = sqrt(a[j][j] - sum_{k<j} L[j][k]^2), then for
// i > j: L[i][j] = (a[i][j] - sum_{k<j} L[i][k] L[j][k]) * (1 / L[j][j]),
// each sum subtracted term by term, k ascending. The blocked version does
// exactly this per element: panels of columns [p, e) in order; for each, the
// terms k < p are already subtracted from the trailing matrix (in order,
// panel by panel), the diagonal block takes k in [p, j) as here, the rows
// below the same (trsm), and the trailing matrix then loses k in [p, e) (syrk).

// The reference's column loop over rows and columns [p, e), terms k >= p.
bool factor_block(double* a, size_t lda, size_t p, size_t e) {
  for (size_t j = p; j < e; ++j) {
    double* rj = a + j * lda;
    double d = rj[j];
    for (size_t k = p; k < j; ++k) d -= rj[k] * rj[k];
    if (!(d > 0)) return false;
    const double l = std::sqrt(d);
    rj[j] = l;
    const double inv = 1.0 / l;
    for (size_t i = j + 1; i < e; ++i) {
      double* ri = a + i * lda;
      double s = ri[j];
      for (size_t k = p; k < j; ++k) s -= ri[k] * rj[k];
      ri[j] = s * inv;
    }
  }
  return true;
}

// Kernel shapes per level: V the vector, R rows and NV vectors (NV * W = 8
// doubles) per tile of C. (AVX-512 measured slower than AVX2 on Zen 4.)
struct LevelSse {
  using V = v2d;
  static constexpr int R = 2, NV = 4;
};
struct LevelAvx2 {
  using V = v4d;
  static constexpr int R = 4, NV = 2;
};

// Rows [r0, r1) of the panel [p, e) below it (r0 >= e, r1 - r0 a multiple of
// 8): gathered into pt (slab-major: 8 rows a slab, slab s at
// pt + s * (e - p) * 8, element (k, c) at k * 8 + c; slabs counted from
// row e), solved there, 8 rows a vector and 4 slabs at a time, and written
// back.
template <class L, int NS>
__attribute__((always_inline)) inline void trsm_slabs(double* a, size_t lda, size_t p, size_t e, double* s0) {
  using V = typename L::V;
  constexpr int W = int(sizeof(V) / sizeof(double)), NV = int(kS) / W;
  const size_t nbw = e - p;
  for (size_t j = 0; j < nbw; ++j) {
    const double* lj = a + (p + j) * lda + p;
    const double inv = 1.0 / lj[j];
    V acc[NS][NV];
    for (int s = 0; s < NS; ++s)
      for (int v = 0; v < NV; ++v) load(acc[s][v], s0 + (size_t(s) * nbw + j) * kS + size_t(v) * W);
    for (size_t k = 0; k < j; ++k) {
      const double l = lj[k];
      for (int s = 0; s < NS; ++s)
        for (int v = 0; v < NV; ++v) {
          V x;
          load(x, s0 + (size_t(s) * nbw + k) * kS + size_t(v) * W);
          const V q = x * l;
          acc[s][v] = acc[s][v] - q;
        }
    }
    for (int s = 0; s < NS; ++s)
      for (int v = 0; v < NV; ++v) store(s0 + (size_t(s) * nbw + j) * kS + size_t(v) * W, acc[s][v] * inv);
  }
}

template <class L>
__attribute__((always_inline)) inline void trsm_task(double* a, size_t lda, size_t p, size_t e, size_t r0, size_t r1,
                                                     double* pt) {
  const size_t nbw = e - p;
  for (size_t i = r0; i < r1; ++i) {
    double* slab = pt + ((i - e) / kS) * nbw * kS;
    const size_t c = (i - e) % kS;
    for (size_t k = 0; k < nbw; ++k) slab[k * kS + c] = a[i * lda + p + k];
  }
  double* s0 = pt + ((r0 - e) / kS) * nbw * kS;
  size_t ns = (r1 - r0) / kS;
  for (; ns >= 4; ns -= 4, s0 += 4 * nbw * kS) trsm_slabs<L, 4>(a, lda, p, e, s0);
  for (; ns >= 1; ns -= 1, s0 += nbw * kS) trsm_slabs<L, 1>(a, lda, p, e, s0);
  for (size_t i = r0; i < r1; ++i) {
    const double* slab = pt + ((i - e) / kS) * nbw * kS;
    const size_t c = (i - e) % kS;
    for (size_t k = 0; k < nbw; ++k) a[i * lda + p + k] = slab[k * kS + c];
  }
}

// Rows [r0, r1) of the trailing matrix (columns e .. r1, the lower triangle
// and some of the scratch upper one) lose the panel's terms.
template <class L>
__attribute__((always_inline)) inline void syrk_task(double* a, size_t lda, size_t p, size_t e, size_t r0, size_t r1,
                                                     const double* pt) {
  const size_t nbw = e - p;
  // the rows' panel part (r1 - r0 rows, up to 256 KB) and a chunk of 32
  // slabs of the panel's transpose (256 KB) stay in L2; each row tile (4 KB)
  // in L1 across the chunk, whose rows of C it streams through
  for (size_t j0 = e; j0 < r1; j0 += kJc) {
    const double* b = pt + ((j0 - e) / kS) * nbw * kS;
    const size_t j1 = std::min(j0 + kJc, r1);
    for (size_t i = std::max(r0, j0 / L::R * L::R); i < r1; i += L::R)
      for (size_t j = j0; j < j1 && j < i + L::R; j += kS)
        tile<double, typename L::V, L::R, L::NV>(nbw, a + i * lda + p, lda, b + (j - j0) * nbw, kS, a + i * lda + j,
                                                 lda);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) void trsm_avx2(double* a, size_t lda, size_t p, size_t e, size_t r0, size_t r1,
                                               double* pt) {
  trsm_task<LevelAvx2>(a, lda, p, e, r0, r1, pt);
}
__attribute__((target("avx2"))) void syrk_avx2(double* a, size_t lda, size_t p, size_t e, size_t r0, size_t r1,
                                               const double* pt) {
  syrk_task<LevelAvx2>(a, lda, p, e, r0, r1, pt);
}
#endif
void trsm_sse(double* a, size_t lda, size_t p, size_t e, size_t r0, size_t r1, double* pt) {
  trsm_task<LevelSse>(a, lda, p, e, r0, r1, pt);
}
void syrk_sse(double* a, size_t lda, size_t p, size_t e, size_t r0, size_t r1, const double* pt) {
  syrk_task<LevelSse>(a, lda, p, e, r0, r1, pt);
}

}  // namespace

size_t padded(size_t n) { return (n + kS - 1) / kS * kS; }

bool cholesky_lower(double* a, size_t n, size_t lda, const ParallelFor& par) {
  const size_t np = padded(n);
  for (size_t i = n; i < np; ++i)  // padding: identity rows (L's real part is unchanged by them)
    for (size_t j = 0; j < np; ++j) a[i * lda + j] = i == j ? 1.0 : 0.0;
  auto trsm = trsm_sse;
  auto syrk = syrk_sse;
#if defined(__x86_64__)
  if (simd_level() >= 1) trsm = trsm_avx2, syrk = syrk_avx2;
#endif
  std::vector<double> pt;
  for (size_t p = 0; p < np; p += kNb) {
    const size_t e = std::min(p + kNb, np);
    if (!factor_block(a, lda, p, e)) return false;
    if (e == np) break;
    pt.resize((np - e) * (e - p));
    const size_t tasks = (np - e + kMc - 1) / kMc;
    run(par, tasks, [&](size_t t) {
      const size_t r0 = e + t * kMc;
      trsm(a, lda, p, e, r0, std::min(r0 + kMc, np), pt.data());
    });
    run(par, tasks, [&](size_t t) {  // the longest rows first
      const size_t r0 = e + (tasks - 1 - t) * kMc;
      syrk(a, lda, p, e, r0, std::min(r0 + kMc, np), pt.data());
    });
  }
  return true;
}

bool cholesky_lower_ref(double* a, size_t n, size_t lda) {
  if (!factor_block(a, lda, 0, n)) return false;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) a[i * lda + j] = 0;
  return true;
}

}  // namespace wc::linalg
