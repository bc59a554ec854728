//! Configuration: a TOML file plus `KLACHTD__SECTION__KEY` environment
//! overrides, validated once at start-up into [`Settings`]. Every error is
//! one line that names the offending key.

use std::fmt;
use std::path::{Path, PathBuf};

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::domain::calendar::{parse_closures, Calendar, LiberationDay};
use crate::domain::types::{EmailAddress, Lang};

/// A configuration error: always names the key (`imap.host`) it is about.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// A password or token. Its `Debug` and `Display` never show the value.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Tls,
    Starttls,
    None,
}

/// How supervisors hear of possible complaints (triage items).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriageMail {
    /// A mail per item at once, and the item in the daily digest.
    Each,
    /// Only the daily digest, answerable there per item.
    Digest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportEvery {
    Month,
    Quarter,
}

// ---------------------------------------------------------------- raw file

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    organisation: Option<RawOrganisation>,
    imap: Option<RawImap>,
    smtp: Option<RawSmtp>,
    database: Option<RawDatabase>,
    #[serde(default)]
    procedure: RawProcedure,
    #[serde(default)]
    calendar: RawCalendar,
    #[serde(default)]
    intake: RawIntake,
    #[serde(default)]
    digest: RawDigest,
    #[serde(default)]
    escalation: RawEscalation,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    privacy: RawPrivacy,
    #[serde(default)]
    staff: Vec<RawStaff>,
    #[serde(default)]
    log: RawLog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrganisation {
    name: Option<String>,
    address: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    timezone: Option<String>,
    language: Option<String>,
    regulation_url: Option<String>,
    regulation_file: Option<String>,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    website: String,
    templates_dir: Option<String>,
    message_id_domain: Option<String>,
    external_body: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    host: Option<String>,
    port: Option<u16>,
    security: Option<Security>,
    username: Option<String>,
    #[serde(default)]
    password: Secret,
    folder: Option<String>,
    sent_folder: Option<String>,
    keyword: Option<String>,
    timeout_seconds: Option<u64>,
    idle_renew_seconds: Option<u64>,
    poll_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    security: Option<Security>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Secret,
    timeout_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProcedure {
    ack_working_days: Option<u32>,
    response_working_days: Option<u32>,
    reminder_working_days: Option<u32>,
    reply_reminder_working_days: Option<u32>,
    auto_replies_per_sender_per_day: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    good_friday_off: Option<bool>,
    liberation_day: Option<LiberationDay>,
    #[serde(default)]
    closures: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIntake {
    max_message_bytes: Option<u64>,
    max_attachment_bytes: Option<u64>,
    complaint_folder: Option<String>,
    trusted_authserv_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    at: Option<String>,
    send_empty: Option<bool>,
    triage_mail: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    second_level_working_days: Option<u32>,
    #[serde(default)]
    second_level_to: Vec<String>,
    fallback: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    intake_alarm_minutes: Option<u64>,
    outbox_alarm_minutes: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    every: Option<ReportEvery>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    retention_months: Option<u32>,
    purge_mailbox: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaff {
    name: Option<String>,
    email: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
}

// ---------------------------------------------------------------- settings

#[derive(Debug, Clone)]
pub struct Settings {
    pub organisation: Organisation,
    pub imap: ImapSettings,
    pub smtp: SmtpSettings,
    pub database_url: String,
    pub procedure: Procedure,
    pub calendar: Calendar,
    pub intake: Intake,
    pub digest_at: Time,
    /// Send the digest on working days with nothing to report too.
    pub digest_send_empty: bool,
    /// A mail to the supervisors per possible complaint, or only the digest.
    pub triage_mail: TriageMail,
    pub escalation: Escalation,
    pub health: HealthSettings,
    pub report_every: ReportEvery,
    pub retention_months: u32,
    /// Retention and erasure also delete the case's mail from the
    /// organisation's mailbox (watched folder, complaint folder, Sent).
    pub purge_mailbox: bool,
    pub staff: Vec<Staff>,
    pub log_level: String,
}

#[derive(Debug, Clone)]
pub struct Organisation {
    pub name: String,
    pub address: EmailAddress,
    pub aliases: Vec<EmailAddress>,
    pub timezone: TimeZone,
    pub language: Lang,
    pub regulation_url: String,
    pub regulation_file: Option<PathBuf>,
    pub phone: String,
    pub website: String,
    pub templates_dir: Option<PathBuf>,
    pub message_id_domain: String,
    pub external_body: String,
}

impl Organisation {
    /// The complaints mailbox and its aliases: mail from these is our own.
    pub fn own_addresses(&self) -> Vec<EmailAddress> {
        let mut v = vec![self.address.clone()];
        v.extend(self.aliases.iter().cloned());
        v
    }
}

#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub password: Secret,
    pub folder: String,
    /// Explicit Sent folder; when None the `\Sent` special-use folder is used.
    pub sent_folder: Option<String>,
    pub keyword: String,
    pub timeout: std::time::Duration,
    pub idle_renew: std::time::Duration,
    pub poll: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub password: Secret,
    pub timeout: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct Procedure {
    pub ack_working_days: u32,
    pub response_working_days: u32,
    /// Remind the handler this many working days before the response is
    /// due; 0: no reminders.
    pub reminder_working_days: u32,
    /// Remind the handler when a client's reply has waited this many working
    /// days for an answer; 0: no such reminders.
    pub reply_reminder_working_days: u32,
    pub auto_replies_per_sender_per_day: u32,
}

/// Who hears of a missed deadline, and when again (design.md section 6).
#[derive(Debug, Clone)]
pub struct Escalation {
    /// Working days after the first escalation that a second one follows
    /// while nothing happens; 0: no second level.
    pub second_level_working_days: u32,
    /// Also told at the second level (a director, an external adviser).
    pub second_level_to: Vec<EmailAddress>,
    /// Told when every supervisor is concerned by the case (art. 9).
    pub fallback: Option<EmailAddress>,
}

/// When the supervisors are alarmed about klachtd itself.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Intake failing this long (bad password, server down): alarm.
    pub intake_alarm_after: std::time::Duration,
    /// A mail waiting this long in the outbox: alarm.
    pub outbox_alarm_after: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct Intake {
    pub max_message_bytes: u64,
    pub max_attachment_bytes: u64,
    pub complaint_folder: Option<String>,
    /// When set, staff answers must also carry an `Authentication-Results`
    /// header of this server (RFC 8601 authserv-id) with DKIM, SPF or DMARC
    /// passing for the staff member's domain.
    pub trusted_authserv_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub handler: bool,
    pub supervisor: bool,
}

#[derive(Debug, Clone)]
pub struct Staff {
    pub name: String,
    pub email: EmailAddress,
    pub aliases: Vec<String>,
    pub roles: Roles,
}

impl Settings {
    /// Reads `path`, applies `KLACHTD__…` environment overrides, validates.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// As [`Settings::load`], with the environment given (tests).
    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::from_toml(&text, &base, env)
    }

    /// Parses TOML text; relative paths are taken relative to `base_dir`
    /// (the config file's folder), never the current directory.
    pub fn from_toml(
        text: &str,
        base_dir: &Path,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let mut table: toml_value::Table = text.parse::<toml_value::Table>().map_err(|e| {
            let msg = e.to_string();
            err(
                "file",
                msg.lines().next().unwrap_or("invalid TOML").to_string(),
            )
        })?;
        apply_env(&mut table, env)?;
        let raw: RawFile = RawFile::deserialize(toml_value::Value::Table(table)).map_err(|e| {
            err(
                key_of_serde_error(&e.to_string()),
                first_line(&e.to_string()),
            )
        })?;
        validate(raw, base_dir)
    }

    pub fn supervisors(&self) -> impl Iterator<Item = &Staff> {
        self.staff.iter().filter(|s| s.roles.supervisor)
    }

    pub fn staff_by_email(&self, email: &EmailAddress) -> Option<&Staff> {
        self.staff.iter().find(|s| &s.email == email)
    }

    /// The colleague a command names: full name, alias or address, or a
    /// first name that only one person has; case-insensitive. The error
    /// lists who can be named.
    pub fn staff_named(&self, who: &str) -> Result<&Staff, String> {
        let who = who
            .trim()
            .trim_matches(|c| c == '"' || c == '\'' || c == '<' || c == '>');
        let norm = |x: &str| {
            x.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        };
        let want = norm(who);
        let exact: Vec<&Staff> = self
            .staff
            .iter()
            .filter(|s| {
                norm(&s.name) == want
                    || s.email.as_str().eq_ignore_ascii_case(who)
                    || s.aliases.iter().any(|a| norm(a) == want)
            })
            .collect();
        let found = if exact.is_empty() {
            self.staff
                .iter()
                .filter(|s| s.name.split_whitespace().next().map(norm) == Some(want.clone()))
                .collect()
        } else {
            exact
        };
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "niemand heet '{who}'; bekend zijn: {}",
                self.staff
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            many => Err(format!(
                "'{who}' past op meer collega's ({}); gebruik de volledige naam of het adres",
                many.iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

// TOML plus a small environment overlay (rather than the `config` crate,
// which loses the key in several of its messages) keeps every error naming it.
use toml as toml_value;

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

fn key_of_serde_error(msg: &str) -> String {
    // serde's messages: "unknown field `hots`, expected one of …"
    if let Some(i) = msg.find('`') {
        if let Some(j) = msg[i + 1..].find('`') {
            return msg[i + 1..i + 1 + j].to_string();
        }
    }
    "file".to_string()
}

/// Applies `KLACHTD__SECTION__KEY=value` overrides onto the parsed table.
fn apply_env(table: &mut toml_value::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("KLACHTD__") else {
            continue;
        };
        let parts: Vec<String> = rest.split("__").map(|p| p.to_lowercase()).collect();
        let key = parts.join(".");
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(err(
                name,
                "environment overrides take the form KLACHTD__SECTION__KEY",
            ));
        }
        let section = table
            .entry(parts[0].clone())
            .or_insert_with(|| toml_value::Value::Table(Default::default()));
        let toml_value::Value::Table(section) = section else {
            return Err(err(&parts[0], "is not a section"));
        };
        // Keep the type the file had for this key; otherwise guess.
        let typed = match section.get(&parts[1]) {
            Some(toml_value::Value::String(_)) => toml_value::Value::String(value.clone()),
            Some(toml_value::Value::Integer(_)) => toml_value::Value::Integer(
                value
                    .parse()
                    .map_err(|_| err(&key, format!("{name} must be a whole number")))?,
            ),
            Some(toml_value::Value::Boolean(_)) => toml_value::Value::Boolean(
                value
                    .parse()
                    .map_err(|_| err(&key, format!("{name} must be true or false")))?,
            ),
            Some(toml_value::Value::Array(_)) => toml_value::Value::Array(
                value
                    .split(',')
                    .map(|s| toml_value::Value::String(s.trim().to_string()))
                    .collect(),
            ),
            _ if LIST_KEYS.contains(&parts[1].as_str()) => toml_value::Value::Array(
                value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| toml_value::Value::String(s.trim().to_string()))
                    .collect(),
            ),
            _ => match value.parse::<i64>() {
                Ok(n) if INTEGER_KEYS.contains(&parts[1].as_str()) => toml_value::Value::Integer(n),
                _ => match value.as_str() {
                    "true" | "false" if BOOL_KEYS.contains(&parts[1].as_str()) => {
                        toml_value::Value::Boolean(value == "true")
                    }
                    _ => toml_value::Value::String(value.clone()),
                },
            },
        };
        section.insert(parts[1].clone(), typed);
    }
    Ok(())
}

const INTEGER_KEYS: &[&str] = &[
    "port",
    "ack_working_days",
    "response_working_days",
    "reminder_working_days",
    "reply_reminder_working_days",
    "second_level_working_days",
    "intake_alarm_minutes",
    "outbox_alarm_minutes",
    "auto_replies_per_sender_per_day",
    "retention_months",
    "max_message_bytes",
    "max_attachment_bytes",
    "timeout_seconds",
    "idle_renew_seconds",
    "poll_seconds",
];
const BOOL_KEYS: &[&str] = &["good_friday_off", "send_empty", "purge_mailbox"];
/// Lists given in the environment as comma-separated values.
const LIST_KEYS: &[&str] = &["aliases", "closures", "second_level_to"];

fn required<T>(v: Option<T>, key: &str) -> Result<T, ConfigError> {
    v.ok_or_else(|| err(key, "missing (required)"))
}

fn nonempty(v: Option<String>, key: &str) -> Result<String, ConfigError> {
    let s = required(v, key)?;
    if s.trim().is_empty() {
        return Err(err(key, "must not be empty"));
    }
    Ok(s.trim().to_string())
}

fn address(v: &str, key: &str) -> Result<EmailAddress, ConfigError> {
    EmailAddress::parse(v).map_err(|_| err(key, format!("{v:?} is not a valid email address")))
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

fn validate(raw: RawFile, base: &Path) -> Result<Settings, ConfigError> {
    let o = raw
        .organisation
        .ok_or_else(|| err("organisation", "section missing"))?;
    let org_address = address(
        &nonempty(o.address, "organisation.address")?,
        "organisation.address",
    )?;
    let tz_name = o.timezone.unwrap_or_else(|| "Europe/Amsterdam".into());
    let timezone = TimeZone::get(&tz_name).map_err(|_| {
        err(
            "organisation.timezone",
            format!("unknown time zone {tz_name:?}"),
        )
    })?;
    let language = match o.language.as_deref() {
        None => Lang::Nl,
        Some(l) => l
            .parse()
            .map_err(|_| err("organisation.language", format!("{l:?}: expected nl or en")))?,
    };
    let regulation_url = nonempty(o.regulation_url, "organisation.regulation_url")?;
    if !(regulation_url.starts_with("https://") || regulation_url.starts_with("http://")) {
        return Err(err(
            "organisation.regulation_url",
            "must start with https:// or http://",
        ));
    }
    let regulation_file = o.regulation_file.map(|p| resolve(base, &p));
    if let Some(p) = &regulation_file {
        if !p.is_file() {
            return Err(err(
                "organisation.regulation_file",
                format!("{} does not exist", p.display()),
            ));
        }
    }
    let templates_dir = o.templates_dir.map(|p| resolve(base, &p));
    if let Some(p) = &templates_dir {
        if !p.is_dir() {
            return Err(err(
                "organisation.templates_dir",
                format!("{} is not a folder", p.display()),
            ));
        }
    }
    let aliases = o
        .aliases
        .iter()
        .map(|a| address(a, "organisation.aliases"))
        .collect::<Result<Vec<_>, _>>()?;
    let message_id_domain = o
        .message_id_domain
        .unwrap_or_else(|| format!("klachtd.{}", org_address.domain()));
    let organisation = Organisation {
        name: nonempty(o.name, "organisation.name")?,
        address: org_address,
        aliases,
        timezone,
        language,
        regulation_url,
        regulation_file,
        phone: o.phone,
        website: o.website,
        templates_dir,
        message_id_domain,
        external_body: o.external_body.unwrap_or_default(),
    };

    let i = raw.imap.ok_or_else(|| err("imap", "section missing"))?;
    let imap_security = i.security.unwrap_or(Security::Tls);
    let imap = ImapSettings {
        host: nonempty(i.host, "imap.host")?,
        port: i.port.unwrap_or(match imap_security {
            Security::Tls => 993,
            _ => 143,
        }),
        security: imap_security,
        username: nonempty(i.username, "imap.username")?,
        password: i.password,
        folder: i.folder.unwrap_or_else(|| "INBOX".into()),
        sent_folder: i.sent_folder.filter(|s| !s.trim().is_empty()),
        keyword: i.keyword.unwrap_or_else(|| "$Klacht".into()),
        timeout: secs(i.timeout_seconds, 30, "imap.timeout_seconds")?,
        idle_renew: secs(i.idle_renew_seconds, 600, "imap.idle_renew_seconds")?,
        poll: secs(i.poll_seconds, 60, "imap.poll_seconds")?,
    };
    if imap
        .keyword
        .contains(|c: char| c.is_whitespace() || "(){%*\"\\]".contains(c))
    {
        return Err(err("imap.keyword", "not a valid IMAP keyword"));
    }
    if imap.idle_renew.as_secs() > 29 * 60 {
        return Err(err(
            "imap.idle_renew_seconds",
            "must be below 29 minutes (RFC 2177)",
        ));
    }

    let s = raw.smtp.ok_or_else(|| err("smtp", "section missing"))?;
    let smtp_security = s.security.unwrap_or(Security::Starttls);
    let smtp = SmtpSettings {
        host: nonempty(s.host, "smtp.host")?,
        port: s.port.unwrap_or(match smtp_security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::None => 25,
        }),
        security: smtp_security,
        username: s.username,
        password: s.password,
        timeout: secs(s.timeout_seconds, 30, "smtp.timeout_seconds")?,
    };

    let database_url = match raw.database.and_then(|d| d.url) {
        None => format!("sqlite://{}", base.join("var/klachtd.db").display()),
        Some(u) => normalise_db_url(&u, base)?,
    };

    let p = raw.procedure;
    let procedure = Procedure {
        ack_working_days: days(p.ack_working_days, 5, "procedure.ack_working_days")?,
        response_working_days: days(
            p.response_working_days,
            20,
            "procedure.response_working_days",
        )?,
        reminder_working_days: p.reminder_working_days.unwrap_or(3),
        reply_reminder_working_days: p.reply_reminder_working_days.unwrap_or(2),
        auto_replies_per_sender_per_day: p.auto_replies_per_sender_per_day.unwrap_or(3),
    };
    if procedure.reminder_working_days >= procedure.response_working_days {
        return Err(err(
            "procedure.reminder_working_days",
            "must be less than procedure.response_working_days (0 turns reminders off)",
        ));
    }
    if procedure.reply_reminder_working_days > 60 {
        return Err(err(
            "procedure.reply_reminder_working_days",
            "must be between 0 (off) and 60",
        ));
    }
    if procedure.ack_working_days > procedure.response_working_days {
        return Err(err(
            "procedure.ack_working_days",
            "must not exceed procedure.response_working_days",
        ));
    }

    let closures =
        parse_closures(&raw.calendar.closures).map_err(|e| err("calendar.closures", e))?;
    let calendar = Calendar::new(
        raw.calendar.good_friday_off.unwrap_or(false),
        raw.calendar
            .liberation_day
            .unwrap_or(LiberationDay::Lustrum),
        closures,
    );

    if let Some(f) = raw.intake.complaint_folder.as_deref() {
        if f.trim().eq_ignore_ascii_case(imap.folder.trim()) {
            return Err(err(
                "intake.complaint_folder",
                format!("must differ from imap.folder ({:?}): case mail is moved out of the folder klachtd watches", imap.folder),
            ));
        }
    }
    let intake = Intake {
        max_message_bytes: raw.intake.max_message_bytes.unwrap_or(25 * 1024 * 1024),
        max_attachment_bytes: raw.intake.max_attachment_bytes.unwrap_or(10 * 1024 * 1024),
        complaint_folder: raw.intake.complaint_folder.filter(|s| !s.trim().is_empty()),
        trusted_authserv_id: raw
            .intake
            .trusted_authserv_id
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    };
    if intake.max_message_bytes < 64 * 1024 {
        return Err(err("intake.max_message_bytes", "must be at least 65536"));
    }

    let digest_raw = raw.digest.at.unwrap_or_else(|| "08:30".into());
    let digest_at = Time::strptime("%H:%M", &digest_raw)
        .map_err(|_| err("digest.at", format!("{digest_raw:?}: expected HH:MM")))?;
    let triage_mail = match raw.digest.triage_mail.as_deref().map(str::trim) {
        None | Some("each") => TriageMail::Each,
        Some("digest") => TriageMail::Digest,
        Some(other) => {
            return Err(err(
                "digest.triage_mail",
                format!("{other:?}: expected \"each\" or \"digest\""),
            ))
        }
    };

    let e = raw.escalation;
    let second_level_working_days = e.second_level_working_days.unwrap_or(5);
    if second_level_working_days > 60 {
        return Err(err(
            "escalation.second_level_working_days",
            "must be between 0 (no second level) and 60",
        ));
    }
    let escalation = Escalation {
        second_level_working_days,
        second_level_to: e
            .second_level_to
            .iter()
            .filter(|a| !a.trim().is_empty())
            .map(|a| address(a, "escalation.second_level_to"))
            .collect::<Result<_, _>>()?,
        fallback: e
            .fallback
            .filter(|a| !a.trim().is_empty())
            .map(|a| address(&a, "escalation.fallback"))
            .transpose()?,
    };
    let minutes = |v: Option<u64>, default: u64, key: &str| {
        let n = v.unwrap_or(default);
        if n == 0 || n > 7 * 24 * 60 {
            return Err(err(key, "must be between 1 and 10080 (a week)"));
        }
        Ok(std::time::Duration::from_secs(n * 60))
    };
    let health = HealthSettings {
        intake_alarm_after: minutes(
            raw.health.intake_alarm_minutes,
            60,
            "health.intake_alarm_minutes",
        )?,
        outbox_alarm_after: minutes(
            raw.health.outbox_alarm_minutes,
            30,
            "health.outbox_alarm_minutes",
        )?,
    };

    let mut staff = Vec::new();
    for (n, st) in raw.staff.into_iter().enumerate() {
        let k = |f: &str| format!("staff[{n}].{f}");
        let email = address(&nonempty(st.email, &k("email"))?, &k("email"))?;
        let mut roles = Roles {
            handler: false,
            supervisor: false,
        };
        for r in &st.roles {
            match r.as_str() {
                "handler" => roles.handler = true,
                "supervisor" => roles.supervisor = true,
                other => {
                    return Err(err(
                        k("roles"),
                        format!("unknown role {other:?} (expected handler or supervisor)"),
                    ))
                }
            }
        }
        if staff.iter().any(|s: &Staff| s.email == email) {
            return Err(err(k("email"), format!("{email} is listed twice")));
        }
        if email == organisation.address {
            return Err(err(k("email"), "must not be the complaints mailbox itself"));
        }
        staff.push(Staff {
            name: nonempty(st.name, &k("name"))?,
            email,
            aliases: st
                .aliases
                .into_iter()
                .filter(|a| !a.trim().is_empty())
                .collect(),
            roles,
        });
    }
    if !staff.iter().any(|s| s.roles.supervisor) {
        return Err(err(
            "staff",
            "at least one member needs the role \"supervisor\"",
        ));
    }
    if !staff.iter().any(|s| s.roles.handler || s.roles.supervisor) {
        return Err(err("staff", "nobody can handle complaints"));
    }

    Ok(Settings {
        organisation,
        imap,
        smtp,
        database_url,
        procedure,
        calendar,
        intake,
        digest_at,
        digest_send_empty: raw.digest.send_empty.unwrap_or(false),
        triage_mail,
        escalation,
        health,
        report_every: raw.report.every.unwrap_or(ReportEvery::Month),
        retention_months: raw.privacy.retention_months.unwrap_or(24),
        purge_mailbox: raw.privacy.purge_mailbox.unwrap_or(true),
        staff,
        log_level: raw.log.level.unwrap_or_else(|| "info".into()),
    })
}

fn secs(v: Option<u64>, default: u64, key: &str) -> Result<std::time::Duration, ConfigError> {
    let n = v.unwrap_or(default);
    if n == 0 {
        return Err(err(key, "must be at least 1"));
    }
    Ok(std::time::Duration::from_secs(n))
}

fn days(v: Option<u32>, default: u32, key: &str) -> Result<u32, ConfigError> {
    let n = v.unwrap_or(default);
    if n == 0 || n > 365 {
        return Err(err(key, "must be between 1 and 365"));
    }
    Ok(n)
}

fn normalise_db_url(u: &str, base: &Path) -> Result<String, ConfigError> {
    if let Some(rest) = u.strip_prefix("sqlite://") {
        if rest.is_empty() {
            return Err(err("database.url", "sqlite:// needs a file path"));
        }
        let (path, query) = rest
            .split_once('?')
            .map_or((rest, None), |(p, q)| (p, Some(q)));
        if path == ":memory:" {
            return Ok(u.to_string());
        }
        let full = resolve(base, path);
        Ok(match query {
            Some(q) => format!("sqlite://{}?{q}", full.display()),
            None => format!("sqlite://{}", full.display()),
        })
    } else if u.starts_with("postgres://") || u.starts_with("postgresql://") {
        Ok(u.to_string())
    } else {
        Err(err(
            "database.url",
            "must start with sqlite:// or postgres://",
        ))
    }
}

/// Today's date in the organisation's time zone.
pub fn local_date(ts: jiff::Timestamp, tz: &TimeZone) -> Date {
    ts.to_zoned(tz.clone()).date()
}

#[cfg(test)]
pub(crate) mod tests;
