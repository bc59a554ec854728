//! A supervisor answers the daily digest: one line per triage item,
//! `/klacht KL-2026-0003` or `/geen-klacht KL-2026-0004`. Each line is
//! decided and applied on its own, under the same rules as the command on
//! the item's own mail (only supervisors, never one the complaint concerns,
//! only items in triage), and all results go back in one `command_result`
//! mail. The answer counts only when it refers to a digest klachtd sent to
//! that very address (random Message-ID), like every staff answer.

use anyhow::{Context, Result};
use jiff::Timestamp;
use serde_json::json;

use super::staff_reply::{apply, plan};
use crate::app::App;
use crate::config::{Settings, Staff};
use crate::domain::command::{self, Parsed};
use crate::domain::event::{CaseEvent, OutboxKind};
use crate::flows::notify::{self, org};
use crate::flows::Work;
use crate::mail::parse::InboundMail;
use crate::mail::quote;
use crate::mail::render::context::{self, CommandItem, Named};
use crate::store::{self, Tx};

/// The outbox kind of the daily digest (see `crate::flows::scheduler`).
const DIGEST_KIND: OutboxKind = OutboxKind::Digest;

/// Handles `m` from roster member `staff` if it answers a digest; false
/// when it does not (then it is ordinary staff mail).
pub(crate) async fn digest_answer(
    app: &App,
    tx: &mut Tx,
    m: &InboundMail,
    staff: &Staff,
    now: Timestamp,
) -> Result<bool> {
    let refs = m.referenced_ids();
    if !store::refers_to_kind(tx, &refs, DIGEST_KIND).await? {
        return Ok(false);
    }
    let to_them = store::sent_to(tx, &refs, staff.email.as_str())
        .await?
        .is_some_and(|r| r.kind == DIGEST_KIND);
    let server_ok = super::staff_reply::server_vouches(app, m, staff);
    let mut items = Vec::new();
    if !(to_them && server_ok) {
        items.push(item(
            "-",
            false,
            if to_them {
                "de mailserver heeft niet bevestigd dat dit bericht echt van uw adres komt \
                 (intake.sender_auth); \
                 er is niets gewijzigd"
            } else {
                "dit is geen antwoord op een dagoverzicht dat klachtd aan u stuurde; er is \
                 niets gewijzigd. Beantwoord uw eigen dagoverzicht"
            },
        ));
    } else if !staff.roles.supervisor {
        items.push(item(
            "-",
            false,
            "alleen een leidinggevende beoordeelt meldingen; er is niets gewijzigd",
        ));
    } else {
        let decisions = command::parse_triage_decisions(&quote::new_text(&m.text));
        if decisions.is_empty() {
            items.push(item(
                "-",
                false,
                "er stond geen regel /klacht KL-JJJJ-NNNN of /geen-klacht KL-JJJJ-NNNN boven \
                 het geciteerde overzicht",
            ));
        }
        for (line, decision) in decisions {
            let result = match decision {
                Err(why) => Err(why),
                Ok(d) => decide(app, tx, m, staff, &d, now).await?,
            };
            items.push(match result {
                Ok(done) => item(&line, true, &done),
                Err(why) => item(&line, false, &format!("{why} Er is niets gewijzigd.")),
            });
        }
    }
    let ctx = receipt(&app.settings, staff, m, items);
    let (n, ok) = (ctx.items.len(), ctx.ok);
    tracing::info!(message_id = %m.message_id, items = n, ok, "answer to the digest handled");
    let w = &mut Work { app, tx, now };
    notify::queue_staff_notice(w, staff, OutboxKind::DigestReceipt, &ctx, Some(m)).await?;
    Ok(true)
}

/// The answer to a digest answer: one result per line, no case.
fn receipt<'a>(
    s: &'a Settings,
    staff: &'a Staff,
    m: &'a InboundMail,
    items: Vec<CommandItem>,
) -> context::CommandResult<'a> {
    context::CommandResult {
        org: org(s),
        reference: String::new(),
        staff: Named { name: &staff.name },
        ok: items.iter().all(|i| i.ok),
        error: "",
        done: &[],
        status: "",
        response_due: String::new(),
        original_subject: "",
        their_subject: &m.subject,
        items,
    }
}

fn item(line: &str, ok: bool, text: &str) -> CommandItem {
    CommandItem {
        line: line.into(),
        ok,
        text: text.into(),
    }
}

/// One `/klacht` or `/geen-klacht` on its item: what was done, or why not.
async fn decide(
    app: &App,
    tx: &mut Tx,
    m: &InboundMail,
    staff: &Staff,
    d: &command::TriageDecision,
    now: Timestamp,
) -> Result<Result<String, String>> {
    let Some(id) = store::case_id_by_ref(tx, &d.reference).await? else {
        return Ok(Err(format!("{} bestaat niet.", d.reference)));
    };
    let case = store::case_in_tx(tx, id)
        .await?
        .context("case found above")?;
    if case.anonymised_at.is_some() {
        return Ok(Err(format!("{} is geanonimiseerd.", d.reference)));
    }
    let parsed = Ok(Parsed {
        command: Some(d.command.clone()),
        text: String::new(),
    });
    let plan = match plan(
        app,
        tx,
        &case,
        staff,
        parsed,
        case.client_email.is_some(),
        false,
    )
    .await?
    {
        Ok(p) => p,
        // The refusals speak of "this case"; the line names it.
        Err(why) => return Ok(Err(why)),
    };
    store::add_event_data(
        tx,
        case.id,
        now,
        CaseEvent::StaffMessage,
        staff.email.as_str(),
        &m.message_id,
        &json!({
            "direction": "in", "from": staff.email.as_str(), "message_id": m.message_id,
            "authenticated": true, "via": "digest", "command": d.command.name(),
        }),
    )
    .await?;
    let (_, done) = apply(
        &mut Work { app, tx, now },
        &case,
        &d.reference,
        m,
        staff,
        &plan,
    )
    .await?;
    Ok(Ok(done.join("; ")))
}
