// wcodec_fuzz_replay: runs every fuzz target without libFuzzer (any compiler),
// on its generated seeds, on the committed inputs under fuzz/corpus/TARGET and
// fuzz/regressions/TARGET, and on deterministic mutations of all of those
// (bit flips, byte overwrites, truncations, splices). ctest runs it (label
// fuzz_regression); a crash or a failed property aborts with the input named.
//
//   wcodec_fuzz_replay [--root FUZZDIR] [--mutations N] [--only TARGET] [TARGET:PATH ...]
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "platform/error.h"
#include "fuzz/seeds.h"

#define WC_DECLARE(n) extern "C" int wcfuzz_entry_##n(const uint8_t*, size_t);
WC_DECLARE(container)
WC_DECLARE(stream)
WC_DECLARE(container_struct)
WC_DECLARE(stream_struct)
WC_DECLARE(safetensors)
WC_DECLARE(shard_index)
WC_DECLARE(decode_raw)
WC_DECLARE(decode_zstd)
WC_DECLARE(decode_fans)
WC_DECLARE(roundtrip_raw)
WC_DECLARE(roundtrip_zstd)
WC_DECLARE(roundtrip_fans)
WC_DECLARE(exact_top)

namespace {

using Entry = int (*)(const uint8_t*, size_t);
struct Target {
  const char* name;
  Entry fn;
};
const Target kTargets[] = {
    {"container", wcfuzz_entry_container},       {"stream", wcfuzz_entry_stream},
    {"container_struct", wcfuzz_entry_container_struct}, {"stream_struct", wcfuzz_entry_stream_struct},
    {"safetensors", wcfuzz_entry_safetensors},   {"shard_index", wcfuzz_entry_shard_index},
    {"decode_raw", wcfuzz_entry_decode_raw},     {"decode_zstd", wcfuzz_entry_decode_zstd},
    {"decode_fans", wcfuzz_entry_decode_fans},   {"roundtrip_raw", wcfuzz_entry_roundtrip_raw},
    {"roundtrip_zstd", wcfuzz_entry_roundtrip_zstd}, {"roundtrip_fans", wcfuzz_entry_roundtrip_fans},
    {"exact_top", wcfuzz_entry_exact_top},
};

char g_label[512];

void on_crash(int sig) {
  const char* m = "\nwcodec_fuzz_replay: crashed on input: ";
  (void)!::write(2, m, std::strlen(m));
  (void)!::write(2, g_label, std::strlen(g_label));
  (void)!::write(2, "\n", 1);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void set_label(const std::string& s) {
  std::snprintf(g_label, sizeof g_label, "%s", s.c_str());
}

bool read_file(const std::string& p, std::vector<uint8_t>& out) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return false;
  out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

// Regular files directly under `dir` (sorted, so runs are reproducible).
std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> v;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return v;
  if (S_ISREG(st.st_mode)) return {dir};
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string p = dir + "/" + e->d_name;
      if (e->d_name[0] != '.' && ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) v.push_back(p);
    }
    ::closedir(d);
  }
  std::sort(v.begin(), v.end());
  return v;
}

struct Rng {
  uint64_t x;
  uint64_t next() {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return x;
  }
  size_t below(size_t n) { return n ? size_t(next() % n) : 0; }
};

