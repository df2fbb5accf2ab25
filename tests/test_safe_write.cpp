// Safe writes: output goes to a temporary in the destination directory and is
// renamed into place only when complete. A pack or unpack that is interrupted
// (SIGINT to the CLI) or runs out of space (RLIMIT_FSIZE, a full disk in
// miniature) leaves no output, no temporary (".wctmp.XXXXXX"), an existing
// output untouched, and the input untouched. Sharded models of thousands of
// files unpack with few descriptors, and an interrupted or failed unpack
// removes every temporary and the directory it made.
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "platform/file_io.h"
#include "format/hash.h"
#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"

#include "platform/error.h"
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


// A sharded model in `dir`: `names.size()` shards of one tiny BF16 tensor each
// (different bytes per shard) and its index json. Returns every file's bytes
// by name, the index included.
std::vector<std::pair<std::string, std::vector<uint8_t>>> write_sharded(const std::string& dir,
                                                                        const std::vector<std::string>& names) {
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files;
  std::string idx = "{\"metadata\": {}, \"weight_map\": {";
  for (size_t i = 0; i < names.size(); ++i) {
    std::string t = "t" + std::to_string(i);
    std::vector<stb::StTensor> ts = {{t, DType::BF16, {16}, stb::pattern_bytes(32, i + 1)}};
    files.push_back({names[i], stb::build(ts)});
    stb::write_file(dir + "/" + names[i], files.back().second);
    idx += (i ? ", " : "") + stb::quote(t) + ": " + stb::quote(names[i]);
  }
  idx += "}}";
  files.push_back({"model.safetensors.index.json", std::vector<uint8_t>(idx.begin(), idx.end())});
  stb::write_file(dir + "/model.safetensors.index.json", files.back().second);
  return files;
}

std::vector<std::string> shard_names(size_t n) {
  std::vector<std::string> v;
  char buf[64];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    v.push_back(buf);
  }
  return v;
}

// Entries of `dir` other than "." and ".." (empty when it does not exist).
std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> v;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) v.push_back(e->d_name);
    ::closedir(d);
  }
  return v;
}

// Removes `dir` and the files in it (what a failed check may have left).
void remove_flat_dir(const std::string& dir) {
  for (const auto& e : dir_entries(dir)) ::unlink((dir + "/" + e).c_str());
  ::rmdir(dir.c_str());
}

// Names of the files in `files` whose bytes in `dir` differ (or are missing).
std::vector<std::string> mismatches(const std::string& dir,
                                    const std::vector<std::pair<std::string, std::vector<uint8_t>>>& files) {
  std::vector<std::string> bad;
  for (const auto& [name, bytes] : files)
    if (read_bytes(dir + "/" + name) != bytes) bad.push_back(name);
  return bad;
}

