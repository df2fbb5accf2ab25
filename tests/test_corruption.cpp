// Corruption matrix: every bit of a small container's header, manifest, index
// and footer flipped, every chunk header bit, every padding byte, a sample of
// payload bits, and a truncation at every length. Each case must end in a
// clean wc::Error from verify and unpack (no output, no temporary left) and
// from inspect wherever the header, manifest, index or footer is hit. Then the
// same discipline for pack fed malformed safetensors files.
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "codec/codec.h"
#include "platform/error.h"
#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/api.h"
#include "st_builder.h"
#include "weights_gen.h"
#include "test_util.h"

using wc::DType;
using wc::Errc;

namespace {

using TmpDir = tu::TempDir;

using tu::read_bytes;

using tu::exists;

using tu::temp_files;

void pwrite_byte(const std::string& p, uint64_t off, uint8_t v) {
  int fd = ::open(p.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, &v, 1, off_t(off)) == 1);
  ::close(fd);
}

using testdata::weights;

std::vector<uint8_t> corruption_model() {
  std::vector<stb::StTensor> ts = {
      {"model.embed_tokens.weight", DType::BF16, {32, 40}, weights(DType::BF16, 1280, 1)},
      {"model.layers.0.self_attn.q_proj.weight", DType::BF16, {24, 24}, weights(DType::BF16, 576, 2)},
      {"model.layers.0.input_layernorm.weight", DType::F32, {40}, weights(DType::F32, 40, 3)},
      {"model.layers.0.mlp.bias", DType::U8, {70}, {}},
      {"empty", DType::I32, {0, 4}, {}},
      {"scalar", DType::F64, {}, {}},
  };
  return stb::build(ts, {.align8 = true, .metadata = {{"format", "pt"}}});
}

// Where each byte of a container belongs.
enum Region { kHeader, kManifest, kIndex, kFooter, kChunkHeader, kPayload, kPadding, kRegions };
const char* const kRegionName[] = {"header", "manifest", "index", "footer", "chunk header", "payload", "padding"};

std::vector<Region> map_regions(const std::string& path) {
  wc::ContainerReader r(path, wc::kReaderChecks);
  uint64_t n = r.file_size();
  std::vector<Region> reg(n, kPadding);
  auto fill = [&](uint64_t a, uint64_t b, Region x) {
    for (uint64_t k = a; k < b; ++k) reg[k] = x;
  };
  fill(0, wc::kHeaderSize, kHeader);
  fill(wc::kHeaderSize, wc::kHeaderSize + r.header().manifest_stored, kManifest);
  fill(r.footer().index_offset, n - wc::kFooterSize, kIndex);
  fill(n - wc::kFooterSize, n, kFooter);
  for (const auto& e : r.index()) {
    fill(e.offset - wc::kChunkHeaderSize, e.offset, kChunkHeader);
    fill(e.offset, e.offset + e.stored_size, kPayload);
  }
  return reg;
}

struct Tally {
  uint64_t tried = 0, detected = 0;
  uint64_t by_region_tried[kRegions] = {}, by_region_detected[kRegions] = {};
  uint64_t inspect_checked = 0, unpack_checked = 0;
  std::vector<std::string> problems;  // first few failures, for the report
  void problem(const std::string& s) {
    if (problems.size() < 20) problems.push_back(s);
  }
};

