// Data-free sensitivity estimates: how much a unit of relative squared error
// (sum (w - w')^2 / sum w^2) in a tensor costs the model's output, from the
// tensor's role (its name) and the model's depth. Used by the bit allocation
// when no measured sensitivities are given (pack --sensitivity FILE).
#pragma once
#include <string_view>

namespace wc {

enum class TensorRole { embedding, lm_head, q, k, v, o, gate, up, down, other };

TensorRole tensor_role(std::string_view name);
std::string_view role_name(TensorRole r);

// Relative sensitivity of a tensor of role r in a model of `layers` layers
// (q_proj = 1 in a 1-layer model; every layer's tensor weighs 1/layers, as
// errors in L layers add up).
double role_sensitivity(TensorRole r, unsigned layers);

// The number of layers a model's tensor names imply: 1 + the largest
// integer in a ".N." component (layers.N., h.N., blocks.N.); 1 if none.
unsigned layer_index(std::string_view name);  // -1u when none

}  // namespace wc
