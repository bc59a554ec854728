//! The complaint pipeline: one inbound message (or one phone complaint)
//! becomes a decision, and the decision becomes records plus queued mail in
//! ONE transaction. Pure decisions live in `domain`; this module only wires
//! them to the store and the templates.

use anyhow::{Context, Result};
use jiff::civil::Date;
use jiff::Timestamp;
use serde_json::json;

use crate::app::App;
use crate::clock::db_time;
use crate::config::{local_date, Settings, Staff};
use crate::domain::assign::{pick_handler, Assignment, Candidate};
use crate::domain::classify::{self, MailFacts, RosterEntry, Verdict};
use crate::domain::types::{CaseRef, EmailAddress, Lang, Status};
use crate::mail::compose::{self, Outgoing};
use crate::mail::parse::InboundMail;
use crate::mail::render::{long_date, Template};
use crate::store::{self, NewCase, NewCaseMessage, NewOutMail, Tx};

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

fn roster(settings: &Settings) -> Vec<RosterEntry<'_>> {
    settings
        .staff
        .iter()
        .map(|s| RosterEntry {
            name: &s.name,
            email: &s.email,
            aliases: &s.aliases,
        })
        .collect()
}

/// Processes one message and moves the folder checkpoint to its UID, all in
/// one transaction. A message seen before (same Message-ID) changes nothing
/// but the checkpoint.
pub async fn process_message(
    app: &App,
    origin: Origin<'_>,
    arrived: Option<Timestamp>,
    m: &InboundMail,
) -> Result<Outcome> {
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    // A message that failed before is decided afresh.
    store::forget_failed(&mut tx, &m.message_id).await?;
    if !store::claim_inbound(
        &mut tx,
        &m.message_id,
        origin.folder,
        origin.uidvalidity,
        origin.uid,
        "pending",
        now,
    )
    .await?
    {
        store::set_mailbox_state(&mut tx, origin.folder, origin.uidvalidity, origin.uid).await?;
        tx.commit().await?;
        return Ok(Outcome::Duplicate);
    }
    let (outcome, case_id) = match decide_and_record(app, &mut tx, arrived, m, now).await {
        Ok(decided) => decided,
        // The database is down or busy: nothing recorded, try again later.
        Err(e) if e.chain().any(|c| c.is::<sqlx::Error>()) => return Err(e),
        // Something about this message (or a template) fails every time:
        // do not let it block every message after it.
        Err(e) => {
            tx.rollback().await?;
            tracing::warn!(
                uid = origin.uid,
                message_id = %m.message_id,
                error = %format!("{e:#}"),
                "message could not be handled; recorded as failed and left in the mailbox"
            );
            let mut tx = app.store.begin().await?;
            store::claim_inbound(
                &mut tx,
                &m.message_id,
                origin.folder,
                origin.uidvalidity,
                origin.uid,
                "failed",
                now,
            )
            .await?;
            store::set_mailbox_state(&mut tx, origin.folder, origin.uidvalidity, origin.uid)
                .await?;
            tx.commit().await?;
            return Ok(Outcome::Failed);
        }
    };
    store::set_inbound_outcome(&mut tx, &m.message_id, &outcome.label(), case_id).await?;
    store::set_mailbox_state(&mut tx, origin.folder, origin.uidvalidity, origin.uid).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn decide_and_record(
    app: &App,
    tx: &mut Tx,
    arrived: Option<Timestamp>,
    m: &InboundMail,
    now: Timestamp,
) -> Result<(Outcome, Option<i64>)> {
    let s = &app.settings;
    if let Some(a) = automated(s, m) {
        return Ok((Outcome::Automated(a.as_str()), None));
    }
    let Some(from) = m.from.clone() else {
        return Ok((Outcome::Automated("no_sender"), None));
    };
    // A reply on a known case goes to that case, whatever it says.
    if let Some((case_id, reference)) = store::thread_match(
        tx,
        &m.referenced_ids(),
        &from,
        &m.subject,
        s.staff_by_email(&from).is_some(),
    )
    .await?
    {
        let at = arrived.unwrap_or(now);
        match s.staff_by_email(&from) {
            Some(staff) => {
                crate::conversation::staff_mail(app, tx, case_id, &reference, m, staff, at, now)
                    .await?
            }
            None => record_reply(app, tx, case_id, &reference, m, &from, at, now).await?,
        }
        return Ok((Outcome::Reply { reference }, Some(case_id)));
    }
    if let Some(staff) = s.staff_by_email(&from) {
        // A supervisor's answer to the daily digest decides triage items.
        if crate::conversation::digest_answer(app, tx, m, staff, now).await? {
            return Ok((Outcome::DigestAnswer, None));
        }
        // Staff mail not on a case is never a complaint by itself; a
        // forward with /klacht on top becomes a triage item.
        let at = arrived.unwrap_or(now);
        return Ok(
            match crate::conversation::forwarded_complaint(app, tx, m, staff, at, now).await? {
                Some(o) => (
                    Outcome::Case {
                        reference: o.reference,
                        status: o.status,
                    },
                    Some(o.id),
                ),
                None => (Outcome::NotComplaint, None),
            },
        );
    }
    let reading = classify::read(&m.subject, &m.text);
    let score = reading.score();
    if score.verdict != Verdict::Complaint && classify::asks_for_regulation(&m.subject, &m.text) {
        answer_regulation_request(app, tx, m, &from, now).await?;
        if score.verdict == Verdict::Ordinary {
            return Ok((Outcome::Regulation, None));
        }
        // A possible complaint that also asks for the regulation gets it,
        // and still reaches triage: no complaint is lost silently.
    }
    let received = arrived.or(m.date).unwrap_or(now).min(now);
    let status_reason = match score.verdict {
        Verdict::Ordinary => return Ok((Outcome::NotComplaint, None)),
        Verdict::Possible => Some(TriageWhy::Unsure(score.probability)),
        Verdict::Complaint => None,
    };
    let client = email_client(m, Some(from));
    let mut input = email_case(m, &client, received, status_reason, false);
    input.reading = Some(reading);
    let opened = open_case(app, tx, input, now).await?;
    Ok((
        Outcome::Case {
            reference: opened.reference,
            status: opened.status,
        },
        Some(opened.id),
    ))
}

pub(crate) fn client_name(m: &InboundMail, from: &EmailAddress) -> String {
    name_or_local_part(&m.from_name, Some(from))
}

/// The client of a mail: its sender (name, else the address's local part).
pub(crate) fn email_client(m: &InboundMail, from: Option<EmailAddress>) -> Client {
    Client {
        name: name_or_local_part(&m.from_name, from.as_ref()),
        email: from,
        phone: None,
    }
}

/// What `open_case` needs for a case opened from a mail.
pub(crate) fn email_case<'a>(
    m: &'a InboundMail,
    client: &'a Client,
    received: Timestamp,
    triage: Option<TriageWhy>,
    by_staff: bool,
) -> CaseInput<'a> {
    CaseInput {
        source: "email",
        client,
        subject: &m.subject,
        body: &m.text,
        received,
        triage,
        message: Some(m),
        given: Default::default(),
        by_staff,
        reading: None,
    }
}

