use super::DomainError;

/// An email address herald can mail: parsed, normalised, and shaped so that
/// it fits an SMTP envelope and a `To:` header (`lettre::Address` accepts
/// every value; the property test in this module checks it).
///
/// What is kept: the local part as typed (RFC 5321 lets servers treat it
/// case-sensitively, so mail goes to exactly what the reader typed), the
/// domain in its IDNA ASCII form, lower-cased (`user@Exämple.COM` is kept as
/// `user@xn--exmple-cua.com`, which every relay accepts without SMTPUTF8).
///
/// What is refused, each with a message the reader can act on: address
/// literals and numeric domains (`user@[127.0.0.1]`, `a@127.0.0.1`,
/// `a@1.2`), single-label domains (`a@localhost`), empty or dotted-edge
/// labels and local parts (`a..b@example.com`, `.a@example.com`,
/// `a@example..com`), domain labels that break the rules of RFC 1035 and
/// RFC 5891 after normalisation (see `ascii_domain`: `a@bad.tld-2`,
/// `a@yy--0.example`, `a@x-.example`), special-use names (`.arpa`),
/// quoted local parts, non-ASCII local parts (deliverable only through
/// SMTPUTF8 relays, which herald cannot count on), control characters, and
/// anything over 254 characters.
///
/// The identity of an address is [`SubscriberEmail::key`], not its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriberEmail(String);

pub const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 63;

const NOT_AN_ADDRESS: &str = "That does not look like an email address.";

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
            return Err(DomainError::Invalid(NOT_AN_ADDRESS));
        };
        check_local_part(local)?;
        let domain = ascii_domain(domain)?;
        let address = format!("{local}@{domain}");
        if address.len() > MAX_EMAIL_LEN {
            return Err(DomainError::Invalid(
                "The email address is too long (at most 254 characters).",
            ));
        }
        // The rules above are meant to be stricter than lettre's; this keeps
        // them honest should they ever drift apart.
        if lettre::Address::new(local, &domain).is_err() {
            return Err(DomainError::Invalid(NOT_AN_ADDRESS));
        }
        Ok(Self(address))
    }

    /// Trusts a value read back from the database, where only parsed
    /// addresses are ever written.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity of the address: what makes two signups one subscriber,
    /// what the resend limit and unsubscribe apply to. The local part is
    /// compared case-insensitively (`Victim@` and `victim@` are one reader,
    /// as every mainstream mailbox provider treats them) and the domain in
    /// its IDNA ASCII form (`exämple.com` and `xn--exmple-cua.com` are one).
    pub fn key(&self) -> String {
        email_key(&self.0)
    }

    /// The mailbox that mail to this address lands in, as far as herald can
    /// tell: what the confirmation resend limit counts per, so that
    /// `victim+1@`, `victim+2@` … and `v.ictim@gmail.com` get one
    /// confirmation mail between them, not one each. From [`key`](Self::key):
    /// a `+tag` is dropped (`victim+news@` is `victim@`), and for the
    /// providers that ignore dots in the local part (Gmail, under
    /// gmail.com and its old name googlemail.com) the dots are dropped and
    /// the domain is gmail.com. The address itself is unchanged: it is
    /// stored as typed and stays its own subscriber.
    pub fn mailbox_key(&self) -> String {
        mailbox_key(&self.key())
    }
}

/// Providers whose mailboxes ignore dots in the local part, and the one
/// domain each is known by.
const DOTLESS_PROVIDERS: &[(&str, &str)] =
    &[("gmail.com", "gmail.com"), ("googlemail.com", "gmail.com")];

/// [`SubscriberEmail::mailbox_key`] from an address key.
fn mailbox_key(key: &str) -> String {
    let Some((local, domain)) = key.rsplit_once('@') else {
        return key.to_string();
    };
    let local = local.split_once('+').map_or(local, |(base, _tag)| base);
    match DOTLESS_PROVIDERS.iter().find(|(name, _)| *name == domain) {
        Some((_, canonical)) => format!("{}@{canonical}", local.replace('.', "")),
        None => format!("{local}@{domain}"),
    }
}

/// [`SubscriberEmail::key`] of a stored address, also of rows written before
/// herald kept the domain in ASCII (their key is filled in at start-up).
/// An address as a page shows it to whoever holds a link for it:
/// `a•••@example.org`, enough for its owner to recognise, too little for
/// anybody else to learn it from a forwarded link.
pub fn masked_address(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}\u{2022}\u{2022}\u{2022}@{domain}")
        }
        None => "\u{2022}\u{2022}\u{2022}".to_string(),
    }
}

