//! Personal data in the register: what is stored about one client, its
//! removal, and the audit trail of both (art. 9, AVG).

use anyhow::Result;
use jiff::Timestamp;
use serde::Serialize;
use sqlx::Row;

use super::{get_i64, get_opt_str, get_str, Store, Tx};
use crate::clock::db_time;

/// One entry of the audit trail. Never personal data: references and counts.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
    /// Space-separated case references.
    pub cases: String,
}

/// A message of a case as stored, for an access request.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    pub message_id: String,
    pub from: String,
    pub subject: String,
    pub at: String,
    pub body: String,
    pub attachments: Vec<StoredAttachment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredAttachment {
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub content_stored: bool,
}

/// A mail klachtd sent (or is to send), without its content.
#[derive(Debug, Clone, Serialize)]
pub struct SentMail {
    pub message_id: String,
    pub case_id: Option<i64>,
    pub kind: String,
    /// To the client (else to staff, about the client's case).
    pub to_client: bool,
    pub status: String,
    pub created_at: String,
    pub sent_at: Option<String>,
}

pub async fn audit(
    tx: &mut Tx,
    at: Timestamp,
    actor: &str,
    action: &str,
    detail: &str,
    cases: &[String],
) -> Result<()> {
    sqlx::query("INSERT INTO audit (at, actor, action, detail, cases) VALUES ($1, $2, $3, $4, $5)")
        .bind(db_time(at))
        .bind(actor)
        .bind(action)
        .bind(detail)
        .bind(cases.join(" "))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Is mail of this case being handed to SMTP right now? Its content must
/// not change under the sender's feet.
pub async fn mail_in_flight(tx: &mut Tx, case_id: i64) -> Result<bool> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM outbox WHERE case_id = $1 AND status IN ('sending', 'committing')",
    )
    .bind(case_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

/// A mail of the outbox that belongs to no case (the answer to a request
/// for the regulation, the supervisors' notice of a paper request, digests,
/// analyses, alarms).
pub struct LooseMail {
    pub id: i64,
    pub message_id: String,
    pub recipient: String,
    pub status: String,
    pub raw: Vec<u8>,
}

fn loose_row(r: &sqlx::any::AnyRow) -> Result<LooseMail> {
    Ok(LooseMail {
        id: get_i64(r, "id")?,
        message_id: get_str(r, "message_id")?,
        recipient: get_str(r, "recipient")?,
        status: get_str(r, "status")?,
        raw: r.try_get("raw")?,
    })
}

/// Empties one mail outside a case: its content goes, the recipient too
/// when that was `client_email`, and unsent mail is cancelled. Never touches
/// mail being sent: then it returns false.
pub async fn empty_loose_mail(tx: &mut Tx, id: i64, client_email: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE outbox SET raw = $2, last_error = NULL, copied_to_sent = 1, \
         status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END, \
         recipient_key = CASE WHEN LOWER(recipient) = LOWER($3) THEN NULL ELSE recipient_key END, \
         recipient = CASE WHEN LOWER(recipient) = LOWER($3) THEN '' ELSE recipient END \
         WHERE id = $1 AND status NOT IN ('sending', 'committing')",
    )
    .bind(id)
    .bind(Vec::<u8>::new())
    .bind(client_email)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Empties the sent (or given up) mail outside any case that was queued
/// before `cutoff`. Returns how many.
pub async fn empty_loose_mail_before(tx: &mut Tx, cutoff: Timestamp) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE outbox SET raw = $1, last_error = NULL, copied_to_sent = 1 \
         WHERE case_id IS NULL AND status IN ('sent', 'failed', 'cancelled') \
         AND created_at < $2 AND LENGTH(raw) > 0",
    )
    .bind(Vec::<u8>::new())
    .bind(db_time(cutoff))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Removes the personal data of one case: the client's name, address and
