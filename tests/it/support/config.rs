//! The test configuration: tests/fixtures/klachtd.toml, the one place it
//! is written, filled in for a test ([`TestConfig`]), and the settings and
//! [`App`] of the tests that need no mail server. benches/pipeline.rs
//! writes its configuration with [`TestConfig`] too.

use std::path::Path;

use jiff::Timestamp;
use klachtd::app::App;
use klachtd::clock::Clock;
use klachtd::config::Settings;

const TEMPLATE: &str = include_str!("../../fixtures/klachtd.toml");

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
    /// filled in (sections without a value left out) and `extra` (more
    /// sections) appended.
    pub fn toml(&self, extra: &str) -> String {
        let values = [
            ("{info}", Some(self.info.clone())),
            ("{anna}", Some(self.anna.clone())),
            ("{bram}", Some(self.bram.clone())),
            ("{carla}", self.carla.clone()),
            ("{dirk}", self.dirk.clone()),
            ("{imap_port}", Some(self.imap_port.to_string())),
            ("{smtp_port}", Some(self.smtp_port.to_string())),
            ("{password}", Some(self.password.clone())),
            ("{poll_seconds}", Some(self.poll_seconds.to_string())),
            (
                "{smtp_timeout_seconds}",
                Some(self.smtp_timeout_seconds.to_string()),
            ),
            ("{database_url}", Some(self.database_url.clone())),
        ];
        let mut text: String = sections(TEMPLATE)
            .into_iter()
            .skip(1) // the preamble
            .filter(|s| !values.iter().any(|(p, v)| v.is_none() && s.contains(p)))
            .collect();
        for (placeholder, value) in &values {
            if let Some(v) = value {
                text = text.replace(placeholder, v);
            }
        }
        assert!(
            !text.contains('{'),
            "tests/fixtures/klachtd.toml has a placeholder TestConfig does not fill:\n{text}"
        );
        text.push_str(extra);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

/// `text` cut before each line that opens a section: what comes before
/// the first one, then one piece per section.
fn sections(text: &str) -> Vec<&str> {
    let mut starts = vec![0];
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with('[') {
            starts.push(at);
        }
        at += line.len();
    }
    starts.push(text.len());
    starts.windows(2).map(|w| &text[w[0]..w[1]]).collect()
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