pub fn email_key(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_lowercase());
            format!("{}@{domain}", local.to_lowercase())
        }
        None => address.to_lowercase(),
    }
}

/// RFC 5322 `atext` (ASCII only): what a dot-atom local part is made of.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// Why an internationalised local part (RFC 6531: `jürgen@example.org`) is
/// refused rather than kept: mail to it needs SMTPUTF8 on every hop, and
/// herald sends through whatever relay the operator has, which may not offer
/// it; such a reader would be confirmed and then never get a digest. The
/// domain is another matter: it has an ASCII form, kept instead.
const INTERNATIONAL_LOCAL_PART: &str = "Addresses with letters outside ASCII before the @ cannot be used yet: herald sends through relays that may not support SMTPUTF8. Please use the ASCII address your provider gives you.";

fn check_local_part(local: &str) -> Result<(), DomainError> {
    if !local.is_ascii() {
        return Err(DomainError::Invalid(INTERNATIONAL_LOCAL_PART));
    }
    if local.is_empty() || !local.chars().all(|c| c == '.' || is_atext(c)) {
        return Err(DomainError::Invalid(NOT_AN_ADDRESS));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(DomainError::Invalid(
            "The part before the @ cannot start or end with a dot, or have two dots in a row.",
        ));
    }
    if local.len() > MAX_LOCAL_LEN {
        return Err(DomainError::Invalid(
            "The part before the @ is too long (at most 64 characters).",
        ));
    }
    Ok(())
}

/// The domain as IDNA ASCII, lower-cased, or why it cannot receive mail.
///
/// The rules are those of a host name in DNS (RFC 1035, RFC 1123) and of an
/// internationalised one (RFC 5891), applied to the ASCII form, after UTS 46
/// mapping has normalised what was typed (full-width letters and hyphens,
/// upper case): so `yy－－0.tld` is judged as the `yy--0.tld` it becomes.
/// Each label is letters, digits and hyphens, at most 63 octets, with no
/// hyphen first or last; `--` in positions 3–4 marks an A-label, so it is
/// allowed only in an `xn--` label that decodes to a valid U-label (of
/// the letters, marks and digits IDNA2008 allows) and encodes back to
/// itself. The top-level label is letters only or an
/// A-label (every delegated TLD is one or the other, and a numeric one is
/// an IP address in disguise). Special-use names that cannot receive mail
/// from the internet (`.arpa`, `.invalid`, `.localhost`, `.onion`) are
/// refused; `.example` and `.test` are kept for documentation and tests.
/// Last, `idna`'s strict UTS 46 check (CheckHyphens, STD3 rules, DNS
/// lengths) must agree, so a rule missed here cannot let a name through.
fn ascii_domain(domain: &str) -> Result<String, DomainError> {
    const LITERAL: &str =
        "Please use an address with a domain name: addresses at an IP address cannot get our mail.";
    const NOT_A_DOMAIN: &str = "The domain after the @ is not a valid domain name.";
    if domain.is_empty() {
        return Err(DomainError::Invalid(NOT_AN_ADDRESS));
    }
    if domain.starts_with('[') || domain.parse::<std::net::IpAddr>().is_ok() {
        return Err(DomainError::Invalid(LITERAL));
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| {
        let claims_a_label = domain
            .split('.')
            .any(|l| l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--")));
        DomainError::Invalid(if claims_a_label {
            NOT_AN_A_LABEL
        } else {
            NOT_A_DOMAIN
        })
    })?;
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(DomainError::Invalid(
            "The domain after the @ cannot start or end with a dot, or have two dots in a row.",
        ));
    }
    if labels.len() < 2 {
        return Err(DomainError::Invalid(
            "That does not look like an email address: the domain needs a dot, as in example.com.",
        ));
    }
    for label in &labels {
        check_label(label)?;
    }
    let tld = labels.last().copied().unwrap_or_default();
    // A numeric top-level label is an IP address in disguise (`a@1.2`,
    // `a@10.0.0.5`): no top-level domain is all digits.
    if tld.chars().all(|c| c.is_ascii_digit()) {
        return Err(DomainError::Invalid(LITERAL));
    }
    if !(tld.chars().all(|c| c.is_ascii_alphabetic()) || tld.starts_with("xn--")) {
        return Err(DomainError::Invalid(
            "The domain after the @ does not end in a top-level domain: those are letters only, as in .com or .org.",
        ));
    }
    if SPECIAL_USE_TLDS.contains(&tld) {
        return Err(DomainError::Invalid(
            "The domain after the @ is reserved (.arpa, .invalid, .localhost or .onion) and cannot get our mail.",
        ));
    }
    let strict = idna::uts46::Uts46::new().to_ascii(
        ascii.as_bytes(),
        idna::uts46::AsciiDenyList::STD3,
        idna::uts46::Hyphens::Check,
        idna::uts46::DnsLength::Verify,
    );
    if !strict.is_ok_and(|s| s == ascii) {
        return Err(DomainError::Invalid(NOT_A_DOMAIN));
    }
    Ok(ascii)
}

