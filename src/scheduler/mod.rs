//! Creates digests on the configured cron schedule, read in the configured
//! time zone. Every process may run a scheduler: the digest's UNIQUE slot
//! makes sure one digest exists per scheduled instant, however many fire.

use crate::config::{Config, ScheduleConfig};
use crate::digest::{self, CreateOutcome};
use crate::store::Store;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("schedule.cron = {0:?} is refused: {1}; write five fields, minute hour day-of-month month weekday, e.g. \"0 7 * * *\" for 07:00 every day")]
    Cron(String, String),
    #[error("schedule.timezone = {0:?} is not a time zone herald knows; write an IANA name such as \"Europe/London\" or \"UTC\"")]
    Timezone(String),
}

/// The five fields of a cron expression with the values each takes.
const CRON_FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 7),
];

/// Which field of `expr` is wrong, in words: the cron library says only
/// "Number out of bounds". Falls back to the library's own message.
fn explain_cron(expr: &str, library: &str) -> String {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 && !expr.trim_start().starts_with('@') {
        return format!(
            "it has {} field{} where five are needed",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" }
        );
    }
    for (field, (name, min, max)) in fields.iter().zip(CRON_FIELDS) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            if let Some(step) = step {
                if !step.parse::<u32>().is_ok_and(|n| n > 0) {
                    return format!("{name} step /{step} must be a whole number of at least 1");
                }
            }
            for bound in range.split('-') {
                if let Ok(n) = bound.parse::<u32>() {
                    if n < min || n > max {
                        return format!("{name} {n} is out of range {min}–{max}");
                    }
                }
            }
        }
    }
    library.to_string()
}

/// A parsed schedule: the cron expression and the zone it is read in.
#[derive(Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    pub fn parse(config: &ScheduleConfig) -> Result<Self, Error> {
        let cron = Cron::new(&config.cron).parse().map_err(|e| {
            Error::Cron(
                config.cron.clone(),
                explain_cron(&config.cron, &e.to_string()),
            )
        })?;
        let tz: Tz = config
            .timezone
            .parse()
            .map_err(|_| Error::Timezone(config.timezone.clone()))?;
        Ok(Self { cron, tz })
    }

    /// The latest scheduled instant in `(now - catch_up, now]`, if any.
    pub fn latest_slot(
        &self,
        now: DateTime<Utc>,
        catch_up: ChronoDuration,
    ) -> Option<DateTime<Utc>> {
        let mut cursor = (now - catch_up).with_timezone(&self.tz);
        let mut latest = None;
        // Bounded: a schedule firing every minute has at most a few thousand
        // slots in any sane catch-up window.
        for _ in 0..10_000 {
            let next = self.cron.find_next_occurrence(&cursor, false).ok()?;
            if next.with_timezone(&Utc) > now {
                break;
            }
            latest = Some(next.with_timezone(&Utc));
            cursor = next;
        }
        latest
    }

    /// The slot a scheduled instant belongs to: its wall-clock time in the
    /// schedule's zone. An hour that happens twice when clocks go back thus
    /// names one slot, so at most one digest is created for it.
    pub fn slot_name(&self, at: DateTime<Utc>) -> String {
        format!(
            "schedule:{} {}",
            at.with_timezone(&self.tz).format("%Y-%m-%dT%H:%M"),
            self.tz.name()
        )
    }

    /// Upcoming instants after `from`, for `herald digest status` and tests.
    pub fn upcoming(&self, from: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = from.with_timezone(&self.tz);
        while out.len() < count {
            match self.cron.find_next_occurrence(&cursor, false) {
                Ok(next) => {
                    out.push(next.with_timezone(&Utc));
                    cursor = next;
                }
                Err(_) => break,
            }
        }
        out
    }
}

