#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "platform/error.h"
#include "model/safetensors.h"
#include "st_builder.h"

using wc::DType;
using wc::Errc;
using wc::Error;
namespace st = wc::st;
using stb::StOptions;
using stb::StTensor;

namespace {

st::Header parse(const std::vector<uint8_t>& f) { return st::parse_header(f.data(), f.size(), f.size()); }

Error parse_err(const std::vector<uint8_t>& f, uint64_t file_size) {
  try {
    st::parse_header(f.data(), f.size(), file_size);
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected the safetensors parser to reject the file");
  return Error(Errc::ok, "");
}
Error parse_err(const std::vector<uint8_t>& f) { return parse_err(f, f.size()); }

// Header JSON for one tensor `name` with the given entry body.
std::vector<uint8_t> one(const std::string& entry, size_t data_len) {
  return stb::raw("{\"t\":" + entry + "}", stb::pattern_bytes(data_len, 7));
}

void expect_bad(const std::vector<uint8_t>& f, const char* what, Errc code = Errc::bad_safetensors) {
  CAPTURE(what);
  Error e = parse_err(f);
  CHECK(e.code() == code);
  CHECK(e.offset() != UINT64_MAX);
  CHECK(e.offset() <= f.size());
  CHECK_FALSE(std::string(e.what()).empty());
}

std::vector<uint8_t> shard_idx_bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<std::string> shards(const std::string& s) {
  auto b = shard_idx_bytes(s);
  return st::parse_shard_index(b.data(), b.size());
}

Error shard_err(const std::string& s) {
  try {
    shards(s);
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected the shard index to be rejected: " << s);
  return Error(Errc::ok, "");
}

}  // namespace

TEST_SUITE("safetensors") {

TEST_CASE("every dtype round-trips through builder and parser") {
  const DType all[] = {DType::BOOL, DType::F4, DType::F6_E2M3, DType::F6_E3M2, DType::U8, DType::I8,
                       DType::F8_E5M2, DType::F8_E4M3, DType::F8_E8M0, DType::I16, DType::U16,
                       DType::F16, DType::BF16, DType::I32, DType::U32, DType::F32, DType::C64,
                       DType::F64, DType::I64, DType::U64};
  static_assert(sizeof(all) / sizeof(all[0]) == wc::kDTypeCount);
  std::vector<StTensor> ts;
  for (DType d : all) ts.push_back({"t." + std::string(wc::dtype_name(d)), d, {3, 4}, {}});
  auto f = stb::build(ts, {.metadata = {{"format", "pt"}}});
  auto h = parse(f);
  REQUIRE(h.tensors.size() == ts.size());
  uint64_t pos = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = h.tensors[i];
    CAPTURE(t.name);
    CHECK(t.name == "t." + std::string(wc::dtype_name(all[i])));
    CHECK(t.dtype == all[i]);
    CHECK(t.shape == std::vector<uint64_t>{3, 4});
    CHECK(t.begin == pos);
    CHECK(t.end - t.begin == 12 * wc::dtype_bits(all[i]) / 8);
    // data bytes land where the header says
    CHECK(std::equal(f.begin() + h.data_start + t.begin, f.begin() + h.data_start + t.end,
                     stb::pattern_bytes(t.end - t.begin, i + 1).begin()));
    pos = t.end;
  }
  CHECK(h.data_start + pos == f.size());
  REQUIRE(h.metadata.size() == 1);
  CHECK(h.metadata[0] == std::pair<std::string, std::string>{"format", "pt"});
  CHECK(h.json_len == h.json.size());
  CHECK(h.data_start == 8 + h.json_len);
  CHECK(std::equal(h.json.begin(), h.json.end(), f.begin() + 8));
}

TEST_CASE("tensor_nbytes") {
  CHECK(st::tensor_nbytes(DType::F32, {}) == 4);
  CHECK(st::tensor_nbytes(DType::BF16, {2, 3}) == 12);
  CHECK(st::tensor_nbytes(DType::F4, {3, 2}) == 3);
  CHECK(st::tensor_nbytes(DType::F6_E2M3, {4}) == 3);
  CHECK(st::tensor_nbytes(DType::F4, {0, 7}) == 0);
  CHECK_THROWS_AS(st::tensor_nbytes(DType::F4, {3}), Error);
  CHECK_THROWS_AS(st::tensor_nbytes(DType::F6_E3M2, {2}), Error);
  CHECK_THROWS_AS(st::tensor_nbytes(DType::U8, {1ull << 32, 1ull << 32}), Error);
  CHECK_THROWS_AS(st::tensor_nbytes(DType::F64, {1ull << 62}), Error);  // bits overflow
}

TEST_CASE("empty, zero-size and rank-0 tensors") {
  SUBCASE("empty header") {
    auto h = parse(stb::raw("{}"));
    CHECK(h.tensors.empty());
    CHECK(h.metadata.empty());
    CHECK(h.data_start == 10);
  }
  SUBCASE("rank 0 scalar and zero-size tensors at shared offsets") {
    std::vector<StTensor> ts = {{"z0", DType::F32, {0}, {}},
                                {"s", DType::F32, {}, {}},
                                {"z1", DType::BF16, {4, 0, 2}, {}},
                                {"z2", DType::F4, {0}, {}},
                                {"last", DType::U8, {2}, {}}};
    auto h = parse(stb::build(ts));
    REQUIRE(h.tensors.size() == 5);
    CHECK(h.tensors[0].name == "z0");
    CHECK(h.tensors[0].begin == 0);
    CHECK(h.tensors[0].end == 0);
    CHECK(h.tensors[1].name == "s");
    CHECK(h.tensors[1].shape.empty());
    CHECK(h.tensors[1].end == 4);
    CHECK(h.tensors[2].name == "z1");
    CHECK(h.tensors[2].begin == 4);
    CHECK(h.tensors[3].name == "z2");
    CHECK(h.tensors[4].name == "last");
    CHECK(h.tensors[4].begin == 4);
    CHECK(h.tensors[4].end == 6);
  }
  SUBCASE("only zero-size tensors, no data") {
    auto h = parse(stb::build({{"a", DType::I64, {0, 5}, {}}, {"b", DType::I64, {0}, {}}}));
    CHECK(h.tensors.size() == 2);
    CHECK(h.tensors[1].end == 0);
  }
}

TEST_CASE("key order and padding do not matter; header bytes are kept verbatim") {
  std::vector<StTensor> ts = {{"a", DType::F16, {2, 2}, {}}, {"b", DType::I32, {3}, {}}, {"c", DType::U8, {5}, {}}};
  for (bool rev : {false, true})
    for (size_t pad : {size_t{0}, size_t{1}, size_t{3}, size_t{7}, size_t{200}})
      for (bool align : {false, true})
        for (bool meta_last : {false, true}) {
          CAPTURE(rev);
          CAPTURE(pad);
          CAPTURE(align);
          StOptions o;
          o.reverse_keys = rev;
          o.padding = pad;
          o.align8 = align;
          o.metadata = {{"k", "v"}};
          o.metadata_last = meta_last;
          o.spaced = rev;
          auto f = stb::build(ts, o);
          auto h = parse(f);
          REQUIRE(h.tensors.size() == 3);
          CHECK(h.tensors[0].name == "a");  // sorted by offset, not key order
          CHECK(h.tensors[1].name == "b");
          CHECK(h.tensors[2].name == "c");
          CHECK(h.tensors[2].end == 8 + 12 + 5);
          if (align) CHECK(h.data_start % 8 == 0);
          CHECK(h.json.size() == h.json_len);
          if (pad > 0) CHECK(h.json.back() == ' ');
          if (pad == 0 && !align) CHECK(h.json.back() == '}');
          CHECK(std::string(f.begin() + 8, f.begin() + 8 + h.json_len) == h.json);
          CHECK(h.metadata.size() == 1);
        }
}

TEST_CASE("whitespace before the object and other JSON whitespace are accepted") {
  auto h = parse(stb::raw("\n\t {\r\n\"x\" : {\"shape\":[ 1 ],\"data_offsets\":[0,1],\"dtype\":\"U8\"} }\t\n ", {9}));
  REQUIRE(h.tensors.size() == 1);
  CHECK(h.tensors[0].name == "x");
  CHECK(h.tensors[0].dtype == DType::U8);
}

TEST_CASE("unusual names and metadata") {
  std::vector<StTensor> ts = {{"", DType::U8, {1}, {}},
                              {"na\"me\\with\ttab", DType::U8, {1}, {}},
                              {"\xC3\xA9t\xC3\xA9", DType::U8, {1}, {}}};
  StOptions o;
  o.metadata = {{"format", "pt"}, {"empty", ""}, {"uni\xE2\x82\xAC", "x\ny"}};
  auto h = parse(stb::build(ts, o));
  REQUIRE(h.tensors.size() == 3);
  CHECK(h.tensors[0].name.empty());
  CHECK(h.tensors[1].name == "na\"me\\with\ttab");
  CHECK(h.tensors[2].name == "\xC3\xA9t\xC3\xA9");
  REQUIRE(h.metadata.size() == 3);
  CHECK(h.metadata[2].first == "uni\xE2\x82\xAC");
  CHECK(h.metadata[2].second == "x\ny");
  // escaped NUL in a name is legal JSON and accepted
  auto h2 = parse(stb::raw(R"({"a\u0000b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", {1}));
  CHECK(h2.tensors[0].name == std::string("a\0b", 3));
  // empty metadata object
  auto h3 = parse(stb::build({{"a", DType::U8, {1}, {}}}, {.force_metadata = true}));
  CHECK(h3.metadata.empty());
}

TEST_CASE("file-level rejections") {
  SUBCASE("shorter than 8 bytes") {
    std::vector<uint8_t> f = {2, 0, 0, 0, 0};
    Error e = parse_err(f);
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(e.offset() == 0);
    std::vector<uint8_t> empty;
    CHECK(parse_err(empty).code() == Errc::bad_safetensors);
  }
  SUBCASE("header length over the limit") {
    auto f = stb::raw_with_len(st::kMaxHeaderLen + 1, "{}");
    CHECK(parse_err(f, 1ull << 40).code() == Errc::limit);
    auto g = stb::raw_with_len(UINT64_MAX, "{}");
    CHECK(parse_err(g).code() == Errc::limit);
  }
  SUBCASE("header length beyond the file") {
    auto f = stb::raw_with_len(3, "{}");
    Error e = parse_err(f);
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(e.offset() == 0);
    // exactly the file: {} is 2 bytes -> ok
    CHECK(parse(stb::raw_with_len(2, "{}")).tensors.empty());
  }
  SUBCASE("header not all available to the parser") {
    auto f = stb::raw("{}       ");
    CHECK_THROWS_AS(st::parse_header(f.data(), 9, f.size()), Error);
  }
  SUBCASE("header_json_len") {
    auto f = stb::raw("{}", {1, 2, 3});
    CHECK(st::header_json_len(f.data(), 8, f.size()) == 2);
  }
  SUBCASE("truncated data") {
    auto f = stb::build({{"a", DType::F32, {4}, {}}});
    f.pop_back();
    Error e = parse_err(f);
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(std::string(e.what()).find("data section") != std::string::npos);
  }
  SUBCASE("extra bytes after the data") {
    auto f = stb::build({{"a", DType::F32, {4}, {}}});
    f.push_back(0);
    expect_bad(f, "trailing byte");
    // wrong file_size passed in
    auto g = stb::build({{"a", DType::F32, {4}, {}}});
    CHECK(parse_err(g, g.size() + 1).code() == Errc::bad_safetensors);
  }
  SUBCASE("data but no tensors") {
    expect_bad(stb::raw("{}", {1}), "data with no tensors");
  }
}

TEST_CASE("JSON-level rejections") {
  expect_bad(stb::raw(""), "empty JSON");
  expect_bad(stb::raw("{"), "unterminated object");
  expect_bad(stb::raw("[]"), "array at top level");
  expect_bad(stb::raw("\"x\""), "string at top level");
  expect_bad(stb::raw("null"), "null at top level");
  expect_bad(stb::raw("{} x"), "trailing garbage");
  expect_bad(stb::raw(std::string("{}\0", 3)), "NUL padding");
  expect_bad(stb::raw("{},"), "trailing comma");
  expect_bad(stb::raw("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],}}", {1}), "trailing comma");

  SUBCASE("invalid UTF-8 in a name reports its offset") {
    auto f = stb::raw("{\"a\xFF\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", {1});
    Error e = parse_err(f);
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(e.offset() == 8 + 3);
  }
  SUBCASE("invalid UTF-8 in padding") {
    expect_bad(stb::raw("{}  \xC3"), "bad utf8 in padding");
  }
  SUBCASE("lone surrogate escape") {
    expect_bad(stb::raw(R"({"\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", {1}), "lone surrogate");
  }
  SUBCASE("deep nesting") {
    std::string deep = "{\"__metadata__\":" + std::string(100, '[') + std::string(100, ']') + "}";
    Error e = parse_err(stb::raw(deep));
    CHECK(e.code() == Errc::limit);
    CHECK(e.offset() == 8 + 16 + 63);
  }
  SUBCASE("long arrays stop early") {
    std::string arr = "[0";
    for (int i = 0; i < 10000; ++i) arr += ",0";
    Error e = parse_err(stb::raw("{\"__metadata__\":{\"a\":" + arr + "]}}"));
    CHECK(e.code() == Errc::limit);
  }
  SUBCASE("syntax error offset is absolute") {
    Error e = parse_err(stb::raw("{\"a\" 1}"));
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(e.offset() == 8 + 5);
  }
}

TEST_CASE("duplicates") {
  SUBCASE("duplicate tensor names") {
    std::string e0 = R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
    std::string e1 = R"({"dtype":"U8","shape":[1],"data_offsets":[1,2]})";
    auto f = stb::raw("{\"a\":" + e0 + ",\"a\":" + e1 + "}", {1, 2});
    Error e = parse_err(f);
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(e.tensor() == "a");
    CHECK(e.offset() == 8 + 5 + e0.size() + 5);
  }
  SUBCASE("duplicate __metadata__") {
    expect_bad(stb::raw(R"({"__metadata__":{},"__metadata__":{}})"), "dup metadata");
  }
  SUBCASE("duplicate metadata keys") {
    expect_bad(stb::raw(R"({"__metadata__":{"a":"1","a":"2"}})"), "dup metadata key");
  }
  SUBCASE("duplicate key inside an entry") {
    expect_bad(one(R"({"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]})", 1), "dup dtype");
  }
}

TEST_CASE("entry rejections") {
  expect_bad(one(R"([])", 0), "entry not an object");
  expect_bad(one(R"("x")", 0), "entry a string");
  expect_bad(one(R"({"shape":[1],"data_offsets":[0,1]})", 1), "missing dtype");
  expect_bad(one(R"({"dtype":"U8","data_offsets":[0,1]})", 1), "missing shape");
  expect_bad(one(R"({"dtype":"U8","shape":[1]})", 1), "missing data_offsets");
  // Unknown keys in an entry are ignored, as the reference parser does.
  CHECK(parse(one(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1})", 1)).tensors.size() == 1);
  expect_bad(one(R"({"dtype":"F128","shape":[1],"data_offsets":[0,16]})", 16), "unknown dtype");
  expect_bad(one(R"({"dtype":"bf16","shape":[1],"data_offsets":[0,2]})", 2), "lower-case dtype");
  expect_bad(one(R"({"dtype":5,"shape":[1],"data_offsets":[0,1]})", 1), "dtype a number");
  expect_bad(one(R"({"dtype":"U8","shape":1,"data_offsets":[0,1]})", 1), "shape not an array");
  expect_bad(one(R"({"dtype":"U8","shape":[-1],"data_offsets":[0,1]})", 1), "negative dim");
  expect_bad(one(R"({"dtype":"U8","shape":[1.0],"data_offsets":[0,1]})", 1), "float dim");
  expect_bad(one(R"({"dtype":"U8","shape":[1e0],"data_offsets":[0,1]})", 1), "exponent dim");
  expect_bad(one(R"({"dtype":"U8","shape":["1"],"data_offsets":[0,1]})", 1), "string dim");
  expect_bad(one(R"({"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,1]})", 1), "dim > u64");
  expect_bad(one(R"({"dtype":"U8","shape":[1],"data_offsets":[0]})", 1), "one offset");
  expect_bad(one(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1,2]})", 1), "three offsets");
  expect_bad(one(R"({"dtype":"U8","shape":[1],"data_offsets":{"b":0}})", 1), "offsets object");
  expect_bad(one(R"({"dtype":"U8","shape":[1],"data_offsets":[0,-1]})", 1), "negative offset");
  expect_bad(one(R"({"dtype":"U8","shape":[0],"data_offsets":[1,0]})", 1), "begin > end");
  expect_bad(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})", 4), "size mismatch (small)");
  expect_bad(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,8]})", 8), "size mismatch (large)");
  expect_bad(one(R"({"dtype":"F4","shape":[3],"data_offsets":[0,2]})", 2), "sub-byte not whole bytes");
  expect_bad(one(R"({"dtype":"F6_E2M3","shape":[2],"data_offsets":[0,2]})", 2), "F6 partial bytes");
  CHECK(parse(one(R"({"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]})", 3)).tensors[0].end == 3);

  SUBCASE("shape product overflow") {
    auto f = one(R"({"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]})", 0);
    Error e = parse_err(f);
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(e.tensor() == "t");
    auto g = one(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]})", 0);
    CHECK(parse_err(g).code() == Errc::bad_safetensors);
    // product of huge dims where one is zero is fine (0 elements)
    CHECK(parse(one(R"({"dtype":"U8","shape":[18446744073709551615,0],"data_offsets":[0,0]})", 0))
              .tensors[0].shape[0] == UINT64_MAX);
  }
  SUBCASE("rank limit") {
    std::string dims;
    for (size_t i = 0; i < st::kMaxRank; ++i) dims += (i ? ",1" : "1");
    CHECK(parse(one("{\"dtype\":\"U8\",\"shape\":[" + dims + "],\"data_offsets\":[0,1]}", 1))
              .tensors[0].shape.size() == st::kMaxRank);
    dims += ",1";
    Error e = parse_err(one("{\"dtype\":\"U8\",\"shape\":[" + dims + "],\"data_offsets\":[0,1]}", 1));
    CHECK(e.code() == Errc::limit);
  }
  SUBCASE("error names the tensor") {
    Error e = parse_err(stb::raw(R"({"good":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"bad.w":{"dtype":"X","shape":[1],"data_offsets":[1,2]}})", {1, 2}));
    CHECK(e.tensor() == "bad.w");
    CHECK(std::string(e.what()).find("unknown dtype") != std::string::npos);
  }
}

