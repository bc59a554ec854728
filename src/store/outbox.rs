//! The outbox: every outgoing mail is a row, written in the transaction that
//! changed the case; the outbox worker sends, retries and marks it.

use anyhow::Result;
use jiff::Timestamp;
use sqlx::Row;

use super::{get_i64, get_opt_str, get_str, Store, Tx};
use crate::clock::db_time;
use crate::domain::event::{EventKind, MailStep, OutboxKind, OutboxStatus};

pub struct NewOutMail<'a> {
    pub message_id: &'a str,
    pub case_id: Option<i64>,
    pub kind: OutboxKind,
    pub recipient: &'a str,
    pub raw: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: String,
    pub case_id: Option<i64>,
    pub kind: OutboxKind,
    pub recipient: String,
    pub raw: Vec<u8>,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The end of the latest lease; for a `committing` row left by a
    /// killed worker, about when that worker died.
    pub lease_until: Option<Timestamp>,
}

/// Queues a mail. Returns false when a row with that Message-ID, or a second
/// acknowledgement for the same case, already exists (nothing is queued).
pub async fn enqueue(tx: &mut Tx, m: &NewOutMail<'_>, now: Timestamp) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO outbox (message_id, case_id, kind, recipient, raw, status, next_attempt_at, created_at, recipient_key) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(m.message_id)
    .bind(m.case_id)
    .bind(m.kind.as_str())
    .bind(m.recipient)
    .bind(m.raw.to_vec())
    .bind(db_time(now))
    .bind(super::cases::mailbox_key(m.recipient))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// A sent mail whose copy is not yet where it belongs.
pub struct Uncopied {
    pub id: i64,
    pub kind: OutboxKind,
    pub message_id: String,
    pub raw: Vec<u8>,
    pub sent_at: Timestamp,
}

/// A change of an outbox row's state, as the outbox worker makes them:
/// each alone in a transaction of its own (the `Store` methods below), or
/// several senders' changes in one (`crate::workers::outbox`, which
/// commits what its sessions ask meanwhile together: one fsync for all).
pub enum OutboxChange {
    /// Takes a lease and records that a send attempt starts (status
    /// `sending`); false: another worker holds the row.
    Lease {
        id: i64,
        now: Timestamp,
        until: Timestamp,
    },
    /// The final dot is about to be written; false: the lease `until` is
    /// no longer ours.
    Committing { id: i64, until: Timestamp },
    /// The lease `held` (still ours) now runs to `until`; false: taken
    /// over.
    Renew {
        id: i64,
        held: Timestamp,
        until: Timestamp,
    },
    /// The lease `held` is given back unused: the row is as it was before
    /// (`status`, its attempt not counted) and due at once.
    Release {
        id: i64,
        held: Timestamp,
        status: OutboxStatus,
    },
    /// Sent; for an acknowledgement also the case. A row already marked is
    /// left alone (false).
    Sent { row: SentRow, at: Timestamp },
    /// Its copy is where it belongs.
    Copied { id: i64 },
}

impl OutboxChange {
    pub async fn apply(&self, tx: &mut Tx) -> Result<bool> {
        let n = match *self {
            OutboxChange::Lease { id, now, until } => sqlx::query(
                "UPDATE outbox SET lease_until = $3, status = 'sending', attempts = attempts + 1 \
                 WHERE id = $1 AND status IN ('pending', 'sending') AND (lease_until IS NULL OR lease_until < $2)",
            )
            .bind(id)
            .bind(db_time(now))
            .bind(db_time(until))
            .execute(&mut **tx)
            .await?
            .rows_affected(),
            OutboxChange::Committing { id, until } => sqlx::query(
                "UPDATE outbox SET status = 'committing' WHERE id = $1 AND status = 'sending' AND lease_until = $2",
            )
            .bind(id)
            .bind(db_time(until))
            .execute(&mut **tx)
            .await?
            .rows_affected(),
            OutboxChange::Renew { id, held, until } => sqlx::query(
                "UPDATE outbox SET lease_until = $3 WHERE id = $1 AND status = 'sending' AND lease_until = $2",
            )
            .bind(id)
            .bind(db_time(held))
            .bind(db_time(until))
            .execute(&mut **tx)
            .await?
            .rows_affected(),
            OutboxChange::Release { id, held, status } => sqlx::query(
                "UPDATE outbox SET status = $3, lease_until = NULL, attempts = attempts - 1 \
                 WHERE id = $1 AND status = 'sending' AND lease_until = $2",
            )
            .bind(id)
            .bind(db_time(held))
            .bind(status.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected(),
            OutboxChange::Sent { ref row, at } => return sent(tx, row, at).await,
            OutboxChange::Copied { id } => {
                sqlx::query("UPDATE outbox SET copied_to_sent = 1 WHERE id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
        };
        Ok(n == 1)
    }
}

/// What recording a row as sent needs of it: not the mail itself.
pub struct SentRow {
    id: i64,
    case_id: Option<i64>,
    kind: OutboxKind,
    message_id: String,
    recipient: String,
    from: String,
}

impl SentRow {
    pub fn of(row: &OutboxRow) -> SentRow {
        SentRow {
            id: row.id,
            case_id: row.case_id,
            kind: row.kind,
            message_id: row.message_id.clone(),
            recipient: row.recipient.clone(),
            from: header_address(&row.raw, "from").unwrap_or_default(),
        }
    }
}

async fn sent(tx: &mut Tx, row: &SentRow, at: Timestamp) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE outbox SET status = 'sent', sent_at = $2, lease_until = NULL, last_error = NULL \
         WHERE id = $1 AND status <> 'sent'",
    )
    .bind(row.id)
    .bind(db_time(at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    if let Some(case_id) = row.case_id {
        if row.kind == OutboxKind::Ack {
            super::cases::mark_acknowledged(tx, case_id, at).await?;
        }
        let data = serde_json::json!({
            "direction": "out",
            "from": row.from,
            "to": row.recipient,
            "message_id": row.message_id,
        });
        super::cases::add_event_data(
            tx,
            case_id,
            at,
            EventKind::Mail(row.kind, MailStep::Sent),
            "klachtd",
            &row.message_id,
            &data,
        )
        .await?;
    }
    Ok(true)
}

impl Store {
    /// Rows to send now: pending or sending (a crash or an expired lease),
    /// due, not leased by another worker.
    pub async fn due_outbox(&self, now: Timestamp, limit: i64) -> Result<Vec<OutboxRow>> {
        let t = db_time(now);
        let rows = sqlx::query(
            "SELECT id, message_id, case_id, kind, recipient, raw, status, attempts, last_error, lease_until FROM outbox \
             WHERE status IN ('pending', 'sending', 'committing') AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until < $1) ORDER BY id LIMIT $2",
        )
        .bind(&t)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: get_i64(r, "id")?,
                    message_id: get_str(r, "message_id")?,
                    case_id: r.try_get::<Option<i64>, _>("case_id")?,
                    kind: get_str(r, "kind")?.parse()?,
                    recipient: get_str(r, "recipient")?,
                    raw: r.try_get::<Vec<u8>, _>("raw")?,
                    status: get_str(r, "status")?.parse()?,
                    attempts: get_i64(r, "attempts")?,
                    last_error: get_opt_str(r, "last_error")?,
                    lease_until: get_opt_str(r, "lease_until")?
                        .and_then(|t| crate::clock::parse_db_time(&t)),
                })
            })
            .collect()
    }

    /// Takes a lease on a row and records that a send attempt starts
    /// (status `sending`). Returns false if another worker holds it.
    pub async fn lease_outbox(&self, id: i64, now: Timestamp, until: Timestamp) -> Result<bool> {
        self.in_tx(OutboxChange::Lease { id, now, until }).await
    }

    /// Records, durably, that the final dot of this row's SMTP transaction
    /// is about to be written: from here on the row counts as sent. Fails if
    /// the row is no longer ours (lease `until` taken over).
    pub async fn mark_committing(&self, id: i64, until: Timestamp) -> Result<()> {
        let ours = self.in_tx(OutboxChange::Committing { id, until }).await?;
        anyhow::ensure!(ours, "outbox row {id} is no longer leased to this worker");
        Ok(())
    }

    /// Marks a row sent; for an acknowledgement also the case (one
    /// transaction). A row already marked is left alone (false: another
    /// worker marked it first).
    pub async fn mark_sent(&self, row: &OutboxRow, at: Timestamp) -> Result<bool> {
        self.in_tx(OutboxChange::Sent {
            row: SentRow::of(row),
            at,
        })
        .await
    }

    /// [`Store::mark_copied`] for many rows, in one transaction.
    pub async fn mark_copied_all(&self, ids: &[i64]) -> Result<()> {
        let mut tx = self.begin().await?;
        for &id in ids {
            OutboxChange::Copied { id }.apply(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The sweep's claim on a sent row whose copy is missing, until
    /// `until`: false if another daemon's sweep has it (or it is copied),
    /// so that two sweeps never copy one mail twice.
    pub async fn claim_uncopied(&self, id: i64, now: Timestamp, until: Timestamp) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE outbox SET lease_until = $3 WHERE id = $1 AND status = 'sent' \
             AND copied_to_sent = 0 AND (lease_until IS NULL OR lease_until < $2)",
        )
        .bind(id)
        .bind(db_time(now))
        .bind(db_time(until))
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    pub async fn mark_copied(&self, id: i64) -> Result<()> {
        self.in_tx(OutboxChange::Copied { id }).await.map(|_| ())
    }

    async fn in_tx(&self, change: OutboxChange) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = change.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// A transient failure: try again at `next`.
    /// Every state change of a leased row checks that the lease (`until`)
    /// is still this worker's: false when another worker took the row
    /// over, and then nothing is changed.
    pub async fn mark_retry(
        &self,
        id: i64,
        until: Timestamp,
        error: &str,
        next: Timestamp,
    ) -> Result<bool> {
        self.retry_later(id, until, error, next, "status = 'pending', ")
            .await
    }

    /// The server refused the whole session (see
    /// `crate::mail::smtp::SendError::Session`): the row waits, pending,
    /// and the attempt does not count towards giving up.
    pub async fn mark_waiting(
        &self,
        id: i64,
        until: Timestamp,
        error: &str,
        next: Timestamp,
    ) -> Result<bool> {
        self.retry_later(
            id,
            until,
            error,
            next,
            "status = 'pending', attempts = attempts - 1, ",
        )
        .await
    }

    /// The row's lease ends and it is tried again at `next`; `set` is SQL
    /// assignments with a trailing comma, or empty.
    async fn retry_later(
        &self,
        id: i64,
        until: Timestamp,
        error: &str,
        next: Timestamp,
        set: &str,
    ) -> Result<bool> {
        let n = sqlx::query(&format!(
            "UPDATE outbox SET {set}lease_until = NULL, last_error = $2, next_attempt_at = $3 \
             WHERE id = $1 AND status = 'sending' AND lease_until = $4"
        ))
        .bind(id)
        .bind(error)
        .bind(db_time(next))
        .bind(db_time(until))
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// A permanent failure: recorded, never retried, shown on the case.
    /// False (and nothing changed) when the lease `until` is no longer ours.
    pub async fn mark_failed(
        &self,
        row: &OutboxRow,
        until: Timestamp,
        error: &str,
        at: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE outbox SET status = 'failed', lease_until = NULL, last_error = $2 \
             WHERE id = $1 AND status = 'sending' AND lease_until = $3",
        )
        .bind(row.id)
        .bind(error)
        .bind(db_time(until))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(case_id) = row.case_id {
            super::cases::add_event(
                &mut tx,
                case_id,
                at,
                EventKind::Mail(row.kind, MailStep::Failed),
                "klachtd",
                error,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Sent rows whose copy in the Sent folder is still missing: sent
    /// before `before`, and not claimed by a sweep at `now`
    /// ([`Store::claim_uncopied`]). The worker that sent a row copies it
    /// itself at the end of its round; only what it could not copy is left
    /// for the sweep.
    pub async fn uncopied_sent(
        &self,
        before: Timestamp,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<Uncopied>> {
        let rows = sqlx::query(
            "SELECT id, kind, message_id, raw, sent_at FROM outbox \
             WHERE status = 'sent' AND copied_to_sent = 0 AND sent_at < $1 \
             AND (lease_until IS NULL OR lease_until < $2) ORDER BY id LIMIT $3",
        )
        .bind(db_time(before))
        .bind(db_time(now))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Uncopied {
                    id: get_i64(r, "id")?,
                    kind: get_str(r, "kind")?.parse()?,
                    message_id: get_str(r, "message_id")?,
                    raw: r.try_get::<Vec<u8>, _>("raw")?,
                    sent_at: crate::clock::parse_db_time(&get_str(r, "sent_at")?).unwrap_or(before),
                })
            })
            .collect()
    }

    /// Is the outbox row done with (`sent` or `failed`) or gone (erased
    /// with its case)? Its in-flight marker, if one is left, says nothing
    /// any more.
    pub async fn outbox_row_settled(&self, id: i64) -> Result<bool> {
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(matches!(status.as_deref(), None | Some("sent" | "failed")))
    }

    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status ORDER BY status")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| Ok((get_str(r, "status")?, get_i64(r, "n")?)))
            .collect()
    }
}

impl Store {
    /// Keeps a row in `sending` (it may have gone out) but retries later.
    pub async fn mark_retry_sending(
        &self,
        id: i64,
        until: Timestamp,
        error: &str,
        next: Timestamp,
    ) -> Result<bool> {
        self.retry_later(id, until, error, next, "").await
    }
}

/// A row of the outbox as `klachtd outbox` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxListing {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub recipient: String,
    pub case_reference: Option<String>,
    pub created_at: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

impl Store {
    /// Mail not sent: waiting (pending, being sent) and failed, or only
    /// the failed with `failed_only`; oldest first.
    pub async fn outbox_listing(&self, failed_only: bool) -> Result<Vec<OutboxListing>> {
        let statuses = if failed_only {
            "('failed')"
        } else {
            "('pending', 'sending', 'committing', 'failed')"
        };
        let rows = sqlx::query(&format!(
            "SELECT o.id, o.kind, o.status, o.recipient, c.reference, o.created_at, o.attempts, \
             o.last_error FROM outbox o LEFT JOIN cases c ON c.id = o.case_id \
             WHERE o.status IN {statuses} ORDER BY o.id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxListing {
                    id: get_i64(r, "id")?,
                    kind: get_str(r, "kind")?,
                    status: get_str(r, "status")?,
                    recipient: get_str(r, "recipient")?,
                    case_reference: get_opt_str(r, "reference")?,
                    created_at: get_str(r, "created_at")?,
                    attempts: get_i64(r, "attempts")?,
                    last_error: get_opt_str(r, "last_error")?,
                })
            })
            .collect()
    }

    /// Queues failed mail again (`id`, or every failed row): pending, due
    /// now, attempts from zero; each on its case's timeline. Returns the
    /// ids queued again.
    pub async fn requeue_failed(&self, id: Option<i64>, at: Timestamp) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "SELECT id, kind, case_id FROM outbox WHERE status = 'failed' AND ($1 IS NULL OR id = $1) \
             ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = Vec::new();
        for r in &rows {
            let row_id = get_i64(r, "id")?;
            let kind: OutboxKind = get_str(r, "kind")?.parse()?;
            sqlx::query(
                "UPDATE outbox SET status = 'pending', attempts = 0, last_error = NULL, \
                 next_attempt_at = $2, lease_until = NULL WHERE id = $1 AND status = 'failed'",
            )
            .bind(row_id)
            .bind(db_time(at))
            .execute(&mut *tx)
            .await?;
            if let Some(case_id) = r.try_get::<Option<i64>, _>("case_id")? {
                super::cases::add_event(
                    &mut tx,
                    case_id,
                    at,
                    EventKind::Mail(kind, MailStep::Requeued),
                    "admin",
                    "queued again (klachtd outbox retry)",
                )
                .await?;
            }
            ids.push(row_id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// When the next unsent row becomes due (its retry time, or the end of
    /// the lease of an interrupted attempt), if any row is waiting.
    pub async fn next_outbox_due(&self) -> Result<Option<Timestamp>> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at THEN lease_until \
             ELSE next_attempt_at END) FROM outbox WHERE status IN ('pending', 'sending', 'committing')",
        )
        .fetch_one(self.pool())
        .await?;
        let at: Option<String> = row.try_get(0)?;
        Ok(at.and_then(|s| crate::clock::parse_db_time(&s)))
    }
}

