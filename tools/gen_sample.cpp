// wcodec_gen_sample: writes a small Llama-shaped model as safetensors, with
// values that have the statistics of trained weights, for tests and benches.
//
//   wcodec_gen_sample OUT.safetensors [--dim 256] [--layers 2] [--vocab 1024]
//                     [--seed 1] [--dtype bf16|f16|f32] [--shards N]
//
// Tensors (HF names): model.embed_tokens.weight [vocab, dim]; per layer i:
// model.layers.i.self_attn.{q,k,v,o}_proj.weight [dim, dim],
// model.layers.i.mlp.{gate,up}_proj.weight [ffn, dim], mlp.down_proj.weight
// [dim, ffn], model.layers.i.{input,post_attention}_layernorm.weight [dim];
// model.norm.weight [dim]; lm_head.weight [vocab, dim]. ffn = 8/3 * dim
// rounded to the nearest multiple of 64 (at least 64). __metadata__ is
// {"format":"pt"}; the header is space-padded so the data starts 8-aligned.
//
// Values: matrices are Student-t(5) samples (scaled to unit variance) times a
// log-normal per-row scale (sigma 0.5) times 1/sqrt(fan_in); norm weights are
// 1 + 0.05 * N(0,1). Every tensor has its own random stream derived from the
// seed and its name, so values do not depend on --shards or tensor order.
//
// Determinism: the PRNG is xoshiro256** seeded with splitmix64. Normals use
// the Marsaglia polar method; log and exp are computed here with +,-,*,/ only
// (frexp/ldexp are exact), sqrt is IEEE correctly rounded, and the build uses
// -ffp-contract=off, so the output is bit-identical on any IEEE-754 platform
// with SSE2-style double arithmetic (x86-64, aarch64), independent of libm.
//
// --shards N > 1: OUT is a directory holding model-0000i-of-0000N.safetensors
// and model.safetensors.index.json, split by size like HF's save_pretrained.
// Every file is written to a temporary name and renamed into place.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "model/json.h"

