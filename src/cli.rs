//! The command line (design.md section 8). Every command fails with one
//! clear line on stderr and a non-zero exit.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::app::App;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::types::{CaseRef, EmailAddress, Status};
use crate::intake::{register_phone_complaint, PhoneComplaint};
use crate::store::{CaseFilter, CaseRow, Store};

#[derive(Parser, Debug)]
#[command(
    name = "klachtd",
    version,
    about = "Runs a complaints procedure (klachtenreglement) straight from the info@ mailbox",
    long_about = "klachtd reads the complaints mailbox over IMAP, recognises complaints, records them in \
                  the register, assigns an independent handler, acknowledges at once and keeps the deadlines.\n\n\
                  The configuration file is --config, else $KLACHTD_CONFIG, else /etc/klachtd/klachtd.toml. \
                  Every key can be overridden as KLACHTD__SECTION__KEY (e.g. KLACHTD__IMAP__PASSWORD)."
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, value_name = "FILE", env = "KLACHTD_CONFIG")]
    pub config: Option<PathBuf>,

    /// Pretend it is this moment (RFC 3339, e.g. 2026-12-01T09:00:00+01:00): for simulation and tests.
    #[arg(long, global = true, value_name = "RFC3339")]
    pub now: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon until SIGTERM/SIGINT (or one pass with --once).
    Run {
        /// One full pass: fetch and process every new message, flush the outbox, exit 0.
        #[arg(long)]
        once: bool,
    },
    /// List the register (all cases), as a table, JSON or CSV.
    Cases(CasesArgs),
    /// One case.
    #[command(subcommand)]
    Case(CaseCommand),
    /// Record a complaint taken by phone (art. 4); prints the new reference last.
    Register(RegisterArgs),
    /// The periodic analysis of the register (art. 10) for complaints received FROM..TO.
    Report {
        /// First day (YYYY-MM-DD), inclusive.
        #[arg(long)]
        from: String,
        /// Last day (YYYY-MM-DD), inclusive.
        #[arg(long)]
        to: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and try the IMAP and SMTP logins.
    CheckConfig,
    /// Create or update the database schema, then exit.
    Migrate,
}

#[derive(Args, Debug)]
pub struct CasesArgs {
    /// Print a JSON array.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV with a header row.
    #[arg(long)]
    pub csv: bool,
    /// Only cases in this status (triage, received, acknowledged, in_progress, …).
    #[arg(long)]
    pub status: Option<String>,
    /// Only cases of this handler (email address).
    #[arg(long)]
    pub handler: Option<String>,
    /// Only cases of this year.
    #[arg(long)]
    pub year: Option<i32>,
}

