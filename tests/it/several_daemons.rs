//! Several daemons on one PostgreSQL database, reading the same mailbox:
//! still exactly one case and one acknowledgement per complaint.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::db;
use crate::world::{Daemon, World};

const COMPLAINTS: usize = 40;

fn daemon(w: &World, db_url: &str) -> Daemon {
    Daemon(
        w.command()
            .env("KLACHTD__DATABASE__URL", db_url)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon"),
    )
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
    let a = daemon(&w, &db.url);
    let b = daemon(&w, &db.url);
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
        assert!(Instant::now() < deadline, "not everything arrived in time");
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
