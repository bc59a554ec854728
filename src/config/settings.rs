//! The validated settings the rest of klachtd uses: every value present,
//! checked and of its own type. Built once at start-up by `validate.rs`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::domain::calendar::Calendar;
use crate::domain::types::{EmailAddress, Lang};
use crate::mail::oauth2::TokenSource;

/// A password or token. Its `Debug` and `Display` never show the value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
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

/// How klachtd logs in to a server (`imap.auth`, `smtp.auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    None,
    Password,
    OAuth2,
}

/// `imap.auth` and `smtp.auth` as used: the secret, or where tokens come from.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Password(Secret),
    /// One source per configuration, shared by every connection, so a
    /// token is fetched once and used until shortly before it expires.
    OAuth2(Arc<TokenSource>),
}

impl Auth {
    /// The password, for a password login.
    pub fn password(&self) -> Option<&Secret> {
        match self {
            Auth::Password(p) => Some(p),
            _ => None,
        }
    }
}

/// `oauth2.provider`: which defaults (token URL, scopes) apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Provider {
    Microsoft,
    Google,
    Generic,
}

/// `imap.sent_copy`: whether klachtd keeps a copy of what it sends in Sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentCopy {
    /// `none` for Gmail (it files mail sent over SMTP in Sent by itself),
    /// `append` elsewhere.
    Auto,
    Append,
    None,
}

/// The `[oauth2]` section, checked (see `crate::mail::oauth2`).
#[derive(Clone, Debug)]
pub struct OAuth2Settings {
    pub provider: Provider,
    pub client_id: String,
    pub client_secret: Secret,
    pub token_url: String,
    /// Scope of app-only access (client credentials, service account).
    pub scope: String,
    /// Scope asked for with delegated consent (device login, refresh).
    pub delegated_scope: String,
    /// The device authorization endpoint (`klachtd oauth2 login`).
    pub device_url: Option<String>,
    pub service_account: Option<ServiceAccount>,
    /// From the configuration (or environment): used as given.
    pub refresh_token: Secret,
    /// Where `klachtd oauth2 login` keeps the refresh token.
    pub refresh_token_file: Option<PathBuf>,
    /// The mailbox the tokens are for (`imap.username`).
    pub mailbox: String,
}

/// The parts of a Google service account's key file klachtd uses.
#[derive(Clone, Debug)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key: Secret,
    pub private_key_id: Option<String>,
    pub token_uri: String,
}

/// `log.format`: lines for a person, or one JSON object per line for
/// journald's structured fields, Loki and the like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
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

#[derive(Debug, Clone)]
pub struct Settings {
    pub organisation: Organisation,
    pub imap: ImapSettings,
    pub smtp: SmtpSettings,
    /// The token source `imap.auth` and `smtp.auth` share, when either is
    /// `oauth2`.
    pub oauth2: Option<Arc<TokenSource>>,
    pub database_url: String,
    /// Where this machine keeps the outbox's in-flight markers (see
    /// `Store::inflight_marker`): `database.state_dir`, one folder per
    /// register. None for an in-memory SQLite register.
    pub marker_dir: Option<PathBuf>,
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
    pub log_format: LogFormat,
    /// `[metrics] listen`: where /metrics, /healthz and /readyz are served.
    pub metrics_listen: Option<std::net::SocketAddr>,
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
    pub auth: Auth,
    pub folder: String,
    /// Explicit Sent folder; when None the `\Sent` special-use folder is used.
    pub sent_folder: Option<String>,
    /// Where copies of mail to staff are kept; None: nowhere (never in
    /// Sent: their Message-IDs are tokens, and Sent is read by all).
    pub staff_copy_folder: Option<String>,
    /// Keep a copy of mail to clients in Sent (`imap.sent_copy`, resolved).
    pub sent_copy: bool,
    pub keyword: String,
    pub timeout: Duration,
    pub idle_renew: Duration,
    pub poll: Duration,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// The login name (with OAuth2: the mailbox).
    pub username: String,
    pub auth: Auth,
    pub timeout: Duration,
    /// SMTP sessions the outbox sends over at once.
    pub connections: usize,
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
    /// At most this many automatic replies (acknowledgements, the
    /// regulation) an hour over all senders; reaching it alarms the
    /// supervisors (a reflector, or a mail storm).
    pub auto_replies_per_hour: u32,
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
    pub intake_alarm_after: Duration,
    /// A mail waiting this long in the outbox: alarm.
    pub outbox_alarm_after: Duration,
}

#[derive(Debug, Clone)]
pub struct Intake {
    pub max_message_bytes: u64,
    pub max_attachment_bytes: u64,
    /// Case mail is moved here at once (art. 9: out of the folder everyone
    /// who reads the mailbox sees). Default `Klachten` (`Complaints` for an
    /// English organisation); `None` only when set to "" on purpose.
    pub complaint_folder: Option<String>,
    /// What the receiving server must also vouch for on staff mail.
    pub sender_auth: SenderAuth,
    /// More new complaints than this from one mailbox in 24 hours go to
    /// triage, without an automatic reply (a flood, or a reflector).
    pub new_cases_per_sender_per_day: u32,
    /// At most this many warnings about refused (possibly forged) mail to
    /// one staff member an hour, over all cases.
    pub staff_warnings_per_hour: u32,
}

/// The receiving server's checks a staff mail must pass (any one of
/// `methods`; none configured: the token alone). See `crate::mail::sender_auth`.
#[derive(Debug, Clone, Default)]
pub struct SenderAuth {
    pub methods: Vec<SenderAuthMethod>,
    /// `intake.trusted_authserv_id`: the RFC 8601 authserv-id whose
    /// `Authentication-Results` count.
    pub authserv_id: Option<String>,
    /// `intake.trusted_submission_host`: the Postfix host whose `Received`
    /// line for a logged-in client counts.
    pub submission_host: Option<String>,
}

/// A check of `intake.sender_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SenderAuthMethod {
    /// DMARC, or DKIM aligned with the staff domain, passing in the
    /// `Authentication-Results` of `intake.trusted_authserv_id`.
    AuthenticationResults,
    /// Exchange Online's `X-MS-Exchange-Organization-AuthAs: Internal`.
    ExchangeInternal,
    /// Postfix's `(Authenticated sender: …)` in the `Received` line of
    /// `intake.trusted_submission_host`.
    PostfixAuthenticatedSender,
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
