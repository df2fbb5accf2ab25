/* wcodec public C API: open a container (a path or caller memory), list its
 * files, tensors and metadata, decode tensors, row ranges or chunks into
 * buffers the caller owns, and pack, unpack and verify whole models.
 *
 * Thread safety: an open archive is read-only; any number of threads may call
 * the decode functions on it at once. Decoding a chunk allocates nothing for
 * the raw and float-ans codecs (zstd keeps one context per thread).
 *
 * Errors: every function returns 0 on success or a positive wcodec error code
 * (stable; see wcodec_error_name). Functions taking `err`/`err_len` write a
 * message naming the file, tensor and offset there when err is not NULL (an
 * empty string on success).
 *
 * ABI growth: structs the library fills or reads begin with `struct_size`,
 * which the caller sets to sizeof the struct it was compiled with (the
 * *_INIT macros do). The library reads and writes only that many bytes, so a
 * program built against an older header keeps working with a newer library.
 * A struct_size smaller than the first release's struct is WCODEC_E_USAGE. */
#ifndef WCODEC_H
#define WCODEC_H

#include <stddef.h>
#include <stdint.h>

/* Exported symbols: the shared library is built with hidden visibility and
 * exports exactly the functions marked WCODEC_API (and a version script
 * keeps it to wcodec_*). Static builds define nothing special. */
#if defined(_WIN32)
#  define WCODEC_API
#elif defined(__GNUC__) || defined(__clang__)
#  define WCODEC_API __attribute__((visibility("default")))
#else
#  define WCODEC_API
#endif

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
  WCODEC_E_MISMATCH = 12,
  WCODEC_E_NOT_FOUND = 13 /* no tensor or file of that name */
};

typedef struct wcodec_archive wcodec_archive;

typedef struct {
  size_t struct_size;     /* sizeof(wcodec_tensor_info): set by the caller */
  const char* name;       /* valid while the archive is open */
  const char* dtype;      /* safetensors spelling: "BF16", "F32", ... */
  uint32_t rank;
  const uint64_t* shape;  /* rank entries */
  uint64_t byte_size;     /* bytes wcodec_decode_tensor writes */
  uint32_t chunk_count;   /* an exact tensor stored in the manifest (container 1.4/2.5: small
                             tensors) has one chunk, of byte_size bytes */
  uint32_t chunk_size;    /* raw bytes per chunk (the last may be shorter) */
  const char* codec;      /* "raw", "zstd", "float-ans" */
  uint64_t stored_size;   /* compressed bytes of all its chunks */
  /* Container 2.0: "exact" (the tensor's bytes, as stored) or the lossy
     representation ("qrow"; "unknown" for one this build cannot decode). A
     lossy tensor's chunks hold its parts; chunk_size is then its rows per
     tile, and it is decoded whole (wcodec_decode_tensor_ex). */
  const char* representation;
  uint32_t levels;        /* 1 for exact tensors; a lossy tensor's levels */
  size_t file;            /* index of the file holding it (wcodec_get_file_info) */
  uint64_t rows;          /* shape[0] (1 for a scalar): what wcodec_decode_rows counts */
  uint64_t row_bytes;     /* bytes of one row as wcodec_decode_tensor writes it (0: rows do not
                             fall on byte boundaries, e.g. F4 with an odd row length) */
} wcodec_tensor_info;
#define WCODEC_TENSOR_INFO_INIT {sizeof(wcodec_tensor_info), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

/* A file stored in the container: a safetensors file (its tensors are
 * first_tensor .. first_tensor + tensor_count - 1) or a blob (a config, an
 * index JSON, a tokenizer: no tensors). */
typedef struct {
  size_t struct_size;     /* sizeof(wcodec_file_info): set by the caller */
  const char* name;       /* stored name: a relative path in a folder container */
  const char* kind;       /* "safetensors" | "blob" */
  uint64_t size;          /* bytes of the original file */
  size_t first_tensor;
  size_t tensor_count;
  size_t metadata_count;  /* entries of its safetensors __metadata__ */
} wcodec_file_info;
#define WCODEC_FILE_INFO_INIT {sizeof(wcodec_file_info), 0, 0, 0, 0, 0, 0}

