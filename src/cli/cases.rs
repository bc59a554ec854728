//! `klachtd cases` and `klachtd case …`: the register, one case, closing
//! and assigning by hand.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{admin_actor, local, local_time, CasesArgs};
use crate::app::App;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::types::{CaseRef, EmailAddress, Status};
use crate::register::{self, case_json, Record};
use crate::store::{CaseFilter, CaseRow, EventRow, Store};

pub(super) async fn list(settings: Settings, clock: Clock, a: CasesArgs) -> Result<()> {
    let store = Store::open_existing(&settings.database_url).await?;
    let today = crate::config::local_date(clock.now(), &settings.organisation.timezone);
    let filter = CaseFilter {
        status: a
            .status
            .as_deref()
            .map(str::parse::<Status>)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        handler: a.handler,
        year: a.year,
        ..Default::default()
    };
    let (cases, records) = register::load(&store, &settings, &filter, today).await?;
    let rows: Vec<(&CaseRow, &Record)> = cases
        .iter()
        .zip(&records)
        .filter(|(_, r)| !a.overdue || r.overdue)
        .collect();
    if a.json {
        let v: Vec<Value> = rows.iter().map(|(c, r)| case_json(c, r)).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if a.csv {
        print!("{}", cases_csv(&rows));
    } else {
        print_table(&rows);
    }
    Ok(())
}

pub(super) async fn show(
    settings: Settings,
    clock: Clock,
    reference: String,
    json: bool,
) -> Result<()> {
    let r: CaseRef = reference.parse()?;
    let store = Store::open_existing(&settings.database_url).await?;
    let case = store
        .case_by_ref(&r)
        .await?
        .with_context(|| format!("no case {r}"))?;
    let timeline = store.timeline(case.id).await?;
    let today = crate::config::local_date(clock.now(), &settings.organisation.timezone);
    let events: Vec<&EventRow> = timeline.iter().collect();
    let record = register::record(
        &case,
        &events,
        today,
        &settings.organisation.timezone,
        &settings.calendar,
    );
    if json {
        let mut v = case_json(&case, &record);
        v["timeline"] = timeline.iter().map(|e| e.to_json()).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let tz = &settings.organisation.timezone;
        print_case(&case, &record, tz);
        println!("\nTimeline ({}):", tz.iana_name().unwrap_or("local time"));
        for e in timeline {
            println!(
                "  {}  {:<22} {:<28} {}",
                local(&e.at, tz),
                e.kind,
                e.actor,
                e.detail
            );
        }
    }
    Ok(())
}

pub(super) async fn close(
    settings: Settings,
    clock: Clock,
    reference: String,
    reason: String,
) -> Result<()> {
    let r: CaseRef = reference.parse()?;
    if reason.trim().is_empty() {
        bail!("--reason must not be empty");
    }
    let store = Store::open(&settings.database_url).await?;
    store
        .close_case(&r, "admin", reason.trim(), clock.now())
        .await?;
    println!("{r} closed");
    Ok(())
}

pub(super) async fn assign(
    settings: Settings,
    clock: Clock,
    reference: String,
    name: String,
) -> Result<()> {
    let r: CaseRef = reference.parse()?;
    let app = App::new(settings, clock).await?;
    let done = crate::flows::assign::assign_by_admin(&app, &r, &name, &admin_actor()).await?;
    if let Err(e) = crate::workers::outbox::flush(&app).await {
        eprintln!("klachtd: queued, not yet sent: {e:#}");
    }
    app.store.close().await;
    println!("{r}: {done}");
    Ok(())
}

/// The register as CSV (art. 10): one row per case, for an auditor.
pub const CSV_COLUMNS: &[&str] = &[
    "reference",
    "status",
    "outcome",
    "category",
    "language",
    "source",
    "client_name",
    "client_email",
    "client_phone",
    "subject",
    "handler_email",
    "concerns",
    "received_at",
    "ack_sent_at",
    "ack_due",
    "ack_working_days",
    "ack_on_time",
    "original_response_due",
    "response_due",
    "responded_on",
    "response_working_days",
    "response_on_time",
    "response_within_term",
    "extensions",
    "extension_reasons",
    "external",
    "overdue",
    "missing",
    "triage_reason",
    "closed_at",
    "anonymised_at",
];

fn csv_field(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
    };
    // Spreadsheet formula injection: prefix risky leading characters.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn cases_csv(cases: &[(&CaseRow, &Record)]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for (c, r) in cases {
        let mut v = case_json(c, r);
        v["extensions"] = json!(r.extensions.len());
        v["extension_reasons"] = json!(r
            .extensions
            .iter()
            .map(|e| e.reason.as_str())
            .collect::<Vec<_>>());
        let row: Vec<String> = CSV_COLUMNS.iter().map(|k| csv_field(&v[*k])).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

fn print_table(cases: &[(&CaseRow, &Record)]) {
    println!(
        "{:<14} {:<13} {:<13} {:<16} {:<11} {:<12} {:<28}",
        "REFERENCE", "STATUS", "OUTCOME", "CATEGORY", "ACK DUE", "DUE", "HANDLER"
    );
    for (c, r) in cases {
        let due = if r.overdue {
            format!("{} !", c.response_due)
        } else {
            c.response_due.to_string()
        };
        println!(
            "{:<14} {:<13} {:<13} {:<16} {:<11} {:<12} {:<28}",
            // As text: the width pads strings, not a CaseRef or a Date.
            c.reference.to_string(),
            c.status,
            r.outcome.as_str(),
            c.category,
            c.ack_due.to_string(),
            due,
            c.handler_email.as_ref().map_or("-", EmailAddress::as_str)
        );
    }
    if cases.iter().any(|(_, r)| r.overdue) {
        println!("! overdue: a term has passed without the acknowledgement or the answer");
    }
    println!("{} case(s)", cases.len());
}

/// A stored UTC time as local time for people ("2026-11-24 00:22").
fn print_case(c: &CaseRow, r: &Record, tz: &jiff::tz::TimeZone) {
    let missing: Vec<&str> = c.missing.iter().map(|e| e.as_str()).collect();
    let concerns: Vec<&str> = c.concerns.iter().map(EmailAddress::as_str).collect();
    for (k, v) in [
        ("Reference", c.reference.to_string()),
        ("Status", c.status.to_string()),
        ("Category", c.category.to_string()),
        (
            "Client",
            format!(
                "{} <{}>",
                c.client_name,
                c.client_email.as_ref().map_or("-", EmailAddress::as_str)
            ),
        ),
        ("Subject", c.subject.clone()),
        (
            "Handler",
            c.handler_email
                .as_ref()
                .map_or("-".into(), ToString::to_string),
        ),
        ("Concerns", concerns.join(", ")),
        ("Received", local_time(c.received_at, tz)),
        (
            "Acknowledged",
            c.ack_sent_at.map_or("-".into(), |t| local_time(t, tz)),
        ),
        ("Ack due", c.ack_due.to_string()),
        ("Response due", c.response_due.to_string()),
        ("Outcome", r.outcome.as_str().to_string()),
        (
            "Extensions",
            r.extensions
                .iter()
                .map(|e| format!("{} ({})", e.new_due.as_deref().unwrap_or("-"), e.reason))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ("Overdue", if r.overdue { "yes" } else { "no" }.into()),
        ("Missing", missing.join(", ")),
    ] {
        println!("{k:<14} {v}");
    }
}
