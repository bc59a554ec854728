//! Staff mail on a case: answers relayed to the client, commands, notes.
//!
//! Staff never log in anywhere: they answer klachtd's notifications from
//! their own mail client. An answer counts only when it comes from a roster
//! address AND refers to a Message-ID klachtd itself sent to that address
//! on this case (random, so unguessable). Everything is decided first and
//! written after, in the caller's transaction: a refused answer changes
//! nothing but the record that it was refused, and its sender is told why.

use anyhow::{Context, Result};
use jiff::civil::Date;
use jiff::Timestamp;
use serde_json::json;

use crate::app::App;
use crate::config::{Settings, Staff};
use crate::domain::assign::Assignment;
use crate::domain::command::{self, Command};
use crate::domain::event::{CaseEvent, EventKind, OutboxKind};
use crate::domain::types::{CaseRef, EmailAddress, Status};
use crate::flows::assign::{assignable, hand_over};
use crate::flows::notify::{self, case_dates, org, StaffMail};
use crate::flows::open_case;
use crate::flows::Work;
use crate::mail::parse::InboundMail;
use crate::mail::quote;
use crate::mail::render::context::{self, Named};
use crate::mail::render::long_date;
use crate::mail::sender_auth;
use crate::store::{self, CaseRow, CaseUpdate, NewCaseMessage, Tx};

/// The outbox kind of the answer to an unauthenticated staff mail.
const WARNING_KIND: OutboxKind = OutboxKind::StaffWarning;

/// What an accepted staff mail will do.
pub(super) struct Plan<'a> {
    command: Option<Command>,
    next: Status,
    /// Text for the client (already without quotes and command lines).
    relay: Option<String>,
    /// Why the answer is not relayed although it has text (for the receipt).
    not_relayed: Option<&'static str>,
    new_handler: Option<&'a Staff>,
    assignment_reason: String,
    new_due: Option<Date>,
    note: String,
}

/// Handles a mail from a roster address that threads onto `case_id`.
pub(crate) async fn staff_mail(
    w: &mut Work<'_>,
    case_id: i64,
    reference: &CaseRef,
    m: &InboundMail,
    staff: &Staff,
    at: Timestamp,
) -> Result<()> {
    let (app, now) = (w.app, w.now);
    let refs = m.referenced_ids();
    let case = store::case_in_tx(w.tx, case_id)
        .await?
        .context("case found by threading")?;
    let client = case.client_email.as_ref();
    let client_in_copy = client.is_some_and(|c| m.to.contains(c) || m.cc.contains(c));
    // A warning about a refused (possibly forged) mail does not count: a
    // puzzled "I did not send this" in answer to it must not reach the client.
    let answers_us = store::sent_to(w.tx, &refs, staff.email.as_str())
        .await?
        .is_some_and(|r| r.case_id == Some(case_id) && r.kind != WARNING_KIND);
    // Optionally also the receiving server's verdict (intake.sender_auth).
    let server_ok = server_vouches(app, m, staff);
    let authentic = answers_us && server_ok;
    let answer = quote::new_text(&m.text);
    let parsed = command::parse(&answer);
    let has_command = !matches!(parsed, Ok(command::Parsed { command: None, .. }));
    let who = staff.email.as_str();
    let mut data = json!({
        "direction": "in", "from": who, "message_id": m.message_id,
        "authenticated": authentic, "client_in_copy": client_in_copy,
    });

    if !authentic {
        // Possibly forged: on record as an event of what it claims, never
        // as this staff member's message, and never an answer.
        let only_copied = client_in_copy && !has_command;
        return not_authentic(w, &case, m, staff, &mut data, answers_us, only_copied).await;
    }
    record_staff_message(w.tx, case_id, m, staff, at).await?;

    let plan = match plan(
        app,
        w.tx,
        &case,
        staff,
        parsed,
        client.is_some(),
        client_in_copy,
    )
    .await?
    {
        Ok(p) => p,
        Err(why) => return refuse(w, &case, m, staff, &mut data, &why, true).await,
    };
    data["command"] = json!(plan.command.as_ref().map(|c| c.name()));
    store::add_event_data(
        w.tx,
        case_id,
        now,
        CaseEvent::StaffMessage,
        who,
        &m.message_id,
        &data,
    )
    .await?;
    let (fresh, done) = apply(w, &case, reference, m, staff, &plan).await?;
    if plan.command.is_some() {
        receipt(w, &fresh, m, staff, None, &done, true).await?;
    }
    Ok(())
}

