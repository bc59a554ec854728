//! SMTP submission: a small client of our own, because exactly-once needs
//! control over the one moment that matters.
//!
//! MAIL, RCPT, DATA and the whole body go out first; then the caller's
//! `commit` records in the database that the final dot is about to be
//! written, and returns a last step that runs synchronously, on this very
//! thread, immediately before the dot (the outbox writes one byte to a
//! marker file it opened earlier). A crash before the last step means the
//! server never got the dot and discards the message: safe to send again.
//! A crash after the dot's system call means the dot is in the kernel's
//! socket buffer, which is transmitted even when the process dies: the
//! message counts as sent. So a restart never sends twice, and the window
//! for a lost message is the microsecond or two between the last step's
//! system call and the dot's.
//!
//! Failures are classified as transient (4xx, network: retry with backoff)
//! or permanent (5xx: recorded, never retried).

use std::future::Future;

/// Runs synchronously right before the final dot is written; what it
/// returns runs right after the dot is written, on tokio's blocking pool
/// while the reply is awaited (it may fsync: the other sessions of this
/// task go on meanwhile), and is finished before `send` returns.
pub type LastStep = Box<dyn FnOnce() -> Result<Option<AfterDot>> + Send>;
/// See [`LastStep`].
pub type AfterDot = Box<dyn FnOnce() + Send>;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::config::{Auth, Security, SmtpSettings};
use crate::domain::types::EmailAddress;
use crate::mail::imap::Stream;
use crate::mail::oauth2::{self, TokenSource};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server would not take mail at all: no connection, or a refusal
    /// before any recipient (greeting, EHLO, STARTTLS, AUTH, MAIL FROM).
    /// That says nothing about this message: a blocklist, a wrong port, a
    /// relay that wants a login. Every message waits until it is fixed.
    #[error("the SMTP server refused the session: {0}")]
    Session(String),
    #[error("transient SMTP failure: {0}")]
    Transient(String),
    #[error("permanent SMTP failure: {0}")]
    Permanent(String),
    /// The final dot went out but no answer came back: the server may well
    /// have the message. Sending again could deliver it twice.
    #[error("no answer after the end of data: {0}")]
    Unconfirmed(String),
}

#[derive(Debug)]
struct Reply {
    code: u16,
    text: String,
}

impl Reply {
    fn error(&self, during: &str) -> SendError {
        let m = format!("{during}: {} {}", self.code, self.text);
        if (500..600).contains(&self.code) {
            SendError::Permanent(m)
        } else {
            SendError::Transient(m)
        }
    }
}

/// Longest SMTP reply line taken, in bytes.
const MAX_LINE: usize = 4096;
/// Most lines in one (multi-line) SMTP reply.
const MAX_REPLY_LINES: usize = 100;

struct Conn<S> {
    io: BufStream<S>,
    timeout: Duration,
    extensions: Vec<String>,
}

fn transient(e: impl std::fmt::Display) -> SendError {
    SendError::Transient(e.to_string())
}

