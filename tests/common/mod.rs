//! Shared helpers for the tests that need no mail server: settings from a
//! TOML string, an [`App`] on a given database, throw-away databases (a temp
//! SQLite file, or a fresh PostgreSQL database per test), and the shared
//! corpora's root.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use jiff::Timestamp;
use klachtd::app::App;
use klachtd::clock::Clock;
use klachtd::config::Settings;

/// A Monday: ack due five working days later (2026-11-30), response due
/// twenty working days later (2026-12-21).
pub const NOW: &str = "2026-11-23T10:00:00+01:00";

pub fn now() -> Timestamp {
    NOW.parse().expect("NOW parses")
}

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

// ------------------------------------------------------------- databases

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn pg_admin_url() -> String {
    std::env::var("KLACHTD_TEST_PG_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A database that exists for one test. SQLite: a file in a temp folder
/// (removed with it). PostgreSQL: a fresh database, dropped on drop (best
/// effort).
pub struct TestDb {
    pub url: String,
    kind: Kind,
}

enum Kind {
    Sqlite(tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("klachtd.db");
        TestDb {
            url: format!("sqlite://{}", path.display()),
            kind: Kind::Sqlite(dir),
        }
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Sqlite(_) => Some(Path::new(self.url.trim_start_matches("sqlite://"))),
            Kind::Postgres { .. } => None,
        }
    }

    /// A fresh, empty PostgreSQL database. Panics with a clear message when
    /// the server cannot be reached: scripts/test starts it, and a missing
    /// server must fail the run, not skip half of it.
    pub async fn postgres() -> TestDb {
        use sqlx::Connection;
        let admin = pg_admin_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "klachtd_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let mut conn = sqlx::postgres::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin} ({e}). Start it (scripts/test does) \
                     or set KLACHTD_TEST_PG_URL to a server where this user may CREATE DATABASE."
                )
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} via {admin}: {e}"));
        let _ = conn.close().await;
        let url = replace_db_name(&admin, &name);
        TestDb {
            url,
            kind: Kind::Postgres { admin, name },
        }
    }
}

/// `postgres://u@h:5432/test?x=y` → `postgres://u@h:5432/<name>?x=y`.
fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Kind::Postgres { admin, name } = &self.kind {
            let (admin, name) = (admin.clone(), name.clone());
            // Drop may run inside a tokio runtime: use a thread of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async move {
                        use sqlx::Connection;
                        if let Ok(mut c) = sqlx::postgres::PgConnection::connect(&admin).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&mut c)
                            .await;
                            let _ = c.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(
        replace_db_name("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        replace_db_name("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        replace_db_name("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}

/// `../shared/corpora` (or `$KLACHTD_CORPORA`). A fresh clone has none:
/// then every corpus test prints a SKIPPED line and passes.
/// The corpus root, or None (after saying so on stderr) when it is absent.
pub fn corpus_root(test: &str) -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("KLACHTD_CORPORA").filter(|p| !p.is_empty()) {
        let p = std::path::PathBuf::from(p);
        assert!(
            p.is_dir(),
            "KLACHTD_CORPORA={} is set but is not a folder",
            p.display()
        );
        return Some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {test}: ../shared/corpora not found (set KLACHTD_CORPORA)");
        None
    }
}

/// Files of `dir` (recursively), sorted.
pub fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}
