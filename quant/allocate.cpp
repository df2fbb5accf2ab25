#include "quant/allocate.h"

#include <cmath>

namespace wc {

namespace {

Allocation pick(const std::vector<AllocTensor>& ts, double lambda) {
  Allocation a;
  a.choice.resize(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = ts[i];
    double best = INFINITY;
    for (size_t k = 0; k < t.curve.size(); ++k) {
      const double cost = t.sensitivity * t.curve[k].relerr2 + lambda * t.curve[k].bits;
      if (cost < best) best = cost, a.choice[i] = k;
    }
    a.bits += t.fixed_bits + (t.curve.empty() ? 0 : t.curve[a.choice[i]].bits);
  }
  return a;
}

}  // namespace

Allocation allocate_bits(const std::vector<AllocTensor>& ts, double budget) {
  // total bits fall as lambda grows; find the smallest lambda that fits
  double lo = 1e-30, hi = 1.0;
  Allocation best = pick(ts, hi);
  for (int i = 0; i < 200 && best.bits > budget; ++i) hi *= 4, best = pick(ts, hi);
  if (best.bits > budget) return best;  // fits = false
  for (int i = 0; i < 100; ++i) {
    const double mid = std::sqrt(lo * hi);
    Allocation a = pick(ts, mid);
    if (a.bits <= budget) hi = mid, best = std::move(a);
    else lo = mid;
    if (hi / lo < 1.0 + 1e-9) break;
  }
  best.fits = true;
  return best;
}

}  // namespace wc
