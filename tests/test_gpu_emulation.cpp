// The CUDA kernels emulated on the CPU. float-ans (codecs 2, 3 and 4):
// gpu/fans_kernel_body.h's phases run for every warp and lane of a block in
// the kernel's order; the bytes and the verdict must be wc::decode_chunk's.
// qrow: gpu/qrow_kernel_body.h's
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
#include "codec/channel_shift.h"
#include "codec/codec.h"
#include "codec/float_ans.h"
#include "format/reader.h"
#include "gpu/fans_kernel_body.h"
#include "gpu/qrow_kernel_body.h"
#include "lib/api.h"
#include "lib/reader_checks.h"
#include "test_util.h"
#include "weights_gen.h"
#include "quant/outliers.h"
#include "quant/outliers_repr.h"
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
// ballot, then lane_take for the lanes that voted), as the warp does; for a
// mode-3 chunk then thread 0's shift_fill into the tables' memory and every
// thread's shift_apply. The shared memory is a buffer of the launch's size
// (smem_bytes) followed by guard bytes no phase may touch. Returns the
// status the block writes. list_cap: 0 for what the memory holds (as the
// .cu passes), else a smaller capacity to try the limit.
struct Launch {
  uint32_t codec = 2;
  uint32_t max_pb = 14;
  uint32_t threads = 128;
  uint32_t max_list = 0;  // decode_chunks_async's max_shift_entries
  uint32_t list_cap = 0;
};
int emulate_fans_block(const fg::Chunk& c, uint32_t dtype_id, const Launch& la) {
  constexpr size_t kSmemGuard = 64;
  const size_t bytes = fg::smem_bytes(la.max_pb, la.max_list);
  std::vector<uint8_t> mem(bytes + kSmemGuard + 16, 0x6B);
  uint8_t* smem = mem.data() + (16 - reinterpret_cast<uintptr_t>(mem.data()) % 16) % 16;  // __align__(16)
  auto guard_ok = [&] {
    for (size_t i = bytes; i < bytes + kSmemGuard; ++i)
      if (smem[i] != 0x6B) return false;
    return true;
  };
  const uint32_t list_cap = la.list_cap ? la.list_cap : fg::list_capacity(bytes);
  REQUIRE(list_cap <= fg::list_capacity(bytes));
  const fg::Smem S = fg::smem_parts(smem, la.max_pb);
  fans::layout::ChunkLayout L{};
  fg::Chunk in{};
  fg::ShiftHead sh{};
  uint64_t running = 0, scan[32];
  const uint32_t threads = la.threads;
  const int st = fg::block_prepare(c, la.codec, dtype_id, la.max_pb, list_cap, L, in, sh, S);
  REQUIRE(guard_ok());
  if (st != fg::kOk) return st;
  if (L.mode == fans::layout::kModeRaw) {
    for (uint32_t tid = 0; tid < threads; ++tid) fg::raw_copy(in, tid, threads);
    return fg::kOk;
  }
  const uint32_t nwarps = threads / 32;
  bool ok = true;
  for (uint64_t b0 = 0; b0 < L.ngroups; b0 += nwarps) {
    fg::batch_scan(in, L, b0, nwarps, scan, running);
    for (uint32_t warp = 0; warp < nwarps; ++warp) {
      const uint64_t g = b0 + warp;
      if (g >= L.ngroups) continue;
      const fg::Group G = fg::group_begin(in, L, g, scan[warp]);
      fg::Lane lanes[32];
      for (uint32_t l = 0; l < 32; ++l) lanes[l] = fg::lane_begin(in, L, G, l);
      uint64_t used = 0;
      for (uint64_t t = 0; t < G.steps; ++t) {
        uint32_t ballot = 0;
        for (uint32_t l = 0; l < 32; ++l) ballot |= uint32_t(fg::lane_step(in, L, S, G, lanes[l], t, l)) << l;
        for (uint32_t l = 0; l < 32; ++l)
          if (ballot >> l & 1u) fg::lane_take(G, lanes[l], used, ballot, l);
        used += fg::popcount32(ballot);
      }
      for (uint32_t l = 0; l < 32; ++l) ok &= fg::lane_end(lanes[l]);
      ok &= used == G.words;
    }
  }
  if (!ok) return fg::kCorrupt;
  if (sh.on) {
    int16_t* list = reinterpret_cast<int16_t*>(smem);
    fg::shift_fill(c, sh, list);
    REQUIRE(guard_ok());
    for (uint32_t tid = 0; tid < threads; ++tid) fg::shift_apply(c, sh, list, tid, threads);
  }
  return fg::kOk;
}
int emulate_fans_block(const fg::Chunk& c, uint32_t dtype_id, uint32_t max_pb, uint32_t threads) {
  Launch la;
  la.max_pb = max_pb;
  la.threads = threads;
  return emulate_fans_block(c, dtype_id, la);
}

