//! A digest's message built once, so that each subscriber's copy is a few
//! short strings spliced between precomputed bytes rather than a fresh
//! lettre build of 20 KB.
//!
//! lettre still writes every header and the MIME structure: the template is
//! the message `digest_message` builds (From and Subject encoded, boundary,
//! part headers), cut at the four headers that differ per copy and at the
//! bodies, and each copy's To, Date, Message-ID and List-Unsubscribe lines
//! are formatted by lettre's own header types. Only the unsubscribe URL in
//! the bodies is spliced by hand, at the slots the renderer recorded
//! (`digest::slots`), which is sound because the bodies go out as 8bit,
//! bytes as they are. A digest whose bodies are not 8bit-safe, or a
//! URL that would push a body line past 998 octets, takes the builder path
//! (`DigestBodies::personalise` + `digest_message`) instead.

use super::build::{
    digest_message, list_unsubscribe_header, message_id, overlong_header_line, recipient,
    DigestBodies, DigestCopy,
};
use super::dkim::{BodyHashBuilder, BodyHashTemplate, Dkim};
use super::Error;
use crate::digest::slots::{Slot, SlottedBodies, SlottedBody};
use lettre::address::Envelope;
use lettre::message::header::{self, ContentTransferEncoding, Headers};
use lettre::message::{Body, Mailbox, Mailboxes};
use rand::RngCore;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// RFC 5322's limit on a line, CRLF excluded.
const MAX_LINE: usize = 998;

/// One digest, ready to be rendered for each subscriber.
#[derive(Debug, Clone)]
pub struct DigestTemplate {
    from: Mailbox,
    subject: String,
    list_id: String,
    /// For the builder path.
    bodies: DigestBodies,
    /// `None` when the bodies are not 8bit-safe: every copy takes the builder path.
    splice: Option<Splice>,
    /// Quoted-printable bodies, for a server without 8BITMIME: built the
    /// first time one needs it (seven_bit.rs).
    seven_bit: OnceLock<Result<Splice, String>>,
    /// Signs each copy when DKIM keys are configured.
    dkim: Option<Arc<Dkim>>,
}

/// The message cut into literal bytes and the places where a copy's own
/// values go, in order.
#[derive(Debug, Clone)]
struct Splice {
    literals: Vec<u8>,
    pieces: Vec<Piece>,
    text_urls: usize,
    html_urls: usize,
    /// Body lines that carry an unsubscribe slot, to check a URL keeps
    /// them within `MAX_LINE`.
    text_lines: Vec<LineWithUrls>,
    html_lines: Vec<LineWithUrls>,
    /// The body canonicalized for DKIM once, holes at the URLs.
    body_hash: BodyHashTemplate,
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(Range<usize>),
    Header(PerCopyHeader),
    Url(Part),
}

/// Which body an unsubscribe URL goes into: plain in text, escaped in HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Text,
    Html,
}

/// The headers that differ between copies, as lettre names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PerCopyHeader {
    To,
    Date,
    MessageId,
    ListUnsubscribe,
}

impl PerCopyHeader {
    const ALL: [Self; 4] = [Self::To, Self::Date, Self::MessageId, Self::ListUnsubscribe];

    fn name(self) -> &'static str {
        match self {
            Self::To => "To",
            Self::Date => "Date",
            Self::MessageId => "Message-ID",
            Self::ListUnsubscribe => "List-Unsubscribe",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::To => 0,
            Self::Date => 1,
            Self::MessageId => 2,
            Self::ListUnsubscribe => 3,
        }
    }
}

/// A body line holding `urls` unsubscribe slots and `other` further octets.
#[derive(Debug, Clone, Copy)]
struct LineWithUrls {
    other: usize,
    urls: usize,
}

impl DigestTemplate {
    /// `bodies` has its archive slots filled
    /// (`SlottedBodies::with_archive_url`): only unsubscribe slots are left.
    pub fn prepare(
        from: &Mailbox,
        subject: &str,
        list_id: &str,
        bodies: &SlottedBodies,
    ) -> Result<Self, Error> {
        let per_digest = |body: &SlottedBody| body.slots().len() - body.count(Slot::Unsubscribe);
        if per_digest(&bodies.html) + per_digest(&bodies.text) > 0 {
            return Err(Error::Build(
                "template: the digest's archive link was not filled in".into(),
            ));
        }
        let bodies = DigestBodies::prepare(bodies);
        let splice = if bodies.is_eight_bit_safe() {
            Some(Splice::build(
                from,
                subject,
                list_id,
                (bodies.text(), bodies.html()),
                ContentTransferEncoding::EightBit,
            )?)
        } else {
            None
        };
        Ok(Self {
            from: from.clone(),
            subject: subject.to_string(),
            list_id: list_id.to_string(),
            bodies,
            splice,
            seven_bit: OnceLock::new(),
            dkim: None,
        })
    }