#[derive(Subcommand, Debug)]
pub enum CaseCommand {
    /// Show one case with its timeline.
    Show {
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Close a case by hand (admin); the reason goes into the timeline.
    Close {
        reference: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The client's name.
    #[arg(long)]
    pub name: String,
    /// The client's email address (an acknowledgement is sent there).
    #[arg(long)]
    pub email: Option<String>,
    /// The client's phone number.
    #[arg(long)]
    pub phone: Option<String>,
    /// What the complaint is about, in the client's words.
    #[arg(long)]
    pub description: String,
    /// Date(s) or sessions involved.
    #[arg(long)]
    pub date: Option<String>,
    /// The outcome the client would like.
    #[arg(long)]
    pub desired_outcome: Option<String>,
}

pub async fn main(cli: Cli) -> Result<()> {
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("/etc/klachtd/klachtd.toml"));
    let settings = Settings::load(&path)?;
    init_logging(&settings.log_level);
    let clock = match &cli.now {
        None => Clock::system(),
        Some(s) => Clock::starting_at(parse_now(s)?),
    };
    match cli.command {
        Command::Migrate => {
            let store = Store::open(&settings.database_url).await?;
            store.close().await;
            println!("database schema is up to date");
        }
        Command::CheckConfig => check_config(settings).await?,
        Command::Run { once } => {
            let app = App::new(settings, clock).await?;
            if once {
                crate::workers::run_once(&app).await?;
                app.store.close().await;
            } else {
                crate::workers::run(app).await?;
            }
        }
        Command::Cases(a) => {
            let store = Store::open_existing(&settings.database_url).await?;
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
            let cases = store.cases(&filter).await?;
            if a.json {
                let v: Vec<Value> = cases.iter().map(case_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if a.csv {
                print!("{}", cases_csv(&cases));
            } else {
                print_table(&cases);
            }
        }
        Command::Case(CaseCommand::Show { reference, json }) => {
            let r: CaseRef = reference.parse()?;
            let store = Store::open_existing(&settings.database_url).await?;
            let case = store
                .case_by_ref(&r)
                .await?
                .with_context(|| format!("no case {r}"))?;
            let timeline = store.timeline(case.id).await?;
            if json {
                let mut v = case_json(&case);
                v["timeline"] = timeline.iter().map(|e| e.to_json()).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let tz = &settings.organisation.timezone;
                print_case(&case, tz);
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
        }
        Command::Case(CaseCommand::Close { reference, reason }) => {
            let r: CaseRef = reference.parse()?;
            if reason.trim().is_empty() {
                bail!("--reason must not be empty");
            }
            let store = Store::open(&settings.database_url).await?;
            store
                .close_case(&r, "admin", reason.trim(), clock.now())
                .await?;
            println!("{r} closed");
        }
        Command::Report { from, to, json } => {
            let day = |flag: &str, v: &str| {
                v.parse::<jiff::civil::Date>()
                    .with_context(|| format!("{flag} {v:?}: expected a date as YYYY-MM-DD"))
            };
            let (from, to) = (day("--from", &from)?, day("--to", &to)?);
            if to < from {
                bail!("--to {to} is before --from {from}");
            }
            let store = Store::open_existing(&settings.database_url).await?;
            let cases = store.cases(&CaseFilter::default()).await?;
            let responded = store.responded().await?;
            let today = crate::config::local_date(clock.now(), &settings.organisation.timezone);
            let r = crate::report::build(&cases, &responded, from, to, today, &settings.calendar);
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", crate::report::text(&r));
            }
        }
        Command::Register(a) => {
            let p = validate_register(&a)?;
            let app = App::new(settings, clock).await?;
            let (r, status) = register_phone_complaint(&app, &p).await?;
            // Send the acknowledgement and the handler's notice now; what
            // cannot go out stays queued for the daemon.
            if let Err(e) = crate::workers::outbox::flush(&app).await {
                eprintln!("klachtd: queued, not yet sent: {e:#}");
            }
            app.store.close().await;
            println!("registered ({status}) {r}");
        }
    }
    Ok(())
}

fn parse_now(s: &str) -> Result<jiff::Timestamp> {
    s.parse::<jiff::Timestamp>()
        .with_context(|| format!("--now {s:?}: expected RFC 3339, e.g. 2026-12-01T09:00:00+01:00"))
}

fn validate_register(a: &RegisterArgs) -> Result<PhoneComplaint> {
    if a.name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    if a.description.trim().is_empty() {
        bail!("--description must not be empty");
    }
    let email = match a.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => Some(
            EmailAddress::parse(e)
                .map_err(|_| anyhow::anyhow!("--email {e:?} is not a valid email address"))?,
        ),
    };
    Ok(PhoneComplaint {
        name: a.name.trim().to_string(),
        email,
        phone: a.phone.clone().filter(|p| !p.trim().is_empty()),
        description: a.description.clone(),
        date: a.date.clone(),
        desired_outcome: a.desired_outcome.clone(),
    })
}

async fn check_config(settings: Settings) -> Result<()> {
    println!(
        "configuration: ok ({} staff, database {})",
        settings.staff.len(),
        settings.database_url.split("://").next().unwrap_or("")
    );
    let mut imap = crate::mail::imap::Imap::connect(&settings.imap)
        .await
        .context("IMAP")?;
    let sel = imap.select(&settings.imap.folder).await.context("IMAP")?;
    let sent = match &settings.imap.sent_folder {
        Some(f) => f.clone(),
        None => imap.find_sent_folder().await.context("IMAP")?,
    };
    let idle = imap.supports_idle().await.unwrap_or(false);
    imap.logout().await;
    println!(
        "imap: ok (folder {} has {} messages, Sent folder {sent:?}, IDLE {})",
        settings.imap.folder,
        sel.exists,
        if idle { "yes" } else { "no: polling" }
    );
    let smtp =
        crate::mail::smtp::Smtp::new(&settings.smtp, &settings.organisation.message_id_domain);
    smtp.test_connection().await.context("SMTP")?;
    println!("smtp: ok");
    Ok(())
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KLACHTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,klachtd={level}")));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The contract's JSON form of a case.
pub fn case_json(c: &CaseRow) -> Value {
    json!({
        "reference": c.reference,
        "status": c.status.as_str(),
        "category": c.category.as_str(),
        "language": c.language.as_str(),
        "source": c.source,
        "client_name": c.client_name,
        "client_email": c.client_email,
        "client_phone": c.client_phone,
        "subject": c.subject,
        "handler_email": c.handler_email,
        "concerns": c.concerns,
        "received_at": c.received_at,
        "ack_sent_at": c.ack_sent_at,
        "ack_due": c.ack_due,
        "response_due": c.response_due,
        "missing": c.missing.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "nature": c.nature,
        "dates": c.dates,
        "desired_outcome": c.desired_outcome,
        "triage_reason": c.triage_reason,
        "closed_at": c.closed_at,
    })
}

const CSV_COLUMNS: &[&str] = &[
    "reference",
    "status",
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
    "response_due",
    "missing",
    "triage_reason",
    "closed_at",
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

pub fn cases_csv(cases: &[CaseRow]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for c in cases {
        let v = case_json(c);
        let row: Vec<String> = CSV_COLUMNS.iter().map(|k| csv_field(&v[*k])).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

fn print_table(cases: &[CaseRow]) {
    println!(
        "{:<14} {:<13} {:<16} {:<11} {:<11} {:<28}",
        "REFERENCE", "STATUS", "CATEGORY", "ACK DUE", "DUE", "HANDLER"
    );
    for c in cases {
        println!(
            "{:<14} {:<13} {:<16} {:<11} {:<11} {:<28}",
            c.reference,
            c.status,
            c.category,
            c.ack_due,
            c.response_due,
            c.handler_email.as_deref().unwrap_or("-")
        );
    }
    println!("{} case(s)", cases.len());
}

/// A stored UTC time as local time for people ("2026-11-24 00:22").
fn local(ts: &str, tz: &jiff::tz::TimeZone) -> String {
    match crate::clock::parse_db_time(ts) {
        Some(t) => t
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        None => ts.to_string(),
    }
}

fn print_case(c: &CaseRow, tz: &jiff::tz::TimeZone) {
    let missing: Vec<&str> = c.missing.iter().map(|e| e.as_str()).collect();
    for (k, v) in [
        ("Reference", c.reference.clone()),
        ("Status", c.status.to_string()),
        ("Category", c.category.to_string()),
        (
            "Client",
            format!(
                "{} <{}>",
                c.client_name,
                c.client_email.as_deref().unwrap_or("-")
            ),
        ),
        ("Subject", c.subject.clone()),
        (
            "Handler",
            c.handler_email.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Concerns", c.concerns.join(", ")),
        ("Received", local(&c.received_at, tz)),
        (
            "Acknowledged",
            c.ack_sent_at
                .as_deref()
                .map_or("-".into(), |t| local(t, tz)),
        ),
        ("Ack due", c.ack_due.clone()),
        ("Response due", c.response_due.clone()),
        ("Missing", missing.join(", ")),
    ] {
        println!("{k:<14} {v}");
    }
}
