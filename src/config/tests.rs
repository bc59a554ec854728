//! The configuration's behaviour, pinned: defaults, the environment overlay
//! for every kind of value, and the exact one-line error for each kind of
//! mistake in the file or the environment.

use std::path::Path;

use super::*;
use crate::domain::types::Lang;

/// The test configuration that this module's tests, and other modules'
/// tests through [`settings`], start from. Kept in this one place so that it
/// can be swapped for a shared test configuration; the tests below change it
/// only through [`set`], [`unset`] and [`without`], never by its exact text.
/// The smallest file klachtd accepts: the shared test configuration
/// (tests/fixtures/klachtd.toml) with Anna as the only staff member and no
/// `[database]`, so the defaults show.
pub(crate) fn minimal() -> String {
    super::template::fill(&[
        ("{info}", Some("info@31solutions.test")),
        ("{anna}", Some("anna@31solutions.test")),
        ("{bram}", None),
        ("{carla}", None),
        ("{dirk}", None),
        ("{imap_port}", Some("1143")),
        ("{smtp_port}", Some("1025")),
        ("{password}", Some("geheim")),
        ("{poll_seconds}", Some("60")),
        ("{smtp_timeout_seconds}", Some("30")),
        ("{database_url}", None),
    ])
}

/// The minimal file's settings, for other modules' tests.
pub(crate) fn settings() -> Settings {
    load(&minimal(), &[]).expect("the minimal config loads")
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Settings::from_toml(text, Path::new("/etc/klachtd"), &env)
}

/// The one-line error `text` with `env` gives.
fn error(text: &str, env: &[(&str, &str)]) -> String {
    match load(text, env) {
        Ok(_) => panic!("expected an error from {env:?} and\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// The name of the section a line opens (`[imap]`, `[[staff]]`), if it does.
fn header(line: &str) -> Option<&str> {
    let l = line.trim();
    l.starts_with('[')
        .then(|| l.trim_matches(|c| c == '[' || c == ']').trim())
}

/// Whether `line` sets `key`.
fn sets(line: &str, key: &str) -> bool {
    line.trim()
        .strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// Whether a line inside the first `[section]` (or `[[section]]`) of a
/// text: call with each line in turn.
struct FirstSection<'a> {
    name: &'a str,
    seen: usize,
    inside: bool,
}

impl<'a> FirstSection<'a> {
    fn new(name: &'a str) -> Self {
        FirstSection {
            name,
            seen: 0,
            inside: false,
        }
    }

    /// Takes the next line: whether it lies inside the section (its header
    /// does not).
    fn inside(&mut self, line: &str) -> bool {
        if let Some(h) = header(line) {
            self.seen += usize::from(h == self.name);
            self.inside = h == self.name && self.seen == 1;
            return false;
        }
        self.inside
    }
}

/// `text` with `key = value` (TOML) in the first `[section]` (or
/// `[[section]]`): replaced where the key is set, else added; the section
/// is added when the text has none.
fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let new = format!("{key} = {value}");
    let mut first = FirstSection::new(section);
    let mut out = Vec::new();
    let mut done = false;
    for line in text.lines() {
        let was_inside = first.inside;
        let inside = first.inside(line);
        if was_inside && !inside && !done {
            out.push(new.clone());
            done = true;
        }
        if inside && !done && sets(line, key) {
            out.push(new.clone());
            done = true;
        } else {
            out.push(line.to_string());
        }
    }
    if !done && first.inside {
        out.push(new);
    } else if !done {
        out.push(format!("\n[{section}]\n{new}"));
    }
    out.join("\n") + "\n"
}

/// `text` without `key` in the first `[section]` (or `[[section]]`).
fn unset(text: &str, section: &str, key: &str) -> String {
    let mut first = FirstSection::new(section);
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !(first.inside(line) && sets(line, key)))
        .collect();
    kept.join("\n") + "\n"
}

/// `text` without its `[section]` (every `[[section]]` for an array).
fn without(text: &str, section: &str) -> String {
    let mut current = None;
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            if let Some(h) = header(line) {
                current = Some(h.to_string());
            }
            current.as_deref() != Some(section)
        })
        .collect();
    kept.join("\n") + "\n"
}

#[test]
fn the_editing_helpers_change_only_what_they_name() {
    let s = load(&set(&minimal(), "imap", "port", "2143"), &[]).unwrap();
    assert_eq!((s.imap.port, s.smtp.port), (2143, 1025));
    let s = load(&set(&minimal(), "procedure", "ack_working_days", "7"), &[]).unwrap();
    assert_eq!(s.procedure.ack_working_days, 7);
    let s = load(&set(&minimal(), "staff", "aliases", "[\"A\"]"), &[]).unwrap();
    assert_eq!(s.staff[0].aliases, ["A"]);
    let s = load(&unset(&minimal(), "smtp", "port"), &[]).unwrap();
    assert_eq!((s.imap.port, s.smtp.port), (1143, 25));
    assert!(!without(&minimal(), "imap").contains("[imap]"));
    assert!(without(&minimal(), "imap").contains("[smtp]"));
}

#[test]
fn the_example_file_is_valid() {
    let text = include_str!("../../config/klachtd.example.toml");
    // The regulation file it names lives in /etc on a real install.
    let regulation = concat!(env!("CARGO_MANIFEST_DIR"), "/config/klachtenreglement.txt");
    let env = [("KLACHTD__ORGANISATION__REGULATION_FILE", regulation)];
    if let Err(e) = load(text, &env) {
        panic!("config/klachtd.example.toml: {e}");
    }
    // Its commented-out keys too, uncommented one by one.
    for line in text
        .lines()
        .filter(|l| l.starts_with("# ") && l.contains(" = "))
    {
        let key = line.trim_start_matches("# ");
        // Paths are checked against the file system of a real install.
        let path = key.contains("_dir ") || key.contains("_file ");
        if key.split_whitespace().count() < 3 || key.contains(". ") || path {
            continue;
        }
        let on = text.replacen(line, key, 1);
        if let Err(e) = load(&on, &env) {
            panic!("config/klachtd.example.toml with {key:?}: {e}");
        }
    }
}

#[test]
fn a_minimal_file_gets_the_regulation_defaults() {
    let s = load(&minimal(), &[]).unwrap();
    assert_eq!(s.procedure.ack_working_days, 5);
    assert_eq!(s.procedure.response_working_days, 20);
    assert_eq!(s.imap.folder, "INBOX");
    assert_eq!(s.database_url, "sqlite:///etc/klachtd/var/klachtd.db");
    assert_eq!(s.organisation.message_id_domain, "klachtd.31solutions.test");
}

