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
use crate::flows::staff_reply::{receipt, record_staff_message};
use crate::flows::Work;
use crate::mail::forward;
use crate::mail::parse::InboundMail;
use crate::mail::quote;
use crate::store::{self, Tx};

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
    let original = original_of(s, m, note, at, now);
    let subject = strip_forward_prefix(&original.subject);
    let opened = open_case::open_case(
        app,
        tx,
        open_case::CaseInput {
            source: Source::Forwarded,
            client: &original.client,
            subject: &subject,
            body: &original.body,
            received: original.received,
            triage: Some(open_case::TriageWhy::Forwarded(staff.name.clone())),
            message: None,
            given: Default::default(),
            by_staff: false,
            reading: None,
        },
        now,
    )
    .await?;
    record_forward(tx, opened.id, m, staff, original.readable, (at, now)).await?;
    let case = store::case_in_tx(tx, opened.id)
        .await?
        .context("case just recorded")?;
    let mut done = vec![format!(
        "vastgelegd als melding {}; een leidinggevende maakt er met /klacht een zaak van \
         (een doorgestuurd bericht kan niet als van jou worden herkend)",
        opened.reference
    )];
    if original.client.email.is_none() {
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

/// The client's mail inside a forward: its sender, subject, text and the
/// day the colleague got it. Without a readable original: the colleague's
/// note, no client.
struct Original {
    client: open_case::Client,
    subject: String,
    body: String,
    received: Timestamp,
    readable: bool,
}

fn original_of(
    s: &crate::config::Settings,
    m: &InboundMail,
    note: String,
    at: Timestamp,
    now: Timestamp,
) -> Original {
    match forward::extract(m, s.intake.max_attachment_bytes) {
        Some(f) => Original {
            client: open_case::Client {
                name: open_case::name_or_local_part(&f.from_name, f.from.as_ref()),
                email: f.from.clone(),
                phone: None,
            },
            subject: f.subject,
            body: f.body,
            // Art. 5 counts from receipt by the organisation: the day the
            // colleague got it, when the forward says so.
            received: f.date.filter(|d| *d <= now).unwrap_or(at),
            readable: true,
        },
        None => Original {
            client: open_case::Client {
                name: String::new(),
                email: None,
                phone: None,
            },
            subject: m.subject.clone(),
            body: note,
            received: at,
            readable: false,
        },
    }
}

/// The forward itself on the new item's record: the colleague's message
/// and a `forwarded` event.
async fn record_forward(
    tx: &mut Tx,
    case_id: i64,
    m: &InboundMail,
    staff: &Staff,
    readable: bool,
    (at, now): (Timestamp, Timestamp),
) -> Result<()> {
    record_staff_message(tx, case_id, m, staff, at).await?;
    store::add_event_data(
        tx,
        case_id,
        now,
        CaseEvent::Forwarded,
        staff.email.as_str(),
        if readable {
            "doorgestuurde klacht"
        } else {
            "doorgestuurd, maar de oorspronkelijke afzender is niet te lezen"
        },
        &json!({"direction": "in", "from": staff.email.as_str(), "message_id": m.message_id}),
    )
    .await
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