    /// Copies are DKIM-signed with these keys.
    pub fn with_dkim(mut self, dkim: Option<Arc<Dkim>>) -> Self {
        self.dkim = dkim;
        self
    }

    /// Whether rendering a copy includes a slow signature ([`Dkim::is_slow`]).
    pub fn signs_slowly(&self) -> bool {
        self.dkim.as_deref().is_some_and(Dkim::is_slow)
    }

    /// The same copy as `render`, 7bit: quoted-printable bodies, for a
    /// server that does not announce 8BITMIME. The 7bit template is built
    /// once per digest, on first use.
    pub fn render_seven_bit(
        &self,
        to_email: &str,
        to_name: Option<&str>,
        page_url: &str,
        one_click_url: &str,
        unsubscribe_mailto: &str,
    ) -> Result<(Envelope, Vec<u8>), Error> {
        refuse_line_breaks("recipient address", to_email)?;
        refuse_line_breaks("recipient name", to_name.unwrap_or(""))?;
        refuse_line_breaks("unsubscribe page URL", page_url)?;
        refuse_line_breaks("one-click unsubscribe URL", one_click_url)?;
        refuse_line_breaks("unsubscribe mailto", unsubscribe_mailto)?;
        let splice = self
            .seven_bit
            .get_or_init(|| {
                let text = super::seven_bit::body(self.bodies.text());
                let html = super::seven_bit::body(self.bodies.html());
                Splice::build(
                    &self.from,
                    &self.subject,
                    &self.list_id,
                    (&text, &html),
                    ContentTransferEncoding::QuotedPrintable,
                )
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::Build(format!("7bit template: {e}")))?;
        let escaped_url = html_escape::encode_double_quoted_attribute(page_url);
        let to = recipient(to_email, to_name)?;
        let envelope = Envelope::new(Some(self.from.email.clone()), vec![to.email.clone()])
            .map_err(|e| Error::Build(format!("envelope: {e}")))?;
        let lines = self.per_copy_headers(to, one_click_url, unsubscribe_mailto)?;
        let (text_url, html_url) = (
            super::seven_bit::value(page_url),
            super::seven_bit::value(&escaped_url),
        );
        let message = splice.assemble(&lines, &text_url, &html_url);
        Ok((envelope, self.sign(splice, message, &text_url, &html_url)?))
    }

    /// The copy with its DKIM signatures in front, when keys are configured.
    fn sign(
        &self,
        splice: &Splice,
        message: Vec<u8>,
        text_url: &str,
        html_url: &str,
    ) -> Result<Vec<u8>, Error> {
        let Some(dkim) = &self.dkim else {
            return Ok(message);
        };
        let body_hash = splice
            .body_hash
            .hash(splice.urls().map(|part| match part {
                Part::Text => text_url.as_bytes(),
                Part::Html => html_url.as_bytes(),
            }))
            .unwrap_or_else(|| super::dkim::body_hash(&message));
        Ok(dkim.sign(&message, &body_hash)?)
    }

    /// Whether copies are spliced (bodies 8bit-safe) rather than built by
    /// lettre one by one.
    pub fn is_spliceable(&self) -> bool {
        self.splice.is_some()
    }

    /// One subscriber's copy: the envelope (From → To) and the message as
    /// it goes over SMTP, with a fresh Message-ID and Date. `page_url` goes
    /// into the bodies (HTML-escaped in the HTML part); `one_click_url` and
    /// `unsubscribe_mailto` into List-Unsubscribe. `to_email` must parse as
    /// an address; a line break or NUL in any value is refused, so no value
    /// can add a header or a MIME part.
    pub fn render(
        &self,
        to_email: &str,
        to_name: Option<&str>,
        page_url: &str,
        one_click_url: &str,
        unsubscribe_mailto: &str,
    ) -> Result<(Envelope, Vec<u8>), Error> {
        refuse_line_breaks("recipient address", to_email)?;
        refuse_line_breaks("recipient name", to_name.unwrap_or(""))?;
        refuse_line_breaks("unsubscribe page URL", page_url)?;
        refuse_line_breaks("one-click unsubscribe URL", one_click_url)?;
        refuse_line_breaks("unsubscribe mailto", unsubscribe_mailto)?;
        let escaped_url = html_escape::encode_double_quoted_attribute(page_url);
        match &self.splice {
            Some(splice) if splice.fits(page_url.len(), escaped_url.len()) => {
                let to = recipient(to_email, to_name)?;
                let envelope = Envelope::new(Some(self.from.email.clone()), vec![to.email.clone()])
                    .map_err(|e| Error::Build(format!("envelope: {e}")))?;
                let lines = self.per_copy_headers(to, one_click_url, unsubscribe_mailto)?;
                let message = splice.assemble(&lines, page_url, &escaped_url);
                Ok((
                    envelope,
                    self.sign(splice, message, page_url, &escaped_url)?,
                ))
            }
            _ => self.build(
                to_email,
                to_name,
                page_url,
                one_click_url,
                unsubscribe_mailto,
            ),
        }
    }

    /// The builder path: what every copy went through before templates.
    fn build(
        &self,
        to_email: &str,
        to_name: Option<&str>,
        page_url: &str,
        one_click_url: &str,
        unsubscribe_mailto: &str,
    ) -> Result<(Envelope, Vec<u8>), Error> {
        let (html, text) = self.bodies.personalise(page_url);
        let message = digest_message(
            &self.from,
            DigestCopy {
                to_email,
                to_name,
                subject: &self.subject,
                html,
                text,
                one_click_url,
                unsubscribe_mailto: unsubscribe_mailto.to_string(),
                list_id: &self.list_id,
            },
        )?;
        let formatted = message.formatted();
        let formatted = match &self.dkim {
            Some(dkim) => dkim.sign_message(&formatted)?,
            None => formatted,
        };
        Ok((message.envelope().clone(), formatted))
    }

    /// The copy's own header lines, each formatted by lettre's header
    /// type, as the builder would: RFC 2047 and folding included.
    fn per_copy_headers(
        &self,
        to: Mailbox,
        one_click_url: &str,
        unsubscribe_mailto: &str,
    ) -> Result<PerCopyLines, Error> {
        // A capacity guess: RFC 2047, quoting and folding rarely more than
        // triple a mailbox.
        let mailbox_len = to.email.user().len()
            + to.email.domain().len()
            + to.name.as_ref().map_or(0, String::len);
        let mut lines = PerCopyLines {
            text: String::with_capacity(
                256 + 3 * mailbox_len + one_click_url.len() + unsubscribe_mailto.len(),
            ),
            spans: Default::default(),
        };
        let mut one = Headers::with_capacity(1);
        one.set(header::To::from(Mailboxes::from(to)));
        lines.take(PerCopyHeader::To, &mut one)?;
        one.set(header::Date::now());
        lines.take(PerCopyHeader::Date, &mut one)?;
        one.set(header::MessageId::from(message_id(&self.from)));
        lines.take(PerCopyHeader::MessageId, &mut one)?;
        one.insert_raw(list_unsubscribe_header(one_click_url, unsubscribe_mailto));
        lines.take(PerCopyHeader::ListUnsubscribe, &mut one)?;
        Ok(lines)
    }
}

/// One copy's header lines, one after another, and where each one is.
struct PerCopyLines {
    text: String,
    spans: [Range<usize>; 4],
}

impl PerCopyLines {
    /// Formats the one header in `headers` as `which`, and empties `headers`.
    fn take(&mut self, which: PerCopyHeader, headers: &mut Headers) -> Result<(), Error> {
        let start = self.text.len();
        write!(self.text, "{headers}")
            .map_err(|e| Error::Build(format!("{} header: {e}", which.name())))?;
        self.spans[which.index()] = start..self.text.len();
        headers.clear();
        Ok(())
    }

