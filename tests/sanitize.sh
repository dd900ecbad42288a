#!/usr/bin/env bash
# The test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (GCC), in its own build folder.
#   tests/sanitize.sh             the planning layer, text, kernels, command line and GUI
#   tests/sanitize.sh --runtime   the LibTorch running layer too: every suite (what CI runs; LibTorch
#                                 itself is not instrumented, but every call into it from our code is)
# Leaks are checked (LeakSanitizer) with the suppressions in tests/sanitize.supp: allocations that
# system libraries' process-wide caches keep until exit, which are not ours to free.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runtime=OFF
[[ "${1:-}" == "--runtime" ]] && runtime=ON
build="${DEVICEMAP_ASAN_BUILD_DIR:-$here/build-asan}"
# -O1 as ASan's own documentation advises: -O0 code runs the planner's large-skeleton tests several times
# slower still and keeps nothing the sanitizers need.
flags="-O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBUILD_RUNTIME="$runtime" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$here/tests/sanitize.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Qt Test stops a test function after 5 minutes by default; ctest's own limit below is the bound here.
export QTEST_FUNCTION_TIMEOUT=1800000
QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j "$(nproc)" --timeout 1800
