//! Rendering server-side pages (askama templates in templates/).

/// The pages' one stylesheet, inlined in each page's `<style>` element and
/// allowed by its hash in the Content-Security-Policy (no `unsafe-inline`,
/// no `style` attributes). Changing it means changing
/// `web::STYLESHEET_HASH`; a test says so.
pub const STYLESHEET: &str = r#":root { color-scheme: light dark; --accent: #1a56db; --fg: #1f2937; --muted: #6b7280; --bg: #f8fafc; --card: #ffffff; --err: #b91c1c; }
@media (prefers-color-scheme: dark) { :root { --fg: #e5e7eb; --muted: #9ca3af; --bg: #0f172a; --card: #1e293b; --accent: #60a5fa; --err: #fca5a5; } }
* { box-sizing: border-box; }
body { margin: 0; font: 17px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 34rem; margin: 8vh auto; padding: 2rem; background: var(--card); border-radius: 12px; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0 0 .75rem; }
p { margin: 0 0 1rem; }
.muted { color: var(--muted); font-size: .92rem; }
label { display: block; font-weight: 600; margin: 1rem 0 .35rem; }
input[type=email], input[type=text] { width: 100%; padding: .7rem .8rem; font: inherit; color: inherit; background: transparent; border: 1px solid var(--muted); border-radius: 8px; }
input:focus, button:focus { outline: 3px solid var(--accent); outline-offset: 2px; }
button { margin-top: 1.25rem; padding: .75rem 1.4rem; font: inherit; font-weight: 600; color: #fff; background: var(--accent); border: 0; border-radius: 8px; cursor: pointer; }
.error { color: var(--err); font-weight: 600; }
a { color: var(--accent); }
.hp { position: absolute; left: -10000px; width: 1px; height: 1px; overflow: hidden; }
.footnote { margin-top: 1.5rem; }
.ways { list-style: none; margin: 1.5rem 0 0; padding: 0; display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; }
.address { font-weight: 600; overflow-wrap: anywhere; }
.archive { list-style: none; margin: 0 0 1.25rem; padding: 0; }
.archive li { padding: .75rem 0; border-top: 1px solid rgba(127,127,127,.3); }
.archive a { display: block; font-weight: 600; overflow-wrap: anywhere; }
.pager { display: flex; justify-content: space-between; gap: 1rem; }
"#;

use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

pub struct Action {
    pub url: String,
    pub label: &'static str,
}

pub struct Link {
    pub url: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub site_name: String,
    pub title: &'static str,
    pub paragraphs: Vec<String>,
    pub action: Option<Action>,
    /// Where to go from here: no page herald shows ends nowhere.
    pub links: Vec<Link>,
}

impl MessagePage {
    pub fn new(title: &'static str, paragraphs: &[&str]) -> Self {
        Self {
            site_name: String::new(),
            title,
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
            action: None,
            links: Vec::new(),
        }
    }

    pub fn site(mut self, site_name: &str) -> Self {
        self.site_name = site_name.to_string();
        self
    }

    pub fn paragraph(mut self, text: String) -> Self {
        self.paragraphs.push(text);
        self
    }

    pub fn action(mut self, url: String, label: &'static str) -> Self {
        self.action = Some(Action { url, label });
        self
    }

    pub fn link(mut self, url: String, label: impl Into<String>) -> Self {
        self.links.push(Link {
            url,
            label: label.into(),
        });
        self
    }

    /// The way back for a reader: the article they signed up from (when
    /// its page said so, see `return_to`), the news site, and the archive
    /// of past digests when it is public.
    pub fn ways_back(mut self, state: &AppState, article: Option<&crate::domain::WebUrl>) -> Self {
        if let Some(article) = article {
            self = self.link(article.to_string(), "Back to the article");
        }
        if let Some(site) = state.config.site_url.as_deref() {
            let label = format!(
                "Go to {}",
                crate::domain::single_line(&state.config.site_name)
            );
            self = self.link(site.to_string(), label);
        }
        if state.config.archive.enabled {
            self = self.link(state.url("/archive"), "Read past digests");
        }
        self
    }
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage<'a> {
    pub site_name: &'a str,
    /// herald's public URL without a trailing slash: the form posts there.
    pub base_url: &'a str,
    pub site_url: Option<&'a str>,
    pub error: Option<String>,
    pub email: &'a str,
    pub name: &'a str,
    /// The site's page the reader came from, kept through a refused post.
    pub return_to: Option<String>,
}

/// A rendered template with its status code; pages are never cached and
/// never framed.
pub struct Page<T: Template> {
    pub status: StatusCode,
    pub page: T,
}

impl<T: Template> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.page.render() {
            Ok(html) => (
                self.status,
                [
                    (header::CACHE_CONTROL, "no-store"),
                    (header::X_FRAME_OPTIONS, "DENY"),
                    (header::REFERRER_POLICY, "no-referrer"),
                ],
                Html(html),
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "page template failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

pub fn page<T: Template>(status: StatusCode, page: T) -> Response {
    Page { status, page }.into_response()
}

pub async fn not_found(State(state): State<AppState>) -> Response {
    page(
        StatusCode::NOT_FOUND,
        MessagePage::new("Page not found", &["There is nothing at this address."])
            .site(&state.config.site_name)
            .link(state.url("/"), "Go to the signup page"),
    )
}
