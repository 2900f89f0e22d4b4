# Runs at ctest time (see HoneCatch.cmake): lists a Catch2 binary's test cases per label and
# writes add_test/set_tests_properties lines to CTEST_FILE.
set(labels cpu emu gpu mpi slow)
cmake_policy(VERSION 3.25)
execute_process(COMMAND "${TEST_EXECUTABLE}" --list-test-names-only
                OUTPUT_VARIABLE all_out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 AND rc LESS 0)
  message(FATAL_ERROR "cannot list tests of ${TEST_EXECUTABLE}: ${rc}")
endif()
string(REPLACE ";" "\\;" all_out "${all_out}")
string(REPLACE "\n" ";" names "${all_out}")
foreach(label ${labels})
  execute_process(COMMAND "${TEST_EXECUTABLE}" "[${label}]" --list-test-names-only
                  OUTPUT_VARIABLE out)
  string(REPLACE ";" "\\;" out "${out}")
  string(REPLACE "\n" ";" out "${out}")
  set(names_${label} "${out}")
endforeach()

set(script "")
foreach(name ${names})
  string(STRIP "${name}" name)
  if(name STREQUAL "")
    continue()
  endif()
  set(case_labels "")
  foreach(label ${labels})
    list(FIND names_${label} "${name}" idx)
    if(NOT idx EQUAL -1)
      list(APPEND case_labels ${label})
    endif()
  endforeach()
  if(case_labels STREQUAL "")
    set(case_labels unlabelled)
  endif()
  # Catch2 test-spec escaping: commas, brackets and backslashes are special in names.
  string(REGEX REPLACE "([],[\\\\])" "\\\\\\1" spec "${name}")
  string(REPLACE "\\" "\\\\" quoted_spec "${spec}")  # CMake's own escaping of those backslashes
  string(REPLACE "\"" "\\\"" quoted_spec "${quoted_spec}")
  string(REPLACE "\"" "\\\"" quoted_name "${TEST_TARGET}: ${name}")
  string(APPEND script
    "add_test(\"${quoted_name}\" \"${TEST_EXECUTABLE}\" \"${quoted_spec}\")\n"
    "set_tests_properties(\"${quoted_name}\" PROPERTIES LABELS \"${case_labels}\" SKIP_RETURN_CODE ${SKIP_CODE} TIMEOUT 900 ENVIRONMENT OMP_WAIT_POLICY=passive)\n")
endforeach()
file(WRITE "${CTEST_FILE}" "${script}")
