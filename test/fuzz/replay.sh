#!/usr/bin/env bash
# replay.sh: build Warren's codec fuzz targets with clang and libFuzzer and
# run each over its committed corpus for a bounded time.
#
#   test/fuzz/replay.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 20); TARGETs default to the codec's three
# (fuzz_frame, fuzz_method, fuzz_table), fuzz_record, fuzz_peer, plus
# fuzz_conf when present. New
# inputs libFuzzer finds go to a scratch directory, not into the committed
# corpus; a crash leaves its input in build-fuzz-artifacts/ at the repo
# root (git-ignored) and makes the script exit non-zero. To keep one as a
# regression seed, copy it to corpus/<target>/regress-<what>.bin.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-20}
if [ $# -gt 0 ]; then shift; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(fuzz_frame fuzz_method fuzz_table fuzz_record fuzz_peer)
    if [ -f "$here/fuzz_conf.c" ]; then targets+=(fuzz_conf); fi
fi

build=$(mktemp -d "${TMPDIR:-/tmp}/warren-fuzz-build.XXXXXX")
scratch=$(mktemp -d "${TMPDIR:-/tmp}/warren-fuzz-new.XXXXXX")
trap 'rm -rf "$build" "$scratch"' EXIT
artifacts="$root/build-fuzz-artifacts"
mkdir -p "$artifacts"

# WARREN_WERROR=OFF: this build is for finding crashes, and clang warns
# where gcc does not (-Wformat-nonliteral on vsnprintf wrappers).
CC=${CC:-clang} cmake -S "$root" -B "$build" -DWARREN_FUZZ=ON \
    -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWARREN_WERROR=OFF \
    -DCMAKE_C_FLAGS=-fno-sanitize-recover=all >/dev/null
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    echo "== $t: ${secs}s over corpus/$t"
    if ! "$build/test/$t" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$t-" \
        "$scratch/$t" "$here/corpus/$t" 2>"$scratch/$t.log"; then
        tail -n 40 "$scratch/$t.log"
        echo "== $t: FAILED (inputs in $artifacts)"
        status=1
    else
        grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units)' \
            "$scratch/$t.log" || true
    fi
done
rmdir "$artifacts" 2>/dev/null || true
exit $status