/// A staff member's mail on the case's record, as they wrote it.
pub(crate) async fn record_staff_message(
    tx: &mut Tx,
    case_id: i64,
    m: &InboundMail,
    staff: &Staff,
    at: Timestamp,
) -> Result<()> {
    store::insert_case_message(
        tx,
        &NewCaseMessage {
            case_id,
            message_id: &m.message_id,
            sender: staff.email.as_str(),
            subject: &m.subject,
            at,
            body: &m.text,
            refs: &m.referenced_ids().join(" "),
        },
    )
    .await?;
    Ok(())
}

/// A staff mail that does not authenticate. Written to the client
/// directly with info@ in copy (`only_copied`), and no command: on record
/// only. Otherwise refused, and the answer goes to the roster address, so
/// the real person learns of the attempt; it names nothing of the case
/// they did not write.
async fn not_authentic(
    w: &mut Work<'_>,
    case: &CaseRow,
    m: &InboundMail,
    staff: &Staff,
    data: &mut serde_json::Value,
    answers_us: bool,
    only_copied: bool,
) -> Result<()> {
    if only_copied {
        store::add_event_data(
            w.tx,
            case.id,
            w.now,
            CaseEvent::StaffMessage,
            staff.email.as_str(),
            "written to the client directly; recorded, not relayed",
            data,
        )
        .await?;
        return Ok(());
    }
    let why = if answers_us {
        "de mailserver heeft niet bevestigd dat dit bericht echt van uw adres komt \
         (intake.sender_auth: DMARC/DKIM, Exchange of aanmelding bij de mailserver). \
         Er is niets gewijzigd en niets doorgestuurd. Verstuur het vanuit uw eigen \
         account bij de organisatie."
    } else {
        "dit bericht is geen antwoord op een e-mail die klachtd u over deze zaak stuurde. \
         Er is niets gewijzigd en niets doorgestuurd. Beantwoord de melding van klachtd \
         (gebruik 'Beantwoorden' in uw mailprogramma)."
    };
    refuse(w, case, m, staff, data, why, false).await
}

/// Decides what a staff answer does, or why it is refused. Reads only.
pub(super) async fn plan<'a>(
    app: &'a App,
    tx: &mut Tx,
    case: &CaseRow,
    staff: &Staff,
    parsed: Result<command::Parsed, command::ParseError>,
    client_has_email: bool,
    client_in_copy: bool,
) -> Result<Result<Plan<'a>, String>> {
    let s = &app.settings;
    if let Some(why) = may_not_answer(s, case, staff) {
        return Ok(Err(why));
    }
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(Err(format!("{e}."))),
    };
    let next = match next_status(case, &parsed.command) {
        Ok(n) => n,
        Err(why) => return Ok(Err(why)),
    };
    // The relayed mail is signed with the staff member's name: their own
    // closing would say it twice (and alone it is no answer).
    let text = without_closing(&parsed.text);
    if text.contains("##-") {
        // The quoted notification could not be cut off: never send it on.
        return Ok(Err(
            "uw nieuwe tekst was niet te scheiden van de geciteerde melding; er is niets \
             doorgestuurd. Zet uw antwoord boven de geciteerde tekst."
                .into(),
        ));
    }
    let mut plan = Plan {
        command: parsed.command,
        next,
        relay: None,
        not_relayed: None,
        new_handler: None,
        assignment_reason: String::new(),
        new_due: None,
        note: String::new(),
    };
    let needs_text_for_client = text.is_empty() && client_has_email && !client_in_copy;
    if let Err(why) =
        plan_command(s, tx, case, staff, &mut plan, &text, needs_text_for_client).await?
    {
        return Ok(Err(why));
    }
    let relays = plan.command.as_ref().is_none_or(Command::relays_text);
    // Extension and external route always tell the client, text or not.
    let notice = matches!(
        plan.command,
        Some(Command::Extend { .. } | Command::External)
    );
    if relays && (!text.is_empty() || notice) {
        if client_in_copy {
            plan.not_relayed = Some("de cliënt stond zelf al in uw bericht (Aan/Cc)");
        } else if !client_has_email {
            plan.not_relayed =
                Some("de cliënt heeft geen e-mailadres (telefonische klacht): breng het telefonisch over");
        } else {
            plan.relay = Some(text);
        }
    } else if !text.is_empty() {
        plan.note = text;
    }
    Ok(Ok(plan))
}

