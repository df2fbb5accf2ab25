// Huge files, made cheaply with sparse files: offsets past 4 GiB in the input
// and in the container, a single tensor over 4 GiB, and a model of 100,000
// tensors. Outputs are checked by streaming `wcodec unpack ... -o -` into a
// pipe and comparing on the fly, so no multi-GiB file is ever written.
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "format/hash.h"

#include "format/container.h"
#include "platform/file_io.h"
#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "format/writer.h"
#include "lib/api.h"
#include "st_builder.h"
#include "test_util.h"

using wc::DType;

namespace {

constexpr uint64_t kBig = (4ull << 30) + (64ull << 20);  // 4 GiB + 64 MiB

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

using TmpDir = tu::TempDir;

// Bytes of an expected output: a list of segments (data, or zeros when null).
struct Expected {
  struct Seg {
    const uint8_t* data;
    uint64_t len;
  };
  std::vector<Seg> segs;
  uint64_t size() const {
    uint64_t n = 0;
    for (auto& s : segs) n += s.len;
    return n;
  }
};

// Creates `path` as: prefix, `zeros` zero bytes (a hole), suffix. Returns
// false when the file system does not keep it sparse.
bool make_sparse(const std::string& path, const std::vector<uint8_t>& prefix, uint64_t zeros,
                 const std::vector<uint8_t>& suffix) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, prefix.data(), prefix.size(), 0) == ssize_t(prefix.size()));
  uint64_t end = prefix.size() + zeros;
  REQUIRE(::ftruncate(fd, off_t(end)) == 0);
  if (!suffix.empty()) REQUIRE(::pwrite(fd, suffix.data(), suffix.size(), off_t(end)) == ssize_t(suffix.size()));
  struct stat st;
  REQUIRE(::fstat(fd, &st) == 0);
  ::close(fd);
  return uint64_t(st.st_blocks) * 512 < (64ull << 20);
}

// Enough room for the small real files these tests write (containers of
// zeros, headers), with a margin.
bool enough_space(const std::string& dir, uint64_t need) {
  struct statvfs v;
  if (::statvfs(dir.c_str(), &v) != 0) return false;
  return uint64_t(v.f_bavail) * v.f_frsize >= need;
}

// Runs the CLI with stdin from `in` ("" = /dev/null); compares its standard
// output with `want` as it streams. Returns the exit status; sets `same`.
int cli_stream_compare(const std::vector<std::string>& args, const std::string& in, const Expected& want, bool& same,
                       uint64_t& got_bytes) {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int i = ::open(in.empty() ? "/dev/null" : in.c_str(), O_RDONLY);
    if (i < 0) ::_exit(127);
    ::dup2(i, 0);
    ::dup2(p[1], 1);
    ::close(p[0]);
    tu::exec_cli(args);
  }
  ::close(p[1]);
  same = true;
  got_bytes = 0;
  std::vector<uint8_t> buf(1 << 20);
  size_t seg = 0;
  uint64_t in_seg = 0;
  for (;;) {
    ssize_t r = ::read(p[0], buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    size_t k = 0;
    while (k < size_t(r) && same) {
      while (seg < want.segs.size() && in_seg == want.segs[seg].len) {
        ++seg;
        in_seg = 0;
      }
      if (seg == want.segs.size()) {
        same = false;  // more output than expected
        break;
      }
      const auto& s = want.segs[seg];
      size_t n = size_t(std::min<uint64_t>(s.len - in_seg, uint64_t(r) - k));
      if (s.data) {
        if (std::memcmp(buf.data() + k, s.data + in_seg, n) != 0) same = false;
      } else {
        static const std::vector<uint8_t> zero(1 << 20, 0);
        if (std::memcmp(buf.data() + k, zero.data(), n) != 0) same = false;
      }
      k += n;
      in_seg += n;
    }
    got_bytes += uint64_t(r);
  }
  ::close(p[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (got_bytes != want.size()) same = false;
  return st;
}

std::string big_json(uint64_t big, uint64_t tail_bytes) {
  return "{\"__metadata__\":{\"format\":\"pt\"},\"model.big\":{\"dtype\":\"U8\",\"shape\":[" + std::to_string(big) +
         "],\"data_offsets\":[0," + std::to_string(big) + "]},\"model.tail\":{\"dtype\":\"BF16\",\"shape\":[" +
         std::to_string(tail_bytes / 2) + "],\"data_offsets\":[" + std::to_string(big) + "," +
         std::to_string(big + tail_bytes) + "]}}";
}

// A ByteSink over a file that turns runs of zeros into holes.
class SparseSink : public wc::ByteSink {
 public:
  // `zeros`: a buffer known to hold only zeros (written as a hole unscanned).
  SparseSink(const std::string& path, const uint8_t* zeros, size_t zeros_n) : zeros_(zeros), zeros_n_(zeros_n) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd_ >= 0);
  }
  ~SparseSink() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void write(const void* p, size_t n) override {
    auto* c = static_cast<const uint8_t*>(p);
    if (zeros_ && c >= zeros_ && c + n <= zeros_ + zeros_n_) {
      pos_ += n;
      return;
    }
    size_t i = 0;
    while (i < n) {
      size_t k = std::min<size_t>(n - i, 1 << 16);
      bool zero = true;
      for (size_t j = 0; j < k && zero; j += 8) {
        uint64_t v = 0;
        std::memcpy(&v, c + i + j, std::min<size_t>(8, k - j));
        zero = v == 0;
      }
      if (!zero && ::pwrite(fd_, c + i, k, off_t(pos_)) != ssize_t(k)) FAIL("write failed");
      pos_ += k;
      i += k;
    }
  }
  uint64_t written() const override { return pos_; }
  void close_at_size() {
    REQUIRE(::ftruncate(fd_, off_t(pos_)) == 0);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  uint64_t pos_ = 0;
  const uint8_t* zeros_ = nullptr;
  size_t zeros_n_ = 0;
};

}  // namespace

