#include "quant/bitstack.h"

#include <algorithm>
#include <cmath>

#include "quant/bitstack_math.h"
#include "quant/float_load.h"
#include "quant/qrow_math.h"

namespace wc::bitstack {

namespace {

DType dtype_of(uint32_t dt) { return dt == qrow::kF32 ? DType::F32 : dt == qrow::kBF16 ? DType::BF16 : DType::F16; }

bool finite32(float v) { return (qrow::f32_bits(v) & 0x7F800000u) != 0x7F800000u; }

// binary16 bits of v, round to nearest even, kept finite (a tensor of
// values near binary32's top has factors past binary16's: clamped)
uint16_t to_f16(double v) {
  if (!(std::fabs(v) <= 65504.0)) v = std::isnan(v) ? 0.0 : std::copysign(65504.0, v);
  return qrow::f32_to_f16_rne(qrow::f32_bits(float(v)));
}

// whether v stored in dtype dt is finite (QROW.md §3 may round past the top)
bool stored_finite(uint32_t dt, float v) {
  const uint32_t b = qrow::f32_bits(v);
  if (dt == qrow::kF32) return (b & 0x7F800000u) != 0x7F800000u;
  if (dt == qrow::kBF16) return (qrow::f32_to_bf16_rne(b) & 0x7F80u) != 0x7F80u;
  return (qrow::f32_to_f16_rne(b) & 0x7C00u) != 0x7C00u;
}

// v as the dtype stores it, as a number (±Inf past the dtype's top)
double stored_value(uint32_t dt, float v) {
  const uint32_t b = qrow::f32_bits(v);
  if (dt == qrow::kF32) return v;
  if (dt == qrow::kBF16) return qrow::f32_from_bits(uint32_t(qrow::f32_to_bf16_rne(b)) << 16);
  return f16_value(qrow::f32_to_f16_rne(b));
}

}  // namespace

unsigned parse_rank(const uint8_t* p, size_t n, uint64_t rows, uint64_t cols) {
  if (!p || n < kHeaderBytes || p[1] != 0 || p[2] != 0 || p[3] != 0) return 0;
  const unsigned r = p[0];
  if (r < 1 || r > kMaxRank || n != factor_bytes(r, rows, cols)) return 0;
  return r;
}

Errc apply_tile(const uint8_t* factors, size_t nf, const uint8_t* signs, size_t ns, uint32_t dt, uint64_t total_rows,
                uint64_t row0, uint64_t rows, uint64_t cols, uint8_t* dst) {
  const unsigned r = parse_rank(factors, nf, total_rows, cols);
  if (!r || row0 + rows > total_rows || ns != rows * cols) return Errc::codec;
  const uint8_t* U = factors + kHeaderBytes;
  const uint8_t* W = U + 2 * r * total_rows;
  // W as binary32 (every tile reads all of it), then row by row: the row's
  // values below, its r factors, the new values
  thread_local std::vector<float> w, f, v;
  w.resize(size_t(r) * cols), f.resize(cols), v.resize(cols);
  for (size_t k = 0; k < w.size(); ++k) {
    const uint16_t h = uint16_t(W[2 * k] | (W[2 * k + 1] << 8));
    if (!f16_finite(h)) return Errc::codec;
    w[k] = f16_value(h);
  }
  const DType t = dtype_of(dt);
  const size_t eb = qrow::dtype_bytes(dt);
  for (uint64_t i = 0; i < rows; ++i) {
    float u[kMaxRank];
    for (unsigned q = 0; q < r; ++q) {
      const uint8_t* b = U + 2 * ((row0 + i) * r + q);
      const uint16_t h = uint16_t(b[0] | (b[1] << 8));
      if (!f16_finite(h)) return Errc::codec;
      u[q] = f16_value(h);
    }
    uint8_t* row = dst + i * cols * eb;
    const uint8_t* s = signs + i * cols;
    load_floats(t, row, cols, f.data());
    bool ok = true;
    for (uint64_t j = 0; j < cols; ++j) {
      const float m = magnitude(u, w.data() + j, cols, r);
      const float x = apply(f[j], m, s[j]);
      ok &= finite32(f[j]) & finite32(x) & (s[j] <= 1);
      v[j] = x;
    }
    if (!ok) return Errc::codec;
    store_floats(t, v.data(), cols, row);
  }
  return Errc::ok;
}

std::vector<uint8_t> Factors::bytes() const {
  std::vector<uint8_t> out(factor_bytes(r, rows, cols), 0);
  out[0] = uint8_t(r);
  uint8_t* p = out.data() + kHeaderBytes;
  for (uint16_t h : u) *p++ = uint8_t(h), *p++ = uint8_t(h >> 8);
  for (uint16_t h : w) *p++ = uint8_t(h), *p++ = uint8_t(h >> 8);
  return out;
}

Factors fit(const float* A, uint64_t rows, uint64_t cols, unsigned r, const ParallelFor& par) {
  // (|R| has a dominant first pair, its mean: power iteration settles in a
  // few passes; more changed the blocks' error by under 0.1% on Whisper)
  constexpr unsigned kIterations = 8;
  constexpr uint64_t kRowsPerJob = 256;
  Factors F;
  F.r = r, F.rows = rows, F.cols = cols;
  F.u.assign(rows * r, 0), F.w.assign(r * cols, 0), F.uf.assign(rows * r, 0.f), F.wf.assign(r * cols, 0.f);
  const size_t jobs = size_t((rows + kRowsPerJob - 1) / kRowsPerJob);
  std::vector<double> u(rows);
  std::vector<float> w(cols);
  std::vector<std::vector<float>> wpart(jobs, std::vector<float>(cols)), rrow(jobs, std::vector<float>(cols));
  // A scaled to at most 1, so that no product or sum in binary32 overflows
  // (a tensor of values near binary32's top); us: the found pairs' u scaled so
  double amax = 0;
  for (uint64_t k = 0; k < rows * cols; ++k) amax = std::max(amax, double(A[k]));
  if (!(amax > 0) || !std::isfinite(amax)) amax = 1;
  const float inv = float(1.0 / amax);
  std::vector<float> us(rows * r, 0.f);
  for (unsigned p = 0; p < r; ++p) {
    std::fill(w.begin(), w.end(), float(1.0 / std::sqrt(double(cols))));
    for (unsigned it = 0; it <= kIterations; ++it) {
      // u = R w, and (not on the last pass) w' = R^T u, by row blocks; R is
      // A less the rounded pairs found so far, a row at a time
      const bool last = it == kIterations;
      par(jobs, [&](size_t b) {
        float* wp = wpart[b].data();
        float* rr = rrow[b].data();
        if (!last) std::fill(wp, wp + cols, 0.f);
        const uint64_t i1 = std::min<uint64_t>(rows, (b + 1) * kRowsPerJob);
        for (uint64_t i = b * kRowsPerJob; i < i1; ++i) {
          for (uint64_t j = 0; j < cols; ++j) rr[j] = A[i * cols + j] * inv;
          for (unsigned q = 0; q < p; ++q) {
            const float uq = us[i * r + q];
            const float* wq = F.wf.data() + q * cols;
            for (uint64_t j = 0; j < cols; ++j) rr[j] -= uq * wq[j];
          }
          float s = 0;
          for (uint64_t j = 0; j < cols; ++j) s += rr[j] * w[j];
          u[i] = s;
          if (!last)
            for (uint64_t j = 0; j < cols; ++j) wp[j] += rr[j] * s;
        }
      });
      if (last) break;
      double nn = 0;
      for (uint64_t j = 0; j < cols; ++j) {
        double s = 0;
        for (size_t b = 0; b < jobs; ++b) s += wpart[b][j];
        w[j] = float(s), nn += s * s;
      }
      nn = std::sqrt(nn);
      if (!(nn > 0)) break;  // nothing left to approximate
      for (float& x : w) x = float(x / nn);
    }
    // u w^T with |w| = 1: scaled so that both have the same root mean square
    double uu = 0;
    for (double x : u) uu += x * x;
    // (u is of A / amax: amax goes back into the scale)
    const double ur = amax * std::sqrt(uu / double(rows)), wr = std::sqrt(1.0 / double(cols));
    const double c = ur > 0 ? std::sqrt(wr / ur) : 1.0;
    for (uint64_t i = 0; i < rows; ++i) {
      F.u[i * r + p] = to_f16(u[i] * amax * c);
      F.uf[i * r + p] = f16_value(F.u[i * r + p]);
      us[i * r + p] = float(double(F.uf[i * r + p]) / amax);
    }
    for (uint64_t j = 0; j < cols; ++j) {
      F.w[p * cols + j] = to_f16(double(w[j]) / c);
      F.wf[p * cols + j] = f16_value(F.w[p * cols + j]);
    }
  }
  return F;
}

bool encode_tile(const Factors& F, uint32_t dt, const float* x, const uint8_t* below, uint64_t row0, uint64_t rows,
                 uint64_t cols, uint8_t* signs, uint8_t* above) {
  const DType t = dtype_of(dt);
  const size_t eb = qrow::dtype_bytes(dt);
  std::vector<float> f(cols), v(cols);
  for (uint64_t i = 0; i < rows; ++i) {
    load_floats(t, below + i * cols * eb, cols, f.data());
    const float* u = F.uf.data() + (row0 + i) * F.r;
    for (uint64_t j = 0; j < cols; ++j) {
      const float m = magnitude(u, F.wf.data() + j, cols, F.r);
      const float a = apply(f[j], m, 0), b = apply(f[j], m, 1), xj = x[i * cols + j];
      // nearer as the dtype stores them (BF16's rounding can turn the order)
      uint8_t s = std::fabs(double(xj) - stored_value(dt, b)) < std::fabs(double(xj) - stored_value(dt, a)) ? 1 : 0;
      if (!stored_finite(dt, s ? b : a)) s ^= 1;
      if (!stored_finite(dt, s ? b : a)) return false;
      signs[i * cols + j] = s;
      v[j] = s ? b : a;
    }
    store_floats(t, v.data(), cols, above + i * cols * eb);
  }
  return true;
}

}  // namespace wc::bitstack
