// File-level benchmark: what `wcodec pack` would store for each safetensors
// file given, and how fast its chunks encode and decode on one thread and on
// all threads, beside zstd (same chunks, same thread pool) and memcpy run in
// the same process. Reports ratios, since the machines are shared and noisy.
//
//   wcodec_bench [--bf16] [--zstd19] [--chunk BYTES] FILE.safetensors...
//   --bf16    convert F32 tensors to BF16 (round to nearest even) first
//   --encode-only N   encode every chunk N times on this thread, print the
//             stored bytes and the best thread CPU time, and skip the rest
//             (for profilers and A/B runs on a busy machine)
//   --plan-only N   run --codec auto's choice for every tensor N times on
//             one thread, print the best time (for profilers and A/B runs)
//   --decode-only N   encode once, then decode every chunk N times on this
//             thread (wcodec, then zstd -3 likewise unless N < 0: |N| times,
//             wcodec only); print the best thread CPU times as GB/s and their
//             ratio (for profilers and A/B runs on a busy machine)
//   --kernels K,K,...  with --decode-only: time each float-ans CPU kernel
//             (0 scalar, 2 AVX2, 4 AVX-512), the runs interleaved
#include <algorithm>
#include <chrono>
#include <deque>
#include <cstdio>
#include <cstring>
#include <string>
#include <time.h>
#include <vector>
#include <zstd.h>

#include "codec/auto_select.h"
#include "codec/float_ans_internal.h"
#include "platform/file_io.h"
#include "model/safetensors.h"
#include "lib/api.h"
#include "lib/thread_pool.h"

using namespace wc;