// Packs the sharded model in `dir` (raw codec: quick, and payload bytes are
// the tensors' bytes) into `wcz`.
void pack_sharded(const std::string& dir, const std::string& wcz) {
  wc::PackOptions po;
  po.threads = 2;
  po.codec = "raw";
  po.inline_small = "never";  // every tensor in chunks, which the tests cut and corrupt
  wc::pack(dir, wcz, po);
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

TEST_CASE("300 shards unpack under RLIMIT_NOFILE = 128 (file and stream input), every shard intact") {
  // Each finished file gives its descriptor back: only the one being written
  // holds one. (Sized for time: each file costs an fsync, some ms on a VM disk.)
  TmpDir d;
  const auto files = write_sharded(d / "model", shard_names(300));
  pack_sharded(d / "model", d / "m.wcz");
  const std::string wcz = d / "m.wcz";
  for (bool stream : {false, true}) {
    CAPTURE(stream);
    const std::string out = d / (stream ? "out-stream" : "out-file");
    const tu::ChildRun r = tu::run_in_child(
        [&] {
          if (stream) {
            int fd = ::open(wcz.c_str(), O_RDONLY);
            if (fd < 0 || ::dup2(fd, 0) < 0) ::_exit(3);
            ::close(fd);
          }
          struct rlimit rl;
          rl.rlim_cur = rl.rlim_max = 128;
          if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(4);
        },
        [&] {
          wc::UnpackOptions uo;
          uo.threads = 2;
          wc::unpack(stream ? "-" : wcz, out, uo);
        });
    INFO("unpack under RLIMIT_NOFILE = 128: " << r.message << " (" << r.seconds << " s)");
    CHECK(r.ending == tu::ChildRun::returned);
    CHECK(dir_entries(out).size() == files.size());
    const auto bad = mismatches(out, files);
    CHECK_MESSAGE(bad.empty(), bad.size() << " file(s) differ or are missing, e.g. " << (bad.empty() ? "" : bad[0]));
    CHECK(temp_files(out).empty());
  }
}

TEST_CASE("file names of 255 bytes (NAME_MAX) unpack: the temporary is never longer than that") {
  TmpDir d;
  const std::string longname = std::string(255 - 12, 'n') + ".safetensors";
  REQUIRE(longname.size() == 255);
  const auto files = write_sharded(d / "model", {longname, "b.safetensors"});
  pack_sharded(d / "model", d / "m.wcz");
  wc::UnpackOptions uo;
  uo.threads = 2;
  wc::unpack(d / "m.wcz", d / "out", uo);
  CHECK(mismatches(d / "out", files).empty());
  CHECK(dir_entries(d / "out").size() == 3);
  // A single-file model of that name: its temporary is in the same directory.
  stb::write_file(d / longname, files[0].second);
  wc::PackOptions po;
  po.threads = 2;
  wc::pack(d / longname, d / "single.wcz", po);
  REQUIRE(::mkdir((d / "back").c_str(), 0755) == 0);
  wc::unpack(d / "single.wcz", d / "back/" + longname, uo);
  CHECK(read_bytes(d / "back/" + longname) == files[0].second);
  CHECK(dir_entries(d / "back") == std::vector<std::string>{longname});
}

TEST_CASE("a signal during a many-shard unpack removes every temporary and the directory it made, not one that was there") {
  // The container reaches the CLI through a pipe that stops after the first
  // 400 of 800 shards, so the signal lands while over a hundred finished
  // shards wait as temporaries (and the CLI blocks reading the rest).
  TmpDir d;
  write_sharded(d / "model", shard_names(800));
  pack_sharded(d / "model", d / "m.wcz");
  const auto c = read_bytes(d / "m.wcz");
  // Up to the payload of the middle chunk: the manifest (most of a container
  // of tiny shards) and the first 400 shards' bytes.
  size_t half = 0;
  {
    wc::ContainerReader r(d / "m.wcz", wc::kReaderChecks);
    REQUIRE(r.index().size() > 400);
    half = size_t(r.index()[400].offset);
  }
  std::signal(SIGPIPE, SIG_IGN);
  const std::string keep = "keep.txt";
  for (bool existed : {false, true}) {
    CAPTURE(existed);
    const std::string out = d / "out";
    remove_flat_dir(out);
    if (existed) {
      REQUIRE(::mkdir(out.c_str(), 0755) == 0);
      stb::write_file(out + "/" + keep, {'k'});
    }
    const int sig = existed ? SIGHUP : SIGTERM;
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = spawn_cli({"unpack", "-", "-o", out, "-T", "2"}, d / "log", "", p[0]);
    ::close(p[0]);
    size_t done = 0;
    while (done < half) {
      ssize_t w = ::write(p[1], c.data() + done, half - done);
      if (w <= 0) break;
      done += size_t(w);
    }
    size_t temps = 0;
    bool started = wait_for([&] { return (temps = temp_files(out).size()) >= 150; }, 30);
    int st0 = 0;
    bool still_running = ::waitpid(pid, &st0, WNOHANG) == 0;
    ::kill(pid, sig);
    bool timed_out = false;
    int status = still_running ? wait_child(pid, 20, timed_out) : st0;
    ::close(p[1]);
    auto log = read_bytes(d / "log");
    INFO("unpack after signal " << sig << ": " << status_text(status) << "; " << temps
                                << " temporaries seen; left in the directory: " << dir_entries(out).size()
                                << "; output: " << std::string(log.begin(), log.end()));
    REQUIRE(started);
    REQUIRE(still_running);
    CHECK_FALSE(timed_out);
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == sig));
    CHECK(temp_files(out).empty());
    if (existed) {
      CHECK(dir_entries(out) == std::vector<std::string>{keep});
      CHECK(read_bytes(out + "/" + keep) == std::vector<uint8_t>{'k'});
    } else {
      CHECK_FALSE(exists(out));
    }
    CHECK(temp_files(d.path).empty());
  }
}

TEST_CASE("an unpack failing at its last shard removes the directory it made, and keeps one that was there") {
  TmpDir d;
  write_sharded(d / "model", shard_names(80));
  pack_sharded(d / "model", d / "m.wcz");
  auto c = read_bytes(d / "m.wcz");
  {
    wc::ContainerReader r(d / "m.wcz", wc::kReaderChecks);
    REQUIRE_FALSE(r.index().empty());
    // the last shard's last chunk (a folder packs in path order: the index
    // file, a blob, may come after the shards)
    uint32_t i = uint32_t(r.index().size());
    while (i > 0 && r.tensor_of_chunk(i - 1).name != "t79") --i;
    REQUIRE(i > 0);
    const auto& last = r.index()[i - 1];
    c[last.offset + last.stored_size / 2] ^= 0x10;  // its checksum now fails; nothing recomputed
  }
  stb::write_file(d / "bad.wcz", c);
  const std::string out = d / "out", keep = "keep.txt";
  for (bool existed : {false, true}) {
    CAPTURE(existed);
    if (existed) {
      REQUIRE(::mkdir(out.c_str(), 0755) == 0);
      stb::write_file(out + "/" + keep, {'k'});
    }
    // In the library, from the file.
    bool threw = false;
    try {
      wc::UnpackOptions uo;
      uo.threads = 2;
      wc::unpack(d / "bad.wcz", out, uo);
    } catch (const wc::Error& e) {
      threw = true;
      INFO(e.describe());
      CHECK((e.code() == Errc::checksum || e.code() == Errc::corrupt));
    }
    CHECK(threw);
    CHECK(temp_files(d.path).empty());
    if (existed) CHECK(dir_entries(out) == std::vector<std::string>{keep});
    else CHECK_FALSE(exists(out));
    // The CLI, from standard input.
    pid_t pid = spawn_cli({"unpack", "-", "-o", out, "-T", "2"}, d / "log", d / "bad.wcz");
    bool timed_out = false;
    int status = wait_child(pid, 60, timed_out);
    auto log = read_bytes(d / "log");
    INFO("CLI: " << status_text(status) << "; output: " << std::string(log.begin(), log.end()));
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 1));
    CHECK(temp_files(d.path).empty());
    if (existed) {
      CHECK(dir_entries(out) == std::vector<std::string>{keep});
      CHECK(read_bytes(out + "/" + keep) == std::vector<uint8_t>{'k'});
    } else {
      CHECK_FALSE(exists(out));
    }
  }
  // With the good container, the same unpack works (the corruption was the only problem).
  wc::UnpackOptions uo;
  uo.threads = 2;
  wc::unpack(d / "m.wcz", d / "good", uo);
  CHECK(dir_entries(d / "good").size() == 81);
}

