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
        // Port 0: chromium picks a free port itself and writes it to
        // DevToolsActivePort in its profile. A port chosen here and handed
        // over could be taken by another test's chromium in between, and the
        // two tests would then drive one page (seen as "Axe is already
        // running" when both ran axe on it).
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
            .arg("--remote-debugging-port=0")
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        let active = profile.path().join("DevToolsActivePort");
        let port: u16 = loop {
            if let Some(port) = std::fs::read_to_string(&active)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not write {}",
                active.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
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

/// Where screenshots of one kind go: `test-screenshots/{kind}/` in the
/// target directory, created.
fn screenshot_dir(kind: &str) -> std::path::PathBuf {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp
        .parent()
        .unwrap_or(tmp)
        .join("test-screenshots")
        .join(kind);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

impl Browser {
    /// Runs axe-core's WCAG 2.1 A and AA rules on the open page and fails
    /// the test on any violation, or when one of `checked` did not run.
    async fn assert_axe_wcag_21_aa(&mut self, what: &str, checked: &[&str]) {
        self.eval(&axe_source()).await;
        let result = self
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
            .unwrap_or_else(|| panic!("axe did not run on {what}: {result}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for rule in checked {
            assert!(
                passes.contains(rule),
                "axe did not check {rule} on {what}: {passes:?}"
            );
        }
        assert_eq!(
            value["violations"].as_array().map(Vec::len),
            Some(0),
            "axe-core found WCAG 2.1 AA violations in {what}: {:#}",
            value["violations"]
        );
    }

    /// Opens a mail's HTML part as a mail client shows it: the document
    /// on its own, from a file (`name` in `dir`), and waits until it has
    /// loaded, its images included.
    async fn open_mail(&mut self, html: &str, dir: &std::path::Path, name: &str) {
        let file = dir.join(name);
        std::fs::write(&file, html).unwrap();
        self.open(&format!("file://{}", file.display())).await;
        let expression = format!(
            "document.readyState === 'complete' && location.href.endsWith({}) && [...document.images].every(i => i.complete)",
            json!(name)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let loaded = self
                .try_call(
                    "Runtime.evaluate",
                    json!({"expression": expression, "returnByValue": true}),
                )
                .await;
            if loaded.is_ok_and(|r| r["result"]["value"] == true) {
                return;
            }
            assert!(Instant::now() < deadline, "{name} never finished loading");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's width in CSS pixels: more than the viewport's when
    /// something sticks out sideways.
    async fn scroll_width(&mut self) -> u64 {
        self.eval("document.documentElement.scrollWidth")
            .await
            .as_u64()
            .unwrap()
    }

    /// The images on the page that did not load.
    async fn broken_images(&mut self) -> Vec<String> {
        let v = self
            .eval("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            .await;
        serde_json::from_value(v).unwrap_or_default()
    }

    /// The bounding box `[left, top, right, bottom]` of the first element
    /// matching `selector` whose text (or, for an image, `alt`) is
    /// `text`; None when there is none.
    async fn rect_of(&mut self, selector: &str, text: &str) -> Option<[f64; 4]> {
        let script = format!(
            "(() => {{ const el = [...document.querySelectorAll({sel})].find(e => (e.tagName === 'IMG' ? e.alt : e.textContent.trim()) === {text});
                if (!el) return null;
                const r = el.getBoundingClientRect();
                return [r.left, r.top, r.right, r.bottom]; }})()",
            sel = json!(selector),
            text = json!(text),
        );
        serde_json::from_value(self.eval(&script).await).ok()
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
    browser
        .assert_axe_wcag_21_aa(
            "the digest",
            &[
                "link-name",
                "html-has-lang",
                "document-title",
                "color-contrast",
                "image-alt",
            ],
        )
        .await;
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

    let dir = screenshot_dir("archive");
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

/// A news site's stories for the digest layout: title, categories, author,
/// whether it has a picture, and its text.
struct Story {
    title: &'static str,
    categories: &'static [&'static str],
    author: &'static str,
    has_image: bool,
    body: &'static str,
}

const STORIES: [Story; 12] = [
    Story {
        title: "Harbour bridge reopens after two years of repairs",
        categories: &["City", "Transport"],
        author: "Maria Okafor",
        has_image: true,
        body: "<p>Traffic flows again over the harbour bridge, two years and three budgets after it closed. The first buses crossed at six in the morning, greeted by a small crowd with flags. Engineers replaced every cable and half of the deck.</p><p>The council says the final bill came to 84 million, a third more than planned. Cyclists get a lane of their own on the east side. Tolls stay off until the end of the year.</p>",
    },
    Story {
        title: "Council approves the Riverside redevelopment plan after a marathon session",
        categories: &["Politics"],
        author: "Tom Reyes",
        has_image: true,
        body: "<p>After eleven hours of debate the council said yes to the plan. It brings 1,200 homes, a school and a park to the old docks. Opponents warned about traffic and promised to keep watching.</p><p>Building starts next spring.</p>",
    },
    Story {
        title: "Heatwave warning issued as temperatures climb past 35 degrees",
        categories: &["Weather"],
        author: "Staff Writer",
        has_image: true,
        body: "<p>Forecasters issued an amber warning for the whole region until Sunday. Doctors ask people to check on elderly neighbours. Public pools will stay open until ten in the evening.</p>",
    },
    Story {
        title: "Bakery on Mill Street wins the national award for its sourdough",
        categories: &["Food", "Business"],
        author: "Lena Fischer",
        has_image: true,
        body: "<p>Three years after opening, the small bakery beat 400 entries. The owners credit a starter older than both of them. Queues started before dawn the morning after the award.</p>",
    },
    Story {
        title: "Researchers map the river's hidden wildlife with underwater cameras",
        categories: &["Science", "Environment"],
        author: "Priya Natarajan",
        has_image: true,
        body: "<p>A team from the university filmed otters, eels and a rare freshwater mussel. The footage will guide where the city restores the banks. Volunteers can help tag the recordings online.</p>",
    },
    Story {
        title: "Hospital opens its new children's wing",
        categories: &["Health"],
        author: "Staff Writer",
        has_image: true,
        body: "<p>The wing adds forty beds and a play garden on the roof. Families helped design the rooms. The first patients moved in on Tuesday.</p>",
    },
    Story {
        title: "Tram line extension delayed until spring",
        categories: &["Transport"],
        author: "Tom Reyes",
        has_image: true,
        body: "<p>Signalling equipment arrived late from the supplier. The operator says trams will reach the stadium by April. Replacement buses keep running every ten minutes.</p>",
    },
    Story {
        title: "Football club signs striker from the Netherlands",
        categories: &["Sport"],
        author: "Sam Whitaker",
        has_image: true,
        body: "<p>The 24-year-old scored nineteen goals last season. He signed a three-year contract on Friday. Fans can meet him at the open training session on Saturday.</p>",
    },
    Story {
        title: "Library extends its opening hours on weekends",
        categories: &["Culture"],
        author: "Lena Fischer",
        has_image: false,
        body: "<p>From next month the central library stays open until eight on Saturdays and Sundays. Students asked for quiet space during exams. The café on the ground floor keeps the same hours.</p>",
    },
    Story {
        title: "Festival organisers expect record crowds this summer",
        categories: &["Culture", "Events"],
        author: "Maria Okafor",
        has_image: true,
        body: "<p>Ticket sales are up by a third on last year. Extra trains will run on both weekends. Organisers ask visitors to bring refillable bottles.</p>",
    },
    Story {
        title: "Police appeal for witnesses after an overnight break-in",
        categories: &["Crime"],
        author: "Sam Whitaker",
        has_image: true,
        body: "<p>Thieves forced the door of a jeweller's shop on King Street at about three in the morning. Nobody was hurt. Police ask anyone with camera footage to come forward.</p>",
    },
    Story {
        title: "Opinion: our parks deserve better funding",
        categories: &["Opinion"],
        author: "Priya Natarajan",
        has_image: false,
        body: "<p>Parks are where this city meets itself. Their budget has shrunk every year for a decade. It is time the council treated them as the infrastructure they are.</p>",
    },
];

/// A landscape picture for story `n`, 1200 × 675, in its own colours.
fn picture(n: usize) -> String {
    let palettes = [
        ("#1e3a8a", "#60a5fa", "#065f46"),
        ("#7c2d12", "#fdba74", "#365314"),
        ("#581c87", "#f0abfc", "#1e293b"),
        ("#0f766e", "#99f6e4", "#3f6212"),
    ];
    let (sky, glow, land) = palettes[n % palettes.len()];
    let sun = 200 + (n * 97) % 800;
    format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='1200' height='675' viewBox='0 0 1200 675'>\
         <defs><linearGradient id='s' x1='0' y1='0' x2='0' y2='1'><stop offset='0' stop-color='{sky}'/><stop offset='1' stop-color='{glow}'/></linearGradient></defs>\
         <rect width='1200' height='675' fill='url(#s)'/><circle cx='{sun}' cy='210' r='90' fill='#fef3c7'/>\
         <path d='M0 470 Q300 360 600 450 T1200 420 V675 H0 Z' fill='{land}'/>\
         <path d='M0 560 Q400 480 800 560 T1200 540 V675 H0 Z' fill='#000' opacity='.25'/></svg>"
    )
}

/// An RSS feed of `stories`, newest first, pictures from `images`; the
/// stories' links and guids under `edition`.
fn news_feed(stories: &[&Story], images: &str, edition: &str) -> String {
    let now = chrono::Utc::now();
    let items: String = stories
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let slug: String = s
                .title
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
                .collect();
            let categories: String = s
                .categories
                .iter()
                .map(|c| format!("<category>{c}</category>"))
                .collect();
            let image = if s.has_image {
                format!("<media:content url=\"{images}/img/{i}\" type=\"image/svg+xml\" medium=\"image\"/>")
            } else {
                String::new()
            };
            format!(
                "<item><title>{title}</title><link>https://news.example.com/{edition}/{slug}</link><guid isPermaLink=\"false\">{edition}/{slug}</guid><pubDate>{date}</pubDate><dc:creator>{author}</dc:creator>{categories}{image}<description><![CDATA[{body}]]></description></item>",
                title = s.title,
                date = (now - chrono::Duration::minutes(i as i64 + 1)).to_rfc2822(),
                author = s.author,
                body = s.body,
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\" xmlns:media=\"http://search.yahoo.com/mrss/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel><title>The Daily Herald</title><link>https://news.example.com/</link>{items}</channel></rss>"
    )
}

/// The news layout, as a reader's mail client shows the copies that
/// arrived at smtp-sink: a one-story digest and a twelve-story one (stories
/// from a feed, with pictures, categories and authors; two without a
/// picture), at a desktop width and at 375 px. The masthead names the
/// site; the lead story has a full-width picture, the category above a
/// larger title, and a "Read more" link named for the story; every other
/// story is a compact row, its thumbnail beside its title, its category
/// shown. No picture is broken, nothing is wider than the screen, axe
/// finds no WCAG 2.1 AA violation, and each message is under 100,000
/// bytes. Screenshots:
/// `target/test-screenshots/digest-layout/`.
async fn the_digest_leads_with_one_story_and_lists_the_rest_compact(backend: Backend) {
    let app = common::spawn_app_with(backend, common::SmtpSink::start(&[]), |c| {
        c.site_url = Some("https://news.example.com".into());
        c.postal_address = Some("The Daily Herald, 1 Main Street, Springfield".into());
        c.feeds.backfill_days = 1;
    })
    .await;
    app.import_confirmed(&["reader@example.org"]).await;

    let pictures = axum::Router::new().route(
        "/img/{n}",
        axum::routing::get(
            |axum::extract::Path(n): axum::extract::Path<usize>| async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "image/svg+xml")],
                    picture(n),
                )
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let images = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, pictures).await.unwrap() });

    let one: Vec<&Story> = STORIES[..1].iter().collect();
    let twelve: Vec<&Story> = STORIES.iter().collect();
    let feeds = common::feed_server::serve(vec![
        ("/one.xml", news_feed(&one, &images, "monday")),
        ("/twelve.xml", news_feed(&twelve, &images, "tuesday")),
    ])
    .await;
    let mut copies = Vec::new();
    for path in ["/one.xml", "/twelve.xml"] {
        let feed = common::feed_server::add_feed(&app, &format!("{feeds}{path}")).await;
        common::feed_server::poll(&app, feed).await;
        let id = app.send_digest_now().await;
        app.wait_digest_done(id, Duration::from_secs(20)).await;
        let mails = app.sink.messages_to("reader@example.org");
        let copy = mails.last().expect("the digest arrived");
        let size = copy.as_sent().len();
        assert!(size < 100 * 1000, "{path}: a digest of {size} bytes");
        copies.push(copy.html.clone());
    }
    assert_eq!(copies.len(), 2);

    let dir = screenshot_dir("digest-layout");
    println!("digest layout screenshots: {}", dir.display());
    let files = tempfile::tempdir().unwrap();
    let mut browser = Browser::launch().await;
    for (label, stories, html) in [
        ("one-story", &one, &copies[0]),
        ("twelve-story", &twelve, &copies[1]),
    ] {
        for (screen, width, height, mobile) in
            [("desktop", 1280, 900, false), ("phone", 375, 740, true)]
        {
            let what = format!("{label} digest, {screen}");
            browser.set_viewport(width, height, mobile).await;
            browser
                .open_mail(html, files.path(), &format!("{label}-{screen}.html"))
                .await;

            // The masthead names the site and links to it.
            assert!(
                browser.shows("a", "The Daily Herald").await,
                "{what}: masthead"
            );
            assert_eq!(
                browser.broken_images().await,
                Vec::<String>::new(),
                "{what}: broken pictures"
            );
            let scroll_width = browser.scroll_width().await;
            assert!(
                scroll_width <= width as u64,
                "{what}: {scroll_width} px wide"
            );

            // Every story: its category and title visible, the category
            // above the title, and a "Read more" link named for it.
            for story in stories.iter() {
                let label = story.categories.join(" · ");
                let category = browser.rect_of("p", &label).await;
                let title = browser.rect_of("h2", story.title).await;
                let (Some(category), Some(title)) = (category, title) else {
                    panic!("{what}: {:?} with its category {label:?}", story.title);
                };
                assert!(browser.shows("p", &label).await, "{what}: {label} visible");
                assert!(
                    browser.shows("h2", story.title).await,
                    "{what}: {} visible",
                    story.title
                );
                assert!(
                    category[3] <= title[1] + 1.0,
                    "{what}: {label} above {}",
                    story.title
                );
                let read_more = browser
                    .eval(&format!(
                        "[...document.querySelectorAll('a')].filter(a => a.textContent.startsWith('Read more') && a.getAttribute('aria-label') === {}).length",
                        json!(format!("Read more: {}", story.title))
                    ))
                    .await;
                assert_eq!(
                    read_more, 1,
                    "{what}: one Read more link for {}",
                    story.title
                );
            }

            // The lead: its picture the width of the column, its title
            // larger than any other.
            let lead = stories[0];
            let picture = browser
                .rect_of("img", lead.title)
                .await
                .expect("the lead picture");
            let column = if mobile { 300.0 } else { 540.0 };
            assert!(
                picture[2] - picture[0] >= column,
                "{what}: lead picture {picture:?}"
            );
            let sizes = browser
                .eval("[...document.querySelectorAll('h2')].map(h => parseFloat(getComputedStyle(h).fontSize))")
                .await;
            let sizes: Vec<f64> = serde_json::from_value(sizes).unwrap();
            assert!(
                sizes[1..].iter().all(|s| sizes[0] >= s * 1.25),
                "{what}: the lead title stands out: {sizes:?}"
            );

            // The others: compact rows, the thumbnail right of the title
            // and level with it, small.
            for story in stories[1..].iter().filter(|s| s.has_image) {
                let title = browser.rect_of("h2", story.title).await.unwrap();
                let thumb = browser
                    .rect_of("img", story.title)
                    .await
                    .unwrap_or_else(|| panic!("{what}: a thumbnail for {}", story.title));
                assert!(
                    thumb[0] >= title[2] - 1.0,
                    "{what}: {} thumbnail {thumb:?} beside its title {title:?}",
                    story.title
                );
                assert!(
                    thumb[1] < title[3] && thumb[3] > title[1],
                    "{what}: {} thumbnail level with its title",
                    story.title
                );
                assert!(
                    thumb[2] - thumb[0] <= 120.0,
                    "{what}: {} thumbnail {thumb:?} is small",
                    story.title
                );
            }
            let shot = dir.join(format!("{label}-{screen}-{backend:?}.png"));
            browser.full_page_screenshot(&shot).await;
            println!("{}", shot.display());
        }
        browser.set_viewport(1280, 900, false).await;
        browser
            .open_mail(html, files.path(), &format!("{label}-axe.html"))
            .await;
        browser
            .assert_axe_wcag_21_aa(
                &format!("the {label} digest"),
                &["link-name", "color-contrast", "image-alt"],
            )
            .await;
    }
    app.shutdown().await;
}

