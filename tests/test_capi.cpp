// The public C API: list files, tensors and metadata; decode tensors, row
// ranges and chunks into our buffers; pack, unpack and verify.
#include <doctest/doctest.h>

#include <cstddef>

#include <atomic>
#include <filesystem>
#include <thread>

#include "codec/float_ans.h"
#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/api.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"
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
    wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
    REQUIRE(wcodec_get_tensor_info(a, wi, &info) == WCODEC_OK);
    CHECK(std::string(info.dtype) == "BF16");
    CHECK(info.rank == 2);
    CHECK(info.shape[0] == 300);
    CHECK(info.byte_size == 60000);
    CHECK(info.chunk_count == 15);
    CHECK(info.stored_size > 0);
    CHECK(wcodec_find_tensor(a, "nope", &wi) == WCODEC_E_NOT_FOUND);

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
    // With chunk checksums off (a trusted file), the damaged chunk is not
    // caught by its hash: it decodes to other bytes or fails in the codec.
    REQUIRE(wcodec_set_verify_chunks(a, 0) == WCODEC_OK);
    const int rc_off = wcodec_decode_tensor(a, 0, out.data(), out.size(), 2, err, sizeof err);
    CHECK(rc_off != WCODEC_E_CHECKSUM);
    CHECK((rc_off != WCODEC_OK || out != ts[0].bytes));
    REQUIRE(wcodec_set_verify_chunks(a, 1) == WCODEC_OK);
    CHECK(wcodec_decode_tensor(a, 0, out.data(), out.size(), 2, err, sizeof err) == WCODEC_E_CHECKSUM);
    wcodec_close(a);
    CHECK(wcodec_open((t / "missing.wcz").c_str(), &a, err, sizeof err) == WCODEC_E_IO);
    CHECK(a == nullptr);
    CHECK(std::string(wcodec_error_name(WCODEC_E_CHECKSUM)) == "checksum mismatch");
  }

  TEST_CASE("a tensor stored in the manifest is one chunk to the API: info, plan, desc, chunk, rows, batch") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {
        {"w", wc::DType::BF16, {64, 256}, testdata::weights(wc::DType::BF16, 64 * 256, 1)},
        {"norm", wc::DType::BF16, {8, 64}, testdata::weights(wc::DType::BF16, 8 * 64, 2)},
        {"ids", wc::DType::I32, {10}, testdata::weights(wc::DType::F32, 10, 3)}};
    const auto file = stb::build(ts);
    tu::write_file(t / "m.safetensors", file);
    char err[256];
    wcodec_pack_options po = WCODEC_PACK_OPTIONS_INIT;
    po.inline_small = "always";
    po.chunk_size = 8192;
    REQUIRE(wcodec_pack((t / "m.safetensors").c_str(), (t / "m.wcz").c_str(), &po, nullptr, err, sizeof err) == WCODEC_OK);
    const wc::ContainerReader r(t / "m.wcz", wc::kReaderChecks);
    CHECK(r.header().minor == 4);
    CHECK(r.index().size() == 4);  // w only: 32 KiB in 8 KiB chunks
    wcodec_archive* a = nullptr;
    REQUIRE(wcodec_open((t / "m.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    const size_t all[] = {0, 1, 2};
    size_t n = 0;
    REQUIRE(wcodec_plan_chunks(a, all, 3, nullptr, 0, &n, err, sizeof err) == WCODEC_OK);
    REQUIRE(n == 6);
    std::vector<wcodec_chunk_desc> plan(n);
    REQUIRE(wcodec_plan_chunks(a, all, 3, plan.data(), n, &n, err, sizeof err) == WCODEC_OK);
    const auto stored = tu::read_file(t / "m.wcz");
    std::vector<uint8_t> ws(wcodec_workspace_size());
    for (size_t k = 1; k <= 2; ++k) {
      CAPTURE(k);
      const wc::TensorRecord& rec = r.manifest().tensors[k];
      REQUIRE(rec.inline_exact());
      wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
      REQUIRE(wcodec_get_tensor_info(a, k, &info) == WCODEC_OK);
      CHECK(info.chunk_count == 1);
      CHECK(info.chunk_size == info.byte_size);
      CHECK(info.stored_size == rec.payload.size());
      const wcodec_chunk_desc& d = plan[4 + k - 1];
      CHECK(d.tensor == k);
      CHECK(d.file_offset == WCODEC_OFFSET_INLINE);
      CHECK(d.stored_size == rec.payload.size());
      CHECK(d.dst_offset == 0);
      CHECK(d.dst_size == info.byte_size);
      const std::vector<uint8_t>& want = ts[k].bytes;
      std::vector<uint8_t> got(want.size());
      REQUIRE(wcodec_decode_desc(a, &d, nullptr, 0, got.data(), got.size(), ws.data(), ws.size(), err, sizeof err) ==
              WCODEC_OK);
      CHECK(got == want);
      // bytes offered for it are a caller's mistake: the archive holds them
      CHECK(wcodec_decode_desc(a, &d, stored.data(), d.stored_size, got.data(), got.size(), ws.data(), ws.size(), err,
                               sizeof err) == WCODEC_E_USAGE);
      CHECK(std::string(err).find("manifest") != std::string::npos);
      std::fill(got.begin(), got.end(), 0);
      REQUIRE(wcodec_decode_chunk_ws(a, k, 0, got.data(), got.size(), ws.data(), ws.size(), err, sizeof err) == WCODEC_OK);
      CHECK(got == want);
      std::fill(got.begin(), got.end(), 0);
      REQUIRE(wcodec_decode_chunk(a, k, 0, got.data(), got.size(), err, sizeof err) == WCODEC_OK);
      CHECK(got == want);
      CHECK(wcodec_decode_chunk(a, k, 1, got.data(), got.size(), err, sizeof err) == WCODEC_E_USAGE);
      CHECK(wcodec_decode_chunk(a, k, 0, got.data(), got.size() - 1, err, sizeof err) == WCODEC_E_USAGE);
      // rows 2..5 of it, through the chunk that holds them
      const uint64_t rb = info.row_bytes;
      std::vector<uint8_t> rows(3 * rb);
      REQUIRE(wcodec_decode_rows(a, k, 2, 5, nullptr, rows.data(), rows.size(), 1, err, sizeof err) == WCODEC_OK);
      CHECK(std::equal(rows.begin(), rows.end(), want.begin() + 2 * rb));
    }
    // the whole model in one batch equals the file's tensors
    std::vector<std::vector<uint8_t>> outs(3);
    std::vector<wcodec_decode_job> jobs(3);
    for (size_t k = 0; k < 3; ++k) {
      outs[k].assign(ts[k].bytes.size(), 0);
      jobs[k] = wcodec_decode_job{k, outs[k].data(), outs[k].size(), nullptr};
    }
    REQUIRE(wcodec_decode_tensors(a, jobs.data(), jobs.size(), 2, err, sizeof err) == WCODEC_OK);
    for (size_t k = 0; k < 3; ++k) CHECK(outs[k] == ts[k].bytes);
    wcodec_close(a);
  }

  TEST_CASE("files, metadata, open from memory, struct_size") {
    tu::TempDir t;
    stb::StOptions so;
    so.metadata = {{"format", "pt"}, {"note", "two"}};
    auto file = stb::build({{"a", wc::DType::F32, {4, 3}, {}}, {"b", wc::DType::U8, {5}, {}}}, so);
    tu::write_file(t / "m.safetensors", file);
    wc::pack(t / "m.safetensors", t / "m.wcz", {});
    auto bytes = tu::read_file(t / "m.wcz");
    char err[256];
    wcodec_archive* a = nullptr;
    REQUIRE(wcodec_open_memory(bytes.data(), bytes.size(), "mem.wcz", &a, err, sizeof err) == WCODEC_OK);
    REQUIRE(wcodec_file_count(a) == 1);
    wcodec_file_info fi = WCODEC_FILE_INFO_INIT;
    REQUIRE(wcodec_get_file_info(a, 0, &fi) == WCODEC_OK);
    CHECK(std::string(fi.name) == "m.safetensors");
    CHECK(std::string(fi.kind) == "safetensors");
    CHECK(fi.size == file.size());
    CHECK(fi.tensor_count == 2);
    REQUIRE(fi.metadata_count == 2);
    const char *k = nullptr, *v = nullptr;
    REQUIRE(wcodec_get_metadata(a, 0, 1, &k, &v) == WCODEC_OK);
    CHECK(std::string(k) == "note");
    CHECK(std::string(v) == "two");
    CHECK(wcodec_get_metadata(a, 0, 2, &k, &v) == WCODEC_E_USAGE);
    size_t f = 9;
    CHECK(wcodec_find_file(a, "m.safetensors", &f) == WCODEC_OK);
    CHECK(f == 0);
    CHECK(wcodec_find_file(a, "x.safetensors", &f) == WCODEC_E_NOT_FOUND);
    wcodec_tensor_info ti = WCODEC_TENSOR_INFO_INIT;
    REQUIRE(wcodec_get_tensor_info(a, 0, &ti) == WCODEC_OK);
    CHECK(ti.file == 0);
    CHECK(ti.rows == 4);
    CHECK(ti.row_bytes == 12);
    ti.struct_size = 8;  // a struct_size below the first release's: refused
    CHECK(wcodec_get_tensor_info(a, 0, &ti) == WCODEC_E_USAGE);
    // A bad argument writes a message too.
    err[0] = 'x';
    CHECK(wcodec_decode_tensor(a, 7, nullptr, 0, 1, err, sizeof err) == WCODEC_E_USAGE);
    CHECK(std::string(err).find("no such tensor") != std::string::npos);
    wcodec_close(a);
    // Bytes that are no container: an error naming the memory buffer.
    std::vector<uint8_t> junk(200, 7);
    CHECK(wcodec_open_memory(junk.data(), junk.size(), "junk", &a, err, sizeof err) != WCODEC_OK);
    CHECK(a == nullptr);
    CHECK(std::string(err).find("junk") != std::string::npos);
  }

  TEST_CASE("row ranges decode only the chunks that hold them, exact and lossy") {
    tu::TempDir t;
    // exact: 300 rows of 100 BF16 (200 bytes), chunks of 4096 bytes
    std::vector<stb::StTensor> ts = {{"w", wc::DType::BF16, {300, 100}, stb::pattern_bytes(60000, 7)},
                                     {"q", wc::DType::BF16, {8192, 64}, testdata::weights(wc::DType::BF16, 8192 * 64, 3)}};
    tu::write_file(t / "m.safetensors", stb::build(ts));
    wcodec_pack_options po = WCODEC_PACK_OPTIONS_INIT;
    po.chunk_size = 4096;
    po.threads = 2;
    char err[256];
    REQUIRE(wcodec_pack((t / "m.safetensors").c_str(), (t / "m.wcz").c_str(), &po, nullptr, err, sizeof err) == WCODEC_OK);
    po.bits = 4;
    po.keep = "^w$";
    wcodec_pack_result pr = WCODEC_PACK_RESULT_INIT;
    REQUIRE(wcodec_pack((t / "m.safetensors").c_str(), (t / "l.wcz").c_str(), &po, &pr, err, sizeof err) == WCODEC_OK);
    CHECK(pr.lossy_tensors == 1);
    CHECK(pr.output_bytes == tu::read_file(t / "l.wcz").size());

    wcodec_archive* a = nullptr;
    REQUIRE(wcodec_open((t / "m.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    std::vector<uint8_t> rows(200 * 30);
    const uint64_t before = wcodec_chunks_decoded(a);
    // rows 40..70: bytes 8000..14000 lie in chunks 1, 2, 3 (4096-byte chunks)
    REQUIRE(wcodec_decode_rows(a, 0, 40, 70, nullptr, rows.data(), rows.size(), 2, err, sizeof err) == WCODEC_OK);
    CHECK(wcodec_chunks_decoded(a) - before == 3);
    CHECK(std::equal(rows.begin(), rows.end(), ts[0].bytes.begin() + 8000));
    CHECK(wcodec_decode_rows(a, 0, 40, 301, nullptr, rows.data(), rows.size(), 2, err, sizeof err) == WCODEC_E_USAGE);
    CHECK(wcodec_decode_rows(a, 0, 40, 71, nullptr, rows.data(), rows.size(), 2, err, sizeof err) == WCODEC_E_USAGE);
    CHECK(wcodec_decode_rows(a, 0, 5, 5, nullptr, nullptr, 0, 2, err, sizeof err) == WCODEC_OK);
    // every range of a few sizes equals the slice of the whole tensor
    for (uint64_t r0 : {0u, 1u, 20u, 299u})
      for (uint64_t r1 : {r0 + 1, std::min<uint64_t>(r0 + 41, 300), uint64_t(300)}) {
        std::vector<uint8_t> got((r1 - r0) * 200);
        REQUIRE(wcodec_decode_rows(a, 0, r0, r1, nullptr, got.data(), got.size(), 0, err, sizeof err) == WCODEC_OK);
        CHECK(std::equal(got.begin(), got.end(), ts[0].bytes.begin() + r0 * 200));
      }
    wcodec_close(a);

    REQUIRE(wcodec_open((t / "l.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    size_t qi = 0;
    REQUIRE(wcodec_find_tensor(a, "q", &qi) == WCODEC_OK);
    wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
    REQUIRE(wcodec_get_tensor_info(a, qi, &info) == WCODEC_OK);
    const std::string repr = info.representation;
    REQUIRE((repr == "qrow" || repr == "qrow-outliers"));  // the test data has 1% large values: auto keeps some
    std::vector<uint8_t> whole(info.byte_size);
    REQUIRE(wcodec_decode_tensor(a, qi, whole.data(), whole.size(), 1, err, sizeof err) == WCODEC_OK);
    const uint64_t tile = info.chunk_size;  // rows per tile
    const uint64_t before_l = wcodec_chunks_decoded(a);
    std::vector<uint8_t> part(10 * info.row_bytes);
    REQUIRE(info.rows >= 2 * tile);  // at least two tiles
    const uint64_t r0 = tile + 3;     // inside the second tile
    REQUIRE(wcodec_decode_rows(a, qi, r0, r0 + 10, nullptr, part.data(), part.size(), 1, err, sizeof err) == WCODEC_OK);
    CHECK(std::equal(part.begin(), part.end(), whole.begin() + r0 * info.row_bytes));
    const uint64_t per_tile = before_l / (info.rows / tile + (info.rows % tile != 0));
    CHECK(wcodec_chunks_decoded(a) - before_l == per_tile);  // one tile's parts
    // F32 output of the same rows equals the F32 decode of the whole tensor
    std::vector<uint8_t> whole32(info.rows * 64 * 4), part32(10 * 64 * 4);
    REQUIRE(wcodec_decode_tensor_ex(a, qi, WCODEC_LEVEL_TOP, "F32", whole32.data(), whole32.size(), 2, err, sizeof err) == WCODEC_OK);
    REQUIRE(wcodec_decode_rows(a, qi, r0, r0 + 10, "F32", part32.data(), part32.size(), 1, err, sizeof err) == WCODEC_OK);
    CHECK(std::equal(part32.begin(), part32.end(), whole32.begin() + r0 * 64 * 4));
    wcodec_close(a);
  }

  TEST_CASE("batch decode equals one-by-one; pack from memory, unpack and verify") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts;
    for (int i = 0; i < 12; ++i)
      ts.push_back({"t" + std::to_string(i), i % 2 ? wc::DType::F16 : wc::DType::BF16, {uint64_t(16 + i), 64},
                    testdata::weights(i % 2 ? wc::DType::F16 : wc::DType::BF16, (16 + i) * 64, i)});
    auto file = stb::build(ts);
    tu::write_file(t / "m.safetensors", file);
    char err[256];
    wcodec_pack_result pr = WCODEC_PACK_RESULT_INIT;
    wcodec_pack_options chunked = WCODEC_PACK_OPTIONS_INIT;  // tensors this small would lie in the manifest
    chunked.inline_small = "never";
    REQUIRE(wcodec_pack((t / "m.safetensors").c_str(), nullptr, &chunked, &pr, err, sizeof err) == WCODEC_OK);
    CHECK(pr.input_bytes == file.size());
    REQUIRE(wcodec_pack_memory(file.data(), file.size(), "m.safetensors", (t / "mem.wcz").c_str(), &chunked, nullptr, err,
                               sizeof err) == WCODEC_OK);
    CHECK(tu::read_file(t / "mem.wcz") == tu::read_file(t / "m.safetensors.wcz"));  // the same bytes as from the file
    CHECK(wcodec_pack_memory(file.data(), file.size(), "m.safetensors", (t / "mem.wcz").c_str(), nullptr, nullptr, err,
                             sizeof err) == WCODEC_E_EXISTS);
    CHECK(wcodec_pack_memory(file.data(), 5, "m.safetensors", (t / "short.wcz").c_str(), nullptr, nullptr, err,
                             sizeof err) == WCODEC_E_BAD_SAFETENSORS);
    CHECK(std::string(err).find("<memory>") != std::string::npos);
    CHECK(!std::filesystem::exists(t / "short.wcz"));

    wcodec_archive* a = nullptr;
    REQUIRE(wcodec_open((t / "mem.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    std::vector<std::vector<uint8_t>> outs(ts.size());
    std::vector<wcodec_decode_job> jobs;
    for (size_t i = 0; i < ts.size(); ++i) {
      outs[i].resize(ts[i].bytes.size());
      jobs.push_back({i, outs[i].data(), outs[i].size(), nullptr});
    }
    REQUIRE(wcodec_decode_tensors(a, jobs.data(), jobs.size(), 2, err, sizeof err) == WCODEC_OK);
    for (size_t i = 0; i < ts.size(); ++i) CHECK(outs[i] == ts[i].bytes);
    // On the caller's threads: an executor that runs the tasks on two threads of its own.
    for (auto& o : outs) std::fill(o.begin(), o.end(), 0);
    struct Calls {
      std::atomic<size_t> tasks{0};
      size_t runs = 0;
    } calls;
    auto two_threads = [](void* ctx, size_t n, wcodec_task_fn task, void* arg) {
      auto* c = static_cast<Calls*>(ctx);
      ++c->runs;
      std::atomic<size_t> next{0};
      auto loop = [&] {
        for (size_t i; (i = next.fetch_add(1)) < n;) {
          task(arg, i);
          c->tasks.fetch_add(1);
        }
      };
      std::thread t1(loop);
      loop();
      t1.join();
    };
    REQUIRE(wcodec_decode_tensors_exec(a, jobs.data(), jobs.size(), two_threads, &calls, err, sizeof err) == WCODEC_OK);
    CHECK(calls.runs == 1);
    CHECK(calls.tasks >= ts.size());  // at least one task a tensor
    for (size_t i = 0; i < ts.size(); ++i) CHECK(outs[i] == ts[i].bytes);
    CHECK(wcodec_decode_tensors_exec(a, jobs.data(), jobs.size(), nullptr, nullptr, err, sizeof err) == WCODEC_E_USAGE);
    jobs[3].dst_len -= 1;
    CHECK(wcodec_decode_tensors(a, jobs.data(), jobs.size(), 2, err, sizeof err) == WCODEC_E_USAGE);
    CHECK(std::string(err).find("'t3'") != std::string::npos);
    wcodec_close(a);

    char written[512];
    REQUIRE(wcodec_unpack((t / "mem.wcz").c_str(), (t / "out.safetensors").c_str(), 2, 0, written, sizeof written, err,
                          sizeof err) == WCODEC_OK);
    CHECK(std::string(written) == t / "out.safetensors");
    CHECK(tu::read_file(t / "out.safetensors") == file);
    CHECK(wcodec_unpack((t / "mem.wcz").c_str(), (t / "out.safetensors").c_str(), 2, 0, written, sizeof written, err,
                        sizeof err) == WCODEC_E_EXISTS);
    REQUIRE(wcodec_unpack_file((t / "mem.wcz").c_str(), "m.safetensors", (t / "one.safetensors").c_str(), 1, 0, written,
                               sizeof written, err, sizeof err) == WCODEC_OK);
    CHECK(tu::read_file(t / "one.safetensors") == file);
    CHECK(wcodec_unpack_file((t / "mem.wcz").c_str(), "config.json", nullptr, 1, 0, nullptr, 0, err, sizeof err) ==
          WCODEC_E_USAGE);
    // pack into a folder: the default name inside it, as the tool does
    std::filesystem::create_directory(t / "into");
    REQUIRE(wcodec_pack((t / "m.safetensors").c_str(), (t / "into").c_str(), &chunked, nullptr, err, sizeof err) == WCODEC_OK);
    CHECK(tu::read_file(t / "into/m.safetensors.wcz") == tu::read_file(t / "m.safetensors.wcz"));
    uint64_t chunks = 0, nbytes = 0;
    REQUIRE(wcodec_verify((t / "mem.wcz").c_str(), 2, &chunks, &nbytes, err, sizeof err) == WCODEC_OK);
    CHECK(chunks >= ts.size());
    auto bad = tu::read_file(t / "mem.wcz");
    wc::ContainerReader r(t / "mem.wcz", wc::kReaderChecks);
    bad[r.index()[5].offset + 3] ^= 1;
    tu::write_file(t / "bad.wcz", bad);
    CHECK(wcodec_verify((t / "bad.wcz").c_str(), 2, &chunks, &nbytes, err, sizeof err) == WCODEC_E_CHECKSUM);
    // a task that fails on the caller's threads is reported once all have run
    REQUIRE(wcodec_open((t / "bad.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    size_t ran = 0;
    auto serial = [](void* ctx, size_t n, wcodec_task_fn task, void* arg) {
      for (size_t i = 0; i < n; ++i) task(arg, i), ++*static_cast<size_t*>(ctx);
    };
    jobs[3].dst_len += 1;
    CHECK(wcodec_decode_tensors_exec(a, jobs.data(), jobs.size(), serial, &ran, err, sizeof err) == WCODEC_E_CHECKSUM);
    CHECK(ran >= ts.size());
    CHECK(std::string(err).find("bad.wcz") != std::string::npos);
    wcodec_close(a);
    CHECK(std::string(err).find("bad.wcz") != std::string::npos);
  }

  TEST_CASE("pack options: scheme picks the lossy representation; an older struct_size leaves it at auto") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {{"w", wc::DType::BF16, {256, 256}, testdata::weights(wc::DType::BF16, 256 * 256, 8)}};
    tu::write_file(t / "m.safetensors", stb::build(ts));
    char err[256];
    auto repr_of = [&](const std::string& out) {
      wcodec_archive* a = nullptr;
      REQUIRE(wcodec_open(out.c_str(), &a, err, sizeof err) == WCODEC_OK);
      wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
      REQUIRE(wcodec_get_tensor_info(a, 0, &info) == WCODEC_OK);
      const std::string r = info.representation;
      wcodec_close(a);
      return r;
    };
    for (const char* scheme : {"quant", "outliers"}) {
      wcodec_pack_options po = WCODEC_PACK_OPTIONS_INIT;
      po.bits = 4;
      po.scheme = scheme;
      const std::string out = t / (std::string(scheme) + ".wcz");
      REQUIRE(wcodec_pack((t / "m.safetensors").c_str(), out.c_str(), &po, nullptr, err, sizeof err) == WCODEC_OK);
      CHECK(repr_of(out) == (std::string(scheme) == "quant" ? "qrow" : "qrow-outliers"));
    }
    // a caller built before `scheme` existed: the field is not read (auto)
    wcodec_pack_options old = WCODEC_PACK_OPTIONS_INIT;
    old.struct_size = offsetof(wcodec_pack_options, scheme);
    old.bits = 4;
    old.scheme = "nope";
    REQUIRE(wcodec_pack((t / "m.safetensors").c_str(), (t / "old.wcz").c_str(), &old, nullptr, err, sizeof err) ==
            WCODEC_OK);
    old.struct_size = sizeof old;
    CHECK(wcodec_pack((t / "m.safetensors").c_str(), (t / "x.wcz").c_str(), &old, nullptr, err, sizeof err) ==
          WCODEC_E_USAGE);
    CHECK(std::string(err).find("nope") != std::string::npos);
  }

  TEST_CASE("--parallel gpu lays float-ans out in sub-streams of 2^9 symbols; the bytes come back") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {{"w", wc::DType::BF16, {512, 256}, testdata::weights(wc::DType::BF16, 512 * 256, 4)}};
    tu::write_file(t / "m.safetensors", stb::build(ts));
    char err[256];
    for (const char* par : {"cpu", "gpu"}) {
      wcodec_pack_options po = WCODEC_PACK_OPTIONS_INIT;
      po.parallel = par;
      const std::string out = t / (std::string(par) + ".wcz");
      REQUIRE(wcodec_pack((t / "m.safetensors").c_str(), out.c_str(), &po, nullptr, err, sizeof err) == WCODEC_OK);
      wc::ContainerReader r(out, wc::kReaderChecks);
      const auto& tr = r.manifest().tensors[0];
      REQUIRE(tr.codec == uint8_t(wc::CodecId::float_ans));
      wc::fans::ChunkInfo ci{};
      const auto sp = r.chunk(tr.global_chunk(0));
      REQUIRE(wc::fans::chunk_info(tr.dtype, sp.data(), sp.size(), tr.chunk_raw_size(0), &ci));
      CHECK(ci.sub_bits == (std::string(par) == "gpu" ? 9u : 12u));
      wcodec_archive* a = nullptr;
      REQUIRE(wcodec_open(out.c_str(), &a, err, sizeof err) == WCODEC_OK);
      std::vector<uint8_t> got(ts[0].bytes.size());
      REQUIRE(wcodec_decode_tensor(a, 0, got.data(), got.size(), 2, err, sizeof err) == WCODEC_OK);
      CHECK(got == ts[0].bytes);
      wcodec_close(a);
    }
    wcodec_pack_options bad = WCODEC_PACK_OPTIONS_INIT;
    bad.parallel = "tpu";
    CHECK(wcodec_pack((t / "m.safetensors").c_str(), (t / "x.wcz").c_str(), &bad, nullptr, err, sizeof err) ==
          WCODEC_E_USAGE);
    CHECK(std::string(err).find("tpu") != std::string::npos);
  }
}
