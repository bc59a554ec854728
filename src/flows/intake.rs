//! The inbound pipeline: one message becomes a decision, and the decision
//! becomes records plus queued mail in ONE transaction. Pure decisions live
//! in `domain`; this module only wires them to the store and the flows.

use anyhow::Result;
use jiff::Timestamp;

use crate::app::App;
use crate::config::{Settings, Staff};
use crate::domain::classify::{self, MailFacts, Verdict};
use crate::domain::types::{CaseRef, EmailAddress, Status};
use crate::flows::client_reply::record_reply;
use crate::flows::open_case::{email_case, email_client, open_case, TriageWhy};
use crate::flows::regulation::answer_regulation_request;
use crate::flows::Work;
use crate::mail::parse::InboundMail;
use crate::store::{self, Tx};

/// What happened to one message. The string form is what the `inbound`
/// table and the logs carry (never content, never an address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Duplicate,
    Automated(&'static str),
    NotComplaint,
    Case {
        reference: CaseRef,
        status: Status,
    },
    Reply {
        reference: CaseRef,
    },
    /// A request for the regulation (art. 11), answered; no case.
    Regulation,
    /// A supervisor's answer to the daily digest, deciding triage items.
    DigestAnswer,
    /// This message could not be handled (not a database problem): it is
    /// recorded as such and left in the mailbox, and intake goes on.
    Failed,
    /// Staff asked to make a complaint of it, and klachtd will not: the
    /// mail is klachtd's own (`own`) or a colleague's (`staff`).
    Refused(&'static str),
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Duplicate => "duplicate".into(),
            Outcome::Automated(why) => format!("automated:{why}"),
            Outcome::NotComplaint => "not_complaint".into(),
            Outcome::Case { status, .. } => format!("case:{status}"),
            Outcome::Reply { .. } => "reply".into(),
            Outcome::Regulation => "regulation_request".into(),
            Outcome::DigestAnswer => "digest_answer".into(),
            Outcome::Failed => "failed".into(),
            Outcome::Refused(why) => format!("refused:{why}"),
        }
    }

    /// Mail that klachtd took on (gets the IMAP keyword).
    pub fn is_case_mail(&self) -> bool {
        matches!(self, Outcome::Case { .. } | Outcome::Reply { .. })
    }
}

/// Where a message was found.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub folder: &'a str,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// Is this mail automated (never answered)? On headers alone this already
/// decides most cases, so bodies of automated mail are never fetched.
pub fn automated(settings: &Settings, m: &InboundMail) -> Option<classify::Automated> {
    classify::automated(
        &facts(m),
        &settings.organisation.own_addresses(),
        &settings.organisation.message_id_domain,
    )
    .or_else(|| is_wrapped_report(m).then_some(classify::Automated::DeliveryReport))
}

/// Text-less mail that only wraps other messages or their headers: the shape
/// of abuse and bounce reports that are not `multipart/report`.
fn is_wrapped_report(m: &InboundMail) -> bool {
    !m.attachments.is_empty()
        && m.text.trim().is_empty()
        && m.attachments.iter().all(|a| {
            matches!(
                a.content_type.as_str(),
                "message/rfc822"
                    | "message/feedback-report"
                    | "text/rfc822-headers"
                    | "message/delivery-status"
            )
        })
}

fn facts(m: &InboundMail) -> MailFacts<'_> {
    MailFacts {
        headers: &m.headers,
        mime_type: &m.mime_type,
        from: m.from.as_ref(),
        subject: &m.subject,
        text: &m.text,
    }
}

