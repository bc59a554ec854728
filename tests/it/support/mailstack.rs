//! The real test mail server (Dovecot IMAP + LMTP, Postfix SMTP) on loopback,
//! started by `scripts/mailstack`, plus tiny blocking SMTP/IMAP clients and
//! Maildir readers for assertions. Only `std`, so it compiles with anything;
//! benches/pipeline.rs uses it too (its clients and Maildir listing).
//!
//! * Every address in the test domains (`31solutions.test`, `client.test`,
//!   `example.test`) exists; the IMAP login is the full address, the password
//!   is [`MailStack::password`]. Use [`MailStack::fresh_address`] so each test
//!   has its own mailboxes.
//! * Postfix refuses every other recipient at RCPT time (5xx) and never
//!   delivers anywhere else.
//! * Mail for `local@domain` is stored in
//!   `maildir_root/<domain>/<local>/Maildir` (lower-cased), Maildir++ layout:
//!   INBOX is that directory, folder `A/B` is `.A.B` (IMAP hierarchy separator
//!   `/`). Sent, Drafts, Trash, Junk (special-use) and Klachten are auto-created
//!   and subscribed at the first IMAP login.
//!
//! Under `scripts/test` one stack serves the whole run
//! (`KLACHTD_TEST_MAILSTACK_DIR`); otherwise each test process starts its own
//! on first use, which stops by itself when the process exits.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Name of the variable that points at a running stack's DIR.
pub const MAILSTACK_DIR_VAR: &str = "KLACHTD_TEST_MAILSTACK_DIR";

const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct MailStack {
    pub dir: PathBuf,
    pub imap_port: u16,
    pub smtp_port: u16,
    /// The same Postfix, answering every client 554 at connect.
    pub smtp_refusing_port: u16,
    pub password: String,
    /// The HS256 key (base64) Dovecot checks OAuth2 tokens with; see
    /// [`MailStack::oauth2_token`].
    pub oauth2_key: String,
    pub maildir_root: PathBuf,
    pub postfix_log: PathBuf,
}

