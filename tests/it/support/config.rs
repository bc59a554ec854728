//! The test configuration, and the settings and `App` of the tests that
//! need no mail server.

use std::path::Path;

use jiff::Timestamp;
use klachtd::app::App;
use klachtd::clock::Clock;
use klachtd::config::Settings;

pub const ORG: &str = "info@31solutions.test";
pub const ANNA: &str = "anna@31solutions.test";
pub const BRAM: &str = "bram@31solutions.test";
pub const CARLA: &str = "carla@31solutions.test";
pub const DIRK: &str = "dirk@31solutions.test";

/// A complete configuration on `db_url`. IMAP and SMTP point at port 9 on
/// loopback (discard): nothing in these tests ever connects to them.
/// `extra` is appended (more sections, e.g. `[procedure]`).
pub fn config_toml(db_url: &str, extra: &str) -> String {
    format!(
        r#"
[organisation]
name = "31Solutions"
address = "{ORG}"
timezone = "Europe/Amsterdam"
language = "nl"
regulation_url = "https://www.31solutions.test/klachtenreglement"

[imap]
host = "127.0.0.1"
port = 9
security = "none"
username = "{ORG}"
password = "not-used"

[smtp]
host = "127.0.0.1"
port = 9
security = "none"

[database]
url = "{db_url}"

[[staff]]
name = "Anna de Vries"
email = "{ANNA}"
aliases = ["Anna"]
roles = ["handler", "supervisor"]

[[staff]]
name = "Bram Bakker"
email = "{BRAM}"
aliases = ["Bram"]
roles = ["handler"]

[[staff]]
name = "Carla Smit"
email = "{CARLA}"
aliases = ["Carla"]
roles = ["handler"]

[[staff]]
name = "Dirk Jansen"
email = "{DIRK}"
aliases = ["Dirk"]
roles = ["supervisor"]
{extra}
"#
    )
}

/// Settings from TOML text, with no environment overrides (the test
/// process's own `KLACHTD__…` variables never leak in).
pub fn settings_from_toml(text: &str, base: &Path) -> Settings {
    Settings::from_toml(text, base, &[]).unwrap_or_else(|e| panic!("test config invalid: {e}"))
}

pub fn settings(db_url: &str, extra: &str) -> Settings {
    settings_from_toml(&config_toml(db_url, extra), Path::new("/nonexistent-base"))
}

/// An App on `db_url` whose clock starts at `at`.
pub async fn app_at(db_url: &str, extra: &str, at: Timestamp) -> App {
    App::new(settings(db_url, extra), Clock::starting_at(at))
        .await
        .unwrap_or_else(|e| panic!("App::new on {db_url}: {e:#}"))
}