/* wcodec_decode_tensor_ex: the top level of a lossy tensor (the best it holds). */
#define WCODEC_LEVEL_TOP 0xFFFFFFFFu

WCODEC_API unsigned wcodec_version_number(void);
WCODEC_API const char* wcodec_version_string(void);
WCODEC_API const char* wcodec_error_name(int code);

/* Opens and validates a container (header, footer, manifest, index), mapping
 * the file. */
WCODEC_API int wcodec_open(const char* path, wcodec_archive** out, char* err, size_t err_len);
/* The same over `size` bytes at `data` that the caller keeps alive and
 * unchanged until wcodec_close (an mmap, a buffer a runtime already holds).
 * `name` (may be NULL: "<memory>") is what error messages call it. */
WCODEC_API int wcodec_open_memory(const void* data, size_t size, const char* name, wcodec_archive** out, char* err,
                                  size_t err_len);
WCODEC_API void wcodec_close(wcodec_archive* a);
/* Checksums: every chunk a decode reads is checked against its stored
 * XXH3-64 (on by default). on = 0 skips that hash for a trusted, already
 * verified file (offsets and sizes are still checked, and a lossy tensor
 * decoded whole is still compared with its reconstruction hash). Call it
 * before decoding, not while other threads decode. */
WCODEC_API int wcodec_set_verify_chunks(wcodec_archive* a, int on);

WCODEC_API size_t wcodec_file_count(const wcodec_archive* a);
WCODEC_API int wcodec_get_file_info(const wcodec_archive* a, size_t file, wcodec_file_info* out);
/* Entry k (0 .. metadata_count-1, in the order the file stores them) of a
 * safetensors file's __metadata__; key and value stay valid while the archive
 * is open. */
WCODEC_API int wcodec_get_metadata(const wcodec_archive* a, size_t file, size_t k, const char** key,
                                   const char** value);
/* Index of the file stored as `name`; WCODEC_E_NOT_FOUND when there is none. */
WCODEC_API int wcodec_find_file(const wcodec_archive* a, const char* name, size_t* file);

WCODEC_API size_t wcodec_tensor_count(const wcodec_archive* a);
WCODEC_API int wcodec_get_tensor_info(const wcodec_archive* a, size_t tensor, wcodec_tensor_info* out);
/* Index of the tensor called `name` (the first, in file order, when files of a
   multi-file container share a name), or WCODEC_E_NOT_FOUND when there is none.
   The first call sorts the names (O(n log n)); later calls are O(log n).
   Safe from many threads at once. */
WCODEC_API int wcodec_find_tensor(const wcodec_archive* a, const char* name, size_t* tensor);

/* Verifies chunk `chunk` of `tensor` and decodes it into dst, which must hold
 * at least that chunk's raw size (chunk_size, or less for the last). Exact
 * tensors only (WCODEC_E_USAGE for a lossy one). */
WCODEC_API int wcodec_decode_chunk(const wcodec_archive* a, size_t tensor, uint32_t chunk, void* dst, size_t dst_len,
                        char* err, size_t err_len);

/* Decodes a whole tensor into dst (at least byte_size bytes), chunks in
 * parallel on `threads` threads (0: all cores), each straight into its place
 * in dst: no extra buffer. */
WCODEC_API int wcodec_decode_tensor(const wcodec_archive* a, size_t tensor, void* dst, size_t dst_len, unsigned threads,
                         char* err, size_t err_len);

