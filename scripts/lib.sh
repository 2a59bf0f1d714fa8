# Shared by scripts/test.sh and scripts/bench.sh (sourced, not run): the
# package install, stopping Postfix's own daemon, and a throwaway
# PostgreSQL cluster on a free loopback port.

log() { printf '\n== %s\n' "$*" >&2; }

# install_missing SCRIPT PACKAGE...: apt-get installs the packages (root
# only); with none named, does nothing.
install_missing() {
    local script=$1
    shift
    [ $# -gt 0 ] || return 0
    log "installing $*"
    if [ "$(id -u)" -ne 0 ]; then
        echo "$script: $* missing and not root: install them (apt-get install $*)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Postfix's own daemon is not wanted: tests and benchmarks run smtp-sink
# themselves.
stop_postfix_daemon() {
    if pgrep -x master >/dev/null 2>&1; then postfix stop >/dev/null 2>&1 || true; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pgbin=
pgdir=
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        su postgres -s /bin/sh -c "$*"
    else
        sh -c "$*"
    fi
}
stop_throwaway_pg() {
    set +e
    if [ -n "$pgdir" ] && [ -f "$pgdir/data/postmaster.pid" ]; then
        as_pg "'$pgbin/pg_ctl' -D '$pgdir/data' -m immediate -w stop" >/dev/null 2>&1
    fi
    [ -n "$pgdir" ] && rm -rf "$pgdir"
}

# start_throwaway_pg NAME [-c SETTING=VALUE ...]: initdb and start a cluster
# in a temp dir (as the postgres user when root), with fsync=off plus the
# settings given, export PG_TEST_URL, and stop and remove it on exit.
start_throwaway_pg() {
    local name=$1
    shift
    local pgport
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    pgdir=$(mktemp -d "/tmp/$name.XXXXXX")
    pgport=$(free_port)
    trap stop_throwaway_pg EXIT INT TERM
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$pgdir"; fi
    log "starting PostgreSQL ($pgbin) on 127.0.0.1:$pgport"
    as_pg "'$pgbin/initdb' -D '$pgdir/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
    as_pg "'$pgbin/pg_ctl' -D '$pgdir/data' -l '$pgdir/log' -w -o \"-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400 $*\" start" >/dev/null
    export PG_TEST_URL="postgres://postgres@127.0.0.1:$pgport/postgres"
}