static SHARED: OnceLock<MailStack> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl MailStack {
    /// The stack named by `KLACHTD_TEST_MAILSTACK_DIR` (from its `env` file);
    /// if unset, one started via `scripts/mailstack` in a fresh temp dir for
    /// this process, stopped (and removed) by a watchdog once the process exits.
    pub fn shared() -> &'static MailStack {
        SHARED.get_or_init(|| match std::env::var_os(MAILSTACK_DIR_VAR) {
            Some(dir) if !dir.is_empty() => MailStack::from_dir(Path::new(&dir))
                .unwrap_or_else(|e| panic!("{MAILSTACK_DIR_VAR}: {e}")),
            _ => MailStack::start_private().unwrap_or_else(|e| panic!("{e}")),
        })
    }

    /// Reads a running stack's `DIR/env`.
    pub fn from_dir(dir: &Path) -> Result<MailStack, String> {
        let env_path = dir.join("env");
        let text = fs::read_to_string(&env_path).map_err(|e| {
            format!(
                "cannot read {} ({e}); is the mail stack running? (scripts/mailstack start {})",
                env_path.display(),
                dir.display()
            )
        })?;
        let vars = parse_env(&text);
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .ok_or_else(|| format!("{} lacks {k}", env_path.display()))
        };
        let port = |k: &str| -> Result<u16, String> {
            get(k)?
                .parse()
                .map_err(|e| format!("{k} in {}: {e}", env_path.display()))
        };
        Ok(MailStack {
            dir: PathBuf::from(get("MAILSTACK_DIR")?),
            imap_port: port("MAILSTACK_IMAP_PORT")?,
            smtp_port: port("MAILSTACK_SMTP_PORT")?,
            smtp_refusing_port: port("MAILSTACK_SMTP_REFUSING_PORT")?,
            password: get("MAILSTACK_PASSWORD")?,
            oauth2_key: get("MAILSTACK_OAUTH2_KEY")?,
            maildir_root: PathBuf::from(get("MAILSTACK_MAILDIR_ROOT")?),
            postfix_log: PathBuf::from(get("MAILSTACK_POSTFIX_LOG")?),
        })
    }

    /// Starts a new stack in a fresh temp dir, owned by this process.
    pub fn start_private() -> Result<MailStack, String> {
        MailStack::start_private_in(&std::env::temp_dir())
    }

    /// As [`MailStack::start_private`], in a fresh folder under `root`
    /// (the bench puts its mail servers' spools and mailboxes in memory).
    pub fn start_private_in(root: &Path) -> Result<MailStack, String> {
        let script = mailstack_script()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = root.join(format!(
            "klachtd-ms-{}-{}",
            std::process::id(),
            base36(nanos % 1_000_000_000_000)
        ));
        let out = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        // Whatever happened, make sure the stack goes away with this process.
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; '{script}' stop '{dir}' >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            script = script.display(),
            dir = dir.display(),
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(watchdog)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0) // not killed with the test's process group
            .spawn();
        if !out.status.success() {
            return Err(format!(
                "{} start {} failed ({}):\n{}{}",
                script.display(),
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        MailStack::from_dir(&dir)
    }

    /// Holds (`true`) or releases Postfix's delivery to Dovecot
    /// (`scripts/mailstack hold|release`): while held, Postfix takes and
    /// queues each mail but delivers none; release delivers them all.
    /// Only the bench holds delivery: a test doing so would hold every other
    /// test's mail on the shared stack.
    #[allow(dead_code)]
    pub fn hold_delivery(&self, hold: bool) -> Result<(), String> {
        let script = mailstack_script()?;
        let verb = if hold { "hold" } else { "release" };
        let out = Command::new(&script)
            .arg(verb)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} {verb} {} failed ({}): {}",
                script.display(),
                self.dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    /// `127.0.0.1:<imap port>`
    pub fn imap_addr(&self) -> String {
        format!("127.0.0.1:{}", self.imap_port)
    }

    /// `127.0.0.1:<smtp port>`
    pub fn smtp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.smtp_port)
    }

    /// A fresh address, unique across tests, processes and runs:
    /// `fresh_address("info", "31solutions.test")` →
    /// `info-t4242-7-k3x9q1z0@31solutions.test`.
    pub fn fresh_address(&self, role: &str, domain: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let role: String = role
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .collect();
        let role = if role.is_empty() {
            "user".to_string()
        } else {
            role
        };
        format!(
            "{role}-t{}-{n}-{}@{}",
            std::process::id(),
            base36(nanos % 2_821_109_907_456), // 8 base-36 digits
            domain.to_ascii_lowercase()
        )
    }

    /// Maildir of `folder` of `address`: `maildir_root/<domain>/<local>/Maildir`
    /// for INBOX, `…/Maildir/.<Name>` for other folders (`A/B` → `.A.B`).
    pub fn maildir(&self, address: &str, folder: &str) -> PathBuf {
        let address = address
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_lowercase();
        let (local, domain) = match address.rfind('@') {
            Some(i) => (&address[..i], &address[i + 1..]),
            None => (address.as_str(), ""),
        };
        let root = self.maildir_root.join(domain).join(local).join("Maildir");
        if folder.eq_ignore_ascii_case("INBOX") || folder.is_empty() {
            root
        } else {
            root.join(format!(".{}", mutf7_encode(folder).replace('/', ".")))
        }
    }

    /// Raw messages now in that folder (`new/` and `cur/`), in delivery order.
    pub fn messages(&self, address: &str, folder: &str) -> Vec<Vec<u8>> {
        let dir = self.maildir(address, folder);
        let mut files = maildir_files(&dir);
        // Delivery order: Dovecot names files `<secs>.M<usecs>P<pid>.<host>`,
        // the microseconds not zero-padded, so compare them as numbers.
        files.sort_by_key(|(name, _)| (delivery_key(name), name.clone()));
        // A file can move from new/ to cur/ (renamed) while we read: retry it there.
        files
            .into_iter()
            .filter_map(|(name, path)| {
                fs::read(&path).ok().or_else(|| {
                    let base = name.split(':').next().unwrap_or(&name).to_string();
                    fs::read_dir(dir.join("cur")).ok()?.flatten().find_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        (n.split(':').next() == Some(base.as_str()))
                            .then(|| fs::read(e.path()).ok())
                            .flatten()
                    })
                })
            })
            .collect()
    }

    /// Waits until Postfix's queue holds no message for any of `addresses`:
    /// everything accepted for them has been delivered. Mail a process sent
    /// over SMTP is in the queue from the server's 250 on, so after that
    /// process ends this is the moment its mail can be looked at. Other
    /// tests' mail in the same queue does not matter.
    pub fn wait_until_delivered(
        &self,
        addresses: &[String],
        timeout: Duration,
    ) -> Result<(), String> {
        let bin = ["/usr/sbin/postqueue", "postqueue"]
            .into_iter()
            .find(|b| !b.starts_with('/') || Path::new(b).exists())
            .unwrap_or("postqueue");
        let wanted: Vec<String> = addresses
            .iter()
            .map(|a| format!("\"{}\"", a.to_lowercase()))
            .collect();
        let deadline = Instant::now() + timeout;
        loop {
            let out = std::process::Command::new(bin)
                .arg("-c")
                .arg(self.dir.join("postfix"))
                .arg("-j")
                .output()
                .map_err(|e| format!("{bin} -j: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{bin} -j failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let queue = String::from_utf8_lossy(&out.stdout).to_lowercase();
            if !wanted.iter().any(|w| queue.contains(w.as_str())) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "mail still queued after {}s: {}",
                    timeout.as_secs(),
                    queue.trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls the Maildir (not IMAP) every 20 ms until at least `n` messages are
    /// there or `timeout` passes; returns what is there at that point.
    pub fn wait_for_messages(
        &self,
        address: &str,
        folder: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages(address, folder);
            if msgs.len() >= n || Instant::now() >= deadline {
                return msgs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Delivers `raw` through Postfix SMTP on loopback (envelope `from`, `to`).
    /// Bare LF line ends become CRLF; lines are dot-stuffed. Any non-2xx/3xx
    /// reply (e.g. `554 5.7.1 … Relay access denied` for an outside recipient)
    /// is an `Err` with the command and the server's text.
    pub fn smtp_deliver(&self, from: &str, to: &[&str], raw: &[u8]) -> Result<(), String> {
        let mut c = Smtp::open(&self.smtp_addr())?;
        let result = c
            .start(from, to, raw)
            .and_then(|()| c.finish(&smtp_data(raw)));
        if result.is_err() {
            let _ = c.send(b"RSET\r\n");
        }
        c.quit();
        result
    }

    /// An OAuth2 access token for `user` that the test Dovecot (IMAP, and
    /// Postfix's SMTP AUTH through it) accepts until `lifetime` from now: a
    /// JWT signed with the stack's key, as a provider's token service would
    /// issue it. A negative lifetime gives a token that has expired.
    pub fn oauth2_token(&self, user: &str, lifetime: i64) -> String {
        sign_oauth2_token(&self.oauth2_key, user, lifetime)
    }

    /// Like [`smtp_deliver`](Self::smtp_deliver), but as a mail client of
    /// `from` does it: logged in (AUTH PLAIN with the stack's password), so
    /// Postfix notes `(Authenticated sender: from)` in its Received line.
    pub fn smtp_submit(&self, from: &str, to: &[&str], raw: &[u8]) -> Result<(), String> {
        use base64::Engine as _;
        let mut c = Smtp::open(&self.smtp_addr())?;
        let login = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{from}\0{}", self.password));
        let result = c
            .expect("AUTH", Some(format!("AUTH PLAIN {login}\r\n").as_bytes()))
            .and_then(|_| c.start(from, to, raw))
            .and_then(|()| c.finish(&smtp_data(raw)));
        c.quit();
        result
    }

    /// Puts `raw` into `address`'s `folder` with IMAP APPEND (creating the
    /// folder if the server says TRYCREATE), with an optional INTERNALDATE like
    /// `"01-Nov-2026 10:00:00 +0100"` and flags like `["\\Seen"]`.
    pub fn imap_append(
        &self,
        address: &str,
        folder: &str,
        raw: &[u8],
        internal_date: Option<&str>,
        flags: &[&str],
    ) -> Result<(), String> {
        let mut c = Imap::login(&self.imap_addr(), address, &self.password, IO_TIMEOUT)?;
        let mailbox = imap_quote(&mutf7_encode(folder));
        let mut cmd = format!("APPEND {mailbox}");
        if !flags.is_empty() {
            cmd.push_str(&format!(" ({})", flags.join(" ")));
        }
        if let Some(d) = internal_date {
            cmd.push_str(&format!(" {}", imap_quote(d)));
        }
        let r = c.append(&cmd, raw);
        let r = match r {
            Err(e) if e.contains("TRYCREATE") => {
                c.command(&format!("CREATE {mailbox}"))?;
                c.append(&cmd, raw)
            }
            r => r,
        };
        c.logout();
        r.map(|_| ())
    }

    /// What a person's mail client does to one message: `SELECT folder`,
    /// then `cmd` (e.g. `UID MOVE 3 Klachten` or `UID STORE 3 +FLAGS
    /// ($Klacht)`) as `address`, over its own IMAP session.
    pub fn imap_act(&self, address: &str, folder: &str, cmd: &str) -> Result<(), String> {
        let mut c = Imap::login(&self.imap_addr(), address, &self.password, IO_TIMEOUT)?;
        let r = c
            .command(&format!("SELECT {}", imap_quote(&mutf7_encode(folder))))
            .and_then(|_| c.command(cmd));
        c.logout();
        r.map(|_| ())
    }

    /// `(uid, flags)` of every message in `folder` (`UID FETCH 1:* (FLAGS)`),
    /// sorted by UID; the folder is opened read-only (EXAMINE). The
    /// session-dependent `\Recent` is left out.
    pub fn imap_flags(
        &self,
        address: &str,
        folder: &str,
    ) -> Result<Vec<(u32, Vec<String>)>, String> {
        let mut c = Imap::login(&self.imap_addr(), address, &self.password, IO_TIMEOUT)?;
        let r = (|| {
            let examine = c.command(&format!("EXAMINE {}", imap_quote(&mutf7_encode(folder))))?;
            let exists = examine
                .iter()
                .find_map(|l| {
                    l.strip_prefix("* ")
                        .and_then(|r| r.strip_suffix(" EXISTS"))
                        .and_then(|n| n.parse::<u32>().ok())
                })
                .unwrap_or(0);
            if exists == 0 {
                return Ok(Vec::new());
            }
            let lines = c.command("UID FETCH 1:* (FLAGS)")?;
            let mut out = Vec::new();
            for l in lines
                .iter()
                .filter(|l| l.starts_with("* ") && l.contains(" FETCH "))
            {
                let uid = fetch_item(l, "UID").and_then(|u| u.parse().ok());
                let flags = fetch_item(l, "FLAGS");
                if let (Some(uid), Some(flags)) = (uid, flags) {
                    let flags = flags.trim_matches(|c| c == '(' || c == ')');
                    let flags = flags
                        .split_whitespace()
                        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                        .map(str::to_string)
                        .collect();
                    out.push((uid, flags));
                }
            }
            out.sort_by_key(|(u, _)| *u);
            Ok(out)
        })();
        c.logout();
        r
    }
}

// ---------------------------------------------------------------------------
// helpers

fn mailstack_script() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("KLACHTD_MAILSTACK_SCRIPT") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/mailstack")];
    // This file is <repo>/tests/it/support/mailstack.rs.
    let this = Path::new(file!());
    let this = if this.is_absolute() {
        this.to_path_buf()
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(this)
    };
    if let Some(repo) = this.ancestors().nth(4) {
        candidates.push(repo.join("scripts/mailstack"));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| format!("scripts/mailstack not found (looked at {candidates:?}); set {MAILSTACK_DIR_VAR} or KLACHTD_MAILSTACK_SCRIPT"))
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// An OAuth2 access token for `user`, valid until `lifetime` seconds from
/// now (negative: already expired), signed HS256 with `key_b64` (a stack's
/// [`MailStack::oauth2_key`]): what [`MailStack::oauth2_token`] gives, and
/// what the test token service (`support::token_service`) issues.
pub fn sign_oauth2_token(key_b64: &str, user: &str, lifetime: i64) -> String {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .expect("the OAuth2 key is base64");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "sub": user,
        "email": user,
        "iat": now.min(now + lifetime),
        "nbf": now.min(now + lifetime),
        "exp": now + lifetime,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&key),
    )
    .expect("a signed token")
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

/// IMAP modified UTF-7 (RFC 3501 5.1.3) for folder names.
pub fn mutf7_encode(name: &str) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    fn flush(out: &mut String, buf: &mut Vec<u16>) {
        if buf.is_empty() {
            return;
        }
        let bytes: Vec<u8> = buf.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let k = chunk.len() + 1; // base64 chars carrying data, no padding
            for i in 0..k {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out.push('-');
        buf.clear();
    }
    let mut out = String::new();
    let mut buf: Vec<u16> = Vec::new();
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut out, &mut buf);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut tmp = [0u16; 2];
            buf.extend_from_slice(ch.encode_utf16(&mut tmp));
        }
    }
    flush(&mut out, &mut buf);
    out
}

fn imap_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Value after `name` in a FETCH response line: an atom, or a parenthesised list.
fn fetch_item(line: &str, name: &str) -> Option<String> {
    let start = line.find('(')?;
    let body = &line[start + 1..];
    let mut rest = body;
    loop {
        let rest_trim = rest.trim_start();
        if rest_trim.is_empty() || rest_trim.starts_with(')') {
            return None;
        }
        let (key, after) = rest_trim.split_at(rest_trim.find(' ')?);
        let after = after.trim_start();
        let (value, remaining) = if after.starts_with('(') {
            let mut depth = 0;
            let mut end = after.len();
            for (i, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            (&after[..end], &after[end..])
        } else {
            let end = after.find([' ', ')']).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value.to_string());
        }
        rest = remaining;
    }
}

/// DATA payload: CRLF line ends, dot-stuffed, terminated by `.\r\n`.
pub fn smtp_data(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40 + 8);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in raw {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        if out.ends_with(b"\r") {
            out.push(b'\n');
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Names and paths of the messages in a Maildir folder (`new/` and `cur/`),
/// in no particular order. A message being moved from `new/` to `cur/`
/// can be listed twice (its name in `cur/` has a `:2,…` suffix).
pub fn maildir_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    files.push((name, e.path()));
                }
            }
        }
    }
    files
}

