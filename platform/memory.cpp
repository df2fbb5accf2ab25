#include "platform/memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace wc {

void prefault_for_write(void* p, size_t n) noexcept {
#ifdef MADV_POPULATE_WRITE
  static const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  if (!p || n == 0 || page == 0) return;
  // whole pages: the first may start before p (its other bytes are not
  // changed: populating only maps the page in)
  const uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t e = reinterpret_cast<uintptr_t>(p) + n;
  (void)::madvise(reinterpret_cast<void*>(a), e - a, MADV_POPULATE_WRITE);  // a hint: errors are ignored
#else
  (void)p, (void)n;
#endif
}

}  // namespace wc
