//! herald stores every instant as UTC milliseconds since the Unix epoch, the
//! one representation both SQLite and PostgreSQL compare the same way.

use chrono::{DateTime, TimeZone, Utc};

pub type Millis = i64;

pub fn now_millis() -> Millis {
    Utc::now().timestamp_millis()
}

pub fn to_datetime(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn format_rfc3339(ms: Millis) -> String {
    to_datetime(ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
