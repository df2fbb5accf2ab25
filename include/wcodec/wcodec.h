/* wcodec public C API: open a container, list its tensors, decode a tensor or
 * one chunk of it into a buffer the caller owns.
 *
 * Thread safety: an open archive is read-only; any number of threads may call
 * the decode functions on it at once. Decoding a chunk allocates nothing for
 * the raw and float-ans codecs (zstd keeps one context per thread).
 *
 * Errors: every function returns 0 on success or a positive wcodec error code
 * (stable; see wcodec_error_name). Functions taking `err`/`err_len` write a
 * message naming the file, tensor and offset there when err is not NULL. */
#ifndef WCODEC_H
#define WCODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WCODEC_VERSION_MAJOR 0
#define WCODEC_VERSION_MINOR 1
#define WCODEC_VERSION_PATCH 0
#define WCODEC_VERSION_NUMBER (WCODEC_VERSION_MAJOR * 10000 + WCODEC_VERSION_MINOR * 100 + WCODEC_VERSION_PATCH)

/* Error codes (stable forever; new ones are only appended). */
enum {
  WCODEC_OK = 0,
  WCODEC_E_IO = 1,
  WCODEC_E_TRUNCATED = 2,
  WCODEC_E_BAD_MAGIC = 3,
  WCODEC_E_UNSUPPORTED_VERSION = 4,
  WCODEC_E_CHECKSUM = 5,
  WCODEC_E_CORRUPT = 6,
  WCODEC_E_BAD_SAFETENSORS = 7,
  WCODEC_E_EXISTS = 8,
  WCODEC_E_LIMIT = 9,
  WCODEC_E_CODEC = 10,
  WCODEC_E_USAGE = 11,
  WCODEC_E_MISMATCH = 12
};

typedef struct wcodec_archive wcodec_archive;

typedef struct {
  const char* name;       /* valid while the archive is open */
  const char* dtype;      /* safetensors spelling: "BF16", "F32", ... */
  uint32_t rank;
  const uint64_t* shape;  /* rank entries */
  uint64_t byte_size;     /* bytes wcodec_decode_tensor writes */
  uint32_t chunk_count;
  uint32_t chunk_size;    /* raw bytes per chunk (the last may be shorter) */
  const char* codec;      /* "raw", "zstd", "float-ans" */
  uint64_t stored_size;   /* compressed bytes of all its chunks */
  /* Container 2.0: "exact" (the tensor's bytes, as stored) or the lossy
     representation ("qrow"; "unknown" for one this build cannot decode). A
     lossy tensor's chunks hold its parts; chunk_size is then its rows per
     tile, and it is decoded whole (wcodec_decode_tensor_ex). */
  const char* representation;
  uint32_t levels;        /* 1 for exact tensors; a lossy tensor's levels */
} wcodec_tensor_info;

/* wcodec_decode_tensor_ex: the top level of a lossy tensor (the best it holds). */
#define WCODEC_LEVEL_TOP 0xFFFFFFFFu

unsigned wcodec_version_number(void);
const char* wcodec_version_string(void);
const char* wcodec_error_name(int code);

/* Opens and validates a container (header, footer, manifest, index). */
int wcodec_open(const char* path, wcodec_archive** out, char* err, size_t err_len);
void wcodec_close(wcodec_archive* a);

size_t wcodec_tensor_count(const wcodec_archive* a);
int wcodec_get_tensor_info(const wcodec_archive* a, size_t tensor, wcodec_tensor_info* out);
/* Index of the tensor called `name` (the first, in file order, when files of a
   multi-file container share a name), or WCODEC_E_USAGE when there is none.
   The first call sorts the names (O(n log n)); later calls are O(log n).
   Safe from many threads at once. */
int wcodec_find_tensor(const wcodec_archive* a, const char* name, size_t* tensor);

/* Verifies chunk `chunk` of `tensor` and decodes it into dst, which must hold
 * at least that chunk's raw size (chunk_size, or less for the last). Exact
 * tensors only (WCODEC_E_USAGE for a lossy one). */
int wcodec_decode_chunk(const wcodec_archive* a, size_t tensor, uint32_t chunk, void* dst, size_t dst_len,
                        char* err, size_t err_len);

/* Decodes a whole tensor into dst (at least byte_size bytes), chunks in
 * parallel on `threads` threads (0: all cores), each straight into its place
 * in dst: no extra buffer. */
int wcodec_decode_tensor(const wcodec_archive* a, size_t tensor, void* dst, size_t dst_len, unsigned threads,
                         char* err, size_t err_len);

/* Decodes a tensor at `level` (0 .. levels-1, or WCODEC_LEVEL_TOP) in dtype
 * `dtype` ("BF16", "F16", "F32"; NULL: the tensor's own) into dst, which
 * must hold elements x that dtype's size. Exact tensors decode at level 0 or
 * TOP in their own dtype only. A lossy tensor decoded in its own dtype is
 * checked against its stored reconstruction hash (WCODEC_E_CHECKSUM). The
 * arithmetic is spec'd to the bit (spec/QROW.md): every decoder writes the
 * same bytes. */
int wcodec_decode_tensor_ex(const wcodec_archive* a, size_t tensor, uint32_t level, const char* dtype, void* dst,
                            size_t dst_len, unsigned threads, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif /* WCODEC_H */