    fn line(&self, which: PerCopyHeader) -> &[u8] {
        &self.text.as_bytes()[self.spans[which.index()].clone()]
    }
}

impl Splice {
    /// Builds the digest once through `digest_message`, with throwaway
    /// values for the per-copy headers and a random marker for each body,
    /// and cuts the formatted message at those headers and markers.
    fn build(
        from: &Mailbox,
        subject: &str,
        list_id: &str,
        (text, html): (&SlottedBody, &SlottedBody),
        encoding: ContentTransferEncoding,
    ) -> Result<Self, Error> {
        let mut rng = rand::rng();
        let nonce = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        let text_marker = format!("herald-text-body-{nonce}");
        let html_marker = format!("herald-html-body-{nonce}");
        let message = digest_message(
            from,
            DigestCopy {
                to_email: "subscriber@template.invalid",
                to_name: None,
                subject,
                html: Body::dangerous_pre_encoded(html_marker.clone().into_bytes(), encoding),
                text: Body::dangerous_pre_encoded(text_marker.clone().into_bytes(), encoding),
                one_click_url: "https://template.invalid/one-click",
                unsubscribe_mailto: "mailto:unsubscribe@template.invalid".to_string(),
                list_id,
            },
        )?;
        let formatted = message.formatted();
        if let Some(len) = overlong_header_line(&formatted) {
            return Err(Error::Build(format!(
                "template: a header line of {len} octets (RFC 5322 allows {MAX_LINE})"
            )));
        }

        let header_end = find(&formatted, b"\r\n\r\n", 0)
            .map(|i| i + 2)
            .ok_or_else(|| Error::Build("template: no end of headers".into()))?;
        let mut cuts: Vec<(Range<usize>, Cut)> = Vec::with_capacity(6);
        for h in PerCopyHeader::ALL {
            cuts.push((field(&formatted[..header_end], h.name())?, Cut::Header(h)));
        }
        cuts.push((
            only_one(&formatted, text_marker.as_bytes(), header_end)?,
            Cut::Body(text, Part::Text),
        ));
        cuts.push((
            only_one(&formatted, html_marker.as_bytes(), header_end)?,
            Cut::Body(html, Part::Html),
        ));
        cuts.sort_by_key(|(range, _)| range.start);

        let mut splice = Self {
            literals: Vec::with_capacity(formatted.len() + text.byte_len() + html.byte_len()),
            pieces: Vec::new(),
            text_urls: 0,
            html_urls: 0,
            text_lines: lines_with_urls(text),
            html_lines: lines_with_urls(html),
            body_hash: BodyHashBuilder::default().build(),
        };
        // The body starts after the blank line; only it is hashed for DKIM.
        let body_start = header_end + 2;
        let mut body_hash = BodyHashBuilder::default();
        let mut at = 0;
        for (range, cut) in cuts {
            let literal = formatted
                .get(at..range.start)
                .ok_or_else(|| Error::Build("template: overlapping cuts".into()))?;
            splice.push_literal(literal);
            body_hash.literal(
                formatted
                    .get(body_start.max(at)..range.start)
                    .unwrap_or(&[]),
            );
            match cut {
                Cut::Header(h) => splice.pieces.push(Piece::Header(h)),
                Cut::Body(body, part) => {
                    for (i, chunk) in body.segments().iter().enumerate() {
                        if i > 0 {
                            splice.push_url(part);
                            body_hash.hole();
                        }
                        splice.push_literal(chunk.as_bytes());
                        body_hash.literal(chunk.as_bytes());
                    }
                }
            }
            at = range.end;
        }
        splice.push_literal(&formatted[at..]);
        body_hash.literal(&formatted[body_start.max(at)..]);
        splice.body_hash = body_hash.build();
        Ok(splice)
    }

