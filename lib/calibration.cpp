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

}  // namespace

Calibration read_calibration(const std::string& path) {
  MappedFile f(path);
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
