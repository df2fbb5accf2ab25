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
# The longest suites start first: ctest -j runs tests in decreasing COST,
# and a fresh checkout (CI) has no timing history, so without this the
# longest suite could start last and run alone at the end. Costs are rough
# seconds under ASan+UBSan (lossy 195, vq 67, huge 46, limits 42, ...).
foreach(pair lossy:200 vq:70 huge:45 limits:45 vectors:35 refine:25 float_ans:22 outliers:13 gpu_emulation:12 gptq:10)
  string(REPLACE ":" ";" kv ${pair})
  list(GET kv 0 t)
  list(GET kv 1 c)
  if(TEST ${t})
    set_tests_properties(${t} PROPERTIES COST ${c})
  endif()
endforeach()
