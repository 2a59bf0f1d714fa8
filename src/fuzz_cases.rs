//! How many cases each proptest fuzz target runs (feeds, inbound mail,
//! webhooks): 64 by default, a few seconds in every test run;
//! `PROPTEST_CASES=N` runs N, as `scripts/fuzz.sh` does for long runs.

use proptest::prelude::ProptestConfig;

pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}