/// A loopback connection with read and write timeouts, and without Nagle's
/// delay (the bench times the moment a message's last byte is written).
fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    Ok(s)
}

/// An SMTP session. [`MailStack::smtp_deliver`] is the whole of it; the
/// bench takes the steps itself to time the end of DATA.
pub struct Smtp {
    w: TcpStream,
    r: BufReader<TcpStream>,
    /// The server's EHLO reply.
    ehlo: String,
}

impl Smtp {
    /// Connects, reads the greeting and says EHLO.
    pub fn open(addr: &str) -> Result<Smtp, String> {
        let w = connect(addr, IO_TIMEOUT)?;
        let r = BufReader::new(w.try_clone().map_err(|e| e.to_string())?);
        let mut c = Smtp {
            w,
            r,
            ehlo: String::new(),
        };
        c.expect("greeting", None)?;
        c.ehlo = c.expect("EHLO", Some(b"EHLO klachtd-tests\r\n"))?;
        Ok(c)
    }

    fn has(&self, ext: &str) -> bool {
        self.ehlo.lines().skip(1).any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(ext))
        })
    }

    /// MAIL FROM (with `BODY=8BITMIME` and `SMTPUTF8` where `raw` and the
    /// addresses need them and the server offers them), RCPT TO for each of
    /// `to`, DATA: the server then waits for the message.
    pub fn start(&mut self, from: &str, to: &[&str], raw: &[u8]) -> Result<(), String> {
        if to.is_empty() {
            return Err("smtp_deliver: no recipients".into());
        }
        let mut params = String::new();
        if raw.iter().any(|b| *b >= 0x80) && self.has("8BITMIME") {
            params.push_str(" BODY=8BITMIME");
        }
        if (!from.is_ascii() || to.iter().any(|t| !t.is_ascii())) && self.has("SMTPUTF8") {
            params.push_str(" SMTPUTF8");
        }
        self.expect(
            "MAIL FROM",
            Some(format!("MAIL FROM:<{from}>{params}\r\n").as_bytes()),
        )?;
        for rcpt in to {
            self.expect("RCPT TO", Some(format!("RCPT TO:<{rcpt}>\r\n").as_bytes()))?;
        }
        self.expect("DATA", Some(b"DATA\r\n"))?;
        Ok(())
    }

    /// Writes the message (`payload` from [`smtp_data`]) and reads the
    /// server's verdict on it.
    pub fn finish(&mut self, payload: &[u8]) -> Result<(), String> {
        self.expect("end of DATA", Some(payload)).map(|_| ())
    }

    /// QUIT, without waiting for the answer.
    pub fn quit(mut self) {
        let _ = self.send(b"QUIT\r\n");
    }

    fn send(&mut self, data: &[u8]) -> Result<(), String> {
        self.w
            .write_all(data)
            .map_err(|e| format!("SMTP write: {e}"))
    }

    /// Sends `cmd` (if any), reads a (multi-line) reply; Err unless 2xx/3xx.
    fn expect(&mut self, what: &str, cmd: Option<&[u8]>) -> Result<String, String> {
        if let Some(cmd) = cmd {
            self.send(cmd)?;
        }
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .r
                .read_line(&mut line)
                .map_err(|e| format!("SMTP {what}: read: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "SMTP {what}: connection closed; got so far: {text:?}"
                ));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            text.push_str(line);
            text.push('\n');
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        let shown = match cmd {
            Some(c) if c.len() < 200 => String::from_utf8_lossy(c).trim_end().to_string(),
            _ => what.to_string(),
        };
        match text.as_bytes().first() {
            Some(b'2') | Some(b'3') => Ok(text),
            _ => Err(format!("{shown} refused: {}", text.trim_end())),
        }
    }
}

