use super::DomainError;

pub const MAX_NAME_CHARS: usize = 100;

/// A subscriber's optional display name: at most 100 characters, trimmed, no
/// control characters (so no CR/LF can reach the To: header), no line or
/// paragraph separators, and no bidirectional embeddings, overrides or
/// isolates (U+202A–U+202E, U+2066–U+2069), which would make a name such as
/// "\u{202E}moc.elpmaxe" read as something else in a mail client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberName(String);

impl SubscriberName {
    /// `Ok(None)` for an empty or whitespace-only name.
    pub fn parse_optional(input: Option<&str>) -> Result<Option<Self>, DomainError> {
        let Some(raw) = input else { return Ok(None) };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().any(is_refused) {
            return Err(DomainError::Invalid(
                "The name contains characters that are not allowed.",
            ));
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(DomainError::Invalid(
                "The name is too long (at most 100 characters).",
            ));
        }
        Ok(Some(Self(trimmed.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that change how the text around them reads or breaks.
fn is_refused(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_name_is_none() {
        assert_eq!(SubscriberName::parse_optional(None).unwrap(), None);
        assert_eq!(SubscriberName::parse_optional(Some("  ")).unwrap(), None);
    }

    #[test]
    fn rejects_control_characters_and_long_names() {
        assert!(SubscriberName::parse_optional(Some("Ann\r\nBcc: x@example.com")).is_err());
        assert!(SubscriberName::parse_optional(Some("Ann\u{7}")).is_err());
        assert!(SubscriberName::parse_optional(Some(&"é".repeat(101))).is_err());
        assert_eq!(
            SubscriberName::parse_optional(Some(&"é".repeat(100)))
                .unwrap()
                .unwrap()
                .as_str()
                .chars()
                .count(),
            100
        );
    }

    #[test]
    fn display_names_with_bidi_overrides_or_separators_are_refused() {
        for bad in [
            "Ann \u{202E}nosmaS",
            "\u{202D}Ann",
            "Ann\u{202A}x",
            "Ann\u{2066}x\u{2069}",
            "Ann\u{2028}Bcc: x@example.com",
            "Ann\u{2029}x",
            "Ann\u{85}x",
        ] {
            assert!(
                SubscriberName::parse_optional(Some(bad)).is_err(),
                "accepted {bad:?}"
            );
        }
        // Right-to-left names themselves are fine.
        assert!(SubscriberName::parse_optional(Some("\u{5D3}\u{5E0}\u{5D4}")).is_ok());
    }
}
