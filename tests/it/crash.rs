//! Nothing lost, nothing twice: the daemon is killed with SIGKILL at random
//! moments while 200 complaints arrive, and restarted each time. In the end
//! every complaint is exactly one case with exactly one acknowledgement.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{db, NOW};
use crate::world::{fixture, unique_id, Daemon, World};

const COMPLAINTS: usize = 200;

/// xorshift64*: reproducible randomness from a printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn start(w: &World) -> Daemon {
    Daemon(
        w.command()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon"),
    )
}

/// What the outbox holds, for a failure message.
fn outbox_report(w: &World) -> String {
    let url = format!("sqlite://{}", w.db().display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = klachtd::store::Store::open(&url).await.unwrap();
        let counts = store.outbox_counts().await.unwrap();
        let rows = sqlx::query("SELECT id, kind, status, attempts, last_error, next_attempt_at, lease_until FROM outbox WHERE status <> 'sent'")
            .fetch_all(store.pool())
            .await
            .unwrap();
        use sqlx::Row;
        let detail: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "#{} {} {} attempts={} err={:?} next={:?} lease={:?}",
                    r.get::<i64, _>(0),
                    r.get::<String, _>(1),
                    r.get::<String, _>(2),
                    r.get::<i64, _>(3),
                    r.get::<Option<String>, _>(4),
                    r.get::<String, _>(5),
                    r.get::<Option<String>, _>(6)
                )
            })
            .collect();
        format!("{counts:?} {detail:#?}")
    })
}

