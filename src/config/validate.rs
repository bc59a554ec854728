//! From the raw file to [`Settings`]: one function per section fills in the
//! defaults and checks the values, failing on the first problem with the key
//! it is about. Sections are checked in the file's order, so with several
//! mistakes the first one is reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;

use super::raw;
use super::settings::*;
use super::{err, ConfigError};
use crate::domain::calendar::{parse_closures, Calendar, LiberationDay};
use crate::domain::types::{EmailAddress, Lang};
use crate::mail::oauth2::TokenSource;

/// Checks every section; relative paths are taken relative to `base`.
pub(super) fn settings(raw: raw::File, base: &Path) -> Result<Settings, ConfigError> {
    let organisation = organisation(raw.organisation, base)?;
    let raw_imap = raw.imap.ok_or_else(|| err("imap", "section missing"))?;
    let raw_smtp = raw.smtp.ok_or_else(|| err("smtp", "section missing"))?;
    let state_dir = raw.database.as_ref().and_then(|d| d.state_dir.clone());
    let database_url = database_url(raw.database, base)?;
    let marker_dir = marker_dir(state_dir, &database_url, base)?;
    let oauth2 = oauth2(raw.oauth2, &raw_imap, &raw_smtp, &database_url, base)?;
    let imap = imap(raw_imap, oauth2.as_ref())?;
    let smtp = smtp(raw_smtp, &imap.username, oauth2.as_ref())?;
    let procedure = procedure(raw.procedure)?;
    let calendar = calendar(raw.calendar)?;
    let intake = intake(raw.intake, &imap, organisation.language)?;
    let (digest_at, triage_mail) = digest(&raw.digest)?;
    let escalation = escalation(raw.escalation)?;
    let health = health(&raw.health)?;
    let staff = staff(raw.staff, &organisation)?;
    Ok(Settings {
        organisation,
        imap,
        smtp,
        oauth2,
        database_url,
        marker_dir,
        procedure,
        calendar,
        intake,
        digest_at,
        digest_send_empty: raw.digest.send_empty.unwrap_or(false),
        triage_mail,
        escalation,
        health,
        report_every: raw.report.every.unwrap_or(ReportEvery::Month),
        retention_months: raw.privacy.retention_months.unwrap_or(24),
        purge_mailbox: raw.privacy.purge_mailbox.unwrap_or(true),
        staff,
        log_level: raw.log.level.unwrap_or_else(|| "info".into()),
        log_format: raw.log.format.unwrap_or_default(),
        metrics_listen: raw
            .metrics
            .listen
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim().parse().map_err(|_| {
                    err(
                        "metrics.listen",
                        format!("{l:?} is not an address and port like \"127.0.0.1:9187\""),
                    )
                })
            })
            .transpose()?,
    })
}

fn organisation(o: Option<raw::Organisation>, base: &Path) -> Result<Organisation, ConfigError> {
    let o = o.ok_or_else(|| err("organisation", "section missing"))?;
    let address = address(
        &nonempty(o.address, "organisation.address")?,
        "organisation.address",
    )?;
    let tz_name = o.timezone.unwrap_or_else(|| "Europe/Amsterdam".into());
    let timezone = TimeZone::get(&tz_name).map_err(|_| {
        err(
            "organisation.timezone",
            format!("unknown time zone {tz_name:?}"),
        )
    })?;
    let language = match o.language.as_deref() {
        None => Lang::Nl,
        Some(l) => l
            .parse()
            .map_err(|_| err("organisation.language", format!("{l:?}: expected nl or en")))?,
    };
    let regulation_url = nonempty(o.regulation_url, "organisation.regulation_url")?;
    if !(regulation_url.starts_with("https://") || regulation_url.starts_with("http://")) {
        return Err(err(
            "organisation.regulation_url",
            "must start with https:// or http://",
        ));
    }
    let regulation_file = o
        .regulation_file
        .map(|p| existing(base, &p, Kind::File, "organisation.regulation_file"))
        .transpose()?;
    let templates_dir = o
        .templates_dir
        .map(|p| existing(base, &p, Kind::Folder, "organisation.templates_dir"))
        .transpose()?;
    let aliases = o
        .aliases
        .iter()
        .map(|a| self::address(a, "organisation.aliases"))
        .collect::<Result<Vec<_>, _>>()?;
    let message_id_domain = o
        .message_id_domain
        .unwrap_or_else(|| format!("klachtd.{}", address.domain()));
    Ok(Organisation {
        name: nonempty(o.name, "organisation.name")?,
        address,
        aliases,
        timezone,
        language,
        regulation_url,
        regulation_file,
        phone: o.phone,
        website: o.website,
        templates_dir,
        message_id_domain,
        external_body: o.external_body.unwrap_or_default(),
    })
}