/// Why `staff` may not answer on `case`: it concerns them (art. 6 and 9),
/// or they are neither its handler nor a supervisor.
fn may_not_answer(s: &Settings, case: &CaseRow, staff: &Staff) -> Option<String> {
    let is = |e: &EmailAddress| *e == staff.email;
    if case.concerns.iter().any(is) {
        return Some(
            "deze klacht gaat (ook) over u; de behandeling ligt bij een ander (art. 6 en 9)."
                .into(),
        );
    }
    let is_handler = case.handler_email.as_ref().is_some_and(is);
    if is_handler || staff.roles.supervisor {
        return None;
    }
    Some(format!(
        "alleen de behandelaar{} of een leidinggevende kan op deze zaak reageren.",
        case.handler_email
            .as_ref()
            .and_then(|h| s.staff_by_email(h))
            .map(|h| format!(" ({})", h.name))
            .unwrap_or_default()
    ))
}

/// The status the case moves to, or why the command cannot be used now.
fn next_status(case: &CaseRow, command: &Option<Command>) -> Result<Status, String> {
    match command {
        Some(c) => c
            .next_status(case.status, case.handler_email.is_some())
            .map_err(|e| format!("{e}.")),
        None if case.status == Status::Triage => Err(
            "deze melding wacht op beoordeling en gaat nog niet naar de cliënt. Antwoord met \
             /klacht (het is een klacht) of /geen-klacht, of met /intern voor een notitie."
                .into(),
        ),
        None => Ok(command::after_answer(case.status)),
    }
}

/// What the command itself needs: a text, a new response date, a new
/// handler. The inner error is the refusal.
async fn plan_command<'a>(
    s: &'a Settings,
    tx: &mut Tx,
    case: &CaseRow,
    staff: &Staff,
    plan: &mut Plan<'a>,
    text: &str,
    needs_text_for_client: bool,
) -> Result<Result<(), String>> {
    match &plan.command {
        None if text.is_empty() => return Ok(Err(
            "er stond geen nieuwe tekst boven de geciteerde mail, dus er is niets doorgestuurd."
                .into(),
        )),
        Some(c) if c.needs_text() && needs_text_for_client => {
            return Ok(Err(format!(
            "{}: schrijf de tekst voor de cliënt onder de opdracht; die tekst gaat naar de cliënt.",
            c.name()
        )))
        }
        Some(Command::Extend { days, .. }) => {
            plan.new_due = Some(s.calendar.add_working_days(case.response_due, *days));
        }
        Some(Command::Assign { who }) => {
            let target = match assignable(s, case, who) {
                Ok(t) => t,
                Err(e) => return Ok(Err(format!("/toewijzen: {e}. Er is niets gewijzigd."))),
            };
            plan.new_handler = Some(target);
            plan.assignment_reason = format!("toegewezen door {}", staff.name);
        }
        Some(Command::Complaint) => match open_case::assign(s, tx, &case.concerns).await? {
            Assignment::Handler { email, reason } | Assignment::Supervisor { email, reason } => {
                plan.new_handler = s.staff_by_email(&email);
                plan.assignment_reason = reason;
            }
            Assignment::Nobody { reason } => {
                return Ok(Err(format!(
                "/klacht: er is geen onafhankelijke behandelaar ({reason}). Er is niets gewijzigd."
            )))
            }
        },
        _ => {}
    }
    Ok(Ok(()))
}

