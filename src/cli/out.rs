//! What the CLI prints of text it did not write (a subscriber's address, a
//! feed's title, a relay's error, a report's diagnostic) goes through
//! [`shown`]: no control character from outside reaches the operator's
//! terminal, where `ESC[2J` would clear the screen and `ESC]0;…BEL` retitle
//! the window. Stored text is already cleaned where it enters; this is for
//! rows stored before that, and for text that never passed a type.

/// `text` with every control character (C0, DEL, C1) shown as U+FFFD.
pub fn shown(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_and_line_breaks_are_not_printed() {
        let s = super::shown("a\u{1b}[2J\u{1b}]0;pwned\u{7}\r\nb\u{9b}c é");
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert!(s.starts_with('a') && s.ends_with("c é"));
    }
}
