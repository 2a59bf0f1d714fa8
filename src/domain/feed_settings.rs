//! The numbers an operator sets on a feed, range-checked wherever they come
//! from (the API, the CLI, the configuration), never cast: a number out of
//! range is refused with the range, not wrapped to something else.

use super::DomainError;

/// Seconds between two polls of a feed: a minute to a week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollInterval(u32);

impl PollInterval {
    pub const MIN_SECS: u64 = 60;
    pub const MAX_SECS: u64 = 7 * 86_400;
    const OUT_OF_RANGE: DomainError = DomainError::Invalid(
        "the poll interval must be a whole number of seconds from 60 to 604800 (a week)",
    );

    pub fn from_secs(secs: u64) -> Result<Self, DomainError> {
        if !(Self::MIN_SECS..=Self::MAX_SECS).contains(&secs) {
            return Err(Self::OUT_OF_RANGE);
        }
        u32::try_from(secs)
            .map(Self)
            .map_err(|_| Self::OUT_OF_RANGE)
    }

    /// A JSON number; anything but a whole number in range is refused.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, DomainError> {
        value
            .as_u64()
            .ok_or(Self::OUT_OF_RANGE)
            .and_then(Self::from_secs)
    }

    /// A command-line value (clap's `value_parser`).
    pub fn from_arg(arg: &str) -> Result<Self, DomainError> {
        arg.trim()
            .parse::<u64>()
            .map_err(|_| Self::OUT_OF_RANGE)
            .and_then(Self::from_secs)
    }

    /// A value read back from the database; rows written before the range
    /// check existed are brought into range rather than trusted.
    pub fn from_stored(secs: i64) -> Self {
        let secs = secs.clamp(Self::MIN_SECS as i64, Self::MAX_SECS as i64);
        Self(u32::try_from(secs).unwrap_or(Self::MAX_SECS as u32))
    }

    pub fn secs(self) -> i64 {
        i64::from(self.0)
    }

    pub fn millis(self) -> i64 {
        i64::from(self.0) * 1000
    }
}

/// At a feed's first poll, items published up to this many days earlier go
/// into the next digest: 0 to 365.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackfillDays(u16);

impl BackfillDays {
    pub const MAX: u64 = 365;
    const OUT_OF_RANGE: DomainError =
        DomainError::Invalid("the backfill must be a whole number of days from 0 to 365");

    pub fn from_days(days: u64) -> Result<Self, DomainError> {
        if days > Self::MAX {
            return Err(Self::OUT_OF_RANGE);
        }
        u16::try_from(days)
            .map(Self)
            .map_err(|_| Self::OUT_OF_RANGE)
    }

    pub fn from_json(value: &serde_json::Value) -> Result<Self, DomainError> {
        value
            .as_u64()
            .ok_or(Self::OUT_OF_RANGE)
            .and_then(Self::from_days)
    }

    pub fn from_arg(arg: &str) -> Result<Self, DomainError> {
        arg.trim()
            .parse::<u64>()
            .map_err(|_| Self::OUT_OF_RANGE)
            .and_then(Self::from_days)
    }

    pub fn from_stored(days: i64) -> Self {
        Self(u16::try_from(days.clamp(0, Self::MAX as i64)).unwrap_or(0))
    }

    pub fn days(self) -> i64 {
        i64::from(self.0)
    }

    pub fn millis(self) -> i64 {
        i64::from(self.0) * 86_400_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn feed_numbers_out_of_range_are_refused_never_wrapped() {
        for bad in [
            json!(18446744073709551615u64),
            json!(-1),
            json!(59),
            json!(604801),
            json!(90.5),
            json!(1e30),
            json!("900"),
            json!(null),
        ] {
            let e = PollInterval::from_json(&bad).unwrap_err();
            assert!(e.to_string().contains("60 to 604800"), "{bad}");
        }
        assert_eq!(PollInterval::from_json(&json!(60)).unwrap().secs(), 60);
        assert_eq!(
            PollInterval::from_json(&json!(604800)).unwrap().secs(),
            604800
        );
        for bad in [
            json!(18446744073709551615u64),
            json!(-1),
            json!(366),
            json!(1.5),
        ] {
            let e = BackfillDays::from_json(&bad).unwrap_err();
            assert!(e.to_string().contains("0 to 365"), "{bad}");
        }
        assert_eq!(BackfillDays::from_json(&json!(0)).unwrap().days(), 0);
        assert!(PollInterval::from_arg("18446744073709551615").is_err());
        assert!(PollInterval::from_arg("-5").is_err());
        assert!(BackfillDays::from_arg("99999999999999999999999").is_err());
        // Rows written before the check: -1 (a wrapped u64::MAX) polls once
        // a minute at most, not every second.
        assert_eq!(PollInterval::from_stored(-1).secs(), 60);
        assert_eq!(PollInterval::from_stored(i64::MAX).secs(), 604800);
        assert_eq!(BackfillDays::from_stored(-1).days(), 0);
    }
}