#[test]
fn every_default_is_kept() {
    let text = unset(&unset(&minimal(), "imap", "port"), "smtp", "port");
    let text = unset(&unset(&text, "imap", "security"), "smtp", "security");
    let s = load(&text, &[]).unwrap();
    let o = &s.organisation;
    assert_eq!(o.timezone.iana_name(), Some("Europe/Amsterdam"));
    assert_eq!(o.language, Lang::Nl);
    assert!(o.aliases.is_empty() && o.phone.is_empty() && o.website.is_empty());
    assert!(o.regulation_file.is_none() && o.templates_dir.is_none());
    assert_eq!(o.external_body, "");
    let i = &s.imap;
    assert_eq!((i.security, i.port), (Security::Tls, 993));
    assert_eq!(
        (i.folder.as_str(), i.sent_folder.as_deref()),
        ("INBOX", None)
    );
    assert_eq!(i.keyword, "$Klacht");
    assert_eq!(i.timeout.as_secs(), 30);
    assert_eq!(i.idle_renew.as_secs(), 600);
    assert_eq!(i.poll.as_secs(), 60);
    assert_eq!((s.smtp.security, s.smtp.port), (Security::Starttls, 587));
    assert!(s.smtp.username.is_empty() && matches!(s.smtp.auth, crate::config::Auth::None));
    assert_eq!(s.smtp.timeout.as_secs(), 30);
    let p = &s.procedure;
    assert_eq!(
        (
            p.ack_working_days,
            p.response_working_days,
            p.reminder_working_days,
            p.reply_reminder_working_days,
            p.auto_replies_per_sender_per_day,
            p.auto_replies_per_hour
        ),
        (5, 20, 3, 2, 3, 60)
    );
    assert_eq!(s.intake.max_message_bytes, 16 * 1024 * 1024);
    assert_eq!(s.intake.max_attachment_bytes, 10 * 1024 * 1024);
    assert_eq!(s.intake.complaint_folder.as_deref(), Some("Klachten"));
    assert!(s.intake.sender_auth.methods.is_empty());
    let kept = load(&set(&minimal(), "intake", "complaint_folder", "\"\""), &[]).unwrap();
    assert_eq!(
        kept.intake.complaint_folder, None,
        "\"\" keeps case mail in place"
    );
    let en = load(&minimal(), &[("KLACHTD__ORGANISATION__LANGUAGE", "en")]).unwrap();
    assert_eq!(en.intake.complaint_folder.as_deref(), Some("Complaints"));
    assert_eq!(s.digest_at.to_string(), "08:30:00");
    assert!(!s.digest_send_empty);
    assert_eq!(s.triage_mail, TriageMail::Each);
    assert_eq!(s.escalation.second_level_working_days, 5);
    assert!(s.escalation.second_level_to.is_empty() && s.escalation.fallback.is_none());
    assert_eq!(s.health.intake_alarm_after.as_secs(), 60 * 60);
    assert_eq!(s.health.outbox_alarm_after.as_secs(), 30 * 60);
    assert_eq!(s.report_every, ReportEvery::Month);
    assert_eq!(s.retention_months, 24);
    assert!(s.purge_mailbox);
    assert_eq!(s.log_level, "info");
    // Goede Vrijdag 2026 (3 April) is a working day, Bevrijdingsdag only in
    // lustrum years.
    let d = |y, m, d| jiff::civil::date(y, m, d);
    assert!(s.calendar.is_working_day(d(2026, 4, 3)));
    assert!(s.calendar.is_working_day(d(2026, 5, 5)));
    assert!(!s.calendar.is_working_day(d(2025, 5, 5)));
    let tls = load(&set(&text, "smtp", "security", "\"tls\""), &[]).unwrap();
    assert_eq!(tls.smtp.port, 465);
    let plain = load(&set(&text, "imap", "security", "\"none\""), &[]).unwrap();
    assert_eq!((plain.imap.port, plain.smtp.port), (143, 587));
}

#[test]
fn environment_overrides_win_and_keep_their_type() {
    let s = load(
        &minimal(),
        &[
            ("KLACHTD__IMAP__PASSWORD", "12345"),
            ("KLACHTD__IMAP__PORT", "2143"),
            ("PATH", "/bin"),
        ],
    )
    .unwrap();
    assert_eq!(s.imap.auth.password().map(Secret::expose), Some("12345"));
    assert_eq!(s.imap.port, 2143);
}

#[test]
fn an_integer_from_the_environment_replaces_or_adds_the_key() {
    let s = load(
        &minimal(),
        &[
            // in the file
            ("KLACHTD__SMTP__PORT", "2525"),
            // not in the file, in a section the file has
            ("KLACHTD__IMAP__POLL_SECONDS", "+15"),
            // in a section the file lacks
            ("KLACHTD__PROCEDURE__ACK_WORKING_DAYS", "7"),
            ("KLACHTD__INTAKE__MAX_MESSAGE_BYTES", "100000"),
        ],
    )
    .unwrap();
    assert_eq!(s.smtp.port, 2525);
    assert_eq!(s.imap.poll.as_secs(), 15);
    assert_eq!(s.procedure.ack_working_days, 7);
    assert_eq!(s.intake.max_message_bytes, 100_000);
}

#[test]
fn a_boolean_from_the_environment_is_true_or_false() {
    let s = load(
        &set(&minimal(), "privacy", "purge_mailbox", "true"),
        &[
            ("KLACHTD__PRIVACY__PURGE_MAILBOX", "false"),
            ("KLACHTD__DIGEST__SEND_EMPTY", "true"),
            ("KLACHTD__CALENDAR__GOOD_FRIDAY_OFF", "true"),
        ],
    )
    .unwrap();
    assert!(!s.purge_mailbox);
    assert!(s.digest_send_empty);
    assert!(!s.calendar.is_working_day(jiff::civil::date(2026, 4, 3)));
}

#[test]
fn a_list_from_the_environment_is_comma_separated() {
    let s = load(
        &set(
            &minimal(),
            "organisation",
            "aliases",
            "[\"old@31solutions.test\"]",
        ),
        &[
            (
                "KLACHTD__ORGANISATION__ALIASES",
                "a@31solutions.test, b@31solutions.test",
            ),
            (
                "KLACHTD__CALENDAR__CLOSURES",
                "2026-12-24,2026-12-28..2026-12-31",
            ),
            (
                "KLACHTD__ESCALATION__SECOND_LEVEL_TO",
                "directie@31solutions.test,",
            ),
        ],
    )
    .unwrap();
    let aliases: Vec<&str> = s.organisation.aliases.iter().map(|a| a.as_str()).collect();
    assert_eq!(aliases, ["a@31solutions.test", "b@31solutions.test"]);
    assert!(!s.calendar.is_working_day(jiff::civil::date(2026, 12, 24)));
    assert!(!s.calendar.is_working_day(jiff::civil::date(2026, 12, 29)));
    assert!(s.calendar.is_working_day(jiff::civil::date(2026, 12, 23)));
    let to: Vec<&str> = s
        .escalation
        .second_level_to
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(to, ["directie@31solutions.test"]);
    // An empty value is an empty list, whether the file has the list or not.
    let s = load(&minimal(), &[("KLACHTD__ORGANISATION__ALIASES", "")]).unwrap();
    assert!(s.organisation.aliases.is_empty());
    let s = load(
        &set(
            &minimal(),
            "organisation",
            "aliases",
            "[\"x@31solutions.test\"]",
        ),
        &[("KLACHTD__ORGANISATION__ALIASES", " ,")],
    )
    .unwrap();
    assert!(s.organisation.aliases.is_empty());
}

