//! Cases, their timeline, their messages and attachments.

use anyhow::{Context, Result};
use jiff::civil::Date;
use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::case_row::{case_from_row, CASE_COLUMNS};
use super::{get_i64, get_opt_str, get_str, Store, Tx};
use crate::clock::{db_time, parse_db_time};
use crate::domain::case::{Case, Source};
use crate::domain::event::{CaseEvent, EventKind, OutboxKind};
use crate::domain::types::{CaseRef, Category, Element, EmailAddress, Lang, Status};
use strum::IntoEnumIterator;

/// A case as the register holds it: the domain's [`Case`], which
/// `case_row` reads from its row.
pub type CaseRow = Case;

pub struct NewCase<'a> {
    pub status: Status,
    pub category: Category,
    pub language: Lang,
    pub source: Source,
    pub client_name: &'a str,
    pub client_email: Option<&'a str>,
    pub client_phone: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    pub nature: Option<&'a str>,
    pub dates: Option<&'a str>,
    pub desired_outcome: Option<&'a str>,
    pub missing: &'a [Element],
    pub concerns: &'a [String],
    pub handler_email: Option<&'a str>,
    pub received_at: Timestamp,
    pub ack_due: Date,
    pub response_due: Date,
    pub triage_reason: Option<&'a str>,
    pub created_at: Timestamp,
}

pub struct NewCaseMessage<'a> {
    pub case_id: i64,
    pub message_id: &'a str,
    pub sender: &'a str,
    pub subject: &'a str,
    pub at: Timestamp,
    pub body: &'a str,
    pub refs: &'a str,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub at: String,
    pub kind: EventKind,
    pub actor: String,
    pub detail: String,
    /// Structured details (a JSON object), when the event has them.
    pub data: Option<serde_json::Value>,
}

impl EventRow {
    /// The event as JSON: `at`, `kind`, `actor`, `detail`, plus the fields
    /// of its structured details.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "at": self.at, "kind": self.kind, "actor": self.actor, "detail": self.detail,
        });
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) = (&self.data, v.as_object_mut())
        {
            for (k, val) in extra {
                obj.entry(k.clone()).or_insert_with(|| val.clone());
            }
        }
        v
    }
}

#[derive(Debug, Default, Clone)]
pub struct CaseFilter {
    pub status: Option<Status>,
    pub handler: Option<String>,
    pub year: Option<i32>,
    /// Only cases that are not closed.
    pub open: bool,
}

/// Next reference of a year: KL-YYYY-NNNN, sequential within the year.
/// Atomic on both backends (an upsert that returns the new value).
pub async fn next_reference(tx: &mut Tx, year: i32) -> Result<CaseRef> {
    let row = sqlx::query(
        "INSERT INTO case_counters (year, last) VALUES ($1, 1) \
         ON CONFLICT (year) DO UPDATE SET last = case_counters.last + 1 RETURNING last",
    )
    .bind(year as i64)
    .fetch_one(&mut **tx)
    .await?;
    let seq = row.try_get::<i64, _>(0)?;
    Ok(CaseRef {
        year,
        seq: seq as u32,
    })
}

