//! A client's reply on an open case: recorded on the timeline and passed on
//! to the handler (never to a person the complaint concerns).

use anyhow::{Context, Result};
use jiff::Timestamp;
use serde_json::json;

use crate::domain::assign::Assignment;
use crate::domain::event::{CaseEvent, OutboxKind};
use crate::domain::types::{CaseRef, EmailAddress, Status};
use crate::flows::assign::hand_over;
use crate::flows::notify::{org, queue_staff_mail, StaffMail};
use crate::flows::open_case::{assign, roster};
use crate::flows::Work;
use crate::mail::parse::InboundMail;
use crate::mail::render::{context, long_date};
use crate::store::{self, CaseUpdate, NewCaseMessage};

pub(crate) async fn record_reply(
    w: &mut Work<'_>,
    case_id: i64,
    reference: &CaseRef,
    m: &InboundMail,
    from: &EmailAddress,
    at: Timestamp,
) -> Result<()> {
    let (app, now) = (w.app, w.now);
    let s = &app.settings;
    let refs = m.referenced_ids().join(" ");
    store::insert_case_message(
        w.tx,
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
        w.tx,
        case_id,
        now,
        CaseEvent::ClientReply,
        "client",
        &m.message_id,
        &json!({"direction": "in", "from": from.as_str(), "message_id": m.message_id}),
    )
    .await?;
    // Staff the reply names are concerned from now on; a handler among
    // them gives the case up (art. 6 and 9).
    let Some(mut case) = store::case_in_tx(w.tx, case_id).await? else {
        return Ok(());
    };
    if newly_concerned(w, &case, m).await? {
        case = store::case_in_tx(w.tx, case_id)
            .await?
            .context("case just updated")?;
    }
    // Pass the client's reply on to the handler (never to anyone concerned).
    let Some(handler) = case
        .handler_email
        .as_ref()
        .and_then(|h| s.staff_by_email(h).cloned())
    else {
        return Ok(());
    };
    if case.concerns.contains(&handler.email) {
        return Ok(());
    }
    let lang = s.organisation.language;
    let due = case.response_due;
    let ctx = context::ClientReplyToHandler {
        org: org(s),
        reference: reference.to_string(),
        client_name: &case.client_name,
        original_subject: &case.subject,
        body: crate::mail::quote::new_text(&m.text),
        response_due: long_date(lang, due),
        closed: case.status == Status::Closed,
    };
    queue_staff_mail(
        w,
        &handler,
        StaffMail {
            case_id: Some(case_id),
            rendered: &app.renderer.render(lang, &ctx)?,
            kind: OutboxKind::ClientReplyNotice,
            answering: None,
        },
    )
    .await
}

/// The staff a client's follow-up names (in its new text) join the persons
/// concerned. When the handler is one of them, the case goes to an
/// independent handler, or to triage when there is none; the concerned
/// handler is not told. Returns whether the case changed.
async fn newly_concerned(w: &mut Work<'_>, case: &store::CaseRow, m: &InboundMail) -> Result<bool> {
    let s = &w.app.settings;
    let text = crate::mail::quote::new_text(&m.text);
    let named = crate::domain::classify::named_in_follow_up(&text, &roster(s));
    let added: Vec<EmailAddress> = named
        .into_iter()
        .filter(|e| !case.concerns.contains(e))
        .collect();
    if added.is_empty() {
        return Ok(false);
    }
    let mut all = case.concerns.clone();
    all.extend(added.iter().cloned());
    store::set_concerns(w.tx, case.id, &all).await?;
    let list: Vec<&str> = added.iter().map(EmailAddress::as_str).collect();
    store::add_event_data(
        w.tx,
        case.id,
        w.now,
        CaseEvent::Concerns,
        "klachtd",
        &format!("ook genoemd in een vervolgbericht: {}", list.join(", ")),
        &json!({"added": list}),
    )
    .await?;
    let handler_concerned = case
        .handler_email
        .as_ref()
        .is_some_and(|h| added.contains(h));
    if handler_concerned && case.status != Status::Closed {
        give_up_case(w, case, &all).await?;
    }
    Ok(true)
}

/// The handler is concerned now: an independent handler gets the case, or
/// it waits in triage for a supervisor.
async fn give_up_case(
    w: &mut Work<'_>,
    case: &store::CaseRow,
    concerns: &[EmailAddress],
) -> Result<()> {
    let s = &w.app.settings;
    let (to, reason) = match assign(s, w.tx, concerns).await? {
        Assignment::Handler { email, reason } | Assignment::Supervisor { email, reason } => {
            (s.staff_by_email(&email), reason)
        }
        Assignment::Nobody { reason } => (None, reason),
    };
    let Some(to) = to else {
        let update = CaseUpdate {
            status: Some(Status::Triage),
            ..Default::default()
        };
        store::update_case(w.tx, case.id, &update).await?;
        let why = format!("de behandelaar wordt in een vervolgbericht genoemd; {reason}");
        return store::add_event(w.tx, case.id, w.now, CaseEvent::Triage, "klachtd", &why).await;
    };
    let update = CaseUpdate {
        handler_email: Some(to.email.as_str()),
        ..Default::default()
    };
    store::update_case(w.tx, case.id, &update).await?;
    let reason = format!("de vorige behandelaar wordt in een vervolgbericht genoemd; {reason}");
    store::add_event_data(
        w.tx,
        case.id,
        w.now,
        CaseEvent::Reassigned,
        "klachtd",
        &format!("behandelaar: {} ({reason})", to.email),
        &json!({"new_handler": to.email.as_str()}),
    )
    .await?;
    let fresh = store::case_in_tx(w.tx, case.id)
        .await?
        .context("case just updated")?;
    hand_over(w, case, &fresh, to, &reason, None, None).await?;
    Ok(())
}
