//! Running klachtd in production (issue 16): `--version`, `status` and its
//! exit code during an alarm, `backup` while the daemon runs and `restore`
//! into an empty register.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::NOW;
use crate::world::{error_line, said, Daemon, World};

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
    let json =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", said(&out)));
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

#[test]
fn a_backup_taken_while_the_daemon_runs_restores_the_same_register() {
    let w = World::new();
    let daemon = w.start_daemon();
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

    let in_backup = w.cases_at(&format!("sqlite://{}", backup.display()));
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
    assert_eq!(w.cases_at(&url), in_backup);
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
        w.cases_at(&format!("sqlite://{}", w.db().display()))
            .as_array()
            .unwrap()
            .len(),
        6
    );
}

/// `GET path` on `addr`: status code and body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// A loopback address with a port nobody listens on now.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// `promtool check metrics` (Debian's prometheus package) on `text`.
fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/install-deps installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), said(&out))
}

#[test]
fn metrics_count_the_work_without_personal_data_and_pass_promtool() {
    let addr = free_addr();
    let w = World::with_config(&format!("\n[metrics]\nlisten = \"{addr}\"\n"));
    let daemon = w.start_daemon();
    let client = w.client("metrics");
    let subject_word = "coachingssessie";
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "metrics");
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.mails(&client).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(w.mails(&client).len(), 1, "acknowledged");
    // The counters move when the row is marked sent, just after delivery.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut body = String::new();
    while Instant::now() < deadline {
        let (status, b) = http_get(&addr, "/metrics");
        assert_eq!(status, 200, "{b}");
        body = b;
        if body.contains("klachtd_outbox_sent_total{kind=\"ack\"} 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for expected in [
        "klachtd_cases_opened_total{channel=\"email\"} 1",
        "klachtd_outbox_sent_total{kind=\"ack\"} 1",
        "klachtd_ack_latency_seconds_count 1",
        "klachtd_cases{state=\"open\"} 1",
        "klachtd_cases{state=\"overdue\"} 0",
        "klachtd_alarm{name=\"intake\"} 0",
        "klachtd_outbox_unsent 0",
        "klachtd_imap_idle 1",
        "klachtd_mailbox_held 1",
        "klachtd_stage_seconds_total{stage=\"intake_decide\"}",
        "klachtd_stage_seconds_total{stage=\"outbox_smtp\"}",
        "klachtd_build_info{",
    ] {
        assert!(body.contains(expected), "{expected} missing from\n{body}");
    }
    assert!(
        body.lines()
            .any(|l| l.starts_with("klachtd_mail_seen_total{outcome=\"case:")),
        "{body}"
    );
    // Art. 9: no address, no name, no subject in what is scraped.
    for private in [client.as_str(), "metrics@", subject_word, "KL-"] {
        assert!(!body.contains(private), "{private} in /metrics");
    }
    let (ok, said) = promtool_check_metrics(&body);
    assert!(ok, "promtool check metrics: {said}\n{body}");
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    let (status, why) = http_get(&addr, "/readyz");
    assert_eq!(status, 200, "{why}");
    assert_eq!(http_get(&addr, "/nope").0, 404);
    assert!(daemon.terminate().success());
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the endpoint stops with the daemon"
    );
}

#[test]
fn readyz_waits_for_intake_and_a_taken_port_stops_start_up() {
    let addr = free_addr();
    let w = World::with_config(&format!("\n[metrics]\nlisten = \"{addr}\"\n"));
    // The IMAP server cannot be reached: intake never succeeds.
    let daemon = Daemon(
        w.command()
            .env("KLACHTD__IMAP__PORT", "9")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answer = (0, String::new());
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(&addr).is_ok() {
            answer = http_get(&addr, "/readyz");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(answer.0, 503, "{answer:?}");
    assert!(
        answer.1.contains("intake has not yet read the mailbox"),
        "{answer:?}"
    );
    assert_eq!(http_get(&addr, "/healthz").0, 200, "alive all the same");
    // A second daemon cannot take the same port: it says so and exits.
    let line = error_line(&w.klachtd(&["run"]));
    assert!(
        line.contains(&format!("metrics.listen: cannot listen on {addr}")),
        "{line}"
    );
    drop(daemon);
}

#[test]
fn the_shipped_alert_rules_pass_promtool() {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/prometheus/klachtd.rules.yml"
    );
    let out = std::process::Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
        .expect("promtool (scripts/install-deps installs Debian's prometheus package)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("SUCCESS: 8 rules found"), "{said}");
}

#[test]
fn under_systemd_it_says_ready_pings_the_watchdog_and_says_stopping() {
    use std::os::unix::net::UnixDatagram;
    let w = World::new();
    let socket_path = w.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // systemd names the process the watchdog is for (WATCHDOG_PID): the
    // shell hands its own PID on to klachtd with exec.
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" --config \"$1\" run")
        .arg(env!("CARGO_BIN_EXE_klachtd"))
        .arg(&w.config)
        .env_remove("KLACHTD_LOG")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let daemon = Daemon(command.spawn().unwrap());
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let n = socket.recv(&mut buf).expect("a notification");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        let pings = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
        if pings >= 3 && seen.iter().any(|m| m.contains("STATUS=IDLE; 0 open cases")) {
            break;
        }
    }
    assert!(seen.iter().any(|m| m.contains("READY=1")), "{seen:?}");
    let pings = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 3, "pinged at half of WatchdogSec: {seen:?}");
    assert!(
        seen.iter()
            .any(|m| m.contains("STATUS=IDLE; 0 open cases; nothing waiting to be sent")),
        "{seen:?}"
    );
    assert!(daemon.terminate().success());
    let mut rest = Vec::new();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while let Ok(n) = socket.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.iter().any(|m| m.contains("STOPPING=1")), "{rest:?}");
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Ok(version) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        println!("SKIPPED: systemd-analyze is not on this machine");
        return;
    };
    assert!(version.status.success());
    let unit = include_str!("../../contrib/klachtd.service");
    assert!(
        unit.contains("\nType=notify\n") && unit.contains("\nWatchdogSec="),
        "{unit}"
    );
    // The unit names the packaged binary; here it is the one just built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("klachtd.service");
    let here = unit.replace("/usr/bin/klachtd", env!("CARGO_BIN_EXE_klachtd"));
    std::fs::write(&path, here).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = said(&out);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// `klachtd init` with `args`, `stdin` piped in; its output.
