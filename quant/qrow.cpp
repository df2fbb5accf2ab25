#include "quant/qrow.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/float_load.h"
#include "platform/error.h"
#include "quant/qrow_math.h"
#include "quant/qrow_round.h"
#include "quant/simd_tile.h"

namespace wc::qrow {

std::vector<double> row_rms(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, double* rms_all) {
  std::vector<double> out(rows);
  std::vector<float> buf(cols);
  const size_t eb = dtype_bits(t) / 8;
  double total = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    load_floats(t, data + r * cols * eb, cols, buf.data());
    double s = 0;
    for (float x : buf) s += double(x) * x;
    total += s;
    out[r] = std::sqrt(s / double(cols));
  }
  if (rms_all) *rms_all = std::sqrt(total / double(rows * cols));
  return out;
}

Steps choose_steps(const std::vector<double>& rms, double rms_all, const Plan& p) {
  Steps s;
  s.e.resize(rms.size());
  std::vector<int> ex(rms.size());
  std::vector<int> fr(rms.size());
  const double base = rms_all > 0 ? rms_all : 1.0;
  int lo = INT32_MAX;
  for (size_t r = 0; r < rms.size(); ++r) {
    const double rr = rms[r] > 0 ? rms[r] : base;
    const double target = p.c * std::pow(rr, p.alpha) * std::pow(base, 1.0 - p.alpha);
    int x;
    const double m = std::frexp(target, &x);  // target = m 2^x, m in [0.5, 1)
    int e = x - 1, f = int(std::lround((2 * m - 1) * 16));
    if (f == 16) ++e, f = 0;
    ex[r] = e, fr[r] = f;
    lo = std::min(lo, e);
  }
  if (rms.empty()) lo = 0;
  s.base_exp = std::clamp(lo, kMinBaseExp, kMaxBaseExp);
  for (size_t r = 0; r < rms.size(); ++r) {
    const int v = ex[r] < s.base_exp ? 0 : (ex[r] - s.base_exp) * 16 + fr[r];
    s.e[r] = uint8_t(std::clamp(v, 0, 255));  // a row 16 octaves up gets the top step
  }
  return s;
}

uint32_t max_code(DType t, float step, unsigned code_bytes) {
  uint32_t lim = code_bytes == 1 ? 127u : 32767u;
  if (t == DType::F16) lim = uint32_t(std::min<double>(lim, std::floor(65504.0 / step)));
  return lim;
}

