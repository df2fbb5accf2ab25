/* A C99 consumer of libwcodec: opens a .wcz, prints its tensor count, then
 * decodes every tensor and prints its name, dtype, byte size and the
 * FNV-1a-64 hash of the decoded bytes. Exits 1 with the library's message on
 * any error.
 *
 * It also decodes every exact tensor a second way, as a runtime with its own
 * I/O and memory would: the container read into a buffer of ours and opened
 * from memory (wcodec_open_memory), its chunks planned (wcodec_plan_chunks)
 * and each decoded from the bytes at its file offset with one workspace of
 * ours (wcodec_decode_desc); both decodes must hash the same.
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

/* The whole file in a malloc'd buffer (NULL on failure). */
static unsigned char* read_all(const char* path, size_t* n) {
  FILE* f = fopen(path, "rb");
  unsigned char* p = NULL;
  long len;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    p = malloc((size_t)len ? (size_t)len : 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
      free(p);
      p = NULL;
    }
    *n = (size_t)len;
  }
  fclose(f);
  return p;
}

/* Decodes exact tensor i of `mem` (opened over `bytes`) chunk by chunk from
 * the bytes at each chunk's file offset, with caller workspace, into dst;
 * returns a wcodec error code. */
static int decode_by_plan(wcodec_archive* mem, const unsigned char* bytes, size_t nbytes, size_t i,
                          unsigned char* dst, size_t size, void* ws, size_t ws_len, char* err, size_t err_len) {
  size_t count = 0, c;
  wcodec_chunk_desc* plan;
  int rc = wcodec_plan_chunks(mem, &i, 1, NULL, 0, &count, err, err_len);
  if (rc != WCODEC_OK) return rc;
  plan = malloc(count ? count * sizeof *plan : 1);
  if (!plan) return WCODEC_E_LIMIT;
  rc = wcodec_plan_chunks(mem, &i, 1, plan, count, &count, err, err_len);
  for (c = 0; rc == WCODEC_OK && c < count; ++c) {
    const wcodec_chunk_desc* d = &plan[c];
    /* a small tensor stored in the manifest (container 1.4): the archive has its bytes */
    const int in_manifest = d->file_offset == WCODEC_OFFSET_INLINE;
    if ((!in_manifest && (d->file_offset > nbytes || d->stored_size > nbytes - d->file_offset)) ||
        d->dst_offset > size || d->dst_size > size - d->dst_offset) {
      rc = WCODEC_E_CORRUPT;
      break;
    }
    rc = wcodec_decode_desc(mem, d, in_manifest ? NULL : bytes + d->file_offset,
                            in_manifest ? 0 : (size_t)d->stored_size, dst + d->dst_offset, (size_t)d->dst_size, ws,
                            ws_len, err, err_len);
  }
  free(plan);
  return rc;
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

  size_t nbytes = 0;
  unsigned char* bytes = read_all(argv[1], &nbytes);
  wcodec_archive* mem = NULL;
  size_t ws_len = wcodec_workspace_size();
  void* ws = malloc(ws_len);
  if (!bytes || !ws) {
    fprintf(stderr, "%s: cannot read it into memory\n", argv[1]);
    return 1;
  }
  rc = wcodec_open_memory(bytes, nbytes, argv[1], &mem, err, sizeof err);
  if (rc != WCODEC_OK) {
    fprintf(stderr, "wcodec_open_memory: %s [%s]\n", err, wcodec_error_name(rc));
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
    const uint64_t hash = fnv1a64(buf, size);
    printf("%s %s %llu %016llx\n", info.name, info.dtype, (unsigned long long)info.byte_size,
           (unsigned long long)hash);
    if (info.representation && info.representation[0] == 'e') { /* "exact": the second way */
      for (size_t k = 0; k < size; ++k) buf[k] = 0;
      rc = decode_by_plan(mem, bytes, nbytes, i, buf, size, ws, ws_len, err, sizeof err);
      if (rc != WCODEC_OK || fnv1a64(buf, size) != hash) {
        fprintf(stderr, "%s: decoding from memory by plan with caller workspace: %s [%s]\n", info.name,
                rc == WCODEC_OK ? "different bytes" : err, wcodec_error_name(rc));
        free(buf);
        return 1;
      }
    }
    free(buf);
  }
  wcodec_close(mem);
  wcodec_close(archive);
  free(ws);
  free(bytes);
  return 0;
}
