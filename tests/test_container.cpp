// Library-level round trips: safetensors -> container -> identical bytes,
// through the file reader and the stream reader, for every dtype and codec.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <thread>

#include "format/reader.h"
#include "format/stream_reader.h"
#include "format/zframe.h"
#include "wcodec/wcodec.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/api.h"
#include "st_builder.h"
#include "test_util.h"
#include "weights_gen.h"

using wc::DType;

namespace {

std::vector<stb::StTensor> every_dtype() {
  std::vector<stb::StTensor> ts;
  for (int i = 0; i < wc::kDTypeCount; ++i) {
    auto d = static_cast<DType>(i);
    std::vector<uint64_t> shape = {3, 8};
    ts.push_back({"t." + std::string(wc::dtype_name(d)), d, shape, {}});
  }
  ts.push_back({"empty", DType::BF16, {0, 16}, {}});
  ts.push_back({"scalar", DType::F32, {}, {}});
  ts.push_back({"big", DType::BF16, {300, 257}, {}});  // several chunks at 4 KiB
  return ts;
}

// Unpacks through a pipe, as `wcodec unpack -` does, with the library's stream reader.
std::vector<uint8_t> unpack_via_stream_reader(const std::string& container) {
  auto bytes = tu::read_file(container);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::thread feeder([&] {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t w = ::write(fds[1], bytes.data() + off, std::min<size_t>(7777, bytes.size() - off));
      if (w <= 0) break;
      off += size_t(w);
    }
    ::close(fds[1]);
  });
  wc::StreamIn in(fds[0], "<pipe>");
  wc::ContainerStreamReader r(in, wc::kReaderChecks);
  const auto& m = r.manifest();
  std::vector<uint8_t> out = m.files.at(0).prefix;
  std::vector<uint8_t> stored;
  wc::ChunkEntry e;
  auto put = [&](const wc::TensorRecord& t, const std::vector<uint8_t>& payload, uint64_t raw_size) {
    std::vector<uint8_t> raw(raw_size);
    REQUIRE(wc::decode_chunk(static_cast<wc::CodecId>(t.codec), t.dtype, payload.data(), payload.size(), raw.data(),
                             raw.size()) == wc::Errc::ok);
    out.insert(out.end(), raw.begin(), raw.end());
  };
  uint32_t i = 0;
  for (const auto& t : m.tensors) {
    if (t.inline_exact()) put(t, t.payload, t.byte_size);  // its bytes came with the manifest
    for (uint32_t c = 0; c < t.chunk_count; ++c, ++i) {
      REQUIRE(r.next_chunk(stored, e));
      CHECK(&r.tensor_of_chunk(i) == &t);
      put(t, stored, e.raw_size);
    }
  }
  CHECK_FALSE(r.next_chunk(stored, e));
  r.finish();
  feeder.join();
  ::close(fds[0]);
  return out;
}

// Container `wcz` (in folder t) gives `file` back through every reader:
// unpack from the mapped file, the stream reader, and verify against the
// original at t/m.safetensors.
void check_every_reader(const tu::TempDir& t, const std::string& wcz, const std::vector<uint8_t>& file) {
  wc::UnpackOptions uo;
  uo.force = true;
  wc::unpack(wcz, t / "back.safetensors", uo);
  CHECK(tu::read_file(t / "back.safetensors") == file);
  CHECK(unpack_via_stream_reader(wcz) == file);
  CHECK(wc::verify(wcz, t / "m.safetensors", 2, {}).compared);
}

}  // namespace

