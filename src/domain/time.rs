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

/// Parses an RFC 3339 time ("2026-12-06T07:00:00Z", any offset) into
/// milliseconds; None for anything else.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The API's one time format: every instant herald serialises is an RFC
/// 3339 string in UTC (`#[serde(serialize_with = "rfc3339::ser")]`), and
/// every instant it reads is one (`deserialize_with = "rfc3339::de_option"`).
pub mod rfc3339 {
    use super::{format_rfc3339, parse_rfc3339, Millis};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn ser<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*ms))
    }

    pub fn ser_option<S: Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&format_rfc3339(*ms)),
            None => s.serialize_none(),
        }
    }

    /// An optional RFC 3339 time. A number (milliseconds, as herald's API
    /// once took) is refused with the format to use instead.
    pub fn de_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Text(String),
            Other(serde::de::IgnoredAny),
        }
        match Option::<Given>::deserialize(d)? {
            None => Ok(None),
            Some(Given::Text(t)) => parse_rfc3339(&t).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{:?} is not an RFC 3339 time; write it like 2026-12-06T07:00:00Z",
                    crate::domain::single_line(&t)
                        .chars()
                        .take(40)
                        .collect::<String>()
                ))
            }),
            Some(Given::Other(_)) => Err(serde::de::Error::custom(
                "times are RFC 3339 strings, like \"2026-12-06T07:00:00Z\", not numbers",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_numbers_are_refused() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct T {
            #[serde(
                default,
                deserialize_with = "rfc3339::de_option",
                serialize_with = "rfc3339::ser_option"
            )]
            at: Option<Millis>,
        }
        let t: T = serde_json::from_str(r#"{"at": "2026-12-06T08:00:00+01:00"}"#).unwrap();
        assert_eq!(t.at, Some(1_796_540_400_000));
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"at":"2026-12-06T07:00:00Z"}"#
        );
        let t: T = serde_json::from_str(r#"{"at": null}"#).unwrap();
        assert_eq!(t.at, None);
        let t: T = serde_json::from_str("{}").unwrap();
        assert_eq!(t.at, None);
        // Inputs tried: milliseconds as a number, a date without time, text.
        for bad in [
            r#"{"at": 1796540400000}"#,
            r#"{"at": "2026-12-06"}"#,
            r#"{"at": "soon"}"#,
        ] {
            let e = serde_json::from_str::<T>(bad).err().unwrap().to_string();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }
}
