// Safe writes: output goes to a temporary in the destination directory and is
// renamed into place only when complete. A pack or unpack that is interrupted
// (SIGINT to the CLI) or runs out of space (RLIMIT_FSIZE, a full disk in
// miniature) leaves no output, no temporary (".NAME.wctmp.*"), an existing
// output untouched, and the input untouched.
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "format/hash.h"

#include "format/error.h"
#include "lib/api.h"
#include "st_builder.h"
#include "test_util.h"

using wc::DType;
using wc::Errc;

namespace {

using TmpDir = tu::TempDir;

using tu::read_bytes;

uint64_t file_hash(const std::string& p) {
  auto b = read_bytes(p);
  return XXH3_64bits(b.data(), b.size());
}

bool exists(const std::string& p) { return wc::path_exists(p); }

using tu::temp_files;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Weight-like BF16 bytes: compressible, so zstd works hard on them.
std::vector<uint8_t> bf16_weights(size_t count, uint64_t seed) {
  std::vector<uint8_t> out(count * 2);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 3;
  for (size_t i = 0; i < count; ++i) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    double g = (double((x >> 11) & 0xFFFF) + double((x >> 27) & 0xFFFF) - 65535.0) / 65536.0 * 0.05;
    float f = float(g);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    out[2 * i] = uint8_t(u >> 16);
    out[2 * i + 1] = uint8_t(u >> 24);
  }
  return out;
}

// A model of `mib` MiB of BF16 weights in tensors of 4 MiB.
std::vector<uint8_t> model_bytes(size_t mib) {
  std::vector<stb::StTensor> ts;
  for (size_t i = 0; i < mib / 4; ++i)
    ts.push_back({"layers." + std::to_string(i) + ".weight", DType::BF16, {1024, 2048}, bf16_weights(2u << 20, i + 1)});
  return stb::build(ts);
}

// Runs `fn` in a child with RLIMIT_FSIZE = `limit` and SIGXFSZ ignored (so a
// write past the limit fails with EFBIG, as on a full disk). Returns 0 for a
// wc::Error(io), 1 for no error, 2 for another error, 3 for anything else.
int run_fsize_limited(uint64_t limit, const std::function<void()>& fn, std::string& msg) {
  const tu::ChildRun r = tu::run_in_child(
      [limit] {
        std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = limit;
        ::setrlimit(RLIMIT_FSIZE, &rl);
      },
      fn);
  msg = r.message;
  if (r.ending == tu::ChildRun::error) return r.code == Errc::io ? 0 : 2;
  return r.ending == tu::ChildRun::returned ? 1 : 3;
}

// Starts the CLI; stdin from `in` (a path, or "" for /dev/null, or a pipe fd
// when in_fd >= 0), stdout and stderr to `log`. Optional RLIMIT_FSIZE.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& log, const std::string& in = "",
                int in_fd = -1, uint64_t fsize_limit = 0) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int i = in_fd >= 0 ? in_fd : ::open(in.empty() ? "/dev/null" : in.c_str(), O_RDONLY);
    int o = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (i < 0 || o < 0) ::_exit(127);
    ::dup2(i, 0);
    ::dup2(o, 1);
    ::dup2(o, 2);
    if (fsize_limit) {
      struct rlimit rl;
      rl.rlim_cur = rl.rlim_max = fsize_limit;
      ::setrlimit(RLIMIT_FSIZE, &rl);
    }
    tu::exec_cli(args);
  }
  return pid;
}