/// Processes one message and moves the folder checkpoint to its UID, all in
/// one transaction. A message seen before (same Message-ID) changes nothing
/// but the checkpoint. (Intake itself records a batch of messages per
/// transaction: [`process_in`].)
pub async fn process_message(
    app: &App,
    origin: Origin<'_>,
    arrived: Option<Timestamp>,
    m: &InboundMail,
) -> Result<Outcome> {
    let mut tx = app.store.begin().await?;
    let outcome = process_in(app, &mut tx, origin, arrived, m).await?;
    store::set_mailbox_state(&mut tx, origin.folder, origin.uidvalidity, origin.uid).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Processes one message within `tx`, which may hold a whole batch: its
/// writes sit under a savepoint, so a message that fails (not the
/// database: a template, say) takes back only its own writes, is recorded
/// as failed and left in the mailbox, and the batch goes on. A database
/// error is returned: the caller drops the batch, and a replay is harmless
/// (every write is keyed by the Message-ID). The checkpoint is the
/// caller's to move.
pub async fn process_in(
    app: &App,
    tx: &mut Tx,
    origin: Origin<'_>,
    arrived: Option<Timestamp>,
    m: &InboundMail,
) -> Result<Outcome> {
    process_looked(app, tx, origin, arrived, m, look(&app.settings, m)).await
}

/// [`process_in`] with what the mail alone decides already worked out
/// ([`look`], for this `m`).
pub async fn process_looked(
    app: &App,
    tx: &mut Tx,
    origin: Origin<'_>,
    arrived: Option<Timestamp>,
    m: &InboundMail,
    look: Look,
) -> Result<Outcome> {
    let now = app.clock.now();
    let Look { auto, early } = look;
    // Mail decided without the register has nothing to write but its
    // record: one statement, atomic by itself, with no savepoint around it.
    if let Early::Settled { outcome, burn } = early {
        let label = outcome.label();
        let (folder, validity, uid) = (origin.folder, origin.uidvalidity, origin.uid);
        let claimed =
            store::claim_inbound(tx, &m.message_id, folder, validity, uid, &label, now).await?;
        if !claimed {
            return Ok(Outcome::Duplicate);
        }
        burn_tokens(tx, &[&burn], now).await?;
        return Ok(outcome);
    }
    store::savepoint(tx).await?;
    // A message that failed before is claimed, and decided, afresh.
    if !store::claim_inbound(
        tx,
        &m.message_id,
        origin.folder,
        origin.uidvalidity,
        origin.uid,
        "pending",
        now,
    )
    .await?
    {
        store::release_savepoint(tx).await?;
        return Ok(Outcome::Duplicate);
    }
    let read = match early {
        Early::Read(read) => Some(read.of(&m.subject, &m.text)),
        _ => None,
    };
    let outcome = match decide_and_record(app, tx, arrived, m, auto, read, now).await {
        Ok((outcome, case_id)) => {
            store::set_inbound_outcome(tx, &m.message_id, &outcome.label(), case_id).await?;
            outcome
        }
        // The database is down or busy: nothing recorded, try again later.
        Err(e) if e.chain().any(|c| c.is::<sqlx::Error>()) => return Err(e),
        // Something about this message (or a template) fails every time:
        // do not let it block every message after it.
        Err(e) => {
            store::rollback_to_savepoint(tx).await?;
            tracing::warn!(
                uid = origin.uid,
                message_id = %m.message_id,
                error = %format!("{e:#}"),
                "message could not be handled; recorded as failed and left in the mailbox"
            );
            store::claim_inbound(
                tx,
                &m.message_id,
                origin.folder,
                origin.uidvalidity,
                origin.uid,
                "failed",
                now,
            )
            .await?;
            Outcome::Failed
        }
    };
    store::release_savepoint(tx).await?;
    Ok(outcome)
}

/// What the mail alone decides, before the register is asked: a pure
/// function of the settings and the mail, and the classifier's share of
/// the work. Intake works it out on a thread of its own, ahead of the
/// register work, and hands it to [`process_looked`].
pub struct Look {
    auto: Option<classify::Automated>,
    early: Early,
}

/// Looks at `m` (see [`Look`]).
pub fn look(s: &Settings, m: &InboundMail) -> Look {
    let auto = automated(s, m);
    Look {
        auto,
        early: decide_early(s, m, auto),
    }
}

impl Look {
    /// The mail settled, when the mail alone decides it and its record
    /// (with the tokens it burns) is all there is to write
    /// ([`record_settled`]); otherwise the look, for [`process_looked`].
    pub fn into_settled(self, uid: u32, message_id: &str) -> Result<Settled, Look> {
        match self.early {
            Early::Settled { outcome, burn } => Ok(Settled {
                uid,
                message_id: message_id.to_string(),
                outcome,
                burn,
            }),
            early => Err(Look { early, ..self }),
        }
    }
}

/// A mail the mail alone settles ([`Look::into_settled`]).
#[derive(Debug)]
pub struct Settled {
    pub uid: u32,
    pub message_id: String,
    pub outcome: Outcome,
    /// Staff tokens among its references, to be burned: automated mail
    /// shows them outside the staff (see [`store::burn_tokens`]).
    pub burn: Vec<String>,
}

/// Records settled mail within `tx` in as few statements as the register
/// allows, as [`process_looked`] records each: a Message-ID seen before,
/// in the register or earlier in `mails`, is a duplicate. Returns the
/// outcomes in the order given.
pub async fn record_settled(
    app: &App,
    tx: &mut Tx,
    folder: &str,
    uidvalidity: u32,
    mails: Vec<Settled>,
) -> Result<Vec<(u32, String, Outcome)>> {
    if mails.is_empty() {
        return Ok(Vec::new());
    }
    let labels: Vec<String> = mails.iter().map(|m| m.outcome.label()).collect();
    let mut seen = std::collections::HashSet::new();
    let first: Vec<bool> = mails.iter().map(|m| seen.insert(&m.message_id)).collect();
    let claims: Vec<store::Claim> = mails
        .iter()
        .zip(&labels)
        .zip(&first)
        .filter(|(_, &first)| first)
        .map(|((m, label), _)| (m.uid, m.message_id.as_str(), label.as_str()))
        .collect();
    let now = app.clock.now();
    let claimed = store::claim_inbound_many(tx, folder, uidvalidity, &claims, now).await?;
    let won: Vec<bool> = mails
        .iter()
        .zip(first)
        .map(|(m, first)| first && claimed.contains(&m.message_id))
        .collect();
    let burn: Vec<&[String]> = mails
        .iter()
        .zip(&won)
        .filter(|(m, &won)| won && !m.burn.is_empty())
        .map(|(m, _)| m.burn.as_slice())
        .collect();
    burn_tokens(tx, &burn, now).await?;
    Ok(mails
        .into_iter()
        .zip(won)
        .map(|(m, won)| {
            let outcome = if won { m.outcome } else { Outcome::Duplicate };
            (m.uid, m.message_id, outcome)
        })
        .collect())
}

/// Burns the staff tokens that `mails` (their references) show outside
/// the staff, and says so when there were any.
async fn burn_tokens(tx: &mut Tx, mails: &[&[String]], now: Timestamp) -> Result<()> {
    if mails.iter().all(|refs| refs.is_empty()) {
        return Ok(());
    }
    let burned = store::burn_tokens_of(tx, mails, now).await?;
    if burned > 0 {
        tracing::info!(
            burned,
            "staff tokens seen outside the staff: burned for commands"
        );
    }
    Ok(())
}

/// What the mail alone decides, before the register is asked.
enum Early {
    /// Nothing to write but the mail's own record, and the staff tokens
    /// among its references to burn.
    Settled { outcome: Outcome, burn: Vec<String> },
    /// New mail from outside, read by the classifier, that needs more
    /// than its record (a complaint, a possible one, a request for the
    /// regulation).
    Read(classify::Read),
    /// The register decides.
    Open,
}

/// Automated mail is never answered and never joins a case: its record
/// is all there is to write, and the staff tokens it shows outside the
/// staff are burned (as [`decide_and_record`] does). Other mail that
/// references nothing (no In-Reply-To, no References, no case tag in its
/// subject) matches no case and burns no staff token. When it has no
/// sender, or comes from outside and is ordinary, its record is all there
/// is to write. Staff mail is left to the register (a forward made a
/// complaint, an answer to the digest).
fn decide_early(s: &Settings, m: &InboundMail, auto: Option<classify::Automated>) -> Early {
    let settled = |outcome, burn| Early::Settled { outcome, burn };
    if let Some(a) = auto {
        let from_staff = m.from.as_ref().and_then(|f| s.staff_by_email(f)).is_some();
        let burn = if exposes_tokens(s, m, from_staff) {
            m.referenced_ids()
        } else {
            Vec::new()
        };
        return settled(Outcome::Automated(a.as_str()), burn);
    }
    if !m.in_reply_to.is_empty() || !m.references.is_empty() {
        return Early::Open;
    }
    let Some(from) = &m.from else {
        return settled(Outcome::Automated("no_sender"), Vec::new());
    };
    if s.staff_by_email(from).is_some() || CaseRef::find_tag(&m.subject).is_some() {
        return Early::Open;
    }
    let reading = classify::read(&m.subject, &m.text);
    if reading.score().verdict == Verdict::Ordinary
        && !classify::asks_for_regulation(&m.subject, &m.text)
    {
        return settled(Outcome::NotComplaint, Vec::new());
    }
    Early::Read(reading.detach())
}

async fn decide_and_record(
    app: &App,
    tx: &mut Tx,
    arrived: Option<Timestamp>,
    m: &InboundMail,
    auto: Option<classify::Automated>,
    read: Option<classify::Reading<'_>>,
    now: Timestamp,
) -> Result<(Outcome, Option<i64>)> {
    let s = &app.settings;
    // A token (the Message-ID of a mail to staff: a notification, a
    // digest) that this mail carries to or from someone outside the staff
    // no longer runs commands, whatever the mail turns out to be.
    let from_staff = m.from.as_ref().and_then(|f| s.staff_by_email(f)).is_some();
    if exposes_tokens(s, m, from_staff) {
        burn_tokens(tx, &[&m.referenced_ids()], now).await?;
    }
    if let Some(a) = auto {
        return Ok((Outcome::Automated(a.as_str()), None));
    }
    let Some(from) = m.from.clone() else {
        return Ok((Outcome::Automated("no_sender"), None));
    };
    let w = &mut Work { app, tx, now };
    let at = arrived.unwrap_or(now);
    // A reply on a known case goes to that case, whatever it says.
    if let Some(done) = on_its_case(w, m, &from, at).await? {
        return Ok(done);
    }
    if let Some(staff) = s.staff_by_email(&from) {
        return staff_mail_off_case(w, m, staff, at).await;
    }
    new_mail(w, m, from, arrived, read).await
}

/// Mail that threads onto a case: a staff answer or a client's reply.
async fn on_its_case(
    w: &mut Work<'_>,
    m: &InboundMail,
    from: &EmailAddress,
    at: Timestamp,
) -> Result<Option<(Outcome, Option<i64>)>> {
    let s = &w.app.settings;
    let staff = s.staff_by_email(from);
    let refs = m.referenced_ids();
    let Some((case_id, reference)) =
        store::thread_match(w.tx, &refs, from, &m.subject, staff.is_some()).await?
    else {
        return Ok(None);
    };
    match staff {
        Some(staff) => {
            crate::flows::staff_reply::staff_mail(w, case_id, &reference, m, staff, at).await?
        }
        None => record_reply(w, case_id, &reference, m, from, at).await?,
    }
    Ok(Some((Outcome::Reply { reference }, Some(case_id))))
}

/// Does this mail show its references to someone outside the staff: it
/// comes from outside, or a To/Cc address is neither staff nor the
/// organisation's own?
fn exposes_tokens(s: &Settings, m: &InboundMail, from_staff: bool) -> bool {
    let outside = |a: &EmailAddress| s.staff_by_email(a).is_none() && *a != s.organisation.address;
    !from_staff || m.to.iter().chain(&m.cc).any(outside)
}

/// Staff mail not on a case: a supervisor's answer to the daily digest
/// decides triage items; otherwise it is never a complaint by itself, but
/// a forward with /klacht on top becomes a triage item.
async fn staff_mail_off_case(
    w: &mut Work<'_>,
    m: &InboundMail,
    staff: &Staff,
    at: Timestamp,
) -> Result<(Outcome, Option<i64>)> {
    let (app, now) = (w.app, w.now);
    if crate::flows::digest::digest_answer(app, w.tx, m, staff, now).await? {
        return Ok((Outcome::DigestAnswer, None));
    }
    Ok(
        match crate::flows::forwarded::forwarded_complaint(app, w.tx, m, staff, at, now).await? {
            Some(o) => (
                Outcome::Case {
                    reference: o.reference,
                    status: o.status,
                },
                Some(o.id),
            ),
            None => (Outcome::NotComplaint, None),
        },
    )
}

/// A new mail from outside: a complaint, a possible one (triage), a
/// request for the regulation, or ordinary mail left alone.
async fn new_mail(
    w: &mut Work<'_>,
    m: &InboundMail,
    from: EmailAddress,
    arrived: Option<Timestamp>,
    read: Option<classify::Reading<'_>>,
) -> Result<(Outcome, Option<i64>)> {
    let (app, now) = (w.app, w.now);
    let reading = read.unwrap_or_else(|| classify::read(&m.subject, &m.text));
    let score = reading.score();
    if score.verdict != Verdict::Complaint && classify::asks_for_regulation(&m.subject, &m.text) {
        answer_regulation_request(app, w.tx, m, &from, now).await?;
        if score.verdict == Verdict::Ordinary {
            return Ok((Outcome::Regulation, None));
        }
        // A possible complaint that also asks for the regulation gets it,
        // and still reaches triage: no complaint is lost silently.
    }
    let received = arrived.or(m.date).unwrap_or(now).min(now);
    let mut status_reason = match score.verdict {
        Verdict::Ordinary => return Ok((Outcome::NotComplaint, None)),
        Verdict::Possible => Some(TriageWhy::Unsure(score.probability)),
        Verdict::Complaint => None,
    };
    let day_ago = now
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap_or(now);
    let earlier = store::cases_from_mailbox_since(w.tx, &from, day_ago).await?;
    if earlier >= i64::from(app.settings.intake.new_cases_per_sender_per_day) {
        status_reason = Some(TriageWhy::Flood(earlier));
    }
    let client = email_client(m, Some(from));
    let mut input = email_case(m, &client, received, status_reason, false);
    input.reading = Some(reading);
    let opened = open_case(app, w.tx, input, now).await?;
    Ok((
        Outcome::Case {
            reference: opened.reference,
            status: opened.status,
        },
        Some(opened.id),
    ))
}
