//! IMAP: only moves bytes. Every operation has a timeout; any error drops
//! the session (the caller reconnects with backoff).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use async_imap::extensions::idle::IdleResponse;
use async_imap::types::NameAttribute;
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{Auth, ImapSettings, Security};
use crate::mail::oauth2::{self, TokenSource};

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Stream for T {}
type Session = async_imap::Session<Box<dyn Stream>>;

pub struct Imap {
    session: Session,
    allowance: Arc<Allowance>,
    timeout: Duration,
    selected: Option<String>,
    /// The server's capabilities after login, asked once per session.
    capabilities: Option<std::collections::HashSet<String>>,
}

/// A message as fetched: uid, arrival time in the mailbox, size, and its
/// bytes, kept in the buffer the server's response was read into (one
/// copy, freed when this is dropped).
#[derive(Debug)]
pub struct Fetched {
    pub uid: u32,
    pub internal_date: Option<jiff::Timestamp>,
    pub size: u32,
    response: async_imap::types::Fetch,
}

impl Fetched {
    /// The header or body section fetched (empty when the server sent none).
    pub fn bytes(&self) -> &[u8] {
        self.response
            .header()
            .or(self.response.body())
            .unwrap_or_default()
    }
}

/// The most klachtd reads in reply to one command unless it asked for more
/// (a body fetch): a UID SEARCH of a million messages fits, a server that
/// streams without end does not.
const REPLY_CAP: u64 = 16 * 1024 * 1024;
/// The part of each header fetched to decide on a message: real headers are
/// under 32 KiB; a longer one is cut, never read whole.
const HEADER_CAP: u64 = 64 * 1024;
/// What a FETCH response adds around each message's data.
const FETCH_OVERHEAD: u64 = 1024;
/// The slowest transfer a body fetch allows for before it times out, on
/// top of the usual timeout.
const MIN_BYTES_PER_S: u64 = 100 * 1024;

/// The replies the server may still send to the current command. Every
/// command starts with a write (often several): a write resets the
/// allowance to what commands are granted now (`REPLY_CAP` but during a
/// body fetch).
#[derive(Debug)]
struct Allowance {
    left: std::sync::atomic::AtomicU64,
    granted: std::sync::atomic::AtomicU64,
}

