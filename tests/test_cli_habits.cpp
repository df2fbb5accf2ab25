// The `wcodec` binary behaves like zstd: exit statuses 0/1/2, -f never
// destroys an input, several inputs, -c, -q/-v, --rm, `-` for standard input,
// default names from the container, -o DIR/, and extraction of one file or
// one tensor (.npy).
#include <doctest/doctest.h>

#include <filesystem>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "st_builder.h"
#include "test_util.h"

using wc::DType;

namespace {

using tu::q;
std::string cli() { return tu::cli(); }
// A command whose own redirections apply to it alone: tu::run's 2>&1 then
// sends its standard error to the captured output, not into a redirected file.
std::string grp(const std::string& cmd) { return "{ " + cmd + "; }"; }

// A small model: BF16, F32 and I32 tensors, several chunks at --chunk-size 64.
std::vector<uint8_t> small_model(uint64_t seed = 1) {
  return stb::build({{"model.embed_tokens.weight", DType::BF16, {64, 16}, stb::pattern_bytes(2048, seed)},
                     {"model.norm.weight", DType::F32, {16}, stb::pattern_bytes(64, seed + 1)},
                     {"counts", DType::I32, {17}, stb::pattern_bytes(68, seed + 2)}});
}

std::string write_model(const tu::TempDir& t, const std::string& name, uint64_t seed = 1) {
  tu::write_file(t / name, small_model(seed));
  return t / name;
}

void put(const std::string& path, const std::string& text) { tu::write_file(path, std::vector<uint8_t>(text.begin(), text.end())); }

using tu::exists;

// A model folder: two shards holding a tensor of the same name ("w"), their
// index, a config in a subfolder.
void make_folder(const std::string& d) {
  ::mkdir(d.c_str(), 0755);
  ::mkdir((d + "/sub").c_str(), 0755);
  tu::write_file(d + "/a.safetensors", stb::build({{"w", DType::F16, {8, 4}, stb::pattern_bytes(64, 7)},
                                                   {"only_a", DType::I64, {3}, stb::pattern_bytes(24, 8)}}));
  tu::write_file(d + "/b.safetensors", stb::build({{"w", DType::F32, {4}, stb::pattern_bytes(16, 9)}}));
  put(d + "/model.safetensors.index.json",
      "{\"weight_map\": {\"w\": \"a.safetensors\", \"only_a\": \"a.safetensors\"}}\n");
  put(d + "/sub/config.json", "{\"hidden_size\": 4}\n");
}

}  // namespace

