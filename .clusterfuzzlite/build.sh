#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build script.
#
# Honours the variables the OSS-Fuzz base images set: CC, CXX, CFLAGS, CXXFLAGS (the
# sanitizer and coverage flags), LIB_FUZZING_ENGINE (how to link the engine), OUT (where
# the fuzzers go), SRC (where sources are) and WORK (scratch space). Produces, for every
# fuzz target NAME under fuzz/: $OUT/NAME_fuzzer, $OUT/NAME_fuzzer_seed_corpus.zip,
# $OUT/NAME_fuzzer.dict and $OUT/NAME_fuzzer.options when the project has them.
# Tested locally by tests/ossfuzz (ctest), which runs this script with those variables.

set -euo pipefail  # also when run as `bash build.sh`, which ignores the line above
here=$(cd "$(dirname "$0")/.." && pwd)
project=${VMFUZZ_SRC:-${SRC:-}/vmfuzz}
[ -f "$project/CMakeLists.txt" ] || project=$here
work=${WORK:-$(mktemp -d)}
build="$work/vmfuzz-build"

cmake -S "$project" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_CXX_FLAGS="$CXXFLAGS" \
  -DCMAKE_CXX_FLAGS_RELEASE="" \
  -DVMFUZZ_FUZZ=ON -DVMFUZZ_SANITIZE=OFF -DVMFUZZ_WERROR=OFF -DVMFUZZ_TESTS=OFF \
  -DVMFUZZ_FUZZ_ENGINE="$LIB_FUZZING_ENGINE"

targets=()
for dir in "$project"/fuzz/*/; do
  [ -f "$dir/CMakeLists.txt" ] && targets+=("$(basename "$dir")")
done
cmake --build "$build" --target "${targets[@]/%/_fuzzer}"

for t in "${targets[@]}"; do
  cp "$build/fuzz/$t/${t}_fuzzer" "$OUT/"
  if [ -d "$project/corpus/$t" ]; then
    (cd "$project/corpus/$t" && python3 -m zipfile -c "$OUT/${t}_fuzzer_seed_corpus.zip" .)
  fi
  [ -f "$project/fuzz/$t/$t.dict" ] && cp "$project/fuzz/$t/$t.dict" "$OUT/${t}_fuzzer.dict"
  [ -f "$project/fuzz/$t/$t.options" ] && cp "$project/fuzz/$t/$t.options" "$OUT/${t}_fuzzer.options"
done
echo "build.sh: built ${targets[*]} into $OUT"
