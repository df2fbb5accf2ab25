// A runtime's decode loop allocates nothing and needs little stack.
//
// This program replaces malloc, calloc, realloc and free (and so operator
// new) with counting wrappers over glibc's, packs a model with every exact
// codec (float-ans, float-ans-trim, zstd, raw), opens it through the C API,
// plans its chunks, reads their stored bytes itself (as a runtime with its own
// I/O would), and then decodes every chunk twice, with wcodec_decode_desc and
// with wcodec_decode_chunk_ws, into caller buffers with caller workspace. It
// fails when any allocation happens during that loop, when an output differs
// from the original tensor bytes, or when the loop's stack (on a thread whose
// stack this program owns and paints) reaches beyond kStackLimit.
//
// Built without sanitizers only (they replace malloc themselves).
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lib/api.h"
#include "st_builder.h"
#include "weights_gen.h"
#include "wcodec/wcodec.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);
}

static std::atomic<bool> g_counting{false};
static std::atomic<uint64_t> g_allocs{0};

extern "C" {
void* malloc(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
}

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wcodec-noalloc.XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::vector<uint8_t> read_file(const std::string& p) {
  std::vector<uint8_t> v;
  if (std::FILE* f = std::fopen(p.c_str(), "rb")) {
    uint8_t buf[65536];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) v.insert(v.end(), buf, buf + n);
    std::fclose(f);
  }
  return v;
}

// The decode loop must fit in this much stack ("a few KiB"; the float-ans
// tables alone were 165 KiB before they moved into the workspace).
constexpr size_t kStackLimit = 16 * 1024;
constexpr size_t kStackSize = 256 * 1024;
constexpr uint8_t kPaint = 0xA5;

int g_failures = 0;
#define EXPECT(cond, ...)                                   \
  do {                                                      \
    if (!(cond)) {                                          \
      std::fprintf(stderr, "FAILED: %s: ", #cond);          \
      std::fprintf(stderr, __VA_ARGS__);                    \
      std::fprintf(stderr, "\n");                           \
      ++g_failures;                                         \
    }                                                       \
  } while (0)

struct Loop {
  wcodec_archive* a;
  const std::vector<wcodec_chunk_desc>* plan;
  const std::vector<uint8_t>* stored;   // the container's bytes, read by us
  std::vector<std::vector<uint8_t>>* out;  // per tensor
  std::vector<size_t>* slot;             // tensor index -> out slot
  void* ws;
  size_t ws_len;
  int rc = 0;
  char err[256];
};

void* run_nothing(void*) { return nullptr; }

// Bytes of a painted stack of kStackSize that `fn` on a new thread touched
// (glibc also places the thread's static TLS and descriptor there).
size_t stack_touched(void* (*fn)(void*), void* arg, int* rc) {
  std::vector<uint8_t> stack(kStackSize, kPaint);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack.data(), stack.size());
  pthread_t th;
  *rc = pthread_create(&th, &attr, fn, arg);
  if (*rc == 0) pthread_join(th, nullptr);
  pthread_attr_destroy(&attr);
  size_t untouched = 0;
  while (untouched < stack.size() && stack[untouched] == kPaint) ++untouched;
  return stack.size() - untouched;
}

void* run_loop(void* arg) {
  auto* L = static_cast<Loop*>(arg);
  for (int pass = 0; pass < 2 && L->rc == 0; ++pass)
    for (const wcodec_chunk_desc& d : *L->plan) {
      uint8_t* dst = (*L->out)[(*L->slot)[d.tensor]].data() + d.dst_offset;
      // a tensor stored in the manifest: the archive has its bytes
      const bool in_manifest = d.file_offset == WCODEC_OFFSET_INLINE;
      L->rc = pass == 0 ? wcodec_decode_desc(L->a, &d, in_manifest ? nullptr : L->stored->data() + d.file_offset,
                                             in_manifest ? 0 : d.stored_size, dst, d.dst_size, L->ws, L->ws_len, L->err,
                                             sizeof L->err)
                        : wcodec_decode_chunk_ws(L->a, d.tensor, d.chunk, dst, d.dst_size, L->ws, L->ws_len, L->err,
                                                 sizeof L->err);
      if (L->rc) break;
    }
  return nullptr;
}

}  // namespace

