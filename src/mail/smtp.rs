//! SMTP submission with lettre. Classifies failures as transient (retry
//! with backoff) or permanent (recorded, never retried).

use anyhow::Result;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParametersBuilder};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

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
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Smtp {
    pub fn new(s: &SmtpSettings) -> Result<Smtp> {
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .timeout(Some(s.timeout));
        b = match s.security {
            Security::None => b.tls(Tls::None),
            Security::Starttls => b.tls(Tls::Required(TlsParametersBuilder::new(s.host.clone()).build_rustls()?)),
            Security::Tls => b.tls(Tls::Wrapper(TlsParametersBuilder::new(s.host.clone()).build_rustls()?)),
        };
        if !s.username.is_empty() {
            b = b.credentials(Credentials::new(s.username.clone(), s.password.expose().to_string()));
        }
        Ok(Smtp { transport: b.build() })
    }

    pub async fn send(&self, from: &EmailAddress, to: &EmailAddress, raw: &[u8]) -> Result<(), SendError> {
        let envelope = Envelope::new(
            Some(from.as_str().parse().map_err(|e| SendError::Permanent(format!("sender: {e}")))?),
            vec![to.as_str().parse().map_err(|e| SendError::Permanent(format!("recipient: {e}")))?],
        )
        .map_err(|e| SendError::Permanent(e.to_string()))?;
        match self.transport.send_raw(&envelope, raw).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }

    /// Connects and authenticates without sending (check-config).
    pub async fn test_connection(&self) -> Result<bool> {
        Ok(self.transport.test_connection().await?)
    }
}