/// The sender's display name, else the local part of the address.
pub(crate) fn name_or_local_part(name: &str, addr: Option<&EmailAddress>) -> String {
    if !name.trim().is_empty() {
        return name.trim().to_string();
    }
    addr.and_then(|a| a.as_str().split('@').next())
        .unwrap_or_default()
        .to_string()
}

pub struct Client {
    pub name: String,
    pub email: Option<EmailAddress>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone)]
pub enum TriageWhy {
    /// The model's probability fell between the `possible` and `complaint` thresholds.
    Unsure(f64),
    /// Forwarded by a colleague with `/klacht`: a supervisor confirms, as a
    /// forward cannot be authenticated (anyone can write that From).
    Forwarded(String),
}

pub struct CaseInput<'a> {
    pub source: &'a str,
    pub client: &'a Client,
    pub subject: &'a str,
    pub body: &'a str,
    pub received: Timestamp,
    pub triage: Option<TriageWhy>,
    pub message: Option<&'a InboundMail>,
    /// Article-4 elements stated explicitly (phone intake), which win over
    /// what is read from the text.
    pub given: classify::Elements,
    /// A staff member made this a complaint (`crate::overrule`): it is
    /// acknowledged even when the art. 5 term has passed already, as a
    /// person decided, not a blind first run over old mail.
    pub by_staff: bool,
    /// The mail as scoring read it, when it was scored (the text is then
    /// not read again).
    pub reading: Option<classify::Reading<'a>>,
}

