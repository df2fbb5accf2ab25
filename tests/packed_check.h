// Checks shared by the suites that pack a model and look at the container:
// its version, each tensor's codec, verify against the model, and unpack
// restoring the model byte for byte.
#pragma once
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/api.h"
#include "test_util.h"

namespace tu {

// Container `c`'s summaries, after checking its version is major.minor.
inline std::vector<wc::TensorSummary> check_version(const std::string& c, uint32_t major, uint32_t minor) {
  std::vector<wc::TensorSummary> sum;
  const auto ir = wc::inspect(c, false, &sum);
  CHECK(ir.version_major == major);
  CHECK(ir.version_minor == minor);
  return sum;
}

// Container `c` packed from `model`: version 1.minor, tensor i coded with
// codecs[i], verify compares every byte with the model; with `back` set,
// unpack to that path gives the model file back. Returns the summaries.
inline std::vector<wc::TensorSummary> check_packed(const std::string& c, const std::string& model, uint32_t minor,
                                                   const std::vector<std::string>& codecs,
                                                   const std::string& back = "") {
  const std::vector<wc::TensorSummary> sum = check_version(c, 1, minor);
  REQUIRE(sum.size() == codecs.size());
  for (size_t i = 0; i < codecs.size(); ++i) {
    CAPTURE(i);
    CHECK(sum[i].codec == codecs[i]);
  }
  CHECK(wc::verify(c, model, 2, {}).compared);
  if (!back.empty()) {
    wc::UnpackOptions uo;
    wc::unpack(c, back, uo);
    CHECK(read_file(back) == read_file(model));
  }
  return sum;
}

}  // namespace tu
