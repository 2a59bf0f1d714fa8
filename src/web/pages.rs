//! Rendering server-side pages (askama templates in templates/).

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

pub struct Action {
    pub url: String,
    pub label: &'static str,
}

pub struct Link {
    pub url: String,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub site_name: String,
    pub title: &'static str,
    pub paragraphs: Vec<String>,
    pub action: Option<Action>,
    pub link: Option<Link>,
}

impl MessagePage {
    pub fn new(title: &'static str, paragraphs: &[&str]) -> Self {
        Self {
            site_name: String::new(),
            title,
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
            action: None,
            link: None,
        }
    }

    pub fn site(mut self, site_name: &str) -> Self {
        self.site_name = site_name.to_string();
        self
    }

    pub fn action(mut self, url: String, label: &'static str) -> Self {
        self.action = Some(Action { url, label });
        self
    }

    pub fn link(mut self, url: String, label: &'static str) -> Self {
        self.link = Some(Link { url, label });
        self
    }
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage<'a> {
    pub site_name: &'a str,
    pub site_url: Option<&'a str>,
    pub error: Option<String>,
    pub email: &'a str,
    pub name: &'a str,
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

pub async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        MessagePage::new("Page not found", &["There is nothing at this address."])
            .link("/".into(), "Go to the signup page"),
    )
}
