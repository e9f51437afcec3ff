#!/usr/bin/env bash
# Fuzzes what comes off the wire or out of a user's file (issue #16) with
# cargo-fuzz (libFuzzer) on a nightly toolchain: the targets in
# tests/fuzz/fuzz_targets, each for a time, then prints one line per target
# with its runs, time, corpus size and whether it found anything.
#
# Usage: scripts/fuzz.sh [seconds per target] [target...]
#        (default 60 seconds; targets: envelope payload worker_output
#        condition config)
#
# It installs what it needs (as a user would, once): the nightly toolchain
# (rustup) and cargo-fuzz (cargo install). The corpus grows in
# target/fuzz/corpus/<target> (seeded from tests/fuzz/seeds/<target>), a
# crash lands in target/fuzz/artifacts/<target>/ and the script exits 1 (also when a
# target fails to build or run);
# replay one with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz --target-dir target/fuzz/build \
#     -s none <target> <artifact>
# A finding is fixed with a regression test beside the code (the proptest
# corpora in core/src/bad_input_props.rs and src/config/bad_input_props.rs run
# in CI; this script does not).
#
# No sanitizer (`-s none`): the code under test is safe Rust; what is looked
# for is a panic, a stack overflow, a hang or an allocation past the
# 2 GiB RSS limit. Debug assertions are on (overflow checks).
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(envelope payload worker_output condition config)
fi
case "$seconds" in
    '' | *[!0-9]*) echo "fuzz: error: seconds must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac

for t in "${targets[@]}"; do
    if [ ! -f "tests/fuzz/fuzz_targets/$t.rs" ]; then
        echo "fuzz: error: no target '$t' (see tests/fuzz/fuzz_targets)" >&2
        exit 2
    fi
done

if ! rustup toolchain list | grep '^nightly' >/dev/null; then
    echo "fuzz: installing the nightly toolchain (rustup)" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (cargo install)" >&2
    cargo install cargo-fuzz --locked
fi

build=target/fuzz/build
found=0
printf '%-14s %12s %8s %8s  %s\n' target runs seconds corpus result
for t in "${targets[@]}"; do
    corpus="target/fuzz/corpus/$t"
    artifacts="target/fuzz/artifacts/$t"
    log="target/fuzz/$t.log"
    mkdir -p "$corpus" "$artifacts"
    cp -n "tests/fuzz/seeds/$t"/* "$corpus"/ 2>/dev/null || true
    status=0
    cargo +nightly fuzz run --fuzz-dir tests/fuzz --target-dir "$build" -s none -a "$t" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | awk '{print $5}' | tail -1 || true)
    size=$(find "$corpus" -type f | wc -l)
    if [ -n "$(ls -A "$artifacts")" ]; then
        result="FOUND: see $log and $artifacts/"
        found=1
    elif [ "$status" -eq 0 ]; then
        result="nothing found"
    else
        result="FAILED (exit $status, nothing found): see $log"
        found=1
    fi
    printf '%-14s %12s %8s %8s  %s\n' "$t" "${runs:-?}" "${took:-$seconds}" "$size" "$result"
done
exit "$found"
