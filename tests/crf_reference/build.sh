#!/bin/sh
# Builds the reference dense CRF (Krähenbühl's densecrf, the C++ code pydensecrf wraps, at the
# commit pinned below) with the small driver `reference.cpp`, into $1 (default
# target/crf_reference). Needs git, g++ and the network once; flags as pip builds pydensecrf
# (-O2, SSE2: x86-64's baseline).
#   tests/crf_reference/build.sh [OUT]
#   cargo bench -p lrnn-core --bench crf -- --reference target/crf_reference
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../target/crf_reference}
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git clone -q https://github.com/lucasb-eyer/pydensecrf "$src/pydensecrf"
git -C "$src/pydensecrf" checkout -q 2723c7fa4f2ead16ae1ce3d8afe977724bb8f87f
d=$src/pydensecrf/pydensecrf/densecrf
mkdir -p "$(dirname "$out")"
g++ -O2 -std=c++11 -w -I"$d/include" -o "$out" "$here/reference.cpp" \
  "$d/src/densecrf.cpp" "$d/src/permutohedral.cpp" "$d/src/pairwise.cpp" \
  "$d/src/labelcompatibility.cpp" "$d/src/unary.cpp" "$d/src/util.cpp"
echo "built $out"
