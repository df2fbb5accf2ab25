// Lossy benchmark on generated weights (the corpus model's KLD figures are
// bench/lossy.sh's):
//  1. weight space: a Llama-shaped model (dim 1024, FFN 2816, 2 layers, a
//     4096-token embedding; t(5) values with log-normal row scales, BF16)
//     packed at llama.cpp's k-quant sizes; relative RMSE over the lossy
//     tensors beside llama.cpp's (Q4_K 0.083 at 4.5, Q3_K 0.176 at 3.44,
//     Q2_K 0.333 at 2.63, from the issue);
//  2. speed: a 4096x4096 BF16 tensor at --bits 4.25: pack (encode) MB/s of
//     input on all threads, and decode MB/s of output through the C API on
//     one and on all threads, beside memcpy in the same process.
//   lossy_bench [--quick]   (--quick: the speed part on 2048x2048)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "lib/api.h"
#include "lib/thread_pool.h"
#include "wcodec/wcodec.h"

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

uint16_t to_bf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return uint16_t((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t h) {
  uint32_t b = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

struct Tensor {
  std::string name;
  uint64_t rows, cols;
  std::vector<uint16_t> v;  // BF16
};

Tensor make(const std::string& name, uint64_t rows, uint64_t cols, std::mt19937_64& g) {
  std::normal_distribution<double> n01(0, 1);
  std::chi_squared_distribution<double> chi(5);
  Tensor t{name, rows, cols, {}};
  t.v.resize(rows * cols);
  for (uint64_t r = 0; r < rows; ++r) {
    const double scale = 0.02 * std::exp(0.5 * n01(g));  // log-normal row scales
    for (uint64_t c = 0; c < cols; ++c) t.v[r * cols + c] = to_bf16(float(scale * n01(g) / std::sqrt(chi(g) / 5)));
  }
  return t;
}

void write_st(const std::string& path, const std::vector<Tensor>& ts) {
  std::string h = "{";
  uint64_t off = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const uint64_t n = ts[i].v.size() * 2;
    h += (i ? "," : "") + std::string("\"") + ts[i].name + "\":{\"dtype\":\"BF16\",\"shape\":[" +
         std::to_string(ts[i].rows) + "," + std::to_string(ts[i].cols) + "],\"data_offsets\":[" + std::to_string(off) +
         "," + std::to_string(off + n) + "]}";
    off += n;
  }
  h += "}";
  while (h.size() % 8) h += ' ';
  std::FILE* f = std::fopen(path.c_str(), "wb");
  const uint64_t len = h.size();
  std::fwrite(&len, 8, 1, f);
  std::fwrite(h.data(), 1, h.size(), f);
  for (const auto& t : ts) std::fwrite(t.v.data(), 2, t.v.size(), f);
  std::fclose(f);
}

// Relative RMSE over every tensor of `ts` decoded from container `wcz`.
double rel_rmse(const std::string& wcz, const std::vector<Tensor>& ts) {
  wcodec_archive* a = nullptr;
  if (wcodec_open(wcz.c_str(), &a, nullptr, 0) != 0) return -1;
  double err = 0, sig = 0;
  for (const auto& t : ts) {
    size_t i = 0;
    wcodec_find_tensor(a, t.name.c_str(), &i);
    std::vector<uint16_t> d(t.v.size());
    wcodec_decode_tensor(a, i, d.data(), d.size() * 2, 0, nullptr, 0);
    for (size_t k = 0; k < d.size(); ++k) {
      const double w = from_bf16(t.v[k]), e = w - from_bf16(d[k]);
      err += e * e, sig += w * w;
    }
  }
  wcodec_close(a);
  return std::sqrt(err / sig);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  char dir[] = "/tmp/wcodec_lossy_bench.XXXXXX";
  if (!::mkdtemp(dir)) return 1;
  const std::string d = dir, model = d + "/model.safetensors", wcz = d + "/model.wcz";
  std::mt19937_64 g(42);

  std::printf("1. weight space: generated Llama-shaped model (dim 1024, FFN 2816, 2 layers, vocab 4096; t(5), "
              "log-normal row scales; BF16)\n");
  std::vector<Tensor> ts;
  ts.push_back(make("model.embed_tokens.weight", 4096, 1024, g));
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"})
      ts.push_back(make(p + n + ".weight", 1024, 1024, g));
    ts.push_back(make(p + "mlp.gate_proj.weight", 2816, 1024, g));
    ts.push_back(make(p + "mlp.up_proj.weight", 2816, 1024, g));
    ts.push_back(make(p + "mlp.down_proj.weight", 1024, 2816, g));
  }
  write_st(model, ts);
  std::printf("%-8s %-10s %-10s %s\n", "bits", "all-in", "rel.RMSE", "llama.cpp at its size");
  const struct { double bits; const char* ref; } runs[] = {{4.5, "Q4_K 0.083"}, {3.44, "Q3_K 0.176"}, {2.63, "Q2_K 0.333"}};
  for (const auto& run : runs) {
    wc::PackOptions po;
    po.force = true;
    po.bits = run.bits;
    const auto r = wc::pack(model, wcz, po);
    std::printf("%-8.2f %-10.4f %-10.4f %s\n", run.bits, r.lossy_bits_per_weight, rel_rmse(wcz, ts), run.ref);
  }

  const uint64_t n = quick ? 2048 : 4096;
  std::printf("\n2. speed: one %llux%llu BF16 tensor at --bits 4.25 (%u threads available)\n", (unsigned long long)n,
              (unsigned long long)n, wc::default_threads());
  ts.clear();
  ts.push_back(make("w", n, n, g));
  write_st(model, ts);
  const double mb = double(n * n * 2) / 1e6;
  wc::PackOptions po;
  po.force = true;
  po.bits = 4.25;
  auto t0 = Clock::now();
  const auto pr = wc::pack(model, wcz, po);
  const double enc = secs(t0);
  wcodec_archive* a = nullptr;
  wcodec_open(wcz.c_str(), &a, nullptr, 0);
  std::vector<uint8_t> out(n * n * 2), copy(n * n * 2);
  double dec1 = 1e9, decn = 1e9, cpy = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    t0 = Clock::now();
    wcodec_decode_tensor(a, 0, out.data(), out.size(), 1, nullptr, 0);
    dec1 = std::min(dec1, secs(t0));
    t0 = Clock::now();
    wcodec_decode_tensor(a, 0, out.data(), out.size(), 0, nullptr, 0);
    decn = std::min(decn, secs(t0));
    t0 = Clock::now();
    std::memcpy(copy.data(), out.data(), out.size());
    cpy = std::min(cpy, secs(t0));
  }
  wcodec_close(a);
  std::printf("encode (pack, all threads): %.1f s, %.1f MB/s of input, %.4f bits/weight\n", enc, mb / enc,
              pr.lossy_bits_per_weight);
  std::printf("decode qrow, 1 thread:    %8.1f MB/s of output (%.3fx memcpy)\n", mb / dec1, cpy / dec1);
  std::printf("decode qrow, all threads: %8.1f MB/s of output (%.3fx memcpy)\n", mb / decn, cpy / decn);
  std::printf("memcpy, 1 thread:         %8.1f MB/s\n", mb / cpy);
  std::remove(model.c_str());
  std::remove(wcz.c_str());
  ::rmdir(dir);
  return 0;
}
