// GPTQ benchmark (pack --calib): make_feedback (the Cholesky factorization of
// the dampened input covariance H) and quantize_rows with that feedback over
// every row of a generated tensor, on 1 and 2 threads, in seconds: wall
// clock, and the process's CPU time (on a shared machine the CPU time over
// the thread count is the steadier estimate of an idle machine's wall time).
//
//   gptq_bench [--size ROWSxCOLS]... [--threads LIST] [--group G]... [--f32]
//              [--no-act-order] [--plain-tiles N]
//     --size        default 4096x14336 (a 14336-input layer, as the issue's
//                   target) and 1024x4096
//     --threads     default 1,2
//     --group       rows per quantize_rows call in units of pack's tiles
//                   (2^18 / cols rows); default 1 (as pack calls it) and 4
//     --plain-tiles also time the plain column-by-column loop (Feedback::lazy
//                   = false: the reference the lazy batches equal) on N tiles
//                   on one thread, scaled to all rows (it reads the packed
//                   feedback element by element: slower than the row-major
//                   loop this replaced, about 80 s of CPU at 4096x14336)
// Also one call of qrow::evaluate, as pack scores each of 113 step sizes per
// tensor (its sample rows' GPTQ codes and their error dᵀ H d).
//
// Weights: BF16 (or F32), t(5)-like values with log-normal row scales. H:
// the covariance of inputs with log-normal channel scales s, a common part
// of rank 64 and independent noise, H = S (A Aᵀ / 64 + I) S (positive
// definite; the factorization's cost does not depend on the values).
// Codes are checked to be the same for every thread count and group.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "lib/thread_pool.h"
#include "quant/gptq.h"
#include "quant/qrow.h"

using namespace wc;

