//! A complaint taken by phone (art. 4): the same pipeline, no inbound
//! message.

use anyhow::Result;

use crate::app::App;
use crate::domain::case::Source;
use crate::domain::classify::{self};
use crate::domain::types::{CaseRef, EmailAddress, Status};
use crate::flows::open_case::{open_case, CaseInput, Client};

/// A complaint taken by phone (art. 4): same pipeline, no inbound message.
pub struct PhoneComplaint {
    pub name: String,
    pub email: Option<EmailAddress>,
    pub phone: Option<String>,
    pub description: String,
    pub date: Option<String>,
    pub desired_outcome: Option<String>,
}

pub async fn register_phone_complaint(app: &App, p: &PhoneComplaint) -> Result<(CaseRef, Status)> {
    let now = app.clock.now();
    let mut body = p.description.trim().to_string();
    if let Some(d) = p.date.as_deref().filter(|d| !d.trim().is_empty()) {
        body.push_str(&format!("\n\nDatum / sessie: {}", d.trim()));
    }
    if let Some(d) = p
        .desired_outcome
        .as_deref()
        .filter(|d| !d.trim().is_empty())
    {
        body.push_str(&format!("\n\nGewenste uitkomst: {}", d.trim()));
    }
    let client = Client {
        name: p.name.trim().to_string(),
        email: p.email.clone(),
        phone: p.phone.clone(),
    };
    let subject = first_words(&p.description, 8);
    let mut tx = app.store.begin().await?;
    let r = open_case(
        app,
        &mut tx,
        CaseInput {
            source: Source::Phone,
            client: &client,
            subject: &format!("Telefonische klacht: {subject}"),
            body: &body,
            received: now,
            triage: None,
            message: None,
            given: classify::Elements {
                nature: None,
                dates: p
                    .date
                    .as_deref()
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                desired_outcome: p
                    .desired_outcome
                    .as_deref()
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            },
            by_staff: false,
            reading: None,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    app.outbox_wake.notify_one();
    Ok((r.reference, r.status))
}

fn first_words(s: &str, n: usize) -> String {
    let words: Vec<&str> = s.split_whitespace().take(n).collect();
    let mut out = words.join(" ");
    if s.split_whitespace().count() > n {
        out.push('…');
    }
    out
}