/* Decodes a tensor at `level` (0 .. levels-1, or WCODEC_LEVEL_TOP) in dtype
 * `dtype` ("BF16", "F16", "F32"; NULL: the tensor's own) into dst, which
 * must hold elements x that dtype's size. Exact tensors decode at level 0 or
 * TOP in their own dtype only. A lossy tensor decoded in its own dtype is
 * checked against its stored reconstruction hash (WCODEC_E_CHECKSUM). The
 * arithmetic is spec'd to the bit (spec/QROW.md): every decoder writes the
 * same bytes. A tensor with an exact top layer (levels = 2, container 2.7,
 * spec/EXACT_TOP.md) gives its original bits at level 1 (TOP), in its own
 * dtype only (WCODEC_E_USAGE otherwise), and the lossy model at level 0;
 * one with refinement levels (container 2.8, spec/REFINE.md) gives a finer
 * model at each level above 0, also in its own dtype only. */
WCODEC_API int wcodec_decode_tensor_ex(const wcodec_archive* a, size_t tensor, uint32_t level, const char* dtype, void* dst,
                            size_t dst_len, unsigned threads, char* err, size_t err_len);

/* Decodes rows [row_begin, row_end) of a tensor (rows: shape[0]) into dst
 * (at least (row_end - row_begin) x row_bytes bytes; for a lossy tensor, in
 * dtype `dtype` as wcodec_decode_tensor_ex, at its top level), reading and
 * decoding only the chunks (exact) or tiles (lossy) that hold those rows;
 * rows of a partly needed chunk or tile go through a per-thread buffer. Every
 * chunk read is checked against its stored checksum; a lossy tensor's
 * whole-tensor reconstruction hash needs every tile, so a row range is not
 * checked against it (decode the whole tensor for that). */
WCODEC_API int wcodec_decode_rows(const wcodec_archive* a, size_t tensor, uint64_t row_begin, uint64_t row_end,
                                  const char* dtype, void* dst, size_t dst_len, unsigned threads, char* err,
                                  size_t err_len);

/* Many tensors in one call: their chunks and tiles share one set of
 * `threads` threads (0: all cores), so a model of many small tensors decodes
 * as fast as one of few large ones. Each job as wcodec_decode_tensor_ex at
 * the top level in `dtype` (NULL: the tensor's own). On failure the first
 * error is returned; the destinations of the jobs then hold unspecified
 * bytes. */
typedef struct {
  size_t tensor;
  void* dst;
  size_t dst_len;
  const char* dtype;
} wcodec_decode_job;
WCODEC_API int wcodec_decode_tensors(const wcodec_archive* a, const wcodec_decode_job* jobs, size_t job_count,
                                     unsigned threads, char* err, size_t err_len);

/* The same on the caller's threads: the library creates no thread. It calls
 * `run(ctx, task_count, task, task_arg)` once; the executor must call
 * task(task_arg, i) exactly once for every i in [0, task_count), from any
 * threads and in any order, and return when all have returned (a runtime's
 * thread pool, an OpenMP loop, or a plain for loop). Tasks are independent
 * and never block on each other. */
typedef void (*wcodec_task_fn)(void* task_arg, size_t i);
typedef void (*wcodec_executor_fn)(void* ctx, size_t task_count, wcodec_task_fn task, void* task_arg);
WCODEC_API int wcodec_decode_tensors_exec(const wcodec_archive* a, const wcodec_decode_job* jobs, size_t job_count,
                                          wcodec_executor_fn run, void* ctx, char* err, size_t err_len);

/* ---- runtimes: caller workspace, caller I/O, no allocation ---------------- */

/* Bytes of workspace one decode call below needs: the float-ans tables and
 * a zstd context (about 330 KiB). Any alignment. A thread reuses its own
 * workspace call after call; two calls at once need two. */
WCODEC_API size_t wcodec_workspace_size(void);

/* wcodec_decode_chunk with caller workspace: allocates nothing on the heap
 * and uses a few KiB of stack (errors excepted: building the message may
 * allocate). Exact tensors. */
WCODEC_API int wcodec_decode_chunk_ws(const wcodec_archive* a, size_t tensor, uint32_t chunk, void* dst,
                                      size_t dst_len, void* workspace, size_t workspace_len, char* err,
                                      size_t err_len);