    fn push_literal(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = self.literals.len();
        self.literals.extend_from_slice(bytes);
        let end = self.literals.len();
        match self.pieces.last_mut() {
            Some(Piece::Literal(last)) if last.end == start => last.end = end,
            _ => self.pieces.push(Piece::Literal(start..end)),
        }
    }

    fn push_url(&mut self, part: Part) {
        match part {
            Part::Text => self.text_urls += 1,
            Part::Html => self.html_urls += 1,
        }
        self.pieces.push(Piece::Url(part));
    }

    /// Which body each URL goes into, in the order they appear.
    fn urls(&self) -> impl Iterator<Item = Part> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Url(part) => Some(*part),
            _ => None,
        })
    }

    /// Whether body lines stay within `MAX_LINE` with these URLs in.
    fn fits(&self, text_url_len: usize, html_url_len: usize) -> bool {
        let fits = |lines: &[LineWithUrls], len: usize| {
            lines.iter().all(|l| {
                l.urls
                    .checked_mul(len)
                    .and_then(|n| n.checked_add(l.other))
                    .is_some_and(|n| n <= MAX_LINE)
            })
        };
        fits(&self.text_lines, text_url_len) && fits(&self.html_lines, html_url_len)
    }

    /// The copy, in one allocation of exactly its size.
    fn assemble(&self, lines: &PerCopyLines, text_url: &str, html_url: &str) -> Vec<u8> {
        let size = self.literals.len()
            + lines.text.len()
            + self.text_urls * text_url.len()
            + self.html_urls * html_url.len();
        let mut out = Vec::with_capacity(size);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(range) => out.extend_from_slice(&self.literals[range.clone()]),
                Piece::Header(h) => out.extend_from_slice(lines.line(*h)),
                Piece::Url(Part::Text) => out.extend_from_slice(text_url.as_bytes()),
                Piece::Url(Part::Html) => out.extend_from_slice(html_url.as_bytes()),
            }
        }
        debug_assert_eq!(out.len(), size);
        out
    }
}

/// What replaces a cut in the formatted template.
enum Cut<'a> {
    Header(PerCopyHeader),
    /// A body, CRLF line endings, cut at its unsubscribe slots.
    Body(&'a SlottedBody, Part),
}

fn refuse_line_breaks(what: &str, value: &str) -> Result<(), Error> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(Error::Build(format!(
            "{what} contains a line break or NUL: {value:?}"
        )));
    }
    Ok(())
}