/// phone, the complaint's subject and texts, every message's sender,
/// subject and body, attachments, the content of the mail sent on it (and
/// its address where that was the client). Unsent mail to the case is
/// cancelled. Category, dates, handler, persons concerned, the timeline's
/// steps and the outcome stay: the register and its analysis still count
/// the case. `keep_token` keeps the random token that links a client's
/// cases, so repeat complaints stay countable (retention); an erasure
/// request cuts that link too.
///
/// Returns false, changing nothing, when the case was already anonymised
/// (by a second daemon a moment ago, say).
pub async fn anonymise_case(
    tx: &mut Tx,
    case_id: i64,
    keep_token: bool,
    at: Timestamp,
) -> Result<bool> {
    let row =
        sqlx::query("SELECT client_name, client_email, client_phone FROM cases WHERE id = $1")
            .bind(case_id)
            .fetch_one(&mut **tx)
            .await?;
    let name = get_str(&row, "client_name")?;
    let email = get_opt_str(&row, "client_email")?;
    let phone = get_opt_str(&row, "client_phone")?;
    let token = if keep_token { "client_token" } else { "NULL" };
    let done = sqlx::query(&format!(
        "UPDATE cases SET client_name = '', client_email = NULL, client_key = NULL, client_phone = NULL, subject = '', body = '', \
         nature = NULL, dates = NULL, desired_outcome = NULL, client_token = {token}, anonymised_at = $2 \
         WHERE id = $1 AND anonymised_at IS NULL"
    ))
    .bind(case_id)
    .bind(db_time(at))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "DELETE FROM attachment_parts WHERE attachment_id IN (SELECT a.id FROM attachments a \
         JOIN case_messages m ON m.id = a.case_message_id WHERE m.case_id = $1)",
    )
    .bind(case_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM attachments WHERE case_message_id IN (SELECT id FROM case_messages WHERE case_id = $1)",
    )
    .bind(case_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE case_messages SET sender = '', subject = '', body = '', refs = '' WHERE case_id = $1")
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE outbox SET status = 'cancelled' WHERE case_id = $1 AND status = 'pending'")
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    // copied_to_sent = 1: an emptied mail is never copied to Sent.
    sqlx::query(
        "UPDATE outbox SET raw = $2, last_error = NULL, copied_to_sent = 1, \
         recipient_key = CASE WHEN LOWER(recipient) = LOWER($3) THEN NULL ELSE recipient_key END, \
         recipient = CASE WHEN LOWER(recipient) = LOWER($3) THEN '' ELSE recipient END \
         WHERE case_id = $1 AND status IN ('sent', 'failed', 'cancelled')",
    )
    .bind(case_id)
    .bind(Vec::<u8>::new())
    .bind(email.clone().unwrap_or_default())
    .execute(&mut **tx)
    .await?;
    // Digests list cases by subject; the ones sent since this case came in
    // are emptied too (the Sent folder keeps its copy, outside the register).
    sqlx::query(
        "UPDATE outbox SET raw = $1, copied_to_sent = 1 WHERE case_id IS NULL AND kind = 'digest' \
         AND status IN ('sent', 'failed') AND created_at >= (SELECT created_at FROM cases WHERE id = $2)",
    )
    .bind(Vec::<u8>::new())
    .bind(case_id)
    .execute(&mut **tx)
    .await?;
    // The timeline keeps its steps; a name or address in their details goes.
    scrub_timeline(tx, case_id, [Some(name), email, phone]).await?;
    Ok(true)
}

