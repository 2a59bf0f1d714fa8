//! The plain-text excerpt under an article's title (and, for the first
//! article, the digest's preheader), built from the article's blocks.
//!
//! Each block (paragraph, heading, list item, table cell…) is a unit: one
//! that ends without terminal punctuation (a heading, a list item) gets a
//! full stop, so "What changes" and "Library hours extended" read as two
//! sentences, not one run-on line. Captions (`<figcaption>`, which the
//! cleaner makes of WordPress's caption paragraphs) and blocks whose text
//! is furniture (credits, share buttons, related links, follow-us lines)
//! are not prose and are skipped. The excerpt is cut at the last sentence
//! end within the cap when that keeps at least [`MIN_SENTENCE_SHARE`] of
//! it, else at a word, with an ellipsis.

use super::furniture::{self, tags};
use crate::domain::text::cut_at_word;

/// Share of the cap an excerpt cut at a sentence end must keep, in percent.
pub const MIN_SENTENCE_SHARE: usize = 40;

const BLOCKS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "dt",
    "dd",
    "ul",
    "ol",
    "dl",
    "div",
    "section",
    "article",
    "aside",
    "header",
    "footer",
    "nav",
    "blockquote",
    "pre",
    "figure",
    "figcaption",
    "table",
    "thead",
    "tbody",
    "tr",
    "td",
    "th",
    "caption",
    "hr",
    "details",
    "summary",
];

/// Whether a block's text is something other than the article's prose.
fn is_not_prose(text: &str) -> bool {
    super::clean::is_boilerplate(text)
        || furniture::is_share_block(text)
        || furniture::is_related_block(text)
        || furniture::is_follow_block(text)
        || furniture::is_credit_line(text)
}

/// Ends a block's text as a sentence: a trailing colon, semicolon or dash
/// becomes a full stop, and text without terminal punctuation gets one.
fn as_sentence(text: &str) -> String {
    let trimmed = text.trim_end_matches([':', ';', ',', '-', '–', '—', ' ']);
    let last_letter = trimmed
        .chars()
        .rev()
        .find(|c| !matches!(c, '"' | '\'' | '”' | '’' | '»' | ')' | ']'));
    if matches!(last_letter, Some('.' | '!' | '?' | '…')) {
        return trimmed.to_string();
    }
    if trimmed.is_empty() {
        return String::new();
    }
    format!("{trimmed}.")
}

/// Collects the prose blocks of cleaned HTML, stopping once more than
/// `enough` characters are in.
struct Blocks {
    sentences: Vec<String>,
    chars: usize,
    enough: usize,
    pending: String,
}

impl Blocks {
    fn end_block(&mut self, in_caption: bool) {
        let raw = std::mem::take(&mut self.pending);
        if in_caption {
            return;
        }
        let decoded = html_escape::decode_html_entities(&raw);
        let text = crate::domain::single_line(&decoded);
        let text = text.trim();
        if text.is_empty() || is_not_prose(text) {
            return;
        }
        let sentence = as_sentence(text);
        self.chars += sentence.chars().count() + 1;
        self.sentences.push(sentence);
    }

    fn is_full(&self) -> bool {
        self.chars > self.enough
    }
}

/// The excerpt of cleaned HTML, at most `max_chars` characters (plus an
/// ellipsis when cut at a word).
pub fn excerpt_of(clean_html: &str, max_chars: usize) -> String {
    let mut blocks = Blocks {
        sentences: Vec::new(),
        chars: 0,
        enough: max_chars,
        pending: String::new(),
    };
    // Depth of open captions: text inside one is skipped.
    let mut captions = 0usize;
    let mut pos = 0;
    for tag in tags(clean_html) {
        blocks.pending.push_str(&clean_html[pos..tag.start]);
        pos = tag.end;
        let name = tag.name.to_ascii_lowercase();
        let is_end = tag.is_end;
        if name == "br" {
            blocks.pending.push(' ');
            continue;
        }
        if !BLOCKS.contains(&name.as_str()) {
            continue;
        }
        blocks.end_block(captions > 0);
        if name == "figcaption" {
            captions = if is_end {
                captions.saturating_sub(1)
            } else {
                captions + 1
            };
        }
        if blocks.is_full() {
            break;
        }
    }
    if !blocks.is_full() {
        blocks
            .pending
            .push_str(&clean_html[pos.min(clean_html.len())..]);
        blocks.end_block(captions > 0);
    }
    cut_at_sentence(&blocks.sentences.join(" "), max_chars)
}