namespace {

using Clock = std::chrono::steady_clock;
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
struct Timer {
  Clock::time_point w = Clock::now();
  double c = cpu_now();
  double wall() const { return std::chrono::duration<double>(Clock::now() - w).count(); }
  double cpu() const { return cpu_now() - c; }
};

uint16_t to_bf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return uint16_t((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

std::vector<uint8_t> make_weights(uint64_t rows, uint64_t cols, bool f32, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> n01(0, 1);
  std::gamma_distribution<float> chi(2.5f, 2.f);  // chi-squared, 5 degrees of freedom
  std::vector<uint8_t> out(rows * cols * (f32 ? 4 : 2));
  for (uint64_t r = 0; r < rows; ++r) {
    const float scale = 0.02f * std::exp(0.5f * n01(g));
    for (uint64_t c = 0; c < cols; ++c) {
      const float x = scale * n01(g) / std::sqrt(chi(g) / 5.f);
      const uint64_t i = r * cols + c;
      if (f32) std::memcpy(&out[i * 4], &x, 4);
      else {
        const uint16_t h = to_bf16(x);
        std::memcpy(&out[i * 2], &h, 2);
      }
    }
  }
  return out;
}

std::vector<float> make_hessian(uint64_t n, uint64_t seed) {
  constexpr uint64_t r = 64;
  std::mt19937_64 g(seed);
  std::normal_distribution<float> n01(0, 1);
  std::vector<float> s(n), at(r * n), h(n * n, 0.f);
  for (auto& x : s) x = std::exp(n01(g));
  for (auto& x : at) x = n01(g);
  for (uint64_t i = 0; i < n; ++i) {
    float* hi = &h[i * n];
    for (uint64_t k = 0; k < r; ++k) {
      const float a = at[k * n + i] / float(r);
      const float* ak = &at[k * n];
      for (uint64_t j = 0; j <= i; ++j) hi[j] += a * ak[j];
    }
    hi[i] += 1.f;
    for (uint64_t j = 0; j <= i; ++j) hi[j] *= s[i] * s[j];
  }
  for (uint64_t i = 0; i < n; ++i)
    for (uint64_t j = i + 1; j < n; ++j) h[i * n + j] = h[j * n + i];
  return h;
}

uint64_t fnv(const std::vector<uint16_t>& v) {
  uint64_t x = 1469598103934665603ull;
  for (uint16_t u : v) x = (x ^ u) * 1099511628211ull;
  return x;
}

std::vector<unsigned> parse_list(const char* s) {
  std::vector<unsigned> v;
  for (const char* p = s; *p;) {
    char* e;
    v.push_back(unsigned(std::strtoul(p, &e, 10)));
    p = *e ? e + 1 : e;
  }
  return v;
}

void run(uint64_t rows, uint64_t cols, const std::vector<unsigned>& threads, const std::vector<unsigned>& groups,
         bool f32, bool act_order, unsigned plain_tiles) {
  const DType t = f32 ? DType::F32 : DType::BF16;
  std::printf("%llux%llu %s, H %llux%llu%s\n", (unsigned long long)rows, (unsigned long long)cols,
              f32 ? "F32" : "BF16", (unsigned long long)cols, (unsigned long long)cols, act_order ? ", act order" : "");
  Timer tg;
  const auto w = make_weights(rows, cols, f32, 1);
  const auto h = make_hessian(cols, 2);
  std::printf("  (inputs generated in %.1f s)\n", tg.wall());
  std::fflush(stdout);

  qrow::Feedback fb;
  for (unsigned th : threads) {
    ThreadPool pool(th);
    const qrow::ParallelFor par = [&](size_t n, const std::function<void(size_t)>& fn) { pool.parallel_for(n, fn); };
    Timer tm;
    qrow::Feedback f = qrow::make_feedback(h.data(), cols, qrow::kGptqDamp, act_order, th > 1 ? par : qrow::ParallelFor{});
    const double wall = tm.wall(), cpu = tm.cpu();
    std::printf("  make_feedback   threads %u: %7.2f s wall %7.2f s cpu\n", th, wall, cpu);
    std::fflush(stdout);
    if (fb.u.empty()) fb = std::move(f);
    else if (std::memcmp(f.u.data(), fb.u.data(), f.u.size() * 4) != 0) std::printf("  ! feedback differs\n");
  }

  double rms_all = 0;
  const auto rms = qrow::row_rms(t, w.data(), rows, cols, &rms_all);
  qrow::Plan p;
  p.c = 0.35;  // about 4 bits a weight
  p.mu = 0.1;  // pack's rate-distortion rounding
  const auto st = qrow::choose_steps(rms, rms_all, p);
  std::vector<uint64_t> sample;
  for (uint64_t j = 0; j < std::min<uint64_t>(rows, 8); ++j) sample.push_back(j * rows / std::min<uint64_t>(rows, 8));
  const auto rd = qrow::train_rd(t, w.data(), cols, st, p, sample, 2);
  const uint64_t tile = std::clamp<uint64_t>((1u << 18) / cols, 1, rows);  // pack's tile rows (lib/pack_lossy.cpp)

  std::vector<uint16_t> codes(rows * cols);
  uint64_t want = 0;
  for (unsigned g : groups) {
    const uint64_t per = tile * g, calls = (rows + per - 1) / per;
    for (unsigned th : threads) {
      ThreadPool pool(th);
      Timer tm;
      pool.parallel_for(calls, [&](size_t c) {
        const uint64_t r0 = c * per, n = std::min(per, rows - r0);
        qrow::quantize_rows(t, w.data(), cols, r0, n, st, p, rd, 2, codes.data() + r0 * cols, &fb);
      });
      const double wall = tm.wall(), cpu = tm.cpu();
      std::printf("  GPTQ %4llu rows a call, threads %u: %7.2f s wall %7.2f s cpu\n", (unsigned long long)per, th, wall,
                  cpu);
      std::fflush(stdout);
      const uint64_t f = fnv(codes);
      if (!want) want = f;
      else if (f != want) std::printf("  ! codes differ\n");
    }
  }
  {  // one point of pack's rate-distortion grid: its sample rows (2^16 elements) quantized and scored (dᵀ H d)
    std::vector<uint64_t> rows_s;
    const uint64_t ns = std::min<uint64_t>(rows, std::max<uint64_t>(1, (1u << 16) / cols));
    for (uint64_t j = 0; j < ns; ++j) rows_s.push_back(j * rows / ns);
    Timer tm;
    const qrow::Point pt = qrow::evaluate(t, w.data(), rows, cols, rms, rms_all, p, rows_s, &fb, h.data());
    const double wall = tm.wall(), cpu = tm.cpu();
    std::printf("  evaluate (%zu sample rows, one grid point; pack does 113), threads 1: %7.2f s wall %7.2f s cpu"
                " (%.3f bits/weight, relerr2 %.4f)\n",
                rows_s.size(), wall, cpu, pt.bits / double(rows * cols), pt.relerr2);
  }
  if (plain_tiles) {
    const uint64_t n = std::min(rows, tile * plain_tiles);
    qrow::Feedback plain = fb;
    plain.lazy = false;
    std::vector<uint16_t> pc(n * cols);
    Timer tm;
    for (uint64_t r0 = 0; r0 < n; r0 += tile)
      qrow::quantize_rows(t, w.data(), cols, r0, std::min(tile, n - r0), st, p, rd, 2, pc.data() + r0 * cols, &plain);
    const double wall = tm.wall(), cpu = tm.cpu();
    std::printf("  GPTQ plain loop, %llu rows, threads 1: %7.2f s wall %7.2f s cpu (all rows: %.0f s cpu)\n",
                (unsigned long long)n, wall, cpu, cpu * double(rows) / double(n));
    if (std::memcmp(pc.data(), codes.data(), pc.size() * 2) != 0) std::printf("  ! plain loop's codes differ\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<uint64_t, uint64_t>> sizes;
  std::vector<unsigned> threads = {1, 2}, groups;
  bool f32 = false, act = true;
  unsigned plain_tiles = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--size" && i + 1 < argc) {
      unsigned long long r = 0, c = 0;
      if (std::sscanf(argv[++i], "%llux%llu", &r, &c) != 2 || !r || !c) {
        std::fprintf(stderr, "--size ROWSxCOLS\n");
        return 2;
      }
      sizes.emplace_back(r, c);
    } else if (a == "--threads" && i + 1 < argc) {
      threads = parse_list(argv[++i]);
    } else if (a == "--group" && i + 1 < argc) {
      groups.push_back(unsigned(std::max(1l, std::atol(argv[++i]))));
    } else if (a == "--plain-tiles" && i + 1 < argc) {
      plain_tiles = unsigned(std::atoi(argv[++i]));
    } else if (a == "--f32") {
      f32 = true;
    } else if (a == "--no-act-order") {
      act = false;
    } else {
      std::fprintf(stderr,
                   "usage: gptq_bench [--size ROWSxCOLS]... [--threads 1,2] [--group G]... [--f32] [--no-act-order] "
                   "[--plain-tiles N]\n");
      return 2;
    }
  }
  if (sizes.empty()) sizes = {{4096, 14336}, {1024, 4096}};
  if (groups.empty()) groups = {1, 4};
  for (const auto& [r, c] : sizes) run(r, c, threads, groups, f32, act, plain_tiles);
}
