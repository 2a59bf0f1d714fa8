//! Fuzzing the feed and article cleaning path with proptest: arbitrary and
//! adversarial feed XML, JSON Feed and item HTML go through exactly what the
//! poller runs (`parse::parse`, `items::feed_meta`, `items::item_guid`,
//! `items::article_from_item`), then through the digest renderer and the
//! message template, and every outcome must hold herald's promises: no
//! panic, each item done within the poller's time limit, only http(s) URLs
//! out, every text field within its cap, no mail line over 998 octets.
//!
//! 64 cases per property by default (a few seconds); `PROPTEST_CASES=N`
//! runs N (scripts/fuzz.sh runs every `fuzz_` test this way). A failing
//! input is kept under proptest-regressions/ and tried first next time.

use super::items::{self, PollContext};
use super::parse;
use crate::articles::limits::CLEAN_TIME_LIMIT;
use crate::digest::render::{self, ArticleView};
use crate::domain::text::{ArticleTitle, AuthorName, Category, ItemGuid, Summary, MAX_CATEGORIES};
use crate::domain::WebUrl;
use crate::store::{ArticleRow, NewArticle};
use proptest::prelude::*;
use std::time::Instant;

const FEED_URL: &str = "https://feeds.example/feed.xml";

/// URLs as feeds write them, hostile ones included.
fn any_url() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("https://news.example/"),
        Just("http://news.example:8080/"),
        Just("javascript:"),
        Just(" JavaScript:"),
        Just("java\tscript:"),
        Just("data:text/html;base64,"),
        Just("data:image/png;base64,"),
        Just("vbscript:"),
        Just("mailto:"),
        Just("file:///"),
        Just("ftp://e.example/"),
        Just("//other.example/"),
        Just("/relative/"),
        Just(""),
        Just("https://"),
        Just("http:///"),
    ];
    (scheme, "[a-zA-Z0-9./?=&#%:()'<> -]{0,40}").prop_map(|(s, rest)| format!("{s}{rest}"))
}

/// Text with the characters that matter: markup, entities, quotes, line
/// breaks, control characters, wide characters.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z <>&;\"'/=\r\n\t\u{0}\u{7f}é😀]{0,80}",
        1 => ("[a-z ]{1,5}", 1usize..20_000).prop_map(|(s, n)| s.repeat(n)),
        1 => any::<String>(),
    ]
}

fn tag_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "div", "p", "span", "b", "i", "a", "img", "table", "tr", "td", "li", "ul", "script",
        "style", "iframe", "svg", "math", "textarea", "title", "h2", "figure", "br",
    ])
}

/// One piece of HTML, hostile pieces included.
fn html_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        (tag_name(), any_url()).prop_map(|(t, u)| format!("<{t} href=\"{u}\" src='{u}'>")),
        tag_name().prop_map(|t| format!("</{t}>")),
        any_url().prop_map(|u| format!("<img src=\"{u}\" width=\"1\">")),
        any_url().prop_map(|u| format!("<a href={u}>link</a>")),
        any_text(),
        Just("<!-- <div> -->".to_string()),
        Just("<div title='>'</div>".to_string()),
        Just("[mailpoet_form id=\"1\"][caption]x[/caption]".to_string()),
        (tag_name(), 1usize..3000).prop_map(|(t, n)| format!("<{t}>").repeat(n)),
        (tag_name(), 1usize..300).prop_map(|(t, n)| format!(
            "{}x{}",
            format!("<{t}>").repeat(n),
            format!("</{t}>").repeat(n)
        )),
    ]
}

fn any_html() -> impl Strategy<Value = String> {
    prop::collection::vec(html_piece(), 0..40).prop_map(|pieces| pieces.concat())
}

#[derive(Debug, Clone)]
struct RawItem {
    title: String,
    link: Option<String>,
    guid: String,
    html: String,
    image: String,
    author: String,
    categories: Vec<String>,
}

fn any_item() -> impl Strategy<Value = RawItem> {
    (
        any_text(),
        prop::option::of(any_url()),
        any_text(),
        any_html(),
        any_url(),
        any_text(),
        prop::collection::vec(any_text(), 0..25),
    )
        .prop_map(
            |(title, link, guid, html, image, author, categories)| RawItem {
                title,
                link,
                guid,
                html,
                image,
                author,
                categories,
            },
        )
}

fn xml_text(s: &str) -> String {
    // XML 1.0 cannot carry most control characters at all.
    let s: String = s
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .collect();
    html_escape::encode_text(&s).replace('"', "&quot;")
}