/// A case just recorded.
pub struct Opened {
    pub id: i64,
    pub reference: CaseRef,
    pub status: Status,
}

/// Records a new case (or triage item) with its handler, deadlines, timeline
/// and outgoing mail. Shared by email intake and `register` (phone, art. 4).
pub async fn open_case(app: &App, tx: &mut Tx, c: CaseInput<'_>, now: Timestamp) -> Result<Opened> {
    let s = &app.settings;
    let tz = &s.organisation.timezone;
    let received_day = local_date(c.received, tz);
    let ack_due = s
        .calendar
        .add_working_days(received_day, s.procedure.ack_working_days);
    let response_due = s
        .calendar
        .add_working_days(received_day, s.procedure.response_working_days);
    let today = local_date(now, tz);

    let reading = match c.reading {
        Some(r) => r,
        None => classify::read(c.subject, c.body),
    };
    let lang = reading.lang();
    let category = classify::category(c.subject, c.body);
    let mut elements = reading.elements();
    drop(reading);
    elements.dates = c.given.dates.clone().or(elements.dates);
    elements.desired_outcome = c.given.desired_outcome.clone().or(elements.desired_outcome);
    elements.nature = c.given.nature.clone().or(elements.nature);
    let missing = elements.missing();
    let roster = roster(s);
    let concerned = classify::concerned(c.subject, c.body, &roster);
    let concerns: Vec<String> = concerned.iter().map(|e| e.to_string()).collect();

    let assignment = assign(s, tx, &concerned).await?;
    let (handler, assign_reason) = match &assignment {
        Assignment::Handler { email, reason } | Assignment::Supervisor { email, reason } => {
            (s.staff_by_email(email), reason.clone())
        }
        Assignment::Nobody { reason } => (None, reason.clone()),
    };

    // Why this case waits for a supervisor instead of being acknowledged.
    let triage_reason: Option<String> = match &c.triage {
        Some(TriageWhy::Unsure(p)) => Some(format!("mogelijk een klacht (kans {:.0}%)", p * 100.0)),
        Some(TriageWhy::Forwarded(by)) => Some(format!(
            "doorgestuurd door {by} met /klacht; een leidinggevende bevestigt met /klacht"
        )),
        None if ack_due < today && !c.by_staff => Some(format!(
            "ontvangen op {received_day}, de bevestigingstermijn (uiterlijk {ack_due}) is al verstreken"
        )),
        None if handler.is_none() => Some("geen onafhankelijke behandelaar beschikbaar".into()),
        None => None,
    };
    let status = if triage_reason.is_some() {
        Status::Triage
    } else {
        Status::Received
    };

    let year = received_day.year() as i32;
    let reference = store::next_reference(tx, year).await?;
    let subject = if c.subject.trim().is_empty() {
        "(geen onderwerp)"
    } else {
        c.subject.trim()
    };
    let case_id = store::insert_case(
        tx,
        reference,
        &NewCase {
            status,
            category,
            language: lang,
            source: c.source,
            client_name: &c.client.name,
            client_email: c.client.email.as_ref().map(|e| e.as_str()),
            client_phone: c.client.phone.as_deref(),
            subject,
            body: c.body,
            nature: elements.nature.as_deref(),
            dates: elements.dates.as_deref(),
            desired_outcome: elements.desired_outcome.as_deref(),
            missing: &missing,
            concerns: &concerns,
            // A triage item has no handler until a supervisor makes it a case.
            handler_email: handler
                .filter(|_| status != Status::Triage)
                .map(|h| h.email.as_str()),
            received_at: c.received,
            ack_due,
            response_due,
            triage_reason: triage_reason.as_deref(),
            created_at: now,
        },
    )
    .await?;

    let first = c.message.map(|m| {
        json!({
            "direction": "in",
            "from": c.client.email.as_ref().map(|e| e.as_str()),
            "message_id": m.message_id,
        })
    });
    store::add_event_data(
        tx,
        case_id,
        now,
        "received",
        c.source,
        &format!("{} via {}", db_time(c.received), c.source),
        first.as_ref().unwrap_or(&serde_json::Value::Null),
    )
    .await?;
    store::add_event(
        tx,
        case_id,
        now,
        "classified",
        "klachtd",
        &format!("category {category}, language {lang}"),
    )
    .await?;
    if !concerns.is_empty() {
        store::add_event(
            tx,
            case_id,
            now,
            "concerns",
            "klachtd",
            &concerns.join(", "),
        )
        .await?;
    }
    let mut attachments_meta = Vec::new();
    if let Some(full) = c.message.and_then(|m| m.truncated_from) {
        store::add_event(
            tx,
            case_id,
            now,
            "truncated",
            "klachtd",
            &format!(
                "message of {full} bytes; the first {} bytes were kept",
                s.intake.max_message_bytes
            ),
        )
        .await?;
    }
    if let Some(m) = c.message {
        let from = c
            .client
            .email
            .as_ref()
            .map(|e| e.as_str())
            .unwrap_or_default();
        let refs = m.referenced_ids().join(" ");
        if let Some(cm_id) = store::insert_case_message(
            tx,
            &NewCaseMessage {
                case_id,
                message_id: &m.message_id,
                sender: from,
                subject: &m.subject,
                at: c.received,
                body: &m.text,
                refs: &refs,
            },
        )
        .await?
        {
            for a in &m.attachments {
                store::insert_attachment(
                    tx,
                    cm_id,
                    &a.filename,
                    &a.content_type,
                    a.size,
                    a.data.as_deref(),
                )
                .await?;
                attachments_meta.push(json!({
                    "filename": a.filename,
                    "size_human": human_size(a.size),
                    "stored": a.data.is_some(),
                }));
            }
        }
    }

    let org = org_json(s);
    let concerns_json = concerns_json(s, &concerns);
    let missing_codes: Vec<&str> = missing.iter().map(|e| e.as_str()).collect();
    let staff_lang = s.organisation.language;

    if let Some(reason) = &triage_reason {
        store::add_event(tx, case_id, now, "triage", "klachtd", reason).await?;
        let template = if handler.is_none() && c.triage.is_none() && ack_due >= today {
            Template::Unassigned
        } else {
            Template::Triage
        };
        let ctx = json!({
            "org": org, "reference": reference.to_string(), "lang": staff_lang.as_str(),
            "client_name": c.client.name, "client_email": c.client.email.as_ref().map(|e| e.as_str()).unwrap_or(""),
            "original_subject": subject, "received": long_date(staff_lang, received_day),
            "reason": reason, "body": c.body, "score": match c.triage { Some(TriageWhy::Unsure(p)) => format!("{:.0}%", p * 100.0), _ => String::new() },
            "concerns": concerns_json, "missing": missing_codes,
            "attachments": attachments_meta,
        });
        // A possible complaint waits for the digest when so configured:
        // a busy box does not send a mail per item.
        let quiet = matches!(c.triage, Some(TriageWhy::Unsure(_)))
            && s.triage_mail == crate::config::TriageMail::Digest;
        let mut warned = 0;
        for sup in s
            .supervisors()
            .filter(|sup| !concerned.contains(&sup.email) && !quiet)
        {
            queue_staff_mail(
                app,
                tx,
                Some(case_id),
                template,
                staff_lang,
                &ctx,
                sup,
                "triage_notice",
                None,
                now,
            )
            .await?;
            warned += 1;
        }
        if warned == 0 && !quiet {
            tracing::warn!(reference = %reference, "triage item has no supervisor who is not concerned");
        }
        return Ok(Opened {
            id: case_id,
            reference,
            status,
        });
    }

    let handler = handler.context("handler chosen above")?;
    store::add_event(
        tx,
        case_id,
        now,
        "assigned",
        "klachtd",
        &format!("{}: {}", handler.email, assign_reason),
    )
    .await?;
    let row = store::case_in_tx(tx, case_id)
        .await?
        .context("case recorded above")?;
    let ack_queued = queue_ack(app, tx, &row, handler, now).await?;
    queue_handler_new(
        app,
        tx,
        &row,
        handler,
        &assign_reason,
        ack_queued,
        None,
        now,
    )
    .await?;
    Ok(Opened {
        id: case_id,
        reference,
        status,
    })
}

