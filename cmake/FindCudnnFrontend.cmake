# Finds the header-only cuDNN frontend (cudnn_frontend.h and the cudnn_frontend/ folder), which
# PyPI's nvidia-cudnn-frontend wheel carries in its top-level include/ folder.
#
#   HONE_CUDNN_FRONTEND_INCLUDE   cache PATH: the folder holding cudnn_frontend.h. When empty, the
#                                 include/ folder beside a pip-installed `cudnn` package of the
#                                 python3 on the PATH (site-packages/include) is tried.
# Sets CudnnFrontend_FOUND, CudnnFrontend_VERSION and the imported target CudnnFrontend::headers
# (include folder, C++17, and CUDNN_FRONTEND_SKIP_JSON_LIB: the frontend's JSON serialisation is
# not needed and is the slowest part of it to compile). Not finding it is never an error: callers
# build without what needs it.
include(FindPackageHandleStandardArgs)

set(_cudnn_fe_hints)
if(NOT HONE_CUDNN_FRONTEND_INCLUDE)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND)
    # find_spec locates the package without importing it (importing loads libcudnn).
    execute_process(
      COMMAND ${Python3_EXECUTABLE} -c
              "import importlib.util, os; s = importlib.util.find_spec('cudnn'); print(os.path.join(os.path.dirname(os.path.dirname(s.origin)), 'include') if s and s.origin else '')"
      OUTPUT_VARIABLE _cudnn_fe_python_include OUTPUT_STRIP_TRAILING_WHITESPACE
      ERROR_QUIET TIMEOUT 30)
    if(_cudnn_fe_python_include)
      list(APPEND _cudnn_fe_hints "${_cudnn_fe_python_include}")
    endif()
  endif()
endif()

# find_path keeps a value given on the command line and searches only when it is empty.
find_path(HONE_CUDNN_FRONTEND_INCLUDE cudnn_frontend.h HINTS ${_cudnn_fe_hints} NO_DEFAULT_PATH
          DOC "Folder with the cuDNN frontend headers (cudnn_frontend.h), e.g. from the nvidia-cudnn-frontend wheel")

set(CudnnFrontend_VERSION "")
set(_cudnn_fe_version_h "${HONE_CUDNN_FRONTEND_INCLUDE}/cudnn_frontend_version.h")
if(HONE_CUDNN_FRONTEND_INCLUDE AND EXISTS "${_cudnn_fe_version_h}")
  file(STRINGS "${_cudnn_fe_version_h}" _cudnn_fe_lines
       REGEX "#define CUDNN_FRONTEND_(MAJOR|MINOR|PATCH)_VERSION ")
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX MATCH "CUDNN_FRONTEND_${_part}_VERSION +([0-9]+)" _m "${_cudnn_fe_lines}")
    set(_cudnn_fe_${_part} "${CMAKE_MATCH_1}")
  endforeach()
  set(CudnnFrontend_VERSION "${_cudnn_fe_MAJOR}.${_cudnn_fe_MINOR}.${_cudnn_fe_PATCH}")
endif()

find_package_handle_standard_args(CudnnFrontend REQUIRED_VARS HONE_CUDNN_FRONTEND_INCLUDE CudnnFrontend_VERSION
                                  VERSION_VAR CudnnFrontend_VERSION)
if(CudnnFrontend_FOUND AND NOT TARGET CudnnFrontend::headers)
  add_library(CudnnFrontend::headers INTERFACE IMPORTED)
  # SYSTEM: the frontend's own warnings are not ours to fix.
  set_target_properties(CudnnFrontend::headers PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${HONE_CUDNN_FRONTEND_INCLUDE}"
    INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${HONE_CUDNN_FRONTEND_INCLUDE}"
    INTERFACE_COMPILE_DEFINITIONS CUDNN_FRONTEND_SKIP_JSON_LIB
    INTERFACE_COMPILE_FEATURES cxx_std_17)
endif()
