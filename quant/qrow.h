// qrow (spec/QROW.md): per-row step uniform quantization with entropy-coded
// integer codes. The encoder side (steps, rounding, rate-distortion curve)
// and the two CPU decoders (a per-element reference and a fast row loop),
// which must agree bit for bit (tests/test_lossy.cpp, tests/test_gpu_emulation.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "format/dtype.h"
#include "quant/gptq.h"

namespace wc::qrow {

// Rows' steps on the 1/16-octave grid: step_r = step_of(base_exp, e[r]).
struct Steps {
  int32_t base_exp = 0;
  std::vector<uint8_t> e;
};

// How one tensor is quantized: step_r = c * rms_r^alpha * rms_t^(1-alpha).
// Codes: round to nearest when mu = 0; otherwise rate-distortion rounding:
// each code is the q near |x| / step (floor - 1 .. floor + 2) that minimises
// (x/step - q)^2 (step / gm)^2 + mu * bits(q), with bits(q) = -log2 p(q)
// from a table trained on the tensor (train_rd) and gm the geometric mean of
// the tensor's steps, so one mu serves every row.
struct Plan {
  double c = 0.25;
  double alpha = 1.0;
  double mu = 0.0;
};

// Code lengths in bits per zigzag code (the rate term of the rounding); an
// empty table means round to nearest.
struct RdTable {
  // by zigzag code 0 .. n - 1, then one entry more: the rate of every code
  // past them (the layout the rounding loops index, quant/qrow_round.h)
  std::vector<float> bits;
  double gm_step = 1;  // geometric mean of the tensor's steps
};

// Root mean square of each row of a [rows, cols] BF16/F16/F32 matrix, and of
// the whole (rms_all).
std::vector<double> row_rms(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, double* rms_all);

Steps choose_steps(const std::vector<double>& rms, double rms_all, const Plan& p);

// The largest |code| a row of step `step` may use in dtype `t` with codes of
// `code_bytes` (1: |q| <= 127; 2: |q| <= 32767), so that values stay finite.
uint32_t max_code(DType t, float step, unsigned code_bytes);

// Zigzag codes of rows [r0, r0 + n) (row-major, n * cols values) with codes
// clamped to max_code(t, step, code_bytes). Returns the largest zigzag code.
// With `fb` (calibration), GPTQ error feedback along each row (quant/gptq.h).
uint32_t quantize_rows(DType t, const uint8_t* data, uint64_t cols, uint64_t r0, uint64_t n, const Steps& s,
                       const Plan& p, const RdTable& rd, unsigned code_bytes, uint16_t* u,
                       const Feedback* fb = nullptr);

// The rate table of plan p on the given rows (`passes` rounds of rounding,
// each re-estimating code probabilities); empty when p.mu == 0.
RdTable train_rd(DType t, const uint8_t* data, uint64_t cols, const Steps& s, const Plan& p,
                 const std::vector<uint64_t>& rows, int passes);

// Decoders: rows [0, n) of a tile whose row steps are e[0..n) and codes
// u (code_bytes 1 or 2 per element, little-endian), written in dtype `out`
// (BF16, F16, F32) to dst. Identical bytes; the reference evaluates the spec
// element by element.
void decode_rows_ref(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes, uint64_t n,
                     uint64_t cols, DType out, uint8_t* dst);
void decode_rows_fast(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes, uint64_t n,
                      uint64_t cols, DType out, uint8_t* dst);

// Rate and distortion of a plan, estimated on a sample of rows: bits of the
// codes and steps (order-0 entropy plus table estimates), and the relative
// squared error sum (w - w')^2 / sum w^2.
struct Point {
  double bits = 0, relerr2 = 0;
};
// Order-0 entropy in bits of n symbols with histogram hist (distinct: the
// symbols present).
double entropy_bits(const std::vector<uint64_t>& hist, uint64_t n, size_t* distinct);

// Squared error of ns rows of errors d (row-major, cols each): the sum of
// squares, or with H (the layer's input covariance [cols, cols]) the output
// error sum dᵀ H d over tr(H) / cols (isotropic errors count as in weight space).
double error2(const float* H, uint64_t cols, const std::vector<double>& d, uint64_t ns);
// The same for several sets of rows at once (set s: ns[s] rows, one after
// another in d), H read once for all: each set's figure is bit for bit what
// error2 gives it alone.
std::vector<double> error2_sets(const float* H, uint64_t cols, const std::vector<double>& d,
                                const std::vector<uint64_t>& ns);

// The rounding's rate table is trained on the sample (train_rd, 2 passes).
// With calibration (fb, and H the tensor's input covariance [cols, cols]),
// the codes are GPTQ's and the error is the one the layer's outputs see,
// dᵀ H d summed over rows, over tr(H) / cols: an isotropic error counts as
// in weight space (what sensitivities are measured against), one GPTQ
// steered into directions the inputs rarely take counts less.
Point evaluate(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, const std::vector<double>& rms,
               double rms_all, const Plan& p, const std::vector<uint64_t>& sample_rows,
               const Feedback* fb = nullptr, const float* H = nullptr);
// evaluate for several plans, H read once for all of them (it is the cost
// of a wide tensor's evaluation: 822 MB at 14336 inputs): the same points.
std::vector<Point> evaluate_plans(DType t, const uint8_t* data, uint64_t rows, uint64_t cols,
                                  const std::vector<double>& rms, double rms_all, const std::vector<Plan>& plans,
                                  const std::vector<uint64_t>& sample_rows, const Feedback* fb = nullptr,
                                  const float* H = nullptr);

}  // namespace wc::qrow
