#!/usr/bin/env bash
# The scaling figure: for each instance count, starts that many `multiagents
# run` processes on one shared backend, finds the highest rate they sustain
# with `multiagents loadtest --submit-only --stress` (a ramp; the knee is the
# last step with p99 under the threshold and errors under the limit), and
# prints one line per count: knee workflows/s, its p99, and the per-instance
# capacity (knee / instances) that the autoscaling advisor's bounds assume.
#
# Usage: scripts/scaling.sh <redis|nats|kafka> [instances...]   (default 1 2 4)
#
# Environment:
#   MULTIAGENTS_BIN   the binary (default target/release/multiagents; build it
#                     with `cargo build --release --features redis,nats,kafka`)
#   REDIS_URL, NATS_URL, KAFKA_URL   the shared servers (scripts/services.sh up
#                     writes them to target/services/env)
#   SCALING_FROM, SCALING_STEP, SCALING_MAX, SCALING_STEP_DURATION, SCALING_P99
#                     the ramp (500, 500, 20000, 5s) and its p99 threshold (1s)
#   SCALING_SETTLE    seconds to wait once every instance serves, before the
#                     ramp (default 0; 15 for kafka: a consumer group's
#                     members join over several rebalances)
#
# The workflow is three `echo` steps (the per-call floor), so the figure is
# the orchestrator's and the backend's, not a worker's. Every process shares
# this machine's cores with the server and the load generator: on 2 cores
# more instances add contention, not capacity. Run it on the machine sizes
# you deploy.
set -euo pipefail

die() {
    echo "scaling: error: $*" >&2
    exit 1
}

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
backend=${1:-}
shift || true
counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(1 2 4)
bin=${MULTIAGENTS_BIN:-$root/target/release/multiagents}
[[ -x $bin ]] || die "$bin not found: cargo build --release --features redis,nats,kafka (or set MULTIAGENTS_BIN)"
echo_wasm=$root/target/workers/out/echo.wasm
[[ -f $echo_wasm ]] || die "$echo_wasm not found: run scripts/build-workers.sh"

case $backend in
    redis) base=${REDIS_URL:-} option=key_prefix ;;
    nats) base=${NATS_URL:-} option=prefix ;;
    kafka) base=${KAFKA_URL:-} option=prefix ;;
    *) die "usage: scripts/scaling.sh <redis|nats|kafka> [instances...]" ;;
esac
[[ -n $base ]] || die "the ${backend^^}_URL variable is not set (scripts/services.sh up, then: set -a; . target/services/env; set +a)"

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

config() { # $1: the URL
    cat <<EOF
[runtime]
prefix = "ma"
shutdown_timeout = "2s"

[transport]
url = "$1"

[store]
url = "$1"

[engine]
cache_dir = "$root/target/workers/cache"

[workers.echo]
path = "$echo_wasm"
max_concurrent = 256
max_queued = 100000
timeout = "10s"

[[workflows]]
name = "three"
steps = [
  { name = "a", worker = "echo" },
  { name = "b", worker = "echo" },
  { name = "c", worker = "echo" },
]
EOF
}

printf '%-8s %9s %10s %12s %10s %22s\n' backend instances "knee rate" "done wf/s" "p99" "per instance wf/s"
for n in "${counts[@]}"; do
    sep='?'
    [[ $base == *\?* ]] && sep='&'
    url="$base${sep}$option=scaling-$$-$n"
    config "$url" >"$work/config-$n.toml"
    pids=()
    for ((i = 1; i <= n; i++)); do
        "$bin" run --config "$work/config-$n.toml" >"$work/instance-$n-$i.log" 2>&1 &
        pids+=($!)
    done
    for ((i = 1; i <= n; i++)); do
        for _ in $(seq 600); do
            grep -q "serving " "$work/instance-$n-$i.log" && break
            kill -0 "${pids[$((i - 1))]}" 2>/dev/null || die "instance $i of $n exited: $(tail -5 "$work/instance-$n-$i.log")"
            sleep 0.1
        done
    done
    settle=${SCALING_SETTLE:-0}
    [[ $backend == kafka && -z ${SCALING_SETTLE:-} ]] && settle=15
    sleep "$settle"
    json=$("$bin" loadtest --config "$work/config-$n.toml" --workflow three --submit-only --stress --json \
        --from "${SCALING_FROM:-500}" --step "${SCALING_STEP:-500}" --max "${SCALING_MAX:-20000}" \
        --step-duration "${SCALING_STEP_DURATION:-5s}" --threshold "p99<${SCALING_P99:-1s}" --error-limit 1% \
        2>"$work/loadtest-$n.log" || true)
    python3 - "$backend" "$n" "$json" <<'EOF'
import json, sys
backend, n, text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    report = json.loads(text)
except ValueError:
    print(f"{backend:<8} {n:>9} {'no result':>10}")
    sys.exit(0)
knee = report.get("knee")
step = next((s for s in report.get("steps", []) if s["rate"] == knee), None)
if knee is None or step is None:
    print(f"{backend:<8} {n:>9} {'no knee':>10}   ({report.get('stopped', '')})")
    sys.exit(0)
rate = step["report"]["completed_rate"]
p99 = step["report"]["latency"]["p99"]
# "done wf/s": completed over the step's whole time, to its last outcome (a
# straggler finishing late lowers it); the knee rate is what was offered.
print(f"{backend:<8} {n:>9} {knee:>10.0f} {rate:>12.0f} {p99:>8.1f}ms {rate / n:>22.0f}")
EOF
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
done
