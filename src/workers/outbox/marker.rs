//! In-flight markers: one file per outbox row being sent, in the folder
//! `database.state_dir` gives (`Store::inflight_marker`), that tells after
//! a crash whether the row's final dot was written.
//!
//! The worker that sends a row makes its marker, empty, and holds a lock
//! on it (`flock`) until the dot is written and the byte fsynced. Right
//! before the dot it writes one byte. So a marker is:
//! - locked: a live worker on this machine is sending the row; leave it;
//! - empty and unlocked: its worker died before the dot; send again;
//! - holding its byte, unlocked: the dot was handed to the kernel; sent.
//!
//! The kernel drops a dead process's locks, a `kill -9` included, so the
//! lock says "alive" without any clock.
//!
//! Against power loss: where a missing marker means "send again" (one
//! machine: SQLite), the marker need not be durable before the dot; its
//! byte and its folder entry are fsynced right after the dot. Where a row
//! is also recorded `committing` (PostgreSQL) and a missing marker there
//! means "another machine's", it is made durable before that record.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::store::try_flock;

pub(super) enum MarkerState {
    /// Not here: never made, or made on another machine.
    Missing,
    /// Made, but its byte was never written: neither was the dot.
    Empty,
    /// Its byte was written right before the final dot.
    Written,
    /// A live worker on this machine holds it: it is sending the row now.
    Busy,
}

impl MarkerState {
    /// What the marker says of a send that was cut off, for the log; a
    /// missing one says nothing by itself (its reader decides).
    pub(super) fn says(&self) -> Option<&'static str> {
        match self {
            MarkerState::Missing => None,
            MarkerState::Empty => Some("send was interrupted before the final dot; sending again"),
            MarkerState::Written => {
                Some("send was interrupted after the final dot; counted as sent")
            }
            MarkerState::Busy => {
                Some("another worker on this machine is sending it now; left to that worker")
            }
        }
    }
}

/// What the marker at `path` says (see the module's text).
pub(super) fn inspect(path: &Path) -> MarkerState {
    let Ok(f) = File::open(path) else {
        return MarkerState::Missing;
    };
    if let Ok(false) = try_flock(&f) {
        return MarkerState::Busy;
    }
    // Another error (a file system without locks): its contents decide.
    match f.metadata() {
        Ok(m) if m.len() > 0 => MarkerState::Written,
        Ok(_) => MarkerState::Empty,
        Err(_) => MarkerState::Missing,
    }
}

/// The marker for a send that is about to reach its final dot: made if
/// missing, locked (an error if another live worker holds it), emptied,
/// and with `durable` fsynced with its folder entry, so that after a power
/// loss it exists whenever the dot may have gone out (else
/// [`sync_after_dot`] does that). The lock lasts as long as the returned
/// file is open. The markers' folder is made (owner-only) when the first
/// is written.
pub(super) fn open_for_send(path: &Path, durable: bool) -> Result<File> {
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    };
    let f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            make_dir(path)?;
            open()
        }
        other => other,
    }
    .with_context(|| format!("cannot create {}", path.display()))?;
    match try_flock(&f) {
        Ok(true) => {}
        Ok(false) => bail!("another worker on this machine is sending this mail now"),
        Err(e) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
    // Still the file at `path`: not removed as settled (`remove_settled`)
    // between our open and our lock.
    use std::os::unix::fs::MetadataExt;
    let here = |m: std::fs::Metadata| (m.dev(), m.ino());
    let ours = f.metadata().map(here).ok();
    if ours.is_none() || std::fs::metadata(path).map(here).ok() != ours {
        bail!("the in-flight marker was removed as this send began; sending later");
    }
    f.set_len(0)
        .with_context(|| format!("cannot empty {}", path.display()))?;
    if durable {
        f.sync_all()
            .with_context(|| format!("cannot fsync {}", path.display()))?;
        sync_dir(path)?;
    }
    Ok(f)
}

/// Right after the final dot: the marker's byte made durable, and with
/// `entry` its folder entry too (a marker not made durable before the
/// dot). A failure is logged: the mail went out either way, and a power
/// loss now would send it again.
pub(super) fn sync_after_dot(f: &File, path: &Path, entry: bool) {
    let synced = f
        .sync_data()
        .context("cannot fsync the in-flight marker")
        .and_then(|()| match entry {
            true => sync_dir(path),
            false => Ok(()),
        });
    if let Err(e) = synced {
        tracing::warn!(error = %format!("{e:#}"), "in-flight marker not durable");
    }
}

/// Fsyncs the folder that holds `entry`, so that `entry` survives a power
/// loss.
fn sync_dir(entry: &Path) -> Result<()> {
    if let Some(dir) = entry.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot fsync {}", dir.display()))?;
    }
    Ok(())
}

fn make_dir(marker: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = marker.parent() else {
        return Ok(());
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| {
            format!(
                "cannot create the folder for in-flight markers {} (database.state_dir)",
                dir.display()
            )
        })?;
    // The folder's own entry, in its parent.
    sync_dir(dir)
}

pub(super) fn remove(marker: Option<PathBuf>) {
    if let Some(m) = marker {
        let _ = std::fs::remove_file(m);
    }
}

/// The markers in `dir` that no live worker holds, by outbox row id
/// (files with other names are not ours and stay). A marker is left
/// behind when its worker died after the row was recorded, before the
/// marker was removed.
pub(super) fn unheld(dir: &Path) -> Vec<(i64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let id = e.file_name().to_str()?.parse::<i64>().ok()?;
            Some((id, e.path()))
        })
        .filter(|(_, path)| !matches!(inspect(path), MarkerState::Busy | MarkerState::Missing))
        .collect()
}

/// Removes a marker whose row is settled, under its lock: a worker that
/// opened the same file meanwhile (the row queued again) finds it locked,
/// or once it has the lock finds the file no longer at its path, and
/// gives up before its dot (`open_for_send`); one that opens the path
/// afterwards gets a new file. False: a live worker holds it.
pub(super) fn remove_settled(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return true;
    };
    if !matches!(try_flock(&f), Ok(true)) {
        return false;
    }
    let _ = std::fs::remove_file(path);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_tells_busy_empty_written_and_missing_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inflight").join("7");
        assert!(matches!(inspect(&path), MarkerState::Missing));
        let f = open_for_send(&path, true).unwrap();
        assert!(matches!(inspect(&path), MarkerState::Busy));
        let second = open_for_send(&path, false).unwrap_err().to_string();
        assert!(second.contains("another worker"), "{second}");
        drop(f);
        assert!(matches!(inspect(&path), MarkerState::Empty));
        std::fs::write(&path, b"1").unwrap();
        assert!(matches!(inspect(&path), MarkerState::Written));
        // Taken again for a new send: emptied.
        let f = open_for_send(&path, false).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        drop(f);
        remove(Some(path.clone()));
        assert!(matches!(inspect(&path), MarkerState::Missing));
    }

    #[test]
    fn left_markers_are_listed_and_removed_only_when_no_worker_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("3"), b"1").unwrap();
        std::fs::write(path("4"), b"").unwrap();
        std::fs::write(path("notes"), b"not ours").unwrap();
        let held = open_for_send(&path("5"), false).unwrap();
        let mut unheld = unheld(dir.path());
        unheld.sort();
        assert_eq!(unheld, [(3, path("3")), (4, path("4"))]);
        assert!(remove_settled(&path("3")));
        assert!(matches!(inspect(&path("3")), MarkerState::Missing));
        assert!(!remove_settled(&path("5")), "held by a live worker");
        drop(held);
        assert!(remove_settled(&path("5")));
        assert!(path("notes").exists());
    }
}
