// What one CUDA thread of the qrow decode kernel (gpu/qrow_decode.cu) does,
// as a host/device function: the kernel calls qrow_thread with its global
// thread index and the grid's thread count, and the CPU emulation test
// (tests/test_gpu_emulation.cpp) calls it for every (block, thread) of the
// same launch shape, so the CPU runs the kernel's exact decomposition (grid-
// stride loop, row tracking, code loads, output packing, vector stores).
// The arithmetic is quant/qrow_math.h's and nothing else (spec/QROW.md §2-3).
//
// Decomposition: the tensor's n = rows * cols elements, row-major, are cut
// into groups of G consecutive elements; thread t of T takes groups t, t + T,
// t + 2T, ... When the output and code pointers are aligned (16 bytes for
// the output, G * code_bytes for the codes), G is 16 bytes of output (8
// BF16/F16 or 4 F32 elements): one vector load of G codes and one 16-byte
// store per group, except the last group when n is not a multiple of G
// (element stores). Otherwise G = 1 with element loads and stores.
// Plain C++ includes this header too: nothing here needs the CUDA toolkit.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/outlier_math.h"
#include "quant/qrow_math.h"

namespace wc::qrow::gpu {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "codes and outputs are little-endian");

// Launch shape: kThreadsPerBlock threads a block, as many blocks as the
// device holds at once (at most kBlocksPerSm per multiprocessor; the grid-
// stride loop covers the rest).
inline constexpr uint32_t kThreadsPerBlock = 256;
inline constexpr uint32_t kBlocksPerSm = 8;

// One decode, as every thread sees it (passed by value to the kernel).
struct QrowArgs {
  int32_t base_exp;
  uint32_t code_bytes;  // 1 or 2
  uint32_t out_dt;      // kBF16, kF16 or kF32
  uint32_t group;       // G: elements per group (1, or 16 / output bytes when vec)
  uint32_t vec;         // 1: aligned groups of G with vector loads and 16-byte stores
  uint64_t rows, cols, n, groups;
  const uint8_t* e;
  const uint8_t* codes;
  uint8_t* dst;
};

// The arguments of one decode; decides the vector path from the pointers'
// alignment. code_bytes and out_dt must be valid (see args_valid).
WC_QHD QrowArgs make_args(int32_t base_exp, const uint8_t* e, const uint8_t* codes, unsigned code_bytes,
                          uint64_t rows, uint64_t cols, uint32_t out_dt, uint8_t* dst) {
  QrowArgs a;
  a.base_exp = base_exp, a.code_bytes = code_bytes, a.out_dt = out_dt;
  a.rows = rows, a.cols = cols, a.n = rows * cols;
  a.e = e, a.codes = codes, a.dst = dst;
  const uint32_t vg = 16u / dtype_bytes(out_dt);  // 8 or 4
  a.vec = uintptr_t(dst) % 16 == 0 && uintptr_t(codes) % (vg * code_bytes) == 0;
  a.group = a.vec ? vg : 1u;
  a.groups = a.n / a.group + (a.n % a.group != 0);
  return a;
}

WC_QHD bool args_valid(int32_t base_exp, unsigned code_bytes, uint32_t out_dt) {
  return (code_bytes == 1 || code_bytes == 2) && (out_dt == kBF16 || out_dt == kF16 || out_dt == kF32) &&
         base_exp >= kMinBaseExp && base_exp <= kMaxBaseExp;
}

struct LaunchShape {
  uint32_t blocks, threads;
};

// Blocks: enough for one group a thread, at most max_blocks (the device's
// multiprocessors times the blocks one holds at once), at least 1.
WC_QHD LaunchShape launch_shape(const QrowArgs& a, uint32_t max_blocks) {
  const uint64_t want = a.groups / kThreadsPerBlock + (a.groups % kThreadsPerBlock != 0);
  uint64_t b = want < max_blocks ? want : max_blocks;
  if (b == 0) b = 1;
  return {uint32_t(b), kThreadsPerBlock};
}

namespace detail {

// nw little-endian 32-bit words from p (p aligned to 4 * nw; nw 1, 2 or 4).
WC_QHD void load_words(const uint8_t* p, uint32_t* w, uint32_t nw) {
#ifdef __CUDA_ARCH__
  if (nw == 4) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else if (nw == 2) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    w[0] = v.x, w[1] = v.y;
  } else {
    w[0] = *reinterpret_cast<const uint32_t*>(p);
  }
#else
  memcpy(w, p, 4 * size_t(nw));
#endif
}

// 16 bytes to p (aligned to 16), little-endian words.
WC_QHD void store16(uint8_t* p, const uint32_t* w) {
#ifdef __CUDA_ARCH__
  *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
#else
  memcpy(p, w, 16);
#endif
}

