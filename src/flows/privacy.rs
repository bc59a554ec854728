//! Article 9 and the AVG: a client's access request (`client export`),
//! erasure (`client erase`), and the retention period after which the
//! scheduler removes personal data of closed cases by itself. Each action
//! leaves an entry in the audit trail (references and counts, never the
//! person) and an `anonymised` step in each case's timeline.

use anyhow::{bail, Context, Result};
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::config::Settings;
use crate::domain::event::CaseEvent;
use crate::domain::types::EmailAddress;
use crate::mail::imap::Imap;
use crate::register;
use crate::store::{self, CaseRow, EventRow, Store};

/// Everything stored about the client with this address, as JSON.
pub async fn export(
    store: &Store,
    s: &Settings,
    email: &EmailAddress,
    actor: &str,
    now: Timestamp,
) -> Result<Value> {
    let today = crate::config::local_date(now, &s.organisation.timezone);
    let ids = store.case_ids_of_client(email.as_str()).await?;
    let mut cases = Vec::new();
    let mut refs = Vec::new();
    for id in &ids {
        let c = store.case_by_id(*id).await?.context("case")?;
        let timeline = store.timeline(c.id).await?;
        let evs: Vec<&EventRow> = timeline.iter().collect();
        let r = register::record(&c, &evs, today, &s.organisation.timezone, &s.calendar);
        let mut v = register::case_json(&c, &r);
        v["body"] = json!(c.body);
        v["timeline"] = timeline.iter().map(EventRow::to_json).collect();
        v["messages"] = serde_json::to_value(store.stored_messages(c.id).await?)?;
        refs.push(c.reference.to_string());
        cases.push(v);
    }
    let mail = store.mail_to(email.as_str(), &ids).await?;
    let mut tx = store.begin().await?;
    store::audit(
        &mut tx,
        now,
        actor,
        "client_export",
        &format!(
            "access request answered: {} case(s), {} mail(s)",
            refs.len(),
            mail.len()
        ),
        &refs,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(cases = refs.len(), "client data exported (access request)");
    Ok(json!({
        "subject": email.as_str(),
        "exported_at": crate::clock::db_time(now),
        "controller": {"name": s.organisation.name, "address": s.organisation.address.as_str()},
        "cases": cases,
        "mail": mail,
        "not_included": "The original messages in the organisation's mailbox and the copies of \
                         sent mail in its Sent folder are kept there, outside the register.",
    }))
}

/// What an erasure removed.
#[derive(Debug, Default)]
pub struct Erased {
    /// References of the cases anonymised.
    pub cases: Vec<String>,
    /// Mails outside any case (the answer to a request for the regulation,
    /// the supervisors' notice of a paper request) emptied.
    pub other_mail: usize,
    /// Messages deleted from the organisation's mailbox.
    pub mailbox_deleted: usize,
}

/// The Message-IDs a mail outside any case stands for in the mailbox: its
/// own copy in Sent and the mail it answered (a request for the regulation).
fn mailbox_ids_of(m: &store::LooseMail) -> Vec<String> {
    let mut ids = vec![m.message_id.clone()];
    ids.extend(crate::mail::parse::parse(&m.raw, 0).in_reply_to);
    ids
}

/// Deletes the messages with these Message-IDs from the organisation's
/// mailbox: the watched folder, the complaint folder and Sent. Only those:
/// other mail stays exactly as it was. Returns how many were deleted.
pub async fn purge_mailbox(s: &Settings, ids: &[String]) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut purge = MailboxPurge::open(s).await?;
    let result = purge.delete(ids).await;
    purge.close().await;
    result
}

/// One IMAP session that deletes given messages from the folders where
/// case mail can be.
pub struct MailboxPurge {
    imap: Imap,
    folders: Vec<String>,
}

