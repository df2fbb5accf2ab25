// The reference `safetensors` Python package, a real client, loads what
// wcodec_gen_sample writes and what wcodec unpacks (installed in .venv by
// scripts/setup.sh; skipped with a reason when absent).
#include <doctest/doctest.h>

#include "test_util.h"

TEST_SUITE("python_client") {
  TEST_CASE("reference safetensors loads unpacked files with identical tensors") {
    std::string py = std::string(WCODEC_TEST_DIR) + "/../.venv/bin/python";
    if (tu::run("'" + py + "' -c 'import safetensors, numpy'").status != 0) {
      MESSAGE("[SKIPPED] no .venv with safetensors and numpy (run scripts/setup.sh)");
      return;
    }
#ifndef WCODEC_GEN_PATH
    MESSAGE("[SKIPPED] sample generator not built");
    return;
#else
    tu::TempDir t;
    for (std::string dt : {"bf16", "f16", "f32"}) {
      CAPTURE(dt);
      std::string in = t / ("m_" + dt + ".safetensors");
      REQUIRE(tu::run(std::string(WCODEC_GEN_PATH) + " '" + in + "' --dim 128 --layers 1 --vocab 256 --dtype " + dt).status == 0);
      REQUIRE(tu::run(tu::cli() + " pack '" + in + "' -o '" + in + ".wcz'").status == 0);
      REQUIRE(tu::run(tu::cli() + " unpack '" + in + ".wcz' -o '" + in + ".out'").status == 0);
      std::string script =
          "import sys\n"
          "from safetensors import deserialize\n"
          "load = lambda p: {n: (t['dtype'], t['shape'], bytes(t['data'])) for n, t in deserialize(open(p, 'rb').read())}\n"
          "a = load(sys.argv[1]); b = load(sys.argv[2])\n"
          "assert len(a) > 5 and a.keys() == b.keys(), 'tensor sets differ'\n"
          "for k in a:\n"
          "    assert a[k] == b[k], k\n"
          "print('ok', len(a))\n";
      tu::write_file(t / "check.py", std::vector<uint8_t>(script.begin(), script.end()));
      auto r = tu::run("'" + py + "' '" + t / "check.py" + "' '" + in + "' '" + in + ".out'");
      CHECK_MESSAGE(r.status == 0, r.out);
      CHECK(r.out.find("ok") != std::string::npos);
    }
#endif
  }
}