TEST_CASE("layout rejections") {
  const std::string u8_1 = R"("dtype":"U8","shape":[1])";
  auto ent = [&](const char* name, int b, int e) {
    return "\"" + std::string(name) + "\":{" + u8_1 + ",\"data_offsets\":[" + std::to_string(b) + "," +
           std::to_string(e) + "]}";
  };
  SUBCASE("hole at the start") {
    Error e = parse_err(stb::raw("{" + ent("a", 1, 2) + "}", {0, 0}));
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(e.tensor() == "a");
    CHECK(std::string(e.what()).find("hole") != std::string::npos);
  }
  SUBCASE("hole in the middle") {
    Error e = parse_err(stb::raw("{" + ent("a", 0, 1) + "," + ent("b", 2, 3) + "}", {0, 0, 0}));
    CHECK(e.tensor() == "b");
    CHECK(std::string(e.what()).find("hole") != std::string::npos);
  }
  SUBCASE("overlap") {
    auto two = R"("dtype":"U8","shape":[2])";
    Error e = parse_err(stb::raw("{\"a\":{" + std::string(two) + ",\"data_offsets\":[0,2]}," + ent("b", 1, 2) + "}", {0, 0}));
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(std::string(e.what()).find("overlaps") != std::string::npos);
  }
  SUBCASE("same range twice") {
    Error e = parse_err(stb::raw("{" + ent("a", 0, 1) + "," + ent("b", 0, 1) + "}", {0}));
    CHECK(std::string(e.what()).find("overlaps") != std::string::npos);
  }
  SUBCASE("zero-size tensor inside another tensor") {
    auto two = R"("dtype":"U8","shape":[2])";
    auto f = stb::raw("{\"a\":{" + std::string(two) + ",\"data_offsets\":[0,2]},\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[1,1]}}", {0, 0});
    Error e = parse_err(f);
    CHECK(e.tensor() == "z");
  }
  SUBCASE("out of order in the JSON is fine") {
    auto h = parse(stb::raw("{" + ent("b", 1, 2) + "," + ent("a", 0, 1) + "}", {5, 6}));
    CHECK(h.tensors[0].name == "a");
    CHECK(h.tensors[1].name == "b");
  }
}