both_backends!(the_digest_leads_with_one_story_and_lists_the_rest_compact);

/// Every kind of mail herald sends, as it arrived at smtp-sink — the
/// confirmation after a signup, the one after a re-subscribe, and a digest
/// with a long unbroken title and link — opened at 375 px as a phone
/// shows it: nothing is wider than the screen, and axe finds no WCAG 2.1
/// AA violation. Screenshots: `target/test-screenshots/mails/`.
async fn every_mail_herald_sends_fits_a_375_px_phone(backend: Backend) {
    let app = common::spawn_app_with(backend, common::SmtpSink::start(&[]), |c| {
        c.site_url = Some("https://news.example.com".into());
    })
    .await;
    let reader = "reader@example.org";
    app.subscribe_and_confirm(reader).await;
    let unsubscribed = app.post(&app.one_click_url(reader).await).await;
    assert!(unsubscribed.status().is_success());
    app.subscribe_and_confirm(reader).await;
    app.add_article(
        "Supercalifragilisticexpialidocious-infrastructure-announcement-of-the-year",
        &format!(
            "https://news.example.com/{}",
            "long-path-segment-".repeat(12)
        ),
        "<p>A story whose title and link have no place to break. It still fits a phone.</p>",
    )
    .await;
    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;

    let mails = app.sink.messages_to(reader);
    let kinds: Vec<&str> = mails
        .iter()
        .map(|m| {
            if m.subject.starts_with("Confirm your subscription") {
                "confirmation"
            } else if m.header("List-Unsubscribe").is_some() {
                "digest"
            } else {
                panic!("a mail this test does not know: {}", m.subject)
            }
        })
        .collect();
    assert_eq!(kinds, ["confirmation", "confirmation", "digest"]);

    let dir = screenshot_dir("mails");
    println!("mail screenshots: {}", dir.display());
    let files = tempfile::tempdir().unwrap();
    let mut browser = Browser::launch().await;
    browser.set_viewport(375, 740, true).await;
    for (i, (mail, kind)) in mails.iter().zip(&kinds).enumerate() {
        let name = format!("{i}-{kind}");
        browser
            .open_mail(&mail.html, files.path(), &format!("{name}.html"))
            .await;
        browser
            .full_page_screenshot(&dir.join(format!("{name}-phone-{backend:?}.png")))
            .await;
        let scroll_width = browser.scroll_width().await;
        assert!(
            scroll_width <= 375,
            "mail {i} ({kind}) is {scroll_width} px wide at 375 px"
        );
        browser
            .assert_axe_wcag_21_aa(
                &format!("mail {i} ({kind})"),
                &["link-name", "color-contrast"],
            )
            .await;
    }
    app.shutdown().await;
}

both_backends!(every_mail_herald_sends_fits_a_375_px_phone);
