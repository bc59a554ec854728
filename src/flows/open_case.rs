//! Opening a case (art. 3-6): handler, deadlines, timeline, the
//! acknowledgement and the handler's notification, in the caller's
//! transaction. Shared by mail intake, phone intake, forwards and staff
//! overrule.

use anyhow::{Context, Result};
use jiff::civil::Date;
use jiff::Timestamp;
use serde_json::json;

use crate::app::App;
use crate::clock::db_time;
use crate::config::{local_date, Settings, Staff};
use crate::domain::assign::{pick_handler, Assignment, Candidate};
use crate::domain::case::Source;
use crate::domain::classify::{self, RosterEntry};
use crate::domain::event::{CaseEvent, OutboxKind};
use crate::domain::types::{CaseRef, Category, Element, EmailAddress, Lang, Status};
use crate::flows::notify::{
    concerns, org, queue_ack, queue_handler_new, queue_to_supervisors, StaffMail,
};
use crate::flows::Work;
use crate::mail::parse::InboundMail;
use crate::mail::render::{context, long_date, Rendered};
use crate::store::{self, NewCase, NewCaseMessage, Tx};

pub(crate) fn roster(settings: &Settings) -> Vec<RosterEntry<'_>> {
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
        source: Source::Email,
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
    /// The sender's mailbox already opened this many cases in 24 hours: a
    /// flood, or someone using klachtd to mail a forged address; no
    /// automatic reply, and no mail per item (the digest lists it).
    Flood(i64),
}

pub struct CaseInput<'a> {
    pub source: Source,
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

/// What a new case will be, decided before anything is written: its terms,
/// its reading, who it concerns, its handler, and whether it waits for a
/// supervisor.
struct Decided<'s> {
    received_day: Date,
    ack_due: Date,
    response_due: Date,
    today: Date,
    lang: Lang,
    category: Category,
    elements: classify::Elements,
    missing: Vec<Element>,
    concerned: Vec<EmailAddress>,
    concerns: Vec<String>,
    handler: Option<&'s Staff>,
    assign_reason: String,
    /// Why this case waits for a supervisor instead of being acknowledged.
    triage_reason: Option<String>,
    status: Status,
}

/// Records a new case (or triage item) with its handler, deadlines, timeline
/// and outgoing mail. Shared by email intake and `register` (phone, art. 4).
pub async fn open_case(app: &App, tx: &mut Tx, c: CaseInput<'_>, now: Timestamp) -> Result<Opened> {
    let mut w = Work { app, tx, now };
    let (c, d) = decide(&mut w, c).await?;
    let (case_id, reference) = record(&mut w, &c, &d).await?;
    record_first_message(&mut w, &c, case_id).await?;
    if let Some(reason) = &d.triage_reason {
        tell_supervisors(&mut w, &c, &d, (case_id, reference), reason).await?;
    } else {
        assign_and_acknowledge(&mut w, &d, case_id).await?;
    }
    Ok(Opened {
        id: case_id,
        reference,
        status: d.status,
    })
}