/// For a failure message: sent rows whose Message-ID is in no mailbox of
/// `recipients`, each with what Postfix's log says about it (never reached
/// Postfix, or queued and what became of it), plus Postfix's queue.
fn missing_report(w: &World, kind: &str, recipients: &[&String]) -> String {
    let url = format!("sqlite://{}", w.db().display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sent: Vec<(String, String)> = rt.block_on(async {
        let store = klachtd::store::Store::open(&url).await.unwrap();
        use sqlx::Row;
        sqlx::query("SELECT message_id, kind FROM outbox WHERE status = 'sent'")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect()
    });
    let delivered: String = recipients
        .iter()
        .flat_map(|r| w.mails(r))
        .map(|m| String::from_utf8_lossy(&m).into_owned())
        .collect();
    let log = std::fs::read_to_string(&w.stack.postfix_log).unwrap_or_default();
    let mut out = String::new();
    for (id, kind) in sent
        .iter()
        .filter(|(id, k)| k == kind && !delivered.contains(id.as_str()))
    {
        out.push_str(&format!("\n  {kind} {id}: "));
        let queue_id = log
            .lines()
            .find(|l| l.contains(&format!("message-id={id}")))
            .and_then(|l| l.split(": ").nth(1))
            .map(str::to_string);
        match queue_id {
            None => out.push_str("not in the Postfix log (never accepted)"),
            Some(q) => {
                for l in log.lines().filter(|l| l.contains(&q)) {
                    out.push_str(&format!("\n    {l}"));
                }
            }
        }
    }
    let queue = std::process::Command::new("postqueue")
        .arg("-c")
        .arg(w.stack.dir.join("postfix"))
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    format!("{out}\n  postqueue: {}", queue.trim())
}

#[test]
fn killing_the_daemon_at_random_moments_loses_nothing_and_sends_nothing_twice() {
    // A short SMTP timeout keeps the lease on an interrupted send short.
    // 200 complaints within the hour: past the default hourly limit on
    // automatic replies, which is for a reflector, not for this backlog.
    let w = World::with_smtp_timeout(2, "\n[procedure]\nauto_replies_per_hour = 10000\n");

    let seed = std::env::var("KLACHTD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (set KLACHTD_CRASH_SEED to repeat)");
    let mut rng = Rng(seed);

    let clients: Vec<String> = (0..COMPLAINTS)
        .map(|i| w.client(&format!("c{i}")))
        .collect();
    let delivered = Arc::new(AtomicUsize::new(0));
    let sender = {
        let clients = clients.clone();
        let delivered = delivered.clone();
        let stack = w.stack;
        let info = w.info.clone();
        let mut rng = Rng(seed.rotate_left(17) | 1);
        std::thread::spawn(move || {
            let kinds = [
                "nl-complaint-plain.eml",
                "nl-complaint-missing.eml",
                "en-complaint-formal.eml",
                "with-attachment.eml",
            ];
            for (i, c) in clients.iter().enumerate() {
                let raw = fixture(
                    kinds[i % kinds.len()],
                    c,
                    &info,
                    &unique_id(&format!("crash{i}")),
                );
                stack.smtp_deliver(c, &[&info], &raw).expect("deliver");
                delivered.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(rng.between(0, 25)));
            }
        })
    };

    // Kill and restart while mail is arriving, and a few times after.
    let mut kills = 0;
    let mut extra = 0;
    while delivered.load(Ordering::SeqCst) < COMPLAINTS || extra < 3 {
        if delivered.load(Ordering::SeqCst) >= COMPLAINTS {
            extra += 1;
        }
        let mut child = start(&w);
        std::thread::sleep(Duration::from_millis(rng.between(50, 900)));
        child.0.kill().expect("SIGKILL");
        child.0.wait().unwrap();
        kills += 1;
    }
    sender.join().unwrap();
    eprintln!("{kills} kills while {COMPLAINTS} complaints arrived");
    assert!(kills >= 5, "the daemon was killed often enough to matter");

    // A last, undisturbed run finishes the work.
    let child = start(&w);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let acked = clients.iter().filter(|c| !w.mails(c).is_empty()).count();
        if acked == COMPLAINTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {acked} of {COMPLAINTS} acknowledged after the last restart; cases {}; outbox: {}; missing: {}",
            w.cases().len(),
            outbox_report(&w),
            missing_report(&w, "ack", &clients.iter().collect::<Vec<_>>())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Everything queued has gone out (handler notifications too).
    let deadline = Instant::now() + Duration::from_secs(60);
    let notifications = || {
        [&w.anna, &w.bram, &w.carla]
            .iter()
            .map(|a| w.mails(a).len())
            .sum::<usize>()
    };
    while notifications() < COMPLAINTS {
        assert!(
            Instant::now() < deadline,
            "{} handler notifications (dirk {}); outbox: {}; missing: {}",
            notifications(),
            w.mails(&w.dirk).len(),
            outbox_report(&w),
            missing_report(&w, "handler_new", &[&w.anna, &w.bram, &w.carla, &w.dirk])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // ...and the register has caught up: a send cut off after its final dot
    // is completed once its lease runs out.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !w.cases().iter().all(|c| c["ack_sent_at"].is_string()) {
        assert!(Instant::now() < deadline, "outbox: {}", outbox_report(&w));
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.terminate();

    let cases = w.cases();
    assert_eq!(cases.len(), COMPLAINTS, "exactly one case per complaint");
    let twice: Vec<&String> = clients.iter().filter(|c| w.mails(c).len() != 1).collect();
    assert!(
        twice.is_empty(),
        "{} clients got other than one acknowledgement (seed {seed})",
        twice.len()
    );
    assert_eq!(
        notifications(),
        COMPLAINTS,
        "exactly one notification per case (seed {seed})"
    );
    assert!(cases.iter().all(|c| c["ack_sent_at"].is_string()));
    let mut refs: Vec<&str> = cases
        .iter()
        .map(|c| c["reference"].as_str().unwrap())
        .collect();
    refs.dedup();
    assert_eq!(refs.len(), COMPLAINTS, "references are unique");
}

/// What a kill can leave a send in after it recorded `committing`, set up
/// by hand: no marker file (killed before the last step's file was even
/// opened), an empty one (killed after opening it, before its byte: the
/// dot was never written) and one holding its byte (the dot was handed to
/// the kernel). A restart sends the first two again and counts the third
/// as sent, copying it to Sent only.
#[test]
fn a_send_cut_off_after_committing_is_repeated_exactly_when_its_dot_was_never_written() {
    let w = World::new();
    let url = format!("sqlite://{}", w.db().display());
    let got = cut_off_sends(&w, &url, &[], "committing");
    assert_eq!(
        got,
        [
            ("none", Settled::SentAgain),
            ("empty", Settled::SentAgain),
            ("written", Settled::CountedAsSent),
        ]
    );
}

/// On one machine (SQLite) a send records nothing in the register between
/// its lease and "sent": the marker alone tells. A row left `sending` is
/// sent again when its marker is missing (after a look in Sent) or empty,
/// counted as sent when the marker holds its byte, and left alone while a
/// live worker holds the marker's lock (here: the test itself).
#[test]
fn a_send_cut_off_on_one_machine_is_settled_by_its_marker_alone() {
    let w = World::new();
    let url = format!("sqlite://{}", w.db().display());
    let got = cut_off_sends(&w, &url, &[], "sending");
    assert_eq!(
        got,
        [
            ("none", Settled::SentAgain),
            ("empty", Settled::SentAgain),
            ("written", Settled::CountedAsSent),
            ("busy", Settled::LeftToItsWorker),
        ]
    );
}

/// A daemon killed after it sent mail but before it kept (or recorded) the
/// copies in Sent leaves rows `sent` without a copy. The sweep of every
/// surviving daemon sees them: each row is claimed by one sweep, and a copy
/// that is already there (kept, not recorded) is not kept twice.
#[test]
fn a_copy_left_behind_is_kept_once_however_many_sweeps_look() {
    use klachtd::store::Store;

    let w = World::new();
    let url = format!("sqlite://{}", w.db().display());
    let now: jiff::Timestamp = NOW.parse().unwrap();
    let names = ["missing", "kept"];
    let ids: Vec<String> = names.iter().map(|n| unique_id(n)).collect();
    let clients: Vec<String> = names.iter().map(|n| w.client(n)).collect();
    let raws: Vec<String> = clients
        .iter()
        .zip(&ids)
        .map(|(to, id)| client_mail(&w, to, id))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<i64> = rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        let rows = enqueue_client_mails(&w, &store, &clients, &ids, now).await;
        // Sent five minutes ago by a daemon that died before its copies.
        let sent_at = (now - jiff::SignedDuration::from_mins(5)).to_string();
        sqlx::query("UPDATE outbox SET status = 'sent', sent_at = $1, copied_to_sent = 0")
            .bind(sent_at)
            .execute(store.pool())
            .await
            .unwrap();
        // Two sweeps look at once: one claim each row.
        let until = now + jiff::SignedDuration::from_mins(2);
        let first = store.claim_uncopied(rows[0], now, until).await.unwrap();
        let second = store.claim_uncopied(rows[0], now, until).await.unwrap();
        assert_eq!((first, second), (true, false), "one claim per row");
        // Until the claim runs out, no sweep sees the row.
        let later = now + jiff::SignedDuration::from_mins(3);
        let seen = store.uncopied_sent(now, now, 10).await.unwrap();
        assert_eq!(seen.iter().map(|r| r.id).collect::<Vec<_>>(), [rows[1]]);
        let seen = store.uncopied_sent(now, later, 10).await.unwrap();
        assert_eq!(seen.len(), 2, "a claim runs out");
        rows
    });
    // The dead daemon had kept this copy but not recorded it.
    w.stack
        .imap_append(&w.info, "Sent", raws[1].as_bytes(), None, &["\\Seen"])
        .unwrap();
    // Both sweeps run after the claim above ran out.
    let later = (now + jiff::SignedDuration::from_mins(3)).to_string();
    w.run_once_with(&later, &[]);
    w.run_once_with(&later, &[]);
    let sent = w.stack.messages(&w.info, "Sent");
    for id in &ids {
        let n = sent
            .iter()
            .filter(|m| String::from_utf8_lossy(m).contains(id.as_str()))
            .count();
        assert_eq!(n, 1, "one copy of {id} in Sent");
    }
    let copied: Vec<i64> = rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        sqlx::query_scalar("SELECT copied_to_sent FROM outbox ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap()
    });
    assert_eq!(copied, [1, 1], "rows {rows:?} recorded as copied");
    for c in &clients {
        assert!(
            w.stack.messages(c, "INBOX").is_empty(),
            "nothing sent again"
        );
    }
}