#[test]
fn a_string_from_the_environment_stays_a_string_whatever_it_looks_like() {
    let s = load(
        &minimal(),
        &[
            ("KLACHTD__IMAP__PASSWORD", "12345"),
            ("KLACHTD__SMTP__USERNAME", "info"),
            ("KLACHTD__SMTP__PASSWORD", "true"),
            ("KLACHTD__ORGANISATION__NAME", "1,2,3"),
            ("KLACHTD__IMAP__FOLDER", "Klachten 2026"),
            ("KLACHTD__IMAP__SENT_FOLDER", "Verzonden"),
            ("KLACHTD__LOG__LEVEL", "debug"),
        ],
    )
    .unwrap();
    assert_eq!(s.imap.auth.password().map(Secret::expose), Some("12345"));
    assert_eq!(s.smtp.auth.password().map(Secret::expose), Some("true"));
    assert_eq!(s.organisation.name, "1,2,3");
    assert_eq!(s.imap.folder, "Klachten 2026");
    assert_eq!(s.imap.sent_folder.as_deref(), Some("Verzonden"));
    assert_eq!(s.log_level, "debug");
}

#[test]
fn a_choice_from_the_environment_names_its_variant() {
    let s = load(
        &minimal(),
        &[
            ("KLACHTD__IMAP__SECURITY", "tls"),
            ("KLACHTD__REPORT__EVERY", "quarter"),
            ("KLACHTD__CALENDAR__LIBERATION_DAY", "every_year"),
            ("KLACHTD__DIGEST__TRIAGE_MAIL", "digest"),
        ],
    )
    .unwrap();
    assert_eq!(s.imap.security, Security::Tls);
    assert_eq!(s.imap.port, 1143, "the file's port stays");
    assert_eq!(s.report_every, ReportEvery::Quarter);
    assert_eq!(s.triage_mail, TriageMail::Digest);
    assert!(!s.calendar.is_working_day(jiff::civil::date(2026, 5, 5)));
}

#[test]
fn the_environment_fills_a_section_the_file_lacks() {
    let s = load(
        &without(&minimal(), "smtp"),
        &[
            ("KLACHTD__SMTP__HOST", "smtp.31solutions.test"),
            ("KLACHTD__DATABASE__URL", "sqlite://var/x.db"),
            ("KLACHTD__DIGEST__AT", "09:15"),
        ],
    )
    .unwrap();
    assert_eq!(s.smtp.host, "smtp.31solutions.test");
    assert_eq!((s.smtp.security, s.smtp.port), (Security::Starttls, 587));
    assert_eq!(s.database_url, "sqlite:///etc/klachtd/var/x.db");
    assert_eq!(s.digest_at.to_string(), "09:15:00");
}

#[test]
fn variable_names_are_case_insensitive_after_the_prefix_and_others_ignored() {
    let s = load(
        &minimal(),
        &[
            ("KLACHTD__imap__Port", "2143"),
            ("KLACHTD_LOG", "debug"),
            ("KLACHTD_CONFIG", "/elsewhere.toml"),
            ("klachtd__imap__host", "elsewhere"),
            ("IMAP__HOST", "elsewhere"),
        ],
    )
    .unwrap();
    assert_eq!((s.imap.port, s.imap.host.as_str()), (2143, "127.0.0.1"));
    assert_eq!(s.log_level, "info");
}

#[test]
fn passwords_never_show_in_debug_output() {
    let s = load(&minimal(), &[]).unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("geheim"), "{dbg}");
    assert!(dbg.contains("***"));
}

#[test]
fn every_error_is_one_line_that_names_the_key() {
    type Case<'a> = (String, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (unset(&minimal(), "imap", "host"), &[], "imap.host"),
        (
            set(
                &minimal(),
                "organisation",
                "address",
                "\"info-at-31solutions\"",
            ),
            &[],
            "organisation.address",
        ),
        (set(&minimal(), "smtp", "hots", "\"x\""), &[], "smtp.hots"),
        (minimal(), &[("KLACHTD__IMAP__PORT", "many")], "imap.port"),
        (
            minimal(),
            &[("KLACHTD__INTAKE__COMPLAINT_FOLDER", "inbox")],
            "intake.complaint_folder",
        ),
        (
            minimal(),
            &[("KLACHTD__DIGEST__AT", "half nine")],
            "digest.at",
        ),
        (
            minimal(),
            &[("KLACHTD__DIGEST__TRIAGE_MAIL", "weekly")],
            "digest.triage_mail",
        ),
        (
            minimal(),
            &[("KLACHTD__DATABASE__URL", "mysql://x")],
            "database.url",
        ),
        (
            minimal(),
            &[("KLACHTD__CALENDAR__CLOSURES", "2026-13-01")],
            "calendar.closures",
        ),
        (
            set(&minimal(), "staff", "roles", "[\"boss\"]"),
            &[],
            "staff[0].roles",
        ),
        (
            set(&minimal(), "staff", "roles", "[\"handler\"]"),
            &[],
            "staff",
        ),
        (
            minimal(),
            &[("KLACHTD__ORGANISATION__TIMEZONE", "Mars/Olympus")],
            "organisation.timezone",
        ),
    ];
    for (text, env, key) in cases {
        let e = error(text, env);
        assert!(e.contains(key), "{e:?} should name {key}");
        assert_eq!(e.lines().count(), 1, "{e:?}");
    }
}

/// Checks each `(what, got, want)`, reporting every mismatch at once.
fn assert_errors(cases: Vec<(&str, String, &str)>) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(what, got, want)| format!("{what}:\n   got: {got}\n  want: {want}"))
        .collect();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    for (what, got, _) in &cases {
        assert_eq!(got.lines().count(), 1, "{what}: {got:?}");
        assert!(got.starts_with("config: "), "{what}: {got:?}");
    }
}

