// Front-to-back container reader (what `wcodec unpack -` uses) fed through a
// memfd, so it sees a real file descriptor and reads it without seeking.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "format/stream_reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/unit_decode.h"
#include "fuzz/fuzz_common.h"
#include "lib/decode_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int fd = memfd_create("wcodec-fuzz-stream", MFD_CLOEXEC);
  WC_FUZZ_CHECK(fd >= 0);
  WC_FUZZ_CHECK(ftruncate(fd, 0) == 0);
  size_t done = 0;
  while (done < size) {
    ssize_t w = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    WC_FUZZ_CHECK(w > 0);
    done += static_cast<size_t>(w);
  }
  WC_FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
  try {
    wc::StreamIn in(fd, "<fuzz-stream>");
    wc::ContainerStreamReader r(in, wc::kReaderChecks);
    std::vector<uint8_t> stored, raw;
    wc::ChunkEntry e;
    uint32_t i = 0;
    while (r.next_chunk(stored, e)) {
      WC_FUZZ_CHECK(stored.size() == e.stored_size);
      WC_FUZZ_CHECK(in.offset() <= size);
      const wc::TensorRecord& t = r.tensor_of_chunk(i);
      if (e.raw_size <= wcfuzz::kMaxDecodeChunk) {
        raw.resize(e.raw_size);
        wc::decode_stored_chunk(t, i, {stored.data(), stored.size()}, raw.data(), "<fuzz-stream>");
      }
      ++i;
    }
    r.finish();
    WC_FUZZ_CHECK(in.offset() == size);
  } catch (const wc::Error& e) {
    wcfuzz::check_error(e);
  }
  return 0;
}
