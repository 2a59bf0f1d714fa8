//! Confirmation links: what a token points at (the GET) and using it (the
//! POST). Both judge the token by the same rule, [`classify`], against the
//! subscriber's state as it is now, so the page shown is the truth.

use super::{in_write_tx, with_pool, Error, Result, Store};
use crate::domain::time::Millis;

/// What a confirmation token means now. Only `Valid` confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLookup {
    /// Unused, unexpired, issued for the subscriber's current pending signup.
    Valid {
        email: String,
    },
    /// Unused but past its time; the subscriber is still pending.
    Expired {
        email: String,
    },
    /// The subscriber is confirmed (by this link or another).
    AlreadyConfirmed,
    /// The subscriber is pending again, and this link belongs to an earlier
    /// signup (used, or issued before they unsubscribed): a newer one was sent.
    Superseded,
    /// The subscriber unsubscribed after the link was sent.
    Unsubscribed,
    /// Mail to the subscriber bounced after the link was sent.
    Bounced,
    Unknown,
}

/// What pressing the confirm button did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// pending → confirmed, and the token is spent.
    Confirmed,
    /// Nothing changed, for the reason given (never `Valid`).
    NotConfirmed(TokenLookup),
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    subscriber_id: i64,
    email: String,
    status: String,
    used_at: Option<Millis>,
    created_at: Millis,
    expires_at: Millis,
    unsubscribed_at: Option<Millis>,
}

const TOKEN_ROW: &str = "SELECT t.subscriber_id, s.email, s.status, t.used_at, t.created_at, t.expires_at, s.unsubscribed_at
     FROM confirmation_tokens t JOIN subscribers s ON s.id = t.subscriber_id WHERE t.token_hash = $1";

fn classify(row: Option<&TokenRow>, now: Millis) -> TokenLookup {
    let Some(row) = row else {
        return TokenLookup::Unknown;
    };
    match row.status.as_str() {
        "confirmed" => TokenLookup::AlreadyConfirmed,
        "unsubscribed" => TokenLookup::Unsubscribed,
        "bounced" => TokenLookup::Bounced,
        "pending"
            if row.used_at.is_some() || row.unsubscribed_at.is_some_and(|u| row.created_at < u) =>
        {
            TokenLookup::Superseded
        }
        "pending" if row.expires_at <= now => TokenLookup::Expired {
            email: row.email.clone(),
        },
        "pending" => TokenLookup::Valid {
            email: row.email.clone(),
        },
        _ => TokenLookup::Unknown,
    }
}

impl Store {
    /// What a confirmation link points at, without using it up (the GET).
    pub async fn lookup_confirmation_token(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<TokenLookup> {
        let row: Option<TokenRow> = with_pool!(self, pool => {
            sqlx::query_as(TOKEN_ROW).bind(token_hash).fetch_optional(pool).await?
        });
        Ok(classify(row.as_ref(), now))
    }

    /// Uses the token up and confirms its subscriber (the POST), only when
    /// the token is `Valid`. Both rows are checked as they are changed: if
    /// either was not what the read said, nothing is written.
    pub async fn confirm(&self, token_hash: &str, now: Millis) -> Result<ConfirmOutcome> {
        let lock = match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => " FOR UPDATE",
        };
        let select = format!("{TOKEN_ROW}{lock}");
        in_write_tx!(self, tx => {
            let row: Option<TokenRow> = sqlx::query_as(&select)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
            let lookup = classify(row.as_ref(), now);
            let (TokenLookup::Valid { .. }, Some(row)) = (&lookup, row) else {
                return Ok(ConfirmOutcome::NotConfirmed(lookup));
            };
            let spent = sqlx::query(
                "UPDATE confirmation_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
            )
            .bind(token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let confirmed = sqlx::query(
                "UPDATE subscribers SET status = 'confirmed', confirmed_at = $2, hard_bounces = 0
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(row.subscriber_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if spent != 1 || confirmed != 1 {
                // Dropping the transaction rolls it back: the token stays unspent.
                return Err(Error::Changed("a confirmation"));
            }
            tx.commit().await?;
            Ok(ConfirmOutcome::Confirmed)
        })
    }
}