/// The file's values of the wrong type, and TOML that does not parse.
#[test]
fn values_of_the_wrong_type_in_the_file() {
    let m = &minimal();
    let file = |text: String| error(&text, &[]);
    assert_errors(vec![
        (
            "TOML syntax",
            file("[organisation]\nname = \"x\"\n[imap\n".into()),
            "config: file: TOML parse error at line 3, column 6",
        ),
        (
            "a section twice",
            file("[imap]\nhost = \"x\"\n\n[imap]\n".into()),
            "config: file: TOML parse error at line 4, column 1",
        ),
        (
            "a string for an integer",
            file(set(m, "imap", "port", "\"x\"")),
            "config: imap.port: invalid type: string \"x\", expected u16",
        ),
        (
            "an integer out of range",
            file(set(m, "imap", "port", "70000")),
            "config: imap.port: invalid value: integer `70000`, expected u16",
        ),
        (
            "a negative integer",
            file(set(m, "procedure", "ack_working_days", "-1")),
            "config: procedure.ack_working_days: invalid value: integer `-1`, expected u32",
        ),
        (
            "a string for a boolean",
            file(set(m, "calendar", "good_friday_off", "\"yes\"")),
            "config: calendar.good_friday_off: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "an integer for a boolean",
            file(set(m, "privacy", "purge_mailbox", "1")),
            "config: privacy.purge_mailbox: invalid type: integer `1`, expected a boolean",
        ),
        (
            "an integer for a string",
            file(set(m, "log", "level", "3")),
            "config: log.level: invalid type: integer `3`, expected a string",
        ),
        (
            "a string for a list",
            file(set(m, "organisation", "aliases", "\"x@y.test\"")),
            "config: organisation.aliases: invalid type: string \"x@y.test\", expected a sequence",
        ),
        (
            "an integer in a list",
            file(set(m, "organisation", "aliases", "[1]")),
            "config: organisation.aliases[0]: invalid type: integer `1`, expected a string",
        ),
        (
            "a string for a staff member's list",
            file(set(m, "staff", "roles", "\"handler\"")),
            "config: staff[0].roles: invalid type: string \"handler\", expected a sequence",
        ),
        (
            "a value for a section",
            file(m.replacen("[imap]", "imap = 5\n[imap2]", 1)),
            "config: imap2: unknown field `imap2`, expected one of `organisation`, `imap`, \
             `smtp`, `oauth2`, `database`, `procedure`, `calendar`, `intake`, `digest`, `escalation`, \
             `health`, `report`, `privacy`, `staff`, `log`, `metrics`",
        ),
        (
            "a table for the staff list",
            file(m.replace("[[staff]]", "[staff]")),
            "config: staff: invalid type: map, expected a sequence",
        ),
    ]);
}

/// Keys the file should not have, or should.
#[test]
fn unknown_and_missing_keys_in_the_file() {
    let m = &minimal();
    let file = |text: String| error(&text, &[]);
    assert_errors(vec![
        (
            "an unknown key",
            file(set(m, "smtp", "hots", "\"x\"")),
            "config: smtp.hots: unknown field `hots`, expected one of `host`, `port`, \
             `security`, `username`, `auth`, `password`, `timeout_seconds`, `connections`, `allow_insecure`",
        ),
        (
            "an unknown key of a staff member",
            file(set(m, "staff", "phone", "\"1\"")),
            "config: staff[0].phone: unknown field `phone`, expected one of `name`, `email`, `aliases`, \
             `roles`",
        ),
        (
            "an unknown section",
            file(set(m, "foo", "bar", "1")),
            "config: foo: unknown field `foo`, expected one of `organisation`, `imap`, `smtp`, \
             `oauth2`, `database`, `procedure`, `calendar`, `intake`, `digest`, `escalation`, `health`, \
             `report`, `privacy`, `staff`, `log`, `metrics`",
        ),
        (
            "an unknown choice",
            file(set(m, "imap", "security", "\"ssl\"")),
            "config: imap.security: unknown variant `ssl`, expected one of `tls`, `starttls`, `none`",
        ),
        (
            "an unknown choice of two",
            file(set(m, "report", "every", "\"week\"")),
            "config: report.every: unknown variant `week`, expected `month` or `quarter`",
        ),
        (
            "an unknown liberation day",
            file(set(m, "calendar", "liberation_day", "\"sometimes\"")),
            "config: calendar.liberation_day: unknown variant `sometimes`, expected one of `never`, \
             `lustrum`, `every_year`",
        ),
        (
            "a missing section",
            file(without(m, "imap")),
            "config: imap: section missing",
        ),
        (
            "a missing organisation",
            file(without(m, "organisation")),
            "config: organisation: section missing",
        ),
        (
            "a missing smtp section",
            file(without(m, "smtp")),
            "config: smtp: section missing",
        ),
        (
            "a missing required key",
            file(unset(m, "imap", "host")),
            "config: imap.host: missing (required)",
        ),
        (
            "a missing name",
            file(unset(m, "organisation", "name")),
            "config: organisation.name: missing (required)",
        ),
        (
            "an empty required key",
            file(set(m, "imap", "username", "\" \"")),
            "config: imap.username: must not be empty",
        ),
        (
            "a staff member without an address",
            file(unset(m, "staff", "email")),
            "config: staff[0].email: missing (required)",
        ),
        (
            "a staff member without a name",
            file(unset(m, "staff", "name")),
            "config: staff[0].name: missing (required)",
        ),
    ]);
}

/// `[organisation]`, `[imap]`, `[smtp]` and `[database]` values that fail their check.
#[test]
fn invalid_values_for_the_mailbox_in_the_file() {
    let m = &minimal();
    let file = |text: String| error(&text, &[]);
    assert_errors(vec![
        (
            "an invalid address",
            file(set(m, "organisation", "address", "\"info-at-31solutions\"")),
            "config: organisation.address: \"info-at-31solutions\" is not a valid email address",
        ),
        (
            "an invalid regulation URL",
            file(set(m, "organisation", "regulation_url", "\"ftp://x\"")),
            "config: organisation.regulation_url: must start with https:// or http://",
        ),
        (
            "an unknown language",
            file(set(m, "organisation", "language", "\"de\"")),
            "config: organisation.language: \"de\": expected nl or en",
        ),
        (
            "an unknown time zone",
            file(set(m, "organisation", "timezone", "\"Mars/Olympus\"")),
            "config: organisation.timezone: unknown time zone \"Mars/Olympus\"",
        ),
        (
            "a missing regulation file",
            file(set(m, "organisation", "regulation_file", "\"nope.txt\"")),
            "config: organisation.regulation_file: /etc/klachtd/nope.txt does not exist",
        ),
        (
            "a missing templates folder",
            file(set(m, "organisation", "templates_dir", "\"nope\"")),
            "config: organisation.templates_dir: /etc/klachtd/nope is not a folder",
        ),
        (
            "an invalid keyword",
            file(set(m, "imap", "keyword", "\"a b\"")),
            "config: imap.keyword: not a valid IMAP keyword",
        ),
        (
            "IDLE renewed too late",
            file(set(m, "imap", "idle_renew_seconds", "1800")),
            "config: imap.idle_renew_seconds: must be below 29 minutes (RFC 2177)",
        ),
        (
            "a zero timeout",
            file(set(m, "smtp", "timeout_seconds", "0")),
            "config: smtp.timeout_seconds: must be at least 1",
        ),
        (
            "no SMTP sessions",
            file(set(m, "smtp", "connections", "0")),
            "config: smtp.connections: must be between 1 and 32",
        ),
        (
            "another database",
            file(set(m, "database", "url", "\"mysql://x\"")),
            "config: database.url: must start with sqlite:// or postgres://",
        ),
        (
            "an SQLite URL without a path",
            file(set(m, "database", "url", "\"sqlite://\"")),
            "config: database.url: sqlite:// needs a file path",
        ),
        (
            "an empty state folder",
            file(set(m, "database", "state_dir", "\" \"")),
            "config: database.state_dir: must not be empty",
        ),
    ]);
}

