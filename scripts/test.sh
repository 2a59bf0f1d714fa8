#!/usr/bin/env bash
# herald's whole test suite, on a fresh Debian machine with only the Rust
# toolchain: installs what is missing (PostgreSQL, Postfix for smtp-sink,
# Chromium for the page tests, SpamAssassin, Node's npm for axe-core, dkimpy),
# starts a throwaway PostgreSQL cluster on a free loopback port, checks
# formatting and lints, runs every test against SQLite and PostgreSQL (each
# integration test starts its own smtp-sink on a free loopback port), and
# stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh

# ---- what the suite needs -------------------------------------------------
missing=()
[ -x /usr/sbin/smtp-sink ] || missing+=(postfix)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v python3 >/dev/null || missing+=(python3)
command -v openssl >/dev/null || missing+=(openssl)
command -v sqlite3 >/dev/null || missing+=(sqlite3)  # the documented backup command (docs/operations.md), run by tests/secrets_and_files.rs
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/spamassassin ] || missing+=(spamassassin)
command -v npm >/dev/null || missing+=(nodejs npm)
install_missing scripts/test.sh ${missing[@]+"${missing[@]}"}
stop_postfix_daemon
# aiosmtpd: the STARTTLS / AUTH relay of tests/relay_tls.rs (PyPI, else Debian's package).
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    log "installing aiosmtpd"
    python3 -m pip install --quiet aiosmtpd 2>/dev/null \
        || install_missing scripts/test.sh python3-aiosmtpd
fi
# dkimpy and PyNaCl (its Ed25519): the independent DKIM verifier of tests/dkim.rs.
if ! python3 -c 'import dkim, nacl' 2>/dev/null; then
    log "installing dkimpy and pynacl"
    python3 -m pip install --quiet dkimpy pynacl 2>/dev/null \
        || install_missing scripts/test.sh python3-dkim python3-nacl
fi
# python-cryptography: tests/dkim.rs checks it reads the Ed25519 keys herald writes.
if ! python3 -c 'import cryptography' 2>/dev/null; then
    log "installing cryptography"
    python3 -m pip install --quiet cryptography 2>/dev/null \
        || install_missing scripts/test.sh python3-cryptography
fi

# axe-core: the accessibility checker tests/browser.rs runs on a digest in Chromium.
if [ ! -f target/test-tools/node_modules/axe-core/axe.min.js ]; then
    log "installing axe-core (npm) into target/test-tools"
    mkdir -p target/test-tools
    npm install --silent --no-audit --no-fund --prefix target/test-tools axe-core@4
fi

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
if cargo nextest --version >/dev/null 2>&1; then
    runner=(cargo nextest run --no-fail-fast)
else
    log "cargo-nextest not found: installing it"
    cargo install --locked cargo-nextest >/dev/null 2>&1 && runner=(cargo nextest run --no-fail-fast) || runner=(cargo test --no-fail-fast)
fi

# ---- a throwaway PostgreSQL cluster ----------------------------------------
start_throwaway_pg herald-pg -c synchronous_commit=off -c full_page_writes=off

# ---- checks and tests ---------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
log "tests (every integration test runs on SQLite and on PostgreSQL)"
"${runner[@]}"
