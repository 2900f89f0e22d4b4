# Checks of the GEMM's compiled code, label "cpu" (nvcc only, no GPU): for sm_80 and sm_90a,
# ptxas's resource report shows no spills in any GEMM kernel, and the PTX contains mma.sync,
# ldmatrix and cp.async (gemm_resources.cmake).
if(NOT CMAKE_CUDA_COMPILER)
  return()
endif()
foreach(arch 80 90a)
  foreach(mode resources ptx)
    set(name kernels.gemm_${mode}_sm${arch})
    add_test(NAME ${name}
             COMMAND ${CMAKE_COMMAND} -DNVCC=${CMAKE_CUDA_COMPILER} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                     -DARCH=${arch} -DMODE=${mode} -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/gemm_checks
                     -P ${CMAKE_CURRENT_LIST_DIR}/gemm_resources.cmake)
    set_tests_properties(${name} PROPERTIES LABELS "cpu;gemm" TIMEOUT 900)
  endforeach()
endforeach()
