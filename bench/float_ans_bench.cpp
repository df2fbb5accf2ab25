// float_ans benchmark: ratio and single-thread speed beside zstd and memcpy.
//
//   float_ans_bench [options] [file.safetensors ...]
//     --chunk BYTES     chunk size for large tensors (default 256 KiB)
//     --wall            time with the wall clock instead of thread CPU time
//     --prob-bits N     rANS precision (default: codec default)
//     --sub-bits N      sub-stream length 2^N (default: codec default)
//     --no-gen          skip the generated 4096x4096 / 4096x14336 tensors
//     --quick           generated tensors: 4096x4096 only
//     --per-tensor      print float_ans / zstd -19 / entropy per tensor
//     --sweep           also sweep chunk size / sub_bits / prob_bits on generated data
//
// For every safetensors file (and FP8 versions made from the first file's
// values) and for the generated tensors it prints payload bits/weight,
// h_values, h_exp_bound, encode/decode GB/s on one thread, zstd -3 / -19 ratio
// and decode GB/s, and memcpy GB/s measured in the same process.
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "codec/float_ans.h"

using namespace wc;

namespace {

// Thread CPU time: other processes on a shared machine do not inflate it.
// (--wall switches to wall-clock time.)
bool g_wall = false;
double now() {
  if (g_wall) return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Tensor {
  std::string name;
  DType t;
  std::vector<uint8_t> data;
};

size_t esize(DType t) { return t == DType::F32 ? 4 : (t == DType::BF16 || t == DType::F16) ? 2 : 1; }

// Crude safetensors reader: enough for well-formed files.
bool read_safetensors(const std::string& path, std::vector<Tensor>& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::vector<uint8_t> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (buf.size() < 8) return false;
  uint64_t hl;
  std::memcpy(&hl, buf.data(), 8);
  if (hl > buf.size() - 8) return false;
  std::string js(reinterpret_cast<char*>(buf.data() + 8), hl);
  const uint8_t* data = buf.data() + 8 + hl;
  size_t data_n = buf.size() - 8 - hl;
  size_t pos = 0;
  while ((pos = js.find("\"dtype\"", pos)) != std::string::npos) {
    // name: the last quoted key before the '{' that opens this object
    size_t ob = js.rfind('{', pos);
    size_t q2 = js.rfind('"', ob);
    size_t q1 = js.rfind('"', q2 - 1);
    std::string name = js.substr(q1 + 1, q2 - q1 - 1);
    size_t d1 = js.find('"', pos + 7);
    size_t d2 = js.find('"', d1 + 1);
    std::string dt = js.substr(d1 + 1, d2 - d1 - 1);
    size_t off = js.find("\"data_offsets\"", pos);
    size_t lb = js.find('[', off);
    uint64_t a = std::strtoull(js.c_str() + lb + 1, nullptr, 10);
    size_t cm = js.find(',', lb);
    uint64_t b = std::strtoull(js.c_str() + cm + 1, nullptr, 10);
    pos = d2;
    DType t;
    if (dt == "BF16") t = DType::BF16;
    else if (dt == "F16") t = DType::F16;
    else if (dt == "F32") t = DType::F32;
    else if (dt == "F8_E4M3") t = DType::F8_E4M3;
    else if (dt == "F8_E5M2") t = DType::F8_E5M2;
    else continue;
    if (b < a || b > data_n) return false;
    out.push_back({name, t, std::vector<uint8_t>(data + a, data + b)});
  }
  return true;
}

float load_float(DType t, const uint8_t* p) {
  if (t == DType::F32) { float f; std::memcpy(&f, p, 4); return f; }
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (t == DType::BF16) { uint32_t u = uint32_t(h) << 16; float f; std::memcpy(&f, &u, 4); return f; }
  // F16
  uint32_t s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
  float v = e == 0 ? std::ldexp(float(m), -24) : e == 31 ? INFINITY : std::ldexp(float(m | 1024), int(e) - 25);
  return s ? -v : v;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFF + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

// Round-to-nearest-even float -> FP8 (E4M3: no inf, max 448; E5M2: max 57344), saturating.
uint8_t f32_to_fp8(float f, int E, int Mb) {
  const int bias = (1 << (E - 1)) - 1;
  uint8_t s = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  const float maxv = E == 4 ? 448.f : 57344.f;
  if (!(a < maxv)) a = maxv;
  int e;
  std::frexp(a, &e);  // a = fr * 2^e, fr in [0.5, 1)
  int ue = e - 1;     // a = 1.x * 2^ue
  int minexp = 1 - bias;
  if (ue < minexp) ue = minexp;
  float q = std::nearbyint(std::ldexp(a, Mb - ue));  // RNE (default rounding mode)
  float r = std::ldexp(q, ue - Mb);
  if (r > maxv) r = maxv;
  // encode r
  if (r == 0) return s;
  std::frexp(r, &e);
  ue = e - 1;
  uint32_t bits;
  if (ue < minexp) bits = uint32_t(std::ldexp(r, Mb - minexp));  // subnormal
  else bits = (uint32_t(ue + bias) << Mb) | (uint32_t(std::ldexp(r, Mb - ue)) & ((1u << Mb) - 1));
  return uint8_t(s | bits);
}

struct Result {
  uint64_t raw = 0, fans = 0, z3 = 0, z19 = 0, elements = 0;
  double hv = 0, hx = 0;  // element-weighted sums
  double enc_s = 0, dec_s = 0, z3_dec_s = 0, z3_enc_s = 0, memcpy_s = 0, z19_dec_s = 0;
  uint64_t timed_bytes = 0, z19_bytes_raw = 0;
};

struct Opts {
  size_t chunk = 256 << 10;
  int prob_bits = -1, sub_bits = -1;
  bool gen = true, quick = false, sweep = false, per_tensor = false;
};

std::vector<std::pair<const uint8_t*, size_t>> chunks_of(const Tensor& t, size_t chunk) {
  std::vector<std::pair<const uint8_t*, size_t>> c;
  size_t es = esize(t.t);
  size_t cs = std::max(es, chunk / es * es);
  for (size_t o = 0; o < t.data.size(); o += cs) c.push_back({t.data.data() + o, std::min(cs, t.data.size() - o)});
  if (t.data.empty()) c.push_back({t.data.data(), 0});
  return c;
}

fans::Params params(const Opts& o) {
  fans::Params p;
  if (o.prob_bits > 0) p.prob_bits = o.prob_bits;
  if (o.sub_bits > 0) p.sub_bits = o.sub_bits;
  return p;
}

// Measures everything for a set of tensors. z19_limit: bytes of raw data given to zstd -19.
Result measure(const std::vector<Tensor>& ts, const Opts& o, size_t z19_limit, int reps) {
  Result r;
  const fans::Params P = params(o);
  std::vector<std::vector<uint8_t>> encs;
  std::vector<std::vector<uint8_t>> zs;
  std::vector<std::pair<const uint8_t*, size_t>> all;
  std::vector<DType> types;
  for (const auto& t : ts) {
    const size_t n = t.data.size() / esize(t.t);
    r.elements += n;
    r.raw += t.data.size();
    auto st = fans::entropy_stats(t.t, t.data.data(), t.data.size());
    r.hv += st.h_values * double(n);
    r.hx += st.h_exp_bound * double(n);
    for (auto c : chunks_of(t, o.chunk)) { all.push_back(c); types.push_back(t.t); }
  }
  // fans encode
  encs.resize(all.size());
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    double t0 = now();
    for (size_t i = 0; i < all.size(); ++i) fans::encode_with(types[i], all[i].first, all[i].second, encs[i], P);
    best = std::min(best, now() - t0);
  }
  r.enc_s = best;
  for (auto& e : encs) r.fans += e.size();
  // fans decode
  std::vector<uint8_t> dst(o.chunk + 64);
  size_t maxc = 0;
  for (auto& c : all) maxc = std::max(maxc, c.second);
  dst.resize(maxc + 64);
  best = 1e30;
  bool ok = true;
  for (int rep = 0; rep < reps; ++rep) {
    double t0 = now();
    for (size_t i = 0; i < all.size(); ++i)
      ok &= fans::decode(types[i], encs[i].data(), encs[i].size(), dst.data(), all[i].second) == Errc::ok;
    best = std::min(best, now() - t0);
  }
  r.dec_s = best;
  // verify once
  for (size_t i = 0; i < all.size(); ++i) {
    ok &= fans::decode(types[i], encs[i].data(), encs[i].size(), dst.data(), all[i].second) == Errc::ok;
    ok &= std::memcmp(dst.data(), all[i].first, all[i].second) == 0;
  }
  if (!ok) { std::fprintf(stderr, "ROUND TRIP FAILED\n"); std::exit(1); }
  // zstd -3
  zs.resize(all.size());
  best = 1e30;
  for (int rep = 0; rep < std::max(1, reps / 2); ++rep) {
    double t0 = now();
    for (size_t i = 0; i < all.size(); ++i) {
      zs[i].resize(ZSTD_compressBound(all[i].second));
      zs[i].resize(ZSTD_compress(zs[i].data(), zs[i].size(), all[i].first, all[i].second, 3));
    }
    best = std::min(best, now() - t0);
  }
  r.z3_enc_s = best;
  for (auto& z : zs) r.z3 += z.size();
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    double t0 = now();
    for (size_t i = 0; i < all.size(); ++i)
      ZSTD_decompressDCtx(dctx, dst.data(), dst.size(), zs[i].data(), zs[i].size());
    best = std::min(best, now() - t0);
  }
  r.z3_dec_s = best;
  // zstd -19 (on at most z19_limit bytes)
  {
    uint64_t done = 0;
    std::vector<uint8_t> z;
    double dsum = 0;
    for (size_t i = 0; i < all.size() && done < z19_limit; ++i) {
      z.resize(ZSTD_compressBound(all[i].second));
      z.resize(ZSTD_compress(z.data(), z.size(), all[i].first, all[i].second, 19));
      r.z19 += z.size();
      done += all[i].second;
      double t0 = now();
      ZSTD_decompressDCtx(dctx, dst.data(), dst.size(), z.data(), z.size());
      dsum += now() - t0;
    }
    r.z19_bytes_raw = done;
    r.z19_dec_s = dsum;
  }
  ZSTD_freeDCtx(dctx);
  // memcpy
  best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    double t0 = now();
    for (size_t i = 0; i < all.size(); ++i) std::memcpy(dst.data(), all[i].first, all[i].second);
    best = std::min(best, now() - t0);
  }
  r.memcpy_s = best;
  return r;
}