/// Reads the mail once and decides terms, elements, concerns, handler and
/// triage.
async fn decide<'a, 's>(
    w: &mut Work<'s>,
    mut c: CaseInput<'a>,
) -> Result<(CaseInput<'a>, Decided<'s>)> {
    let app = w.app;
    let s = &app.settings;
    let tz = &s.organisation.timezone;
    let received_day = local_date(c.received, tz);
    let ack_due = s
        .calendar
        .add_working_days(received_day, s.procedure.ack_working_days);
    let response_due = s
        .calendar
        .add_working_days(received_day, s.procedure.response_working_days);
    let today = local_date(w.now, tz);

    let reading = c
        .reading
        .take()
        .unwrap_or_else(|| classify::read(c.subject, c.body));
    let lang = reading.lang();
    let mut elements = reading.elements();
    drop(reading);
    elements.dates = c.given.dates.clone().or(elements.dates);
    elements.desired_outcome = c.given.desired_outcome.clone().or(elements.desired_outcome);
    elements.nature = c.given.nature.clone().or(elements.nature);
    let concerned = classify::concerned(c.subject, c.body, &roster(s));

    let (handler, assign_reason) = match assign(s, w.tx, &concerned).await? {
        Assignment::Handler { email, reason } | Assignment::Supervisor { email, reason } => {
            (s.staff_by_email(&email), reason)
        }
        Assignment::Nobody { reason } => (None, reason),
    };
    let triage_reason: Option<String> = match &c.triage {
        Some(TriageWhy::Unsure(p)) => Some(format!("mogelijk een klacht (kans {:.0}%)", p * 100.0)),
        Some(TriageWhy::Forwarded(by)) => Some(format!(
            "doorgestuurd door {by} met /klacht; een leidinggevende bevestigt met /klacht"
        )),
        Some(TriageWhy::Flood(n)) => Some(format!(
            "{n} eerdere meldingen van dit adres in 24 uur: geen automatisch antwoord; \
             een leidinggevende beoordeelt"
        )),
        None if ack_due < today && !c.by_staff => Some(format!(
            "ontvangen op {received_day}, de bevestigingstermijn (uiterlijk {ack_due}) is al verstreken"
        )),
        None if handler.is_none() => Some("geen onafhankelijke behandelaar beschikbaar".into()),
        None => None,
    };
    let d = Decided {
        received_day,
        ack_due,
        response_due,
        today,
        lang,
        category: classify::category(c.subject, c.body),
        missing: elements.missing(),
        elements,
        concerns: concerned.iter().map(|e| e.to_string()).collect(),
        concerned,
        handler,
        assign_reason,
        status: if triage_reason.is_some() {
            Status::Triage
        } else {
            Status::Received
        },
        triage_reason,
    };
    Ok((c, d))
}

/// The subject as the register keeps it.
fn case_subject<'a>(c: &CaseInput<'a>) -> &'a str {
    match c.subject.trim() {
        "" => "(geen onderwerp)",
        s => s,
    }
}

/// Inserts the case and its first timeline events.
async fn record(w: &mut Work<'_>, c: &CaseInput<'_>, d: &Decided<'_>) -> Result<(i64, CaseRef)> {
    let now = w.now;
    let reference = store::next_reference(w.tx, d.received_day.year() as i32).await?;
    let case_id = store::insert_case(
        w.tx,
        reference,
        &NewCase {
            status: d.status,
            category: d.category,
            language: d.lang,
            source: c.source,
            client_name: &c.client.name,
            client_email: c.client.email.as_ref().map(|e| e.as_str()),
            client_phone: c.client.phone.as_deref(),
            subject: case_subject(c),
            body: c.body,
            nature: d.elements.nature.as_deref(),
            dates: d.elements.dates.as_deref(),
            desired_outcome: d.elements.desired_outcome.as_deref(),
            missing: &d.missing,
            concerns: &d.concerns,
            // A triage item has no handler until a supervisor makes it a case.
            handler_email: d
                .handler
                .filter(|_| d.status != Status::Triage)
                .map(|h| h.email.as_str()),
            received_at: c.received,
            ack_due: d.ack_due,
            response_due: d.response_due,
            triage_reason: d.triage_reason.as_deref(),
            created_at: now,
        },
    )
    .await?;
    // Counted when recorded; a transaction that then fails is rare and
    // retried, so the counter may run one ahead of the register.
    w.app.metrics.case_opened(c.source.as_str());
    let first = c.message.map(|m| {
        json!({
            "direction": "in",
            "from": c.client.email.as_ref().map(|e| e.as_str()),
            "message_id": m.message_id,
        })
    });
    let received = format!("{} via {}", db_time(c.received), c.source);
    let first = first.unwrap_or(serde_json::Value::Null);
    store::add_event_data(
        w.tx,
        case_id,
        now,
        CaseEvent::Received,
        c.source.as_str(),
        &received,
        &first,
    )
    .await?;
    let classified = format!("category {}, language {}", d.category, d.lang);
    store::add_event(
        w.tx,
        case_id,
        now,
        CaseEvent::Classified,
        "klachtd",
        &classified,
    )
    .await?;
    if !d.concerns.is_empty() {
        let concerns = d.concerns.join(", ");
        store::add_event(
            w.tx,
            case_id,
            now,
            CaseEvent::Concerns,
            "klachtd",
            &concerns,
        )
        .await?;
    }
    if let Some(full) = c.message.and_then(|m| m.truncated_from) {
        let kept = w.app.settings.intake.max_message_bytes;
        let detail = format!("message of {full} bytes; the first {kept} bytes were kept");
        store::add_event(w.tx, case_id, now, CaseEvent::Truncated, "klachtd", &detail).await?;
    }
    Ok((case_id, reference))
}

