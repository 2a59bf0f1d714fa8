use super::DomainError;
use validator::ValidateEmail;

/// An email address that passed validation and normalisation: surrounding
/// whitespace trimmed, the domain lower-cased (the local part is kept as
/// typed: RFC 5321 lets servers treat it case-sensitively), at most 254
/// characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriberEmail(String);

pub const MAX_EMAIL_LEN: usize = 254;

impl SubscriberEmail {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(DomainError::Invalid("Please enter your email address."));
        }
        if trimmed.chars().any(|c| c.is_control()) {
            return Err(DomainError::Invalid(
                "The email address contains characters that are not allowed.",
            ));
        }
        if trimmed.len() > MAX_EMAIL_LEN {
            return Err(DomainError::Invalid(
                "The email address is too long (at most 254 characters).",
            ));
        }
        let Some((local, domain)) = trimmed.rsplit_once('@') else {
            return Err(DomainError::Invalid(
                "That does not look like an email address.",
            ));
        };
        let normalised = format!("{local}@{}", domain.to_lowercase());
        if !normalised.validate_email() || !domain.contains('.') {
            return Err(DomainError::Invalid(
                "That does not look like an email address.",
            ));
        }
        Ok(Self(normalised))
    }

    /// Trusts a value read back from the database, where only parsed
    /// addresses are ever written.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        let e = SubscriberEmail::parse("  Reader.One@Example.COM \n").unwrap();
        assert_eq!(e.as_str(), "Reader.One@example.com");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "reader@",
            "reader@@example.com",
            "reader@example",
            "reader example@example.com",
            "reader@example.com\r\nBcc: victim@example.com",
            "reader@exa\u{0}mple.com",
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn rejects_addresses_over_254_characters() {
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(200));
        assert!(long.len() > 254);
        assert!(SubscriberEmail::parse(&long).is_err());
    }
}