/// The independent handler for a case about `concerned` (art. 6).
pub(crate) async fn assign(
    s: &Settings,
    tx: &mut Tx,
    concerned: &[EmailAddress],
) -> Result<Assignment> {
    let counts = store::open_case_counts(tx).await?;
    let candidates: Vec<Candidate> = s
        .staff
        .iter()
        .map(|st| Candidate {
            name: &st.name,
            email: &st.email,
            handler: st.roles.handler,
            supervisor: st.roles.supervisor,
            open_cases: counts.get(&st.email.key()).copied().unwrap_or(0),
        })
        .collect();
    Ok(pick_handler(&candidates, concerned))
}

fn concerns_json(s: &Settings, concerns: &[String]) -> Vec<serde_json::Value> {
    concerns
        .iter()
        .map(|e| {
            let name = EmailAddress::parse(e)
                .ok()
                .and_then(|a| s.staff_by_email(&a))
                .map(|x| x.name.as_str())
                .unwrap_or("");
            json!({"name": name, "email": e})
        })
        .collect()
}

/// The dates of a case as the register holds them.
pub(crate) struct CaseDates {
    pub received: Date,
    pub ack_due: Date,
    pub response_due: Date,
}

pub(crate) fn case_dates(s: &Settings, c: &store::CaseRow) -> Result<CaseDates> {
    let received: Timestamp = c
        .received_at
        .parse()
        .with_context(|| format!("case {}: bad received_at", c.reference))?;
    Ok(CaseDates {
        received: local_date(received, &s.organisation.timezone),
        ack_due: c.ack_due.parse().context("bad ack_due")?,
        response_due: c.response_due.parse().context("bad response_due")?,
    })
}

