//! The register (art. 10): every SQL statement of klachtd lives below this
//! module. One interface over SQLite (default) and PostgreSQL (several
//! daemons), using sqlx's `Any` driver with runtime queries: `$N`
//! placeholders and portable SQL work on both, so there is one query per
//! operation instead of two modules that drift apart.

mod backup;
mod case_row;
mod cases;
mod lease;
mod outbox;
mod privacy;
mod schedule;
mod transfer;

pub use cases::{
    add_event, add_event_data, all_auto_replies_since, auto_replies_since, burn_tokens,
    burn_tokens_of, case_attachments, case_id_by_ref, case_in_tx, cases_from_mailbox_since,
    client_thread, first_message, insert_attachment, insert_case, insert_case_message,
    next_reference, open_case_counts, refers_to_kind, sent_since, sent_to, set_concerns,
    thread_match, update_case, AttachmentMeta, CaseFilter, CaseRow, CaseUpdate, EventRow, NewCase,
    NewCaseMessage, SentRef,
};
pub(crate) use lease::try_flock;
pub use lease::MailboxLock;
pub use outbox::{enqueue, NewOutMail, OutboxChange, OutboxRow, SentRow};
pub use privacy::{
    anonymise_case, audit, empty_loose_mail, empty_loose_mail_before, mail_in_flight, scrub,
    AuditRow, LooseMail, SentMail, StoredAttachment, StoredMessage,
};
pub use schedule::{
    claim_notice, clear_alarm, raise_alarm, CaseCounts, Health, NoticeKey, NoticeRow, HEALTH_ROWS,
};
pub use transfer::{transfer, Copied, TABLES};

use anyhow::{bail, Context, Result};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::clock::db_time;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: folder of the outbox's in-flight markers (see
    /// `workers::outbox`), next to the database file.
    inflight: Option<std::path::PathBuf>,
    /// SQLite only: the file whose lock says which daemon reads the
    /// mailbox (see `lease`), beside the database file.
    lock_file: Option<std::path::PathBuf>,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

const MIGRATIONS_SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_outbox_recipient_index.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_event_data.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_scheduler.sql"),
    ),
    (5, include_str!("../../migrations/sqlite/0005_register.sql")),
    (
        6,
        include_str!("../../migrations/sqlite/0006_burned_tokens.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_attachment_parts.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_lookup_keys.sql"),
    ),
];
const MIGRATIONS_POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_outbox_recipient_index.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_event_data.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_scheduler.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_register.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_burned_tokens.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_attachment_parts.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_lookup_keys.sql"),
    ),
];

