# ctest driver: install the build tree into a fresh prefix, then configure, build and run the
# consumer project against it. Arguments: BUILD_DIR, SOURCE_DIR, WORK_DIR.
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build"
                        "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the consumer failed: ${rc}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
execute_process(COMMAND "${WORK_DIR}/build/consumer" RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "caught as expected: \\[tensor\\] view")
  message(FATAL_ERROR "consumer run failed (${rc})")
endif()

# The example: a tiny model made by the installed `hone init`, fine-tuned on a few lines.
execute_process(COMMAND "${WORK_DIR}/prefix/bin/hone" init --family llama --vocab 264 --hidden 32 --layers 1
                        --heads 2 --max-positions 64 --tokenizer byte-level --out "${WORK_DIR}/tiny"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "hone init failed (${rc})")
endif()
set(lines "")
foreach(word red green blue gold)
  string(APPEND lines "{\"prompt\": \"colour: \", \"completion\": \"${word}\"}\n")
endforeach()
file(WRITE "${WORK_DIR}/data.jsonl" "${lines}")
execute_process(COMMAND "${WORK_DIR}/build/finetune" "${WORK_DIR}/tiny" "${WORK_DIR}/data.jsonl"
                        "${WORK_DIR}/out" 20 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "fine-tuned .* loss [0-9.]+ -> [0-9.]+ in 20 steps"
   OR NOT EXISTS "${WORK_DIR}/out/model.safetensors")
  message(FATAL_ERROR "the fine-tuning example failed (${rc})")
endif()
