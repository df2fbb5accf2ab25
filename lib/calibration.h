// pack --calib FILE (spec/CALIB.md): a safetensors file of per-tensor
// calibration statistics, read and checked against the model.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace wc {

struct Calibration {
  // by the model's tensor name
  std::map<std::string, std::vector<float>> hessian;     // [in, in], row-major
  std::map<std::string, std::vector<float>> importance;  // [in]
  std::map<std::string, double> sensitivity;
};

// Reads `path`: a llama.cpp legacy imatrix (.dat: importances, llama
// tensor names mapped to Hugging Face's), or a safetensors file of entries hessian.NAME (F32 [n, n], finite, symmetric within
// 1e-3 of its largest diagonal element, non-negative diagonal),
// importance.NAME (F32 [n], finite, >= 0) and sensitivity.NAME (F32, one
// element, finite, >= 0); any other entry, dtype or shape is a usage error
// naming the file and the entry. Names are checked against the model by
// the caller.
Calibration read_calibration(const std::string& path);

}  // namespace wc