// Runs verify, unpack and (when `want_inspect`) inspect on `path`; each must
// throw a wc::Error naming the file; unpack must leave nothing behind.
void expect_all_fail(const TmpDir& d, const std::string& path, bool want_inspect, const std::string& what, Tally& t,
                     int region) {
  ++t.tried;
  if (region >= 0) ++t.by_region_tried[region];
  bool ok = true;
  try {
    wc::verify(path, "", 1, {});
    ok = false;
    t.problem(what + ": verify reported success");
  } catch (const wc::Error& e) {
    if (e.code() == Errc::ok || e.file() != path) {
      ok = false;
      t.problem(what + ": verify error does not name the file: " + e.describe());
    }
  }
  std::string out = d / "out.safetensors";
  try {
    wc::UnpackOptions uo;
    uo.threads = 1;
    wc::unpack(path, out, uo);
    ok = false;
    t.problem(what + ": unpack reported success");
  } catch (const wc::Error& e) {
    if (e.file().empty()) {
      ok = false;
      t.problem(what + ": unpack error names no file: " + e.describe());
    }
  }
  ++t.unpack_checked;
  if (exists(out)) {
    ok = false;
    t.problem(what + ": unpack left an output file");
    ::unlink(out.c_str());
  }
  if (!temp_files(d.path).empty()) {
    ok = false;
    t.problem(what + ": a temporary file was left behind");
  }
  if (want_inspect) {
    ++t.inspect_checked;
    try {
      wc::inspect(path, false, nullptr);
      ok = false;
      t.problem(what + ": inspect reported success");
    } catch (const wc::Error& e) {
      if (e.file() != path) {
        ok = false;
        t.problem(what + ": inspect error does not name the file: " + e.describe());
      }
    }
  }
  if (ok) {
    ++t.detected;
    if (region >= 0) ++t.by_region_detected[region];
  }
}

std::string pack_small(const TmpDir& d, const std::string& st, const std::string& codec) {
  std::string out = d / ("m_" + codec + ".wcz");
  wc::PackOptions po;
  po.threads = 1;
  po.codec = codec;
  po.chunk_size = 512;
  wc::pack(st, out, po);
  return out;
}

std::vector<std::string> codecs_available() {
  std::vector<std::string> v = {"raw", "zstd"};
  if (wc::codec_supports(wc::CodecId::float_ans, DType::BF16)) v.push_back("float-ans");
  return v;
}

struct CliResult {
  int status = -1;
  std::string err;
};

