//! Configuration: a TOML file plus `KLACHTD__SECTION__KEY` environment
//! overrides, validated once at start-up into [`Settings`]. Every error is
//! one line that names the offending key.
//!
//! - `raw.rs`: the sections as read, with serde; the one schema.
//! - `env.rs`: the environment overlay, typed by that schema.
//! - `validate.rs`: defaults and checks, one function per section.
//! - `settings.rs`: the validated [`Settings`] the rest of klachtd uses.

mod env;
mod raw;
mod settings;
mod validate;

use std::path::Path;

use jiff::civil::Date;
use jiff::tz::TimeZone;

pub use settings::{
    Auth, AuthMethod, Escalation, HealthSettings, ImapSettings, Intake, LogFormat, OAuth2Settings,
    Organisation, Procedure, Provider, ReportEvery, Roles, Secret, Security, SenderAuth,
    SenderAuthMethod, SentCopy, ServiceAccount, Settings, SmtpSettings, Staff, TriageMail,
};

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
        let file: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            // The first line says where: "TOML parse error at line 3, column 6".
            let msg = e.to_string();
            err("file", msg.lines().next().unwrap_or("invalid TOML"))
        })?;
        let layered = env::Layered::new(file, env)?;
        let raw: raw::File = serde_path_to_error::deserialize(layered).map_err(|e| {
            let key = match e.path().to_string() {
                root if root == "." => "file".to_string(),
                key => key,
            };
            err(key, e.inner().message())
        })?;
        validate::settings(raw, base_dir)
    }
}

/// Today's date in the organisation's time zone.
pub fn local_date(ts: jiff::Timestamp, tz: &TimeZone) -> Date {
    ts.to_zoned(tz.clone()).date()
}

/// The test configuration, written once (tests/fixtures/klachtd.toml),
/// shared with the integration tests and the bench.
#[cfg(test)]
#[path = "../../tests/it/support/template.rs"]
mod template;
#[cfg(test)]
pub(crate) mod tests;