TEST_SUITE("huge") {

TEST_CASE("a 4.5 GiB tensor and data past 4 GiB: pack with zstd, inspect, verify, unpack") {
  TmpDir d;
  if (!enough_space(d.path, 2ull << 30)) {
    MESSAGE("[SKIPPED] less than 2 GiB free in " << d.path);
    return;
  }
  auto tail = stb::pattern_bytes(4096, 11);
  std::string json = big_json(kBig, tail.size());
  auto prefix = stb::raw(json);
  std::string st = d / "big.safetensors", wcz = d / "big.wcz";
  if (!make_sparse(st, prefix, kBig, tail)) {
    MESSAGE("[SKIPPED] " << d.path << " does not keep sparse files sparse");
    return;
  }
  const uint64_t st_size = prefix.size() + kBig + tail.size();
  double t0 = now_s();
  wc::PackOptions po;
  po.threads = 2;
  po.codec = "zstd";
  po.chunk_size = 16u << 20;
  auto pr = wc::pack(st, wcz, po);
  double t1 = now_s();
  CHECK(pr.input_bytes == st_size);
  struct stat cs;
  REQUIRE(::stat(wcz.c_str(), &cs) == 0);
  CHECK(uint64_t(cs.st_size) < (8ull << 20));  // zeros compress to almost nothing

  std::vector<wc::TensorSummary> tensors;
  auto ir = wc::inspect(wcz, false, &tensors);
  double t2 = now_s();
  REQUIRE(tensors.size() == 2);
  CHECK(tensors[0].name == "model.big");
  CHECK(tensors[0].raw_bytes == kBig);
  CHECK(tensors[0].shape == std::vector<uint64_t>{kBig});
  CHECK(tensors[1].raw_bytes == tail.size());
  CHECK(ir.raw_bytes == st_size);
  CHECK(t2 - t1 < 60.0);  // hang guard only: speed is measured in bench/

  auto vr = wc::verify(wcz, st, 2, {});
  double t3 = now_s();
  CHECK(vr.compared);
  CHECK(vr.bytes == st_size);

  Expected want;
  want.segs = {{prefix.data(), prefix.size()}, {nullptr, kBig}, {tail.data(), tail.size()}};
  bool same = false;
  uint64_t got = 0;
  int status = cli_stream_compare({"unpack", wcz, "-o", "-", "-T", "2"}, "", want, same, got);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(got == st_size);
  CHECK(same);
  double t4 = now_s();
  MESSAGE("sparse safetensors of " << st_size << " bytes (tensor of " << kBig << " bytes, data past 4 GiB): pack "
                                   << (t1 - t0) << " s -> " << cs.st_size << " bytes, inspect " << (t2 - t1)
                                   << " s, verify --against " << (t3 - t2) << " s, unpack -o - " << (t4 - t3)
                                   << " s");
}

TEST_CASE("a container larger than 4 GiB (raw codec, sparse): chunk offsets past 4 GiB") {
  TmpDir d;
  if (!enough_space(d.path, 2ull << 30)) {
    MESSAGE("[SKIPPED] less than 2 GiB free in " << d.path);
    return;
  }
  // Check sparse support first.
  if (!make_sparse(d / "probe", {1}, 1ull << 30, {1})) {
    MESSAGE("[SKIPPED] " << d.path << " does not keep sparse files sparse");
    return;
  }
  ::unlink((d / "probe").c_str());
  auto tail = stb::pattern_bytes(4096, 12);
  auto prefix = stb::raw(big_json(kBig, tail.size()));
  const uint64_t file_size = prefix.size() + kBig + tail.size();
  const uint32_t chunk = wc::kMaxChunkSize;  // 256 MiB
  uint8_t* zeros = static_cast<uint8_t*>(std::calloc(chunk, 1));  // untouched pages: no real memory
  REQUIRE(zeros != nullptr);

  double t0 = now_s();
  wc::Manifest m;
  wc::FileRecord f;
  f.name = "big.safetensors";
  f.size = file_size;
  {
    XXH3_state_t* s = XXH3_createState();
    XXH3_64bits_reset(s);
    XXH3_64bits_update(s, prefix.data(), prefix.size());
    for (uint64_t left = kBig; left > 0;) {
      uint64_t k = std::min<uint64_t>(left, chunk);
      XXH3_64bits_update(s, zeros, k);
      left -= k;
    }
    XXH3_64bits_update(s, tail.data(), tail.size());
    f.xxh3 = XXH3_64bits_digest(s);
    XXH3_freeState(s);
  }
  f.first_tensor = 0;
  f.tensor_count = 2;
  f.prefix = prefix;
  m.files.push_back(f);
  wc::TensorRecord big, t2;
  big.name = "model.big";
  big.dtype = DType::U8;
  big.shape = {kBig};
  big.byte_size = kBig;
  big.chunk_size = chunk;
  t2.name = "model.tail";
  t2.dtype = DType::BF16;
  t2.shape = {tail.size() / 2};
  t2.byte_size = tail.size();
  t2.chunk_size = chunk;
  m.tensors = {big, t2};
  m.derive_chunks();
  std::string wcz = d / "big.wcz";
  {
    SparseSink sink(wcz, zeros, chunk);
    wc::ContainerWriter w(sink);
    w.begin(m);
    for (uint32_t i = 0; i < m.tensors[0].chunk_count; ++i) w.add_chunk(zeros, m.tensors[0].chunk_raw_size(i));
    w.add_chunk(tail.data(), tail.size());
    w.finish();
    sink.close_at_size();
  }
  double t1 = now_s();
  struct stat cs;
  REQUIRE(::stat(wcz.c_str(), &cs) == 0);
  CHECK(uint64_t(cs.st_size) > (4ull << 30));
  CHECK(uint64_t(cs.st_size) > file_size);

  {
    wc::ContainerReader r(wcz, wc::kReaderChecks);
    REQUIRE(r.index().size() == m.chunk_count);
    CHECK(r.index().back().offset > (4ull << 30));
    CHECK(r.footer().index_offset > (4ull << 30));
  }
  double t2s = now_s();
  std::vector<wc::TensorSummary> tensors;
  auto ir = wc::inspect(wcz, false, &tensors);
  double t3 = now_s();
  REQUIRE(tensors.size() == 2);
  CHECK(ir.file_size == uint64_t(cs.st_size));
  CHECK(tensors[0].stored_bytes == kBig);
  CHECK(t3 - t2s < 60.0);  // hang guard (speed belongs in bench/); the index only: 4.5 GiB of payload is never touched

  // The chunks past 4 GiB verify and decode (reading 4 GiB of holes again
  // would only measure the page cache; the full decode path is covered above).
  {
    wc::ContainerReader r(wcz, wc::kReaderChecks);
    uint32_t last = uint32_t(r.index().size() - 1);
    auto sp = r.chunk(last);
    CHECK(std::vector<uint8_t>(sp.begin(), sp.end()) == tail);
    auto sb = r.chunk(last - 1);
    CHECK(r.index()[last - 1].offset + sb.size() > (4ull << 30));
    CHECK(std::memcmp(sb.data(), zeros, sb.size()) == 0);
  }
  std::free(zeros);
  double t4 = now_s();
  // A flipped bit past 4 GiB (in the last chunk's payload) is found.
  {
    wc::ContainerReader r(wcz, wc::kReaderChecks);
    uint64_t off = r.index().back().offset + 5;
    int fd = ::open(wcz.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t b = 0;
    REQUIRE(::pread(fd, &b, 1, off_t(off)) == 1);
    b ^= 4;
    REQUIRE(::pwrite(fd, &b, 1, off_t(off)) == 1);
    ::close(fd);
  }
  bool threw = false;
  try {
    wc::ContainerReader r(wcz, wc::kReaderChecks);
    r.chunk(uint32_t(r.index().size() - 1));
  } catch (const wc::Error& e) {
    threw = true;
    CHECK(e.code() == wc::Errc::checksum);
    CHECK(e.tensor() == "model.tail");
    CHECK(e.offset() > (4ull << 30));
  }
  CHECK(threw);
  MESSAGE("sparse container of " << cs.st_size << " bytes (" << m.chunk_count << " chunks, last at offset > 4 GiB): built "
                                 << (t1 - t0) << " s, inspect " << (t3 - t2s) << " s, last chunks verified " << (t4 - t3)
                                 << " s");
}

TEST_CASE("a model of 100,000 tensors packs, inspects fast and round-trips") {
  TmpDir d;
  const size_t n = tu::sanitized_scale(100000, 5);  // 20,000 in sanitized builds
  std::string json = "{";
  std::vector<uint8_t> data;
  data.reserve(n * 8);
  for (size_t i = 0; i < n; ++i) {
    std::string name = "model.layers." + std::to_string(i / 100) + ".t" + std::to_string(i % 100);
    DType dt = i % 3 == 0 ? DType::F32 : DType::BF16;
    uint64_t bytes = dt == DType::F32 ? 8 : 4;
    json += (i ? "," : "") + stb::quote(name) + ":" + stb::entry_json(dt, {2}, data.size(), data.size() + bytes);
    for (uint64_t k = 0; k < bytes; ++k) data.push_back(uint8_t(i * 7 + k * 13 + 0x3C));
  }
  json += "}";
  auto file = stb::raw(json, data);
  std::string st = d / "many.safetensors", wcz = d / "many.wcz", back = d / "back.safetensors";
  stb::write_file(st, file);
  double t0 = now_s();
  wc::PackOptions po;
  po.threads = 2;
  wc::pack(st, wcz, po);
  double t1 = now_s();
  std::vector<wc::TensorSummary> tensors;
  auto ir = wc::inspect(wcz, false, &tensors);
  double t2 = now_s();
  // Most of a large manifest is the verbatim safetensors header; it must not
  // make pack slow.
  CHECK(t1 - t0 < 600.0);  // hang guard only: speed is measured in bench/
  REQUIRE(tensors.size() == n);
  CHECK(tensors[12345].name == "model.layers.123.t45");
  CHECK(tensors[n - 1].shape == std::vector<uint64_t>{2});
  CHECK(t2 - t1 < 60.0);  // hang guard only
  {
    char* buf = nullptr;
    size_t len = 0;
    std::FILE* mem = ::open_memstream(&buf, &len);
    REQUIRE(mem);
    wc::inspect(wcz, false, *wc::inspect_json_writer(mem));
    std::fclose(mem);
    std::string text(buf, len);
    std::free(buf);
    CHECK(text.find("model.layers." + std::to_string((n - 1) / 100) + ".t99") != std::string::npos);
  }
  wc::UnpackOptions uo;
  uo.threads = 2;
  wc::unpack(wcz, back, uo);
  double t3 = now_s();
  wc::MappedFile a(st), b(back);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size()) == 0);
  MESSAGE(n << " tensors (" << file.size() << " bytes, header " << json.size() << " bytes): pack " << (t1 - t0)
                              << " s, inspect " << (t2 - t1) << " s, unpack " << (t3 - t2) << " s");
}

}  // TEST_SUITE
