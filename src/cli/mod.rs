//! The command line (design.md section 8). Every command fails with one
//! clear line on stderr and a non-zero exit.

mod classify;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::app::App;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::types::{CaseRef, EmailAddress, Status};
use crate::flows::phone::{register_phone_complaint, PhoneComplaint};
use crate::register::{self, case_json, Record};
use crate::store::{CaseFilter, CaseRow, EventRow, Store};

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
    /// A client's data: access (export) and erasure (art. 9, AVG).
    #[command(subcommand)]
    Client(ClientCommand),
    /// The audit trail: access requests, erasures and retention runs.
    Audit {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and try the IMAP and SMTP logins.
    CheckConfig,
    /// What intake would make of one mail (.eml), without changing anything:
    /// verdict (complaint | possible | ordinary | automated), probability,
    /// article-4 elements, persons concerned. Works without a config file
    /// too (then without the roster and the own-address check).
    Classify {
        file: PathBuf,
        /// Also the features that weighed most.
        #[arg(long)]
        explain: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create or update the database schema, then exit.
    Migrate,
    /// Copy the whole register from database.url into a new, empty database
    /// (SQLite to PostgreSQL, or back). Stop the daemon first.
    Transfer {
        /// The target: postgres://… or sqlite://FILE (created and migrated).
        #[arg(long)]
        to: String,
    },
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
    /// Only open cases past a term: unacknowledged after the acknowledgement
    /// date, or unanswered after the response date.
    #[arg(long)]
    pub overdue: bool,
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
    /// Give a case to another handler (art. 6: never someone it concerns).
    /// The new handler gets the case by mail; a triage item becomes a
    /// complaint and the client is acknowledged.
    Assign {
        reference: String,
        /// Staff name, alias or address from the configuration.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Everything stored about one client, as JSON (an AVG access request).
    Export {
        /// The client's email address.
        email: String,
    },
    /// Remove one client's personal data from the register now (AVG).
    /// Category, dates and outcome stay, so the analysis still counts them.
    Erase {
        /// The client's email address.
        email: String,
        /// Also erase open cases (they are closed, since nobody can be
        /// answered any more). Without it, open cases are refused.
        #[arg(long)]
        include_open: bool,
        /// Erase the register only; leave the case's mails in the mailbox
        /// (by default they are deleted from the watched folder, the
        /// complaint folder and Sent, as `privacy.purge_mailbox` says).
        #[arg(long)]
        keep_mailbox: bool,
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
    if let Command::Classify {
        file,
        explain,
        json,
    } = &cli.command
    {
        // The config adds the roster and the own addresses; without one
        // (none given and none at the default place) the text alone is read.
        let settings = match (&cli.config, path.exists()) {
            (None, false) => None,
            _ => Some(Settings::load(&path)?),
        };
        return classify::run(settings.as_ref(), file, *explain, *json);
    }
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
        Command::Transfer { to } => {
            if to.trim() == settings.database_url.trim() {
                anyhow::bail!("--to is database.url itself; give a new, empty database");
            }
            let from = Store::open_existing(&settings.database_url).await?;
            let target = Store::open(&to).await?;
            let result = crate::store::transfer(&from, &target).await;
            from.close().await;
            target.close().await;
            let copied = result?;
            for c in &copied {
                println!("{:<14} {:>8} rows", c.table, c.rows);
            }
            println!(
                "register copied into {}; point database.url there and start klachtd",
                crate::store::redact_url(&to)
            );
        }
        Command::CheckConfig => check_config(settings).await?,
        Command::Classify { .. } => unreachable!("handled before the config is loaded"),
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
        }
        Command::Case(CaseCommand::Show { reference, json }) => {
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
            let today = crate::config::local_date(clock.now(), &settings.organisation.timezone);
            let (cases, records) =
                register::load(&store, &settings, &CaseFilter::default(), today).await?;
            let r = crate::report::build(&cases, &records, from, to, &settings.procedure);
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!(
                    "{}",
                    crate::report::text(&r, settings.organisation.language)
                );
            }
        }
        Command::Case(CaseCommand::Assign { reference, name }) => {
            let r: CaseRef = reference.parse()?;
            let app = App::new(settings, clock).await?;
            let done =
                crate::flows::assign::assign_by_admin(&app, &r, &name, &admin_actor()).await?;
            if let Err(e) = crate::workers::outbox::flush(&app).await {
                eprintln!("klachtd: queued, not yet sent: {e:#}");
            }
            app.store.close().await;
            println!("{r}: {done}");
        }
        Command::Client(ClientCommand::Export { email }) => {
            let email = client_address(&email)?;
            let store = Store::open_existing(&settings.database_url).await?;
            let v = crate::flows::privacy::export(
                &store,
                &settings,
                &email,
                &admin_actor(),
                clock.now(),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Command::Client(ClientCommand::Erase {
            email,
            include_open,
            keep_mailbox,
        }) => {
            let email = client_address(&email)?;
            let store = Store::open_existing(&settings.database_url).await?;
            let mailbox = (settings.purge_mailbox && !keep_mailbox).then_some(&settings);
            let erased = crate::flows::privacy::erase(
                &store,
                mailbox,
                &email,
                include_open,
                &admin_actor(),
                clock.now(),
            )
            .await?;
            if erased.cases.is_empty() && erased.other_mail == 0 {
                println!("nothing stored about that address; nothing to erase");
            } else {
                println!(
                    "erased {} case(s): {}; {} other mail(s) emptied; {} message(s) deleted from the mailbox",
                    erased.cases.len(),
                    erased.cases.join(" "),
                    erased.other_mail,
                    erased.mailbox_deleted
                );
            }
        }
        Command::Audit { json } => {
            let store = Store::open_existing(&settings.database_url).await?;
            let rows = store.audit_trail().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let tz = &settings.organisation.timezone;
                for a in &rows {
                    println!(
                        "{}  {:<14} {:<24} {}  {}",
                        local(&a.at, tz),
                        a.action,
                        a.actor,
                        a.detail,
                        a.cases
                    );
                }
                println!(
                    "{} entr{}",
                    rows.len(),
                    if rows.len() == 1 { "y" } else { "ies" }
                );
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

/// The address an AVG request names.
fn client_address(email: &str) -> Result<EmailAddress> {
    EmailAddress::parse(email)
        .map_err(|_| anyhow::anyhow!("{email:?} is not a valid email address"))
}

/// Who runs an admin command, for the timeline and the audit trail.
fn admin_actor() -> String {
    match std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")) {
        Ok(u) if !u.is_empty() => format!("admin ({u})"),
        _ => "admin".into(),
    }
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
            c.response_due.clone()
        };
        println!(
            "{:<14} {:<13} {:<13} {:<16} {:<11} {:<12} {:<28}",
            c.reference,
            c.status,
            r.outcome.as_str(),
            c.category,
            c.ack_due,
            due,
            c.handler_email.as_deref().unwrap_or("-")
        );
    }
    if cases.iter().any(|(_, r)| r.overdue) {
        println!("! overdue: a term has passed without the acknowledgement or the answer");
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

fn print_case(c: &CaseRow, r: &Record, tz: &jiff::tz::TimeZone) {
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
