//! Where the per-digest and per-copy links go in a rendered body.
//!
//! A digest body holds outside text (titles, links, image URLs, authors
//! from feeds and the API), so herald never finds the places for a copy's
//! own links by searching the body for a marker: an article carrying that
//! marker would receive every reader's unsubscribe URL. Instead the
//! renderer records the positions as it renders ([`SlottedBody`]): the
//! body is kept as the segments between slots, and each slot says which
//! link it stands for. Everything downstream (line-ending changes,
//! quoted-printable encoding, the per-copy splice, DKIM's body hash, the
//! archive page) works segment by segment and puts values only between
//! segments.
//!
//! Stored digests keep the body as one string (the segments joined) and
//! the slots' byte offsets beside it (`digests.body_slots`). A digest
//! stored before herald recorded slots has none: its slots are taken from
//! the placeholders herald wrote then ([`SlottedBody::from_legacy`]), the
//! one place a body is still searched.

use serde::{Deserialize, Serialize};

/// What a slot stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// The reader's own unsubscribe page: one value per copy.
    Unsubscribe,
    /// The digest's archive page: one value per digest.
    Archive,
    /// Where what only a mail shows begins and ends: the "view this digest
    /// in your browser" line. A copy (and a preview) fills both with
    /// nothing; the archive page and its feed drop what lies between.
    MailOnlyStart,
    MailOnlyEnd,
}

/// A body cut at its slots: `segments.len() == slots.len() + 1`, slot `i`
/// sits between segment `i` and segment `i + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlottedBody {
    segments: Vec<String>,
    slots: Vec<Slot>,
}

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("the digest's slot positions are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a slot position ({0}) is out of order, past the body or inside a character")]
    Position(usize),
}

/// The slot positions of a digest's two bodies, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredSlots {
    html: Vec<(usize, Slot)>,
    text: Vec<(usize, Slot)>,
}

/// The placeholders herald wrote into bodies before it recorded positions.
const LEGACY_UNSUBSCRIBE: &str = "%%HERALD_UNSUBSCRIBE_URL%%";
const LEGACY_ARCHIVE: &str = "%%HERALD_ARCHIVE_URL%%";

/// The HTML herald's template wrote around the archive slot of its "view
/// this digest in your browser" line before it marked that line as mail
/// only (one template version ever had the line unmarked).
const LEGACY_BROWSER_LINE_START: &str =
    "<p style=\"margin:6px 0 0;font-size:13px;color:#4b5563;\"><a href=\"";
const LEGACY_BROWSER_LINE_END: &str =
    "\" style=\"color:#4b5563;\">View this digest in your browser</a></p>\n";

impl SlottedBody {
    /// A body with no slots.
    pub fn plain(body: impl Into<String>) -> Self {
        Self {
            segments: vec![body.into()],
            slots: Vec::new(),
        }
    }

    /// Cuts `body` at every occurrence of each marker. Only for text whose
    /// every byte herald wrote itself or that cannot hold the markers: the
    /// renderer's markers carry a random nonce drawn after the outside text
    /// was fixed, so no article can contain one.
    pub fn cut_at_markers(body: &str, markers: &[(&str, Slot)]) -> Self {
        let mut found: Vec<(usize, usize, Slot)> = Vec::new();
        for (marker, slot) in markers {
            if marker.is_empty() {
                continue;
            }
            found.extend(
                body.match_indices(marker)
                    .map(|(at, m)| (at, at + m.len(), *slot)),
            );
        }
        found.sort_by_key(|(at, _, _)| *at);
        let mut out = Self {
            segments: Vec::with_capacity(found.len() + 1),
            slots: Vec::with_capacity(found.len()),
        };
        let mut from = 0;
        for (start, end, slot) in found {
            if start < from {
                continue; // overlapping markers: the first one wins
            }
            out.segments.push(body[from..start].to_string());
            out.slots.push(slot);
            from = end;
        }
        out.segments.push(body[from..].to_string());
        out
    }

