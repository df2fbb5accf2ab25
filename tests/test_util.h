// Helpers shared by the container, CLI and corpus tests: temporary
// directories, file I/O, running the built CLI.
#pragma once
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "format/file_io.h"

namespace tu {

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

// Names in `dir` that look like a writer's temporary (".NAME.wctmp.XXXXXX").
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

}  // namespace tu
