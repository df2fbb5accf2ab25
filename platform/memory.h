// Memory the decoders write: hints to the operating system.
#pragma once
#include <cstddef>

namespace wc {

// Faults in, writable, the pages of [p, p + n) that are not yet there, in one
// system call (Linux MADV_POPULATE_WRITE; a no-op elsewhere or on older
// kernels), as writing them would, without changing a byte. A decoder about
// to overwrite a range calls it first: fresh memory (a new 250 MB tensor)
// otherwise takes one page fault per 4 KiB page as the output is written.
void prefault_for_write(void* p, size_t n) noexcept;

}  // namespace wc