namespace {

// ---- PRNG --------------------------------------------------------------------
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Xoshiro256ss {
  uint64_t s[4];
  explicit Xoshiro256ss(uint64_t seed) {
    for (auto& v : s) v = splitmix64(seed);
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
  // Uniform in (0, 1].
  double open0() { return static_cast<double>((next() >> 11) + 1) * 0x1.0p-53; }
  // Uniform in [-1, 1).
  double sym() { return static_cast<double>(next() >> 11) * 0x1.0p-52 - 1.0; }
};

// ---- libm-independent log / exp ---------------------------------------------
constexpr double kLn2Hi = 6.93147180369123816490e-01;  // fdlibm split of ln 2
constexpr double kLn2Lo = 1.90821492927058770002e-10;

// Natural log for finite x > 0; error a few ulp, bit-reproducible.
double det_log(double x) {
  int e;
  double m = std::frexp(x, &e);  // exact: x = m * 2^e, m in [0.5, 1)
  if (m < 0.70710678118654752440) { m *= 2.0; e -= 1; }  // m in [0.707, 1.414)
  double s = (m - 1.0) / (m + 1.0);  // |s| <= 0.1716
  double s2 = s * s;
  // 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...); 12 terms reach < 1e-18 relative.
  double term = s, sum = s;
  for (int k = 1; k <= 12; ++k) {
    term *= s2;
    sum += term / static_cast<double>(2 * k + 1);
  }
  double de = static_cast<double>(e);
  return de * kLn2Hi + (de * kLn2Lo + 2.0 * sum);
}

// e^x for |x| < 700; bit-reproducible.
double det_exp(double x) {
  double k = std::floor(x * 1.44269504088896338700 + 0.5);  // floor is exact
  double r = (x - k * kLn2Hi) - k * kLn2Lo;                 // |r| <~ 0.35
  double p = 1.0;
  for (int i = 17; i >= 1; --i) p = 1.0 + p * r / static_cast<double>(i);
  return std::ldexp(p, static_cast<int>(k));  // exact
}

class Sampler {
 public:
  explicit Sampler(uint64_t seed) : rng_(seed) {}
  double normal() {
    if (have_spare_) { have_spare_ = false; return spare_; }
    double u, v, s;
    do {
      u = rng_.sym();
      v = rng_.sym();
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = std::sqrt(-2.0 * det_log(s) / s);
    spare_ = v * f;
    have_spare_ = true;
    return u * f;
  }
  // Student-t with 5 degrees of freedom, scaled to unit variance (var = 5/3).
  double student_t5() {
    double z = normal();
    double w = normal();
    double chi2 = -2.0 * det_log(rng_.open0() * rng_.open0()) + w * w;  // chi2(4) + chi2(1)
    return z / std::sqrt(chi2 / 5.0) * kT5Norm;
  }

 private:
  static inline const double kT5Norm = std::sqrt(0.6);
  Xoshiro256ss rng_;
  double spare_ = 0;
  bool have_spare_ = false;
};

// ---- float formats -------------------------------------------------------------
uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

uint16_t f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7FFFFFFFu;
  if (x >= 0x7F800000u) return sign | 0x7C00u | (x > 0x7F800000u ? 0x200u : 0u);
  if (x >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to infinity
  if (x <= 0x33000000u) return sign;             // <= 2^-25 rounds to zero
  uint32_t e = x >> 23;
  uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
  uint32_t shift, q;
  if (x < 0x38800000u) {  // f16 subnormal
    shift = 126 - e;
    q = m >> shift;
  } else {
    shift = 13;
    q = ((e - 112) << 10) | ((m & 0x7FFFFFu) >> 13);
  }
  uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // carries into the exponent correctly
  return static_cast<uint16_t>(sign | q);
}

// ---- model description -------------------------------------------------------------
enum class OutType { bf16, f16, f32 };

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> shape;
  bool is_norm;
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) { h ^= c; h *= 0x100000001B3ull; }
  return h;
}

std::vector<TensorSpec> model_tensors(uint64_t dim, uint64_t layers, uint64_t vocab) {
  uint64_t ffn = (8 * dim + 96) / 192 * 64;  // round(8/3 dim / 64) * 64
  if (ffn < 64) ffn = 64;
  std::vector<TensorSpec> t;
  t.push_back({"model.embed_tokens.weight", {vocab, dim}, false});
  for (uint64_t i = 0; i < layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    for (const char* w : {"q", "k", "v", "o"})
      t.push_back({p + "self_attn." + w + "_proj.weight", {dim, dim}, false});
    t.push_back({p + "mlp.gate_proj.weight", {ffn, dim}, false});
    t.push_back({p + "mlp.up_proj.weight", {ffn, dim}, false});
    t.push_back({p + "mlp.down_proj.weight", {dim, ffn}, false});
    t.push_back({p + "input_layernorm.weight", {dim}, true});
    t.push_back({p + "post_attention_layernorm.weight", {dim}, true});
  }
  t.push_back({"model.norm.weight", {dim}, true});
  t.push_back({"lm_head.weight", {vocab, dim}, false});
  return t;
}

uint64_t elem_count(const TensorSpec& t) {
  uint64_t n = 1;
  for (auto d : t.shape) n *= d;
  return n;
}

size_t elem_size(OutType o) { return o == OutType::f32 ? 4 : 2; }
const char* dtype_str(OutType o) { return o == OutType::bf16 ? "BF16" : o == OutType::f16 ? "F16" : "F32"; }

// Appends the little-endian encoding of tensor `t` to out.
void generate(const TensorSpec& t, uint64_t seed, OutType ot, std::vector<uint8_t>& out) {
  uint64_t sm = seed ^ fnv1a(t.name);
  Sampler smp(splitmix64(sm));
  uint64_t rows = t.shape[0];
  uint64_t cols = t.shape.size() > 1 ? t.shape[1] : 1;
  size_t es = elem_size(ot);
  size_t base = out.size();
  out.resize(base + rows * cols * es);
  uint8_t* p = out.data() + base;
  auto put = [&](double v) {
    float f = static_cast<float>(v);
    if (ot == OutType::f32) {
      uint32_t u = f32_bits(f);
      std::memcpy(p, &u, 4);
    } else {
      uint16_t h = ot == OutType::bf16 ? f32_to_bf16(f) : f32_to_f16(f);
      std::memcpy(p, &h, 2);
    }
    p += es;
  };
  if (t.is_norm) {
    for (uint64_t i = 0; i < rows; ++i) put(1.0 + 0.05 * smp.normal());
    return;
  }
  double tensor_scale = 1.0 / std::sqrt(static_cast<double>(cols));
  for (uint64_t r = 0; r < rows; ++r) {
    double row_scale = tensor_scale * det_exp(0.5 * smp.normal());
    for (uint64_t c = 0; c < cols; ++c) put(smp.student_t5() * row_scale);
  }
}

// ---- output --------------------------------------------------------------------
[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "wcodec_gen_sample: %s\n", msg.c_str());
  std::exit(1);
}