fn imap(i: raw::Imap, oauth2: Option<&Arc<TokenSource>>) -> Result<ImapSettings, ConfigError> {
    let security = i.security.unwrap_or(Security::Tls);
    let host = nonempty(i.host, "imap.host")?;
    let auth = match (i.auth.unwrap_or(AuthMethod::Password), oauth2) {
        (AuthMethod::Password, _) => Auth::Password(i.password),
        (AuthMethod::OAuth2, Some(source)) => Auth::OAuth2(source.clone()),
        (AuthMethod::OAuth2, None) => unreachable_oauth2("imap.auth")?,
        (AuthMethod::None, _) => {
            return Err(err(
                "imap.auth",
                "\"none\": the mailbox needs a login; use \"password\" or \"oauth2\"",
            ))
        }
    };
    // Gmail and Exchange Online file what is sent over their SMTP in Sent
    // by themselves.
    let files_sent = oauth2.is_some_and(|o| o.provider() != Provider::Generic)
        || [
            "imap.gmail.com",
            "imap.googlemail.com",
            "outlook.office365.com",
        ]
        .contains(&host.to_ascii_lowercase().as_str());
    let sent_copy = match i.sent_copy.unwrap_or(SentCopy::Auto) {
        SentCopy::Auto => !files_sent,
        SentCopy::Append => true,
        SentCopy::None => false,
    };
    let imap = ImapSettings {
        host,
        port: i.port.unwrap_or(match security {
            Security::Tls => 993,
            _ => 143,
        }),
        security,
        username: nonempty(i.username, "imap.username")?,
        auth,
        folder: i.folder.unwrap_or_else(|| "INBOX".into()),
        sent_folder: i.sent_folder.filter(|s| !s.trim().is_empty()),
        staff_copy_folder: i.staff_copy_folder.filter(|s| !s.trim().is_empty()),
        sent_copy,
        keyword: i.keyword.unwrap_or_else(|| "$Klacht".into()),
        timeout: secs(i.timeout_seconds, 30, "imap.timeout_seconds")?,
        idle_renew: secs(i.idle_renew_seconds, 600, "imap.idle_renew_seconds")?,
        poll: secs(i.poll_seconds, 60, "imap.poll_seconds")?,
    };
    if imap
        .keyword
        .contains(|c: char| c.is_whitespace() || "(){%*\"\\]".contains(c))
    {
        return Err(err("imap.keyword", "not a valid IMAP keyword"));
    }
    plain_transport("imap", &imap.host, imap.security, i.allow_insecure, true)?;
    if imap.idle_renew.as_secs() > 29 * 60 {
        return Err(err(
            "imap.idle_renew_seconds",
            "must be below 29 minutes (RFC 2177)",
        ));
    }
    Ok(imap)
}

