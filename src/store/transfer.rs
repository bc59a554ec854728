//! Copying a whole register from one database into another, empty one:
//! SQLite to PostgreSQL when an organisation outgrows one file, PostgreSQL
//! to SQLite for a portable copy. Every row of every table, ids included,
//! read from one snapshot and written in one transaction; then every
//! table's count is compared.

use anyhow::{bail, Context, Result};
use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Backend, Store};

/// Every table of the schema, parents before children (foreign keys).
/// `klachtd_schema` is not copied: both sides are migrated by this binary.
pub const TABLES: &[&str] = &[
    "cases",
    "case_counters",
    "events",
    "inbound",
    "case_messages",
    "attachments",
    "attachment_parts",
    "mailbox_state",
    "outbox",
    "notices",
    "health",
    "audit",
];

/// What a column holds, as far as copying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Blob,
}

/// Rows copied per table, in [`TABLES`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: i64,
}

/// Copies everything in `from` into `to`, which must be migrated and empty.
/// Refuses while mail is being sent from `from` (stop the daemon first):
/// an in-flight send's state does not survive a move.
pub async fn transfer(from: &Store, to: &Store) -> Result<Vec<Copied>> {
    let plan = plan(from, to).await?;
    let mut src = from.begin().await?;
    if from.backend == Backend::Postgres {
        // One snapshot for every table.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *src)
            .await?;
    }
    let busy: i64 =
        sqlx::query("SELECT COUNT(*) FROM outbox WHERE status IN ('sending', 'committing')")
            .fetch_one(&mut *src)
            .await?
            .try_get(0)?;
    if busy > 0 {
        bail!("{busy} mail(s) are being sent from the source database right now; stop the daemon (it finishes or hands back its sends) and try again; nothing copied");
    }

    let mut dst = to.begin().await?;
    let mut copied = Vec::new();
    for (table, columns) in plan {
        let rows = copy_table(&mut src, &mut dst, table, &columns).await?;
        if to.backend == Backend::Postgres && columns.iter().any(|(c, _)| c == "id") {
            // The next id after the copied ones, not 1.
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
            ))
            .execute(&mut *dst)
            .await?;
        }
        copied.push(Copied { table, rows });
    }
    dst.commit().await?;
    src.rollback().await?;
    tracing::info!(
        tables = copied.len(),
        rows = copied.iter().map(|c| c.rows).sum::<i64>(),
        "register transferred"
    );
    Ok(copied)
}

/// The tables to copy with their columns, after checking that both sides
/// have this klachtd's tables, schema version and columns, and that the
/// target is empty.
async fn plan(from: &Store, to: &Store) -> Result<Vec<(&'static str, Vec<(String, Kind)>)>> {
    let source_tables = tables(from).await?;
    let mut expected: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    expected.sort();
    if source_tables != expected {
        bail!("the source database has tables {source_tables:?}, not the ones this klachtd knows; nothing copied");
    }
    let versions = (schema_version(from).await?, schema_version(to).await?);
    if versions.0 != versions.1 {
        bail!(
            "schema versions differ (source {}, target {}); nothing copied",
            versions.0,
            versions.1
        );
    }
    // Columns first: a SQLite pool has one connection, which the
    // transactions of the copy hold.
    let mut plan = Vec::new();
    for &table in TABLES {
        let n = count(to, table).await?;
        if n > 0 {
            bail!("the target database is not empty ({table} holds {n} rows); a transfer only goes into a new, empty database; nothing copied");
        }
        let columns = columns_of(from, table).await?;
        let names = |c: &[(String, Kind)]| {
            let mut v: Vec<String> = c.iter().map(|(n, _)| n.clone()).collect();
            v.sort();
            v
        };
        if names(&columns) != names(&columns_of(to, table).await?) {
            bail!("table {table} has other columns in the target database; nothing copied");
        }
        plan.push((table, columns));
    }
    Ok(plan)
}

