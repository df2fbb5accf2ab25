// The lossy path (container 2.0, representation qrow): pack --bits round
// trips through every reader (unpack from a file and a pipe, the C API in the
// tensor's own dtype and in the others, .npy extraction, verify), the error
// figures inspect reports match the files, the all-in budget is met, a
// lossless pack is unchanged, bad parameters are refused before any output,
// packing is deterministic, and the qrow decoders agree to the bit.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "format/reader.h"
#include "lib/api.h"
#include "lib/reader_checks.h"
#include "lib/unit_decode.h"
#include "model/safetensors.h"
#include "quant/qrow.h"
#include "quant/qrow_math.h"
#include "quant/qrow_round.h"
#include "quant/float_load.h"
#include "st_builder.h"
#include "test_util.h"
#include "wcodec/wcodec.h"

using wc::DType;

namespace {

using tu::q;
using tu::exists;

// xorshift64* with a uniform in [0, 1) and a standard normal (Box-Muller).
struct Rng {
  uint64_t x;
  explicit Rng(uint64_t seed) : x(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    return x * 0x2545F4914F6CDD1Dull;
  }
  double uni() { return double(next() >> 11) / double(1ull << 53); }
  double normal() {
    const double u1 = 1.0 - uni(), u2 = uni();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// Weight-like values: Student t with 5 degrees of freedom (heavy tails, as
// LLM weights have), each row with its own scale (0.02 x 2^[-2, 2)).
std::vector<float> t5_values(uint64_t rows, uint64_t cols, uint64_t seed) {
  Rng g(seed);
  std::vector<float> v(rows * cols);
  for (uint64_t r = 0; r < rows; ++r) {
    const double scale = 0.02 * std::exp2(4.0 * g.uni() - 2.0);
    for (uint64_t c = 0; c < cols; ++c) {
      double chi = 0;
      for (int k = 0; k < 5; ++k) {
        const double z = g.normal();
        chi += z * z;
      }
      v[r * cols + c] = float(g.normal() / std::sqrt(chi / 5.0) * scale);
    }
  }
  return v;
}

// binary32 values stored in dtype t (round to nearest even).
std::vector<uint8_t> as_dtype(DType t, const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * (wc::dtype_bits(t) / 8));
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t b;
    std::memcpy(&b, &v[i], 4);
    if (t == DType::F32) {
      std::memcpy(&out[4 * i], &b, 4);
    } else {
      const uint16_t h = t == DType::BF16 ? wc::qrow::f32_to_bf16_rne(b) : wc::qrow::f32_to_f16_rne(b);
      std::memcpy(&out[2 * i], &h, 2);
    }
  }
  return out;
}

// Element i of BF16/F16/F32 bytes as a double (written here from the IEEE
// layouts, not with the library's loaders).
double value_at(DType t, const uint8_t* p, size_t i) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  const uint16_t h = uint16_t(p[2 * i] | p[2 * i + 1] << 8);
  if (t == DType::BF16) {
    const uint32_t b = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  const int e = (h >> 10) & 31, m = h & 0x3FF;
  if (e == 31) return m ? NAN : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(double(m), -24);
  return sign * std::ldexp(double(1024 + m), e - 25);
}

struct Spec {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  bool lossy;  // expected to become lossy at the options of llama_model_options()
};

uint64_t elements(const std::vector<uint64_t>& s) {
  uint64_t n = 1;
  for (uint64_t d : s) n *= d;
  return n;
}

// A one-layer Llama-shaped model: BF16, F16 and F32 matrices (one of three
// tiles with a short last one, one of rank 3, one with an all-zero row),
// 1-D norms, a matrix below min_elements, one matched by --keep, one holding
// an infinity, an integer matrix.
const std::vector<Spec> kLlama = {
    {"model.embed_tokens.weight", DType::BF16, {256, 512}, true},
    {"model.layers.0.input_layernorm.weight", DType::BF16, {512}, false},
    {"model.layers.0.self_attn.q_proj.weight", DType::BF16, {256, 512}, true},
    {"model.layers.0.self_attn.k_proj.weight", DType::F16, {128, 512}, true},
    {"model.layers.0.self_attn.v_proj.weight", DType::BF16, {64, 512}, false},  // holds +inf
    {"model.layers.0.self_attn.o_proj.weight", DType::F32, {256, 512}, true},
    {"model.layers.0.mlp.gate_proj.weight", DType::F16, {1100, 512}, true},  // 3 tiles of 512 rows
    {"model.layers.0.mlp.down_proj.weight", DType::BF16, {8, 16, 64}, true},  // rank 3
    {"model.layers.0.post_attention_layernorm.weight", DType::F32, {512}, false},
    {"model.layers.0.small.weight", DType::BF16, {16, 32}, false},  // 512 < min_elements
    {"model.layers.0.counts", DType::I32, {64, 64}, false},
    {"model.norm.weight", DType::F32, {512}, false},
    {"lm_head.weight", DType::BF16, {256, 512}, false},  // --keep lm_head
};

std::vector<stb::StTensor> build_tensors(const std::vector<Spec>& specs, uint64_t seed) {
  std::vector<stb::StTensor> ts;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec& s = specs[i];
    const uint64_t n = elements(s.shape);
    std::vector<uint8_t> bytes;
    if (s.dtype == DType::BF16 || s.dtype == DType::F16 || s.dtype == DType::F32) {
      const uint64_t rows = s.shape.size() >= 2 ? s.shape[0] : 1;
      std::vector<float> v = t5_values(rows, n / rows, seed * 100 + i);
      if (s.name.find("norm") != std::string::npos)
        for (auto& x : v) x = 1.0f + x;
      if (s.name.find("q_proj") != std::string::npos)
        for (uint64_t c = 0; c < n / rows; ++c) v[7 * (n / rows) + c] = 0.0f;  // row 7 all zero
      if (s.name.find("v_proj") != std::string::npos) v[1234] = INFINITY;
      bytes = as_dtype(s.dtype, v);
    } else {
      bytes = stb::pattern_bytes(n * (wc::dtype_bits(s.dtype) / 8), seed + i);
    }
    ts.push_back({s.name, s.dtype, s.shape, bytes});
  }
  return ts;
}

wc::PackOptions lossy_options(double bits) {
  wc::PackOptions po;
  po.bits = bits;
  po.keep = "^lm_head";
  po.threads = 2;
  return po;
}

size_t count_lossy(const std::vector<Spec>& specs) {
  return size_t(std::count_if(specs.begin(), specs.end(), [](const Spec& s) { return s.lossy; }));
}

