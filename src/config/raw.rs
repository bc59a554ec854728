//! The configuration as read: one struct per section, exactly the keys the
//! file (and the environment) may give, nothing checked beyond the types.
//! This is the schema; the environment overlay takes each value's type from
//! it too. Defaults and checks are in `validate.rs`.

use serde::Deserialize;

use super::settings::{AuthMethod, Provider, ReportEvery, Secret, Security, SentCopy};
use crate::domain::calendar::LiberationDay;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub organisation: Option<Organisation>,
    pub imap: Option<Imap>,
    pub smtp: Option<Smtp>,
    pub oauth2: Option<OAuth2>,
    pub database: Option<Database>,
    #[serde(default)]
    pub procedure: Procedure,
    #[serde(default)]
    pub calendar: Calendar,
    #[serde(default)]
    pub intake: Intake,
    #[serde(default)]
    pub digest: Digest,
    #[serde(default)]
    pub escalation: Escalation,
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub report: Report,
    #[serde(default)]
    pub privacy: Privacy,
    #[serde(default)]
    pub staff: Vec<Staff>,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub metrics: Metrics,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Organisation {
    pub name: Option<String>,
    pub address: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub timezone: Option<String>,
    pub language: Option<String>,
    pub regulation_url: Option<String>,
    pub regulation_file: Option<String>,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub website: String,
    pub templates_dir: Option<String>,
    pub message_id_domain: Option<String>,
    pub external_body: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Imap {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<Security>,
    pub username: Option<String>,
    pub auth: Option<AuthMethod>,
    #[serde(default)]
    pub password: Secret,
    pub folder: Option<String>,
    pub sent_folder: Option<String>,
    pub sent_copy: Option<SentCopy>,
    pub staff_copy_folder: Option<String>,
    pub keyword: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub idle_renew_seconds: Option<u64>,
    pub poll_seconds: Option<u64>,
    pub allow_insecure: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Smtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<Security>,
    #[serde(default)]
    pub username: String,
    pub auth: Option<AuthMethod>,
    #[serde(default)]
    pub password: Secret,
    pub timeout_seconds: Option<u64>,
    pub connections: Option<u32>,
    pub allow_insecure: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OAuth2 {
    pub provider: Option<Provider>,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Secret,
    pub service_account_file: Option<String>,
    pub token_url: Option<String>,
    pub scope: Option<String>,
    pub device_url: Option<String>,
    #[serde(default)]
    pub refresh_token: Secret,
    pub refresh_token_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Database {
    pub url: Option<String>,
    pub state_dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Procedure {
    pub ack_working_days: Option<u32>,
    pub response_working_days: Option<u32>,
    pub reminder_working_days: Option<u32>,
    pub reply_reminder_working_days: Option<u32>,
    pub auto_replies_per_sender_per_day: Option<u32>,
    pub auto_replies_per_hour: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Calendar {
    pub good_friday_off: Option<bool>,
    pub liberation_day: Option<LiberationDay>,
    #[serde(default)]
    pub closures: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Intake {
    pub max_message_bytes: Option<u64>,
    pub max_attachment_bytes: Option<u64>,
    pub complaint_folder: Option<String>,
    pub sender_auth: Option<Vec<crate::config::SenderAuthMethod>>,
    pub trusted_authserv_id: Option<String>,
    pub trusted_submission_host: Option<String>,
    pub new_cases_per_sender_per_day: Option<u32>,
    pub staff_warnings_per_hour: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Digest {
    pub at: Option<String>,
    pub send_empty: Option<bool>,
    pub triage_mail: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Escalation {
    pub second_level_working_days: Option<u32>,
    #[serde(default)]
    pub second_level_to: Vec<String>,
    pub fallback: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Health {
    pub intake_alarm_minutes: Option<u64>,
    pub outbox_alarm_minutes: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Report {
    pub every: Option<ReportEvery>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Privacy {
    pub retention_months: Option<u32>,
    pub purge_mailbox: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Metrics {
    pub listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Log {
    pub level: Option<String>,
    pub format: Option<super::settings::LogFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Staff {
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}