fn init(w: &World, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_klachtd"))
        .arg("init")
        .args(args)
        .env("KLACHTD__IMAP__PASSWORD", &w.stack.password)
        .env(
            "KLACHTD__ORGANISATION__REGULATION_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/klachtenreglement.txt"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn init_without_questions_writes_a_config_check_config_accepts_on_the_test_servers() {
    let w = World::new();
    let file = w.dir.path().join("init/klachtd.toml");
    let (imap_port, smtp_port) = (w.stack.imap_port.to_string(), w.stack.smtp_port.to_string());
    let anna = format!("Anna de Vries <{}>:handler,supervisor", w.anna);
    let bram = format!("Bram Bakker <{}>:handler", w.bram);
    let args = [
        "--no-input",
        "--output",
        file.to_str().unwrap(),
        "--organisation",
        "Coaching & Co",
        "--address",
        &w.info,
        "--regulation-url",
        "https://coaching.test/klachten",
        "--provider",
        "imap",
        "--imap-host",
        "127.0.0.1",
        "--imap-port",
        &imap_port,
        "--imap-security",
        "none",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &smtp_port,
        "--smtp-security",
        "none",
        "--smtp-username",
        "",
        "--database-url",
        "sqlite://var/klachtd.db",
        "--staff",
        &anna,
        "--staff",
        &bram,
    ];
    let out = init(&w, &args, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("imap: logged in as {} with a password", w.info)),
        "{stdout}"
    );
    assert!(stdout.contains("smtp: ok (no login)"), "{stdout}");
    assert!(stdout.contains("next steps:"), "{stdout}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("name = \"Coaching & Co\"") && text.contains("# Acknowledge within"),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // The same file again: refused without --force.
    let again = init(&w, &args, "");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists; give --force"));
    // A missing answer with --no-input names its flag.
    let out = init(&w, &["--no-input", "--output", "/nonexistent/x.toml"], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .trim_end()
            .ends_with("--organisation is needed with --no-input"),
        "{stderr}"
    );
}

#[test]
fn init_asks_again_after_a_bad_answer() {
    let w = World::new();
    let file = w.dir.path().join("asked.toml");
    let answers = [
        "Coaching & Co",
        "not an address",
        w.info.as_str(),
        "coaching.test/klachten",
        "https://coaching.test/klachten",
        "imap",
        "127.0.0.1",
        "ssl",
        "none",
        &w.stack.imap_port.to_string(),
        "127.0.0.1",
        "none",
        &w.stack.smtp_port.to_string(),
        "",
        "sqlite://var/klachtd.db",
        &format!("Anna de Vries <{}>", w.anna),
        "boss",
        "both",
        "",
    ]
    .join("\n")
        + "\n";
    // The SMTP login answer "" takes the default (the mailbox), whose
    // password this test does not give: no check-config here (the test
    // above checks a written config against the servers).
    let out = init(
        &w,
        &["--output", file.to_str().unwrap(), "--no-check"],
        &answers,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for why in [
        "\"not an address\" is not an email address; try again.",
        "\"coaching.test/klachten\" is not a web address (https://…); try again.",
        "\"ssl\": tls, starttls or none; try again.",
        "\"boss\": handler, supervisor, both or none; try again.",
    ] {
        assert!(stdout.contains(why), "{why} not in\n{stdout}");
    }
    assert!(!stdout.contains("panicked"), "{stdout}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("roles = [\"handler\", \"supervisor\"]"),
        "{text}"
    );
}
