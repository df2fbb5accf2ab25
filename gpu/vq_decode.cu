// CUDA kernel for vq: see vq_decode.cuh. A shell around vq_thread
// (gpu/vq_kernel_body.h), which the CPU emulation test runs too.
#include "gpu/vq_decode.cuh"

#include "gpu/vq_kernel_body.h"

namespace wc::vq::gpu {

namespace {

__global__ void __launch_bounds__(kThreadsPerBlock) vq_decode_kernel(const VqArgs a) {
  vq_thread(a, uint64_t(blockIdx.x) * blockDim.x + threadIdx.x, uint64_t(gridDim.x) * blockDim.x);
}

}  // namespace

cudaError_t decode_rows_async(int32_t base_exp, const uint8_t* d_e, const uint8_t* d_codes, unsigned code_bytes,
                              const uint8_t* d_cb, uint32_t k, uint32_t d, uint32_t shift, uint64_t row0, uint32_t k2,
                              uint64_t rows, uint64_t cols, uint32_t out_dtype_id, uint8_t* d_dst, uint32_t* d_status, cudaStream_t s) {
  if ((code_bytes != 1 && code_bytes != 2) || (d != 1 && d != 2 && d != 4 && d != 8) || k == 0 || shift > 63 || (k2 && k % k2) || cols % d != 0 ||
      (out_dtype_id != qrow::kBF16 && out_dtype_id != qrow::kF16 && out_dtype_id != qrow::kF32) || !d_status ||
      base_exp < qrow::kMinBaseExp || base_exp > qrow::kMaxBaseExp)
    return cudaErrorInvalidValue;
  const uint64_t n = rows * cols;
  if (n == 0) return cudaSuccess;
  if (n / cols != rows) return cudaErrorInvalidValue;
  int dev = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (e != cudaSuccess) return e;
  const VqArgs a{base_exp, code_bytes, out_dtype_id, Books{d_cb, k, d, shift, row0, k2}, rows, cols, n, d_e, d_codes, d_dst, d_status};
  vq_decode_kernel<<<vq_blocks(n, uint32_t(sms > 0 ? sms : 1) * 8), kThreadsPerBlock, 0, s>>>(a);
  return cudaGetLastError();
}

}  // namespace wc::vq::gpu
