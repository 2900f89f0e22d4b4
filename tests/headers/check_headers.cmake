# ctest driver: every public header compiles on its own with a plain C++17 compiler and only
# include/ on the include path — no CUDA headers needed. Arguments: CXX, INCLUDE_DIR, WORK_DIR.
file(GLOB headers RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/hone/*.h")
file(MAKE_DIRECTORY "${WORK_DIR}")
foreach(h ${headers})
  string(MAKE_C_IDENTIFIER "${h}" id)
  set(src "${WORK_DIR}/${id}.cpp")
  file(WRITE "${src}" "#include \"${h}\"\nint main() { return 0; }\n")
  execute_process(COMMAND "${CXX}" -std=c++17 -fsyntax-only -Wall -Wextra -Werror
                          -I "${INCLUDE_DIR}" "${src}"
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "public header ${h} does not compile alone without CUDA:\n${err}")
  endif()
  file(READ "${INCLUDE_DIR}/${h}" text)
  if(text MATCHES "cuda_runtime|cudaStream_t|cublas|cudnn|nccl\\.h")
    message(FATAL_ERROR "public header ${h} mentions a CUDA type or header")
  endif()
  message(STATUS "ok: ${h}")
endforeach()
