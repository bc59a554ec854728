//! The outbox worker: the only way mail leaves klachtd.
//!
//! Per row: take a lease (status `sending`), run the SMTP transaction up to
//! the final dot, make the row's in-flight marker (locked, empty, durable;
//! see [`marker`]), write one byte to it, write the dot, mark `sent`, then
//! put a copy in the Sent folder (see `mail::smtp` for why this order makes
//! a restart safe). Where daemons on several machines share the register
//! (PostgreSQL), whose markers are out of each other's sight, the row is
//! also recorded `committing` right before the dot. After a crash:
//! - a marker holding its byte: the final dot was handed to the kernel; the
//!   row counts as sent and only its copy in Sent is completed;
//! - an empty marker, or none on a single machine: the dot never went; the
//!   row is sent again (for a row in `sending` with no marker, after a look
//!   in the Sent folder, which would hold it if some earlier version had
//!   finished it);
//! - a locked marker: a live worker here is sending it; it is left alone;
//! - a `committing` row with no marker here (PostgreSQL): another machine's
//!   daemon knows; it gets [`FOREIGN_GRACE`] to settle it, after which the
//!   row counts as sent.
//!
//! A refusal of the whole session (no connection, or a refusal before any
//! recipient) keeps every row pending and stops the pass: it is about the
//! server, not the mail. Transient SMTP errors are retried with backoff;
//! permanent ones (a 5xx at RCPT or after the data) are recorded on the row
//! and the case, and `klachtd outbox retry` can queue them again.
//!
//! Speed without changing any of that: `smtp.connections` sessions send at
//! once ([`Outbox`], one `Sender` each, one session first per round);
//! their row changes are committed together by one task (`Recorder`:
//! what arrives while a commit runs goes into the next); and a round's
//! copies for Sent go while the next round sends, in one command per
//! folder where the server allows (`Copier::copy_all`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{watch, Mutex};

use super::{backoff, sleep_or_stop};
use crate::app::App;
use crate::domain::event::{EventKind, MailStep, OutboxKind, OutboxStatus};
use crate::domain::types::EmailAddress;
use crate::mail::imap::Imap;
use crate::mail::smtp::{AfterDot, LastStep, SendError, Smtp};
use crate::store::{OutboxChange, OutboxRow, SentRow};

mod marker;
use marker::MarkerState;

/// After this many transient failures a row is given up (about two days
/// with the backoff below).
const MAX_ATTEMPTS: i64 = 40;

/// Rows taken from the register per round, for every sender.
const PAGE: i64 = 50;

/// The outbox: `smtp.connections` senders, each with an SMTP session of
/// its own, taking the due rows in order from one queue; the copies for
/// the Sent folder go over one IMAP session they share.
pub struct Outbox {
    app: App,
    senders: Vec<Sender>,
    later: Later,
    copier: Arc<Mutex<Copier>>,
    /// Markers left behind by an earlier run are cleared once, at the
    /// first pass.
    markers_cleared: bool,
}

/// Mail sent this round whose copies are still to be kept (id, kind,
/// message), shared by the senders.
type Later = Arc<std::sync::Mutex<Vec<(i64, OutboxKind, Vec<u8>)>>>;

/// One SMTP session's worth of the outbox.
struct Sender {
    app: App,
    smtp: Smtp,
    recorder: Recorder,
    /// Sent this round, their copies still to be kept: id, kind, message.
    later: Later,
    copier: Arc<Mutex<Copier>>,
    /// How long a row stays ours while we send it: longer than the longest
    /// send can take, short enough that a row whose sender crashed is
    /// picked up again soon after a restart.
    lease: SignedDuration,
    /// Sent, their "sent" records on their way to the register: settled
    /// (waited for, markers removed, counted) at the end of each chunk.
    pending: Vec<PendingSent>,
}

/// A sent row whose "sent" record is being committed.
struct PendingSent {
    row: OutboxRow,
    marker: Option<PathBuf>,
    answer: Answer,
}

/// Rows a sender leases in one go: their leases are committed together,
/// and their "sent" records are waited for together at the end, so a
/// sender waits for the register about twice per chunk instead of twice
/// per mail.
const CHUNK: usize = 8;

/// Where copies of sent mail are kept: one IMAP session (opened when
/// first needed), shared by the senders.
struct Copier {
    app: App,
    imap: Option<Imap>,
    sent_folder: Option<String>,
    /// `imap.staff_copy_folder` exists (created on first use).
    staff_folder_ready: bool,
}

impl Outbox {
    pub fn new(app: &App) -> Outbox {
        let copier = Arc::new(Mutex::new(Copier {
            app: app.clone(),
            imap: None,
            sent_folder: app.settings.imap.sent_folder.clone(),
            staff_folder_ready: false,
        }));
        let lease =
            SignedDuration::try_from(app.settings.smtp.timeout * 4 + Duration::from_secs(5))
                .unwrap_or(SignedDuration::from_mins(5));
        let recorder = Recorder::start(app.store.clone());
        let later = Arc::new(std::sync::Mutex::new(Vec::new()));
        let senders = (0..app.settings.smtp.connections.max(1))
            .map(|_| Sender {
                later: later.clone(),
                recorder: recorder.clone(),
                app: app.clone(),
                smtp: Smtp::new(
                    &app.settings.smtp,
                    &app.settings.organisation.message_id_domain,
                ),
                copier: copier.clone(),
                lease,
                pending: Vec::new(),
            })
            .collect();
        Outbox {
            app: app.clone(),
            senders,
            later,
            copier,
            markers_cleared: false,
        }
    }