impl MailboxPurge {
    pub async fn open(s: &Settings) -> Result<MailboxPurge> {
        let mut imap = Imap::connect(&s.imap)
            .await
            .context("cannot reach the mailbox")?;
        let folders = async {
            let mut folders = vec![s.imap.folder.clone()];
            if let Some(f) = &s.intake.complaint_folder {
                // Intake creates it at the first complaint; it may not be there.
                imap.ensure_folder(f).await?;
                folders.push(f.clone());
            }
            folders.push(match &s.imap.sent_folder {
                Some(f) => f.clone(),
                None => imap.find_sent_folder().await?,
            });
            folders.dedup();
            Ok::<_, anyhow::Error>(folders)
        }
        .await;
        match folders {
            Ok(folders) => Ok(MailboxPurge { imap, folders }),
            Err(e) => {
                imap.logout().await;
                Err(e)
            }
        }
    }

    pub async fn delete(&mut self, ids: &[String]) -> Result<usize> {
        let mut deleted = 0;
        if ids.is_empty() {
            return Ok(0);
        }
        for f in &self.folders {
            deleted += self
                .imap
                .delete_message_ids(f, ids)
                .await
                .with_context(|| format!("cleaning folder {f:?}"))?;
        }
        Ok(deleted)
    }

    pub async fn close(self) {
        self.imap.logout().await;
    }
}

/// Whether a mail outside any case went to `email` or names it, in its
/// headers or (decoded) text.
fn mentions(m: &store::LooseMail, email: &str) -> bool {
    let needle = email.to_lowercase();
    if m.recipient.eq_ignore_ascii_case(email)
        || String::from_utf8_lossy(&m.raw)
            .to_lowercase()
            .contains(&needle)
    {
        return true;
    }
    let parsed = crate::mail::parse::parse(&m.raw, 0);
    parsed.text.to_lowercase().contains(&needle) || parsed.subject.to_lowercase().contains(&needle)
}

/// Anonymises every case of this client now, and empties the mail outside
/// cases to or about them. Open cases are refused unless `include_open`,
/// which closes them first (nobody can be answered any more). With
/// `mailbox` (the settings of the organisation's mailbox), the mails of
/// those cases go from the mailbox first; when it cannot be cleaned,
/// nothing is erased and the command can simply be run again.
pub async fn erase(
    store: &Store,
    mailbox: Option<&Settings>,
    email: &EmailAddress,
    include_open: bool,
    actor: &str,
    now: Timestamp,
) -> Result<Erased> {
    let ids = store.case_ids_of_client(email.as_str()).await?;
    let mut cases: Vec<CaseRow> = Vec::new();
    for id in &ids {
        cases.push(store.case_by_id(*id).await?.context("case")?);
    }
    let open: Vec<String> = cases
        .iter()
        .filter(|c| c.status != crate::domain::types::Status::Closed)
        .map(|c| c.reference.to_string())
        .collect();
    if !open.is_empty() && !include_open {
        bail!(
            "open case(s) {}: close them first, or pass --include-open to close and erase them; nothing erased",
            open.join(" ")
        );
    }
    let loose: Vec<store::LooseMail> = store
        .loose_mail()
        .await?
        .into_iter()
        .filter(|m| mentions(m, email.as_str()))
        .collect();
    let mut mailbox_deleted = 0;
    if let Some(s) = mailbox {
        let msg_ids = mailbox_ids(store, &ids, &loose).await?;
        mailbox_deleted = purge_mailbox(s, &msg_ids).await.context(
            "the mailbox could not be cleaned (or pass --keep-mailbox to erase the register only); nothing erased",
        )?;
    }
    let mut tx = store.begin().await?;
    let refs = erase_cases(&mut tx, &cases, actor, now).await?;
    for m in &loose {
        if !store::empty_loose_mail(&mut tx, m.id, email.as_str()).await? {
            bail!("a mail to or about this address is being sent right now; try again in a minute; nothing erased");
        }
    }
    let other_mail = loose.len();
    let detail = format!(
        "erasure request: {} case(s) anonymised, {other_mail} other mail(s) emptied, \
         {mailbox_deleted} message(s) deleted from the mailbox",
        refs.len()
    );
    finish(store, tx, now, actor, "client_erase", &detail, &refs).await?;
    tracing::info!(
        cases = refs.len(),
        other_mail,
        mailbox_deleted,
        "client data erased (erasure request)"
    );
    Ok(Erased {
        cases: refs,
        other_mail,
        mailbox_deleted,
    })
}

