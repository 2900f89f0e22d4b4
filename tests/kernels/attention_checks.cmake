# Checks of the attention kernels' compiled code, label "cpu" (nvcc only, no GPU). Included from
# tests/kernels/CMakeLists.txt it registers one test per architecture (sm_80, sm_90a) and mode;
# run as a script (cmake -P) it performs one check:
#   MODE=resources: ptxas's resource report (-Xptxas -v) of every source in kernels/attention
#                   lists the forward, dK/dV, dQ, D and decode kernels of both head-dim buckets
#                   with no spill stores, spill loads or stack frame (a spilling accumulator would
#                   cost far more than any tile choice gains).
#   MODE=ptx:       the PTX holds the instructions the design relies on: mma.sync m16n8k16 bf16,
#                   ldmatrix x4 with and without .trans, and 16-byte cp.async.
# cmake -DNVCC=<nvcc> -DSOURCE_DIR=<repo root> -DARCH=80|90a -DMODE=resources|ptx
#       -DWORK_DIR=<scratch> -P attention_checks.cmake
if(NOT CMAKE_SCRIPT_MODE_FILE)
  if(NOT CMAKE_CUDA_COMPILER)
    return()
  endif()
  foreach(arch 80 90a)
    foreach(mode resources ptx)
      set(name kernels.attention_${mode}_sm${arch})
      add_test(NAME ${name}
               COMMAND ${CMAKE_COMMAND} -DNVCC=${CMAKE_CUDA_COMPILER} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                       -DARCH=${arch} -DMODE=${mode}
                       -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/attention_checks
                       -P ${CMAKE_CURRENT_LIST_DIR}/attention_checks.cmake)
      set_tests_properties(${name} PROPERTIES LABELS "cpu;attention" TIMEOUT 900)
    endforeach()
  endforeach()
  return()
endif()

foreach(var NVCC SOURCE_DIR ARCH MODE WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "attention_checks.cmake: -D${var}=... is required")
  endif()
endforeach()
file(MAKE_DIRECTORY ${WORK_DIR})
set(flags -std=c++17 -O3 -DNDEBUG --expt-relaxed-constexpr -I${SOURCE_DIR} -I${SOURCE_DIR}/include
          ${EXTRA_FLAGS})
set(sources attention_fwd attention_bwd attention_decode)

if(MODE STREQUAL "ptx")
  set(ptx "")
  foreach(src ${sources})
    execute_process(COMMAND ${NVCC} ${flags} -ptx -arch=compute_${ARCH}
                            ${SOURCE_DIR}/kernels/attention/${src}.cu -o ${WORK_DIR}/${src}_sm${ARCH}.ptx
                    RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "nvcc -ptx ${src}.cu failed (${rc}):\n${err}")
    endif()
    file(READ ${WORK_DIR}/${src}_sm${ARCH}.ptx text)
    string(APPEND ptx "${text}")
  endforeach()
  foreach(instr "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"
                "ldmatrix.sync.aligned.m8n8.x4.shared.b16"
                "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"
                "cp.async.cg.shared.global")
    string(FIND "${ptx}" "${instr}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "the attention PTX for compute_${ARCH} lacks ${instr}")
    endif()
    message(STATUS "found ${instr}")
  endforeach()
  return()
endif()

if(NOT MODE STREQUAL "resources")
  message(FATAL_ERROR "MODE must be resources or ptx (got '${MODE}')")
endif()
set(report "")
foreach(src ${sources})
  execute_process(COMMAND ${NVCC} ${flags} -cubin -arch=sm_${ARCH} -Xptxas -v
                          ${SOURCE_DIR}/kernels/attention/${src}.cu -o ${WORK_DIR}/${src}_sm${ARCH}.cubin
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nvcc -cubin ${src}.cu failed (${rc}):\n${err}")
  endif()
  string(APPEND report "${out}${err}")
endforeach()
file(WRITE ${WORK_DIR}/attention_sm${ARCH}_ptxas.txt "${report}")

# ptxas prints, per function: "Function properties for NAME", then "N bytes stack frame,
# S bytes spill stores, L bytes spill loads", then "Used R registers".
string(REPLACE "\n" ";" lines "${report}")
set(function "")
set(kernels 0)
set(bad "")
foreach(line IN LISTS lines)
  if(line MATCHES "Function properties for ([^ ]+)")
    set(function ${CMAKE_MATCH_1})
  elseif(line MATCHES "([0-9]+) bytes stack frame, ([0-9]+) bytes spill stores, ([0-9]+) bytes spill loads")
    set(used "${CMAKE_MATCH_1}${CMAKE_MATCH_2}${CMAKE_MATCH_3}")  # "000" when all are zero
    if(function MATCHES "attention_[a-z_]*kernel")
      math(EXPR kernels "${kernels} + 1")
      if(NOT used STREQUAL "000")
        string(APPEND bad "\n  ${function}: ${line}")
      endif()
    endif()
  elseif(line MATCHES "Used ([0-9]+) registers")
    set(registers ${CMAKE_MATCH_1})
    if(function MATCHES "attention_[a-z_]*kernel")
      message(STATUS "sm_${ARCH}: ${registers} registers in ${function}")
    endif()
  endif()
endforeach()
# fwd ×2, dkdv ×2, dq ×2, dot, decode ×2, combine ×2.
if(NOT kernels EQUAL 11)
  message(FATAL_ERROR "expected 11 attention kernels in the ptxas report for sm_${ARCH}, found "
                      "${kernels}:\n${report}")
endif()
if(bad)
  message(FATAL_ERROR "attention kernels spill or use a stack frame on sm_${ARCH}:${bad}")
endif()
message(STATUS "sm_${ARCH}: ${kernels} attention kernels, no spills")
