//! What a reader gets of an article: its real picture, never a tracking
//! pixel, shown no wider than the article declares it; and an excerpt that
//! keeps the article's shape (headings and list items end sentences) with
//! none of the page's furniture (captions, credits, share buttons, related
//! links, follow-us lines), whether the article came from a feed or the API.

mod common;

use common::feed_server::{add_feed_reporting, now_rfc822, serve};
use common::{spawn_app_with, Backend, Received, SmtpSink, TestApp};
use std::time::Duration;

/// An RSS feed as WordPress writes one, with `content:encoded` items.
fn wordpress_feed(items: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>News Example</title><link>https://news.example.com</link>{items}</channel></rss>"#
    )
}

fn wordpress_item(title: &str, slug: &str, html: &str, extra: &str) -> String {
    format!(
        "<item><title>{title}</title><link>https://news.example.com/{slug}/</link><guid isPermaLink=\"false\">https://news.example.com/?p={slug}</guid><pubDate>{}</pubDate><content:encoded><![CDATA[{html}]]></content:encoded>{extra}</item>",
        now_rfc822()
    )
}

/// The digest the reader received, after one digest run.
async fn digest_for_reader(app: &TestApp) -> Received {
    let digest = app.send_digest_now().await;
    app.wait_digest_done(digest, Duration::from_secs(20)).await;
    app.sink
        .messages_to("reader@example.com")
        .into_iter()
        .next()
        .expect("a digest for the reader")
}