/// Top-level names set aside for special use (RFC 6761, RFC 7686, RFC 3172)
/// that no mail from the internet can reach.
const SPECIAL_USE_TLDS: &[&str] = &["arpa", "invalid", "localhost", "onion"];

/// One label of a domain in its ASCII form: RFC 1035's letters, digits and
/// hyphens, RFC 5891's rules on hyphens and A-labels.
fn check_label(label: &str) -> Result<(), DomainError> {
    if label.len() > MAX_LABEL_LEN {
        return Err(DomainError::Invalid(
            "A part of the domain after the @ is too long: at most 63 characters between dots.",
        ));
    }
    if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(DomainError::Invalid(
            "The domain after the @ is not a valid domain name.",
        ));
    }
    check_hyphens(label)?;
    if label.starts_with("xn--") {
        // The rules hold for the name as typed too (RFC 5891, 4.2.3.1):
        // `-ü.example` is refused as `-x.example` is.
        let (unicode, _) = idna::domain_to_unicode(label);
        check_hyphens(&unicode)?;
        if !unicode.chars().all(is_idna2008_letter_or_digit) {
            return Err(DomainError::Invalid(
                "The domain after the @ has a character that internationalised domain names cannot contain (a symbol, emoji or punctuation).",
            ));
        }
        if !is_valid_a_label(label) {
            return Err(DomainError::Invalid(NOT_AN_A_LABEL));
        }
    }
    Ok(())
}

const NOT_AN_A_LABEL: &str =
    "A part of the domain after the @ starts with xn-- but is not a valid internationalised name.";

/// No hyphen first or last, and none in both the third and fourth
/// positions except in the `xn--` that marks an A-label.
fn check_hyphens(label: &str) -> Result<(), DomainError> {
    if label.starts_with('-') || label.ends_with('-') {
        return Err(DomainError::Invalid(
            "A part of the domain after the @ cannot start or end with a hyphen.",
        ));
    }
    let third_and_fourth: String = label.chars().skip(2).take(2).collect();
    if third_and_fourth == "--" && !label.starts_with("xn--") {
        return Err(DomainError::Invalid(
            "A part of the domain after the @ cannot have two hyphens as its third and fourth characters.",
        ));
    }
    Ok(())
}

/// Whether a character of a U-label is one IDNA2008 allows (RFC 5892):
/// ASCII letters, digits and hyphen, and otherwise letters, combining marks
/// and decimal digits (`LetterDigits`), with the exceptions of its section
/// 2.6. UTS 46, which `idna` follows, also lets through symbols, emoji and
/// punctuation (`☃`, U+2010 HYPHEN) that no registry under IDNA2008 takes,
/// so an address under such a name can never be delivered. The characters
/// RFC 5892 allows only in context (U+00B7, Greek keraia, Hebrew geresh
/// and gershayim, KATAKANA MIDDLE DOT, the joiners) are let through here;
/// `idna` checks the joiners' context.
fn is_idna2008_letter_or_digit(c: char) -> bool {
    use icu_properties::props::GeneralCategory as Gc;
    const ALLOWED: &[char] = &[
        '\u{00DF}', '\u{03C2}', '\u{06FD}', '\u{06FE}', '\u{0F0B}', '\u{3007}', // PVALID
        '\u{00B7}', '\u{0375}', '\u{05F3}', '\u{05F4}', '\u{30FB}', // CONTEXTO
        '\u{200C}', '\u{200D}', // CONTEXTJ
    ];
    const REFUSED: &[char] = &[
        '\u{0640}', '\u{07FA}', '\u{302E}', '\u{302F}', '\u{3031}', '\u{3032}', '\u{3033}',
        '\u{3034}', '\u{3035}', '\u{303B}',
    ];
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '-';
    }
    if ALLOWED.contains(&c) {
        return true;
    }
    if REFUSED.contains(&c) {
        return false;
    }
    matches!(
        icu_properties::CodePointMapData::<Gc>::new().get(c),
        Gc::LowercaseLetter
            | Gc::OtherLetter
            | Gc::ModifierLetter
            | Gc::NonspacingMark
            | Gc::SpacingMark
            | Gc::DecimalNumber
    )
}

