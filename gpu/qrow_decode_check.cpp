// Checks the CUDA qrow decoder (gpu/qrow_decode.cuh) against the fast CPU
// decoder on a real device, byte for byte, and reports its speed in GB/s of
// output written (best of several launches, cudaEvent timing); skips (exit 0,
// "[SKIPPED]") where there is no device.
//   wcodec_qrow_gpu_check [rows cols]     (default 4096 x 4096)
#include <cuda_runtime.h>

#include "gpu/device_present.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "format/dtype.h"
#include "gpu/qrow_decode.cuh"
#include "quant/qrow.h"
#include "quant/qrow_math.h"

using namespace wc;

namespace {

#define CK(call)                                                    \
  do {                                                              \
    cudaError_t e_ = (call);                                        \
    if (e_ != cudaSuccess) {                                        \
      std::printf("FAIL: %s: %s\n", #call, cudaGetErrorString(e_)); \
      return 1;                                                     \
    }                                                               \
  } while (0)

// Heavy-tailed weights with per-row scales (deterministic), F32.
std::vector<float> make_weights(uint64_t rows, uint64_t cols, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  auto uni = [&] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return (double(x >> 11) + 0.5) / double(1ull << 53);
  };
  std::vector<float> w(rows * cols);
  for (uint64_t r = 0; r < rows; ++r) {
    const double scale = 0.02 * std::exp(2.0 * (uni() - 0.5));
    for (uint64_t c = 0; c < cols; ++c)
      w[r * cols + c] = float((uni() + uni() + uni() + uni() - 2.0) / std::sqrt(uni() + 0.05) * scale);
  }
  return w;
}

struct Tile {
  int32_t base_exp = 0;
  std::vector<uint8_t> e, codes;  // codes: code_bytes each
  unsigned code_bytes = 1;
};

// Quantizes w row by row, as the encoder does in substance (and without
// depending on its interface): each row's step on the 1/16-octave grid near
// c * the row's RMS, codes rounded to nearest and clamped to the code width.
// c sets the code range (about 4 bits a weight for U8 codes, 10 for U16).
Tile quantize(const std::vector<float>& w, uint64_t rows, uint64_t cols, double c, unsigned code_bytes) {
  std::vector<int> ex(rows), fr(rows);
  int lo = 1 << 30;
  for (uint64_t r = 0; r < rows; ++r) {
    double s2 = 0;
    for (uint64_t k = 0; k < cols; ++k) s2 += double(w[r * cols + k]) * w[r * cols + k];
    const double target = c * std::max(std::sqrt(s2 / double(cols)), 1e-30);
    int x;
    const double m = std::frexp(target, &x);  // target = m 2^x, m in [0.5, 1)
    ex[r] = x - 1, fr[r] = int(std::lround((2 * m - 1) * 16));
    if (fr[r] == 16) ++ex[r], fr[r] = 0;
    lo = std::min(lo, ex[r]);
  }
  Tile t;
  t.base_exp = std::clamp(lo, qrow::kMinBaseExp, qrow::kMaxBaseExp);
  t.code_bytes = code_bytes;
  t.e.resize(rows);
  t.codes.resize(rows * cols * code_bytes);
  const double lim = code_bytes == 1 ? 127 : 32767;
  for (uint64_t r = 0; r < rows; ++r) {
    t.e[r] = uint8_t(std::clamp((ex[r] - t.base_exp) * 16 + fr[r], 0, 255));
    const double step = qrow::step_of(t.base_exp, t.e[r]);
    for (uint64_t k = 0; k < cols; ++k) {
      const double x = w[r * cols + k];
      const int32_t q = int32_t(std::copysign(std::min(std::floor(std::fabs(x) / step + 0.5), lim), x));
      const uint32_t u = qrow::zigzag(q);
      t.codes[(r * cols + k) * code_bytes] = uint8_t(u);
      if (code_bytes == 2) t.codes[(r * cols + k) * code_bytes + 1] = uint8_t(u >> 8);
    }
  }
  return t;
}

// Decodes `t` on the device into dtype `out` (dst at byte offset `misalign`:
// 0 takes the vector path, else the element path), compares with the CPU,
// and prints the best of `reps` timed launches. Returns 0 when identical.
int check(const Tile& t, uint64_t rows, uint64_t cols, DType out, size_t misalign, int reps) {
  const size_t ob = dtype_bits(out) / 8, nbytes = rows * cols * ob;
  std::vector<uint8_t> cpu(nbytes), gpu(nbytes);
  qrow::decode_rows_fast(t.base_exp, t.e.data(), t.codes.data(), t.code_bytes, rows, cols, out, cpu.data());
  uint8_t *d_e, *d_codes, *d_dst;
  CK(cudaMalloc(&d_e, t.e.size()));
  CK(cudaMalloc(&d_codes, t.codes.size()));
  CK(cudaMalloc(&d_dst, nbytes + 16));
  CK(cudaMemcpy(d_e, t.e.data(), t.e.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_codes, t.codes.data(), t.codes.size(), cudaMemcpyHostToDevice));
  CK(cudaMemset(d_dst, 0xAB, nbytes + 16));
  uint8_t* dst = d_dst + misalign;
  CK(qrow::gpu::decode_rows_async(t.base_exp, d_e, d_codes, t.code_bytes, rows, cols, uint32_t(out), dst, 0));
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(gpu.data(), dst, nbytes, cudaMemcpyDeviceToHost));
  size_t first = nbytes;
  for (size_t i = 0; i < nbytes && first == nbytes; ++i)
    if (gpu[i] != cpu[i]) first = i;
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  float best = 1e30f;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(e0));
    CK(qrow::gpu::decode_rows_async(t.base_exp, d_e, d_codes, t.code_bytes, rows, cols, uint32_t(out), dst, 0));
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    best = std::min(best, ms);
  }
  // the timed launches rewrite the same bytes: check them again
  CK(cudaMemcpy(gpu.data(), dst, nbytes, cudaMemcpyDeviceToHost));
  const bool same = first == nbytes && gpu == cpu;
  const double gbps = double(nbytes) / (double(best) / 1e3) / 1e9;
  std::printf("qrow %llux%llu U%u -> %-4s %s: %s, GPU decode %.1f GB/s of output (best of %d, %.3f ms)\n",
              (unsigned long long)rows, (unsigned long long)cols, 8 * t.code_bytes,
              std::string(dtype_name(out)).c_str(), misalign ? "element path" : "vector path ",
              same ? "identical to the CPU decoder" : "MISMATCH", gbps, reps, double(best));
  if (first != nbytes)
    std::printf("  first difference at byte %zu (element %zu): GPU %02x CPU %02x\n", first, first / ob, gpu[first],
                cpu[first]);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(d_e);
  cudaFree(d_codes);
  cudaFree(d_dst);
  return same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (!wc::gpu::device_present()) return 0;
  const uint64_t rows = argc > 2 ? std::strtoull(argv[1], nullptr, 10) : 4096;
  const uint64_t cols = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 4096;
  if (rows == 0 || cols == 0) {
    std::printf("usage: wcodec_qrow_gpu_check [rows cols]\n");
    return 2;
  }
  const std::vector<float> w = make_weights(rows, cols, 1);
  const Tile t8 = quantize(w, rows, cols, 0.25, 1), t16 = quantize(w, rows, cols, 0.004, 2);
  int fails = 0, runs = 0;
  for (const Tile* t : {&t8, &t16})
    for (DType out : {DType::BF16, DType::F16, DType::F32}) fails += check(*t, rows, cols, out, 0, 20), ++runs;
  fails += check(t8, rows, cols, DType::BF16, 2, 5), ++runs;  // element path (output not 16-byte aligned)
  fails += check(t16, rows, cols, DType::F32, 4, 5), ++runs;
  std::printf("%d passed, %d failed\n", runs - fails, fails);
  return fails ? 1 : 0;
}
