//! The test configuration: tests/fixtures/klachtd.toml, the one place it
//! is written, filled in for a test ([`TestConfig`], through
//! [`template::fill`]), and the settings and [`App`] of the tests that need
//! no mail server. benches/pipeline.rs writes its configuration with
//! [`TestConfig`] too.

use std::path::Path;

use jiff::Timestamp;
use klachtd::app::App;
use klachtd::clock::Clock;
use klachtd::config::Settings;

use super::template;

/// The addresses of the tests that need no mail server.
pub const ORG: &str = "info@31solutions.test";
pub const ANNA: &str = "anna@31solutions.test";
pub const BRAM: &str = "bram@31solutions.test";
pub const CARLA: &str = "carla@31solutions.test";
pub const DIRK: &str = "dirk@31solutions.test";

/// The values of the template's placeholders.
pub struct TestConfig {
    pub info: String,
    pub anna: String,
    pub bram: String,
    /// `None` leaves Carla out of the staff.
    pub carla: Option<String>,
    /// `None` leaves Dirk out of the staff.
    pub dirk: Option<String>,
    pub imap_port: u16,
    pub smtp_port: u16,
    pub password: String,
    pub poll_seconds: u64,
    pub smtp_timeout_seconds: u64,
    pub database_url: String,
}

impl TestConfig {
    /// The fixed addresses ([`ORG`], [`ANNA`], …) on `database_url`. IMAP
    /// and SMTP point at port 9 on loopback (discard): nothing that uses
    /// this configuration ever connects to them.
    pub fn offline(database_url: &str) -> TestConfig {
        TestConfig {
            info: ORG.into(),
            anna: ANNA.into(),
            bram: BRAM.into(),
            carla: Some(CARLA.into()),
            dirk: Some(DIRK.into()),
            imap_port: 9,
            smtp_port: 9,
            password: "not-used".into(),
            poll_seconds: 60,
            smtp_timeout_seconds: 30,
            database_url: database_url.into(),
        }
    }

    /// The configuration file's text: the template with its placeholders
    /// filled in (Carla's and Dirk's sections left out when they are
    /// `None`) and `extra` (more sections) appended.
    pub fn toml(&self, extra: &str) -> String {
        let imap_port = self.imap_port.to_string();
        let smtp_port = self.smtp_port.to_string();
        let poll_seconds = self.poll_seconds.to_string();
        let smtp_timeout_seconds = self.smtp_timeout_seconds.to_string();
        let mut text = template::fill(&[
            ("{info}", Some(self.info.as_str())),
            ("{anna}", Some(self.anna.as_str())),
            ("{bram}", Some(self.bram.as_str())),
            ("{carla}", self.carla.as_deref()),
            ("{dirk}", self.dirk.as_deref()),
            ("{imap_port}", Some(imap_port.as_str())),
            ("{smtp_port}", Some(smtp_port.as_str())),
            ("{password}", Some(self.password.as_str())),
            ("{poll_seconds}", Some(poll_seconds.as_str())),
            (
                "{smtp_timeout_seconds}",
                Some(smtp_timeout_seconds.as_str()),
            ),
            ("{database_url}", Some(self.database_url.as_str())),
        ]);
        text.push_str(extra);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

/// Settings from TOML text, with no environment overrides (the test
/// process's own `KLACHTD__…` variables never leak in).
pub fn settings_from_toml(text: &str, base: &Path) -> Settings {
    Settings::from_toml(text, base, &[]).unwrap_or_else(|e| panic!("test config invalid: {e}"))
}

/// The offline configuration's settings on `db_url`, `extra` appended.
pub fn settings(db_url: &str, extra: &str) -> Settings {
    settings_from_toml(
        &TestConfig::offline(db_url).toml(extra),
        Path::new("/nonexistent-base"),
    )
}

/// An App on `db_url` whose clock starts at `at`.
pub async fn app_at(db_url: &str, extra: &str, at: Timestamp) -> App {
    App::new(settings(db_url, extra), Clock::starting_at(at))
        .await
        .unwrap_or_else(|e| panic!("App::new on {db_url}: {e:#}"))
}

#[test]
fn the_template_fills_in_and_leaves_out_whole_sections() {
    let mut c = TestConfig::offline("sqlite://:memory:");
    let all = settings_from_toml(&c.toml(""), Path::new("/x"));
    assert_eq!(all.staff.len(), 4);
    c.carla = None;
    c.dirk = None;
    let two = settings_from_toml(&c.toml("[procedure]\n"), Path::new("/x"));
    assert_eq!(two.staff.len(), 2);
    assert_eq!(two.imap.poll.as_secs(), 60);
}