    /// Removes the in-flight markers an earlier run left behind whose rows
    /// are settled (`sent`, `failed`) or gone: a worker killed after the
    /// row's "sent" record and before the marker's removal leaves one.
    /// Markers of rows still in the outbox stay: they settle their rows.
    async fn clear_left_markers(&mut self) {
        let Some(dir) = self.app.store.inflight_dir().map(PathBuf::from) else {
            return;
        };
        let mut cleared = 0;
        for (id, path) in marker::unheld(&dir) {
            match self.app.store.outbox_row_settled(id).await {
                Ok(true) if marker::remove_settled(&path) => cleared += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), "left in-flight markers not cleared");
                    return;
                }
            }
        }
        if cleared > 0 {
            tracing::info!(cleared, "in-flight markers of settled mail removed");
        }
    }

    /// Sends every row that is due now, over all senders at once. Returns
    /// how many rows were handled. The first error (the server refused the
    /// session, the register failed) stops every sender after the row it
    /// is on, and is returned.
    pub async fn send_due(&mut self) -> Result<usize> {
        if !self.markers_cleared {
            self.markers_cleared = true;
            self.clear_left_markers().await;
        }
        let sent = self.rounds().await;
        // The last round's copies are kept whatever came of it.
        keep_copies(&self.app, &self.copier, self.later_jobs()).await;
        if sent.is_ok() {
            self.copier.lock().await.copy_missing().await;
        }
        sent
    }

    /// Rounds of due rows until none is left or a round makes no
    /// progress; each round's copies go while the next one sends.
    async fn rounds(&mut self) -> Result<usize> {
        let mut handled = 0;
        loop {
            let now = self.app.clock.now();
            let page = PAGE * self.senders.len() as i64;
            let rows = self.app.store.due_outbox(now, page).await?;
            if rows.is_empty() {
                return Ok(handled);
            }
            let copies = keep_copies(&self.app, &self.copier, self.later_jobs());
            let (progressed, ()) = tokio::join!(Self::round(&mut self.senders, rows), copies);
            let progressed = progressed?;
            handled += progressed;
            if progressed == 0 {
                return Ok(handled);
            }
        }
    }

    /// One round: `rows` sent over all senders at once. Returns how many
    /// were handled, or the first error.
    async fn round(senders: &mut [Sender], rows: Vec<OutboxRow>) -> Result<usize> {
        let queue = std::sync::Mutex::new(VecDeque::from(rows));
        let halt = AtomicBool::new(false);
        // One session goes first: a server that refuses sessions is met
        // once per pass, not once per session.
        let first = senders[0].drain(&queue, &halt, 1).await;
        let results = match first {
            Ok(_) => {
                futures_util::future::join_all(
                    senders
                        .iter_mut()
                        .map(|s| s.drain(&queue, &halt, usize::MAX)),
                )
                .await
            }
            Err(_) => Vec::new(),
        };
        let mut progressed = 0;
        for r in std::iter::once(first).chain(results) {
            progressed += r?;
        }
        Ok(progressed)
    }

    /// The copies sent mail is waiting for so far, taken.
    fn later_jobs(&self) -> Vec<(i64, OutboxKind, Vec<u8>)> {
        match self.later.lock() {
            Ok(mut later) => std::mem::take(&mut *later),
            Err(_) => Vec::new(),
        }
    }

    pub async fn close(self) {
        drop(self.senders);
        if let Ok(copier) = Arc::try_unwrap(self.copier) {
            if let Some(imap) = copier.into_inner().imap {
                imap.logout().await;
            }
        }
    }
}

/// Keeps the copies of what a round sent, together, and records them.
async fn keep_copies(app: &App, copier: &Mutex<Copier>, jobs: Vec<(i64, OutboxKind, Vec<u8>)>) {
    if jobs.is_empty() {
        return;
    }
    let t = Instant::now();
    let copied = copier.lock().await.copy_all(&jobs).await;
    if let Err(e) = app.store.mark_copied_all(&copied).await {
        tracing::warn!(error = %format!("{e:#}"), "copies kept, but not recorded; the sweep may copy them again");
    }
    app.metrics.stage("outbox_copy", t);
}