// Waits up to `seconds` for `pred`; returns whether it became true.
bool wait_for(const std::function<bool()>& pred, double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

// waitpid with a deadline; SIGKILLs the child when it is exceeded.
int wait_child(pid_t pid, double seconds, bool& timed_out) {
  int st = 0;
  timed_out = false;
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (::waitpid(pid, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return st;
}

std::string status_text(int st) {
  if (WIFSIGNALED(st)) return "killed by signal " + std::to_string(WTERMSIG(st));
  return "exit " + std::to_string(WEXITSTATUS(st));
}

}  // namespace

TEST_SUITE("safe_write") {

TEST_CASE("a full disk (RLIMIT_FSIZE) during pack and unpack leaves nothing behind") {
  TmpDir d;
  std::string st = d / "m.safetensors", out = d / "m.wcz", back = d / "back.safetensors";
  stb::write_file(st, model_bytes(8));
  const uint64_t in_hash = file_hash(st);
  std::string msg;

  // pack, raw codec, so the container is as large as the input (8 MiB > 1 MiB limit).
  int rc = run_fsize_limited(1u << 20, [&] {
    wc::PackOptions po;
    po.threads = 2;
    po.codec = "raw";
    wc::pack(st, out, po);
  }, msg);
  INFO("pack under RLIMIT_FSIZE: " << msg);
  CHECK(rc == 0);
  CHECK(msg.find(out) != std::string::npos);
  CHECK_FALSE(exists(out));
  CHECK(temp_files(d.path).empty());
  CHECK(file_hash(st) == in_hash);

  // An existing output survives a failed overwrite (-f) intact.
  stb::write_file(out, {'o', 'l', 'd'});
  rc = run_fsize_limited(1u << 20, [&] {
    wc::PackOptions po;
    po.threads = 2;
    po.codec = "raw";
    po.force = true;
    wc::pack(st, out, po);
  }, msg);
  CHECK(rc == 0);
  CHECK(read_bytes(out) == std::vector<uint8_t>{'o', 'l', 'd'});
  CHECK(temp_files(d.path).empty());
  ::unlink(out.c_str());

  // unpack of a good container into too little space.
  wc::PackOptions po;
  po.threads = 2;
  po.codec = "raw";
  wc::pack(st, out, po);
  const uint64_t c_hash = file_hash(out);
  rc = run_fsize_limited(1u << 20, [&] {
    wc::UnpackOptions uo;
    uo.threads = 2;
    wc::unpack(out, back, uo);
  }, msg);
  INFO("unpack under RLIMIT_FSIZE: " << msg);
  CHECK(rc == 0);
  CHECK_FALSE(exists(back));
  CHECK(temp_files(d.path).empty());
  CHECK(file_hash(out) == c_hash);
  // With room, the same unpack succeeds (the limit was the only problem).
  wc::UnpackOptions uo;
  uo.threads = 2;
  wc::unpack(out, back, uo);
  CHECK(file_hash(back) == in_hash);
}

TEST_CASE("the CLI under RLIMIT_FSIZE fails cleanly instead of dying mid-write") {
  // A process past RLIMIT_FSIZE gets SIGXFSZ, whose default action kills it
  // before any cleanup runs; the CLI must treat it as a write error.
  TmpDir d;
  std::string st = d / "m.safetensors", out = d / "m.wcz";
  stb::write_file(st, model_bytes(8));
  const uint64_t in_hash = file_hash(st);
  pid_t pid = spawn_cli({"pack", st, "-o", out, "--codec", "raw", "-T", "2"}, d / "log", "", -1, 1u << 20);
  bool timed_out = false;
  int status = wait_child(pid, 60, timed_out);
  auto log = read_bytes(d / "log");
  std::string logs(log.begin(), log.end());
  INFO("CLI pack under RLIMIT_FSIZE: " << status_text(status) << "; output: " << logs);
  CHECK_FALSE(timed_out);
  CHECK(WIFEXITED(status));  // not killed by SIGXFSZ
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) != 0));
  CHECK(logs.find(out) != std::string::npos);
  CHECK_FALSE(exists(out));
  CHECK(temp_files(d.path).empty());
  CHECK(file_hash(st) == in_hash);
  for (auto& t : temp_files(d.path)) ::unlink((d / t).c_str());
}

