use rand::Rng;

/// Longest wait between two attempts.
pub const MAX_DELAY_MS: i64 = 6 * 3_600_000;

/// Exponential backoff with ±20% jitter: `base`, 2×`base`, 4×`base`, … for
/// attempts 1, 2, 3, …, capped at six hours. Jitter spreads retries so a
/// relay that comes back is not hit by every message at once.
pub fn retry_delay_ms(base_ms: i64, attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 30) - 1;
    let delay = base_ms.saturating_mul(1i64 << exp).min(MAX_DELAY_MS);
    let jitter = rand::rng().random_range(0.8..1.2);
    ((delay as f64) * jitter) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_attempt_with_bounded_jitter() {
        for attempt in 1..=5 {
            let expected = 1000 * (1 << (attempt - 1));
            let d = retry_delay_ms(1000, attempt);
            assert!(
                d >= expected * 8 / 10 && d <= expected * 12 / 10,
                "attempt {attempt}: {d}"
            );
        }
        assert!(retry_delay_ms(60_000, 40) <= MAX_DELAY_MS * 12 / 10);
    }
}