/// `security = "none"` only to a server on this machine, unless
/// `allow_insecure` (warned about); and a password never goes in clear to
/// another machine, whatever `allow_insecure` says.
fn plain_transport(
    section: &str,
    host: &str,
    security: Security,
    allow_insecure: Option<bool>,
    sends_password: bool,
) -> Result<(), ConfigError> {
    if security != Security::None || is_loopback_host(host) {
        return Ok(());
    }
    if sends_password {
        return Err(err(
            format!("{section}.security"),
            format!("\"none\" would send the password in clear to {host}; use \"tls\" or \"starttls\" (\"none\" only for a server on this machine)"),
        ));
    }
    if allow_insecure != Some(true) {
        return Err(err(
            format!("{section}.security"),
            format!("\"none\" is only for a server on this machine; use \"tls\" or \"starttls\" for {host}, or set {section}.allow_insecure = true"),
        ));
    }
    tracing::warn!(
        section,
        host,
        "security = \"none\" to another machine (allow_insecure): mail goes unencrypted"
    );
    Ok(())
}

/// `localhost` or a loopback address (no name is resolved).
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn smtp(
    s: raw::Smtp,
    mailbox: &str,
    oauth2: Option<&Arc<TokenSource>>,
) -> Result<SmtpSettings, ConfigError> {
    let security = s.security.unwrap_or(Security::Starttls);
    let host = nonempty(s.host, "smtp.host")?;
    let username = s.username.trim().to_string();
    let (username, auth) = match s.auth {
        None if username.is_empty() => (username, Auth::None),
        None | Some(AuthMethod::Password) => {
            if username.is_empty() {
                return Err(err("smtp.username", "needed with smtp.auth = \"password\""));
            }
            (username, Auth::Password(s.password))
        }
        Some(AuthMethod::None) => (String::new(), Auth::None),
        // The token is the mailbox's: log in as the mailbox, unless given.
        Some(AuthMethod::OAuth2) => match oauth2 {
            Some(source) if username.is_empty() => {
                (mailbox.to_string(), Auth::OAuth2(source.clone()))
            }
            Some(source) => (username, Auth::OAuth2(source.clone())),
            None => unreachable_oauth2("smtp.auth")?,
        },
    };
    plain_transport(
        "smtp",
        &host,
        security,
        s.allow_insecure,
        !matches!(auth, Auth::None),
    )?;
    Ok(SmtpSettings {
        host,
        port: s.port.unwrap_or(match security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::None => 25,
        }),
        security,
        username,
        auth,
        timeout: secs(s.timeout_seconds, 30, "smtp.timeout_seconds")?,
        connections: match s.connections.unwrap_or(4) {
            n @ 1..=32 => n as usize,
            _ => return Err(err("smtp.connections", "must be between 1 and 32")),
        },
    })
}

/// `oauth2.…` was checked whenever `auth = "oauth2"`; this cannot happen.
fn unreachable_oauth2<T>(key: &str) -> Result<T, ConfigError> {
    Err(err(key, "\"oauth2\" needs an [oauth2] section"))
}

const MICROSOFT_SCOPE: &str = "https://outlook.office365.com/.default";
const MICROSOFT_DELEGATED_SCOPE: &str = "https://outlook.office365.com/IMAP.AccessAsUser.All \
     https://outlook.office365.com/SMTP.Send offline_access";
const GOOGLE_SCOPE: &str = "https://mail.google.com/";
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_DEVICE_URL: &str = "https://oauth2.googleapis.com/device/code";

