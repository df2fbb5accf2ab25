// wcodec command-line tool. Uses only the library's API (lib/api.h).
//
// Habits follow zstd: several inputs each to its default name, -o/-c, -f,
// -q/-v, --rm, -T, `-` for standard input, a one-line progress display on a
// terminal. Exit status: 0 success, 1 any error, 2 a usage error (also those
// the argument parser finds); with several inputs the worst of them, after
// trying every input.
#include <CLI/CLI.hpp>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lib/api.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// "123 B", "4.0 KiB", "12.3 MiB", "1.25 GiB".
std::string human(double b) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (b >= 1024 && u < 5) b /= 1024, ++u;
  char s[32];
  if (u == 0) std::snprintf(s, sizeof s, "%.0f B", b);
  else std::snprintf(s, sizeof s, b < 10 ? "%.2f %s" : "%.1f %s", b, units[u]);
  return s;
}

// "m:ss" or "h:mm:ss".
std::string clock_time(double s) {
  if (!(s >= 0) || s > 359999) return "--:--";
  const unsigned t = unsigned(s + 0.5), h = t / 3600, m = t / 60 % 60, sec = t % 60;
  char b[32];
  if (h) std::snprintf(b, sizeof b, "%u:%02u:%02u", h, m, sec);
  else std::snprintf(b, sizeof b, "%u:%02u", m, sec);
  return b;
}

