// platform/memory.h: prefaulting a range for writing changes no byte, in it
// or in the parts of its first and last pages outside it.
#include <doctest/doctest.h>

#include <sys/mman.h>

#include <cstring>
#include <vector>

#include "platform/memory.h"

TEST_SUITE("memory") {
  TEST_CASE("prefault_for_write keeps every byte; fresh pages read as zero") {
    const size_t n = 1 << 20;
    std::vector<unsigned char> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<unsigned char>(i * 31 + 7);
    const std::vector<unsigned char> before = v;
    wc::prefault_for_write(v.data() + 1234, n - 5000);  // misaligned both ends
    wc::prefault_for_write(v.data(), 0);
    wc::prefault_for_write(nullptr, 100);
    CHECK(v == before);
    void* m = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    wc::prefault_for_write(static_cast<char*>(m) + 100, n - 200);
    std::vector<unsigned char> zero(n, 0);
    CHECK(std::memcmp(m, zero.data(), n) == 0);
    ::munmap(m, n);
  }
}
