//! SMTP submission. lettre speaks the protocol; we own the socket so that
//! TCP_NODELAY is set (lettre writes the body and the final dot separately,
//! which otherwise costs a 40 ms delayed-ACK stall per message) and keep one
//! connection for consecutive sends. Failures are classified as transient
//! (retry with backoff) or permanent (recorded, never retried).

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, TlsParametersBuilder,
};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::config::{Security, SmtpSettings};
use crate::domain::types::EmailAddress;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("transient SMTP failure: {0}")]
    Transient(String),
    #[error("permanent SMTP failure: {0}")]
    Permanent(String),
}

pub struct Smtp {
    settings: SmtpSettings,
    conn: Mutex<Option<(AsyncSmtpConnection, Instant)>>,
}

/// A TLS stream lettre can drive (it wants to know the peer address).
#[derive(Debug)]
struct Tls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}
impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// A connection unused this long is checked with NOOP before reuse.
const IDLE_CHECK: Duration = Duration::from_secs(20);

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(e.to_string())
    } else {
        SendError::Transient(e.to_string())
    }
}

impl Smtp {
    pub fn new(s: &SmtpSettings) -> Result<Smtp> {
        Ok(Smtp {
            settings: s.clone(),
            conn: Mutex::new(None),
        })
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let s = &self.settings;
        let t = |e: String| SendError::Transient(e);
        let tcp = tokio::time::timeout(s.timeout, TcpStream::connect((s.host.as_str(), s.port)))
            .await
            .map_err(|_| {
                t(format!(
                    "no connection to {}:{} within {}s",
                    s.host,
                    s.port,
                    s.timeout.as_secs()
                ))
            })?
            .map_err(|e| t(format!("cannot connect to {}:{}: {e}", s.host, s.port)))?;
        let _ = tcp.set_nodelay(true);
        let hello = ClientId::default();
        let params = || {
            TlsParametersBuilder::new(s.host.clone())
                .build_rustls()
                .map_err(|e| SendError::Permanent(format!("TLS set-up: {e}")))
        };
        let mut conn = match s.security {
            Security::None => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                .await
                .map_err(classify)?,
            Security::Starttls => {
                let mut c = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                    .await
                    .map_err(classify)?;
                if !c.can_starttls() {
                    return Err(t(
                        "the SMTP server does not offer STARTTLS (smtp.security)".into()
                    ));
                }
                c.starttls(params()?, &hello).await.map_err(classify)?;
                c
            }
            Security::Tls => {
                let connector = tokio_rustls::TlsConnector::from(crate::mail::imap::tls_config());
                let name =
                    rustls::pki_types::ServerName::try_from(s.host.clone()).map_err(|_| {
                        SendError::Permanent(format!(
                            "smtp.host {:?} is not a TLS server name",
                            s.host
                        ))
                    })?;
                let tls = tokio::time::timeout(s.timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| t("TLS handshake timed out".into()))?
                    .map_err(|e| t(format!("TLS handshake: {e}")))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(Tls(tls)), &hello)
                    .await
                    .map_err(classify)?
            }
        };
        if !s.username.is_empty() {
            let creds = Credentials::new(s.username.clone(), s.password.expose().to_string());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await
                .map_err(|e| match classify(e) {
                    // A refused login will not fix itself, but the operator
                    // may fix the password: keep retrying, slowly.
                    SendError::Permanent(m) | SendError::Transient(m) => {
                        t(format!("SMTP login failed: {m}"))
                    }
                })?;
        }
        Ok(conn)
    }

    pub async fn send(
        &self,
        from: &EmailAddress,
        to: &EmailAddress,
        raw: &[u8],
    ) -> Result<(), SendError> {
        let envelope = Envelope::new(
            Some(
                from.as_str()
                    .parse()
                    .map_err(|e| SendError::Permanent(format!("sender: {e}")))?,
            ),
            vec![to
                .as_str()
                .parse()
                .map_err(|e| SendError::Permanent(format!("recipient: {e}")))?],
        )
        .map_err(|e| SendError::Permanent(e.to_string()))?;
        let mut guard = self.conn.lock().await;
        let reusable = match guard.as_mut() {
            Some((c, used)) if !c.has_broken() => {
                used.elapsed() < IDLE_CHECK || c.test_connected().await
            }
            _ => false,
        };
        if !reusable {
            if let Some((mut old, _)) = guard.take() {
                old.abort().await;
            }
            *guard = Some((self.connect().await?, Instant::now()));
        }
        let (conn, used) = guard
            .as_mut()
            .ok_or_else(|| SendError::Transient("no connection".into()))?;
        let result =
            tokio::time::timeout(self.settings.timeout * 4, conn.send(&envelope, raw)).await;
        match result {
            Ok(Ok(_)) => {
                *used = Instant::now();
                Ok(())
            }
            Ok(Err(e)) => {
                let err = classify(e);
                // After a refusal the session is still fine; after anything
                // else, start afresh next time.
                if conn.has_broken() || matches!(err, SendError::Transient(_)) {
                    *guard = None;
                } else {
                    let _ = conn.command(lettre::transport::smtp::commands::Rset).await;
                }
                Err(err)
            }
            Err(_) => {
                *guard = None;
                Err(SendError::Transient("SMTP send timed out".into()))
            }
        }
    }

    /// Connects and authenticates without sending (check-config).
    pub async fn test_connection(&self) -> Result<()> {
        let mut c = self.connect().await.map_err(|e| anyhow!("{e}"))?;
        let _ = c.quit().await;
        Ok(())
    }
}