    /// A body stored before herald recorded positions: its slots are where
    /// herald's placeholders were.
    pub fn from_legacy(body: &str) -> Self {
        Self::cut_at_markers(
            body,
            &[
                (LEGACY_UNSUBSCRIBE, Slot::Unsubscribe),
                (LEGACY_ARCHIVE, Slot::Archive),
            ],
        )
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The segments' length in bytes, slots counted as empty.
    pub fn byte_len(&self) -> usize {
        self.segments.iter().map(String::len).sum()
    }

    /// How many slots stand for `slot`.
    pub fn count(&self, slot: Slot) -> usize {
        self.slots.iter().filter(|s| **s == slot).count()
    }

    /// The segments and, between them, the value `value` gives for each slot.
    pub fn fill<'a>(&self, value: impl Fn(Slot) -> &'a str) -> String {
        let mut out = String::with_capacity(
            self.segments.iter().map(String::len).sum::<usize>() + self.slots.len() * 64,
        );
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push_str(value(self.slots[i - 1]));
            }
            out.push_str(segment);
        }
        out
    }

    /// The body with every `slot` filled with `value` and the other slots
    /// kept.
    pub fn fill_only(&self, slot: Slot, value: &str) -> Self {
        let mut out = Self {
            segments: Vec::with_capacity(self.segments.len()),
            slots: Vec::with_capacity(self.slots.len()),
        };
        let mut current = self.segments[0].clone();
        for (s, segment) in self.slots.iter().zip(&self.segments[1..]) {
            if *s == slot {
                current.push_str(value);
            } else {
                out.segments.push(std::mem::take(&mut current));
                out.slots.push(*s);
            }
            current.push_str(segment);
        }
        out.segments.push(current);
        out
    }

    /// The body as a web page shows it: without what only a mail shows.
    /// Each region from a [`Slot::MailOnlyStart`] to the next
    /// [`Slot::MailOnlyEnd`] is dropped, with any slot inside it. A body
    /// stored before herald marked those regions has its "view this digest
    /// in your browser" line dropped instead: the line is found at its
    /// recorded archive slot, by the exact text herald's template wrote on
    /// either side of it (never by searching the body). Regions that do not
    /// pair up, which only a damaged row can have, drop nothing.
    pub fn without_mail_only(&self) -> Self {
        let marks: Vec<Slot> = self
            .slots
            .iter()
            .copied()
            .filter(|s| matches!(s, Slot::MailOnlyStart | Slot::MailOnlyEnd))
            .collect();
        if marks.is_empty() {
            return self.without_legacy_browser_line();
        }
        let paired = marks.len() % 2 == 0
            && marks
                .chunks(2)
                .all(|pair| pair == [Slot::MailOnlyStart, Slot::MailOnlyEnd]);
        let mut out = Self {
            segments: vec![String::new()],
            slots: Vec::with_capacity(self.slots.len()),
        };
        let mut inside = false;
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                match self.slots[i - 1] {
                    Slot::MailOnlyStart if paired => inside = true,
                    Slot::MailOnlyEnd if paired => inside = false,
                    Slot::MailOnlyStart | Slot::MailOnlyEnd => {}
                    slot if !inside => {
                        out.slots.push(slot);
                        out.segments.push(String::new());
                    }
                    _ => {}
                }
            }
            if !inside {
                if let Some(last) = out.segments.last_mut() {
                    last.push_str(segment);
                }
            }
        }
        out
    }

    /// See [`Self::without_mail_only`].
    fn without_legacy_browser_line(&self) -> Self {
        let mut out = Self {
            segments: vec![self.segments[0].clone()],
            slots: Vec::with_capacity(self.slots.len()),
        };
        for (slot, segment) in self.slots.iter().zip(&self.segments[1..]) {
            let before = out.segments.last().map_or("", String::as_str);
            let line = (*slot == Slot::Archive)
                .then(|| {
                    before
                        .strip_suffix(LEGACY_BROWSER_LINE_START)
                        .zip(segment.strip_prefix(LEGACY_BROWSER_LINE_END))
                })
                .flatten()
                .map(|(kept, after)| (kept.len(), after));
            match line {
                Some((kept, after)) => {
                    if let Some(last) = out.segments.last_mut() {
                        last.truncate(kept);
                        last.push_str(after);
                    }
                }
                None => {
                    out.slots.push(*slot);
                    out.segments.push(segment.clone());
                }
            }
        }
        out
    }

    /// Each segment through `f`, slots where they were.
    pub fn map_segments(&self, mut f: impl FnMut(&str) -> String) -> Self {
        Self {
            segments: self.segments.iter().map(|s| f(s)).collect(),
            slots: self.slots.clone(),
        }
    }

    /// The segments joined, and each slot's byte offset in that string.
    fn joined(&self) -> (String, Vec<(usize, Slot)>) {
        let mut body = String::with_capacity(self.segments.iter().map(String::len).sum());
        let mut at = Vec::with_capacity(self.slots.len());
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                at.push((body.len(), self.slots[i - 1]));
            }
            body.push_str(segment);
        }
        (body, at)
    }

    fn from_positions(body: &str, at: &[(usize, Slot)]) -> Result<Self, SlotError> {
        let mut out = Self {
            segments: Vec::with_capacity(at.len() + 1),
            slots: Vec::with_capacity(at.len()),
        };
        let mut from = 0;
        for (position, slot) in at {
            let segment = (*position >= from)
                .then(|| body.get(from..*position))
                .flatten()
                .ok_or(SlotError::Position(*position))?;
            out.segments.push(segment.to_string());
            out.slots.push(*slot);
            from = *position;
        }
        out.segments.push(body[from..].to_string());
        Ok(out)
    }
}

