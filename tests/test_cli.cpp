// The built `wcodec` binary, run as a user would.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>

#include "model/json.h"
#include "st_builder.h"
#include "test_util.h"

using wc::DType;

namespace {

std::string sample(const tu::TempDir& t) {
  std::vector<stb::StTensor> ts = {{"model.embed_tokens.weight", DType::BF16, {128, 64}, {}},
                                   {"model.norm.weight", DType::BF16, {64}, {}},
                                   {"counts", DType::I32, {17}, {}}};
  stb::StOptions o;
  o.metadata = {{"format", "pt"}};
  tu::write_file(t / "model.safetensors", stb::build(ts, o));
  return t / "model.safetensors";
}

using tu::q;

// The sample packed to t/m.wcz, then `wcodec inspect <flags>` of it.
tu::RunResult inspect_sample(const tu::TempDir& t, const std::string& flags) {
  REQUIRE(tu::run(tu::cli() + " pack " + q(sample(t)) + " -o " + q(t / "m.wcz")).status == 0);
  return tu::run(tu::cli() + " inspect " + flags + " " + q(t / "m.wcz"));
}

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE("pack, inspect, verify, unpack with default names") {
    tu::TempDir t;
    std::string in = sample(t);
    auto r = tu::run(tu::cli() + " pack " + q(in));
    REQUIRE(r.status == 0);
    CHECK(tu::read_file(in + ".wcz").size() > 128);
    r = tu::run(tu::cli() + " inspect " + q(in + ".wcz"));
    CHECK(r.status == 0);
    CHECK(r.out.find("model.embed_tokens.weight") != std::string::npos);
    CHECK(r.out.find("bits/w") != std::string::npos);
    r = tu::run(tu::cli() + " verify " + q(in + ".wcz") + " --against " + q(in));
    CHECK(r.status == 0);
    CHECK(r.out.find("identical") != std::string::npos);
    std::string orig = t / "orig.safetensors";
    REQUIRE(::rename(in.c_str(), orig.c_str()) == 0);
    r = tu::run(tu::cli() + " unpack " + q(in + ".wcz"));
    REQUIRE(r.status == 0);
    CHECK(tu::read_file(in) == tu::read_file(orig));
  }

  TEST_CASE("inspect --json is valid JSON with per-tensor figures") {
    tu::TempDir t;
    auto r = inspect_sample(t, "--json");
    REQUIRE(r.status == 0);
    auto v = wc::json::parse(r.out);
    CHECK(v.kind == wc::json::Kind::object);
    CHECK(r.out.find("\"tensors\":[") != std::string::npos);
    CHECK(r.out.find("\"codec\":") != std::string::npos);
  }

  TEST_CASE("inspect shows each file, its metadata, the file of each tensor and totals per dtype and codec") {
    const std::string vec = std::string(WCODEC_TEST_DIR) + "/vectors/";
    auto r = tu::run(tu::cli() + " inspect " + q(vec + "sharded.wcz"));
    REQUIRE(r.status == 0);
    CHECK(r.out.find("file a.safetensors: safetensors, 294 bytes, 2 tensor(s)") != std::string::npos);
    CHECK(r.out.find("file model.safetensors.index.json: blob") != std::string::npos);
    // multi-file: a file column, aligned under its header
    const size_t hdr = r.out.find("\nfile "), row = r.out.find("\nb.safetensors ");
    REQUIRE(hdr != std::string::npos);
    REQUIRE(row != std::string::npos);
    CHECK(r.out.find("tensor", hdr) - hdr == r.out.find("scalar", row) - row);
    CHECK(r.out.find("by dtype:") != std::string::npos);
    CHECK(r.out.find("by codec:") != std::string::npos);
    CHECK(r.out.find("for the whole file") != std::string::npos);
    r = tu::run(tu::cli() + " inspect " + q(vec + "single_zstd.wcz"));
    CHECK(r.out.find("metadata format = pt") != std::string::npos);
    r = tu::run(tu::cli() + " inspect --json " + q(vec + "single_zstd.wcz"));
    REQUIRE(r.status == 0);
    auto v = wc::json::parse(r.out);
    const auto* files = v.find("files");
    REQUIRE(files != nullptr);
    REQUIRE(files->array.size() == 1);
    CHECK(files->array[0].find("metadata")->find("format")->str == "pt");
    CHECK(files->array[0].find("kind")->str == "safetensors");
    const auto* by_dtype = v.find("by_dtype");
    REQUIRE(by_dtype != nullptr);
    uint64_t n = 0;
    for (const auto& g : by_dtype->array) n += *g.find("tensors")->u64;
    CHECK(n == 5);
    CHECK(v.find("payload_bits_per_weight") != nullptr);
  }

