#!/usr/bin/env bash
# Long runs of herald's property-based fuzz targets (not part of every CI
# run: scripts/test.sh runs the same properties with a few hundred cases).
#
#   scripts/fuzz.sh [SECONDS] [CASES]
#
# Runs each target below with CASES cases (default 1000000) in a release
# build, giving each an equal share of SECONDS (default 600) and stopping it
# there whatever happens. A failure prints the minimal failing input
# proptest found; proptest also records it under proptest-regressions/ so
# the next run tries it first.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
cases=${2:-1000000}
targets=(
    # the signup parser and the address rules
    web::subscribe::tests::signup_form_parser_never_panics_on_arbitrary_bodies
    web::subscribe::tests::signup_form_parser_never_panics_on_arbitrary_fields
    domain::email::tests::every_accepted_address_fits_an_envelope_and_a_to_header
    # the article and feed cleaning path
    feeds::fuzz::fuzz_rss_items_come_out_safe_or_not_at_all
    feeds::fuzz::fuzz_json_feed_items_come_out_safe_or_not_at_all
    feeds::fuzz::fuzz_arbitrary_bytes_never_panic_the_feed_reader
    feeds::fuzz::fuzz_item_html_is_sanitised_within_the_limits
    # inbound mail: MIME in, decision out
    inbound::fuzz::fuzz_inbound_classification_keeps_each_token_on_its_channel
    # the relay webhooks: signatures, credentials and payload parsers
    webhooks::fuzz::fuzz_sns_messages_are_accepted_only_as_signed
    webhooks::fuzz::fuzz_sendgrid_posts_are_accepted_only_as_signed
    webhooks::fuzz::fuzz_postmark_accepts_only_the_exact_credentials
    webhooks::fuzz::fuzz_arbitrary_bytes_never_panic_the_webhook_parsers
)
share=$(( secs / ${#targets[@]} ))
echo "fuzzing ${#targets[@]} targets, ${share}s each, up to ${cases} cases each" >&2
cargo nextest run --release --lib --no-run >/dev/null 2>&1 || cargo nextest run --release --lib --no-run
failed=0
for t in "${targets[@]}"; do
    start=$(date +%s)
    set +e
    # SIGINT: nextest stops the test process it started, then exits.
    PROPTEST_CASES=$cases timeout --signal=INT --kill-after=15 "$share" \
        cargo nextest run --release --lib --no-fail-fast -E "test(=$t)" >/tmp/herald-fuzz.log 2>&1
    rc=$?
    set -e
    took=$(( $(date +%s) - start ))
    case $rc in
        0) echo "ok       $t: all ${cases} cases in ${took}s" ;;
        124 | 130 | 137) echo "ok       $t: no failure in ${took}s (time bound reached before ${cases} cases)" ;;
        *) echo "FAILED   $t (exit $rc):"; tail -40 /tmp/herald-fuzz.log; failed=1 ;;
    esac
done
exit "$failed"