fn rss(channel_link: &str, items: &[RawItem]) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\" xmlns:media=\"http://search.yahoo.com/mrss/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel><title>{}</title><link>{}</link>",
        xml_text("Feed <b>title</b>"),
        xml_text(channel_link)
    );
    for i in items {
        out.push_str("<item>");
        out.push_str(&format!("<title>{}</title>", xml_text(&i.title)));
        if let Some(link) = &i.link {
            out.push_str(&format!("<link>{}</link>", xml_text(link)));
        }
        out.push_str(&format!(
            "<guid isPermaLink=\"false\">{}</guid><dc:creator>{}</dc:creator>",
            xml_text(&i.guid),
            xml_text(&i.author)
        ));
        for c in &i.categories {
            out.push_str(&format!("<category>{}</category>", xml_text(c)));
        }
        out.push_str(&format!(
            "<enclosure url=\"{0}\" type=\"image/jpeg\" length=\"1\"/><media:content url=\"{0}\" medium=\"image\"/><description>{1}</description></item>",
            xml_text(&i.image),
            xml_text(&i.html)
        ));
    }
    out.push_str("</channel></rss>");
    out
}

fn json_feed(home: &str, items: &[RawItem]) -> String {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|i| {
            serde_json::json!({
                "id": i.guid, "url": i.link, "title": i.title, "content_html": i.html,
                "image": i.image, "authors": [{"name": i.author}], "tags": i.categories,
            })
        })
        .collect();
    serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1", "title": "J", "home_page_url": home, "items": items,
    })
    .to_string()
}

fn is_web(url: &str) -> bool {
    WebUrl::parse(url).is_ok_and(|u| u.as_str() == url)
}

/// Every `href` and `src` of an element left in sanitised HTML is http(s)
/// (or, for a link, mailto). Escaped text that looks like one is text.
fn assert_attribute_urls(html: &str) {
    static RE: std::sync::OnceLock<regex_lite::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex_lite::Regex::new(r#"(?i)<[a-z][^<>]*\s(href|src)="([^"]*)""#).unwrap()
    });
    for c in re.captures_iter(html) {
        let value = html_escape::decode_html_entities(&c[2]).into_owned();
        let ok = url::Url::parse(&value).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") || (&c[1] == "href" && u.scheme() == "mailto")
        });
        assert!(ok, "{}={value:?} in {html:.300}", &c[1]);
    }
}

fn assert_article_holds_promises(a: &NewArticle) {
    assert!(is_web(a.url.as_str()), "{}", a.url);
    if let Some(i) = &a.image_url {
        assert!(is_web(i.as_str()), "{i}");
    }
    assert!(a.title.as_str().chars().count() <= ArticleTitle::MAX_CHARS);
    assert!(!a.title.as_str().chars().any(char::is_control));
    assert!(a.summary.chars().count() <= Summary::MAX_CHARS);
    assert!(a.guid.as_str().chars().count() <= ItemGuid::MAX_CHARS);
    if let Some(author) = &a.author {
        assert!(author.as_str().chars().count() <= AuthorName::MAX_CHARS);
    }
    assert!(a.categories.len() <= MAX_CATEGORIES);
    assert!(a
        .categories
        .iter()
        .all(|c| c.as_str().chars().count() <= Category::MAX_CHARS));
    assert_attribute_urls(&a.html);
}

/// What the poller does with a response, synchronously; the articles it
/// would store.
fn poll_bytes(bytes: &[u8]) -> Vec<NewArticle> {
    let started = Instant::now();
    let parsed = parse::parse(bytes, FEED_URL);
    assert!(
        started.elapsed() < super::PARSE_TIME_LIMIT,
        "{:?}",
        started.elapsed()
    );
    let Ok(parsed) = parsed else {
        return Vec::new();
    };
    let (title, site_url) = items::feed_meta(&parsed);
    if let Some(t) = &title {
        assert!(t.as_str().chars().count() <= crate::domain::text::FeedTitle::MAX_CHARS);
    }
    let ctx = PollContext {
        feed_id: 1,
        feed_url: WebUrl::parse(FEED_URL).unwrap(),
        site_url,
        now: 1_700_000_000_000,
        is_first_poll: false,
        backfill_from: 0,
    };
    let mut articles = Vec::new();
    for item in parsed.items.iter().take(super::MAX_ITEMS_PER_POLL) {
        let Some(guid) = items::item_guid(item, &ctx) else {
            continue;
        };
        let started = Instant::now();
        let outcome = items::article_from_item(item, guid, &ctx);
        assert!(
            started.elapsed() < CLEAN_TIME_LIMIT,
            "{:?}",
            started.elapsed()
        );
        if let Ok(article) = outcome {
            assert_article_holds_promises(&article);
            articles.push(article);
        }
    }
    articles
}

