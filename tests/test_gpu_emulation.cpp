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
#include "codec/codec.h"
#include "codec/float_ans.h"
#include "format/reader.h"
#include "gpu/fans_kernel_body.h"
#include "gpu/qrow_kernel_body.h"
#include "lib/api.h"
#include "lib/reader_checks.h"
#include "test_util.h"
#include "weights_gen.h"
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

namespace fg = wc::fans::gpu;

// One thread block of the float-ans kernel (gpu/float_ans_decode.cu) on the
// CPU: thread 0's preparation, then per batch thread 0's scan and each warp's
// group, its 32 lanes stepping together (every lane's lane_step, then the
// ballot, then lane_take for the lanes that voted), as the warp does. The
// shared memory is a buffer of the kernel's size. Returns the status the
// block writes.
int emulate_fans_block(const fg::Chunk& c, uint32_t dtype_id, uint32_t max_pb, uint32_t threads) {
  std::vector<uint8_t> smem(fg::smem_for(max_pb) + 16);
  const fg::Smem S = fg::smem_parts(smem.data(), max_pb);
  fans::layout::ChunkLayout L{};
  uint64_t running = 0, scan[32];
  const int st = fg::block_prepare(c, dtype_id, max_pb, L, S);
  if (st != fg::kOk) return st;
  if (L.mode == fans::layout::kModeRaw) {
    for (uint32_t tid = 0; tid < threads; ++tid) fg::raw_copy(c, tid, threads);
    return fg::kOk;
  }
  const uint32_t nwarps = threads / 32;
  bool ok = true;
  for (uint64_t b0 = 0; b0 < L.ngroups; b0 += nwarps) {
    fg::batch_scan(c, L, b0, nwarps, scan, running);
    for (uint32_t warp = 0; warp < nwarps; ++warp) {
      const uint64_t g = b0 + warp;
      if (g >= L.ngroups) continue;
      const fg::Group G = fg::group_begin(c, L, g, scan[warp]);
      fg::Lane lanes[32];
      for (uint32_t l = 0; l < 32; ++l) lanes[l] = fg::lane_begin(c, L, G, l);
      uint64_t used = 0;
      for (uint64_t t = 0; t < G.steps; ++t) {
        uint32_t ballot = 0;
        for (uint32_t l = 0; l < 32; ++l) ballot |= uint32_t(fg::lane_step(c, L, S, G, lanes[l], t, l)) << l;
        for (uint32_t l = 0; l < 32; ++l)
          if (ballot >> l & 1u) fg::lane_take(G, lanes[l], used, ballot, l);
        used += fg::popcount32(ballot);
      }
      for (uint32_t l = 0; l < 32; ++l) ok &= fg::lane_end(lanes[l]);
      ok &= used == G.words;
    }
  }
  return ok ? fg::kOk : fg::kCorrupt;
}

