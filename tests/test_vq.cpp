// vq (spec/VQ.md): the decoders (reference, fast, the CUDA kernel's CPU
// emulation) agree bit for bit; k-means is deterministic; --scheme codebook
// packs, verifies and unpacks to the stored reconstruction; the per-group
// layout and the record rules.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "format/reader.h"
#include "gpu/vq_kernel_body.h"
#include "lib/api.h"
#include "lib/reader_checks.h"
#include "quant/qrow.h"
#include "quant/qrow_math.h"
#include "quant/linalg.h"
#include "quant/vq.h"
#include "quant/vq_nearest.h"
#include "quant/vq_repr.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::DType;

namespace {

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// rows x cols F32 weights made for additive books: each group of 8 is
// A[i] + B[j] (64 random entries each, i and j random), times row r's scale.
std::vector<float> sums_of_two_codebooks(uint64_t rows, uint64_t cols, uint64_t seed,
                                         const std::function<float(uint64_t)>& scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> A(64 * 8), B(64 * 8), w(rows * cols);
  for (auto& x : A) x = nd(rng);
  for (auto& x : B) x = 0.3f * nd(rng);
  for (uint64_t r = 0; r < rows; ++r) {
    const float sc = scale(r);
    for (uint64_t g = 0; g < cols / 8; ++g) {
      const uint64_t i = rng() % 64, j = rng() % 64;
      for (uint64_t q = 0; q < 8; ++q) w[r * cols + g * 8 + q] = sc * (A[i * 8 + q] + B[j * 8 + q]);
    }
  }
  return w;
}

}  // namespace