// A safetensors file read back: its header and, per tensor name, its bytes.
struct StFile {
  std::vector<uint8_t> bytes;
  wc::st::Header h;
  std::map<std::string, const wc::st::TensorInfo*> by_name;
  explicit StFile(const std::string& path) : bytes(tu::read_file(path)) {
    h = wc::st::parse_header(bytes.data(), bytes.size(), bytes.size());
    for (const auto& t : h.tensors) by_name[t.name] = &t;
  }
  const wc::st::TensorInfo& info(const std::string& name) const {
    auto it = by_name.find(name);
    REQUIRE(it != by_name.end());
    return *it->second;
  }
  std::vector<uint8_t> data(const std::string& name) const {
    const auto& t = info(name);
    return std::vector<uint8_t>(bytes.begin() + long(h.data_start + t.begin), bytes.begin() + long(h.data_start + t.end));
  }
};

// Errors computed here, in double: sum of squared errors, sum of squares, max |w - w'|.
struct Err {
  double sse = 0, ss = 0, max_abs = 0;
};
Err error_of(DType t, const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  REQUIRE(a.size() == b.size());
  Err e;
  const size_t n = a.size() / (wc::dtype_bits(t) / 8);
  for (size_t i = 0; i < n; ++i) {
    const double x = value_at(t, a.data(), i), y = value_at(t, b.data(), i);
    e.sse += (x - y) * (x - y), e.ss += x * x, e.max_abs = std::max(e.max_abs, std::fabs(x - y));
  }
  return e;
}

std::map<std::string, wc::TensorSummary> summaries(const std::string& wcz, wc::InspectResult* res = nullptr) {
  std::vector<wc::TensorSummary> v;
  wc::InspectResult r = wc::inspect(wcz, false, &v);
  if (res) *res = r;
  std::map<std::string, wc::TensorSummary> m;
  for (auto& s : v) m[s.name] = s;
  return m;
}

bool close_rel(double a, double b, double rel) { return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)); }

// pack's all-in bits per weight against inspect's byte count: the same
// bytes, give or take inspect's rounding of each tensor's share to a byte.
bool same_bpw(double pack_bpw, uint64_t file_bytes, uint64_t weights, uint64_t tensors) {
  return std::fabs(pack_bpw * double(weights) / 8.0 - double(file_bytes)) <= 0.5 * double(tensors) + 1e-6;
}

// The error a library call threw (Errc::ok when none) and its message.
struct Caught {
  wc::Errc code = wc::Errc::ok;
  std::string msg;
};
template <class Fn>
Caught catch_error(Fn&& fn) {
  Caught c;
  try {
    fn();
  } catch (const wc::Error& e) {
    c.code = e.code();
    c.msg = e.describe();
  }
  return c;
}

// One F32 scalar (rank 0) per name: a --sensitivity file.
std::vector<uint8_t> sensitivity_file(const std::vector<std::pair<std::string, float>>& v) {
  std::vector<stb::StTensor> ts;
  for (const auto& [n, x] : v) {
    std::vector<uint8_t> b(4);
    std::memcpy(b.data(), &x, 4);
    ts.push_back({n, DType::F32, {}, b});
  }
  return stb::build(ts);
}

}  // namespace

