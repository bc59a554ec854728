//! A consistent copy of a SQLite register while the daemon runs
//! (`VACUUM INTO`: one read transaction, so one moment of the register),
//! and what restoring one needs to know about its target.

use std::path::Path;

use anyhow::{bail, Context, Result};
use sqlx::Row;

use super::{Backend, Store, TABLES};

impl Store {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes a copy of the whole register to `file` (new, owner-only).
    /// SQLite only: a PostgreSQL register is backed up with `pg_dump`.
    pub async fn backup_to(&self, file: &Path) -> Result<()> {
        if self.backend == Backend::Postgres {
            bail!(
                "database.url is PostgreSQL: back it up with pg_dump (e.g. `pg_dump -Fc -f FILE \
                 DBNAME`) and restore with pg_restore"
            );
        }
        if file.exists() {
            bail!(
                "{} exists; a backup never overwrites a file",
                file.display()
            );
        }
        let target = file.to_str().context("the backup's path must be UTF-8")?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(self.pool())
            .await
            .with_context(|| format!("cannot write the backup to {}", file.display()))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
        // The copy is on disk before we say so.
        std::fs::File::open(file)?.sync_all()?;
        Ok(())
    }

    /// Rows in all of the register's tables: 0 for a new, empty register.
    pub async fn total_rows(&self) -> Result<i64> {
        let mut total = 0;
        for table in TABLES {
            let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
                .fetch_one(self.pool())
                .await?;
            total += row.try_get::<i64, _>("n")?;
        }
        Ok(total)
    }
}
