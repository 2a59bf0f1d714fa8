use super::DomainError;

pub const MAX_NAME_CHARS: usize = 100;

/// A subscriber's optional display name: at most 100 characters, no control
/// characters (so no CR/LF can reach the To: header), trimmed.
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
        if trimmed.chars().any(|c| c.is_control()) {
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
}
