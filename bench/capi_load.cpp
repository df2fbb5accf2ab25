// C API load baseline: what "the C library decoding the same tensors into
// memory" costs, for comparison with the Python loaders
// (bench/python/load_bench.py).
//
//   capi_load FILE.wcz [--repeat N] [--threads T] [--no-verify]
//
// Opens FILE with wcodec_open (timed: open_s), allocates one buffer per
// tensor of every stored safetensors file (and touches every page once, so
// the steady-state figures exclude page faults), then times N repetitions of
// ONE wcodec_decode_tensors call decoding every tensor (dtype NULL: the
// tensor's own). It also times, once per repetition and separately, the same
// decode into freshly allocated, never touched buffers (alloc_*: allocation,
// first-touch page faults and the decode, as a loader that allocates per call
// pays them; freed after each repetition). Prints one JSON line:
//
//   {"bytes":..., "tensors":..., "threads":..., "repeat":..., "open_s":...,
//    "best_s":..., "median_s":..., "gbps":..., "alloc_best_s":...,
//    "alloc_median_s":..., "alloc_gbps":..., "open_best_s":...}
//
// gbps = bytes / best_s / 1e9 (decoded bytes); open_best_s is the best of N
// open+close cycles after the first (the first, open_s, may include reading
// the file's index from disk).
#include <wcodec/wcodec.h>

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

int usage() {
  std::fprintf(stderr, "usage: capi_load FILE.wcz [--repeat N] [--threads T] [--no-verify]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const char* path = nullptr;
  int repeat = 5;
  unsigned threads = 0;
  bool verify = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--repeat" && i + 1 < argc) {
      repeat = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--threads" && i + 1 < argc) {
      threads = unsigned(std::max(0, std::atoi(argv[++i])));
    } else if (a == "--no-verify") {
      verify = false;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (!a.empty() && a[0] != '-' && !path) {
      path = argv[i];
    } else {
      return usage();
    }
  }
  if (!path) return usage();

  char err[1024] = {0};
  wcodec_archive* ar = nullptr;
  double t0 = now();
  int rc = wcodec_open(path, &ar, err, sizeof err);
  double open_s = now() - t0;
  if (rc) {
    std::fprintf(stderr, "capi_load: %s\n", err);
    return 1;
  }
  if (!verify) wcodec_set_verify_chunks(ar, 0);

  // Every tensor of every safetensors file, in file order (as the Python
  // loaders list them).
  std::vector<wcodec_decode_job> jobs;
  uint64_t total = 0;
  size_t nfiles = wcodec_file_count(ar);
  for (size_t f = 0; f < nfiles; ++f) {
    wcodec_file_info fi = WCODEC_FILE_INFO_INIT;
    if ((rc = wcodec_get_file_info(ar, f, &fi))) {
      std::fprintf(stderr, "capi_load: file info %zu: %s\n", f, wcodec_error_name(rc));
      return 1;
    }
    if (std::strcmp(fi.kind, "safetensors") != 0) continue;
    for (size_t t = fi.first_tensor; t < fi.first_tensor + fi.tensor_count; ++t) {
      wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
      if ((rc = wcodec_get_tensor_info(ar, t, &info))) {
        std::fprintf(stderr, "capi_load: tensor info %zu: %s\n", t, wcodec_error_name(rc));
        return 1;
      }
      jobs.push_back({t, nullptr, size_t(info.byte_size), nullptr});
      total += info.byte_size;
    }
  }

  auto alloc_all = [&](std::vector<void*>& bufs) {
    bufs.assign(jobs.size(), nullptr);
    for (size_t j = 0; j < jobs.size(); ++j) {
      bufs[j] = std::malloc(std::max<size_t>(jobs[j].dst_len, 1));
      if (!bufs[j]) {
        std::fprintf(stderr, "capi_load: out of memory\n");
        std::exit(1);
      }
      jobs[j].dst = bufs[j];
    }
  };
  auto free_all = [](std::vector<void*>& bufs) {
    for (void* p : bufs) std::free(p);
    bufs.clear();
  };
  auto decode = [&]() {
    int r = wcodec_decode_tensors(ar, jobs.data(), jobs.size(), threads, err, sizeof err);
    if (r) {
      std::fprintf(stderr, "capi_load: %s\n", err);
      std::exit(1);
    }
  };

  // (a) allocation + first touch + decode, per repetition (fresh buffers).
  std::vector<double> alloc_times;
  for (int r = 0; r < repeat; ++r) {
    std::vector<void*> bufs;
    double a0 = now();
    alloc_all(bufs);
    decode();
    alloc_times.push_back(now() - a0);
    free_all(bufs);
  }

  // (b) buffers allocated and touched before timing: the decode alone.
  std::vector<void*> bufs;
  alloc_all(bufs);
  for (size_t j = 0; j < jobs.size(); ++j) std::memset(bufs[j], 0, jobs[j].dst_len);
  std::vector<double> times;
  for (int r = 0; r < repeat; ++r) {
    double d0 = now();
    decode();
    times.push_back(now() - d0);
  }
  free_all(bufs);
  wcodec_close(ar);

  // Open + close again (index now in the page cache).
  std::vector<double> opens;
  for (int r = 0; r < repeat; ++r) {
    wcodec_archive* b = nullptr;
    double o0 = now();
    if (wcodec_open(path, &b, err, sizeof err)) {
      std::fprintf(stderr, "capi_load: %s\n", err);
      return 1;
    }
    opens.push_back(now() - o0);
    wcodec_close(b);
  }

  double best = *std::min_element(times.begin(), times.end());
  double abest = *std::min_element(alloc_times.begin(), alloc_times.end());
  std::printf(
      "{\"bytes\": %llu, \"tensors\": %zu, \"threads\": %u, \"repeat\": %d, \"verify_chunks\": %s, "
      "\"open_s\": %.6f, \"open_best_s\": %.6f, \"best_s\": %.6f, \"median_s\": %.6f, \"gbps\": %.4f, "
      "\"alloc_best_s\": %.6f, \"alloc_median_s\": %.6f, \"alloc_gbps\": %.4f}\n",
      (unsigned long long)total, jobs.size(), threads, repeat, verify ? "true" : "false", open_s,
      *std::min_element(opens.begin(), opens.end()), best, median(times), best > 0 ? total / best / 1e9 : 0.0, abest,
      median(alloc_times), abest > 0 ? total / abest / 1e9 : 0.0);
  return 0;
}
