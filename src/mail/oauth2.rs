//! OAuth2 access tokens for IMAP and SMTP (Microsoft 365, Google Workspace,
//! any provider with a token endpoint), and the SASL strings that carry them.
//!
//! One [`TokenSource`] per configuration is shared by every connection. It
//! asks the provider for a token once and hands out the same one until
//! shortly before it expires; a server that refuses a token makes the
//! caller ask for a new one ([`TokenSource::renew`]) and try once more.
//!
//! Grants, chosen per fetch (a refresh token may appear after
//! `klachtd oauth2 login`):
//! - a Google service account: the JWT-bearer grant (RFC 7523), an RS256
//!   assertion for the mailbox signed with the account's key;
//! - a refresh token (delegated consent): from the configuration, else the
//!   one `klachtd oauth2 login` stored; a rotated one replaces it;
//! - client credentials (Microsoft app-only access).
//!
//! Tokens and secrets never reach a log or an error message: errors name
//! the key to fix and what the provider said (its error code and text).

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::{
    AuthType, ClientId, ClientSecret, DeviceAuthorizationUrl, RefreshToken, RequestTokenError,
    Scope, StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};

use crate::config::{OAuth2Settings, Provider, Secret};

/// A token is renewed when this share of its life is left (at most
/// [`MAX_MARGIN`]), so a connection never starts with one about to expire.
const MARGIN_SHARE: u32 = 5;
const MAX_MARGIN: Duration = Duration::from_secs(300);
/// Assumed when a provider does not say how long a token lives.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// One request to the token service.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `klachtd oauth2 login` waits for the person to sign in.
const DEVICE_WAIT: Duration = Duration::from_secs(15 * 60);

/// Where tokens come from, and the one that is current.
pub struct TokenSource {
    s: OAuth2Settings,
    http: OnceLock<reqwest::Client>,
    /// Async: callers wait for one fetch rather than each doing their own.
    cache: tokio::sync::Mutex<Option<Cached>>,
    /// The newest refresh token, when the provider rotated it.
    rotated: Mutex<Option<Secret>>,
    fetches: AtomicU64,
}

struct Cached {
    token: Secret,
    renew_at: Instant,
}

/// Which grant a fetch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    ServiceAccount,
    RefreshToken,
    ClientCredentials,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSource({})", self.s.provider)
    }
}

impl TokenSource {
    pub fn new(s: OAuth2Settings) -> TokenSource {
        TokenSource {
            s,
            http: OnceLock::new(),
            cache: tokio::sync::Mutex::new(None),
            rotated: Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    pub fn provider(&self) -> Provider {
        self.s.provider
    }

    pub fn settings(&self) -> &OAuth2Settings {
        &self.s
    }

    /// Tokens fetched from the provider since start.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The grant the next fetch uses, or why there is none.
    pub fn grant(&self) -> Result<Grant> {
        if self.s.service_account.is_some() {
            return Ok(Grant::ServiceAccount);
        }
        if self.refresh_token()?.is_some() {
            return Ok(Grant::RefreshToken);
        }
        if !self.s.client_secret.is_empty() {
            return Ok(Grant::ClientCredentials);
        }
        bail!(
            "oauth2.client_secret: not set; set KLACHTD__OAUTH2__CLIENT_SECRET for app-only \
             access, or run `klachtd oauth2 login` for delegated consent"
        )
    }

    /// "OAuth2 (microsoft, client credentials)", for check-config and errors.
    pub fn describe(&self) -> String {
        let grant = match self.grant() {
            Ok(Grant::ServiceAccount) => "service account",
            Ok(Grant::RefreshToken) => "refresh token",
            Ok(Grant::ClientCredentials) => "client credentials",
            Err(_) => "no grant configured",
        };
        format!("OAuth2 ({}, {grant})", self.s.provider)
    }

    /// A token valid for a while yet: the cached one, or a new one.
    pub async fn token(&self) -> Result<Secret> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = self.fetch().await?;
        let margin = (lifetime / MARGIN_SHARE).min(MAX_MARGIN);
        *cache = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        Ok(token)
    }

    /// A new token after a server refused `rejected`; if another caller
    /// has renewed it meanwhile, that one.
    pub async fn renew(&self, rejected: &Secret) -> Result<Secret> {
        {
            let mut cache = self.cache.lock().await;
            if cache.as_ref().is_some_and(|c| &c.token == rejected) {
                *cache = None;
            }
        }
        self.token().await
    }

    fn http(&self) -> Result<&reqwest::Client> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        // Redirects off: a token request must not be sent elsewhere.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .context("oauth2: cannot set up HTTPS")?;
        Ok(self.http.get_or_init(|| client))
    }