/// Whether an `xn--` label decodes to a U-label that RFC 5891 allows (not
/// all ASCII, no hyphen first, last or in positions 3–4, NFC) and encodes
/// back to exactly this label.
fn is_valid_a_label(label: &str) -> bool {
    let (unicode, decoded) = idna::uts46::Uts46::new().to_unicode(
        label.as_bytes(),
        idna::uts46::AsciiDenyList::STD3,
        idna::uts46::Hyphens::Check,
    );
    decoded.is_ok()
        && !unicode.is_ascii()
        && idna::domain_to_ascii(&unicode).is_ok_and(|again| again == label)
}

impl std::fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_normalises() {
        let e = SubscriberEmail::parse("  Reader.One@Example.COM \n").unwrap();
        assert_eq!(e.as_str(), "Reader.One@example.com");
        let e = SubscriberEmail::parse("user@Exämple.com").unwrap();
        assert_eq!(e.as_str(), "user@xn--exmple-cua.com");
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
            "\"quoted\"@example.com",
            "jos\u{e9}@example.com",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
            "a@\u{202e}example.com",
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    /// The addresses of issue 10, item 9: each refused with a message that
    /// says what to fix.
    #[test]
    fn unmailable_addresses_are_refused_with_a_reason() {
        for (bad, says) in [
            ("user@[127.0.0.1]", "IP address"),
            ("user@[10.0.0.5]", "IP address"),
            ("user@[IPv6:::1]", "IP address"),
            ("a@127.0.0.1", "IP address"),
            ("a@1.2", "IP address"),
            ("a..b@example.com", "two dots in a row"),
            (".a@example.com", "start or end with a dot"),
            ("a.@example.com", "start or end with a dot"),
            ("a@example..com", "two dots in a row"),
            ("a@.example.com", "start or end with a dot"),
            ("a@example.com.", "start or end with a dot"),
            ("a@localhost", "needs a dot"),
        ] {
            match SubscriberEmail::parse(bad) {
                Ok(e) => panic!("accepted {bad:?} as {e}"),
                Err(DomainError::Invalid(message)) => {
                    assert!(message.contains(says), "{bad:?}: {message}")
                }
            }
        }
    }