/// The `[oauth2]` section, needed when `imap.auth` or `smtp.auth` is
/// `oauth2` (and checked whenever present). The token source it gives is
/// shared by IMAP and SMTP.
fn oauth2(
    o: Option<raw::OAuth2>,
    imap: &raw::Imap,
    smtp: &raw::Smtp,
    database_url: &str,
    base: &Path,
) -> Result<Option<Arc<TokenSource>>, ConfigError> {
    let wanted = [("imap.auth", imap.auth), ("smtp.auth", smtp.auth)]
        .into_iter()
        .find(|(_, a)| *a == Some(AuthMethod::OAuth2));
    let o = match (o, wanted) {
        (Some(o), _) => o,
        (None, None) => return Ok(None),
        (None, Some((key, _))) => {
            return Err(err(
                "oauth2",
                format!("section missing: {key} = \"oauth2\" needs provider and client_id"),
            ))
        }
    };
    let provider = o
        .provider
        .ok_or_else(|| err("oauth2.provider", "missing: microsoft, google or generic"))?;
    let mailbox = imap.username.clone().unwrap_or_default().trim().to_string();
    let given = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let token_url = given(o.token_url);
    let scope = given(o.scope);
    let device_url = given(o.device_url);
    let client_id = given(o.client_id);
    let service_account = given(o.service_account_file)
        .map(|f| service_account(&resolve(base, &f)))
        .transpose()?;
    if service_account.is_some() && provider != Provider::Google {
        return Err(err(
            "oauth2.service_account_file",
            "only for provider = \"google\"",
        ));
    }
    let (token_url, device_url, app_scope, delegated_scope) = match provider {
        Provider::Microsoft => {
            let tenant = given(o.tenant).ok_or_else(|| {
                err(
                    "oauth2.tenant",
                    "missing: the tenant's domain (contoso.onmicrosoft.com) or its directory id",
                )
            })?;
            if tenant.contains(|c: char| !(c.is_ascii_alphanumeric() || "-.".contains(c))) {
                return Err(err("oauth2.tenant", "a domain or a directory id"));
            }
            let root = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
            (
                token_url.unwrap_or_else(|| format!("{root}/token")),
                Some(device_url.unwrap_or_else(|| format!("{root}/devicecode"))),
                scope.clone().unwrap_or_else(|| MICROSOFT_SCOPE.into()),
                scope.unwrap_or_else(|| MICROSOFT_DELEGATED_SCOPE.into()),
            )
        }
        Provider::Google => (
            token_url
                .or_else(|| service_account.as_ref().map(|a| a.token_uri.clone()))
                .unwrap_or_else(|| GOOGLE_TOKEN_URL.into()),
            Some(device_url.unwrap_or_else(|| GOOGLE_DEVICE_URL.into())),
            scope.clone().unwrap_or_else(|| GOOGLE_SCOPE.into()),
            scope.unwrap_or_else(|| GOOGLE_SCOPE.into()),
        ),
        Provider::Generic => {
            let url = token_url
                .ok_or_else(|| err("oauth2.token_url", "missing: the provider's token endpoint"))?;
            let scope =
                scope.ok_or_else(|| err("oauth2.scope", "missing: the scope to ask for"))?;
            (url, device_url, scope.clone(), scope)
        }
    };
    https_url(&token_url, "oauth2.token_url")?;
    if let Some(u) = &device_url {
        https_url(u, "oauth2.device_url")?;
    }
    let mut service_account = service_account;
    if let Some(a) = service_account.as_mut() {
        https_url(&a.token_uri, "oauth2.service_account_file")?;
        // The token URL given wins over the file's.
        a.token_uri = token_url.clone();
    }
    let client_id = match (client_id, &service_account) {
        (Some(id), _) => id,
        (None, Some(a)) => a.client_email.clone(),
        (None, None) => {
            return Err(err(
                "oauth2.client_id",
                "missing: the application (client) id of the app registration",
            ))
        }
    };
    let refresh_token_file = match given(o.refresh_token_file) {
        Some(f) => Some(resolve(base, &f)),
        None => database_url
            .strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap_or(p))
            .filter(|p| *p != ":memory:")
            .and_then(|p| Path::new(p).parent())
            .map(|dir| dir.join("oauth2-refresh-token")),
    };
    Ok(Some(Arc::new(TokenSource::new(OAuth2Settings {
        provider,
        client_id,
        client_secret: o.client_secret,
        token_url,
        scope: app_scope,
        delegated_scope,
        device_url,
        service_account,
        refresh_token: o.refresh_token,
        refresh_token_file,
        mailbox,
    }))))
}