TEST_CASE("the signal handler removes every registered temporary, however many (200 at once), then the directory") {
  // Called directly in a child (as the CLI's handler would), with 200
  // temporaries alive: most still open, a quarter finished (descriptor closed).
  TmpDir d;
  const std::string made = d / "made";
  const tu::ChildRun r = tu::run_in_child([] {}, [&] {
    if (::mkdir(made.c_str(), 0755) != 0) throw std::runtime_error("mkdir");
    wc::SignalCleanup dir_entry(made, wc::SignalCleanup::directory);
    std::vector<std::unique_ptr<wc::AtomicFile>> fs;
    for (int i = 0; i < 200; ++i) {
      fs.push_back(std::make_unique<wc::AtomicFile>(made + "/f" + std::to_string(i), false));
      fs.back()->write("x", 1);
      if (i % 4 == 0) fs.back()->finish();
    }
    const size_t before = temp_files(made).size();
    wc::remove_temporaries_from_signal_handler();
    const size_t after = temp_files(made).size();
    const bool dir_left = wc::path_exists(made), parent_left = wc::is_directory(d.path);
    if (before != 200 || after != 0 || dir_left || !parent_left)
      throw std::runtime_error("temporaries before: " + std::to_string(before) + ", after: " + std::to_string(after) +
                               (dir_left ? "; the registered directory is still there" : "") +
                               (parent_left ? "" : "; an unregistered directory was removed"));
  });
  INFO(r.message);
  CHECK(r.ending == tu::ChildRun::returned);
  CHECK_FALSE(exists(made));
  CHECK(wc::is_directory(d.path));
}

TEST_CASE("temporaries registered from several threads while the handler walks the list: none lost, none wrong") {
  // Four writers create, finish, commit and drop AtomicFiles while the main
  // thread keeps running the handler's walk (removing what it finds). At the
  // end each writer holds 50 open; one more walk must remove all of them, and
  // must never have removed a committed file.
  TmpDir d;
  const std::string dir = d.path;
  const tu::ChildRun r = tu::run_in_child([] {}, [&] {
    std::atomic<int> running{4};
    std::mutex mu;
    std::vector<std::string> committed;
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&, t] {
        std::vector<std::unique_ptr<wc::AtomicFile>> alive;
        for (int i = 0; i < 250; ++i) {
          const std::string name = dir + "/w" + std::to_string(t) + "-" + std::to_string(i);
          alive.push_back(std::make_unique<wc::AtomicFile>(name, false));
          alive.back()->write(name.data(), name.size());
          if (i % 10 == 0) alive.back()->finish();
          if (alive.size() > 50) {
            auto f = std::move(alive.front());
            alive.erase(alive.begin());
            if (i % 40 == 0) {
              try {
                f->commit();  // fails when a walk removed its temporary first
                std::lock_guard<std::mutex> lock(mu);
                committed.push_back(f->path());
              } catch (const wc::Error&) {
              }
            }
          }
        }
        running.fetch_sub(1);
        while (running.load() >= 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // keep `alive`
      });
    int walks = 0;
    while (running.load() > 0) {
      wc::remove_temporaries_from_signal_handler();
      ++walks;
    }
    // Every writer now holds 50 registered temporaries (some already removed by a walk).
    wc::remove_temporaries_from_signal_handler();
    const size_t left = temp_files(dir).size();
    size_t committed_missing = 0;
    for (const auto& p : committed)
      if (read_bytes(p) != std::vector<uint8_t>(p.begin(), p.end())) ++committed_missing;
    running.store(-1);
    for (auto& th : ts) th.join();
    if (left != 0 || committed_missing != 0 || walks == 0)
      throw std::runtime_error(std::to_string(left) + " temporaries left, " + std::to_string(committed_missing) +
                               " committed files lost, " + std::to_string(walks) + " walks");
  });
  INFO(r.message);
  CHECK(r.ending == tu::ChildRun::returned);
  CHECK(temp_files(dir).empty());
}

}  // TEST_SUITE
