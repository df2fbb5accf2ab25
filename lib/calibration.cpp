#include "lib/calibration.h"

#include <cmath>
#include <cstring>

#include "model/safetensors.h"
#include "platform/error.h"
#include "platform/file_io.h"

namespace wc {

namespace {

[[noreturn]] void bad(const std::string& path, const std::string& entry, const std::string& why) {
  Error e(Errc::usage, "--calib: " + why);
  e.at_file(path);
  if (!entry.empty()) e.at_tensor(entry);
  throw e;
}

// llama.cpp's tensor names (GGUF, llama architecture) as Hugging Face's.
std::string hf_name(const std::string& g) {
  if (g == "token_embd.weight") return "model.embed_tokens.weight";
  if (g == "output.weight") return "lm_head.weight";
  static const std::pair<const char*, const char*> kParts[] = {
      {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  if (g.rfind("blk.", 0) == 0) {
    const auto dot = g.find('.', 4);
    if (dot != std::string::npos && g.size() > 7 && g.compare(g.size() - 7, 7, ".weight") == 0) {
      const std::string layer = g.substr(4, dot - 4), part = g.substr(dot + 1, g.size() - 7 - dot - 1);
      for (const auto& [from, to] : kParts)
        if (part == from) return "model.layers." + layer + "." + to + ".weight";
    }
  }
  return g;  // already the model's name, or checked against it by the caller
}

// llama.cpp's legacy imatrix (.dat): i32 entries, then per entry i32 name
// length, the name, i32 calls, i32 values, that many F32 (mean squared input
// per channel times the calls); a trailer may follow. Importances only.
Calibration read_imatrix_dat(const MappedFile& f, const std::string& path) {
  const uint8_t* p = f.data();
  const uint64_t size = f.size();
  uint64_t at = 0;
  auto i32 = [&](const char* what) {
    if (size - at < 4) bad(path, "", std::string("llama.cpp imatrix: the file ends inside ") + what);
    int32_t v;
    std::memcpy(&v, p + at, 4);
    at += 4;
    return v;
  };
  Calibration c;
  const int32_t n = i32("the entry count");
  if (n <= 0) bad(path, "", "llama.cpp imatrix: no entries");
  for (int32_t e = 0; e < n; ++e) {
    const int32_t len = i32("a name length");
    if (len <= 0 || uint64_t(len) > size - at) bad(path, "", "llama.cpp imatrix: a name runs past the end");
    const std::string g(reinterpret_cast<const char*>(p + at), size_t(len));
    at += uint64_t(len);
    (void)i32("a call count");
    const int32_t nv = i32("a value count");
    if (nv <= 0 || uint64_t(nv) > (size - at) / 4) bad(path, g, "llama.cpp imatrix: its values run past the end");
    std::vector<float> v(static_cast<size_t>(nv));
    std::memcpy(v.data(), p + at, size_t(nv) * 4);
    at += uint64_t(nv) * 4;
    for (float x : v)
      if (!std::isfinite(x) || x < 0) bad(path, g, "llama.cpp imatrix: values must be finite and >= 0");
    if (!c.importance.emplace(hf_name(g), std::move(v)).second) bad(path, g, "llama.cpp imatrix: a name twice");
  }
  return c;
}

}  // namespace

Calibration read_calibration(const std::string& path) {
  MappedFile f(path);
  if (f.size() >= 4 && std::memcmp(f.data(), "GGUF", 4) == 0)
    bad(path, "", "a GGUF file (llama.cpp's newer imatrix form) is not read yet: write the legacy .dat "
                  "form or give a calibration file");
  // safetensors: an 8-byte header length, then the JSON header's '{'
  if (!(f.size() >= 9 && f.data()[8] == '{')) return read_imatrix_dat(f, path);
  st::Header h;
  try {
    h = st::parse_header(f.data(), f.size(), f.size());
  } catch (Error& e) {
    bad(path, "", std::string("not a safetensors file (") + e.what() + ")");
  }
  Calibration c;
  for (const auto& t : h.tensors) {
    const auto dot = t.name.find('.');
    const std::string kind = dot == std::string::npos ? t.name : t.name.substr(0, dot);
    const std::string name = dot == std::string::npos ? "" : t.name.substr(dot + 1);
    if (name.empty() || (kind != "hessian" && kind != "importance" && kind != "sensitivity"))
      bad(path, t.name, "entries must be named hessian.NAME, importance.NAME or sensitivity.NAME");
    if (t.dtype != DType::F32) bad(path, t.name, "entries must be F32");
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;
    std::vector<float> v(n);
    if (n) std::memcpy(v.data(), f.data() + h.data_start + t.begin, n * 4);
    for (float x : v)
      if (!std::isfinite(x)) bad(path, t.name, "values must be finite");
    if (kind == "sensitivity") {
      if (n != 1) bad(path, t.name, "a sensitivity is one value");
      if (!(v[0] >= 0)) bad(path, t.name, "a sensitivity must be >= 0");
      c.sensitivity[name] = double(v[0]);
    } else if (kind == "importance") {
      if (t.shape.size() != 1 || n == 0) bad(path, t.name, "an importance is a vector [in]");
      for (float x : v)
        if (!(x >= 0)) bad(path, t.name, "importances must be >= 0");
      c.importance[name] = std::move(v);
    } else {
      if (t.shape.size() != 2 || t.shape[0] != t.shape[1] || n == 0)
        bad(path, t.name, "a hessian is a square matrix [in, in]");
      const uint64_t m = t.shape[0];
      double dmax = 0;
      for (uint64_t i = 0; i < m; ++i) {
        if (!(v[i * m + i] >= 0)) bad(path, t.name, "a hessian's diagonal must be >= 0");
        dmax = std::max(dmax, double(v[i * m + i]));
      }
      for (uint64_t i = 0; i < m; ++i)
        for (uint64_t j = i + 1; j < m; ++j)
          if (std::fabs(double(v[i * m + j]) - double(v[j * m + i])) > 1e-3 * dmax)
            bad(path, t.name, "a hessian must be symmetric");
      c.hessian[name] = std::move(v);
    }
  }
  return c;
}

}  // namespace wc