/// A worker killed after its row was recorded sent, before it removed the
/// row's marker, leaves the marker behind; so does a row erased since. The
/// next run removes such markers, and leaves files that are not markers.
#[test]
fn markers_of_settled_or_erased_mail_are_removed_at_the_next_start() {
    use klachtd::store::Store;

    let w = World::new();
    let url = format!("sqlite://{}", w.db().display());
    let settings = klachtd::config::Settings::load_with_env(&w.config, &[]).unwrap();
    let markers = settings.marker_dir.clone().expect("a folder for markers");
    let now: jiff::Timestamp = NOW.parse().unwrap();
    let clients = vec![w.client("settled")];
    let ids = vec![unique_id("settled")];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        let rows = enqueue_client_mails(&w, &store, &clients, &ids, now).await;
        sqlx::query("UPDATE outbox SET status = 'sent', sent_at = $1, copied_to_sent = 1")
            .bind(now.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        rows
    });
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::write(markers.join(rows[0].to_string()), b"1").unwrap();
    std::fs::write(markers.join((rows[0] + 1000).to_string()), b"").unwrap();
    std::fs::write(markers.join("README"), b"not a marker").unwrap();
    w.run_once_with(NOW, &[]);
    let left: Vec<String> = std::fs::read_dir(&markers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["README"]);
    assert!(
        w.stack.messages(&clients[0], "INBOX").is_empty(),
        "nothing sent"
    );
}