/// Queues the acknowledgement (art. 5) to the client, in the thread of the
/// mail that opened the case. Returns false when nothing was queued: no
/// address, the per-sender limit, or an acknowledgement already exists.
pub(crate) async fn queue_ack(
    app: &App,
    tx: &mut Tx,
    case: &store::CaseRow,
    handler: &Staff,
    now: Timestamp,
) -> Result<bool> {
    let s = &app.settings;
    let Some(client_email) = case
        .client_email
        .as_deref()
        .and_then(|e| EmailAddress::parse(e).ok())
    else {
        return Ok(false);
    };
    let since = now
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap_or(now);
    let recent = store::auto_replies_since(tx, client_email.as_str(), since).await?;
    if recent >= s.procedure.auto_replies_per_sender_per_day as i64 {
        store::add_event(
            tx,
            case.id,
            now,
            "ack_suppressed",
            "klachtd",
            &format!("{recent} automatic replies to this sender in 24 hours; confirm personally"),
        )
        .await?;
        return Ok(false);
    }
    let lang = case.language;
    let d = case_dates(s, case)?;
    let missing_codes: Vec<&str> = case.missing.iter().map(|e| e.as_str()).collect();
    let ctx = json!({
        "org": org_json(s), "reference": case.reference, "lang": lang.as_str(),
        "client_name": case.client_name, "original_subject": case.subject,
        "handler": {"name": handler.name, "email": handler.email.as_str()},
        "received": long_date(lang, d.received), "ack_due": long_date(lang, d.ack_due),
        "response_due": long_date(lang, d.response_due), "missing": missing_codes,
        "response_working_days": s.procedure.response_working_days,
    });
    let rendered = app.renderer.render(lang, Template::Ack, &ctx)?;
    let (irt, refs) = match store::first_message(tx, case.id).await? {
        Some((id, refs)) => {
            let r = compose::references_for_reply(&refs, &id);
            (Some(id), r)
        }
        None => (None, Vec::new()),
    };
    let (message_id, queued) = queue_mail(
        app,
        tx,
        &Mail {
            case_id: Some(case.id),
            kind: "ack",
            from_name: &s.organisation.name,
            to_name: &case.client_name,
            to: &client_email,
            rendered: &rendered,
            in_reply_to: irt.as_deref(),
            references: &refs,
            auto_reply: true,
            attachments: &[],
            inline: &[],
        },
        now,
    )
    .await?;
    if queued {
        store::add_event(tx, case.id, now, "ack_queued", "klachtd", &message_id).await?;
    }
    Ok(queued)
}