pub async fn run(
    store: Store,
    config: Arc<Config>,
    schedule: Schedule,
    wake_worker: Arc<Notify>,
    cancel: CancellationToken,
) {
    let catch_up = ChronoDuration::seconds(config.schedule.catch_up_secs as i64);
    let tick = Duration::from_secs(config.schedule.tick_secs.max(1));
    let mut last_handled: Option<DateTime<Utc>> = None;
    tracing::info!(cron = %config.schedule.cron, timezone = %config.schedule.timezone, "scheduler started");
    loop {
        let now = Utc::now();
        if let Some(slot) = schedule.latest_slot(now, catch_up) {
            if last_handled != Some(slot) {
                let name = schedule.slot_name(slot);
                let span = tracing::info_span!("digest_run", slot = %name);
                let created = digest::create(&store, &config, &name, slot.timestamp_millis())
                    .instrument(span)
                    .await;
                match created {
                    Ok(CreateOutcome::Created(id)) => {
                        tracing::info!(digest_id = id, "scheduled digest queued");
                        wake_worker.notify_one();
                        last_handled = Some(slot);
                    }
                    Ok(CreateOutcome::AlreadyExists(id)) => {
                        tracing::debug!(digest_id = id, "slot already has its digest");
                        last_handled = Some(slot);
                    }
                    Ok(CreateOutcome::NothingNew(quiet)) => {
                        tracing::info!(
                            held_back = quiet.held_back,
                            too_old = quiet.too_old,
                            "{quiet}; nothing to send"
                        );
                        last_handled = Some(slot);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not create the scheduled digest; will retry")
                    }
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
    tracing::info!("scheduler stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(cron: &str, tz: &str) -> Schedule {
        Schedule::parse(&ScheduleConfig {
            cron: cron.into(),
            timezone: tz.into(),
            ..ScheduleConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn seven_oclock_london_fires_once_on_each_daylight_saving_change_day() {
        let s = schedule("0 7 * * *", "Europe/London");
        // Clocks go forward on 29 March 2026 and back on 25 October 2026.
        let spring = s.upcoming(Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap(), 3);
        assert_eq!(
            spring,
            vec![
                // Clocks went forward at 01:00 UTC: 07:00 that day is BST.
                Utc.with_ymd_and_hms(2026, 3, 29, 6, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 3, 30, 6, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 3, 31, 6, 0, 0).unwrap(),
            ]
        );
        let autumn = s.upcoming(Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap(), 2);
        assert_eq!(
            autumn,
            vec![
                // Clocks went back at 01:00 UTC: 07:00 that day is GMT.
                Utc.with_ymd_and_hms(2026, 10, 25, 7, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 10, 26, 7, 0, 0).unwrap(),
            ]
        );
    }

    #[test]
    fn a_time_in_the_repeated_hour_names_one_slot() {
        // 01:30 happens twice in London on 25 October 2026; whatever instants
        // the cron library yields, they name the same slot, and the UNIQUE
        // slot lets only one digest exist for it.
        let s = schedule("30 1 * * *", "Europe/London");
        let fires = s.upcoming(Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap(), 3);
        let names: Vec<String> = fires.iter().map(|t| s.slot_name(*t)).collect();
        let on_the_day: std::collections::BTreeSet<_> =
            names.iter().filter(|n| n.contains("2026-10-25")).collect();
        assert_eq!(on_the_day.len(), 1, "{names:?}");
        assert_eq!(
            s.slot_name(Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap()),
            s.slot_name(Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap())
        );
    }

    #[test]
    fn latest_slot_respects_the_catch_up_window() {
        let s = schedule("0 7 * * *", "UTC");
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 7, 30, 0).unwrap();
        assert_eq!(
            s.latest_slot(now, ChronoDuration::hours(1)),
            Some(Utc.with_ymd_and_hms(2026, 5, 1, 7, 0, 0).unwrap())
        );
        assert_eq!(s.latest_slot(now, ChronoDuration::minutes(10)), None);
    }

    #[test]
    fn rejects_bad_expressions_and_zones() {
        let bad_cron = ScheduleConfig {
            cron: "every morning".into(),
            ..ScheduleConfig::default()
        };
        assert!(matches!(Schedule::parse(&bad_cron), Err(Error::Cron(..))));
        let bad_tz = ScheduleConfig {
            timezone: "Mars/Olympus".into(),
            ..ScheduleConfig::default()
        };
        assert!(matches!(Schedule::parse(&bad_tz), Err(Error::Timezone(..))));
    }

    #[test]
    fn a_bad_cron_field_is_named_with_its_range() {
        for (cron, says) in [
            ("61 7 * * *", "minute 61 is out of range 0–59"),
            ("0 24 * * *", "hour 24 is out of range 0–23"),
            ("0 7 0 * *", "day of month 0 is out of range 1–31"),
            ("0 7 * 13 *", "month 13 is out of range 1–12"),
            ("0 7 * * 1-9", "weekday 9 is out of range 0–7"),
            ("0 7,30 * * *", "hour 30 is out of range 0–23"),
            (
                "*/0 7 * * *",
                "minute step /0 must be a whole number of at least 1",
            ),
            ("0 7 * *", "it has 4 fields where five are needed"),
        ] {
            let config = ScheduleConfig {
                cron: cron.into(),
                ..ScheduleConfig::default()
            };
            let message = Schedule::parse(&config)
                .err()
                .unwrap_or_else(|| panic!("{cron:?} was accepted"))
                .to_string();
            assert!(
                message.starts_with(&format!(
                    "schedule.cron = {cron:?} is refused: {says}; write five fields"
                )),
                "{cron}: {message}"
            );
        }
    }
}