/// Closes (when open) and anonymises each case of an erasure request.
/// Returns the references anonymised now; refuses while mail of one of
/// them is being sent.
async fn erase_cases(
    tx: &mut store::Tx,
    cases: &[CaseRow],
    actor: &str,
    now: Timestamp,
) -> Result<Vec<String>> {
    let mut refs = Vec::new();
    for c in cases {
        if store::mail_in_flight(tx, c.id).await? {
            bail!(
                "mail of {} is being sent right now; try again in a minute; nothing erased",
                c.reference
            );
        }
        if c.status != crate::domain::types::Status::Closed {
            let reason = "gesloten: persoonsgegevens gewist op verzoek (AVG)";
            sqlx::query("UPDATE cases SET status = 'closed', closed_at = $2 WHERE id = $1")
                .bind(c.id)
                .bind(crate::clock::db_time(now))
                .execute(&mut **tx)
                .await?;
            store::add_event(tx, c.id, now, CaseEvent::Closed, actor, reason).await?;
        }
        if !store::anonymise_case(tx, c.id, false, now).await? {
            continue;
        }
        store::add_event(
            tx,
            c.id,
            now,
            CaseEvent::Anonymised,
            actor,
            "persoonsgegevens gewist op verzoek van de cliënt (AVG)",
        )
        .await?;
        refs.push(c.reference.to_string());
    }
    Ok(refs)
}

/// The first moment that is not yet `months` months ago.
pub fn retention_cutoff(now: Timestamp, tz: &jiff::tz::TimeZone, months: u32) -> Option<Timestamp> {
    now.to_zoned(tz.clone())
        .checked_sub(jiff::Span::new().months(i64::from(months)))
        .ok()
        .map(|z| z.timestamp())
}

/// Anonymises closed cases closed longer than `[privacy] retention_months`
/// ago. Called by the scheduler on every pass; each case once, on its own:
/// its mail leaves the mailbox, then its data the register, in its own
/// transaction. A case that fails (a hostile Message-ID, a busy row) is
/// logged and tried again at the next pass; the others go on. A case with
/// mail in flight waits for the next pass. Returns the references.
pub async fn retention(store: &Store, s: &Settings, now: Timestamp) -> Result<Vec<String>> {
    if s.retention_months == 0 {
        return Ok(Vec::new());
    }
    let Some(cutoff) = retention_cutoff(now, &s.organisation.timezone, s.retention_months) else {
        return Ok(Vec::new());
    };
    let due = store.closed_before(cutoff).await?;
    let loose = store.loose_mail_before(cutoff).await?;
    // The mailbox first: while it cannot be reached, retention waits.
    let mut purge = None;
    if s.purge_mailbox && !(due.is_empty() && loose.is_empty()) {
        match MailboxPurge::open(s).await {
            Ok(p) => purge = Some(p),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "retention waits: the mailbox could not be reached; trying again at the next pass");
                return Ok(Vec::new());
            }
        }
    }
    let mut refs = Vec::new();
    let mut mailbox_deleted = 0;
    for (id, reference) in due {
        match retain_case(store, s, purge.as_mut(), id, now).await {
            Ok(Some(n)) => {
                mailbox_deleted += n;
                refs.push(reference);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(reference = %reference, error = %format!("{e:#}"), "retention of this case failed; the others go on, it is tried again at the next pass")
            }
        }
    }
    // Mail outside cases (answers to requests for the regulation, notices
    // of paper requests, digests) is personal data too.
    let loose_ids: Vec<String> = loose.iter().flat_map(mailbox_ids_of).collect();
    let loose_done = match purge.as_mut() {
        Some(p) => p.delete(&loose_ids).await.map(|n| mailbox_deleted += n),
        None => Ok(()),
    };
    if let Some(p) = purge {
        p.close().await;
    }
    let mut tx = store.begin().await?;
    let other_mail = match loose_done {
        Ok(()) => store::empty_loose_mail_before(&mut tx, cutoff).await?,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "mail outside cases stays until its copies leave the mailbox; trying again at the next pass");
            0
        }
    };
    if refs.is_empty() && other_mail == 0 {
        tx.rollback().await?;
        return Ok(refs);
    }
    let cutoff_day = crate::config::local_date(cutoff, &s.organisation.timezone);
    let detail = format!(
        "closed before {cutoff_day} (retention_months = {}): {} case(s) anonymised, \
         {other_mail} other mail(s) emptied, {mailbox_deleted} message(s) deleted from the mailbox",
        s.retention_months,
        refs.len()
    );
    finish(store, tx, now, "klachtd", "retention", &detail, &refs).await?;
    tracing::info!(
        cases = refs.len(),
        mailbox_deleted,
        "retention: personal data of closed cases removed"
    );
    Ok(refs)
}