void print(const char* label, const Result& r) {
  const double n = double(r.elements), gb = double(r.raw) / 1e9;
  std::printf("== %s: %llu elements, %.3f MB\n", label, (unsigned long long)r.elements, double(r.raw) / 1e6);
  std::printf("  float_ans payload : %.4f bits/weight  (%.2f%% of raw)\n", 8.0 * r.fans / n, 100.0 * r.fans / r.raw);
  std::printf("  h_values          : %.4f bits/weight  (order-0 entropy of whole values, per tensor)\n", r.hv / n);
  std::printf("  h_exp_bound       : %.4f bits/weight  (H(exponent) + other bits raw)\n", r.hx / n);
  std::printf("  payload - h_values: %+.4f bits/weight\n", 8.0 * r.fans / n - r.hv / n);
  std::printf("  zstd -3           : %.4f bits/weight  (%.2f%%)\n", 8.0 * r.z3 / n, 100.0 * r.z3 / r.raw);
  if (r.z19_bytes_raw)
    std::printf("  zstd -19          : %.2f%% of raw%s\n", 100.0 * r.z19 / r.z19_bytes_raw,
                r.z19_bytes_raw < r.raw ? " (first chunks only)" : "");
  std::printf("  speed, 1 thread (GB/s of raw data):\n");
  std::printf("    float_ans encode %.2f   decode %.2f\n", gb / r.enc_s, gb / r.dec_s);
  std::printf("    zstd -3   encode %.2f   decode %.2f   (float_ans decode = %.2fx zstd -3)\n", gb / r.z3_enc_s,
              gb / r.z3_dec_s, r.z3_dec_s / r.dec_s);
  if (r.z19_bytes_raw) std::printf("    zstd -19  decode %.2f\n", double(r.z19_bytes_raw) / 1e9 / r.z19_dec_s);
  std::printf("    memcpy           %.2f\n", gb / r.memcpy_s);
}

