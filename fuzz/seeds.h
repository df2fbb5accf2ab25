// Seed inputs for every fuzz target, generated from small models made with
// the library itself (so they follow the current format exactly). Used by
// wcodec_fuzz_seeds (writes them for libFuzzer) and by wcodec_fuzz_replay.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace wcfuzz {

struct Seed {
  std::string name;
  std::vector<uint8_t> bytes;
};

// Target names, in the order the tools list them.
const std::vector<std::string>& target_names();

// Seeds for one target (empty for an unknown name).
std::vector<Seed> make_seeds(const std::string& target);

}  // namespace wcfuzz
