// Helpers shared by the doctest suites: temporary directories, file I/O,
// running the built CLI, running a function in a forked child.
#pragma once
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "platform/error.h"
#include "platform/file_io.h"

// Sanitized builds (scripts/ci_sanitize.sh: ASan+UBSan at -O1, TSan) run
// 5 to 20 times slower. Tests of scale (a model of many tensors, time
// ratios over large counts) take a smaller scale there through
// tu::sanitized_scale: the sanitizer checks the same code paths, and the
// default build runs the full scale.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WC_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WC_TEST_SANITIZED 1
#endif
#endif

namespace tu {

#ifdef WC_TEST_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
// n, or n / div in a sanitized build
constexpr size_t sanitized_scale(size_t n, size_t div) { return kSanitized ? n / div : n; }


// A path or argument in single quotes, for a shell command line.
inline std::string q(const std::string& s) { return "'" + s + "'"; }
inline bool exists(const std::string& p) { return wc::path_exists(p); }

// A copy of some bytes that ends exactly where an inaccessible page begins,
// so a decoder reading even one byte past the end faults in every build (not
// only under AddressSanitizer).
struct GuardedCopy {
  uint8_t* map = nullptr;
  size_t map_n = 0;
  const uint8_t* data = nullptr;
  size_t size = 0;
  GuardedCopy(const uint8_t* src, size_t n) : size(n) {
    const size_t ps = size_t(::sysconf(_SC_PAGESIZE));
    const size_t body = (n + ps - 1) / ps * ps;
    map_n = body + ps;
    void* m = ::mmap(nullptr, map_n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    map = static_cast<uint8_t*>(m);
    REQUIRE(::mprotect(map + body, ps, PROT_NONE) == 0);
    uint8_t* d = map + body - n;
    if (n) std::memcpy(d, src, n);
    data = d;
  }
  explicit GuardedCopy(const std::vector<uint8_t>& v) : GuardedCopy(v.data(), v.size()) {}
  GuardedCopy(const GuardedCopy&) = delete;
  GuardedCopy& operator=(const GuardedCopy&) = delete;
  ~GuardedCopy() { ::munmap(map, map_n); }
};

// A fresh directory under $TMPDIR, removed with its contents at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wcodec-test.XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline std::vector<uint8_t> read_file(const std::string& p) {
  std::vector<uint8_t> v;
  if (FILE* f = std::fopen(p.c_str(), "rb")) {
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) v.insert(v.end(), buf, buf + n);
    std::fclose(f);
  }
  return v;
}

inline std::vector<uint8_t> read_bytes(const std::string& p) { return read_file(p); }

// Names in `dir` that look like a writer's temporary (".wctmp.XXXXXX").
inline std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> v;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::strstr(e->d_name, ".wctmp.")) v.push_back(e->d_name);
    ::closedir(d);
  }
  return v;
}

inline void write_file(const std::string& p, const std::vector<uint8_t>& v) {
  FILE* f = std::fopen(p.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + p);
  std::fwrite(v.data(), 1, v.size(), f);
  std::fclose(f);
}

struct RunResult {
  int status = -1;  // exit status, or 128+signal
  std::string out;  // stdout and stderr together
};

// Runs a shell command line; captures its output.
inline RunResult run(const std::string& cmd) {
  RunResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

inline std::string cli() { return WCODEC_CLI_PATH; }

// In a forked child: replaces the process with the CLI run with `args`.
[[noreturn]] inline void exec_cli(const std::vector<std::string>& args) {
  std::vector<std::string> copy = args;
  std::string exe = WCODEC_CLI_PATH;
  std::vector<char*> argv = {exe.data()};
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(exe.c_str(), argv.data());
  ::_exit(127);
}

// How a function run in a forked child ended (for tests that set process
// limits such as RLIMIT_AS or RLIMIT_FSIZE, which must not touch the runner).
struct ChildRun {
  enum Ending { returned, error, bad_alloc, other_exception, killed } ending = killed;
  wc::Errc code = wc::Errc::ok;  // when ending == error
  int signal = 0;                // when ending == killed
  std::string message;           // Error::describe() or what()
  double seconds = 0;
};

// Forks; the child runs setup() (the limits), then fn(), and reports how fn
// ended through its exit status (0 returned, 1 bad_alloc, 2 another
// exception, 16 + Errc a wc::Error) and the message through a pipe.
inline ChildRun run_in_child(const std::function<void()>& setup, const std::function<void()>& fn) {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(p[0]);
    setup();
    int code = 0;
    std::string m;
    try {
      fn();
    } catch (const wc::Error& e) {
      code = 16 + int(e.code());
      m = e.describe();
    } catch (const std::bad_alloc&) {
      code = 1;
      m = "std::bad_alloc";
    } catch (const std::exception& e) {
      code = 2;
      m = e.what();
    }
    (void)!::write(p[1], m.data(), m.size());
    ::_exit(code);
  }
  ::close(p[1]);
  ChildRun r;
  char buf[1024];
  ssize_t k;
  while ((k = ::read(p[0], buf, sizeof buf)) > 0) r.message.append(buf, size_t(k));
  ::close(p[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (WIFSIGNALED(st)) {
    r.signal = WTERMSIG(st);
  } else if (const int c = WEXITSTATUS(st); c >= 16) {
    r.ending = ChildRun::error;
    r.code = wc::Errc(c - 16);
  } else {
    r.ending = c == 0 ? ChildRun::returned : c == 1 ? ChildRun::bad_alloc : ChildRun::other_exception;
  }
  return r;
}

}  // namespace tu