/* One chunk of a decode plan: where its stored bytes lie in the container
 * file and where its decoded bytes go in its tensor, so a runtime can issue
 * its own reads (io_uring, GPUDirect Storage, HTTP ranges) and decode many
 * tensors as one batch of independent jobs. */
typedef struct {
  size_t tensor;
  uint32_t chunk;          /* chunk number within the tensor */
  uint32_t codec;          /* 0 raw, 1 zstd, 2 float-ans, 3 float-ans-trim, 4 float-ans-mixed, 5 float-ans-patch,
                              7 float-ans-groups, 8 float-ans-pairs (spec/FORMAT.md §6; 4, 5, 7, 8: payload
                              byte 0 == 2 is a zstd frame, under 7 and 8 byte 0 == 5 zstd frames of byte
                              planes; other payloads are float-ans, spec/FLOAT_ANS.md §2) */
  const char* dtype;       /* the tensor's dtype */
  uint64_t file_offset;    /* first stored byte in the container file; WCODEC_OFFSET_INLINE:
                              the bytes lie in the (compressed) manifest, which the archive
                              holds: a small tensor stored in its record (container 1.4/2.5) */
  uint64_t stored_size;
  uint64_t xxh3;           /* XXH3-64 of the stored bytes */
  uint64_t dst_offset;     /* first decoded byte within the tensor */
  uint64_t dst_size;
} wcodec_chunk_desc;
#define WCODEC_OFFSET_INLINE UINT64_MAX

/* The chunks of `tensor_count` exact tensors, in order: *count receives how
 * many there are; at most `capacity` are written to `out` (call with
 * capacity 0 to size the array). Lossy tensors are WCODEC_E_USAGE (decode
 * them with wcodec_decode_tensor_ex). */
WCODEC_API int wcodec_plan_chunks(const wcodec_archive* a, const size_t* tensors, size_t tensor_count,
                                  wcodec_chunk_desc* out, size_t capacity, size_t* count, char* err,
                                  size_t err_len);

/* Decodes the chunk `d` names from its stored bytes, which the caller read
 * itself (stored_len must equal d->stored_size), into dst (at least
 * d->dst_size bytes), with caller workspace. The chunk's record is taken
 * from the archive, not from `d`: a desc changed by the caller cannot make
 * it read or write out of bounds. The bytes are checked against the stored
 * XXH3-64 unless chunk checks are off. A desc whose file_offset is
 * WCODEC_OFFSET_INLINE takes no stored bytes (stored NULL, stored_len 0):
 * the archive has them. No heap allocation. */
WCODEC_API int wcodec_decode_desc(const wcodec_archive* a, const wcodec_chunk_desc* d, const void* stored,
                                  size_t stored_len, void* dst, size_t dst_len, void* workspace,
                                  size_t workspace_len, char* err, size_t err_len);

/* ---- whole-model operations (what the wcodec tool does) ------------------ */