// The output bits of y in dtype DT (as store() writes them).
template <uint32_t DT>
WC_QHD uint32_t out_bits(float y) {
  const uint32_t b = f32_bits(y);
  if constexpr (DT == kF32) return b;
  else return DT == kBF16 ? f32_to_bf16_rne(b) : f32_to_f16_rne(b);
}

// Thread body for one code width CB and output dtype DT.
template <uint32_t CB, uint32_t DT>
WC_QHD void thread_body(const QrowArgs& a, uint64_t thread_index, uint64_t thread_count) {
  const uint64_t G = a.group;
  uint64_t g = thread_index;
  if (g >= a.groups) return;
  // Row and column of this thread's first element, and how far one stride
  // of thread_count groups moves them (one division each, none per group).
  uint64_t i0 = g * G;
  uint64_t r = i0 / a.cols, c = i0 - r * a.cols;
  const uint64_t stride = thread_count * G;
  const uint64_t dr = stride / a.cols, dc = stride - dr * a.cols;
  for (; g < a.groups; g += thread_count, i0 += stride) {
    uint64_t rr = r, cc = c;
    float step = step_of(a.base_exp, a.e[rr]);
    if (a.vec && i0 + G <= a.n) {  // a full, aligned group: G = 16 / output bytes
      constexpr uint32_t kG = DT == kF32 ? 4u : 8u;
      uint32_t cw[4], ow[4] = {0, 0, 0, 0};
      load_words(a.codes + i0 * CB, cw, kG * CB / 4);
      for (uint32_t k = 0; k < kG; ++k) {
        if (cc == a.cols) cc = 0, ++rr, step = step_of(a.base_exp, a.e[rr]);
        uint32_t u;
        if constexpr (CB == 1) u = (cw[k / 4] >> (8 * (k % 4))) & 0xFFu;
        else u = (cw[k / 2] >> (16 * (k % 2))) & 0xFFFFu;
        const uint32_t o = out_bits<DT>(value_of(u, step));
        if constexpr (DT == kF32) ow[k] = o;
        else ow[k / 2] |= o << (16 * (k % 2));
        ++cc;
      }
      store16(a.dst + i0 * (DT == kF32 ? 4 : 2), ow);
    } else {  // G = 1, or the last, partial group
      const uint64_t end = i0 + G < a.n ? i0 + G : a.n;
      for (uint64_t i = i0; i < end; ++i) {
        if (cc == a.cols) cc = 0, ++rr, step = step_of(a.base_exp, a.e[rr]);
        const uint32_t u = CB == 1 ? uint32_t(a.codes[i]) : uint32_t(a.codes[2 * i] | a.codes[2 * i + 1] << 8);
        store(DT, value_of(u, step), a.dst, i);
        ++cc;
      }
    }
    // next group of this thread
    c += dc, r += dr;
    if (c >= a.cols) c -= a.cols, ++r;
  }
}

}  // namespace detail

// Everything one thread does: thread_index = blockIdx.x * blockDim.x +
// threadIdx.x, thread_count = gridDim.x * blockDim.x.
WC_QHD void qrow_thread(const QrowArgs& a, uint64_t thread_index, uint64_t thread_count) {
  if (a.code_bytes == 1) {
    if (a.out_dt == kBF16) detail::thread_body<1, kBF16>(a, thread_index, thread_count);
    else if (a.out_dt == kF16) detail::thread_body<1, kF16>(a, thread_index, thread_count);
    else detail::thread_body<1, kF32>(a, thread_index, thread_count);
  } else {
    if (a.out_dt == kBF16) detail::thread_body<2, kBF16>(a, thread_index, thread_count);
    else if (a.out_dt == kF16) detail::thread_body<2, kF16>(a, thread_index, thread_count);
    else detail::thread_body<2, kF32>(a, thread_index, thread_count);
  }
}

// qrow-outliers (spec/OUTLIERS.md): after the qrow pass over a tile, one
// thread walks the tile's section of the outlier block and writes its
// outliers (a few per thousand elements; sequential varints). status
// receives 0 when the section is valid, 1 when not (the tile's bytes are then
// not to be used). quant/outlier_math.h is the arithmetic, as on the CPU.
struct OutlierArgs {
  const uint8_t* block;
  uint64_t block_n, tiles, tile, rows, cols;
  uint32_t dt, out_dt;
  uint8_t* dst;
  uint32_t* status;
};
WC_QHD void outliers_thread(const OutlierArgs& a, uint64_t thread_index) {
  if (thread_index != 0) return;
  size_t off = 0, len = 0;
  const bool ok = outlier_section(a.block, size_t(a.block_n), a.tiles, a.tile, off, len) &&
                  apply_outlier_section(a.block + off, len, a.rows, a.cols, a.dt, a.out_dt, a.dst);
  *a.status = ok ? 0u : 1u;
}

}  // namespace wc::qrow::gpu
