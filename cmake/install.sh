#!/usr/bin/env bash
# Installs the BrainSAM SDK into PREFIX:
#   PREFIX/lib/libbrainsam.so               (keeps its rpath to the libtorch it was built with)
#   PREFIX/include/brainsam.h, brainsam.hpp, brainsam/...   (C and C++ headers)
#   PREFIX/share/brainsam/cxx/              (cxx glue sources C++ consumers compile)
#   PREFIX/lib/cmake/BrainSAM/              (find_package(BrainSAM): BrainSAM::brainsam,
#                                            BrainSAM::brainsam_cxx)
#   PREFIX/lib/pkgconfig/brainsam.pc        (pkg-config brainsam: the C API)
#
# Usage: cmake/install.sh PREFIX [LIBRARY]
# LIBRARY defaults to $BRAINSAM_LIBRARY, else the newest of target/{release,debug}
# (under $CARGO_TARGET_DIR when set). Build it first: cargo build --release.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 PREFIX [LIBRARY]" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=$1
library=${2:-${BRAINSAM_LIBRARY:-}}
if [ -z "$library" ]; then
    target=${CARGO_TARGET_DIR:-$root/target}
    for candidate in "$target/release/libbrainsam.so" "$target/debug/libbrainsam.so"; do
        if [ -f "$candidate" ] && { [ -z "$library" ] || [ "$candidate" -nt "$library" ]; }; then
            library=$candidate
        fi
    done
fi
if [ -z "$library" ] || [ ! -f "$library" ]; then
    echo "install: libbrainsam.so not found (${library:-no candidate}); run cargo build --release" >&2
    exit 1
fi
version=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$root/cmake/BrainSAMConfigVersion.cmake")

mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
install -d "$prefix/lib/cmake/BrainSAM" "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$library" "$prefix/lib/libbrainsam.so"
install -m 0644 "$root/include/brainsam.h" "$root/include/brainsam.hpp" "$prefix/include/"
(cd "$root/include" && find brainsam -type f -name '*.h' -print0 |
    while IFS= read -r -d '' file; do
        install -D -m 0644 "$file" "$prefix/include/$file"
    done)
install -d "$prefix/share/brainsam/cxx"
install -m 0644 "$root/generated/cxx/cxx_bridge.rs.cc" "$root/generated/cxx/cxx.cc" \
    "$prefix/share/brainsam/cxx/"
install -m 0644 "$root/cmake/BrainSAMConfig.cmake" "$root/cmake/BrainSAMConfigVersion.cmake" \
    "$prefix/lib/cmake/BrainSAM/"

# Libs carries an rpath to PREFIX/lib so that programs run without LD_LIBRARY_PATH, as
# with the CMake package; libtorch is found through libbrainsam.so's own rpath.
cat > "$prefix/lib/pkgconfig/brainsam.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: brainsam
Description: Subcortical brain MRI segmentation with SAM + LoRA (C API)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lbrainsam
PC
echo "installed BrainSAM $version into $prefix (library: $library)"
