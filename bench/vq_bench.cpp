// Codebook kinds side by side on real 2-D tensors (spec/VQ.md): for each
// tensor of a safetensors file with at least --min elements, the vq
// encoder's rate-distortion point (bits per weight: the codes' order-0
// entropy, the codebook and the steps; relative squared error) of
//   - flat k-means codebooks (d, K): (4, 256) and (8, 4096);
//   - additive codebooks (d, K1 x K2), AQLM's: (8, 256 x 256) and (8, 64 x 64);
//   - scalar palettes (d = 1, K = 4);
// and of qrow (entropy-coded uniform codes with rate-distortion rounding,
// QROW.md) at the grid points nearest 1.5 and 2 bits, which the same
// figures are compared against, with the encode time of each.
//   vq_bench FILE.safetensors [--min N] [--max-tensors N]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "quant/qrow.h"
#include "quant/vq.h"

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

std::vector<uint8_t> read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: vq_bench FILE.safetensors [--min N] [--max-tensors N]\n");
    return 2;
  }
  uint64_t min_el = 1u << 17, max_t = 4;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--min")) min_el = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--max-tensors")) max_t = std::strtoull(argv[i + 1], nullptr, 10);
  }
  const auto file = read_all(argv[1]);
  const auto h = wc::st::parse_header(file.data(), file.size(), file.size());
  uint64_t done = 0;
  for (const auto& ti : h.tensors) {
    if (done >= max_t) break;
    if (ti.shape.size() != 2 || ti.shape[0] * ti.shape[1] < min_el) continue;
    if (ti.dtype != wc::DType::BF16 && ti.dtype != wc::DType::F16 && ti.dtype != wc::DType::F32) continue;
    ++done;
    const uint64_t rows = ti.shape[0], cols = ti.shape[1];
    const uint8_t* data = file.data() + h.data_start + ti.begin;
    double rms_all = 0;
    const auto rms = wc::qrow::row_rms(ti.dtype, data, rows, cols, &rms_all);
    std::vector<uint64_t> sample;
    const uint64_t want = std::max<uint64_t>(1, (1u << 16) / cols);
    for (uint64_t j = 0; j < std::min(want, rows); ++j) sample.push_back(j * rows / std::min(want, rows));
    std::printf("%s [%llu, %llu]\n", ti.name.c_str(), (unsigned long long)rows, (unsigned long long)cols);
    const double n = double(rows) * double(cols);
    // qrow: the grid of QROW.md §4 (c = 2^(g/8)), the points nearest 1.5 and 2 bits
    {
      const auto t0 = Clock::now();
      std::vector<wc::qrow::Plan> plans;
      for (int g = -24; g <= 40; ++g) {
        wc::qrow::Plan p;
        p.c = std::exp2(g / 8.0);
        p.mu = 0.1;
        plans.push_back(p);
      }
      const auto pts = wc::qrow::evaluate_plans(ti.dtype, data, rows, cols, rms, rms_all, plans, sample, nullptr, nullptr);
      for (double target : {1.5, 2.0}) {
        size_t best = 0;
        for (size_t i = 0; i < pts.size(); ++i)
          if (std::fabs(pts[i].bits / n - target) < std::fabs(pts[best].bits / n - target)) best = i;
        std::printf("  %-26s %6.3f bpw  rel.err^2 %.5f\n", ("qrow c=" + std::to_string(plans[best].c)).c_str(),
                    pts[best].bits / n, pts[best].relerr2);
      }
      std::printf("  %-26s %.2f s for %zu grid points\n", "", secs(t0), plans.size());
    }
    const auto steps = wc::vq::row_steps(rms, rms_all);
    struct Kind {
      const char* name;
      uint32_t d, k, k2;
    };
    const Kind kinds[] = {{"palette 4x1", 1, 4, 0},           {"flat 256x4", 4, 256, 0},
                          {"flat 4096x8", 8, 4096, 0},        {"additive 64+64 x8", 8, 4096, 64},
                          {"additive 256+256 x8", 8, 65536, 256}};
    for (const Kind& k : kinds) {
      if (cols % k.d) continue;
      const auto t0 = Clock::now();
      const uint32_t entries = k.k2 ? k.k / k.k2 + k.k2 : k.k;
      const auto rows_t = wc::vq::spaced_rows(0, rows, cols, k.d, std::max<uint64_t>(uint64_t(entries) * 64, 1u << 15));
      const wc::vq::Codebook cb =
          k.k2 ? wc::vq::train_additive(ti.dtype, data, cols, steps, rows_t, k.d, k.k / k.k2, k.k2, nullptr)
               : wc::vq::train(ti.dtype, data, cols, steps, rows_t, k.d, k.k, nullptr);
      const double train_s = secs(t0);
      const auto pt = wc::vq::evaluate(ti.dtype, data, rows, cols, steps, cb, sample, nullptr, nullptr);
      const double cb_bits = 32.0 * double(cb.c.size()) / n;
      std::printf("  %-26s %6.3f bpw  rel.err^2 %.5f  (codebook %.3f bpw; train %.2f s, sample codes %.2f s)\n", k.name,
                  pt.bits / n, pt.relerr2, cb_bits, train_s, secs(t0) - train_s);
    }
  }
  return 0;
}
