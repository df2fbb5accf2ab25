// The CUDA qrow kernel emulated on the CPU: gpu/qrow_kernel_body.h's
// qrow_thread (exactly what one CUDA thread of gpu/qrow_decode.cu does) run
// for every (block, thread) of the launch shape the .cu computes, with a
// small grid (the grid-stride loop wraps) and a device-sized one, on the
// vector path (aligned pointers) and the element path (misaligned ones). The
// bytes must equal wc::qrow::decode_rows_ref and decode_rows_fast, and no
// byte outside the output may change. Plain C++: no CUDA toolkit needed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "format/dtype.h"
#include "gpu/qrow_kernel_body.h"
#include "quant/qrow.h"
#include "quant/qrow_math.h"

using namespace wc;
namespace qg = wc::qrow::gpu;

namespace {

// A buffer with room to place data at a chosen offset from a 64-byte
// boundary, and guard bytes on both sides.
struct Placed {
  std::vector<uint8_t> buf;
  uint8_t* p = nullptr;
  size_t n = 0;
  static constexpr size_t kGuard = 64;
  Placed(size_t bytes, size_t misalign, uint8_t fill) : buf(bytes + 3 * kGuard, fill), n(bytes) {
    const uintptr_t a = (reinterpret_cast<uintptr_t>(buf.data()) + kGuard + 63) & ~uintptr_t(63);
    p = reinterpret_cast<uint8_t*>(a) + misalign;
  }
  std::vector<uint8_t> bytes() const { return std::vector<uint8_t>(p, p + n); }
  // every byte outside [p, p + n) still holds `fill`
  bool guards_intact(uint8_t fill) const {
    for (const uint8_t* q = buf.data(); q < p; ++q)
      if (*q != fill) return false;
    for (const uint8_t* q = p + n; q < buf.data() + buf.size(); ++q)
      if (*q != fill) return false;
    return true;
  }
};

// Runs every thread of the launch `L`, in block order then thread order (the
// threads write disjoint bytes, so the order does not matter).
void emulate(const qg::QrowArgs& a, qg::LaunchShape L) {
  const uint64_t count = uint64_t(L.blocks) * L.threads;
  for (uint32_t b = 0; b < L.blocks; ++b)
    for (uint32_t t = 0; t < L.threads; ++t) qg::qrow_thread(a, uint64_t(b) * L.threads + t, count);
}

// First differing byte, or -1.
long long first_diff(const std::vector<uint8_t>& x, const std::vector<uint8_t>& y) {
  if (x.size() != y.size()) return 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] != y[i]) return (long long)i;
  return -1;
}

// Codes with a realistic core (small |q|) and a uniform tail over the whole
// code range, including the extremes.
std::vector<uint8_t> random_codes(std::mt19937_64& rng, uint64_t n, unsigned cb) {
  std::vector<uint8_t> c(n * cb);
  std::geometric_distribution<uint32_t> small(0.3);
  const uint32_t top = cb == 1 ? 0xFFu : 0xFFFFu;
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t pick = uint32_t(rng() % 8);
    uint32_t u = pick < 5 ? std::min(small(rng), top) : pick == 5 ? (rng() % 2 ? top : top - 1)
                                                                   : uint32_t(rng() & top);
    c[i * cb] = uint8_t(u);
    if (cb == 2) c[i * cb + 1] = uint8_t(u >> 8);
  }
  return c;
}

// Device-sized grid: an H100/H200 has 132 multiprocessors; the kernel holds
// a few blocks on each.
constexpr uint32_t kDeviceBlocks = 132 * 5;
// Small grid: the grid-stride loop wraps many times, with a stride that is
// not a multiple of the row length.
constexpr uint32_t kSmallBlocks = 3;

struct Shape {
  uint64_t rows, cols;
};

}  // namespace

