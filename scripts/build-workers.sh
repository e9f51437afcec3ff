#!/usr/bin/env bash
# Builds the guest workers under examples/workers/ (example workers and hostile
# test fixtures) into WebAssembly components, and writes the non-component
# fixtures next to them.
#
# Usage: scripts/build-workers.sh
#
# Environment:
#   MULTIAGENTS_WORKERS_TARGET_DIR  cargo target dir of the guest build
#                                   (default: <repo>/target/workers; relative
#                                   paths are taken from the repo root)
#   MULTIAGENTS_WORKERS_OUT_DIR     where the .wasm files are collected
#                                   (default: <target dir>/out)
#   MULTIAGENTS_WORKERS_PROFILE     cargo profile (default: release)
#
# Output, in the out dir:
#   <package>.wasm        one component per guest crate, e.g. charge-payment.wasm,
#                         hostile-spin.wasm
#   core-module.wasm      a valid *core* module (not a component): 8 bytes
#   random-bytes.wasm     4 KiB of random bytes (not wasm at all)
#   truncated.wasm        the first half of echo.wasm (a broken component)
#   empty.wasm            zero bytes
#
# Idempotent: cargo rebuilds only what changed, files are copied only when
# their content changed, and the random fixture is written once.
set -euo pipefail

die() {
    echo "build-workers: error: $*" >&2
    exit 1
}
say() { echo "build-workers: $*" >&2; }

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$script_dir/.." && pwd)
manifest="$root/examples/workers/Cargo.toml"
target_triple=wasm32-wasip2
[[ -f $manifest ]] || die "guest workspace not found at $manifest"

abs() { # make $1 absolute relative to the repo root
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$root/$1" ;;
    esac
}
target_dir=$(abs "${MULTIAGENTS_WORKERS_TARGET_DIR:-target/workers}")
out_dir=$(abs "${MULTIAGENTS_WORKERS_OUT_DIR:-$target_dir/out}")
profile=${MULTIAGENTS_WORKERS_PROFILE:-release}

command -v cargo >/dev/null || die "cargo not found on PATH (install Rust with rustup)"

# The wasm32-wasip2 standard library.
if command -v rustup >/dev/null; then
    if ! rustup target list --installed | grep -qx "$target_triple"; then
        say "the $target_triple target is missing: adding it with rustup"
        rustup target add "$target_triple" || die "rustup target add $target_triple failed"
    fi
elif ! rustc --print sysroot >/dev/null 2>&1 ||
    [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$target_triple" ]]; then
    die "the $target_triple target is not installed and rustup is not available to add it"
fi

say "building the guest workspace ($profile, $target_triple) into $target_dir"
start=$(date +%s)
CARGO_TARGET_DIR="$target_dir" cargo build \
    --manifest-path "$manifest" \
    --workspace \
    --target "$target_triple" \
    --profile "$profile" ||
    die "cargo build of the guest workspace failed (see above)"
say "cargo took $(($(date +%s) - start)) s"

# cargo's output dir for a profile: release → release, dev → debug, custom → its name.
case $profile in
    dev) profile_dir=debug ;;
    *) profile_dir=$profile ;;
esac
artifacts="$target_dir/$target_triple/$profile_dir"
mkdir -p "$out_dir"

# Copy $1 to $2 unless $2 already has the same content (keeps mtimes stable,
# so whatever depends on the fixtures does not rebuild for nothing).
install_if_changed() {
    if ! cmp -s "$1" "$2"; then
        cp "$1" "$2.part" && mv -f "$2.part" "$2"
    fi
}

# Write stdin to $1 unless $1 already has the same content.
write_if_changed() {
    local tmp
    tmp=$(mktemp "$out_dir/.fixture.XXXXXX")
    cat >"$tmp"
    install_if_changed "$tmp" "$1"
    rm -f "$tmp"
}

# Every cdylib package of the guest workspace: its name from its Cargo.toml.
packages=()
while IFS= read -r toml; do
    grep -q 'crate-type *= *\["cdylib"\]' "$toml" || continue
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$toml" | head -n1)
    [[ -n $name ]] || die "no package name in $toml"
    packages+=("$name")
done < <(find "$root/examples/workers" -mindepth 2 -name Cargo.toml -not -path '*/target/*' | sort)
[[ ${#packages[@]} -gt 0 ]] || die "no cdylib crates found under examples/workers"

for name in "${packages[@]}"; do
    built="$artifacts/${name//-/_}.wasm"
    [[ -f $built ]] || die "expected $built after the build, but it is missing"
    install_if_changed "$built" "$out_dir/$name.wasm"
done

# Fixtures that are not components.
printf '\000asm\001\000\000\000' | write_if_changed "$out_dir/core-module.wasm"
[[ -f "$out_dir/random-bytes.wasm" ]] ||
    head -c 4096 /dev/urandom | write_if_changed "$out_dir/random-bytes.wasm"
echo_size=$(wc -c <"$out_dir/echo.wasm")
head -c $((echo_size / 2)) "$out_dir/echo.wasm" | write_if_changed "$out_dir/truncated.wasm"
write_if_changed "$out_dir/empty.wasm" </dev/null

# What each file is: component (layer 1), core module (version 1) or neither.
kind_of() {
    local header
    header=$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')
    case $header in
        0061736d0d000100) echo component ;;
        0061736d01000000) echo core-module ;;
        *) echo not-wasm ;;
    esac
}

printf '\n%-28s %10s  %-12s %s\n' "file" "bytes" "kind" "path"
for f in "$out_dir"/*.wasm; do
    printf '%-28s %10d  %-12s %s\n' "$(basename "$f")" "$(wc -c <"$f")" "$(kind_of "$f")" "$f"
done
for name in "${packages[@]}"; do
    [[ $(kind_of "$out_dir/$name.wasm") == component ]] ||
        die "$out_dir/$name.wasm is not a component"
done
say "done: ${#packages[@]} components in $out_dir"
