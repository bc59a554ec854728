//! IMAP intake: fetch new UIDs, headers first, bodies only when needed;
//! each message is recorded and the checkpoint moved in one transaction.
//! IDLE when offered, polling otherwise; any error drops the session and
//! reconnects with jittered backoff.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::{backoff, sleep_or_stop};
use crate::app::App;
use crate::flows::intake::{self, Origin, Outcome};
use crate::flows::overrule::{self, Gesture};
use crate::mail::imap::{Fetched, Imap};
use crate::mail::parse;

/// UIDs whose headers are fetched per round trip.
const BATCH: usize = 250;
/// Bytes of bodies fetched per round trip: a larger message comes alone.
/// With one copy of each held (the response buffer), this bounds what
/// intake holds at once, whatever the sizes in the mailbox.
const BODY_BUDGET: u64 = 4 * 1024 * 1024;

/// Splits `uids` (with their RFC822.SIZE) into runs, in order, whose bodies
/// (each at most `max_bytes`) fit in [`BODY_BUDGET`]; a message larger
/// than the budget is a run of its own. Yields each run's UIDs and bytes.
fn body_runs(sized: &[(u32, u32)], max_bytes: u64) -> Vec<(Vec<u32>, u64)> {
    let mut runs: Vec<(Vec<u32>, u64)> = Vec::new();
    for &(uid, size) in sized {
        let bytes = u64::from(size).min(max_bytes);
        match runs.last_mut() {
            Some((uids, total)) if *total + bytes <= BODY_BUDGET => {
                uids.push(uid);
                *total += bytes;
            }
            _ => runs.push((vec![uid], bytes)),
        }
    }
    runs
}

/// Intake for the daemon: it takes the mailbox lock (see
/// `crate::store::MailboxLock`), or stands by until it can; while it holds
/// the lock it reads the mailbox, and should it lose the lock it stops
/// reading and stands by again.
pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    loop {
        let Some(lock) = stand_by(&app, &mut stop).await else {
            return;
        };
        app.metrics.mailbox_held(true);
        let (lost_tx, session_stop) = watch::channel(false);
        let keeper = tokio::spawn(keep(lock, stop.clone(), lost_tx));
        read_mailbox(&app, session_stop).await;
        app.metrics.mailbox_held(false);
        // The current batch is done: only now may a standby take over.
        if let Ok(lock) = keeper.await {
            lock.release().await;
        }
        if *stop.borrow() {
            return;
        }
        tracing::warn!("the mailbox lock was lost (the database restarted or the connection broke); standing by");
    }
}

/// How often a standby looks whether the mailbox is free, and the holder
/// whether it still holds it.
const LOCK_LOOK: Duration = Duration::from_secs(1);

/// Waits until this daemon holds the mailbox lock. None: stop came first.
async fn stand_by(
    app: &App,
    stop: &mut watch::Receiver<bool>,
) -> Option<crate::store::MailboxLock> {
    let mut said = false;
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return None;
        }
        let wait = match app.store.try_lock_mailbox().await {
            Ok(Some(lock)) => {
                tracing::info!(
                    took_over = said,
                    "this daemon holds the mailbox lock and reads the mailbox"
                );
                return Some(lock);
            }
            Ok(None) => {
                if !said {
                    tracing::info!("another klachtd reads the mailbox; standing by to take over");
                    said = true;
                }
                // Standing by is this daemon's intake work, done well.
                app.metrics.intake_succeeded();
                failures = 0;
                LOCK_LOOK
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %crate::store::explain(&e), "cannot take the mailbox lock; trying again");
                backoff(failures, Duration::from_secs(30))
            }
        };
        if sleep_or_stop(wait, stop).await {
            return None;
        }
    }
}

/// Holds the lock while intake runs: says `lost` when the daemon stops or
/// the lock is lost, and gives the lock back for release.
async fn keep(
    mut lock: crate::store::MailboxLock,
    mut stop: watch::Receiver<bool>,
    lost: watch::Sender<bool>,
) -> crate::store::MailboxLock {
    // A file lock cannot be lost: nothing to look at, no wake-ups.
    let look = lock.can_be_lost();
    loop {
        if *stop.borrow() {
            let _ = lost.send(true);
            return lock;
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(LOCK_LOOK), if look => {
                if !lock.held().await {
                    let _ = lost.send(true);
                    return lock;
                }
            }
        }
    }
}

