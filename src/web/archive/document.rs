//! A stored digest as a web page. The stored HTML is the email document
//! every subscriber got, with recorded slots (`digest::slots`) where each
//! copy had its own unsubscribe URL. The archive puts the signup page's URL there
//! (so no page can carry anybody's token), leaves out what only a mail
//! shows (the "view this digest in your browser" line), keeps the rest of
//! the document whole so it renders as in a mail client, and adds just inside its `<body>` a herald
//! header (site name, links to the archive and the signup page, the
//! subject and date, as a mail client shows them above a message) and a
//! footer.

use crate::digest::slots::SlottedBodies;
use crate::state::AppState;
use crate::store::DigestRow;
use askama::Template;

/// The digest's HTML with the signup page's URL wherever a subscriber's
/// unsubscribe URL was (escaped as an attribute value, as each copy's
/// is), and without the mail's "view this digest in your browser" line:
/// whoever reads this is in the browser already. Empty (and logged) when
/// the stored slot positions do not fit the body, which only a damaged
/// row can do.
pub fn without_subscriber_links(state: &AppState, digest: &DigestRow) -> String {
    match SlottedBodies::of_digest(digest) {
        Ok(bodies) => {
            let archive_url = state.url(&format!("/archive/{}", digest.id));
            bodies.web_page_html(&state.url("/"), &archive_url)
        }
        Err(e) => {
            tracing::error!(digest_id = digest.id, error = %e, "archive: cannot show the digest");
            String::new()
        }
    }
}

/// A document cut around its body's content: everything up to and with
/// the `<body …>` tag, what the body holds, and `</body>` onwards.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    pub head: &'a str,
    pub content: &'a str,
    pub tail: &'a str,
}

/// Finds `<body …>` and the last `</body>` (ASCII case-insensitive).
/// None when the HTML is not a whole document, or its body tag does not
/// close; the caller then wraps the HTML in a document of its own.
pub fn split(html: &str) -> Option<Parts<'_>> {
    // ASCII lowercasing keeps every byte where it was: offsets carry over.
    let lower = html.to_ascii_lowercase();
    let open = lower.match_indices("<body").map(|(i, _)| i).find(|&i| {
        lower[i + 5..]
            .chars()
            .next()
            .is_some_and(|c| c == '>' || c.is_ascii_whitespace())
    })?;
    let open_end = open + lower[open..].find('>')? + 1;
    let close = lower.rfind("</body")?;
    (close >= open_end).then(|| Parts {
        head: &html[..open_end],
        content: &html[open_end..close],
        tail: &html[close..],
    })
}

#[derive(Template)]
#[template(path = "archive_digest.html")]
struct ArchivedDigest<'a> {
    /// The document up to `<body …>`; trusted markup (herald rendered it).
    head: &'a str,
    content: &'a str,
    tail: &'a str,
    /// The stored HTML was not a whole document: the template makes one.
    is_fragment: bool,
    subject: &'a str,
    site_name: &'a str,
    site_url: Option<&'a str>,
    date: &'a str,
    archive_url: String,
    signup_url: String,
}

/// The page of `/archive/{id}`.
pub fn render(state: &AppState, digest: &DigestRow, date: &str) -> Result<String, askama::Error> {
    let html = without_subscriber_links(state, digest);
    let (parts, is_fragment) = match split(&html) {
        Some(parts) => (parts, false),
        None => (
            Parts {
                head: "",
                content: &html,
                tail: "",
            },
            true,
        ),
    };
    ArchivedDigest {
        head: parts.head,
        content: parts.content,
        tail: parts.tail,
        is_fragment,
        subject: &digest.subject,
        site_name: &state.config.site_name,
        site_url: state.config.site_url.as_deref(),
        date,
        archive_url: state.url("/archive"),
        signup_url: state.url("/"),
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_cut_inside_its_body() {
        let html = "<!doctype html><html><head><title>x</title></head>\n<BODY style=\"margin:0\">\n<p>hi</p>\n</body>\n</html>";
        let parts = split(html).unwrap();
        assert!(parts.head.ends_with("<BODY style=\"margin:0\">"));
        assert_eq!(parts.content, "\n<p>hi</p>\n");
        assert_eq!(parts.tail, "</body>\n</html>");
        assert_eq!(
            format!("{}{}{}", parts.head, parts.content, parts.tail),
            html
        );
    }

    #[test]
    fn html_without_a_whole_body_is_not_cut() {
        assert_eq!(split("<p>just a fragment</p>"), None);
        assert_eq!(split("<body><p>never closed</p>"), None);
        assert_eq!(split("<bodyguard></bodyguard>"), None);
        assert_eq!(split("</body><body>"), None);
        // Non-ASCII text before the tag keeps the offsets right.
        let parts = split("<title>Zürich · 東京</title><body>ü</body>").unwrap();
        assert_eq!(parts.content, "ü");
    }
}