namespace {

// evaluate's H d for several rows d at once: out[i][k] = -sum_j H[i][j] d[j][k]
// for i < cols, k < TW * groups (d: cols x TW * groups doubles), the sum
// subtracted from 0 term by term, j ascending: exactly the negated sum of
// a plain loop (rounding is symmetric), whatever the tile's width TW (8, or
// 4 for the 4 sample rows of a wide tensor: no padding columns computed).
// Rows of H converted to double R at a time; tiles of R rows by TW columns.
template <class V, int R, int NV>
__attribute__((always_inline)) inline void hess_rows(const float* H, uint64_t cols, const double* d, uint64_t groups,
                                                     double* out) {
  constexpr uint64_t TW = NV * sizeof(V) / sizeof(double);
  const uint64_t ld = groups * TW;
  std::vector<double> hr(R * cols);
  for (uint64_t i = 0; i < cols; i += R) {
    const uint64_t m = std::min<uint64_t>(R, cols - i);
    for (uint64_t r = 0; r < m; ++r)
      for (uint64_t j = 0; j < cols; ++j) hr[r * cols + j] = double(H[(i + r) * cols + j]);
    for (uint64_t g = 0; g < groups; ++g) {
      if (m == R) simd::tile<double, V, R, NV>(cols, hr.data(), cols, d + g * TW, ld, out + i * ld + g * TW, ld);
      else
        for (uint64_t r = 0; r < m; ++r)
          simd::tile<double, V, 1, NV>(cols, hr.data() + r * cols, cols, d + g * TW, ld, out + (i + r) * ld + g * TW,
                                       ld);
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) void hess_avx2(const float* H, uint64_t cols, const double* d, uint64_t groups,
                                               double* out, unsigned tw) {
  if (tw == 4) hess_rows<simd::v4d, 4, 1>(H, cols, d, groups, out);
  else hess_rows<simd::v4d, 4, 2>(H, cols, d, groups, out);
}
#endif
void hess_sse(const float* H, uint64_t cols, const double* d, uint64_t groups, double* out, unsigned tw) {
  if (tw == 4) hess_rows<simd::v2d, 4, 2>(H, cols, d, groups, out);
  else hess_rows<simd::v2d, 2, 4>(H, cols, d, groups, out);
}

// How rows are quantized: their steps, the plan and its rate table.
struct Rule {
  const Steps* s;
  const Plan* p;
  const RdTable* rd;
};

// hist[z] += the number of codes z among u[0 .. n), every code below
// `size` (hist's length). Four tables in turn: runs of one code (most are
// near 0) would otherwise wait on each other's increment of one counter.
void count_codes(const uint16_t* u, size_t n, uint64_t* hist, size_t size) {
  thread_local std::vector<uint32_t> sub;
  sub.assign(4 * size, 0);
  uint32_t *h0 = sub.data(), *h1 = h0 + size, *h2 = h1 + size, *h3 = h2 + size;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) ++h0[u[i]], ++h1[u[i + 1]], ++h2[u[i + 2]], ++h3[u[i + 3]];
  for (; i < n; ++i) ++h0[u[i]];
  for (size_t z = 0; z < size; ++z) hist[z] += uint64_t(h0[z]) + h1[z] + h2[z] + h3[z];
}

// quantize_rows on rows idx[0 .. n) (idx null: r0 .. r0 + n - 1), row i by
// rule rules[i / per_rule] (rows of several plans in one call: GPTQ then
// streams its feedback once for all of them; each row's codes are those it
// gets alone, rows never mixing).
uint32_t quantize_some(DType t, const uint8_t* data, uint64_t cols, const uint64_t* idx, uint64_t r0, uint64_t n,
                       const Rule* rules, uint64_t per_rule, unsigned code_bytes, uint16_t* u, const Feedback* fb) {
  const auto row_at = [&](uint64_t i) { return idx ? idx[i] : r0 + i; };
  const size_t eb = dtype_bits(t) / 8;
  struct Row {
    float step;
    RoundParams rp;
  };
  auto row_of = [&](uint64_t i) {
    const Rule& rule = rules[i / per_rule];
    const RdTable& rd = *rule.rd;
    const bool use_rd = rule.p->mu > 0 && !rd.bits.empty();
    Row x;
    x.step = step_of(rule.s->base_exp, rule.s->e[row_at(i)]);
    x.rp.inv = 1.0 / double(x.step);
    x.rp.flim = float(max_code(t, x.step, code_bytes));
    // rate in units of the row's distortion weight: cost = d^2 + mu/wr * bits
    const double wr = use_rd ? (double(x.step) / rd.gm_step) * (double(x.step) / rd.gm_step) : 0;
    x.rp.mu_r = use_rd ? float(rule.p->mu / wr) : 0.f;
    x.rp.bits = use_rd ? rd.bits.data() : nullptr;
    x.rp.nb = use_rd ? uint32_t(rd.bits.size() - 1) : 0;
    return x;
  };
  uint32_t umax = 0;
  if (!fb) {
    std::vector<float> buf(cols);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t r = row_at(i);
      load_floats(t, data + r * cols * eb, cols, buf.data());
      umax = std::max(umax, round_row(buf.data(), cols, row_of(i).rp, u + i * cols));
    }
    return umax;
  }
  // GPTQ: the tile's rows in the feedback's column order; column k's error
  // d = x - x' (x as first loaded) moves every row's later columns by
  // -d * u(k, j) (quant/gptq.h).
  if (fb->n != cols) fail(Errc::usage, "calibration: a hessian's size is not the tensor's column count");
  const bool feed = !fb->u.empty();
  // rows padded to whole slabs (the padding stays 0: u is 0 there)
  const uint64_t wld = gptq_row_stride(cols);
  std::vector<float> w(n * wld, 0.f), w0(feed ? n * wld : 0), buf(cols);
  std::vector<Row> rows(n);
  for (uint64_t i = 0; i < n; ++i) {
    load_floats(t, data + row_at(i) * cols * eb, cols, buf.data());
    for (uint64_t k = 0; k < cols; ++k) w[i * wld + k] = buf[fb->order[k]];
    rows[i] = row_of(i);
  }
  if (feed) w0 = w;
  // column k of row i: its code, and its error (0 for a value that is not
  // finite: callers keep such tensors exact)
  auto quantize_column = [&](uint64_t i, uint64_t k) {
    const Row& x = rows[i];
    const float v = w[i * wld + k];
    const bool neg = v < 0;
    RoundParams rp = x.rp;
    rp.mu_r = x.rp.mu_r / fb->colw[k];
    const int32_t q = round_one(float(std::fabs(double(v)) * rp.inv), neg, rp);
    const uint32_t z = zigzag(neg ? -q : q);
    u[i * cols + fb->order[k]] = uint16_t(z);
    umax = std::max(umax, z);
    return feed && std::isfinite(v) ? w0[i * wld + k] - value_of(z, x.step) : 0.f;
  };
  if (!feed || !fb->lazy) {  // the plain loop
    std::vector<float> err(n), uk(cols);
    for (uint64_t k = 0; k < cols; ++k) {
      for (uint64_t i = 0; i < n; ++i) err[i] = quantize_column(i, k);
      if (!feed) continue;
      for (uint64_t j = k + 1; j < cols; ++j) uk[j] = fb->at(k, j);
      for (uint64_t i = 0; i < n; ++i) {
        float* wi = &w[i * wld];
        const float e = err[i];
        for (uint64_t j = k + 1; j < cols; ++j) wi[j] -= e * uk[j];
      }
    }
    return umax;
  }
  // Lazy batches: the same updates, each value losing its terms in the same
  // order (k ascending), in two levels: as each column is quantized, the
  // columns after it in its slab (16 columns); after each slab, the panel's
  // later slabs, and after each panel (128 columns), the columns after it,
  // as matrix products (gptq_update).
  constexpr uint64_t B = Feedback::kBlock, S = Feedback::kSlab;
  std::vector<float> d(n * B);
  for (uint64_t k0 = 0; k0 < cols; k0 += B) {
    const uint64_t k1 = std::min(k0 + B, cols);
    const float* panel = &fb->u[fb->panel[k0 / B]];
    for (uint64_t s0 = k0; s0 < k1; s0 += S) {
      const uint64_t s1 = std::min(s0 + S, k1);
      const float* slab = panel + (s0 - k0) / S * B * S;
      for (uint64_t k = s0; k < s1; ++k) {
        const float* uk = slab + (k - k0) * S;  // uk[c] = u(k, s0 + c)
        for (uint64_t i = 0; i < n; ++i) {
          const float e = quantize_column(i, k);
          d[i * B + (k - k0)] = e;
          float* wi = &w[i * wld + s0];
          for (uint64_t c = k + 1 - s0; c < s1 - s0; ++c) wi[c] -= e * uk[c];
        }
      }
      if (s1 < k1)
        gptq_update(n, s1 - s0, &d[s0 - k0], B, panel + (s1 - k0) / S * B * S + (s0 - k0) * S, (k1 - s1 + S - 1) / S,
                    &w[s1], wld);
    }
    if (k1 < cols) gptq_update(n, k1 - k0, d.data(), B, panel + B / S * B * S, (cols - k1 + S - 1) / S, &w[k1], wld);
  }
  return umax;
}

}  // namespace