/// Writes what the plan says: case row, timeline, mail to the client and
/// the colleague. Returns the case as it is now and what was done, for the
/// caller's receipt.
pub(super) async fn apply(
    w: &mut Work<'_>,
    case: &CaseRow,
    reference: &CaseRef,
    m: &InboundMail,
    staff: &Staff,
    plan: &Plan<'_>,
) -> Result<(CaseRow, Vec<String>)> {
    let who = staff.email.as_str();
    update_case_row(w, case, plan, who).await?;
    let mut done: Vec<String> = Vec::new();
    if let Some(detail) = record_command(w, case, plan, m, who).await? {
        done.push(detail);
    }
    let fresh = store::case_in_tx(w.tx, case.id).await?.context("case")?;
    if let Some(text) = &plan.relay {
        let kind = match plan.command {
            Some(Command::Proposal) => OutboxKind::Proposal,
            Some(Command::Rejection) => OutboxKind::Rejection,
            Some(Command::Extend { .. }) => OutboxKind::Extension,
            Some(Command::External) => OutboxKind::External,
            _ => OutboxKind::Answer,
        };
        queue_to_client(w, &fresh, staff, kind, text, plan, m).await?;
        done.push("uw tekst is vanaf het algemene adres naar de cliënt gestuurd".into());
    } else if let Some(why) = plan.not_relayed {
        done.push(format!("niet naar de cliënt gestuurd: {why}"));
    }
    if let Some(h) = plan.new_handler {
        let note = (!plan.note.is_empty()).then_some((staff, plan.note.as_str()));
        let (acked, _) = hand_over(
            w,
            case,
            &fresh,
            h,
            &plan.assignment_reason,
            note,
            Some(staff),
        )
        .await?;
        if acked {
            done.push("de cliënt krijgt nu een ontvangstbevestiging".into());
        }
        done.push(format!(
            "{} heeft de zaak met alle gegevens ontvangen",
            h.name
        ));
    }
    tracing::info!(reference = %reference, message_id = %m.message_id,
        command = plan.command.as_ref().map(|c| c.name()).unwrap_or("-"),
        relayed = plan.relay.is_some(), "staff answer handled");
    Ok((fresh, done))
}

/// The case row as the plan leaves it: status (with its event), handler,
/// response date, closed or reopened, out of triage.
async fn update_case_row(
    w: &mut Work<'_>,
    case: &CaseRow,
    plan: &Plan<'_>,
    who: &str,
) -> Result<()> {
    let now = w.now;
    let mut update = CaseUpdate::default();
    if plan.next != case.status {
        update.status = Some(plan.next);
        store::add_event_data(
            w.tx,
            case.id,
            now,
            CaseEvent::Status,
            who,
            &format!("{} -> {}", case.status, plan.next),
            &json!({"from": case.status.as_str(), "to": plan.next.as_str()}),
        )
        .await?;
    }
    if let Some(h) = plan.new_handler {
        update.handler_email = Some(h.email.as_str());
    }
    update.response_due = plan.new_due;
    match plan.next {
        Status::Closed if case.status != Status::Closed => update.closed_at = Some(Some(now)),
        st if case.status == Status::Closed && st != Status::Closed => {
            update.closed_at = Some(None)
        }
        _ => {}
    }
    if case.status == Status::Triage && plan.next != Status::Triage {
        update.clear_triage = true;
    }
    store::update_case(w.tx, case.id, &update).await?;

    Ok(())
}

