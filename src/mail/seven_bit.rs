//! The 7bit form of a digest, for a server that does not announce
//! 8BITMIME (RFC 6152): the same message with quoted-printable bodies.
//!
//! Built once per digest, the first time such a server comes up, as a
//! second template (`DigestTemplate::render_seven_bit`): each placeholder
//! stands on a line of its own between soft line breaks, so a copy's URL,
//! encoded and wrapped on its own, is spliced in as in the 8bit template
//! and decodes to the very same body. Servers that announce 8BITMIME never
//! see this path.

use crate::digest::slots::SlottedBody;

/// Longest encoded line, soft line break's "=" excluded (RFC 2045 allows 76
/// with it).
const LINE: usize = 75;

/// A body (CRLF line endings) quoted-printable encoded segment by segment,
/// each slot kept between soft line breaks: a soft break ends the segment
/// before a slot and starts the one after it (unless that one is empty: a
/// body may not end with a soft line break).
pub(super) fn body(body: &SlottedBody) -> SlottedBody {
    let segments = body.segments();
    let last = segments.len() - 1;
    let mut i = 0;
    body.map_segments(|chunk| {
        let mut out = String::with_capacity(chunk.len() + chunk.len() / 8 + 6);
        if i > 0 && !chunk.is_empty() {
            out.push_str("=\r\n");
        }
        out.push_str(&quoted_printable::encode_to_str(chunk));
        if i < last {
            out.push_str("=\r\n");
        }
        i += 1;
        out
    })
}

/// A short value (a URL) quoted-printable encoded, in lines of at most 75
/// octets joined by soft line breaks, to stand where `body` left a placeholder.
pub(super) fn value(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len() + value.len() / 8 + 8);
    let mut on_line = 0;
    for b in value.bytes() {
        let is_literal = (33..=126).contains(&b) && b != b'=';
        let width = if is_literal { 1 } else { 3 };
        if on_line + width > LINE {
            out.push_str("=\r\n");
            on_line = 0;
        }
        if is_literal {
            out.push(char::from(b));
        } else {
            out.push('=');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        on_line += width;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(s: &str) -> String {
        String::from_utf8(quoted_printable::decode(s, quoted_printable::ParseMode::Strict).unwrap())
            .unwrap()
    }

    #[test]
    fn the_seven_bit_copy_reads_the_same_as_the_eight_bit_one() {
        use crate::mail::{sample_digest, DigestTemplate};
        use mail_parser::{MessageParser, MimeHeaders};
        let from = "Le Café Herald <digest@news.example>".parse().unwrap();
        let t = DigestTemplate::prepare(
            &from,
            "Ünïcode — 40 articles",
            "<digest.news.example>",
            &sample_digest(),
        )
        .unwrap();
        // Tried: a short URL with "&" and "=" (escaped in HTML, =3D in
        // quoted-printable) and one longer than a line.
        for page in [
            "https://news.example/unsubscribe/t0k3n?from=digest&lang=fr".to_string(),
            format!("https://news.example/unsubscribe/{}?a=b", "t".repeat(300)),
        ] {
            let args = ("zoe@example.org", Some("Zoë Ångström"), page.as_str());
            let one_click = "https://news.example/unsubscribe/one-click/t0k3n";
            let mailto = "mailto:digest@news.example?subject=unsubscribe%20t0k3n";
            let (e8, eight) = t.render(args.0, args.1, args.2, one_click, mailto).unwrap();
            let (e7, seven) = t
                .render_seven_bit(args.0, args.1, args.2, one_click, mailto)
                .unwrap();
            assert_eq!(e8, e7);
            assert!(seven.is_ascii());
            assert!(seven.split(|b| *b == b'\n').all(|l| l.len() <= 78));
            let (a, b) = (
                MessageParser::default().parse(&eight).unwrap(),
                MessageParser::default().parse(&seven).unwrap(),
            );
            assert_eq!(a.subject(), b.subject());
            assert_eq!(a.to().unwrap().first(), b.to().unwrap().first());
            assert_eq!(a.body_text(0), b.body_text(0));
            assert_eq!(a.body_html(0), b.body_html(0));
            assert!(b.body_text(0).unwrap().contains(&page));
            for part in [b.text_part(0).unwrap(), b.html_part(0).unwrap()] {
                assert_eq!(part.content_transfer_encoding(), Some("quoted-printable"));
            }
        }
    }

    #[test]
    fn a_spliced_body_decodes_to_the_body_with_the_url_in() {
        // Tried: a placeholder mid-line, at the start of a line, at the very
        // end, twice on one line; non-ASCII text; "=" and spaces next to
        // it; a URL longer than a line; an HTML-escaped URL.
        let p = "%%URL%%";
        let url = format!(
            "https://news.example/unsubscribe/{}?a=1&b=2",
            "t0k3n".repeat(30)
        );
        let encoded_url = value(&url);
        for original in [
            format!("Le Café n° 1 = ça marche\r\nUnsubscribe: {p}\r\n"),
            format!("{p} first\r\nthen {p} and {p}"),
            format!(
                "<a href=\"{p}\">Se désabonner</a> \r\n{}\r\nend {p}",
                "é".repeat(200)
            ),
        ] {
            let slotted = SlottedBody::cut_at_markers(
                &original,
                &[(p, crate::digest::slots::Slot::Unsubscribe)],
            );
            let encoded = body(&slotted);
            let spliced = encoded.fill(|_| "");
            assert!(spliced.is_ascii());
            let spliced = encoded.fill(|_| &encoded_url);
            for line in spliced.split("\r\n") {
                assert!(line.len() <= 76, "{} octets: {line}", line.len());
            }
            assert_eq!(decoded(&spliced), original.replace(p, &url));
        }
    }
}
