//! Several daemons on one PostgreSQL database, reading the same mailbox:
//! still exactly one case and one acknowledgement per complaint.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::db;
use crate::world::{Daemon, World};

const COMPLAINTS: usize = 40;

/// A daemon on `db_url`, its log in the world's folder as `name`.log.
fn daemon(w: &World, db_url: &str, name: &str) -> Daemon {
    let log = std::fs::File::create(w.dir.path().join(format!("{name}.log"))).expect("log file");
    Daemon(
        w.command()
            .env("KLACHTD__DATABASE__URL", db_url)
            .env("KLACHTD_LOG", "klachtd=debug")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start daemon"),
    )
}

/// Handler notifications received by the staff of the world.
fn notifications(w: &World) -> usize {
    [&w.anna, &w.bram, &w.carla]
        .iter()
        .map(|x| w.mails(x).len())
        .sum()
}

/// The last lines of each daemon's log, for a failure message.
fn logs(w: &World, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            let text =
                std::fs::read_to_string(w.dir.path().join(format!("{n}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(4000)..].join("\n");
            format!("--- {n}.log (last 40 lines)\n{tail}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn two_daemons_on_one_postgresql_acknowledge_each_complaint_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(db::TestDb::postgres());
    let w = World::new();
    let clients: Vec<String> = (0..COMPLAINTS)
        .map(|i| w.client(&format!("pg{i}")))
        .collect();
    // Half the mail is waiting before they start, half arrives while both run.
    for c in &clients[..COMPLAINTS / 2] {
        w.deliver_fixture(c, "nl-complaint-plain.eml", "pg-before");
    }
    let a = daemon(&w, &db.url, "a");
    let b = daemon(&w, &db.url, "b");
    for c in &clients[COMPLAINTS / 2..] {
        w.deliver_fixture(c, "en-complaint-formal.eml", "pg-while");
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while clients.iter().any(|c| w.mails(c).is_empty()) || notifications(&w) < COMPLAINTS {
        assert!(
            Instant::now() < deadline,
            "not everything arrived in time: {} of {COMPLAINTS} acknowledged, {} notifications\n{}",
            clients.iter().filter(|c| !w.mails(c).is_empty()).count(),
            notifications(&w),
            logs(&w, &["a", "b"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Give a second copy, if any, the chance to arrive.
    std::thread::sleep(Duration::from_secs(2));
    for d in [a, b] {
        let status = d.terminate();
        assert!(status.success(), "graceful stop: {status:?}");
    }

    let cases = w.cases_at(&db.url);
    let cases = cases.as_array().expect("a list of cases");
    assert_eq!(cases.len(), COMPLAINTS, "one case per complaint");
    let mut refs: Vec<&str> = cases
        .iter()
        .map(|c| c["reference"].as_str().unwrap())
        .collect();
    refs.sort_unstable();
    refs.dedup();
    assert_eq!(
        refs.len(),
        COMPLAINTS,
        "references are unique across daemons"
    );
    for c in &clients {
        assert_eq!(
            w.mails(c).len(),
            1,
            "{c} got other than one acknowledgement"
        );
    }
    assert_eq!(
        notifications(&w),
        COMPLAINTS,
        "one handler notification per case"
    );
    assert_eq!(
        w.sent().len(),
        COMPLAINTS,
        "one copy of each acknowledgement in Sent (staff mail is not kept there)"
    );
}

/// When each daemon's log says it took the mailbox lock.
fn took_lock(w: &World, name: &str) -> Vec<jiff::Timestamp> {
    let text =
        std::fs::read_to_string(w.dir.path().join(format!("{name}.log"))).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("holds the mailbox lock"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Three daemons on one register: one reads the mailbox, two stand by.
/// The reader is killed (SIGKILL) while complaints arrive; a standby takes
/// over within 15 s, and every complaint still gets one case, one
/// acknowledgement and one notification.
#[test]
fn three_daemons_a_standby_takes_over_from_a_killed_reader_nothing_lost_nothing_twice() {
    const N: usize = 24;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(db::TestDb::postgres());
    // A short SMTP timeout: a row the killed daemon had leased for sending
    // is free again after its lease (4 × timeout + 5 s).
    let w = World::with_smtp_timeout(3, "");
    let names = ["a", "b", "c"];
    let mut daemons: Vec<Option<Daemon>> =
        names.iter().map(|n| Some(daemon(&w, &db.url, n))).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder = loop {
        let holding: Vec<usize> = (0..3)
            .filter(|&i| !took_lock(&w, names[i]).is_empty())
            .collect();
        if !holding.is_empty() {
            assert_eq!(
                holding.len(),
                1,
                "one reader at a time\n{}",
                logs(&w, &names)
            );
            break holding[0];
        }
        assert!(
            Instant::now() < deadline,
            "no daemon took the mailbox\n{}",
            logs(&w, &names)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let clients: Vec<String> = (0..N).map(|i| w.client(&format!("three{i}"))).collect();
    let acked = |cs: &[String]| cs.iter().filter(|c| !w.mails(c).is_empty()).count();
    // A third arrives and is being handled when the reader dies.
    for c in &clients[..N / 3] {
        w.deliver_fixture(c, "nl-complaint-plain.eml", "three-before");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked(&clients[..N / 3]) < 2 {
        assert!(
            Instant::now() < deadline,
            "nothing acknowledged\n{}",
            logs(&w, &names)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_at = jiff::Timestamp::now();
    let mut reader = daemons[holder].take().unwrap();
    reader.0.kill().expect("SIGKILL");
    reader.0.wait().unwrap();
    // The rest arrives while nobody holds the mailbox, and after.
    for c in &clients[N / 3..] {
        w.deliver_fixture(c, "en-complaint-formal.eml", "three-after");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked(&clients) < N || notifications(&w) < N {
        assert!(
            Instant::now() < deadline,
            "not everything arrived in time: {} of {N} acknowledged, {} notifications\n{}",
            acked(&clients),
            notifications(&w),
            logs(&w, &names)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let takeovers: Vec<jiff::Timestamp> = (0..3)
        .filter(|&i| i != holder)
        .flat_map(|i| took_lock(&w, names[i]))
        .collect();
    assert_eq!(
        takeovers.len(),
        1,
        "one standby took over\n{}",
        logs(&w, &names)
    );
    let takeover = takeovers[0].duration_since(killed_at);
    eprintln!("takeover after SIGKILL: {:.3} s", takeover.as_secs_f64());
    assert!(
        takeover < jiff::SignedDuration::from_secs(15),
        "took over after {takeover:?}"
    );
    // An acknowledgement the killed daemon sent but had not yet copied to
    // Sent is copied by a survivor's sweep (a minute after its sending);
    // meanwhile a second copy of any mail, if there were one, would arrive.
    let deadline = Instant::now() + Duration::from_secs(150);
    while w.sent().len() < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    for d in daemons.into_iter().flatten() {
        assert!(d.terminate().success(), "graceful stop");
    }
    let cases = w.cases_at(&db.url);
    let cases = cases.as_array().expect("a list of cases");
    assert_eq!(cases.len(), N, "one case per complaint");
    for c in &clients {
        assert_eq!(
            w.mails(c).len(),
            1,
            "{c} got other than one acknowledgement"
        );
    }
    assert_eq!(notifications(&w), N, "one handler notification per case");
    assert_eq!(
        w.sent().len(),
        N,
        "one copy of each acknowledgement in Sent"
    );
}
