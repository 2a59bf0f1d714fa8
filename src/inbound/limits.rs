//! The bound checked before mail-parser sees a message. mail-parser keeps
//! its own stack for plain (not transfer-encoded) `message/*` and multipart
//! nesting, but the tree it builds is dropped and copied recursively: 40,000
//! nested `message/rfc822` parts (1.3 MB) overflow a thread's stack and
//! abort the whole process, which no `catch_unwind` can stop. So the depth
//! is bounded here, by a linear scan that never recurses, before the parser
//! runs.
//!
//! Every nesting level needs a `Content-Type` header line (a multipart
//! declares its boundary there; a `message/*` part declares its type; only
//! a part of a `multipart/digest` may leave its type unsaid, and that digest
//! declared itself), so the number of lines that start with `Content-Type`
//! is an upper bound of half the depth. The scan counts them without
//! understanding MIME: a line that merely looks like one counts too, which
//! can only refuse more, never less. mail-parser also decodes up to three
//! levels of base64 or quoted-printable `message/*` parts and parses what
//! they hold; a header block that may be such a part (its `Content-Type`
//! is `message/*` or unsaid) has its body decoded (to the end of the input,
//! again more than the parser reads) and counted as well, within a budget of
//! bytes decoded. A genuine report declares fewer than ten types; the limit
//! is [`MAX_CONTENT_TYPES`].

/// More `Content-Type` lines than this (at every encoded level together)
/// and a message is not parsed.
pub const MAX_CONTENT_TYPES: usize = 100;

/// mail-parser's own bound on transfer-encoded `message/*` nesting.
const ENCODED_LEVELS: usize = 3;

/// Bytes decoded from encoded parts may be at most this many times the
/// message's size (and at least [`MIN_DECODE_BUDGET`]).
const DECODE_FACTOR: usize = 4;
const MIN_DECODE_BUDGET: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the message declares more than {MAX_CONTENT_TYPES} MIME parts (nesting too deep to parse safely)")]
    TooManyParts,
    #[error("the message has too many encoded message parts to parse safely")]
    TooMuchEncoded,
}

/// Refuses a message mail-parser could not parse within a thread's stack.
/// Linear in the message's size (times the small decode budget).
pub fn check_nesting(raw: &[u8]) -> Result<(), Refusal> {
    let mut scan = Scan {
        content_types: 0,
        decode_budget: (raw.len() * DECODE_FACTOR).max(MIN_DECODE_BUDGET),
    };
    // An explicit work list instead of recursion: (bytes, levels left).
    let mut work: Vec<(Vec<u8>, usize)> = Vec::new();
    scan.lines(raw, ENCODED_LEVELS, &mut work)?;
    while let Some((bytes, levels)) = work.pop() {
        scan.lines(&bytes, levels, &mut work)?;
    }
    Ok(())
}

struct Scan {
    content_types: usize,
    decode_budget: usize,
}

/// What one blank-line-delimited block of lines declared.
#[derive(Default)]
struct Block {
    /// A Content-Type of `message/*` anywhere in the block.
    message_type: bool,
    /// A Content-Type after the block's last line that starts with `--`
    /// (where a part's own headers begin).
    type_after_boundary: bool,
    /// base64 or quoted-printable: 1 and 2.
    encoding: u8,
}