// The emulated kernel's bytes for one float-ans payload, against the CPU
// decoder's (which must succeed).
void check_fans_chunk(DType t, const std::vector<uint8_t>& enc, size_t raw_n, uint32_t threads = 128) {
  std::vector<uint8_t> cpu(raw_n), emu(raw_n, 0xCD);
  REQUIRE(fans::decode(t, enc.data(), enc.size(), cpu.data(), raw_n) == Errc::ok);
  const fg::Chunk c{enc.data(), enc.size(), emu.data(), raw_n};
  REQUIRE(emulate_fans_block(c, uint32_t(t), 14, threads) == fg::kOk);
  CHECK(first_diff(emu, cpu) == -1);
}

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

  TEST_CASE("float-ans kernel: every block, warp and lane of the emulation writes the CPU decoder's bytes") {
    // generated weights in every float type the kernel takes, every symbol
    // configuration, sub-stream counts from 1 lane to many groups (partial
    // last group), precisions 10 to 14, the raw mode; 128 and 64 threads
    for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
      CAPTURE(t);
      const size_t elems = 70001;
      const std::vector<uint8_t> raw = testdata::weights(t, elems, 5);
      for (int joint = 0; joint < 2; ++joint)
        for (int k : {0, 2, 3})
          for (int sb : {6, 9, 12})
            for (int pb : {10, 12, 14}) {
              fans::Params p;
              p.k = k, p.joint = joint, p.sub_bits = sb, p.prob_bits = pb;
              std::vector<uint8_t> enc;
              fans::encode_with(t, raw.data(), raw.size(), enc, p);
              CAPTURE(k);
              CAPTURE(joint);
              CAPTURE(sb);
              CAPTURE(pb);
              check_fans_chunk(t, enc, raw.size(), sb == 6 ? 64 : 128);
            }
      std::vector<uint8_t> enc;
      fans::encode(t, raw.data(), 64, enc);  // tiny: the raw mode or a one-lane stream
      check_fans_chunk(t, enc, 64);
    }
  }

  TEST_CASE("float-ans kernel: the emulation equals the CPU decoder on every float-ans chunk of the corpus") {
    const std::string dir = WCODEC_CORPUS_DIR;
    size_t files = 0, chunks = 0;
    for (const char* name : {"stories260K_llama_hf_bf16.safetensors", "stories260K_llama_hf_f16.safetensors",
                             "stories260K_llama_hf_f32.safetensors", "cellogpt_seq2seq_toy_f32.safetensors",
                             "whisper_tiny_en_f16.safetensors"}) {
      const std::string path = dir + "/" + name;
      if (tu::read_file(path).empty()) continue;
      ++files;
      tu::TempDir tmp;
      wc::pack(path, tmp / "m.wcz", {});
      wc::ContainerReader r(tmp / "m.wcz", wc::kReaderChecks);
      for (const auto& t : r.manifest().tensors) {
        if (t.codec != uint8_t(CodecId::float_ans)) continue;  // the kernel decodes codec 2
        for (uint32_t c = 0; c < t.chunk_count; ++c) {
          const auto sp = r.chunk(t.global_chunk(c));
          CAPTURE(t.name);
          CAPTURE(c);
          check_fans_chunk(t.dtype, std::vector<uint8_t>(sp.begin(), sp.end()), t.chunk_raw_size(c));
          ++chunks;
        }
      }
    }
    if (files == 0) {
      MESSAGE("[SKIPPED] corpus not found at " << dir);
      return;
    }
    MESSAGE("float-ans kernel emulation: " << chunks << " corpus chunks in " << files << " files");
    CHECK(chunks > 0);
  }

  TEST_CASE("float-ans kernel: a damaged payload is reported, not decoded past its bounds") {
    const std::vector<uint8_t> raw = testdata::weights(DType::BF16, 20000, 9);
    std::vector<uint8_t> enc;
    fans::Params p;
    p.sub_bits = 8;
    fans::encode_with(DType::BF16, raw.data(), raw.size(), enc, p);
    std::mt19937 rng(3);
    size_t reported = 0;
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<uint8_t> bad = enc;
      bad[rng() % bad.size()] ^= uint8_t(1u << (rng() % 8));
      std::vector<uint8_t> out(raw.size() + 64, 0xEE);
      const fg::Chunk c{bad.data(), bad.size(), out.data(), raw.size()};
      const int st = emulate_fans_block(c, uint32_t(DType::BF16), 14, 128);
      std::vector<uint8_t> cpu(raw.size());
      const bool cpu_ok = fans::decode(DType::BF16, bad.data(), bad.size(), cpu.data(), cpu.size()) == Errc::ok;
      CHECK((st == fg::kOk) == cpu_ok);  // the kernel accepts exactly what the CPU decoder accepts
      if (st == fg::kOk) CHECK(std::equal(cpu.begin(), cpu.end(), out.begin()));
      else ++reported;
      for (size_t i = raw.size(); i < out.size(); ++i) CHECK(out[i] == 0xEE);  // nothing written past dst_n
    }
    CHECK(reported > 0);
  }
}