typedef struct {
  size_t struct_size;      /* sizeof(wcodec_pack_options) */
  unsigned threads;        /* 0: all cores */
  int force;               /* replace an existing output */
  const char* codec;       /* "auto" (NULL), "raw", "zstd", "float-ans", "float-ans-trim", "float-ans-mixed", "float-ans-patch",
                              "float-ans-groups", "float-ans-pairs" */
  int zstd_level;          /* 0: the default (3) */
  uint32_t chunk_size;     /* raw bytes per chunk; 0: the default (256 KiB) */
  double bits;             /* 0: lossless; else the lossy budget in bits per weight */
  const char* keep;        /* lossy: regex of tensor names kept exact (NULL: none) */
  const char* sensitivity; /* lossy: a safetensors file of measured sensitivities (NULL: none) */
  uint64_t min_elements;   /* lossy: smaller tensors stay exact; 0: the default (1024) */
  const char* parallel;    /* "cpu" (NULL) or "gpu": float-ans laid out for GPU decoders */
  /* Added after the first release (read only when struct_size covers them): */
  const char* calib;       /* lossy: a calibration file (spec/CALIB.md): GPTQ, importances, sensitivities (NULL: none) */
  int no_act_order;        /* lossy, with calib: quantize columns in their order, not by input energy */
  const char* scheme;      /* lossy: "auto" (NULL; per tensor), "quant", "outliers" (spec/OUTLIERS.md), "codebook" (spec/VQ.md) */
  const char* inline_small; /* small exact tensors in the manifest (container 1.4/2.5): "auto" (NULL;
                               where it saves 1/256 of the tensors' bytes), "always", "never" */
  int exact;               /* lossy: add an exact top layer (container 2.7, spec/EXACT_TOP.md): the file
                              unpacks to the original, its level 0 is the model of `bits` */
  unsigned refine;         /* lossy: refinement levels above level 0 (container 2.8, spec/REFINE.md), 0 to 6:
                              each a step refine_factor (3) times finer; below the exact top layer when `exact` */
  const char* block;       /* lossy, with refine: the levels' kind (container 2.14, spec/BITSTACK.md): "refine"
                              (NULL), "bitstack" (BitStack's sign-magnitude blocks) or "auto" (per tensor and level) */
  unsigned block_rank;     /* the blocks' rank, 1 to 16; 0: the default (2) */
  unsigned refine_factor;  /* lossy, with refine: each level's step this many times finer, 2 to 6 (about log2 of it
                              in bits per weight a level); 0: the default (3) */
} wcodec_pack_options;
#define WCODEC_PACK_OPTIONS_INIT {sizeof(wcodec_pack_options), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

typedef struct {
  size_t struct_size;      /* sizeof(wcodec_pack_result) */
  uint64_t input_bytes, output_bytes, weights;
  uint64_t lossy_tensors;
  double lossy_bits_per_weight;
} wcodec_pack_result;
#define WCODEC_PACK_RESULT_INIT {sizeof(wcodec_pack_result), 0, 0, 0, 0, 0}

/* Packs `in` (a .safetensors file, a sharded model's *.index.json, or a
 * folder) into `out` (NULL: IN.wcz beside it; an existing folder or a path
 * ending in '/': IN.wcz's base name inside it). `options`, `result` may be NULL.
 * The output appears only when complete; an existing one is kept unless
 * force is set. */
WCODEC_API int wcodec_pack(const char* in, const char* out, const wcodec_pack_options* options,
                           wcodec_pack_result* result, char* err, size_t err_len);
/* Packs the safetensors file held in `size` bytes at `data` as if it were a
 * file called `name` (one path component): the container is byte for byte
 * the one wcodec_pack of such a file makes. Memory: about `size` more. */
WCODEC_API int wcodec_pack_memory(const void* data, size_t size, const char* name, const char* out,
                                  const wcodec_pack_options* options, wcodec_pack_result* result, char* err,
                                  size_t err_len);
/* Restores the original file(s) of container `in` to `out` (a file for a
 * one-file container, a folder otherwise; NULL: beside the container under
 * the stored name), checking every checksum before the output is committed.
 * The path written is copied to `written` (may be NULL). */
WCODEC_API int wcodec_unpack(const char* in, const char* out, unsigned threads, int force, char* written,
                             size_t written_len, char* err, size_t err_len);
/* Restores the one file stored as `name` (a config, one shard) to `out` (a
 * path; an existing folder or a path ending in '/': its base name inside it;
 * NULL: beside the container), decoding only that file's chunks and checking
 * its hash before the output is committed. WCODEC_E_USAGE when the container
 * holds no such file. */
WCODEC_API int wcodec_unpack_file(const char* in, const char* name, const char* out, unsigned threads, int force,
                                  char* written, size_t written_len, char* err, size_t err_len);
/* Decodes every chunk of `in` and checks every checksum and every file's
 * hash; `chunks`, `bytes` (may be NULL) receive the counts checked. */
