//! A colleague forwards a client's mail with `/klacht` on top: it becomes a
//! triage item, which a supervisor confirms (a forward cannot be
//! authenticated: anyone can write that From).

use anyhow::{Context, Result};
use jiff::Timestamp;
use serde_json::json;

use crate::app::App;
use crate::config::Staff;
use crate::domain::case::Source;
use crate::domain::command::{self, Command};
use crate::domain::event::CaseEvent;
use crate::flows::open_case;
use crate::flows::staff_reply::receipt;
use crate::flows::Work;
use crate::mail::forward;
use crate::mail::parse::InboundMail;
use crate::mail::quote;
use crate::store::{self, NewCaseMessage, Tx};

/// A colleague forwards a complaint they got themselves, `/klacht` on top.
/// The original's sender is the client. Anyone can write a roster From, so
/// this only makes a triage item: a supervisor confirms it with `/klacht`
/// (authenticated like every answer). A forged forward can therefore do no
/// more than any stranger's mail to info@. None: not such a forward.
pub(crate) async fn forwarded_complaint(
    app: &App,
    tx: &mut Tx,
    m: &InboundMail,
    staff: &Staff,
    at: Timestamp,
    now: Timestamp,
) -> Result<Option<open_case::Opened>> {
    let s = &app.settings;
    let Ok(command::Parsed {
        command: Some(Command::Complaint),
        text: note,
    }) = command::parse(&quote::new_text(&m.text))
    else {
        return Ok(None);
    };
    let original = forward::extract(m, s.intake.max_attachment_bytes);
    let (client, subject, body, received) = match &original {
        Some(f) => (
            open_case::Client {
                name: open_case::name_or_local_part(&f.from_name, f.from.as_ref()),
                email: f.from.clone(),
                phone: None,
            },
            f.subject.clone(),
            f.body.clone(),
            // Art. 5 counts from receipt by the organisation: the day the
            // colleague got it, when the forward says so.
            f.date.filter(|d| *d <= now).unwrap_or(at),
        ),
        None => (
            open_case::Client {
                name: String::new(),
                email: None,
                phone: None,
            },
            m.subject.clone(),
            note.clone(),
            at,
        ),
    };
    let subject = strip_forward_prefix(&subject);
    let opened = open_case::open_case(
        app,
        tx,
        open_case::CaseInput {
            source: Source::Forwarded,
            client: &client,
            subject: &subject,
            body: &body,
            received,
            triage: Some(open_case::TriageWhy::Forwarded(staff.name.clone())),
            message: None,
            given: Default::default(),
            by_staff: false,
            reading: None,
        },
        now,
    )
    .await?;
    store::insert_case_message(
        tx,
        &NewCaseMessage {
            case_id: opened.id,
            message_id: &m.message_id,
            sender: staff.email.as_str(),
            subject: &m.subject,
            at,
            body: &m.text,
            refs: &m.referenced_ids().join(" "),
        },
    )
    .await?;
    store::add_event_data(
        tx,
        opened.id,
        now,
        CaseEvent::Forwarded,
        staff.email.as_str(),
        if original.is_some() {
            "doorgestuurde klacht"
        } else {
            "doorgestuurd, maar de oorspronkelijke afzender is niet te lezen"
        },
        &json!({"direction": "in", "from": staff.email.as_str(), "message_id": m.message_id}),
    )
    .await?;
    let case = store::case_in_tx(tx, opened.id)
        .await?
        .context("case just recorded")?;
    let mut done = vec![format!(
        "vastgelegd als melding {}; een leidinggevende maakt er met /klacht een zaak van \
         (een doorgestuurd bericht kan niet als van jou worden herkend)",
        opened.reference
    )];
    if client.email.is_none() {
        done.push(
            "het e-mailadres van de cliënt stond niet in het doorgestuurde bericht: \
             er gaat geen ontvangstbevestiging uit; bevestig telefonisch"
                .into(),
        );
    }
    receipt(
        &mut Work { app, tx, now },
        &case,
        m,
        staff,
        None,
        &done,
        true,
    )
    .await?;
    Ok(Some(opened))
}

fn strip_forward_prefix(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_lowercase();
        let Some(p) = ["fwd:", "fw:", "doorst:", "tr:", "wg:"]
            .iter()
            .find(|p| lower.starts_with(*p))
        else {
            return s.to_string();
        };
        s = s[p.len()..].trim_start();
    }
}