/// The outbox's in-flight markers: next to an SQLite register, or in
/// `database.state_dir` (relative to the configuration's folder), one
/// subfolder per PostgreSQL database named without user or password.
#[test]
fn in_flight_markers_have_a_folder_per_register() {
    let marker_dir = |state_dir: Option<&str>, url: &str| {
        let mut text = set(&minimal(), "database", "url", &format!("{url:?}"));
        if let Some(d) = state_dir {
            text = set(&text, "database", "state_dir", &format!("{d:?}"));
        }
        load(&text, &[]).unwrap().marker_dir
    };
    let p = |s: &str| Some(std::path::PathBuf::from(s));
    assert_eq!(
        load(&minimal(), &[]).unwrap().marker_dir,
        p("/etc/klachtd/var/outbox-inflight")
    );
    assert_eq!(
        marker_dir(Some("/srv/k"), "sqlite://var/k.db"),
        p("/srv/k/outbox-inflight")
    );
    assert_eq!(marker_dir(None, "sqlite://:memory:"), None);
    assert_eq!(
        marker_dir(
            Some("state"),
            "postgres://klachtd:geheim@db.example.nl:5433/klachtd"
        ),
        p("/etc/klachtd/state/outbox-inflight/db.example.nl-5433-klachtd")
    );
    assert_eq!(
        marker_dir(Some("/srv/k"), "postgresql://u@[::1]/reg?sslmode=disable"),
        p("/srv/k/outbox-inflight/___1_-5432-reg")
    );
}

/// `[procedure]` and `[calendar]` values that fail their check.
#[test]
fn invalid_terms_and_days_in_the_file() {
    let m = &minimal();
    let file = |text: String| error(&text, &[]);
    assert_errors(vec![
        (
            "a zero term",
            file(set(m, "procedure", "ack_working_days", "0")),
            "config: procedure.ack_working_days: must be between 1 and 365",
        ),
        (
            "a response term too long",
            file(set(m, "procedure", "response_working_days", "366")),
            "config: procedure.response_working_days: must be between 1 and 365",
        ),
        (
            "a reminder after the due date",
            file(set(m, "procedure", "reminder_working_days", "20")),
            "config: procedure.reminder_working_days: must be less than \
             procedure.response_working_days (0 turns reminders off)",
        ),
        (
            "a reply reminder too late",
            file(set(m, "procedure", "reply_reminder_working_days", "61")),
            "config: procedure.reply_reminder_working_days: must be between 0 (off) and 60",
        ),
        (
            "an acknowledgement after the answer",
            file(set(
                &set(m, "procedure", "ack_working_days", "10"),
                "procedure",
                "response_working_days",
                "8",
            )),
            "config: procedure.ack_working_days: must not exceed \
             procedure.response_working_days",
        ),
        (
            "an invalid closure day",
            file(set(m, "calendar", "closures", "[\"2026-13-01\"]")),
            "config: calendar.closures: invalid closure day \"2026-13-01\": \"2026-13-01\" is \
             not a valid date (failed to parse two digit integer as month: parameter 'month' \
             is not in the required range of 1..=12)",
        ),
    ]);
}

/// `intake.sender_auth`: from the file or the environment, the keys each
/// method needs, and a lone `trusted_authserv_id` as before the list.
#[test]
fn sender_auth_methods_and_their_keys() {
    use crate::config::SenderAuthMethod as M;
    let m = &minimal();
    let text = set(
        &set(
            m,
            "intake",
            "sender_auth",
            "[\"exchange-internal\", \"postfix-authenticated-sender\"]",
        ),
        "intake",
        "trusted_submission_host",
        "\" mail.example.nl \"",
    );
    let a = load(&text, &[]).unwrap().intake.sender_auth;
    assert_eq!(
        a.methods,
        [M::ExchangeInternal, M::PostfixAuthenticatedSender]
    );
    assert_eq!(a.submission_host.as_deref(), Some("mail.example.nl"));
    let env = [
        ("KLACHTD__INTAKE__SENDER_AUTH", "authentication-results"),
        ("KLACHTD__INTAKE__TRUSTED_AUTHSERV_ID", "mx.example.nl"),
    ];
    let a = load(m, &env).unwrap().intake.sender_auth;
    assert_eq!(a.methods, [M::AuthenticationResults]);
    let a = load(
        &set(m, "intake", "trusted_authserv_id", "\"mx.example.nl\""),
        &[],
    )
    .unwrap()
    .intake
    .sender_auth;
    assert_eq!(a.methods, [M::AuthenticationResults]);
    assert_eq!(a.authserv_id.as_deref(), Some("mx.example.nl"));
    let file = |text: String| error(&text, &[]);
    assert_errors(vec![
        (
            "authentication-results without the server's id",
            file(set(
                m,
                "intake",
                "sender_auth",
                "[\"authentication-results\"]",
            )),
            "config: intake.trusted_authserv_id: is needed for sender_auth \
             \"authentication-results\": the authserv-id your receiving server writes in \
             Authentication-Results (e.g. \"mx.example.nl\")",
        ),
        (
            "postfix without the host",
            file(set(
                m,
                "intake",
                "sender_auth",
                "[\"postfix-authenticated-sender\"]",
            )),
            "config: intake.trusted_submission_host: is needed for sender_auth \
             \"postfix-authenticated-sender\": the host name Postfix writes after \"by\" in \
             its Received line (its myhostname)",
        ),
    ]);
    let e = file(set(m, "intake", "sender_auth", "[\"spf\"]"));
    assert!(e.starts_with("config: intake.sender_auth"), "{e}");
}

