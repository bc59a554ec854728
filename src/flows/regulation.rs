//! Art. 11: whoever asks for the regulation gets it.

use anyhow::Result;
use jiff::Timestamp;

use crate::app::App;
use crate::domain::classify::{self};
use crate::domain::event::OutboxKind;
use crate::domain::types::EmailAddress;
use crate::flows::notify::{
    auto_reply_limit, org, queue_mail, queue_to_supervisors, Mail, StaffMail,
};
use crate::flows::open_case::client_name;
use crate::flows::Work;
use crate::mail::compose::{self};
use crate::mail::parse::InboundMail;
use crate::mail::render::{context, echo};
use crate::store::Tx;

/// Art. 11: whoever asks for the regulation gets it, as text and attached;
/// a request for a paper copy is passed on to the supervisors. Counts
/// towards the per-sender limit on automatic replies.
pub(crate) async fn answer_regulation_request(
    app: &App,
    tx: &mut Tx,
    m: &InboundMail,
    from: &EmailAddress,
    now: Timestamp,
) -> Result<()> {
    let s = &app.settings;
    if let Some(why) = auto_reply_limit(s, tx, from, now).await? {
        tracing::info!(message_id = %m.message_id, why, "regulation request not answered");
        return Ok(());
    }
    let text = match &s.organisation.regulation_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "organisation.regulation_file cannot be read; sending the link only");
                None
            }
        },
        None => None,
    };
    let lower = format!("{} {}", m.subject, m.text).to_lowercase();
    let paper = [
        "papier", "paper", "per post", "by post", "gedrukt", "printed", "afdruk",
    ]
    .iter()
    .any(|w| lower.contains(w));
    let lang = classify::language(&m.subject, &m.text);
    let name = client_name(m, from);
    let ctx = context::Regulation {
        org: org(s),
        client_name: echo::name(&name),
        original_subject: echo::subject(&m.subject),
        has_text: text.is_some(),
        regulation_text: text.as_deref().unwrap_or(""),
        paper,
    };
    let rendered = app.renderer.render(lang, &ctx)?;
    let refs = compose::references_for_reply(&m.references, &m.message_id);
    let attachments: Vec<(String, String, Vec<u8>)> = text
        .iter()
        .map(|t| {
            (
                "klachtenreglement.txt".to_string(),
                "text/plain; charset=utf-8".to_string(),
                t.as_bytes().to_vec(),
            )
        })
        .collect();
    queue_mail(
        app,
        tx,
        &Mail {
            case_id: None,
            kind: OutboxKind::Regulation,
            from_name: &s.organisation.name,
            to_name: &echo::name(&name),
            to: from,
            rendered: &rendered,
            in_reply_to: Some(&m.message_id),
            references: &refs,
            auto_reply: true,
            attachments: &attachments,
            inline: &[],
        },
        now,
    )
    .await?;
    if paper {
        pass_on_paper_request(&mut Work { app, tx, now }, m, from, &name).await?;
    }
    Ok(())
}

/// A request for a paper copy of the regulation, to every supervisor.
async fn pass_on_paper_request(
    w: &mut Work<'_>,
    m: &InboundMail,
    from: &EmailAddress,
    name: &str,
) -> Result<()> {
    let ctx = context::RegulationPaper {
        client_name: name,
        client_email: from.as_str(),
        original_subject: &m.subject,
        body: &m.text,
    };
    let lang = w.app.settings.organisation.language;
    let mail = StaffMail {
        case_id: None,
        rendered: &w.app.renderer.render(lang, &ctx)?,
        kind: OutboxKind::RegulationPaper,
        answering: None,
    };
    queue_to_supervisors(w, &[], mail).await?;
    Ok(())
}
