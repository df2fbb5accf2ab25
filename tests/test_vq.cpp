// vq (spec/VQ.md): the decoders (reference, fast, the CUDA kernel's CPU
// emulation) agree bit for bit; k-means is deterministic; --scheme codebook
// packs, verifies and unpacks to the stored reconstruction; the per-group
// layout and the record rules.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "format/reader.h"
#include "gpu/vq_kernel_body.h"
#include "lib/api.h"
#include "lib/reader_checks.h"
#include "quant/qrow.h"
#include "quant/qrow_math.h"
#include "quant/vq.h"
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
          for (uint32_t shift : {0u, 1u, 2u}) {  // one book, or one per 2 or 4 rows (2.11)
            if (k > 256 && cbytes == 1) continue;
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
            std::vector<float> cbv(books * k * sh.d);
            std::normal_distribution<float> nd(0.f, 2.f);
            for (auto& x : cbv) x = nd(rng);
            const auto cb = f32_bytes(cbv);
            const wc::vq::Books bk{cb.data(), k, sh.d, shift, row0};
            for (DType out : {DType::BF16, DType::F16, DType::F32})
              for (int32_t B : {-20, -126, 0}) {
                CAPTURE(sh.rows);
                CAPTURE(sh.cols);
                CAPTURE(sh.d);
                CAPTURE(k);
                CAPTURE(cbytes);
                CAPTURE(shift);
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

  TEST_CASE("vq books: each row decodes through its own book (shift), the tile's first row counted from row0") {
    // 4 rows, d = 1, K = 2, one book per 2 rows; every code 1: row r's value is book (row0 + r) >> 1's entry 1
    const std::vector<float> books = {0.f, 1.f, 0.f, 2.f, 0.f, 3.f, 0.f, 4.f};
    const auto cb = f32_bytes(books);
    const std::vector<uint8_t> e(4, 0), codes(4, 1);
    for (uint64_t row0 : {0u, 2u}) {
      std::vector<uint8_t> out(16);
      REQUIRE(wc::vq::decode_rows_fast(0, e.data(), codes.data(), 1, wc::vq::Books{cb.data(), 2, 1, 1, row0}, 4, 1,
                                       DType::F32, out.data()));
      float v[4];
      std::memcpy(v, out.data(), 16);
      const float step = wc::qrow::step_of(0, 0);
      for (uint64_t r = 0; r < 4; ++r) CHECK(v[r] == step * books[((row0 + r) >> 1) * 2 + 1]);
    }
  }
}

TEST_SUITE("vq") {

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
    tu::write_file(m, stb::build({{"a.weight", DType::BF16, {1024, 512}, testdata::weights(DType::BF16, 1024 * 512, 1)},
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
    }
    auto refused = [&](auto edit, const char* why) {
      CAPTURE(why);
      wc::TensorRecord b = t;
      edit(b);
      CHECK_THROWS_AS(wc::vq_check(b), wc::Error);
    };
    refused([](wc::TensorRecord& b) { b.params[2] = 3; }, "d = 3");
    refused([](wc::TensorRecord& b) { b.params[3] = 32; }, "book shift past 31");
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
