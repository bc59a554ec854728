//! Staff overrule (issue 11): staff make any mail of info@ a complaint from
//! their own mail client, by moving it into the complaint folder
//! (`intake.complaint_folder`) or by setting the keyword (`imap.keyword`)
//! on it. The case counts its terms (art. 5 and 6) from the mail's arrival,
//! its client is acknowledged, and it is never opened twice: the claim on
//! the message and the case are written in one transaction.
//!
//! This module decides and records one such message; finding them on the
//! IMAP server is `workers::intake`'s part.

use anyhow::Result;
use jiff::Timestamp;

use crate::app::App;
use crate::domain::event::CaseEvent;
use crate::flows::client_reply::record_reply;
use crate::flows::intake::{Origin, Outcome};
use crate::flows::open_case::{email_case, email_client, open_case};
use crate::flows::Work;
use crate::mail::parse::InboundMail;
use crate::store::{self, Tx};

/// How a staff member said "this is a complaint".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gesture {
    /// Moved into the complaint folder.
    Moved,
    /// Marked with the keyword in the intake folder.
    Keyword,
}

impl Gesture {
    /// Short name for logs and the timeline.
    pub fn as_str(self) -> &'static str {
        match self {
            Gesture::Moved => "moved",
            Gesture::Keyword => "keyword",
        }
    }
}

/// Opens a case for `m`, which staff made a complaint of, unless it is case
/// mail already (then `Outcome::Duplicate`, nothing written). A reply on a
/// known case is filed on it; klachtd's own mail and colleagues' mail are
/// refused (recorded, so they are not looked at again).
pub async fn open_by_staff(
    app: &App,
    origin: Origin<'_>,
    arrived: Option<Timestamp>,
    m: &InboundMail,
    gesture: Gesture,
) -> Result<Outcome> {
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    // A message that failed in ordinary intake is decided here afresh.
    if !store::claim_for_staff(
        &mut tx,
        &m.message_id,
        origin.folder,
        origin.uidvalidity,
        origin.uid,
        now,
    )
    .await?
    {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    let (outcome, case_id) = decide(app, &mut tx, arrived, m, gesture, now).await?;
    store::set_inbound_outcome(&mut tx, &m.message_id, &outcome.label(), case_id).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn decide(
    app: &App,
    tx: &mut Tx,
    arrived: Option<Timestamp>,
    m: &InboundMail,
    gesture: Gesture,
    now: Timestamp,
) -> Result<(Outcome, Option<i64>)> {
    let s = &app.settings;
    let from = m.from.clone();
    if is_our_own(s, m) {
        return Ok((Outcome::Refused("own"), None));
    }
    if from.as_ref().and_then(|f| s.staff_by_email(f)).is_some() {
        return Ok((Outcome::Refused("staff"), None));
    }
    let at = arrived.unwrap_or(now);
    // A reply on a known case belongs to that case, as in ordinary intake.
    if let Some(from) = &from {
        if let Some((case_id, reference)) =
            store::thread_match(tx, &m.referenced_ids(), from, &m.subject, false).await?
        {
            record_reply(&mut Work { app, tx, now }, case_id, &reference, m, from, at).await?;
            return Ok((Outcome::Reply { reference }, Some(case_id)));
        }
    }
    // The terms count from the mail's arrival, never from the future.
    let received = arrived.or(m.date).unwrap_or(now).min(now);
    let client = email_client(m, from);
    let input = email_case(m, &client, received, None, true);
    let opened = open_case(app, tx, input, now).await?;
    let detail = match gesture {
        Gesture::Moved => format!(
            "moved into {} by staff",
            s.intake.complaint_folder.as_deref().unwrap_or_default()
        ),
        Gesture::Keyword => format!("marked {} by staff", s.imap.keyword),
    };
    store::add_event(
        tx,
        opened.id,
        now,
        CaseEvent::StaffOverrule,
        "staff",
        &detail,
    )
    .await?;
    Ok((
        Outcome::Case {
            reference: opened.reference,
            status: opened.status,
        },
        Some(opened.id),
    ))
}

/// Mail klachtd wrote itself (a copy from Sent, say): from one of the
/// organisation's own addresses, or with a Message-ID klachtd generated.
fn is_our_own(s: &crate::config::Settings, m: &InboundMail) -> bool {
    let own_address = m
        .from
        .as_ref()
        .is_some_and(|f| s.organisation.own_addresses().contains(f));
    let domain = s
        .organisation
        .message_id_domain
        .trim()
        .trim_start_matches('@')
        .to_ascii_lowercase();
    let own_id = !domain.is_empty()
        && m.message_id
            .trim()
            .trim_end_matches('>')
            .to_ascii_lowercase()
            .ends_with(&format!("@{domain}"));
    own_address || own_id
}
