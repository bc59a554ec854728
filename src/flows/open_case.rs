//! Opening a case (art. 3-6): handler, deadlines, timeline, the
//! acknowledgement and the handler's notification, in the caller's
//! transaction. Shared by mail intake, phone intake, forwards and staff
//! overrule.

use anyhow::{Context, Result};
use jiff::Timestamp;
use serde_json::json;

use crate::app::App;
use crate::clock::db_time;
use crate::config::{local_date, Settings};
use crate::domain::assign::{pick_handler, Assignment, Candidate};
use crate::domain::classify::{self, RosterEntry};
use crate::domain::event::{CaseEvent, OutboxKind};
use crate::domain::types::{CaseRef, EmailAddress, Status};
use crate::flows::notify::{
    concerns_json, human_size, org_json, queue_ack, queue_handler_new, queue_staff_mail, StaffMail,
};
use crate::flows::Work;
use crate::mail::parse::InboundMail;
use crate::mail::render::{long_date, Template};
use crate::store::{self, NewCase, NewCaseMessage, Tx};

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
    /// A staff member made this a complaint (`crate::flows::overrule`): it is
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
        CaseEvent::Received,
        c.source,
        &format!("{} via {}", db_time(c.received), c.source),
        first.as_ref().unwrap_or(&serde_json::Value::Null),
    )
    .await?;
    store::add_event(
        tx,
        case_id,
        now,
        CaseEvent::Classified,
        "klachtd",
        &format!("category {category}, language {lang}"),
    )
    .await?;
    if !concerns.is_empty() {
        store::add_event(
            tx,
            case_id,
            now,
            CaseEvent::Concerns,
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
            CaseEvent::Truncated,
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
        store::add_event(tx, case_id, now, CaseEvent::Triage, "klachtd", reason).await?;
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
                &mut Work { app, tx, now },
                sup,
                StaffMail {
                    case_id: Some(case_id),
                    template,
                    lang: staff_lang,
                    ctx: &ctx,
                    kind: OutboxKind::TriageNotice,
                    answering: None,
                },
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
        CaseEvent::Assigned,
        "klachtd",
        &format!("{}: {}", handler.email, assign_reason),
    )
    .await?;
    let row = store::case_in_tx(tx, case_id)
        .await?
        .context("case recorded above")?;
    let ack_queued = queue_ack(app, tx, &row, handler, now).await?;
    queue_handler_new(
        &mut Work { app, tx, now },
        &row,
        handler,
        &assign_reason,
        ack_queued,
        None,
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
