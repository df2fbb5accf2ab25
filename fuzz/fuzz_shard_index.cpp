// model.safetensors.index.json parser.
#include <cstddef>
#include <cstdint>
#include <string>

#include "model/safetensors.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto files = wc::st::parse_shard_index(data, size);
    WC_FUZZ_CHECK(!files.empty());
    for (const auto& f : files) {
      WC_FUZZ_CHECK(!f.empty() && f != "." && f != "..");
      WC_FUZZ_CHECK(f.find('/') == std::string::npos && f.find('\\') == std::string::npos &&
                    f.find('\0') == std::string::npos);
    }
  } catch (const wc::Error& e) {
    wcfuzz::check_error(e);
  }
  return 0;
}
