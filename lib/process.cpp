// Process-level pieces of the API: version, and cleanup on a fatal signal.
#include "format/container.h"
#include "platform/file_io.h"
#include "lib/api.h"

namespace wc {

const char* version_string() {
#ifdef WCODEC_VERSION_STRING
  return WCODEC_VERSION_STRING;
#else
  return "unknown";
#endif
}

std::string format_version_string() {
  return std::to_string(kVersionMajor) + "." + std::to_string(kVersionMinorNewest) + ", " +
         std::to_string(kVersionMajorLossy) + "." + std::to_string(kVersionMinorLossyNewest) + " with lossy tensors";
}

void remove_temporaries_on_signal() noexcept { remove_temporaries_from_signal_handler(); }

}  // namespace wc
