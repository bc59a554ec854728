//! `klachtd cases` and `klachtd case …`: the register, one case, closing
//! and assigning by hand.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::{admin_actor, local, local_time, terminal_safe, CasesArgs};
use crate::app::App;
use crate::clock::{db_time, Clock};
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
        print!("{}", cases_csv(&rows)?);
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
                terminal_safe(&e.actor, false),
                terminal_safe(&e.detail, false)
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

/// One row of the register as CSV (art. 10), for an auditor: the columns
/// in this order, as the header row names them.
#[derive(Serialize)]
struct CsvRow {
    reference: Cell,
    status: Cell,
    outcome: Cell,
    category: Cell,
    language: Cell,
    source: Cell,
    client_name: Cell,
    client_email: Cell,
    client_phone: Cell,
    subject: Cell,
    handler_email: Cell,
    concerns: Cell,
    received_at: Cell,
    ack_sent_at: Cell,
    ack_due: Cell,
    ack_working_days: Cell,
    ack_on_time: Cell,
    original_response_due: Cell,
    response_due: Cell,
    responded_on: Cell,
    response_working_days: Cell,
    response_on_time: Cell,
    response_within_term: Cell,
    extensions: Cell,
    extension_reasons: Cell,
    external: Cell,
    overdue: Cell,
    missing: Cell,
    triage_reason: Cell,
    closed_at: Cell,
    anonymised_at: Cell,
}

/// A CSV field, guarded against spreadsheet formula injection: a value
/// that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
/// leading `'` (OWASP's list). Lists are
/// joined with `;`, absent values are empty.
#[derive(Serialize)]
#[serde(transparent)]
struct Cell(String);

impl Cell {
    fn of(v: impl std::fmt::Display) -> Cell {
        let s = v.to_string();
        if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            Cell(format!("'{s}"))
        } else {
            Cell(s)
        }
    }

    fn opt(v: Option<impl std::fmt::Display>) -> Cell {
        v.map_or(Cell(String::new()), Cell::of)
    }

    fn list<T: std::fmt::Display>(v: impl IntoIterator<Item = T>) -> Cell {
        Cell::of(
            v.into_iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(";"),
        )
    }
}

impl CsvRow {
    fn new(c: &CaseRow, r: &Record) -> CsvRow {
        CsvRow {
            reference: Cell::of(c.reference),
            status: Cell::of(c.status.as_str()),
            outcome: Cell::of(r.outcome.as_str()),
            category: Cell::of(c.category.as_str()),
            language: Cell::of(c.language.as_str()),
            source: Cell::of(c.source),
            client_name: Cell::of(&c.client_name),
            client_email: Cell::opt(c.client_email.as_ref()),
            client_phone: Cell::opt(c.client_phone.as_ref()),
            subject: Cell::of(&c.subject),
            handler_email: Cell::opt(c.handler_email.as_ref()),
            concerns: Cell::list(&c.concerns),
            received_at: Cell::of(db_time(c.received_at)),
            ack_sent_at: Cell::opt(c.ack_sent_at.map(db_time)),
            ack_due: Cell::of(c.ack_due),
            ack_working_days: Cell::opt(r.ack_working_days),
            ack_on_time: Cell::opt(r.ack_on_time),
            original_response_due: Cell::of(&r.original_response_due),
            response_due: Cell::of(c.response_due),
            responded_on: Cell::opt(r.responded_on),
            response_working_days: Cell::opt(r.response_working_days),
            response_on_time: Cell::opt(r.response_on_time),
            response_within_term: Cell::opt(r.response_within_term),
            extensions: Cell::of(r.extensions.len()),
            extension_reasons: Cell::list(r.extensions.iter().map(|e| &e.reason)),
            external: Cell::of(r.external),
            overdue: Cell::of(r.overdue),
            missing: Cell::list(c.missing.iter().map(|e| e.as_str())),
            triage_reason: Cell::opt(c.triage_reason.as_ref()),
            closed_at: Cell::opt(c.closed_at.map(db_time)),
            anonymised_at: Cell::opt(c.anonymised_at.map(db_time)),
        }
    }
}

/// The header row: [`CsvRow`]'s fields in order (a test keeps them equal;
/// written by hand so an empty register still gets it).
const CSV_HEADER: [&str; 31] = [
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

/// The register as CSV with a header row, CRLF line ends (RFC 4180).
pub fn cases_csv(cases: &[(&CaseRow, &Record)]) -> Result<String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for (c, r) in cases {
        w.serialize(CsvRow::new(c, r))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
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
        println!("{k:<14} {}", terminal_safe(&v, false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::Calendar;
    use crate::register::tests::case;

    fn record(c: &CaseRow) -> Record {
        let tz = jiff::tz::TimeZone::UTC;
        register::record(c, &[], c.ack_due, &tz, &Calendar::dutch_default())
    }

    #[test]
    fn the_header_names_the_row_fields_in_their_order() {
        let c = case(1, Status::Acknowledged, "2026-11-02T09:00:00Z");
        let r = record(&c);
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        w.serialize(CsvRow::new(&c, &r)).unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(out.lines().next().unwrap(), CSV_HEADER.join(","));
    }

    #[test]
    fn fields_are_quoted_where_needed_and_formulas_defused() {
        let mut c = case(7, Status::Acknowledged, "2026-11-02T09:00:00Z");
        c.client_name = "=HYPERLINK(\"http://x\")".into();
        c.subject = "Te laat, \"weer\"\necht".into();
        c.triage_reason = Some("@SUM(1)".into());
        c.client_phone = Some("\t=1+1".into());
        let r = record(&c);
        let out = cases_csv(&[(&c, &r)]).unwrap();
        let mut lines = out.split("\r\n");
        assert_eq!(lines.next(), Some(CSV_HEADER.join(",").as_str()));
        assert!(out.ends_with("\r\n"));
        let mut rd = csv::ReaderBuilder::new().from_reader(out.as_bytes());
        let row = rd.records().next().unwrap().unwrap();
        let col = |name: &str| {
            let i = CSV_HEADER.iter().position(|h| *h == name).unwrap();
            row.get(i).unwrap().to_string()
        };
        assert_eq!(col("reference"), "KL-2026-0007");
        assert_eq!(col("client_name"), "'=HYPERLINK(\"http://x\")");
        assert_eq!(col("subject"), "Te laat, \"weer\"\necht");
        assert_eq!(col("triage_reason"), "'@SUM(1)");
        assert_eq!(col("client_phone"), "'\t=1+1");
        assert_eq!(col("extensions"), "0");
        assert_eq!(col("external"), "false");
        assert!(out.contains("\"Te laat, \"\"weer\"\"\necht\""));
    }

    #[test]
    fn an_empty_register_is_the_header_alone() {
        assert_eq!(cases_csv(&[]).unwrap(), CSV_HEADER.join(",") + "\r\n");
    }
}