    /// Issue 17, item 18: the label rules of RFC 1035 and RFC 5891, judged
    /// on the ASCII form after normalisation. Tried: a hyphen last in the
    /// TLD's neighbourhood and in a label, `--` in positions 3–4 typed in
    /// ASCII, full-width (U+FF0D) and mixed, upper-case `XN--`, A-labels
    /// that do not decode or decode to ASCII, a U-label with a leading
    /// hyphen or `--` in positions 3–4, a 64-octet label, TLDs with digits
    /// or hyphens, `.arpa` (and reverse-DNS names under it), the other
    /// special-use names, and an internationalised local part.
    #[test]
    fn domain_labels_follow_rfc_1035_and_5891() {
        let long_label = format!("a@{}.example", "b".repeat(64));
        for (bad, says) in [
            ("me@bad.tld-2", "top-level domain"),
            ("me@bad.t2", "top-level domain"),
            ("me@bad-.example", "start or end with a hyphen"),
            ("me@-bad.example", "start or end with a hyphen"),
            ("me@bad.example-", "start or end with a hyphen"),
            ("me@yy--0.tld", "third and fourth"),
            ("me@yy\u{FF0D}\u{FF0D}0.tld", "third and fourth"),
            ("me@yy-\u{FF0D}0.tld", "third and fourth"),
            ("me@YY--0.example.org", "third and fourth"),
            ("me@r4--sn-abc.example.com", "third and fourth"),
            ("me@xn--a.example", "xn--"),
            ("me@xn--abc.example", "xn--"),
            ("me@XN--ZZ.example", "xn--"),
            ("me@example.xn--zz", "xn--"),
            ("me@xn--u-ccb.example", "xn--"),
            ("me@-\u{fc}.example", "start or end with a hyphen"),
            ("me@\u{fc}x--y.example", "third and fourth"),
            ("me@yy\u{2010}\u{2010}0.example", "cannot contain"),
            ("me@\u{2603}.example", "cannot contain"),
            ("me@xn--ls8h.example", "cannot contain"),
            ("me@a\u{2665}b.example", "cannot contain"),
            (long_label.as_str(), "at most 63 characters"),
            ("me@x.arpa", ".arpa"),
            ("me@1.0.0.127.in-addr.arpa", ".arpa"),
            ("me@ip6.ARPA", ".arpa"),
            ("me@x.invalid", "reserved"),
            ("me@x.localhost", "reserved"),
            (
                "me@duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
                "reserved",
            ),
            ("j\u{fc}rgen@example.org", "SMTPUTF8"),
            ("\u{30E6}\u{30FC}\u{30B6}\u{30FC}@example.jp", "SMTPUTF8"),
        ] {
            match SubscriberEmail::parse(bad) {
                Ok(e) => panic!("accepted {bad:?} as {e}"),
                Err(DomainError::Invalid(message)) => {
                    assert!(message.contains(says), "{bad:?}: {message}")
                }
            }
        }
        for (good, kept) in [
            ("a@xn--bcher-kva.example", "a@xn--bcher-kva.example"),
            ("a@XN--BCHER-KVA.example", "a@xn--bcher-kva.example"),
            ("a@b\u{fc}cher.example", "a@xn--bcher-kva.example"),
            ("a@sub-domain.example.org", "a@sub-domain.example.org"),
            ("a@a1.co", "a@a1.co"),
            ("a@a--b.example", "a@a--b.example"),
            ("a@1a.example", "a@1a.example"),
            ("a@\u{fc}--x.example", "a@xn----x-goa.example"),
            ("a@example.xn--p1ai", "a@example.xn--p1ai"),
            ("a@stra\u{df}e.example", "a@xn--strae-oqa.example"),
            (
                "a@\u{4f8b}\u{3048}.\u{30c6}\u{30b9}\u{30c8}",
                "a@xn--r8jz45g.xn--zckzah",
            ),
            (
                "a@\u{0645}\u{062b}\u{0627}\u{0644}.example",
                "a@xn--mgbh0fb.example",
            ),
            ("a@\u{0924}\u{094d}\u{092f}.example", "a@xn--h2bw3g.example"),
            (
                "a@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}",
                "a@xn--e1afmkfd.xn--p1ai",
            ),
            ("a@sub\u{FF0D}domain.example", "a@sub-domain.example"),
            (
                &format!("a@{}.example", "b".repeat(63)),
                &format!("a@{}.example", "b".repeat(63)),
            ),
        ] {
            assert_eq!(
                SubscriberEmail::parse(good).map(|e| e.as_str().to_string()),
                Ok(kept.to_string()),
                "{good:?}"
            );
        }
    }

