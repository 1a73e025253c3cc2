# CMake package for BrainSAM: find_package(BrainSAM REQUIRED)
#
# Imported targets:
#   BrainSAM::brainsam      the C API (brainsam.h) in libbrainsam.so
#   BrainSAM::brainsam_cxx  the C++ API (brainsam.hpp); compiles cxx's glue into the consumer
#
# Works from an install tree (PREFIX/lib/cmake/BrainSAM/; the C++ glue sources in
# PREFIX/share/brainsam/cxx/) and from the source tree (cmake/ next to include/,
# generated/cxx/ and target/), where it uses target/release, else target/debug;
# set BrainSAM_LIBRARY to pick a specific libbrainsam.so. In the relocatable package
# (scripts/package) it also finds libtorch: see BrainSAMTorch.cmake.
cmake_minimum_required(VERSION 3.16)

get_filename_component(_brainsam_here "${CMAKE_CURRENT_LIST_DIR}" REALPATH)
if(EXISTS "${_brainsam_here}/../../../include/brainsam.h")
  # Install tree: PREFIX/lib/cmake/BrainSAM
  get_filename_component(_brainsam_prefix "${_brainsam_here}/../../.." REALPATH)
  set(_brainsam_include "${_brainsam_prefix}/include")
  set(_brainsam_glue "${_brainsam_prefix}/share/brainsam/cxx")
  set(_brainsam_candidates "${_brainsam_prefix}/lib/libbrainsam.so")
else()
  # Source tree: REPO/cmake
  get_filename_component(_brainsam_prefix "${_brainsam_here}/.." REALPATH)
  set(_brainsam_include "${_brainsam_prefix}/include")
  set(_brainsam_glue "${_brainsam_prefix}/generated/cxx")
  set(_brainsam_candidates
    "${_brainsam_prefix}/target/release/libbrainsam.so"
    "${_brainsam_prefix}/target/debug/libbrainsam.so")
  if(DEFINED ENV{CARGO_TARGET_DIR})
    list(PREPEND _brainsam_candidates
      "$ENV{CARGO_TARGET_DIR}/release/libbrainsam.so"
      "$ENV{CARGO_TARGET_DIR}/debug/libbrainsam.so")
  endif()
endif()

if(NOT BrainSAM_LIBRARY)
  foreach(_candidate IN LISTS _brainsam_candidates)
    if(EXISTS "${_candidate}")
      set(BrainSAM_LIBRARY "${_candidate}")
      break()
    endif()
  endforeach()
endif()

if(NOT BrainSAM_LIBRARY OR NOT EXISTS "${BrainSAM_LIBRARY}")
  set(BrainSAM_FOUND FALSE)
  set(BrainSAM_NOT_FOUND_MESSAGE
    "libbrainsam.so not found (looked at: ${_brainsam_candidates}). Build it with "
    "`cargo build --release` or set BrainSAM_LIBRARY.")
  return()
endif()
if(NOT EXISTS "${_brainsam_include}/brainsam.h")
  set(BrainSAM_FOUND FALSE)
  set(BrainSAM_NOT_FOUND_MESSAGE "brainsam.h not found in ${_brainsam_include}")
  return()
endif()

set(BrainSAM_INCLUDE_DIRS "${_brainsam_include}")
set(BrainSAM_LIBRARIES BrainSAM::brainsam)

if(NOT TARGET BrainSAM::brainsam)
  add_library(BrainSAM::brainsam SHARED IMPORTED)
  set_target_properties(BrainSAM::brainsam PROPERTIES
    IMPORTED_LOCATION "${BrainSAM_LIBRARY}"
    IMPORTED_SONAME "libbrainsam.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_brainsam_include}")
  if(EXISTS "${_brainsam_here}/BrainSAMBuildInfo.cmake")
    # Relocatable package (scripts/package writes BrainSAMBuildInfo.cmake there):
    # libbrainsam.so has no run path to libtorch; consumers link the libtorch found
    # here and get its folder in their run path.
    include("${_brainsam_here}/BrainSAMTorch.cmake")
    if(_brainsam_torch_error)
      set(BrainSAM_FOUND FALSE)
      set(BrainSAM_NOT_FOUND_MESSAGE "${_brainsam_torch_error}")
      return()
    endif()
    set_property(TARGET BrainSAM::brainsam PROPERTY
      INTERFACE_LINK_LIBRARIES ${_brainsam_torch_libraries})
  endif()
  # Otherwise (source tree, cmake/install.sh) libbrainsam.so carries an rpath to the
  # libtorch it was built against; linkers use it to resolve libtorch at link time and
  # the loader at run time, so consumers need nothing more.
endif()

if(NOT TARGET BrainSAM::brainsam_cxx)
  add_library(brainsam_cxx_glue INTERFACE)
  target_sources(brainsam_cxx_glue INTERFACE
    "${_brainsam_glue}/cxx_bridge.rs.cc"
    "${_brainsam_glue}/cxx.cc")
  target_include_directories(brainsam_cxx_glue INTERFACE
    "${_brainsam_include}" "${_brainsam_include}/brainsam")
  target_compile_features(brainsam_cxx_glue INTERFACE cxx_std_17)
  target_link_libraries(brainsam_cxx_glue INTERFACE BrainSAM::brainsam)
  add_library(BrainSAM::brainsam_cxx ALIAS brainsam_cxx_glue)
endif()

set(BrainSAM_FOUND TRUE)
