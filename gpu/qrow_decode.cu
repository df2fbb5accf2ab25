// CUDA kernel for qrow: see qrow_decode.cuh. The kernel is a shell around
// qrow_thread (gpu/qrow_kernel_body.h), which the CPU emulation test runs too.
#include "gpu/qrow_decode.cuh"

#include "gpu/qrow_kernel_body.h"

namespace wc::qrow::gpu {

namespace {

__global__ void __launch_bounds__(kThreadsPerBlock) qrow_decode_kernel(const QrowArgs a) {
  qrow_thread(a, uint64_t(blockIdx.x) * blockDim.x + threadIdx.x, uint64_t(gridDim.x) * blockDim.x);
}

__global__ void outliers_kernel(const OutlierArgs a) { outliers_thread(a, threadIdx.x); }

}  // namespace

cudaError_t decode_rows_async(int32_t base_exp, const uint8_t* d_e, const uint8_t* d_codes, unsigned code_bytes,
                              uint64_t rows, uint64_t cols, uint32_t out_dtype_id, uint8_t* d_dst,
                              cudaStream_t s) {
  if (!args_valid(base_exp, code_bytes, out_dtype_id)) return cudaErrorInvalidValue;
  const QrowArgs a = make_args(base_exp, d_e, d_codes, code_bytes, rows, cols, out_dtype_id, d_dst);
  if (a.n == 0) return cudaSuccess;
  if (cols != 0 && a.n / cols != rows) return cudaErrorInvalidValue;  // rows * cols overflows
  // As many blocks as the device holds at once, at most kBlocksPerSm per
  // multiprocessor; the grid-stride loop covers the rest.
  int dev = 0, sms = 0, per_sm = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (e == cudaSuccess)
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, qrow_decode_kernel, int(kThreadsPerBlock), 0);
  if (e != cudaSuccess) return e;
  const uint32_t occ = per_sm < 1 ? 1u : per_sm > int(kBlocksPerSm) ? kBlocksPerSm : uint32_t(per_sm);
  const LaunchShape L = launch_shape(a, uint32_t(sms > 0 ? sms : 1) * occ);
  qrow_decode_kernel<<<L.blocks, L.threads, 0, s>>>(a);
  return cudaGetLastError();
}

cudaError_t apply_outliers_async(const uint8_t* d_block, uint64_t block_n, uint64_t tiles, uint64_t tile,
                                 uint64_t rows, uint64_t cols, uint32_t dtype_id, uint32_t out_dtype_id,
                                 uint8_t* d_dst, uint32_t* d_status, cudaStream_t s) {
  if (!args_valid(0, 1, dtype_id) || !args_valid(0, 1, out_dtype_id) || !d_status) return cudaErrorInvalidValue;
  const OutlierArgs a{d_block, block_n, tiles, tile, rows, cols, dtype_id, out_dtype_id, d_dst, d_status};
  outliers_kernel<<<1, 1, 0, s>>>(a);
  return cudaGetLastError();
}

}  // namespace wc::qrow::gpu
