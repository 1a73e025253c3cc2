# libtorch for the relocatable BrainSAM package (scripts/package installs this file next to
# BrainSAMConfig.cmake, which includes it). libtorch is not bundled; it is found the way
# the PyTorch ecosystem finds it, first hit wins:
#   1. a torch the consumer already found (find_package(Torch) before find_package(BrainSAM));
#   2. BRAINSAM_TORCH_DIR (CMake or environment variable): a torch package folder, an
#      unpacked libtorch, or their lib folder;
#   3. Torch_DIR, or TorchConfig.cmake on CMAKE_PREFIX_PATH
#      (-DCMAKE_PREFIX_PATH="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')");
#   4. the torch package of python3 (BRAINSAM_PYTHON names another interpreter).
# With BRAINSAM_FIND_TORCH_PACKAGE=ON it calls find_dependency(Torch) instead (PyPI's CUDA
# torch then needs the CUDA toolkit installed: its TorchConfig.cmake looks for nvcc, which
# BrainSAM's C API, exposing no torch types, does not need).
# The version must be the libtorch the package was built with; otherwise (and when none is
# found) find_package(BrainSAM) fails with a message naming what to install.
#
# Sets _brainsam_torch_error (non-empty: failure) or BrainSAM_TORCH_LIBRARY_DIR and
# _brainsam_torch_libraries (full paths the consumer must link so that libbrainsam's
# libtorch dependencies resolve; their folder lands in the consumer's build RPATH).

include("${CMAKE_CURRENT_LIST_DIR}/BrainSAMBuildInfo.cmake")
string(REGEX REPLACE "\\+.*" "" _brainsam_torch_required "${BrainSAM_LIBTORCH_VERSION}")
set(_brainsam_torch_hint
  "install torch==${_brainsam_torch_required} (pip, Python >= 3.10) or unpack libtorch ${_brainsam_torch_required} from pytorch.org, and set BRAINSAM_TORCH_DIR or CMAKE_PREFIX_PATH to it")
set(_brainsam_torch_error "")
set(_brainsam_torch_root "")

if(BRAINSAM_FIND_TORCH_PACKAGE AND NOT TARGET torch)
  include(CMakeFindDependencyMacro)
  find_dependency(Torch ${_brainsam_torch_required})
endif()
if(TARGET torch AND TORCH_INSTALL_PREFIX)
  set(_brainsam_torch_root "${TORCH_INSTALL_PREFIX}")
  set(_brainsam_torch_where "the torch found by find_package(Torch) (${TORCH_INSTALL_PREFIX})")
elseif(BRAINSAM_TORCH_DIR)
  set(_brainsam_torch_root "${BRAINSAM_TORCH_DIR}")
  set(_brainsam_torch_where "BRAINSAM_TORCH_DIR=${BRAINSAM_TORCH_DIR}")
elseif(DEFINED ENV{BRAINSAM_TORCH_DIR} AND NOT "$ENV{BRAINSAM_TORCH_DIR}" STREQUAL "")
  set(_brainsam_torch_root "$ENV{BRAINSAM_TORCH_DIR}")
  set(_brainsam_torch_where "BRAINSAM_TORCH_DIR=$ENV{BRAINSAM_TORCH_DIR} (environment)")
else()
  find_file(_brainsam_torch_config TorchConfigVersion.cmake
    HINTS "${Torch_DIR}" PATH_SUFFIXES share/cmake/Torch Torch)
  set(_brainsam_torch_config_file "${_brainsam_torch_config}")
  unset(_brainsam_torch_config CACHE)
  if(_brainsam_torch_config_file)
    get_filename_component(_brainsam_torch_root "${_brainsam_torch_config_file}/../../../.." ABSOLUTE)
    set(_brainsam_torch_where "${_brainsam_torch_root} (CMAKE_PREFIX_PATH / Torch_DIR)")
  else()
    if(DEFINED ENV{BRAINSAM_PYTHON})
      set(_brainsam_python "$ENV{BRAINSAM_PYTHON}")
    else()
      find_program(_brainsam_python_program NAMES python3)
      set(_brainsam_python "${_brainsam_python_program}")
      unset(_brainsam_python_program CACHE)
    endif()
    if(_brainsam_python)
      execute_process(
        COMMAND "${_brainsam_python}" -c
          "import importlib.util as u, os; s = u.find_spec('torch'); print(os.path.dirname(s.origin) if s and s.origin else '')"
        OUTPUT_VARIABLE _brainsam_torch_root OUTPUT_STRIP_TRAILING_WHITESPACE
        ERROR_QUIET RESULT_VARIABLE _brainsam_python_status)
      set(_brainsam_torch_where "${_brainsam_torch_root} (the torch of ${_brainsam_python})")
    endif()
    if(NOT _brainsam_torch_root)
      set(_brainsam_torch_error
        "BrainSAM needs libtorch ${_brainsam_torch_required} and found none (no find_package(Torch), BRAINSAM_TORCH_DIR unset, no TorchConfig.cmake on CMAKE_PREFIX_PATH, no torch in ${_brainsam_python}): ${_brainsam_torch_hint}")
    endif()
  endif()