// The kernel's emulation runs with the other kernels' (ctest -L gpu_emulation).
TEST_SUITE("gpu_emulation") {
  TEST_CASE("vq decoders: reference, fast and the kernel's threads write the same bytes; a code past K is refused") {
    std::mt19937_64 rng(11);
    struct Shape {
      uint64_t rows, cols;
      uint32_t d;
    };
    const Shape shapes[] = {{1, 2, 2}, {3, 8, 4}, {7, 64, 8}, {5, 6, 2}, {17, 40, 4}, {9, 5, 1}, {4, 16, 1}};
    size_t runs = 0;
    for (const Shape& sh : shapes)
      for (uint32_t k : {1u, 16u, 300u})
        for (unsigned cbytes : {1u, 2u})
          for (uint32_t shift : {0u, 1u, 2u})  // one book, or one per 2 or 4 rows (2.11)
           for (bool additive : {false, true}) {  // (2.11) k = k1 x k2 codes from k1 + k2 entries
            if (k > 256 && cbytes == 1) continue;
            const uint32_t k2 = additive ? (k == 1 ? 1 : k == 16 ? 4 : 20) : 0;
            const uint32_t per_book = k2 ? k / k2 + k2 : k;
            const uint64_t row0 = shift ? 5 : 0;  // a tile that starts inside a group of rows
            const uint64_t books = shift ? ((row0 + sh.rows - 1) >> shift) + 1 : 1;
            const uint64_t groups = sh.rows * (sh.cols / sh.d);
            std::vector<uint8_t> e(sh.rows), codes(groups * cbytes);
            for (auto& x : e) x = uint8_t(rng() % 256);
            for (uint64_t g = 0; g < groups; ++g) {
              const uint32_t u = uint32_t(rng() % k);
              codes[g * cbytes] = uint8_t(u);
              if (cbytes == 2) codes[g * 2 + 1] = uint8_t(u >> 8);
            }
            std::vector<float> cbv(books * per_book * sh.d);
            std::normal_distribution<float> nd(0.f, 2.f);
            for (auto& x : cbv) x = nd(rng);
            const auto cb = f32_bytes(cbv);
            const wc::vq::Books bk{cb.data(), k, sh.d, shift, row0, k2};
            for (DType out : {DType::BF16, DType::F16, DType::F32})
              for (int32_t B : {-20, -126, 0}) {
                CAPTURE(sh.rows);
                CAPTURE(sh.cols);
                CAPTURE(sh.d);
                CAPTURE(k);
                CAPTURE(cbytes);
                CAPTURE(shift);
                CAPTURE(k2);
                CAPTURE(B);
                const size_t n = sh.rows * sh.cols * (wc::dtype_bits(out) / 8);
                std::vector<uint8_t> ref(n, 1), fast(n, 2), emu(n, 3);
                REQUIRE(wc::vq::decode_rows_ref(B, e.data(), codes.data(), cbytes, bk, sh.rows, sh.cols, out,
                                                ref.data()));
                REQUIRE(wc::vq::decode_rows_fast(B, e.data(), codes.data(), cbytes, bk, sh.rows, sh.cols, out,
                                                 fast.data()));
                CHECK(ref == fast);
                uint32_t status = 0;
                const wc::vq::gpu::VqArgs a{B,       cbytes,         uint32_t(out), bk,         sh.rows, sh.cols,
                                            sh.rows * sh.cols, e.data(), codes.data(), emu.data(), &status};
                for (uint32_t blocks : {1u, 3u}) {
                  const uint64_t count = uint64_t(blocks) * wc::vq::gpu::kThreadsPerBlock;
                  for (uint64_t tI = 0; tI < count; ++tI) wc::vq::gpu::vq_thread(a, tI, count);
                  CHECK(status == 0);
                  CHECK(emu == ref);
                }
                ++runs;
              }
            // a code equal to K: every decoder refuses
            std::vector<uint8_t> bad = codes;
            bad[0] = uint8_t(k), bad[cbytes - 1] = cbytes == 2 ? uint8_t(k >> 8) : bad[0];
            if (cbytes == 1 && k > 255) continue;
            std::vector<uint8_t> o(sh.rows * sh.cols * 4);
            CHECK_FALSE(
                wc::vq::decode_rows_ref(0, e.data(), bad.data(), cbytes, bk, sh.rows, sh.cols, DType::F32, o.data()));
            CHECK_FALSE(
                wc::vq::decode_rows_fast(0, e.data(), bad.data(), cbytes, bk, sh.rows, sh.cols, DType::F32, o.data()));
            uint32_t status = 0;
            const wc::vq::gpu::VqArgs a{0,       uint32_t(cbytes), uint32_t(DType::F32), bk,      sh.rows,
                                        sh.cols, sh.rows * sh.cols, e.data(),           bad.data(), o.data(), &status};
            for (uint64_t tI = 0; tI < 256; ++tI) wc::vq::gpu::vq_thread(a, tI, 256);
            CHECK(status == 1);
          }
    CHECK(runs > 50);
  }

  TEST_CASE("vq additive books: code u is the binary32 sum of entry u / k2 of the first codebook and u mod k2 of the second") {
    // one book: k1 = 3 entries, then k2 = 2; d = 2; F32 out, step 1 (B = 0, e = 0)
    const std::vector<float> book = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 0.25f, 0.5f, 1e-8f, -7.f};
    const auto cb = f32_bytes(book);
    std::vector<uint8_t> codes;
    for (uint8_t u = 0; u < 6; ++u) codes.push_back(u);
    const std::vector<uint8_t> e(1, 0);
    std::vector<uint8_t> out(6 * 2 * 4);
    const wc::vq::Books b{cb.data(), 6, 2, 0, 0, 2};
    REQUIRE(wc::vq::decode_rows_ref(0, e.data(), codes.data(), 1, b, 1, 12, DType::F32, out.data()));
    std::vector<float> v(12);
    std::memcpy(v.data(), out.data(), out.size());
    const float step = wc::qrow::step_of(0, 0);
    for (uint32_t u = 0; u < 6; ++u)
      for (uint32_t q = 0; q < 2; ++q) {
        const float sum = book[(u / 2) * 2 + q] + book[(3 + u % 2) * 2 + q];
        CHECK(v[u * 2 + q] == step * sum);
      }
    codes[0] = 6;  // k1 x k2 = 6 codes: 6 is past them, though 5 entries are stored
    CHECK_FALSE(wc::vq::decode_rows_fast(0, e.data(), codes.data(), 1, b, 1, 12, DType::F32, out.data()));
  }

  TEST_CASE("vq books: each row decodes through its own book (shift), the tile's first row counted from row0") {
    // 4 rows, d = 1, K = 2, one book per 2 rows; every code 1: row r's value is book (row0 + r) >> 1's entry 1
    const std::vector<float> books = {0.f, 1.f, 0.f, 2.f, 0.f, 3.f, 0.f, 4.f};
    const auto cb = f32_bytes(books);
    const std::vector<uint8_t> e(4, 0), codes(4, 1);
    for (uint64_t row0 : {0u, 2u}) {
      std::vector<uint8_t> out(16);
      REQUIRE(wc::vq::decode_rows_fast(0, e.data(), codes.data(), 1, wc::vq::Books{cb.data(), 2, 1, 1, row0, 0}, 4, 1,
                                       DType::F32, out.data()));
      float v[4];
      std::memcpy(v, out.data(), 16);
      const float step = wc::qrow::step_of(0, 0);
      for (uint64_t r = 0; r < 4; ++r) CHECK(v[r] == step * books[((row0 + r) >> 1) * 2 + 1]);
    }
  }
}

