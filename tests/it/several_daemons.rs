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
    let notifications = || {
        [&w.anna, &w.bram, &w.carla]
            .iter()
            .map(|x| w.mails(x).len())
            .sum::<usize>()
    };
    while clients.iter().any(|c| w.mails(c).is_empty()) || notifications() < COMPLAINTS {
        assert!(
            Instant::now() < deadline,
            "not everything arrived in time: {} of {COMPLAINTS} acknowledged, {} notifications\n{}",
            clients.iter().filter(|c| !w.mails(c).is_empty()).count(),
            notifications(),
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

    let out = w
        .command()
        .env("KLACHTD__DATABASE__URL", &db.url)
        .args(["cases", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
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
        notifications(),
        COMPLAINTS,
        "one handler notification per case"
    );
    assert_eq!(
        w.sent().len(),
        COMPLAINTS,
        "one copy of each acknowledgement in Sent (staff mail is not kept there)"
    );
}