WCODEC_API int wcodec_verify(const char* in, unsigned threads, uint64_t* chunks, uint64_t* bytes, char* err,
                             size_t err_len);

/* ---- experimental: may change in any release ----------------------------- */
#ifdef WCODEC_EXPERIMENTAL
/* Stored chunks this archive has decoded since it was opened (all threads):
 * for tests and tools that check that a lazy read touched only what it
 * needed. */
WCODEC_API uint64_t wcodec_chunks_decoded(const wcodec_archive* a);
/* wcodec_decode_rows at a level of a lossy tensor (as wcodec_decode_tensor_ex:
 * `level` or WCODEC_LEVEL_TOP; above level 0 in its own dtype only): rows
 * [row_begin, row_end) from the tiles that hold them, reading the chunks of
 * levels 0 .. level only (a runtime that keeps a small model and pages rows
 * of it). Exact tensors have one level, 0. */
WCODEC_API int wcodec_decode_rows_ex(const wcodec_archive* a, size_t tensor, uint32_t level, uint64_t row_begin,
                                     uint64_t row_end, const char* dtype, void* dst, size_t dst_len, unsigned threads,
                                     char* err, size_t err_len);
/* Brings a lossy tensor held at level `from` in its own dtype (dst, as
 * wcodec_decode_tensor_ex wrote it) to level `to` (or WCODEC_LEVEL_TOP) in
 * place, reading and decoding only the chunks of levels from+1 .. to: a
 * runtime that gains memory loads only the new blocks (a file packed with
 * --exact: level 0 to the original bits). The result is checked against
 * level `to`'s stored hash; a dst that did not hold level `from` fails that
 * check (WCODEC_E_CHECKSUM) or the new level's stream (WCODEC_E_CODEC). */
WCODEC_API int wcodec_upgrade_tensor(const wcodec_archive* a, size_t tensor, uint32_t from, uint32_t to, void* dst,
                                     size_t dst_len, unsigned threads, char* err, size_t err_len);

/* Budgets. A file packed with levels (pack --bits B --refine R, --exact;
 * spec/REFINE.md, FORMAT.md §4.3) is a sequence of model steps: its first
 * bytes up to the end of step K hold the model at step K, in which each
 * tensor has the levels that arrived by then. A runtime picks the step its
 * memory or download affords (wcodec_budget_step), decodes each tensor at
 * its level there (wcodec_tensor_level_at, then wcodec_decode_tensor_ex),
 * and when it gains memory, moves to a later step with
 * wcodec_upgrade_tensor from each tensor's old level to its new one (the
 * tensors whose level did not change need nothing). A file without levels
 * has one step, 0. */
/* The model's steps: 1 for a file without levels. 0 for a NULL archive. */
WCODEC_API uint32_t wcodec_step_count(const wcodec_archive* a);
/* The last step whose prefix fits `budget`: bytes with an optional unit
 * ("512MB", "2GiB", "123456") or bits per weight of the model's tensors
 * ("4.25bpw"), as unpack --budget reads it. *step receives it and *bytes
 * (either may be NULL) the prefix's size: the file's bytes a reader of that
 * step reads. WCODEC_E_USAGE for a budget that does not parse or that even
 * step 0 does not fit (the message says what step 0 needs). */
WCODEC_API int wcodec_budget_step(const wcodec_archive* a, const char* budget, uint32_t* step, uint64_t* bytes,
                                  char* err, size_t err_len);
/* Tensor `tensor`'s level in the model at `step` (steps beyond the last
 * read as the last): the level to pass to wcodec_decode_tensor_ex. 0 for an
 * exact tensor, and for a tensor or archive that does not exist. */
WCODEC_API uint32_t wcodec_tensor_level_at(const wcodec_archive* a, size_t tensor, uint32_t step);
#endif

#ifdef __cplusplus
}
#endif
#endif /* WCODEC_H */
