#!/usr/bin/env bash
# The whole test suite: set up, then ctest on the Release build and on a sanitizer build
# (AddressSanitizer + UndefinedBehaviorSanitizer).
source "$(dirname "$0")/setup.sh"
export OPENBLAS_NUM_THREADS=1
step "test: Release (build/)"
ctest --test-dir "$SPEAR_ROOT/build" --output-on-failure -j "$(nproc)" || fail "Release tests"

build_spear build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPEAR_SANITIZE=ON -DSPEAR_BUILD_BENCH=OFF
step "test: sanitizers (build-sanitize/)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$SPEAR_ROOT/build-sanitize" --output-on-failure -j "$(nproc)" \
  || fail "sanitizer tests"
step "all tests passed"
