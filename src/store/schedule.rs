//! The scheduler's memory: which reminder, escalation or digest has been
//! queued (one key each), and the health of intake and outbox.

use anyhow::Result;
use jiff::Timestamp;
use sqlx::Row;

use super::{get_i64, get_opt_str, Store, Tx};
use crate::clock::{db_time, parse_db_time};

/// One piece of scheduled work, named so that doing it twice is impossible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeKey {
    /// Unique text: kind, case, level and anchor, or recipient and day.
    pub key: String,
    pub case_id: Option<i64>,
    pub kind: &'static str,
    pub level: i64,
    /// The local day it was done for (YYYY-MM-DD).
    pub day: String,
}

/// Claims `key` inside the transaction that queues its mail. False when it
/// was claimed before (by this daemon earlier, or by another one): then the
/// caller rolls back and sends nothing. On PostgreSQL a second daemon's
/// insert waits for the first one's commit and then finds the key taken.
pub async fn claim_notice(
    tx: &mut Tx,
    key: &NoticeKey,
    recipients: &str,
    now: Timestamp,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO notices (key, case_id, kind, level, day, recipients, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING",
    )
    .bind(&key.key)
    .bind(key.case_id)
    .bind(key.kind)
    .bind(key.level)
    .bind(&key.day)
    .bind(recipients)
    .bind(db_time(now))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Intake or outbox, as the health table knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub ok_at: Option<Timestamp>,
    pub failing_since: Option<Timestamp>,
    pub last_error: Option<String>,
    pub alarm_at: Option<Timestamp>,
}

/// A notice as `notices` records it (for `case show` and tests).
#[derive(Debug, Clone)]
pub struct NoticeRow {
    pub key: String,
    pub kind: String,
    pub level: i64,
    pub day: String,
    pub recipients: String,
    pub at: String,
}