/// An https:// URL, or http:// to this machine (a test or a local proxy):
/// a token never crosses a network in clear.
fn https_url(u: &str, key: &str) -> Result<(), ConfigError> {
    let url = reqwest::Url::parse(u).map_err(|e| err(key, format!("{u:?} is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if is_loopback_host(host) => Ok(()),
        "http" => Err(err(
            key,
            "http:// only for this machine (127.0.0.1, ::1, localhost); use https://",
        )),
        _ => Err(err(key, format!("{u:?}: expected an https:// URL"))),
    }
}

/// A Google service account's JSON key file.
fn service_account(path: &Path) -> Result<ServiceAccount, ConfigError> {
    const KEY: &str = "oauth2.service_account_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(KEY, format!("cannot read {}: {e}", path.display())))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        err(
            KEY,
            format!(
                "{} is not a service account's JSON key file: {e}",
                path.display()
            ),
        )
    })?;
    let field = |name: &str| {
        json.get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                err(
                    KEY,
                    format!(
                        "{} has no {name:?}: download a JSON key of the service account",
                        path.display()
                    ),
                )
            })
    };
    let private_key = field("private_key")?;
    jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(|_| {
        err(
            KEY,
            format!(
                "the private_key in {} is not an RSA key in PEM form",
                path.display()
            ),
        )
    })?;
    Ok(ServiceAccount {
        client_email: field("client_email")?,
        private_key: Secret::new(private_key),
        private_key_id: field("private_key_id").ok(),
        token_uri: field("token_uri").unwrap_or_else(|_| GOOGLE_TOKEN_URL.into()),
    })
}

/// `sqlite://var/klachtd.db` next to the config file unless given; a
/// relative SQLite path is taken relative to `base` too.
fn database_url(d: Option<raw::Database>, base: &Path) -> Result<String, ConfigError> {
    let Some(u) = d.and_then(|d| d.url) else {
        return Ok(format!(
            "sqlite://{}",
            base.join("var/klachtd.db").display()
        ));
    };
    if let Some(rest) = u.strip_prefix("sqlite://") {
        if rest.is_empty() {
            return Err(err("database.url", "sqlite:// needs a file path"));
        }
        let (path, query) = rest
            .split_once('?')
            .map_or((rest, None), |(p, q)| (p, Some(q)));
        if path == ":memory:" {
            return Ok(u);
        }
        let full = resolve(base, path);
        Ok(match query {
            Some(q) => format!("sqlite://{}?{q}", full.display()),
            None => format!("sqlite://{}", full.display()),
        })
    } else if u.starts_with("postgres://") || u.starts_with("postgresql://") {
        Ok(u)
    } else {
        Err(err(
            "database.url",
            "must start with sqlite:// or postgres://",
        ))
    }
}

/// The folder for the outbox's in-flight markers. With SQLite, next to
/// the register unless `database.state_dir` says otherwise; with
/// PostgreSQL, in `database.state_dir`, else systemd's `$STATE_DIRECTORY`,
/// else `/var/lib/klachtd`, in a subfolder per database (so that two
/// registers never share a marker).
fn marker_dir(
    state_dir: Option<String>,
    database_url: &str,
    base: &Path,
) -> Result<Option<PathBuf>, ConfigError> {
    let given = match state_dir.as_deref().map(str::trim) {
        Some("") => return Err(err("database.state_dir", "must not be empty")),
        Some(d) => Some(resolve(base, d)),
        None => None,
    };
    if let Some(rest) = database_url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap_or(rest);
        if path == ":memory:" {
            return Ok(None);
        }
        let dir = given.or_else(|| Path::new(path).parent().map(Path::to_path_buf));
        return Ok(dir.map(|d| d.join("outbox-inflight")));
    }
    let dir = given.unwrap_or_else(|| {
        std::env::var_os("STATE_DIRECTORY")
            .and_then(|v| {
                let first = v.to_string_lossy().split(':').next()?.to_string();
                (!first.is_empty()).then(|| PathBuf::from(first))
            })
            .unwrap_or_else(|| PathBuf::from("/var/lib/klachtd"))
    });
    if !dir.is_absolute() {
        return Err(err(
            "database.state_dir",
            format!("{} is not an absolute path", dir.display()),
        ));
    }
    Ok(Some(
        dir.join("outbox-inflight").join(database_key(database_url)),
    ))
}

