//! Every state transition of a subscriber tells the truth (issue 10, item
//! 8): each cell of `herald::subscriptions::TRANSITIONS` is driven through
//! the real HTTP routes, and the page shown, the state stored and the mail
//! queued are what the table says.

mod common;

use common::{spawn_app, Backend, TestApp};
use herald::domain::time::now_millis;
use herald::domain::token::hash_token;
use herald::subscriptions::{Action, TRANSITIONS};
use std::time::Duration;

const STATES: [&str; 4] = ["pending", "confirmed", "unsubscribed", "bounced"];
const ACTIONS: [Action; 7] = [
    Action::Signup,
    Action::ConfirmLatest,
    Action::ConfirmExpired,
    Action::ConfirmSpent,
    Action::ConfirmStale,
    Action::Unsubscribe,
    Action::ResendExpired,
];

async fn subscriber_id(app: &TestApp, email: &str) -> i64 {
    let email = herald::domain::SubscriberEmail::parse(email).unwrap();
    app.store
        .subscriber_by_email(&email)
        .await
        .unwrap()
        .expect("subscriber")
        .id
}

async fn mails_queued_for(app: &TestApp, id: i64) -> i64 {
    on_pool!(&app.store, pool => {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE subscriber_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

async fn token_used_at(app: &TestApp, token: &str) -> Option<i64> {
    on_pool!(&app.store, pool => {
        sqlx::query_scalar::<_, Option<i64>>("SELECT used_at FROM confirmation_tokens WHERE token_hash = $1")
            .bind(hash_token(token))
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

/// Puts the subscriber in `state`, as the routes (or a bounce) would have
/// left it; a confirmation went out long enough ago for a resend.
async fn arrange_state(app: &TestApp, id: i64, state: &str) {
    let now = now_millis();
    on_pool!(&app.store, pool => {
        sqlx::query(
            "UPDATE subscribers SET status = $2, last_confirmation_sent_at = 0,
             confirmed_at = CASE WHEN $2 = 'confirmed' THEN $3 ELSE NULL END,
             unsubscribed_at = CASE WHEN $2 = 'unsubscribed' THEN $3 ELSE NULL END
             WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(now)
        .execute(pool)
        .await
        .map(drop)
        .unwrap();
        // The resend limit also counts per receiving mailbox.
        sqlx::query("UPDATE confirmation_mailboxes SET last_sent_at = 0")
            .execute(pool)
            .await
            .map(drop)
            .unwrap()
    });
}

/// A confirmation token of the kind the action uses: the latest one, one
/// past its time, one already used, or one issued before the subscriber
/// last unsubscribed (for a subscriber that came back since).
async fn arrange_token(app: &TestApp, id: i64, action: Action, token: &str) {
    let now = now_millis();
    let hour = 3_600_000;
    let (created, expires, used) = match action {
        Action::ConfirmExpired | Action::ResendExpired => (now - 2 * hour, now - hour, None),
        Action::ConfirmSpent => (now - 2 * hour, now + hour, Some(now - hour)),
        Action::ConfirmStale => (now - 2 * hour, now + hour, None),
        _ => (now, now + hour, None),
    };
    on_pool!(&app.store, pool => {
        sqlx::query(
            "INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at, used_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_token(token))
        .bind(id)
        .bind(created)
        .bind(expires)
        .bind(used)
        .execute(pool)
        .await
        .unwrap();
        if action == Action::ConfirmStale {
            sqlx::query("UPDATE subscribers SET unsubscribed_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now - hour)
                .execute(pool)
                .await
                .unwrap();
        }
    });
}

async fn page_title(resp: reqwest::Response) -> String {
    let html = resp.text().await.unwrap();
    html.split("<h1>")
        .nth(1)
        .and_then(|rest| rest.split("</h1>").next())
        .unwrap_or("")
        .to_string()
}

async fn every_state_transition_tells_the_truth(backend: Backend) {
    // The table covers each state × action exactly once.
    for from in STATES {
        for action in ACTIONS {
            let cells = TRANSITIONS
                .iter()
                .filter(|t| t.from == from && t.action == action)
                .count();
            assert_eq!(cells, 1, "{from} × {action:?}");
        }
    }
    let app = spawn_app(backend).await;
    for (i, cell) in TRANSITIONS.iter().enumerate() {
        let what = format!("{} × {:?}", cell.from, cell.action);
        let email = format!("cell{i}@example.com");
        assert_eq!(app.subscribe_form(&email, "").await.status(), 303);
        let id = subscriber_id(&app, &email).await;
        arrange_state(&app, id, cell.from).await;
        let token = format!("cell-{i}-token");
        let mails_before = mails_queued_for(&app, id).await;
        let title = match cell.action {
            Action::Signup => {
                let resp = app.subscribe_form(&email, "").await;
                assert_eq!(resp.status(), 303, "{what}");
                let location = resp.headers()["location"].to_str().unwrap().to_string();
                page_title(app.get(&location).await).await
            }
            Action::Unsubscribe => {
                let link = format!(
                    "/unsubscribe/{}",
                    app.state.signer.unsubscribe_token(id, &email)
                );
                let shown = app.get(&link).await;
                assert_eq!(shown.status(), 200, "{what}");
                page_title(app.post(&link).await).await
            }
            Action::ResendExpired => {
                arrange_token(&app, id, cell.action, &token).await;
                page_title(app.post(&format!("/confirm/{token}/resend")).await).await
            }
            confirm => {
                arrange_token(&app, id, confirm, &token).await;
                let used_before = token_used_at(&app, &token).await;
                let link = format!("/confirm/{token}");
                // The GET tells the same truth as the POST, without a change.
                let shown = page_title(app.get(&link).await).await;
                let title = page_title(app.post(&link).await).await;
                if title == herald::subscriptions::PAGE_SUBSCRIBED {
                    assert_eq!(shown, "Confirm your subscription", "{what}");
                    assert!(token_used_at(&app, &token).await.is_some(), "{what}");
                } else {
                    assert_eq!(shown, title, "{what}: GET and POST disagree");
                    assert_eq!(
                        token_used_at(&app, &token).await,
                        used_before,
                        "{what}: a link that did not confirm was spent"
                    );
                }
                title
            }
        };
        assert_eq!(title, cell.page, "{what}: page");
        assert_eq!(
            app.subscriber_status(&email).await.as_deref(),
            Some(cell.to),
            "{what}: state"
        );
        let queued = mails_queued_for(&app, id).await - mails_before;
        assert_eq!(queued, i64::from(cell.mails), "{what}: confirmation mails");
    }
    app.shutdown().await;
}

/// The sequence, through the routes and the mail only: subscribe
/// and confirm, unsubscribe, sign up again (link T2), unsubscribe with the
/// old link, then press T2. Before the fix the page said "You are
/// subscribed" while the subscriber stayed unsubscribed and T2 was spent.
async fn confirming_after_unsubscribing_tells_the_truth(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = "reader@example.com";
    app.subscribe_and_confirm(email).await;
    let unsubscribe = app.one_click_url(email).await;
    assert_eq!(app.post(&unsubscribe).await.status(), 200);
    assert_eq!(app.subscribe_form(email, "").await.status(), 303);
    let mails = app.sink.wait_for(2, Duration::from_secs(10)).await;
    let t2 = mails[1].link_starting(&app.url("/confirm/")).unwrap();
    assert_eq!(app.post(&unsubscribe).await.status(), 200);
    let page = app.post(&t2).await;
    assert_eq!(page.status(), 410);
    let body = page.text().await.unwrap();
    assert!(body.contains("You are not subscribed"), "{body}");
    assert!(
        body.contains("unsubscribed after the link was sent"),
        "{body}"
    );
    assert_eq!(
        app.subscriber_status(email).await.as_deref(),
        Some("unsubscribed")
    );
    // Signing up once more: T2 now belongs to an earlier signup, and the
    // new link (T3) confirms.
    assert_eq!(app.subscribe_form(email, "").await.status(), 303);
    let mails = app.sink.wait_for(3, Duration::from_secs(10)).await;
    let t3 = mails[2].link_starting(&app.url("/confirm/")).unwrap();
    assert!(app
        .post(&t2)
        .await
        .text()
        .await
        .unwrap()
        .contains("This link was replaced"));
    assert!(app
        .post(&t3)
        .await
        .text()
        .await
        .unwrap()
        .contains("You are subscribed"));
    assert_eq!(
        app.subscriber_status(email).await.as_deref(),
        Some("confirmed")
    );
    app.shutdown().await;
}

both_backends!(
    every_state_transition_tells_the_truth,
    confirming_after_unsubscribing_tells_the_truth,
);