std::vector<uint8_t> mutate(const std::vector<uint8_t>& in, const std::vector<uint8_t>& other, Rng& r) {
  std::vector<uint8_t> v = in;
  switch (r.below(6)) {
    case 0:  // 1..4 bit flips
      for (size_t k = 0, n = 1 + r.below(4); k < n && !v.empty(); ++k) v[r.below(v.size())] ^= uint8_t(1u << r.below(8));
      break;
    case 1:  // interesting byte values
      if (!v.empty()) {
        static const uint8_t vals[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, 0x40};
        v[r.below(v.size())] = vals[r.below(sizeof vals)];
      }
      break;
    case 2:  // an interesting 32/64-bit value at a random offset
      if (v.size() >= 8) {
        static const uint64_t vals[] = {0, ~0ull, 1ull << 31, 1ull << 32, 1ull << 40, 0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFFull};
        uint64_t x = vals[r.below(sizeof vals / sizeof vals[0])];
        std::memcpy(v.data() + r.below(v.size() - 7), &x, r.below(2) ? 8 : 4);
      }
      break;
    case 3:  // truncate
      v.resize(r.below(v.size() + 1));
      break;
    case 4:  // delete or duplicate a range
      if (!v.empty()) {
        size_t a = r.below(v.size()), n = 1 + r.below(std::min<size_t>(64, v.size() - a));
        if (r.below(2)) v.erase(v.begin() + long(a), v.begin() + long(a + n));
        else v.insert(v.begin() + long(a), in.begin() + long(a), in.begin() + long(a + n));
      }
      break;
    default:  // splice with another input
      if (!other.empty()) {
        size_t cut = r.below(v.size() + 1), from = r.below(other.size());
        v.resize(cut);
        v.insert(v.end(), other.begin() + long(from), other.end());
      }
      break;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string root = WCODEC_FUZZ_DIR;
  std::string only;
  unsigned mutations = 200;
  std::vector<std::pair<std::string, std::string>> extra;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--root" && i + 1 < argc) root = argv[++i];
    else if (a == "--mutations" && i + 1 < argc) mutations = unsigned(std::stoul(argv[++i]));
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else if (a.find(':') != std::string::npos) extra.push_back({a.substr(0, a.find(':')), a.substr(a.find(':') + 1)});
    else {
      std::fprintf(stderr, "usage: %s [--root FUZZDIR] [--mutations N] [--only TARGET] [TARGET:PATH ...]\n", argv[0]);
      return 2;
    }
  }
  for (int s : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) std::signal(s, on_crash);
  auto t0 = std::chrono::steady_clock::now();
  uint64_t total = 0;
  for (const auto& t : kTargets) {
    if (!only.empty() && only != t.name) continue;
    struct In {
      std::string label;
      std::vector<uint8_t> bytes;
    };
    std::vector<In> inputs;
    try {
      for (auto& s : wcfuzz::make_seeds(t.name)) inputs.push_back({std::string("seed ") + t.name + "/" + s.name, std::move(s.bytes)});
    } catch (const wc::Error& e) {
      std::fprintf(stderr, "%s: seed generation failed: %s\n", t.name, e.describe().c_str());
      return 1;
    }
    size_t generated = inputs.size(), committed = 0;
    std::vector<std::string> paths;
    for (const char* sub : {"/corpus/", "/regressions/"})
      for (auto& p : files_in(root + sub + t.name)) paths.push_back(p);
    for (const auto& [tn, p] : extra)
      if (tn == t.name)
        for (auto& f : files_in(p)) paths.push_back(f);
    for (const auto& p : paths) {
      In in{p, {}};
      if (!read_file(p, in.bytes)) {
        std::fprintf(stderr, "cannot read %s\n", p.c_str());
        return 1;
      }
      inputs.push_back(std::move(in));
      ++committed;
    }
    uint64_t runs = 0;
    for (const auto& in : inputs) {
      set_label(in.label);
      t.fn(in.bytes.data(), in.bytes.size());
      ++runs;
    }
    Rng rng{0x5EED0000ull + std::strlen(t.name) * 7919};
    for (size_t i = 0; i < inputs.size(); ++i)
      for (unsigned k = 0; k < mutations; ++k) {
        auto m = mutate(inputs[i].bytes, inputs[rng.below(inputs.size())].bytes, rng);
        set_label(inputs[i].label + " (mutation " + std::to_string(k) + ")");
        t.fn(m.data(), m.size());
        ++runs;
      }
    std::printf("%-16s %4zu generated + %3zu committed inputs, %7llu executions\n", t.name, generated, committed,
                (unsigned long long)runs);
    std::fflush(stdout);
    total += runs;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("fuzz replay: %llu executions in %.1f s, no crash\n", (unsigned long long)total, s);
  return 0;
}