/// `[intake]`, `[digest]`, `[escalation]`, `[health]` and `[[staff]]` values that fail their check.
#[test]
fn invalid_intake_digest_escalation_and_staff_in_the_file() {
    let m = &minimal();
    let file = |text: String| error(&text, &[]);
    assert_errors(vec![
        (
            "a complaint folder that is the watched folder",
            file(set(m, "intake", "complaint_folder", "\"inbox\"")),
            "config: intake.complaint_folder: must differ from imap.folder (\"INBOX\"): case \
             mail is moved out of the folder klachtd watches",
        ),
        (
            "no automatic replies at all",
            file(set(m, "procedure", "auto_replies_per_hour", "0")),
            "config: procedure.auto_replies_per_hour: must be at least 1",
        ),
        (
            "a tiny message limit",
            file(set(m, "intake", "max_message_bytes", "10")),
            "config: intake.max_message_bytes: must be at least 65536",
        ),
        (
            "a digest time that is no time",
            file(set(m, "digest", "at", "\"half nine\"")),
            "config: digest.at: \"half nine\": expected HH:MM",
        ),
        (
            "an unknown triage mail",
            file(set(m, "digest", "triage_mail", "\"weekly\"")),
            "config: digest.triage_mail: \"weekly\": expected \"each\" or \"digest\"",
        ),
        (
            "a second level too late",
            file(set(m, "escalation", "second_level_working_days", "61")),
            "config: escalation.second_level_working_days: must be between 0 (no second \
             level) and 60",
        ),
        (
            "an invalid second-level address",
            file(set(m, "escalation", "second_level_to", "[\"nope\"]")),
            "config: escalation.second_level_to: \"nope\" is not a valid email address",
        ),
        (
            "an invalid fallback",
            file(set(m, "escalation", "fallback", "\"nope\"")),
            "config: escalation.fallback: \"nope\" is not a valid email address",
        ),
        (
            "a zero alarm",
            file(set(m, "health", "intake_alarm_minutes", "0")),
            "config: health.intake_alarm_minutes: must be between 1 and 10080 (a week)",
        ),
        (
            "an alarm after more than a week",
            file(set(m, "health", "outbox_alarm_minutes", "10081")),
            "config: health.outbox_alarm_minutes: must be between 1 and 10080 (a week)",
        ),
        (
            "an unknown role",
            file(set(m, "staff", "roles", "[\"boss\"]")),
            "config: staff[0].roles: unknown role \"boss\" (expected handler or supervisor)",
        ),
        (
            "no supervisor",
            file(set(m, "staff", "roles", "[\"handler\"]")),
            "config: staff: at least one member needs the role \"supervisor\"",
        ),
        (
            "a staff member twice",
            file(format!(
                "{m}\n[[staff]]\nname = \"Anna 2\"\nemail = \"anna@31solutions.test\"\n"
            )),
            "config: staff[1].email: anna@31solutions.test is listed twice",
        ),
        (
            "the mailbox as staff",
            file(set(m, "staff", "email", "\"info@31solutions.test\"")),
            "config: staff[0].email: must not be the complaints mailbox itself",
        ),
    ]);
}

/// Variables whose text does not fit the setting's type: the same message whether the file has the key or not.
#[test]
fn environment_values_of_the_wrong_type() {
    let m = &minimal();
    let env = |var: &str, value: &str| error(m, &[(var, value)]);
    assert_errors(vec![
        (
            "not a number, in the file",
            env("KLACHTD__IMAP__PORT", "many"),
            "config: imap.port: KLACHTD__IMAP__PORT must be a whole number",
        ),
        (
            "not a number, with a space",
            env("KLACHTD__IMAP__PORT", " 5"),
            "config: imap.port: KLACHTD__IMAP__PORT must be a whole number",
        ),
        (
            "not a number, not in the file",
            env("KLACHTD__PROCEDURE__ACK_WORKING_DAYS", "many"),
            "config: procedure.ack_working_days: KLACHTD__PROCEDURE__ACK_WORKING_DAYS must be a \
             whole number",
        ),
        (
            "a negative number",
            env("KLACHTD__IMAP__PORT", "-1"),
            "config: imap.port: invalid value: integer `-1`, expected u16",
        ),
        (
            "a number out of range",
            env("KLACHTD__IMAP__PORT", "70000"),
            "config: imap.port: invalid value: integer `70000`, expected u16",
        ),
        (
            "a negative number, not in the file",
            env("KLACHTD__IMAP__TIMEOUT_SECONDS", "-5"),
            "config: imap.timeout_seconds: invalid value: integer `-5`, expected u64",
        ),
        (
            "not a boolean, in the file",
            error(
                &set(m, "calendar", "good_friday_off", "false"),
                &[("KLACHTD__CALENDAR__GOOD_FRIDAY_OFF", "yes")],
            ),
            "config: calendar.good_friday_off: KLACHTD__CALENDAR__GOOD_FRIDAY_OFF must be \
             true or false",
        ),
        (
            "not a boolean, not in the file",
            env("KLACHTD__CALENDAR__GOOD_FRIDAY_OFF", "yes"),
            "config: calendar.good_friday_off: KLACHTD__CALENDAR__GOOD_FRIDAY_OFF must be \
             true or false",
        ),
        (
            "an unknown choice",
            env("KLACHTD__IMAP__SECURITY", "ssl"),
            "config: imap.security: unknown variant `ssl`, expected one of `tls`, `starttls`, `none`",
        ),
        (
            "an unknown choice, not in the file",
            env("KLACHTD__CALENDAR__LIBERATION_DAY", "sometimes"),
            "config: calendar.liberation_day: unknown variant `sometimes`, expected one of `never`, \
             `lustrum`, `every_year`",
        ),
        (
            "a lower-case name",
            env("KLACHTD__imap__port", "many"),
            "config: imap.port: KLACHTD__imap__port must be a whole number",
        ),
    ]);
}

/// Variables that name no key klachtd knows.
#[test]
fn environment_names_that_fit_no_key() {
    let m = &minimal();
    let env = |var: &str, value: &str| error(m, &[(var, value)]);
    assert_errors(vec![
        (
            "an unknown key",
            env("KLACHTD__IMAP__HOTS", "x"),
            "config: imap.hots: unknown field `hots`, expected one of `host`, `port`, `security`, \
             `username`, `auth`, `password`, `folder`, `sent_folder`, `sent_copy`, `staff_copy_folder`, `keyword`, \
             `timeout_seconds`, \
             `idle_renew_seconds`, `poll_seconds`, `allow_insecure`",
        ),
        (
            "an unknown section",
            env("KLACHTD__FOO__BAR", "x"),
            "config: foo: unknown field `foo`, expected one of `organisation`, `imap`, `smtp`, \
             `oauth2`, `database`, `procedure`, `calendar`, `intake`, `digest`, `escalation`, `health`, \
             `report`, `privacy`, `staff`, `log`, `metrics`",
        ),
        (
            "a section alone",
            env("KLACHTD__IMAP", "x"),
            "config: KLACHTD__IMAP: environment overrides take the form KLACHTD__SECTION__KEY",
        ),
        (
            "a key too deep",
            env("KLACHTD__IMAP__TLS__X", "1"),
            "config: KLACHTD__IMAP__TLS__X: environment overrides take the form \
             KLACHTD__SECTION__KEY",
        ),
        (
            "an empty section name",
            env("KLACHTD____X", "1"),
            "config: KLACHTD____X: environment overrides take the form KLACHTD__SECTION__KEY",
        ),
        (
            "the staff list",
            env("KLACHTD__STAFF__NAME", "x"),
            "config: staff: is not a section",
        ),
        (
            "the staff list, not in the file",
            error(&without(m, "staff"), &[("KLACHTD__STAFF__NAME", "x")]),
            "config: staff: invalid type: map, expected a sequence",
        ),
    ]);
}

