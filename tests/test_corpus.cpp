// Every file of ../shared/corpus packs and unpacks to identical bytes, through
// files and through pipes; verify --against agrees.
#include <dirent.h>
#include <doctest/doctest.h>

#include "test_util.h"

TEST_SUITE("corpus") {
  TEST_CASE("corpus files round-trip byte for byte") {
    std::string dir = WCODEC_CORPUS_DIR;
    std::vector<std::string> files;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 12 && n.substr(n.size() - 12) == ".safetensors") files.push_back(n);
      }
      ::closedir(d);
    }
    if (files.empty()) {
      MESSAGE("[SKIPPED] no corpus at " << dir << " (../shared/corpus is absent)");
      return;
    }
    tu::TempDir t;
    for (const auto& n : files) {
      CAPTURE(n);
      std::string in = dir + "/" + n, c = t / (n + ".wcz");
      auto r = tu::run(tu::cli() + " pack '" + in + "' -o '" + c + "'");
      REQUIRE_MESSAGE(r.status == 0, r.out);
      r = tu::run(tu::cli() + " verify '" + c + "' --against '" + in + "'");
      CHECK_MESSAGE(r.status == 0, r.out);
      r = tu::run(tu::cli() + " unpack '" + c + "' -o '" + t / "file.out" + "' -f");
      CHECK(r.status == 0);
      CHECK(tu::read_file(t / "file.out") == tu::read_file(in));
      r = tu::run("cat '" + c + "' | " + tu::cli() + " unpack - -o - > '" + t / "pipe.out" + "'");
      CHECK(r.status == 0);
      CHECK(tu::read_file(t / "pipe.out") == tu::read_file(in));
      MESSAGE(n << ": " << tu::read_file(in).size() << " -> " << tu::read_file(c).size() << " bytes");
    }
  }
}
