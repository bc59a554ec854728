//! The command line (design.md section 8). Every command fails with one
//! clear line on stderr and a non-zero exit.

mod admin;
mod cases;
mod classify;
mod init;
mod ops;
mod outbox;
mod privacy;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::app::App;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::types::EmailAddress;
use crate::flows::phone::PhoneComplaint;
use crate::store::Store;

/// `klachtd --version`: the package version and the git commit it was
/// built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KLACHTD_GIT_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "klachtd",
    version = VERSION,
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
    /// Write a commented configuration from a few answers (organisation,
    /// mailbox and provider, staff and roles), check it, and print the
    /// next steps. Every answer can be a flag (--no-input: ask nothing).
    Init(Box<init::InitArgs>),
    /// OAuth2 sign-in for delegated consent (`imap.auth = "oauth2"`).
    #[command(subcommand)]
    Oauth2(OAuth2Command),
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
    /// Mail that has not gone out (waiting or failed); `retry` queues
    /// failed mail again once its cause is fixed.
    Outbox(OutboxArgs),
    /// Health at a glance: last successful intake, mail waiting, open,
    /// overdue and triage cases, raised alarms. Exits 1 while an alarm is
    /// raised (for monitoring scripts).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A consistent copy of the SQLite register into FILE, while the daemon
    /// runs (PostgreSQL: use pg_dump).
    Backup { file: PathBuf },
    /// Restore a backup into database.url, which must be new or empty.
    /// Stop the daemon first.
    Restore { file: PathBuf },
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

#[derive(Subcommand, Debug)]
pub enum OAuth2Command {
    /// The device-code flow: prints a web address and a code; sign in there
    /// as the mailbox. The refresh token is stored (owner-only) in
    /// oauth2.refresh_token_file, where the daemon reads it.
    Login,
}

#[derive(Args, Debug)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub command: Option<OutboxCommand>,
    /// Only mail that failed for good.
    #[arg(long)]
    pub failed: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// Queue failed mail again: one row by its id, or every failed row.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["id", "all_failed"]))]
    Retry {
        /// The row's id (first column of `klachtd outbox`).
        id: Option<i64>,
        /// Every failed mail.
        #[arg(long)]
        all_failed: bool,
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
    if let Command::Init(_) = &cli.command {
        let Command::Init(args) = cli.command else {
            unreachable!("matched above")
        };
        return init::run(*args, cli.config).await;
    }
    let settings = Settings::load(&path)?;
    init_logging(&settings.log_level, settings.log_format);
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
        Command::Transfer { to } => admin::transfer(settings, to).await?,
        Command::Status { json } => {
            if ops::status(settings, clock, json).await? {
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                std::process::exit(1);
            }
        }
        Command::Backup { file } => ops::backup(settings, &file).await?,
        Command::Restore { file } => ops::restore(settings, &file).await?,
        Command::CheckConfig => check_config(settings).await?,
        Command::Oauth2(OAuth2Command::Login) => {
            let source = settings.oauth2.clone().context(
                "oauth2: no [oauth2] section in the configuration; see the README's provider guides",
            )?;
            source.device_login(&mut std::io::stdout()).await?;
        }
        Command::Classify { .. } | Command::Init(_) => {
            unreachable!("handled before the config is loaded")
        }
        Command::Run { once } => {
            let app = App::new(settings, clock).await?;
            if once {
                crate::workers::run_once(&app).await?;
                app.store.close().await;
            } else {
                crate::workers::run(app, crate::workers::shutdown_signal()).await?;
            }
        }
        Command::Cases(a) => cases::list(settings, clock, a).await?,
        Command::Outbox(OutboxArgs {
            command: Some(OutboxCommand::Retry { id, .. }),
            ..
        }) => outbox::retry(settings, clock, id).await?,
        Command::Outbox(a) => outbox::list(settings, a.failed, a.json).await?,
        Command::Case(CaseCommand::Show { reference, json }) => {
            cases::show(settings, clock, reference, json).await?
        }
        Command::Case(CaseCommand::Close { reference, reason }) => {
            cases::close(settings, clock, reference, reason).await?
        }
        Command::Report { from, to, json } => {
            admin::report(settings, clock, from, to, json).await?
        }
        Command::Case(CaseCommand::Assign { reference, name }) => {
            cases::assign(settings, clock, reference, name).await?
        }
        Command::Client(ClientCommand::Export { email }) => {
            privacy::export(settings, clock, email).await?
        }
        Command::Client(ClientCommand::Erase {
            email,
            include_open,
            keep_mailbox,
        }) => privacy::erase(settings, clock, email, include_open, keep_mailbox).await?,
        Command::Audit { json } => privacy::audit(settings, json).await?,
        Command::Register(a) => admin::register_phone(settings, clock, a).await?,
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
    println!(
        "imap: logged in as {} with {}",
        settings.imap.username,
        auth_name(&settings.imap.auth)
    );
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
    match &settings.smtp.auth {
        crate::config::Auth::None => println!("smtp: ok (no login)"),
        auth => println!(
            "smtp: ok (logged in as {} with {})",
            settings.smtp.username,
            auth_name(auth)
        ),
    }
    if let Some(source) = &settings.oauth2 {
        println!("oauth2: {} token(s) fetched", source.fetches());
    }
    Ok(())
}

/// "a password" or "OAuth2 (microsoft, client credentials)".
fn auth_name(auth: &crate::config::Auth) -> String {
    match auth {
        crate::config::Auth::None => "no login".into(),
        crate::config::Auth::Password(_) => "a password".into(),
        crate::config::Auth::OAuth2(source) => source.describe(),
    }
}

fn init_logging(level: &str, format: crate::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KLACHTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,klachtd={level}")));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // One object per line: timestamp, level, target, and the event's
        // fields (its message among them) under "fields", where a field
        // named like a top-level key (an escalation's `level`) cannot
        // collide with it.
        crate::config::LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
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

/// Text from mail, made safe for a terminal: control characters (an
/// escape sequence could rewrite the screen or the title, hide a line or
/// fake one) become a space; line breaks and tabs stay only with
/// `keep_lines`.
fn terminal_safe(text: &str, keep_lines: bool) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' if keep_lines => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

fn local(ts: &str, tz: &jiff::tz::TimeZone) -> String {
    match crate::clock::parse_db_time(ts) {
        Some(t) => local_time(t, tz),
        None => ts.to_string(),
    }
}

fn local_time(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn mail_text_cannot_drive_the_terminal() {
        let hostile = "Klacht\u{1b}]0;pwned\u{7}\u{1b}[2J\rOK\u{9b}31m\nregel 2\ttab";
        let line = terminal_safe(hostile, false);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.starts_with("Klacht ]0;pwned  [2J OK"));
        let text = terminal_safe(hostile, true);
        assert!(text.contains("\nregel 2\ttab") && !text.contains('\u{1b}'));
        assert!(!text.contains('\r') && !text.contains('\u{9b}'));
    }
}