/// `text` whole when it fits in `max_chars`; else up to its last sentence
/// end within the cap, if that keeps [`MIN_SENTENCE_SHARE`] percent of
/// it; else cut at a word with an ellipsis.
pub fn cut_at_sentence(text: &str, max_chars: usize) -> String {
    let Some((limit, _)) = text.char_indices().nth(max_chars) else {
        return text.to_string();
    };
    let min_chars = max_chars * MIN_SENTENCE_SHARE / 100;
    let mut best = None;
    let mut chars = text[..limit].char_indices().peekable();
    let mut count = 0usize;
    while let Some((i, c)) = chars.next() {
        count += 1;
        if !matches!(c, '.' | '!' | '?' | '…') {
            continue;
        }
        // Closing quotes and brackets belong to the sentence.
        let mut end = i + c.len_utf8();
        let mut end_count = count;
        while let Some(&(j, q)) = chars.peek() {
            if !matches!(q, '"' | '\'' | '”' | '’' | '»' | ')' | ']') {
                break;
            }
            end = j + q.len_utf8();
            end_count += 1;
            chars.next();
            count += 1;
        }
        // A sentence ends before a space and a capital, digit or quote
        // ("Dr. smith" or "e.g. this" do not end one).
        let next = text[end..].chars().nth(1);
        let at_space = text[end..].starts_with(' ');
        let starts_sentence = next.is_some_and(|n| {
            n.is_uppercase() || n.is_ascii_digit() || matches!(n, '"' | '“' | '‘' | '«' | '(')
        });
        if at_space && starts_sentence && end_count >= min_chars {
            best = Some(end);
        }
    }
    match best {
        Some(end) => text[..end].to_string(),
        None => cut_at_word(text, max_chars),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_and_list_items_end_sentences() {
        let html = "<h2>What changes for residents</h2><ul><li>Library hours extended on Sundays</li><li>Property tax unchanged;</li></ul><p>The council voted on Monday.</p>";
        assert_eq!(
            excerpt_of(html, 280),
            "What changes for residents. Library hours extended on Sundays. Property tax unchanged. The council voted on Monday."
        );
    }

    #[test]
    fn captions_credits_share_related_and_follow_blocks_are_skipped() {
        let html = concat!(
            "<p>The library reopens.</p>",
            "<figure><img src=\"https://e.com/a.jpg\"><figcaption>The new wing</figcaption></figure>",
            "<p>Photo: Jane Doe</p><p>(Photo by Jane Doe/Example Press)</p>",
            "<p>Twitter Facebook</p><p>Share on X</p><p>Share</p>",
            "<p>Related: <a href=\"https://e.com/x\">Council meets on Monday</a></p>",
            "<h3>Related stories</h3>",
            "<p>Follow us on Instagram</p>",
            "<p>Opening hours are longer.</p>",
        );
        assert_eq!(
            excerpt_of(html, 280),
            "The library reopens. Opening hours are longer."
        );
    }

    #[test]
    fn excerpt_ends_at_a_sentence_when_one_ends_late_enough() {
        let first = "The council met on Monday to discuss the budget for next year.";
        let second = "It agreed to extend the library's opening hours on Sundays and to keep the property tax where it is, after a long debate.";
        let html = format!("<p>{first} {second}</p>");
        // 100 characters: the first sentence (64) is past 40% of the cap.
        assert_eq!(excerpt_of(&html, 100), first);
        // 150: still only the first sentence ends within the cap.
        assert_eq!(excerpt_of(&html, 150), first);
        // 150 with a short first sentence: cut at a word instead.
        let short = format!("<p>Yes. {}</p>", "word ".repeat(60));
        let e = excerpt_of(&short, 150);
        assert!(e.ends_with("word…") && e.starts_with("Yes. word"), "{e}");
    }

    #[test]
    fn abbreviations_do_not_end_a_sentence() {
        let text = "Residents asked Dr. smith about e.g. hours on Sundays and other things that matter to them a lot.";
        let e = cut_at_sentence(text, 60);
        assert!(e.ends_with('…'), "{e}");
    }

    #[test]
    fn text_without_blocks_is_one_sentence() {
        assert_eq!(excerpt_of("Just <b>bold</b> text", 280), "Just bold text.");
        assert_eq!(excerpt_of("", 280), "");
        assert_eq!(excerpt_of("<p>Tom &amp; Jerry</p>", 280), "Tom & Jerry.");
    }
}