int main() {
  TempDir t;
  using wc::DType;
  // F32 holding BF16 values: float-ans-trim; integers: zstd; a tiny tensor: raw or zstd.
  std::vector<uint8_t> f32_of_bf16 = testdata::weights(DType::F32, 1 << 17, 9);
  for (size_t i = 0; i < f32_of_bf16.size(); i += 4) f32_of_bf16[i] = f32_of_bf16[i + 1] = 0;
  std::vector<uint8_t> ids(8 * 20000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint8_t(i % 8 < 2 ? (i * 7) % 13 : 0);
  std::vector<stb::StTensor> ts = {
      {"bf16", DType::BF16, {512, 384}, testdata::weights(DType::BF16, 512 * 384, 1)},
      {"f16", DType::F16, {256, 384}, testdata::weights(DType::F16, 256 * 384, 2)},
      {"f32", DType::F32, {128, 384}, testdata::weights(DType::F32, 128 * 384, 3)},
      {"f32_of_bf16", DType::F32, {256, 512}, f32_of_bf16},
      {"ids", DType::I64, {20000}, ids},
      {"tiny", DType::U8, {3}, {1, 2, 3}},
      // scaled columns and, in its first chunks, repeated rows: float-ans-mixed
      // (modes 3 and 2, the shift's list in the workspace)
      {"mixed", DType::BF16, {1024, 384}, testdata::weights_channels(DType::BF16, 1024, 384, false, 4)},
  };
  for (size_t r = 16; r < 256; ++r)
    std::memcpy(&ts.back().bytes[r * 768], &ts.back().bytes[(r % 16) * 768], 768);
  const std::string src = t / "m.safetensors", wcz = t / "m.safetensors.wcz";
  stb::write_file(src, stb::build(ts));
  wc::PackOptions po;
  po.chunk_size = 64 << 10;
  po.inline_small = "always";  // "tiny" lies in the manifest (container 1.4)
  wc::pack(src, wcz, po);

  char err[256];
  wcodec_archive* a = nullptr;
  if (wcodec_open(wcz.c_str(), &a, err, sizeof err)) {
    std::fprintf(stderr, "open: %s\n", err);
    return 1;
  }
  std::vector<size_t> all(wcodec_tensor_count(a)), slot(all.size());
  std::vector<std::string> codecs;
  for (size_t i = 0; i < all.size(); ++i) {
    all[i] = i;
    wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
    wcodec_get_tensor_info(a, i, &info);
    for (size_t k = 0; k < ts.size(); ++k)
      if (ts[k].name == info.name) slot[i] = k;
    codecs.push_back(info.codec);
  }
  for (const char* c : {"float-ans", "float-ans-trim", "zstd", "float-ans-mixed"})
    EXPECT(std::find(codecs.begin(), codecs.end(), c) != codecs.end(), "no tensor was packed with %s", c);

  size_t n = 0;
  EXPECT(wcodec_plan_chunks(a, all.data(), all.size(), nullptr, 0, &n, err, sizeof err) == WCODEC_OK, "%s", err);
  std::vector<wcodec_chunk_desc> plan(n);
  EXPECT(wcodec_plan_chunks(a, all.data(), all.size(), plan.data(), plan.size(), &n, err, sizeof err) == WCODEC_OK,
         "%s", err);
  EXPECT(std::any_of(plan.begin(), plan.end(), [](const wcodec_chunk_desc& d) { return d.file_offset == WCODEC_OFFSET_INLINE; }),
         "no tensor lies in the manifest");
  const std::vector<uint8_t> stored = read_file(wcz);  // "our own I/O"
  std::vector<std::vector<uint8_t>> out(ts.size());
  for (size_t k = 0; k < ts.size(); ++k) out[k].assign(ts[k].bytes.size(), 0);
  std::vector<uint8_t> ws(wcodec_workspace_size() + 1);

  // The loop runs on a thread whose stack we own, painted, so we can see how
  // deep it went, less what an empty thread touches (its TLS and descriptor).
  // The workspace starts at an odd address on purpose.
  Loop L{a, &plan, &stored, &out, &slot, ws.data() + 1, ws.size() - 1, 0, {0}};
  int pc = 0;
  const size_t base = stack_touched(run_nothing, nullptr, &pc);
  const size_t touched = stack_touched(run_loop, &L, &pc);
  EXPECT(pc == 0, "pthread_create: %d", pc);
  const size_t used = touched > base ? touched - base : 0;
  EXPECT(used <= kStackLimit, "the decode loop used %zu bytes of stack (limit %zu)", used, kStackLimit);
  // The counter sees allocations (malloc really is replaced): a string of
  // 100 bytes and a vector must count.
  g_allocs = 0;
  g_counting = true;
  {
    std::string probe(100, 'x');
    std::vector<uint64_t> v(1000);
    (void)probe, (void)v;
  }
  g_counting = false;
  EXPECT(g_allocs.load() >= 2, "the allocation counter saw %llu allocations of 2", (unsigned long long)g_allocs.load());
  // Allocations: counted over the loop alone, on this thread (starting a
  // thread allocates its own bookkeeping).
  g_allocs = 0;
  g_counting = true;
  run_loop(&L);
  g_counting = false;
  EXPECT(L.rc == 0, "decode: %s", L.err);
  EXPECT(g_allocs.load() == 0, "%llu allocations during the decode loop", (unsigned long long)g_allocs.load());
  for (size_t k = 0; k < ts.size(); ++k) EXPECT(out[k] == ts[k].bytes, "tensor %s differs", ts[k].name.c_str());

  // A desc whose bytes were damaged in "our" read is caught by the stored hash.
  std::vector<uint8_t> bad(stored.begin() + plan[0].file_offset, stored.begin() + plan[0].file_offset + plan[0].stored_size);
  bad[bad.size() / 2] ^= 1;
  EXPECT(wcodec_decode_desc(a, &plan[0], bad.data(), bad.size(), out[0].data(), plan[0].dst_size, ws.data(), ws.size(),
                            err, sizeof err) == WCODEC_E_CHECKSUM, "damaged bytes were not refused");
  EXPECT(wcodec_decode_desc(a, &plan[0], bad.data(), bad.size() - 1, out[0].data(), plan[0].dst_size, ws.data(),
                            ws.size(), err, sizeof err) == WCODEC_E_USAGE, "a short read was not refused");
  EXPECT(wcodec_decode_chunk_ws(a, plan[0].tensor, 0, out[0].data(), plan[0].dst_size, ws.data(), 100, err,
                                sizeof err) == WCODEC_E_USAGE, "a small workspace was not refused");
  wcodec_close(a);
  std::printf("noalloc: %zu chunks decoded twice, %llu allocations, %zu bytes of stack beyond an empty thread's %zu "
              "(limit %zu)\n",
              plan.size(), (unsigned long long)g_allocs.load(), used, base, kStackLimit);
  std::printf("%d passed, %d failed\n", g_failures == 0 ? 1 : 0, g_failures == 0 ? 0 : 1);
  return g_failures == 0 ? 0 : 1;
}
