//! Text fields from outside (a feed, the API, the CLI), each capped here and
//! nowhere else: an article's title, author, summary and categories, a
//! feed's title, an item's guid. Every one is a single line (see
//! [`single_line`]) with at most `MAX_CHARS` characters.
//!
//! Every one also holds only characters valid in every output it can reach
//! (see [`valid_everywhere`]): a title with U+FFFF would otherwise make the
//! archive's Atom feed not well-formed XML.
//!
//! Two ways in, one rule: `parse` refuses text over the cap, for an operator
//! who can fix it (API, CLI); `cut` shortens it at a word boundary with an
//! ellipsis, for a feed herald cannot ask to try again.

use super::{single_line, DomainError};
use std::borrow::Cow;

/// Whether `c` may appear in an XML 1.0 document at all (its `Char`
/// production): no C0 control but tab, LF and CR, no surrogate, no U+FFFE
/// or U+FFFF. Not even a character reference may name the others.
pub fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

/// Unicode noncharacters (U+FDD0–U+FDEF and the last two code points of
/// every plane): never meant for interchange, and XML discourages them.
pub fn is_noncharacter(c: char) -> bool {
    let c = c as u32;
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// `text` without the characters that are invalid in some output herald
/// writes: what XML 1.0 forbids (C0 controls but tab/LF/CR, U+FFFE,
/// U+FFFF) and the other noncharacters. JSON and encoded mail headers
/// accept everything that remains. Borrowed when nothing is removed.
pub fn valid_everywhere(text: &str) -> Cow<'_, str> {
    if text.chars().all(|c| is_xml_char(c) && !is_noncharacter(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .filter(|c| is_xml_char(*c) && !is_noncharacter(*c))
            .collect(),
    )
}

/// One line of text valid in every output: noncharacters dropped, then
/// control characters and line breaks made spaces by [`single_line`] (so
/// what [`valid_everywhere`] would drop is gone either way).
fn clean_line(raw: &str) -> String {
    if !raw.chars().any(is_noncharacter) {
        return single_line(raw);
    }
    let kept: String = raw.chars().filter(|c| !is_noncharacter(*c)).collect();
    single_line(&kept)
}

/// At most `max_chars` characters, the ellipsis included: longer text is
/// cut at the last word boundary that fits and ends with "…".
pub fn cut_at_word(text: &str, max_chars: usize) -> String {
    let Some((end, _)) = text.char_indices().nth(max_chars) else {
        return text.to_string();
    };
    if max_chars == 0 {
        return String::new();
    }
    // Room for the ellipsis.
    let end = text[..end].char_indices().last().map_or(0, |(i, _)| i);
    let cut = &text[..end];
    let at = cut.rfind(char::is_whitespace).unwrap_or(cut.len());
    let mut out = cut[..at]
        .trim_end_matches(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == ':')
        .to_string();
    out.push('…');
    out
}

macro_rules! capped_text {
    ($(#[$doc:meta])* $name:ident, $max:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            /// Operator input: one line, refused when over the cap. Empty
            /// (or only whitespace and control characters) is `None`.
            pub fn parse(raw: &str) -> Result<Option<Self>, DomainError> {
                let line = clean_line(raw);
                if line.is_empty() {
                    return Ok(None);
                }
                if line.chars().nth(Self::MAX_CHARS).is_some() {
                    return Err(DomainError::Invalid(concat!(
                        "the ", $what, " is too long (at most ", stringify!($max), " characters)"
                    )));
                }
                Ok(Some(Self(line.trim_start().to_string())))
            }

            /// Text from a feed or a stored row: one line, cut to the cap.
            /// Empty is `None`.
            pub fn cut(raw: &str) -> Option<Self> {
                // single_line is linear, but there is no point collapsing
                // megabytes that are cut away: whitespace runs shrink text,
                // never grow it, so a generous prefix is enough.
                let raw = raw.trim_start();
                let prefix = match raw.char_indices().nth(Self::MAX_CHARS * 16) {
                    Some((i, _)) => &raw[..i],
                    None => raw,
                };
                let line = clean_line(prefix);
                let line = line.trim_start();
                (!line.is_empty()).then(|| Self(cut_at_word(line, Self::MAX_CHARS)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

capped_text!(
    /// An article's title: in the digest, and in the Subject of the mail.
    ArticleTitle, 300, "title"
);
capped_text!(
    /// An article's author ("By …" in the digest).
    AuthorName, 200, "author"
);
capped_text!(
    /// The plain-text excerpt shown under a title.
    Summary, 1000, "summary"
);
capped_text!(
    /// One category of a feed item.
    Category, 100, "category"
);
capped_text!(
    /// A feed's own title, as `feed list` shows it.
    FeedTitle, 300, "feed title"
);

/// At most this many categories are kept per article.
pub const MAX_CATEGORIES: usize = 20;

/// An item's categories: each capped, empty and repeated ones dropped, at
/// most [`MAX_CATEGORIES`].
pub fn categories<'a>(raw: impl IntoIterator<Item = &'a str>) -> Vec<Category> {
    let mut out: Vec<Category> = Vec::new();
    for c in raw.into_iter().filter_map(Category::cut) {
        if out.len() == MAX_CATEGORIES {
            break;
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// What identifies an item within its feed (guid, id, or its link).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemGuid(String);

impl ItemGuid {
    pub const MAX_CHARS: usize = 1000;

    /// One line; a longer guid keeps its start and ends with a SHA-256 of
    /// the whole, so two long guids that share a start stay two items.
    pub fn cut(raw: &str) -> Option<Self> {
        use sha2::{Digest, Sha256};
        let line = clean_line(raw);
        let line = line.trim_start();
        if line.is_empty() {
            return None;
        }
        if line.chars().nth(Self::MAX_CHARS).is_none() {
            return Some(Self(line.to_string()));
        }
        let hash = Sha256::digest(line.as_bytes());
        let mut out: String = line.chars().take(Self::MAX_CHARS - 72).collect();
        out.push_str("#sha256:");
        for b in hash {
            out.push_str(&format!("{b:02x}"));
        }
        Some(Self(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_field_is_one_line_within_its_cap() {
        let huge = "word ".repeat(400_000);
        let giant_word = "x".repeat(2_000_001);
        for raw in [huge.as_str(), giant_word.as_str(), "a\r\nBcc: b@e.com"] {
            let t = ArticleTitle::cut(raw).unwrap();
            assert!(t.as_str().chars().count() <= ArticleTitle::MAX_CHARS);
            assert!(!t.as_str().contains(['\r', '\n']));
            assert!(AuthorName::cut(raw).unwrap().as_str().chars().count() <= 200);
            assert!(Summary::cut(raw).unwrap().as_str().chars().count() <= 1000);
            assert!(Category::cut(raw).unwrap().as_str().chars().count() <= 100);
            assert!(FeedTitle::cut(raw).unwrap().as_str().chars().count() <= 300);
            assert!(ItemGuid::cut(raw).unwrap().as_str().chars().count() <= 1000);
        }
        assert_eq!(
            ArticleTitle::cut("  \r\n\t ").map(|t| t.into_string()),
            None
        );
        assert_eq!(
            ArticleTitle::cut(" Hello\nworld ").unwrap().as_str(),
            "Hello world"
        );
    }

    #[test]
    fn operator_text_over_the_cap_is_refused_with_the_cap() {
        let long = "t".repeat(301);
        let e = ArticleTitle::parse(&long).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the title is too long (at most 300 characters)"
        );
        assert!(ArticleTitle::parse(&"t".repeat(300)).unwrap().is_some());
        assert_eq!(ArticleTitle::parse(" \r\n ").unwrap(), None);
        assert!(AuthorName::parse(&"a".repeat(201)).is_err());
    }

    #[test]
    fn categories_are_capped_in_number_and_length() {
        let many: Vec<String> = (0..100).map(|i| format!("cat {i}")).collect();
        let kept = categories(many.iter().map(String::as_str));
        assert_eq!(kept.len(), MAX_CATEGORIES);
        let kept = categories(["a", "a", " ", "b"]);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn long_guids_that_share_a_start_stay_apart() {
        let a = format!("{}a", "g".repeat(5000));
        let b = format!("{}b", "g".repeat(5000));
        assert_ne!(ItemGuid::cut(&a), ItemGuid::cut(&b));
    }

    #[test]
    fn cut_at_word_counts_the_ellipsis() {
        assert_eq!(cut_at_word("short", 10), "short");
        let cut = cut_at_word("one two three four", 10);
        assert_eq!(cut, "one two…");
        assert!(cut.chars().count() <= 10);
        assert_eq!(cut_at_word("abcdefghijkl", 5).chars().count(), 5);
    }

    #[test]
    fn text_from_outside_holds_only_characters_valid_in_xml() {
        // Hostile inputs: U+FFFF, U+FFFE, a plane-1 noncharacter, U+FDD0,
        // NUL, BEL, ESC, vertical tab, form feed, DEL-adjacent C1 (U+0085).
        let raw = "A\u{FFFF}B\u{FFFE}C\u{1FFFF}D\u{FDD0}E\u{0}F\u{7}G\u{1b}[2JH\u{b}I\u{c}J\u{85}K";
        let title = ArticleTitle::cut(raw).unwrap();
        assert!(
            title
                .as_str()
                .chars()
                .all(|c| is_xml_char(c) && !is_noncharacter(c) && !c.is_control()),
            "{:?}",
            title.as_str()
        );
        assert_eq!(title.as_str(), "ABCDE F G [2JH I J K");
        assert_eq!(
            ArticleTitle::parse("\u{FFFF}\u{FFFE}").unwrap(),
            None,
            "only noncharacters is empty"
        );
        for shown in [
            AuthorName::cut(raw).unwrap().into_string(),
            Summary::cut(raw).unwrap().into_string(),
            Category::cut(raw).unwrap().into_string(),
            FeedTitle::cut(raw).unwrap().into_string(),
            ItemGuid::cut(raw).unwrap().into_string(),
            AuthorName::parse(raw).unwrap().unwrap().into_string(),
        ] {
            assert!(
                shown.chars().all(|c| is_xml_char(c) && !is_noncharacter(c)),
                "{shown:?}"
            );
        }
        assert!(matches!(
            valid_everywhere("plain text é ✓"),
            Cow::Borrowed(_)
        ));
        assert_eq!(valid_everywhere("a\tb\nc\rd\u{1}e\u{FFFF}"), "a\tb\nc\rde");
    }
}
