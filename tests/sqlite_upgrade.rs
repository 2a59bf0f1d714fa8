//! Upgrading a SQLite database that has subscribers, tokens and queued mail
//! through the one-time rebuild of the subscribers table that drops the
//! address's UNIQUE constraint (`store/sqlite_rebuild.rs`; SQLite only:
//! PostgreSQL drops the constraint in place). Nothing is lost, the rows still point at
//! each other, and the address's old UNIQUE constraint is gone while the
//! identity key's holds.

use herald::store::Store;
use sqlx::migrate::Migrator;
use sqlx::Row;

#[tokio::test]
async fn the_subscribers_rebuild_keeps_every_row_and_reference() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = Store::connect(&url).await.unwrap();
    let Store::Sqlite(pool) = &store else {
        panic!("a SQLite store")
    };
    // The schema as the migrations leave it, before the rebuild, with data.
    let migrations: Migrator = sqlx::migrate!("migrations/sqlite");
    migrations.run(pool).await.unwrap();
    let duplicate_address_refused = sqlx::query(
        "INSERT INTO subscribers (email, email_key, status, source, created_at)
         VALUES ('dup@example.com', NULL, 'pending', 'form', 0), ('dup@example.com', NULL, 'pending', 'form', 0)",
    )
    .execute(pool)
    .await
    .is_err();
    assert!(duplicate_address_refused, "before: the address is UNIQUE");
    sqlx::query(
        "INSERT INTO subscribers (id, email, email_key, name, status, source, created_at)
         VALUES (7, 'Ann@example.com', 'ann@example.com', 'Ann', 'pending', 'form', 1),
                (9, 'bob@example.com', 'bob@example.com', NULL, 'confirmed', 'form', 2)",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
         VALUES ('h7', 7, 1, 99999999999999)",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox (kind, subscriber_id, recipient, subject, status, next_attempt_at, created_at)
         VALUES ('confirmation', 7, 'Ann@example.com', 'Confirm', 'queued', 1, 1)",
    )
    .execute(pool)
    .await
    .unwrap();

    store.migrate().await.unwrap();

    let rows = sqlx::query("SELECT id, email, name, status FROM subscribers ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (r.get::<i64, _>("id"), r.get::<String, _>("email")))
        .collect();
    assert_eq!(
        got,
        vec![(7, "Ann@example.com".into()), (9, "bob@example.com".into())]
    );
    let tokens: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM confirmation_tokens t JOIN subscribers s ON s.id = t.subscriber_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(tokens, 1, "the token still points at its subscriber");
    let mails: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox o JOIN subscribers s ON s.id = o.subscriber_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(mails, 1, "the queued mail still points at its subscriber");
    let violations = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(violations.is_empty(), "foreign keys hold after the rebuild");
    let enabled: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(enabled, 1, "foreign keys are back on");
    // The key is unique; the address alone no longer needs to be.
    sqlx::query(
        "INSERT INTO subscribers (email, email_key, status, source, created_at)
         VALUES ('dup@example.com', 'dup-1', 'pending', 'form', 0), ('dup@example.com', 'dup-2', 'pending', 'form', 0)",
    )
    .execute(pool)
    .await
    .expect("after: only the key is unique");
    let same_key = sqlx::query(
        "INSERT INTO subscribers (email, email_key, status, source, created_at)
         VALUES ('ANN@example.com', 'ann@example.com', 'pending', 'form', 3)",
    )
    .execute(pool)
    .await;
    assert!(same_key.is_err(), "two subscribers with one identity");
    // New rows continue the id sequence.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO subscribers (email, email_key, status, source, created_at)
         VALUES ('cy@example.com', 'cy@example.com', 'pending', 'form', 4) RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(id > 9, "ids are not reused: {id}");
    // Running the migrations again finds nothing to rebuild.
    store.migrate().await.unwrap();
    store.close().await;
}