/// Keeps the mail that opened the case and its attachments.
async fn record_first_message(w: &mut Work<'_>, c: &CaseInput<'_>, case_id: i64) -> Result<()> {
    let Some(m) = c.message else {
        return Ok(());
    };
    let from = c.client.email.as_ref().map(|e| e.as_str());
    let refs = m.referenced_ids().join(" ");
    let message = NewCaseMessage {
        case_id,
        message_id: &m.message_id,
        sender: from.unwrap_or_default(),
        subject: &m.subject,
        at: c.received,
        body: &m.text,
        refs: &refs,
    };
    let Some(cm_id) = store::insert_case_message(w.tx, &message).await? else {
        return Ok(());
    };
    for a in &m.attachments {
        let data = a.data.as_deref();
        store::insert_attachment(w.tx, cm_id, &a.filename, &a.content_type, a.size, data).await?;
    }
    Ok(())
}

/// A triage item: the supervisors who are not concerned are told (unless a
/// possible complaint waits for the digest).
async fn tell_supervisors(
    w: &mut Work<'_>,
    c: &CaseInput<'_>,
    d: &Decided<'_>,
    (case_id, reference): (i64, CaseRef),
    reason: &str,
) -> Result<()> {
    let app = w.app;
    let s = &app.settings;
    store::add_event(w.tx, case_id, w.now, CaseEvent::Triage, "klachtd", reason).await?;
    // A possible complaint waits for the digest when so configured: a busy
    // box does not send a mail per item.
    let quiet = matches!(c.triage, Some(TriageWhy::Flood(_)))
        || matches!(c.triage, Some(TriageWhy::Unsure(_)))
            && s.triage_mail == crate::config::TriageMail::Digest;
    if quiet {
        return Ok(());
    }
    let rendered = triage_notice(app, c, d, &reference.to_string(), reason)?;
    let mail = StaffMail {
        case_id: Some(case_id),
        rendered: &rendered,
        kind: OutboxKind::TriageNotice,
        answering: None,
    };
    let warned = queue_to_supervisors(w, &d.concerned, mail).await?;
    if warned == 0 {
        tracing::warn!(reference = %reference, "triage item has no supervisor who is not concerned");
    }
    Ok(())
}

/// The supervisors' notice of a triage item: `unassigned` when no
/// independent handler could be found for a clear complaint, else `triage`.
fn triage_notice(
    app: &App,
    c: &CaseInput<'_>,
    d: &Decided<'_>,
    reference: &str,
    reason: &str,
) -> Result<Rendered> {
    let s = &app.settings;
    let staff_lang = s.organisation.language;
    if d.handler.is_none() && c.triage.is_none() && d.ack_due >= d.today {
        let ctx = context::Unassigned {
            org: org(s),
            reference: reference.to_string(),
            original_subject: case_subject(c),
            concerns: concerns(s, &d.concerned),
            reason,
        };
        return app.renderer.render(staff_lang, &ctx);
    }
    let score = match c.triage {
        Some(TriageWhy::Unsure(p)) => format!("{:.0}%", p * 100.0),
        _ => String::new(),
    };
    let ctx = context::Triage {
        org: org(s),
        reference: reference.to_string(),
        client_name: &c.client.name,
        client_email: c.client.email.as_ref().map(|e| e.as_str()).unwrap_or(""),
        original_subject: case_subject(c),
        received: long_date(staff_lang, d.received_day),
        reason,
        body: c.body,
        score,
    };
    app.renderer.render(staff_lang, &ctx)
}

/// A clear complaint: its handler is recorded and told, and the client
/// gets the acknowledgement (art. 5).
async fn assign_and_acknowledge(w: &mut Work<'_>, d: &Decided<'_>, case_id: i64) -> Result<()> {
    let handler = d.handler.context("a case out of triage has a handler")?;
    let detail = format!("{}: {}", handler.email, d.assign_reason);
    store::add_event(
        w.tx,
        case_id,
        w.now,
        CaseEvent::Assigned,
        "klachtd",
        &detail,
    )
    .await?;
    let row = store::case_in_tx(w.tx, case_id)
        .await?
        .context("case recorded above")?;
    queue_ack(w.app, w.tx, &row, handler, w.now).await?;
    queue_handler_new(w, &row, handler, &d.assign_reason, None).await
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
