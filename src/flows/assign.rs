//! Handing a case to a handler: by a supervisor's command or the
//! administrator (`klachtd case assign`), with the new handler's
//! notification, the previous handler's release, and the acknowledgement
//! when the case leaves triage.

use anyhow::{Context, Result};
use serde_json::json;

use crate::app::App;
use crate::config::Staff;
use crate::domain::event::CaseEvent;
use crate::domain::types::{CaseRef, Status};
use crate::flows::notify::{self};
use crate::flows::Work;
use crate::store::{self, CaseRow, CaseUpdate};

/// The staff member `who` names, if they may handle `case`: on the roster
/// as handler or supervisor, not concerned by it (art. 6), not already its
/// handler. The error says why not, in the organisation's words.
pub(crate) fn assignable<'a>(
    s: &'a crate::config::Settings,
    case: &CaseRow,
    who: &str,
) -> Result<&'a Staff, String> {
    let target = s.staff_named(who)?;
    if case.concerns.contains(&target.email) {
        return Err(format!(
            "geweigerd: de klacht gaat (ook) over {}, die haar dus niet mag behandelen (art. 6)",
            target.name
        ));
    }
    if !target.roles.handler && !target.roles.supervisor {
        return Err(format!(
            "{} is geen behandelaar of leidinggevende in de configuratie",
            target.name
        ));
    }
    if case.handler_email.as_ref() == Some(&target.email) {
        return Err(format!("{} behandelt deze zaak al", target.name));
    }
    Ok(target)
}

/// `klachtd case assign REF NAME`: an administrator gives a case to another
/// handler, under the same rule as `/toewijzen`. The new handler gets the
/// whole case by mail; a triage item becomes a complaint, and its client is
/// acknowledged. Returns what was done, for the terminal.
pub async fn assign_by_admin(
    app: &App,
    reference: &CaseRef,
    who: &str,
    actor: &str,
) -> Result<String> {
    let s = &app.settings;
    let now = app.clock.now();
    let id = app
        .store
        .case_by_ref(reference)
        .await?
        .with_context(|| format!("no case {reference}"))?
        .id;
    let mut tx = app.store.begin().await?;
    let case = store::case_in_tx(&mut tx, id).await?.context("case")?;
    if case.status == Status::Closed {
        anyhow::bail!(
            "case {reference} is closed; reopen it first (reply /heropen on one of its mails)"
        );
    }
    if case.anonymised_at.is_some() {
        anyhow::bail!("case {reference} is anonymised");
    }
    let target = assignable(s, &case, who)
        .map_err(|e| anyhow::anyhow!("{reference}: {e}; nothing changed"))?;
    let reason = format!("toegewezen door {actor}");
    record_assignment(&mut tx, &case, target, actor, &reason, now).await?;
    let fresh = store::case_in_tx(&mut tx, id).await?.context("case")?;
    let mut done = vec![format!(
        "{} is now the handler and has the case by mail",
        target.name
    )];
    let (acked, released) = hand_over(
        &mut Work {
            app,
            tx: &mut tx,
            now,
        },
        &case,
        &fresh,
        target,
        &reason,
        None,
        None,
    )
    .await?;
    if acked {
        done.push("the client is acknowledged now".into());
    }
    if released {
        done.push("the previous handler is told".into());
    }
    tx.commit().await?;
    tracing::info!(reference = %reference, "case assigned by an administrator");
    app.outbox_wake.notify_one();
    Ok(done.join("; "))
}

/// The case given to `target` on the register: a triage item becomes a
/// complaint (status event, `accepted`), any other case is `reassigned`.
async fn record_assignment(
    tx: &mut store::Tx,
    case: &store::CaseRow,
    target: &Staff,
    actor: &str,
    reason: &str,
    now: jiff::Timestamp,
) -> Result<()> {
    let id = case.id;
    let from_triage = case.status == Status::Triage;
    store::update_case(
        tx,
        id,
        &CaseUpdate {
            status: from_triage.then_some(Status::Received),
            handler_email: Some(target.email.as_str()),
            clear_triage: from_triage,
            ..Default::default()
        },
    )
    .await?;
    if from_triage {
        store::add_event_data(
            tx,
            id,
            now,
            CaseEvent::Status,
            actor,
            &format!("{} -> {}", Status::Triage, Status::Received),
            &json!({"from": Status::Triage.as_str(), "to": Status::Received.as_str()}),
        )
        .await?;
    }
    store::add_event_data(
        tx,
        id,
        now,
        if from_triage {
            CaseEvent::Accepted
        } else {
            CaseEvent::Reassigned
        },
        actor,
        &format!("behandelaar: {} ({reason})", target.email),
        &json!({"old_handler": case.handler_email, "new_handler": target.email.as_str()}),
    )
    .await?;
    Ok(())
}

/// The mail of a new assignment: `fresh` (the case already given to `to`)
/// goes to its new handler with everything, a triage item's client is
/// acknowledged now, and the previous handler is told, unless they made
/// the change themselves (`by`). Returns (client acknowledged now,
/// previous handler told).
pub(crate) async fn hand_over(
    w: &mut Work<'_>,
    before: &CaseRow,
    fresh: &CaseRow,
    to: &Staff,
    reason: &str,
    note: Option<(&Staff, &str)>,
    by: Option<&Staff>,
) -> Result<(bool, bool)> {
    let (app, now) = (w.app, w.now);
    let acked =
        before.status == Status::Triage && notify::queue_ack(app, w.tx, fresh, to, now).await?;
    notify::queue_handler_new(w, fresh, to, reason, note).await?;
    // Never a word to a previous handler the complaint now concerns (art. 9).
    let previous = before
        .handler_email
        .as_ref()
        .filter(|e| by.is_none_or(|b| b.email != **e))
        .filter(|e| !fresh.concerns.contains(e));
    let released =
        notify::queue_handler_released(app, w.tx, fresh, previous, to, reason, now).await?;
    Ok((acked, released))
}