/// The connection, counting what the server sends against the
/// [`Allowance`]: beyond it the read fails and the session is dropped.
#[derive(Debug)]
struct Capped<S> {
    inner: S,
    allowance: Arc<Allowance>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::sync::atomic::Ordering::Relaxed;
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            let left = self.allowance.left.load(Relaxed);
            if read > left {
                self.allowance.left.store(0, Relaxed);
                return std::task::Poll::Ready(Err(std::io::Error::other(
                    "the IMAP server sent more in reply to one command than klachtd reads (a broken or hostile server)",
                )));
            }
            self.allowance.left.store(left - read, Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::sync::atomic::Ordering::Relaxed;
        let granted = self.allowance.granted.load(Relaxed);
        self.allowance.left.store(granted, Relaxed);
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub struct Selected {
    pub uidvalidity: u32,
    pub uid_next: Option<u32>,
    pub exists: u32,
}

/// Most bytes of messages in one MULTIAPPEND command.
const MULTIAPPEND_BYTES: usize = 8 * 1024 * 1024;

async fn timed<T, F: std::future::Future<Output = T>>(d: Duration, what: &str, f: F) -> Result<T> {
    tokio::time::timeout(d, f)
        .await
        .map_err(|_| anyhow!("IMAP {what}: no answer within {}s", d.as_secs()))
}

pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS set-up")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// TLS on an open connection, certificates checked against the web PKI.
pub(crate) async fn tls_connect(
    tcp: TcpStream,
    host: &str,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(tls_config()?);
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| anyhow!("{host:?} is not a valid TLS server name"))?;
    timed(timeout, "TLS handshake", connector.connect(name, tcp))
        .await?
        .with_context(|| format!("TLS handshake with {host} failed"))
}

/// The SASL mechanisms a greeting's CAPABILITY code lists, if it has one.
fn auth_mechanisms(greeting: &async_imap::imap_proto::Response<'_>) -> Option<Vec<String>> {
    use async_imap::imap_proto::{Capability, Response, ResponseCode};
    match greeting {
        Response::Data {
            code: Some(ResponseCode::Capabilities(caps)),
            ..
        } => Some(
            caps.iter()
                .filter_map(|c| match c {
                    Capability::Auth(m) => Some(m.to_string()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The SASL exchange of XOAUTH2 and OAUTHBEARER: the token first; a
/// server that refuses it sends its reason as a challenge, which a client
/// answers with an empty response to get the final NO.
struct Bearer(Option<String>);

impl async_imap::Authenticator for Bearer {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.0.take().unwrap_or_default()
    }
}

/// AUTHENTICATE with a token; a refused token is renewed and tried once
/// more (it may have been revoked, or the clocks disagree).
async fn oauth2_login(
    mut client: async_imap::Client<Box<dyn Stream>>,
    s: &ImapSettings,
    source: &TokenSource,
    offered: Option<Vec<String>>,
) -> Result<async_imap::Session<Box<dyn Stream>>> {
    let mechanism = oauth2::mechanism(offered.as_ref().map(|v| v.iter().map(String::as_str)));
    let mut token = source.token().await?;
    let mut renewed = false;
    loop {
        let response = match mechanism {
            "OAUTHBEARER" => oauth2::oauthbearer(&s.username, &token),
            _ => oauth2::xoauth2(&s.username, &token),
        };
        match timed(
            s.timeout,
            "AUTHENTICATE",
            client.authenticate(mechanism, Bearer(Some(response))),
        )
        .await?
        {
            Ok(session) => return Ok(session),
            Err((e, back)) => {
                let refused = matches!(
                    e,
                    async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)
                );
                if !refused {
                    bail!("IMAP login as {} failed: {e}", s.username);
                }
                if renewed {
                    bail!(
                        "IMAP login as {} with {} refused: {e}; {}",
                        s.username,
                        source.describe(),
                        oauth2::server_hint(source.provider(), "IMAP")
                    );
                }
                tracing::info!(
                    mechanism,
                    "the IMAP server refused the token; asking for a new one"
                );
                client = back;
                token = source.renew(&token).await?;
                renewed = true;
            }
        }
    }
}

impl Imap {
    /// Connects, logs in. Errors say which step failed, never the password.
    pub async fn connect(s: &ImapSettings) -> Result<Imap> {
        let t = s.timeout;
        let tcp = timed(t, "connect", TcpStream::connect((s.host.as_str(), s.port)))
            .await?
            .with_context(|| format!("cannot connect to IMAP server {}:{}", s.host, s.port))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match s.security {
            Security::Tls => Box::new(tls_connect(tcp, &s.host, t).await?),
            Security::None => Box::new(tcp),
            Security::Starttls => {
                let mut client = async_imap::Client::new(tcp);
                timed(t, "greeting", client.read_response()).await??;
                timed(
                    t,
                    "STARTTLS",
                    client.run_command_and_check_ok("STARTTLS", None),
                )
                .await?
                .context("IMAP server refused STARTTLS")?;
                let tcp = client.into_inner();
                Box::new(tls_connect(tcp, &s.host, t).await?)
            }
        };
        let allowance = Arc::new(Allowance {
            left: REPLY_CAP.into(),
            granted: REPLY_CAP.into(),
        });
        let stream: Box<dyn Stream> = Box::new(Capped {
            inner: stream,
            allowance: allowance.clone(),
        });
        let mut client = async_imap::Client::new(stream);
        let mut offered = None;
        if s.security != Security::Starttls {
            let greeting = timed(t, "greeting", client.read_response()).await??;
            let Some(greeting) = greeting else {
                bail!("IMAP server closed the connection before greeting");
            };
            offered = auth_mechanisms(greeting.parsed());
        }
        let session = match &s.auth {
            Auth::OAuth2(source) => oauth2_login(client, s, source, offered).await?,
            Auth::Password(password) => {
                timed(t, "login", client.login(&s.username, password.expose()))
                    .await?
                    .map_err(|(e, _)| anyhow!("IMAP login as {} failed: {e}", s.username))?
            }
            Auth::None => bail!("imap.auth: the mailbox needs a login"),
        };
        Ok(Imap {
            session,
            allowance,
            timeout: t,
            selected: None,
            capabilities: None,
        })
    }

    pub async fn select(&mut self, folder: &str) -> Result<Selected> {
        let mb = timed(self.timeout, "SELECT", self.session.select(folder))
            .await?
            .with_context(|| format!("cannot select folder {folder:?}"))?;
        self.selected = Some(folder.to_string());
        Ok(Selected {
            uidvalidity: mb
                .uid_validity
                .ok_or_else(|| anyhow!("server gave no UIDVALIDITY for {folder:?}"))?,
            uid_next: mb.uid_next,
            exists: mb.exists,
        })
    }

    /// UIDs above `after` in the selected folder, ascending.
    pub async fn uids_after(&mut self, after: u32) -> Result<Vec<u32>> {
        let found = timed(
            self.timeout,
            "UID SEARCH",
            self.session
                .uid_search(format!("UID {}:*", after.saturating_add(1))),
        )
        .await??;
        let mut v: Vec<u32> = found.into_iter().filter(|u| *u > after).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// Which of `uids` are still in the selected folder.
    pub async fn still_there(&mut self, uids: &[u32]) -> Result<Vec<u32>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let found = timed(
            self.timeout,
            "UID SEARCH",
            self.session.uid_search(format!("UID {}", uid_set(uids))),
        )
        .await??;
        let mut v: Vec<u32> = found.into_iter().filter(|u| uids.contains(u)).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// One UID FETCH; the reply may be `allowed` bytes and take `t`.
    async fn fetch(
        &mut self,
        uids: &[u32],
        query: &str,
        allowed: u64,
        t: Duration,
    ) -> Result<Vec<Fetched>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        use std::sync::atomic::Ordering::Relaxed;
        self.allowance
            .granted
            .store(allowed.max(REPLY_CAP), Relaxed);
        let fetches = timed(t, "UID FETCH", async {
            self.session
                .uid_fetch(&set, query)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await;
        self.allowance.granted.store(REPLY_CAP, Relaxed);
        let fetches = fetches??;
        let mut out: Vec<Fetched> = fetches
            .into_iter()
            .filter_map(|f| {
                Some(Fetched {
                    uid: f.uid?,
                    internal_date: f
                        .internal_date()
                        .and_then(|d| jiff::Timestamp::from_second(d.timestamp()).ok()),
                    size: f.size.unwrap_or(0),
                    response: f,
                })
            })
            .collect();
        out.sort_by_key(|f| f.uid);
        Ok(out)
    }

    /// Headers only, at most [`HEADER_CAP`] of each (BODY.PEEK: flags are
    /// not touched).
    pub async fn fetch_headers(&mut self, uids: &[u32]) -> Result<Vec<Fetched>> {
        let allowed = uids.len() as u64 * (HEADER_CAP + FETCH_OVERHEAD);
        self.fetch(
            uids,
            &format!("(UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER]<0.{HEADER_CAP}>)"),
            allowed,
            self.timeout * 4,
        )
        .await
    }

    /// Whole messages, at most `max_bytes` of each (BODY.PEEK: flags kept).
    /// `expected` is what the caller knows of their size (RFC822.SIZE, each
    /// capped at `max_bytes`): the reply may be that much, and the fetch
    /// gets the usual timeout plus time for it at a slow link's pace.
    pub async fn fetch_bodies(
        &mut self,
        uids: &[u32],
        max_bytes: u64,
        expected: u64,
    ) -> Result<Vec<Fetched>> {
        let allowed = expected + uids.len() as u64 * FETCH_OVERHEAD;
        let t = self.timeout * 2 + Duration::from_secs(expected / MIN_BYTES_PER_S);
        self.fetch(
            uids,
            &format!("(UID RFC822.SIZE INTERNALDATE BODY.PEEK[]<0.{max_bytes}>)"),
            allowed,
            t,
        )
        .await
    }

    /// Sets a keyword (e.g. `$Klacht`) on these messages (one command).
    pub async fn add_keyword(&mut self, uids: &[u32], keyword: &str) -> Result<()> {
        timed(self.timeout, "UID STORE", async {
            self.session
                .uid_store(uid_set(uids), format!("+FLAGS.SILENT ({keyword})"))
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await??;
        Ok(())
    }

    /// Creates `folder` unless it exists already.
    pub async fn ensure_folder(&mut self, folder: &str) -> Result<()> {
        let existing: Vec<_> = timed(self.timeout, "LIST", async {
            self.session
                .list(Some(""), Some(folder))
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await??;
        if existing.iter().any(|n| n.name() == folder) {
            return Ok(());
        }
        timed(self.timeout, "CREATE", self.session.create(folder))
            .await?
            .with_context(|| format!("cannot create folder {folder:?}"))?;
        Ok(())
    }

    /// Moves messages of the selected folder to `to`: UID MOVE (RFC 6851)
    /// where offered; else UID COPY, \Deleted and UID EXPUNGE of exactly
    /// these UIDs (UIDPLUS), so nobody else's deleted mail is expunged.
    /// Without either, the messages are copied and stay where they are.
    /// Returns whether they left the selected folder.
    pub async fn move_to(&mut self, uids: &[u32], to: &str) -> Result<bool> {
        if uids.is_empty() {
            return Ok(true);
        }
        let set = uid_set(uids);
        if self.has_capability("MOVE").await? {
            timed(self.timeout * 4, "UID MOVE", self.session.uid_mv(&set, to))
                .await?
                .with_context(|| format!("cannot move to {to:?}"))?;
            return Ok(true);
        }
        timed(
            self.timeout * 4,
            "UID COPY",
            self.session.uid_copy(&set, to),
        )
        .await?
        .with_context(|| format!("cannot copy to {to:?}"))?;
        if !self.has_capability("UIDPLUS").await? {
            return Ok(false);
        }
        self.expunge_uids(&set).await?;
        Ok(true)
    }

    /// `\Deleted` and UID EXPUNGE (UIDPLUS) of exactly this UID set.
    async fn expunge_uids(&mut self, set: &str) -> Result<()> {
        timed(self.timeout, "UID STORE", async {
            self.session
                .uid_store(set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await??;
        timed(self.timeout, "UID EXPUNGE", async {
            self.session
                .uid_expunge(set)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await??;
        Ok(())
    }

    /// UIDs in the selected folder that carry `keyword`.
    pub async fn uids_with_keyword(&mut self, keyword: &str) -> Result<Vec<u32>> {
        let found = timed(
            self.timeout,
            "UID SEARCH",
            self.session.uid_search(format!("KEYWORD {keyword}")),
        )
        .await??;
        Ok(found.into_iter().collect())
    }

    /// Which of `uids` are still in the selected folder without `keyword`.
    pub async fn without_keyword(&mut self, uids: &[u32], keyword: &str) -> Result<Vec<u32>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let query = format!("UID {} UNKEYWORD {keyword}", uid_set(uids));
        let found = timed(self.timeout, "UID SEARCH", self.session.uid_search(query)).await??;
        let mut v: Vec<u32> = found.into_iter().filter(|u| uids.contains(u)).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// The folder with special-use `\Sent`, else one named "Sent".
    pub async fn find_sent_folder(&mut self) -> Result<String> {
        self.special_folder(|a| matches!(a, NameAttribute::Sent), "Sent")
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "no Sent folder (special-use \\Sent) on the IMAP server; set imap.sent_folder"
                )
            })
    }

    /// Takes the messages with this Message-ID out of `folder`: moved to
    /// `to`; else deleted, which on Gmail (where a deleted message stays
    /// in All Mail) means moved to its Trash. Returns whether there were any.
    pub async fn take_out(
        &mut self,
        folder: &str,
        message_id: &str,
        to: Option<&str>,
    ) -> Result<bool> {
        self.select(folder).await?;
        let uids = self.uids_of_message_id(message_id).await?;
        if uids.is_empty() {
            return Ok(false);
        }
        let trash = match to {
            Some(_) => None,
            None if self.has_capability("X-GM-EXT-1").await? => {
                self.special_folder(|a| matches!(a, NameAttribute::Trash), "Trash")
                    .await?
            }
            None => None,
        };
        match to.or(trash.as_deref()) {
            Some(to) => {
                if !self.move_to(&uids, to).await? {
                    bail!("the IMAP server can neither MOVE nor expunge single messages (UIDPLUS)");
                }
            }
            None => {
                if !self.has_capability("UIDPLUS").await? {
                    bail!("the IMAP server lacks UIDPLUS: klachtd cannot delete single messages without expunging others' deleted mail");
                }
                self.expunge_uids(&uid_set(&uids)).await?;
            }
        }
        Ok(true)
    }

    /// The folder with a special use (RFC 6154), else one named `name`.
    async fn special_folder(
        &mut self,
        special: impl Fn(&NameAttribute<'_>) -> bool,
        name: &str,
    ) -> Result<Option<String>> {
        let names: Vec<_> = timed(self.timeout, "LIST", async {
            self.session
                .list(Some(""), Some("*"))
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await??;
        let by_use = names.iter().find(|n| n.attributes().iter().any(&special));
        let by_name = names
            .iter()
            .find(|n| n.name().eq_ignore_ascii_case(name) || n.name().ends_with(name));
        Ok(by_use.or(by_name).map(|n| n.name().to_string()))
    }

    pub async fn append(&mut self, folder: &str, raw: &[u8]) -> Result<()> {
        timed(
            self.timeout * 4,
            "APPEND",
            self.session.append(folder, Some("(\\Seen)"), None, raw),
        )
        .await?
        .with_context(|| format!("cannot append to {folder:?}"))?;
        Ok(())
    }

    /// Appends several messages to `folder`: in one command (MULTIAPPEND,
    /// RFC 3502, with non-synchronizing literals, RFC 7888) where the
    /// server offers both and the messages are text, which saves them in
    /// one go; else one APPEND each. At most `MULTIAPPEND_BYTES` per
    /// command.
    pub async fn append_all(&mut self, folder: &str, raws: &[&[u8]]) -> Result<()> {
        let texts: Option<Vec<&str>> = raws.iter().map(|r| std::str::from_utf8(r).ok()).collect();
        let multi = raws.len() > 1
            && self.has_capability("MULTIAPPEND").await?
            && self.has_capability("LITERAL+").await?;
        let (Some(texts), true) = (texts, multi) else {
            for raw in raws {
                self.append(folder, raw).await?;
            }
            return Ok(());
        };
        let quoted = format!("\"{}\"", folder.replace('\\', "\\\\").replace('"', "\\\""));
        let mut at = 0;
        while at < texts.len() {
            let mut command = format!("APPEND {quoted}");
            let mut bytes = 0;
            while at < texts.len() && (bytes == 0 || bytes + texts[at].len() <= MULTIAPPEND_BYTES) {
                let text = texts[at];
                command.push_str(&format!(" (\\Seen) {{{}+}}\r\n{text}", text.len()));
                bytes += text.len();
                at += 1;
            }
            timed(
                self.timeout * 4,
                "APPEND",
                self.session.run_command_and_check_ok(&command),
            )
            .await?
            .with_context(|| format!("cannot append to {folder:?}"))?;
        }
        Ok(())
    }

    /// Does `folder` hold a message with this Message-ID?
    pub async fn has_message_id(&mut self, folder: &str, message_id: &str) -> Result<bool> {
        if self.selected.as_deref() != Some(folder) {
            self.select(folder).await?;
        }
        Ok(!self.uids_of_message_id(message_id).await?.is_empty())
    }

    /// UIDs in the selected folder of messages with this Message-ID.
    async fn uids_of_message_id(&mut self, message_id: &str) -> Result<Vec<u32>> {
        let Some(id) = search_string(message_id) else {
            tracing::debug!("a Message-ID that cannot be searched for over IMAP; skipped");
            return Ok(Vec::new());
        };
        let found = timed(
            self.timeout,
            "UID SEARCH",
            self.session
                .uid_search(format!("HEADER Message-ID \"{id}\"")),
        )
        .await??;
        Ok(found.into_iter().collect())
    }

    /// Deletes from `folder` every message with one of these Message-IDs:
    /// \Deleted and UID EXPUNGE of exactly those UIDs (UIDPLUS), so nobody
    /// else's deleted mail goes with them. Returns how many were deleted.
    pub async fn delete_message_ids(&mut self, folder: &str, ids: &[String]) -> Result<usize> {
        self.select(folder).await?;
        let mut uids = Vec::new();
        for id in ids {
            uids.extend(self.uids_of_message_id(id).await?);
        }
        uids.sort_unstable();
        uids.dedup();
        if uids.is_empty() {
            return Ok(0);
        }
        if !self.has_capability("UIDPLUS").await? {
            bail!("the IMAP server lacks UIDPLUS: klachtd cannot delete single messages without expunging others' deleted mail");
        }
        let set = uid_set(&uids);
        self.expunge_uids(&set).await?;
        Ok(uids.len())
    }

    /// Waits in IDLE until the server reports something, `renew` passes, or
    /// `stop` fires. Returns the session for the next round.
    pub async fn idle(
        self,
        renew: Duration,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(Imap, bool)> {
        let timeout = self.timeout;
        let allowance = self.allowance;
        let selected = self.selected;
        let capabilities = self.capabilities;
        let mut handle = self.session.idle();
        timed(timeout, "IDLE", handle.init()).await??;
        let (wait, interrupt) = handle.wait_with_timeout(renew);
        let mut stopped = false;
        let result = tokio::select! {
            r = wait => r,
            _ = stop.changed() => { stopped = true; drop(interrupt); Ok(IdleResponse::ManualInterrupt) }
        };
        let _ = result?;
        let session = timed(timeout, "IDLE DONE", handle.done()).await??;
        Ok((
            Imap {
                session,
                allowance,
                timeout,
                selected,
                capabilities,
            },
            stopped,
        ))
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }

    pub async fn supports_idle(&mut self) -> Result<bool> {
        self.has_capability("IDLE").await
    }

    /// Does the server offer `name`? CAPABILITY is asked once per session.
    async fn has_capability(&mut self, name: &str) -> Result<bool> {
        if self.capabilities.is_none() {
            let caps = timed(self.timeout, "CAPABILITY", self.session.capabilities()).await??;
            let names = caps
                .iter()
                .filter_map(|c| match c {
                    async_imap::types::Capability::Atom(a) => Some(a.to_ascii_uppercase()),
                    _ => None,
                })
                .collect();
            self.capabilities = Some(names);
        }
        Ok(self
            .capabilities
            .as_ref()
            .is_some_and(|c| c.contains(&name.to_ascii_uppercase())))
    }
}

/// Compact IMAP sequence set: 1:3,7,9:10.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers a command with more than it was granted ends
    /// the read with an error; the same bytes within the grant, or spread
    /// over several commands, are read.
    #[tokio::test]
    async fn replies_beyond_the_allowance_end_the_session() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let allowance = Arc::new(Allowance {
            left: 0.into(),
            granted: 1000.into(),
        });
        let mut capped = Capped {
            inner: client,
            allowance: allowance.clone(),
        };
        let mut buf = vec![0u8; 4096];
        for _ in 0..3 {
            capped.write_all(b"a NOOP\r\n").await.unwrap();
            server.write_all(&[b'x'; 900]).await.unwrap();
            capped.read_exact(&mut buf[..900]).await.unwrap();
        }
        capped.write_all(b"b NOOP\r\n").await.unwrap();
        server.write_all(&[b'x'; 1001]).await.unwrap();
        drop(server);
        let mut read = 0;
        let err = loop {
            match capped.read(&mut buf).await {
                Ok(0) => panic!("all {read} bytes read without an error"),
                Ok(n) => read += n,
                Err(e) => break e,
            }
        };
        assert!(read <= 1000, "{read}");
        assert!(err.to_string().contains("more in reply"), "{err}");
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(super::uid_set(&[9, 1, 2, 3, 7, 10]), "1:3,7,9:10");
        assert_eq!(super::uid_set(&[5]), "5");
    }
}

/// `message_id` as the inside of an IMAP quoted string that cannot break
/// the command: no quote, backslash, space, control character or 8-bit
/// byte (IMAP4rev1 allows those only in a literal). None when an 8-bit
/// character makes it unsearchable this way, or nothing is left. Ids from
/// `parse::bracket` pass unchanged; older stored ones are cleaned.
fn search_string(message_id: &str) -> Option<String> {
    if !message_id.is_ascii() {
        return None;
    }
    let id: String = message_id
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\'))
        .collect();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod search_string_tests {
    #[test]
    fn a_stored_id_cannot_break_the_search_command() {
        use super::search_string as s;
        assert_eq!(s("<abc@x.test>").as_deref(), Some("<abc@x.test>"));
        assert_eq!(
            s("<a\r\n b\"c\\d@x.test>").as_deref(),
            Some("<abcd@x.test>")
        );
        assert_eq!(s("<\u{e9}@x.test>"), None);
        assert_eq!(s("\r\n"), None);
    }
}
