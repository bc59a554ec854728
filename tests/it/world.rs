//! `World`: one test's own universe on the shared real mail servers: fresh
//! mailboxes for the organisation, its staff and clients, a fresh SQLite
//! register, a config file, and the real `klachtd` binary to drive.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::config::TestConfig;
use crate::support::mailstack::MailStack;
use crate::support::NOW;

pub struct World {
    pub stack: &'static MailStack,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub info: String,
    pub anna: String,
    pub bram: String,
    pub carla: String,
    pub dirk: String,
    /// Client addresses handed out by [`World::client`].
    clients: std::sync::Mutex<Vec<String>>,
}

impl World {
    pub fn new() -> World {
        World::with_config("")
    }

    /// `extra` is appended to the generated config (more sections).
    pub fn with_config(extra: &str) -> World {
        World::build(extra, 30)
    }

    /// A world whose klachtd gives up on an SMTP step after `seconds` (the
    /// default is 30), with `extra` appended to its config.
    pub fn with_smtp_timeout(seconds: u64, extra: &str) -> World {
        World::build(extra, seconds)
    }

    fn build(extra: &str, smtp_timeout_seconds: u64) -> World {
        World::on_stack(MailStack::shared(), extra, smtp_timeout_seconds)
    }

    /// A world on `stack` (a private one a test may stop and start).
    pub fn on_stack(stack: &'static MailStack, extra: &str, smtp_timeout_seconds: u64) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let info = stack.fresh_address("info", "31solutions.test");
        let anna = stack.fresh_address("anna", "31solutions.test");
        let bram = stack.fresh_address("bram", "31solutions.test");
        let carla = stack.fresh_address("carla", "31solutions.test");
        let dirk = stack.fresh_address("dirk", "31solutions.test");
        let config = dir.path().join("klachtd.toml");
        let text = TestConfig {
            info: info.clone(),
            anna: anna.clone(),
            bram: bram.clone(),
            carla: Some(carla.clone()),
            dirk: Some(dirk.clone()),
            imap_port: stack.imap_port,
            smtp_port: stack.smtp_port,
            password: stack.password.clone(),
            poll_seconds: 1,
            smtp_timeout_seconds,
            database_url: "sqlite://var/klachtd.db".into(),
        }
        .toml(extra);
        std::fs::write(&config, text).expect("write config");
        World {
            stack,
            dir,
            config,
            info,
            anna,
            bram,
            carla,
            dirk,
            clients: Default::default(),
        }
    }

    pub fn client(&self, name: &str) -> String {
        let a = self.stack.fresh_address(name, "client.test");
        self.clients.lock().expect("clients").push(a.clone());
        a
    }

    /// Waits until Postfix has delivered all mail for this world's
    /// addresses, so what klachtd sent can be looked at.
    pub fn settle(&self) {
        let mut all = vec![
            self.info.clone(),
            self.anna.clone(),
            self.bram.clone(),
            self.carla.clone(),
            self.dirk.clone(),
        ];
        all.extend(self.clients.lock().expect("clients").iter().cloned());
        self.stack
            .wait_until_delivered(&all, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_klachtd"));
        c.arg("--config")
            .arg(&self.config)
            .env_remove("KLACHTD_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("KLACHTD__") {
                c.env_remove(k);
            }
        }
        c
    }