/// A folder name for a PostgreSQL database: host, port and name, never
/// the user or password (`db.example.nl-5432-klachtd`).
fn database_key(url: &str) -> String {
    let parsed = reqwest::Url::parse(url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_string))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into());
    let port = parsed.as_ref().and_then(|u| u.port()).unwrap_or(5432);
    let name = parsed
        .as_ref()
        .map(|u| u.path().trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "postgres".into());
    format!("{host}-{port}-{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn procedure(p: raw::Procedure) -> Result<Procedure, ConfigError> {
    let procedure = Procedure {
        ack_working_days: days(p.ack_working_days, 5, "procedure.ack_working_days")?,
        response_working_days: days(
            p.response_working_days,
            20,
            "procedure.response_working_days",
        )?,
        reminder_working_days: p.reminder_working_days.unwrap_or(3),
        reply_reminder_working_days: p.reply_reminder_working_days.unwrap_or(2),
        auto_replies_per_sender_per_day: p.auto_replies_per_sender_per_day.unwrap_or(3),
        auto_replies_per_hour: p.auto_replies_per_hour.unwrap_or(60),
    };
    if procedure.auto_replies_per_hour == 0 {
        return Err(err("procedure.auto_replies_per_hour", "must be at least 1"));
    }
    if procedure.reminder_working_days >= procedure.response_working_days {
        return Err(err(
            "procedure.reminder_working_days",
            "must be less than procedure.response_working_days (0 turns reminders off)",
        ));
    }
    if procedure.reply_reminder_working_days > 60 {
        return Err(err(
            "procedure.reply_reminder_working_days",
            "must be between 0 (off) and 60",
        ));
    }
    if procedure.ack_working_days > procedure.response_working_days {
        return Err(err(
            "procedure.ack_working_days",
            "must not exceed procedure.response_working_days",
        ));
    }
    Ok(procedure)
}

fn calendar(c: raw::Calendar) -> Result<Calendar, ConfigError> {
    let closures = parse_closures(&c.closures).map_err(|e| err("calendar.closures", e))?;
    Ok(Calendar::new(
        c.good_friday_off.unwrap_or(false),
        c.liberation_day.unwrap_or(LiberationDay::Lustrum),
        closures,
    ))
}

fn intake(i: raw::Intake, imap: &ImapSettings, lang: Lang) -> Result<Intake, ConfigError> {
    // Art. 9 in the mailbox: complaint mail leaves the folder everyone who
    // reads info@ sees, unless the key is set to "" on purpose.
    let complaint_folder = match i.complaint_folder.as_deref().map(str::trim) {
        None => Some(default_complaint_folder(lang).to_string()),
        Some("") => None,
        Some(f) => Some(f.to_string()),
    };
    if let Some(f) = complaint_folder.as_deref() {
        if f.trim().eq_ignore_ascii_case(imap.folder.trim()) {
            return Err(err(
                "intake.complaint_folder",
                format!(
                    "must differ from imap.folder ({:?}): case mail is moved out of the \
                     folder klachtd watches",
                    imap.folder
                ),
            ));
        }
    }
    let sender_auth = sender_auth(&i)?;
    let intake = Intake {
        max_message_bytes: i.max_message_bytes.unwrap_or(16 * 1024 * 1024),
        max_attachment_bytes: i.max_attachment_bytes.unwrap_or(10 * 1024 * 1024),
        complaint_folder,
        sender_auth,
        new_cases_per_sender_per_day: i.new_cases_per_sender_per_day.unwrap_or(5),
        staff_warnings_per_hour: i.staff_warnings_per_hour.unwrap_or(3),
    };
    if intake.new_cases_per_sender_per_day == 0 {
        return Err(err(
            "intake.new_cases_per_sender_per_day",
            "must be at least 1",
        ));
    }
    if intake.max_message_bytes < 64 * 1024 {
        return Err(err("intake.max_message_bytes", "must be at least 65536"));
    }
    Ok(intake)
}