/// A digest's two bodies with their slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlottedBodies {
    pub html: SlottedBody,
    pub text: SlottedBody,
}

/// A digest's bodies as the database keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBodies {
    pub html: String,
    pub text: String,
    /// The slots' positions (JSON).
    pub slots: String,
}

impl SlottedBodies {
    /// A stored digest's bodies.
    pub fn of_digest(digest: &crate::store::DigestRow) -> Result<Self, SlotError> {
        Self::from_stored(
            &digest.body_html,
            &digest.body_text,
            digest.body_slots.as_deref(),
        )
    }

    pub fn to_stored(&self) -> StoredBodies {
        let (html, html_at) = self.html.joined();
        let (text, text_at) = self.text.joined();
        let slots = serde_json::to_string(&StoredSlots {
            html: html_at,
            text: text_at,
        })
        .unwrap_or_default();
        StoredBodies { html, text, slots }
    }

    /// `slots` is None for a digest stored before herald recorded them.
    pub fn from_stored(html: &str, text: &str, slots: Option<&str>) -> Result<Self, SlotError> {
        match slots {
            None => Ok(Self {
                html: SlottedBody::from_legacy(html),
                text: SlottedBody::from_legacy(text),
            }),
            Some(json) => {
                let at: StoredSlots = serde_json::from_str(json)?;
                Ok(Self {
                    html: SlottedBody::from_positions(html, &at.html)?,
                    text: SlottedBody::from_positions(text, &at.text)?,
                })
            }
        }
    }

    /// Both bodies with the archive page's URL in (escaped as an attribute
    /// value in the HTML) and what only a mail shows kept: what every copy
    /// of one digest shares. Only unsubscribe slots are left.
    pub fn with_archive_url(&self, archive_url: &str) -> Self {
        let escaped = html_escape::encode_double_quoted_attribute(archive_url);
        let mail = |body: &SlottedBody, url: &str| {
            body.fill_only(Slot::Archive, url)
                .fill_only(Slot::MailOnlyStart, "")
                .fill_only(Slot::MailOnlyEnd, "")
        };
        Self {
            html: mail(&self.html, &escaped),
            text: mail(&self.text, archive_url),
        }
    }