/// The command's events (its own kind, and `command`) and a note's event.
/// Returns the command's detail, for the receipt.
async fn record_command(
    w: &mut Work<'_>,
    case: &CaseRow,
    plan: &Plan<'_>,
    m: &InboundMail,
    who: &str,
) -> Result<Option<String>> {
    let now = w.now;
    let mut recorded = None;
    if let Some(c) = &plan.command {
        let (kind, detail, extra) = command_event(c, case, plan);
        store::add_event_data(w.tx, case.id, now, kind, who, &detail, &extra).await?;
        store::add_event_data(
            w.tx,
            case.id,
            now,
            CaseEvent::Command,
            who,
            &c.to_string(),
            &json!({"command": c.name(), "result": "ok", "message_id": m.message_id}),
        )
        .await?;
        recorded = Some(detail);
    }
    if !plan.note.is_empty() {
        store::add_event_data(
            w.tx,
            case.id,
            now,
            CaseEvent::Note,
            who,
            &m.message_id,
            &json!({"message_id": m.message_id}),
        )
        .await?;
    }

    Ok(recorded)
}

/// The timeline event a command leaves: kind, human detail, structured data.
fn command_event(
    c: &Command,
    case: &CaseRow,
    plan: &Plan,
) -> (CaseEvent, String, serde_json::Value) {
    match c {
        Command::Proposal => (
            CaseEvent::Proposal,
            "voorstel aan de cliënt (art. 7)".into(),
            json!({}),
        ),
        Command::Rejection => (
            CaseEvent::Rejection,
            "gemotiveerde afwijzing (art. 7)".into(),
            json!({}),
        ),
        Command::Extend { days, reason } => {
            let new = plan.new_due.map(|d| d.to_string()).unwrap_or_default();
            (
                CaseEvent::Extended,
                format!("termijn verlengd met {days} werkdagen tot {new}: {reason}"),
                json!({"old_due": case.response_due.to_string(), "new_due": new, "days": days, "reason": reason}),
            )
        }
        Command::Agreed => (
            CaseEvent::Agreed,
            "de cliënt is akkoord (art. 7)".into(),
            json!({}),
        ),
        Command::External => (
            CaseEvent::External,
            "de cliënt is gewezen op de externe klachtencommissie (art. 8)".into(),
            json!({}),
        ),
        Command::Assign { .. } | Command::Complaint => {
            let to = plan
                .new_handler
                .map(|h| h.email.as_str())
                .unwrap_or_default();
            let kind = if matches!(c, Command::Complaint) {
                CaseEvent::Accepted
            } else {
                CaseEvent::Reassigned
            };
            (
                kind,
                format!("behandelaar: {to} ({})", plan.assignment_reason),
                json!({"old_handler": case.handler_email, "new_handler": to}),
            )
        }
        Command::Internal => (CaseEvent::NoteCommand, "interne notitie".into(), json!({})),
        Command::NotComplaint => (CaseEvent::Dismissed, "geen klacht".into(), json!({})),
        Command::Close { reason } => (CaseEvent::Closed, or_default(reason, "gesloten"), json!({})),
        Command::Reopen { reason } => (
            CaseEvent::Reopened,
            or_default(reason, "heropend"),
            json!({}),
        ),
    }
}

fn or_default(s: &str, d: &str) -> String {
    if s.trim().is_empty() {
        d.to_string()
    } else {
        s.trim().to_string()
    }
}