// Runs the CLI with stdin from `in` ("" = /dev/null) and stdout to /dev/null.
CliResult run_cli(const TmpDir& d, const std::vector<std::string>& args, const std::string& in = "") {
  std::string errp = d / "cli.stderr";
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int i = ::open(in.empty() ? "/dev/null" : in.c_str(), O_RDONLY);
    int o = ::open("/dev/null", O_WRONLY);
    int e = ::open(errp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (i < 0 || o < 0 || e < 0) ::_exit(127);
    ::dup2(i, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    std::string exe = WCODEC_CLI_PATH;
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  CliResult r;
  r.status = st;
  auto e = read_bytes(errp);
  r.err.assign(e.begin(), e.end());
  ::unlink(errp.c_str());
  return r;
}

bool exited_with_error(int st) { return WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 127; }

}  // namespace

TEST_SUITE("corruption") {

TEST_CASE("every bit of the fixed structures, a sample of the rest, and every truncation") {
  TmpDir d;
  std::string st = d / "m.safetensors";
  auto model = corruption_model();
  stb::write_file(st, model);
  uint64_t total_tried = 0, total_detected = 0;
  for (const auto& codec : codecs_available()) {
    CAPTURE(codec);
    std::string orig_path = pack_small(d, st, codec);
    const auto orig = read_bytes(orig_path);
    // The pristine container is good (otherwise nothing below means anything).
    REQUIRE_NOTHROW(wc::verify(orig_path, st, 1, {}));
    auto regions = map_regions(orig_path);
    uint64_t count[kRegions] = {};
    for (auto r : regions) ++count[r];
    REQUIRE(count[kPayload] > 0);
    REQUIRE(count[kChunkHeader] >= 16 * 4);
    REQUIRE(count[kPadding] > 0);

    std::string path = d / "c.wcz";
    stb::write_file(path, orig);
    Tally t;
    uint64_t payload_seen = 0;
    for (uint64_t off = 0; off < orig.size(); ++off) {
      Region r = regions[off];
      std::vector<int> bits;
      if (r == kHeader || r == kManifest || r == kIndex || r == kFooter || r == kChunkHeader) bits = {0, 1, 2, 3, 4, 5, 6, 7};
      else if (r == kPadding) bits = {int(off % 8)};
      else if (payload_seen++ % 5 == 0) bits = {int((off / 5) % 8)};  // payload: one byte in five
      for (int b : bits) {
        pwrite_byte(path, off, uint8_t(orig[off] ^ (1u << b)));
        bool structural = r == kHeader || r == kManifest || r == kIndex || r == kFooter;
        expect_all_fail(d, path, structural,
                        codec + ": bit " + std::to_string(b) + " of byte " + std::to_string(off) + " (" +
                            kRegionName[r] + ")",
                        t, r);
        pwrite_byte(path, off, orig[off]);
      }
    }
    uint64_t flips_tried = t.tried, flips_detected = t.detected;
    // Truncation at every length (the footer is always hit).
    for (uint64_t len = 0; len < orig.size(); ++len) {
      REQUIRE(::truncate(path.c_str(), off_t(len)) == 0);
      expect_all_fail(d, path, true, codec + ": truncated to " + std::to_string(len), t, -1);
    }
    stb::write_file(path, orig);
    REQUIRE_NOTHROW(wc::verify(path, st, 1, {}));

    MESSAGE("corruption matrix [" << codec << "], container " << orig.size() << " bytes: bit flips tried "
                                  << flips_tried << ", detected " << flips_detected << "; truncations tried "
                                  << (t.tried - flips_tried) << ", detected " << (t.detected - flips_detected)
                                  << "; inspect checked " << t.inspect_checked << ", unpack checked "
                                  << t.unpack_checked);
    std::string per_region;
    for (int r = 0; r < kRegions; ++r)
      per_region += std::string("  ") + kRegionName[r] + ": " + std::to_string(count[r]) + " bytes, " +
                    std::to_string(t.by_region_tried[r]) + " flips, " + std::to_string(t.by_region_detected[r]) +
                    " detected\n";
    MESSAGE("by region [" << codec << "]:\n" << per_region);
    for (const auto& p : t.problems) MESSAGE("  UNDETECTED/UNCLEAN: " << p);
    CHECK(t.problems.empty());
    CHECK(t.detected == t.tried);
    total_tried += t.tried;
    total_detected += t.detected;
  }
  MESSAGE("corruption matrix total: " << total_tried << " cases tried, " << total_detected << " detected");
  CHECK(total_tried > 10000);
}

TEST_CASE("the CLI exits non-zero, names the file and writes nothing (file and stream input)") {
  TmpDir d;
  std::string st = d / "m.safetensors";
  stb::write_file(st, corruption_model());
  std::string good = pack_small(d, st, codecs_available().back());
  const auto orig = read_bytes(good);
  auto regions = map_regions(good);
  // One case per region (first byte of each), plus a truncation.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> cases;
  for (int r = 0; r < kRegions; ++r)
    for (uint64_t off = 0; off < orig.size(); ++off)
      if (regions[off] == r) {
        auto c = orig;
        c[off + (r == kPayload ? 3 : 0)] ^= 0x10;
        cases.push_back({kRegionName[r], c});
        break;
      }
  cases.push_back({"truncated", std::vector<uint8_t>(orig.begin(), orig.begin() + long(orig.size() / 2))});
  cases.push_back({"one byte short", std::vector<uint8_t>(orig.begin(), orig.end() - 1)});
  int n = 0;
  for (const auto& [what, bytes] : cases) {
    CAPTURE(what);
    std::string bad = d / "bad.wcz";
    stb::write_file(bad, bytes);
    std::string out = d / "out.safetensors";

    auto v = run_cli(d, {"verify", bad});
    CHECK(exited_with_error(v.status));
    CHECK(v.err.find(bad) != std::string::npos);
    CHECK(v.err.find("error") != std::string::npos);

    auto u = run_cli(d, {"unpack", bad, "-o", out});
    CHECK(exited_with_error(u.status));
    CHECK(u.err.find(bad) != std::string::npos);
    CHECK_FALSE(exists(out));

    // Streaming decode from standard input: fails the same way, writes nothing.
    auto s = run_cli(d, {"unpack", "-", "-o", out}, bad);
    CHECK(exited_with_error(s.status));
    CHECK(s.err.find("<stdin>") != std::string::npos);
    CHECK_FALSE(exists(out));

    if (what == std::string("footer") || what == std::string("index") || what == std::string("header") ||
        what == std::string("manifest") || what == std::string("truncated")) {
      auto i = run_cli(d, {"inspect", bad});
      CHECK(exited_with_error(i.status));
      CHECK(i.err.find(bad) != std::string::npos);
    }
    CHECK(temp_files(d.path).empty());
    ++n;
  }
  // And the pristine file passes through every command.
  CHECK(run_cli(d, {"verify", good, "--against", st}).status == 0);
  CHECK(run_cli(d, {"unpack", "-", "-o", d / "ok.safetensors"}, good).status == 0);
  CHECK(read_bytes(d / "ok.safetensors") == read_bytes(st));
  MESSAGE("CLI corruption cases: " << n << " (verify, unpack, unpack -, inspect)");
}

TEST_CASE("pack refuses malformed safetensors cleanly and writes nothing") {
  TmpDir d;
  auto entry = [](const char* dt, const std::string& shape, const std::string& offs) {
    return std::string("{\"dtype\":\"") + dt + "\",\"shape\":[" + shape + "],\"data_offsets\":[" + offs + "]}";
  };
  std::string deep_meta = "{\"__metadata__\":{\"x\":" + std::string(100000, '[') + std::string(100000, ']') + "}}";
  std::string deep_obj = "{\"a\":";
  for (int i = 0; i < 5000; ++i) deep_obj += "{\"a\":";
  deep_obj += "1" + std::string(5001, '}') + "}";
  std::string bad_utf8 = std::string("{\"w\xff\xfe\":") + entry("U8", "4", "0,4") + "}";
  std::string overlong_utf8 = std::string("{\"w\xc0\xaf\":") + entry("U8", "4", "0,4") + "}";
  std::string many_dims;
  for (int i = 0; i < 100; ++i) many_dims += (i ? ",1" : "1");
  struct Case {
    const char* what;
    std::vector<uint8_t> file;
  };
  const std::vector<uint8_t> d4 = {1, 2, 3, 4}, d8 = {1, 2, 3, 4, 5, 6, 7, 8}, d12(12, 9);
  std::vector<Case> cases = {
      {"empty file", {}},
      {"shorter than the length field", {1, 0, 0}},
      {"header length past the end", stb::raw_with_len(1ull << 40, "{}")},
      {"header length 2^63", stb::raw_with_len(1ull << 63, "{}")},
      {"header length -1", stb::raw_with_len(~0ull, "{}")},
      {"not JSON", stb::raw("hello world")},
      {"truncated JSON", stb::raw("{\"a\":{\"dtype\":\"U8\",\"sha")},
      {"top level is an array", stb::raw("[1,2,3]")},
      {"huge shape (product overflows)", stb::raw("{\"a\":" + entry("F32", "4611686018427387904,4", "0,16") + "}", std::vector<uint8_t>(16))},
      {"huge shape (fits u64, not the file)", stb::raw("{\"a\":" + entry("U8", "1099511627776", "0,1099511627776") + "}", d4)},
      {"negative dimension", stb::raw("{\"a\":" + entry("U8", "-4", "0,4") + "}", d4)},
      {"negative offset", stb::raw("{\"a\":" + entry("U8", "4", "-4,0") + "}", d4)},
      {"offset beyond u64", stb::raw("{\"a\":" + entry("U8", "4", "0,99999999999999999999999") + "}", d4)},
      {"fractional dimension", stb::raw("{\"a\":" + entry("U8", "4.5", "0,4") + "}", d4)},
      {"offsets past the end of the file", stb::raw("{\"a\":" + entry("U8", "4", "0,4") + "}", {1, 2})},
      {"trailing bytes after the last tensor", stb::raw("{\"a\":" + entry("U8", "4", "0,4") + "}", d8)},
      {"reversed offsets", stb::raw("{\"a\":" + entry("U8", "4", "4,0") + "}", d4)},
      {"size does not match shape", stb::raw("{\"a\":" + entry("F32", "3", "0,8") + "}", d8)},
      {"overlapping tensors", stb::raw("{\"a\":" + entry("U8", "4", "0,4") + ",\"b\":" + entry("U8", "4", "2,6") + "}", d8)},
      {"hole between tensors", stb::raw("{\"a\":" + entry("U8", "4", "0,4") + ",\"b\":" + entry("U8", "4", "8,12") + "}", d12)},
      {"duplicate tensor names", stb::raw("{\"a\":" + entry("U8", "4", "0,4") + ",\"a\":" + entry("U8", "4", "4,8") + "}", d8)},
      {"invalid UTF-8 in a name", stb::raw(bad_utf8, d4)},
      {"overlong UTF-8 in a name", stb::raw(overlong_utf8, d4)},
      {"lone surrogate escape", stb::raw("{\"\\ud800\":" + entry("U8", "4", "0,4") + "}", d4)},
      {"deep JSON nesting (arrays in metadata)", stb::raw(deep_meta)},
      {"deep JSON nesting (objects)", stb::raw(deep_obj)},
      {"unknown dtype", stb::raw("{\"a\":" + entry("F128", "1", "0,16") + "}", std::vector<uint8_t>(16))},
      {"dtype of the wrong type", stb::raw("{\"a\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,4]}}", d4)},
      {"missing data_offsets", stb::raw("{\"a\":{\"dtype\":\"U8\",\"shape\":[4]}}", d4)},
      {"metadata value not a string", stb::raw("{\"__metadata__\":{\"a\":1}}")},
      {"rank 100", stb::raw("{\"a\":" + entry("U8", many_dims, "0,1") + "}", {7})},
      {"sub-byte dtype with a partial byte", stb::raw("{\"a\":" + entry("F4", "3", "0,2") + "}", {1, 2})},
      {"NUL byte inside the JSON", stb::raw(std::string("{\"a\"\0:1}", 8))},
  };
  int n = 0;
  for (const auto& c : cases) {
    std::string what = c.what;
    CAPTURE(what);
    std::string in = d / "in.safetensors", out = d / "in.safetensors.wcz";
    stb::write_file(in, c.file);
    bool threw = false;
    try {
      wc::PackOptions po;
      po.threads = 1;
      wc::pack(in, out, po);
    } catch (const wc::Error& e) {
      threw = true;
      CHECK((e.code() == Errc::bad_safetensors || e.code() == Errc::limit));
      CHECK(e.file() == in);
      CHECK(e.describe().find(in) != std::string::npos);
    }
    CHECK(threw);
    CHECK_FALSE(exists(out));
    CHECK(temp_files(d.path).empty());
    CHECK(read_bytes(in) == c.file);  // input untouched
    ::unlink(out.c_str());
    ++n;
  }
  // Through the CLI too: non-zero exit, the file named, nothing written.
  std::string in = d / "bad.safetensors";
  stb::write_file(in, stb::raw("{\"a\":" + entry("U8", "4", "0,4") + ",\"a\":" + entry("U8", "4", "4,8") + "}", d8));
  auto r = run_cli(d, {"pack", in});
  CHECK(exited_with_error(r.status));
  CHECK(r.err.find(in) != std::string::npos);
  CHECK_FALSE(exists(in + ".wcz"));
  CHECK(temp_files(d.path).empty());
  MESSAGE("malformed safetensors refused by pack: " << n << " cases");
}

}  // TEST_SUITE
