//! Running klachtd in production (issue 16): `--version`, `status` and its
//! exit code during an alarm, `backup` while the daemon runs and `restore`
//! into an empty register.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::NOW;
use crate::world::{Daemon, World};

#[test]
fn version_names_the_package_and_the_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_klachtd"))
        .arg("--version")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let expected = format!("klachtd {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&expected), "{line}");
    let commit = line
        .trim_end()
        .trim_start_matches(&expected)
        .trim_end_matches(')');
    assert!(!commit.is_empty(), "{line}");
}

fn status(w: &World, now: &str) -> (bool, Value) {
    let out = w.klachtd(&["--now", now, "status", "--json"]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

#[test]
fn status_sums_up_health_and_exits_1_while_an_alarm_is_raised() {
    let w = World::new();
    let client = w.client("status");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "status");
    w.run_once();
    let (ok, s) = status(&w, NOW);
    assert!(ok, "{s}");
    assert_eq!(s["cases"]["open"], 1, "{s}");
    assert_eq!(s["cases"]["overdue"], 0);
    assert_eq!(s["outbox"]["waiting"], 0);
    assert!(s["intake"]["last_ok"].is_string(), "{s}");
    assert_eq!(s["alarms"], serde_json::json!([]));

    // The mailbox cannot be read for over an hour (intake_alarm_minutes).
    let unreachable = |now: &str| {
        let out = w
            .command()
            .env("KLACHTD__IMAP__PORT", "9")
            .args(["--now", now, "run", "--once"])
            .output()
            .unwrap();
        assert!(!out.status.success());
    };
    unreachable("2026-11-23T11:00:00+01:00");
    let (ok, s) = status(&w, "2026-11-23T11:30:00+01:00");
    assert!(ok, "failing, but no alarm yet: {s}");
    assert!(s["intake"]["failing_since"].is_string(), "{s}");
    assert!(
        s["intake"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("IMAP"),
        "{s}"
    );
    unreachable("2026-11-23T12:30:00+01:00");
    let (ok, s) = status(&w, "2026-11-23T12:30:00+01:00");
    assert!(!ok, "exit 1 during the alarm: {s}");
    assert_eq!(s["alarms"], serde_json::json!(["intake"]));
    // The text form says the same, and exits 1 too.
    let out = w.klachtd(&["--now", "2026-11-23T12:30:00+01:00", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("alarms:  intake"), "{text}");
    assert!(
        text.contains("cases:   1 open, 0 overdue, 0 in triage"),
        "{text}"
    );
    // Once the mailbox is back, the alarm clears and so does the exit code.
    w.run_once_at("2026-11-23T12:45:00+01:00");
    let (ok, s) = status(&w, "2026-11-23T12:45:00+01:00");
    assert!(ok, "{s}");
}

/// `cases --json` of the register at `url`.
fn cases_at(w: &World, url: &str) -> Value {
    let out = w
        .command()
        .env("KLACHTD__DATABASE__URL", url)
        .args(["--now", NOW, "cases", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_backup_taken_while_the_daemon_runs_restores_the_same_register() {
    let w = World::new();
    let log = std::fs::File::create(w.dir.path().join("daemon.log")).unwrap();
    let daemon = Daemon(
        w.command()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let backup = w.dir.path().join("backup.db");
    let mut clients = Vec::new();
    // Complaints arrive while the backup is taken.
    for i in 0..6 {
        let client = w.client(&format!("b{i}"));
        w.deliver_fixture(&client, "nl-complaint-plain.eml", "backup");
        clients.push(client);
        if i == 3 {
            // Once the daemon is at work (it has acknowledged one).
            let deadline = Instant::now() + Duration::from_secs(30);
            while w.mails(&clients[0]).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let out = w.klachtd(&["backup", backup.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while clients.iter().any(|c| w.mails(c).is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(daemon.terminate().success());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let in_backup = cases_at(&w, &format!("sqlite://{}", backup.display()));
    let n = in_backup.as_array().unwrap().len();
    assert!((1..=6).contains(&n), "{n} cases in the backup");
    // A backup never overwrites.
    let again = w.klachtd(&["backup", backup.to_str().unwrap()]);
    assert!(!again.status.success());

    // Restore into a new register: the same cases, field for field.
    let restored = w.dir.path().join("restored/klachtd.db");
    let url = format!("sqlite://{}", restored.display());
    let out = w
        .command()
        .env("KLACHTD__DATABASE__URL", &url)
        .args(["restore", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cases_at(&w, &url), in_backup);
    // Not into a register that holds anything.
    let out = w
        .command()
        .args(["restore", backup.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("database.url already holds a register"),
        "{stderr}"
    );
    assert_eq!(
        cases_at(&w, &format!("sqlite://{}", w.db().display()))
            .as_array()
            .unwrap()
            .len(),
        6
    );
}