// The emulated kernel's bytes for one payload of codec la.codec against the
// CPU decoder's (which must succeed).
void check_fans_chunk(DType t, const std::vector<uint8_t>& enc, size_t raw_n, const Launch& la) {
  std::vector<uint8_t> cpu(raw_n), emu(raw_n, 0xCD);
  REQUIRE(decode_chunk(CodecId(la.codec), t, enc.data(), enc.size(), cpu.data(), raw_n) == Errc::ok);
  const fg::Chunk c{enc.data(), enc.size(), emu.data(), raw_n};
  REQUIRE(emulate_fans_block(c, uint32_t(t), la) == fg::kOk);
  CHECK(first_diff(emu, cpu) == -1);
}
void check_fans_chunk(DType t, const std::vector<uint8_t>& enc, size_t raw_n, uint32_t threads = 128) {
  Launch la;
  la.threads = threads;
  check_fans_chunk(t, enc, raw_n, la);
}

// Any payload, valid or not: the emulated kernel accepts it exactly when
// wc::decode_chunk does, writes the same bytes then, and nothing past
// dst_n ever; kHostZstd and kUnsupported write nothing at all. Returns the
// kernel's status.
int compare_verdict(DType t, const uint8_t* src, size_t src_n, size_t raw_n, const Launch& la) {
  constexpr size_t kPast = 64;
  std::vector<uint8_t> cpu(raw_n), out(raw_n + kPast, 0xEE);
  const bool cpu_ok = decode_chunk(CodecId(la.codec), t, src, src_n, cpu.data(), raw_n) == Errc::ok;
  const fg::Chunk c{src, src_n, out.data(), raw_n};
  const int st = emulate_fans_block(c, uint32_t(t), la);
  if (st == fg::kHostZstd || st == fg::kUnsupported) {
    CHECK(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0xEE; }));
    return st;
  }
  CHECK((st == fg::kOk) == cpu_ok);
  if (st == fg::kOk && cpu_ok) CHECK(std::equal(cpu.begin(), cpu.end(), out.begin()));
  CHECK(std::all_of(out.begin() + ptrdiff_t(raw_n), out.end(), [](uint8_t b) { return b == 0xEE; }));
  return st;
}

// Fields of a mode-3 payload's header (spec §2.1).
struct ShiftFields {
  uint32_t L, P, o;
};
ShiftFields shift_fields(const std::vector<uint8_t>& s) {
  ShiftFields f{};
  std::memcpy(&f.L, &s[4], 4);
  std::memcpy(&f.P, &s[8], 4);
  std::memcpy(&f.o, &s[12], 4);
  return f;
}

// Real FP8 values (not testdata::put's mixed bits) of weights_channels, so
// that channel scales show in their exponents: E5M2 is F16's top byte; E4M3
// rounds toward zero, flushes below 2^-6 to zero and saturates at 448.
std::vector<uint8_t> channels(DType t, size_t rows, size_t cols, bool by_rows, uint64_t seed) {
  if (t != DType::F8_E4M3 && t != DType::F8_E5M2) return testdata::weights_channels(t, rows, cols, by_rows, seed);
  const DType from = t == DType::F8_E5M2 ? DType::F16 : DType::F32;
  const auto w = testdata::weights_channels(from, rows, cols, by_rows, seed);
  std::vector<uint8_t> out(rows * cols);
  for (size_t i = 0; i < out.size(); ++i) {
    if (t == DType::F8_E5M2) {
      out[i] = w[2 * i + 1];
      continue;
    }
    uint32_t u;
    std::memcpy(&u, &w[4 * i], 4);
    const int e = int((u >> 23) & 0xFF) - 127 + 7;
    const uint8_t sg = uint8_t((u >> 31) << 7);
    out[i] = e <= 0 ? sg : e > 15 ? uint8_t(sg | 0x7E) : uint8_t(sg | e << 3 | ((u >> 20) & 7));
    if ((out[i] & 0x7F) == 0x7F) out[i] = uint8_t(sg | 0x7E);  // not NaN
  }
  return out;
}