uint32_t quantize_rows(DType t, const uint8_t* data, uint64_t cols, uint64_t r0, uint64_t n, const Steps& s,
                       const Plan& p, const RdTable& rd, unsigned code_bytes, uint16_t* u, const Feedback* fb) {
  const Rule rule{&s, &p, &rd};
  return quantize_some(t, data, cols, nullptr, r0, n, &rule, std::max<uint64_t>(n, 1), code_bytes, u, fb);
}

namespace {

double log_gm_step(const Steps& s) {
  double l = 0;
  for (uint8_t e : s.e) l += std::log2(double(step_of(s.base_exp, e)));
  return s.e.empty() ? 0 : l / double(s.e.size());
}

}  // namespace

RdTable train_rd(DType t, const uint8_t* data, uint64_t cols, const Steps& s, const Plan& p,
                 const std::vector<uint64_t>& rows, int passes) {
  RdTable rd;
  if (!(p.mu > 0)) return rd;
  rd.gm_step = std::exp2(log_gm_step(s));
  const Rule rule{&s, &p, &rd};
  std::vector<uint16_t> u(rows.size() * cols);
  std::vector<uint64_t> hist;
  for (int pass = 0; pass < passes; ++pass) {
    const uint32_t umax = rows.empty() ? 0 : quantize_some(t, data, cols, rows.data(), 0, rows.size(), &rule,
                                                           std::max<size_t>(rows.size(), 1), 2, u.data(), nullptr);
    hist.assign(size_t(umax) + 1, 0);
    count_codes(u.data(), u.size(), hist.data(), hist.size());
    size_t top = 0;
    for (size_t z = 0; z < hist.size(); ++z)
      if (hist[z]) top = z + 1;
    rd.bits.clear();
    if (!top) continue;  // no code: no table (round to nearest)
    rd.bits.assign(top + 1, 0);
    const double ln = std::log2(double(u.size()));
    for (size_t z = 0; z < top; ++z) rd.bits[z] = hist[z] ? float(ln - std::log2(double(hist[z]))) : float(ln + 1);
    rd.bits[top] = float(ln + 1);  // codes past the table: as if seen half a time
  }
  return rd;
}

