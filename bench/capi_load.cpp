// C API load baseline: "the C library decoding the same tensors into
// memory", for comparison with the Python loaders (bench/python/load_bench.py).
//
//   capi_load FILE.wcz [--repeat N] [--threads T] [--fadvise] [--no-verify]
//
// Lists every tensor of every stored safetensors file (file order, as
// wcodec.torch.load_file does) and decodes them all with ONE
// wcodec_decode_tensors call (dtype NULL: each tensor's own). Each of the N
// repetitions runs two timed loads, each on a freshly opened archive
// (wcodec_open is timed separately; the archive is closed after each):
//
//   decode: into buffers allocated and touched (memset) once, before any
//           timing: the decode alone, no allocation, no page faults on the
//           destinations.                        -> best_s, median_s, gbps
//   alloc:  malloc one buffer per tensor, then the same decode into them:
//           allocation and first-touch page faults included, as a loader
//           that allocates per call pays them (freed after each repetition).
//                                                  -> alloc_best_s, alloc_median_s
//
// --fadvise drops the file's pages from the page cache
// (posix_fadvise(POSIX_FADV_DONTNEED), after the archive is closed, so no
// mapping pins them) before each open: cold-cache reads from the disk.
//
// Prints one JSON line:
//   {"bytes", "tensors", "threads", "repeat", "verify_chunks", "fadvise",
//    "open_s" (median open), "open_first_s", "open_best_s",
//    "best_s", "median_s", "gbps" (bytes / best_s / 1e9),
//    "alloc_best_s", "alloc_median_s", "alloc_gbps",
//    "load_best_s", "load_median_s" (open + alloc + decode of one repetition),
//    "faults_median", "alloc_faults_median" (minor page faults of the process
//    during one decode / one alloc + decode: destinations touched for the
//    first time, and the container's mapping), "times_s", "alloc_times_s",
//    "opens_s" (every timing, for callers that pool several runs)}
#include <wcodec/wcodec.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  if (n == 0) return 0;
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

double best(const std::vector<double>& v) { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }

void usage(FILE* to) {
  std::fprintf(to, "usage: capi_load FILE.wcz [--repeat N] [--threads T] [--fadvise] [--no-verify]\n");
}

std::string json_list(const std::vector<double>& v) {
  std::string s = "[";
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.6f", i ? ", " : "", v[i]);
    s += buf;
  }
  return s + "]";
}

[[noreturn]] void die(const char* what, const char* msg) {
  std::fprintf(stderr, "capi_load: %s: %s\n", what, msg);
  std::exit(1);
}

void drop_from_cache(const char* path) {
  int fd = ::open(path, O_RDONLY);
  if (fd < 0) die(path, "cannot open for posix_fadvise");
  int rc = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  if (rc) die(path, std::strerror(rc));
}

}  // namespace