pub async fn insert_case(tx: &mut Tx, reference: CaseRef, c: &NewCase<'_>) -> Result<i64> {
    let missing: Vec<&str> = c.missing.iter().map(|e| e.as_str()).collect();
    let row = sqlx::query(
        "INSERT INTO cases (reference, year, seq, status, category, language, source, client_name, client_email, \
         client_phone, subject, body, nature, dates, desired_outcome, missing, concerns, handler_email, received_at, \
         ack_due, response_due, triage_reason, created_at, client_token, client_key) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25) RETURNING id",
    )
    .bind(reference.to_string())
    .bind(reference.year as i64)
    .bind(reference.seq as i64)
    .bind(c.status.as_str())
    .bind(c.category.as_str())
    .bind(c.language.as_str())
    .bind(c.source.as_str())
    .bind(c.client_name)
    .bind(c.client_email)
    .bind(c.client_phone)
    .bind(c.subject)
    .bind(c.body)
    .bind(c.nature)
    .bind(c.dates)
    .bind(c.desired_outcome)
    .bind(missing.join(","))
    .bind(c.concerns.join(","))
    .bind(c.handler_email)
    .bind(db_time(c.received_at))
    .bind(c.ack_due.to_string())
    .bind(c.response_due.to_string())
    .bind(c.triage_reason)
    .bind(db_time(c.created_at))
    .bind(client_token(tx, c.client_email).await?)
    .bind(c.client_email.map(mailbox_key))
    .fetch_one(&mut **tx)
    .await
    .context("cannot record case")?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// The token of this client's earlier cases, else a new random one.
async fn client_token(tx: &mut Tx, email: Option<&str>) -> Result<String> {
    if let Some(e) = email {
        let row = sqlx::query(
            "SELECT client_token FROM cases WHERE LOWER(client_email) = LOWER($1) AND client_token IS NOT NULL LIMIT 1",
        )
        .bind(e)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(r) = row {
            return get_str(&r, "client_token");
        }
    }
    new_token()
}

fn new_token() -> Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::getrandom(&mut bytes).context("no randomness for a client token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Gives cases recorded before tokens existed (migration 5) one token per
/// client address; a phone complaint without one is a client of its own.
/// Run once, in the transaction that applies migration 5.
pub(crate) async fn backfill_client_tokens(tx: &mut Tx) -> Result<()> {
    let rows = sqlx::query(
        "SELECT DISTINCT LOWER(client_email) AS e FROM cases WHERE client_token IS NULL AND client_email IS NOT NULL",
    )
    .fetch_all(&mut **tx)
    .await?;
    for r in rows {
        let email = get_str(&r, "e")?;
        let token = client_token(tx, Some(&email)).await?;
        sqlx::query("UPDATE cases SET client_token = $1 WHERE LOWER(client_email) = $2 AND client_token IS NULL")
            .bind(token)
            .bind(email)
            .execute(&mut **tx)
            .await?;
    }
    // Phone complaints without an address: one client each.
    let ids = sqlx::query("SELECT id FROM cases WHERE client_token IS NULL")
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| get_i64(r, "id"))
        .collect::<Result<Vec<i64>>>()?;
    for id in ids {
        sqlx::query("UPDATE cases SET client_token = $1 WHERE id = $2")
            .bind(new_token()?)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub async fn add_event(
    tx: &mut Tx,
    case_id: i64,
    at: Timestamp,
    kind: impl Into<EventKind>,
    actor: &str,
    detail: &str,
) -> Result<()> {
    let none = serde_json::Value::Null;
    add_event_data(tx, case_id, at, kind, actor, detail, &none).await
}

/// A timeline event with structured details (a JSON object), which
/// `case show --json` merges into the event.
pub async fn add_event_data(
    tx: &mut Tx,
    case_id: i64,
    at: Timestamp,
    kind: impl Into<EventKind>,
    actor: &str,
    detail: &str,
    data: &serde_json::Value,
) -> Result<()> {
    let data = (!data.is_null()).then(|| data.to_string());
    sqlx::query(
        "INSERT INTO events (case_id, at, kind, actor, detail, data) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(case_id)
    .bind(db_time(at))
    .bind(kind.into().to_string())
    .bind(actor)
    .bind(detail)
    .bind(data)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records that the acknowledgement went out; moves `received` on to
/// `acknowledged` (later states are left as they are).
pub async fn mark_acknowledged(tx: &mut Tx, case_id: i64, at: Timestamp) -> Result<()> {
    sqlx::query(
        "UPDATE cases SET ack_sent_at = COALESCE(ack_sent_at, $2), \
         status = CASE WHEN status = 'received' THEN 'acknowledged' ELSE status END WHERE id = $1",
    )
    .bind(case_id)
    .bind(db_time(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_case_message(tx: &mut Tx, m: &NewCaseMessage<'_>) -> Result<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO case_messages (case_id, message_id, sender, subject, at, body, refs) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (message_id) DO NOTHING RETURNING id",
    )
    .bind(m.case_id)
    .bind(m.message_id)
    .bind(m.sender)
    .bind(m.subject)
    .bind(db_time(m.at))
    .bind(m.body)
    .bind(m.refs)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(r) => Some(r.try_get::<i64, _>(0)?),
        None => None,
    })
}

pub async fn insert_attachment(
    tx: &mut Tx,
    case_message_id: i64,
    filename: &str,
    content_type: &str,
    size: u64,
    data: Option<&[u8]>,
) -> Result<()> {
    let row = sqlx::query(
        "INSERT INTO attachments (case_message_id, filename, content_type, size) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(case_message_id)
    .bind(filename)
    .bind(content_type)
    .bind(size as i64)
    .fetch_one(&mut **tx)
    .await?;
    let id = get_i64(&row, "id")?;
    // In parts: the driver and the database copy each value they are
    // given, so one large value would be held three times over. An empty
    // attachment is stored as one empty part.
    let parts: Vec<&[u8]> = match data {
        Some([]) => vec![&[]],
        Some(d) => d.chunks(ATTACHMENT_PART).collect(),
        None => Vec::new(),
    };
    for (seq, part) in parts.into_iter().enumerate() {
        sqlx::query("INSERT INTO attachment_parts (attachment_id, seq, data) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(seq as i64)
            .bind(part)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The largest part of an attachment's data stored in one row.
const ATTACHMENT_PART: usize = 256 * 1024;

/// SQL: 1 when the attachment `a` has its data in the register, else 0
/// (rows from before migration 7 hold it in `a.data`).
pub(crate) const ATTACHMENT_STORED: &str = "CASE WHEN a.data IS NOT NULL OR EXISTS \
     (SELECT 1 FROM attachment_parts p WHERE p.attachment_id = a.id) THEN 1 ELSE 0 END";

/// Open cases per handler address (lower-case), for fair assignment.
pub async fn open_case_counts(tx: &mut Tx) -> Result<std::collections::HashMap<String, u32>> {
    let rows = sqlx::query(
        "SELECT LOWER(handler_email) AS h, COUNT(*) AS n FROM cases \
         WHERE handler_email IS NOT NULL AND status NOT IN ('closed', 'resolved', 'external') GROUP BY LOWER(handler_email)",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut m = std::collections::HashMap::new();
    for r in rows {
        m.insert(get_str(&r, "h")?, get_i64(&r, "n")? as u32);
    }
    Ok(m)
}

/// Automatic replies (acknowledgements, the regulation) sent or queued to
/// the mailbox of `recipient` since `since`, whatever its sub-address.
pub async fn auto_replies_since(
    tx: &mut Tx,
    recipient: &EmailAddress,
    since: Timestamp,
) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM outbox WHERE recipient_key = $1 AND created_at >= $2 \
         AND kind IN ('ack', 'regulation')",
    )
    .bind(recipient.mailbox_key())
    .bind(db_time(since))
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Automatic replies (acknowledgements, the regulation) queued since
/// `since`, to anyone, and when the newest was queued.
pub async fn all_auto_replies_since(
    tx: &mut Tx,
    since: Timestamp,
) -> Result<(i64, Option<Timestamp>)> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MAX(created_at) AS newest FROM outbox WHERE created_at >= $1 \
         AND kind IN ('ack', 'regulation')",
    )
    .bind(db_time(since))
    .fetch_one(&mut **tx)
    .await?;
    Ok((
        get_i64(&row, "n")?,
        get_opt_str(&row, "newest")?.and_then(|s| parse_db_time(&s)),
    ))
}

/// Cases opened since `since` for a client with the mailbox of `client`.
pub async fn cases_from_mailbox_since(
    tx: &mut Tx,
    client: &EmailAddress,
    since: Timestamp,
) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) FROM cases WHERE client_key = $1 AND created_at >= $2")
        .bind(client.mailbox_key())
        .bind(db_time(since))
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// The mailbox behind an address as `recipient_key` and `client_key` hold
/// it ([`EmailAddress::mailbox_key`]); an address that does not parse is
/// its own, in lower case.
pub fn mailbox_key(address: &str) -> String {
    EmailAddress::parse(address)
        .map(|a| a.mailbox_key())
        .unwrap_or_else(|_| address.to_lowercase())
}

/// Fills `recipient_key` and `client_key` for rows written before
/// migration 8, once.
pub(crate) async fn backfill_mailbox_keys(tx: &mut Tx) -> Result<()> {
    for (table, id, address, key) in [
        ("outbox", "id", "recipient", "recipient_key"),
        ("cases", "id", "client_email", "client_key"),
    ] {
        let rows = sqlx::query(&format!(
            "SELECT {id}, {address} FROM {table} WHERE {key} IS NULL AND {address} IS NOT NULL AND {address} <> ''"
        ))
        .fetch_all(&mut **tx)
        .await?;
        for r in rows {
            let addr: String = r.try_get(1)?;
            sqlx::query(&format!("UPDATE {table} SET {key} = $1 WHERE {id} = $2"))
                .bind(mailbox_key(&addr))
                .bind(r.try_get::<i64, _>(0)?)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Mails of `kind` queued for `recipient` since `since`: about one case,
/// or (`None`) about any.
pub async fn sent_since(
    tx: &mut Tx,
    case_id: Option<i64>,
    recipient: &str,
    kind: OutboxKind,
    since: Timestamp,
) -> Result<i64> {
    let on_case = if case_id.is_some() {
        " AND case_id = $4"
    } else {
        ""
    };
    let sql = format!(
        "SELECT COUNT(*) FROM outbox WHERE LOWER(recipient) = LOWER($1) AND kind = $2 \
         AND created_at >= $3{on_case}"
    );
    let mut q = sqlx::query(&sql)
        .bind(recipient)
        .bind(kind.as_str())
        .bind(db_time(since));
    if let Some(id) = case_id {
        q = q.bind(id);
    }
    let row = q.fetch_one(&mut **tx).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

impl Store {
    pub async fn cases(&self, f: &CaseFilter) -> Result<Vec<CaseRow>> {
        let mut sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE 1 = 1");
        let mut n = 0;
        let mut arg = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if f.status.is_some() {
            arg(&mut sql, " AND status = ?");
        }
        if f.handler.is_some() {
            arg(&mut sql, " AND LOWER(handler_email) = LOWER(?)");
        }
        if f.year.is_some() {
            arg(&mut sql, " AND year = ?");
        }
        if f.open {
            sql.push_str(" AND status <> 'closed'");
        }
        sql.push_str(" ORDER BY year, seq");
        let mut q = sqlx::query(&sql);
        if let Some(s) = f.status {
            q = q.bind(s.as_str());
        }
        if let Some(h) = &f.handler {
            q = q.bind(h.clone());
        }
        if let Some(y) = f.year {
            q = q.bind(y as i64);
        }
        // Row by row: a register of thousands is never held twice, once as
        // database rows and once as cases.
        let mut rows = q.fetch(self.pool());
        let mut cases = Vec::new();
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows).await? {
            cases.push(case_from_row(&row)?);
        }
        Ok(cases)
    }

    pub async fn case_by_ref(&self, reference: &CaseRef) -> Result<Option<CaseRow>> {
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE reference = $1"
        ))
        .bind(reference.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(case_from_row).transpose()
    }

    pub async fn case_by_id(&self, id: i64) -> Result<Option<CaseRow>> {
        let row = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(case_from_row).transpose()
    }

    pub async fn timeline(&self, case_id: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT at, kind, actor, detail, data FROM events WHERE case_id = $1 ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Closes a case by hand (admin). Refuses an unknown or already closed case.
    pub async fn close_case(
        &self,
        reference: &CaseRef,
        actor: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        // Everything inside the transaction: SQLite has one connection.
        let row = sqlx::query(
            "UPDATE cases SET status = 'closed', closed_at = $2 WHERE reference = $1 AND status <> 'closed' RETURNING id",
        )
        .bind(reference.to_string())
        .bind(db_time(at))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let exists = sqlx::query("SELECT id FROM cases WHERE reference = $1")
                .bind(reference.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if exists {
                anyhow::bail!("case {reference} is already closed");
            }
            anyhow::bail!("no case {reference}");
        };
        let id: i64 = row.try_get(0)?;
        add_event(&mut tx, id, at, CaseEvent::Closed, actor, reason).await?;
        tx.commit().await?;
        Ok(())
    }
}

pub async fn case_in_tx(tx: &mut Tx, id: i64) -> Result<Option<CaseRow>> {
    let row = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(case_from_row).transpose()
}

/// Which case does a message belong to? First through In-Reply-To and
/// References against every Message-ID a case sent or received; then
/// through a `[KL-YYYY-NNNN]` subject tag, but only for that case's client
/// or staff. Never through subject text alone, and never onto an anonymised
/// case: a reply to its old mail is new mail, so the case gains no personal
/// data again (art. 9; export and erasure could no longer find it).
pub async fn thread_match(
    tx: &mut Tx,
    referenced: &[String],
    from: &crate::domain::types::EmailAddress,
    subject: &str,
    from_is_staff: bool,
) -> Result<Option<(i64, CaseRef)>> {
    for id in referenced.iter().rev().take(50) {
        let row = sqlx::query(
            "SELECT c.id, c.reference, c.anonymised_at FROM outbox o JOIN cases c ON c.id = o.case_id WHERE o.message_id = $1 \
             UNION ALL SELECT c.id, c.reference, c.anonymised_at FROM case_messages m JOIN cases c ON c.id = m.case_id WHERE m.message_id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(r) = row {
            // An anonymised case takes nothing in again: its mail is new mail.
            if get_opt_str(&r, "anonymised_at")?.is_some() {
                return Ok(None);
            }
            let reference: CaseRef = get_str(&r, "reference")?.parse()?;
            return Ok(Some((r.try_get::<i64, _>(0)?, reference)));
        }
    }
    let Some(tag) = CaseRef::find_tag(subject) else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT id, client_email FROM cases WHERE reference = $1 AND anonymised_at IS NULL",
    )
    .bind(tag.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let client: Option<String> = get_opt_str(&r, "client_email")?;
    let is_client = client.is_some_and(|c| c.eq_ignore_ascii_case(from.as_str()));
    if is_client || from_is_staff {
        return Ok(Some((r.try_get::<i64, _>(0)?, tag)));
    }
    Ok(None)
}

/// The timeline events the register's facts are made of
/// (`crate::register::record`).
fn register_events() -> String {
    CaseEvent::REGISTER
        .iter()
        .map(|e| format!("'{}'", e.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn event_from_row(r: &AnyRow) -> Result<EventRow> {
    Ok(EventRow {
        at: get_str(r, "at")?,
        kind: get_str(r, "kind")?.parse()?,
        actor: get_str(r, "actor")?,
        detail: get_str(r, "detail")?,
        data: get_opt_str(r, "data")?.and_then(|d| serde_json::from_str(&d).ok()),
    })
}

impl Store {
    /// The register events of every case, in timeline order per case.
    pub async fn register_events(&self) -> Result<Vec<(i64, EventRow)>> {
        let rows = sqlx::query(&format!(
            "SELECT case_id, at, kind, actor, detail, data FROM events WHERE kind IN ({}) ORDER BY case_id, id",
            register_events()
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((get_i64(r, "case_id")?, event_from_row(r)?)))
            .collect()
    }
}

/// The client's first message on a case (its Message-ID and References),
/// for threading mail to the client. None for phone complaints and for
/// complaints a colleague forwarded.
pub async fn first_message(tx: &mut Tx, case_id: i64) -> Result<Option<(String, Vec<String>)>> {
    let row = sqlx::query(
        "SELECT m.message_id, m.refs FROM case_messages m JOIN cases c ON c.id = m.case_id \
         WHERE m.case_id = $1 AND LOWER(m.sender) = LOWER(c.client_email) ORDER BY m.at, m.id LIMIT 1",
    )
    .bind(case_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        Ok((
            get_str(&r, "message_id")?,
            get_str(&r, "refs")?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        ))
    })
    .transpose()
}

/// An attachment of a case's messages, without its bytes.
pub struct AttachmentMeta {
    pub filename: String,
    pub size: u64,
    pub stored: bool,
}

pub async fn case_attachments(tx: &mut Tx, case_id: i64) -> Result<Vec<AttachmentMeta>> {
    let rows = sqlx::query(
        &format!(
            "SELECT a.filename, a.size, {ATTACHMENT_STORED} AS stored \
             FROM attachments a JOIN case_messages m ON m.id = a.case_message_id WHERE m.case_id = $1 ORDER BY a.id"
        ),
    )
    .bind(case_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AttachmentMeta {
                filename: get_str(r, "filename")?,
                size: get_i64(r, "size")?.max(0) as u64,
                stored: get_i64(r, "stored")? == 1,
            })
        })
        .collect()
}

/// The Message-IDs of the conversation with the client, oldest first: what
/// the client sent on the case and what klachtd sent to them. Mail to the
/// client carries these as References, so it lands in the client's thread.
pub async fn client_thread(tx: &mut Tx, case_id: i64, client: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT message_id, at FROM case_messages WHERE case_id = $1 AND LOWER(sender) = LOWER($2) \
         UNION ALL SELECT message_id, created_at AS at FROM outbox WHERE case_id = $1 AND LOWER(recipient) = LOWER($2) \
         ORDER BY at",
    )
    .bind(case_id)
    .bind(client)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(|r| get_str(r, "message_id")).collect()
}

/// A message klachtd sent, found among the IDs a mail refers to.
pub struct SentRef {
    pub case_id: Option<i64>,
    pub kind: OutboxKind,
}

/// Is one of `referenced` a message klachtd itself sent to `recipient`?
/// klachtd's Message-IDs are random, so only someone who received that mail
/// (or saw it) can refer to it: this authenticates staff answers.
pub async fn sent_to(
    tx: &mut Tx,
    referenced: &[String],
    recipient: &str,
) -> Result<Option<SentRef>> {
    for id in referenced.iter().rev().take(50) {
        let row = sqlx::query(
            "SELECT case_id, kind FROM outbox WHERE message_id = $1 AND LOWER(recipient) = LOWER($2) \
             AND burned_at IS NULL",
        )
        .bind(id.as_str())
        .bind(recipient)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(r) = row {
            return Ok(Some(SentRef {
                case_id: r.try_get::<Option<i64>, _>("case_id")?,
                kind: get_str(&r, "kind")?.parse()?,
            }));
        }
    }
    Ok(None)
}

/// Burns the tokens among `referenced`: mail klachtd sent to staff whose
/// Message-ID a mail to or from someone outside the staff carries no longer
/// authenticates a command. Returns how many were burned now.
pub async fn burn_tokens(tx: &mut Tx, referenced: &[String], at: Timestamp) -> Result<u64> {
    burn_tokens_of(tx, std::slice::from_ref(&referenced), at).await
}

/// [`burn_tokens`] for the references of many mails at once (the last 50
/// of each, as for one), in one statement per 500 Message-IDs.
pub async fn burn_tokens_of(tx: &mut Tx, mails: &[&[String]], at: Timestamp) -> Result<u64> {
    let client_kinds: Vec<String> = OutboxKind::iter()
        .filter(|k| k.to_client())
        .map(|k| format!("'{}'", k.as_str()))
        .collect();
    let mut ids: Vec<&str> = mails
        .iter()
        .flat_map(|refs| refs.iter().rev().take(50).map(String::as_str))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut burned = 0;
    for chunk in ids.chunks(500) {
        let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "UPDATE outbox SET burned_at = $1 WHERE message_id IN ({}) AND burned_at IS NULL \
             AND kind NOT IN ({})",
            placeholders.join(", "),
            client_kinds.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(db_time(at));
        for id in chunk {
            q = q.bind(*id);
        }
        burned += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(burned)
}

/// Is one of `referenced` a mail of `kind` klachtd sent (to anyone)?
pub async fn refers_to_kind(tx: &mut Tx, referenced: &[String], kind: OutboxKind) -> Result<bool> {
    for id in referenced.iter().rev().take(50) {
        let row = sqlx::query("SELECT 1 FROM outbox WHERE message_id = $1 AND kind = $2")
            .bind(id.as_str())
            .bind(kind.as_str())
            .fetch_optional(&mut **tx)
            .await
            .context("look up a sent mail")?;
        if row.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The id of the case with this reference, in a transaction.
pub async fn case_id_by_ref(tx: &mut Tx, reference: &CaseRef) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT id FROM cases WHERE reference = $1")
        .bind(reference.to_string())
        .fetch_optional(&mut **tx)
        .await
        .with_context(|| format!("look up case {reference}"))?;
    Ok(match row {
        Some(r) => Some(r.try_get::<i64, _>(0)?),
        None => None,
    })
}

/// What a command may change on a case row.
#[derive(Debug, Default)]
pub struct CaseUpdate<'a> {
    pub status: Option<Status>,
    pub handler_email: Option<&'a str>,
    pub response_due: Option<Date>,
    /// Some(Some(t)): closed at t; Some(None): open again.
    pub closed_at: Option<Option<Timestamp>>,
    /// Clears the triage reason (a triage item became a case).
    pub clear_triage: bool,
}

/// The persons a complaint concerns, as they are now (art. 6 and 9).
pub async fn set_concerns(tx: &mut Tx, case_id: i64, concerns: &[EmailAddress]) -> Result<()> {
    let list: Vec<&str> = concerns.iter().map(EmailAddress::as_str).collect();
    sqlx::query("UPDATE cases SET concerns = $2 WHERE id = $1")
        .bind(case_id)
        .bind(list.join(","))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn update_case(tx: &mut Tx, case_id: i64, u: &CaseUpdate<'_>) -> Result<()> {
    sqlx::query(
        "UPDATE cases SET status = COALESCE($2, status), handler_email = COALESCE($3, handler_email), \
         response_due = COALESCE($4, response_due), \
         closed_at = CASE WHEN $5 = 1 THEN $6 ELSE closed_at END, \
         triage_reason = CASE WHEN $7 = 1 THEN NULL ELSE triage_reason END WHERE id = $1",
    )
    .bind(case_id)
    .bind(u.status.map(|s| s.as_str()))
    .bind(u.handler_email)
    .bind(u.response_due.map(|d| d.to_string()))
    .bind(i64::from(u.closed_at.is_some()))
    .bind(u.closed_at.flatten().map(db_time))
    .bind(i64::from(u.clear_triage))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