void decode_rows_ref(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes, uint64_t n,
                     uint64_t cols, DType out, uint8_t* dst) {
  const uint32_t dt = uint32_t(out);
  for (uint64_t i = 0; i < n * cols; ++i) {
    const uint32_t u = code_bytes == 1 ? codes[i] : uint32_t(codes[2 * i] | codes[2 * i + 1] << 8);
    store(dt, value_of(u, step_of(base_exp, e[i / cols])), dst, i);
  }
}

namespace {

// Each row's values as binary32 (a loop the compiler vectorises: the
// reference's operations element by element), then converted to the output
// type in one call (store_floats: qrow::store's bits; the element-by-element
// F16 conversion, with its subnormal branch, does not vectorise and was 70%
// of unpacking a 4-bit Whisper).
template <class Code>
void rows_fast(int32_t base_exp, const uint8_t* e, const uint8_t* codes, uint64_t n, uint64_t cols, DType out,
                 uint8_t* dst) {
  thread_local std::vector<float> vals;
  vals.resize(size_t(cols));
  float* const v = vals.data();
  const size_t ob = dtype_bits(out) / 8;
  for (uint64_t r = 0; r < n; ++r) {
    const float step = step_of(base_exp, e[r]);
    const uint8_t* cp = codes + r * cols * sizeof(Code);
    for (uint64_t c = 0; c < cols; ++c) {
      Code u;
      std::memcpy(&u, cp + c * sizeof(Code), sizeof(Code));
      v[c] = value_of(u, step);
    }
    store_floats(out, v, size_t(cols), dst + r * cols * ob);  // finite (QROW.md §2)
  }
}

}  // namespace

void decode_rows_fast(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes, uint64_t n,
                      uint64_t cols, DType out, uint8_t* dst) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "codes and outputs are little-endian");
  if (code_bytes == 1) rows_fast<uint8_t>(base_exp, e, codes, n, cols, out, dst);
  else rows_fast<uint16_t>(base_exp, e, codes, n, cols, out, dst);
}

double entropy_bits(const std::vector<uint64_t>& hist, uint64_t n, size_t* distinct) {
  double h = 0;
  size_t d = 0;
  for (uint64_t c : hist)
    if (c) h -= double(c) * std::log2(double(c) / double(n)), ++d;
  if (distinct) *distinct = d;
  return h;
}

std::vector<double> error2_sets(const float* H, uint64_t cols, const std::vector<double>& d,
                                const std::vector<uint64_t>& ns) {
  std::vector<double> err(ns.size(), 0.0);
  uint64_t nv = 0;
  for (uint64_t n : ns) nv += n;
  if (!H) {
    uint64_t at = 0;
    for (size_t s = 0; s < ns.size(); ++s)
      for (uint64_t k = 0; k < ns[s] * cols; ++k, ++at) err[s] += d[at] * d[at];
    return err;
  }
  // dᵀ H d per row (H read once for all), scaled so that isotropic errors
  // count as in weight space
  double trh = 0;
  for (uint64_t c = 0; c < cols; ++c) trh += double(H[c * cols + c]);
  const unsigned tw = nv <= 4 ? 4 : 8;  // tile width: no padding rows for a sample of 4
  const uint64_t groups = (nv + tw - 1) / tw, ld = groups * tw;
  std::vector<double> dt(cols * ld, 0.0), hd(cols * ld, 0.0);  // d by column, and -H d
  for (uint64_t k = 0; k < nv; ++k)
    for (uint64_t j = 0; j < cols; ++j) dt[j * ld + k] = d[k * cols + j];
#if defined(__x86_64__)
  if (simd::simd_level() >= 1) hess_avx2(H, cols, dt.data(), groups, hd.data(), tw);
  else
#endif
    hess_sse(H, cols, dt.data(), groups, hd.data(), tw);
  uint64_t k0 = 0;
  for (size_t s = 0; s < ns.size(); ++s) {
    for (uint64_t k = k0; k < k0 + ns[s]; ++k)
      for (uint64_t i = 0; i < cols; ++i) err[s] += d[k * cols + i] * -hd[i * ld + k];
    if (trh > 0) err[s] *= double(cols) / trh;
    k0 += ns[s];
  }
  return err;
}

