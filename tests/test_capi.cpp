// The public C API: list tensors, decode tensors and chunks into our buffers.
#include <doctest/doctest.h>

#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/api.h"
#include "st_builder.h"
#include "test_util.h"
#include "wcodec/wcodec.h"

TEST_SUITE("capi") {
  TEST_CASE("open, list, decode tensor and chunk; errors are codes with messages") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {{"w", wc::DType::BF16, {300, 100}, stb::pattern_bytes(60000, 7)},
                                     {"b", wc::DType::F32, {7}, {}},
                                     {"e", wc::DType::F16, {0}, {}}};
    auto file = stb::build(ts);
    tu::write_file(t / "m.safetensors", file);
    wc::PackOptions po;
    po.chunk_size = 4096;
    wc::pack(t / "m.safetensors", t / "m.wcz", po);

    char err[256];
    wcodec_archive* a = nullptr;
    REQUIRE(wcodec_open((t / "m.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    REQUIRE(wcodec_tensor_count(a) == 3);
    size_t wi = 99;
    REQUIRE(wcodec_find_tensor(a, "w", &wi) == WCODEC_OK);
    wcodec_tensor_info info;
    REQUIRE(wcodec_get_tensor_info(a, wi, &info) == WCODEC_OK);
    CHECK(std::string(info.dtype) == "BF16");
    CHECK(info.rank == 2);
    CHECK(info.shape[0] == 300);
    CHECK(info.byte_size == 60000);
    CHECK(info.chunk_count == 15);
    CHECK(info.stored_size > 0);
    CHECK(wcodec_find_tensor(a, "nope", &wi) == WCODEC_E_USAGE);

    std::vector<uint8_t> out(info.byte_size);
    for (unsigned threads : {1u, 2u, 0u}) {
      std::fill(out.begin(), out.end(), 0);
      REQUIRE(wcodec_decode_tensor(a, 0, out.data(), out.size(), threads, err, sizeof err) == WCODEC_OK);
      CHECK(out == ts[0].bytes);
    }
    std::vector<uint8_t> c(info.chunk_size);
    REQUIRE(wcodec_decode_chunk(a, 0, 14, c.data(), c.size(), err, sizeof err) == WCODEC_OK);
    CHECK(std::equal(c.begin(), c.begin() + (60000 - 14 * 4096), ts[0].bytes.begin() + 14 * 4096));
    CHECK(wcodec_decode_chunk(a, 0, 15, c.data(), c.size(), err, sizeof err) == WCODEC_E_USAGE);
    CHECK(wcodec_decode_tensor(a, 0, out.data(), out.size() - 1, 1, err, sizeof err) == WCODEC_E_USAGE);
    CHECK(wcodec_decode_tensor(a, 2, nullptr, 0, 1, err, sizeof err) == WCODEC_OK);  // empty tensor
    wcodec_close(a);

    // A flipped payload bit: open succeeds (payloads are not read), decoding reports it.
    auto bytes = tu::read_file(t / "m.wcz");
    wc::ContainerReader r(t / "m.wcz", wc::kReaderChecks);
    bytes[r.index()[3].offset + 5] ^= 0x20;
    tu::write_file(t / "bad.wcz", bytes);
    REQUIRE(wcodec_open((t / "bad.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    CHECK(wcodec_decode_tensor(a, 0, out.data(), out.size(), 2, err, sizeof err) == WCODEC_E_CHECKSUM);
    CHECK(std::string(err).find("bad.wcz") != std::string::npos);
    CHECK(std::string(err).find("'w'") != std::string::npos);
    wcodec_close(a);
    CHECK(wcodec_open((t / "missing.wcz").c_str(), &a, err, sizeof err) == WCODEC_E_IO);
    CHECK(a == nullptr);
    CHECK(std::string(wcodec_error_name(WCODEC_E_CHECKSUM)) == "checksum mismatch");
  }
}