impl Sender {
    /// Takes rows off `queue` and handles each until it is empty, `most`
    /// are taken, or another sender failed (`halt`). Returns how many it
    /// handled.
    async fn drain(
        &mut self,
        queue: &std::sync::Mutex<VecDeque<OutboxRow>>,
        halt: &AtomicBool,
        most: usize,
    ) -> Result<usize> {
        let mut handled = 0;
        let mut left = most;
        while left > 0 && !halt.load(Ordering::Relaxed) {
            let chunk: Vec<OutboxRow> = match queue.lock() {
                Ok(mut q) => {
                    let n = q.len().min(CHUNK).min(left);
                    q.drain(..n).collect()
                }
                Err(_) => Vec::new(),
            };
            if chunk.is_empty() {
                break;
            }
            left -= chunk.len();
            let done = self.handle_chunk(&chunk, halt).await;
            let settled = self.settle_pending().await;
            match done.and_then(|n| settled.map(|()| n)) {
                Ok(n) => handled += n,
                Err(e) => {
                    halt.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(handled)
    }

    /// Leases the chunk's rows together, then handles each: finished when
    /// an earlier send was cut off after its final dot, else sent. Rows
    /// another worker has are skipped. Returns how many were handled; on
    /// an error (or another sender's) the leases of the rows not reached
    /// are given back.
    async fn handle_chunk(&mut self, chunk: &[OutboxRow], halt: &AtomicBool) -> Result<usize> {
        let now = self.app.clock.now();
        // Twice a single send's lease: the later rows of the chunk start
        // after the earlier ones; one whose lease is half gone by its turn
        // is renewed first (`handle`).
        let length = self.lease * 2;
        let lease = Lease {
            until: now.checked_add(length).unwrap_or(now),
            taken: Instant::now(),
            length,
        };
        let mut answers = Vec::with_capacity(chunk.len());
        for row in chunk {
            answers.push(match row.status {
                OutboxStatus::Committing => None,
                _ => Some(self.recorder.submit(OutboxChange::Lease {
                    id: row.id,
                    now,
                    until: lease.until,
                })?),
            });
        }
        let mut leases = Vec::with_capacity(chunk.len());
        for answer in answers {
            leases.push(match answer {
                Some(a) => Some(a.wait().await?),
                None => None,
            });
        }
        self.app.metrics.stage("outbox_db", lease.taken);
        let mut handled = 0;
        for (i, (row, leased)) in chunk.iter().zip(&leases).enumerate() {
            if halt.load(Ordering::Relaxed) {
                self.give_back(&chunk[i..], &leases[i..], lease.until).await;
                break;
            }
            let result = match leased {
                None => self.finish_interrupted(row).await.map(|()| true),
                Some(false) => Ok(false),
                Some(true) => self.handle(row, lease).await,
            };
            match result {
                Ok(true) => handled += 1,
                Ok(false) => {}
                Err(e) => {
                    self.give_back(&chunk[i + 1..], &leases[i + 1..], lease.until)
                        .await;
                    return Err(e);
                }
            }
        }
        Ok(handled)
    }

    /// A leased row: its lease renewed if half of it is gone, then sent.
    /// False: the row was taken over meanwhile.
    async fn handle(&mut self, row: &OutboxRow, mut lease: Lease) -> Result<bool> {
        if lease.taken.elapsed() >= Duration::try_from(self.lease).unwrap_or_default() {
            let now = self.app.clock.now();
            let renewed = Lease {
                until: now.checked_add(self.lease).unwrap_or(now),
                taken: Instant::now(),
                length: self.lease,
            };
            let change = OutboxChange::Renew {
                id: row.id,
                held: lease.until,
                until: renewed.until,
            };
            if !self.recorder.change(change).await? {
                return Ok(false);
            }
            lease = renewed;
        }
        self.send_one(row, lease).await?;
        Ok(true)
    }

    /// Leases this sender will not use after all (the pass stopped): the
    /// rows are due again at once, as they were.
    async fn give_back(&self, rows: &[OutboxRow], leased: &[Option<bool>], until: Timestamp) {
        for (row, leased) in rows.iter().zip(leased) {
            if *leased != Some(true) {
                continue;
            }
            let change = OutboxChange::Release {
                id: row.id,
                held: until,
                status: row.status,
            };
            if let Err(e) = self.recorder.change(change).await {
                tracing::debug!(outbox_id = row.id, error = %format!("{e:#}"), "lease not given back; the row is sent once it runs out");
            }
        }
    }

    /// Waits for the "sent" records of the chunk, then removes their
    /// markers and counts them. The first failure is returned (its row's
    /// marker stays and settles it after a restart).
    async fn settle_pending(&mut self) -> Result<()> {
        let t = Instant::now();
        let mut first_error = None;
        for p in std::mem::take(&mut self.pending) {
            match p.answer.wait().await {
                Ok(_) => {
                    marker::remove(p.marker);
                    self.counted_sent(&p.row).await;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.app.metrics.stage("outbox_db", t);
        first_error.map_or(Ok(()), Err)
    }

    async fn already_sent(&mut self, kind: OutboxKind, message_id: &str) -> Result<bool> {
        self.copier
            .lock()
            .await
            .already_sent(kind, message_id)
            .await
    }

    async fn copy_to_sent(
        &mut self,
        kind: OutboxKind,
        message_id: &str,
        raw: &[u8],
        sent_at: Timestamp,
    ) -> Result<bool> {
        let t = Instant::now();
        let copied = self
            .copier
            .lock()
            .await
            .copy_to_sent(kind, message_id, raw, sent_at)
            .await;
        self.app.metrics.stage("outbox_copy", t);
        copied
    }
}

impl Copier {
    /// Keeps copies of sent mail, one command per folder where the server
    /// allows (`Imap::append_all`). Returns the ids whose copy is kept (or
    /// kept nowhere); the rest is left to the sweep (`copy_missing`).
    async fn copy_all(&mut self, jobs: &[(i64, OutboxKind, Vec<u8>)]) -> Vec<i64> {
        let mut done = Vec::new();
        let mut by_folder: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for (i, (id, kind, _)) in jobs.iter().enumerate() {
            match self.copy_folder(*kind).await {
                Ok(Some((_, folder))) => by_folder.entry(folder).or_default().push(i),
                Ok(None) => done.push(*id),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "sent, but no copy in the Sent folder yet");
                    self.imap = None;
                    return done;
                }
            }
        }
        for (folder, at) in by_folder {
            let raws: Vec<&[u8]> = at.iter().map(|&i| jobs[i].2.as_slice()).collect();
            let appended = match self.imap().await {
                Ok((imap, _)) => imap.append_all(&folder, &raws).await,
                Err(e) => Err(e),
            };
            if let Err(e) = appended {
                tracing::warn!(error = %format!("{e:#}"), "sent, but no copy in the Sent folder yet");
                self.imap = None;
                return done;
            }
            done.extend(at.iter().map(|&i| jobs[i].0));
        }
        done
    }

    /// Sent mail whose copy to the Sent folder failed earlier, or whose
    /// daemon died before it kept the copy. Each row is claimed first (the
    /// sweeps of several daemons see the same rows), and looked for where
    /// it belongs (a daemon may have died between keeping the copy and
    /// recording it).
    async fn copy_missing(&mut self) {
        let store = self.app.store.clone();
        let now = self.app.clock.now();
        let Ok(rows) = store
            .uncopied_sent(now - SignedDuration::from_mins(1), now, 20)
            .await
        else {
            return;
        };
        for row in rows {
            match store.claim_uncopied(row.id, now, now + SWEEP_CLAIM).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::debug!(outbox_id = row.id, error = %format!("{e:#}"), "copy to Sent not claimed");
                    return;
                }
            }
            // Where the provider files sent mail, `copy_to_sent` looks itself.
            let copied = async {
                if self.app.settings.imap.sent_copy
                    && self.already_sent(row.kind, &row.message_id).await?
                {
                    return Ok(true);
                }
                self.copy_to_sent(row.kind, &row.message_id, &row.raw, row.sent_at)
                    .await
            }
            .await;
            match copied {
                Ok(true) => {
                    let _ = self.app.store.mark_copied(row.id).await;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(outbox_id = row.id, error = %format!("{e:#}"), "copy to Sent still failing");
                    return;
                }
            }
        }
    }

    async fn imap(&mut self) -> Result<(&mut Imap, String)> {
        if self.imap.is_none() {
            self.imap = Some(Imap::connect(&self.app.settings.imap).await?);
        }
        let imap = self.imap.as_mut().context("IMAP session")?;
        let folder = match &self.sent_folder {
            Some(f) => f.clone(),
            None => {
                let f = imap.find_sent_folder().await?;
                self.sent_folder = Some(f.clone());
                f
            }
        };
        Ok((imap, folder))
    }

    /// Where the copy of a mail of `kind` is kept: mail to clients in the
    /// Sent folder; mail to staff (its Message-ID is a token, and info@'s
    /// Sent is read by everyone who reads info@, art. 9) in
    /// `imap.staff_copy_folder`, or nowhere.
    async fn copy_folder(&mut self, kind: OutboxKind) -> Result<Option<(&mut Imap, String)>> {
        if kind.to_client() {
            return self.imap().await.map(Some);
        }
        let Some(folder) = self.app.settings.imap.staff_copy_folder.clone() else {
            return Ok(None);
        };
        let ready = self.staff_folder_ready;
        let (imap, _) = self.imap().await?;
        if !ready {
            imap.ensure_folder(&folder).await?;
        }
        self.staff_folder_ready = true;
        let imap = self.imap.as_mut().context("IMAP session")?;
        Ok(Some((imap, folder)))
    }

    /// Is this message already where its copy is kept (a previous attempt)?
    /// Mail whose copy is kept nowhere cannot be found: false.
    async fn already_sent(&mut self, kind: OutboxKind, message_id: &str) -> Result<bool> {
        let result = async {
            match self.copy_folder(kind).await? {
                Some((imap, folder)) => imap.has_message_id(&folder, message_id).await,
                None => Ok(false),
            }
        }
        .await;
        if result.is_err() {
            self.imap = None;
        }
        result
    }

    /// Keeps the copy of a sent mail where it belongs (see `copy_folder`).
    /// Returns false while that cannot be done yet: the provider has not
    /// filed the mail in Sent.
    async fn copy_to_sent(
        &mut self,
        kind: OutboxKind,
        message_id: &str,
        raw: &[u8],
        sent_at: Timestamp,
    ) -> Result<bool> {
        // The provider files what it was sent in Sent itself (Gmail,
        // Exchange Online; `imap.sent_copy`): a copy of ours would be a
        // second one.
        let provider_files = !self.app.settings.imap.sent_copy;
        if provider_files && kind.to_client() {
            return Ok(true);
        }
        let result = async {
            if provider_files {
                return self.take_from_sent(kind, message_id, raw, sent_at).await;
            }
            match self.copy_folder(kind).await? {
                Some((imap, folder)) => imap.append(&folder, raw).await.map(|()| true),
                None => Ok(true),
            }
        }
        .await;
        if result.is_err() {
            self.imap = None;
        }
        result
    }

    /// Mail to staff that the provider filed in Sent, which everyone who
    /// reads info@ reads (art. 9; its Message-ID is a token): moved to
    /// `imap.staff_copy_folder`, or else deleted. Providers file within
    /// seconds; a mail not there after a quarter of an hour is not coming,
    /// and the staff folder gets a copy of ours.
    async fn take_from_sent(
        &mut self,
        kind: OutboxKind,
        message_id: &str,
        raw: &[u8],
        sent_at: Timestamp,
    ) -> Result<bool> {
        let staff_folder = self.copy_folder(kind).await?.map(|(_, folder)| folder);
        let (imap, sent) = self.imap().await?;
        if imap
            .take_out(&sent, message_id, staff_folder.as_deref())
            .await?
        {
            return Ok(true);
        }
        if self.app.clock.now().duration_since(sent_at) < SignedDuration::from_mins(15) {
            return Ok(false);
        }
        if let Some(folder) = staff_folder {
            self.imap().await?.0.append(&folder, raw).await?;
        }
        Ok(true)
    }
}

impl Sender {
    /// A row whose send was cut off after it recorded "committing". Its
    /// in-flight marker tells whether the final dot was written (sent) or
    /// not (send again). A row with no marker here was left by a daemon
    /// on another machine (PostgreSQL): that machine's marker knows, so it
    /// is given [`FOREIGN_GRACE`] to come back and settle the row; after
    /// that the row counts as sent, as the last thing its worker recorded.
    async fn finish_interrupted(&mut self, row: &OutboxRow) -> Result<()> {
        let store = self.app.store.clone();
        let now = self.app.clock.now();
        let marker = store.inflight_marker(row.id);
        // With no marker folder, `committing` is the last word: as a
        // written marker.
        let state = marker
            .as_deref()
            .map_or(MarkerState::Written, marker::inspect);
        if let Some(says) = state.says() {
            tracing::info!(outbox_id = row.id, kind = %row.kind, "{says}");
        }
        match state {
            MarkerState::Busy => return store.defer_interrupted(row.id, now + BUSY_AGAIN).await,
            MarkerState::Empty => return store.reset_interrupted(row.id, now).await,
            MarkerState::Missing if !store.shared_by_machines() => {
                tracing::info!(outbox_id = row.id, kind = %row.kind, "send was interrupted before its marker was made; sending again");
                return store.reset_interrupted(row.id, now).await;
            }
            MarkerState::Missing => {
                let settle_by = row.lease_until.unwrap_or(now) + FOREIGN_GRACE;
                if now < settle_by {
                    tracing::info!(outbox_id = row.id, kind = %row.kind, %settle_by, "send was interrupted on another machine; waiting for its daemon to settle it");
                    return store.defer_interrupted(row.id, settle_by).await;
                }
                tracing::warn!(outbox_id = row.id, kind = %row.kind, "send was interrupted on another machine whose daemon did not come back; counted as sent, as its worker recorded just before the final dot");
            }
            MarkerState::Written => {}
        }
        self.settle_as_sent(row, marker).await
    }

    /// A row whose final dot went out but whose worker died before it
    /// recorded so: marked sent, and copied where its copy is kept unless
    /// it is there already.
    async fn settle_as_sent(&mut self, row: &OutboxRow, marker: Option<PathBuf>) -> Result<()> {
        let store = self.app.store.clone();
        let first = store.mark_sent(row, self.app.clock.now()).await?;
        marker::remove(marker);
        if !first {
            // Another worker settled it meanwhile, copy and all.
            return Ok(());
        }
        if let Ok(false) = self.already_sent(row.kind, &row.message_id).await {
            let now = self.app.clock.now();
            if let Ok(true) = self
                .copy_to_sent(row.kind, &row.message_id, &row.raw, now)
                .await
            {
                store.mark_copied(row.id).await?;
            }
        } else {
            store.mark_copied(row.id).await?;
        }
        Ok(())
    }

    async fn send_one(&mut self, row: &OutboxRow, lease: Lease) -> Result<()> {
        let store = self.app.store.clone();
        let lease_until = lease.until;
        if row.status == OutboxStatus::Sending
            && self.settle_earlier_attempt(row, lease_until).await?
        {
            return Ok(());
        }
        let from = &self.app.settings.organisation.address;
        let to = match EmailAddress::parse(&row.recipient) {
            Ok(a) => a,
            Err(e) => return self.on_permanent(row, lease_until, &e.to_string()).await,
        };
        let marker = store.inflight_marker(row.id);
        let commit = commit_step(&self.app, &self.recorder, marker.clone(), row.id, lease);
        let t = Instant::now();
        let sent = self.smtp.send(from, &to, &row.raw, commit).await;
        self.app.metrics.stage("outbox_smtp", t);
        match sent {
            Ok(()) => self.on_sent(row, marker).await,
            Err(SendError::Unconfirmed(e)) => self.on_unconfirmed(row, marker, &e).await,
            Err(SendError::Permanent(e)) => {
                marker::remove(marker);
                tracing::warn!(outbox_id = row.id, kind = %row.kind, "mail refused permanently; the reason (it may name the recipient) is kept with the outbox row and on the case's timeline, and logged at debug");
                tracing::debug!(outbox_id = row.id, kind = %row.kind, error = %e, "mail refused permanently");
                self.on_permanent(row, lease_until, &e).await
            }
            Err(SendError::Transient(e)) => self.on_transient(row, lease_until, &e).await,
            Err(SendError::Session(e)) => {
                marker::remove(marker);
                self.on_session_refused(row, lease_until, &e).await
            }
        }
    }

    /// A verdict on this message (a 5xx at RCPT or after the data, or an
    /// address that cannot be sent to): recorded on the row and the case.
    ///
    /// Mail to the client that fails also asks the handler to reach the
    /// client another way (after the failure is recorded: a crash between
    /// the two leaves the case's record, the digest and the escalation).
    async fn on_permanent(&mut self, row: &OutboxRow, until: Timestamp, e: &str) -> Result<()> {
        let store = &self.app.store;
        let now = self.app.clock.now();
        if !store.mark_failed(row, until, e, now).await? {
            lost_lease(row);
            return Ok(());
        }
        self.app.metrics.failed(row.kind.as_str());
        if let (true, Some(case_id)) = (row.kind.to_client(), row.case_id) {
            crate::flows::notify::tell_undeliverable(&self.app, case_id, row.kind, e, now).await?;
        }
        Ok(())
    }

    /// The server would not take mail at all (refused before any
    /// recipient): nothing is wrong with this row, which waits, pending,
    /// without using up its attempts; the pass stops (the caller backs
    /// off, and the outbox alarm fires if it lasts). The server's reply
    /// names no recipient, so it is logged as it came.
    async fn on_session_refused(
        &mut self,
        row: &OutboxRow,
        until: Timestamp,
        e: &str,
    ) -> Result<()> {
        let next = self.app.clock.now() + SignedDuration::from_secs(30);
        if !self.app.store.mark_waiting(row.id, until, e, next).await? {
            lost_lease(row);
        }
        Err(anyhow!("{e}")).context("the SMTP server refused the session; all mail waits until it accepts again (smtp.host, smtp.port, smtp.security, smtp.username)")
    }

    /// A row an earlier attempt started on and was cut off: when its copy
    /// is in Sent it was sent (true: nothing more to do); when Sent cannot
    /// be read, wait rather than risk a second copy (true as well).
    async fn settle_earlier_attempt(&mut self, row: &OutboxRow, until: Timestamp) -> Result<bool> {
        let store = self.app.store.clone();
        // On one machine the marker knows (see `commit_step`).
        if let Some(path) = store.inflight_marker(row.id) {
            let state = marker::inspect(&path);
            if let Some(says) = state.says() {
                tracing::info!(outbox_id = row.id, kind = %row.kind, "{says}");
            }
            match state {
                MarkerState::Busy => return Ok(true),
                MarkerState::Written => {
                    self.settle_as_sent(row, Some(path)).await?;
                    return Ok(true);
                }
                MarkerState::Empty => return Ok(false),
                MarkerState::Missing => {}
            }
        }
        match self.already_sent(row.kind, &row.message_id).await {
            Ok(true) => {
                tracing::info!(outbox_id = row.id, kind = %row.kind, "found in Sent after an interrupted attempt; not sending again");
                store.mark_sent(row, self.app.clock.now()).await?;
                store.mark_copied(row.id).await?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                let next = self.app.clock.now() + SignedDuration::from_secs(60);
                let why = format!("Sent folder check failed: {e:#}");
                if !store.mark_retry_sending(row.id, until, &why, next).await? {
                    lost_lease(row);
                }
                Ok(true)
            }
        }
    }

    /// The server took the mail: record it (waited for with the rest of
    /// the chunk, `settle_pending`), and keep its copy where it belongs,
    /// which is also the evidence a restart looks for.
    async fn on_sent(&mut self, row: &OutboxRow, marker: Option<PathBuf>) -> Result<()> {
        let at = self.app.clock.now();
        let answer = self.recorder.submit(OutboxChange::Sent {
            row: SentRow::of(row),
            at,
        })?;
        // Plain copies wait for the end of the round, to go in one
        // MULTIAPPEND with the others (see `Copier::copy_all`).
        if self.app.settings.imap.sent_copy {
            if let Ok(mut later) = self.later.lock() {
                later.push((row.id, row.kind, row.raw.clone()));
            }
            self.pending.push(PendingSent {
                row: row.clone(),
                marker,
                answer,
            });
            return Ok(());
        }
        // The provider files it: taken out of Sent once it is recorded.
        let t = Instant::now();
        let marked = answer.wait().await;
        self.app.metrics.stage("outbox_db", t);
        marked?;
        marker::remove(marker);
        match self
            .copy_to_sent(row.kind, &row.message_id, &row.raw, at)
            .await
        {
            Ok(true) => {
                let t = Instant::now();
                self.recorder
                    .change(OutboxChange::Copied { id: row.id })
                    .await?;
                self.app.metrics.stage("outbox_db", t);
            }
            Ok(false) => {
                tracing::debug!(
                    outbox_id = row.id,
                    "sent; its copy is kept once the provider has filed it"
                )
            }
            Err(e) => {
                tracing::warn!(outbox_id = row.id, error = %format!("{e:#}"), "sent, but no copy in the Sent folder yet")
            }
        }
        self.counted_sent(row).await;
        Ok(())
    }

    /// A row recorded sent: logged and counted.
    async fn counted_sent(&self, row: &OutboxRow) {
        tracing::info!(outbox_id = row.id, kind = %row.kind, "mail sent");
        self.app.metrics.sent(row.kind.as_str());
        // The latency needs the case's arrival: one more query per
        // acknowledgement, so only when the metrics are served.
        let served = self.app.settings.metrics_listen.is_some();
        if let (true, OutboxKind::Ack, Some(case_id)) = (served, row.kind, row.case_id) {
            if let Ok(Some(case)) = self.app.store.case_by_id(case_id).await {
                self.app
                    .metrics
                    .ack_accepted(case.received_at, self.app.clock.now());
            }
        }
    }

    /// No answer after the final dot: counted as sent (a second copy is
    /// the worse failure), and put on the case's record for a person.
    async fn on_unconfirmed(
        &mut self,
        row: &OutboxRow,
        marker: Option<PathBuf>,
        e: &str,
    ) -> Result<()> {
        let store = self.app.store.clone();
        tracing::warn!(outbox_id = row.id, kind = %row.kind, error = %e, "no confirmation after the final dot; counted as sent");
        store.mark_sent(row, self.app.clock.now()).await?;
        marker::remove(marker);
        let Some(case_id) = row.case_id else {
            return Ok(());
        };
        let mut tx = store.begin().await?;
        crate::store::add_event(
            &mut tx,
            case_id,
            self.app.clock.now(),
            EventKind::Mail(row.kind, MailStep::Unconfirmed),
            "klachtd",
            e,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A failure that may pass: try again later with backoff, up to
    /// `MAX_ATTEMPTS`.
    async fn on_transient(&mut self, row: &OutboxRow, until: Timestamp, e: &str) -> Result<()> {
        let store = &self.app.store;
        let attempts = row.attempts + 1;
        if attempts >= MAX_ATTEMPTS {
            let why = format!("gave up after {attempts} attempts: {e}");
            return self.on_permanent(row, until, &why).await;
        }
        let wait = backoff(attempts as u32, Duration::from_secs(3600));
        let next = self.app.clock.now()
            + SignedDuration::try_from(wait).unwrap_or(SignedDuration::from_secs(60));
        tracing::warn!(outbox_id = row.id, attempts, retry_in_s = wait.as_secs(), "SMTP failed; will retry (the reason may name the recipient: it is kept with the outbox row and logged at debug)");
        tracing::debug!(outbox_id = row.id, attempts, error = %e, "SMTP failed; will retry");
        self.app.metrics.retried(row.kind.as_str());
        if !store.mark_retry(row.id, until, e, next).await? {
            lost_lease(row);
        }
        Ok(())
    }
}

/// The outbox rows' state changes of all senders, written by one task in
/// shared transactions: what the sessions ask while a commit runs goes
/// into the next one, so four sessions cost one commit (one fsync) where
/// they cost four. Each change is still durable before its sender goes
/// on, exactly as when it had a transaction of its own; with one session
/// there is nothing to share and nothing waits.
#[derive(Clone)]
struct Recorder(tokio::sync::mpsc::UnboundedSender<(OutboxChange, Reply)>);

type Reply = tokio::sync::oneshot::Sender<Result<bool, String>>;

/// Most changes in one transaction.
const GROUP: usize = 64;

impl Recorder {
    /// Starts the recording task; it ends when the last sender is dropped.
    fn start(store: crate::store::Store) -> Recorder {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(OutboxChange, Reply)>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < GROUP {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let done = async {
                    let mut tx = store.begin().await?;
                    let mut done = Vec::with_capacity(group.len());
                    for (change, _) in &group {
                        done.push(change.apply(&mut tx).await?);
                    }
                    tx.commit().await?;
                    anyhow::Ok(done)
                }
                .await;
                match done {
                    Ok(done) => {
                        for ((_, reply), d) in group.into_iter().zip(done) {
                            let _ = reply.send(Ok(d));
                        }
                    }
                    Err(e) => {
                        let why = crate::store::explain(&e);
                        for (_, reply) in group {
                            let _ = reply.send(Err(why.clone()));
                        }
                    }
                }
            }
        });
        Recorder(tx)
    }

    /// Makes the change and waits until it is committed. False: see
    /// [`OutboxChange`] (the row is not, or no longer, ours).
    async fn change(&self, change: OutboxChange) -> Result<bool> {
        self.submit(change)?.wait().await
    }

    /// Hands the change over; [`Answer::wait`] tells when it is committed.
    /// Changes handed over one after the other, before any is waited for,
    /// go into one transaction (up to [`GROUP`]).
    fn submit(&self, change: OutboxChange) -> Result<Answer> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.0.send((change, reply)).map_err(|_| recorder_gone())?;
        Ok(Answer(answer))
    }
}

/// A change handed to the [`Recorder`], not yet known to be committed.
struct Answer(tokio::sync::oneshot::Receiver<Result<bool, String>>);

impl Answer {
    async fn wait(self) -> Result<bool> {
        self.0
            .await
            .map_err(|_| recorder_gone())?
            .map_err(|e| anyhow!(e))
    }
}

fn recorder_gone() -> anyhow::Error {
    anyhow!("the outbox's recorder has stopped")
}

/// How long a `committing` row whose marker is on another machine waits
/// for that machine's daemon (restarted by systemd within seconds) before
/// a daemon here counts it as sent.
const FOREIGN_GRACE: SignedDuration = SignedDuration::from_mins(10);

/// How long the sweep's claim on a row whose copy is missing lasts: the
/// sweep of another daemon leaves the row alone meanwhile.
const SWEEP_CLAIM: SignedDuration = SignedDuration::from_mins(2);

/// When a row another worker here is sending is looked at again.
const BUSY_AGAIN: SignedDuration = SignedDuration::from_secs(30);

/// This worker's lease on a row: its end as the register has it, and its
/// start and length by this process's monotonic clock.
#[derive(Clone, Copy)]
struct Lease {
    until: Timestamp,
    taken: Instant,
    length: SignedDuration,
}

impl Lease {
    /// Still ours by both clocks: the wall clock, by which another worker
    /// would take the row over, and the monotonic one, which a wall
    /// clock set back cannot fool.
    fn still_ours(&self, now: Timestamp) -> bool {
        let held = Duration::try_from(self.length).unwrap_or(Duration::ZERO);
        now < self.until && self.taken.elapsed() < held
    }
}

/// The step the SMTP client runs just before the final dot. The marker
/// file is made, locked and empty (see [`marker`]); the last step is then
/// a single one-byte write to an open file, the shortest thing that can
/// stand before the dot (creating a file there left a window of tens of
/// microseconds in which a kill lost the mail). Right after the dot the
/// byte is fsynced (on one machine with the marker's folder entry), on
/// the blocking pool while the server's reply is awaited, so that the
/// other sessions of the outbox's task go on meanwhile:
/// against power loss, not before the dot, where an fsync (milliseconds)
/// would widen the window in which a kill loses the mail. What remains:
/// power lost in the milliseconds between the dot and that fsync leaves
/// an empty or no marker, and the mail is sent again.
///
/// Is the row still ours? With one machine (SQLite) the marker settles
/// that without the register: a worker that takes a row over does so only
/// after this lease ran out by the clock, and then finds this marker
/// locked (we are alive: it leaves the row to us) or, once we are gone,
/// empty or written. So a lease still ours by the clock once the marker
/// is locked stays safe to the dot. Where daemons on other machines share
/// the register (PostgreSQL), whose markers are out of sight, the row is
/// recorded `committing` first, checked against the lease in the
/// register; with no marker folder at all, likewise.
async fn commit_step(
    app: &App,
    recorder: &Recorder,
    marker: Option<PathBuf>,
    id: i64,
    lease: Lease,
) -> Result<LastStep> {
    let t = Instant::now();
    // On one machine a marker that is missing after a power loss says
    // what an empty one says (send again): it need not be durable before
    // the dot. Where the row is recorded `committing`, it must.
    let one_machine = !app.store.shared_by_machines();
    let file = marker
        .as_deref()
        .map(|m| marker::open_for_send(m, !one_machine))
        .transpose()?;
    app.metrics.stage("outbox_marker", t);
    if file.is_some() && one_machine {
        anyhow::ensure!(
            lease.still_ours(app.clock.now()),
            "outbox row {id}: its lease ran out before the final dot"
        );
    } else {
        let t = Instant::now();
        let ours = recorder
            .change(OutboxChange::Committing {
                id,
                until: lease.until,
            })
            .await?;
        anyhow::ensure!(ours, "outbox row {id} is no longer leased to this worker");
        app.metrics.stage("outbox_db", t);
    }
    let metrics = app.metrics.clone();
    let last: LastStep = Box::new(move || match (file, marker) {
        (Some(mut f), Some(path)) => {
            use std::io::Write;
            f.write_all(b"1")
                .context("cannot write the in-flight marker")?;
            let after: AfterDot = Box::new(move || {
                let t = Instant::now();
                marker::sync_after_dot(&f, &path, one_machine);
                metrics.stage("outbox_marker", t);
            });
            Ok(Some(after))
        }
        _ => Ok(None),
    });
    Ok(last)
}

/// Another worker took the row over (our lease ran out): its state is
/// theirs to set.
fn lost_lease(row: &OutboxRow) {
    tracing::warn!(outbox_id = row.id, kind = %row.kind, "the outbox row's lease ran out and another worker took it over; leaving its state to that worker");
}

/// Sends everything due now (for `run --once`).
pub async fn flush(app: &App) -> Result<()> {
    let mut outbox = Outbox::new(app);
    let r = outbox.send_due().await;
    outbox.close().await;
    r.map(|_| ())
}

/// Sends, for `run --once`, what falls due while `work` runs (woken by
/// intake's commits, as the daemon's outbox is), then everything due once
/// `work` is done: the mail of a backlog goes out while the rest of it is
/// read, not after. Returns `work`'s output and the outbox's result. A
/// pass that fails (a server that refuses the session, say) ends the
/// sending, as the daemon's backs off: what is left waits for the next
/// run, and its error is the result.
pub async fn flush_beside<T>(
    app: &App,
    work: impl std::future::Future<Output = T>,
) -> (T, Result<()>) {
    let (done_tx, mut done) = watch::channel(false);
    // A task of its own: the outbox answers its SMTP servers on the other
    // core while `work` classifies.
    let sending = tokio::spawn({
        let app = app.clone();
        async move {
            let mut outbox = Outbox::new(&app);
            let sent = loop {
                if let Err(e) = outbox.send_due().await {
                    break Err(e);
                }
                let finished = tokio::select! {
                    _ = app.outbox_wake.notified() => false,
                    _ = done.wait_for(|d| *d) => true,
                };
                if finished {
                    break outbox.send_due().await.map(|_| ());
                }
            };
            outbox.close().await;
            sent
        }
    });
    let out = work.await;
    let _ = done_tx.send(true);
    let sent = match sending.await {
        Ok(sent) => sent,
        Err(e) => Err(anyhow!("the outbox task ended abnormally: {e}")),
    };
    (out, sent)
}

pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    let mut sender = Outbox::new(&app);
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        match sender.send_due().await {
            Ok(_) => {
                failures = 0;
                app.metrics.outbox_succeeded();
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %crate::store::explain(&e), "outbox pass failed");
                let wait = backoff(failures, Duration::from_secs(120))
                    .max(super::throttled(&format!("{e:#}")).unwrap_or_default());
                if sleep_or_stop(wait, &mut stop).await {
                    break;
                }
                continue;
            }
        }
        // Woken by intake after each commit; otherwise when the next row
        // falls due (a retry, an interrupted attempt's lease), at least
        // every 30 s.
        let now = app.clock.now();
        let wait = match app.store.next_outbox_due().await {
            Ok(Some(at)) => Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO),
            _ => Duration::from_secs(30),
        }
        .clamp(Duration::from_millis(200), Duration::from_secs(30));
        tokio::select! {
            _ = app.outbox_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    sender.close().await;
}
