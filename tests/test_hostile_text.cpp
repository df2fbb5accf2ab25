// Names from a file that reach a terminal: error messages and inspect's table
// escape every control character (a name can otherwise clear the line and
// print "wcodec: OK, every checksum matches"), JSON escapes them its own way,
// and pack refuses names no reader would accept.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "platform/error.h"
#include "platform/file_io.h"
#include "platform/text.h"
#include "lib/api.h"
#include "st_builder.h"
#include "test_util.h"

namespace {

// A line-clearing, recolouring name; its bytes are all valid UTF-8.
const std::string kEvil = "w\x1b[2K\r\x1b[32mwcodec: OK, every checksum matches\x1b[0m\n\xc2\x9b" "2J\xe2\x80\xae";

bool has_raw_control(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) return true;
    if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xA0) return true;  // C1
    if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        static_cast<unsigned char>(s[i + 2]) == 0xAE)
      return true;  // right-to-left override
  }
  return false;
}

std::string capture(const std::function<void(std::FILE*)>& fn) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* mem = ::open_memstream(&buf, &len);
  REQUIRE(mem);
  fn(mem);
  std::fclose(mem);
  std::string s(buf, len);
  std::free(buf);
  return s;
}

}  // namespace

TEST_SUITE("hostile_text") {

TEST_CASE("terminal escaping") {
  CHECK(wc::escape_for_terminal("plain name.weight") == "plain name.weight");
  CHECK(wc::escape_for_terminal("\xc3\xa9t\xc3\xa9") == "\xc3\xa9t\xc3\xa9");  // UTF-8 text is kept
  CHECK(wc::escape_for_terminal("a\x1b[2Kb") == "a\\x1b[2Kb");
  CHECK(wc::escape_for_terminal("\r\n\t\x7f") == "\\x0d\\x0a\\x09\\x7f");
  CHECK(wc::escape_for_terminal("\xc2\x9b") == "\\u009b");      // C1 CSI
  CHECK(wc::escape_for_terminal("\xe2\x80\xae") == "\\u202e");  // bidi override
  CHECK(wc::escape_for_terminal("\xff\xc3") == "\\xff\\xc3");   // not UTF-8
  CHECK(wc::escape_for_terminal("a\\x41") == "a\\\\x41");        // an escape cannot be forged
  CHECK_FALSE(has_raw_control(wc::escape_for_terminal(kEvil)));
}

TEST_CASE("error messages escape names from files") {
  wc::Error e(wc::Errc::corrupt, "tensor '" + kEvil + "' is bad");
  e.at_file("m" + kEvil + ".wcz").at_tensor(kEvil);
  const std::string d = e.describe();
  CHECK_FALSE(has_raw_control(d));
  CHECK(d.find("\\x1b[2K") != std::string::npos);
}

TEST_CASE("inspect's table escapes names, its JSON keeps them exactly") {
  tu::TempDir t;
  const std::string st = t / "m.safetensors", wcz = t / "m.safetensors.wcz";
  stb::write_file(st, stb::build({{kEvil, wc::DType::BF16, {4, 8}, {}}, {"ok", wc::DType::F32, {3}, {}}}));
  wc::pack(st, wcz, {});
  const std::string text = capture([&](std::FILE* f) { wc::inspect(wcz, false, *wc::inspect_text_writer(f, false)); });
  CHECK(text.find("ok") != std::string::npos);
  // Only the line ends the writer itself puts there remain.
  std::string no_newlines;
  for (char c : text)
    if (c != '\n') no_newlines += c;
  CHECK_FALSE(has_raw_control(no_newlines));
  CHECK(text.find("\\x1b[2K") != std::string::npos);
  const std::string json = capture([&](std::FILE* f) { wc::inspect(wcz, false, *wc::inspect_json_writer(f)); });
  CHECK(json.find("\\u001b[2K") != std::string::npos);
  std::vector<wc::TensorSummary> ts;
  wc::inspect(wcz, false, &ts);
  REQUIRE(ts.size() == 2);
  CHECK((ts[0].name == kEvil || ts[1].name == kEvil));
  // The CLI's own error line escapes too.
  tu::write_file(t / "bad.wcz", tu::read_file(wcz));
  auto r = tu::run(tu::cli() + " verify " + t / "bad.wcz" + " --against " + t / "nothere");
  CHECK(r.status == 1);
  CHECK_FALSE(has_raw_control(r.out.substr(0, r.out.size() - 1)));
}

TEST_CASE("pack refuses tensor names no reader accepts, and writes nothing") {
  tu::TempDir t;
  const std::string st = t / "m.safetensors", wcz = t / "m.safetensors.wcz";
  stb::write_file(st, stb::build({{std::string("a\0b", 3), wc::DType::U8, {4}, {}}}));
  bool threw = false;
  try {
    wc::pack(st, wcz, {});
  } catch (const wc::Error& e) {
    threw = true;
    CHECK(e.code() == wc::Errc::bad_safetensors);
    CHECK(std::string(e.what()).find("NUL") != std::string::npos);
  }
  CHECK(threw);
  CHECK_FALSE(wc::path_exists(wcz));
  CHECK(tu::temp_files(t.path).empty());
}

}  // TEST_SUITE
