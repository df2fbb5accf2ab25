# Each test file declares TEST_SUITE("name"); register one ctest per suite.
foreach(src ${WC_TEST_SRC})
  file(STRINGS ${src} suites REGEX "TEST_SUITE\\(\"[a-z0-9_]+\"")
  foreach(line ${suites})
    string(REGEX MATCH "\"([a-z0-9_]+)\"" _ ${line})
    set(suite ${CMAKE_MATCH_1})
    # A file may open one suite twice (TEST_SUITE blocks are reopenable).
    if(TEST ${suite})
      continue()
    endif()
    add_test(NAME ${suite} COMMAND wcodec_tests --test-suite=${suite} --no-intro=true)
    # A suite that matched no test case fails rather than passing empty.
    set_tests_properties(${suite} PROPERTIES SKIP_REGULAR_EXPRESSION "\\[SKIPPED\\]"
                         FAIL_REGULAR_EXPRESSION "test cases: +0 +[|]")
  endforeach()
endforeach()
# The CUDA kernels' CPU emulation (tests/test_gpu_emulation.cpp): `ctest -L gpu_emulation`.
if(TEST gpu_emulation)
  set_tests_properties(gpu_emulation PROPERTIES LABELS gpu_emulation)
endif()