  TEST_CASE("inspect --entropy reports the bounds of float tensors") {
    tu::TempDir t;
    auto r = inspect_sample(t, "--entropy --json");
    REQUIRE(r.status == 0);
    auto v = wc::json::parse(r.out);
    const auto* ts = v.find("tensors");
    REQUIRE(ts != nullptr);
    int with = 0;
    for (const auto& tv : ts->array) {
      const auto* h = tv.find("h_values");
      const auto* b = tv.find("h_exp_bound");
      if (tv.find("dtype")->str == "BF16") {
        REQUIRE(h != nullptr);
        REQUIRE(b != nullptr);
        double hv = std::stod(h->str), hb = std::stod(b->str);
        CHECK(hv > 0.0);
        CHECK(hv <= 16.0);
        CHECK(hb >= 8.0);  // H(exponent) + 8 raw bits
        ++with;
      } else {
        CHECK(h == nullptr);  // I32 has no float bound
      }
    }
    CHECK(with == 2);
  }

  TEST_CASE("pipes: pack to stdout, unpack from stdin to stdout") {
    tu::TempDir t;
    std::string in = sample(t);
    auto r = tu::run(tu::cli() + " pack " + q(in) + " -o - > " + q(t / "p.wcz") + " && " + tu::cli() + " unpack - -o - < " +
                     q(t / "p.wcz") + " > " + q(t / "back"));
    REQUIRE(r.status == 0);
    CHECK(tu::read_file(t / "back") == tu::read_file(in));
    r = tu::run("cat " + q(t / "p.wcz") + " | " + tu::cli() + " unpack - -o " + q(t / "back2"));
    REQUIRE(r.status == 0);
    CHECK(tu::read_file(t / "back2") == tu::read_file(in));
  }

  TEST_CASE("--version and usage errors") {
    auto r = tu::run(tu::cli() + " --version");
    CHECK(r.status == 0);
    CHECK(r.out.find("wcodec") != std::string::npos);
    r = tu::run(tu::cli() + " pack");
    CHECK(r.status != 0);
    r = tu::run(tu::cli() + " frobnicate");
    CHECK(r.status != 0);
  }

