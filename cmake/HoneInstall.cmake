# Installs the library, public headers and a CMake package: find_package(hone CONFIG) then
# target_link_libraries(app hone::hone). The package carries the find modules for cuDNN and
# NCCL so a consumer resolves the same dependencies the library was built with.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(HONE_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/hone")

install(TARGETS hone EXPORT honeTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/hone" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT honeTargets NAMESPACE hone:: DESTINATION ${HONE_INSTALL_CMAKEDIR})

configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/honeConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/honeConfig.cmake" INSTALL_DESTINATION ${HONE_INSTALL_CMAKEDIR})
write_basic_package_version_file("${PROJECT_BINARY_DIR}/honeConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/honeConfig.cmake" "${PROJECT_BINARY_DIR}/honeConfigVersion.cmake"
              "${PROJECT_SOURCE_DIR}/cmake/FindCUDNN.cmake" "${PROJECT_SOURCE_DIR}/cmake/FindNCCL.cmake"
        DESTINATION ${HONE_INSTALL_CMAKEDIR})