namespace {

struct Chunk {
  DType dtype;
  CodecId codec;
  const uint8_t* raw;
  size_t n;
  std::vector<uint8_t> stored;
  uint8_t try_zstd;  // float-ans-mixed: the plan's flag for this chunk (kTryZstdIfRepeats: read at its encode, as pack)
  const shift::Plan* shift;  // float-ans-mixed: the tensor's per-channel shift, or null
  uint64_t first_elem;
  bool try_patch;  // float-ans-patch and -groups: the plan's choice for mode 4
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// CPU time of the calling thread: on a shared machine it leaves out the time
// other processes held the core (--decode-only decodes on this thread)
double thread_cpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Best time of several runs, at least `min_total` seconds in all: on a shared
// machine the fastest run is the one least disturbed by other tenants.
template <class F>
double best_time(F&& f, double min_total = 1.5) {
  double best = 1e30, start = now();
  int runs = 0;
  do {
    double t0 = now();
    f();
    best = std::min(best, now() - t0);
    ++runs;
  } while (now() - start < min_total || runs < 5);
  return best;
}

uint16_t f32_to_bf16(uint32_t u) {
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

}  // namespace

int main(int argc, char** argv) {
  bool to_bf16 = false, z19 = false;
  uint32_t chunk = kDefaultChunkSize;
  int encode_only = 0, decode_only = 0, plan_only = 0;
  std::string kernels;  // --decode-only: float-ans kernels to compare, e.g. "2,4"
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--bf16") to_bf16 = true;
    else if (a == "--zstd19") z19 = true;
    else if (a == "--chunk" && i + 1 < argc) chunk = uint32_t(std::stoul(argv[++i]));
    else if (a == "--encode-only" && i + 1 < argc) encode_only = std::stoi(argv[++i]);
    else if (a == "--plan-only" && i + 1 < argc) plan_only = std::stoi(argv[++i]);
    else if (a == "--decode-only" && i + 1 < argc) decode_only = std::stoi(argv[++i]);
    else if (a == "--kernels" && i + 1 < argc) kernels = argv[++i];
    else files.push_back(a);
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: wcodec_bench [--bf16] [--zstd19] [--chunk BYTES] FILE.safetensors...\n");
    return 2;
  }
  unsigned all = default_threads();
  ThreadPool p1(1), pall(all);
  for (const auto& path : files) {
    try {
      MappedFile mf(path);
      auto h = st::parse_header(mf.data(), mf.size(), mf.size());
      std::vector<std::vector<uint8_t>> converted;
      std::vector<Chunk> chunks;
      std::deque<shift::Plan> shifts;  // stable addresses for the chunks
      uint64_t weights = 0, raw_total = 0;
      double plan_time = 0;  // --codec auto's choice per tensor (one thread), which pack pays before encoding
      struct Planned { DType dt; const uint8_t* data; uint64_t n, cols; };
      std::vector<Planned> planned;
      EncodeOptions eo;
      for (const auto& t : h.tensors) {
        const uint8_t* data = mf.data() + h.data_start + t.begin;
        uint64_t n = t.end - t.begin;
        DType dt = t.dtype;
        if (to_bf16 && dt == DType::F32) {
          converted.emplace_back(n / 2);
          auto& c = converted.back();
          for (uint64_t i = 0; i < n / 4; ++i) {
            uint32_t u;
            std::memcpy(&u, data + 4 * i, 4);
            uint16_t b = f32_to_bf16(u);
            std::memcpy(c.data() + 2 * i, &b, 2);
          }
          data = c.data();
          n /= 2;
          dt = DType::BF16;
        }
        if (n == 0) continue;
        uint64_t el = n * 8 / dtype_bits(dt);
        weights += el;
        raw_total += n;
        const uint64_t cols = t.shape.size() >= 2 ? t.shape.back() : 0;
        const double p0 = thread_cpu();
        CodecPlan plan = plan_codec(dt, data, n, uint32_t(chunk), eo, cols);
        plan_time += thread_cpu() - p0;
        planned.push_back({dt, data, n, cols});
        const shift::Plan* sp = nullptr;
        if (!plan.shift.d.empty()) sp = &shifts.emplace_back(std::move(plan.shift));
        for (uint64_t off = 0, c = 0; off < n; off += chunk, ++c)
          chunks.push_back({dt, plan.codec, data + off, size_t(std::min<uint64_t>(chunk, n - off)), {},
                            uint8_t(plan.try_zstd.empty() ? 1 : plan.try_zstd[c]), sp, off * 8 / dtype_bits(dt), plan.try_patch});
      }
      std::vector<uint8_t> out(raw_total);
      std::vector<size_t> out_off(chunks.size());
      for (size_t i = 1; i < chunks.size(); ++i) out_off[i] = out_off[i - 1] + chunks[i - 1].n;

      auto encode_one = [&](size_t i) {
        EncodeOptions ce = eo;
        ce.mixed_try_zstd = flag_tries_zstd(chunks[i].try_zstd, chunks[i].dtype, chunks[i].raw, chunks[i].n);
        ce.try_patch = chunks[i].try_patch;  // as pack: mode 4 only where the plan's samples gained
        ce.shift = chunks[i].shift;
        ce.first_elem = chunks[i].first_elem;
        encode_chunk(chunks[i].codec, chunks[i].dtype, chunks[i].raw, chunks[i].n, chunks[i].stored, ce);
      };
      auto encode = [&](ThreadPool& p) { p.parallel_for(chunks.size(), encode_one); };
      auto decode = [&](ThreadPool& p) {
        p.parallel_for(chunks.size(), [&](size_t i) {
          if (decode_chunk(chunks[i].codec, chunks[i].dtype, chunks[i].stored.data(), chunks[i].stored.size(), out.data() + out_off[i], chunks[i].n) != Errc::ok)
            fail(Errc::codec, "decode failed");
        });
      };
      if (plan_only > 0) {
        double best = 1e30;
        for (int r = 0; r < plan_only; ++r) {
          const double t0 = thread_cpu();
          for (const auto& q : planned) plan_codec(q.dt, q.data, q.n, uint32_t(chunk), eo, q.cols);
          best = std::min(best, thread_cpu() - t0);
        }
        std::printf("%s: %zu tensors, plan %.4f s, %.2f GB/s (T=1, best of %d)\n", path.c_str(), planned.size(), best,
                    double(raw_total) / 1e9 / best, plan_only);
        continue;
      }
      if (encode_only > 0) {
        double best = 1e30;
        for (int r = 0; r < encode_only; ++r) {  // on this thread, its CPU time (steadier than wall time here)
          const double t0 = thread_cpu();
          for (size_t i = 0; i < chunks.size(); ++i) encode_one(i);
          best = std::min(best, thread_cpu() - t0);
        }
        uint64_t stored = 0;
        for (auto& c : chunks) stored += c.stored.size();
        std::printf("%s: %zu chunks, %llu bytes -> %llu bytes stored, encode %.2f GB/s (T=1, best of %d)\n", path.c_str(),
                    chunks.size(), (unsigned long long)raw_total, (unsigned long long)stored,
                    double(raw_total) / 1e9 / best, encode_only);
        continue;
      }
      if (decode_only != 0) {
        encode(p1);
        const int reps = decode_only < 0 ? -decode_only : decode_only;
        auto best_of = [&](auto&& f) {
          double b = 1e30;
          for (int r = 0; r < reps; ++r) {
            const double t0 = thread_cpu();
            f();
            b = std::min(b, thread_cpu() - t0);
          }
          return b;
        };
        auto dec_all = [&] {
          for (size_t i = 0; i < chunks.size(); ++i)
            if (decode_chunk(chunks[i].codec, chunks[i].dtype, chunks[i].stored.data(), chunks[i].stored.size(), out.data() + out_off[i], chunks[i].n) != Errc::ok)
              fail(Errc::codec, "decode failed");
        };
        auto check = [&] {
          for (size_t k = 0; k < chunks.size(); ++k)
            if (std::memcmp(out.data() + out_off[k], chunks[k].raw, chunks[k].n) != 0) fail(Errc::mismatch, "round trip differs");
        };
        const double gb = double(raw_total) / 1e9;
        if (!kernels.empty()) {
          std::vector<int> ks;
          for (size_t a = 0; a < kernels.size();) {
            size_t b = kernels.find(',', a);
            if (b == std::string::npos) b = kernels.size();
            ks.push_back(std::stoi(kernels.substr(a, b - a)));
            a = b + 1;
          }
          std::vector<double> kb(ks.size(), 1e30);
          for (int r = 0; r < reps; ++r)
            for (size_t j = 0; j < ks.size(); ++j) {
              fans::detail::force_kernel(ks[j]);
              const double t0 = thread_cpu();
              dec_all();
              kb[j] = std::min(kb[j], thread_cpu() - t0);
              if (r == 0) check();
            }
          fans::detail::force_kernel(-1);
          std::printf("%s: decode", path.c_str());
          for (size_t j = 0; j < ks.size(); ++j) std::printf(" | kernel %d %.3f GB/s", ks[j], gb / kb[j]);
          std::printf(" (T=1, best of %d)\n", reps);
          continue;
        }
        const double d1 = best_of(dec_all);
        check();
        if (decode_only < 0) {
          std::printf("%s: decode wcodec %.3f GB/s (T=1, best of %d)\n", path.c_str(), gb / d1, reps);
          continue;
        }
        std::vector<std::vector<uint8_t>> zs(chunks.size());
        EncodeOptions z;
        z.zstd_level = 3;
        for (size_t i = 0; i < chunks.size(); ++i) encode_chunk(CodecId::zstd, chunks[i].dtype, chunks[i].raw, chunks[i].n, zs[i], z);
        const double zd1 = best_of([&] {
          for (size_t i = 0; i < chunks.size(); ++i)
            if (decode_chunk(CodecId::zstd, chunks[i].dtype, zs[i].data(), zs[i].size(), out.data() + out_off[i], chunks[i].n) != Errc::ok)
              fail(Errc::codec, "zstd decode failed");
        });
        std::printf("%s: decode wcodec %.3f GB/s | zstd-3 %.3f GB/s | x%.3f (T=1, best of %d)\n", path.c_str(), gb / d1,
                    gb / zd1, zd1 / d1, reps);
        continue;
      }
      double e1 = best_time([&] { encode(p1); }), ea = best_time([&] { encode(pall); });
      uint64_t stored = 0;
      for (auto& c : chunks) stored += c.stored.size();
      double d1 = best_time([&] { decode(p1); }), da = best_time([&] { decode(pall); });
      size_t k = 0;
      for (auto& c : chunks) {
        if (std::memcmp(out.data() + out_off[k++], c.raw, c.n) != 0) fail(Errc::mismatch, "round trip differs");
      }

      // zstd -3 on the same chunks with the same pools.
      std::vector<std::vector<uint8_t>> zs(chunks.size());
      auto zenc = [&](ThreadPool& p, int level) {
        EncodeOptions z;
        z.zstd_level = level;
        p.parallel_for(chunks.size(), [&](size_t i) { encode_chunk(CodecId::zstd, chunks[i].dtype, chunks[i].raw, chunks[i].n, zs[i], z); });
      };
      auto zdec = [&](ThreadPool& p) {
        p.parallel_for(chunks.size(), [&](size_t i) {
          if (decode_chunk(CodecId::zstd, chunks[i].dtype, zs[i].data(), zs[i].size(), out.data() + out_off[i], chunks[i].n) != Errc::ok)
            fail(Errc::codec, "zstd decode failed");
        });
      };
      double ze1 = best_time([&] { zenc(p1, 3); }), zea = best_time([&] { zenc(pall, 3); });
      uint64_t zstored = 0;
      for (auto& z : zs) zstored += z.size();
      double zd1 = best_time([&] { zdec(p1); }), zda = best_time([&] { zdec(pall); });
      uint64_t z19stored = 0;
      if (z19) {
        zenc(pall, 19);
        for (auto& z : zs) z19stored += z.size();
      }
      double mc = best_time([&] {
        for (size_t i = 0; i < chunks.size(); ++i) std::memcpy(out.data() + out_off[i], chunks[i].raw, chunks[i].n);
      });

      double gb = double(raw_total) / 1e9;
      std::printf("%s%s: %zu chunks, %llu weights, %.2f MB of tensor data\n", path.c_str(), to_bf16 ? " (F32 as BF16)" : "",
                  chunks.size(), (unsigned long long)weights, raw_total / 1e6);
      std::printf("  size      wcodec %.4f bits/weight (%.2f%%) | zstd-3 %.4f (%.2f%%)", 8.0 * stored / weights,
                  100.0 * stored / raw_total, 8.0 * zstored / weights, 100.0 * zstored / raw_total);
      if (z19) std::printf(" | zstd-19 %.4f (%.2f%%)", 8.0 * z19stored / weights, 100.0 * z19stored / raw_total);
      std::printf(" | wcodec/zstd-3 = %.3f | %llu bytes stored\n", double(stored) / zstored, (unsigned long long)stored);
      std::printf("  encode    wcodec %.2f GB/s (T=1) %.2f GB/s (T=%u) | zstd-3 %.2f / %.2f | x%.2f vs zstd-3 (T=1)\n", gb / e1,
                  gb / ea, all, gb / ze1, gb / zea, ze1 / e1);
      std::printf("  plan      --codec auto's choice %.3f s (T=1, once, the input's first touch included); with the encode %.2f GB/s (T=1), x%.2f vs zstd-3\n",
                  plan_time, gb / (plan_time + e1), ze1 / (plan_time + e1));
      std::printf("  decode    wcodec %.2f GB/s (T=1) %.2f GB/s (T=%u) | zstd-3 %.2f / %.2f | x%.2f vs zstd-3 (T=1), scaling x%.2f\n",
                  gb / d1, gb / da, all, gb / zd1, gb / zda, zd1 / d1, d1 / da);
      std::printf("  memcpy    %.2f GB/s (T=1); wcodec decode = %.3f of memcpy\n", gb / mc, mc / d1);
    } catch (const Error& e) {
      std::fprintf(stderr, "wcodec_bench: %s: %s\n", path.c_str(), e.describe().c_str());
      return 1;
    }
  }
  return 0;
}