/// Whitespace runs as one space: long lines of a digest are folded at spaces.
fn squeezed(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

both_backends!(
    tracking_pixels_never_become_the_card_image_and_small_images_are_not_scaled_up,
    excerpts_keep_the_articles_shape_from_a_feed_and_from_the_api,
);

async fn tracking_pixels_never_become_the_card_image_and_small_images_are_not_scaled_up(
    backend: Backend,
) {
    // First image a 1×1 pixel; the real picture declared 300 px wide;
    // WordPress.com's stats pixel as Jetpack writes it at the end.
    let library = concat!(
        r#"<p><img src="/wp-content/plugins/counter/pixel.gif" width="1" height="1" alt=""></p>"#,
        r#"<p>The library reopens on Monday after a year of work.</p>"#,
        r#"<figure class="wp-block-image size-medium"><img src="https://news.example.com/wp-content/uploads/wing-300x200.jpg" width="300" height="200" alt="The new wing"><figcaption class="wp-element-caption">The new wing</figcaption></figure>"#,
        r#"<img src="https://pixel.wp.com/b.gif?host=news.example.com&#038;blog=1&#038;post=41&#038;subd=newsexample&#038;ref=&#038;feed=1" width="1" height="1" style="display: none;" />"#,
    );
    // First image a stats beacon with no size (judged by its host), then a
    // FeedBurner beacon and a pixel sized by style; the item's own
    // media:content is a pixel too. The real picture declares no width.
    let market = concat!(
        r#"<p><img src="https://pixel.wp.com/b.gif?host=news.example.com&#038;post=42" alt=""></p>"#,
        r#"<p><img src="http://feeds.feedburner.com/~r/NewsExample/~4/abc123" alt=""></p>"#,
        r#"<p><img src="https://news.example.com/spacer.gif" style="width:1px;height:1px"></p>"#,
        r#"<p>The market moves to the square.</p>"#,
        r#"<p><img src="https://news.example.com/wp-content/uploads/market.jpg" alt="The market"></p>"#,
    );
    let feed = wordpress_feed(
        &[
            wordpress_item("Library reopens", "library", library, ""),
            wordpress_item(
                "Market moves",
                "market",
                market,
                r#"<media:content url="https://stats.wp.com/m.gif" medium="image" type="image/gif" width="1" height="1"/>"#,
            ),
        ]
        .concat(),
    );
    let server = serve(vec![("/feed/", feed)]).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 1).await;
    app.import_confirmed(&["reader@example.com"]).await;
    // Adding a feed is its first poll.
    let (_feed_id, report) = add_feed_reporting(&app, &format!("{server}/feed/")).await;
    assert_eq!(report["new_articles"], 2, "{report}");
    // Through the API: an image_url that is a statistics beacon stands
    // down for the body's first real image (declared 200 px wide).
    let resp = app
        .api(reqwest::Method::POST, "/api/articles")
        .json(&serde_json::json!({
            "title": "Desk story",
            "url": "https://news.example.com/desk/",
            "image_url": "https://pixel.wp.com/b.gif?host=news.example.com",
            "html": r#"<p><img src="https://news.example.com/p.gif" width="1" height="1">The desk filed this.</p><p><img src="https://news.example.com/desk.jpg" width="200"></p>"#,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // No pixel is kept in what herald stores of the articles.
    let listed = app.api_get("/api/articles").await;
    for a in listed["articles"].as_array().unwrap() {
        for beacon in ["pixel", "p.gif", "feedburner", "stats.wp.com", "spacer.gif"] {
            assert!(!a["html"].as_str().unwrap().contains(beacon), "{a}");
            assert!(!a["image_url"].to_string().contains(beacon), "{a}");
        }
    }

    let mail = digest_for_reader(&app).await;
    for part in [&mail.html, &mail.text] {
        for beacon in ["pixel", "p.gif", "feedburner", "stats.wp.com", "spacer.gif"] {
            assert!(!part.contains(beacon), "{beacon} in the digest: {part}");
        }
    }
    let html = squeezed(&mail.html);
    // The real pictures are the cards. The newest story (the desk's, from
    // the API) leads, its picture at its declared 200 px, not the 544 px
    // column; the others are compact, their thumbnails at 120 px, smaller
    // than the library's declared 300 and never wider than declared.
    let card = |file: &str| {
        html.split("<img ")
            .find(|tag| tag.contains(file))
            .unwrap_or_else(|| panic!("no card image {file}: {html}"))
            .to_string()
    };
    let desk = card("desk.jpg");
    assert!(
        desk.contains(r#"width="200""#) && desk.contains("max-width:200px"),
        "{desk}"
    );
    for thumb in [card("wing-300x200.jpg"), card("market.jpg")] {
        assert!(thumb.contains(r#"width="120""#), "{thumb}");
    }
    // Three articles, three card images, nothing else.
    assert_eq!(html.matches("<img ").count(), 3, "{html}");
}

/// An article body with a heading, a list, captions, a credit, share
/// buttons, related links and a follow-us line, as WordPress writes them.
const SHAPED_BODY: &str = concat!(
    r#"<h2>What changes for residents</h2>"#,
    r#"<ul><li>Library hours extended on Sundays</li><li>Property tax unchanged</li></ul>"#,
    r#"<figure class="wp-block-image"><img src="https://news.example.com/wp-content/uploads/hall.jpg" alt=""><figcaption class="wp-element-caption">Council chamber on Monday</figcaption></figure>"#,
    r#"<div class="wp-caption alignnone"><img src="https://news.example.com/wp-content/uploads/mayor.jpg" alt=""><p class="wp-caption-text">The mayor at the vote</p></div>"#,
    r#"<p>Photo: Jane Doe</p>"#,
    r#"<p>The council approved the budget on Monday evening.</p>"#,
    r#"<div class="sharedaddy sd-sharing-enabled"><div class="robots-nocontent sd-block sd-social"><h3 class="sd-title">Share this:</h3><div class="sd-content"><ul><li class="share-twitter"><a href="https://news.example.com/budget/?share=twitter">Twitter</a></li><li class="share-facebook"><a href="https://news.example.com/budget/?share=facebook">Facebook</a></li></ul></div></div></div>"#,
    r#"<p>Twitter Facebook</p>"#,
    r#"<p>Related: <a href="https://news.example.com/council-meets/">Council meets again in May</a></p>"#,
    r#"<div id="jp-relatedposts" class="jp-relatedposts"><h3 class="jp-relatedposts-headline"><em>Related</em></h3></div>"#,
    r#"<p>Follow us on Instagram</p>"#,
);

const SHAPED_EXCERPT: &str = "What changes for residents. Library hours extended on Sundays. Property tax unchanged. The council approved the budget on Monday evening.";

/// Words of the body's furniture: none may reach an excerpt or a digest.
const FURNITURE: &[&str] = &[
    "Council chamber",
    "The mayor at the vote",
    "Photo:",
    "Jane Doe",
    "Share",
    "Twitter",
    "Facebook",
    "Related",
    "Council meets again",
    "Follow us",
    "Instagram",
];

async fn excerpts_keep_the_articles_shape_from_a_feed_and_from_the_api(backend: Backend) {
    let feed = wordpress_feed(&wordpress_item("Budget passes", "budget", SHAPED_BODY, ""));
    let server = serve(vec![("/feed/", feed)]).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 1).await;
    app.import_confirmed(&["reader@example.com"]).await;
    // Adding a feed is its first poll.
    let (_feed_id, report) = add_feed_reporting(&app, &format!("{server}/feed/")).await;
    assert_eq!(report["new_articles"], 1, "{report}");
    app.add_article(
        "Budget passes, as the desk filed it",
        "https://news.example.com/desk/budget/",
        SHAPED_BODY,
    )
    .await;

    // The stored summaries, from the feed and from the API alike.
    let listed = app.api_get("/api/articles").await;
    let articles = listed["articles"].as_array().unwrap();
    assert_eq!(articles.len(), 2, "{listed}");
    for a in articles {
        assert_eq!(a["summary"], SHAPED_EXCERPT, "{}", a["title"]);
    }

    let mail = digest_for_reader(&app).await;
    let (html, text) = (squeezed(&mail.html), squeezed(&mail.text));
    assert_eq!(text.matches(SHAPED_EXCERPT).count(), 2, "{text}");
    // The preheader (the hidden text after the Subject) is the first excerpt.
    let preheader = html
        .split("mso-hide:all;\">")
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .unwrap_or_else(|| panic!("no preheader: {html}"));
    assert_eq!(preheader, SHAPED_EXCERPT);
    for words in FURNITURE {
        assert!(!text.contains(words), "{words:?} in the text part: {text}");
        assert!(!html.contains(words), "{words:?} in the HTML part: {html}");
    }
}