TEST_SUITE("container") {
  TEST_CASE("every dtype, every codec, odd padding and key order round-trip") {
    tu::TempDir t;
    for (const char* codec : {"raw", "zstd", "float-ans", "auto"}) {
      for (int variant = 0; variant < 3; ++variant) {
        CAPTURE(codec);
        CAPTURE(variant);
        auto ts = every_dtype();
        stb::StOptions o;
        o.reverse_keys = variant == 1;
        o.padding = variant == 2 ? 13 : 0;
        o.align8 = variant == 0;
        if (variant != 1) o.metadata = {{"format", "pt"}, {"note", "h\u00e9llo \"q\""}};
        o.metadata_last = variant == 2;
        auto file = stb::build(ts, o);
        tu::write_file(t / "m.safetensors", file);
        wc::PackOptions po;
        po.codec = codec;
        po.chunk_size = 4096;
        po.force = true;
        po.threads = 2;
        auto pr = wc::pack(t / "m.safetensors", t / "m.wcz", po);
        CHECK(pr.input_bytes == file.size());
        check_every_reader(t, t / "m.wcz", file);
      }
    }
  }

  TEST_CASE("layout: payloads aligned, chunk sizes as chosen, index matches") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {{"a", DType::BF16, {1000, 3}, {}}, {"b", DType::U8, {5}, {}}};
    tu::write_file(t / "m.safetensors", stb::build(ts));
    wc::PackOptions po;
    po.codec = "raw";
    po.chunk_size = 1024;
    po.inline_small = "never";
    wc::pack(t / "m.safetensors", t / "m.wcz", po);
    wc::ContainerReader r(t / "m.wcz", wc::kReaderChecks);
    const auto& m = r.manifest();
    REQUIRE(m.tensors.size() == 2);
    CHECK(m.tensors[0].chunk_count == 6);  // 6000 bytes / 1024
    CHECK(m.tensors[1].chunk_count == 1);
    REQUIRE(r.index().size() == 7);
    for (uint32_t i = 0; i < r.index().size(); ++i) {
      CHECK(r.index()[i].offset % 64 == 0);
      CHECK(r.chunk(i).size() == r.index()[i].raw_size);  // raw codec
    }
    CHECK(r.index()[5].raw_size == 6000 - 5 * 1024);
    CHECK(r.file_size() == r.footer().file_size);
  }

  TEST_CASE("small tensors in the manifest (1.4, 2.5): where they pay, byte for byte through every reader") {
    tu::TempDir t;
    // a model of many tiny tensors (cellogpt's shape): auto puts them in the manifest
    std::vector<stb::StTensor> tiny;
    for (int i = 0; i < 40; ++i)
      tiny.push_back({"t" + std::to_string(i), i % 3 ? DType::F32 : DType::BF16, {4, uint64_t(16 + i)},
                      testdata::weights(i % 3 ? DType::F32 : DType::BF16, 4 * (16 + i), i)});
    tiny.push_back({"empty", DType::F32, {0}, {}});
    tiny.push_back({"big", DType::BF16, {256, 256}, testdata::weights(DType::BF16, 256 * 256, 99)});  // 128 KiB: chunks
    const auto file = stb::build(tiny);
    tu::write_file(t / "m.safetensors", file);
    uint64_t size[3] = {};
    for (const char* mode : {"never", "auto", "always"}) {
      CAPTURE(mode);
      wc::PackOptions po;
      po.inline_small = mode;
      po.pool = "never";  // inline payloads of their own (the pools' test is below)
      po.chunk_size = 64 << 10;
      po.force = true;
      const auto pr = wc::pack(t / "m.safetensors", t / "m.wcz", po);
      const int k = std::string(mode) == "never" ? 0 : std::string(mode) == "auto" ? 1 : 2;
      size[k] = pr.output_bytes;
      wc::ContainerReader r(t / "m.wcz", wc::kReaderChecks);
      const auto& m = r.manifest();
      CHECK(r.header().minor == (k ? 4 : 0));
      uint64_t inlined = 0, payload = 0;
      for (const auto& tr : m.tensors) inlined += tr.inline_exact(), payload += tr.payload.size();
      CHECK(inlined == (k ? 40 : 0));
      CHECK(m.tensors.back().chunk_count == 2);  // big keeps its chunks
      CHECK(r.index().size() == (k ? 2 : 42));
      // the stored bytes inspect reports count the records' payloads
      uint64_t chunks = 0;
      for (const auto& e : r.index()) chunks += e.stored_size;
      CHECK(wc::inspect(t / "m.wcz", false, nullptr).stored_payload == chunks + payload);
      check_every_reader(t, t / "m.wcz", file);
    }
    CHECK(size[1] == size[2]);
    CHECK(size[1] + 40 * 40 < size[0]);  // at least 40 bytes a tensor saved
    // one bias beside a large tensor: not worth a newer version under auto
    std::vector<stb::StTensor> few = {{"w", DType::BF16, {1024, 512}, testdata::weights(DType::BF16, 1024 * 512, 5)},
                                      {"b", DType::BF16, {512}, testdata::weights(DType::BF16, 512, 6)}};
    tu::write_file(t / "few.safetensors", stb::build(few));
    wc::pack(t / "few.safetensors", t / "few.wcz", {});
    CHECK(wc::ContainerReader(t / "few.wcz", wc::kReaderChecks).header().minor == 0);
    // a lossy file's exact tensors too (2.5)
    wc::PackOptions lo;
    lo.bits = 3;
    lo.min_elements = 1024;
    lo.inline_small = "always";
    wc::pack(t / "few.safetensors", t / "lossy.wcz", lo);
    wc::ContainerReader lr(t / "lossy.wcz", wc::kReaderChecks);
    CHECK(lr.header().major == 2);
    CHECK(lr.header().minor == 5);
    REQUIRE(lr.manifest().tensors.size() == 2);
    CHECK(lr.manifest().tensors[0].lossy());
    CHECK(lr.manifest().tensors[1].inline_exact());
    wc::unpack(t / "lossy.wcz", t / "lossy.safetensors", {});
    const auto back = tu::read_file(t / "lossy.safetensors");
    const auto orig = tu::read_file(t / "few.safetensors");
    REQUIRE(back.size() == orig.size());
    CHECK(std::equal(back.end() - 1024, back.end(), orig.end() - 1024));  // the bias, exact
    CHECK(wc::verify(t / "lossy.wcz", "", 2, {}).compared == false);
    // a bad --inline value is a usage error
    wc::PackOptions bad;
    bad.inline_small = "sometimes";
    CHECK_THROWS_AS(wc::pack(t / "few.safetensors", t / "x.wcz", bad), wc::Error);
  }

  TEST_CASE("sharded model: directory and index.json inputs restore every shard") {
    tu::TempDir t;
    REQUIRE(::mkdir((t / "model").c_str(), 0755) == 0);
    std::vector<stb::StTensor> s1 = {{"w1", DType::BF16, {64, 64}, {}}}, s2 = {{"w2", DType::F32, {33}, {}}};
    auto f1 = stb::build(s1), f2 = stb::build(s2);
    std::string idx = R"({"metadata": {"total_size": 8324}, "weight_map": {"w1": "model-00001-of-00002.safetensors", "w2": "model-00002-of-00002.safetensors"}})";
    tu::write_file(t / "model/model-00001-of-00002.safetensors", f1);
    tu::write_file(t / "model/model-00002-of-00002.safetensors", f2);
    tu::write_file(t / "model/model.safetensors.index.json", std::vector<uint8_t>(idx.begin(), idx.end()));
    for (std::string in : {t / "model", t / "model/model.safetensors.index.json"}) {
      CAPTURE(in);
      wc::PackOptions po;
      po.force = true;
      wc::pack(in, t / "m.wcz", po);
      wc::UnpackOptions uo;
      uo.force = true;
      wc::unpack(t / "m.wcz", t / "out", uo);
      CHECK(tu::read_file(t / "out/model-00001-of-00002.safetensors") == f1);
      CHECK(tu::read_file(t / "out/model-00002-of-00002.safetensors") == f2);
      CHECK(tu::read_file(t / "out/model.safetensors.index.json") == std::vector<uint8_t>(idx.begin(), idx.end()));
      CHECK(wc::verify(t / "m.wcz", t / "model", 1, {}).compared);
    }
  }

  TEST_CASE("existing output without force is refused and left untouched") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {{"a", DType::F16, {10}, {}}};
    tu::write_file(t / "m.safetensors", stb::build(ts));
    tu::write_file(t / "m.wcz", {1, 2, 3});
    try {
      wc::pack(t / "m.safetensors", t / "m.wcz", {});
      FAIL("pack overwrote an existing file");
    } catch (const wc::Error& e) {
      CHECK(e.code() == wc::Errc::exists);
      CHECK(e.describe().find("m.wcz") != std::string::npos);
    }
    CHECK(tu::read_file(t / "m.wcz") == std::vector<uint8_t>{1, 2, 3});
    CHECK(tu::temp_files(t.path).size() == 0);
  }

  TEST_CASE("verify --against finds a single differing byte and names its offset") {
    tu::TempDir t;
    std::vector<stb::StTensor> ts = {{"a", DType::BF16, {100}, {}}};
    auto f = stb::build(ts);
    tu::write_file(t / "m.safetensors", f);
    wc::pack(t / "m.safetensors", t / "m.wcz", {});
    f[f.size() - 7] ^= 1;
    tu::write_file(t / "other.safetensors", f);
    try {
      wc::verify(t / "m.wcz", t / "other.safetensors", 1, {});
      FAIL("difference not found");
    } catch (const wc::Error& e) {
      CHECK(e.code() == wc::Errc::mismatch);
      CHECK(e.offset() == f.size() - 7);
    }
  }

  TEST_CASE("pools (1.8, 2.13): tiny tensors of a dtype coded together, byte for byte through every reader") {
    tu::TempDir t;
    // a model of many tiny tensors of every dtype a pool takes, between
    // tensors no pool takes (I32, U8), an empty one and a chunked one
    std::vector<stb::StTensor> ts;
    const DType kinds[] = {DType::F16, DType::BF16, DType::F32, DType::F8_E4M3, DType::F8_E5M2};
    for (int i = 0; i < 60; ++i) {
      const DType d = kinds[i % 5];
      ts.push_back({"t" + std::to_string(i), d, {4, uint64_t(16 + i)}, testdata::weights(d, 4 * (16 + i), 100 + i)});
      if (i % 17 == 0) ts.push_back({"i" + std::to_string(i), DType::I32, {7}, {}});
    }
    ts.push_back({"empty", DType::F16, {0}, {}});
    ts.push_back({"big", DType::F16, {256, 256}, testdata::weights(DType::F16, 256 * 256, 99)});  // 128 KiB: chunks
    const auto file = stb::build(ts);
    tu::write_file(t / "m.safetensors", file);
    uint64_t size[2] = {};
    for (const char* mode : {"never", "auto"}) {
      CAPTURE(mode);
      const bool pooled = std::string(mode) == "auto";
      wc::PackOptions po;
      po.pool = mode;
      po.chunk_size = 64 << 10;
      po.force = true;
      size[pooled] = wc::pack(t / "m.safetensors", t / "m.wcz", po).output_bytes;
      check_every_reader(t, t / "m.wcz", file);
      wc::ContainerReader r(t / "m.wcz", wc::kReaderChecks);
      CHECK(r.header().minor == (pooled ? 8 : 4));  // 1.4: inline tensors
      // as stored (the container's rules alone, no pool decoded): codec 9,
      // no payload, one pool per dtype of tiny tensors
      const auto mb = tu::read_file(t / "m.wcz");
      const auto raw = wc::zframe_decompress(mb.data() + 64, r.header().manifest_stored, r.header().manifest_raw,
                                             "manifest", 64);
      const wc::Manifest stored = wc::decode_manifest(raw.data(), raw.size(), 64, {}, r.header().minor);
      uint64_t members = 0;
      for (const auto& tr : stored.tensors)
        if (tr.codec == wc::kCodecPooled) {
          ++members;
          CHECK(tr.inline_exact());
          CHECK(tr.payload.empty());
          CHECK(tr.pool < stored.pools.size());
        }
      // every tiny tensor of a dtype that has a pool is in it (the FP8 ones,
      // random bytes here, gain nothing pooled and keep their payloads)
      uint64_t of_pooled_dtypes = 0;
      for (const auto& tr : stored.tensors)
        for (const auto& q : stored.pools) of_pooled_dtypes += tr.inline_exact() && tr.dtype == q.dtype;
      CHECK(members == of_pooled_dtypes);
      CHECK(members == (pooled ? 36 : 0));  // F16, BF16 and F32: 12 each
      CHECK(stored.pools.size() == (pooled ? 3 : 0));
      // as a reader sees it: every member holds its bytes, its pool linked
      const auto& m = r.manifest();
      for (size_t i = 0; i < m.tensors.size(); ++i) {
        const auto& tr = m.tensors[i];
        CHECK(tr.codec != wc::kCodecPooled);
        if (tr.pool == UINT32_MAX) continue;
        CHECK(tr.codec == 0);
        CHECK(tr.payload.size() == tr.byte_size);
        CHECK(m.pools[tr.pool].dtype == tr.dtype);
      }
      // inspect names the pool's codec and spreads its payload over the members
      const auto ins = wc::inspect(t / "m.wcz", false, nullptr);
      uint64_t chunks = 0, shares = 0, pool_bytes = 0;
      for (const auto& e : r.index()) chunks += e.stored_size;
      for (const auto& tr : m.tensors) shares += tr.pool != UINT32_MAX ? tr.pool_share : tr.payload.size();
      for (const auto& q : m.pools) pool_bytes += q.payload.size();
      CHECK(ins.stored_payload == chunks + shares);
      if (pooled) {
        uint64_t member_shares = 0;
        for (const auto& tr : m.tensors) member_shares += tr.pool != UINT32_MAX ? tr.pool_share : 0;
        CHECK(member_shares == pool_bytes);
        bool named = false;
        for (const auto& g : ins.by_codec) named |= g.name.rfind("pooled:", 0) == 0;
        CHECK(named);
      }
      // the C API decodes a member as any tensor
      wcodec_archive* a = nullptr;
      REQUIRE(wcodec_open(std::string(t / "m.wcz").c_str(), &a, nullptr, 0) == WCODEC_OK);
      const auto& t7 = ts[8];  // t7 (F32; "i0" is ts[1])
      std::vector<uint8_t> got(t7.bytes.size());
      size_t idx = 0;
      REQUIRE(wcodec_find_tensor(a, t7.name.c_str(), &idx) == WCODEC_OK);
      CHECK(wcodec_decode_tensor(a, idx, got.data(), got.size(), 1, nullptr, 0) == WCODEC_OK);
      CHECK(got == t7.bytes);
      wcodec_close(a);
    }
    CHECK(size[1] < size[0]);  // the pools pay
    MESSAGE("pools: ", size[0], " -> ", size[1], " bytes");
  }
}

