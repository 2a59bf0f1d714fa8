#!/usr/bin/env bash
# herald's benchmarks on a fresh Debian machine with only the Rust toolchain:
# installs what they need when it is missing — wrk (`bench subscribe`),
# Postfix's smtp-sink and smtp-source (`bench send`) and, when a PostgreSQL
# run is asked for (`--database postgres|both`, the default) without
# --postgres-url or PG_TEST_URL, PostgreSQL in a throwaway cluster on a free
# loopback port — then runs `cargo run --release -- bench "$@"`.
#
#   scripts/bench.sh subscribe --database both --duration-secs 10
#   scripts/bench.sh send --subscribers 20000 --concurrency 1,8,32
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

# ---- is a PostgreSQL run asked for, and does it have a server? ------------
database=both
postgres_url=${PG_TEST_URL:-}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --database) database=${args[i + 1]:-both} ;;
        --database=*) database=${args[i]#--database=} ;;
        --postgres-url) postgres_url=${args[i + 1]:-} ;;
        --postgres-url=*) postgres_url=${args[i]#--postgres-url=} ;;
    esac
done
need_cluster=false
if [ "$database" != sqlite ] && [ -z "$postgres_url" ]; then
    need_cluster=true
fi

# ---- what the benchmarks need -------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
{ [ -x /usr/sbin/smtp-sink ] && [ -x /usr/sbin/smtp-source ]; } || missing+=(postfix)
if $need_cluster; then
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
    command -v python3 >/dev/null || missing+=(python3)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/bench.sh: ${missing[*]} missing and not root: install them (apt-get install ${missing[*]})" >&2
        exit 1
    fi
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Postfix's own daemon is not wanted: the benchmarks run smtp-sink themselves.
if pgrep -x master >/dev/null 2>&1; then postfix stop >/dev/null 2>&1 || true; fi

# ---- a throwaway PostgreSQL cluster, only when no server was named ------
# fsync=off, as on the development server the README's figures come from:
# what is compared is herald against a baseline, not the disk.
pgdir=
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        su postgres -s /bin/sh -c "$*"
    else
        sh -c "$*"
    fi
}
cleanup() {
    set +e
    if [ -n "$pgdir" ] && [ -f "$pgdir/data/postmaster.pid" ]; then
        as_pg "'$pgbin/pg_ctl' -D '$pgdir/data' -m immediate -w stop" >/dev/null 2>&1
    fi
    [ -n "$pgdir" ] && rm -rf "$pgdir"
}
trap cleanup EXIT INT TERM
if $need_cluster; then
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    pgdir=$(mktemp -d /tmp/herald-bench-pg.XXXXXX)
    pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    [ "$(id -u)" -eq 0 ] && chown postgres "$pgdir"
    log "starting PostgreSQL ($pgbin) on 127.0.0.1:$pgport"
    as_pg "'$pgbin/initdb' -D '$pgdir/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
    as_pg "'$pgbin/pg_ctl' -D '$pgdir/data' -l '$pgdir/log' -w -o \"-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400\" start" >/dev/null
    export PG_TEST_URL="postgres://postgres@127.0.0.1:$pgport/postgres"
fi

log "cargo run --release -- bench $*"
cargo run --release -- bench "$@"
