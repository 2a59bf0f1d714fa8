//! What the CLI prints of text it did not write (a subscriber's address, a
//! feed's title, a relay's error, a report's diagnostic) goes through
//! [`shown`]: no control character from outside reaches the operator's
//! terminal, where `ESC[2J` would clear the screen and `ESC]0;…BEL` retitle
//! the window. Stored text is already cleaned where it enters; this is for
//! rows stored before that, and for text that never passed a type.
//!
//! Every line a command prints goes through [`line`], by way of the
//! `println!` defined here: `#[macro_use] mod out;` comes first in
//! cli/mod.rs, so it replaces std's `println!` in cli/mod.rs and in every
//! module declared after it (cli/digest.rs, cli/smtp.rs, every command
//! group's file). std's `println!` panics when
//! the reader has gone (`herald subscribers list | head -3`); this one ends
//! the command quietly instead.

use std::io::Write as _;

/// Exit status when the reader of stdout has gone: 128 + SIGPIPE, what a
/// shell reports for `seq 100000 | head -1` too, so a script with
/// `set -o pipefail` can tell that the listing was cut short.
pub const EXIT_READER_GONE: i32 = 141;

/// Prints like std's `println!`, through [`line`].
macro_rules! println {
    () => {
        $crate::cli::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}

/// Writes `args` and a newline to stdout. A closed pipe ends the process
/// with [`EXIT_READER_GONE`] and no message: the reader has what it asked
/// for. Any other write error (a full disk under `> file`) ends it with the
/// error on stderr and status 1, never a panic.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(EXIT_READER_GONE);
        }
        // No `eprintln!`: stderr may be gone too, and that must not panic.
        let _ = writeln!(std::io::stderr(), "herald: writing to stdout: {e}");
        std::process::exit(1);
    }
}

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
