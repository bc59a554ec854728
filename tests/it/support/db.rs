//! Throw-away databases: a temp SQLite file, or a fresh PostgreSQL
//! database per test.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

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
    /// The folder of the file, removed on drop.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin: String,
        name: String,
    },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("klachtd.db");
        TestDb {
            url: format!("sqlite://{}", path.display()),
            kind: Kind::Sqlite { _dir: dir },
        }
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Sqlite { .. } => Some(Path::new(self.url.trim_start_matches("sqlite://"))),
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