// A codec-4 chunk of elements [first, first + n) of tensor w under plan p
// (null: no shift, mode 1 or 0), sub-streams of 2^sb symbols.
std::vector<uint8_t> mixed_chunk(DType t, const std::vector<uint8_t>& w, size_t first, size_t n,
                                 const shift::Plan* p, int sb) {
  const size_t eb = dtype_bits(t) / 8;
  EncodeOptions o;
  o.mixed_try_zstd = false;
  o.substream_bits = sb;
  o.shift = p;
  o.first_elem = first;
  std::vector<uint8_t> out;
  encode_chunk(CodecId::float_ans_mixed, t, w.data() + first * eb, n * eb, out, o);
  return out;
}

// A column (or row) plan for w of `cols` columns: shift::plan's when it
// finds one, else one from a fixed pattern (any list is lossless; the
// encoder keeps mode 3 only where it comes out smaller).
shift::Plan plan_for(DType t, const std::vector<uint8_t>& w, size_t cols, bool rows) {
  const size_t n = w.size() / (dtype_bits(t) / 8);
  shift::Plan p = shift::plan(t, w.data(), n, cols);
  if (!p.d.empty() && p.rows == rows) return p;
  p = shift::Plan{};
  p.rows = rows;
  p.cols = cols;
  p.g = 2;
  p.d.resize(rows ? n / cols : cols);
  for (size_t i = 0; i < p.d.size(); ++i) p.d[i] = int16_t(int(i * 7 % 9) - 4);
  return p;
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

  TEST_CASE("qrow-outliers: the kernel's two passes write the CPU decoder's bytes, and refuse the same blocks") {
    // A record of representation 2 (3 tiles of 5 rows x 37 columns), random
    // steps and codes, outliers in every form (row lists, bitmask, none):
    // the CPU decoder (the representation's decode_tile) against the qrow
    // kernel's threads then outliers_thread, tile by tile, every output dtype.
    std::mt19937_64 rng(77);
    const uint64_t rows = 13, cols = 37, tr = 5, n = rows * cols;
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
      const size_t vb = dtype_bits(dt) / 8;
      std::vector<uint8_t> orig(n * vb);
      for (auto& b : orig) b = uint8_t(rng());
      for (size_t i = 0; i < n; ++i) orig[i * vb + vb - 1] &= 0x3F;  // finite values
      std::vector<uint64_t> pos;
      for (uint64_t i = 0; i < 5 * cols; i += 3) pos.push_back(i);  // tile 0: dense, a bitmask
      pos.push_back(5 * cols + 7), pos.push_back(6 * cols + 36);       // tile 1: sparse, row lists
      const auto block = qrow::outlier_block(dt, orig.data(), rows, cols, tr, pos);  // tile 2: none
      TensorRecord t;
      t.name = "w";
      t.dtype = dt;
      t.shape = {rows, cols};
      t.repr = kReprQrowOutliers;
      t.chunk_size = uint32_t(tr);
      t.params = {0xF6, 0xFF};  // B = -10
      t.parts.assign(3, PartRecord{});
      t.parts[0].role = PartRole::scales, t.parts[0].item = DType::U8, t.parts[0].items = rows;
      t.parts[0].layout = PartLayout::inline_items;
      t.parts[0].data.resize(rows);
      for (auto& x : t.parts[0].data) x = uint8_t(rng() % 200);
      t.parts[1].role = PartRole::codes, t.parts[1].item = DType::U8, t.parts[1].items = n;
      t.parts[1].layout = PartLayout::per_element, t.parts[1].codec = 1;
      t.parts[2].role = PartRole::outliers, t.parts[2].item = DType::U8, t.parts[2].items = block.size();
      t.parts[2].layout = PartLayout::inline_items, t.parts[2].data = block;
      t.levels.assign(1, LevelRecord{});
      qrow_outliers_check(t);
      const std::vector<uint8_t> codes = random_codes(rng, n, 1);
      for (bool damaged : {false, true}) {
        if (damaged) t.parts[2].data[4 + 4 * 3] ^= 1;  // the first section's form byte: 2 -> 3
        for (DType out : {DType::BF16, DType::F16, DType::F32}) {
          const size_t ob = dtype_bits(out) / 8;
          for (uint64_t tile = 0; tile < 3; ++tile) {
            CAPTURE(std::string(dtype_name(dt)));
            CAPTURE(std::string(dtype_name(out)));
            CAPTURE(tile);
            CAPTURE(damaged);
            const uint64_t r0 = tile * tr, rt = std::min(tr, rows - r0);
            TileInputs in;
            in.data[0] = t.parts[0].data.data(), in.size[0] = rows;
            in.data[1] = codes.data() + r0 * cols, in.size[1] = rt * cols;
            in.data[2] = t.parts[2].data.data(), in.size[2] = t.parts[2].data.size();
            std::vector<uint8_t> cpu(rt * cols * ob, 0xAB);
            const Errc rc = qrow_outliers_decode_tile(t, uint32_t(tile), 0, in, out, cpu.data());
            // the device: the qrow pass over the tile, then the outlier thread
            Placed d(rt * cols * ob, 0, 0xEE);
            const qg::QrowArgs a = qg::make_args(-10, t.parts[0].data.data() + r0, in.data[1], 1, rt, cols,
                                                 uint32_t(out), d.p);
            emulate(a, qg::launch_shape(a, kSmallBlocks));
            uint32_t status = 7;
            const qg::OutlierArgs oa{in.data[2], in.size[2], 3, tile, rt, cols, uint32_t(dt), uint32_t(out), d.p,
                                     &status};
            qg::outliers_thread(oa, 1);  // the launch's other threads do nothing
            CHECK(status == 7);
            qg::outliers_thread(oa, 0);
            CHECK(d.guards_intact(0xEE));
            // tile 0's section is the damaged one: both refuse it (and the table stays valid for the others)
            const bool bad = damaged && tile == 0;
            CHECK((rc == Errc::ok) == !bad);
            CHECK(status == (bad ? 1u : 0u));
            if (!bad) CHECK(first_diff(d.bytes(), cpu) == -1);
            // outliers come back exactly in the tensor's own dtype
            if (!bad && out == dt)
              for (uint64_t q : pos)
                if (q >= r0 * cols && q < (r0 + rt) * cols)
                  CHECK(std::memcmp(&cpu[(q - r0 * cols) * ob], &orig[q * vb], vb) == 0);
          }
        }
      }
    }
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
    // packed with the default options (--codec auto): codec 2 chunks, and
    // codec 3 and 4 chunks where the plan gives them (Whisper tiny.en's
    // positional tables: mode 2, which the kernel leaves to the host)
    const std::string dir = WCODEC_CORPUS_DIR;
    size_t files = 0, chunks = 0, by_codec[5] = {}, host = 0, shifted = 0, trimmed = 0;
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
        if (t.codec < uint8_t(CodecId::float_ans) || t.codec > uint8_t(CodecId::float_ans_mixed)) continue;
        Launch la;
        la.codec = t.codec;
        for (uint32_t c = 0; c < t.chunk_count; ++c) {
          const auto sp = r.chunk(t.global_chunk(c));
          CAPTURE(t.name);
          CAPTURE(c);
          const std::vector<uint8_t> enc(sp.begin(), sp.end());
          if (!fg::kernel_takes(t.codec, enc.empty() ? 0 : enc[0])) {
            CHECK(compare_verdict(t.dtype, enc.data(), enc.size(), t.chunk_raw_size(c), la) == fg::kHostZstd);
            ++host;
            continue;
          }
          check_fans_chunk(t.dtype, enc, t.chunk_raw_size(c), la);
          ++chunks;
          ++by_codec[t.codec];
          shifted += t.codec == 4 && enc[0] == fg::kModeShift;
          trimmed += enc[0] == 1 && enc.size() > 3 && (enc[3] >> 2) != 0;
        }
      }
    }
    if (files == 0) {
      MESSAGE("[SKIPPED] corpus not found at " << dir);
      return;
    }
    MESSAGE("float-ans kernel emulation: " << chunks << " corpus chunks in " << files << " files (codec 2: "
                                           << by_codec[2] << ", 3: " << by_codec[3] << ", 4: " << by_codec[4]
                                           << "; " << shifted << " of mode 3, " << trimmed
                                           << " mode-1 chunks with z > 0), " << host
                                           << " zstd chunks left to the host");
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

  TEST_CASE("float-ans kernel, codec 3 (float-ans-trim): chunks with z > 0 give the CPU decoder's bytes") {
    // low mantissa bits cleared in every element, every float type, symbol
    // configurations that leave z bits below the symbol and ones that cap z
    struct Case {
      DType t;
      uint32_t zbits;
    };
    const Case cases[] = {{DType::BF16, 3}, {DType::F16, 4},     {DType::F32, 16},
                          {DType::F32, 13}, {DType::F8_E4M3, 1}, {DType::F8_E5M2, 1}};
    for (const Case& cs : cases) {
      const DType t = cs.t;
      CAPTURE(t);
      CAPTURE(cs.zbits);
      const size_t n = 30001, eb = dtype_bits(t) / 8;
      fans::layout::Geometry geo{};
      REQUIRE(fans::layout::geometry_for(uint32_t(t), &geo));
      const uint32_t m = geo.m;
      std::vector<uint8_t> raw = testdata::weights(t, n, 17);
      for (size_t i = 0; i < n; ++i) {
        uint32_t v = 0;
        std::memcpy(&v, &raw[i * eb], eb);
        v &= ~((1u << cs.zbits) - 1u);
        std::memcpy(&raw[i * eb], &v, eb);
      }
      size_t with_z = 0;
      for (int joint = 0; joint < 2; ++joint)
        for (int k : {0, 1, 2})
          for (int sb : {6, 12})
            for (int pb : {10, 12}) {
              CAPTURE(joint);
              CAPTURE(k);
              CAPTURE(sb);
              CAPTURE(pb);
              fans::Params p;
              p.k = k, p.joint = joint, p.sub_bits = sb, p.prob_bits = pb, p.trim = true;
              std::vector<uint8_t> enc;
              fans::encode_with(t, raw.data(), raw.size(), enc, p);
              REQUIRE(enc.size() > 4);
              REQUIRE(enc[0] == 1);
              const uint32_t z = (enc[3] >> 2) & 31u;
              CHECK(z == std::min<uint32_t>(cs.zbits, m - uint32_t(k)));
              with_z += z > 0;
              Launch la;
              la.codec = 3;
              la.threads = sb == 6 ? 64 : 128;
              check_fans_chunk(t, enc, raw.size(), la);
              la.codec = 4;  // codec 4 reads modes 0 and 1 as codec 3 does
              check_fans_chunk(t, enc, raw.size(), la);
              if (z > 0) {  // codec 2 knows no z: both decoders refuse the chunk
                la.codec = 2;
                CHECK(compare_verdict(t, enc.data(), enc.size(), raw.size(), la) == fg::kCorrupt);
              }
            }
      std::vector<uint8_t> enc;
      encode_chunk(CodecId::float_ans_trim, t, raw.data(), raw.size(), enc, {});
      REQUIRE(enc[0] == 1);
      CHECK(((enc[3] >> 2) & 31u) > 0);
      Launch la;
      la.codec = 3;
      check_fans_chunk(t, enc, raw.size(), la);
      CHECK(with_z > 0);
    }
  }

  TEST_CASE("float-ans kernel, codec 4 (float-ans-mixed): modes 1 and 3 give the CPU decoder's bytes") {
    // column (L = 1) and row (L = cols) shifts of channel-scaled weights in
    // every float type, chunks that start mid-row (o != 0), chunks shorter
    // than a row, one to many groups; 128 threads and 96 (a stride that is
    // no multiple of L or P)
    const size_t rows = 300, cols = 200;
    const size_t spans[][2] = {{0, rows * cols}, {130, 9000}, {7777, 150}, {401, 37}, {rows * cols - 4321, 4321}};
    for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::F8_E5M2}) {
      CAPTURE(t);
      const size_t eb = dtype_bits(t) / 8;
      size_t col3 = 0, row3 = 0, mode1 = 0, o_set = 0, short3 = 0;
      for (bool by_rows : {false, true}) {
        CAPTURE(by_rows);
        const auto w = channels(t, rows, cols, by_rows, 71);
        const shift::Plan p = plan_for(t, w, cols, by_rows);
        for (const auto& sp : spans) {
          for (int sb : {6, 12}) {
            CAPTURE(sp[0]);
            CAPTURE(sp[1]);
            CAPTURE(sb);
            const auto s3 = mixed_chunk(t, w, sp[0], sp[1], &p, sb);
            const auto s1 = mixed_chunk(t, w, sp[0], sp[1], nullptr, sb);
            REQUIRE(!s3.empty());
            REQUIRE(!s1.empty());
            CHECK(s1[0] <= 1);
            CHECK(s3[0] != fg::kModeZstd);
            mode1 += s1[0] == 1;
            if (s3[0] == fg::kModeShift) {
              const ShiftFields f = shift_fields(s3);
              if (by_rows) {
                CHECK(f.L == cols);
                ++row3;
              } else {
                CHECK(f.L == 1);
                ++col3;
              }
              o_set += f.o != 0;
              short3 += sp[1] < cols;
            }
            for (uint32_t threads : {128u, 96u}) {
              CAPTURE(threads);
              Launch la;
              la.codec = 4;
              la.threads = threads;
              check_fans_chunk(t, s3, sp[1] * eb, la);
              check_fans_chunk(t, s1, sp[1] * eb, la);
            }
          }
        }
      }
      MESSAGE(dtype_name(t) << ": " << col3 << " column-shifted and " << row3 << " row-shifted chunks (" << short3
                            << " shorter than a row), " << mode1 << " mode-1 chunks");
      CHECK(col3 > 0);
      CHECK(row3 > 0);
      CHECK(o_set > 0);
      // an FP8 chunk of 37 or 150 bytes may not pay for the 16-byte header:
      // the encoder keeps mode 1 there (F8_E4M3 does on this data)
      if (eb >= 2) CHECK(short3 > 0);
      CHECK(mode1 > 0);
    }
  }

  TEST_CASE("float-ans kernel, codecs 3 and 4: a damaged payload is refused exactly when the CPU decoder refuses it") {
    // every truncation and every byte of the header, list and inner header
    // changed, random bit flips anywhere; mode 3 with column and row lists,
    // codec 3 with z > 0
    struct Payload {
      const char* what;
      DType t;
      uint32_t codec;
      std::vector<uint8_t> bytes;
      size_t raw_n;
    };
    std::vector<Payload> ps;
    for (DType t : {DType::BF16, DType::F32, DType::F8_E5M2}) {
      const size_t eb = dtype_bits(t) / 8, cols = 200;
      for (bool by_rows : {false, true}) {
        const auto w = channels(t, 300, cols, by_rows, 91);
        const shift::Plan p = plan_for(t, w, cols, by_rows);
        auto s3 = mixed_chunk(t, w, 130, 9000, &p, 8);
        REQUIRE(s3[0] == fg::kModeShift);
        ps.push_back({by_rows ? "mode 3, rows" : "mode 3, columns", t, 4, std::move(s3), 9000 * eb});
      }
      std::vector<uint8_t> raw = testdata::weights(t, 9000, 92), enc;
      for (size_t i = 0; i < raw.size(); i += eb) raw[i] &= 0xFC;  // the 2 lowest bits zero: z = 2
      fans::Params fp;
      fp.sub_bits = 8, fp.trim = true, fp.k = 0;
      fans::encode_with(t, raw.data(), raw.size(), enc, fp);
      REQUIRE(enc[0] == 1);
      REQUIRE(((enc[3] >> 2) & 31u) == 2);
      ps.push_back({"codec 3, z = 2", t, 3, std::move(enc), raw.size()});
    }
    std::mt19937 rng(93);
    for (const Payload& pl : ps) {
      CAPTURE(pl.what);
      CAPTURE(pl.t);
      Launch la;
      la.codec = pl.codec;
      size_t refused = 0, accepted = 0, host = 0;
      auto run = [&](const std::vector<uint8_t>& b, size_t n) {
        const int st = compare_verdict(pl.t, b.data(), n, pl.raw_n, la);
        refused += st == fg::kCorrupt;
        accepted += st == fg::kOk;
        host += st == fg::kHostZstd;
      };
      REQUIRE(compare_verdict(pl.t, pl.bytes.data(), pl.bytes.size(), pl.raw_n, la) == fg::kOk);
      for (size_t cut = 0; cut < std::min<size_t>(pl.bytes.size(), 80); ++cut) run(pl.bytes, cut);
      for (int i = 0; i < 20; ++i) run(pl.bytes, rng() % pl.bytes.size());
      for (size_t at = 0; at < std::min<size_t>(pl.bytes.size(), 64); ++at)
        for (uint8_t x : {uint8_t(0x01), uint8_t(0x5A), uint8_t(0x80)}) {
          CAPTURE(at);
          CAPTURE(int(x));
          auto bad = pl.bytes;
          bad[at] ^= x;
          run(bad, bad.size());
        }
      for (int trial = 0; trial < 150; ++trial) {
        auto bad = pl.bytes;
        bad[rng() % bad.size()] ^= uint8_t(1u << (rng() % 8));
        run(bad, bad.size());
      }
      CHECK(refused > 0);
      CHECK(accepted > 0);  // changed list entries, states or raw bits still decode (to other values)
      // mode byte 3 ^ 1 = 2: a zstd chunk, the host's; codec 3 has no mode 2
      if (pl.codec == 4) CHECK(host >= 1);
      else CHECK(host == 0);
    }
  }

  TEST_CASE("float-ans kernel, codec 4: the shift header's limits, one by one") {
    const DType t = DType::BF16;
    const size_t cols = 200;
    const auto w = channels(t, 300, cols, false, 95);
    const shift::Plan p = plan_for(t, w, cols, false);
    const auto s3 = mixed_chunk(t, w, 130, 9000, &p, 12);
    REQUIRE(s3[0] == fg::kModeShift);
    const ShiftFields f = shift_fields(s3);
    REQUIRE(f.L == 1);
    REQUIRE(f.P == cols);
    REQUIRE(f.o == 130);
    const size_t raw_n = 9000 * 2;
    Launch la;
    la.codec = 4;
    auto with = [&](size_t at, uint32_t v) {
      auto b = s3;
      std::memcpy(&b[at], &v, 4);
      return compare_verdict(t, b.data(), b.size(), raw_n, la);
    };
    CHECK(with(12, cols - 1) == fg::kOk);  // o = L * P - 1: another place in the pattern, valid
    CHECK(with(12, cols) == fg::kCorrupt);  // o = L * P
    CHECK(with(4, 0) == fg::kCorrupt);      // L = 0
    CHECK(with(4, 7) == fg::kOk);           // L = 7: every entry for 7 elements, same list
    CHECK(with(8, 0) == fg::kCorrupt);      // P = 0
    CHECK(with(8, 9001) == fg::kCorrupt);   // P > n
    CHECK(with(8, 70000) == fg::kCorrupt);  // P > n, P > 2^16
    auto b = s3;
    b[2] = 1;  // reserved
    CHECK(compare_verdict(t, b.data(), b.size(), raw_n, la) == fg::kCorrupt);
    b = s3;
    b[1] = uint8_t((b[1] & 0xF0) | 8);  // g = 8 > m = 7
    CHECK(compare_verdict(t, b.data(), b.size(), raw_n, la) == fg::kCorrupt);
    b = s3;
    b[1] = uint8_t((b[1] & 0x0F) | 4 << 4);  // egk = 4 > 3
    CHECK(compare_verdict(t, b.data(), b.size(), raw_n, la) == fg::kCorrupt);
    // the dst size: not a whole number of elements
    CHECK(compare_verdict(t, s3.data(), s3.size(), raw_n - 1, la) == fg::kCorrupt);
    // the launch's list capacity: one entry short is the host's, nothing written
    la.list_cap = f.P - 1;
    CHECK(compare_verdict(t, s3.data(), s3.size(), raw_n, la) == fg::kUnsupported);
    la.list_cap = f.P;
    CHECK(compare_verdict(t, s3.data(), s3.size(), raw_n, la) == fg::kOk);
    // prob_bits above the launch's max_prob_bits: the host's too
    la.list_cap = 0;
    la.max_pb = 10;
    CHECK(compare_verdict(t, s3.data(), s3.size(), raw_n, la) == fg::kUnsupported);
    // other codecs: not the kernel's
    for (uint32_t codec : {0u, 1u, 5u}) {
      la = Launch{};
      la.codec = codec;
      std::vector<uint8_t> out(raw_n, 0xEE);
      const fg::Chunk c{s3.data(), s3.size(), out.data(), raw_n};
      CHECK(emulate_fans_block(c, uint32_t(t), la) == fg::kUnsupported);
      CHECK(std::all_of(out.begin(), out.end(), [](uint8_t x) { return x == 0xEE; }));
      CHECK_FALSE(fg::kernel_takes(codec, 1));
    }
    CHECK(fg::kernel_takes(2, 2));  // codec 2: mode byte 2 is its to refuse
    CHECK(fg::kernel_takes(4, 3));
    CHECK_FALSE(fg::kernel_takes(4, 2));
  }

  TEST_CASE("float-ans kernel, codec 4: lists up to 2^16 entries, in the tables' shared memory or more") {
    CHECK(fg::smem_bytes(12, 0) == fg::smem_for(12));
    CHECK(fg::list_capacity(fg::smem_bytes(12, 0)) == 36866);
    CHECK(fg::list_capacity(fg::smem_bytes(10, 0)) == 27650);
    CHECK(fg::list_capacity(fg::smem_bytes(14, 0)) == 65536);
    CHECK(fg::smem_bytes(12, 1u << 16) == 131072);
    CHECK(fg::list_capacity(fg::smem_bytes(12, 1u << 16)) == 65536);
    // 2^16 BF16 elements inside one row of 70,000 columns: a column shift
    // with one entry per element, the longest list a chunk may carry
    const size_t cols = 70000;
    const auto w = channels(DType::BF16, 2, cols, false, 97);
    const shift::Plan p = plan_for(DType::BF16, w, cols, false);
    const size_t n = size_t(1) << 16;
    const auto s3 = mixed_chunk(DType::BF16, w, 1000, n, &p, 12);
    REQUIRE(s3[0] == fg::kModeShift);
    CHECK(shift_fields(s3).P == n);
    Launch la;
    la.codec = 4;
    la.max_pb = 12;
    CHECK(compare_verdict(DType::BF16, s3.data(), s3.size(), 2 * n, la) == fg::kUnsupported);
    la.max_list = 1u << 16;
    check_fans_chunk(DType::BF16, s3, 2 * n, la);
  }

  TEST_CASE("float-ans kernel: the float_ans_mixed vector's chunks (modes 0 and 1 decoded, mode 2 the host's)") {
    wc::ContainerReader r(std::string(WCODEC_TEST_DIR) + "/vectors/float_ans_mixed.wcz", wc::kReaderChecks);
    size_t kernel = 0, host = 0;
    for (const auto& t : r.manifest().tensors) {
      REQUIRE(t.codec == uint8_t(CodecId::float_ans_mixed));
      Launch la;
      la.codec = t.codec;
      for (uint32_t c = 0; c < t.chunk_count; ++c) {
        CAPTURE(t.name);
        CAPTURE(c);
        const auto sp = r.chunk(t.global_chunk(c));
        const std::vector<uint8_t> enc(sp.begin(), sp.end());
        REQUIRE(!enc.empty());
        const int st = compare_verdict(t.dtype, enc.data(), enc.size(), t.chunk_raw_size(c), la);
        if (enc[0] == fg::kModeZstd) {
          CHECK(st == fg::kHostZstd);
          ++host;
        } else {
          CHECK(st == fg::kOk);
          ++kernel;
        }
      }
    }
    CHECK(kernel == 3);  // BF16: raw and rANS; F8_E4M3: rANS
    CHECK(host == 1);
  }

  TEST_CASE("float-ans kernel: the list's Exp-Golomb reader reads and refuses what BitReader::eg does") {
    // random streams with runs of zeros around the 24-bit limit, every order,
    // every length to the end of the stream (codes cut short)
    std::mt19937_64 rng(99);
    size_t codes = 0, refusals = 0, long_ok = 0;
    for (int trial = 0; trial < 3000; ++trial) {
      std::vector<uint8_t> b(1 + rng() % 24);
      for (auto& x : b) {
        const uint32_t kind = uint32_t(rng() % 4);
        x = kind == 0 ? 0 : kind == 1 ? uint8_t(1u << (rng() % 8)) : uint8_t(rng());
      }
      if (trial % 3 == 0 && b.size() > 4) {  // a run of 23..26 zero bits from a random bit
        const size_t at = rng() % (b.size() * 8), run = 23 + rng() % 4;
        for (size_t i = at; i < std::min(at + run, b.size() * 8); ++i) b[i / 8] &= uint8_t(~(1u << (i % 8)));
        if (at + run < b.size() * 8) b[(at + run) / 8] |= uint8_t(1u << ((at + run) % 8));
      }
      const uint32_t k = uint32_t(rng() % 4);
      fans::layout::BitReader ref{b.data(), b.size(), 0, false};
      fg::EgReader fast(b.data(), b.size());
      for (;;) {
        const uint32_t want = ref.eg(k);
        uint32_t got = 0;
        const bool ok = fast.eg(k, &got);
        REQUIRE(ok == !ref.bad);
        if (!ok) {
          ++refusals;
          break;
        }
        REQUIRE(got == want);
        REQUIRE(fast.pos == ref.pos);
        long_ok += want >= (1u << 20);
        ++codes;
        // the padding check at this point, as channel_shift.cpp's parse makes it
        fans::layout::BitReader pad = ref;
        bool zero = true;
        while (pad.pos < (ref.pos + 7) / 8 * 8) zero &= pad.bit() == 0;
        fg::EgReader fp = fast;
        CHECK(fp.zero_padding() == zero);
      }
    }
    CHECK(codes > 10000);
    CHECK(refusals == 3000);
    CHECK(long_ok > 0);
  }
}
