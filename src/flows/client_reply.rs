//! A client's reply on an open case: recorded on the timeline and passed on
//! to the handler (never to a person the complaint concerns).

use anyhow::Result;
use jiff::Timestamp;
use serde_json::json;

use crate::domain::event::{CaseEvent, OutboxKind};
use crate::domain::types::{CaseRef, EmailAddress, Status};
use crate::flows::notify::{org, queue_staff_mail, StaffMail};
use crate::flows::Work;
use crate::mail::parse::InboundMail;
use crate::mail::render::{context, long_date};
use crate::store::{self, NewCaseMessage};

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
    // Pass the client's reply on to the handler (never to anyone concerned).
    let Some(case) = store::case_in_tx(w.tx, case_id).await? else {
        return Ok(());
    };
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