// Columns of the terminal on stderr (80 when it does not say).
unsigned terminal_columns() {
  winsize ws{};
  if (::ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

// The progress display: one line on stderr, only when stderr is a terminal
// (and not -q), redrawn at most 10 times a second, never wider than the
// terminal less one column (so it never wraps). It shows the bytes done and
// the total, the rate and the time left, dropping the bar, then the rate,
// then the time left when the terminal is narrow. The final line (100%, the
// bytes, the elapsed time and the mean rate) is drawn exactly once, by
// finish() after success; clear() erases the line after a failure.
class Progress {
 public:
  Progress(const char* what, bool enabled) : s_(std::make_shared<State>()) {
    s_->what = what;
    s_->enabled = enabled;
    s_->t0 = Clock::now();
  }
  wc::ProgressFn fn() const {
    auto s = s_;
    return [s](uint64_t done, uint64_t total) {
      std::lock_guard<std::mutex> g(s->mu);
      s->done = done;
      s->total = total;
      if (!s->enabled || s->closed || done >= total) return;  // the final line is finish()'s
      const auto now = Clock::now();
      if (s->drawn && now - s->last < std::chrono::milliseconds(100)) return;
      s->last = now;
      s->draw(false);
    };
  }
  uint64_t total() const { return s_->total; }
  void finish() {
    std::lock_guard<std::mutex> g(s_->mu);
    if (!s_->enabled || s_->closed) return;
    s_->done = s_->total;
    s_->draw(true);
    std::fputc('\n', stderr);
    std::fflush(stderr);
    s_->closed = true;
  }
  void clear() {
    std::lock_guard<std::mutex> g(s_->mu);
    if (!s_->enabled || s_->closed) return;
    s_->closed = true;
    if (!s_->drawn) return;
    std::fprintf(stderr, "\r%*s\r", int(s_->shown), "");
    std::fflush(stderr);
  }

 private:
  struct State {
    std::mutex mu;
    const char* what = "";
    bool enabled = false, drawn = false, closed = false;
    Clock::time_point t0, last;
    uint64_t done = 0, total = 0;
    size_t shown = 0;  // width of the line on screen

    void draw(bool final) {
      const size_t width = std::max(8u, terminal_columns()) - 1;
      const double el = seconds_since(t0);
      const double rate = (final ? el > 0 : el > 0.2) ? double(done) / el : 0;
      const int pct = total ? int(100.0 * double(done) / double(total)) : 100;
      char p[16];
      std::snprintf(p, sizeof p, "%3d%%", final ? 100 : std::min(pct, 99));
      const std::string bytes = final ? human(double(total)) : human(double(done)) + "/" + human(double(total));
      const std::string speed = rate > 0 ? human(rate) + "/s" : "";
      const std::string eta = final ? "in " + clock_time(el)
                                    : rate > 0 ? "ETA " + clock_time(double(total - done) / rate) : "";
      // The richest form that fits: the bar goes first, then the rate, then the time, then the bytes.
      const std::vector<std::vector<std::string>> forms = {
          {what, p, bytes, speed, eta}, {what, p, bytes, eta}, {what, p, bytes}, {what, p}};
      std::string line;
      for (const auto& f : forms) {
        line.clear();
        for (const auto& x : f)
          if (!x.empty()) line += (line.empty() ? "" : " ") + x;
        if (line.size() <= width) break;
      }
      if (line.size() > width) line.resize(width);
      // A bar after the name, when at least 10 cells of it fit.
      const size_t room = width - line.size();
      if (room >= 13) {
        const size_t cells = std::min<size_t>(30, room - 3);
        const size_t full = final ? cells : size_t(double(cells) * (total ? double(done) / double(total) : 1.0));
        std::string bar = " [" + std::string(std::min(full, cells), '=') + std::string(cells - std::min(full, cells), ' ') + "]";
        line.insert(std::string(what).size(), bar);
      }
      const size_t pad = shown > line.size() ? shown - line.size() : 0;
      std::fprintf(stderr, "\r%s%*s", line.c_str(), int(pad), "");  // blanks over a longer line before
      std::fflush(stderr);
      shown = std::max(shown, line.size());
      drawn = true;
    }
  };
  std::shared_ptr<State> s_;
};

// On SIGINT/SIGTERM: remove temporary outputs, then die of the same signal.
extern "C" void on_fatal_signal(int sig) {
  wc::remove_temporaries_on_signal();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void error_line(const std::string& msg) { std::fprintf(stderr, "wcodec: error: %s\n", msg.c_str()); }

struct Usage {  // a usage error found by the tool itself (exit 2)
  std::string msg;
};
struct Failure {  // any other error found by the tool itself (exit 1)
  std::string msg;
};

struct Opts {
  std::vector<std::string> inputs;
  std::string out;
  bool to_stdout = false, force = false, rm = false;
  bool quiet = false, verbose = false;
  unsigned threads = 0;
  // pack
  std::string codec = "auto", name;
  int level = 3;
  std::string parallel = "cpu", inline_small = "auto", pool = "auto";
  double bits = 0;  // lossy: bits per weight (0: lossless)
  std::string keep, scheme = "auto", sensitivity, calib;
  bool no_act_order = false, exact = false;
  unsigned refine = 0;
  std::string block = "refine";
  unsigned block_rank = 2;
  unsigned refine_factor = 3;
  uint64_t min_elements = 1024;
  uint32_t chunk = wc::kDefaultChunkSize;
  // unpack
  std::string file, tensor;
  unsigned decode_level = 255;
  bool partial = false;
  std::string budget;
  // verify
  std::string against;
  // inspect
  bool json = false, entropy = false, steps = false;

  // As zstd: with the output on standard output, no summary and no progress
  // unless -v (the data has the terminal's attention, or a pipe's).
  bool summary(const std::string& dest) const { return !quiet && (dest != "-" || verbose); }
  bool progress(const std::string& dest) const { return summary(dest) && ::isatty(2); }
  void note(const char* fmt, ...) const __attribute__((format(printf, 2, 3))) {
    if (quiet) return;
    std::va_list ap;
    va_start(ap, fmt);
    std::fputs("wcodec: note: ", stderr);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
    va_end(ap);
  }
};

unsigned cores() {
  const unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

const char* shown_name(const std::string& p) { return p == "-" ? "<stdout>" : p.c_str(); }

uint64_t file_size(const std::string& p) {
  struct stat st;
  return p != "-" && ::stat(p.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

void verbose_detail(const Opts& o, const char* what, uint64_t bytes, double secs) {
  if (!o.verbose || o.quiet) return;
  std::fprintf(stderr, "  %s: %u thread(s), %.3f s, %s/s\n", what, o.threads ? o.threads : cores(), secs,
               human(secs > 0 ? double(bytes) / secs : 0).c_str());
}

// Runs one input's work; an error is reported and turned into an exit status.
template <class Fn>
int guarded(Fn&& fn) {
  try {
    fn();
    return 0;
  } catch (const Usage& u) {
    error_line(u.msg);
    return 2;
  } catch (const Failure& f) {
    error_line(f.msg);
    return 1;
  } catch (const wc::Error& e) {
    error_line(e.describe());
    return e.code() == wc::Errc::usage ? 2 : 1;
  } catch (const std::bad_alloc&) {
    error_line("out of memory");
    return 1;
  } catch (const std::exception& e) {
    error_line(e.what());
    return 1;
  }
}

// Runs `op` with a progress display that is finished on success and cleared
// on failure.
template <class Op>
auto with_progress(Progress& bar, Op&& op) {
  try {
    return op();
  } catch (...) {
    bar.clear();
    throw;
  }
}

// The name a model read from standard input is stored under: --name; else
// the output's name without ".wcz" (so `pack - -o m.safetensors.wcz` stores
// m.safetensors, as `pack m.safetensors` does); else "model.safetensors".
std::string stream_name(const Opts& o, const std::string& out) {
  if (!o.name.empty()) return o.name;
  const std::string ext = wc::kContainerExt;
  const std::string b = wc::path_basename(out);
  if (out != "-" && !wc::names_folder(out) && b.size() > ext.size() && wc::path_ends_with(b, ext)) return b.substr(0, b.size() - ext.size());
  return "model.safetensors";
}

// --rm after a pack (the library verifies, then removes exactly the inputs).
void remove_packed_inputs(const Opts& o, const std::string& in, const std::string& out) {
  Progress bar("verify", o.progress(""));
  const auto t0 = Clock::now();
  auto r = with_progress(bar, [&] { return wc::remove_packed_inputs(in, out, o.threads, bar.fn()); });
  bar.finish();
  verbose_detail(o, "verified against the input", r.verified.bytes, seconds_since(t0));
  if (o.verbose && !o.quiet) std::fprintf(stderr, "  removed %zu input file(s)\n", r.files);
}

void pack_one(const Opts& o, const std::string& in) {
  std::string out = o.out, name;
  if (in == "-") {
    if (out.empty()) throw Usage{"packing standard input needs -o FILE or -c"};
    name = stream_name(o, out);
    if (wc::names_folder(out)) out = wc::path_join(out, name + wc::kContainerExt);
  } else {
    if (out.empty()) out = wc::default_pack_output(in);
    else if (wc::names_folder(out)) out = wc::path_join(out, wc::path_basename(wc::default_pack_output(in)));
  }
  wc::PackOptions po;
  po.threads = o.threads;
  po.force = o.force;
  po.codec = o.codec;
  po.level = o.level;
  po.parallel = o.parallel;
  po.inline_small = o.inline_small;
  po.pool = o.pool;
  po.chunk_size = o.chunk;
  po.bits = o.bits;
  po.keep = o.keep;
  po.scheme = o.scheme;
  po.sensitivity = o.sensitivity;
  po.calib = o.calib;
  po.act_order = !o.no_act_order;
  po.min_elements = o.min_elements;
  po.exact = o.exact;
  po.refine = o.refine;
  po.block = o.block;
  po.block_rank = o.block_rank;
  po.refine_factor = o.refine_factor;
  Progress bar("pack", o.progress(out));
  po.progress = bar.fn();
  const auto t0 = Clock::now();
  auto r = with_progress(bar, [&] { return in == "-" ? wc::pack_fd(0, name, out, po) : wc::pack(in, out, po); });
  bar.finish();
  if (o.summary(out))
    std::fprintf(stderr, "%s: %llu -> %llu bytes (%.2f%%, %.3f bits/weight)\n", shown_name(out),
                 (unsigned long long)r.input_bytes, (unsigned long long)r.output_bytes,
                 r.input_bytes ? 100.0 * double(r.output_bytes) / double(r.input_bytes) : 0.0,
                 r.weights ? 8.0 * double(r.output_bytes) / double(r.weights) : 0.0);
  if (o.summary(out) && r.lossy_tensors)
    std::fprintf(stderr, "%s: %llu tensor(s) lossy (%llu weights) at %.4f bits/weight, every byte counted\n",
                 shown_name(out), (unsigned long long)r.lossy_tensors, (unsigned long long)r.lossy_weights,
                 r.lossy_bits_per_weight);
  verbose_detail(o, (in == "-" ? std::string("<stdin>") : in).c_str(), r.input_bytes, seconds_since(t0));
  if (o.rm) {
    if (in == "-") o.note("--rm ignored: the input is standard input");
    else if (out == "-") o.note("--rm ignored: the container went to standard output and cannot be verified");
    else remove_packed_inputs(o, in, out);
  }
}

wc::UnpackOptions unpack_options(const Opts& o, const Progress& bar) {
  wc::UnpackOptions uo;
  uo.threads = o.threads;
  uo.force = o.force;
  uo.progress = bar.fn();
  uo.level = o.decode_level;
  uo.partial = o.partial;
  return uo;
}

// --budget as bytes for container `in` (bits per weight need its weights).
void apply_budget(const Opts& o, const std::string& in, wc::UnpackOptions& uo) {
  if (o.budget.empty()) return;
  if (in == "-") throw Usage{"--budget needs a container file (a stream's levels are known only at its end): use --level"};
  uo.level = wc::budget_level(in, o.budget);  // also for --file and --tensor
}

void unpack_part(const Opts& o, const std::string& in) {
  const std::string& out = o.out;
  Progress bar("unpack", o.progress(out));
  wc::UnpackOptions uo = unpack_options(o, bar);
  apply_budget(o, in, uo);
  const auto t0 = Clock::now();
  if (!o.tensor.empty()) {
    auto r = with_progress(bar, [&] { return wc::unpack_tensor_npy(in, o.file, o.tensor, out, uo); });
    bar.finish();
    if (!r.note.empty()) o.note("%s", r.note.c_str());
    std::string shape;
    for (size_t i = 0; i < r.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(r.shape[i]);
    if (o.summary(out))
      std::fprintf(stderr, "%s: tensor '%s' as .npy ('%s', shape (%s%s)), %llu bytes\n", shown_name(r.path), o.tensor.c_str(),
                   r.descr.c_str(), shape.c_str(), r.shape.size() == 1 ? "," : "", (unsigned long long)r.bytes);
    verbose_detail(o, in.c_str(), r.bytes, seconds_since(t0));
    return;
  }
  const std::string path = with_progress(bar, [&] { return wc::unpack_file(in, o.file, out, uo); });
  bar.finish();
  if (o.summary(out))
    std::fprintf(stderr, "%s: %llu bytes (file '%s'), its checksum matches\n", shown_name(path),
                 (unsigned long long)bar.total(), o.file.c_str());
  verbose_detail(o, in.c_str(), bar.total(), seconds_since(t0));
}

void unpack_one(const Opts& o, const std::string& in) {
  if (!o.file.empty() || !o.tensor.empty()) return unpack_part(o, in);
  std::string out = o.out;
  if (in == "-") {
    if (out.empty()) throw Usage{"unpack from standard input needs -o FILE (or -c)"};
  } else if (out.empty()) {
    if (!wc::path_ends_with(wc::path_basename(in), wc::kContainerExt) || wc::path_basename(in) == wc::kContainerExt)
      throw Failure{in + ": unknown suffix -- ignored (name the output with -o)"};
  }
  Progress bar("unpack", o.progress(out));
  wc::UnpackOptions uo = unpack_options(o, bar);
  apply_budget(o, in, uo);
  const auto t0 = Clock::now();
  unsigned level = 255;
  uo.decoded_level = &level;
  out = with_progress(bar, [&] { return wc::unpack(in, out, uo); });  // the path written
  bar.finish();
  if (o.summary(out)) {
    // a container of levels (pack --exact) says which one was written
    const std::string at = level == 255 ? "" : " (level " + std::to_string(level) + ")";
    if (in == "-")
      std::fprintf(stderr, "%s: %llu bytes restored from <stdin>%s, every checksum matches\n", shown_name(out),
                   (unsigned long long)bar.total(), at.c_str());
    else
      std::fprintf(stderr, "%s: %llu -> %llu bytes%s, every checksum matches\n", shown_name(out),
                   (unsigned long long)file_size(in), (unsigned long long)bar.total(), at.c_str());
  }
  verbose_detail(o, (in == "-" ? std::string("<stdin>") : in).c_str(), bar.total(), seconds_since(t0));
  if (o.rm) {
    if (in == "-") o.note("--rm ignored: the input is standard input");
    else if (out == "-") o.note("--rm ignored: the output is standard output");
    else if (::unlink(in.c_str()) != 0)
      throw wc::Error(wc::Errc::io, "--rm: cannot remove " + in + ": " + std::strerror(errno));
  }
}

void verify_one(const Opts& o, const std::string& in) {
  Progress bar("verify", o.progress(""));
  const auto t0 = Clock::now();
  auto r = with_progress(bar, [&] { return wc::verify(in, o.against, o.threads, bar.fn()); });
  bar.finish();
  if (!o.quiet)
    std::printf("%s: OK: %llu chunk(s), %llu file(s), %llu bytes decoded, every checksum matches%s\n", in.c_str(),
                (unsigned long long)r.chunks, (unsigned long long)r.files, (unsigned long long)r.bytes,
                r.compared ? ", identical to the original" : "");
  std::fflush(stdout);
  verbose_detail(o, in.c_str(), r.bytes, seconds_since(t0));
}

void add_common(CLI::App* c, Opts& o, bool output) {
  c->add_option("-T,--threads", o.threads, "Threads (default 0: all cores; at most 4 per core, 256 in all)");
  c->add_flag("-q,--quiet", o.quiet, "No summary, no progress, no notes (errors only)");
  c->add_flag("-v,--verbose", o.verbose, "More detail: threads and time per input");
  if (!output) return;
  c->add_option("-o,--output", o.out, "Output path ('-': standard output; an existing folder or a path ending in '/': into it)");
  c->add_flag("-c,--stdout", o.to_stdout, "Write to standard output (the same as -o -)");
  c->add_flag("-f,--force", o.force, "Overwrite existing outputs (never an input of the same command)");
  c->add_flag("--rm", o.rm, "Remove the input after success (pack: once the container is committed and verified against it)");
}

// Checks across options and inputs; throws Usage.
void check_usage(Opts& o, bool output_cmd) {
  if (o.quiet && o.verbose) throw Usage{"-q and -v contradict each other"};
  if (o.to_stdout) {
    if (!o.out.empty() && o.out != "-") throw Usage{"-c and -o name two outputs; give one"};
    o.out = "-";
  }
  if (!output_cmd) return;
  if (o.inputs.size() > 1) {
    if (!o.out.empty()) throw Usage{"-o and -c take one input; with several, each goes to its default name"};
    if (std::count(o.inputs.begin(), o.inputs.end(), "-"))
      throw Usage{"standard input cannot be one of several inputs (it needs -o or -c)"};
    if (!o.file.empty() || !o.tensor.empty()) throw Usage{"--file and --tensor take one container"};
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_fatal_signal);
  std::signal(SIGTERM, on_fatal_signal);
  std::signal(SIGHUP, on_fatal_signal);
  // A file-size limit must fail the write (EFBIG), not kill us before cleanup.
  std::signal(SIGXFSZ, SIG_IGN);
#if defined(__GLIBC__)
  // Chunk buffers (hundreds of KB, made and freed per chunk) stay in the heap
  // rather than going back to the kernel and being faulted in afresh: 8% of
  // pack's CPU time on Whisper tiny.en (F16, one thread). Buffers of 64 MiB
  // or more are still mapped apart; at most 256 MiB of free heap is kept.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif

  CLI::App app{"wcodec: compact, bit-exact storage for LLM weights"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and exit");
  Opts o;

  auto* pk = app.add_subcommand("pack", "Pack safetensors models (a file, an index.json, a folder, or '-') into containers");
  pk->add_option("input", o.inputs, "model.safetensors, *.safetensors.index.json, a model folder, or '-' (standard input)")
      ->required();
  add_common(pk, o, true);
  pk->add_option("--codec", o.codec, "auto|raw|zstd|float-ans|float-ans-trim|float-ans-mixed|float-ans-patch|float-ans-groups|float-ans-pairs")
      ->check(CLI::IsMember({"auto", "raw", "zstd", "float-ans", "float-ans-trim", "float-ans-mixed", "float-ans-patch",
                                    "float-ans-groups", "float-ans-pairs"}));
  pk->add_option("--level", o.level, "zstd level for the zstd codec")->check(CLI::Range(-7, 22));
  pk->add_option("--chunk-size", o.chunk, "Raw bytes per chunk (multiple of 64)");
  pk->add_option("--parallel", o.parallel,
                 "Decoder to lay float-ans out for: cpu (default) or gpu (8x the independent sub-streams, "
                 "about 0.4% larger)")
      ->check(CLI::IsMember({"cpu", "gpu"}));
  pk->add_option("--inline", o.inline_small,
                 "Small tensors (one chunk, at most 16 KiB) stored in the manifest instead of chunks, about 64 bytes "
                 "saved each (container 1.4/2.5): auto (default: where that saves at least 1/256 of the tensors' "
                 "bytes), always, never (a file older readers read)")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  pk->add_option("--pool", o.pool,
                 "Inline tensors of one dtype coded together as one chunk, sharing one table (container 1.8/2.13, "
                 "with --codec auto): auto (default: where that is at least 1% smaller), never (a file older "
                 "readers read)")
      ->check(CLI::IsMember({"auto", "never"}));
  pk->add_option("--bits", o.bits,
                 "Lossy: mean bits per weight over the lossy tensors, every byte they take counted (0.5 to 12); "
                 "spent where the model's error drops most");
  pk->add_option("--keep", o.keep, "Lossy: tensors whose name matches this regex stay exact");
  pk->add_option("--scheme", o.scheme,
                 "Lossy representation: auto (default: per tensor, whichever gives the least model error), quant "
                 "(qrow: per-row step, entropy-coded codes), outliers (quant plus sparse exact outliers), codebook "
                 "(vector codebooks, 2 bits and below)");
  pk->add_option("--sensitivity", o.sensitivity,
                 "Lossy: safetensors file of F32 scalars per tensor name (measured sensitivities)");
  pk->add_option("--calib", o.calib,
                 "Lossy: calibration file (spec/CALIB.md; tools/calibrate.py makes one) or llama.cpp imatrix .dat: "
                 "GPTQ error feedback from "
                 "each layer's input covariance, importance-weighted rounding, measured sensitivities");
  pk->add_flag("--no-act-order", o.no_act_order,
               "Lossy, with --calib: quantize columns in their order, not by descending input energy");
  pk->add_option("--min-elements", o.min_elements, "Lossy: smaller tensors stay exact (default 1024)");
  pk->add_flag("--exact", o.exact,
               "Lossy: add a top level that restores the original bits (spec/EXACT_TOP.md): the file unpacks to the "
               "original model, and its first part (level 0) is the model of --bits bits per weight");
  pk->add_option("--refine", o.refine,
                 "Lossy: add R refinement levels above the --bits model (spec/REFINE.md), each a step 2 to 6 times "
                 "finer per tensor (--refine-factor typically), ordered model-wide by error removed per byte: one "
                 "file, a model at each step's prefix (0 to 6)");
  pk->add_option("--refine-factor", o.refine_factor,
                 "Lossy, with --refine: each level's step this many times finer (2 to 6; default 3), so a level adds "
                 "about log2 of it in bits per weight: 2 gives levels of about 1 bit, twice as many budgets between "
                 "the same two sizes")
      ->check(CLI::Range(2, 6));
  pk->add_option("--block", o.block,
                 "Lossy, with --refine: the levels' kind: refine (finer steps, spec/REFINE.md; the default), bitstack "
                 "(BitStack's sign-magnitude blocks, spec/BITSTACK.md: a sign bit per weight and a rank-r magnitude) "
                 "or auto (per tensor and level, by rate and distortion)")
      ->check(CLI::IsMember({"refine", "bitstack", "auto"}));
  pk->add_option("--block-rank", o.block_rank, "Lossy, with --block bitstack or auto: the blocks' rank r (1 to 16; default 2)")
      ->check(CLI::Range(1, 16));
  pk->add_option("--name", o.name, "File name stored for a model read from standard input (default: the output's name "
                                   "without .wcz, else model.safetensors)");

  auto* up = app.add_subcommand("unpack", "Restore the original files from containers (default: the stored names, beside each)");
  up->add_option("input", o.inputs, "Containers (*.wcz), or '-' (standard input)")->required();
  add_common(up, o, true);
  up->add_option("--file", o.file, "Restore only this file (its stored name) of the container");
  auto* lv = up->add_option("--level", o.decode_level,
                             "Decode the model at this level (0: the --bits model of a file packed with --exact or "
                             "--refine; a --refine file's levels are steps, one tensor's level each: see inspect; "
                             "default: the top, the original bits where the file has them)")
                  ->check(CLI::Range(0, 255));
  up->add_option("--blocks", o.decode_level,
                 "The model of the first K blocks above level 0 (a step each in a --refine file): --level K")
      ->check(CLI::Range(0, 255))
      ->excludes(lv);
  up->add_flag("--partial", o.partial,
               "The input may be a prefix of a container (a partial download): decode the highest level it holds "
               "whole (a file packed with --exact holds its --bits model once level 0 is in)");
  up->add_option("--budget", o.budget,
                 "Decode the highest level whose part of the file fits: bytes (512MB, 2GiB) or bits per weight "
                 "(4.25bpw); see inspect's levels");
  up->add_option("--tensor", o.tensor, "Write only this tensor, as a NumPy .npy file (default TENSOR.npy)");

  auto* in_cmd = app.add_subcommand("inspect", "List the tensors, codecs and sizes in a container");
  std::string inspect_in;
  in_cmd->add_option("input", inspect_in, "Container")->required();
  in_cmd->add_flag("--json", o.json, "Machine-readable output");
  in_cmd->add_flag("--entropy", o.entropy, "Also decode float tensors and report their entropy bounds");
  in_cmd->add_flag("--steps", o.steps,
                   "List every level of a file of many steps (--refine); by default those at each quarter bit per "
                   "weight (--json lists every one)");

  auto* vf = app.add_subcommand("verify", "Decode every chunk and check every checksum");
  vf->add_option("input", o.inputs, "Containers")->required();
  vf->add_option("--against", o.against, "Original file (or folder) to compare with byte for byte");
  add_common(vf, o, false);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help: the help on stdout, status 0
    error_line(e.what());
    std::fprintf(stderr, "Run 'wcodec --help' or 'wcodec COMMAND --help' for usage.\n");
    return 2;
  }
  if (show_version) {
    std::printf("wcodec %s (container format %s)\n", wc::version_string(), wc::format_version_string().c_str());
    return 0;
  }
  if (!*pk && !*up && !*in_cmd && !*vf) {
    error_line("no command given");
    std::fputs(app.help().c_str(), stderr);
    return 2;
  }

  int status = guarded([&] {
    check_usage(o, *pk || *up);
    if (*pk && !o.name.empty() && (o.inputs.size() != 1 || o.inputs[0] != "-"))
      throw Usage{"--name is for a model read from standard input ('-')"};
    if (*up && o.rm && (!o.file.empty() || !o.tensor.empty()))
      throw Usage{"--rm removes a container only after unpacking all of it, not with --file or --tensor"};
    if (*vf && !o.against.empty() && o.inputs.size() > 1) throw Usage{"--against takes one container"};
    if (*pk && pk->count("--bits") && o.bits == 0)
      throw Usage{"--bits 0: give 0.5 to 12 bits per weight, or leave --bits out for a lossless container"};
    if (*pk && o.rm && o.bits > 0 && !o.exact)
      throw Usage{"--rm with --bits: a lossy container does not hold the original, which would be lost (--exact keeps it)"};
    const unsigned cap = std::min(256u, 4 * cores());
    if (o.threads > cap) {
      o.note("-T %u is more than 4 threads per core (%u cores); using %u", o.threads, cores(), cap);
      o.threads = cap;
    }
  });
  if (status) return status;

  if (*in_cmd)
    return guarded([&] {
      auto w = o.json ? wc::inspect_json_writer(stdout) : wc::inspect_text_writer(stdout, o.entropy, o.steps);
      wc::inspect(inspect_in, o.entropy, *w);
    });
  // Every input is tried; the exit status is the worst.
  for (const auto& in : o.inputs) {
    const int s = guarded([&] {
      if (*pk) pack_one(o, in);
      else if (*up) unpack_one(o, in);
      else verify_one(o, in);
    });
    status = std::max(status, s);
  }
  return status;
}
