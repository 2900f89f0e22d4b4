# hone_discover_catch_tests(target): registers every Catch2 test case of `target` as a ctest
# test named "<target>: <test case>", labelled with the case's tags among cpu, emu, gpu, mpi and
# slow. The list is read from the binary when ctest runs (like Catch's own discovery), so
# adding a TEST_CASE needs no CMake change. Every test gets SKIP_RETURN_CODE 77: a binary that
# lacks what its tests need (a GPU) exits 77 and ctest reports the test as skipped.
set(HONE_TEST_SKIP_CODE 77)
set(_hone_catch_script "${CMAKE_CURRENT_LIST_DIR}/HoneCatchAddTests.cmake")

function(hone_discover_catch_tests target)
  set(ctest_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake")
  set(include_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake")
  file(WRITE "${include_file}"
    "if(EXISTS \"$<TARGET_FILE:${target}>\")\n"
    "  execute_process(COMMAND \"${CMAKE_COMMAND}\" -DTEST_TARGET=${target}\n"
    "    \"-DTEST_EXECUTABLE=$<TARGET_FILE:${target}>\" \"-DCTEST_FILE=${ctest_file}\"\n"
    "    -DSKIP_CODE=${HONE_TEST_SKIP_CODE} -P \"${_hone_catch_script}\"\n"
    "    RESULT_VARIABLE result)\n"
    "  if(result EQUAL 0)\n    include(\"${ctest_file}\")\n  endif()\n"
    "else()\n  add_test(${target}_NOT_BUILT ${target}_NOT_BUILT)\nendif()\n")
  file(GENERATE OUTPUT "${include_file}" INPUT "${include_file}")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${include_file}")
endfunction()