TEST_SUITE("cli_habits") {
  TEST_CASE("exit status: 0 on success, 1 on any error, 2 on a usage error, with the wcodec: error: prefix") {
    tu::TempDir t;
    const std::string m = write_model(t, "m.safetensors");
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -o " + q(t / "m.wcz") + " -q").status == 0);
    auto c = tu::read_file(t / "m.wcz");
    c[c.size() / 2] ^= 0x10;
    tu::write_file(t / "bad.wcz", c);
    tu::write_file(t / "m.bin", tu::read_file(t / "m.wcz"));
    struct Case {
      std::string args;
      int status;
    };
    const std::vector<Case> cases = {
        {"--help", 0},
        {"pack --help", 0},
        {"unpack -h", 0},
        {"--version", 0},
        {"", 2},
        {"frobnicate", 2},
        {"pack", 2},                               // missing input
        {"pack " + q(m) + " --bogus", 2},          // unknown flag
        {"pack " + q(m) + " -T abc", 2},           // bad -T value
        {"pack " + q(m) + " -T -1", 2},
        {"pack " + q(m) + " -T 99999999999999999999", 2},
        {"pack " + q(m) + " --level 99", 2},
        {"pack " + q(m) + " --codec lzma", 2},
        {"pack " + q(m) + " -c -o " + q(t / "x.wcz"), 2},
        {"pack " + q(m) + " " + q(m) + " -o " + q(t / "x.wcz"), 2},  // -o with several inputs
        {"pack " + q(m) + " -q -v", 2},
        {"pack - -q", 2},                          // stdin needs -o or -c
        {"unpack -", 2},
        {"pack " + q(m) + " --name x.safetensors -o " + q(t / "x.wcz"), 2},  // --name is for stdin
        {"unpack " + q(t / "m.wcz") + " --rm --file m.safetensors", 2},
        {"verify " + q(t / "m.wcz") + " " + q(t / "m.wcz") + " --against " + q(m), 2},
        {"inspect", 2},
        {"pack " + q(t / "nope.safetensors"), 1},  // nonexistent input
        {"unpack " + q(t / "nope.wcz"), 1},
        {"verify " + q(t / "nope.wcz"), 1},
        {"unpack " + q(t / "bad.wcz") + " -o " + q(t / "out"), 1},  // corrupt container
        {"verify " + q(t / "bad.wcz"), 1},
        {"unpack " + q(t / "m.bin"), 1},  // unknown suffix
        {"pack " + q(m) + " -o " + q(t / "m.wcz"), 1},  // exists
        {"pack " + q(t / "m.wcz") + " -o " + q(t / "y.wcz"), 2},  // already a container (usage)
        {"verify " + q(t / "m.wcz"), 0},
        {"verify " + q(t / "m.wcz") + " --against " + q(m), 0},
        {"inspect " + q(t / "m.wcz"), 0},
        {"unpack " + q(t / "m.wcz") + " -o " + q(t / "back"), 0},
        {"pack " + q(m) + " -o " + q(t / "m.wcz") + " -f", 0},
    };
    for (const auto& k : cases) {
      auto r = tu::run(cli() + " " + k.args + " < /dev/null");
      INFO("wcodec " << k.args << "\n" << r.out);
      CHECK(r.status == k.status);
      if (k.status != 0) CHECK(r.out.find("wcodec: error: ") != std::string::npos);
      if (k.status == 0 && k.args.find("-h") != std::string::npos) CHECK(r.out.find("Usage") != std::string::npos);
    }
    CHECK(tu::read_file(t / "back") == tu::read_file(m));
    CHECK(tu::temp_files(t.path).empty());
  }

  TEST_CASE("-f never overwrites an input: same path, symbolic link, hard link, stream, folder, container") {
    tu::TempDir t;
    const std::string m = write_model(t, "m.safetensors");
    const auto orig = tu::read_file(m);
    REQUIRE(::symlink(m.c_str(), (t / "sym").c_str()) == 0);
    REQUIRE(::link(m.c_str(), (t / "hard").c_str()) == 0);
    for (std::string target : {m, t / "sym", t / "hard"}) {
      auto r = tu::run(cli() + " pack " + q(m) + " -o " + q(target) + " -f");
      INFO(r.out);
      CHECK(r.status == 2);
      CHECK(r.out.find("refusing to overwrite an input") != std::string::npos);
      CHECK(tu::read_file(m) == orig);
    }
    // the input given through the link, the output by its real name
    CHECK(tu::run(cli() + " pack " + q(t / "sym") + " -o " + q(m) + " -f").status == 2);
    CHECK(tu::read_file(m) == orig);
    // pack from standard input onto the file that is standard input
    CHECK(tu::run(cli() + " pack - -o " + q(m) + " -f < " + q(m)).status == 2);
    CHECK(tu::read_file(m) == orig);
    // -c appending to the input
    CHECK(tu::run(grp(cli() + " pack " + q(m) + " -c >> " + q(m))).status == 2);
    CHECK(tu::read_file(m) == orig);

    // unpack onto the container itself, directly and through a link
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -o " + q(t / "m.wcz") + " -q").status == 0);
    const auto cont = tu::read_file(t / "m.wcz");
    REQUIRE(::symlink((t / "m.wcz").c_str(), (t / "csym").c_str()) == 0);
    for (std::string target : {t / "m.wcz", t / "csym"}) {
      auto r = tu::run(cli() + " unpack " + q(t / "m.wcz") + " -o " + q(target) + " -f");
      INFO(r.out);
      CHECK(r.status == 2);
      CHECK(tu::read_file(t / "m.wcz") == cont);
    }
    CHECK(tu::run(cli() + " unpack - -o " + q(t / "m.wcz") + " -f < " + q(t / "m.wcz")).status == 2);
    CHECK(tu::read_file(t / "m.wcz") == cont);

    // a folder: the container onto one of its files (the index, a shard, a config)
    make_folder(t / "f");
    for (std::string inside : {"model.safetensors.index.json", "a.safetensors", "sub/config.json"}) {
      const auto before = tu::read_file(t / "f/" + inside);
      auto r = tu::run(cli() + " pack " + q(t / "f") + " -o " + q(t / "f/" + inside) + " -f");
      INFO(inside << ": " << r.out);
      CHECK(r.status == 2);
      CHECK(tu::read_file(t / "f/" + inside) == before);
    }
    // a shard index: the container onto a shard it lists
    const auto shard = tu::read_file(t / "f/a.safetensors");
    CHECK(tu::run(cli() + " pack " + q(t / "f/model.safetensors.index.json") + " -o " + q(t / "f/a.safetensors") + " -f")
              .status == 2);
    CHECK(tu::read_file(t / "f/a.safetensors") == shard);
    // unpack of a folder container whose output folder holds the container under a stored name
    REQUIRE(tu::run(cli() + " pack " + q(t / "f") + " -o " + q(t / "f.wcz") + " -q").status == 0);
    ::mkdir((t / "o").c_str(), 0755);
    tu::write_file(t / "o/a.safetensors", tu::read_file(t / "f.wcz"));
    auto r = tu::run(cli() + " unpack " + q(t / "o/a.safetensors") + " -o " + q(t / "o") + " -f");
    CHECK(r.status == 2);
    CHECK(tu::read_file(t / "o/a.safetensors") == tu::read_file(t / "f.wcz"));
    CHECK(tu::temp_files(t.path).empty());
  }

  TEST_CASE("several inputs, each to its default name; one failing does not stop the rest") {
    tu::TempDir t;
    const std::string a = write_model(t, "a.safetensors", 1), b = write_model(t, "b.safetensors", 2);
    const auto ab = tu::read_file(a), bb = tu::read_file(b);
    auto r = tu::run(cli() + " pack " + q(a) + " " + q(b));
    REQUIRE(r.status == 0);
    CHECK(exists(a + ".wcz"));
    CHECK(exists(b + ".wcz"));
    ::unlink(a.c_str());
    ::unlink(b.c_str());
    r = tu::run(cli() + " unpack " + q(a + ".wcz") + " " + q(b + ".wcz"));
    REQUIRE(r.status == 0);
    CHECK(tu::read_file(a) == ab);
    CHECK(tu::read_file(b) == bb);
    r = tu::run(cli() + " verify " + q(a + ".wcz") + " " + q(b + ".wcz"));
    CHECK(r.status == 0);
    CHECK(r.out.find("a.safetensors.wcz: OK") != std::string::npos);
    CHECK(r.out.find("b.safetensors.wcz: OK") != std::string::npos);
    // the middle one fails; the last is still packed; status 1
    ::unlink((a + ".wcz").c_str());
    ::unlink((b + ".wcz").c_str());
    r = tu::run(cli() + " pack " + q(a) + " " + q(t / "nope.safetensors") + " " + q(b));
    CHECK(r.status == 1);
    CHECK(r.out.find("nope.safetensors") != std::string::npos);
    CHECK(exists(a + ".wcz"));
    CHECK(exists(b + ".wcz"));
    // several inputs with -o, -c or '-' are usage errors, and nothing is written
    ::unlink((a + ".wcz").c_str());
    CHECK(tu::run(grp(cli() + " pack " + q(a) + " " + q(b) + " -c > /dev/null")).status == 2);
    CHECK(tu::run(cli() + " pack " + q(a) + " - -f < " + q(b)).status == 2);
    CHECK(tu::run(cli() + " unpack " + q(b + ".wcz") + " " + q(b + ".wcz") + " -o " + q(t / "x")).status == 2);
    CHECK_FALSE(exists(a + ".wcz"));
    CHECK_FALSE(exists(t / "x"));
  }

  TEST_CASE("-c writes to standard output, as -o - does") {
    tu::TempDir t;
    const std::string m = write_model(t, "m.safetensors");
    REQUIRE(tu::run(grp(cli() + " pack " + q(m) + " -c > " + q(t / "c.wcz"))).status == 0);
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -o - > " + q(t / "o.wcz")).status == 0);
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -o " + q(t / "f.wcz")).status == 0);
    CHECK(tu::read_file(t / "c.wcz") == tu::read_file(t / "o.wcz"));
    CHECK(tu::read_file(t / "c.wcz") == tu::read_file(t / "f.wcz"));
    REQUIRE(tu::run(grp(cli() + " unpack " + q(t / "c.wcz") + " -c > " + q(t / "back"))).status == 0);
    CHECK(tu::read_file(t / "back") == tu::read_file(m));
    REQUIRE(tu::run(grp(cli() + " unpack - --stdout < " + q(t / "c.wcz") + " > " + q(t / "back2"))).status == 0);
    CHECK(tu::read_file(t / "back2") == tu::read_file(m));
  }

  TEST_CASE("-q prints nothing on success; summaries after pack, unpack and verify; -v adds threads and times") {
    tu::TempDir t;
    const std::string m = write_model(t, "m.safetensors");
    auto r = tu::run(cli() + " pack " + q(m) + " -o " + q(t / "m.wcz") + " -q");
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    r = tu::run(cli() + " unpack " + q(t / "m.wcz") + " -o " + q(t / "back") + " -q");
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    r = tu::run(cli() + " verify " + q(t / "m.wcz") + " -q");
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    r = tu::run(cli() + " pack " + q(m) + " -o " + q(t / "m.wcz") + " -f -q -T 100000");  // no note either
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    // errors still show with -q
    r = tu::run(cli() + " verify " + q(t / "nope.wcz") + " -q");
    CHECK(r.status == 1);
    CHECK(r.out.find("wcodec: error:") != std::string::npos);

    r = tu::run(cli() + " pack " + q(m) + " -o " + q(t / "m.wcz") + " -f");
    CHECK(r.out.find("bits/weight") != std::string::npos);
    r = tu::run(cli() + " unpack " + q(t / "m.wcz") + " -o " + q(t / "back") + " -f");
    CHECK(r.status == 0);
    CHECK(r.out.find("back: ") != std::string::npos);
    CHECK(r.out.find("every checksum matches") != std::string::npos);
    r = tu::run(cli() + " unpack " + q(t / "m.wcz") + " -o " + q(t / "back") + " -f -v -T 1");
    CHECK(r.out.find("1 thread(s)") != std::string::npos);
    CHECK(r.out.find(" s, ") != std::string::npos);
    r = tu::run(cli() + " pack " + q(m) + " -o " + q(t / "m.wcz") + " -f --verbose -T 2");
    CHECK(r.out.find("2 thread(s)") != std::string::npos);
    r = tu::run(cli() + " verify " + q(t / "m.wcz") + " -v");
    CHECK(r.out.find("thread(s)") != std::string::npos);
    // as zstd: with the data on standard output, no summary unless -v
    r = tu::run(grp(cli() + " pack " + q(m) + " -c > " + q(t / "s.wcz")));
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    r = tu::run(grp(cli() + " unpack " + q(t / "s.wcz") + " -c > " + q(t / "s")));
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    r = tu::run(grp(cli() + " pack " + q(m) + " -c -v > " + q(t / "s.wcz")));
    CHECK(r.out.find("<stdout>: ") != std::string::npos);
  }

  TEST_CASE("-T is capped at 4 threads per core (256 in all), with a note") {
    tu::TempDir t;
    const std::string m = write_model(t, "m.safetensors");
    auto r = tu::run(cli() + " pack " + q(m) + " -o " + q(t / "m.wcz") + " -T 100000");
    CHECK(r.status == 0);
    CHECK(r.out.find("wcodec: note: -T 100000") != std::string::npos);
    r = tu::run(cli() + " verify " + q(t / "m.wcz") + " -T 4096 -v");
    CHECK(r.status == 0);
    CHECK(r.out.find("4096 thread(s)") == std::string::npos);
    CHECK(tu::run(cli() + " unpack " + q(t / "m.wcz") + " -o " + q(t / "b") + " -T 0").status == 0);  // 0: all cores
  }

  TEST_CASE("--rm removes the input only after success") {
    tu::TempDir t;
    const std::string m = write_model(t, "m.safetensors");
    const auto orig = tu::read_file(m);
    auto r = tu::run(cli() + " pack " + q(m) + " --rm");
    REQUIRE(r.status == 0);
    CHECK_FALSE(exists(m));
    CHECK(tu::run(cli() + " verify " + q(m + ".wcz")).status == 0);
    r = tu::run(cli() + " unpack " + q(m + ".wcz") + " --rm");
    REQUIRE(r.status == 0);
    CHECK(tu::read_file(m) == orig);
    CHECK_FALSE(exists(m + ".wcz"));

    // a failed pack (the output exists) keeps the input
    tu::write_file(m + ".wcz", {1, 2, 3});
    r = tu::run(cli() + " pack " + q(m) + " --rm");
    CHECK(r.status == 1);
    CHECK(tu::read_file(m) == orig);
    // a failed unpack (corrupt container) keeps the container
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -f -q").status == 0);
    auto c = tu::read_file(m + ".wcz");
    c[c.size() / 2] ^= 0x01;
    tu::write_file(t / "bad.wcz", c);
    r = tu::run(cli() + " unpack " + q(t / "bad.wcz") + " -o " + q(t / "out") + " --rm");
    CHECK(r.status == 1);
    CHECK(tu::read_file(t / "bad.wcz") == c);
    CHECK_FALSE(exists(t / "out"));
    // to standard output: nothing can be verified, so nothing is removed
    r = tu::run(grp(cli() + " pack " + q(m) + " -c --rm > /dev/null"));
    CHECK(r.status == 0);
    CHECK(r.out.find("--rm ignored") != std::string::npos);
    CHECK(exists(m));

    // a folder: every file it packed, then the folders left empty
    make_folder(t / "f");
    std::vector<std::vector<uint8_t>> before;
    const std::vector<std::string> files = {"a.safetensors", "b.safetensors", "model.safetensors.index.json",
                                            "sub/config.json"};
    for (const auto& f : files) before.push_back(tu::read_file(t / "f/" + f));
    r = tu::run(cli() + " pack " + q(t / "f") + " -o " + q(t / "f.wcz") + " --rm");
    REQUIRE(r.status == 0);
    CHECK_FALSE(exists(t / "f"));
    r = tu::run(cli() + " unpack " + q(t / "f.wcz") + " --rm");
    REQUIRE(r.status == 0);
    for (size_t i = 0; i < files.size(); ++i) CHECK(tu::read_file(t / "f/" + files[i]) == before[i]);
    CHECK_FALSE(exists(t / "f.wcz"));
    CHECK(tu::temp_files(t.path).empty());
  }

  TEST_CASE("pack from standard input equals pack from the file, byte for byte") {
    tu::TempDir t;
    const std::string m = write_model(t, "m.safetensors");
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -q").status == 0);  // -> m.safetensors.wcz
    ::mkdir((t / "s").c_str(), 0755);
    // the stored name from the output's name
    REQUIRE(tu::run(cli() + " pack - -o " + q(t / "s/m.safetensors.wcz") + " < " + q(m)).status == 0);
    CHECK(tu::read_file(t / "s/m.safetensors.wcz") == tu::read_file(m + ".wcz"));
    // from a pipe, with --name, to standard output
    REQUIRE(tu::run(grp("cat " + q(m) + " | " + cli() + " pack - --name m.safetensors -c > " + q(t / "p.wcz"))).status == 0);
    CHECK(tu::read_file(t / "p.wcz") == tu::read_file(m + ".wcz"));
    // the same options make the same container
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -o " + q(t / "k1.wcz") + " --chunk-size 64 --codec zstd").status == 0);
    REQUIRE(tu::run("cat " + q(m) + " | " + cli() + " pack - --name m.safetensors -o " + q(t / "k2.wcz") +
                    " --chunk-size 64 --codec zstd")
                .status == 0);
    CHECK(tu::read_file(t / "k1.wcz") == tu::read_file(t / "k2.wcz"));
    // no name to take: model.safetensors
    REQUIRE(tu::run(grp(cli() + " pack - -c < " + q(m) + " > " + q(t / "anon"))).status == 0);
    auto r = tu::run(cli() + " inspect --json " + q(t / "anon"));
    CHECK(r.out.find("\"model.safetensors\"") != std::string::npos);
    // a container, or bytes that are no safetensors, are refused and nothing is written
    r = tu::run(cli() + " pack - -o " + q(t / "x.wcz") + " < " + q(m + ".wcz"));
    CHECK(r.status == 2);
    CHECK(r.out.find("<stdin>") != std::string::npos);
    r = tu::run("echo hello | " + cli() + " pack - -o " + q(t / "x.wcz"));
    CHECK(r.status == 1);
    CHECK(r.out.find("not a safetensors file") != std::string::npos);
    auto cut = tu::read_file(m);
    cut.resize(cut.size() - 5);
    tu::write_file(t / "cut", cut);
    r = tu::run(cli() + " pack - -o " + q(t / "x.wcz") + " < " + q(t / "cut"));
    CHECK(r.status == 1);
    CHECK(r.out.find("<stdin>") != std::string::npos);
    CHECK_FALSE(exists(t / "x.wcz"));
    r = tu::run(cli() + " pack - --name a/b -o " + q(t / "x.wcz") + " < " + q(m));
    CHECK(r.status == 2);
    CHECK_FALSE(exists(t / "x.wcz"));
  }

  TEST_CASE("unpack restores the stored name beside the container; an unknown suffix is refused") {
    tu::TempDir t;
    const std::string m = write_model(t, "model.safetensors");
    const auto orig = tu::read_file(m);
    ::mkdir((t / "d").c_str(), 0755);
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -o " + q(t / "d/renamed.wcz") + " -q").status == 0);
    auto r = tu::run(cli() + " unpack " + q(t / "d/renamed.wcz"));
    REQUIRE(r.status == 0);
    CHECK(tu::read_file(t / "d/model.safetensors") == orig);
    CHECK(r.out.find("d/model.safetensors") != std::string::npos);
    CHECK_FALSE(exists(t / "d/renamed"));
    // run from another folder: still beside the container
    ::unlink((t / "d/model.safetensors").c_str());
    REQUIRE(tu::run("cd " + q(t.path) + " && " + cli() + " unpack d/renamed.wcz").status == 0);
    CHECK(tu::read_file(t / "d/model.safetensors") == orig);
    // a multi-file container: a folder named after the container
    make_folder(t / "f");
    REQUIRE(tu::run(cli() + " pack " + q(t / "f") + " -o " + q(t / "d/multi.wcz") + " -q").status == 0);
    REQUIRE(tu::run(cli() + " unpack " + q(t / "d/multi.wcz")).status == 0);
    CHECK(tu::read_file(t / "d/multi/sub/config.json") == tu::read_file(t / "f/sub/config.json"));
    // no .wcz suffix and no -o: refused, zstd's words, status 1, nothing written
    tu::write_file(t / "m.bin", tu::read_file(t / "d/renamed.wcz"));
    r = tu::run(cli() + " unpack " + q(t / "m.bin"));
    CHECK(r.status == 1);
    CHECK(r.out.find("m.bin: unknown suffix -- ignored") != std::string::npos);
    CHECK_FALSE(exists(t / "m.bin.out"));
    CHECK_FALSE(exists(t / "model.safetensors.out"));
    // with -o it unpacks
    CHECK(tu::run(cli() + " unpack " + q(t / "m.bin") + " -o " + q(t / "x")).status == 0);
    CHECK(tu::read_file(t / "x") == orig);
  }

  TEST_CASE("unpack -o DIR/ writes the stored name into the folder") {
    tu::TempDir t;
    const std::string m = write_model(t, "model.safetensors");
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -o " + q(t / "c.wcz") + " -q").status == 0);
    ::mkdir((t / "out").c_str(), 0755);
    REQUIRE(tu::run(cli() + " unpack " + q(t / "c.wcz") + " -o " + q(t / "out")).status == 0);
    CHECK(tu::read_file(t / "out/model.safetensors") == tu::read_file(m));
    ::mkdir((t / "out2").c_str(), 0755);
    REQUIRE(tu::run(cli() + " unpack " + q(t / "c.wcz") + " -o " + q(t / "out2/")).status == 0);
    CHECK(tu::read_file(t / "out2/model.safetensors") == tu::read_file(m));
    ::mkdir((t / "out3").c_str(), 0755);
    REQUIRE(tu::run(cli() + " unpack - -o " + q(t / "out3/") + " < " + q(t / "c.wcz")).status == 0);
    CHECK(tu::read_file(t / "out3/model.safetensors") == tu::read_file(m));
    // exists without -f
    CHECK(tu::run(cli() + " unpack " + q(t / "c.wcz") + " -o " + q(t / "out")).status == 1);
    CHECK(tu::run(cli() + " unpack " + q(t / "c.wcz") + " -o " + q(t / "out") + " -f").status == 0);
    // pack -o DIR/ too: the default container name inside it
    REQUIRE(tu::run(cli() + " pack " + q(m) + " -o " + q(t / "out/")).status == 0);
    CHECK(tu::read_file(t / "out/model.safetensors.wcz") == tu::read_file(t / "c.wcz"));
    // a folder that does not exist yet, named with a trailing '/', is made
    // (from a file and from a pipe), as a folder container's is ...
    REQUIRE(tu::run(cli() + " unpack " + q(t / "c.wcz") + " -o " + q(t / "new/")).status == 0);
    CHECK(tu::read_file(t / "new/model.safetensors") == tu::read_file(m));
    REQUIRE(tu::run(cli() + " unpack - -o " + q(t / "new2/") + " < " + q(t / "c.wcz")).status == 0);
    CHECK(tu::read_file(t / "new2/model.safetensors") == tu::read_file(m));
    // ... and removed again when the unpack fails (a damaged container)
    auto bad = tu::read_file(t / "c.wcz");
    bad[bad.size() / 2] ^= 0x40;
    tu::write_file(t / "bad.wcz", bad);
    CHECK(tu::run(cli() + " unpack " + q(t / "bad.wcz") + " -o " + q(t / "new3/")).status == 1);
    CHECK(!std::filesystem::exists(t / "new3"));
    CHECK(tu::run(cli() + " unpack - -o " + q(t / "new4/") + " < " + q(t / "bad.wcz")).status == 1);
    CHECK(!std::filesystem::exists(t / "new4"));
    // without the trailing '/', a name that does not exist is the output file
    REQUIRE(tu::run(cli() + " unpack " + q(t / "c.wcz") + " -o " + q(t / "plainfile")).status == 0);
    CHECK(tu::read_file(t / "plainfile") == tu::read_file(m));
  }

  TEST_CASE("unpack --file restores one file of a multi-file container") {
    tu::TempDir t;
    make_folder(t / "f");
    REQUIRE(tu::run(cli() + " pack " + q(t / "f") + " -o " + q(t / "f.wcz") + " -q").status == 0);
    for (std::string name : {"a.safetensors", "b.safetensors", "model.safetensors.index.json"}) {
      auto r = tu::run(cli() + " unpack " + q(t / "f.wcz") + " --file " + name + " -o " + q(t / ("x_" + name)));
      INFO(r.out);
      REQUIRE(r.status == 0);
      CHECK(tu::read_file(t / ("x_" + name)) == tu::read_file(t / "f/" + name));
    }
    // default: its base name beside the container
    auto r = tu::run(cli() + " unpack " + q(t / "f.wcz") + " --file sub/config.json");
    REQUIRE(r.status == 0);
    CHECK(tu::read_file(t / "config.json") == tu::read_file(t / "f/sub/config.json"));
    // -o DIR/ and -c
    ::mkdir((t / "o").c_str(), 0755);
    REQUIRE(tu::run(cli() + " unpack " + q(t / "f.wcz") + " --file a.safetensors -o " + q(t / "o/")).status == 0);
    CHECK(tu::read_file(t / "o/a.safetensors") == tu::read_file(t / "f/a.safetensors"));
    REQUIRE(tu::run(grp(cli() + " unpack " + q(t / "f.wcz") + " --file b.safetensors -c > " + q(t / "o/b"))).status == 0);
    CHECK(tu::read_file(t / "o/b") == tu::read_file(t / "f/b.safetensors"));
    // a name the container does not hold: usage, and the names it holds
    r = tu::run(cli() + " unpack " + q(t / "f.wcz") + " --file c.safetensors -o " + q(t / "o/c"));
    CHECK(r.status == 2);
    CHECK(r.out.find("a.safetensors") != std::string::npos);
    CHECK_FALSE(exists(t / "o/c"));
    r = tu::run(cli() + " unpack - --file a.safetensors -o " + q(t / "o/z") + " < " + q(t / "f.wcz"));
    CHECK(r.status == 2);  // --file needs a container file
    CHECK(tu::temp_files(t.path).empty());
    CHECK(tu::temp_files(t / "o").empty());
  }

  TEST_CASE("unpack --tensor writes a NumPy .npy file (format 1.0)") {
    tu::TempDir t;
    std::vector<uint8_t> bools = {0, 1, 1, 0, 1, 0};
    const std::vector<stb::StTensor> ts = {
        {"f32", DType::F32, {3, 5}, {}},     {"bf16", DType::BF16, {2, 2, 4}, {}}, {"f16", DType::F16, {7}, {}},
        {"i64", DType::I64, {2, 3}, {}},     {"u8", DType::U8, {10}, {}},          {"i8", DType::I8, {4}, {}},
        {"bool", DType::BOOL, {2, 3}, bools}, {"scalar", DType::F64, {}, {}},      {"f8", DType::F8_E4M3, {4, 4}, {}},
        {"f4", DType::F4, {3, 4}, {}},        {"empty", DType::F32, {0, 4}, {}},   {"c64", DType::C64, {2}, {}},
    };
    const std::map<std::string, std::pair<std::string, std::string>> want = {
        // name: descr, shape as written in the header
        {"f32", {"<f4", "(3, 5)"}},   {"bf16", {"<u2", "(2, 2, 4)"}}, {"f16", {"<f2", "(7,)"}},
        {"i64", {"<i8", "(2, 3)"}},   {"u8", {"|u1", "(10,)"}},       {"i8", {"|i1", "(4,)"}},
        {"bool", {"|b1", "(2, 3)"}},  {"scalar", {"<f8", "()"}},      {"f8", {"|u1", "(4, 4)"}},
        {"f4", {"|u1", "(3, 2)"}},    {"empty", {"<f4", "(0, 4)"}},   {"c64", {"<c8", "(2,)"}},
    };
    const auto file = stb::build(ts);
    tu::write_file(t / "m.safetensors", file);
    REQUIRE(tu::run(cli() + " pack " + q(t / "m.safetensors") + " --chunk-size 64 -q").status == 0);
    const auto h = wc::st::parse_header(file.data(), file.size(), file.size());
    for (const auto& ti : h.tensors) {
      const std::string out = t / (ti.name + ".npy");
      auto r = tu::run(cli() + " unpack " + q(t / "m.safetensors.wcz") + " --tensor " + ti.name + " -o " + q(out));
      INFO(ti.name << ": " << r.out);
      REQUIRE(r.status == 0);
      if (ti.dtype == DType::BF16 || ti.dtype == DType::F8_E4M3 || ti.dtype == DType::F4)
        CHECK(r.out.find("wcodec: note:") != std::string::npos);
      const auto npy = tu::read_file(out);
      REQUIRE(npy.size() >= 10);
      CHECK(std::memcmp(npy.data(), "\x93NUMPY\x01\x00", 8) == 0);
      const size_t hl = npy[8] | (size_t(npy[9]) << 8);
      REQUIRE(npy.size() >= 10 + hl);
      CHECK((10 + hl) % 64 == 0);
      const std::string dict(npy.begin() + 10, npy.begin() + long(10 + hl));
      CHECK(dict.back() == '\n');
      const auto& w = want.at(ti.name);
      const std::string expect = "{'descr': '" + w.first + "', 'fortran_order': False, 'shape': " + w.second + ", }";
      CHECK(dict.substr(0, expect.size()) == expect);
      CHECK(dict.find_first_not_of(' ', expect.size()) == dict.size() - 1);
      const std::vector<uint8_t> data(npy.begin() + long(10 + hl), npy.end());
      const std::vector<uint8_t> orig(file.begin() + long(h.data_start + ti.begin), file.begin() + long(h.data_start + ti.end));
      CHECK(data == orig);
    }
    // default name beside the container; -c
    REQUIRE(tu::run(cli() + " unpack " + q(t / "m.safetensors.wcz") + " --tensor f32 -f").status == 0);
    CHECK(exists(t / "f32.npy"));
    REQUIRE(tu::run(grp(cli() + " unpack " + q(t / "m.safetensors.wcz") + " --tensor i64 -c > " + q(t / "c.npy"))).status == 0);
    CHECK(tu::read_file(t / "c.npy") == tu::read_file(t / "i64.npy"));
    // unknown tensor; exists without -f
    auto r = tu::run(cli() + " unpack " + q(t / "m.safetensors.wcz") + " --tensor nope -o " + q(t / "n.npy"));
    CHECK(r.status == 2);
    CHECK_FALSE(exists(t / "n.npy"));
    CHECK(tu::run(cli() + " unpack " + q(t / "m.safetensors.wcz") + " --tensor f32 -o " + q(t / "f32.npy")).status == 1);

    // a name in two files needs --file
    make_folder(t / "f");
    REQUIRE(tu::run(cli() + " pack " + q(t / "f") + " -o " + q(t / "f.wcz") + " -q").status == 0);
    r = tu::run(cli() + " unpack " + q(t / "f.wcz") + " --tensor w -o " + q(t / "w.npy"));
    CHECK(r.status == 2);
    CHECK(r.out.find("--file") != std::string::npos);
    REQUIRE(tu::run(cli() + " unpack " + q(t / "f.wcz") + " --tensor w --file b.safetensors -o " + q(t / "w.npy")).status == 0);
    const auto npy = tu::read_file(t / "w.npy");
    CHECK(std::string(npy.begin() + 10, npy.begin() + 60).find("'<f4'") != std::string::npos);
    CHECK(std::vector<uint8_t>(npy.end() - 16, npy.end()) == stb::pattern_bytes(16, 9));
    REQUIRE(tu::run(cli() + " unpack " + q(t / "f.wcz") + " --tensor only_a -o " + q(t / "a.npy")).status == 0);
    CHECK(tu::temp_files(t.path).empty());
  }
}
