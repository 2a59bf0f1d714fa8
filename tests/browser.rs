//! The pages in a real browser: headless Chromium, driven over the DevTools
//! protocol, fills in the signup form, follows the confirmation link from the
//! mail and presses the buttons — with no JavaScript on herald's pages —
//! and reads the archive of past digests at desktop and phone widths.

mod common;

use common::{spawn_app, Backend, TestApp};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const CHROMIUM: &str = "/usr/bin/chromium";

struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    /// Events chromium sent while we waited for answers (`Log.entryAdded`
    /// once the Log domain is enabled).
    events: Vec<Value>,
}

impl Browser {
    async fn launch() -> Browser {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install Debian's chromium package (scripts/test.sh does)"
        );
        let profile = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--remote-debugging-port={port}"))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ws_url = loop {
            let list = reqwest::get(format!("http://127.0.0.1:{port}/json/list")).await;
            if let Ok(resp) = list {
                if let Ok(targets) = resp.json::<Vec<Value>>().await {
                    if let Some(url) = targets
                        .iter()
                        .find(|t| t["type"] == "page")
                        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                    {
                        break url.to_string();
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromium's DevTools endpoint did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .expect("DevTools websocket");
        Browser {
            child,
            _profile: profile,
            ws,
            next_id: 0,
            events: Vec::new(),
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// Sends one DevTools command; `Err` carries the error chromium answered.
    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(Message::text(msg))
            .await
            .expect("send to chromium");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let frame = tokio::time::timeout(deadline - Instant::now(), self.ws.next())
                .await
                .expect("chromium answers in time")
                .expect("websocket open")
                .expect("websocket frame");
            if let Message::Text(text) = frame {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["id"] == id {
                    return match v.get("error") {
                        Some(error) => Err(error.clone()),
                        None => Ok(v["result"].clone()),
                    };
                }
                if v.get("method").is_some() {
                    self.events.push(v);
                }
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Waits until the page has loaded and shows `text`. A form post or a
    /// link being followed can swap the page between two evaluations;
    /// chromium then answers "Inspected target navigated or closed" (or has
    /// no context yet), and we simply look again.
    async fn wait_for_text(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut body = String::new();
        loop {
            let state = self
                .try_call(
                    "Runtime.evaluate",
                    json!({
                        "expression": "[document.readyState, document.body ? document.body.innerText : '']",
                        "returnByValue": true
                    }),
                )
                .await;
            match state {
                Ok(r) => {
                    let v = &r["result"]["value"];
                    body = v[1].as_str().unwrap_or("").to_string();
                    if v[0] == "complete" && body.contains(text) {
                        return body;
                    }
                }
                Err(error) => {
                    let message = error["message"].as_str().unwrap_or("");
                    assert!(
                        message.contains("navigated or closed") || message.contains("context"),
                        "Runtime.evaluate while waiting for {text:?}: {error}"
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "page never showed {text:?}; it shows {body:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    async fn screenshot(&mut self, name: &str) {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG came back");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

/// Where the archive's screenshots go: `test-screenshots/archive/` in the
/// target directory.
fn archive_screenshot_dir() -> std::path::PathBuf {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join("test-screenshots")
        .join("archive")
}

impl Browser {
    /// Lays the page out at this viewport, as a phone (`mobile`: the
    /// viewport meta tag applies) or a desktop window.
    async fn set_viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// The whole page, not just the viewport, as a PNG file at `path`.
    async fn full_page_screenshot(&mut self, path: &std::path::Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
                }),
            )
            .await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG came back");
        std::fs::write(path, png).unwrap();
    }

    /// Console messages about the Content-Security-Policy so far.
    fn csp_console_messages(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Log.entryAdded")
            .map(|e| {
                e["params"]["entry"]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .filter(|text| text.contains("Content Security Policy"))
            .collect()
    }

    /// Whether a visible element whose text contains `text` lies wholly
    /// inside the viewport's width.
    async fn shows(&mut self, selector: &str, text: &str) -> bool {
        let script = format!(
            "(() => {{ const el = [...document.querySelectorAll({sel})].find(e => e.textContent.includes({text}));
                if (!el) return false;
                const r = el.getBoundingClientRect(), s = getComputedStyle(el);
                return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= innerWidth
                    && s.visibility === 'visible' && s.display !== 'none' && s.opacity !== '0'; }})()",
            sel = json!(selector),
            text = json!(text),
        );
        self.eval(&script).await == true
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fill_and_submit(email: &str, name: &str) -> String {
    format!(
        "document.querySelector('#email').value = {}; document.querySelector('#name').value = {}; document.querySelector('button[type=submit]').click(); true",
        json!(email),
        json!(name)
    )
}

async fn a_reader_subscribes_confirms_and_unsubscribes_in_a_browser(backend: Backend) {
    let app: TestApp = spawn_app(backend).await;
    let mut browser = Browser::launch().await;

    // The form, with its labels tied to the inputs.
    browser.open(&app.url("/")).await;
    browser
        .wait_for_text("Get The Daily Herald in your inbox")
        .await;
    assert_eq!(browser.eval("document.querySelector('label[for=email]') !== null && document.querySelector('#email').type").await, "email");
    assert_eq!(browser.eval("document.documentElement.lang").await, "en");
    browser.screenshot(&format!("signup-{backend:?}.png")).await;

    // A typo: the page says what is wrong and keeps what was typed.
    browser
        .eval(&fill_and_submit("reader-at-example.com", "Ann"))
        .await;
    browser
        .wait_for_text("does not look like an email address")
        .await;
    assert_eq!(
        browser.eval("document.querySelector('#email').value").await,
        "reader-at-example.com"
    );
    assert_eq!(
        browser.eval("document.querySelector('#name').value").await,
        "Ann"
    );
    assert_eq!(
        browser
            .eval("document.querySelector('[role=alert]') !== null")
            .await,
        true
    );

    // Fixed: the thanks page.
    browser
        .eval(&fill_and_submit("reader@example.com", "Ann"))
        .await;
    browser.wait_for_text("Check your inbox").await;
    assert!(browser.eval("location.pathname").await == "/thanks");

    // The link from the mail opens a page; the button confirms.
    let mails = app.sink.wait_for(1, Duration::from_secs(10)).await;
    let link = mails[0].link_starting(&app.url("/confirm/")).unwrap();
    browser.open(&link).await;
    browser.wait_for_text("Confirm your subscription").await;
    browser
        .screenshot(&format!("confirm-{backend:?}.png"))
        .await;
    assert_eq!(
        app.subscriber_status("reader@example.com").await.as_deref(),
        Some("pending")
    );
    browser
        .eval("document.querySelector('button').click(); true")
        .await;
    browser.wait_for_text("You are subscribed").await;
    assert_eq!(
        app.subscriber_status("reader@example.com").await.as_deref(),
        Some("confirmed")
    );

    // The unsubscribe page from a digest link, and its button.
    let one_click = app.one_click_url("reader@example.com").await;
    let page = one_click.replace("/unsubscribe/one-click/", "/unsubscribe/");
    browser.open(&page).await;
    browser.wait_for_text("Unsubscribe from the digest?").await;
    browser
        .eval("document.querySelector('button').click(); true")
        .await;
    browser.wait_for_text("You are unsubscribed").await;
    assert_eq!(
        app.subscriber_status("reader@example.com").await.as_deref(),
        Some("unsubscribed")
    );
    app.shutdown().await;
}

/// axe-core (npm, installed by scripts/test.sh into target/test-tools).
fn axe_source() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-tools/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; scripts/test.sh installs axe-core there (npm install --prefix target/test-tools axe-core@4)",
            path.display()
        )
    })
}

/// The digest as a mail client shows it (its HTML part, opened from a
/// file), checked by axe-core against the WCAG 2.1 A and AA rules: every
/// link has an accessible name (the lead image's link too), the document
/// has a language and a title, text has enough contrast. Inputs: a digest
/// with a lead image, an author, a long excerpt and non-ASCII text.
async fn the_digest_passes_axe_wcag_21_aa(backend: Backend) {
    let app = common::spawn_app_with(backend, common::SmtpSink::start(&[]), |c| {
        c.site_url = Some("https://news.example.com".into());
        c.postal_address = Some("The Daily Herald, 1 Main Street, Springfield".into());
    })
    .await;
    app.import_confirmed(&["reader@example.org"]).await;
    for (i, image) in [Some("https://news.example.com/lead.jpg"), None]
        .iter()
        .enumerate()
    {
        let response = app
            .api(reqwest::Method::POST, "/api/articles")
            .json(&json!({
                "title": format!("Ministers meet in Bakı — talks resume ({i})"),
                "url": format!("https://news.example.com/talks-{i}"),
                "html": "<p>Relations between the two countries have presented a series of warning signs, and the talks resumed on Monday.</p>",
                "image_url": image,
                "author": "Staff Writer",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;
    let copy = &app.sink.messages_to("reader@example.org")[0];
    assert!(copy.html.contains("lead.jpg"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("digest.html");
    std::fs::write(&file, &copy.html).unwrap();

    let mut browser = Browser::launch().await;
    browser.open(&format!("file://{}", file.display())).await;
    browser.wait_for_text("Ministers meet").await;
    browser.eval(&axe_source()).await;
    let result = browser
        .call(
            "Runtime.evaluate",
            json!({
                "expression": "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}).then(r => ({violations: r.violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.html)})), passes: r.passes.map(p => p.id)}))",
                "awaitPromise": true,
                "returnByValue": true
            }),
        )
        .await;
    let value = &result["result"]["value"];
    let passes: Vec<&str> = value["passes"]
        .as_array()
        .unwrap_or_else(|| panic!("axe did not run: {result}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for rule in [
        "link-name",
        "html-has-lang",
        "document-title",
        "color-contrast",
        "image-alt",
    ] {
        assert!(
            passes.contains(&rule),
            "axe did not check {rule}: {passes:?}"
        );
    }
    assert_eq!(
        value["violations"].as_array().map(Vec::len),
        Some(0),
        "axe-core found WCAG 2.1 AA violations in the digest: {:#}",
        value["violations"]
    );
    browser.screenshot("digest.png").await;
    app.shutdown().await;
}

both_backends!(
    a_reader_subscribes_confirms_and_unsubscribes_in_a_browser,
    the_digest_passes_axe_wcag_21_aa,
);

/// What a reader of the archive sees, at a desktop width and at 375 px (a
/// small phone): the list and a digest, the subject and the article titles
/// visible, the article image loaded (the digest page's own policy allows
/// it), nothing wider than the screen, and no Content-Security-Policy
/// violation in the console or as a `securitypolicyviolation` event. That
/// the two detectors work is checked at the end by breaking the policy on
/// purpose. Screenshots: `target/test-screenshots/archive/`.
async fn the_archive_reads_well_at_desktop_and_phone_width(backend: Backend) {
    use axum::http::header;
    let app: TestApp = spawn_app(backend).await;
    // The article image comes from another host, as a news site's would.
    let image = axum::Router::new().route(
        "/harbour.svg",
        axum::routing::get(|| async {
            (
                [(header::CONTENT_TYPE, "image/svg+xml")],
                "<svg xmlns='http://www.w3.org/2000/svg' width='544' height='240' viewBox='0 0 544 240'><rect width='544' height='240' fill='#1a56db'/><rect y='160' width='544' height='80' fill='#0f766e'/><circle cx='440' cy='70' r='36' fill='#fde68a'/></svg>",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let image_url = format!("http://{}/harbour.svg", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, image).await.unwrap() });

    app.import_confirmed(&["reader@example.com"]).await;
    let titles = [
        "Harbour bridge reopens after two years of repairs",
        "Council approves the Riverside-Interchange-Redevelopment plan after a marathon session",
    ];
    let resp = app
        .api(reqwest::Method::POST, "/api/articles")
        .json(&json!({
            "title": titles[0],
            "url": "https://news.example.com/harbour-bridge",
            "html": "<p>Traffic flows again over the harbour bridge, two years and three budgets after it closed.</p>",
            "image_url": image_url,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    app.add_article(
        titles[1],
        "https://news.example.com/riverside",
        "<p>After eleven hours of debate the council said yes to the plan.</p>",
    )
    .await;
    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;
    let subject = app.store.digest_by_id(id).await.unwrap().unwrap().subject;

    let dir = archive_screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    println!("archive screenshots: {}", dir.display());

    let mut browser = Browser::launch().await;
    browser.call("Page.enable", json!({})).await;
    browser.call("Log.enable", json!({})).await;
    // Injected by DevTools, so it runs whatever the page's policy says.
    browser
        .call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": "window.__violations = []; document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"}),
        )
        .await;
    let violations = "window.__violations.join('\\n')";

    for (label, width, height, mobile) in [("desktop", 1280, 900, false), ("phone", 375, 740, true)]
    {
        browser.set_viewport(width, height, mobile).await;

        browser.open(&app.url("/archive")).await;
        browser.wait_for_text("Past digests").await;
        assert!(
            browser.shows("a", &subject).await,
            "{label}: the subject is listed and visible"
        );
        assert!(browser.shows("h1", "Past digests").await, "{label}");
        let scroll_width = browser.eval("document.documentElement.scrollWidth").await;
        assert!(
            scroll_width.as_u64().unwrap() <= width as u64,
            "{label}: the list is {scroll_width} px wide"
        );
        assert_eq!(browser.eval(violations).await, "", "{label}: list page");
        browser
            .full_page_screenshot(&dir.join(format!("archive-{label}-{backend:?}.png")))
            .await;

        browser.open(&app.url(&format!("/archive/{id}"))).await;
        browser.wait_for_text(titles[1]).await;
        assert_eq!(browser.eval("document.title").await, subject.as_str());
        assert!(
            browser.shows("h1", &subject).await,
            "{label}: the subject heads the page"
        );
        for title in titles {
            assert!(browser.shows("h2", title).await, "{label}: {title} visible");
        }
        assert!(
            browser
                .shows("a", "Get the next digest in your inbox")
                .await,
            "{label}"
        );
        // Wait for the image rather than race it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while browser
            .eval("document.querySelector('main img').complete")
            .await
            != true
        {
            assert!(
                Instant::now() < deadline,
                "{label}: the image never finished loading"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            browser
                .eval("document.querySelector('main img').naturalWidth")
                .await
                .as_u64()
                > Some(0),
            "{label}: the article image loaded"
        );
        let scroll_width = browser.eval("document.documentElement.scrollWidth").await;
        assert!(
            scroll_width.as_u64().unwrap() <= width as u64,
            "{label}: the digest is {scroll_width} px wide"
        );
        assert_eq!(browser.eval(violations).await, "", "{label}: digest page");
        browser
            .full_page_screenshot(&dir.join(format!("digest-{label}-{backend:?}.png")))
            .await;
    }
    assert_eq!(browser.csp_console_messages(), Vec::<String>::new());

    // The detectors detect: an inline script breaks the digest page's policy.
    browser
        .eval("const s = document.createElement('script'); s.textContent = 'window.ran = true'; document.body.appendChild(s); true")
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while browser.csp_console_messages().is_empty() {
        assert!(
            Instant::now() < deadline,
            "chromium never reported the blocked script"
        );
        browser.eval("1").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(browser
        .eval(violations)
        .await
        .as_str()
        .unwrap_or("")
        .contains("script-src"));
    assert_eq!(
        browser.eval("window.ran === true").await,
        false,
        "the script did not run"
    );
    app.shutdown().await;
}

both_backends!(the_archive_reads_well_at_desktop_and_phone_width);