/// Queues the handler's notification of a case: the complaint, deadlines,
/// who it concerns. Also used when a case is reassigned or taken out of
/// triage; `note` is the colleague's text that came with that.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn queue_handler_new(
    app: &App,
    tx: &mut Tx,
    case: &store::CaseRow,
    handler: &Staff,
    assignment_reason: &str,
    ack_sent: bool,
    note: Option<(&Staff, &str)>,
    now: Timestamp,
) -> Result<()> {
    let s = &app.settings;
    let lang = s.organisation.language;
    let d = case_dates(s, case)?;
    let attachments: Vec<_> = store::case_attachments(tx, case.id)
        .await?
        .iter()
        .map(|a| json!({"filename": a.filename, "size_human": human_size(a.size), "stored": a.stored}))
        .collect();
    let missing_codes: Vec<&str> = case.missing.iter().map(|e| e.as_str()).collect();
    let ctx = json!({
        "org": org_json(s), "reference": case.reference, "lang": lang.as_str(),
        "handler": {"name": handler.name, "email": handler.email.as_str()},
        "client_name": case.client_name,
        "client_email": case.client_email.as_deref().unwrap_or(""),
        "client_phone": case.client_phone.as_deref().unwrap_or(""),
        "original_subject": case.subject,
        "received": long_date(lang, d.received),
        "ack_due": long_date(lang, d.ack_due),
        "response_due": long_date(lang, d.response_due),
        "category": case.category.as_str(),
        "concerns": concerns_json(s, &case.concerns),
        "missing": missing_codes,
        "assignment_reason": assignment_reason,
        "body": case.body,
        "attachments": attachments,
        "source": case.source,
        "ack_sent": ack_sent,
        "note": note.map(|(who, text)| json!({"name": who.name, "text": text})),
    });
    queue_staff_mail(
        app,
        tx,
        Some(case.id),
        Template::HandlerNew,
        lang,
        &ctx,
        handler,
        "handler_new",
        None,
        now,
    )
    .await
}

/// Tells the handler a case was taken from that it went to `new_handler`,
/// unless there was none, it is the same person, or they are off the roster
/// now. Nothing of the complaint beyond its reference and subject: they had
/// the case until now. Returns whether they were told.
pub(crate) async fn queue_handler_released(
    app: &App,
    tx: &mut Tx,
    case: &store::CaseRow,
    old_handler: Option<&str>,
    new_handler: &Staff,
    reason: &str,
    now: Timestamp,
) -> Result<bool> {
    let s = &app.settings;
    let Some(old) = old_handler
        .and_then(|e| EmailAddress::parse(e).ok())
        .and_then(|e| s.staff_by_email(&e))
    else {
        return Ok(false);
    };
    if old.email == new_handler.email {
        return Ok(false);
    }
    let lang = s.organisation.language;
    let d = case_dates(s, case)?;
    let ctx = json!({
        "org": org_json(s), "reference": case.reference, "lang": lang.as_str(),
        "original_subject": case.subject,
        "old_handler": {"name": old.name},
        "new_handler": {"name": new_handler.name},
        "reason": reason,
        "response_due": long_date(lang, d.response_due),
    });
    queue_staff_mail(
        app,
        tx,
        Some(case.id),
        Template::HandlerReleased,
        lang,
        &ctx,
        old,
        "handler_released",
        None,
        now,
    )
    .await?;
    Ok(true)
}