TEST_CASE("__metadata__ rejections") {
  // null metadata is accepted as absent, as the reference parser does (seen in real files).
  CHECK(parse(stb::raw(R"({"__metadata__":null})")).metadata.empty());
  expect_bad(stb::raw(R"({"__metadata__":"x"})"), "string metadata");
  expect_bad(stb::raw(R"({"__metadata__":[]})"), "array metadata");
  expect_bad(stb::raw(R"({"__metadata__":{"a":1}})"), "number value");
  expect_bad(stb::raw(R"({"__metadata__":{"a":{"b":"c"}}})"), "nested value");
  expect_bad(stb::raw(R"({"__metadata__":{"a":null}})"), "null value");
  auto h = parse(stb::raw(R"({"__metadata__":{"b":"2","a":"1"}})"));
  REQUIRE(h.metadata.size() == 2);
  CHECK(h.metadata[0].first == "b");  // document order
  CHECK(h.metadata[1].second == "1");
}

TEST_CASE("read_header_file") {
  char tmpl[] = "/tmp/wc_st_test_XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  close(fd);
  std::string path = tmpl;
  auto f = stb::build({{"w", DType::BF16, {8, 8}, {}}, {"b", DType::F32, {8}, {}}}, {.align8 = true, .metadata = {{"format", "pt"}}});
  stb::write_file(path, f);
  auto h = st::read_header_file(path);
  CHECK(h.tensors.size() == 2);
  CHECK(h.data_start % 8 == 0);
  CHECK(h.metadata.size() == 1);

  // short file: error carries the file name
  stb::write_file(path, {1, 2, 3});
  try {
    st::read_header_file(path);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(e.file() == path);
  }
  // huge header length
  stb::write_file(path, stb::raw_with_len(1ull << 40, "{}"));
  CHECK_THROWS_AS(st::read_header_file(path), Error);
  std::remove(path.c_str());
  try {
    st::read_header_file(path);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::io);
    CHECK(e.file() == path);
  }
  try {
    st::read_header_file("/tmp");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::io);
  }
}