/// Any failure before a recipient was named is about the session, not the
/// message, whatever its reply code.
fn session(e: SendError) -> SendError {
    match e {
        SendError::Session(m)
        | SendError::Transient(m)
        | SendError::Permanent(m)
        | SendError::Unconfirmed(m) => SendError::Session(m),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(s: S, timeout: Duration) -> Self {
        Conn {
            io: BufStream::new(s),
            timeout,
            extensions: Vec::new(),
        }
    }

    /// One reply line, at most [`MAX_LINE`] bytes (RFC 5321 allows 512;
    /// more is a broken or hostile server, not a reply to wait out).
    async fn line(&mut self) -> Result<String, SendError> {
        let mut buf = Vec::new();
        let read = async {
            let mut limited = (&mut self.io).take(MAX_LINE as u64 + 1);
            limited.read_until(b'\n', &mut buf).await
        };
        let n = tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| transient("SMTP server did not answer in time"))?
            .map_err(transient)?;
        if n == 0 {
            return Err(transient("SMTP server closed the connection"));
        }
        if buf.len() > MAX_LINE {
            return Err(transient(format!(
                "SMTP server sent a reply line longer than {MAX_LINE} bytes"
            )));
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    async fn reply(&mut self) -> Result<Reply, SendError> {
        let mut text = Vec::new();
        loop {
            if text.len() >= MAX_REPLY_LINES {
                return Err(transient(format!(
                    "SMTP server sent a reply of more than {MAX_REPLY_LINES} lines"
                )));
            }
            let line = self.line().await?;
            let line = line.trim_end();
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| transient(format!("not an SMTP reply: {line:?}")))?;
            text.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply {
                    code,
                    text: text.join(" "),
                });
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        tokio::time::timeout(self.timeout * 4, async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        })
        .await
        .map_err(|_| transient("SMTP write timed out"))?
        .map_err(transient)
    }

    async fn command(&mut self, line: &str) -> Result<Reply, SendError> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.reply().await
    }

    async fn expect(&mut self, line: &str, ok: &[u16], during: &str) -> Result<Reply, SendError> {
        let r = self.command(line).await?;
        if ok.contains(&r.code) {
            Ok(r)
        } else {
            Err(r.error(during))
        }
    }

    async fn greet_and_ehlo(&mut self, hello: &str) -> Result<(), SendError> {
        let greeting = self.reply().await?;
        if greeting.code != 220 {
            return Err(greeting.error("greeting"));
        }
        self.ehlo(hello).await
    }

    async fn ehlo(&mut self, hello: &str) -> Result<(), SendError> {
        self.write(format!("EHLO {hello}\r\n").as_bytes()).await?;
        let mut lines = Vec::new();
        loop {
            if lines.len() >= MAX_REPLY_LINES {
                return Err(transient("EHLO answer too long"));
            }
            let line = self.line().await?;
            let l = line.trim_end().to_string();
            if !l.starts_with("250") {
                return Err(SendError::Transient(format!("EHLO refused: {l}")));
            }
            let last = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l.get(4..).unwrap_or("").to_ascii_uppercase());
            if last {
                break;
            }
        }
        self.extensions = lines.into_iter().skip(1).collect();
        Ok(())
    }

    fn has(&self, ext: &str) -> bool {
        self.extensions
            .iter()
            .any(|e| e.split_whitespace().next() == Some(ext))
    }

    fn auth_mechanisms(&self) -> Vec<String> {
        self.extensions
            .iter()
            .filter(|e| e.starts_with("AUTH ") || e.starts_with("AUTH="))
            .flat_map(|e| {
                e[5..]
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

type Boxed = Conn<Box<dyn Stream>>;

pub struct Smtp {
    settings: SmtpSettings,
    hello: String,
    conn: Mutex<Option<(Boxed, Instant)>>,
}

/// A connection unused this long is checked with NOOP before reuse.
const IDLE_CHECK: Duration = Duration::from_secs(20);

impl Smtp {
    /// `hello` is the name given in EHLO (our Message-ID domain).
    pub fn new(s: &SmtpSettings, hello: &str) -> Smtp {
        Smtp {
            settings: s.clone(),
            hello: hello.to_string(),
            conn: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Boxed, SendError> {
        let s = &self.settings;
        let tcp = tokio::time::timeout(s.timeout, TcpStream::connect((s.host.as_str(), s.port)))
            .await
            .map_err(|_| {
                transient(format!(
                    "no connection to {}:{} within {}s",
                    s.host,
                    s.port,
                    s.timeout.as_secs()
                ))
            })?
            .map_err(|e| transient(format!("cannot connect to {}:{}: {e}", s.host, s.port)))?;
        let _ = tcp.set_nodelay(true);
        let mut conn: Boxed = match s.security {
            Security::None => {
                let mut c: Boxed = Conn::new(Box::new(tcp), s.timeout);
                c.greet_and_ehlo(&self.hello).await?;
                c
            }
            Security::Tls => {
                let tls = crate::mail::imap::tls_connect(tcp, &s.host, s.timeout)
                    .await
                    .map_err(|e| transient(format!("{e:#}")))?;
                let mut c: Boxed = Conn::new(Box::new(tls), s.timeout);
                c.greet_and_ehlo(&self.hello).await?;
                c
            }
            Security::Starttls => {
                let mut plain = Conn::new(tcp, s.timeout);
                plain.greet_and_ehlo(&self.hello).await?;
                if !plain.has("STARTTLS") {
                    return Err(transient(
                        "the SMTP server does not offer STARTTLS (smtp.security)",
                    ));
                }
                plain.expect("STARTTLS", &[220], "STARTTLS").await?;
                let tcp = plain.io.into_inner();
                let tls = crate::mail::imap::tls_connect(tcp, &s.host, s.timeout)
                    .await
                    .map_err(|e| transient(format!("{e:#}")))?;
                let mut c: Boxed = Conn::new(Box::new(tls), s.timeout);
                c.ehlo(&self.hello).await?;
                c
            }
        };
        self.login(&mut conn).await?;
        Ok(conn)
    }

    /// AUTH as `smtp.auth` says. A refused login may be fixed by the
    /// operator: the caller retries, slowly.
    async fn login(&self, conn: &mut Boxed) -> Result<(), SendError> {
        let s = &self.settings;
        let login_failed =
            |e: SendError| transient(format!("SMTP login as {} failed: {e}", s.username));
        let password = match &s.auth {
            Auth::None => return Ok(()),
            Auth::OAuth2(source) => return self.oauth2_login(conn, source).await,
            Auth::Password(p) => p,
        };
        let mechs = conn.auth_mechanisms();
        if mechs.iter().any(|m| m == "PLAIN") || mechs.is_empty() {
            let token = base64(format!("\0{}\0{}", s.username, password.expose()).as_bytes());
            conn.expect(&format!("AUTH PLAIN {token}"), &[235], "AUTH")
                .await
                .map_err(login_failed)?;
        } else {
            conn.expect("AUTH LOGIN", &[334], "AUTH")
                .await
                .map_err(login_failed)?;
            conn.expect(&base64(s.username.as_bytes()), &[334], "AUTH")
                .await
                .map_err(login_failed)?;
            conn.expect(&base64(password.expose().as_bytes()), &[235], "AUTH")
                .await
                .map_err(login_failed)?;
        }
        Ok(())
    }

    /// XOAUTH2 (or OAUTHBEARER, when that is all the server offers). The
    /// response goes on a line of its own: a token can be longer than a
    /// command line may be. A refused token is renewed and tried once more.
    async fn oauth2_login(&self, conn: &mut Boxed, source: &TokenSource) -> Result<(), SendError> {
        let s = &self.settings;
        let mechs = conn.auth_mechanisms();
        let offered = (!mechs.is_empty()).then(|| mechs.iter().map(String::as_str));
        let mechanism = oauth2::mechanism(offered);
        let token_failed = |e: anyhow::Error| transient(format!("SMTP login: {e:#}"));
        let mut token = source.token().await.map_err(token_failed)?;
        let mut renewed = false;
        loop {
            let response = match mechanism {
                "OAUTHBEARER" => oauth2::oauthbearer(&s.username, &token),
                _ => oauth2::xoauth2(&s.username, &token),
            };
            conn.expect(&format!("AUTH {mechanism}"), &[334], "AUTH")
                .await?;
            let mut reply = conn.command(&base64(response.as_bytes())).await?;
            if reply.code == 334 {
                // The reason for a refusal, as a challenge: answer empty.
                reply = conn.command("").await?;
            }
            if reply.code == 235 {
                return Ok(());
            }
            if renewed {
                return Err(transient(format!(
                    "SMTP login as {} with {} refused: {} {}; {}",
                    s.username,
                    source.describe(),
                    reply.code,
                    reply.text,
                    oauth2::server_hint(source.provider(), "SMTP")
                )));
            }
            tracing::info!(
                mechanism,
                "the SMTP server refused the token; asking for a new one"
            );
            token = source.renew(&token).await.map_err(token_failed)?;
            renewed = true;
        }
    }

    /// Sends one message. `commit` runs after the whole body is out and
    /// before the final dot; if it (or the last step it returns) fails, the
    /// message is not sent.
    pub async fn send<F>(
        &self,
        from: &EmailAddress,
        to: &EmailAddress,
        raw: &[u8],
        commit: F,
    ) -> Result<(), SendError>
    where
        F: Future<Output = Result<LastStep>>,
    {
        let mut guard = self.conn.lock().await;
        let reusable = match guard.as_mut() {
            Some((c, used)) => {
                used.elapsed() < IDLE_CHECK || c.expect("NOOP", &[250], "NOOP").await.is_ok()
            }
            None => false,
        };
        if !reusable {
            *guard = Some((self.connect().await.map_err(session)?, Instant::now()));
        }
        let Some((conn, used)) = guard.as_mut() else {
            return Err(transient("no SMTP connection"));
        };
        let result = transaction(conn, (from, to), raw, commit).await;
        match &result {
            Ok(()) => *used = Instant::now(),
            // A refusal leaves the session usable; anything else: start afresh.
            Err(SendError::Permanent(_)) => {
                if conn.expect("RSET", &[250], "RSET").await.is_err() {
                    *guard = None;
                }
            }
            Err(SendError::Session(_) | SendError::Transient(_) | SendError::Unconfirmed(_)) => {
                *guard = None
            }
        }
        result
    }

    /// Connects and authenticates without sending (check-config).
    pub async fn test_connection(&self) -> Result<()> {
        let mut c = self.connect().await.map_err(|e| anyhow!("{e}"))?;
        let _ = c.command("QUIT").await;
        Ok(())
    }
}

/// One mail on an open session: envelope, body, `commit`, final dot.
async fn transaction(
    conn: &mut Boxed,
    (from, to): (&EmailAddress, &EmailAddress),
    raw: &[u8],
    commit: impl Future<Output = Result<LastStep>>,
) -> Result<(), SendError> {
    let body8 = raw.iter().any(|b| *b >= 0x80);
    let mut mail = format!("MAIL FROM:<{from}>");
    if body8 && conn.has("8BITMIME") {
        mail.push_str(" BODY=8BITMIME");
    }
    let utf8 = conn.has("SMTPUTF8");
    let rcpt = envelope_address(to, utf8)?;
    if utf8 && !(from.as_str().is_ascii() && rcpt.is_ascii()) {
        mail.push_str(" SMTPUTF8");
    }
    let rcpt = format!("RCPT TO:<{rcpt}>");
    if conn.has("PIPELINING") {
        envelope_pipelined(conn, &mail, &rcpt).await?;
    } else {
        conn.expect(&mail, &[250], "MAIL FROM")
            .await
            .map_err(session)?;
        // From here on a 5xx is the server's verdict on this message.
        conn.expect(&rcpt, &[250, 251], "RCPT TO").await?;
        conn.expect("DATA", &[354], "DATA").await?;
    }
    conn.write(&dot_stuff(raw)).await?;
    let last_step = commit
        .await
        .map_err(|e| transient(format!("not sent: could not record the send ({e:#})")))?;
    let after_dot =
        last_step().map_err(|e| transient(format!("not sent: could not mark the send ({e:#})")))?;
    // Same thread, no await point in between when the socket is writable;
    // unconstrained, so tokio's cooperative budget cannot make this poll
    // yield to other tasks here of all places.
    let written = tokio::task::unconstrained(conn.write(b".\r\n")).await;
    let after_dot = after_dot.map(tokio::task::spawn_blocking);
    let reply = match written {
        Ok(()) => conn
            .reply()
            .await
            .map_err(|e| SendError::Unconfirmed(e.to_string())),
        Err(e) => Err(e),
    };
    // Whatever came of it, the step after the dot is finished first.
    if let Some(step) = after_dot {
        let _ = step.await;
    }
    let r = reply?;
    if r.code == 250 {
        Ok(())
    } else {
        Err(r.error("end of data"))
    }
}

/// MAIL, RCPT and DATA in one write (RFC 2920), then their three replies,
/// judged in order as the one-by-one path judges them. All three are read
/// whatever they say, so a session kept after a refused recipient stays
/// in step.
async fn envelope_pipelined(conn: &mut Boxed, mail: &str, rcpt: &str) -> Result<(), SendError> {
    conn.write(format!("{mail}\r\n{rcpt}\r\nDATA\r\n").as_bytes())
        .await?;
    let m = conn.reply().await?;
    let r = conn.reply().await?;
    let d = conn.reply().await?;
    if m.code != 250 {
        return Err(session(m.error("MAIL FROM")));
    }
    if d.code == 354 && !matches!(r.code, 250 | 251) {
        // A server that opened DATA with no recipient: end it empty.
        conn.write(b".\r\n").await?;
        conn.reply().await?;
    }
    if !matches!(r.code, 250 | 251) {
        return Err(r.error("RCPT TO"));
    }
    if d.code != 354 {
        return Err(d.error("DATA"));
    }
    Ok(())
}

/// `to` as the envelope can carry it: as it is when it is ASCII or the
/// server takes SMTPUTF8 (RFC 6531); else with its domain in ASCII
/// (IDNA A-labels). A non-ASCII local part without SMTPUTF8 cannot be
/// sent at all: a verdict on this message, said in words.
fn envelope_address(to: &EmailAddress, smtputf8: bool) -> Result<String, SendError> {
    let a = to.as_str();
    if a.is_ascii() || smtputf8 {
        return Ok(a.to_string());
    }
    let (local, domain) = a.rsplit_once('@').unwrap_or((a, ""));
    if !local.is_ascii() {
        return Err(SendError::Permanent(
            "the recipient's address has non-ASCII characters before the @, and the SMTP \
             server does not offer SMTPUTF8"
                .into(),
        ));
    }
    let domain = idna::domain_to_ascii(domain).map_err(|_| {
        SendError::Permanent("the recipient's domain is not a valid international domain".into())
    })?;
    Ok(format!("{local}@{domain}"))
}

/// CRLF line endings, dot-stuffed, ending in CRLF (the final dot is not added).
fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 50 + 4);
    let mut at_line_start = true;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
                at_line_start = true;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endless_reply_lines_and_replies_are_cut_off() {
        use tokio::io::AsyncWriteExt as _;
        for hostile in [
            format!("250 {}\r\n", "x".repeat(100_000)).into_bytes(),
            "250-more\r\n".repeat(1000).into_bytes(),
        ] {
            let (client, mut server) = tokio::io::duplex(1 << 20);
            let mut conn = Conn::new(client, Duration::from_secs(5));
            let feed = tokio::spawn(async move {
                let _ = server.write_all(&hostile).await;
                server
            });
            let r = conn.reply().await;
            assert!(matches!(r, Err(SendError::Transient(_))), "{r:?}");
            drop(feed);
        }
        // An ordinary multi-line reply still reads.
        let (client, mut server) = tokio::io::duplex(4096);
        server.write_all(b"250-a\r\n250 b\r\n").await.unwrap();
        let mut conn = Conn::new(client, Duration::from_secs(5));
        assert_eq!(conn.reply().await.unwrap().text, "a b");
    }

    /// A scripted server on one side of a pipe: reads what the client
    /// writes, answers with `replies` in turn as each write arrives.
    #[tokio::test]
    async fn pipelined_envelope_reads_all_three_replies_and_stays_in_step() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut boxed: Boxed = Conn::new(Box::new(client), Duration::from_secs(5));
        boxed.extensions = vec!["PIPELINING".into()];
        let srv = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = server.read(&mut buf).await.unwrap();
            let first = String::from_utf8_lossy(&buf[..n]).into_owned();
            // A refused recipient, and DATA refused for want of one.
            server
                .write_all(
                    b"250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n",
                )
                .await
                .unwrap();
            let n = server.read(&mut buf).await.unwrap();
            let second = String::from_utf8_lossy(&buf[..n]).into_owned();
            server.write_all(b"250 2.0.0 Ok\r\n").await.unwrap();
            (first, second)
        });
        let r = envelope_pipelined(&mut boxed, "MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>").await;
        assert!(
            matches!(&r, Err(SendError::Permanent(m)) if m.contains("RCPT TO")),
            "{r:?}"
        );
        // In step: the next command gets its own reply, not DATA's.
        let rset = boxed.expect("RSET", &[250], "RSET").await;
        assert!(rset.is_ok(), "{rset:?}");
        let (first, second) = srv.await.unwrap();
        assert_eq!(
            first, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
            "one write"
        );
        assert_eq!(second, "RSET\r\n");
    }

    #[test]
    fn international_addresses_fit_the_envelope_the_server_allows() {
        let a = |s: &str| EmailAddress::parse(s).unwrap();
        let e = |s: &str, utf8| envelope_address(&a(s), utf8);
        assert_eq!(
            e("jan@bücher.test", false).unwrap(),
            "jan@xn--bcher-kva.test"
        );
        assert_eq!(e("jan@bücher.test", true).unwrap(), "jan@bücher.test");
        assert_eq!(e("jörg@x.test", true).unwrap(), "jörg@x.test");
        assert!(matches!(
            e("jörg@x.test", false),
            Err(SendError::Permanent(_))
        ));
        assert_eq!(
            e("\"jan de vries\"@x.test", false).unwrap(),
            "\"jan de vries\"@x.test"
        );
    }

    #[test]
    fn bodies_are_dot_stuffed_with_crlf_line_endings() {
        assert_eq!(
            dot_stuff(b".a\n..b\r\nc.\r.d"),
            b"..a\r\n...b\r\nc.\r\n..d\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\n".to_vec());
    }

    #[test]
    fn reply_codes_decide_between_retry_and_give_up() {
        let r = |code| Reply {
            code,
            text: String::new(),
        };
        assert!(matches!(r(451).error("x"), SendError::Transient(_)));
        assert!(matches!(r(550).error("x"), SendError::Permanent(_)));
    }
}