/// A mail to a staff member, threaded under `answering` (their own mail)
/// when given. Its random Message-ID is what authenticates their answer.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn queue_staff_mail(
    app: &App,
    tx: &mut Tx,
    case_id: Option<i64>,
    template: Template,
    lang: Lang,
    ctx: &serde_json::Value,
    to: &Staff,
    kind: &str,
    answering: Option<&InboundMail>,
    now: Timestamp,
) -> Result<()> {
    let s = &app.settings;
    let rendered = app.renderer.render(lang, template, ctx)?;
    let refs = answering
        .map(|m| compose::references_for_reply(&m.references, &m.message_id))
        .unwrap_or_default();
    queue_mail(
        app,
        tx,
        &Mail {
            case_id,
            kind,
            from_name: &format!("{} klachten", s.organisation.name),
            to_name: &to.name,
            to: &to.email,
            rendered: &rendered,
            in_reply_to: answering.map(|m| m.message_id.as_str()),
            references: &refs,
            auto_reply: false,
            attachments: &[],
            inline: &[],
        },
        now,
    )
    .await?;
    if let Some(case_id) = case_id {
        store::add_event(
            tx,
            case_id,
            now,
            &format!("{kind}_queued"),
            "klachtd",
            to.email.as_str(),
        )
        .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_reply(
    app: &App,
    tx: &mut Tx,
    case_id: i64,
    reference: &CaseRef,
    m: &InboundMail,
    from: &EmailAddress,
    at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let s = &app.settings;
    let refs = m.referenced_ids().join(" ");
    store::insert_case_message(
        tx,
        &NewCaseMessage {
            case_id,
            message_id: &m.message_id,
            sender: from.as_str(),
            subject: &m.subject,
            at,
            body: &m.text,
            refs: &refs,
        },
    )
    .await?;
    store::add_event_data(
        tx,
        case_id,
        now,
        "client_reply",
        "client",
        &m.message_id,
        &json!({"direction": "in", "from": from.as_str(), "message_id": m.message_id}),
    )
    .await?;
    // Pass the client's reply on to the handler (never to anyone concerned).
    let Some(case) = store::case_in_tx(tx, case_id).await? else {
        return Ok(());
    };
    let Some(handler) = case
        .handler_email
        .as_deref()
        .and_then(|h| EmailAddress::parse(h).ok())
        .and_then(|h| s.staff_by_email(&h).cloned())
    else {
        return Ok(());
    };
    if case
        .concerns
        .iter()
        .any(|c| c.eq_ignore_ascii_case(handler.email.as_str()))
    {
        return Ok(());
    }
    let lang = s.organisation.language;
    let due: Date = case
        .response_due
        .parse()
        .unwrap_or(local_date(now, &s.organisation.timezone));
    let ctx = json!({
        "org": org_json(s), "reference": reference.to_string(), "lang": lang.as_str(),
        "client_name": case.client_name, "original_subject": case.subject,
        "body": crate::mail::quote::new_text(&m.text), "response_due": long_date(lang, due),
        "status": case.status.as_str(), "closed": case.status == Status::Closed,
    });
    queue_staff_mail(
        app,
        tx,
        Some(case_id),
        Template::ClientReplyToHandler,
        lang,
        &ctx,
        &handler,
        "client_reply_notice",
        None,
        now,
    )
    .await
}

/// Art. 11: whoever asks for the regulation gets it, as text and attached;
/// a request for a paper copy is passed on to the supervisors. Counts
/// towards the per-sender limit on automatic replies.
async fn answer_regulation_request(
    app: &App,
    tx: &mut Tx,
    m: &InboundMail,
    from: &EmailAddress,
    now: Timestamp,
) -> Result<()> {
    let s = &app.settings;
    let since = now
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap_or(now);
    if store::auto_replies_since(tx, from.as_str(), since).await?
        >= i64::from(s.procedure.auto_replies_per_sender_per_day)
    {
        tracing::info!(message_id = %m.message_id, "regulation request not answered: per-sender limit reached");
        return Ok(());
    }
    let text = match &s.organisation.regulation_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "organisation.regulation_file cannot be read; sending the link only");
                None
            }
        },
        None => None,
    };
    let lower = format!("{} {}", m.subject, m.text).to_lowercase();
    let paper = [
        "papier", "paper", "per post", "by post", "gedrukt", "printed", "afdruk",
    ]
    .iter()
    .any(|w| lower.contains(w));
    let lang = classify::language(&m.subject, &m.text);
    let name = client_name(m, from);
    let ctx = json!({
        "org": org_json(s), "reference": "", "lang": lang.as_str(),
        "client_name": name, "client_email": from.as_str(),
        "original_subject": m.subject, "body": m.text,
        "has_text": text.is_some(), "regulation_text": text.as_deref().unwrap_or(""),
        "paper": paper,
    });
    let rendered = app.renderer.render(lang, Template::Regulation, &ctx)?;
    let refs = compose::references_for_reply(&m.references, &m.message_id);
    let attachments: Vec<(String, String, Vec<u8>)> = text
        .iter()
        .map(|t| {
            (
                "klachtenreglement.txt".to_string(),
                "text/plain; charset=utf-8".to_string(),
                t.as_bytes().to_vec(),
            )
        })
        .collect();
    queue_mail(
        app,
        tx,
        &Mail {
            case_id: None,
            kind: "regulation",
            from_name: &s.organisation.name,
            to_name: &name,
            to: from,
            rendered: &rendered,
            in_reply_to: Some(&m.message_id),
            references: &refs,
            auto_reply: true,
            attachments: &attachments,
            inline: &[],
        },
        now,
    )
    .await?;
    if paper {
        let staff_lang = s.organisation.language;
        for sup in s.supervisors() {
            queue_staff_mail(
                app,
                tx,
                None,
                Template::RegulationPaper,
                staff_lang,
                &ctx,
                sup,
                "regulation_paper",
                None,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

pub(crate) fn org_json(s: &Settings) -> serde_json::Value {
    json!({
        "name": s.organisation.name,
        "address": s.organisation.address.as_str(),
        "regulation_url": s.organisation.regulation_url,
        "phone": s.organisation.phone,
        "website": s.organisation.website,
    })
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1024 * 1024 => format!("{:.1} MB", n as f64 / (1024.0 * 1024.0)),
        n if n >= 1024 => format!("{} kB", n / 1024),
        n => format!("{n} bytes"),
    }
}

/// One mail from the organisation's address, already rendered.
pub(crate) struct Mail<'a> {
    pub case_id: Option<i64>,
    pub kind: &'a str,
    pub from_name: &'a str,
    pub to_name: &'a str,
    pub to: &'a EmailAddress,
    pub rendered: &'a crate::mail::render::Rendered,
    /// Threading: the message answered, and the chain before it.
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    /// An automatic reply (RFC 3834 headers).
    pub auto_reply: bool,
    pub attachments: &'a [(String, String, Vec<u8>)],
    /// Inline images of the HTML part (see `compose::Outgoing::inline`).
    pub inline: &'a [(String, String, Vec<u8>)],
}

/// Composes `m` with a fresh random Message-ID and queues it in the outbox.
/// Returns the Message-ID and whether it was queued (the database refuses a
/// second acknowledgement of a case).
pub(crate) async fn queue_mail(
    app: &App,
    tx: &mut Tx,
    m: &Mail<'_>,
    now: Timestamp,
) -> Result<(String, bool)> {
    let s = &app.settings;
    let message_id = compose::new_message_id(&s.organisation.message_id_domain)?;
    let raw = compose::build(&Outgoing {
        message_id: &message_id,
        from_name: m.from_name,
        from: &s.organisation.address,
        to_name: m.to_name,
        to: m.to,
        reply_to: None,
        subject: &m.rendered.subject,
        text: &m.rendered.text,
        html: &m.rendered.html,
        in_reply_to: m.in_reply_to,
        references: m.references,
        auto_reply: m.auto_reply,
        date: now,
        kind: m.kind,
        attachments: m.attachments,
        inline: m.inline,
    })?;
    let queued = store::enqueue(
        tx,
        &NewOutMail {
            message_id: &message_id,
            case_id: m.case_id,
            kind: m.kind,
            recipient: m.to.as_str(),
            raw: &raw,
        },
        now,
    )
    .await?;
    Ok((message_id, queued))
}

/// A complaint taken by phone (art. 4): same pipeline, no inbound message.
pub struct PhoneComplaint {
    pub name: String,
    pub email: Option<EmailAddress>,
    pub phone: Option<String>,
    pub description: String,
    pub date: Option<String>,
    pub desired_outcome: Option<String>,
}

pub async fn register_phone_complaint(app: &App, p: &PhoneComplaint) -> Result<(CaseRef, Status)> {
    let now = app.clock.now();
    let mut body = p.description.trim().to_string();
    if let Some(d) = p.date.as_deref().filter(|d| !d.trim().is_empty()) {
        body.push_str(&format!("\n\nDatum / sessie: {}", d.trim()));
    }
    if let Some(d) = p
        .desired_outcome
        .as_deref()
        .filter(|d| !d.trim().is_empty())
    {
        body.push_str(&format!("\n\nGewenste uitkomst: {}", d.trim()));
    }
    let client = Client {
        name: p.name.trim().to_string(),
        email: p.email.clone(),
        phone: p.phone.clone(),
    };
    let subject = first_words(&p.description, 8);
    let mut tx = app.store.begin().await?;
    let r = open_case(
        app,
        &mut tx,
        CaseInput {
            source: "phone",
            client: &client,
            subject: &format!("Telefonische klacht: {subject}"),
            body: &body,
            received: now,
            triage: None,
            message: None,
            given: classify::Elements {
                nature: None,
                dates: p
                    .date
                    .as_deref()
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                desired_outcome: p
                    .desired_outcome
                    .as_deref()
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            },
            by_staff: false,
            reading: None,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    app.outbox_wake.notify_one();
    Ok((r.reference, r.status))
}

fn first_words(s: &str, n: usize) -> String {
    let words: Vec<&str> = s.split_whitespace().take(n).collect();
    let mut out = words.join(" ");
    if s.split_whitespace().count() > n {
        out.push('…');
    }
    out
}
