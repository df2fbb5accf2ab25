// The device checks' common start: whether a CUDA device is present, and the
// [SKIPPED] line ctest's SKIP_REGULAR_EXPRESSION recognises when it is not.
#pragma once
#include <cstdio>

#include <cuda_runtime.h>

namespace wc::gpu {

inline bool device_present() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaSuccess && n > 0) return true;
  std::printf("[SKIPPED] no CUDA device (%s)\n", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
  return false;
}

}  // namespace wc::gpu
