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

. scripts/lib.sh

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
install_missing scripts/bench.sh ${missing[@]+"${missing[@]}"}
stop_postfix_daemon

# ---- a throwaway PostgreSQL cluster, only when no server was named ------
# fsync=off, as on the development server the figures in docs/performance.md come from:
# what is compared is herald against a baseline, not the disk.
if $need_cluster; then
    start_throwaway_pg herald-bench-pg
fi

log "cargo run --release -- bench $*"
cargo run --release -- bench "$@"