  TEST_CASE("errors: missing input, not safetensors, existing output, corrupt container") {
    tu::TempDir t;
    std::string in = sample(t);

    auto r = tu::run(tu::cli() + " pack " + q(t / "nope.safetensors") + " -o " + q(t / "x.wcz"));
    CHECK(r.status != 0);
    CHECK(r.out.find("nope.safetensors") != std::string::npos);
    CHECK_FALSE(wc::path_exists(t / "x.wcz"));

    tu::write_file(t / "junk.safetensors", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!'});
    r = tu::run(tu::cli() + " pack " + q(t / "junk.safetensors") + " -o " + q(t / "x.wcz"));
    CHECK(r.status != 0);
    CHECK(r.out.find("junk.safetensors") != std::string::npos);
    CHECK_FALSE(wc::path_exists(t / "x.wcz"));

    REQUIRE(tu::run(tu::cli() + " pack " + q(in) + " -o " + q(t / "m.wcz")).status == 0);
    r = tu::run(tu::cli() + " pack " + q(in) + " -o " + q(t / "m.wcz"));
    CHECK(r.status != 0);
    CHECK(r.out.find("exists") != std::string::npos);
    CHECK(tu::run(tu::cli() + " pack " + q(in) + " -o " + q(t / "m.wcz") + " -f").status == 0);

    auto c = tu::read_file(t / "m.wcz");
    // truncated
    tu::write_file(t / "trunc.wcz", std::vector<uint8_t>(c.begin(), c.begin() + long(c.size() / 2)));
    for (std::string cmd : {" verify ", " inspect "}) {
      r = tu::run(tu::cli() + cmd + q(t / "trunc.wcz"));
      CHECK(r.status != 0);
      CHECK(r.out.find("trunc.wcz") != std::string::npos);
    }
    r = tu::run(tu::cli() + " unpack " + q(t / "trunc.wcz") + " -o " + q(t / "out"));
    CHECK(r.status != 0);
    CHECK_FALSE(wc::path_exists(t / "out"));
    r = tu::run(tu::cli() + " unpack - -o " + q(t / "out") + " < " + q(t / "trunc.wcz"));
    CHECK(r.status != 0);
    CHECK_FALSE(wc::path_exists(t / "out"));
    // a flipped bit in the middle (a payload)
    auto f = c;
    f[f.size() / 2] ^= 0x04;
    tu::write_file(t / "flip.wcz", f);
    r = tu::run(tu::cli() + " verify " + q(t / "flip.wcz"));
    CHECK(r.status != 0);
    r = tu::run(tu::cli() + " unpack " + q(t / "flip.wcz") + " -o " + q(t / "out"));
    CHECK(r.status != 0);
    CHECK_FALSE(wc::path_exists(t / "out"));
    // a newer major version
    f = c;
    f[8] = 2;
    tu::write_file(t / "v2.wcz", f);
    r = tu::run(tu::cli() + " inspect " + q(t / "v2.wcz"));
    CHECK(r.status != 0);
    CHECK(r.out.find("checksum") != std::string::npos);  // header checksum covers the version
    CHECK(tu::temp_files(t.path).size() == 0);
  }
}

namespace {

// Runs the CLI with stdin, stdout and stderr on a new pseudo-terminal of
// `cols` columns (TIOCSWINSZ); returns what it wrote there and its status.
tu::RunResult run_in_pty(const std::vector<std::string>& args, unsigned short cols) {
  tu::RunResult r;
  const int m = ::posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(m >= 0);
  REQUIRE(::grantpt(m) == 0);
  REQUIRE(::unlockpt(m) == 0);
  const std::string slave = ::ptsname(m);
  winsize ws{};
  ws.ws_row = 24;
  ws.ws_col = cols;
  REQUIRE(::ioctl(m, TIOCSWINSZ, &ws) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(m);
    ::setsid();
    const int s = ::open(slave.c_str(), O_RDWR);
    if (s < 0) ::_exit(126);
    ::ioctl(s, TIOCSCTTY, 0);
    ::dup2(s, 0);
    ::dup2(s, 1);
    ::dup2(s, 2);
    if (s > 2) ::close(s);
    tu::exec_cli(args);
  }
  char buf[4096];
  for (;;) {  // until the child's side is closed (EIO)
    const ssize_t n = ::read(m, buf, sizeof buf);
    if (n > 0) r.out.append(buf, size_t(n));
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  ::close(m);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// The pieces of terminal output between carriage returns and newlines.
std::vector<std::string> screen_lines(const std::string& out) {
  std::vector<std::string> v;
  std::string cur;
  for (char c : out) {
    if (c == '\r' || c == '\n') {
      if (!cur.empty()) v.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) v.push_back(cur);
  return v;
}

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t k = s.find(what); k != std::string::npos; k = s.find(what, k + 1)) ++n;
  return n;
}

}  // namespace

// Its own suite: runs the binary on a pseudo-terminal.
TEST_SUITE("cli_tty") {
  TEST_CASE("progress on a terminal, none on a pipe") {
    tu::TempDir t;
    std::string in = sample(t);
    auto r = run_in_pty({"pack", in, "-o", t / "a.wcz"}, 80);
    CHECK(r.status == 0);
    CHECK(r.out.find("pack [") != std::string::npos);
    CHECK(r.out.find("100%") != std::string::npos);
    r = tu::run(tu::cli() + " pack " + q(in) + " -o " + q(t / "b.wcz"));
    CHECK(r.status == 0);
    CHECK(r.out.find("pack [") == std::string::npos);
    CHECK(r.out.find('%') == r.out.rfind('%'));  // the summary's ratio only
    // -q: nothing at all, even on a terminal
    r = run_in_pty({"pack", in, "-o", t / "c.wcz", "-q"}, 80);
    CHECK(r.status == 0);
    CHECK(r.out.empty());
  }

  TEST_CASE("progress fits a 40-column terminal and its final line is drawn once (pack, unpack, verify)") {
    tu::TempDir t;
    // 1 MiB of BF16 in 4 KiB chunks: many progress calls; the first is always drawn
    tu::write_file(t / "big.safetensors", stb::build({{"w", DType::BF16, {512, 1024}, {}}}));
    const std::vector<std::vector<std::string>> cmds = {
        {"pack", t / "big.safetensors", "-o", t / "big.wcz", "--chunk-size", "4096", "-T", "2"},
        {"unpack", t / "big.wcz", "-o", t / "back", "-T", "2"},
        {"verify", t / "big.wcz", "-T", "1"},
        {"unpack", t / "big.wcz", "--tensor", "w", "-o", t / "w.npy"},
    };
    for (unsigned short cols : {40, 80, 200}) {
      for (const auto& c : cmds) {
        auto r = run_in_pty(c, cols);
        INFO(cols << " columns, " << c[0] << ": " << r.out);
        REQUIRE(r.status == 0);
        const std::string word = c[0] == "verify" ? "verify" : c[0];
        size_t progress_lines = 0, final_lines = 0;
        for (const auto& l : screen_lines(r.out)) {
          if (l.compare(0, word.size() + 1, word + " ") != 0) continue;  // a summary or note
          ++progress_lines;
          CHECK(l.size() < cols);  // never wraps
          if (l.find("100%") != std::string::npos) ++final_lines;
        }
        CHECK(progress_lines >= 2);  // at least one running line, and the final one
        CHECK(final_lines == 1);
        CHECK(count_of(r.out, "100%") == 1);
        if (cols >= 80) CHECK(r.out.find(word + " [") != std::string::npos);  // the bar when there is room
        ::unlink((t / "back").c_str());
        ::unlink((t / "w.npy").c_str());
      }
      ::unlink((t / "big.wcz").c_str());
    }
  }
}