    /// The refresh token: the newest the provider gave while running, else
    /// the configuration's, else the one `klachtd oauth2 login` stored.
    fn refresh_token(&self) -> Result<Option<Secret>> {
        if let Some(t) = self
            .rotated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(Some(t));
        }
        if !self.s.refresh_token.is_empty() {
            return Ok(Some(self.s.refresh_token.clone()));
        }
        let Some(file) = &self.s.refresh_token_file else {
            return Ok(None);
        };
        match std::fs::read_to_string(file) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(Secret::new(t.trim()))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => bail!(
                "oauth2.refresh_token_file: cannot read {}: {e}",
                file.display()
            ),
        }
    }

    fn client(&self) -> Result<Client> {
        let mut c = BasicClient::new(ClientId::new(self.s.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(
                TokenUrl::new(self.s.token_url.clone()).context("oauth2.token_url: not a URL")?,
            );
        if !self.s.client_secret.is_empty() {
            c = c.set_client_secret(ClientSecret::new(self.s.client_secret.expose().into()));
        }
        Ok(c)
    }

    /// A new token from the provider, and how long it lives.
    async fn fetch(&self) -> Result<(Secret, Duration)> {
        let grant = self.grant()?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(provider = %self.s.provider, ?grant, "asking the provider for a token");
        if grant == Grant::ServiceAccount {
            return self.service_account_token().await;
        }
        let client = self.client()?;
        let http = self.http()?;
        let response = if grant == Grant::RefreshToken {
            let refresh = RefreshToken::new(
                self.refresh_token()?
                    .context("oauth2.refresh_token: none")?
                    .expose()
                    .into(),
            );
            let mut req = client.exchange_refresh_token(&refresh);
            for s in self.s.delegated_scope.split_whitespace() {
                req = req.add_scope(Scope::new(s.into()));
            }
            req.request_async(http).await
        } else {
            let mut req = client.exchange_client_credentials();
            for s in self.s.scope.split_whitespace() {
                req = req.add_scope(Scope::new(s.into()));
            }
            req.request_async(http).await
        }
        .map_err(|e| self.refused(grant, e))?;
        if let Some(rotated) = response.refresh_token() {
            self.keep_refresh_token(rotated.secret())?;
        }
        let lifetime = response.expires_in().unwrap_or(DEFAULT_LIFETIME);
        Ok((Secret::new(response.access_token().secret()), lifetime))
    }

    /// A rotated refresh token replaces the old one: in memory, and in the
    /// file when that is where it came from (a configured one cannot be
    /// rewritten; after a restart the provider may still accept it, or
    /// `oauth2 login` is needed).
    fn keep_refresh_token(&self, token: &str) -> Result<()> {
        *self.rotated.lock().unwrap_or_else(|e| e.into_inner()) = Some(Secret::new(token));
        if let (true, Some(file)) = (self.s.refresh_token.is_empty(), &self.s.refresh_token_file) {
            if file.exists() {
                write_private(file, token).with_context(|| {
                    format!(
                        "oauth2.refresh_token_file: cannot store the new refresh token in {}",
                        file.display()
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Google's JWT-bearer grant for a service account with domain-wide
    /// delegation: the assertion names the mailbox as its subject.
    async fn service_account_token(&self) -> Result<(Secret, Duration)> {
        let a = self
            .s
            .service_account
            .as_ref()
            .context("oauth2.service_account_file: none")?;
        let now = jiff::Timestamp::now().as_second();
        let claims = serde_json::json!({
            "iss": a.client_email,
            "sub": self.s.mailbox,
            "scope": self.s.scope,
            "aud": a.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = a.private_key_id.clone();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(a.private_key.expose().as_bytes())
            .map_err(|_| anyhow!("oauth2.service_account_file: the private_key is not RSA PEM"))?;
        let assertion = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| anyhow!("oauth2.service_account_file: cannot sign: {e}"))?;
        let response = self
            .http()?
            .post(&a.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| unreachable_service(&a.token_uri, &e))?;
        let status = response.status();
        let body: serde_json::Value = match response.text().await {
            Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        let text = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        if status.is_success() && !text("access_token").is_empty() {
            let lifetime = body
                .get("expires_in")
                .and_then(|v| v.as_u64())
                .map_or(DEFAULT_LIFETIME, Duration::from_secs);
            return Ok((Secret::new(text("access_token")), lifetime));
        }
        let code = match text("error") {
            "" => format!("HTTP {status}"),
            e => e.to_string(),
        };
        Err(explain(
            Grant::ServiceAccount,
            &code,
            text("error_description"),
        ))
    }

    fn refused(
        &self,
        grant: Grant,
        e: RequestTokenError<oauth2::HttpClientError<reqwest::Error>, BasicErrorResponse>,
    ) -> anyhow::Error {
        match e {
            RequestTokenError::ServerResponse(r) => explain(
                grant,
                r.error().as_ref(),
                r.error_description().map(String::as_str).unwrap_or(""),
            ),
            RequestTokenError::Request(e) => {
                let host = host_of(&self.s.token_url);
                anyhow!("oauth2.token_url: no answer from the token service at {host}: {e}")
            }
            RequestTokenError::Parse(_, _) | RequestTokenError::Other(_) => anyhow!(
                "oauth2.token_url: the token service at {} did not answer as OAuth2 does: {e}",
                host_of(&self.s.token_url)
            ),
        }
    }

    /// `klachtd oauth2 login`: the device-code flow. Prints where to sign
    /// in and the code; once someone signed in as the mailbox, stores the
    /// refresh token (owner-only) where the daemon reads it.
    pub async fn device_login(&self, out: &mut dyn std::io::Write) -> Result<()> {
        let file = self.s.refresh_token_file.clone().context(
            "oauth2.refresh_token_file: needed to keep the refresh token (with a PostgreSQL \
             register there is no default)",
        )?;
        let device_url = self.s.device_url.clone().context(
            "oauth2.device_url: needed for the device login of a generic provider (its device \
             authorization endpoint)",
        )?;
        let client = self.client()?.set_device_authorization_url(
            DeviceAuthorizationUrl::new(device_url).context("oauth2.device_url: not a URL")?,
        );
        let http = self.http()?;
        let mut req = client.exchange_device_code();
        for s in self.s.delegated_scope.split_whitespace() {
            req = req.add_scope(Scope::new(s.into()));
        }
        let details: StandardDeviceAuthorizationResponse = req
            .request_async(http)
            .await
            .map_err(|e| self.refused(Grant::RefreshToken, e))?;
        writeln!(
            out,
            "Sign in as {} at {} with the code {} (within {} minutes).",
            self.s.mailbox,
            details.verification_uri().as_str(),
            details.user_code().secret(),
            details.expires_in().as_secs() / 60
        )?;
        out.flush()?;
        let token = client
            .exchange_device_access_token(&details)
            .request_async(http, tokio::time::sleep, Some(DEVICE_WAIT))
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => explain(
                    Grant::RefreshToken,
                    r.error().as_ref(),
                    r.error_description().map(String::as_str).unwrap_or(""),
                ),
                e => anyhow!("oauth2 login: {e}"),
            })?;
        let refresh = token.refresh_token().context(
            "oauth2 login: the provider gave no refresh token; the scope must allow offline \
             access (Microsoft: offline_access)",
        )?;
        write_private(&file, refresh.secret()).with_context(|| {
            format!("oauth2.refresh_token_file: cannot write {}", file.display())
        })?;
        *self.rotated.lock().unwrap_or_else(|e| e.into_inner()) = None;
        writeln!(
            out,
            "Signed in. The refresh token is in {} (readable by this user only).",
            file.display()
        )?;
        Ok(())
    }
}

type Client = oauth2::Client<
    BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn unreachable_service(url: &str, e: &reqwest::Error) -> anyhow::Error {
    anyhow!(
        "oauth2: no answer from the token service at {}: {e}",
        host_of(url)
    )
}

/// Writes `text` to `path` readable by this user only, replacing it whole.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A provider's refusal as one line: the key to fix, what to do, and the
/// provider's own code. Descriptions are cut short and never hold a secret
/// (providers do not echo them).
pub fn explain(grant: Grant, code: &str, description: &str) -> anyhow::Error {
    let said: String = description
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(240)
        .collect();
    let aad = |n: &str| {
        description.contains(&format!("AADSTS{n}:"))
            || description.starts_with(&format!("AADSTS{n}"))
    };
    let (key, advice) = if aad("7000215") {
        (
            "oauth2.client_secret",
            "the provider says the secret is wrong or expired; copy the secret's Value (not its ID) from the app registration",
        )
    } else if aad("7000222") {
        (
            "oauth2.client_secret",
            "the provider says the secret has expired; create a new one in the app registration",
        )
    } else if aad("700016") {
        ("oauth2.client_id", "the provider knows no application with this id in the tenant; check the client id and oauth2.tenant")
    } else if aad("90002") || aad("900023") || aad("90013") {
        ("oauth2.tenant", "the provider knows no such tenant; give its domain (contoso.onmicrosoft.com) or directory id")
    } else if aad("70011") || code == "invalid_scope" {
        ("oauth2.scope", "the provider refuses the scope")
    } else if aad("7000218") {
        ("oauth2.client_id", "the app registration does not allow public client flows (Authentication: Allow public client flows, Yes), or it needs oauth2.client_secret")
    } else if aad("53003") {
        ("oauth2", "Conditional Access blocked the sign-in; an exception in the policy, or app-only access")
    } else if aad("65001") || aad("7000112") || aad("500011") {
        ("oauth2.client_id", "the application lacks admin consent or is disabled; grant admin consent for IMAP.AccessAsApp and SMTP.SendAsApp")
    } else if grant == Grant::ServiceAccount && description.contains("Invalid JWT Signature") {
        ("oauth2.service_account_file", "Google refuses the key's signature: the key was deleted or the file is another account's; create a new JSON key")
    } else if grant == Grant::ServiceAccount && code == "unauthorized_client" {
        ("oauth2.service_account_file", "domain-wide delegation is missing for this service account's client ID and the scope https://mail.google.com/ (Google Admin console, Security, API controls)")
    } else if grant == Grant::ServiceAccount && description.contains("Invalid email or User ID") {
        (
            "imap.username",
            "Google knows no Workspace user with this address",
        )
    } else if grant == Grant::RefreshToken && code == "invalid_grant" {
        ("oauth2.refresh_token", "the provider no longer accepts the refresh token (expired or revoked); run `klachtd oauth2 login` again")
    } else if code == "invalid_client" || code == "unauthorized_client" {
        (
            "oauth2.client_secret",
            "the provider refuses the client id or secret",
        )
    } else {
        ("oauth2", "the token service refused")
    };
    if said.is_empty() {
        anyhow!("{key}: {advice} ({code})")
    } else {
        anyhow!("{key}: {advice} ({code}: {said})")
    }
}

/// The XOAUTH2 initial response (Google's and Microsoft's SASL mechanism).
pub fn xoauth2(user: &str, token: &Secret) -> String {
    format!("user={user}\x01auth=Bearer {}\x01\x01", token.expose())
}

/// The OAUTHBEARER initial response (RFC 7628).
pub fn oauthbearer(user: &str, token: &Secret) -> String {
    // A ',' or '=' in the authzid is escaped (RFC 5801).
    let user = user.replace('=', "=3D").replace(',', "=2C");
    format!("n,a={user},\x01auth=Bearer {}\x01\x01", token.expose())
}

/// Which SASL mechanism to use, given those the server offers (None: it
/// did not say): XOAUTH2, which Microsoft and Google both offer, unless
/// the server offers only OAUTHBEARER.
pub fn mechanism<'a>(offered: Option<impl IntoIterator<Item = &'a str>>) -> &'static str {
    let Some(offered) = offered else {
        return "XOAUTH2";
    };
    let offered: Vec<String> = offered.into_iter().map(str::to_ascii_uppercase).collect();
    if !offered.iter().any(|m| m == "XOAUTH2") && offered.iter().any(|m| m == "OAUTHBEARER") {
        "OAUTHBEARER"
    } else {
        "XOAUTH2"
    }
}

/// What to check when a server refuses a fresh token.
pub fn server_hint(provider: Provider, protocol: &str) -> &'static str {
    match (provider, protocol) {
        (Provider::Microsoft, "IMAP") => {
            "is the app's service principal registered in Exchange (New-ServicePrincipal) with \
             Add-MailboxPermission on this mailbox, and IMAP enabled for it (Set-CASMailbox \
             -ImapEnabled)? New permissions can take an hour to apply"
        }
        (Provider::Microsoft, _) => {
            "is SMTP AUTH enabled for the mailbox (Set-CASMailbox \
             -SmtpClientAuthenticationDisabled $false) and has the app SMTP.SendAsApp with \
             SendAs on the mailbox?"
        }
        (Provider::Google, _) => {
            "is IMAP on for this user (Admin console, Gmail, End User Access) and delegation \
             granted for https://mail.google.com/?"
        }
        (Provider::Generic, _) => "does the token's scope cover this server and mailbox?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_strings_carry_user_and_token() {
        let t = Secret::new("tok");
        assert_eq!(
            xoauth2("info@x.nl", &t),
            "user=info@x.nl\x01auth=Bearer tok\x01\x01"
        );
        assert_eq!(
            oauthbearer("a,b=c@x.nl", &t),
            "n,a=a=2Cb=3Dc@x.nl,\x01auth=Bearer tok\x01\x01"
        );
    }

    #[test]
    fn xoauth2_unless_only_oauthbearer_is_offered() {
        assert_eq!(mechanism(None::<Vec<&str>>), "XOAUTH2");
        assert_eq!(
            mechanism(Some(["PLAIN", "XOAUTH2", "OAUTHBEARER"])),
            "XOAUTH2"
        );
        assert_eq!(mechanism(Some(["PLAIN", "oauthbearer"])), "OAUTHBEARER");
        assert_eq!(mechanism(Some(["PLAIN"])), "XOAUTH2");
    }

    #[test]
    fn provider_errors_name_the_key_to_fix() {
        let e = explain(
            Grant::ClientCredentials,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent…\r\nTrace ID: 1",
        )
        .to_string();
        assert!(
            e.starts_with("oauth2.client_secret: the provider says the secret is wrong or expired"),
            "{e}"
        );
        assert!(!e.contains('\n') && !e.contains("Trace ID"), "{e}");
        let e = explain(Grant::RefreshToken, "invalid_grant", "AADSTS70008: expired").to_string();
        assert!(e.starts_with("oauth2.refresh_token:"), "{e}");
        let e = explain(
            Grant::ServiceAccount,
            "unauthorized_client",
            "Client is unauthorized",
        )
        .to_string();
        assert!(
            e.starts_with("oauth2.service_account_file: domain-wide delegation"),
            "{e}"
        );
        let e = explain(Grant::ClientCredentials, "server_error", "").to_string();
        assert_eq!(e, "oauth2: the token service refused (server_error)");
    }
}