impl Store {
    /// A "committing" row another machine's worker left: looked at again
    /// at `at`, which gives that machine the time to come back and settle
    /// it from its own marker.
    pub async fn defer_interrupted(&self, id: i64, at: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $2 WHERE id = $1 AND status = 'committing'",
        )
        .bind(id)
        .bind(db_time(at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A "committing" row whose final dot provably never went out: back to
    /// "sending", due now, so it is sent again.
    pub async fn reset_interrupted(&self, id: i64, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'sending', lease_until = NULL, next_attempt_at = $2 WHERE id = $1 AND status = 'committing'",
        )
        .bind(id)
        .bind(db_time(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// The address in a header of a message klachtd composed itself (ASCII
/// headers, one line each): `Name <addr>` or a bare address.
fn header_address(raw: &[u8], name: &str) -> Option<String> {
    for line in raw.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if n.eq_ignore_ascii_case(name) {
            let v = v.trim();
            let addr = match (v.rfind('<'), v.rfind('>')) {
                (Some(a), Some(b)) if a < b => &v[a + 1..b],
                _ => v,
            };
            return Some(addr.trim().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_address_reads_our_own_headers() {
        let raw = b"Message-ID: <a@b>\r\nFrom: \"31Solutions\" <info@31solutions.test>\r\nTo: x@client.test\r\n\r\nFrom: body@x.test\r\n";
        assert_eq!(
            super::header_address(raw, "from").as_deref(),
            Some("info@31solutions.test")
        );
        assert_eq!(
            super::header_address(raw, "to").as_deref(),
            Some("x@client.test")
        );
        assert_eq!(super::header_address(raw, "cc"), None);
        assert_eq!(super::header_address(b"", "from"), None);
    }
}
