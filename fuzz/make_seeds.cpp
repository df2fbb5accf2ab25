// wcodec_fuzz_seeds OUTDIR [TARGET...]: writes the generated seed corpus of
// each target (all by default) to OUTDIR/TARGET/NAME, for libFuzzer runs.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "platform/error.h"
#include "fuzz/seeds.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUTDIR [TARGET...]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  std::vector<std::string> targets(argv + 2, argv + argc);
  if (targets.empty()) targets = wcfuzz::target_names();
  ::mkdir(dir.c_str(), 0755);
  try {
    for (const auto& t : targets) {
      std::string td = dir + "/" + t;
      ::mkdir(td.c_str(), 0755);
      auto seeds = wcfuzz::make_seeds(t);
      size_t bytes = 0;
      for (const auto& s : seeds) {
        std::ofstream f(td + "/" + s.name, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(s.bytes.data()), std::streamsize(s.bytes.size()));
        if (!f) {
          std::fprintf(stderr, "cannot write %s/%s\n", td.c_str(), s.name.c_str());
          return 1;
        }
        bytes += s.bytes.size();
      }
      std::printf("%-16s %3zu seeds, %7zu bytes\n", t.c_str(), seeds.size(), bytes);
    }
  } catch (const wc::Error& e) {
    std::fprintf(stderr, "seed generation failed: %s\n", e.describe().c_str());
    return 1;
  }
  return 0;
}
