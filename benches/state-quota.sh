#!/bin/bash
# Usage: benches/state-quota.sh (after cargo build --release --features redis,nats,kafka,
# scripts/build-workers.sh and scripts/services.sh up).
#
# Throughput of a 3-step workflow whose every step writes worker state (the
# ledger worker: one increment and one set per step), state quota on (the
# default) vs off, in memory and on Redis; release binary, medians of 3.
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
set -a; . target/services/env; set +a
bin=target/release/multiagents
wasm=$PWD/target/workers/out/ledger.wasm
for backend in memory redis; do
  for quota in on off; do
    for run in 1 2 3; do
      case $backend in
        memory) url="memory://" ;;
        redis) url="$REDIS_URL?key_prefix=qb-$quota-$run-$$" ;;
      esac
      limits=""
      [[ $quota == off ]] && limits=$'state_max_keys = 0\nstate_max_mb = 0'
      cat > /tmp/qb.toml <<TOML
[runtime]
prefix = "ma"
[transport]
url = "$url"
[store]
url = "$url"
[engine]
cache_dir = "$PWD/target/workers/cache"
[workers.ledger]
path = "$wasm"
max_concurrent = 256
max_queued = 100000
$limits
[[workflows]]
name = "w"
steps = [ { name = "a", worker = "ledger" }, { name = "b", worker = "ledger" }, { name = "c", worker = "ledger" } ]
TOML
      t=$($bin loadtest --config /tmp/qb.toml --workflow w --rate 6000 --duration 5s --json 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["throughput"]), r["completed"], r["sent"])')
      echo "$backend quota=$quota run=$run: $t"
    done
  done
done
