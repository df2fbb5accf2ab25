/* A C99 consumer of libwcodec: opens a .wcz, prints its tensor count, then
 * decodes every tensor and prints its name, dtype, byte size and the
 * FNV-1a-64 hash of the decoded bytes. Exits 1 with the library's message on
 * any error.
 *
 * Build against an installed wcodec (cmake --install build --prefix P):
 *   export PKG_CONFIG_PATH=P/lib/pkgconfig
 *   cc -std=c99 main.c $(pkg-config --cflags --libs wcodec)            # libwcodec.so
 *   cc -std=c99 main.c $(pkg-config --cflags --static --libs wcodec \
 *        | sed 's/-lwcodec/-l:libwcodec.a/')                           # libwcodec.a
 * Run: ./a.out model.safetensors.wcz */
#include <wcodec/wcodec.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t fnv1a64(const unsigned char* p, size_t n) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

int main(int argc, char** argv) {
  char err[1024] = "";
  wcodec_archive* archive = NULL;
  int rc;

  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL.wcz\n", argv[0]);
    return 2;
  }
  rc = wcodec_open(argv[1], &archive, err, sizeof err);
  if (rc != WCODEC_OK) {
    fprintf(stderr, "wcodec_open: %s [%s]\n", err, wcodec_error_name(rc));
    return 1;
  }

  size_t count = wcodec_tensor_count(archive);
  printf("tensors: %zu\n", count);
  for (size_t i = 0; i < count; ++i) {
    wcodec_tensor_info info = {0};
    info.struct_size = sizeof info; /* the header's ABI rule: say which struct we have */
    rc = wcodec_get_tensor_info(archive, i, &info);
    if (rc != WCODEC_OK) {
      fprintf(stderr, "wcodec_get_tensor_info(%zu): [%s]\n", i, wcodec_error_name(rc));
      wcodec_close(archive);
      return 1;
    }
    if (info.byte_size > (uint64_t)SIZE_MAX) {
      fprintf(stderr, "%s: %llu bytes do not fit in memory\n", info.name, (unsigned long long)info.byte_size);
      wcodec_close(archive);
      return 1;
    }
    size_t size = (size_t)info.byte_size;
    unsigned char* buf = malloc(size ? size : 1);
    if (!buf) {
      fprintf(stderr, "%s: out of memory (%zu bytes)\n", info.name, size);
      wcodec_close(archive);
      return 1;
    }
    rc = wcodec_decode_tensor(archive, i, buf, size, 0 /* all cores */, err, sizeof err);
    if (rc != WCODEC_OK) {
      fprintf(stderr, "wcodec_decode_tensor(%s): %s [%s]\n", info.name, err, wcodec_error_name(rc));
      free(buf);
      wcodec_close(archive);
      return 1;
    }
    printf("%s %s %llu %016llx\n", info.name, info.dtype, (unsigned long long)info.byte_size,
           (unsigned long long)fnv1a64(buf, size));
    free(buf);
  }
  wcodec_close(archive);
  return 0;
}