// t(5) values with log-normal row scales (sigma 0.5), rounded RNE to BF16.
Tensor generate(size_t rows, size_t cols, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> td(5.0f);
  std::lognormal_distribution<float> ln(0.0f, 0.5f);
  Tensor t{std::to_string(rows) + "x" + std::to_string(cols), DType::BF16, {}};
  t.data.resize(rows * cols * 2);
  uint8_t* p = t.data.data();
  for (size_t r = 0; r < rows; ++r) {
    const float sc = 0.02f * ln(rng);
    for (size_t c = 0; c < cols; ++c) {
      uint16_t h = f32_to_bf16(td(rng) * sc);
      std::memcpy(p, &h, 2);
      p += 2;
    }
  }
  return t;
}

std::vector<Tensor> to_fp8(const std::vector<Tensor>& src, DType t) {
  std::vector<Tensor> out;
  const int E = t == DType::F8_E4M3 ? 4 : 5, Mb = t == DType::F8_E4M3 ? 3 : 2;
  const float maxv = E == 4 ? 448.f : 57344.f;
  for (const auto& s : src) {
    const size_t es = esize(s.t), n = s.data.size() / es;
    float amax = 0;
    for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(load_float(s.t, &s.data[i * es])));
    const float sc = amax > 0 ? maxv / amax : 1.f;  // per-tensor scale, as FP8 checkpoints do
    Tensor o{s.name, t, std::vector<uint8_t>(n)};
    for (size_t i = 0; i < n; ++i) o.data[i] = f32_to_fp8(load_float(s.t, &s.data[i * es]) * sc, E, Mb);
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--chunk" && i + 1 < argc) o.chunk = std::strtoull(argv[++i], nullptr, 0);
    else if (a == "--prob-bits" && i + 1 < argc) o.prob_bits = std::atoi(argv[++i]);
    else if (a == "--sub-bits" && i + 1 < argc) o.sub_bits = std::atoi(argv[++i]);
    else if (a == "--no-gen") o.gen = false;
    else if (a == "--quick") o.quick = true;
    else if (a == "--sweep") o.sweep = true;
    else if (a == "--wall") g_wall = true;
    else if (a == "--per-tensor") o.per_tensor = true;
    else if (a == "-h" || a == "--help") {
      std::printf("usage: float_ans_bench [--chunk B] [--prob-bits N] [--sub-bits N] [--no-gen] [--quick] [--sweep] [files]\n");
      return 0;
    }
    else files.push_back(a);
  }
  std::printf("float_ans_bench: chunk %zu bytes for large tensors (whole tensor when smaller); times are %s\n",
              o.chunk, g_wall ? "wall clock" : "thread CPU time (use --wall for wall clock)");
  bool first = true;
  for (const auto& f : files) {
    std::vector<Tensor> ts;
    if (!read_safetensors(f, ts)) { std::fprintf(stderr, "cannot read %s\n", f.c_str()); return 1; }
    if (ts.empty()) continue;
    auto r = measure(ts, o, SIZE_MAX, 20);
    print(f.c_str(), r);
    // per-tensor detail for small files
    if (ts.size() <= 64) {
      uint64_t fsum = 0, raws = 0;
      int raw_tensors = 0;
      for (auto& t : ts) {
        std::vector<uint8_t> e;
        for (auto c : chunks_of(t, o.chunk)) {
          fans::encode_with(t.t, c.first, c.second, e, params(o));
          fsum += e.size();
          raw_tensors += e[0] == 0;
        }
        raws += t.data.size();
      }
      std::printf("  (%zu tensors, %d chunks stored raw inside float_ans)\n", ts.size(), raw_tensors);
    }
    if (first && ts[0].t != DType::F8_E4M3 && ts[0].t != DType::F8_E5M2) {
      first = false;
      for (DType t8 : {DType::F8_E4M3, DType::F8_E5M2}) {
        auto f8 = to_fp8(ts, t8);
        auto r8 = measure(f8, o, SIZE_MAX, 20);
        uint64_t best_of = 0;
        for (auto& t : f8) {
          std::vector<uint8_t> e, z(ZSTD_compressBound(t.data.size()));
          fans::encode_with(t.t, t.data.data(), t.data.size(), e, params(o));
          z.resize(ZSTD_compress(z.data(), z.size(), t.data.data(), t.data.size(), 19));
          best_of += std::min(e.size(), z.size());
          if (o.per_tensor) {
            auto st = fans::entropy_stats(t.t, t.data.data(), t.data.size());
            std::printf("    %-40s %7zu values: float_ans %6zu  zstd-19 %6zu  h_values %.3f bpw\n", t.name.c_str(),
                        t.data.size(), e.size(), z.size(), st.h_values);
          }
        }
        std::string lab = f + (t8 == DType::F8_E4M3 ? " -> F8_E4M3" : " -> F8_E5M2");
        print(lab.c_str(), r8);
        std::printf("  float_ans vs zstd -19: %.2f%% vs %.2f%% of raw\n", 100.0 * r8.fans / r8.raw,
                    100.0 * r8.z19 / r8.z19_bytes_raw);
        std::printf("  per-tensor best of float_ans / zstd -19 (what the pipeline stores): %.2f%% of raw\n",
                    100.0 * double(best_of) / double(r8.raw));
      }
    }
  }
  if (o.gen) {
    std::vector<std::pair<size_t, size_t>> shapes = {{4096, 4096}};
    if (!o.quick) shapes.push_back({4096, 14336});
    for (auto [rows, cols] : shapes) {
      double t0 = now();
      Tensor t = generate(rows, cols, 12345 + cols);
      std::printf("(generated %s in %.1f s)\n", t.name.c_str(), now() - t0);
      std::vector<Tensor> ts{std::move(t)};
      auto r = measure(ts, o, 8 << 20, 3);
      std::string lab = "generated BF16 " + ts[0].name;
      print(lab.c_str(), r);
      // the same tensor as one chunk: entropy target check
      if (o.sweep) {
        std::printf("  sweep (bits/weight over h_values):\n");
        const double hv = r.hv / double(r.elements);
        for (size_t ch : {size_t(64) << 10, size_t(256) << 10, size_t(1) << 20, size_t(4) << 20, size_t(16) << 20}) {
          for (int sb : {10, 11, 12, 13, 14}) {
            for (int pb : {11, 12, 13, 14}) {
              fans::Params p;
              p.sub_bits = sb;
              p.prob_bits = pb;
              uint64_t tot = 0;
              std::vector<uint8_t> e;
              for (auto c : chunks_of(ts[0], ch)) {
                fans::encode_with(DType::BF16, c.first, c.second, e, p);
                tot += e.size();
              }
              std::printf("    chunk %6zu KiB sub_bits %2d prob_bits %2d: %.4f  (%+.4f)\n", ch >> 10, sb, pb,
                          8.0 * tot / double(r.elements), 8.0 * tot / double(r.elements) - hv);
            }
          }
        }
      }
    }
  }
  return 0;
}