    /// Both bodies as a mail shows them, every slot filled:
    /// `unsubscribe_url` and `archive_url` (escaped in the HTML). For
    /// previews; sending splices copies from `mail::DigestTemplate`, and
    /// the archive page takes [`Self::web_page_html`].
    pub fn filled(&self, unsubscribe_url: &str, archive_url: &str) -> (String, String) {
        let html = fill_html(&self.html, unsubscribe_url, archive_url);
        let text = self.text.fill(|s| match s {
            Slot::Unsubscribe => unsubscribe_url,
            Slot::Archive => archive_url,
            Slot::MailOnlyStart | Slot::MailOnlyEnd => "",
        });
        (html, text)
    }

    /// The HTML body as a web page shows it: what only a mail shows (the
    /// "view this digest in your browser" line) left out, the other slots
    /// filled as in [`Self::filled`].
    pub fn web_page_html(&self, unsubscribe_url: &str, archive_url: &str) -> String {
        fill_html(&self.html.without_mail_only(), unsubscribe_url, archive_url)
    }
}

/// `body` with its slots filled, URLs escaped as attribute values.
fn fill_html(body: &SlottedBody, unsubscribe_url: &str, archive_url: &str) -> String {
    let unsubscribe_escaped = html_escape::encode_double_quoted_attribute(unsubscribe_url);
    let archive_escaped = html_escape::encode_double_quoted_attribute(archive_url);
    body.fill(|s| match s {
        Slot::Unsubscribe => &unsubscribe_escaped,
        Slot::Archive => &archive_escaped,
        Slot::MailOnlyStart | Slot::MailOnlyEnd => "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> SlottedBody {
        SlottedBody::cut_at_markers(
            "a<U>b<A>c<U>",
            &[("<U>", Slot::Unsubscribe), ("<A>", Slot::Archive)],
        )
    }

    #[test]
    fn markers_become_slots_in_order() {
        let b = body();
        assert_eq!(b.segments(), ["a", "b", "c", ""]);
        assert_eq!(
            b.slots(),
            [Slot::Unsubscribe, Slot::Archive, Slot::Unsubscribe]
        );
        assert_eq!(b.count(Slot::Unsubscribe), 2);
    }

    #[test]
    fn stored_positions_give_back_the_same_slots_whatever_the_text_holds() {
        // A body whose text holds the old placeholders: they stay text.
        let b = SlottedBody::cut_at_markers(
            "x %%HERALD_UNSUBSCRIBE_URL%% é<U>y %%HERALD_ARCHIVE_URL%%<A>",
            &[("<U>", Slot::Unsubscribe), ("<A>", Slot::Archive)],
        );
        let bodies = SlottedBodies {
            html: b.clone(),
            text: body(),
        };
        let stored = bodies.to_stored();
        let back = SlottedBodies::from_stored(&stored.html, &stored.text, Some(&stored.slots))
            .expect("valid");
        assert_eq!(back, bodies);
        let (html, _) = back.filled("U", "A");
        assert_eq!(
            html,
            "x %%HERALD_UNSUBSCRIBE_URL%% éUy %%HERALD_ARCHIVE_URL%%A"
        );
    }

    #[test]
    fn bad_positions_are_refused() {
        for slots in [
            r#"{"html":[[5,"unsubscribe"]],"text":[]}"#,
            r#"{"html":[[1,"unsubscribe"],[0,"archive"]],"text":[]}"#,
            r#"{"html":[[2,"unsubscribe"]],"text":[]}"#,
            "not json",
        ] {
            assert!(
                SlottedBodies::from_stored("aé", "", Some(slots)).is_err(),
                "{slots}"
            );
        }
    }

    #[test]
    fn filling_one_kind_keeps_the_others() {
        let b = body().fill_only(Slot::Archive, "ARCH");
        assert_eq!(b.segments(), ["a", "bARCHc", ""]);
        assert_eq!(b.slots(), [Slot::Unsubscribe, Slot::Unsubscribe]);
        assert_eq!(b.fill(|_| "U"), "aUbARCHcU");
    }

    #[test]
    fn a_web_page_leaves_out_what_only_a_mail_shows() {
        let b = SlottedBody::cut_at_markers(
            "a<S>view <A><E>b<U>c<S>x<E>",
            &[
                ("<S>", Slot::MailOnlyStart),
                ("<E>", Slot::MailOnlyEnd),
                ("<A>", Slot::Archive),
                ("<U>", Slot::Unsubscribe),
            ],
        );
        let web = b.without_mail_only();
        assert_eq!(web.segments(), ["ab", "c"]);
        assert_eq!(web.slots(), [Slot::Unsubscribe]);
        let bodies = SlottedBodies {
            html: b,
            text: body(),
        };
        assert_eq!(bodies.web_page_html("U", "A"), "abUc");
        // A mail keeps the line, the marks stand for nothing.
        assert_eq!(bodies.filled("U", "A").0, "aview AbUcx");
        let mail = bodies.with_archive_url("A");
        assert_eq!(mail.html.slots(), [Slot::Unsubscribe]);
        assert_eq!(mail.html.fill(|_| "U"), "aview AbUcx");
    }

    #[test]
    fn marks_that_do_not_pair_up_leave_everything_in() {
        for body in ["a<E>b<S>c<U>", "a<S>b<S>c<E>d<U>", "a<S>b<U>"] {
            let b = SlottedBody::cut_at_markers(
                body,
                &[
                    ("<S>", Slot::MailOnlyStart),
                    ("<E>", Slot::MailOnlyEnd),
                    ("<U>", Slot::Unsubscribe),
                ],
            );
            let web = b.without_mail_only();
            assert_eq!(web.slots(), [Slot::Unsubscribe], "{body}");
            assert_eq!(
                web.fill(|_| "U"),
                body.replace("<S>", "")
                    .replace("<E>", "")
                    .replace("<U>", "U")
            );
        }
    }

    #[test]
    fn an_older_digest_loses_its_browser_line_on_the_web_page() {
        let old = "<p>Herald</p>\n<p style=\"margin:6px 0 0;font-size:13px;color:#4b5563;\"><a href=\"%%HERALD_ARCHIVE_URL%%\" style=\"color:#4b5563;\">View this digest in your browser</a></p>\n<h2>Story</h2><a href=\"%%HERALD_UNSUBSCRIBE_URL%%\">Unsubscribe</a>";
        let b = SlottedBody::from_legacy(old);
        let web = b.without_mail_only();
        assert_eq!(web.slots(), [Slot::Unsubscribe]);
        assert_eq!(
            web.fill(|_| "U"),
            "<p>Herald</p>\n<h2>Story</h2><a href=\"U\">Unsubscribe</a>"
        );
        // An archive slot anywhere else stays, as does text that only
        // looks like the line.
        let other =
            "<p>View this digest in your browser</p><a href=\"%%HERALD_ARCHIVE_URL%%\">x</a>";
        let b = SlottedBody::from_legacy(other);
        assert_eq!(b.without_mail_only(), b);
    }

    #[test]
    fn a_legacy_body_takes_its_slots_from_the_old_placeholders() {
        let b = SlottedBody::from_legacy("a%%HERALD_UNSUBSCRIBE_URL%%b%%HERALD_ARCHIVE_URL%%");
        assert_eq!(b.slots(), [Slot::Unsubscribe, Slot::Archive]);
        assert_eq!(b.segments(), ["a", "b", ""]);
    }
}