/// An IMAP session: a command and its tagged answer at a time. Its socket
/// and reader are open to a client that does more (the bench's IDLE, its
/// `UID FETCH` of a whole backlog).
pub struct Imap {
    pub w: TcpStream,
    /// Large: the bench reads a whole backlog through it.
    pub r: BufReader<TcpStream>,
    pub tag: u32,
}

impl Imap {
    /// Connects (every read and write may take up to `timeout`) and logs in.
    pub fn login(
        addr: &str,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<Imap, String> {
        let w = connect(addr, timeout)?;
        let r = BufReader::with_capacity(256 * 1024, w.try_clone().map_err(|e| e.to_string())?);
        let mut c = Imap { w, r, tag: 0 };
        let greeting = c.read_line()?;
        if !greeting.starts_with("* OK") {
            return Err(format!("IMAP greeting: {greeting}"));
        }
        c.command(&format!(
            "LOGIN {} {}",
            imap_quote(user),
            imap_quote(password)
        ))
        .map_err(|e| format!("IMAP LOGIN {user}: {e}"))?;
        Ok(c)
    }

    /// One response line, with any `{n}` literals inlined.
    pub fn read_line(&mut self) -> Result<String, String> {
        self.read_response(true).map(|(line, _)| line)
    }

    /// One response line and the bytes of its `{n}` literals, which are
    /// inlined (`keep`) or read and dropped.
    pub fn read_response(&mut self, keep: bool) -> Result<(String, usize), String> {
        let mut out = String::new();
        let mut literals = 0;
        let mut buf = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self
                .r
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("IMAP read: {e}"))?;
            if n == 0 {
                return Err(format!("IMAP connection closed; got so far: {out:?}"));
            }
            let line = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            out.push_str(&line);
            let literal = line
                .strip_suffix('}')
                .and_then(|l| l.rfind('{').map(|i| &l[i + 1..]))
                .and_then(|n| n.trim_end_matches('+').parse::<usize>().ok());
            match literal {
                Some(len) => {
                    buf.resize(len, 0);
                    self.r
                        .read_exact(&mut buf)
                        .map_err(|e| format!("IMAP read literal: {e}"))?;
                    literals += len;
                    if keep {
                        out.push_str(&String::from_utf8_lossy(&buf));
                    }
                }
                None => return Ok((out, literals)),
            }
        }
    }

    /// Writes `s` as it is (a command line with its tag, `DONE`).
    pub fn send(&mut self, s: &str) -> Result<(), String> {
        self.w
            .write_all(s.as_bytes())
            .map_err(|e| format!("IMAP write: {e}"))
    }

    pub fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("k{}", self.tag)
    }

    /// Reads until the tagged reply; Ok(untagged lines) on OK, Err otherwise.
    fn finish(&mut self, tag: &str, cmd: &str) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line()?;
            if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                return if rest.starts_with("OK") {
                    Ok(lines)
                } else {
                    Err(format!("{cmd}: {rest}"))
                };
            }
            lines.push(line);
        }
    }

    /// `cmd` with a fresh tag; its untagged answer lines when it ends in OK.
    pub fn command(&mut self, cmd: &str) -> Result<Vec<String>, String> {
        let tag = self.next_tag();
        self.send(&format!("{tag} {cmd}\r\n"))?;
        let shown = if cmd.starts_with("LOGIN ") {
            "LOGIN"
        } else {
            cmd
        };
        self.finish(&tag, shown)
    }

    fn append(&mut self, cmd: &str, raw: &[u8]) -> Result<Vec<String>, String> {
        let tag = self.next_tag();
        self.send(&format!("{tag} {cmd} {{{}}}\r\n", raw.len()))?;
        let line = self.read_line()?;
        if !line.starts_with('+') {
            return Err(format!(
                "{cmd}: {}",
                line.strip_prefix(&format!("{tag} ")).unwrap_or(&line)
            ));
        }
        self.w
            .write_all(raw)
            .map_err(|e| format!("IMAP write: {e}"))?;
        self.w
            .write_all(b"\r\n")
            .map_err(|e| format!("IMAP write: {e}"))?;
        self.finish(&tag, cmd)
    }

    pub fn logout(&mut self) {
        let tag = self.next_tag();
        let _ = self.send(&format!("{tag} LOGOUT\r\n"));
        let _ = self.finish(&tag, "LOGOUT");
    }
}

/// (seconds, microseconds) from a Dovecot Maildir file name; (0, 0) for
/// names of another shape, which then sort by name.
fn delivery_key(name: &str) -> (u64, u64) {
    let mut parts = name.split('.');
    let secs = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let usecs = parts
        .next()
        .and_then(|p| p.strip_prefix('M'))
        .map(|p| {
            p.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    (secs, usecs)
}

#[cfg(test)]
mod delivery_order {
    #[test]
    fn microseconds_compare_as_numbers() {
        let a = super::delivery_key("1795480827.M95673P25638.vm,S=1");
        let b = super::delivery_key("1795480827.M127903P25640.vm,S=1");
        assert!(a < b);
        assert_eq!(super::delivery_key("other"), (0, 0));
    }
}