    #[test]
    fn rejects_addresses_over_254_characters() {
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(200));
        assert!(long.len() > 254);
        assert!(SubscriberEmail::parse(&long).is_err());
        assert!(SubscriberEmail::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn addresses_differing_only_in_case_or_idna_share_a_key() {
        let key = |s: &str| SubscriberEmail::parse(s).unwrap().key();
        let victim = key("victim@example.com");
        for variant in [
            "Victim@example.com",
            "vIctim@example.com",
            "VICTIM@EXAMPLE.COM",
        ] {
            assert_eq!(key(variant), victim, "{variant}");
        }
        assert_eq!(key("user@exämple.com"), key("user@xn--exmple-cua.com"));
        assert_eq!(key("user@EXÄMPLE.com"), key("user@xn--exmple-cua.com"));
        assert_ne!(key("user1@example.com"), key("user2@example.com"));
        // What the reader typed is what mail goes to.
        assert_eq!(
            SubscriberEmail::parse("Victim@Example.com")
                .unwrap()
                .as_str(),
            "Victim@example.com"
        );
        // Rows stored before the domain was kept in ASCII get the same key.
        assert_eq!(
            email_key("User@Exämple.com"),
            victim_key_of("user@xn--exmple-cua.com")
        );
    }

    /// Issue 16, item 12: sub-addresses and Gmail's dots name one mailbox;
    /// the address and its identity key stay as typed.
    #[test]
    fn sub_addresses_and_gmail_dots_share_a_mailbox_key() {
        let mailbox = |s: &str| SubscriberEmail::parse(s).unwrap().mailbox_key();
        assert_eq!(mailbox("victim@gmail.com"), "victim@gmail.com");
        for variant in [
            "victim+1@gmail.com",
            "victim+6@gmail.com",
            "v.ictim@gmail.com",
            "V.I.C.T.I.M@GMail.com",
            "vic.tim+x+y@googlemail.com",
            "victim+@gmail.com",
            "victim@GoogleMail.com",
        ] {
            assert_eq!(mailbox(variant), "victim@gmail.com", "{variant}");
        }
        // Dots count elsewhere; tags are dropped everywhere.
        assert_eq!(mailbox("v.ictim@example.com"), "v.ictim@example.com");
        assert_eq!(mailbox("V.ictim+a@Example.com"), "v.ictim@example.com");
        assert_ne!(
            mailbox("victim@gmail.com"),
            mailbox("victim@gmail.com.example")
        );
        assert_ne!(mailbox("victim@example.com"), mailbox("victim@gmail.com"));
        // A domain that only ends like Gmail's is not Gmail.
        assert_eq!(mailbox("v.i@notgmail.com"), "v.i@notgmail.com");
        let typed = SubscriberEmail::parse("v.ictim+1@gmail.com").unwrap();
        assert_eq!(typed.as_str(), "v.ictim+1@gmail.com");
        assert_eq!(typed.key(), "v.ictim+1@gmail.com");
        assert_ne!(
            typed.key(),
            SubscriberEmail::parse("victim@gmail.com").unwrap().key()
        );
    }

    fn victim_key_of(s: &str) -> String {
        SubscriberEmail::parse(s).unwrap().key()
    }

    /// Local parts and domains made of the characters that matter (dots,
    /// brackets, digits, case, non-ASCII, `@`, quotes, hyphens).
    fn address_like() -> impl Strategy<Value = String> {
        let local = "[a-zA-Z0-9.!#+_\"\\[\\]é-]{0,12}";
        let label = "[a-zA-Z0-9äÉ_\\[\\]:-]{0,8}";
        let domain = prop::collection::vec(label, 1..5).prop_map(|l| l.join("."));
        // Mostly well-formed: most of these are accepted, so the property
        // below is checked on many addresses, not a few.
        let plausible_local = "[a-zA-Z0-9][a-zA-Z0-9.+_'=-]{0,10}";
        let plausible_domain = (
            prop::collection::vec("[a-zA-Z0-9äÉß][a-zA-Z0-9äÉ-]{0,6}", 1..3),
            "[a-zA-Zä]{2,5}",
        )
            .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")));
        prop_oneof![
            3 => (plausible_local, plausible_domain).prop_map(|(l, d)| format!("{l}@{d}")),
            1 => (local, domain).prop_map(|(l, d)| format!("{l}@{d}")),
            1 => "\\PC{0,40}",
            1 => "[a-z0-9.@\\[\\]]{0,20}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512)
        ))]

        /// Issue 10, item 9: everything `parse` accepts can be put in an
        /// SMTP envelope and a `To:` header, and its key is stable.
        #[test]
        fn every_accepted_address_fits_an_envelope_and_a_to_header(input in address_like()) {
            if let Ok(email) = SubscriberEmail::parse(&input) {
                let address: lettre::Address = email.as_str().parse()
                    .map_err(|e| TestCaseError::fail(format!("{email}: {e}")))?;
                let envelope = lettre::address::Envelope::new(None, vec![address.clone()])
                    .map_err(|e| TestCaseError::fail(format!("{email}: {e}")))?;
                prop_assert_eq!(envelope.to().len(), 1);
                let mailbox: lettre::message::Mailbox = format!("Reader <{email}>").parse()
                    .map_err(|e| TestCaseError::fail(format!("{email}: {e}")))?;
                let message = lettre::Message::builder()
                    .from("herald <herald@example.com>".parse().map_err(|e| TestCaseError::fail(format!("{e}")))?)
                    .to(mailbox)
                    .subject("x")
                    .body(String::from("x"))
                    .map_err(|e| TestCaseError::fail(format!("{email}: {e}")))?;
                let formatted = String::from_utf8_lossy(&message.formatted()).into_owned();
                prop_assert!(formatted.contains(&format!("To: Reader <{email}>")), "{}", formatted);
                prop_assert!(email.as_str().is_ascii());
                prop_assert_eq!(SubscriberEmail::parse(email.as_str()).map(|e| e.key()), Ok(email.key()));
                // A mailbox key is its own mailbox key, and the same for
                // every spelling of the address.
                let mailbox = email.mailbox_key();
                prop_assert_eq!(mailbox_key(&mailbox), mailbox.clone());
                prop_assert_eq!(SubscriberEmail::parse(&email.as_str().to_uppercase()).map(|e| e.mailbox_key()), Ok(mailbox));
            }
        }
    }
}