/// The digest for these articles, as one subscriber receives it: no line
/// over 998 octets, links only http(s).
fn assert_digest_lines(articles: &[NewArticle]) {
    let rows: Vec<ArticleRow> = articles
        .iter()
        .enumerate()
        .map(|(i, a)| ArticleRow {
            id: i as i64,
            feed_id: a.feed_id,
            guid: a.guid.as_str().to_string(),
            url: a.url.to_string(),
            title: a.title.to_string(),
            summary: a.summary.clone(),
            html: a.html.clone(),
            image_url: a.image_url.as_ref().map(|u| u.to_string()),
            image_width: a.image_width.map(i64::from),
            author: a.author.as_ref().map(|u| u.to_string()),
            published_at: a.published_at,
            created_at: a.published_at,
            categories: serde_json::to_string(
                &a.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            )
            .ok(),
            held_back: 0,
        })
        .collect();
    let views: Vec<ArticleView> = rows.iter().filter_map(ArticleView::from_row).collect();
    assert_eq!(views.len(), rows.len(), "stored articles are all shown");
    if views.is_empty() {
        return;
    }
    let config = crate::config::Config::default();
    let (rendered, _) = render::render(&config, &views, "Monday 1 January 2024").unwrap();
    let from = "herald <news@herald.example>".parse().unwrap();
    let template = crate::mail::DigestTemplate::prepare(
        &from,
        &rendered.subject,
        "<digest.herald.example>",
        &rendered
            .bodies
            .with_archive_url("https://herald.example/archive/1"),
    )
    .unwrap();
    let (_, bytes) = template
        .render(
            "reader@example.org",
            Some("Reader"),
            "https://herald.example/unsubscribe/t",
            "https://herald.example/unsubscribe/one-click/t",
            "mailto:unsubscribe@herald.example",
        )
        .unwrap();
    for line in bytes.split(|b| *b == b'\n') {
        assert!(line.len() <= 999, "a line of {} octets", line.len());
    }
}

proptest! {
    #![proptest_config(crate::fuzz_cases::config())]

    #[test]
    fn fuzz_rss_items_come_out_safe_or_not_at_all(
        channel_link in any_url(),
        items in prop::collection::vec(any_item(), 0..6),
    ) {
        let articles = poll_bytes(rss(&channel_link, &items).as_bytes());
        assert_digest_lines(&articles);
    }

    #[test]
    fn fuzz_json_feed_items_come_out_safe_or_not_at_all(
        home in any_url(),
        items in prop::collection::vec(any_item(), 0..6),
    ) {
        let articles = poll_bytes(json_feed(&home, &items).as_bytes());
        assert_digest_lines(&articles);
    }

    #[test]
    fn fuzz_arbitrary_bytes_never_panic_the_feed_reader(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        poll_bytes(&bytes);
    }

    #[test]
    fn fuzz_item_html_is_sanitised_within_the_limits(html in any_html()) {
        let base = WebUrl::parse("https://news.example/post/").unwrap();
        let started = Instant::now();
        if let Ok(body) = crate::articles::clean_body(&html, &base, "Title") {
            assert_attribute_urls(&body.html);
            if let Some(i) = &body.first_image {
                assert!(is_web(i.as_str()), "{i}");
            }
            assert!(body.summary.chars().count() <= Summary::MAX_CHARS);
        }
        assert!(started.elapsed() < CLEAN_TIME_LIMIT, "{:?}", started.elapsed());
    }
}

/// The largest and deepest HTML the limits let through is still cleaned
/// well within the time limit: 512 KiB of elements nested 200 deep.
#[test]
fn the_worst_html_the_limits_admit_is_cleaned_in_time() {
    let block = format!("{}x{}", "<div>".repeat(200), "</div>".repeat(200));
    let html = block.repeat(crate::articles::limits::MAX_HTML_BYTES / block.len());
    let base = WebUrl::parse("https://news.example/post/").unwrap();
    let started = Instant::now();
    assert!(crate::articles::clean_body(&html, &base, "").is_ok());
    assert!(
        started.elapsed() < CLEAN_TIME_LIMIT,
        "{:?}",
        started.elapsed()
    );
}