TEST_SUITE("gpu_emulation") {
  TEST_CASE("qrow kernel: every thread of the launch writes the CPU decoders' bytes") {
    std::mt19937_64 rng(20240611);
    const Shape shapes[] = {{1, 1}, {3, 5}, {7, 1000}, {64, 4096}, {2, 9}, {13, 7}, {1, 4099}, {9, 1}};
    const DType outs[] = {DType::BF16, DType::F16, DType::F32};
    std::uniform_int_distribution<int32_t> any_b(qrow::kMinBaseExp, qrow::kMaxBaseExp);
    const int32_t fixed_b[] = {qrow::kMinBaseExp, 0, qrow::kMaxBaseExp};
    size_t runs = 0;
    for (const Shape& sh : shapes) {
      const uint64_t n = sh.rows * sh.cols;
      for (unsigned cb : {1u, 2u}) {
        std::vector<uint8_t> e(sh.rows);
        for (auto& x : e) x = uint8_t(rng());
        if (sh.rows > 2) e[0] = 0, e[1] = 255;  // grid ends
        const std::vector<uint8_t> codes = random_codes(rng, n, cb);
        for (int bi = 0; bi < 5; ++bi) {
          const int32_t B = bi < 3 ? fixed_b[bi] : any_b(rng);
          for (DType out : outs) {
            const size_t ob = dtype_bits(out) / 8;
            CAPTURE(sh.rows);
            CAPTURE(sh.cols);
            CAPTURE(cb);
            CAPTURE(B);
            CAPTURE(std::string(dtype_name(out)));
            std::vector<uint8_t> ref(n * ob, 0xAB), fast(n * ob, 0xCD);
            qrow::decode_rows_ref(B, e.data(), codes.data(), cb, sh.rows, sh.cols, out, ref.data());
            qrow::decode_rows_fast(B, e.data(), codes.data(), cb, sh.rows, sh.cols, out, fast.data());
            CHECK(first_diff(fast, ref) == -1);
            REQUIRE(qg::args_valid(B, cb, uint32_t(out)));
            // 0: aligned (vector path); 1: output misaligned; 2: codes misaligned
            for (int place = 0; place < 3; ++place) {
              CAPTURE(place);
              Placed c(codes.size(), place == 2 ? cb : 0, 0x5A);
              std::memcpy(c.p, codes.data(), codes.size());
              for (uint32_t max_blocks : {kSmallBlocks, kDeviceBlocks}) {
                CAPTURE(max_blocks);
                Placed d(n * ob, place == 1 ? ob : 0, 0xEE);
                const qg::QrowArgs a = qg::make_args(B, e.data(), c.p, cb, sh.rows, sh.cols, uint32_t(out), d.p);
                CHECK(a.vec == (place == 0 ? 1u : 0u));
                CHECK(a.group == (place == 0 ? 16u / ob : 1u));
                const qg::LaunchShape L = qg::launch_shape(a, max_blocks);
                CHECK(L.threads == qg::kThreadsPerBlock);
                CHECK(L.blocks >= 1);
                CHECK(L.blocks <= max_blocks);
                emulate(a, L);
                CHECK(first_diff(d.bytes(), ref) == -1);
                CHECK(d.guards_intact(0xEE));
                CHECK(c.guards_intact(0x5A));
                ++runs;
              }
            }
          }
        }
      }
    }
    CHECK(runs == std::size(shapes) * 2 * 5 * 3 * 3 * 2);
  }

  TEST_CASE("qrow kernel: the small grid wraps, the device grid gives each thread at most one group") {
    std::vector<uint8_t> e(64), codes(64 * 4096);
    std::vector<uint8_t> dst(64 * 4096 * 2 + 16);
    uint8_t* d = dst.data() + (16 - reinterpret_cast<uintptr_t>(dst.data()) % 16) % 16;
    const qg::QrowArgs a = qg::make_args(0, e.data(), codes.data() + (8 - reinterpret_cast<uintptr_t>(codes.data()) % 8) % 8,
                                         1, 64, 4095, qrow::kBF16, d);
    REQUIRE(a.vec == 1);
    CHECK(a.groups == (64 * 4095 + 7) / 8);
    const qg::LaunchShape small = qg::launch_shape(a, kSmallBlocks);
    CHECK(uint64_t(small.blocks) * small.threads < a.groups / 10);
    const qg::LaunchShape dev = qg::launch_shape(a, kDeviceBlocks);
    CHECK(uint64_t(dev.blocks) * dev.threads >= a.groups);
    CHECK(uint64_t(dev.blocks - 1) * dev.threads < a.groups);
  }

  TEST_CASE("qrow kernel: an empty tile writes nothing; argument checks") {
    std::vector<uint8_t> e(4, 0), codes(16, 1), dst(64, 0x77);
    for (auto [r, c] : {std::pair<uint64_t, uint64_t>{0, 5}, {4, 0}}) {
      const qg::QrowArgs a = qg::make_args(0, e.data(), codes.data(), 1, r, c, qrow::kF32, dst.data());
      CHECK(a.n == 0);
      CHECK(a.groups == 0);
      emulate(a, qg::launch_shape(a, kSmallBlocks));
    }
    CHECK(dst == std::vector<uint8_t>(64, 0x77));
    CHECK(qg::args_valid(-126, 1, qrow::kBF16));
    CHECK(qg::args_valid(96, 2, qrow::kF16));
    CHECK_FALSE(qg::args_valid(-127, 1, qrow::kBF16));
    CHECK_FALSE(qg::args_valid(97, 1, qrow::kF32));
    CHECK_FALSE(qg::args_valid(0, 3, qrow::kF32));
    CHECK_FALSE(qg::args_valid(0, 0, qrow::kF32));
    CHECK_FALSE(qg::args_valid(0, 1, uint32_t(DType::F64)));
  }
}
