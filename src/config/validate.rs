//! From the raw file to [`Settings`]: one function per section fills in the
//! defaults and checks the values, failing on the first problem with the key
//! it is about. Sections are checked in the file's order, so with several
//! mistakes the first one is reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;

use super::raw;
use super::settings::*;
use super::{err, ConfigError};
use crate::domain::calendar::{parse_closures, Calendar, LiberationDay};
use crate::domain::types::{EmailAddress, Lang};

/// Checks every section; relative paths are taken relative to `base`.
pub(super) fn settings(raw: raw::File, base: &Path) -> Result<Settings, ConfigError> {
    let organisation = organisation(raw.organisation, base)?;
    let imap = imap(raw.imap)?;
    let smtp = smtp(raw.smtp)?;
    let database_url = database_url(raw.database, base)?;
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
        database_url,
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

fn imap(i: Option<raw::Imap>) -> Result<ImapSettings, ConfigError> {
    let i = i.ok_or_else(|| err("imap", "section missing"))?;
    let security = i.security.unwrap_or(Security::Tls);
    let imap = ImapSettings {
        host: nonempty(i.host, "imap.host")?,
        port: i.port.unwrap_or(match security {
            Security::Tls => 993,
            _ => 143,
        }),
        security,
        username: nonempty(i.username, "imap.username")?,
        password: i.password,
        folder: i.folder.unwrap_or_else(|| "INBOX".into()),
        sent_folder: i.sent_folder.filter(|s| !s.trim().is_empty()),
        staff_copy_folder: i.staff_copy_folder.filter(|s| !s.trim().is_empty()),
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

fn smtp(s: Option<raw::Smtp>) -> Result<SmtpSettings, ConfigError> {
    let s = s.ok_or_else(|| err("smtp", "section missing"))?;
    let security = s.security.unwrap_or(Security::Starttls);
    let host = nonempty(s.host, "smtp.host")?;
    plain_transport(
        "smtp",
        &host,
        security,
        s.allow_insecure,
        !s.username.is_empty(),
    )?;
    Ok(SmtpSettings {
        host,
        port: s.port.unwrap_or(match security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::None => 25,
        }),
        security,
        username: s.username,
        password: s.password,
        timeout: secs(s.timeout_seconds, 30, "smtp.timeout_seconds")?,
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