/// A staff answer, refused: on record, and its sender is told why.
async fn refuse(
    w: &mut Work<'_>,
    case: &CaseRow,
    m: &InboundMail,
    staff: &Staff,
    data: &mut serde_json::Value,
    why: &str,
    known: bool,
) -> Result<()> {
    let now = w.now;
    data["result"] = json!("refused");
    data["error"] = json!(why);
    store::add_event_data(
        w.tx,
        case.id,
        now,
        CaseEvent::StaffMailRefused,
        staff.email.as_str(),
        why,
        data,
    )
    .await?;
    tracing::info!(reference = %case.reference, message_id = %m.message_id, "staff mail refused");
    if !known {
        // One warning per person and case an hour, and a few per person an
        // hour over all cases: an auto-responder that slipped past the
        // header checks cannot start a loop with us, and forged mail cannot
        // make us flood a colleague.
        let since = now
            .checked_sub(jiff::SignedDuration::from_hours(1))
            .unwrap_or(now);
        let to = staff.email.as_str();
        let cap = i64::from(w.app.settings.intake.staff_warnings_per_hour);
        if store::sent_since(w.tx, Some(case.id), to, WARNING_KIND, since).await? > 0
            || store::sent_since(w.tx, None, to, WARNING_KIND, since).await? >= cap
        {
            return Ok(());
        }
    }
    receipt(w, case, m, staff, Some(why), &[], known).await
}

/// The answer to a staff member's mail: what was done, or why nothing was.
pub(crate) async fn receipt(
    w: &mut Work<'_>,
    case: &CaseRow,
    m: &InboundMail,
    staff: &Staff,
    error: Option<&str>,
    done: &[String],
    known: bool,
) -> Result<()> {
    let app = w.app;
    let s = &app.settings;
    let lang = s.organisation.language;
    let d = case_dates(s, case);
    let ctx = context::CommandResult {
        org: org(s),
        reference: case.reference.to_string(),
        staff: Named { name: &staff.name },
        ok: error.is_none(),
        error: error.unwrap_or(""),
        done,
        status: case.status.as_str(),
        response_due: long_date(lang, d.response_due),
        original_subject: if known { case.subject.as_str() } else { "" },
        their_subject: &m.subject,
        items: vec![],
    };
    notify::queue_staff_mail(
        w,
        staff,
        StaffMail {
            case_id: Some(case.id),
            rendered: &app.renderer.render(lang, &ctx)?,
            kind: if known {
                OutboxKind::StaffReceipt
            } else {
                WARNING_KIND
            },
            answering: Some(m),
        },
    )
    .await
}

/// Mail to the client from the organisation's address, in the client's
/// thread, signed with the staff member's name.
async fn queue_to_client(
    w: &mut Work<'_>,
    case: &CaseRow,
    staff: &Staff,
    kind: OutboxKind,
    text: &str,
    plan: &Plan<'_>,
    answering: &InboundMail,
) -> Result<()> {
    let (app, now) = (w.app, w.now);
    let s = &app.settings;
    let to = case
        .client_email
        .as_ref()
        .context("client has an address")?;
    let lang = case.language;
    let d = case_dates(s, case);
    let reason = match &plan.command {
        Some(Command::Extend { reason, .. }) => reason.as_str(),
        _ => "",
    };
    let ctx = context::ToClient {
        org: org(s),
        reference: case.reference.to_string(),
        original_subject: &case.subject,
        kind: kind.as_str(),
        text,
        staff: Named { name: &staff.name },
        response_due: long_date(lang, d.response_due),
        reason,
        external_body: &s.organisation.external_body,
    };
    let rendered = app.renderer.render(lang, &ctx)?;
    let thread = store::client_thread(w.tx, case.id, to.as_str()).await?;
    let (message_id, _) = notify::queue_mail(
        app,
        w.tx,
        &notify::Mail {
            case_id: Some(case.id),
            kind,
            from_name: &s.organisation.name,
            to_name: &case.client_name,
            to,
            rendered: &rendered,
            in_reply_to: thread.last().map(String::as_str),
            references: &trim_references(&thread),
            auto_reply: false,
            attachments: &[],
            inline: &[],
        },
        now,
    )
    .await?;
    store::add_event_data(
        w.tx,
        case.id,
        now,
        EventKind::queued(kind),
        staff.email.as_str(),
        &message_id,
        &json!({"relayed_from": answering.message_id, "message_id": message_id}),
    )
    .await?;
    Ok(())
}