TEST_CASE("shard index") {
  auto v = shards(R"({"metadata":{"total_size":123},"weight_map":{
      "lm_head.weight":"model-00002-of-00002.safetensors",
      "model.embed_tokens.weight":"model-00001-of-00002.safetensors",
      "model.norm.weight":"model-00002-of-00002.safetensors",
      "model.layers.0.x":"model-00001-of-00002.safetensors"}})");
  REQUIRE(v.size() == 2);
  CHECK(v[0] == "model-00002-of-00002.safetensors");  // first appearance order
  CHECK(v[1] == "model-00001-of-00002.safetensors");
  CHECK(shards(R"({"weight_map":{"a":"x.safetensors"}})") == std::vector<std::string>{"x.safetensors"});
  CHECK(shards(R"({"weight_map":{"a":"x..y"}})") == std::vector<std::string>{"x..y"});

  auto bad = [](const std::string& s) {
    CAPTURE(s);
    Error e = shard_err(s);
    CHECK(e.code() == Errc::bad_safetensors);
    CHECK(e.offset() != UINT64_MAX);
  };
  bad("[]");
  bad("{");
  bad(R"({"metadata":{}})");
  bad(R"({"weight_map":[]})");
  bad(R"({"weight_map":{}})");
  bad(R"({"weight_map":{"a":1}})");
  bad(R"({"weight_map":{"a":null}})");
  bad(R"({"weight_map":{"a":""}})");
  bad(R"({"weight_map":{"a":"../x.safetensors"}})");
  bad(R"({"weight_map":{"a":".."}})");
  bad(R"({"weight_map":{"a":"."}})");
  bad(R"({"weight_map":{"a":"/etc/passwd"}})");
  bad(R"({"weight_map":{"a":"sub/x.safetensors"}})");
  bad(R"({"weight_map":{"a":"sub\\x.safetensors"}})");
  bad(R"({"weight_map":{"a":"x\u0000y"}})");
  bad(R"({"weight_map":{"a":"x","a":"y"}})");
  bad(R"({"weight_map":{"a":"x"},"weight_map":{"b":"y"}})");
  bad("{\"weight_map\":{\"a\":\"x\xFF\"}}");
  Error e = shard_err(R"({"weight_map":{"t.w":"a/b"}})");
  CHECK(e.tensor() == "t.w");
  CHECK(e.offset() == 21);
}