endif()

if(NOT _brainsam_torch_error)
  if(EXISTS "${_brainsam_torch_root}/lib/libtorch_cpu.so")
    set(BrainSAM_TORCH_LIBRARY_DIR "${_brainsam_torch_root}/lib")
  elseif(EXISTS "${_brainsam_torch_root}/libtorch_cpu.so")
    set(BrainSAM_TORCH_LIBRARY_DIR "${_brainsam_torch_root}")
  else()
    set(_brainsam_torch_error
      "${_brainsam_torch_where} holds no libtorch (no lib/libtorch_cpu.so): ${_brainsam_torch_hint}")
  endif()
endif()
if(NOT _brainsam_torch_error)
  get_filename_component(BrainSAM_TORCH_LIBRARY_DIR "${BrainSAM_TORCH_LIBRARY_DIR}" REALPATH)
  get_filename_component(_brainsam_torch_top "${BrainSAM_TORCH_LIBRARY_DIR}/.." ABSOLUTE)
  set(_brainsam_torch_found "")
  if(EXISTS "${_brainsam_torch_top}/build-version")
    file(STRINGS "${_brainsam_torch_top}/build-version" _brainsam_torch_found LIMIT_COUNT 1)
  elseif(EXISTS "${_brainsam_torch_top}/version.py")
    file(STRINGS "${_brainsam_torch_top}/version.py" _brainsam_torch_line REGEX "^__version__")
    string(REGEX REPLACE ".*['\"]([^'\"]+)['\"].*" "\\1" _brainsam_torch_found "${_brainsam_torch_line}")
  endif()
  string(REGEX REPLACE "\\+.*" "" _brainsam_torch_found_base "${_brainsam_torch_found}")
  if(NOT _brainsam_torch_found)
    set(_brainsam_torch_error
      "cannot tell the version of the libtorch in ${_brainsam_torch_where} (no version.py or build-version): BrainSAM needs libtorch ${_brainsam_torch_required}")
  elseif(NOT _brainsam_torch_found_base STREQUAL _brainsam_torch_required)
    set(_brainsam_torch_error
      "BrainSAM needs libtorch ${_brainsam_torch_required} but ${_brainsam_torch_where} has torch ${_brainsam_torch_found}: ${_brainsam_torch_hint}")
  elseif(BrainSAM_LINKS_TORCH_CUDA AND NOT EXISTS "${BrainSAM_TORCH_LIBRARY_DIR}/libtorch_cuda.so")
    set(_brainsam_torch_error
      "this BrainSAM build links libtorch's CUDA library but ${_brainsam_torch_where} is a CPU-only torch ${_brainsam_torch_found}: install PyPI's default torch==${_brainsam_torch_required} (it includes the CUDA libraries and runs without a GPU)")
  endif()
endif()
if(NOT _brainsam_torch_error)
  set(_brainsam_torch_libraries "")
  foreach(_brainsam_name IN LISTS BrainSAM_TORCH_NEEDED)
    list(APPEND _brainsam_torch_libraries "${BrainSAM_TORCH_LIBRARY_DIR}/${_brainsam_name}")
  endforeach()
  # Linked without --as-needed: the program itself must list them (DT_NEEDED), so that
  # the loader finds them through the program's run path before libbrainsam asks for them.
  set(_brainsam_torch_libraries
    "-Wl,--push-state,--no-as-needed" ${_brainsam_torch_libraries} "-Wl,--pop-state")
endif()