TEST_SUITE("vq") {
  TEST_CASE("nearest entry: the AVX2 search picks the portable one's entry (ties, NaN and infinite distances)") {
    std::mt19937_64 rng(3);
    std::normal_distribution<float> nd(0.f, 1.f);
    const wc::vq::NearestFn fast = wc::vq::nearest_fn();
    wc::simd::force_simd_level(0);
    const wc::vq::NearestFn portable = wc::vq::nearest_fn();
    wc::simd::force_simd_level(-1);
    size_t checked = 0, nonzero = 0;
    for (uint32_t d : {1u, 2u, 3u, 4u, 8u})  // 3: the loop over any d
      for (uint32_t k : {1u, 7u, 8u, 9u, 64u, 256u, 300u})
        for (int trial = 0; trial < 40; ++trial) {
          std::vector<float> t(size_t(d) * k), v(d), w(d), dist(k);
          for (auto& x : t) x = nd(rng);
          for (auto& x : v) x = nd(rng);
          for (auto& x : w) x = std::fabs(nd(rng));
          const uint32_t kind = uint32_t(trial % 5);
          if (kind == 1 && k > 1)  // ties: entries copied over others, the nearest among them
            for (uint32_t e = 0; e < k; e += 3)
              for (uint32_t j = 0; j < d; ++j) t[size_t(j) * k + e] = t[size_t(j) * k + (e + k / 2) % k];
          if (kind == 2)  // NaN distances
            for (uint32_t e = 0; e < k; e += 2) t[e] = NAN;
          if (kind == 3)  // infinite distances (w x^2 overflows)
            for (uint32_t e = 0; e < k; e += 2) t[e] = 3e38f;
          if (kind == 4)  // every distance NaN or infinite: entry 0
            for (uint32_t e = 0; e < k; ++e) t[e] = e % 2 ? NAN : 3e38f;
          const uint32_t a = fast(v.data(), w.data(), t.data(), d, k, dist.data());
          const uint32_t b = portable(v.data(), w.data(), t.data(), d, k, dist.data());
          CHECK(a == b);
          ++checked, nonzero += b != 0;
        }
    CHECK(checked == 5 * 7 * 40);
    CHECK(nonzero > checked / 2);  // the answers are not all entry 0
  }


  TEST_CASE("k-means: a fixed seed gives the same codebook every time; it fits the data better than its start") {
    const uint64_t rows = 64, cols = 64;
    const auto data = testdata::weights(DType::BF16, rows * cols, 5);
    double rms_all = 0;
    const auto rms = wc::qrow::row_rms(DType::BF16, data.data(), rows, cols, &rms_all);
    const auto st = wc::vq::row_steps(rms, rms_all);
    std::vector<uint64_t> sample;
    for (uint64_t r = 0; r < rows; ++r) sample.push_back(r);
    const auto a = wc::vq::train(DType::BF16, data.data(), cols, st, sample, 4, 64, nullptr);
    const auto b = wc::vq::train(DType::BF16, data.data(), cols, st, sample, 4, 64, nullptr);
    CHECK(a.c == b.c);
    CHECK(a.k == 64);
    const auto a0 = wc::vq::train(DType::BF16, data.data(), cols, st, sample, 4, 64, nullptr, 0);  // k-means++ only
    const auto pa = wc::vq::evaluate(DType::BF16, data.data(), rows, cols, st, a, sample, nullptr, nullptr);
    const auto p0 = wc::vq::evaluate(DType::BF16, data.data(), rows, cols, st, a0, sample, nullptr, nullptr);
    MESSAGE("relative squared error: k-means++ start " << p0.relerr2 << ", after Lloyd " << pa.relerr2);
    CHECK(pa.relerr2 < p0.relerr2);
  }

  TEST_CASE("--scheme codebook: vq tensors (2.4), the same file on 1 and 2 threads, verified, unpacked to the hash") {
    tu::TempDir t;
    const std::string m = t / "m.safetensors";
    // 1024 x 480: two tiles, and no large codebook within its 1/4 bit a weight (they would train for seconds)
    tu::write_file(m, stb::build({{"a.weight", DType::BF16, {1024, 480}, testdata::weights(DType::BF16, 1024 * 480, 1)},
                                  {"b.weight", DType::F32, {64, 96}, testdata::weights(DType::F32, 64 * 96, 2)},
                                  {"odd.weight", DType::F16, {64, 33}, testdata::weights(DType::F16, 64 * 33, 3)}}));
    auto pack = [&](unsigned threads, const std::string& out) {
      wc::PackOptions po;
      po.bits = 2;
      po.threads = threads;
      po.force = true;
      po.scheme = "codebook";
      const auto r = wc::pack(m, out, po);
      CHECK(r.lossy_bits_per_weight <= 2.0);
      return tu::read_file(out);
    };
    const auto one = pack(1, t / "1.wcz");
    CHECK(one == pack(2, t / "2.wcz"));  // k-means and the codes do not depend on the thread count
    std::vector<wc::TensorSummary> sum;
    const auto ir = wc::inspect(t / "1.wcz", false, &sum);
    REQUIRE(sum.size() == 3);
    CHECK(sum[0].repr == "vq");
    CHECK(sum[1].repr == "vq");
    CHECK(sum[2].repr == "vq");
    CHECK(sum[2].codebook_dim == 1);  // 33 columns: only a scalar palette (d = 1, 2.11) divides them
    CHECK(ir.version_minor == 11);
    CHECK(sum[0].codebook_dim >= 1);  // inspect shows the codebook's size
    CHECK(sum[0].codebook_entries >= 4);
    const auto js = tu::run(tu::cli() + " inspect --json '" + (t / "1.wcz") + "'");
    CHECK(js.status == 0);
    CHECK(js.out.find("\"codebook\":{\"entries\":" + std::to_string(sum[0].codebook_entries)) != std::string::npos);
    CHECK(sum[0].rel_rmse > 0);
    CHECK(sum[0].rel_rmse < 0.6);
    CHECK(wc::verify(t / "1.wcz", "", 2, {}).files == 1);  // every reconstruction hash
    {
      wc::ContainerReader r(t / "1.wcz", wc::kReaderChecks);
      const auto& a = r.manifest().tensors[0];
      REQUIRE(a.parts.size() == 3);
      CHECK(a.parts[1].layout == wc::PartLayout::per_group);  // 2 tiles: codes chunked per group of d
      CHECK(a.parts[1].group == wc::vq_dim(a));
      CHECK(a.tile_count() == 2);
    }
    wc::UnpackOptions uo;
    wc::unpack(t / "1.wcz", t / "back.safetensors", uo);
  }

  TEST_CASE("additive books (2.11): weights that are sums of two codebooks' vectors come back nearly exact; the beam search finds the exhaustive search's codes") {
    // 1024 x 256 F32, rows of different scales
    const uint64_t rows = 1024, cols = 256;
    const auto w = sums_of_two_codebooks(rows, cols, 5, [](uint64_t r) { return 0.02f * std::exp2(float(r % 7) / 4); });
    const auto bytes = f32_bytes(w);
    double rms_all = 0;
    const auto rms = wc::qrow::row_rms(DType::F32, bytes.data(), rows, cols, &rms_all);
    const auto st = wc::vq::row_steps(rms, rms_all);
    std::vector<uint64_t> all(rows);
    for (uint64_t r = 0; r < rows; ++r) all[r] = r;
    const auto cb = wc::vq::train_additive(DType::F32, bytes.data(), cols, st, all, 8, 64, 64, nullptr);
    CHECK(cb.k == 4096);
    CHECK(cb.per_book() == 128);
    CHECK(cb.c == wc::vq::train_additive(DType::F32, bytes.data(), cols, st, all, 8, 64, 64, nullptr).c);
    const auto pt = wc::vq::evaluate(DType::F32, bytes.data(), rows, cols, st, cb, all, nullptr, nullptr);
    MESSAGE("additive 64+64 x8 on additive data: rel. squared error " << pt.relerr2);
    CHECK(pt.relerr2 < 0.02);
    // the beam search against the exhaustive search over the 4096 sums, on 16 rows
    constexpr uint64_t kRows = 16;
    std::vector<uint16_t> u(kRows * (cols / 8));
    wc::vq::encode_rows(DType::F32, bytes.data(), cols, 0, kRows, st, cb, nullptr, u.data());
    size_t same = 0;
    for (uint64_t r = 0; r < kRows; ++r) {
      const float step = wc::qrow::step_of(st.base_exp, st.e[r]);
      for (uint64_t g = 0; g < cols / 8; ++g) {
        float bd = INFINITY;
        uint32_t best = 0;
        for (uint32_t c = 0; c < cb.k; ++c) {
          float dd = 0;
          for (uint32_t q = 0; q < 8; ++q) {
            const float x = w[r * cols + g * 8 + q] / step - cb.value(r, c, q);
            dd += x * x;
          }
          if (dd < bd) bd = dd, best = c;
        }
        same += u[r * (cols / 8) + g] == best;
      }
    }
    MESSAGE("beam search = exhaustive search on " << same << " of " << kRows * (cols / 8) << " groups");
    CHECK(same >= kRows * (cols / 8) * 95 / 100);
  }

  TEST_CASE("--scheme codebook picks additive books where they win, and the file decodes to its hashes") {
    tu::TempDir t;
    const uint64_t rows = 640, cols = 256;  // 64 + 64 entries of 8 values: under 1/4 bit a weight
    const auto w = sums_of_two_codebooks(rows, cols, 9, [](uint64_t) { return 0.05f; });
    const std::string m = t / "m.safetensors";
    tu::write_file(m, stb::build({{"w.weight", DType::F32, {rows, cols}, f32_bytes(w)}}));
    wc::PackOptions po;
    po.bits = 1.75;
    po.threads = 2;
    po.force = true;
    po.scheme = "codebook";
    wc::pack(m, t / "a.wcz", po);
    std::vector<wc::TensorSummary> sum;
    const auto ir = wc::inspect(t / "a.wcz", false, &sum);
    REQUIRE(sum.size() == 1);
    CHECK(sum[0].repr == "vq");
    CHECK(sum[0].codebook_second == 64);  // 64 + 64 entries, 4096 codes
    CHECK(sum[0].codebook_entries == 4096);
    CHECK(ir.version_minor == 11);
    CHECK(wc::verify(t / "a.wcz", "", 2, {}).files == 1);
    {  // on data made of sums, the books beat scalar codes of the same budget
      wc::PackOptions q = po;
      q.scheme = "quant";
      wc::pack(m, t / "q.wcz", q);
      std::vector<wc::TensorSummary> qs;
      wc::inspect(t / "q.wcz", false, &qs);
      REQUIRE(qs.size() == 1);
      MESSAGE("rel. RMSE: additive books " << sum[0].rel_rmse << ", qrow " << qs[0].rel_rmse);
      CHECK(sum[0].rel_rmse < 0.8 * qs[0].rel_rmse);
    }
    po.threads = 1;
    wc::pack(m, t / "b.wcz", po);
    CHECK(tu::read_file(t / "a.wcz") == tu::read_file(t / "b.wcz"));
  }

  TEST_CASE("record rules: each broken alone is refused when the manifest is read") {
    wc::TensorRecord t;
    t.name = "w";
    t.dtype = DType::BF16;
    t.shape = {4, 8};
    t.repr = wc::kReprVq;
    t.chunk_size = 4;
    t.params = {0xF6, 0xFF, 4, 0};
    t.parts.assign(3, wc::PartRecord{});
    t.parts[0].role = wc::PartRole::scales, t.parts[0].item = DType::U8, t.parts[0].items = 4;
    t.parts[0].layout = wc::PartLayout::inline_items, t.parts[0].data.assign(4, 0);
    t.parts[1].role = wc::PartRole::codes, t.parts[1].item = DType::U8, t.parts[1].items = 8;
    t.parts[1].layout = wc::PartLayout::per_group, t.parts[1].group = 4, t.parts[1].codec = 2;
    t.parts[2].role = wc::PartRole::codebook, t.parts[2].item = DType::F32, t.parts[2].items = 8;
    t.parts[2].layout = wc::PartLayout::inline_items, t.parts[2].data.assign(32, 0);
    t.levels.assign(1, wc::LevelRecord{});
    CHECK_NOTHROW(wc::vq_check(t));
    {  // 2.11: two books (one per 2 rows), a scalar palette (d = 1), a tensor-wide codebook
      wc::TensorRecord b = t;
      b.params[3] = 1;
      b.parts[2].items = 16, b.parts[2].data.assign(64, 0);
      CHECK_NOTHROW(wc::vq_check(b));
      CHECK(wc::vq_books(b) == 2);
      CHECK(wc::vq_entries(b) == 2);
      b.params[2] = 1, b.parts[1].layout = wc::PartLayout::per_element, b.parts[1].group = 0, b.parts[1].items = 32;
      CHECK_NOTHROW(wc::vq_check(b));
      CHECK(wc::vq_entries(b) == 8);
      b.parts[2].layout = wc::PartLayout::tensor_wide, b.parts[2].codec = 2, b.parts[2].data.clear();
      b.parts[2].items = 2u << 16;  // K = 65536 in each of 2 books
      CHECK_NOTHROW(wc::vq_check(b));
      b.params = {0xF6, 0xFF, 1, 1, 0, 1};  // additive: each book 256 + 256 entries, K1 x K2 = 65536 codes
      b.parts[2].items = 2 * 512;
      CHECK_NOTHROW(wc::vq_check(b));
      CHECK(wc::vq_codes(b) == 65536);
      b.parts[2].items = 2 * 514;  // 258 + 256: 66048 codes, past 65536
      CHECK_THROWS_AS(wc::vq_check(b), wc::Error);
    }
    auto refused = [&](auto edit, const char* why) {
      CAPTURE(why);
      wc::TensorRecord b = t;
      edit(b);
      CHECK_THROWS_AS(wc::vq_check(b), wc::Error);
    };
    refused([](wc::TensorRecord& b) { b.params[2] = 3; }, "d = 3");
    refused([](wc::TensorRecord& b) { b.params[3] = 32; }, "book shift past 31");
    refused([](wc::TensorRecord& b) { b.params = {0xF6, 0xFF, 4, 0, 0, 0}; }, "additive with K2 = 0");
    refused([](wc::TensorRecord& b) { b.params = {0xF6, 0xFF, 4, 0, 2, 0}; }, "additive: K2 = 2 leaves K1 = 0");
    refused([](wc::TensorRecord& b) { b.params.resize(5); }, "5 parameter bytes");
    refused([](wc::TensorRecord& b) { b.params[3] = 1; b.parts[2].items = 12; b.parts[2].data.assign(48, 0); },
            "two books of 4 values each need a multiple of 8 values");
    refused([](wc::TensorRecord& b) { b.params[2] = 1; }, "d = 1 with codes per group");
    refused([](wc::TensorRecord& b) { b.parts[2].layout = wc::PartLayout::per_row; }, "codebook per row");
    refused([](wc::TensorRecord& b) { b.parts[2].items = 8u << 16; b.parts[2].layout = wc::PartLayout::tensor_wide; },
            "K = 131072, past 65536 entries");
    refused([](wc::TensorRecord& b) { b.params.resize(2); }, "qrow's 2-byte params");
    refused([](wc::TensorRecord& b) { b.shape = {4, 6}; }, "6 columns, d = 4");
    refused([](wc::TensorRecord& b) { b.parts[1].items = 32; }, "one code per element");
    refused([](wc::TensorRecord& b) { b.parts[1].layout = wc::PartLayout::per_element; }, "per element codes");
    refused([](wc::TensorRecord& b) { b.parts[2].item = DType::F16; }, "F16 codebook");
    refused([](wc::TensorRecord& b) { b.parts[2].items = 6; }, "codebook not K x d");
    refused([](wc::TensorRecord& b) { b.parts.pop_back(); }, "no codebook");
    refused([](wc::TensorRecord& b) { b.dtype = DType::I32; }, "I32");
    refused([](wc::TensorRecord& b) { b.parts[1].codec = 4; }, "codec 4");
  }
}