impl Store {
    /// Whether `key` was claimed already: a cheap look before costly work
    /// (the claim itself still decides).
    pub async fn notice_claimed(&self, key: &str) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) FROM notices WHERE key = $1")
            .bind(key)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Cases with mail to their client that failed for good and was not
    /// requeued (`klachtd outbox retry`): the digest lists them.
    pub async fn cases_with_undeliverable_client_mail(
        &self,
    ) -> Result<std::collections::HashSet<i64>> {
        let rows = sqlx::query(
            "SELECT DISTINCT o.case_id FROM outbox o JOIN cases c ON c.id = o.case_id \
             WHERE o.status = 'failed' AND c.client_email IS NOT NULL \
             AND LOWER(o.recipient) = LOWER(c.client_email)",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| get_i64(r, "case_id")).collect()
    }

    /// When the last digest for `recipient` was done (sent or found empty).
    pub async fn last_digest_at(&self, recipient: &str) -> Result<Option<Timestamp>> {
        let row = sqlx::query(
            "SELECT MAX(at) AS at FROM notices WHERE kind = 'digest' AND LOWER(recipients) = LOWER($1)",
        )
        .bind(recipient)
        .fetch_one(self.pool())
        .await?;
        Ok(get_opt_str(&row, "at")?.and_then(|s| parse_db_time(&s)))
    }

    /// Every notice, oldest first.
    pub async fn notices(&self) -> Result<Vec<NoticeRow>> {
        let rows = sqlx::query(
            "SELECT key, kind, level, day, recipients, at FROM notices ORDER BY at, key",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NoticeRow {
                    key: r.try_get("key")?,
                    kind: r.try_get("kind")?,
                    level: get_i64(r, "level")?,
                    day: r.try_get("day")?,
                    recipients: r.try_get("recipients")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    pub async fn health(&self, name: &str) -> Result<Health> {
        let row = sqlx::query(
            "SELECT ok_at, failing_since, last_error, alarm_at FROM health WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else {
            return Ok(Health::default());
        };
        let t = |c: &str| -> Result<Option<Timestamp>> {
            Ok(get_opt_str(&r, c)?.and_then(|s| parse_db_time(&s)))
        };
        Ok(Health {
            ok_at: t("ok_at")?,
            failing_since: t("failing_since")?,
            last_error: get_opt_str(&r, "last_error")?,
            alarm_at: t("alarm_at")?,
        })
    }

    /// `name` worked at `now`: the failure, if any, is over.
    pub async fn health_ok(&self, name: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO health (name, ok_at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE \
             SET ok_at = excluded.ok_at, failing_since = NULL, last_error = NULL",
        )
        .bind(name)
        .bind(db_time(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `name` failed at `now`; a failure that already runs keeps its start.
    /// `error` must hold no personal data (it goes to the supervisors).
    pub async fn health_failed(&self, name: &str, now: Timestamp, error: &str) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        sqlx::query(
            "INSERT INTO health (name, failing_since, last_error) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET \
             failing_since = COALESCE(health.failing_since, excluded.failing_since), \
             last_error = excluded.last_error",
        )
        .bind(name)
        .bind(db_time(now))
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Cases being handled, their answer past due on `today`, and triage
    /// items: one count for `status`, `/metrics` and systemd's STATUS.
    pub async fn case_counts(&self, today: jiff::civil::Date) -> Result<CaseCounts> {
        let row = sqlx::query(
            "SELECT \
             COALESCE(SUM(CASE WHEN status <> 'triage' THEN 1 ELSE 0 END), 0) AS open, \
             COALESCE(SUM(CASE WHEN status <> 'triage' AND response_due < $1 THEN 1 ELSE 0 END), 0) AS overdue, \
             COALESCE(SUM(CASE WHEN status = 'triage' THEN 1 ELSE 0 END), 0) AS triage \
             FROM cases WHERE status <> 'closed'",
        )
        .bind(today.to_string())
        .fetch_one(self.pool())
        .await?;
        Ok(CaseCounts {
            open: get_i64(&row, "open")?,
            overdue: get_i64(&row, "overdue")?,
            triage: get_i64(&row, "triage")?,
        })
    }

    /// The health rows whose alarm is raised now (of [`HEALTH_ROWS`]).
    pub async fn raised_alarms(&self) -> Result<Vec<&'static str>> {
        let mut raised = Vec::new();
        for name in HEALTH_ROWS {
            if self.health(name).await?.alarm_at.is_some() {
                raised.push(name);
            }
        }
        Ok(raised)
    }

    /// Oldest mail still waiting to go out, and how many wait.
    pub async fn unsent(&self) -> Result<(Option<Timestamp>, i64, Option<String>)> {
        let row = sqlx::query(
            "SELECT MIN(created_at) AS oldest, COUNT(*) AS n, MAX(last_error) AS err FROM outbox \
             WHERE status IN ('pending', 'sending', 'committing')",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((
            get_opt_str(&row, "oldest")?.and_then(|s| parse_db_time(&s)),
            get_i64(&row, "n")?,
            get_opt_str(&row, "err")?,
        ))
    }
}

/// The health rows klachtd keeps, each with its own alarm.
pub const HEALTH_ROWS: [&str; 3] = ["intake", "outbox", "auto_replies"];

/// Open (being handled), overdue (answer past due) and triage cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaseCounts {
    pub open: i64,
    pub overdue: i64,
    pub triage: i64,
}

/// Marks the alarm of `name` raised; false when it already was (by this or
/// another daemon), so exactly one pass sends the alarm mail.
pub async fn raise_alarm(tx: &mut Tx, name: &str, now: Timestamp) -> Result<bool> {
    sqlx::query("INSERT INTO health (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    let n = sqlx::query("UPDATE health SET alarm_at = $2 WHERE name = $1 AND alarm_at IS NULL")
        .bind(name)
        .bind(db_time(now))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Clears a raised alarm; false when none was raised (or another pass
/// cleared it first), so exactly one pass sends the recovery mail.
pub async fn clear_alarm(tx: &mut Tx, name: &str) -> Result<bool> {
    let n =
        sqlx::query("UPDATE health SET alarm_at = NULL WHERE name = $1 AND alarm_at IS NOT NULL")
            .bind(name)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    Ok(n == 1)
}