impl Store {
    /// Opens (creating where needed) the database and brings its schema up
    /// to date. SQLite files are created owner-only (0600).
    pub async fn open(url: &str) -> Result<Store> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// The pool and per-connection settings, without migrations.
    async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            bail!("database.url: unsupported scheme (expected sqlite:// or postgres://)");
        };
        if let Some(dir) = sqlite_path(url).and_then(|p| p.parent().map(|d| d.to_path_buf())) {
            let dir = if dir.as_os_str().is_empty() {
                std::path::PathBuf::from(".")
            } else {
                dir
            };
            let _ = SQLITE_DIR.set(dir);
        }
        let connect_url = match backend {
            Backend::Sqlite => prepare_sqlite_file(url)?,
            Backend::Postgres => postgres_url(url),
        };
        let options = AnyPoolOptions::new().acquire_timeout(std::time::Duration::from_secs(30));
        let pool = match backend {
            // One connection: SQLite has one writer anyway, and this avoids
            // lock upgrades between our own connections.
            Backend::Sqlite => options
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
            Backend::Postgres => options.max_connections(5),
        }
        .connect(&connect_url)
        .await
        .with_context(|| format!("cannot open database {}", redact_url(url)))?;
        if backend == Backend::Sqlite {
            // WAL is a property of the file: readers (the CLI) never block
            // the daemon. FULL (per connection; the pool keeps its one
            // connection) fsyncs the log at every commit, so a committed
            // case, checkpoint or outbox state survives a power loss too
            // (NORMAL survives only a crashed process). A kill during the
            // fsync of the outbox's "committing" record is harmless: the
            // in-flight marker, not the row, says whether the dot went out.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&pool)
                .await?;
            // Erased and anonymised data is overwritten with zeroes, not
            // left in free pages of the file (art. 9, AVG).
            sqlx::query("PRAGMA secure_delete = ON")
                .execute(&pool)
                .await?;
        }
        let lock_file = match backend {
            Backend::Sqlite => sqlite_path(url).map(|p| {
                let mut name = p.into_os_string();
                name.push(".lock");
                std::path::PathBuf::from(name)
            }),
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            backend,
            inflight: None,
            lock_file,
        })
    }

    /// For commands that only read or amend the register: a SQLite file
    /// that does not exist is an error (a typo in database.url must not
    /// show an empty register).
    pub async fn open_existing(url: &str) -> Result<Store> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let path = rest.split('?').next().unwrap_or(rest);
            if path != ":memory:" && !std::path::Path::new(path).exists() {
                bail!("database {path} does not exist (check database.url, or run `klachtd migrate` first)");
            }
        }
        Store::open(url).await
    }

    /// The in-flight marker of an outbox row: created empty before the row
    /// is recorded `committing`, given one byte right before the final dot
    /// of its SMTP transaction, removed once the row is marked sent. The
    /// markers live on this machine (`database.state_dir`): with several
    /// daemons on one PostgreSQL, a `committing` row whose marker is not
    /// here was left by a daemon on another machine. None for an in-memory
    /// register, and for a store opened without the settings (commands
    /// that never send).
    pub fn inflight_marker(&self, outbox_id: i64) -> Option<std::path::PathBuf> {
        self.inflight
            .as_ref()
            .map(|d| d.join(outbox_id.to_string()))
    }

    /// The markers' folder (see [`Store::inflight_marker`]).
    pub fn inflight_dir(&self) -> Option<&std::path::Path> {
        self.inflight.as_deref()
    }

    /// The markers' folder as configured (`database.state_dir`); it is
    /// created, owner-only, when the first marker is written.
    pub fn with_marker_dir(mut self, dir: Option<std::path::PathBuf>) -> Store {
        self.inflight = dir;
        self
    }

    /// Whether a `committing` row without a marker here may be another
    /// machine's (PostgreSQL), rather than one whose dot was never
    /// written (SQLite: one machine, whose marker is made durable before
    /// the row is marked).
    pub fn shared_by_machines(&self) -> bool {
        self.backend == Backend::Postgres
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Applies the embedded migrations not yet applied. Safe to run from
    /// several daemons at once on PostgreSQL (advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        self.migrate_to(i64::MAX).await
    }

    /// A store whose schema stops at `version`: for testing upgrades.
    #[cfg(test)]
    async fn open_at_version(url: &str, version: i64) -> Result<Store> {
        let store = Store::connect(url).await?;
        store.migrate_to(version).await?;
        Ok(store)
    }

    async fn migrate_to(&self, up_to: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7340211)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS klachtd_schema (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let done: Vec<i64> = sqlx::query("SELECT version FROM klachtd_schema")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        let list = match self.backend {
            Backend::Sqlite => MIGRATIONS_SQLITE,
            Backend::Postgres => MIGRATIONS_POSTGRES,
        };
        let mut applied = Vec::new();
        for (version, sql) in list.iter().filter(|(v, _)| *v <= up_to) {
            if done.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("migration {version} failed"))?;
            sqlx::query("INSERT INTO klachtd_schema (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(db_time(jiff::Timestamp::now()))
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, "database migration applied");
            applied.push(*version);
        }
        // Migration 5 brought client tokens: cases from before it get theirs
        // once, then. (Later, a NULL token is an erasure's doing and stays.)
        if applied.contains(&5) {
            cases::backfill_client_tokens(&mut tx).await?;
        }
        // Migration 8 brought the mailbox keys of the limits per sender.
        if applied.contains(&8) {
            cases::backfill_mailbox_keys(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// After personal data was erased: on SQLite, copies the WAL into the
    /// database file and truncates it, so the old page images leave the
    /// disk now rather than at some later checkpoint (art. 9). A reader
    /// holding an old snapshot can keep the checkpoint from finishing;
    /// that returns false and the caller says so. PostgreSQL: nothing to
    /// do here (dead row versions go at VACUUM, see README).
    pub async fn flush_erased(&self) -> Result<bool> {
        if self.backend != Backend::Sqlite {
            return Ok(true);
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.pool)
            .await?;
        let busy: i64 = row.try_get(0)?;
        Ok(busy == 0)
    }

    // ------------------------------------------------------- mailbox state

    /// (uidvalidity, last processed uid) of a folder, if any pass has run.
    pub async fn mailbox_state(&self, folder: &str) -> Result<Option<(u32, u32)>> {
        let row = sqlx::query("SELECT uidvalidity, last_uid FROM mailbox_state WHERE folder = $1")
            .bind(folder)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            None => None,
            Some(r) => Some((
                r.try_get::<i64, _>(0)? as u32,
                r.try_get::<i64, _>(1)? as u32,
            )),
        })
    }

    /// UIDs of messages whose handling failed, to try again.
    pub async fn failed_uids(&self, folder: &str, uidvalidity: u32) -> Result<Vec<u32>> {
        let rows = sqlx::query(
            "SELECT uid FROM inbound WHERE folder = $1 AND uidvalidity = $2 AND outcome = 'failed' ORDER BY uid",
        )
        .bind(folder)
        .bind(uidvalidity as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>(0)? as u32))
            .collect()
    }

    /// UIDs of the `most` messages of `folder` last recorded as case mail
    /// (a case opened, or a reply to one), lowest first. Read newest
    /// first by the primary key, which stops the scan early.
    pub async fn newest_case_mail_uids(
        &self,
        folder: &str,
        uidvalidity: u32,
        most: i64,
    ) -> Result<Vec<u32>> {
        let rows = sqlx::query(
            "SELECT uid FROM inbound WHERE folder = $1 AND uidvalidity = $2 \
             AND (outcome LIKE 'case:%' OR outcome = 'reply') ORDER BY id DESC LIMIT $3",
        )
        .bind(folder)
        .bind(uidvalidity as i64)
        .bind(most)
        .fetch_all(&self.pool)
        .await?;
        let mut uids = rows
            .iter()
            .map(|r| Ok(r.try_get::<i64, _>(0)? as u32))
            .collect::<Result<Vec<u32>>>()?;
        uids.sort_unstable();
        Ok(uids)
    }

    /// Message-IDs (of a given list) that intake already processed.
    pub async fn known_inbound(&self, ids: &[String]) -> Result<std::collections::HashSet<String>> {
        let mut known = std::collections::HashSet::new();
        for chunk in ids.chunks(200) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT message_id FROM inbound WHERE outcome <> 'failed' AND message_id IN ({})",
                placeholders.join(",")
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for row in q.fetch_all(&self.pool).await? {
                known.insert(row.try_get::<String, _>(0)?);
            }
        }
        Ok(known)
    }

    /// UIDs of `folder` (at this UIDVALIDITY) whose message intake has
    /// settled for good: case mail (it has a case) or mail staff asked to
    /// make a complaint of that klachtd refused. The keyword search of the
    /// staff overrule (`crate::flows::overrule`) skips them without a fetch.
    pub async fn settled_uids(
        &self,
        folder: &str,
        uidvalidity: u32,
    ) -> Result<std::collections::HashSet<u32>> {
        let rows = sqlx::query(
            "SELECT uid FROM inbound WHERE folder = $1 AND uidvalidity = $2 \
             AND (case_id IS NOT NULL OR outcome LIKE 'refused:%')",
        )
        .bind(folder)
        .bind(uidvalidity as i64)
        .fetch_all(&self.pool)
        .await
        .with_context(|| format!("settled messages of {folder:?}"))?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>(0)? as u32))
            .collect()
    }

    /// Message-IDs (of a given list) that are case mail already: an
    /// inbound record with a case, a message of a case, or a refused staff
    /// overrule. Mail that klachtd moved itself is recognised this way.
    pub async fn settled_ids(&self, ids: &[String]) -> Result<std::collections::HashSet<String>> {
        let mut settled = std::collections::HashSet::new();
        for chunk in ids.chunks(200) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let list = placeholders.join(",");
            let sql = format!(
                "SELECT message_id FROM inbound WHERE (case_id IS NOT NULL OR outcome LIKE 'refused:%') \
                 AND message_id IN ({list}) UNION SELECT message_id FROM case_messages WHERE message_id IN ({list})"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for row in q.fetch_all(&self.pool).await.context("settled messages")? {
                settled.insert(row.try_get::<String, _>(0)?);
            }
        }
        Ok(settled)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Sets the checkpoint of a folder. Only ever moves forward within one
/// UIDVALIDITY; a new UIDVALIDITY replaces the row.
pub async fn set_mailbox_state(
    tx: &mut Tx,
    folder: &str,
    uidvalidity: u32,
    last_uid: u32,
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE mailbox_state SET last_uid = CASE WHEN uidvalidity = $2 AND last_uid > $3 THEN last_uid ELSE $3 END, \
         uidvalidity = $2 WHERE folder = $1",
    )
    .bind(folder)
    .bind(uidvalidity as i64)
    .bind(last_uid as i64)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated == 0 {
        sqlx::query(
            "INSERT INTO mailbox_state (folder, uidvalidity, last_uid) VALUES ($1, $2, $3) \
             ON CONFLICT (folder) DO NOTHING",
        )
        .bind(folder)
        .bind(uidvalidity as i64)
        .bind(last_uid as i64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// How a message is claimed ([`claim_inbound`], [`claim_inbound_many`]):
/// its record inserted, or taken over when its handling failed before.
const CLAIM_INSERT: &str =
    "INSERT INTO inbound (message_id, folder, uidvalidity, uid, outcome, at) VALUES";
const CLAIM_CONFLICT: &str = "ON CONFLICT (message_id) DO UPDATE SET folder = excluded.folder, \
     uidvalidity = excluded.uidvalidity, uid = excluded.uid, outcome = excluded.outcome, \
     case_id = NULL, at = excluded.at WHERE inbound.outcome = 'failed'";

/// Claims a message for processing. Returns false when it was processed
/// before (same Message-ID): the caller then does nothing more with it.
/// A message whose handling failed before is claimed afresh (its record
/// taken over), so it is decided again.
pub async fn claim_inbound(
    tx: &mut Tx,
    message_id: &str,
    folder: &str,
    uidvalidity: u32,
    uid: u32,
    outcome: &str,
    at: jiff::Timestamp,
) -> Result<bool> {
    let sql = format!("{CLAIM_INSERT} ($1, $2, $3, $4, $5, $6) {CLAIM_CONFLICT}");
    let n = sqlx::query(&sql)
        .bind(message_id)
        .bind(folder)
        .bind(uidvalidity as i64)
        .bind(uid as i64)
        .bind(outcome)
        .bind(db_time(at))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// One message for [`claim_inbound_many`]: its UID, Message-ID and
/// outcome.
pub type Claim<'a> = (u32, &'a str, &'a str);

/// Rows per statement of [`claim_inbound_many`]: six parameters each, far
/// under SQLite's and PostgreSQL's limits.
const CLAIM_ROWS: usize = 200;

/// [`claim_inbound`] for many messages of one folder, in one statement per
/// [`CLAIM_ROWS`]: intake records a batch's settled mail (ordinary,
/// automated) this way, where one statement each was a tenth of a
/// millisecond per message. Returns the Message-IDs claimed. Each
/// Message-ID must appear once in `claims`.
pub async fn claim_inbound_many(
    tx: &mut Tx,
    folder: &str,
    uidvalidity: u32,
    claims: &[Claim<'_>],
    at: jiff::Timestamp,
) -> Result<std::collections::HashSet<String>> {
    let at = db_time(at);
    let mut claimed = std::collections::HashSet::new();
    for chunk in claims.chunks(CLAIM_ROWS) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let params: Vec<String> = (1..=6).map(|k| format!("${}", i * 6 + k)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let values = values.join(", ");
        let sql = format!("{CLAIM_INSERT} {values} {CLAIM_CONFLICT} RETURNING message_id");
        let mut q = sqlx::query(&sql);
        for &(uid, message_id, outcome) in chunk {
            q = q
                .bind(message_id)
                .bind(folder)
                .bind(uidvalidity as i64)
                .bind(uid as i64)
                .bind(outcome)
                .bind(at.clone());
        }
        for row in q.fetch_all(&mut **tx).await? {
            claimed.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(claimed)
}

/// Marks where one message's writes start within a batch transaction
/// (`crate::flows::intake::process_in`); [`rollback_to_savepoint`] takes
/// them back, [`release_savepoint`] keeps them. Savepoints do not nest
/// here: one message at a time.
pub async fn savepoint(tx: &mut Tx) -> Result<()> {
    sqlx::query("SAVEPOINT klachtd_message")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn rollback_to_savepoint(tx: &mut Tx) -> Result<()> {
    sqlx::query("ROLLBACK TO SAVEPOINT klachtd_message")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn release_savepoint(tx: &mut Tx) -> Result<()> {
    sqlx::query("RELEASE SAVEPOINT klachtd_message")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Claims a message that staff made a complaint of (`crate::flows::overrule`):
/// records it when intake never saw it, or takes over its record when that
/// has no case yet. False when it is case mail already or was refused, or
/// another daemon holds it: then the caller rolls back and does nothing. The row lock of the
/// insert or update keeps a second daemon out until this transaction ends,
/// and the `case_id IS NULL` it re-checks then keeps it out for good.
pub async fn claim_for_staff(
    tx: &mut Tx,
    message_id: &str,
    folder: &str,
    uidvalidity: u32,
    uid: u32,
    at: jiff::Timestamp,
) -> Result<bool> {
    let claimed = claim_inbound(tx, message_id, folder, uidvalidity, uid, "pending", at).await?
        || sqlx::query(
            "UPDATE inbound SET outcome = 'pending' WHERE message_id = $1 AND case_id IS NULL \
         AND outcome NOT LIKE 'refused:%'",
        )
        .bind(message_id)
        .execute(&mut **tx)
        .await
        .context("claim a message staff made a complaint of")?
        .rows_affected()
            == 1;
    if !claimed {
        return Ok(false);
    }
    // A message of a case without an inbound record pointing there (a
    // phone case's later mail, say): a case's own mail is never opened
    // twice.
    let of_case = sqlx::query("SELECT 1 FROM case_messages WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(&mut **tx)
        .await
        .context("look up a case message")?;
    Ok(of_case.is_none())
}

pub async fn set_inbound_outcome(
    tx: &mut Tx,
    message_id: &str,
    outcome: &str,
    case_id: Option<i64>,
) -> Result<()> {
    sqlx::query("UPDATE inbound SET outcome = $2, case_id = $3 WHERE message_id = $1")
        .bind(message_id)
        .bind(outcome)
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A database URL fit for a log or an error: the password in the user
/// part (`postgres://user:***@host/db`; an unencoded `@` in the password
/// is taken as part of it, the host follows the last one) and the value of
/// every password-like query parameter (`?password=***`) hidden.
pub(crate) fn redact_url(url: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((cred, host)) => match cred.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_string(),
            },
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    let Some(query) = query else {
        return base;
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().contains("pass") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

/// A PostgreSQL URL as klachtd connects with it: to a host other than this
/// machine, the server's certificate is verified (`sslmode=verify-full`)
/// unless the URL chooses an `sslmode` itself; on loopback or a Unix socket
/// the URL is taken as it is.
fn postgres_url(url: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let chooses = query
        .split('&')
        .any(|p| p.to_ascii_lowercase().starts_with("sslmode="));
    let authority = base.split_once("://").map_or("", |(_, r)| r);
    let authority = authority.split('/').next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let local = host.is_empty()
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if chooses || local {
        return url.to_string();
    }
    let sep = if query.is_empty() { "?" } else { "&" };
    format!("{url}{sep}sslmode=verify-full")
}

/// The folder of the SQLite register this process opened (for
/// [`explain`]).
static SQLITE_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Below this much free space, a database error is put down to a full disk.
const NEARLY_FULL: u64 = 1024 * 1024;

/// An error as the log and the command line show it (`{e:#}`), with the
/// likely cause added when it is a database error on a SQLite register
/// whose disk is full: SQLite itself often says only "disk I/O error".
pub fn explain(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    if !e.chain().any(|c| c.is::<sqlx::Error>()) {
        return text;
    }
    let Some(dir) = SQLITE_DIR.get() else {
        return text;
    };
    match free_bytes(dir) {
        Some(free) if free < NEARLY_FULL => format!(
            "{text} (the disk holding the register, {}, is full: {free} bytes free; \
             make room and klachtd goes on where it stopped: nothing was half-written)",
            dir.display()
        ),
        _ => text,
    }
}

/// Bytes an unprivileged writer may still use on the file system of `dir`.
// The statvfs fields are u64 here but narrower on 32-bit targets.
#[allow(clippy::useless_conversion)]
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable
    // statvfs; statvfs only fills it in.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Creates the SQLite file (and its folder) owner-only before sqlx opens it.
fn prepare_sqlite_file(url: &str) -> Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').map_or((rest, ""), |(p, q)| (p, q));
    if path == ":memory:" || path.is_empty() {
        return Ok("sqlite::memory:".to_string());
    }
    let p = std::path::Path::new(path);
    if let Some(dir) = p.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create database folder {}", dir.display()))?;
            set_mode(dir, 0o700);
        }
    }
    if !p.exists() {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .with_context(|| format!("cannot create database file {}", p.display()))?;
    }
    set_mode(p, 0o600);
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|s| !s.is_empty() && !s.starts_with("mode="))
        .collect();
    params.push("mode=rwc");
    Ok(format!("sqlite://{path}?{}", params.join("&")))
}

#[cfg(unix)]
fn set_mode(p: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}
#[cfg(not(unix))]
fn set_mode(_: &std::path::Path, _: u32) {}

pub(crate) fn get_str(r: &AnyRow, col: &str) -> Result<String> {
    Ok(r.try_get::<String, _>(col)?)
}
pub(crate) fn get_opt_str(r: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(r.try_get::<Option<String>, _>(col)?)
}
pub(crate) fn get_i64(r: &AnyRow, col: &str) -> Result<i64> {
    Ok(r.try_get::<i64, _>(col)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_elsewhere_verifies_the_certificate_unless_told_otherwise() {
        let p = postgres_url;
        assert_eq!(
            p("postgres://k:pw@db.example.nl/klachtd"),
            "postgres://k:pw@db.example.nl/klachtd?sslmode=verify-full"
        );
        assert_eq!(
            p("postgres://k@db.example.nl:5433/klachtd?application_name=k"),
            "postgres://k@db.example.nl:5433/klachtd?application_name=k&sslmode=verify-full"
        );
        for same in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://k@localhost/klachtd",
            "postgres://k@[::1]:5432/klachtd",
            "postgres:///klachtd?host=/run/postgresql",
            "postgres://k@db.example.nl/klachtd?sslmode=disable",
            "postgres://k@db.example.nl/klachtd?SSLMode=require",
        ] {
            assert_eq!(p(same), same);
        }
    }

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(
            redact_url("postgres://k:geheim@db/klachtd"),
            "postgres://k:***@db/klachtd"
        );
        assert_eq!(redact_url("sqlite:///var/k.db"), "sqlite:///var/k.db");
        // An unencoded @ in the password: the host follows the last one.
        assert_eq!(
            redact_url("postgres://k:ge@h@im@db.example.nl:5432/klachtd"),
            "postgres://k:***@db.example.nl:5432/klachtd"
        );
        // The password as a query parameter, any case, among others.
        assert_eq!(
            redact_url("postgres://k@db/klachtd?sslmode=require&Password=geheim&sslpassword=x"),
            "postgres://k@db/klachtd?sslmode=require&Password=***&sslpassword=***"
        );
        assert_eq!(
            redact_url("sqlite:///var/k.db?mode=rwc"),
            "sqlite:///var/k.db?mode=rwc"
        );
        for url in [
            "postgres://k:geheim@db/x",
            "postgres://k:a@geheim@db/x?password=geheim",
            "postgresql://db/x?user=k&password=geheim",
        ] {
            assert!(!redact_url(url).contains("geheim"), "{url}");
        }
    }

    /// A register from before migration 5: on the upgrade, one client's
    /// cases share a token, a phone complaint without an address gets its
    /// own; later opens leave tokens alone.
    #[tokio::test]
    async fn the_upgrade_to_client_tokens_links_each_clients_cases() {
        let dir = std::env::temp_dir().join(format!(
            "klachtd-backfill-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("k.db").display());
        let old = Store::open_at_version(&url, 4).await.unwrap();
        for (seq, email) in [(1, Some("jan@x.nl")), (2, Some("JAN@x.nl")), (3, None)] {
            sqlx::query(
                "INSERT INTO cases (reference, year, seq, status, category, language, source, \
                 client_name, client_email, subject, body, missing, concerns, received_at, ack_due, \
                 response_due, created_at) VALUES ($1, 2025, $2, 'closed', 'overig', 'nl', 'email', \
                 'Jan', $3, 's', 'b', '', '', '2025-01-06T09:00:00Z', '2025-01-13', '2025-02-03', \
                 '2025-01-06T09:00:00Z')",
            )
            .bind(format!("KL-2025-000{seq}"))
            .bind(seq)
            .bind(email)
            .execute(&old.pool)
            .await
            .unwrap();
        }
        old.close().await;
        let tokens = |store: Store| async move {
            let t: Vec<Option<String>> = sqlx::query("SELECT client_token FROM cases ORDER BY seq")
                .fetch_all(&store.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get(0).unwrap())
                .collect();
            store.close().await;
            t
        };
        let t = tokens(Store::open(&url).await.unwrap()).await;
        assert!(t.iter().all(Option::is_some), "{t:?}");
        assert_eq!(t[0], t[1], "one client, one token");
        assert_ne!(t[0], t[2]);
        // An erasure's NULL stays NULL on the next start.
        let store = Store::open(&url).await.unwrap();
        sqlx::query("UPDATE cases SET client_token = NULL WHERE seq = 3")
            .execute(&store.pool)
            .await
            .unwrap();
        store.close().await;
        let again = tokens(Store::open(&url).await.unwrap()).await;
        assert_eq!((&again[0], &again[2]), (&t[0], &None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A register from before migration 8: on the upgrade, cases and
    /// outbox rows get the mailbox key of their address, and the limits
    /// per sender count them.
    #[tokio::test]
    async fn the_upgrade_to_mailbox_keys_fills_them_for_older_rows() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let old = Store::open_at_version(&url, 7).await.unwrap();
        sqlx::query(
            "INSERT INTO cases (reference, year, seq, status, category, language, source, \
             client_name, client_email, subject, body, missing, concerns, received_at, ack_due, \
             response_due, created_at) VALUES ('KL-2026-0001', 2026, 1, 'received', 'overig', 'nl', \
             'email', 'Jan', 'Jan.Smit+klacht@Example.nl', 's', 'b', '', '', '2026-11-23T09:00:00Z', \
             '2026-11-30', '2026-12-21', '2026-11-23T09:00:00Z')",
        )
        .execute(&old.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO outbox (message_id, kind, recipient, raw, status, next_attempt_at, created_at) \
             VALUES ('<a@x>', 'ack', 'JAN.SMIT@example.nl', X'00', 'sent', '2026-11-23T09:00:00Z', \
             '2026-11-23T09:00:00Z')",
        )
        .execute(&old.pool)
        .await
        .unwrap();
        old.close().await;
        let store = Store::open(&url).await.unwrap();
        let jan = crate::domain::types::EmailAddress::parse("jan.smit@example.nl").unwrap();
        let since: jiff::Timestamp = "2026-11-23T00:00:00Z".parse().unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            cases::cases_from_mailbox_since(&mut tx, &jan, since)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            cases::auto_replies_since(&mut tx, &jan, since)
                .await
                .unwrap(),
            1
        );
        tx.commit().await.unwrap();
        store.close().await;
    }
}
