#!/bin/sh
# The installed package, as an embedder sees it: `cmake --install` of the already built tree
# into a temporary prefix, then both examples built against it with find_package(imgstore), the
# C example also with pkg-config, and each run on a small OCI layout (pull, list, inspect,
# unpack). Nothing of the project is rebuilt.
#
# install_test.sh BUILD_DIR SOURCE_DIR MAKE_LAYOUT CMAKE CC CXX
set -eu
build=$1 src=$2 make_layout=$3 cmake=$4 cc=$5 cxx=$6
tmp=$(mktemp -d "${TMPDIR:-/tmp}/imgstore-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

step() { echo "== $*"; }

step "install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" > "$tmp/install.log"
for f in include/imgstore/imgstore.h include/imgstore/store.hpp include/imgstore/status.hpp \
         include/imgstore/types.hpp lib/libimgstore.a lib/cmake/imgstore/imgstoreConfig.cmake \
         lib/cmake/imgstore/imgstoreConfigVersion.cmake lib/pkgconfig/imgstore.pc; do
  test -e "$prefix/$f" || { echo "missing after install: $f"; exit 1; }
done
soname=$(objdump -p "$prefix/lib/libimgstore.so" | awk '$1 == "SONAME" { print $2 }')
test "$soname" = "libimgstore.so.0" || { echo "SONAME is '$soname', not libimgstore.so.0"; exit 1; }
# No internal header is installed, and the public ones include nothing of src/.
if grep -rn '#include "\(util\|store\|images\|layers\|registry\|transports\|locking\)/' \
     "$prefix/include/imgstore"; then
  echo "a public header includes an internal one"; exit 1
fi
# Only the public API is exported.
if nm -D --defined-only "$prefix/lib/libimgstore.so" | c++filt | grep -q 'imgstore::store::'; then
  echo "libimgstore.so exports internal symbols"; exit 1
fi

"$make_layout" "$tmp/layout" 5 > /dev/null
export IMGSTORE_ROOT=/nonexistent  # the examples must use the root they are given

step "C example with find_package"
"$cmake" -S "$src/examples/c" -B "$tmp/c" -G Ninja -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_PREFIX_PATH="$prefix" > "$tmp/c-configure.log"
"$cmake" --build "$tmp/c" > "$tmp/c-build.log"
"$tmp/c/imgstore_example_c" "$tmp/root-c" "oci:$tmp/layout:v1" "$tmp/rootfs-c" | tee "$tmp/c.out"
grep -q "^pulled sha256:" "$tmp/c.out"
grep -q "example.com/imported:latest" "$tmp/c.out"
test -f "$tmp/rootfs-c/file-0" && test -f "$tmp/rootfs-c/file-1"

step "C++ example with find_package"
"$cmake" -S "$src/examples/cpp" -B "$tmp/cpp" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_PREFIX_PATH="$prefix" > "$tmp/cpp-configure.log"
"$cmake" --build "$tmp/cpp" > "$tmp/cpp-build.log"
"$tmp/cpp/imgstore_example_cpp" "$tmp/root-cpp" "oci:$tmp/layout:v1" "$tmp/rootfs-cpp" \
  | tee "$tmp/cpp.out"
grep -q "example.com/imported-cpp:latest" "$tmp/cpp.out"
test -f "$tmp/rootfs-cpp/file-1"

step "C example with pkg-config (make)"
cp "$src/examples/c/main.c" "$src/examples/c/Makefile" "$tmp/"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" make -s -C "$tmp" CC="$cc" imgstore_example_c
LD_LIBRARY_PATH="$prefix/lib" "$tmp/imgstore_example_c" "$tmp/root-c" "oci:$tmp/layout:v1" \
  | tee "$tmp/pc.out"
grep -q "present" "$tmp/pc.out"  # the second pull into root-c finds every blob

echo "install test passed"