    /// `klachtd run` in the background, its log in `daemon.log` of this
    /// world's folder.
    pub fn start_daemon(&self) -> Daemon {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).expect("daemon log");
        Daemon(
            self.command()
                .arg("run")
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start klachtd run"),
        )
    }

    pub fn klachtd(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run klachtd")
    }

    /// `klachtd run --once --now NOW`; panics with its stderr on failure.
    pub fn run_once(&self) -> Output {
        self.run_once_at(NOW)
    }

    pub fn run_once_at(&self, now: &str) -> Output {
        self.run_once_with(now, &[])
    }

    /// `run --once --now NOW` with extra environment (config overrides);
    /// panics with its stderr on failure, then waits for Postfix to deliver.
    pub fn run_once_with(&self, now: &str, env: &[(&str, &std::ffi::OsStr)]) -> Output {
        let out = self
            .command()
            .envs(env.iter().copied())
            .args(["--now", now, "run", "--once"])
            .output()
            .expect("run klachtd");
        assert!(
            out.status.success(),
            "run --once failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.settle();
        out
    }

    pub fn cases(&self) -> Vec<Value> {
        let out = self.klachtd(&["cases", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .expect("cases --json is JSON")
            .as_array()
            .expect("an array")
            .clone()
    }

    pub fn case(&self, reference: &str) -> Value {
        let out = self.klachtd(&["case", "show", reference, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("case show --json is JSON")
    }

    /// `klachtd cases --json --now NOW` on the register at `url` (another
    /// than the world's own: a restored one, a PostgreSQL database).
    pub fn cases_at(&self, url: &str) -> Value {
        let out = self
            .command()
            .env("KLACHTD__DATABASE__URL", url)
            .args(["--now", NOW, "cases", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", said(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Sends raw mail to info@ through Postfix and waits until Dovecot has it
    /// (Postfix's queue holds nothing more for info@: a daemon may already
    /// have moved it out of INBOX).
    pub fn deliver(&self, from: &str, raw: &[u8]) {
        self.stack
            .smtp_deliver(from, &[&self.info], raw)
            .expect("SMTP delivery");
        self.delivered();
    }

    /// Like [`deliver`](Self::deliver), as `from`'s own mail client does it:
    /// logged in to Postfix, which notes the login in its Received line.
    pub fn deliver_logged_in(&self, from: &str, raw: &[u8]) {
        self.stack
            .smtp_submit(from, &[&self.info], raw)
            .expect("SMTP submission with AUTH");
        self.delivered();
    }

    fn delivered(&self) {
        self.stack
            .wait_until_delivered(std::slice::from_ref(&self.info), Duration::from_secs(20))
            .expect("delivery to info@");
    }

    /// Delivers fixture `name` from `display <from>` with Message-ID `id`.
    pub fn deliver_fixture_as(&self, display: &str, from: &str, name: &str, id: &str) {
        let header = format!("{display} <{from}>");
        self.deliver(from, &fixture(name, &header, &self.info, id));
    }

    /// Delivers fixture `name` from `from` with a fresh Message-ID, which it
    /// returns.
    pub fn deliver_fixture(&self, from: &str, name: &str, tag: &str) -> String {
        let id = unique_id(tag);
        self.deliver(from, &fixture(name, from, &self.info, &id));
        id
    }

    /// `address`'s inbox without the scheduler's mail (digests, reminders,
    /// escalations, health alarms), which depends on the date a test runs
    /// at: tests of intake and conversations look at the rest.
    pub fn mails(&self, address: &str) -> Vec<Vec<u8>> {
        without_scheduled(self.stack.messages(address, "INBOX"))
    }

    /// Everything in `address`'s inbox, the scheduler's mail included.
    pub fn all_mails(&self, address: &str) -> Vec<Vec<u8>> {
        self.stack.messages(address, "INBOX")
    }

    /// info@'s Sent folder, without the scheduler's mail (see [`World::mails`]).
    pub fn sent(&self) -> Vec<Vec<u8>> {
        without_scheduled(self.stack.messages(&self.info, "Sent"))
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("var/klachtd.db")
    }

    /// Puts a text mail into info@'s INBOX as if it arrived at 08:00
    /// Amsterdam time on `day` (Date header and IMAP INTERNALDATE).
    /// `headers` come after From/To/Subject/Message-ID/Date. Returns the
    /// Message-ID. Dovecot moves future dates back to now, so `day` is in
    /// the past of the machine running the test.
    pub fn arrive(
        &self,
        day: jiff::civil::Date,
        from: &str,
        subject: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> String {
        let id = unique_id("arrive");
        let z = day
            .at(8, 0, 0, 0)
            .in_tz("Europe/Amsterdam")
            .expect("Amsterdam time");
        let mut raw = format!(
            "From: {from}\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: {id}\r\nDate: {}\r\n",
            self.info,
            z.strftime("%a, %d %b %Y %H:%M:%S %z")
        );
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str(
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n",
        );
        raw.push_str(&body.replace('\n', "\r\n"));
        self.stack
            .imap_append(
                &self.info,
                "INBOX",
                raw.as_bytes(),
                Some(&z.strftime("%d-%b-%Y %H:%M:%S %z").to_string()),
                &[],
            )
            .expect("IMAP APPEND");
        id
    }

    /// The first mail of `kind_` in `address`'s INBOX whose subject holds
    /// `needle`; the test fails, listing what is there, if there is none.
    pub fn find(&self, address: &str, kind_: &str, needle: &str) -> Vec<u8> {
        let all = self.all_mails(address);
        match all
            .iter()
            .position(|m| kind(m) == kind_ && parsed(m).subject.contains(needle))
        {
            Some(i) => all[i].clone(),
            None => {
                let have: Vec<(String, String)> =
                    all.iter().map(|m| (kind(m), parsed(m).subject)).collect();
                panic!("no {kind_} about {needle} for {address}: {have:?}")
            }
        }
    }
}

/// The `X-Klachtd-Kind` of the scheduler's mail.
pub const SCHEDULED_KINDS: &[&str] = &[
    "digest",
    "reminder",
    "reply_reminder",
    "escalation",
    "health",
    "report",
];

/// The kind klachtd wrote on a mail it sent (`X-Klachtd-Kind`), or "".
pub fn kind(raw: &[u8]) -> String {
    parsed(raw)
        .header("x-klachtd-kind")
        .unwrap_or("")
        .to_string()
}

fn without_scheduled(mails: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    mails
        .into_iter()
        .filter(|m| !SCHEDULED_KINDS.contains(&kind(m).as_str()))
        .collect()
}

/// A fixture from tests/fixtures/mail with From, To and Message-ID replaced.
pub fn fixture(name: &str, from: &str, to: &str, message_id: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    rewrite_headers(
        &raw,
        &[("From", from), ("To", to), ("Message-ID", message_id)],
    )
}

/// Replaces (or adds) top-level header fields; the body is left byte for byte.
pub fn rewrite_headers(raw: &[u8], set: &[(&str, &str)]) -> Vec<u8> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .expect("fixture has a header/body split");
    let head = String::from_utf8_lossy(&raw[..split.0]).into_owned();
    let mut lines: Vec<String> = Vec::new();
    let mut skipping = false;
    for line in head.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.starts_with([' ', '\t']) {
            if !skipping {
                lines.push(line.to_string());
            }
            continue;
        }
        let name = line.split(':').next().unwrap_or("");
        skipping = set.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !skipping {
            lines.push(line.to_string());
        }
    }
    for (n, v) in set {
        lines.push(format!("{n}: {v}"));
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&raw[split.0 + split.1..]);
    out
}

pub fn unique_id(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("<{tag}-{}-{n}-{nanos}@client.test>", std::process::id())
}

/// A decoded view of a delivered message, via klachtd's own parser.
pub fn parsed(raw: &[u8]) -> klachtd::mail::parse::InboundMail {
    klachtd::mail::parse::parse(raw, 1 << 20)
}

/// What a finished command printed: stdout, then stderr.
pub fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A failed klachtd command's last line on stderr: its one-line error.
pub fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure:\n{}", said(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().last().unwrap_or_default().to_string()
}

/// A daemon started by a test: killed when dropped, so a failing test
/// leaves nothing running.
pub struct Daemon(pub std::process::Child);

impl Daemon {
    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        self.0.wait().expect("wait for daemon")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
