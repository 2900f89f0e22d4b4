# Checks the GEMM's compiled code for one architecture (run by ctest; needs nvcc, not a GPU).
#   MODE=resources: ptxas's resource report (-Xptxas -v) lists every GEMM kernel (the 8 tile
#                   and layout instantiations) with no spill stores, spill loads or stack frame.
#   MODE=ptx:       the PTX holds the instructions the design relies on: mma.sync m16n8k16 bf16,
#                   ldmatrix x4 with and without .trans, and 16-byte cp.async.
# cmake -DNVCC=<nvcc> -DSOURCE_DIR=<repo root> -DARCH=80|90a -DMODE=resources|ptx
#       -DWORK_DIR=<scratch> -P gemm_resources.cmake
foreach(var NVCC SOURCE_DIR ARCH MODE WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "gemm_resources.cmake: -D${var}=... is required")
  endif()
endforeach()
file(MAKE_DIRECTORY ${WORK_DIR})
# The library's nvcc flags (Release); EXTRA_FLAGS (optional) e.g. -maxrregcount=64 shows a failure.
set(flags -std=c++17 -O3 -DNDEBUG --expt-relaxed-constexpr -I${SOURCE_DIR} -I${SOURCE_DIR}/include
          ${EXTRA_FLAGS})
set(source ${SOURCE_DIR}/kernels/gemm/gemm.cu)

if(MODE STREQUAL "ptx")
  execute_process(COMMAND ${NVCC} ${flags} -ptx -arch=compute_${ARCH} ${source}
                          -o ${WORK_DIR}/gemm_sm${ARCH}.ptx
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nvcc -ptx failed (${rc}):\n${err}")
  endif()
  file(READ ${WORK_DIR}/gemm_sm${ARCH}.ptx ptx)
  foreach(instr "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"
                "ldmatrix.sync.aligned.m8n8.x4.shared.b16"
                "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"
                "cp.async.cg.shared.global")
    string(FIND "${ptx}" "${instr}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "the GEMM's PTX for compute_${ARCH} lacks ${instr}")
    endif()
    message(STATUS "found ${instr}")
  endforeach()
  return()
endif()

if(NOT MODE STREQUAL "resources")
  message(FATAL_ERROR "MODE must be resources or ptx (got '${MODE}')")
endif()
execute_process(COMMAND ${NVCC} ${flags} -cubin -arch=sm_${ARCH} -Xptxas -v ${source}
                        -o ${WORK_DIR}/gemm_sm${ARCH}.cubin
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nvcc -cubin failed (${rc}):\n${err}")
endif()
set(report "${out}${err}")
file(WRITE ${WORK_DIR}/gemm_sm${ARCH}_ptxas.txt "${report}")

# ptxas prints, per function: "Function properties for NAME" then
# "N bytes stack frame, S bytes spill stores, L bytes spill loads", then "Used R registers".
string(REPLACE "\n" ";" lines "${report}")
set(function "")
set(kernels 0)
set(bad "")
foreach(line IN LISTS lines)
  if(line MATCHES "Function properties for ([^ ]+)")
    set(function ${CMAKE_MATCH_1})
  elseif(line MATCHES "([0-9]+) bytes stack frame, ([0-9]+) bytes spill stores, ([0-9]+) bytes spill loads")
    set(used "${CMAKE_MATCH_1}${CMAKE_MATCH_2}${CMAKE_MATCH_3}")  # "000" when all are zero
    if(function MATCHES "gemm_kernel|gemm_reduce_kernel")
      if(function MATCHES "gemm_kernel")
        math(EXPR kernels "${kernels} + 1")
      endif()
      if(NOT used STREQUAL "000")
        string(APPEND bad "\n  ${function}: ${line}")
      endif()
    endif()
  elseif(line MATCHES "Used ([0-9]+) registers")
    set(registers ${CMAKE_MATCH_1})
    if(function MATCHES "gemm_kernel")
      message(STATUS "sm_${ARCH}: ${registers} registers in ${function}")
    endif()
  endif()
endforeach()
if(NOT kernels EQUAL 8)
  message(FATAL_ERROR "expected 8 GEMM kernels in the ptxas report for sm_${ARCH}, found "
                      "${kernels}:\n${report}")
endif()
if(bad)
  message(FATAL_ERROR "GEMM kernels spill or use a stack frame on sm_${ARCH}:${bad}")
endif()
message(STATUS "sm_${ARCH}: ${kernels} GEMM kernels, no spills")