double error2(const float* H, uint64_t cols, const std::vector<double>& d, uint64_t ns) {
  return error2_sets(H, cols, d, {ns})[0];
}

std::vector<Point> evaluate_plans(DType t, const uint8_t* data, uint64_t rows, uint64_t cols,
                                  const std::vector<double>& rms, double rms_all, const std::vector<Plan>& plans,
                                  const std::vector<uint64_t>& sample_rows, const Feedback* fb, const float* H) {
  const uint64_t ns = sample_rows.size();
  const size_t eb = dtype_bits(t) / 8;
  std::vector<Point> pts(plans.size());
  std::vector<double> d(plans.size() * ns * cols);
  std::vector<Steps> steps(plans.size());
  std::vector<RdTable> rds(plans.size());
  std::vector<Rule> rules(plans.size());
  std::vector<uint64_t> idx;
  for (size_t q = 0; q < plans.size(); ++q) {
    steps[q] = choose_steps(rms, rms_all, plans[q]);
    rds[q] = train_rd(t, data, cols, steps[q], plans[q], sample_rows, 2);
    rules[q] = Rule{&steps[q], &plans[q], &rds[q]};
    idx.insert(idx.end(), sample_rows.begin(), sample_rows.end());
  }
  // every plan's sample codes at once (GPTQ streams its feedback once for
  // all of them), then their errors, the sums in the same order as row by row
  std::vector<uint16_t> u(idx.size() * cols);
  const uint32_t umax = ns ? quantize_some(t, data, cols, idx.data(), 0, idx.size(), rules.data(), ns, 2, u.data(), fb) : 0;
  // the sample rows as binary32, once for every plan, and their energy
  // (every plan's relative error divides by it)
  std::vector<float> w(ns * cols);
  double energy = 0;
  for (uint64_t k = 0; k < ns; ++k) {
    float* wk = &w[k * cols];
    load_floats(t, data + sample_rows[k] * cols * eb, cols, wk);
    for (uint64_t c = 0; c < cols; ++c) energy += double(wk[c]) * wk[c];
  }
  std::vector<uint64_t> hist(size_t(umax) + 1);  // codes above umax never occur
  for (size_t q = 0; q < plans.size(); ++q) {
    const Steps& s = steps[q];
    std::fill(hist.begin(), hist.end(), 0);
    count_codes(&u[q * ns * cols], ns * cols, hist.data(), hist.size());
    for (uint64_t k = 0; k < ns; ++k) {
      const float step = step_of(s.base_exp, s.e[sample_rows[k]]);
      const float* wk = &w[k * cols];
      const uint16_t* uk = &u[(q * ns + k) * cols];
      double* dk = &d[(q * ns + k) * cols];
      for (uint64_t c = 0; c < cols; ++c) dk[c] = double(wk[c]) - double(value_of(uk[c], step));
    }
    const uint64_t ne = ns * cols;
    size_t distinct = 0;
    // codes: order-0 entropy scaled to the tensor, plus the coder's table
    // (about 1.5 bytes a symbol) and header
    pts[q].bits = entropy_bits(hist, ne, &distinct) * double(rows * cols) / double(ne) + (distinct * 1.5 + 16) * 8;
    std::vector<uint64_t> eh(256, 0);
    for (uint8_t e : s.e) ++eh[e];
    pts[q].bits += entropy_bits(eh, rows, &distinct) + (distinct * 1.5 + 8) * 8;
  }
  const std::vector<double> err = error2_sets(H, cols, d, std::vector<uint64_t>(plans.size(), ns));
  for (size_t q = 0; q < plans.size(); ++q) pts[q].relerr2 = energy > 0 ? err[q] / energy : 0;
  return pts;
}

Point evaluate(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, const std::vector<double>& rms,
               double rms_all, const Plan& p, const std::vector<uint64_t>& sample_rows, const Feedback* fb,
               const float* H) {
  return evaluate_plans(t, data, rows, cols, rms, rms_all, {p}, sample_rows, fb, H)[0];
}

}  // namespace wc::qrow