int main(int argc, char** argv) {
  const char* path = nullptr;
  int repeat = 5;
  unsigned threads = 0;
  bool verify = true, fadvise = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--repeat" && i + 1 < argc) {
      repeat = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--threads" && i + 1 < argc) {
      threads = unsigned(std::max(0, std::atoi(argv[++i])));
    } else if (a == "--fadvise") {
      fadvise = true;
    } else if (a == "--no-verify") {
      verify = false;
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (!a.empty() && a[0] != '-' && !path) {
      path = argv[i];
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (!path) {
    usage(stderr);
    return 2;
  }

  char err[1024] = {0};
  std::vector<double> opens;
  auto open_archive = [&]() {
    if (fadvise) drop_from_cache(path);
    wcodec_archive* ar = nullptr;
    double t0 = now();
    if (wcodec_open(path, &ar, err, sizeof err)) die("open", err);
    opens.push_back(now() - t0);
    if (!verify) wcodec_set_verify_chunks(ar, 0);
    return ar;
  };

  // The job list: every tensor of every safetensors file, in file order.
  std::vector<wcodec_decode_job> jobs;
  uint64_t total = 0;
  {
    wcodec_archive* ar = open_archive();
    size_t nfiles = wcodec_file_count(ar);
    for (size_t f = 0; f < nfiles; ++f) {
      wcodec_file_info fi = WCODEC_FILE_INFO_INIT;
      if (int rc = wcodec_get_file_info(ar, f, &fi)) die("file info", wcodec_error_name(rc));
      if (std::strcmp(fi.kind, "safetensors") != 0) continue;
      for (size_t t = fi.first_tensor; t < fi.first_tensor + fi.tensor_count; ++t) {
        wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
        if (int rc = wcodec_get_tensor_info(ar, t, &info)) die("tensor info", wcodec_error_name(rc));
        jobs.push_back({t, nullptr, size_t(info.byte_size), nullptr});
        total += info.byte_size;
      }
    }
    wcodec_close(ar);
  }
  const double open_first = opens.front();

  auto decode = [&](wcodec_archive* ar, std::vector<wcodec_decode_job>& js) {
    if (wcodec_decode_tensors(ar, js.data(), js.size(), threads, err, sizeof err)) die("decode", err);
  };
  auto alloc_jobs = [&](std::vector<wcodec_decode_job>& js) {
    js = jobs;
    for (auto& j : js) {
      j.dst = std::malloc(std::max<size_t>(j.dst_len, 1));
      if (!j.dst) die("malloc", "out of memory");
    }
  };
  auto free_jobs = [](std::vector<wcodec_decode_job>& js) {
    for (auto& j : js) std::free(j.dst);
    js.clear();
  };

  // Destinations of the decode-only runs: allocated and touched up front.
  std::vector<wcodec_decode_job> pre;
  alloc_jobs(pre);
  for (auto& j : pre) std::memset(j.dst, 0, j.dst_len);

  std::vector<double> dec, alloc, load, dec_faults, alloc_faults;
  for (int r = 0; r < repeat; ++r) {
    {  // allocation + first touch + decode
      wcodec_archive* ar = open_archive();
      double o = opens.back();
      std::vector<wcodec_decode_job> js;
      long f0 = minor_faults();
      double t0 = now();
      alloc_jobs(js);
      decode(ar, js);
      double t = now() - t0;
      alloc_faults.push_back(double(minor_faults() - f0));
      alloc.push_back(t);
      load.push_back(o + t);
      free_jobs(js);
      wcodec_close(ar);
    }
    {  // decode alone
      wcodec_archive* ar = open_archive();
      long f0 = minor_faults();
      double t0 = now();
      decode(ar, pre);
      dec.push_back(now() - t0);
      dec_faults.push_back(double(minor_faults() - f0));
      wcodec_close(ar);
    }
  }
  free_jobs(pre);

  std::vector<double> later_opens(opens.begin() + 1, opens.end());
  double b = best(dec), ab = best(alloc);
  std::printf(
      "{\"bytes\": %llu, \"tensors\": %zu, \"threads\": %u, \"repeat\": %d, \"verify_chunks\": %s, "
      "\"fadvise\": %s, \"open_s\": %.6f, \"open_first_s\": %.6f, \"open_best_s\": %.6f, "
      "\"best_s\": %.6f, \"median_s\": %.6f, \"gbps\": %.4f, "
      "\"alloc_best_s\": %.6f, \"alloc_median_s\": %.6f, \"alloc_gbps\": %.4f, "
      "\"load_best_s\": %.6f, \"load_median_s\": %.6f, \"faults_median\": %.0f, \"alloc_faults_median\": %.0f, "
      "\"times_s\": %s, \"alloc_times_s\": %s, \"opens_s\": %s}\n",
      (unsigned long long)total, jobs.size(), threads, repeat, verify ? "true" : "false", fadvise ? "true" : "false",
      median(later_opens), open_first, best(later_opens), b, median(dec), b > 0 ? total / b / 1e9 : 0.0, ab,
      median(alloc), ab > 0 ? total / ab / 1e9 : 0.0, best(load), median(load), median(dec_faults),
      median(alloc_faults), json_list(dec).c_str(), json_list(alloc).c_str(), json_list(later_opens).c_str());
  return 0;
}
