//! `HERALD_*` environment variables as configuration values, read as text.
//!
//! figment's own `Env` provider guesses each value's type: `1234567890123`
//! becomes a number and `true` a boolean, so an API token or secret made of
//! digits could not be set, and `0123` would lose its leading zero. Here a
//! value stays the text it was; numbers and booleans are read from that text
//! only where the setting is a number or a boolean (`extract_lossy`). Lists
//! and tables (`HERALD_SMTP_SERVERS='[{url="…"}]'`) are still parsed, since
//! no plain setting starts with `[` or `{`.

use figment::providers::Env;
use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Variables that are not configuration keys.
const NOT_KEYS: &[&str] = &["LOG", "WORKER_THREADS"];

pub struct TextEnv {
    env: Env,
}

impl TextEnv {
    pub fn new() -> Self {
        Self {
            env: Env::prefixed("HERALD_").ignore(NOT_KEYS).split("__"),
        }
    }
}

impl Default for TextEnv {
    fn default() -> Self {
        Self::new()
    }
}

fn as_value(raw: String) -> Value {
    let trimmed = raw.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        if let Ok(parsed @ (Value::Array(..) | Value::Dict(..))) = raw.parse::<Value>() {
            return parsed;
        }
    }
    Value::from(raw)
}

impl Provider for TextEnv {
    fn metadata(&self) -> Metadata {
        self.env.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (key, raw) in self.env.iter() {
            insert(&mut dict, key.as_str(), as_value(raw));
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Puts `value` at the dotted `path` (`delivery.concurrency`), making the
/// tables on the way.
fn insert(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}