/// The complaint folder when `intake.complaint_folder` is not set.
pub(super) fn default_complaint_folder(lang: Lang) -> &'static str {
    match lang {
        Lang::Nl => "Klachten",
        Lang::En => "Complaints",
    }
}

/// `intake.sender_auth` and the keys its methods need. Without
/// `sender_auth`, a `trusted_authserv_id` alone still asks for
/// `authentication-results` (as before the list existed).
fn sender_auth(i: &raw::Intake) -> Result<SenderAuth, ConfigError> {
    let some = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let authserv_id = some(&i.trusted_authserv_id);
    let submission_host = some(&i.trusted_submission_host);
    let mut methods = match &i.sender_auth {
        Some(m) => m.clone(),
        None if authserv_id.is_some() => vec![SenderAuthMethod::AuthenticationResults],
        None => Vec::new(),
    };
    methods.dedup();
    if methods.contains(&SenderAuthMethod::AuthenticationResults) && authserv_id.is_none() {
        return Err(err(
            "intake.trusted_authserv_id",
            "is needed for sender_auth \"authentication-results\": the authserv-id your \
             receiving server writes in Authentication-Results (e.g. \"mx.example.nl\")",
        ));
    }
    if methods.contains(&SenderAuthMethod::PostfixAuthenticatedSender) && submission_host.is_none()
    {
        return Err(err(
            "intake.trusted_submission_host",
            "is needed for sender_auth \"postfix-authenticated-sender\": the host name \
             Postfix writes after \"by\" in its Received line (its myhostname)",
        ));
    }
    Ok(SenderAuth {
        methods,
        authserv_id,
        submission_host,
    })
}

/// The morning round's time and how triage items are mailed.
fn digest(d: &raw::Digest) -> Result<(Time, TriageMail), ConfigError> {
    let at = d.at.as_deref().unwrap_or("08:30");
    let time = Time::strptime("%H:%M", at)
        .map_err(|_| err("digest.at", format!("{at:?}: expected HH:MM")))?;
    let triage_mail = match d.triage_mail.as_deref().map(str::trim) {
        None | Some("each") => TriageMail::Each,
        Some("digest") => TriageMail::Digest,
        Some(other) => {
            return Err(err(
                "digest.triage_mail",
                format!("{other:?}: expected \"each\" or \"digest\""),
            ))
        }
    };
    Ok((time, triage_mail))
}

fn escalation(e: raw::Escalation) -> Result<Escalation, ConfigError> {
    let second_level_working_days = e.second_level_working_days.unwrap_or(5);
    if second_level_working_days > 60 {
        return Err(err(
            "escalation.second_level_working_days",
            "must be between 0 (no second level) and 60",
        ));
    }
    Ok(Escalation {
        second_level_working_days,
        second_level_to: e
            .second_level_to
            .iter()
            .filter(|a| !a.trim().is_empty())
            .map(|a| address(a, "escalation.second_level_to"))
            .collect::<Result<_, _>>()?,
        fallback: e
            .fallback
            .filter(|a| !a.trim().is_empty())
            .map(|a| address(&a, "escalation.fallback"))
            .transpose()?,
    })
}

