// wcodec command-line tool. Uses only the library's API (lib/api.h).
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <unistd.h>

#include "lib/api.h"

namespace {

// A one-line progress bar on stderr, only when stderr is a terminal.
wc::ProgressFn make_progress(const char* what) {
  if (!::isatty(2)) return {};
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  return [what, last](uint64_t done, uint64_t total) {
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - *last < std::chrono::milliseconds(100)) return;
    *last = now;
    int pct = total ? int(100.0 * double(done) / double(total)) : 100;
    int bar = pct / 4;
    std::fprintf(stderr, "\r%s [%-25.*s] %3d%% %8.1f MiB", what, bar, "=========================", pct, done / 1048576.0);
    if (done >= total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

// On SIGINT/SIGTERM: remove temporary outputs, then die of the same signal.
extern "C" void on_fatal_signal(int sig) {
  wc::remove_temporaries_on_signal();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

int report(const wc::Error& e) {
  std::fprintf(stderr, "wcodec: error: %s\n", e.describe().c_str());
  return e.code() == wc::Errc::usage ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_fatal_signal);
  std::signal(SIGTERM, on_fatal_signal);
  std::signal(SIGHUP, on_fatal_signal);
  // A file-size limit must fail the write (EFBIG), not kill us before cleanup.
  std::signal(SIGXFSZ, SIG_IGN);

  CLI::App app{"wcodec: compact, bit-exact storage for LLM weights"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and exit");

  std::string in, out;
  unsigned threads = 0;
  bool force = false;

  auto* pk = app.add_subcommand("pack", "Pack a safetensors model (file, index.json or directory) into a container");
  std::string codec = "auto";
  int level = 3;
  uint32_t chunk = wc::kDefaultChunkSize;
  pk->add_option("input", in, "model.safetensors, model.safetensors.index.json, or a directory")->required();
  pk->add_option("-o,--output", out, "Output container (default: INPUT.wcz; '-' for standard output)");
  pk->add_option("-T,--threads", threads, "Threads (default: all cores)");
  pk->add_flag("-f,--force", force, "Overwrite an existing output");
  pk->add_option("--codec", codec, "auto|raw|zstd|float-ans")->check(CLI::IsMember({"auto", "raw", "zstd", "float-ans"}));
  pk->add_option("--level", level, "zstd level for the zstd codec")->check(CLI::Range(-7, 22));
  pk->add_option("--chunk-size", chunk, "Raw bytes per chunk (multiple of 64)");

  auto* up = app.add_subcommand("unpack", "Restore the original files from a container");
  up->add_option("input", in, "Container, or '-' for standard input")->required();
  up->add_option("-o,--output", out, "Output file ('-' for standard output) or directory (sharded models)");
  up->add_option("-T,--threads", threads, "Threads (default: all cores)");
  up->add_flag("-f,--force", force, "Overwrite existing outputs");

  auto* in_cmd = app.add_subcommand("inspect", "List the tensors, codecs and sizes in a container");
  bool json = false, entropy = false;
  in_cmd->add_option("input", in, "Container")->required();
  in_cmd->add_flag("--json", json, "Machine-readable output");
  in_cmd->add_flag("--entropy", entropy, "Also decode float tensors and report their entropy bounds");

  auto* vf = app.add_subcommand("verify", "Decode every chunk and check every checksum");
  std::string against;
  vf->add_option("input", in, "Container")->required();
  vf->add_option("--against", against, "Original file (or directory) to compare with byte for byte");
  vf->add_option("-T,--threads", threads, "Threads (default: all cores)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (show_version) {
    std::printf("wcodec %s (container format %s)\n", wc::version_string(), wc::format_version_string().c_str());
    return 0;
  }
  try {
    if (*pk) {
      wc::PackOptions o;
      o.threads = threads;
      o.force = force;
      o.codec = codec;
      o.level = level;
      o.chunk_size = chunk;
      o.progress = make_progress("pack");
      if (out.empty()) out = wc::default_pack_output(in);
      auto r = wc::pack(in, out, o);
      std::fprintf(stderr, "%s: %llu -> %llu bytes (%.2f%%, %.3f bits/weight)\n", out == "-" ? "<stdout>" : out.c_str(),
                   (unsigned long long)r.input_bytes, (unsigned long long)r.output_bytes,
                   r.input_bytes ? 100.0 * double(r.output_bytes) / double(r.input_bytes) : 0.0,
                   r.weights ? 8.0 * double(r.output_bytes) / double(r.weights) : 0.0);
    } else if (*up) {
      wc::UnpackOptions o;
      o.threads = threads;
      o.force = force;
      o.progress = out == "-" ? wc::ProgressFn{} : make_progress("unpack");
      if (out.empty()) {
        if (in == "-") throw wc::Error(wc::Errc::usage, "unpack from standard input needs -o");
        out = wc::default_unpack_output(in);
      }
      wc::unpack(in, out, o);
    } else if (*in_cmd) {
      auto w = json ? wc::inspect_json_writer(stdout) : wc::inspect_text_writer(stdout, entropy);
      wc::inspect(in, entropy, *w);
    } else if (*vf) {
      auto r = wc::verify(in, against, threads, make_progress("verify"));
      std::printf("%s: OK: %llu chunk(s), %llu file(s), %llu bytes decoded, every checksum matches%s\n", in.c_str(),
                  (unsigned long long)r.chunks, (unsigned long long)r.files, (unsigned long long)r.bytes,
                  r.compared ? ", identical to the original" : "");
    } else {
      std::fputs(app.help().c_str(), stderr);
      return 2;
    }
  } catch (const wc::Error& e) {
    return report(e);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "wcodec: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wcodec: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