/// With several daemons on one PostgreSQL, a `committing` row without a
/// marker on this machine was left by a daemon on another machine, whose
/// marker knows whether its dot went out: it is left to that daemon for a
/// while (here: killed a minute ago), and counted as sent once that daemon
/// has not come back (here: long ago). The markers of this machine's
/// daemons settle their rows as with SQLite.
#[test]
fn on_postgresql_a_send_cut_off_on_another_machine_waits_for_it_then_counts_as_sent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(db::TestDb::postgres());
    let w = World::new();
    let env = [("KLACHTD__DATABASE__URL", std::ffi::OsStr::new(&db.url))];
    let got = cut_off_sends(&w, &db.url, &env, "committing");
    assert_eq!(
        got,
        [
            ("none", Settled::CountedAsSent),
            ("empty", Settled::SentAgain),
            ("written", Settled::CountedAsSent),
            ("recent", Settled::Waiting),
        ]
    );
}

#[derive(Debug, PartialEq)]
enum Settled {
    /// Delivered again, once, and copied to Sent once.
    SentAgain,
    /// Not delivered again, copied to Sent once, marked sent.
    CountedAsSent,
    /// Not delivered, not in Sent, still `committing`.
    Waiting,
    /// Not delivered, not in Sent, still `sending`: a live worker has it.
    LeftToItsWorker,
}