/// Variables of the right type whose value fails the setting's check.
#[test]
fn environment_values_that_fail_their_check() {
    let m = &minimal();
    let env = |var: &str, value: &str| error(m, &[(var, value)]);
    assert_errors(vec![
        (
            "a number that fails validation",
            env("KLACHTD__PROCEDURE__ACK_WORKING_DAYS", "0"),
            "config: procedure.ack_working_days: must be between 1 and 365",
        ),
        (
            "an invalid address in a list",
            env("KLACHTD__ORGANISATION__ALIASES", "bad"),
            "config: organisation.aliases: \"bad\" is not a valid email address",
        ),
        (
            "an invalid closure day",
            env("KLACHTD__CALENDAR__CLOSURES", "2026-13-01"),
            "config: calendar.closures: invalid closure day \"2026-13-01\": \"2026-13-01\" is \
             not a valid date (failed to parse two digit integer as month: parameter 'month' \
             is not in the required range of 1..=12)",
        ),
        (
            "an invalid address",
            env("KLACHTD__ORGANISATION__ADDRESS", "info"),
            "config: organisation.address: \"info\" is not a valid email address",
        ),
        (
            "a digest time that is no time",
            env("KLACHTD__DIGEST__AT", "half nine"),
            "config: digest.at: \"half nine\": expected HH:MM",
        ),
        (
            "an unknown triage mail",
            env("KLACHTD__DIGEST__TRIAGE_MAIL", "weekly"),
            "config: digest.triage_mail: \"weekly\": expected \"each\" or \"digest\"",
        ),
        (
            "another database",
            env("KLACHTD__DATABASE__URL", "mysql://x"),
            "config: database.url: must start with sqlite:// or postgres://",
        ),
        (
            "an unknown time zone",
            env("KLACHTD__ORGANISATION__TIMEZONE", "Mars/Olympus"),
            "config: organisation.timezone: unknown time zone \"Mars/Olympus\"",
        ),
        (
            "a complaint folder that is the watched folder",
            env("KLACHTD__INTAKE__COMPLAINT_FOLDER", "inbox"),
            "config: intake.complaint_folder: must differ from imap.folder (\"INBOX\"): case \
             mail is moved out of the folder klachtd watches",
        ),
        (
            "a section only the environment gives, incomplete",
            error(&without(m, "imap"), &[("KLACHTD__IMAP__HOST", "h")]),
            "config: imap.username: missing (required)",
        ),
    ]);
}

#[test]
fn no_plain_text_to_another_machine_and_never_a_password_in_clear() {
    let remote = |section: &str| set(&minimal(), section, "host", "\"mail.example.nl\"");
    // The shared test file talks plain text to 127.0.0.1: fine.
    assert!(load(&minimal(), &[]).is_ok());
    let imap = error(&remote("imap"), &[]);
    assert!(imap.starts_with("config: imap.security: "), "{imap}");
    assert!(imap.contains("password in clear"), "{imap}");
    // Even allow_insecure does not send a login in clear.
    let imap = error(&set(&remote("imap"), "imap", "allow_insecure", "true"), &[]);
    assert!(imap.starts_with("config: imap.security: "), "{imap}");

    // SMTP without a login: only with allow_insecure.
    let smtp = unset(
        &unset(&remote("smtp"), "smtp", "username"),
        "smtp",
        "password",
    );
    let e = error(&smtp, &[]);
    assert!(e.starts_with("config: smtp.security: "), "{e}");
    assert!(e.contains("smtp.allow_insecure = true"), "{e}");
    let ok = load(&set(&smtp, "smtp", "allow_insecure", "true"), &[]).expect("relay allowed");
    assert_eq!(ok.smtp.host, "mail.example.nl");
    // With a login, never.
    let with_login = set(
        &set(&smtp, "smtp", "allow_insecure", "true"),
        "smtp",
        "username",
        "\"info@31solutions.test\"",
    );
    assert!(error(&with_login, &[]).starts_with("config: smtp.security: "));
    // Loopback in any spelling is this machine.
    for host in ["\"localhost\"", "\"::1\"", "\"127.0.0.2\""] {
        assert!(
            load(&set(&minimal(), "imap", "host", host), &[]).is_ok(),
            "{host}"
        );
    }
}

/// The minimal file logging in with OAuth2 (no password anywhere), with
/// `[oauth2]` as given.
fn oauth2_file(section: &[(&str, &str)]) -> String {
    let mut text = set(
        &set(
            &unset(&minimal(), "imap", "password"),
            "imap",
            "auth",
            "\"oauth2\"",
        ),
        "smtp",
        "auth",
        "\"oauth2\"",
    );
    for (key, value) in section {
        text = set(&text, "oauth2", key, value);
    }
    text
}