/// One case at the end of its retention: its mail out of the mailbox,
/// then its personal data out of the register. None when it waits (mail
/// in flight) or another pass was first; else how many messages left the
/// mailbox.
async fn retain_case(
    store: &Store,
    s: &Settings,
    purge: Option<&mut MailboxPurge>,
    id: i64,
    now: Timestamp,
) -> Result<Option<usize>> {
    let mut tx = store.begin().await?;
    let in_flight = store::mail_in_flight(&mut tx, id).await?;
    tx.rollback().await?;
    if in_flight {
        return Ok(None);
    }
    let deleted = match purge {
        Some(p) => p.delete(&store.mailbox_message_ids(&[id]).await?).await?,
        None => 0,
    };
    let mut tx = store.begin().await?;
    if !store::anonymise_case(&mut tx, id, true, now).await? {
        tx.rollback().await?;
        return Ok(None);
    }
    store::add_event(
        &mut tx,
        id,
        now,
        CaseEvent::Anonymised,
        "klachtd",
        &format!(
            "bewaartermijn van {} maanden verstreken: persoonsgegevens verwijderd",
            s.retention_months
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(deleted))
}

/// The mailbox's Message-IDs of these cases and of these mails outside cases.
async fn mailbox_ids(
    store: &Store,
    case_ids: &[i64],
    loose: &[store::LooseMail],
) -> Result<Vec<String>> {
    let mut ids = store.mailbox_message_ids(case_ids).await?;
    ids.extend(loose.iter().flat_map(mailbox_ids_of));
    Ok(ids)
}

/// The end of every removal: its entry in the audit trail, the commit, and
/// the old page images out of the SQLite WAL.
async fn finish(
    store: &Store,
    mut tx: store::Tx,
    now: Timestamp,
    actor: &str,
    action: &str,
    detail: &str,
    refs: &[String],
) -> Result<()> {
    store::audit(&mut tx, now, actor, action, detail, refs).await?;
    tx.commit().await?;
    flush(store).await;
    Ok(())
}

/// The erasure is committed; getting the old page images out of the SQLite
/// WAL is best effort (a busy reader delays it to a later checkpoint).
async fn flush(store: &Store) {
    match store.flush_erased().await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "erased data is still in the SQLite write-ahead log: a reader was busy; the next checkpoint removes it"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot checkpoint the SQLite write-ahead log after an erasure"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retention_cutoff_is_whole_months_back_in_local_time() {
        let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
        let now: Timestamp = "2026-11-24T09:00:00+01:00".parse().unwrap();
        let cut = retention_cutoff(now, &tz, 24).unwrap();
        assert_eq!(
            cut,
            "2024-11-24T09:00:00+01:00".parse::<Timestamp>().unwrap()
        );
        // 31 March minus one month is the last day of February.
        let now: Timestamp = "2027-03-31T12:00:00+02:00".parse().unwrap();
        let cut = retention_cutoff(now, &tz, 1).unwrap();
        assert_eq!(
            cut,
            "2027-02-28T12:00:00+01:00".parse::<Timestamp>().unwrap()
        );
    }
}