/// Removes `values` (a client's name, address, phone) from the details of
/// a case's timeline events; the steps themselves stay.
async fn scrub_timeline(tx: &mut Tx, case_id: i64, values: [Option<String>; 3]) -> Result<()> {
    let needles: Vec<String> = values
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| s.chars().count() >= 3)
        .collect();
    if !needles.is_empty() {
        let rows = sqlx::query("SELECT id, detail, data FROM events WHERE case_id = $1")
            .bind(case_id)
            .fetch_all(&mut **tx)
            .await?;
        for r in rows {
            let detail = get_str(&r, "detail")?;
            let data = get_opt_str(&r, "data")?;
            let new_detail = scrub(&detail, &needles);
            let new_data = data.as_deref().map(|d| scrub(d, &needles));
            if new_detail != detail || new_data != data {
                sqlx::query("UPDATE events SET detail = $2, data = $3 WHERE id = $1")
                    .bind(get_i64(&r, "id")?)
                    .bind(new_detail)
                    .bind(new_data)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    Ok(())
}

/// `text` with every occurrence of each needle (ignoring case) replaced.
pub fn scrub(text: &str, needles: &[String]) -> String {
    let mut out = text.to_string();
    for n in needles {
        let lower_n = n.to_lowercase();
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        loop {
            // Lower-casing can change byte lengths outside ASCII: search
            // char by char in the original instead of in a lowered copy.
            let found = rest.char_indices().find(|(i, _)| {
                rest[*i..]
                    .get(..n.len())
                    .is_some_and(|w| w.to_lowercase() == lower_n)
            });
            match found {
                Some((i, _)) => {
                    result.push_str(&rest[..i]);
                    result.push_str("[geanonimiseerd]");
                    rest = &rest[i + n.len()..];
                }
                None => {
                    result.push_str(rest);
                    break;
                }
            }
        }
        out = result;
    }
    out
}

impl Store {
    /// Every mail outside a case that still has content.
    pub async fn loose_mail(&self) -> Result<Vec<LooseMail>> {
        sqlx::query(
            "SELECT id, message_id, recipient, status, raw FROM outbox WHERE case_id IS NULL \
             AND LENGTH(raw) > 0 ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(loose_row)
        .collect()
    }

    /// The sent (or given up) mail outside any case, with content, queued
    /// before `cutoff`: what retention empties.
    pub async fn loose_mail_before(&self, cutoff: Timestamp) -> Result<Vec<LooseMail>> {
        sqlx::query(
            "SELECT id, message_id, recipient, status, raw FROM outbox WHERE case_id IS NULL \
             AND status IN ('sent', 'failed', 'cancelled') AND created_at < $1 AND LENGTH(raw) > 0 ORDER BY id",
        )
        .bind(db_time(cutoff))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(loose_row)
        .collect()
    }

    /// Every Message-ID the organisation's mailbox may hold of these cases:
    /// the mail that came in on them and the copies of what klachtd sent.
    pub async fn mailbox_message_ids(&self, case_ids: &[i64]) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for id in case_ids {
            let rows = sqlx::query(
                "SELECT message_id FROM case_messages WHERE case_id = $1 \
                 UNION SELECT message_id FROM inbound WHERE case_id = $1 \
                 UNION SELECT message_id FROM outbox WHERE case_id = $1",
            )
            .bind(id)
            .fetch_all(self.pool())
            .await?;
            for r in rows {
                ids.push(r.try_get::<String, _>(0)?);
            }
        }
        Ok(ids)
    }

    /// Cases of a client, by address (any case).
    pub async fn case_ids_of_client(&self, email: &str) -> Result<Vec<i64>> {
        sqlx::query("SELECT id FROM cases WHERE LOWER(client_email) = LOWER($1) ORDER BY year, seq")
            .bind(email)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| get_i64(r, "id"))
            .collect()
    }

    /// Closed, not yet anonymised cases closed before `cutoff`.
    pub async fn closed_before(&self, cutoff: Timestamp) -> Result<Vec<(i64, String)>> {
        sqlx::query(
            "SELECT id, reference FROM cases WHERE status = 'closed' AND anonymised_at IS NULL \
             AND closed_at IS NOT NULL AND closed_at < $1 ORDER BY id",
        )
        .bind(db_time(cutoff))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok((get_i64(r, "id")?, get_str(r, "reference")?)))
        .collect()
    }

    /// Every message of a case, with its attachments' metadata.
    pub async fn stored_messages(&self, case_id: i64) -> Result<Vec<StoredMessage>> {
        let rows = sqlx::query(
            "SELECT id, message_id, sender, subject, at, body FROM case_messages WHERE case_id = $1 ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let attachments = sqlx::query(&format!(
                "SELECT a.filename, a.content_type, a.size, {} AS stored \
                     FROM attachments a WHERE a.case_message_id = $1 ORDER BY a.id",
                super::cases::ATTACHMENT_STORED
            ))
            .bind(get_i64(&r, "id")?)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|a| {
                Ok(StoredAttachment {
                    filename: get_str(a, "filename")?,
                    content_type: get_str(a, "content_type")?,
                    size: get_i64(a, "size")?,
                    content_stored: get_i64(a, "stored")? == 1,
                })
            })
            .collect::<Result<_>>()?;
            out.push(StoredMessage {
                message_id: get_str(&r, "message_id")?,
                from: get_str(&r, "sender")?,
                subject: get_str(&r, "subject")?,
                at: get_str(&r, "at")?,
                body: get_str(&r, "body")?,
                attachments,
            });
        }
        Ok(out)
    }

    /// Mail to an address, and staff mail on any of `case_ids`, without content.
    pub async fn mail_to(&self, email: &str, case_ids: &[i64]) -> Result<Vec<SentMail>> {
        let rows = sqlx::query(
            "SELECT message_id, case_id, kind, status, created_at, sent_at, recipient FROM outbox ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let case_id: Option<i64> = r.try_get("case_id")?;
            let to_client = get_str(&r, "recipient")?.eq_ignore_ascii_case(email);
            let on_case = case_id.is_some_and(|id| case_ids.contains(&id));
            if to_client || on_case {
                out.push(SentMail {
                    to_client,
                    message_id: get_str(&r, "message_id")?,
                    case_id,
                    kind: get_str(&r, "kind")?,
                    status: get_str(&r, "status")?,
                    created_at: get_str(&r, "created_at")?,
                    sent_at: get_opt_str(&r, "sent_at")?,
                });
            }
        }
        Ok(out)
    }

    pub async fn audit_trail(&self) -> Result<Vec<AuditRow>> {
        sqlx::query("SELECT at, actor, action, detail, cases FROM audit ORDER BY id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(AuditRow {
                    at: get_str(r, "at")?,
                    actor: get_str(r, "actor")?,
                    action: get_str(r, "action")?,
                    detail: get_str(r, "detail")?,
                    cases: get_str(r, "cases")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn scrubbing_replaces_every_spelling_and_keeps_the_rest() {
        let needles = vec!["Jan Jänsen".to_string(), "jan@client.test".to_string()];
        assert_eq!(
            scrub(
                "van JAN JÄNSEN <Jan@Client.test>, over jan@client.test.",
                &needles
            ),
            "van [geanonimiseerd] <[geanonimiseerd]>, over [geanonimiseerd]."
        );
        assert_eq!(scrub("niets hier", &needles), "niets hier");
        assert_eq!(scrub("ééé", &["é".repeat(3)]), "[geanonimiseerd]");
    }
}
