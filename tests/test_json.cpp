#include <doctest/doctest.h>

#include <string>

#include "model/json.h"

using wc::Errc;
using wc::Error;
namespace json = wc::json;

namespace {

// Parses `s` expecting failure; returns the error (code, offset).
Error parse_err(std::string_view s, const json::ParseOptions& o = {}) {
  try {
    json::parse(s, o);
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected a parse error for: " << std::string(s));
  return Error(Errc::ok, "");
}

void check_rejected(std::string_view s, uint64_t offset) {
  CAPTURE(std::string(s));
  Error e = parse_err(s);
  CHECK(e.code() == Errc::bad_safetensors);
  CHECK(e.offset() == offset);
}

}  // namespace

TEST_SUITE("json") {

TEST_CASE("scalars") {
  CHECK(json::parse("null").is_null());
  auto t = json::parse(" true ");
  REQUIRE(t.is_bool());
  CHECK(t.boolean);
  CHECK(t.offset == 1);
  auto f = json::parse("false");
  REQUIRE(f.is_bool());
  CHECK_FALSE(f.boolean);
  auto s = json::parse("\"hi\"");
  REQUIRE(s.is_string());
  CHECK(s.str == "hi");
}

TEST_CASE("numbers keep their literal and parse u64 exactly") {
  auto n = json::parse("18446744073709551615");
  REQUIRE(n.is_number());
  REQUIRE(n.u64);
  CHECK(*n.u64 == UINT64_MAX);
  CHECK_FALSE(n.u64_overflow);

  auto o = json::parse("18446744073709551616");
  CHECK_FALSE(o.u64);
  CHECK(o.u64_overflow);
  CHECK(o.str == "18446744073709551616");

  auto big = json::parse("99999999999999999999999");
  CHECK(big.u64_overflow);

  auto z = json::parse("0");
  REQUIRE(z.u64);
  CHECK(*z.u64 == 0);

  for (const char* lit : {"-1", "-0", "1.5", "1e3", "1E+3", "2.0e-7", "0.0"}) {
    CAPTURE(lit);
    auto v = json::parse(lit);
    CHECK(v.is_number());
    CHECK(v.str == lit);
    CHECK_FALSE(v.u64);
    CHECK_FALSE(v.u64_overflow);
  }
}

TEST_CASE("malformed numbers") {
  check_rejected("01", 0);
  check_rejected("-", 1);
  check_rejected("1.", 2);
  check_rejected(".5", 0);
  check_rejected("1e", 2);
  check_rejected("1e+", 3);
  check_rejected("+1", 0);
  check_rejected("NaN", 0);
  check_rejected("Infinity", 0);
  check_rejected("0x10", 1);
}

TEST_CASE("objects keep document order and duplicates") {
  auto v = json::parse(R"({"b":1,"a":[true,null],"b":"x"})");
  REQUIRE(v.is_object());
  REQUIRE(v.object.size() == 3);
  CHECK(v.object[0].first == "b");
  CHECK(v.object[1].first == "a");
  CHECK(v.object[2].first == "b");
  CHECK(v.object[1].second.array.size() == 2);
  CHECK(v.object[1].second.offset == 11);
  REQUIRE(v.find("b"));
  CHECK(v.find("b")->str == "1");  // first occurrence
  CHECK(v.find("zz") == nullptr);
  auto dup = json::find_duplicate_key(v);
  REQUIRE(dup);
  CHECK(*dup == 2);
  CHECK_FALSE(json::find_duplicate_key(json::parse(R"({"a":1,"b":2,"c":3})")));
  CHECK_FALSE(json::find_duplicate_key(json::parse("{}")));
}

TEST_CASE("duplicate detection picks the earliest repeat") {
  auto v = json::parse(R"({"z":0,"a":1,"a":2,"z":3})");
  auto dup = json::find_duplicate_key(v);
  REQUIRE(dup);
  CHECK(*dup == 2);
}

TEST_CASE("duplicate detection on large objects") {
  std::string j = "{";
  for (int i = 0; i < 20000; ++i) j += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  std::string unique = j + "\"end\":0}";
  CHECK_FALSE(json::find_duplicate_key(json::parse(unique)));
  auto v = json::parse(j + "\"k777\":1,\"k5\":2}");
  auto dup = json::find_duplicate_key(v);
  REQUIRE(dup);
  CHECK(*dup == 20000);
  CHECK(v.object[*dup].first == "k777");
}

TEST_CASE("empty containers and whitespace") {
  auto v = json::parse(" \t\r\n{ \"a\" : [ ] , \"b\" : { } }\n  ");
  REQUIRE(v.is_object());
  REQUIRE(v.object.size() == 2);
  CHECK(v.object[0].second.is_array());
  CHECK(v.object[0].second.array.empty());
  CHECK(v.object[1].second.is_object());
}

TEST_CASE("structural errors with offsets") {
  check_rejected("", 0);
  check_rejected("   ", 3);
  check_rejected("{", 1);
  check_rejected("{\"a\"}", 4);
  check_rejected("{\"a\":1,}", 7);
  check_rejected("[1,]", 3);
  check_rejected("[1 2]", 3);
  check_rejected("{a:1}", 1);
  check_rejected("{\"a\":1} x", 8);
  check_rejected("{} {}", 3);
  check_rejected("tru", 3);
  check_rejected("nul", 3);
  check_rejected("truex", 4);
  check_rejected("// c\n{}", 0);
  check_rejected(std::string_view("{\"a\":1}\0", 8), 7);
  check_rejected("\xEF\xBB\xBF{}", 0);  // BOM is not allowed
}

TEST_CASE("caller picks the code and the base offset") {
  json::ParseOptions o;
  o.code = Errc::corrupt;
  o.base_offset = 1000;
  Error e = parse_err("[1,,2]", o);
  CHECK(e.code() == Errc::corrupt);
  CHECK(e.offset() == 1003);
  auto v = json::parse("[7]", o);
  CHECK(v.offset == 1000);
  CHECK(v.array[0].offset == 1001);
}

TEST_CASE("string escapes") {
  auto v = json::parse(R"("a\"b\\c\/d\b\f\n\r\t")");
  CHECK(v.str == "a\"b\\c/d\b\f\n\r\t");
  CHECK(json::parse(R"("\u0041\u00e9\u20AC")").str == "A\xC3\xA9\xE2\x82\xAC");
  CHECK(json::parse(R"("\u0000")").str == std::string("\0", 1));
  // surrogate pair -> U+1F600
  CHECK(json::parse(R"("\ud83d\ude00")").str == "\xF0\x9F\x98\x80");
  CHECK(json::parse(R"("\uDBFF\uDFFF")").str == "\xF4\x8F\xBF\xBF");
}

TEST_CASE("bad escapes and surrogates") {
  check_rejected(R"("\x")", 1);
  check_rejected(R"("\u12")", 5);
  check_rejected(R"("\u12G4")", 5);
  check_rejected(R"("\ud800")", 1);         // lone high surrogate
  check_rejected(R"("\ud800x")", 1);
  check_rejected(R"("\udc00")", 1);         // lone low surrogate
  check_rejected(R"("\ud800\u0041")", 7);   // high + non-low
  check_rejected(R"("\ud800\ud800")", 7);
  check_rejected("\"abc", 0);               // unterminated
  check_rejected("\"a\\", 0);
}

TEST_CASE("control characters must be escaped") {
  check_rejected("\"a\nb\"", 2);
  check_rejected(std::string_view("\"a\0b\"", 5), 2);
  check_rejected("\"\x1f\"", 1);
  CHECK(json::parse("\"\x7f\"").str == "\x7f");  // DEL is allowed raw
}

TEST_CASE("UTF-8 validation in raw bytes") {
  CHECK(json::parse("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"").str == "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  check_rejected("\"\x80\"", 1);                  // stray continuation
  check_rejected("\"\xC0\xAF\"", 1);              // overlong '/'
  check_rejected("\"\xC1\xBF\"", 1);              // overlong
  check_rejected("\"\xE0\x80\xAF\"", 1);          // overlong 3-byte
  check_rejected("\"\xF0\x80\x80\xAF\"", 1);      // overlong 4-byte
  check_rejected("\"\xED\xA0\x80\"", 1);          // encoded surrogate
  check_rejected("\"\xF4\x90\x80\x80\"", 1);      // > U+10FFFF
  check_rejected("\"\xF5\x80\x80\x80\"", 1);
  check_rejected("\"\xFF\"", 1);
  check_rejected("\"ab\xC3\"", 3);                // truncated sequence
  check_rejected("\"\xE2\x82\"", 1);
  check_rejected("[\xC3\xA9]", 1);                // non-ASCII outside a string

  CHECK_FALSE(json::find_invalid_utf8("plain \xC3\xA9"));
  auto b = json::find_invalid_utf8("ok\xED\xBF\xBF");
  REQUIRE(b);
  CHECK(*b == 2);
}

TEST_CASE("nesting limit") {
  std::string ok(64, '['), okc(64, ']');
  CHECK(json::parse(ok + okc).is_array());
  std::string deep(65, '['), deepc(65, ']');
  Error e = parse_err(deep + deepc);
  CHECK(e.code() == Errc::limit);
  CHECK(e.offset() == 64);
  // far deeper than any stack would tolerate without the limit
  std::string huge(1'000'000, '[');
  CHECK(parse_err(huge).code() == Errc::limit);
  std::string objs;
  for (int i = 0; i < 100; ++i) objs += "{\"a\":";
  CHECK(parse_err(objs).code() == Errc::limit);
  json::ParseOptions o;
  o.max_depth = 2;
  CHECK(json::parse("[[1]]", o).is_array());
  CHECK(parse_err("[[[1]]]", o).code() == Errc::limit);
}

TEST_CASE("array length limit") {
  json::ParseOptions o;
  o.max_array_len = 3;
  CHECK(json::parse("[1,2,3]", o).array.size() == 3);
  CHECK(json::parse("[[1,2,3],[4]]", o).array.size() == 2);
  Error e = parse_err("[1,2,3,4]", o);
  CHECK(e.code() == Errc::limit);
  CHECK(e.offset() == 7);
  CHECK(json::parse("[" + std::string(1000, '1') + "]").array.size() == 1);  // default: unlimited
}

TEST_CASE("json_escape") {
  CHECK(wc::json_escape("plain") == "plain");
  CHECK(wc::json_escape("a\"b\\c") == "a\\\"b\\\\c");
  CHECK(wc::json_escape("\n\t\r\b\f") == "\\n\\t\\r\\b\\f");
  CHECK(wc::json_escape(std::string_view("\0\x01\x1f\x7f", 4)) == "\\u0000\\u0001\\u001f\\u007f");
  CHECK(wc::json_escape("\xC3\xA9") == "\xC3\xA9");
  CHECK(wc::json_escape("a\xFF" "b") == "a\\ufffdb");
  CHECK(wc::json_quote("x\"") == "\"x\\\"\"");
  // round trip: every byte value survives escape -> parse (valid UTF-8 input)
  std::string all;
  for (int c = 0; c < 0x80; ++c) all += static_cast<char>(c);
  all += "\xE2\x82\xAC\xF0\x9F\x98\x80";
  CHECK(json::parse(wc::json_quote(all)).str == all);
}

}  // TEST_SUITE