class TempFile {
 public:
  explicit TempFile(std::string final_path)
      : final_(std::move(final_path)), tmp_(final_ + ".tmp." + std::to_string(::getpid())) {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) die("cannot create " + tmp_ + ": " + std::strerror(errno));
  }
  ~TempFile() {
    if (f_) { std::fclose(f_); std::remove(tmp_.c_str()); }
  }
  void write(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) die("write failed: " + tmp_);
  }
  void commit() {
    bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
    ok = std::fclose(f_) == 0 && ok;
    f_ = nullptr;
    if (!ok) { std::remove(tmp_.c_str()); die("write failed: " + tmp_); }
    if (std::rename(tmp_.c_str(), final_.c_str()) != 0) {
      std::remove(tmp_.c_str());
      die("cannot rename to " + final_ + ": " + std::strerror(errno));
    }
  }

 private:
  std::string final_, tmp_;
  std::FILE* f_ = nullptr;
};

// Writes one safetensors file with tensors [first, last) of `ts`; returns data bytes.
uint64_t write_safetensors(const std::string& path, const std::vector<TensorSpec>& ts, size_t first, size_t last,
                           uint64_t seed, OutType ot) {
  std::string j = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t off = 0;
  for (size_t i = first; i < last; ++i) {
    const auto& t = ts[i];
    uint64_t n = elem_count(t) * elem_size(ot);
    j += "," + wc::json_quote(t.name) + ":{\"dtype\":\"" + dtype_str(ot) + "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) j += (d ? "," : "") + std::to_string(t.shape[d]);
    j += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + n) + "]}";
    off += n;
  }
  j += "}";
  while ((8 + j.size()) % 8 != 0) j += ' ';
  TempFile f(path);
  uint8_t len[8];
  uint64_t n = j.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  f.write(len, 8);
  f.write(j.data(), j.size());
  std::vector<uint8_t> buf;
  for (size_t i = first; i < last; ++i) {
    buf.clear();
    generate(ts[i], seed, ot, buf);
    f.write(buf.data(), buf.size());
  }
  f.commit();
  return off;
}

std::string shard_name(size_t i, size_t n) {
  char b[64];
  std::snprintf(b, sizeof b, "model-%05zu-of-%05zu.safetensors", i, n);
  return b;
}

