#!/usr/bin/env bash
# herald's whole test suite, on a fresh Debian machine with only the Rust
# toolchain: installs what is missing (PostgreSQL, Postfix for smtp-sink,
# Chromium for the page tests),
# starts a throwaway PostgreSQL cluster on a free loopback port, checks
# formatting and lints, runs every test against SQLite and PostgreSQL (each
# integration test starts its own smtp-sink on a free loopback port), and
# stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

# ---- what the suite needs -------------------------------------------------
missing=()
[ -x /usr/sbin/smtp-sink ] || missing+=(postfix)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v python3 >/dev/null || missing+=(python3)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: ${missing[*]} missing and not root: install them (apt-get install ${missing[*]})" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Postfix's own daemon is not wanted: the tests run smtp-sink themselves.
if pgrep -x master >/dev/null 2>&1; then postfix stop >/dev/null 2>&1 || true; fi

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
if cargo nextest --version >/dev/null 2>&1; then
    runner=(cargo nextest run --no-fail-fast)
else
    log "cargo-nextest not found: installing it"
    cargo install --locked cargo-nextest >/dev/null 2>&1 && runner=(cargo nextest run --no-fail-fast) || runner=(cargo test --no-fail-fast)
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---- a throwaway PostgreSQL cluster ----------------------------------------
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pgdir=$(mktemp -d /tmp/herald-pg.XXXXXX)
pgport=$(free_port)
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        su postgres -s /bin/sh -c "$*"
    else
        sh -c "$*"
    fi
}
cleanup() {
    set +e
    if [ -f "$pgdir/data/postmaster.pid" ]; then
        as_pg "'$pgbin/pg_ctl' -D '$pgdir/data' -m immediate -w stop" >/dev/null 2>&1
    fi
    rm -rf "$pgdir"
}
trap cleanup EXIT INT TERM
[ "$(id -u)" -eq 0 ] && chown postgres "$pgdir"
log "starting PostgreSQL ($pgbin) on 127.0.0.1:$pgport"
as_pg "'$pgbin/initdb' -D '$pgdir/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
as_pg "'$pgbin/pg_ctl' -D '$pgdir/data' -l '$pgdir/log' -w -o \"-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400\" start" >/dev/null
export PG_TEST_URL="postgres://postgres@127.0.0.1:$pgport/postgres"

# ---- checks and tests ---------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
log "tests (every integration test runs on SQLite and on PostgreSQL)"
"${runner[@]}"