#ifdef WCODEC_GEN_PATH
TEST_CASE("gen_sample output parses, single and sharded") {
  char tmpl[] = "/tmp/wc_gen_test_XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl;
  std::string single = dir + "/m.safetensors", sharded = dir + "/sh";
  std::string gen = WCODEC_GEN_PATH;
  REQUIRE(std::system((gen + " " + single + " --dim 64 --layers 2 --vocab 128").c_str()) == 0);
  REQUIRE(std::system((gen + " " + sharded + " --dim 64 --layers 2 --vocab 128 --shards 3").c_str()) == 0);
  auto h = st::read_header_file(single);
  CHECK(h.tensors.size() == 2 + 2 * 9 + 1);
  CHECK(h.data_start % 8 == 0);
  REQUIRE(h.metadata.size() == 1);
  CHECK(h.metadata[0].second == "pt");
  for (const auto& t : h.tensors) CHECK(t.dtype == DType::BF16);

  std::FILE* f = std::fopen((sharded + "/model.safetensors.index.json").c_str(), "rb");
  REQUIRE(f != nullptr);
  std::vector<uint8_t> idx(1 << 20);
  idx.resize(std::fread(idx.data(), 1, idx.size(), f));
  std::fclose(f);
  auto names = st::parse_shard_index(idx.data(), idx.size());
  REQUIRE(names.size() == 3);
  size_t total = 0;
  for (const auto& n : names) {
    auto sh = st::read_header_file(sharded + "/" + n);
    CHECK_FALSE(sh.tensors.empty());
    total += sh.tensors.size();
  }
  CHECK(total == h.tensors.size());
  int rc = std::system(("rm -rf " + dir).c_str());
  CHECK(rc == 0);
}
#endif

}  // TEST_SUITE