#[test]
fn oauth2_for_microsoft_needs_only_tenant_and_client_id() {
    let text = oauth2_file(&[
        ("provider", "\"microsoft\""),
        ("tenant", "\"contoso.onmicrosoft.com\""),
        ("client_id", "\"abc\""),
    ]);
    let env = [("KLACHTD__OAUTH2__CLIENT_SECRET", "s3cret")];
    let s = load(&text, &env).unwrap();
    let source = s.oauth2.clone().expect("a token source");
    let o = source.settings();
    assert_eq!(
        o.token_url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(o.scope, "https://outlook.office365.com/.default");
    assert!(
        o.delegated_scope.contains("IMAP.AccessAsUser.All")
            && o.delegated_scope.contains("offline_access")
    );
    assert_eq!(o.client_secret.expose(), "s3cret");
    assert_eq!(o.mailbox, "info@31solutions.test");
    // IMAP and SMTP share the one source; SMTP logs in as the mailbox.
    assert!(matches!(&s.imap.auth, Auth::OAuth2(a) if std::sync::Arc::ptr_eq(a, &source)));
    assert!(matches!(&s.smtp.auth, Auth::OAuth2(a) if std::sync::Arc::ptr_eq(a, &source)));
    assert_eq!(s.smtp.username, "info@31solutions.test");
    // Exchange Online files SMTP mail in Sent itself.
    assert!(!s.imap.sent_copy);
    assert_eq!(source.describe(), "OAuth2 (microsoft, client credentials)");
    assert!(!format!("{:?}", s.imap).contains("s3cret"));
    // The refresh token of `oauth2 login` goes next to the register.
    assert_eq!(
        o.refresh_token_file.as_deref(),
        Some(Path::new("/etc/klachtd/var/oauth2-refresh-token"))
    );
}

#[test]
fn oauth2_mistakes_name_their_key() {
    let ms = |extra: &[(&str, &str)]| {
        let mut all = vec![("provider", "\"microsoft\""), ("client_id", "\"abc\"")];
        all.extend_from_slice(extra);
        oauth2_file(&all)
    };
    let cases: Vec<(String, &str)> = vec![
        (
            without(&oauth2_file(&[]), "oauth2"),
            "config: oauth2: section missing",
        ),
        (
            oauth2_file(&[("client_id", "\"abc\"")]),
            "config: oauth2.provider: missing",
        ),
        (
            oauth2_file(&[("provider", "\"outlook\"")]),
            "config: oauth2.provider: unknown variant",
        ),
        (ms(&[]), "config: oauth2.tenant: missing"),
        (ms(&[("tenant", "\"a/b\"")]), "config: oauth2.tenant: "),
        (
            ms(&[
                ("tenant", "\"t\""),
                ("token_url", "\"http://login.example.nl/token\""),
            ]),
            "config: oauth2.token_url: http:// only for this machine",
        ),
        (
            oauth2_file(&[
                ("provider", "\"generic\""),
                ("client_id", "\"x\""),
                ("scope", "\"s\""),
            ]),
            "config: oauth2.token_url: missing",
        ),
        (
            oauth2_file(&[
                ("provider", "\"generic\""),
                ("client_id", "\"x\""),
                ("token_url", "\"https://a/t\""),
            ]),
            "config: oauth2.scope: missing",
        ),
        (
            oauth2_file(&[("provider", "\"google\"")]),
            "config: oauth2.client_id: missing",
        ),
        (
            oauth2_file(&[
                ("provider", "\"google\""),
                ("service_account_file", "\"/nonexistent/sa.json\""),
            ]),
            "config: oauth2.service_account_file: cannot read /nonexistent/sa.json",
        ),
        (
            set(&minimal(), "imap", "auth", "\"none\""),
            "config: imap.auth: ",
        ),
        (
            set(&minimal(), "imap", "sent_copy", "\"sometimes\""),
            "config: imap.sent_copy: unknown variant",
        ),
    ];
    for (text, expected) in cases {
        let e = error(&text, &[]);
        assert!(e.starts_with(expected), "{e}\nexpected: {expected}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    // Loopback may be plain http (a test, a local proxy).
    let local = ms(&[
        ("tenant", "\"t\""),
        ("token_url", "\"http://127.0.0.1:8080/token\""),
    ]);
    assert_eq!(
        load(&local, &[])
            .unwrap()
            .oauth2
            .unwrap()
            .settings()
            .token_url,
        "http://127.0.0.1:8080/token"
    );
}

#[test]
fn google_service_accounts_and_the_sent_copy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sa.json");
    let key = include_str!("../../tests/fixtures/oauth2/service-account-key.pem");
    let json = serde_json::json!({
        "type": "service_account",
        "client_email": "klachtd@project.iam.gserviceaccount.com",
        "private_key": key,
        "private_key_id": "k1",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    std::fs::write(&file, json.to_string()).unwrap();
    let path = format!("{:?}", file.display().to_string());
    let text = oauth2_file(&[("provider", "\"google\""), ("service_account_file", &path)]);
    let s = load(&text, &[]).unwrap();
    let source = s.oauth2.unwrap();
    assert_eq!(source.describe(), "OAuth2 (google, service account)");
    assert_eq!(source.settings().scope, "https://mail.google.com/");
    assert_eq!(
        source.settings().client_id,
        "klachtd@project.iam.gserviceaccount.com"
    );
    assert!(
        !s.imap.sent_copy,
        "Gmail files mail sent over SMTP in Sent itself"
    );
    assert!(
        load(&set(&text, "imap", "sent_copy", "\"append\""), &[])
            .unwrap()
            .imap
            .sent_copy
    );
    // A key file that is not one.
    std::fs::write(
        &file,
        "{\"client_email\": \"x\", \"private_key\": \"nope\"}",
    )
    .unwrap();
    let e = error(&text, &[]);
    assert!(
        e.starts_with("config: oauth2.service_account_file: the private_key in "),
        "{e}"
    );
    // Password logins keep their Sent copy; Gmail's host is known without OAuth2.
    assert!(load(&minimal(), &[]).unwrap().imap.sent_copy);
    let gmail = set(
        &set(&minimal(), "imap", "host", "\"imap.gmail.com\""),
        "imap",
        "security",
        "\"tls\"",
    );
    assert!(!load(&gmail, &[]).unwrap().imap.sent_copy);
}

#[test]
fn the_example_documents_every_oauth2_key() {
    let text = include_str!("../../config/klachtd.example.toml");
    let documented = |section: &str, key: &str| {
        let mut first = FirstSection::new(section);
        text.lines()
            .any(|l| first.inside(l) && sets(l.trim_start_matches("# "), key))
    };
    let keys = [
        ("imap", "auth"),
        ("imap", "sent_copy"),
        ("smtp", "auth"),
        ("oauth2", "provider"),
        ("oauth2", "tenant"),
        ("oauth2", "client_id"),
        ("oauth2", "client_secret"),
        ("oauth2", "service_account_file"),
        ("oauth2", "token_url"),
        ("oauth2", "scope"),
        ("oauth2", "refresh_token"),
        ("oauth2", "refresh_token_file"),
        ("oauth2", "device_url"),
    ];
    for (section, key) in keys {
        assert!(
            documented(section, key),
            "{section}.{key} is not in config/klachtd.example.toml"
        );
    }
}

#[test]
fn metrics_listen_is_an_address_and_port() {
    assert_eq!(load(&minimal(), &[]).unwrap().metrics_listen, None);
    let on = load(
        &set(&minimal(), "metrics", "listen", "\"127.0.0.1:9187\""),
        &[],
    )
    .unwrap();
    assert_eq!(on.metrics_listen, Some("127.0.0.1:9187".parse().unwrap()));
    let e = error(&set(&minimal(), "metrics", "listen", "\"localhost\""), &[]);
    assert!(
        e.starts_with("config: metrics.listen: \"localhost\" is not an address and port"),
        "{e}"
    );
}