fn health(h: &raw::Health) -> Result<HealthSettings, ConfigError> {
    let minutes = |v: Option<u64>, default: u64, key: &str| {
        let n = v.unwrap_or(default);
        if n == 0 || n > 7 * 24 * 60 {
            return Err(err(key, "must be between 1 and 10080 (a week)"));
        }
        Ok(Duration::from_secs(n * 60))
    };
    Ok(HealthSettings {
        intake_alarm_after: minutes(h.intake_alarm_minutes, 60, "health.intake_alarm_minutes")?,
        outbox_alarm_after: minutes(h.outbox_alarm_minutes, 30, "health.outbox_alarm_minutes")?,
    })
}

/// The roster: at least one supervisor, nobody twice, never the mailbox itself.
fn staff(list: Vec<raw::Staff>, organisation: &Organisation) -> Result<Vec<Staff>, ConfigError> {
    let mut staff: Vec<Staff> = Vec::new();
    for (n, st) in list.into_iter().enumerate() {
        let key = |f: &str| format!("staff[{n}].{f}");
        let email = address(&nonempty(st.email, &key("email"))?, &key("email"))?;
        let roles = roles(&st.roles, &key("roles"))?;
        if staff.iter().any(|s| s.email == email) {
            return Err(err(key("email"), format!("{email} is listed twice")));
        }
        if email == organisation.address {
            return Err(err(
                key("email"),
                "must not be the complaints mailbox itself",
            ));
        }
        staff.push(Staff {
            name: nonempty(st.name, &key("name"))?,
            email,
            aliases: st
                .aliases
                .into_iter()
                .filter(|a| !a.trim().is_empty())
                .collect(),
            roles,
        });
    }
    if !staff.iter().any(|s| s.roles.supervisor) {
        return Err(err(
            "staff",
            "at least one member needs the role \"supervisor\"",
        ));
    }
    if !staff.iter().any(|s| s.roles.handler || s.roles.supervisor) {
        return Err(err("staff", "nobody can handle complaints"));
    }
    Ok(staff)
}

fn roles(names: &[String], key: &str) -> Result<Roles, ConfigError> {
    let mut roles = Roles {
        handler: false,
        supervisor: false,
    };
    for r in names {
        match r.as_str() {
            "handler" => roles.handler = true,
            "supervisor" => roles.supervisor = true,
            other => {
                return Err(err(
                    key,
                    format!("unknown role {other:?} (expected handler or supervisor)"),
                ))
            }
        }
    }
    Ok(roles)
}

fn required<T>(v: Option<T>, key: &str) -> Result<T, ConfigError> {
    v.ok_or_else(|| err(key, "missing (required)"))
}

fn nonempty(v: Option<String>, key: &str) -> Result<String, ConfigError> {
    let s = required(v, key)?;
    if s.trim().is_empty() {
        return Err(err(key, "must not be empty"));
    }
    Ok(s.trim().to_string())
}

fn address(v: &str, key: &str) -> Result<EmailAddress, ConfigError> {
    EmailAddress::parse(v).map_err(|_| err(key, format!("{v:?} is not a valid email address")))
}

fn secs(v: Option<u64>, default: u64, key: &str) -> Result<Duration, ConfigError> {
    let n = v.unwrap_or(default);
    if n == 0 {
        return Err(err(key, "must be at least 1"));
    }
    Ok(Duration::from_secs(n))
}

fn days(v: Option<u32>, default: u32, key: &str) -> Result<u32, ConfigError> {
    let n = v.unwrap_or(default);
    if n == 0 || n > 365 {
        return Err(err(key, "must be between 1 and 365"));
    }
    Ok(n)
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

enum Kind {
    File,
    Folder,
}

/// `p` relative to `base`, which must exist as a file or a folder.
fn existing(base: &Path, p: &str, kind: Kind, key: &str) -> Result<PathBuf, ConfigError> {
    let p = resolve(base, p);
    match kind {
        Kind::File if !p.is_file() => Err(err(key, format!("{} does not exist", p.display()))),
        Kind::Folder if !p.is_dir() => Err(err(key, format!("{} is not a folder", p.display()))),
        _ => Ok(p),
    }
}