/// Closings that mail clients' users put above their name.
const CLOSINGS: &[&str] = &[
    "met vriendelijke groet",
    "met vriendelijke groeten",
    "vriendelijke groet",
    "vriendelijke groeten",
    "hartelijke groet",
    "hartelijke groeten",
    "groet",
    "groeten",
    "mvg",
    "kind regards",
    "best regards",
    "regards",
    "best wishes",
    "best",
    "cheers",
    "thanks",
];

/// The text without a closing at its end: a line like "Met vriendelijke
/// groet," followed by at most three short lines (name, function, phone).
fn without_closing(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    let is_closing = |l: &str| {
        let l = l.trim().trim_end_matches([',', '.', '!']).to_lowercase();
        CLOSINGS.contains(&l.as_str())
    };
    let cut = lines.iter().enumerate().rev().take(5).find_map(|(i, l)| {
        let after = &lines[i + 1..];
        (is_closing(l)
            && after.iter().filter(|a| !a.trim().is_empty()).count() <= 3
            && after.iter().all(|a| a.trim().chars().count() <= 40))
        .then_some(i)
    });
    match cut {
        Some(i) => lines[..i].join("\n").trim().to_string(),
        None => text.trim().to_string(),
    }
}

/// References stay short: the first message (the thread's root) and the
/// most recent ones, as RFC 5322 suggests.
fn trim_references(ids: &[String]) -> Vec<String> {
    const MAX: usize = 20;
    if ids.len() <= MAX {
        return ids.to_vec();
    }
    let mut out = vec![ids[0].clone()];
    out.extend_from_slice(&ids[ids.len() - (MAX - 1)..]);
    out
}

/// The receiving server's verdict on staff mail, when `intake.sender_auth`
/// asks for one (otherwise it does not count).
pub(crate) fn server_vouches(app: &App, m: &InboundMail, staff: &Staff) -> bool {
    sender_auth::vouches(&app.settings.intake.sender_auth, &m.headers, &staff.email)
}

#[cfg(test)]
mod tests {
    use super::trim_references;

    #[test]
    fn a_closing_above_the_name_is_cut_and_nothing_else() {
        use super::without_closing;
        assert_eq!(
            without_closing(
                "Beste Jan,\n\nPrima.\n\nMet vriendelijke groet,\nAnna\nCoach | 06-12345678"
            ),
            "Beste Jan,\n\nPrima."
        );
        assert_eq!(without_closing("Met vriendelijke groet,\nAnna"), "");
        assert_eq!(without_closing("Kind regards,\n\nAnna de Vries"), "");
        // A closing word inside the answer, or followed by real text, stays.
        let t =
            "Groeten aan uw partner.\nWij bellen u morgen over de nieuwe afspraak en de factuur.";
        assert_eq!(without_closing(t), t);
        let t = "Dank u.\nGroet,\nAnna\nPS: de nieuwe sessie is op dinsdag 1 december om 10 uur in Amsterdam.";
        assert_eq!(without_closing(t), t);
    }

    #[test]
    fn references_keep_the_root_and_the_latest() {
        let ids: Vec<String> = (0..30).map(|i| format!("<{i}@x>")).collect();
        let r = trim_references(&ids);
        assert_eq!(r.len(), 20);
        assert_eq!(r[0], "<0@x>");
        assert_eq!(r[1], "<11@x>");
        assert_eq!(r.last().unwrap(), "<29@x>");
        assert_eq!(trim_references(&ids[..3]), ids[..3].to_vec());
    }
}