impl Scan {
    fn lines(
        &mut self,
        bytes: &[u8],
        levels: usize,
        work: &mut Vec<(Vec<u8>, usize)>,
    ) -> Result<(), Refusal> {
        let mut block = Block::default();
        // The header field being read (a line and its continuations), by kind.
        let mut field: Option<(Field, Vec<u8>)> = None;
        let mut pos = 0;
        while pos < bytes.len() {
            // Both CR and LF end a line here: more line starts, more counted.
            let end = memchr::memchr2(b'\n', b'\r', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
            let line = &bytes[pos..end];
            let next =
                if end < bytes.len() && bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n') {
                    end + 2
                } else {
                    end + 1
                };
            let is_continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
            if is_continuation {
                if let Some((_, value)) = &mut field {
                    if value.len() < 256 {
                        value.extend_from_slice(&line[..line.len().min(256)]);
                    }
                }
            } else {
                if let Some((kind, value)) = field.take() {
                    block.note(kind, &value);
                }
                if line.is_empty() {
                    if block.encoding != 0
                        && levels > 0
                        && (block.message_type || !block.type_after_boundary)
                    {
                        let rest = &bytes[next.min(bytes.len())..];
                        let decoded = if block.encoding == 1 {
                            decode_base64(rest)
                        } else {
                            quoted_printable::decode(rest, quoted_printable::ParseMode::Robust)
                                .unwrap_or_else(|_| rest.to_vec())
                        };
                        self.decode_budget = self
                            .decode_budget
                            .checked_sub(decoded.len())
                            .ok_or(Refusal::TooMuchEncoded)?;
                        work.push((decoded, levels - 1));
                    }
                    block = Block::default();
                } else if line.starts_with(b"--") {
                    block.type_after_boundary = false;
                } else if starts_with_ignore_case(line, b"content-type") {
                    self.content_types += 1;
                    if self.content_types > MAX_CONTENT_TYPES {
                        return Err(Refusal::TooManyParts);
                    }
                    field = Some((Field::Type, line[..line.len().min(256)].to_vec()));
                } else if starts_with_ignore_case(line, b"content-transfer-encoding") {
                    field = Some((Field::Encoding, line[..line.len().min(256)].to_vec()));
                }
            }
            pos = next;
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Field {
    Type,
    Encoding,
}

impl Block {
    fn note(&mut self, kind: Field, value: &[u8]) {
        let value = value.to_ascii_lowercase();
        let has = |needle: &[u8]| memchr::memmem::find(&value, needle).is_some();
        match kind {
            Field::Type => {
                self.type_after_boundary = true;
                if has(b"message/") {
                    self.message_type = true;
                }
            }
            Field::Encoding => {
                if has(b"base64") {
                    self.encoding = 1;
                } else if has(b"quoted-printable") {
                    self.encoding = 2;
                }
            }
        }
    }
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Lenient base64: every byte outside the alphabet is skipped, as
/// mail-parser skips it; decoding never stops early.
fn decode_base64(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let (mut acc, mut n) = (0u32, 0u8);
    for &b in bytes {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&acc.to_be_bytes()[1..]);
            acc = 0;
            n = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Vec<u8> {
        let mut raw = b"From: x@example.com\r\nSubject: deep\r\n".to_vec();
        for _ in 0..levels {
            raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"Subject: end\r\n\r\nhello\r\n");
        raw
    }

    #[test]
    fn a_genuine_report_passes_and_deep_nesting_is_refused() {
        assert_eq!(check_nesting(&nested(10)), Ok(()));
        assert_eq!(check_nesting(&nested(300_000)), Err(Refusal::TooManyParts));
        // Folded, upper case, bare CR line ends: still counted.
        let odd = "CONTENT-TYPE:\r\n message/rfc822\r\r".repeat(200);
        assert_eq!(check_nesting(odd.as_bytes()), Err(Refusal::TooManyParts));
    }

    #[test]
    fn nesting_hidden_in_an_encoded_message_part_is_counted() {
        use base64::Engine as _;
        let inner = base64::engine::general_purpose::STANDARD.encode(nested(1_000));
        // A boundary-looking line inside the base64 does not end the scan.
        let (a, b) = inner.split_at(inner.len() / 2);
        let raw = format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{a}\r\n--not-the-boundary\r\n{b}\r\n--b--\r\n"
        );
        assert_eq!(check_nesting(raw.as_bytes()), Err(Refusal::TooManyParts));
        // The part of a digest has no Content-Type of its own.
        let raw = format!(
            "Content-Type: multipart/digest; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n{inner}\r\n--b--\r\n"
        );
        assert_eq!(check_nesting(raw.as_bytes()), Err(Refusal::TooManyParts));
        // A base64 text part is not decoded.
        let raw = format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{inner}\r\n--b--\r\n"
        );
        assert_eq!(check_nesting(raw.as_bytes()), Ok(()));
    }
}
