//! Who reads the mailbox: one daemon at a time. Several daemons may share
//! a register (PostgreSQL); each message is still claimed once by its
//! Message-ID, but two daemons reading one folder would fetch and decide
//! everything twice, and race on keywords and moves. So intake takes the
//! mailbox lock first, and the others stand by.
//!
//! The lock is one the system frees when its holder dies, so a killed
//! daemon's mailbox is taken over as soon as a standby looks again:
//! - PostgreSQL: a session advisory lock, on a connection of its own that
//!   leaves the pool. The server frees it when that connection ends: at
//!   once when the process dies, when its machine goes silent after the
//!   server's TCP keepalive (`tcp_keepalives_idle`).
//! - SQLite: an exclusive lock (flock) on a file beside the register,
//!   freed by the kernel when the process dies.
//!
//! Outbox rows and scheduler notices have leases and keys of their own;
//! they need no lock and run on every daemon.

use anyhow::{Context, Result};
use sqlx::{Connection, Row};

use super::{Backend, Store};

/// The advisory lock's key (migrations hold 7340211 while they run).
const MAILBOX_KEY: i64 = 7_340_212;

/// The mailbox, held. Dropping it frees the lock too (the file closes, the
/// connection ends); [`MailboxLock::release`] does it at once and politely.
pub struct MailboxLock {
    inner: Inner,
}

enum Inner {
    File(#[allow(dead_code)] std::fs::File),
    Postgres(Box<sqlx::AnyConnection>),
    /// An in-memory register: nobody else can share it.
    Alone,
}

impl Store {
    /// Tries once to take the mailbox lock. None: another daemon holds it.
    pub async fn try_lock_mailbox(&self) -> Result<Option<MailboxLock>> {
        match self.backend {
            Backend::Postgres => {
                let mut conn = self
                    .pool
                    .acquire()
                    .await
                    .context("mailbox lock: no database connection")?
                    .detach();
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(MAILBOX_KEY)
                    .fetch_one(&mut conn)
                    .await
                    .context("mailbox lock")?
                    .try_get(0)?;
                if !got {
                    let _ = conn.close().await;
                    return Ok(None);
                }
                Ok(Some(MailboxLock {
                    inner: Inner::Postgres(Box::new(conn)),
                }))
            }
            Backend::Sqlite => {
                let Some(path) = &self.lock_file else {
                    return Ok(Some(MailboxLock {
                        inner: Inner::Alone,
                    }));
                };
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open the lock file {}", path.display()))?;
                super::set_mode(path, 0o600);
                match try_flock(&file) {
                    Ok(true) => Ok(Some(MailboxLock {
                        inner: Inner::File(file),
                    })),
                    Ok(false) => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
                }
            }
        }
    }
}

impl MailboxLock {
    /// Can the lock go while this process lives? Only PostgreSQL's (its
    /// connection can end); a file lock or an in-memory register cannot.
    pub fn can_be_lost(&self) -> bool {
        matches!(self.inner, Inner::Postgres(_))
    }

    /// Is the lock still ours? On PostgreSQL its connection must answer
    /// and still hold it (a server restart ends both).
    pub async fn held(&mut self) -> bool {
        let Inner::Postgres(conn) = &mut self.inner else {
            return true;
        };
        let held = sqlx::query(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 \
             AND objid = $1 AND objsubid = 1 AND pid = pg_backend_pid() AND granted",
        )
        .bind(MAILBOX_KEY)
        .fetch_one(&mut **conn);
        match tokio::time::timeout(std::time::Duration::from_secs(5), held).await {
            Ok(Ok(row)) => row.try_get::<i64, _>(0).is_ok_and(|n| n == 1),
            _ => false,
        }
    }

    /// Frees the lock now, so a standby takes over at its next look.
    pub async fn release(self) {
        if let Inner::Postgres(mut conn) = self.inner {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MAILBOX_KEY)
                .execute(&mut *conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

/// An exclusive `flock(2)` on `file`, without waiting: false when another
/// open file holds it. The system drops it when the file is closed or its
/// process dies (a `kill -9` included). (std's `File::try_lock` needs Rust
/// 1.89, above the crate's rust-version.)
pub(crate) fn try_flock(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor that `file` keeps open for the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        true => Ok(false),
        false => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_free_again_once_released_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let a = Store::open(&url).await.unwrap();
        let b = Store::open(&url).await.unwrap();
        let held = a.try_lock_mailbox().await.unwrap().expect("free at first");
        assert!(b.try_lock_mailbox().await.unwrap().is_none(), "held by a");
        held.release().await;
        let mut held = b.try_lock_mailbox().await.unwrap().expect("free again");
        assert!(held.held().await);
        assert!(a.try_lock_mailbox().await.unwrap().is_none(), "held by b");
        drop(held);
        assert!(a.try_lock_mailbox().await.unwrap().is_some(), "dropped");
    }
}
