// A C++ consumer of libwcodec through find_package(wcodec): opens a .wcz,
// prints its tensor count and decodes each tensor, printing name, dtype,
// byte size and the FNV-1a-64 hash of the decoded bytes (the same lines as
// examples/c_consumer). Exits 1 with the library's message on any error.
#include <wcodec/wcodec.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

namespace {

struct Close {
  void operator()(wcodec_archive* a) const { wcodec_close(a); }
};

uint64_t fnv1a64(const unsigned char* p, size_t n) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL.wcz\n", argv[0]);
    return 2;
  }
  std::fprintf(stderr, "libwcodec %s\n", wcodec_version_string());
  char err[1024] = "";
  wcodec_archive* raw = nullptr;
  if (int rc = wcodec_open(argv[1], &raw, err, sizeof err); rc != WCODEC_OK) {
    std::fprintf(stderr, "wcodec_open: %s [%s]\n", err, wcodec_error_name(rc));
    return 1;
  }
  std::unique_ptr<wcodec_archive, Close> archive(raw);

  const size_t count = wcodec_tensor_count(archive.get());
  std::printf("tensors: %zu\n", count);
  for (size_t i = 0; i < count; ++i) {
    wcodec_tensor_info info{};
    info.struct_size = sizeof info;
    if (int rc = wcodec_get_tensor_info(archive.get(), i, &info); rc != WCODEC_OK) {
      std::fprintf(stderr, "wcodec_get_tensor_info(%zu): [%s]\n", i, wcodec_error_name(rc));
      return 1;
    }
    const auto size = static_cast<size_t>(info.byte_size);
    std::vector<unsigned char> bytes(size ? size : 1);  // never a null destination
    if (int rc = wcodec_decode_tensor(archive.get(), i, bytes.data(), size, 0, err, sizeof err);
        rc != WCODEC_OK) {
      std::fprintf(stderr, "wcodec_decode_tensor(%s): %s [%s]\n", info.name, err, wcodec_error_name(rc));
      return 1;
    }
    std::printf("%s %s %llu %016llx\n", info.name, info.dtype, static_cast<unsigned long long>(info.byte_size),
                static_cast<unsigned long long>(fnv1a64(bytes.data(), size)));
  }
  return 0;
}
