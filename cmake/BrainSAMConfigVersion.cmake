# Version file for find_package(BrainSAM <version>). Kept equal to Cargo.toml's version
# (checked by the test suite). CMake's SameMajorVersion rule: any requested version of the
# same major version up to this one is compatible (the C ABI only grows within a major
# version: an 0.1 caller works with 0.2); a newer or another major version is refused.
set(PACKAGE_VERSION "0.2.0")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif(NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL "0")
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
