// Checks the CUDA float-ans decoder against the CPU decoder on a real device,
// and reports its speed; skips (exit 0, "[SKIPPED]") where there is no device.
// Codec 2 (float-ans) on every float type; codec 3 (float-ans-trim) on values
// whose low mantissa bits are zero (z > 0); codec 4 (float-ans-mixed) on
// column-scaled weights, whose chunks are mode 3 (per-channel shift).
//   wcodec_gpu_check [chunks]
#include <cuda_runtime.h>

#include "gpu/device_present.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "codec/channel_shift.h"
#include "codec/codec.h"
#include "codec/float_ans.h"
#include "gpu/float_ans_decode.cuh"

using namespace wc;

namespace {

constexpr size_t kCols = 1024;  // columns of the codec-4 tensor

// t(5)-like weights with per-row scales (deterministic), as `dtype`'s bytes.
// codec 3: the low mantissa bits cleared (BF16: 3, z = 3; F32: 16, z = 16);
// codec 4: one scale per column of kCols (2^-3 .. 2^3), so the writer's plan
// shifts the columns.
std::vector<uint8_t> make_weights(DType dtype, size_t n, uint64_t seed, uint32_t codec = 2) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  auto uni = [&] {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return (double(x >> 11) + 0.5) / double(1ull << 53);
  };
  size_t esz = dtype == DType::F32 ? 4 : dtype == DType::BF16 || dtype == DType::F16 ? 2 : 1;
  std::vector<uint8_t> out(n * esz);
  double scale = 0.02;
  for (size_t i = 0; i < n; ++i) {
    if (i % 4096 == 0) scale = 0.02 * std::exp((uni() - 0.5));
    double g = (uni() + uni() + uni() + uni() - 2.0) / std::sqrt(uni() + 0.05) * scale;
    if (codec == 4) g *= std::exp2(double((i % kCols) * 7919 % 61) / 10.0 - 3.0);
    float f = float(g);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (codec == 3 && esz == 4) u &= 0xFFFF0000u;  // BF16 values as F32: z = 16
    if (esz == 4) std::memcpy(&out[4 * i], &u, 4);
    else if (dtype == DType::BF16) {
      uint16_t b = uint16_t((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
      if (codec == 3) b &= 0xFFF8;
      std::memcpy(&out[2 * i], &b, 2);
    }
    else if (dtype == DType::F16) { _Float16 h = _Float16(f); std::memcpy(&out[2 * i], &h, 2); }
    else out[i] = uint8_t(u >> 24);
  }
  return out;
}

#define CK(call)                                                                        \
  do {                                                                                  \
    cudaError_t e_ = (call);                                                            \
    if (e_ != cudaSuccess) {                                                            \
      std::printf("FAIL: %s: %s\n", #call, cudaGetErrorString(e_));                     \
      return 1;                                                                         \
    }                                                                                   \
  } while (0)

int check(uint32_t codec, DType dtype, size_t chunk_bytes, size_t nchunks) {
  std::vector<std::vector<uint8_t>> raw(nchunks), enc(nchunks);
  size_t shifted = 0;
  for (size_t c = 0; c < nchunks; ++c) {
    size_t esz = dtype == DType::F32 ? 4 : dtype == DType::BF16 || dtype == DType::F16 ? 2 : 1;
    size_t bytes = c + 1 == nchunks ? chunk_bytes / 3 / esz * esz : chunk_bytes;  // a short last chunk
    raw[c] = make_weights(dtype, bytes / esz, c + 1, codec);
    const size_t n = raw[c].size() / esz;
    const shift::Plan plan =
        codec == 4 && n % kCols == 0 ? shift::plan(dtype, raw[c].data(), n, kCols) : shift::Plan{};
    EncodeOptions o;
    o.mixed_try_zstd = false;
    o.shift = plan.d.empty() ? nullptr : &plan;
    o.first_elem = 0;  // each chunk is a tensor of its own (o != 0: tests/test_gpu_emulation.cpp)
    encode_chunk(CodecId(codec), dtype, raw[c].data(), raw[c].size(), enc[c], o);
    shifted += enc[c][0] == shift::kMode;
  }
  std::vector<uint8_t> src_all, dst_all;
  std::vector<size_t> so(nchunks), dof(nchunks);
  size_t s = 0, d = 0;
  for (size_t c = 0; c < nchunks; ++c) {
    so[c] = s; s += (enc[c].size() + 15) / 16 * 16;
    dof[c] = d; d += raw[c].size();
  }
  src_all.resize(s);
  for (size_t c = 0; c < nchunks; ++c) std::memcpy(src_all.data() + so[c], enc[c].data(), enc[c].size());
  uint8_t *d_src, *d_dst;
  int* d_status;
  fans::gpu::Chunk* d_chunks;
  CK(cudaMalloc(&d_src, s));
  CK(cudaMalloc(&d_dst, d));
  CK(cudaMalloc(&d_status, nchunks * sizeof(int)));
  CK(cudaMalloc(&d_chunks, nchunks * sizeof(fans::gpu::Chunk)));
  std::vector<fans::gpu::Chunk> chunks(nchunks);
  for (size_t c = 0; c < nchunks; ++c) chunks[c] = {d_src + so[c], enc[c].size(), d_dst + dof[c], raw[c].size()};
  CK(cudaMemcpy(d_src, src_all.data(), s, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_chunks, chunks.data(), nchunks * sizeof(chunks[0]), cudaMemcpyHostToDevice));
  CK(cudaMemset(d_dst, 0xAB, d));
  CK(fans::gpu::decode_chunks_async(d_chunks, uint32_t(nchunks), codec, uint32_t(dtype), d_status, 0));
  CK(cudaDeviceSynchronize());
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  const int reps = 20;
  CK(cudaEventRecord(e0));
  for (int r = 0; r < reps; ++r) CK(fans::gpu::decode_chunks_async(d_chunks, uint32_t(nchunks), codec, uint32_t(dtype), d_status, 0));
  CK(cudaEventRecord(e1));
  CK(cudaEventSynchronize(e1));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  std::vector<int> status(nchunks);
  dst_all.resize(d);
  CK(cudaMemcpy(status.data(), d_status, nchunks * sizeof(int), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(dst_all.data(), d_dst, d, cudaMemcpyDeviceToHost));
  int bad = 0;
  std::vector<uint8_t> cpu;
  for (size_t c = 0; c < nchunks; ++c) {
    cpu.resize(raw[c].size());
    bool cpu_ok = decode_chunk(CodecId(codec), dtype, enc[c].data(), enc[c].size(), cpu.data(), cpu.size()) == Errc::ok &&
                  cpu == raw[c];
    if (status[c] != fans::gpu::kOk || !cpu_ok || std::memcmp(dst_all.data() + dof[c], raw[c].data(), raw[c].size()) != 0)
      ++bad;
  }
  double gbps = double(d) * reps / (ms / 1e3) / 1e9;
  std::printf("codec %u %-8s %zu chunks of %zu KiB (%zu shifted): %s, GPU decode %.1f GB/s of output\n", codec,
              std::string(dtype_name(dtype)).c_str(), nchunks, chunk_bytes >> 10, shifted,
              bad ? "MISMATCH" : "identical to the CPU decoder", gbps);
  cudaFree(d_src); cudaFree(d_dst); cudaFree(d_status); cudaFree(d_chunks);
  return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (!wc::gpu::device_present()) return 0;
  size_t nchunks = argc > 1 ? size_t(std::atol(argv[1])) : 256;
  int fails = 0, runs = 0;
  for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2})
    fails += check(2, t, 256 << 10, nchunks), ++runs;
  for (DType t : {DType::BF16, DType::F32}) fails += check(3, t, 256 << 10, nchunks), ++runs;
  for (DType t : {DType::BF16, DType::F16, DType::F32}) fails += check(4, t, 256 << 10, nchunks), ++runs;
  std::printf("%d passed, %d failed\n", runs - fails, fails);
  return fails ? 1 : 0;
}
