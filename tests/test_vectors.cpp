// The spec's test vectors (tests/vectors, written by an independent Python
// writer of spec/FORMAT.md) decode to their expected bytes, and the files
// that must be rejected are rejected with the expected error.
#include <doctest/doctest.h>
#include <dirent.h>

#include "format/reader.h"
#include "lib/api.h"
#include "test_util.h"

namespace {
const std::string kDir = std::string(WCODEC_TEST_DIR) + "/vectors";

std::vector<std::string> list(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> v;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) v.push_back(n);
    }
    ::closedir(d);
  }
  return v;
}
}  // namespace

TEST_SUITE("vectors") {
  TEST_CASE("single-file vectors decode to the expected bytes") {
    tu::TempDir t;
    for (std::string v : {"single_raw", "single_zstd", "no_tensors"}) {
      CAPTURE(v);
      wc::unpack(kDir + "/" + v + ".wcz", t / v, {});
      CHECK(tu::read_file(t / v) == tu::read_file(kDir + "/" + v + ".expected"));
      auto r = wc::verify(kDir + "/" + v + ".wcz", kDir + "/" + v + ".expected", 1, {});
      CHECK(r.compared);
    }
  }

  TEST_CASE("sharded vector restores every file") {
    tu::TempDir t;
    wc::unpack(kDir + "/sharded.wcz", t / "out", {});
    for (std::string f : {"model.safetensors.index.json", "a.safetensors", "b.safetensors"}) {
      CAPTURE(f);
      auto got = tu::read_file(t / ("out/" + f));
      CHECK(!got.empty());
      CHECK(got == tu::read_file(kDir + "/sharded." + f + ".expected"));
    }
  }

  TEST_CASE("vector layout follows the spec's rules") {
    wc::ContainerReader r(kDir + "/single_raw.wcz");
    CHECK(r.manifest().files.size() == 1);
    CHECK(r.manifest().tensors.size() == 5);
    CHECK(r.index().size() == 6);  // 12 + 150 (3 chunks of 64) + 0 + 8 + 3 bytes
    for (const auto& e : r.index()) CHECK(e.offset % 64 == 0);
    CHECK(r.manifest().tensors[4].dtype == wc::DType::F4);
    CHECK(r.manifest().tensors[3].shape.empty());
  }

  TEST_CASE("bad vectors are rejected with the expected error") {
    auto bad = list(kDir + "/bad", ".wcz");
    REQUIRE(bad.size() >= 7);
    for (const auto& name : bad) {
      CAPTURE(name);
      std::string code = name.substr(name.find('.') + 1);
      code = code.substr(0, code.size() - 4);
      bool threw = false;
      try {
        wc::verify(kDir + "/bad/" + name, "", 1, {});
      } catch (const wc::Error& e) {
        threw = true;
        std::string got = code == "checksum" ? "checksum mismatch" : code == "unsupported_version" ? "unsupported version"
                          : code == "bad_magic" ? "bad magic" : code;
        CHECK(std::string(wc::errc_name(e.code())) == got);
        CHECK(e.describe().find(name) != std::string::npos);  // the error names the file
      }
      CHECK(threw);
    }
  }
}