/// The lines of `body` that hold a slot, with how many and how long the
/// rest of the line is.
fn lines_with_urls(body: &SlottedBody) -> Vec<LineWithUrls> {
    let mut lines = Vec::new();
    let mut current = LineWithUrls { other: 0, urls: 0 };
    for (i, segment) in body.segments().iter().enumerate() {
        if i > 0 {
            current.urls += 1;
        }
        let mut pieces = segment.split("\r\n");
        if let Some(first) = pieces.next() {
            current.other += first.len();
        }
        for piece in pieces {
            if current.urls > 0 {
                lines.push(current);
            }
            current = LineWithUrls {
                other: piece.len(),
                urls: 0,
            };
        }
    }
    if current.urls > 0 {
        lines.push(current);
    }
    lines
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Where `needle`, which must occur exactly once from `from` on, sits.
fn only_one(haystack: &[u8], needle: &[u8], from: usize) -> Result<Range<usize>, Error> {
    let missing = || Error::Build("template: body marker not found exactly once".into());
    let start = find(haystack, needle, from).ok_or_else(missing)?;
    let end = start + needle.len();
    match find(haystack, needle, end) {
        Some(_) => Err(missing()),
        None => Ok(start..end),
    }
}

/// The whole field `name` in a header block, folded lines and final CRLF included.
fn field(headers: &[u8], name: &str) -> Result<Range<usize>, Error> {
    let mut line_start = 0;
    let mut start = None;
    while line_start < headers.len() {
        let line_end = find(headers, b"\r\n", line_start).map_or(headers.len(), |i| i + 2);
        let line = &headers[line_start..line_end];
        let is_continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        match start {
            Some(s) if !is_continuation => return Ok(s..line_start),
            None if line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && line[name.len()] == b':' =>
            {
                start = Some(line_start);
            }
            _ => {}
        }
        line_start = line_end;
    }
    start
        .map(|s| s..headers.len())
        .ok_or_else(|| Error::Build(format!("template: no {name} header")))
}

/// Where [`sample_digest_bodies`] puts the unsubscribe URL.
pub const SAMPLE_UNSUBSCRIBE_MARKER: &str = "%%SAMPLE_UNSUBSCRIBE%%";

/// [`sample_digest_bodies`] cut at its markers.
pub fn sample_digest() -> SlottedBodies {
    let (html, text) = sample_digest_bodies();
    slotted(&html, &text, SAMPLE_UNSUBSCRIBE_MARKER)
}

/// Bodies herald wrote itself (tests, benchmarks) with `marker` where the
/// unsubscribe URL goes.
pub fn slotted(html: &str, text: &str, marker: &str) -> SlottedBodies {
    SlottedBodies {
        html: SlottedBody::cut_at_markers(html, &[(marker, Slot::Unsubscribe)]),
        text: SlottedBody::cut_at_markers(text, &[(marker, Slot::Unsubscribe)]),
    }
}

/// About 20 KB of digest HTML and text, LF line endings as askama renders
/// them, [`SAMPLE_UNSUBSCRIBE_MARKER`] twice in the HTML and once in the
/// text, with non-ASCII text: what `herald bench render` times and the
/// tests use.
pub fn sample_digest_bodies() -> (String, String) {
    const P: &str = SAMPLE_UNSUBSCRIBE_MARKER;
    let mut html =
        format!("<!DOCTYPE html>\n<html><body>\n<p><a href=\"{P}\">Unsubscribe</a></p>\n");
    let mut text = String::from("Le Café Herald\n\n");
    let summary = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(3);
    for i in 0..40 {
        html.push_str(&format!(
            "<h2><a href=\"https://blog.example/{i}?a=1&amp;b=2\">Article n° {i}: ça marche</a></h2>\n<p>{summary}</p>\n"
        ));
        text.push_str(&format!(
            "Article n° {i}: ça marche\nhttps://blog.example/{i}?a=1&b=2\n{summary}\n\n"
        ));
    }
    html.push_str(&format!(
        "<p><a href=\"{P}\">Se désabonner</a></p>\n</body></html>\n"
    ));
    text.push_str(&format!("Unsubscribe: {P}\n"));
    (html, text)
}

/// Per-copy time of the builder path (`DigestBodies::personalise` +
/// `digest_message` + `formatted`) and of `DigestTemplate::render`, for
/// `herald bench render`.
pub fn time_per_copy(
    from: &Mailbox,
    bodies: &SlottedBodies,
    copies: u32,
) -> Result<(std::time::Duration, std::time::Duration), Error> {
    let copies = copies.max(1);
    let (subject, list_id, page, one_click, mailto) = BENCH_COPY;
    let prepared = DigestBodies::prepare(bodies);
    let mut total = 0usize;
    let start = std::time::Instant::now();
    for _ in 0..copies {
        let (h, t) = prepared.personalise(page);
        let message = digest_message(
            from,
            DigestCopy {
                to_email: "zoe@example.org",
                to_name: Some("Zoë Ångström"),
                subject,
                html: h,
                text: t,
                one_click_url: one_click,
                unsubscribe_mailto: mailto.to_string(),
                list_id,
            },
        )?;
        total += message.formatted().len();
    }
    let builder = start.elapsed() / copies;
    tracing::debug!(total, "bytes built");
    let spliced = time_per_signed_copy(from, bodies, copies, None)?;
    Ok((builder, spliced))
}

const BENCH_COPY: (&str, &str, &str, &str, &str) = (
    "herald bench: a digest",
    "\"herald\" <digest.localhost>",
    "https://news.example/unsubscribe/t0k3n?from=digest&lang=fr",
    "https://news.example/unsubscribe/one-click/t0k3n",
    "mailto:digest@news.example?subject=unsubscribe%20t0k3n",
);

/// Time per spliced copy, DKIM-signed by `dkim` when given.
pub fn time_per_signed_copy(
    from: &Mailbox,
    bodies: &SlottedBodies,
    copies: u32,
    dkim: Option<Arc<Dkim>>,
) -> Result<std::time::Duration, Error> {
    let copies = copies.max(1);
    let (subject, list_id, page, one_click, mailto) = BENCH_COPY;
    let template = DigestTemplate::prepare(from, subject, list_id, bodies)?.with_dkim(dkim);
    let mut total = 0usize;
    let start = std::time::Instant::now();
    for _ in 0..copies {
        let (_, bytes) = template.render(
            "zoe@example.org",
            Some("Zoë Ångström"),
            page,
            one_click,
            mailto,
        )?;
        total += bytes.len();
    }
    let elapsed = start.elapsed() / copies;
    tracing::debug!(total, "bytes built");
    Ok(elapsed)
}

/// Time per copy of the DKIM body hash: from the template's precomputed
/// state, and over the whole copy.
pub fn time_body_hash(
    from: &Mailbox,
    bodies: &SlottedBodies,
    copies: u32,
) -> Result<(std::time::Duration, std::time::Duration), Error> {
    let copies = copies.max(1);
    let (subject, list_id, page, one_click, mailto) = BENCH_COPY;
    let template = DigestTemplate::prepare(from, subject, list_id, bodies)?;
    let splice = template
        .splice
        .as_ref()
        .ok_or_else(|| Error::Build("the bench digest is not spliceable".into()))?;
    let (_, message) = template.render("zoe@example.org", None, page, one_click, mailto)?;
    let escaped = html_escape::encode_double_quoted_attribute(page);
    let values = || {
        splice.urls().map(|part| match part {
            Part::Text => page.as_bytes(),
            Part::Html => escaped.as_bytes(),
        })
    };
    let whole = super::dkim::body_hash(&message);
    if splice.body_hash.hash(values()) != Some(whole) {
        return Err(Error::Build("the template's body hash differs".into()));
    }
    let start = std::time::Instant::now();
    let mut check = 0u8;
    for _ in 0..copies {
        check ^= splice.body_hash.hash(values()).map_or(0, |h| h[0]);
    }
    let from_template = start.elapsed() / copies;
    let start = std::time::Instant::now();
    for _ in 0..copies {
        check ^= super::dkim::body_hash(&message)[0];
    }
    let whole_message = start.elapsed() / copies;
    tracing::debug!(check, "hashes");
    Ok((from_template, whole_message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};
    use std::time::{SystemTime, UNIX_EPOCH};

    const P: &str = SAMPLE_UNSUBSCRIBE_MARKER;
    const SUBJECT: &str = "Le Café Herald: Ünïcode in the subject — and 39 more";
    const LIST_ID: &str = "<digest.news.example>";
    const PAGE_URL: &str = "https://news.example/unsubscribe/t0k3n?from=digest&lang=fr";
    const ONE_CLICK: &str = "https://news.example/unsubscribe/one-click/t0k3n";
    const MAILTO: &str = "mailto:digest@news.example?subject=unsubscribe%20t0k3n";

    fn from() -> Mailbox {
        "Le Café Herald <digest@news.example>".parse().unwrap()
    }

    fn template() -> DigestTemplate {
        DigestTemplate::prepare(&from(), SUBJECT, LIST_ID, &sample_digest()).unwrap()
    }

    /// The message as every copy was built before templates.
    fn builder_copy(html: &str, text: &str, to_email: &str, to_name: Option<&str>) -> Message {
        let (html, text) = DigestBodies::prepare(&slotted(html, text, P)).personalise(PAGE_URL);
        digest_message(
            &from(),
            DigestCopy {
                to_email,
                to_name,
                subject: SUBJECT,
                html,
                text,
                one_click_url: ONE_CLICK,
                unsubscribe_mailto: MAILTO.to_string(),
                list_id: LIST_ID,
            },
        )
        .unwrap()
    }

    use lettre::Message;

    fn header(message: &mail_parser::Message<'_>, name: &str) -> String {
        message
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.replace("\r\n", "").trim().to_string())
            .unwrap_or_default()
    }

    /// The message with its boundary, Date and Message-ID, which differ on
    /// every build, replaced by fixed text.
    fn normalised(bytes: &[u8]) -> String {
        let parsed = MessageParser::default().parse(bytes).unwrap();
        let boundary = parsed
            .content_type()
            .unwrap()
            .attribute("boundary")
            .unwrap();
        let text = std::str::from_utf8(bytes)
            .unwrap()
            .replace(boundary, "BOUNDARY");
        text.split_inclusive("\r\n")
            .map(|line| {
                if line.starts_with("Date: ") {
                    "Date: DATE\r\n"
                } else if line.starts_with("Message-ID: ") {
                    "Message-ID: ID\r\n"
                } else {
                    line
                }
            })
            .collect()
    }

    #[test]
    fn spliced_copy_shows_what_a_mail_client_should_see() {
        let t = template();
        assert!(t.is_spliceable());
        let (envelope, bytes) = t
            .render(
                "zoe@example.org",
                Some("Zoë Ångström"),
                PAGE_URL,
                ONE_CLICK,
                MAILTO,
            )
            .unwrap();
        assert_eq!(envelope.from().unwrap().to_string(), "digest@news.example");
        assert_eq!(envelope.to().len(), 1);
        assert_eq!(envelope.to()[0].to_string(), "zoe@example.org");

        let m = MessageParser::default().parse(&bytes).unwrap();
        let from = m.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("Le Café Herald"));
        assert_eq!(from.address(), Some("digest@news.example"));
        let to = m.to().unwrap().first().unwrap();
        assert_eq!(to.name(), Some("Zoë Ångström"));
        assert_eq!(to.address(), Some("zoe@example.org"));
        assert_eq!(m.subject(), Some(SUBJECT));
        assert_eq!(header(&m, "List-Id"), LIST_ID);
        assert_eq!(
            header(&m, "List-Unsubscribe"),
            format!("<{ONE_CLICK}>, <{MAILTO}>")
        );
        assert_eq!(
            header(&m, "List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        assert_eq!(header(&m, "Precedence"), "bulk");
        assert!(m.message_id().unwrap().ends_with("@news.example"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((m.date().unwrap().to_timestamp() - now).abs() < 60);

        let text = m.body_text(0).unwrap();
        assert!(text.contains(&format!("Unsubscribe: {PAGE_URL}\r\n")));
        let html = m.body_html(0).unwrap();
        let escaped = PAGE_URL.replace('&', "&amp;");
        assert_eq!(html.matches(&format!("<a href=\"{escaped}\">")).count(), 2);
        assert!(!html.contains(PAGE_URL));
        assert!(!String::from_utf8_lossy(&bytes).contains(P));
        for part in [m.text_part(0).unwrap(), m.html_part(0).unwrap()] {
            assert_eq!(part.content_transfer_encoding(), Some("8bit"));
        }
    }

    #[test]
    fn spliced_copy_is_the_builder_message_but_for_date_id_and_boundary() {
        let (html, text) = sample_digest_bodies();
        let t = template();
        for (email, name) in [
            ("zoe@example.org", Some("Zoë Ångström")),
            ("jj@example.org", Some("Doe, \"JJ\" Jane")),
            ("plain@example.org", None),
            ("long@example.org", Some(&*"Ünïcödé ".repeat(20))),
        ] {
            let (envelope, spliced) = t.render(email, name, PAGE_URL, ONE_CLICK, MAILTO).unwrap();
            let built = builder_copy(&html, &text, email, name);
            assert_eq!(normalised(&spliced), normalised(&built.formatted()));
            assert_eq!(&envelope, built.envelope());

            let (s, b) = (
                MessageParser::default().parse(&spliced).unwrap(),
                built.formatted(),
            );
            let b = MessageParser::default().parse(&b).unwrap();
            assert_eq!(s.to().unwrap().first().unwrap().name(), name);
            assert_eq!(s.to().unwrap().first(), b.to().unwrap().first());
            assert_eq!(s.body_text(0), b.body_text(0));
            assert_eq!(s.body_html(0), b.body_html(0));
        }
    }

    #[test]
    fn two_copies_have_their_own_message_id() {
        let t = template();
        let ids: Vec<String> = (0..2)
            .map(|_| {
                let (_, bytes) = t
                    .render("a@example.org", None, PAGE_URL, ONE_CLICK, MAILTO)
                    .unwrap();
                let m = MessageParser::default().parse(&bytes).unwrap();
                m.message_id().unwrap().to_string()
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
        for id in ids {
            // mail-parser drops the angle brackets.
            let (hex, domain) = id.split_once('@').unwrap();
            assert_eq!(domain, "news.example");
            assert_eq!(hex.len(), 32);
            assert!(hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }

    #[test]
    fn line_breaks_in_any_per_copy_value_are_refused() {
        let t = template();
        let ok = ["a@example.org", "Ann", PAGE_URL, ONE_CLICK, MAILTO];
        for field in 0..ok.len() {
            for evil in ["\r\nBcc: x@evil.example", "\nX: y", "\r", "\0"] {
                let mut v = ok;
                let bad = format!("{}{evil}", ok[field]);
                v[field] = &bad;
                let result = t.render(v[0], Some(v[1]), v[2], v[3], v[4]);
                assert!(result.is_err(), "field {field} with {evil:?} was accepted");
            }
        }
        assert!(t
            .render("not an address", None, PAGE_URL, ONE_CLICK, MAILTO)
            .is_err());
        assert!(t
            .render(
                "a@example.org>, b@evil.example",
                None,
                PAGE_URL,
                ONE_CLICK,
                MAILTO
            )
            .is_err());
    }

    #[test]
    fn placeholder_in_the_subject_is_not_replaced() {
        let (html, text) = sample_digest_bodies();
        let subject = format!("About {P}");
        let t =
            DigestTemplate::prepare(&from(), &subject, LIST_ID, &slotted(&html, &text, P)).unwrap();
        let (_, bytes) = t
            .render("a@example.org", None, PAGE_URL, ONE_CLICK, MAILTO)
            .unwrap();
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(m.subject(), Some(subject.as_str()));
        assert!(m.body_text(0).unwrap().contains(PAGE_URL));
    }

    #[test]
    fn body_line_over_700_octets_takes_the_builder_path() {
        let (html, text) = sample_digest_bodies();
        let html = format!("<p>{}</p>\n{html}", "x".repeat(800));
        let t =
            DigestTemplate::prepare(&from(), SUBJECT, LIST_ID, &slotted(&html, &text, P)).unwrap();
        assert!(!t.is_spliceable());
        let (envelope, bytes) = t
            .render("zoe@example.org", Some("Zoë"), PAGE_URL, ONE_CLICK, MAILTO)
            .unwrap();
        assert_eq!(envelope.to()[0].to_string(), "zoe@example.org");
        assert!(bytes
            .split(|b| *b == b'\n')
            .all(|line| line.len() <= MAX_LINE + 1));
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(m.to().unwrap().first().unwrap().name(), Some("Zoë"));
        assert_eq!(
            header(&m, "List-Unsubscribe"),
            format!("<{ONE_CLICK}>, <{MAILTO}>")
        );
        let html = m.body_html(0).unwrap();
        assert!(html.contains(&"x".repeat(800)));
        assert!(html.contains(&PAGE_URL.replace('&', "&amp;")));
        assert!(!html.contains(P));
        assert!(m.body_text(0).unwrap().contains(PAGE_URL));
    }

    /// Subjects tried: 100,000 ASCII characters without a space, 100,000
    /// with spaces, 30,000 four-byte characters, and a mix; on the spliced
    /// and on the builder path.
    #[test]
    fn a_huge_title_never_makes_a_header_line_over_998_octets() {
        let (html, text) = sample_digest_bodies();
        let long_body = format!("<p>{}</p>\n{html}", "x".repeat(800));
        let subjects = [
            "x".repeat(100_000),
            "word ".repeat(20_000),
            "😀".repeat(30_000),
            format!("{}{}", "a".repeat(5000), "é ".repeat(5000)),
        ];
        for subject in &subjects {
            for body in [&html, &long_body] {
                let t =
                    DigestTemplate::prepare(&from(), subject, LIST_ID, &slotted(body, &text, P))
                        .unwrap();
                let name = "N".repeat(5000);
                let (_, bytes) = t
                    .render("a@example.org", Some(&name), PAGE_URL, ONE_CLICK, MAILTO)
                    .unwrap();
                let longest = bytes
                    .split(|b| *b == b'\n')
                    .map(|l| l.len().saturating_sub(1))
                    .max()
                    .unwrap();
                assert!(longest <= MAX_LINE, "a line of {longest} octets");
                let m = MessageParser::default().parse(&bytes).unwrap();
                let shown = m.subject().unwrap();
                assert!(!shown.is_empty() && subject.starts_with(shown));
            }
        }
    }

    #[test]
    fn url_too_long_for_a_body_line_takes_the_builder_path() {
        let t = template();
        assert!(t.is_spliceable());
        let url = format!("https://news.example/unsubscribe/{}&x", "t".repeat(1000));
        let (_, bytes) = t
            .render("a@example.org", None, &url, ONE_CLICK, MAILTO)
            .unwrap();
        assert!(bytes
            .split(|b| *b == b'\n')
            .all(|line| line.len() <= MAX_LINE + 1));
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert!(m.body_text(0).unwrap().contains(&url));
        assert!(m.body_html(0).unwrap().contains(&url.replace('&', "&amp;")));
    }
}