/// Copies every row of `table`, then checks the target holds as many.
async fn copy_table(
    src: &mut super::Tx,
    dst: &mut super::Tx,
    table: &str,
    columns: &[(String, Kind)],
) -> Result<i64> {
    let list = columns
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let placeholders = (1..=columns.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!("INSERT INTO {table} ({list}) VALUES ({placeholders})");
    let select = format!("SELECT {list} FROM {table} ORDER BY 1");
    let mut rows = sqlx::query(&select).fetch(&mut **src);
    let mut n: i64 = 0;
    while let Some(row) = rows.try_next().await? {
        let mut q = sqlx::query(&insert);
        for (i, (name, kind)) in columns.iter().enumerate() {
            q = bind(q, &row, i, *kind).with_context(|| format!("reading {table}.{name}"))?;
        }
        q.execute(&mut **dst)
            .await
            .with_context(|| format!("writing a row of {table}"))?;
        n += 1;
    }
    drop(rows);
    let written: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&mut **dst)
        .await?
        .try_get(0)?;
    if written != n {
        bail!("{table}: {n} rows read but {written} in the target; nothing copied");
    }
    Ok(n)
}

fn bind<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    row: &AnyRow,
    i: usize,
    kind: Kind,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>> {
    Ok(match kind {
        Kind::Int => q.bind(row.try_get::<Option<i64>, _>(i)?),
        Kind::Text => q.bind(row.try_get::<Option<String>, _>(i)?),
        Kind::Blob => q.bind(row.try_get::<Option<Vec<u8>>, _>(i)?),
    })
}

async fn tables(store: &Store) -> Result<Vec<String>> {
    let sql = match store.backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> 'klachtd_schema' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_type = 'BASE TABLE' AND table_name <> 'klachtd_schema' ORDER BY table_name"
        }
    };
    sqlx::query(sql)
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|r| Ok(r.try_get::<String, _>(0)?))
        .collect()
}

/// A table's columns in their order, with what they hold.
async fn columns_of(store: &Store, table: &str) -> Result<Vec<(String, Kind)>> {
    let sql = match store.backend {
        Backend::Sqlite => "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
        Backend::Postgres => {
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
        }
    };
    let rows = sqlx::query(sql).bind(table).fetch_all(store.pool()).await?;
    rows.iter()
        .map(|r| {
            let name: String = r.try_get(0)?;
            let ty: String = r.try_get(1)?;
            let kind = match ty.to_ascii_lowercase().as_str() {
                "integer" | "bigint" | "int" | "smallint" => Kind::Int,
                "text" | "character varying" => Kind::Text,
                "blob" | "bytea" => Kind::Blob,
                other => bail!("{table}.{name} has type {other}, which a transfer does not know"),
            };
            Ok((name, kind))
        })
        .collect()
}

async fn count(store: &Store, table: &str) -> Result<i64> {
    Ok(sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(store.pool())
        .await?
        .try_get(0)?)
}

async fn schema_version(store: &Store) -> Result<i64> {
    Ok(sqlx::query("SELECT MAX(version) FROM klachtd_schema")
        .fetch_one(store.pool())
        .await?
        .try_get::<Option<i64>, _>(0)?
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    /// Every migration's CREATE TABLE is in [`super::TABLES`], so a new table
    /// cannot be forgotten by a transfer.
    #[test]
    fn every_table_of_the_migrations_is_copied() {
        for (_, sql) in super::super::MIGRATIONS_SQLITE
            .iter()
            .chain(super::super::MIGRATIONS_POSTGRES)
        {
            for line in sql.lines() {
                if let Some(rest) = line.trim().strip_prefix("CREATE TABLE ") {
                    let name = rest
                        .trim_start_matches("IF NOT EXISTS ")
                        .split([' ', '('])
                        .next()
                        .unwrap();
                    assert!(super::TABLES.contains(&name), "{name} is not copied");
                }
            }
        }
    }
}