TEST_CASE("SIGINT during pack leaves no output and no temporary, and the input untouched") {
  TmpDir d;
  std::string st = d / "big.safetensors", out = d / "big.safetensors.wcz";
  stb::write_file(st, model_bytes(32));
  const uint64_t in_hash = file_hash(st);
  // zstd level 19 on one thread: several seconds for 32 MiB, so SIGINT lands mid-pack.
  pid_t pid = spawn_cli({"pack", st, "--codec", "zstd", "--level", "19", "-T", "1"}, d / "log");
  bool started = wait_for([&] { return !temp_files(d.path).empty(); }, 20);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int st0 = 0;
  bool still_running = ::waitpid(pid, &st0, WNOHANG) == 0;
  ::kill(pid, SIGINT);
  bool timed_out = false;
  int status = still_running ? wait_child(pid, 20, timed_out) : st0;
  auto log = read_bytes(d / "log");
  std::string logs(log.begin(), log.end());
  INFO("pack after SIGINT: " << status_text(status) << "; temporaries: " << join(temp_files(d.path)) << "; output: " << logs);
  REQUIRE(started);
  REQUIRE(still_running);  // otherwise the test did not interrupt anything
  CHECK_FALSE(timed_out);
  CHECK((WIFSIGNALED(status) || WEXITSTATUS(status) != 0));
  CHECK_FALSE(exists(out));
  CHECK(temp_files(d.path).empty());
  CHECK(file_hash(st) == in_hash);
  for (auto& t : temp_files(d.path)) ::unlink((d / t).c_str());
}

TEST_CASE("SIGINT during a streaming unpack leaves no output and no temporary") {
  TmpDir d;
  std::string st = d / "m.safetensors", wcz = d / "m.wcz", out = d / "out.safetensors";
  stb::write_file(st, model_bytes(8));
  wc::PackOptions po;
  po.threads = 2;
  po.codec = "zstd";
  po.chunk_size = 1u << 16;
  wc::pack(st, wcz, po);
  auto c = read_bytes(wcz);
  // Feed the container through a pipe, stop half way, then interrupt.
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  pid_t pid = spawn_cli({"unpack", "-", "-o", out, "-T", "1"}, d / "log", "", p[0]);
  ::close(p[0]);
  std::signal(SIGPIPE, SIG_IGN);
  size_t half = c.size() / 2, done = 0;
  while (done < half) {
    ssize_t w = ::write(p[1], c.data() + done, half - done);
    if (w <= 0) break;
    done += size_t(w);
  }
  bool started = wait_for([&] { return !temp_files(d.path).empty(); }, 10);
  ::kill(pid, SIGINT);
  bool timed_out = false;
  int status = wait_child(pid, 20, timed_out);
  ::close(p[1]);
  auto log = read_bytes(d / "log");
  std::string logs(log.begin(), log.end());
  INFO("unpack - after SIGINT: " << status_text(status) << "; temporaries: " << join(temp_files(d.path))
                                 << "; output: " << logs);
  CHECK(started);
  CHECK_FALSE(timed_out);
  CHECK((WIFSIGNALED(status) || WEXITSTATUS(status) != 0));
  CHECK_FALSE(exists(out));
  CHECK(temp_files(d.path).empty());
  for (auto& t : temp_files(d.path)) ::unlink((d / t).c_str());

  // A stream cut short (no SIGINT, just EOF half way) fails cleanly as well.
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  pid = spawn_cli({"unpack", "-", "-o", out, "-T", "1"}, d / "log", "", p[0]);
  ::close(p[0]);
  done = 0;
  while (done < half) {
    ssize_t w = ::write(p[1], c.data() + done, half - done);
    if (w <= 0) break;
    done += size_t(w);
  }
  ::close(p[1]);
  status = wait_child(pid, 20, timed_out);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) != 0));
  CHECK_FALSE(exists(out));
  CHECK(temp_files(d.path).empty());
}

TEST_CASE("an existing output is refused without -f and kept byte for byte") {
  TmpDir d;
  std::string st = d / "m.safetensors", out = d / "m.safetensors.wcz";
  stb::write_file(st, model_bytes(4));
  stb::write_file(out, {1, 2, 3});
  bool threw = false;
  try {
    wc::PackOptions po;
    po.threads = 1;
    wc::pack(st, out, po);
  } catch (const wc::Error& e) {
    threw = true;
    CHECK(e.code() == Errc::exists);
    CHECK(e.file() == out);
  }
  CHECK(threw);
  CHECK(read_bytes(out) == std::vector<uint8_t>{1, 2, 3});
  CHECK(temp_files(d.path).empty());
}

}  // TEST_SUITE
