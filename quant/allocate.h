// Model-wide bit allocation: each tensor offers a curve of (bits, relative
// squared error) points; one Lagrange multiplier picks, for every tensor, the
// point minimising S * relerr^2 + lambda * bits, and is bisected so the
// total meets the budget (the equal-slope condition for the least
// sensitivity-weighted error at that size).
#pragma once
#include <cstddef>
#include <vector>

namespace wc {

struct RatePoint {
  double bits = 0, relerr2 = 0;
};

struct AllocTensor {
  double sensitivity = 1;        // model error per unit of relative squared error
  double fixed_bits = 0;         // bits the tensor takes whatever point it gets
  std::vector<RatePoint> curve;  // candidate points
};

struct Allocation {
  std::vector<size_t> choice;  // index into each curve
  double bits = 0;             // total, fixed bits included
  bool fits = false;           // false: even the smallest points exceed the budget
};

Allocation allocate_bits(const std::vector<AllocTensor>& tensors, double budget_bits);

}  // namespace wc