uint64_t parse_u64(const std::string& opt, const std::string& v, uint64_t lo, uint64_t hi) {
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || v[0] == '-' || x < lo || x > hi)
    die(opt + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
  return x;
}

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: wcodec_gen_sample OUT.safetensors [--dim 256] [--layers 2] [--vocab 1024]\n"
               "                         [--seed 1] [--dtype bf16|f16|f32] [--shards N]\n"
               "With --shards N > 1, OUT is a directory of N shards plus model.safetensors.index.json.\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  uint64_t dim = 256, layers = 2, vocab = 1024, seed = 1, shards = 1;
  OutType ot = OutType::bf16;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") { usage(stdout); return 0; }
    if (a.rfind("--", 0) == 0) {
      std::string key = a, val;
      if (auto eq = a.find('='); eq != std::string::npos) {
        key = a.substr(0, eq);
        val = a.substr(eq + 1);
      } else {
        if (i + 1 >= argc) die(a + " needs a value");
        val = argv[++i];
      }
      if (key == "--dim") dim = parse_u64(key, val, 1, 65536);
      else if (key == "--layers") layers = parse_u64(key, val, 0, 4096);
      else if (key == "--vocab") vocab = parse_u64(key, val, 1, 1u << 22);
      else if (key == "--seed") seed = parse_u64(key, val, 0, UINT64_MAX);
      else if (key == "--shards") shards = parse_u64(key, val, 1, 99999);
      else if (key == "--dtype") {
        if (val == "bf16") ot = OutType::bf16;
        else if (val == "f16") ot = OutType::f16;
        else if (val == "f32") ot = OutType::f32;
        else die("--dtype expects bf16, f16 or f32, got '" + val + "'");
      } else {
        usage(stderr);
        die("unknown option " + key);
      }
    } else if (out.empty()) {
      out = a;
    } else {
      usage(stderr);
      die("unexpected argument " + a);
    }
  }
  if (out.empty()) { usage(stderr); return 2; }

  auto ts = model_tensors(dim, layers, vocab);
  if (shards == 1) {
    write_safetensors(out, ts, 0, ts.size(), seed, ot);
    return 0;
  }
  if (shards > ts.size())
    die("--shards " + std::to_string(shards) + " exceeds the number of tensors (" + std::to_string(ts.size()) + ")");
  if (::mkdir(out.c_str(), 0777) != 0 && errno != EEXIST) die("cannot create directory " + out + ": " + std::strerror(errno));
  struct stat sb;
  if (::stat(out.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) die(out + " is not a directory");

  // Greedy split by size: shard k ends once the running total reaches
  // (k+1)/N of the whole; every shard gets at least one tensor.
  std::vector<uint64_t> bytes(ts.size());
  uint64_t total = 0;
  for (size_t i = 0; i < ts.size(); ++i) total += bytes[i] = elem_count(ts[i]) * elem_size(ot);
  std::vector<size_t> cut = {0};
  uint64_t run = 0;
  for (size_t i = 0; i < ts.size() && cut.size() < shards; ++i) {
    run += bytes[i];
    size_t k = cut.size();  // shard index being filled is k-1
    size_t remaining_tensors = ts.size() - (i + 1), remaining_shards = shards - k;
    if (run * shards >= total * k || remaining_tensors == remaining_shards) cut.push_back(i + 1);
  }
  cut.push_back(ts.size());

  std::map<std::string, std::string> weight_map;  // sorted keys, like HF
  uint64_t data_total = 0;
  for (size_t s = 0; s < shards; ++s) {
    std::string name = shard_name(s + 1, shards);
    data_total += write_safetensors(out + "/" + name, ts, cut[s], cut[s + 1], seed, ot);
    for (size_t i = cut[s]; i < cut[s + 1]; ++i) weight_map[ts[i].name] = name;
  }
  std::string idx = "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(data_total) + "\n  },\n  \"weight_map\": {";
  bool first = true;
  for (const auto& [k, v] : weight_map) {
    idx += (first ? "\n    " : ",\n    ") + wc::json_quote(k) + ": " + wc::json_quote(v);
    first = false;
  }
  idx += "\n  }\n}\n";
  TempFile f(out + "/model.safetensors.index.json");
  f.write(idx.data(), idx.size());
  f.commit();
  return 0;
}
