//! How a mail looks must not depend on which process created it. A digest
//! is rendered by whichever process creates it: the server's scheduler,
//! `POST /api/digests`, or `herald digest send --now` in a shell that may
//! lack the server's environment (`HERALD_SITE_NAME` set only in the
//! service's unit) or read another `herald.toml`. So `serve` records the
//! settings that shape a mail when it starts (`settings.mail_look`), and
//! every other command that renders one (`digest send`, `digest preview`)
//! renders with the recorded settings, saying on stderr which of its own
//! differ. Changing how mail looks means changing the server's
//! configuration and restarting it, as for everything else it does.

use super::{BaseUrl, Config};
use serde::{Deserialize, Serialize};

/// The settings a digest's rendering reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailLook {
    pub site_name: String,
    pub site_url: Option<String>,
    /// The effective public URL (the server's, with its real port when
    /// `base_url` was unset).
    pub base_url: String,
    pub postal_address: Option<String>,
    pub archive_enabled: bool,
    pub timezone: String,
    pub max_articles: u32,
    pub max_article_age_days: u32,
}

/// The `settings` key the server's look is kept under.
pub const SETTING: &str = "mail_look";

impl MailLook {
    pub fn of(config: &Config) -> Self {
        Self {
            site_name: config.site_name.clone(),
            site_url: config.site_url.clone(),
            base_url: config.base_url(),
            postal_address: config.postal_address.clone(),
            archive_enabled: config.archive.enabled,
            timezone: config.schedule.timezone.clone(),
            max_articles: config.digest.max_articles,
            max_article_age_days: config.digest.max_article_age_days,
        }
    }

    /// The keys whose values differ from `other`'s, as `key: "ours" here,
    /// "theirs" in the server`.
    pub fn differences(&self, server: &MailLook) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |key: &str, here: String, there: String| {
            if here != there {
                out.push(format!("{key}: {here} here, {there} in the server"));
            }
        };
        let opt = |v: &Option<String>| match v {
            Some(v) => format!("{v:?}"),
            None => "unset".to_string(),
        };
        cmp(
            "site_name",
            format!("{:?}", self.site_name),
            format!("{:?}", server.site_name),
        );
        cmp("site_url", opt(&self.site_url), opt(&server.site_url));
        cmp(
            "base_url",
            format!("{:?}", self.base_url),
            format!("{:?}", server.base_url),
        );
        cmp(
            "postal_address",
            opt(&self.postal_address),
            opt(&server.postal_address),
        );
        cmp(
            "archive.enabled",
            self.archive_enabled.to_string(),
            server.archive_enabled.to_string(),
        );
        cmp(
            "schedule.timezone",
            format!("{:?}", self.timezone),
            format!("{:?}", server.timezone),
        );
        cmp(
            "digest.max_articles",
            self.max_articles.to_string(),
            server.max_articles.to_string(),
        );
        cmp(
            "digest.max_article_age_days",
            self.max_article_age_days.to_string(),
            server.max_article_age_days.to_string(),
        );
        out
    }

    /// `config` with these settings in place of its own.
    pub fn apply_to(&self, config: &mut Config) {
        config.site_name = self.site_name.clone();
        config.site_name_derived = false;
        config.site_url = self.site_url.clone();
        if let Ok(url) = BaseUrl::parse(&self.base_url) {
            config.base_url = Some(url);
        }
        config.postal_address = self.postal_address.clone();
        config.archive.enabled = self.archive_enabled;
        config.schedule.timezone = self.timezone.clone();
        config.digest.max_articles = self.max_articles;
        config.digest.max_article_age_days = self.max_article_age_days;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_config_takes_the_servers_look_and_names_what_differed() {
        let server = Config {
            site_name: "The Daily News".into(),
            site_url: Some("https://dailynews.example/".into()),
            base_url: Some(BaseUrl::parse("https://letters.dailynews.example").unwrap()),
            postal_address: Some("1 Main St".into()),
            ..Config::default()
        };
        let mut shell = Config::default();
        shell.name_the_site();
        let look = MailLook::of(&server);
        let diff = MailLook::of(&shell).differences(&look);
        assert!(
            diff.iter()
                .any(|d| d.starts_with("site_name: \"the newsletter\" here, \"The Daily News\"")),
            "{diff:?}"
        );
        assert!(diff.iter().any(|d| d.starts_with("base_url:")), "{diff:?}");
        assert!(
            diff.iter()
                .any(|d| d.starts_with("postal_address: unset here")),
            "{diff:?}"
        );
        look.apply_to(&mut shell);
        assert_eq!(MailLook::of(&shell), look);
        assert!(MailLook::of(&shell).differences(&look).is_empty());
    }
}
