//! What untrusted HTML must pass before the sanitiser sees it, and where the
//! sanitiser runs.
//!
//! html5ever's tree builder and ammonia take time that grows with the square
//! of the nesting depth: one feed item of 100,000 nested `<div>`s (1.1 MB)
//! held a thread for over two minutes. So an item's HTML is refused before
//! sanitising when it is over [`MAX_HTML_BYTES`] or nests deeper than
//! [`MAX_NESTING_DEPTH`] (counted by html5ever's own tokenizer, which is
//! linear); what passes takes well under a second. The sanitising itself
//! runs on tokio's blocking pool, at most [`CLEANING_SLOTS`] items at once,
//! and an item not done within [`CLEAN_TIME_LIMIT`] is refused: no input
//! can hold an async worker thread, so /health and the web pages keep
//! answering whatever a feed sends.

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, EndTag, StartTag, TagToken, Token, TokenSink, TokenSinkResult, Tokenizer,
    TokenizerOpts,
};
use std::cell::RefCell;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Largest article body (feed item or API) herald sanitises: 512 KiB.
pub const MAX_HTML_BYTES: usize = 512 * 1024;
/// Deepest element nesting herald sanitises.
pub const MAX_NESTING_DEPTH: usize = 200;
/// Longest one item may take to be cleaned (waiting for a slot included).
pub const CLEAN_TIME_LIMIT: Duration = Duration::from_secs(5);
/// Items cleaned at once on the blocking pool.
pub const CLEANING_SLOTS: usize = 2;

/// Why an item (or an article from the API) was not taken. The text is
/// what `feed list`, `GET /api/feeds` and the log show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("its HTML is {bytes} bytes, more than herald reads (512 KiB)")]
    TooLarge { bytes: usize },
    #[error("its HTML nests elements more than {MAX_NESTING_DEPTH} deep")]
    TooDeep,
    #[error("cleaning it took longer than {} s", CLEAN_TIME_LIMIT.as_secs())]
    TimedOut,
    #[error("its link is not an absolute http(s) URL")]
    LinkNotWeb,
    #[error("cleaning it failed")]
    Crashed,
}

/// Refuses HTML over [`MAX_HTML_BYTES`] or nested deeper than
/// [`MAX_NESTING_DEPTH`]. Linear in the input.
pub fn check_html(html: &str) -> Result<(), Refusal> {
    if html.len() > MAX_HTML_BYTES {
        return Err(Refusal::TooLarge { bytes: html.len() });
    }
    if nesting_depth(html, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH {
        return Err(Refusal::TooDeep);
    }
    Ok(())
}

/// An upper bound of the depth html5ever's tree builder would reach, up to
/// `stop_after` + 1. Start tags of non-void elements open; an end tag
/// closes only when it names the element opened last, so stray or
/// misnested end tags (which the tree builder ignores or resolves
/// differently) never make the count lower than the tree.
pub fn nesting_depth(html: &str, stop_after: usize) -> usize {
    let sink = DepthSink {
        state: RefCell::new(DepthState {
            open: Vec::new(),
            deepest: 0,
            stop_after,
        }),
    };
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let deepest = tokenizer.sink.state.borrow().deepest;
    deepest
}

struct DepthState {
    open: Vec<html5ever::LocalName>,
    deepest: usize,
    stop_after: usize,
}

struct DepthSink {
    state: RefCell<DepthState>,
}

fn is_void(name: &str) -> bool {
    matches!(
        name,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "input"
            | "link"
            | "meta"
            | "param"
            | "source"
            | "track"
            | "wbr"
            | "keygen"
    )
}

impl TokenSink for DepthSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        if let TagToken(tag) = token {
            let mut state = self.state.borrow_mut();
            if state.deepest > state.stop_after {
                return TokenSinkResult::Continue;
            }
            match tag.kind {
                StartTag if !is_void(&tag.name) => {
                    state.open.push(tag.name);
                    state.deepest = state.deepest.max(state.open.len());
                }
                EndTag if state.open.last() == Some(&tag.name) => {
                    state.open.pop();
                }
                _ => {}
            }
        }
        TokenSinkResult::Continue
    }
}

static SLOTS: Semaphore = Semaphore::const_new(CLEANING_SLOTS);

/// Runs `work` on the blocking pool, at most [`CLEANING_SLOTS`] at once,
/// and gives up after `limit` (the work then finishes in the background,
/// holding its slot, and its result is dropped).
pub async fn off_the_async_threads<T, F>(limit: Duration, work: F) -> Result<T, Refusal>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let run = async {
        let permit = SLOTS.acquire().await.map_err(|_| Refusal::Crashed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| Refusal::Crashed)
    };
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| Refusal::TimedOut)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_as_the_tree_builder_would_at_least() {
        assert_eq!(nesting_depth("<p>a</p><p>b</p>", 200), 1);
        assert_eq!(nesting_depth("<div><p><b>x</b></p></div>", 200), 3);
        assert_eq!(nesting_depth("<p>a<br><img src=x>b</p>", 200), 1);
        // Stray end tags do not close what they do not name.
        let stray = "<div></span>".repeat(500);
        assert!(nesting_depth(&stray, 200) > 200);
        // A quoted '>' in an attribute is not the end of the tag.
        let quoted = "<div title='>'</div>".repeat(500);
        assert!(nesting_depth(&quoted, 200) > 200);
        let nested = "<div>".repeat(100_000);
        assert_eq!(
            nesting_depth(&nested, 200),
            201,
            "stops counting past the cap"
        );
    }

    /// Formatting elements closed by `</p>` stay "active" and the tree
    /// builder re-opens all of them at the next text: 200 of them and then
    /// `<p>x</p>` over and over would build 200 elements per 8 bytes. The
    /// count never closes them, so the next `<p>` is over the cap.
    #[test]
    fn reopened_formatting_elements_count_as_nesting() {
        let formatting: String = (0..199).map(|i| format!("<b id=\"{i}\">")).collect();
        let attack = format!("<p>{formatting}</p>{}", "<p>x</p>".repeat(50_000));
        assert_eq!(check_html(&attack), Err(Refusal::TooDeep));
    }

    #[test]
    fn huge_or_deep_html_is_refused_before_sanitising() {
        let deep = format!("{}x{}", "<div>".repeat(201), "</div>".repeat(201));
        assert_eq!(check_html(&deep), Err(Refusal::TooDeep));
        let ok = format!("{}x{}", "<div>".repeat(200), "</div>".repeat(200));
        assert_eq!(check_html(&ok), Ok(()));
        let big = "<p>x</p>".repeat(MAX_HTML_BYTES / 8 + 1);
        assert!(matches!(check_html(&big), Err(Refusal::TooLarge { .. })));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn slow_cleaning_is_refused_after_the_time_limit() {
        let started = std::time::Instant::now();
        let result = off_the_async_threads(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(400));
            1
        })
        .await;
        assert_eq!(result, Err(Refusal::TimedOut));
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(off_the_async_threads(CLEAN_TIME_LIMIT, || 2).await, Ok(2));
    }
}