/// Reads the mailbox, session after session, until `stop` fires.
async fn read_mailbox(app: &App, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    let mut sessions = 0u64;
    loop {
        if *stop.borrow() {
            return;
        }
        let started = std::time::Instant::now();
        app.metrics.imap_connected(sessions > 0);
        sessions += 1;
        let result = session(app, &mut stop).await;
        app.metrics.imap_idle(false);
        match result {
            Ok(()) => return,
            Err(e) => {
                record_failure(app, &e).await;
                // A session that ran a while ended by itself (the server
                // restarted, or ended it when its token expired): start
                // again at once, not after the last outage's backoff.
                if started.elapsed() > Duration::from_secs(60) {
                    failures = 0;
                }
                let wait = backoff(failures, Duration::from_secs(300))
                    .max(super::throttled(&format!("{e:#}")).unwrap_or_default());
                failures = failures.saturating_add(1);
                tracing::warn!(error = %crate::store::explain(&e), retry_in_s = wait.as_secs(), "IMAP intake failed; reconnecting");
                if sleep_or_stop(wait, &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// One connection's life: catch up, then wait for news, until stop.
async fn session(app: &App, stop: &mut watch::Receiver<bool>) -> Result<()> {
    let s = &app.settings.imap;
    let mut imap = Imap::connect(s).await?;
    let idle = imap.supports_idle().await.unwrap_or(false);
    tracing::info!(folder = %s.folder, idle, "IMAP intake connected");
    app.metrics.imap_idle(idle);
    retry_failed(app, &mut imap).await?;
    tidy(app, &mut imap).await?;
    loop {
        // Catch-up last: it ends with a SELECT that showed nothing new, so
        // IDLE starts from what klachtd has seen (see `catch_up`).
        staff_overrule(app, &mut imap).await?;
        catch_up(app, &mut imap).await?;
        record_health(app, &Ok(())).await;
        let stopped = if idle {
            let (next, stopped) = imap.idle(s.idle_renew, stop).await?;
            imap = next;
            stopped
        } else {
            sleep_or_stop(s.poll, stop).await
        };
        if stopped {
            imap.logout().await;
            return Ok(());
        }
    }
}

/// Tells the health table how intake went, for the scheduler's alarm. A
/// failure to write it is only logged: intake itself must not stop for it.
pub async fn record_health(app: &App, result: &Result<()>) {
    match result {
        Ok(()) => {
            app.metrics.intake_succeeded();
            if let Err(e) = app.store.health_ok("intake", app.clock.now()).await {
                tracing::warn!(error = %format!("{e:#}"), "could not record intake health");
            }
        }
        Err(e) => record_failure(app, e).await,
    }
}

async fn record_failure(app: &App, e: &anyhow::Error) {
    if let Err(e) = app
        .store
        .health_failed("intake", app.clock.now(), &crate::store::explain(e))
        .await
    {
        tracing::warn!(error = %format!("{e:#}"), "could not record intake health");
    }
}

/// One pass for `run --once`; nothing when another daemon holds the
/// mailbox (it reads the mail this pass would).
pub async fn pass(app: &App) -> Result<()> {
    let Some(lock) = app.store.try_lock_mailbox().await? else {
        tracing::info!("another klachtd reads the mailbox; this pass leaves intake to it");
        return Ok(());
    };
    let result = pass_holding(app).await;
    lock.release().await;
    result
}

async fn pass_holding(app: &App) -> Result<()> {
    let mut imap = Imap::connect(&app.settings.imap).await?;
    retry_failed(app, &mut imap).await?;
    tidy(app, &mut imap).await?;
    catch_up(app, &mut imap).await?;
    staff_overrule(app, &mut imap).await?;
    imap.logout().await;
    Ok(())
}

/// Messages whose handling failed before (a broken template, say) are tried
/// again once per session: after a restart with the cause fixed they go
/// through; if they fail again they stay recorded as failed.
async fn retry_failed(app: &App, imap: &mut Imap) -> Result<()> {
    let folder = app.settings.imap.folder.clone();
    let sel = imap.select(&folder).await?;
    let uids = app.store.failed_uids(&folder, sel.uidvalidity).await?;
    if !uids.is_empty() {
        tracing::info!(count = uids.len(), "trying failed messages again");
        batches(app, imap, &folder, sel.uidvalidity, &uids).await?;
    }
    Ok(())
}

/// Case mail the register has that the intake folder does not show as
/// such: a crash between a batch's commit and its marking (up to
/// [`MARK_EVERY`] later in a backlog), or a failed STORE or MOVE, leaves it
/// without the keyword or, with `intake.complaint_folder` set, where
/// everyone who reads info@ sees it (art. 9). The newest [`RECHECK`]
/// messages recorded as case mail are looked at again, and everything
/// with the keyword is moved.
async fn tidy(app: &App, imap: &mut Imap) -> Result<()> {
    let keyword = &app.settings.imap.keyword;
    let move_to = app.settings.intake.complaint_folder.as_deref();
    if let Some(to) = move_to {
        imap.ensure_folder(to).await?;
    }
    let folder = app.settings.imap.folder.clone();
    let sel = imap.select(&folder).await?;
    let recorded = app
        .store
        .newest_case_mail_uids(&folder, sel.uidvalidity, RECHECK)
        .await?;
    let unmarked = imap.without_keyword(&recorded, keyword).await?;
    if !unmarked.is_empty() {
        tracing::info!(
            count = unmarked.len(),
            "case mail recorded but not marked; marking it now"
        );
    }
    let mut uids = unmarked;
    if move_to.is_some() {
        uids.extend(imap.uids_with_keyword(keyword).await?);
        uids.sort_unstable();
        uids.dedup();
    }
    mark_case_mail(app, imap, &uids, move_to).await;
    Ok(())
}

/// How much of the newest case mail [`tidy`] looks at again: more than a
/// backlog commits in [`MARK_EVERY`].
const RECHECK: i64 = 1000;

/// Moves case mail out of the intake folder. A failure is logged, not
/// fatal: the message keeps its keyword and `tidy` tries again.
async fn move_case_mail(imap: &mut Imap, uids: &[u32], to: &str) {
    if uids.is_empty() {
        return;
    }
    match imap.move_to(uids, to).await {
        Ok(true) => tracing::info!(count = uids.len(), folder = %to, "case mail moved"),
        Ok(false) => {
            tracing::warn!(folder = %to, "the IMAP server has neither MOVE nor UIDPLUS: case mail was copied and stays in the intake folder too")
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not move case mail; trying again next session")
        }
    }
}

/// Processes every message above the checkpoint, in UID order, in rounds
/// until a SELECT shows nothing new. Mail that arrives while a round runs
/// reaches the session in some reply along the way; IDLE would not report
/// it again, so the round's end is never the moment to start idling.
pub async fn catch_up(app: &App, imap: &mut Imap) -> Result<usize> {
    let mut done = 0;
    while let Some(n) = catch_up_round(app, imap).await? {
        done += n;
    }
    Ok(done)
}

/// One round of `catch_up`: None when the folder held nothing new.
async fn catch_up_round(app: &App, imap: &mut Imap) -> Result<Option<usize>> {
    let folder = app.settings.imap.folder.clone();
    let sel = imap.select(&folder).await?;
    let last = match app.store.mailbox_state(&folder).await? {
        Some((validity, last)) if validity == sel.uidvalidity => last,
        Some((old, _)) => {
            // UIDs mean something else now: look at every message again;
            // the Message-ID check below keeps this from re-importing.
            tracing::warn!(folder = %folder, old, new = sel.uidvalidity, "UIDVALIDITY changed; resyncing by Message-ID");
            0
        }
        None => 0,
    };
    if sel
        .uid_next
        .is_some_and(|next| next <= last.saturating_add(1))
    {
        return Ok(None);
    }
    let uids = imap.uids_after(last).await?;
    if uids.is_empty() {
        // Everything below UIDNEXT was handled or has gone (moved on by a
        // person, or by a second daemon that handled it).
        if let Some(next) = sel.uid_next {
            let mut tx = app.store.begin().await?;
            let below = next.saturating_sub(1);
            crate::store::set_mailbox_state(&mut tx, &folder, sel.uidvalidity, below).await?;
            tx.commit().await?;
        }
        return Ok(None);
    }
    batches(app, imap, &folder, sel.uidvalidity, &uids)
        .await
        .map(Some)
}

/// `uids` in batches of [`BATCH`]; their case mail is marked together
/// ([`Unmarked`]), also when a batch fails. Returns how many messages were
/// decided.
async fn batches(
    app: &App,
    imap: &mut Imap,
    folder: &str,
    uidvalidity: u32,
    uids: &[u32],
) -> Result<usize> {
    let mut unmarked = Unmarked::default();
    let mut done = 0;
    let mut result = Ok(());
    for chunk in uids.chunks(BATCH) {
        match process_batch(app, imap, folder, uidvalidity, chunk, &mut unmarked).await {
            Ok(n) => done += n,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    unmarked.mark(app, imap).await;
    result.map(|()| done)
}

async fn process_batch(
    app: &App,
    imap: &mut Imap,
    folder: &str,
    uidvalidity: u32,
    uids: &[u32],
    unmarked: &mut Unmarked,
) -> Result<usize> {
    let s = &app.settings;
    let m = &app.metrics;
    let t = Instant::now();
    let mut headers = imap.fetch_headers(uids).await?;
    // In UID order, as the bodies are read (see `Reader`).
    headers.sort_by_key(|h| h.uid);
    m.stage("intake_fetch", t);
    let t = Instant::now();
    let mut heads: Vec<Option<parse::InboundMail>> = headers
        .iter()
        .map(|h| Some(parse::parse(h.bytes(), 0)))
        .collect();
    m.stage("intake_parse", t);
    let ids: Vec<String> = heads
        .iter()
        .flatten()
        .map(|m| m.message_id.clone())
        .collect();
    let known = app.store.known_inbound(&ids).await?;

    // What the headers already tell: seen before, or automated. Only the
    // rest needs its body.
    let need_body: Vec<(u32, u32)> = headers
        .iter()
        .zip(heads.iter().flatten())
        .filter(|(_, head)| {
            !known.contains(&head.message_id) && intake::automated(s, head).is_none()
        })
        .map(|(h, _)| (h.uid, h.size))
        .collect();

    // Bodies come in runs under the byte budget; the messages are handled
    // in UID order, each body dropped once parsed.
    let max = s.intake.max_message_bytes;
    let runs = body_runs(&need_body, max);
    let mut fetched: Option<usize> = None;
    let mut bodies = Reader::empty();
    let mut gone: Vec<u32> = Vec::new();
    // One transaction for the whole batch: one commit (one fsync) instead
    // of one per message, and the checkpoint moves with it. A crash
    // replays at most this batch, and the replay finds each message
    // claimed or not, never half-recorded. Nothing else in this process
    // writes meanwhile (SQLite has one connection): before a body fetch,
    // a transaction open longer than [`HOLD`] is committed, so a slow
    // link or large mail never keeps the outbox and scheduler waiting.
    let mut tx = app.store.begin().await?;
    let mut opened = Instant::now();
    let mut decided = Decided::default();
    let mut done = 0;
    let mut last = None;
    for (h, head) in headers.iter().zip(heads.iter_mut()) {
        let origin = Origin {
            folder,
            uidvalidity,
            uid: h.uid,
        };
        let run = runs.iter().position(|(uids, _)| uids.contains(&h.uid));
        if let Some(i) = run.filter(|&i| fetched != Some(i)) {
            if let Some(upto) = last.filter(|_| opened.elapsed() > HOLD) {
                let commit = Batch {
                    folder,
                    uidvalidity,
                    upto,
                };
                done += commit
                    .commit(app, imap, tx, std::mem::take(&mut decided), unmarked)
                    .await?;
                tx = app.store.begin().await?;
                opened = Instant::now();
            }
            let (uids, bytes) = &runs[i];
            let t = Instant::now();
            let run = imap.fetch_bodies(uids, max, *bytes).await?;
            gone = gone_from(imap, uids, &run).await?;
            m.stage("intake_fetch", t);
            bodies = Reader::start(app, run);
            fetched = Some(i);
        }
        let t = Instant::now();
        let body = match run {
            Some(_) => bodies.take(h.uid).await?,
            None => None,
        };
        let (mail, look) = match body {
            Some(ready) => (ready.mail, ready.look),
            // Moved or deleted since its header was read (by a person, or
            // by a second daemon that handles it): not this pass's to
            // decide on from its header alone.
            None if gone.contains(&h.uid) => {
                tracing::debug!(uid = h.uid, "message gone before its body was fetched");
                last = Some(h.uid);
                continue;
            }
            // Header-only: enough to know it is automated or seen before
            // (or a server that sends no body for a message it still has).
            None => {
                let mail = head.take().unwrap_or_else(|| parse::parse(h.bytes(), 0));
                let look = intake::look(s, &mail);
                (mail, look)
            }
        };
        m.stage("intake_parse", t);
        last = Some(h.uid);
        let look = match look.into_settled(h.uid, &mail.message_id) {
            Ok(mail) => {
                decided.settled.push(mail);
                continue;
            }
            Err(look) => look,
        };
        // In UID order: what waits is recorded before this mail, which
        // may carry the same Message-ID.
        decided
            .record_settled(app, &mut tx, folder, uidvalidity)
            .await?;
        let t = Instant::now();
        let outcome =
            intake::process_looked(app, &mut tx, origin, h.internal_date, &mail, look).await?;
        m.stage("intake_decide", t);
        decided.outcomes.push((h.uid, mail.message_id, outcome));
    }
    // Messages expunged between SEARCH and FETCH: nothing to record, but
    // the checkpoint passes them.
    let Some(&upto) = uids.iter().max() else {
        return Ok(done);
    };
    let batch = Batch {
        folder,
        uidvalidity,
        upto,
    };
    Ok(done + batch.commit(app, imap, tx, decided, unmarked).await?)
}

/// Longest an intake transaction stays open before a body fetch.
const HOLD: Duration = Duration::from_secs(1);

/// The end of (part of) a batch: the checkpoint to move to.
struct Batch<'a> {
    folder: &'a str,
    uidvalidity: u32,
    upto: u32,
}

/// What a batch (or the part of it in one transaction) decided so far.
#[derive(Default)]
struct Decided {
    /// Settled mail (ordinary, automated), waiting to be recorded in one
    /// go before the next mail that needs the register, and before the
    /// commit.
    settled: Vec<intake::Settled>,
    /// UID, Message-ID and outcome of each message recorded.
    outcomes: Vec<(u32, String, Outcome)>,
}

impl Decided {
    /// Records the settled mail that waits ([`intake::record_settled`]).
    async fn record_settled(
        &mut self,
        app: &App,
        tx: &mut crate::store::Tx,
        folder: &str,
        uidvalidity: u32,
    ) -> Result<()> {
        let t = Instant::now();
        let mails = std::mem::take(&mut self.settled);
        let outcomes = intake::record_settled(app, tx, folder, uidvalidity, mails).await?;
        self.outcomes.extend(outcomes);
        app.metrics.stage("intake_decide", t);
        Ok(())
    }
}

impl Batch<'_> {
    /// Records the settled mail that waits, moves the checkpoint,
    /// commits, and then does what must wait for the commit: logs,
    /// metrics, the outbox's bell, and the keyword and the move of case
    /// mail (through `unmarked`). Returns how many messages were decided.
    async fn commit(
        &self,
        app: &App,
        imap: &mut Imap,
        mut tx: crate::store::Tx,
        mut decided: Decided,
        unmarked: &mut Unmarked,
    ) -> Result<usize> {
        let m = &app.metrics;
        decided
            .record_settled(app, &mut tx, self.folder, self.uidvalidity)
            .await?;
        let decided = decided.outcomes;
        let t = Instant::now();
        crate::store::set_mailbox_state(&mut tx, self.folder, self.uidvalidity, self.upto).await?;
        tx.commit().await?;
        m.stage("intake_commit", t);
        for (uid, message_id, outcome) in &decided {
            log_outcome(*uid, message_id, outcome);
            m.mail_seen(&outcome.label());
        }
        if !decided.is_empty() {
            app.outbox_wake.notify_one();
        }
        let case_mail = decided.iter().filter(|(_, _, o)| o.is_case_mail());
        unmarked.add(case_mail.map(|(uid, _, _)| *uid));
        if unmarked.due() {
            unmarked.mark(app, imap).await;
        }
        Ok(decided.len())
    }
}

/// How long committed case mail may wait in a backlog for its keyword and
/// its move to the complaint folder. Dovecot's cost of a STORE grows with
/// the folder, not with the messages it changes: marking each batch of a
/// 50,000 backlog apart took 58 s of its 98 (0.29 s a STORE). So case
/// mail is marked together, at most this long after its commit, and at
/// the end of every round: mail that arrives one at a time is marked at
/// once.
const MARK_EVERY: Duration = Duration::from_secs(2);

/// Case mail committed but not yet marked, oldest commit first.
#[derive(Default)]
struct Unmarked {
    uids: Vec<u32>,
    since: Option<Instant>,
}

impl Unmarked {
    fn add(&mut self, uids: impl Iterator<Item = u32>) {
        let before = self.uids.len();
        self.uids.extend(uids);
        if self.uids.len() > before {
            self.since.get_or_insert_with(Instant::now);
        }
    }

    /// The oldest waits [`MARK_EVERY`] or longer.
    fn due(&self) -> bool {
        self.since.is_some_and(|t| t.elapsed() >= MARK_EVERY)
    }

    /// Sets the keyword on what waits, and moves it where so configured.
    async fn mark(&mut self, app: &App, imap: &mut Imap) {
        let uids = std::mem::take(&mut self.uids);
        self.since = None;
        let t = Instant::now();
        let move_to = app.settings.intake.complaint_folder.as_deref();
        mark_case_mail(app, imap, &uids, move_to).await;
        app.metrics.stage("intake_mark", t);
    }
}

/// Mail staff made a complaint of in their own mail client (see
/// `crate::flows::overrule`): in the intake folder, messages with the keyword that
/// are not case mail; in the complaint folder, messages above its own
/// checkpoint that are not case mail. Case mail klachtd marked or moved
/// itself is known by its Message-ID and left alone. Ends with the intake
/// folder selected again (for IDLE).
pub async fn staff_overrule(app: &App, imap: &mut Imap) -> Result<usize> {
    let s = &app.settings;
    let folder = s.imap.folder.clone();
    let sel = imap.select(&folder).await?;
    let marked = imap.uids_with_keyword(&s.imap.keyword).await?;
    let mut opened = 0;
    if !marked.is_empty() {
        // Case mail carries the keyword too: skip what the register knows
        // by UID, and the rest (few) by Message-ID after a header fetch.
        let settled = app.store.settled_uids(&folder, sel.uidvalidity).await?;
        let unknown: Vec<u32> = marked
            .into_iter()
            .filter(|u| !settled.contains(u))
            .collect();
        let look = Look {
            folder: &folder,
            uidvalidity: sel.uidvalidity,
            gesture: Gesture::Keyword,
            first_look: false,
        };
        for chunk in unknown.chunks(BATCH) {
            let (n, _) = overrule_batch(app, imap, &look, chunk).await?;
            opened += n;
        }
    }
    let Some(complaints) = s.intake.complaint_folder.clone() else {
        return Ok(opened);
    };
    let sel = imap.select(&complaints).await?;
    let (last, first_look) = match app.store.mailbox_state(&complaints).await? {
        Some((validity, last)) if validity == sel.uidvalidity => (last, false),
        _ => (0, true),
    };
    let uids = if sel.exists == 0 || sel.uid_next.is_some_and(|next| next <= last + 1) {
        Vec::new()
    } else {
        imap.uids_after(last).await?
    };
    // An empty folder seen for the first time: watched from here on.
    let mut checkpoint =
        (first_look && uids.is_empty()).then(|| sel.uid_next.unwrap_or(1).saturating_sub(1));
    let look = Look {
        folder: &complaints,
        uidvalidity: sel.uidvalidity,
        gesture: Gesture::Moved,
        first_look,
    };
    for chunk in uids.chunks(BATCH) {
        let (n, failed) = overrule_batch(app, imap, &look, chunk).await?;
        opened += n;
        // A message that could not be handled is tried again next round:
        // the checkpoint stops just before it (on a first look, the look
        // is repeated whole).
        if let Some(f) = failed {
            checkpoint = (!first_look).then(|| f.saturating_sub(1));
            break;
        }
        checkpoint = chunk.iter().max().copied();
    }
    if let Some(to) = checkpoint.filter(|&c| c > last || first_look) {
        let mut tx = app.store.begin().await?;
        crate::store::set_mailbox_state(&mut tx, &complaints, sel.uidvalidity, to).await?;
        tx.commit().await?;
    }
    imap.select(&folder).await?;
    Ok(opened)
}

/// One batch of `staff_overrule`. Returns how many messages became case
/// mail, and the first UID whose handling failed (not a database error).
/// On the `first_look` at a complaint folder, mail intake never saw (it
/// was there before klachtd watched the folder) is left alone.
/// Which folder a batch of `staff_overrule` comes from, and how staff
/// made those mails complaints.
struct Look<'a> {
    folder: &'a str,
    uidvalidity: u32,
    gesture: Gesture,
    first_look: bool,
}

async fn overrule_batch(
    app: &App,
    imap: &mut Imap,
    look: &Look<'_>,
    uids: &[u32],
) -> Result<(usize, Option<u32>)> {
    let s = &app.settings;
    let wanted = overrule_wanted(app, imap, uids, look.first_look).await?;
    if wanted.is_empty() {
        return Ok((0, None));
    }
    let mut case_mail = Vec::new();
    let mut failed = None;
    let max = s.intake.max_message_bytes;
    for (run, bytes) in body_runs(&wanted, max) {
        for b in imap.fetch_bodies(&run, max, bytes).await? {
            let mail = parse_fetched(s, &b);
            let uid = b.uid;
            let internal_date = b.internal_date;
            drop(b);
            let origin = Origin {
                folder: look.folder,
                uidvalidity: look.uidvalidity,
                uid,
            };
            let outcome = match overrule::open_by_staff(
                app,
                origin,
                internal_date,
                &mail,
                look.gesture,
            )
            .await
            {
                Ok(o) => o,
                Err(e) if e.chain().any(|c| c.is::<sqlx::Error>()) => return Err(e),
                Err(e) => {
                    tracing::warn!(uid, message_id = %mail.message_id, error = %format!("{e:#}"),
                        "a mail staff made a complaint of could not be handled; trying again next round");
                    failed = Some(failed.map_or(uid, |f: u32| f.min(uid)));
                    continue;
                }
            };
            log_overrule(uid, &mail.message_id, &outcome, look.gesture);
            app.metrics.mail_seen(&outcome.label());
            if outcome.is_case_mail() {
                case_mail.push(uid);
            }
        }
    }
    if !case_mail.is_empty() {
        app.outbox_wake.notify_one();
    }
    let move_to = s
        .intake
        .complaint_folder
        .as_deref()
        .filter(|_| look.gesture == Gesture::Keyword);
    mark_case_mail(app, imap, &case_mail, move_to).await;
    Ok((case_mail.len(), failed))
}

/// The UIDs of a batch `staff_overrule` must look at: not settled yet
/// and, on the `first_look` at a complaint folder, seen by intake before.
async fn overrule_wanted(
    app: &App,
    imap: &mut Imap,
    uids: &[u32],
    first_look: bool,
) -> Result<Vec<(u32, u32)>> {
    let headers = imap.fetch_headers(uids).await?;
    let ids: Vec<String> = headers
        .iter()
        .map(|h| parse::parse(h.bytes(), 0).message_id)
        .collect();
    let settled = app.store.settled_ids(&ids).await?;
    let seen = if first_look {
        app.store.known_inbound(&ids).await?
    } else {
        Default::default()
    };
    Ok(headers
        .iter()
        .zip(&ids)
        .filter(|(_, id)| !settled.contains(*id) && (!first_look || seen.contains(*id)))
        .map(|(h, _)| (h.uid, h.size))
        .collect())
}

fn log_overrule(uid: u32, message_id: &str, outcome: &Outcome, gesture: Gesture) {
    match outcome {
        Outcome::Case { reference, status } => {
            tracing::info!(uid, message_id, reference = %reference,
                status = %status, gesture = gesture.as_str(), "case opened by staff")
        }
        Outcome::Reply { reference } => {
            tracing::info!(uid, message_id, reference = %reference,
                gesture = gesture.as_str(), "mail staff marked filed on its case")
        }
        Outcome::Refused(why) => {
            tracing::warn!(uid, message_id, outcome = %outcome.label(),
                gesture = gesture.as_str(), "staff asked to make a complaint of {why} mail; refused")
        }
        other => tracing::debug!(uid, outcome = %other.label(), "case mail already"),
    }
}

/// A fetched body, parsed. When only its start was fetched (its size is
/// over the cap), attachments may be cut off, so none is kept as if it
/// were whole; their metadata stays.
fn parse_fetched(s: &crate::config::Settings, b: &Fetched) -> parse::InboundMail {
    let mut mail = parse::parse(b.bytes(), s.intake.max_attachment_bytes);
    if u64::from(b.size) > s.intake.max_message_bytes {
        mail.truncated_from = Some(u64::from(b.size));
        for a in &mut mail.attachments {
            a.data = None;
        }
    }
    mail
}

/// The UIDs of a run whose body did not come and that are no longer in the
/// folder (one UID SEARCH, only when a body is missing).
async fn gone_from(imap: &mut Imap, run: &[u32], bodies: &[Fetched]) -> Result<Vec<u32>> {
    let missing: Vec<u32> = run
        .iter()
        .copied()
        .filter(|u| bodies.iter().all(|b| b.uid != *u))
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    let there = imap.still_there(&missing).await?;
    Ok(missing.into_iter().filter(|u| !there.contains(u)).collect())
}

/// A message of a run, parsed and looked at ([`intake::look`]), its
/// fetched bytes let go.
struct Ready {
    uid: u32,
    mail: parse::InboundMail,
    look: intake::Look,
}

/// A run's mail as it is read: one blocking thread parses the bodies and
/// looks at each ([`intake::look`]: the classifier reads new mail from
/// outside), in UID order, while intake records the ones read before in
/// the register. The reading's CPU time and the register's round trips
/// overlap instead of adding up. At most [`READ_AHEAD`] messages wait,
/// parsed, besides the run's fetched bytes.
struct Reader {
    rx: tokio::sync::mpsc::Receiver<Ready>,
    thread: Option<tokio::task::JoinHandle<()>>,
    next: Option<Ready>,
}

/// Messages read ahead of intake's register work.
const READ_AHEAD: usize = 32;

impl Reader {
    fn empty() -> Reader {
        let (_, rx) = tokio::sync::mpsc::channel(1);
        Reader {
            rx,
            thread: None,
            next: None,
        }
    }

    fn start(app: &App, mut run: Vec<Fetched>) -> Reader {
        run.sort_by_key(|b| b.uid);
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let s = app.settings.clone();
        let thread = tokio::task::spawn_blocking(move || {
            for b in run {
                let mail = parse_fetched(&s, &b);
                let look = intake::look(&s, &mail);
                let ready = Ready {
                    uid: b.uid,
                    mail,
                    look,
                };
                drop(b);
                // Intake went away (an error ends its batch): stop.
                if tx.blocking_send(ready).is_err() {
                    return;
                }
            }
        });
        Reader {
            rx,
            thread: Some(thread),
            next: None,
        }
    }

    /// The message read for `uid` (asked in ascending order), or None
    /// when the server sent no body for it (expunged meanwhile). A reading
    /// that failed (a panic in the parser) is an error, never a message
    /// without its body.
    async fn take(&mut self, uid: u32) -> Result<Option<Ready>> {
        loop {
            let ready = match self.next.take() {
                Some(r) => r,
                None => match self.rx.recv().await {
                    Some(r) => r,
                    None => {
                        if let Some(thread) = self.thread.take() {
                            thread.await.context("reading a run of mail")?;
                        }
                        return Ok(None);
                    }
                },
            };
            match ready.uid.cmp(&uid) {
                // Not asked for: intake asks for every message of the run
                // in UID order, so none is passed over.
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(Some(ready)),
                std::cmp::Ordering::Greater => {
                    self.next = Some(ready);
                    return Ok(None);
                }
            }
        }
    }
}

/// Sets the complaint keyword on case mail and, with `move_to`, moves it
/// to the complaint folder. Failures are logged: the register has the
/// case, the keyword is a convenience for people.
async fn mark_case_mail(app: &App, imap: &mut Imap, uids: &[u32], move_to: Option<&str>) {
    if uids.is_empty() {
        return;
    }
    if let Err(e) = imap.add_keyword(uids, &app.settings.imap.keyword).await {
        tracing::warn!(count = uids.len(), error = %format!("{e:#}"), "could not set the complaint keyword");
    }
    if let Some(to) = move_to {
        move_case_mail(imap, uids, to).await;
    }
}

fn log_outcome(uid: u32, message_id: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Case { reference, status } => {
            tracing::info!(uid, message_id, reference = %reference, status = %status, "new case")
        }
        Outcome::Reply { reference } => {
            tracing::info!(uid, message_id, reference = %reference, "reply filed on case")
        }
        other => tracing::debug!(uid, message_id, outcome = %other.label(), "left alone"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_fetched_in_runs_under_the_budget_in_uid_order() {
        const MB: u32 = 1024 * 1024;
        let max = 16 * u64::from(MB);
        let sized = [
            (1, MB),
            (2, 2 * MB),
            (3, MB),
            (4, 12 * MB),
            (5, 40 * MB),
            (6, 10),
        ];
        let runs = body_runs(&sized, max);
        let uids: Vec<Vec<u32>> = runs.iter().map(|(u, _)| u.clone()).collect();
        assert_eq!(uids, vec![vec![1, 2, 3], vec![4], vec![5], vec![6]]);
        let bytes: Vec<u64> = runs.iter().map(|(_, b)| *b).collect();
        // A message over the cap counts at the cap: only that much is read.
        assert_eq!(bytes, vec![4 * u64::from(MB), 12 * u64::from(MB), max, 10]);
        assert!(runs.iter().all(|(u, b)| u.len() == 1 || *b <= BODY_BUDGET));
    }
}