/// Rows as a killed worker leaves them in `committing` on the register at
/// `url`: "none" (no marker here, lease long over), "empty" and "written"
/// (their markers), and on PostgreSQL "recent" (no marker here, lease over
/// a minute ago); with `status` "sending" also "busy" (a marker whose lock
/// a live worker holds). Runs `run --once` and tells what became of each.
fn cut_off_sends(
    w: &World,
    url: &str,
    env: &[(&str, &std::ffi::OsStr)],
    status: &str,
) -> Vec<(&'static str, Settled)> {
    use klachtd::store::Store;

    let postgres = url.starts_with("postgres");
    let names: &[&'static str] = match (postgres, status) {
        (_, "sending") => &["none", "empty", "written", "busy"],
        (true, _) => &["none", "empty", "written", "recent"],
        (false, _) => &["none", "empty", "written"],
    };
    let clients: Vec<String> = names.iter().map(|n| w.client(n)).collect();
    let ids: Vec<String> = (0..names.len())
        .map(|i| unique_id(&format!("cut{i}")))
        .collect();
    let settings = klachtd::config::Settings::load_with_env(
        &w.config,
        &[("KLACHTD__DATABASE__URL".into(), url.into())],
    )
    .unwrap();
    let markers = settings.marker_dir.clone().expect("a folder for markers");
    let now: jiff::Timestamp = NOW.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<i64> = rt.block_on(async {
        let store = Store::open(url).await.unwrap();
        let rows = enqueue_client_mails(w, &store, &clients, &ids, now).await;
        // As a killed worker leaves them (`status`), lease run out.
        for (i, id) in rows.iter().enumerate() {
            let lease = if names[i] == "recent" {
                (now - jiff::SignedDuration::from_mins(1)).to_string()
            } else {
                "2000-01-01T00:00:00Z".to_string()
            };
            sqlx::query(
                "UPDATE outbox SET status = $3, attempts = 1, \
                 lease_until = $1, next_attempt_at = '2000-01-01T00:00:00Z' WHERE id = $2",
            )
            .bind(lease)
            .bind(*id)
            .bind(status)
            .execute(store.pool())
            .await
            .unwrap();
        }
        store.close().await;
        rows
    });
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::write(markers.join(rows[1].to_string()), b"").unwrap();
    std::fs::write(markers.join(rows[2].to_string()), b"1").unwrap();
    // Held for the run, as a live worker holds the marker of its send.
    let _busy = names.contains(&"busy").then(|| {
        let path = markers.join(rows[3].to_string());
        std::fs::write(&path, b"").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor `f` keeps open.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(r, 0, "the marker locked");
        f
    });

    let out = w.run_once_with(NOW, env);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let sent = w.stack.messages(&w.info, "Sent");
    let in_sent = |id: &str| {
        sent.iter()
            .filter(|m| String::from_utf8_lossy(m).contains(id))
            .count()
    };
    let statuses: Vec<String> = rt.block_on(async {
        let store = Store::open(url).await.unwrap();
        sqlx::query_scalar("SELECT status FROM outbox ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap()
    });
    let left: Vec<String> = std::fs::read_dir(&markers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let busy: Vec<String> = names
        .iter()
        .zip(&rows)
        .filter(|(n, _)| **n == "busy")
        .map(|(_, id)| id.to_string())
        .collect();
    assert_eq!(left, busy, "markers left");
    names
        .iter()
        .enumerate()
        .map(|(i, &name)| {
            let delivered = w.stack.messages(&clients[i], "INBOX").len();
            let state = match (delivered, in_sent(&ids[i]), statuses[i].as_str()) {
                (1, 1, "sent") => Settled::SentAgain,
                (0, 1, "sent") => Settled::CountedAsSent,
                (0, 0, "committing") => Settled::Waiting,
                (0, 0, "sending") => Settled::LeftToItsWorker,
                other => {
                    panic!("{name}: delivered, in Sent, status: {other:?}; klachtd said: {said}")
                }
            };
            (name, state)
        })
        .collect()
}

/// A plain mail from info@ to `to` as the outbox keeps it.
fn client_mail(w: &World, to: &str, id: &str) -> String {
    format!(
        "From: 31Solutions <{}>\r\nTo: <{to}>\r\nSubject: test\r\nMessage-ID: {id}\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0100\r\nX-Klachtd-Kind: test\r\n\r\nHallo.\r\n",
        w.info
    )
}

/// Queues `client_mail` to each client with its Message-ID, as mail to a
/// client (its copy is kept in Sent); returns the outbox rows in order.
async fn enqueue_client_mails(
    w: &World,
    store: &klachtd::store::Store,
    clients: &[String],
    ids: &[String],
    now: jiff::Timestamp,
) -> Vec<i64> {
    use klachtd::domain::event::OutboxKind;
    use klachtd::store::{enqueue, NewOutMail};

    let mut tx = store.begin().await.unwrap();
    for (to, id) in clients.iter().zip(ids) {
        let raw = client_mail(w, to, id);
        let m = NewOutMail {
            message_id: id,
            case_id: None,
            kind: OutboxKind::Regulation,
            recipient: to,
            raw: raw.as_bytes(),
        };
        assert!(enqueue(&mut tx, &m, now).await.unwrap());
    }
    tx.commit().await.unwrap();
    sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap()
}