TEST_SUITE("lossy") {
  TEST_CASE("round trip: 2.0 container, exact tensors byte for byte, every reader and decoder agrees") {
    tu::TempDir t;
    const auto ts = build_tensors(kLlama, 1);
    const auto input = stb::build(ts);
    const std::string m = t / "model.safetensors", wcz = t / "model.wcz";
    tu::write_file(m, input);
    const auto pr = wc::pack(m, wcz, lossy_options(4.25));
    CHECK(pr.lossy_tensors == count_lossy(kLlama));
    uint64_t lossy_weights = 0;
    for (const auto& s : kLlama)
      if (s.lossy) lossy_weights += elements(s.shape);
    CHECK(pr.lossy_weights == lossy_weights);
    CHECK(pr.output_bytes == tu::read_file(wcz).size());

    wc::InspectResult ir;
    const auto sum = summaries(wcz, &ir);
    CHECK(ir.version_major == 2);
    // 2.1 exactly when an exact tensor uses float-ans-mixed (its row scales
    // may make a per-channel shift pay), 2.2 with qrow-outliers, 2.3 when a
    // part's coded payload lies in its record (small tensors' codes)
    bool mixed = false, outliers = false, inline_coded = false;
    for (const auto& [name, s] : sum) mixed |= s.codec == "float-ans-mixed", outliers |= s.repr == "qrow-outliers";
    {
      wc::ContainerReader r(wcz, wc::kReaderChecks);
      for (const auto& tr : r.manifest().tensors)
        for (const auto& q : tr.parts) inline_coded |= q.layout == wc::PartLayout::inline_items && q.codec != 0;
    }
    CHECK(inline_coded);  // kLlama has tensors of one tile
    CHECK(ir.version_minor == (inline_coded ? 3 : outliers ? 2 : mixed ? 1 : 0));
    CHECK(ir.lossy_tensors == count_lossy(kLlama));
    CHECK(ir.lossy_weights == lossy_weights);
    CHECK(same_bpw(pr.lossy_bits_per_weight, ir.lossy_file_bytes, ir.lossy_weights, ir.lossy_tensors));
    for (const auto& s : kLlama) {
      CAPTURE(s.name);
      REQUIRE(sum.count(s.name) == 1);
      const auto& ts_ = sum.at(s.name);
      CHECK(ts_.repr == (s.lossy ? "qrow" : "exact"));
      CHECK(ts_.levels == 1);
      CHECK(ts_.dtype == std::string(wc::dtype_name(s.dtype)));
      CHECK(ts_.shape == s.shape);
      if (s.lossy) {
        CHECK(ts_.rel_rmse > 0);
        CHECK(ts_.rel_rmse < 0.2);
        CHECK(ts_.max_abs > 0);
      } else {
        CHECK(ts_.rel_rmse == -1);
      }
    }

    // unpack: a valid safetensors file, same header, exact tensors identical
    wc::UnpackOptions uo;
    uo.threads = 2;
    const std::string back = t / "back.safetensors";
    wc::unpack(wcz, back, uo);
    const StFile in(m), out(back);
    CHECK(out.bytes.size() == input.size());
    CHECK(std::equal(input.begin(), input.begin() + long(in.h.data_start), out.bytes.begin()));  // header verbatim
    REQUIRE(out.h.tensors.size() == kLlama.size());
    for (size_t i = 0; i < kLlama.size(); ++i) {
      const Spec& s = kLlama[i];
      CAPTURE(s.name);
      const auto& ti = out.info(s.name);
      CHECK(ti.dtype == s.dtype);
      CHECK(ti.shape == s.shape);
      if (s.lossy) {
        CHECK(out.data(s.name) != in.data(s.name));
        CHECK(out.data(s.name).size() == in.data(s.name).size());
      } else {
        CHECK(out.data(s.name) == in.data(s.name));
      }
    }
    // the all-zero row of q_proj stays zero (+0)
    {
      const auto qb = out.data("model.layers.0.self_attn.q_proj.weight");
      CHECK(std::all_of(qb.begin() + 7 * 512 * 2, qb.begin() + 8 * 512 * 2, [](uint8_t b) { return b == 0; }));
    }

    // verify (no against) passes; with the original it is refused
    const auto vr = wc::verify(wcz, "", 2, {});
    CHECK(vr.files == 1);
    CHECK(vr.bytes == input.size());

    // the CLI packs the same container as the library
    auto r = tu::run(tu::cli() + " pack " + q(m) + " -o " + q(t / "cli.wcz") + " --bits 4.25 --keep '^lm_head' -T 1");
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK(r.out.find("lossy") != std::string::npos);
    CHECK(tu::read_file(t / "cli.wcz") == tu::read_file(wcz));

    // unpack from a pipe (standard input, read front to back) equals unpack from the file
    r = tu::run(tu::cli() + " unpack - -o " + q(t / "piped.safetensors") + " < " + q(wcz));
    CHECK(r.status == 0);
    CHECK(tu::read_file(t / "piped.safetensors") == out.bytes);
    r = tu::run("cat " + q(wcz) + " | " + tu::cli() + " unpack - -o " + q(t / "piped2.safetensors"));
    CHECK(r.status == 0);
    CHECK(tu::read_file(t / "piped2.safetensors") == out.bytes);
    // and the CLI's unpack from the file
    r = tu::run(tu::cli() + " unpack " + q(wcz) + " -o " + q(t / "cli_back.safetensors"));
    CHECK(r.status == 0);
    CHECK(tu::read_file(t / "cli_back.safetensors") == out.bytes);
    r = tu::run(tu::cli() + " verify " + q(wcz));
    CHECK(r.status == 0);

    // C API: own dtype through both entry points equals unpack; F32 rounded
    // to BF16/F16 equals the decode in that dtype
    char err[512] = {0};
    wcodec_archive* a = nullptr;
    REQUIRE(wcodec_open(wcz.c_str(), &a, err, sizeof err) == WCODEC_OK);
    REQUIRE(wcodec_tensor_count(a) == kLlama.size());
    for (const Spec& s : kLlama) {
      CAPTURE(s.name);
      size_t ti = 0;
      REQUIRE(wcodec_find_tensor(a, s.name.c_str(), &ti) == WCODEC_OK);
      wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
      REQUIRE(wcodec_get_tensor_info(a, ti, &info) == WCODEC_OK);
      CHECK(std::string(info.representation) == (s.lossy ? "qrow" : "exact"));
      CHECK(info.levels == 1);
      CHECK(std::string(info.dtype) == std::string(wc::dtype_name(s.dtype)));
      const auto want = out.data(s.name);
      CHECK(info.byte_size == want.size());
      std::vector<uint8_t> d1(want.size() + 1, 0xAB), d2(want.size(), 0xCD), d3(want.size(), 0xEF);
      CHECK(wcodec_decode_tensor(a, ti, d1.data(), want.size(), 2, err, sizeof err) == WCODEC_OK);
      CHECK(std::equal(want.begin(), want.end(), d1.begin()));
      CHECK(d1.back() == 0xAB);  // nothing written past byte_size
      CHECK(wcodec_decode_tensor_ex(a, ti, WCODEC_LEVEL_TOP, nullptr, d2.data(), d2.size(), 1, err, sizeof err) == WCODEC_OK);
      CHECK(d2 == want);
      CHECK(wcodec_decode_tensor_ex(a, ti, 0, nullptr, d3.data(), d3.size(), 0, err, sizeof err) == WCODEC_OK);
      CHECK(d3 == want);
      CHECK(wcodec_decode_tensor_ex(a, ti, 1, nullptr, d3.data(), d3.size(), 0, err, sizeof err) == WCODEC_E_USAGE);
      CHECK(wcodec_decode_tensor_ex(a, ti, WCODEC_LEVEL_TOP, nullptr, d3.data(), d3.size() - 1, 0, err, sizeof err) ==
            WCODEC_E_USAGE);
      if (!s.lossy) {
        if (s.dtype != DType::F32)
          CHECK(wcodec_decode_tensor_ex(a, ti, WCODEC_LEVEL_TOP, "F32", d3.data(), d3.size(), 0, err, sizeof err) ==
                WCODEC_E_USAGE);
        continue;
      }
      CHECK(wcodec_decode_chunk(a, ti, 0, d3.data(), d3.size(), err, sizeof err) == WCODEC_E_USAGE);
      const uint64_t n = elements(s.shape);
      std::vector<uint8_t> f32(n * 4);
      REQUIRE(wcodec_decode_tensor_ex(a, ti, WCODEC_LEVEL_TOP, "F32", f32.data(), f32.size(), 2, err, sizeof err) ==
              WCODEC_OK);
      std::vector<uint8_t> bf(n * 2), hf(n * 2), bf_dec(n * 2), hf_dec(n * 2);
      for (uint64_t i = 0; i < n; ++i) {
        uint32_t b;
        std::memcpy(&b, &f32[4 * i], 4);
        const uint16_t x = wc::qrow::f32_to_bf16_rne(b), y = wc::qrow::f32_to_f16_rne(b);
        std::memcpy(&bf[2 * i], &x, 2);
        std::memcpy(&hf[2 * i], &y, 2);
      }
      if (s.dtype == DType::F32) CHECK(f32 == want);
      if (s.dtype == DType::BF16) CHECK(bf == want);
      if (s.dtype == DType::F16) CHECK(hf == want);
      CHECK(wcodec_decode_tensor_ex(a, ti, WCODEC_LEVEL_TOP, "BF16", bf_dec.data(), bf_dec.size(), 2, err, sizeof err) ==
            WCODEC_OK);
      CHECK(bf_dec == bf);
      CHECK(wcodec_decode_tensor_ex(a, ti, WCODEC_LEVEL_TOP, "F16", hf_dec.data(), hf_dec.size(), 2, err, sizeof err) ==
            WCODEC_OK);
      CHECK(hf_dec == hf);
      CHECK(wcodec_decode_tensor_ex(a, ti, WCODEC_LEVEL_TOP, "F64", f32.data(), f32.size(), 2, err, sizeof err) ==
            WCODEC_E_USAGE);
    }
    wcodec_close(a);

    // one lossy tensor as .npy: the header, then the bytes unpack wrote
    for (const char* name : {"model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.down_proj.weight"}) {
      CAPTURE(name);
      const auto npy = wc::unpack_tensor_npy(wcz, "", name, t / "x.npy", uo);
      const auto f = tu::read_file(t / "x.npy");
      REQUIRE(f.size() > 10);
      const size_t hl = size_t(f[8] | f[9] << 8);
      const auto want = out.data(name);
      CHECK(npy.bytes == want.size());
      CHECK(f.size() == 10 + hl + want.size());
      CHECK(std::equal(want.begin(), want.end(), f.begin() + long(10 + hl)));
      CHECK(npy.shape == out.info(name).shape);
      ::unlink((t / "x.npy").c_str());
    }
    CHECK(tu::temp_files(t.path).empty());
  }

  TEST_CASE("error figures: inspect's rel. RMSE, max |err| and SNR match the files") {
    tu::TempDir t;
    const std::string m = t / "model.safetensors", wcz = t / "model.wcz";
    tu::write_file(m, stb::build(build_tensors(kLlama, 2)));
    for (double bits : {2.25, 4.25}) {
      CAPTURE(bits);
      wc::PackOptions po = lossy_options(bits);
      po.force = true;
      wc::pack(m, wcz, po);
      wc::UnpackOptions uo;
      uo.force = true;
      wc::unpack(wcz, t / "back.safetensors", uo);
      const StFile in(m), out(t / "back.safetensors");
      const auto sum = summaries(wcz);
      for (const Spec& s : kLlama) {
        if (!s.lossy) continue;
        CAPTURE(s.name);
        const Err e = error_of(s.dtype, in.data(s.name), out.data(s.name));
        const double rel = std::sqrt(e.sse / e.ss);
        const auto& ts_ = sum.at(s.name);
        CHECK(close_rel(ts_.rel_rmse, rel, 1e-5));
        CHECK(close_rel(ts_.max_abs, e.max_abs, 1e-5));
        CHECK(close_rel(ts_.snr_db, -20.0 * std::log10(ts_.rel_rmse), 1e-9));
        CHECK(close_rel(ts_.bits_per_weight, 8.0 * double(ts_.file_bytes) / double(elements(s.shape)), 1e-12));
      }
    }
    // the JSON listing carries the same figures
    auto r = tu::run(tu::cli() + " inspect --json " + q(wcz));
    CHECK(r.status == 0);
    CHECK(r.out.find("\"rel_rmse\":") != std::string::npos);
    CHECK(r.out.find("\"snr_db\":") != std::string::npos);
    CHECK(r.out.find("qrow") != std::string::npos);
  }

  TEST_CASE("budget: all-in bits per weight at most the request and close to it; more bits, less error") {
    tu::TempDir t;
    const std::string m = t / "model.safetensors";
    const auto input = stb::build(build_tensors(kLlama, 3));
    tu::write_file(m, input);
    const StFile in(m);
    double last_sse = INFINITY;
    for (double bits : {2.25, 3.25, 4.25, 8.0}) {
      CAPTURE(bits);
      const std::string wcz = t / ("m" + std::to_string(int(bits * 100)) + ".wcz");
      const auto pr = wc::pack(m, wcz, lossy_options(bits));
      wc::InspectResult ir;
      const auto sum = summaries(wcz, &ir);
      uint64_t fb = 0, w = 0;
      for (const Spec& s : kLlama)
        if (s.lossy) fb += sum.at(s.name).file_bytes, w += elements(s.shape);
      const double bpw = 8.0 * double(fb) / double(w);
      MESSAGE("--bits " << bits << ": " << bpw << " bits/weight all-in");
      CHECK(fb == ir.lossy_file_bytes);
      CHECK(same_bpw(pr.lossy_bits_per_weight, fb, w, ir.lossy_tensors));
      CHECK(bpw <= bits);
      // The encoder stops within 0.3% when it can; after its six rounds it
      // keeps the largest allocation that fit, which today may fall 3-6%
      // short (2.25 -> 2.13..2.18 on these models): 10% is what it holds.
      CHECK(bpw >= 0.90 * bits);
      wc::UnpackOptions uo;
      uo.force = true;
      wc::unpack(wcz, t / "back.safetensors", uo);
      const StFile out(t / "back.safetensors");
      double sse = 0;
      for (const Spec& s : kLlama)
        if (s.lossy) sse += error_of(s.dtype, in.data(s.name), out.data(s.name)).sse;
      CHECK(sse < last_sse);
      last_sse = sse;
    }
  }

  TEST_CASE("lossless unchanged: no --bits (PackOptions.bits 0) gives the 1.x container; no eligible tensor, no lossy record") {
    tu::TempDir t;
    const std::string m = t / "model.safetensors";
    tu::write_file(m, stb::build(build_tensors(kLlama, 4)));
    wc::PackOptions plain;
    plain.threads = 2;
    const auto p0 = wc::pack(m, t / "plain.wcz", plain);
    CHECK(p0.lossy_tensors == 0);
    CHECK(p0.lossy_bits_per_weight == 0);
    wc::PackOptions zero = plain;
    zero.bits = 0;
    wc::pack(m, t / "zero.wcz", zero);
    CHECK(tu::read_file(t / "zero.wcz") == tu::read_file(t / "plain.wcz"));
    wc::InspectResult ir;
    summaries(t / "plain.wcz", &ir);
    CHECK(ir.version_major == 1);
    CHECK(ir.lossy_tensors == 0);
    CHECK(wc::verify(t / "plain.wcz", m, 2, {}).compared);
    // the CLI without --bits is lossless too; --bits 0 is a usage error (the
    // issue lists it among bad parameters), and leaves nothing
    auto r = tu::run(tu::cli() + " pack " + q(m) + " -o " + q(t / "cli0.wcz"));
    CHECK(r.status == 0);
    CHECK(tu::read_file(t / "cli0.wcz") == tu::read_file(t / "plain.wcz"));
    r = tu::run(tu::cli() + " pack " + q(m) + " -o " + q(t / "cli_bits0.wcz") + " --bits 0");
    CHECK(r.status == 2);
    CHECK(r.out.find("--bits 0") != std::string::npos);
    CHECK_FALSE(exists(t / "cli_bits0.wcz"));

    // nothing eligible: 1-D tensors, small ones, integers, and a matrix --keep matches
    const std::vector<Spec> flat = {{"model.norm.weight", DType::BF16, {4096}, false},
                                    {"model.layers.0.input_layernorm.weight", DType::F32, {2048}, false},
                                    {"model.small.weight", DType::F16, {16, 32}, false},
                                    {"model.counts", DType::I32, {64, 64}, false},
                                    {"lm_head.weight", DType::BF16, {64, 512}, false}};
    const std::string f = t / "flat.safetensors";
    tu::write_file(f, stb::build(build_tensors(flat, 5)));
    wc::pack(f, t / "flat_plain.wcz", plain);
    const auto pl = wc::pack(f, t / "flat_lossy.wcz", lossy_options(4));
    CHECK(pl.lossy_tensors == 0);
    CHECK(pl.lossy_weights == 0);
    CHECK(pl.lossy_bits_per_weight == 0);
    CHECK(tu::read_file(t / "flat_lossy.wcz") == tu::read_file(t / "flat_plain.wcz"));
    summaries(t / "flat_lossy.wcz", &ir);
    CHECK(ir.version_major == 1);
    CHECK(wc::verify(t / "flat_lossy.wcz", f, 2, {}).compared);
    // every matrix below --min-elements: the same
    wc::PackOptions big_min = lossy_options(4);
    big_min.min_elements = 1u << 20;
    wc::pack(m, t / "min.wcz", big_min);
    CHECK(tu::read_file(t / "min.wcz") == tu::read_file(t / "plain.wcz"));
  }

  TEST_CASE("mixed: a sharded model with one lossy shard and one exact shard") {
    tu::TempDir t;
    const std::string d = t / "model";
    ::mkdir(d.c_str(), 0755);
    const std::vector<Spec> s1 = {{"model.layers.0.self_attn.q_proj.weight", DType::BF16, {256, 512}, true},
                                  {"model.layers.0.input_layernorm.weight", DType::BF16, {512}, false},
                                  {"model.layers.0.mlp.up_proj.weight", DType::F16, {128, 256}, true}};
    const std::vector<Spec> s2 = {{"model.norm.weight", DType::F32, {512}, false},
                                  {"model.layers.1.small.weight", DType::BF16, {16, 32}, false}};
    const std::string a = d + "/model-00001-of-00002.safetensors", b = d + "/model-00002-of-00002.safetensors";
    const std::string idx = d + "/model.safetensors.index.json";
    tu::write_file(a, stb::build(build_tensors(s1, 6)));
    tu::write_file(b, stb::build(build_tensors(s2, 7)));
    const std::string ij =
        "{\"metadata\": {}, \"weight_map\": {\"model.layers.0.self_attn.q_proj.weight\": \"model-00001-of-00002.safetensors\", "
        "\"model.layers.0.input_layernorm.weight\": \"model-00001-of-00002.safetensors\", "
        "\"model.layers.0.mlp.up_proj.weight\": \"model-00001-of-00002.safetensors\", "
        "\"model.norm.weight\": \"model-00002-of-00002.safetensors\", "
        "\"model.layers.1.small.weight\": \"model-00002-of-00002.safetensors\"}}\n";
    tu::write_file(idx, std::vector<uint8_t>(ij.begin(), ij.end()));
    const std::string wcz = t / "model.wcz";
    const auto pr = wc::pack(idx, wcz, lossy_options(3.25));
    CHECK(pr.lossy_tensors == 2);
    wc::InspectResult ir;
    const auto sum = summaries(wcz, &ir);
    CHECK(ir.version_major == 2);
    CHECK(ir.files.size() == 3);
    CHECK(sum.at("model.norm.weight").repr == "exact");
    CHECK(sum.at("model.layers.0.mlp.up_proj.weight").repr == "qrow");
    CHECK(wc::verify(wcz, "", 2, {}).files == 3);
    wc::UnpackOptions uo;
    const std::string o = t / "out";
    wc::unpack(wcz, o, uo);
    CHECK(tu::read_file(o + "/model-00002-of-00002.safetensors") == tu::read_file(b));
    CHECK(tu::read_file(o + "/model.safetensors.index.json") == tu::read_file(idx));
    const StFile ia(a), oa(o + "/model-00001-of-00002.safetensors");
    CHECK(oa.bytes.size() == ia.bytes.size());
    CHECK(oa.data("model.layers.0.input_layernorm.weight") == ia.data("model.layers.0.input_layernorm.weight"));
    CHECK(oa.data("model.layers.0.self_attn.q_proj.weight") != ia.data("model.layers.0.self_attn.q_proj.weight"));
    // the exact shard alone, and the whole model through a pipe
    wc::unpack_file(wcz, "model-00002-of-00002.safetensors", t / "b_only.safetensors", uo);
    CHECK(tu::read_file(t / "b_only.safetensors") == tu::read_file(b));
    auto r = tu::run(tu::cli() + " unpack - -o " + q(t / "piped") + " < " + q(wcz));
    INFO(r.out);
    CHECK(r.status == 0);
    for (const char* n : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                          "model.safetensors.index.json"})
      CHECK(tu::read_file(t / "piped/" + std::string(n)) == tu::read_file(o + "/" + n));
    // --against is refused on a lossy container, even for its exact files
    const Caught c = catch_error([&] { wc::verify(wcz, d, 2, {}); });
    CHECK(c.code == wc::Errc::usage);
    CHECK(c.msg.find("lossy") != std::string::npos);
  }

  TEST_CASE("bad lossy parameters: clear errors, no output left behind") {
    tu::TempDir t;
    const std::string m = t / "model.safetensors", out = t / "out.wcz";
    tu::write_file(m, stb::build(build_tensors(kLlama, 8)));
    const auto input = tu::read_file(m);
    tu::write_file(t / "sens_missing.safetensors", sensitivity_file({{"model.layers.0.self_attn.q_proj.weight", 1.0f},
                                                                     {"model.layers.9.nope.weight", 2.0f}}));
    tu::write_file(t / "sens_notst.safetensors", std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
    {
      std::vector<uint8_t> two(8, 0);
      tu::write_file(t / "sens_vector.safetensors",
                     stb::build({{"model.layers.0.self_attn.q_proj.weight", DType::F32, {2}, two}}));
      tu::write_file(t / "sens_bf16.safetensors",
                     stb::build({{"model.layers.0.self_attn.q_proj.weight", DType::BF16, {}, {0x80, 0x3F}}}));
    }
    tu::write_file(t / "sens_negative.safetensors", sensitivity_file({{"model.layers.0.self_attn.q_proj.weight", -1.0f}}));
    tu::write_file(t / "sens_nan.safetensors", sensitivity_file({{"model.layers.0.self_attn.q_proj.weight", NAN}}));

    struct Case {
      const char* what;
      double bits;
      std::string keep, scheme, sensitivity;
      wc::Errc code;  // ok: any error
      std::vector<std::string> mentions;  // in the message
      std::string cli;                     // the same through the CLI
      int status;
    };
    const std::string sp = t.path + "/";
    const std::vector<Case> cases = {
        {"bits 17", 17, "", "qrow", "", wc::Errc::usage, {"--bits"}, "--bits 17", 2},
        {"bits 0.1", 0.1, "", "qrow", "", wc::Errc::usage, {"--bits"}, "--bits 0.1", 2},
        {"bits 16.5", 16.5, "", "qrow", "", wc::Errc::usage, {"--bits"}, "--bits 16.5", 2},
        {"bits 12.5", 12.5, "", "qrow", "", wc::Errc::usage, {"--bits"}, "--bits 12.5", 2},
        {"bits -1", -1, "", "qrow", "", wc::Errc::usage, {"--bits"}, "--bits -1", 2},
        {"bits NaN", std::nan(""), "", "qrow", "", wc::Errc::usage, {"--bits"}, "--bits nan", 2},
        {"--keep without --bits", 0, "^lm_head", "qrow", "", wc::Errc::usage, {"--bits"}, "--keep '^lm_head'", 2},
        {"--scheme without --bits", 0, "", "nope", "", wc::Errc::usage, {"--bits"}, "--scheme nope", 2},
        {"bad regex", 4, "(unclosed", "qrow", "", wc::Errc::usage, {"--keep"}, "--bits 4 --keep '(unclosed'", 2},
        {"unknown scheme", 4, "", "nope", "", wc::Errc::usage, {"nope", "qrow"}, "--bits 4 --scheme nope", 2},
        {"sensitivity names a missing tensor", 4, "", "qrow", sp + "sens_missing.safetensors", wc::Errc::usage,
         {"model.layers.9.nope.weight", "sens_missing.safetensors"},
         "--bits 4 --sensitivity " + q(sp + "sens_missing.safetensors"), 2},
        {"sensitivity file not safetensors", 4, "", "qrow", sp + "sens_notst.safetensors", wc::Errc::usage,
         {"sens_notst.safetensors", "not a safetensors file"}, "--bits 4 --sensitivity " + q(sp + "sens_notst.safetensors"), 2},
        {"sensitivity missing file", 4, "", "qrow", sp + "sens_absent.safetensors", wc::Errc::io,
         {"sens_absent.safetensors"}, "--bits 4 --sensitivity " + q(sp + "sens_absent.safetensors"), 1},
        {"sensitivity entry of two values", 4, "", "qrow", sp + "sens_vector.safetensors", wc::Errc::usage,
         {"F32", "q_proj", "sens_vector.safetensors"}, "--bits 4 --sensitivity " + q(sp + "sens_vector.safetensors"), 2},
        {"sensitivity entry BF16", 4, "", "qrow", sp + "sens_bf16.safetensors", wc::Errc::usage,
         {"F32", "q_proj"}, "--bits 4 --sensitivity " + q(sp + "sens_bf16.safetensors"), 2},
        {"negative sensitivity", 4, "", "qrow", sp + "sens_negative.safetensors", wc::Errc::usage,
         {"q_proj"}, "--bits 4 --sensitivity " + q(sp + "sens_negative.safetensors"), 2},
        {"NaN sensitivity", 4, "", "qrow", sp + "sens_nan.safetensors", wc::Errc::usage,
         {"q_proj"}, "--bits 4 --sensitivity " + q(sp + "sens_nan.safetensors"), 2},
    };
    for (const Case& k : cases) {
      CAPTURE(k.what);
      wc::PackOptions po;
      po.bits = k.bits;
      po.keep = k.keep;
      po.scheme = k.scheme;
      po.sensitivity = k.sensitivity;
      po.threads = 2;
      const Caught c = catch_error([&] { wc::pack(m, out, po); });
      INFO(c.msg);
      if (k.code == wc::Errc::ok) CHECK(c.code != wc::Errc::ok);
      else CHECK(c.code == k.code);
      for (const auto& w : k.mentions) CHECK(c.msg.find(w) != std::string::npos);
      CHECK_FALSE(exists(out));
      auto r = tu::run(tu::cli() + " pack " + q(m) + " -o " + q(out) + " " + k.cli);
      INFO("wcodec pack ... " << k.cli << "\n" << r.out);
      CHECK(r.status == k.status);
      CHECK(r.out.find("wcodec: error: ") != std::string::npos);
      for (const auto& w : k.mentions) CHECK(r.out.find(w) != std::string::npos);
      CHECK_FALSE(exists(out));
      CHECK(tu::temp_files(t.path).empty());
    }

    // pack --rm with --bits: refused before anything is written or removed
    auto r = tu::run(tu::cli() + " pack " + q(m) + " -o " + q(out) + " --bits 4 --rm");
    INFO(r.out);
    CHECK(r.status == 2);
    CHECK(r.out.find("--rm") != std::string::npos);
    CHECK_FALSE(exists(out));
    CHECK(tu::read_file(m) == input);

    // verify --against on a lossy container: a usage error, through the library and the CLI;
    // the library's --rm path refuses too and removes nothing
    wc::pack(m, out, lossy_options(4.25));
    const Caught c = catch_error([&] { wc::verify(out, m, 2, {}); });
    CHECK(c.code == wc::Errc::usage);
    CHECK(c.msg.find("lossy") != std::string::npos);
    r = tu::run(tu::cli() + " verify " + q(out) + " --against " + q(m));
    CHECK(r.status == 2);
    CHECK(r.out.find("lossy") != std::string::npos);
    const Caught rm = catch_error([&] { wc::remove_packed_inputs(m, out, 2, {}); });
    CHECK(rm.code == wc::Errc::usage);
    CHECK(tu::read_file(m) == input);
    CHECK(tu::run(tu::cli() + " verify " + q(out)).status == 0);
  }

  TEST_CASE("a valid --sensitivity file moves bits to the tensor it weighs up") {
    tu::TempDir t;
    const std::string m = t / "model.safetensors";
    tu::write_file(m, stb::build(build_tensors(kLlama, 1)));
    const std::string q_name = "model.layers.0.self_attn.q_proj.weight";
    double rel[2];
    for (int k = 0; k < 2; ++k) {
      const std::string sf = t / ("s" + std::to_string(k) + ".safetensors");
      tu::write_file(sf, sensitivity_file({{q_name, k == 0 ? 1e-3f : 1e3f}}));
      wc::PackOptions po = lossy_options(3.25);
      po.sensitivity = sf;
      const std::string wcz = t / ("s" + std::to_string(k) + ".wcz");
      CHECK(wc::pack(m, wcz, po).lossy_tensors == count_lossy(kLlama));
      rel[k] = summaries(wcz).at(q_name).rel_rmse;
      CHECK(wc::verify(wcz, "", 2, {}).files == 1);
    }
    CHECK(rel[1] < rel[0]);
  }

  TEST_CASE("determinism: the same container twice, on one thread and on two") {
    tu::TempDir t;
    const std::string m = t / "model.safetensors";
    tu::write_file(m, stb::build(build_tensors(kLlama, 10)));
    std::vector<uint8_t> first;
    for (unsigned threads : {2u, 2u, 1u}) {
      CAPTURE(threads);
      wc::PackOptions po = lossy_options(3.25);
      po.threads = threads;
      po.force = true;
      wc::pack(m, t / "m.wcz", po);
      const auto c = tu::read_file(t / "m.wcz");
      if (first.empty()) first = c;
      else CHECK(c == first);
    }
    // unpack on one thread and on two: the same file
    wc::UnpackOptions u1, u2;
    u1.threads = 1, u2.threads = 2;
    wc::unpack(t / "m.wcz", t / "b1.safetensors", u1);
    wc::unpack(t / "m.wcz", t / "b2.safetensors", u2);
    CHECK(tu::read_file(t / "b1.safetensors") == tu::read_file(t / "b2.safetensors"));
  }

  TEST_CASE("encoder rounding: the row loop (AVX2 where the CPU has it) gives round_one's codes, ties and edges included") {
    Rng g(7);
    // rate tables: none (to nearest), a skewed one (rate can beat distance:
    // codes up to 2 away win), one with equal rates (ties between
    // candidates at the same distance: the first wins), and a short one
    // (codes past it priced by the last entry)
    std::vector<std::vector<float>> tables = {{}, {}, {}, {}};
    for (int z = 0; z < 40; ++z) tables[1].push_back(float(1 + (z * 7919 % 13)) * 0.75f);
    tables[1].push_back(20.f);
    tables[2].assign(41, 3.0f);
    tables[3] = {0.5f, 6.f, 6.f, 9.f};
    const float specials[] = {0.f, -0.f, NAN, -NAN, INFINITY, -INFINITY, 1e-40f, -1e-40f, 3.4e38f, -3.4e38f};
    for (size_t ti = 0; ti < tables.size(); ++ti)
      for (float flim : {1.f, 7.f, 127.f, 32767.f})
        for (float mu : {0.f, 0.1f, 0.37f, 4.f}) {
          wc::qrow::RoundParams p;
          p.inv = 1.0 / (0.01 + g.uni());
          p.flim = flim;
          p.mu_r = mu;
          if (!tables[ti].empty()) p.bits = tables[ti].data(), p.nb = uint32_t(tables[ti].size() - 1);
          std::vector<float> x(203);
          for (size_t i = 0; i < x.size(); ++i) {
            const double r = g.uni();
            if (i % 17 == 3) x[i] = specials[i % 10];
            else if (i % 5 == 1) x[i] = float((std::floor(r * 2 * flim) / 2) / p.inv);  // halves: ties to nearest
            else x[i] = float((r - 0.5) * 3 * flim / p.inv);  // beyond flim too
          }
          std::vector<uint16_t> a(x.size()), b(x.size());
          for (size_t n : {size_t(0), size_t(5), size_t(8), size_t(203)}) {
            CAPTURE(ti);
            CAPTURE(flim);
            CAPTURE(mu);
            CAPTURE(n);
            const uint32_t ma = wc::qrow::round_row(x.data(), n, p, a.data());
            const uint32_t mb = wc::qrow::round_row_scalar(x.data(), n, p, b.data());
            CHECK(ma == mb);
            CHECK(std::equal(a.begin(), a.begin() + long(n), b.begin()));
            uint32_t m = 0;
            for (size_t i = 0; i < n; ++i) {  // and both are round_one's, element by element
              const bool neg = x[i] < 0;
              const int32_t q = wc::qrow::round_one(float(std::fabs(double(x[i])) * p.inv), neg, p);
              const uint32_t z = wc::qrow::zigzag(neg ? -q : q);
              if (a[i] != z) FAIL_CHECK("element " << i << " = " << x[i] << ": " << a[i] << " != " << z);
              m = std::max(m, z);
            }
            CHECK(ma == m);
          }
        }
  }

  TEST_CASE("store_floats: binary32 values to F16, BF16 and F32 give qrow::store's bits") {
    // every exponent, with mantissas at the rounding boundaries (ties, just
    // above and below) and random ones; both signs; the F16 subnormal range,
    // overflow to Inf, Inf itself and zeros included
    Rng g(7);
    std::vector<float> v;
    for (uint32_t ex = 0; ex < 255; ++ex)
      for (uint32_t man : {0u, 1u, 0xFFFu, 0x1000u, 0x1001u, 0x2000u, 0x7FFFu, 0x8000u, 0x8001u, 0x18000u, 0x7FFFFFu,
                           uint32_t(g.next() >> 41), uint32_t(g.next() >> 41), uint32_t(g.next() >> 41)})
        for (uint32_t sign : {0u, 0x80000000u}) {
          const uint32_t b = sign | ex << 23 | (man & 0x7FFFFFu);
          float f;
          std::memcpy(&f, &b, 4);
          v.push_back(f);
        }
    v.push_back(INFINITY), v.push_back(-INFINITY), v.push_back(65520.0f), v.push_back(65519.996f);
    for (DType t : {DType::F16, DType::BF16, DType::F32}) {
      CAPTURE(wc::dtype_name(t));
      const uint32_t dt = t == DType::F16 ? wc::qrow::kF16 : t == DType::BF16 ? wc::qrow::kBF16 : wc::qrow::kF32;
      const size_t ob = wc::dtype_bits(t) / 8;
      for (size_t off : {size_t(0), size_t(5)}) {  // a tail past the vector loop either way
        const size_t n = v.size() - off;
        std::vector<uint8_t> got(n * ob, 0xAB), want(n * ob, 0xCD);
        wc::store_floats(t, v.data() + off, n, got.data());
        for (size_t i = 0; i < n; ++i) wc::qrow::store(dt, v[off + i], want.data(), i);
        CHECK(got == want);
      }
    }
  }

  TEST_CASE("load_floats: every F16 and BF16 pattern gives the scalar conversion's bits (NaN payloads included)") {
    std::vector<uint8_t> src(2 * 65536 + 6);
    for (uint32_t h = 0; h < 65536; ++h) src[2 * h] = uint8_t(h), src[2 * h + 1] = uint8_t(h >> 8);
    for (DType t : {DType::F16, DType::BF16}) {
      CAPTURE(wc::dtype_name(t));
      for (size_t off : {size_t(0), size_t(3)}) {  // misaligned starts and a tail
        std::vector<float> out(65536 - off);
        wc::load_floats(t, src.data() + 2 * off, out.size(), out.data());
        size_t bad = 0;
        for (size_t i = 0; i < out.size(); ++i) {
          const uint16_t h = uint16_t(i + off);
          const float want = t == DType::F16 ? wc::f16_to_f32(h) : wc::bf16_to_f32(h);
          if (std::memcmp(&out[i], &want, 4) != 0) ++bad;
        }
        CHECK(bad == 0);
      }
    }
  }

  TEST_CASE("qrow decoders: reference and fast agree on random codes, and follow the spec's arithmetic") {
    Rng g(42);
    const std::vector<std::pair<uint64_t, uint64_t>> shapes = {{1, 1}, {5, 7}, {33, 100}};
    for (int base : {-126, -3, 0, 96}) {
      for (unsigned cb : {1u, 2u}) {
        for (auto [n, cols] : shapes) {
          std::vector<uint8_t> e(n), codes(n * cols * cb);
          for (auto& x : e) x = uint8_t(g.next() >> 56);
          for (auto& x : codes) x = uint8_t(g.next() >> 56);
          if (n > 1) e[0] = 0, e[1] = 255;  // both ends of the grid
          for (DType out : {DType::BF16, DType::F16, DType::F32}) {
            CAPTURE(base);
            CAPTURE(cb);
            CAPTURE(n);
            CAPTURE(cols);
            CAPTURE(wc::dtype_name(out));
            const size_t ob = wc::dtype_bits(out) / 8;
            std::vector<uint8_t> ref(n * cols * ob, 0x11), fast(n * cols * ob, 0x22), mine(n * cols * ob);
            wc::qrow::decode_rows_ref(base, e.data(), codes.data(), cb, n, cols, out, ref.data());
            wc::qrow::decode_rows_fast(base, e.data(), codes.data(), cb, n, cols, out, fast.data());
            CHECK(ref == fast);
            // the spec (QROW.md §2-3), evaluated here
            for (uint64_t i = 0; i < n * cols; ++i) {
              const uint32_t u = cb == 1 ? codes[i] : uint32_t(codes[2 * i] | codes[2 * i + 1] << 8);
              const int32_t qv = int32_t(u >> 1) ^ -int32_t(u & 1);
              const uint32_t ee = e[i / cols];
              const float step = std::ldexp(1.0f + float(ee & 15) / 16.0f, base + int(ee >> 4));
              const float y = float(qv) * step;
              REQUIRE(std::isfinite(y));
              uint32_t b;
              std::memcpy(&b, &y, 4);
              if (out == DType::F32) {
                std::memcpy(&mine[4 * i], &b, 4);
              } else if (out == DType::BF16) {
                const uint16_t h = uint16_t((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
                std::memcpy(&mine[2 * i], &h, 2);
              } else {
#if defined(__FLT16_MAX__)
                const _Float16 hv = static_cast<_Float16>(y);  // the compiler's IEEE conversion (RNE)
                uint16_t h;
                std::memcpy(&h, &hv, 2);
#else
                const uint16_t h = wc::qrow::f32_to_f16_rne(b);
#endif
                std::memcpy(&mine[2 * i], &h, 2);
              }
            }
            CHECK(ref == mine);
          }
        }
      }
    }
  }

#if defined(__FLT16_MAX__)
  TEST_CASE("f32_to_f16_rne is the IEEE conversion (a stride through every binary32)") {
    uint64_t bad = 0, first_bad = 0;
    for (uint64_t b = 0; b < (1ull << 32); b += 251) {
      const uint32_t x = uint32_t(b);
      if ((x & 0x7F800000u) == 0x7F800000u && (x & 0x7FFFFFu)) continue;  // NaN: any quiet NaN will do
      float f;
      std::memcpy(&f, &x, 4);
      const _Float16 hv = static_cast<_Float16>(f);
      uint16_t h;
      std::memcpy(&h, &hv, 2);
      if (h != wc::qrow::f32_to_f16_rne(x) && !bad++) first_bad = x;
    }
    INFO("first mismatch at binary32 bits " << first_bad);
    CHECK(bad == 0);
    // the edges: largest finite, the rounding boundary to infinity, subnormals, the smallest
    for (uint32_t x : {0x477FE000u, 0x477FEFFFu, 0x477FF000u, 0x38800000u, 0x387FFFFFu, 0x33800000u, 0x33000000u,
                       0x33000001u, 0x32FFFFFFu, 0x80000000u, 0xC77FF000u, 0x3F800000u}) {
      float f;
      std::memcpy(&f, &x, 4);
      const _Float16 hv = static_cast<_Float16>(f);
      uint16_t h;
      std::memcpy(&h, &hv, 2);
      CAPTURE(x);
      CHECK(h == wc::qrow::f32_to_f16_rne(x));
    }
  }
#endif

  TEST_CASE("a flipped byte in a lossy chunk: verify, unpack and the C API refuse; no output") {
    tu::TempDir t;
    const std::string m = t / "model.safetensors", wcz = t / "model.wcz";
    tu::write_file(m, stb::build(build_tensors(kLlama, 11)));
    wc::pack(m, wcz, lossy_options(4.25));
    auto bytes = tu::read_file(wcz);
    {
      wc::ContainerReader r(wcz, wc::kReaderChecks);
      const auto& ts = r.manifest().tensors;
      auto it = std::find_if(ts.begin(), ts.end(), [](const wc::TensorRecord& x) {
        return x.name == "model.layers.0.mlp.gate_proj.weight";
      });
      REQUIRE(it != ts.end());
      REQUIRE(it->lossy());
      REQUIRE(wc::unit_count(*it) == 3);
      const uint32_t c = wc::unit_chunk(*it, 1, wc::unit_chunks(*it) - 1);  // codes of the middle tile
      const auto& e = r.index()[c];
      bytes[e.offset + e.stored_size / 2] ^= 0x04;
    }
    tu::write_file(t / "bad.wcz", bytes);
    const Caught v = catch_error([&] { wc::verify(t / "bad.wcz", "", 2, {}); });
    CHECK(v.code == wc::Errc::checksum);
    CHECK(v.msg.find("gate_proj") != std::string::npos);
    const Caught u = catch_error([&] { wc::unpack(t / "bad.wcz", t / "back.safetensors", {}); });
    CHECK(u.code == wc::Errc::checksum);
    CHECK_FALSE(exists(t / "back.safetensors"));
    auto r = tu::run(tu::cli() + " unpack - -o " + q(t / "piped.safetensors") + " < " + q(t / "bad.wcz"));
    CHECK(r.status == 1);
    CHECK_FALSE(exists(t / "piped.safetensors"));
    char err[512];
    wcodec_archive* a = nullptr;
    REQUIRE(wcodec_open((t / "bad.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    size_t ti = 0;
    REQUIRE(wcodec_find_tensor(a, "model.layers.0.mlp.gate_proj.weight", &ti) == WCODEC_OK);
    std::vector<uint8_t> d(1100 * 512 * 4);
    CHECK(wcodec_decode_tensor_ex(a, ti, WCODEC_LEVEL_TOP, "F32", d.data(), d.size(), 2, err, sizeof err) ==
          WCODEC_E_CHECKSUM);
    size_t other = 0;  // another tensor still decodes
    REQUIRE(wcodec_find_tensor(a, "model.layers.0.self_attn.q_proj.weight", &other) == WCODEC_OK);
    CHECK(wcodec_decode_tensor(a, other, d.data(), d.size(), 2, err, sizeof err) == WCODEC_OK);
    wcodec_close(a);
    CHECK(tu::temp_files(t.path).empty());
  }

  TEST_CASE("encoder speed: a 1024x4096 BF16 matrix at --bits 4") {
    tu::TempDir t;
    const std::string m = t / "big.safetensors";
    tu::write_file(m, stb::build({{"model.layers.0.mlp.up_proj.weight", DType::BF16, {1024, 4096},
                                   as_dtype(DType::BF16, t5_values(1024, 4096, 77))}}));
    wc::PackOptions po;
    po.bits = 4;
    const auto t0 = std::chrono::steady_clock::now();
    const auto pr = wc::pack(m, t / "big.wcz", po);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("pack --bits 4 of 1024x4096 BF16: " << s << " s, " << pr.lossy_bits_per_weight << " bits/weight");
    CHECK(pr.lossy_tensors == 1);
    CHECK(pr.lossy_bits_per_weight <= 4.0);
  }
}
