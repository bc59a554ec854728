//! Tests of the mail templates and their rendering. Every context is one
//! of the structs production builds (`super::context`); the samples below
//! fill them in.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::context::*;
use super::*;

const LANGS: [Lang; 2] = [Lang::Nl, Lang::En];

// ---------------------------------------------------------------- samples

fn org() -> Org<'static> {
    Org {
        name: "31Solutions",
        address: "info@31solutions.nl",
        regulation_url: "https://www.31solutions.nl/klachtenreglement",
        phone: "0653656932",
        website: "www.31solutions.nl",
    }
}

fn person(name: &str, email: &str) -> Person {
    Person {
        name: name.into(),
        email: email.into(),
    }
}

fn named(name: &'static str) -> Named<'static> {
    Named { name }
}

fn ack_ctx(missing: &[&'static str]) -> Ack<'static> {
    Ack {
        org: org(),
        reference: "KL-2026-0001".into(),
        client_name: "Jan Jansen".into(),
        original_subject: "Slechte sessie".into(),
        handler: person("Anna de Vries", "anna@31solutions.nl"),
        received: "20 november 2026".into(),
        response_due: "21 december 2026".into(),
        missing: missing.to_vec(),
        response_working_days: 20,
    }
}

fn handler_new_ctx(source: &'static str, client_email: &'static str) -> HandlerNew<'static> {
    HandlerNew {
        org: org(),
        reference: "KL-2026-0001".into(),
        handler: named("Anna de Vries"),
        client_name: "Jan <script>alert(1)</script> Jansen",
        client_email,
        client_phone: "0612345678",
        original_subject: "Klacht over <b>sessie</b>",
        received: "20 november 2026".into(),
        ack_due: "27 november 2026".into(),
        response_due: "21 december 2026".into(),
        category: "coaching",
        concerns: vec![person("Piet Coach", "piet@31solutions.nl")],
        missing: vec!["dates", "desired_outcome"],
        assignment_reason: "Anna is de enige beschikbare behandelaar die niet betrokken is.",
        body: "Ik ben ontevreden.\n<script>alert('x')</script>\nGroet, Jan",
        attachments: vec![
            Attachment {
                filename: "verslag.pdf",
                size_human: "120 kB".into(),
                stored: true,
            },
            Attachment {
                filename: "video.mp4",
                size_human: "80 MB".into(),
                stored: false,
            },
        ],
        source,
        note: None,
    }
}

fn handler_released_ctx() -> HandlerReleased<'static> {
    HandlerReleased {
        org: org(),
        reference: "KL-2026-0001".into(),
        original_subject: "Slechte sessie",
        old_handler: named("Bram Bakker"),
        new_handler: named("Carla Smit"),
        reason: "toegewezen door beheer",
        response_due: "21 december 2026".into(),
    }
}

fn undeliverable_ctx(what: &'static str) -> Undeliverable<'static> {
    Undeliverable {
        org: org(),
        recipient: named("Bram Bakker"),
        reference: "KL-2026-0001".into(),
        original_subject: "Slechte sessie",
        client_name: "Jan Jansen",
        client_email: "jan@example.nl",
        client_phone: "0612345678",
        what,
        reason: "RCPT TO: 550 5.1.1 user unknown",
    }
}

fn triage_ctx() -> Triage<'static> {
    Triage {
        org: org(),
        reference: "KL-2026-0003".into(),
        client_name: "Kees <script>",
        client_email: "kees@example.nl",
        original_subject: "Vraag over factuur",
        received: "20 november 2026".into(),
        reason: "Het bericht is twijfelachtig.",
        body: "Ik ben niet helemaal tevreden over de factuur.",
        score: "3".into(),
    }
}

fn unassigned_ctx() -> Unassigned<'static> {
    Unassigned {
        org: org(),
        reference: "KL-2026-0004".into(),
        original_subject: "Klacht over de coach",
        concerns: vec![
            person("Anna de Vries", "anna@31solutions.nl"),
            person("Piet Coach", "piet@31solutions.nl"),
        ],
        reason: "Alle behandelaars worden in de klacht genoemd.",
    }
}

fn client_reply_ctx() -> ClientReplyToHandler<'static> {
    ClientReplyToHandler {
        org: org(),
        reference: "KL-2026-0001".into(),
        client_name: "Jan Jansen",
        original_subject: "Slechte sessie",
        body: "Het ging om de sessie van 3 november. <i>Dank</i>".into(),
        response_due: "21 december 2026".into(),
        closed: false,
    }
}

fn regulation_ctx() -> Regulation<'static> {
    Regulation {
        org: org(),
        client_name: "Jan Jansen".into(),
        original_subject: "Reglement".into(),
        has_text: true,
        regulation_text: "KLACHTENREGLEMENT",
        paper: true,
    }
}

fn regulation_paper_ctx() -> RegulationPaper<'static> {
    RegulationPaper {
        client_name: "Jan Jansen",
        client_email: "jan@example.nl",
        original_subject: "Reglement",
        body: "Mag ik een papieren exemplaar?",
    }
}

fn to_client_ctx(kind: &'static str) -> ToClient<'static> {
    ToClient {
        org: org(),
        reference: "KL-2026-0001".into(),
        original_subject: "Slechte sessie",
        kind,
        text: "Beste Jan,\n\nWij bieden u <een> extra sessie aan.",
        staff: named("Anna de Vries"),
        response_due: "5 januari 2027".into(),
        reason: "de coach is ziek",
        external_body: "Geschillencommissie, Postbus 1, Den Haag",
    }
}

fn command_result_ctx(done: &[String]) -> CommandResult<'_> {
    CommandResult {
        org: org(),
        reference: "KL-2026-0001".into(),
        staff: named("Anna de Vries"),
        ok: true,
        error: "",
        done,
        status: "proposed",
        response_due: "21 december 2026".into(),
        original_subject: "Slechte sessie",
        their_subject: "RE: [KL-2026-0001] Nieuwe klacht",
        items: vec![],
    }
}

fn reminder_ctx(kind: &'static str) -> Reminder<'static> {
    Reminder {
        org: org(),
        reference: "KL-2026-0001".into(),
        recipient: named("Anna de Vries"),
        kind,
        original_subject: "Slechte sessie",
        client_name: "Jan Jansen",
        status_label: "in behandeling",
        response_due: "21 december 2026".into(),
        working_days_left: 3,
        extended: false,
        reply_at: "14 december 2026".into(),
        waiting_days: 2,
        is_handler: true,
    }
}

fn escalation_ctx(kind: &'static str, level: u8) -> Escalation<'static> {
    Escalation {
        org: org(),
        reference: "KL-2026-0001".into(),
        recipient: named("Carla Toezicht"),
        kind,
        level,
        original_subject: "Slechte sessie",
        client_name: "Jan Jansen",
        category: "coaching",
        status_label: "in behandeling",
        handler: Some(person("Anna de Vries", "anna@31solutions.nl")),
        due: "21 december 2026".into(),
        days_late: 2,
        extended: false,
        ack_sent: true,
        triage: false,
        last_activity: Some(Activity {
            at: "18 december 2026 14:05".into(),
            what: "antwoord aan de cliënt verstuurd".into(),
            actor: "Anna de Vries".into(),
        }),
        second_level_working_days: 5,
    }
}

/// One case row of the digest; `dates` are received, ack due and
/// response due.
fn digest_row(
    reference: &'static str,
    subject: &'static str,
    handler: &str,
    status_label: &'static str,
    (received, ack_due, response_due): (&str, &str, &str),
    days_left: i64,
    extended: bool,
) -> DigestRow<'static> {
    DigestRow {
        reference: reference.into(),
        subject,
        client_name: "Jan Jansen",
        status_label,
        handler: handler.into(),
        received: received.into(),
        ack_due: ack_due.into(),
        response_due: response_due.into(),
        days_left,
        extended,
        triage_reason: "",
        excerpt: String::new(),
    }
}

/// The digest's five cases: due soon, overdue, triage, new (and not yet
/// acknowledged, but not yet due) and unacknowledged past its date.
fn digest_rows(lang: Lang) -> [DigestRow<'static>; 5] {
    let (in_progress, received, triage) = status_labels(lang);
    let due_soon = digest_row(
        "KL-2026-0001",
        "Slechte sessie",
        "Anna de Vries",
        in_progress,
        ("20-11-2026", "27-11-2026", "24-12-2026"),
        3,
        false,
    );
    let overdue = digest_row(
        "KL-2026-0002",
        "Geen reactie",
        "Bram Bakker",
        in_progress,
        ("05-11-2026", "12-11-2026", "17-12-2026"),
        -2,
        true,
    );
    let triage_row = digest_row(
        "KL-2026-0003",
        "Vraag over <b>factuur</b>",
        "",
        triage,
        ("18-12-2026", "28-12-2026", ""),
        0,
        false,
    );
    let new = digest_row(
        "KL-2026-0004",
        "Coach <i>te laat</i>",
        "Anna de Vries",
        received,
        ("18-12-2026", "28-12-2026", "22-01-2027"),
        22,
        false,
    );
    let unacked = digest_row(
        "KL-2026-0005",
        "Sessie afgezegd",
        "",
        received,
        ("10-12-2026", "17-12-2026", "11-01-2027"),
        13,
        false,
    );
    [due_soon, overdue, triage_row, new, unacked]
}

/// In progress, received, triage.
fn status_labels(lang: Lang) -> (&'static str, &'static str, &'static str) {
    match lang {
        Lang::Nl => ("in behandeling", "ontvangen", "ter beoordeling"),
        Lang::En => ("in progress", "received", "awaiting review"),
    }
}

/// Five cases, each in one section: new, overdue, unacknowledged past its
/// date, due soon and triage; the four open ones again by status.
fn digest_ctx(lang: Lang) -> Digest<'static> {
    let (in_progress, received, _) = status_labels(lang);
    let [due_soon, overdue, triage_row, new, unacked] = digest_rows(lang);
    Digest {
        org: org(),
        recipient: named("Carla Toezicht"),
        day: "maandag 21 december 2026".into(),
        since: "vrijdag 18 december 2026 08:30".into(),
        reminder_working_days: 3,
        cases: DigestCases {
            counts: DigestCounts {
                new: 1,
                open: 4,
                due_soon: 1,
                overdue: 1,
                unacknowledged: 1,
                triage: 1,
                undeliverable: 0,
            },
            more: DigestCounts::default(),
            new_cases: vec![new.clone()],
            due_soon: vec![due_soon.clone()],
            overdue: vec![overdue.clone()],
            unacknowledged: vec![unacked.clone()],
            triage: vec![triage_row],
            undeliverable: vec![],
            open_by_status: vec![
                StatusGroup {
                    label: received,
                    cases: vec![new, unacked],
                    total: 2,
                    more: 0,
                },
                StatusGroup {
                    label: in_progress,
                    cases: vec![due_soon, overdue],
                    total: 2,
                    more: 0,
                },
            ],
        },
    }
}

fn health_ctx(what: &'static str, state: &'static str) -> Health<'static> {
    Health {
        org: org(),
        recipient: named("Carla Toezicht"),
        what,
        state,
        since: "23 november 2026 09:12".into(),
        minutes: 75,
        last_error: "IMAP login failed: authentication failed",
        count: 3,
        limit: 30,
        mailbox: "info@31solutions.nl",
    }
}

/// Renders the sample context of template `t` in `lang`; also returns the
/// context as the template sees it (JSON). Every template has a sample:
/// the match is exhaustive.
fn render_sample(r: &Renderer, lang: Lang, t: Template) -> anyhow::Result<(Rendered, Value)> {
    fn go<C: MailContext>(r: &Renderer, lang: Lang, ctx: &C) -> anyhow::Result<(Rendered, Value)> {
        Ok((r.render(lang, ctx)?, serde_json::to_value(ctx)?))
    }
    match t {
        Template::Ack => go(r, lang, &ack_ctx(&["nature", "dates", "desired_outcome"])),
        Template::HandlerNew => go(r, lang, &handler_new_ctx("email", "jan@example.nl")),
        Template::HandlerReleased => go(r, lang, &handler_released_ctx()),
        Template::Undeliverable => go(r, lang, &undeliverable_ctx("ack")),
        Template::Triage => go(r, lang, &triage_ctx()),
        Template::Unassigned => go(r, lang, &unassigned_ctx()),
        Template::ClientReplyToHandler => go(r, lang, &client_reply_ctx()),
        Template::Regulation => go(r, lang, &regulation_ctx()),
        Template::RegulationPaper => go(r, lang, &regulation_paper_ctx()),
        Template::ToClient => go(r, lang, &to_client_ctx("extension")),
        Template::CommandResult => {
            let done = ["voorstel aan de cliënt (art. 7)".to_string()];
            go(r, lang, &command_result_ctx(&done))
        }
        Template::Reminder => go(r, lang, &reminder_ctx("due_soon")),
        Template::Escalation => go(r, lang, &escalation_ctx("response", 1)),
        Template::Digest => go(r, lang, &digest_ctx(lang)),
        Template::Health => go(r, lang, &health_ctx("intake", "alarm")),
        Template::Report => {
            let sample = crate::report::mail::Sample::new(lang);
            go(r, lang, &sample.context())
        }
    }
}

/// The built-in templates, loaded once for all tests.
fn renderer() -> &'static Renderer {
    static R: OnceLock<Renderer> = OnceLock::new();
    R.get_or_init(|| Renderer::new(None).expect("built-in templates load"))
}

fn render<C: MailContext>(lang: Lang, ctx: &C) -> Rendered {
    renderer()
        .render(lang, ctx)
        .unwrap_or_else(|e| panic!("{}/{}: {e:#}", lang.as_str(), C::TEMPLATE.name()))
}

/// `ctx` as JSON with `edit` applied: for what a typed context cannot say.
fn edited<C: MailContext>(
    ctx: &C,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Value {
    let mut v = serde_json::to_value(ctx).expect("a context serialises");
    edit(v.as_object_mut().expect("a context is a JSON object"));
    v
}

#[test]
fn staff_mail_carries_the_reply_marker_and_client_mail_never_does() {
    let r = renderer();
    for lang in LANGS {
        for &t in Template::ALL {
            let (out, _) = render_sample(r, lang, t).unwrap();
            let to_staff = matches!(
                t,
                Template::HandlerNew
                    | Template::HandlerReleased
                    | Template::Triage
                    | Template::Unassigned
                    | Template::ClientReplyToHandler
                    | Template::CommandResult
                    | Template::Reminder
                    | Template::Escalation
                    | Template::Digest
            );
            for (part, body) in [("txt", &out.text), ("html", &out.html)] {
                assert_eq!(
                    body.contains(crate::mail::quote::REPLY_ABOVE),
                    to_staff,
                    "{}/{}.{part}",
                    lang.as_str(),
                    t.name()
                );
            }
            if to_staff {
                // The marker is the very first line of the text and
                // the first paragraph of the HTML.
                assert_eq!(
                    out.text.lines().next(),
                    Some(crate::mail::quote::REPLY_ABOVE),
                    "{}/{}.txt",
                    lang.as_str(),
                    t.name()
                );
                let first_p = out
                    .html
                    .split("<p")
                    .nth(1)
                    .and_then(|p| p.split("</p>").next())
                    .unwrap_or_default();
                assert!(
                    first_p.ends_with(&format!(">{}", crate::mail::quote::REPLY_ABOVE)),
                    "{}/{}.html: {first_p}",
                    lang.as_str(),
                    t.name()
                );
            }
        }
    }
}

#[test]
fn client_mail_says_what_each_kind_means() {
    for (kind, nl, en) in [
        ("extension", "5 januari 2027", "5 januari 2027"),
        ("external", "Geschillencommissie", "Geschillencommissie"),
        ("proposal", "ons voorstel", "our proposal"),
        ("rejection", "externe instantie", "external body"),
        ("answer", "Anna de Vries", "Anna de Vries"),
    ] {
        for (lang, want) in [(Lang::Nl, nl), (Lang::En, en)] {
            let out = render(lang, &to_client_ctx(kind));
            assert!(
                out.text.contains(want),
                "{kind}/{}: {}",
                lang.as_str(),
                out.text
            );
            assert!(out.text.contains("Wij bieden u <een> extra sessie aan."));
            assert!(out.html.contains("u &lt;een&gt; extra"), "{}", out.html);
            assert!(out.subject.contains("[KL-2026-0001]"), "{}", out.subject);
            assert!(out.text.contains("Anna de Vries"));
        }
    }
}

/// A fresh, unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "klachtd-render-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn template_names_match_their_files() {
    let names: Vec<_> = Template::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        [
            "ack",
            "handler_new",
            "handler_released",
            "triage",
            "unassigned",
            "client_reply",
            "regulation",
            "regulation_paper",
            "to_client",
            "command_result",
            "reminder",
            "escalation",
            "digest",
            "health",
            "report",
            "undeliverable"
        ]
    );
    assert_eq!(BUILTIN.len(), Template::ALL.len() * PARTS.len() * 2);
}

#[test]
fn every_template_renders_in_both_languages_with_the_reference_in_the_subject() {
    let r = renderer();
    for lang in LANGS {
        for &t in Template::ALL {
            let (out, ctx) = render_sample(r, lang, t)
                .unwrap_or_else(|e| panic!("{}/{}: {e:#}", lang.as_str(), t.name()));
            let reference = ctx["reference"].as_str().unwrap_or_default().to_string();
            // Mail about a case carries its reference; the regulation
            // on request belongs to no case.
            let tag = if reference.is_empty() {
                String::new()
            } else {
                format!("[{reference}]")
            };
            // An answer in the client's thread is a reply: "Re: [KL-…] …".
            assert!(
                out.subject.trim_start_matches("Re: ").starts_with(&tag),
                "{}/{} subject {:?}",
                lang.as_str(),
                t.name(),
                out.subject
            );
            assert!(!out.subject.contains('\n'));
            assert!(
                out.text.contains(&reference),
                "{}/{}",
                lang.as_str(),
                t.name()
            );
            assert!(
                out.html.contains(&reference),
                "{}/{}",
                lang.as_str(),
                t.name()
            );
            assert!(out.html.starts_with("<!DOCTYPE html>"));
            assert!(out.html.contains(&format!("lang=\"{}\"", lang.as_str())));
            assert!(!out.text.contains("{{") && !out.html.contains("{{"));
            assert!(!out.text.contains("{%") && !out.html.contains("{%"));
            assert!(out.text.ends_with('\n') && !out.text.ends_with("\n\n"));
            assert!(
                !out.html.contains("src=\"http") && !out.html.contains("<link"),
                "no external resources"
            );
        }
    }
}

#[test]
fn plain_text_lines_stay_near_72_columns_apart_from_long_values() {
    for lang in LANGS {
        for &t in Template::ALL {
            let (out, ctx) = render_sample(renderer(), lang, t)
                .unwrap_or_else(|e| panic!("{}/{}: {e:#}", lang.as_str(), t.name()));
            for line in out.text.lines() {
                let width = line.chars().count();
                // A digest line per case may run over only through its
                // handler and subject; the fixed part stays short.
                if t == Template::Digest && line.starts_with("- KL-") {
                    let fixed = digest_case_values(&ctx)
                        .iter()
                        .fold(line.to_string(), |l, v| l.replace(v.as_str(), ""));
                    assert!(
                        fixed.chars().count() <= 56,
                        "{}/digest case line too long: {line:?}",
                        lang.as_str()
                    );
                    continue;
                }
                // Lines carrying a long value (URL, body) may run over.
                let has_value = line.contains("http")
                    || line.contains('@')
                    || line.contains("Anna is de enige")
                    || line.contains("Het ging om")
                    || line.contains("factuur");
                assert!(
                    width <= 76 || has_value,
                    "{}/{} line too long ({width}): {line:?}",
                    lang.as_str(),
                    t.name()
                );
            }
        }
    }
}

/// Every handler and subject in a digest context's case rows.
fn digest_case_values(ctx: &Value) -> Vec<String> {
    let mut rows: Vec<&Value> = Vec::new();
    for key in [
        "new_cases",
        "due_soon",
        "overdue",
        "unacknowledged",
        "triage",
    ] {
        rows.extend(ctx[key].as_array().into_iter().flatten());
    }
    for group in ctx["open_by_status"].as_array().into_iter().flatten() {
        rows.extend(group["cases"].as_array().into_iter().flatten());
    }
    let mut values: Vec<String> = rows
        .iter()
        .flat_map(|r| [&r["handler"], &r["subject"]])
        .filter_map(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    // The stand-in for a missing handler counts as the handler.
    values.extend(["geen behandelaar".to_string(), "no handler".to_string()]);
    // Longest first, so a value containing another is removed whole.
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    values
}

#[test]
fn acknowledgement_names_the_handler_the_response_date_and_the_regulation() {
    for lang in LANGS {
        let out = render(lang, &ack_ctx(&[]));
        for part in [&out.text, &out.html] {
            assert!(part.contains("Anna de Vries"), "{}", lang.as_str());
            assert!(part.contains("anna@31solutions.nl"));
            assert!(part.contains("21 december 2026"));
            assert!(part.contains("https://www.31solutions.nl/klachtenreglement"));
            assert!(part.contains("info@31solutions.nl"));
            assert!(part.contains("KL-2026-0001"));
            assert!(part.contains("Jan Jansen"));
            assert!(part.contains("31Solutions"));
            assert!(part.contains("20"));
        }
    }
    let nl = render(Lang::Nl, &ack_ctx(&[]));
    assert_eq!(
        nl.subject,
        "[KL-2026-0001] Ontvangstbevestiging van uw klacht"
    );
    assert!(nl.text.contains("papieren exemplaar"));
    assert!(nl.text.contains("vertrouwelijk"));
    assert!(nl.text.contains("onafhankelijke"));
    let en = render(Lang::En, &ack_ctx(&[]));
    assert_eq!(en.subject, "[KL-2026-0001] We have received your complaint");
    assert!(en.text.contains("paper copy"));
    assert!(en.text.contains("confidential"));
    assert!(en.text.contains("independent"));
}

#[test]
fn acknowledgement_asks_for_missing_elements_only_when_some_are_missing() {
    let phrases = |lang: Lang| match lang {
        Lang::Nl => [
            "waar uw klacht precies over gaat",
            "om welke datum of data",
            "welke oplossing of uitkomst",
        ],
        Lang::En => [
            "what your complaint is about",
            "the date or dates",
            "what outcome you would like",
        ],
    };
    for lang in LANGS {
        let [nature, dates, outcome] = phrases(lang);
        let all = render(lang, &ack_ctx(&["nature", "dates", "desired_outcome"]));
        for part in [&all.text, &all.html] {
            assert!(part.contains(nature), "{}: {part}", lang.as_str());
            assert!(part.contains(dates));
            assert!(part.contains(outcome));
        }
        let one = render(lang, &ack_ctx(&["dates"]));
        for part in [&one.text, &one.html] {
            assert!(!part.contains(nature));
            assert!(part.contains(dates));
            assert!(!part.contains(outcome));
        }
        let none = render(lang, &ack_ctx(&[]));
        for part in [&none.text, &none.html] {
            assert!(!part.contains(nature) && !part.contains(dates) && !part.contains(outcome));
            assert!(!part.contains("aanvullen") && !part.contains("missing"));
        }
    }
}

#[test]
fn acknowledgement_shows_the_client_nothing_internal() {
    // `Ack` has no `concerns`; even if a careless caller passed them, the
    // template must never show them.
    let ctx = edited(&ack_ctx(&["nature"]), |o| {
        let concerns = json!([{"name": "Piet Coach", "email": "piet@31solutions.nl"}]);
        o.insert("concerns".into(), concerns);
    });
    for lang in LANGS {
        let out = renderer()
            .render_value(lang, Template::Ack, ctx.clone())
            .expect("render");
        for part in [&out.subject, &out.text, &out.html] {
            assert!(!part.contains("Piet"), "{}: {part}", lang.as_str());
            assert!(!part.contains("piet@"));
            assert!(!part.to_lowercase().contains("concerns"));
            assert!(!part.contains("/voorstel") && !part.contains("/intern"));
        }
    }
}

#[test]
fn acknowledgement_without_a_client_name_uses_a_neutral_greeting() {
    let mut ctx = ack_ctx(&[]);
    ctx.client_name = String::new();
    let nl = render(Lang::Nl, &ctx);
    assert!(nl.text.starts_with("Geachte heer, mevrouw,"), "{}", nl.text);
    let mut ctx = ack_ctx(&[]);
    ctx.client_name = String::new();
    let en = render(Lang::En, &ctx);
    assert!(en.text.starts_with("Dear Sir or Madam,"), "{}", en.text);
    // A subject an automatic reply may not repeat leaves a plain sentence.
    ctx.original_subject = String::new();
    let en = render(Lang::En, &ctx);
    assert!(
        flat(&en.text).contains("Thank you for your message. We"),
        "{}",
        en.text
    );
    assert!(
        en.html.contains("Thank you for your message. We"),
        "{}",
        en.html
    );
    assert!(!en.text.contains("\"\""), "{}", en.text);
}

#[test]
fn html_escapes_client_provided_fields_while_text_keeps_them_verbatim() {
    for lang in LANGS {
        let out = render(lang, &handler_new_ctx("email", "jan@example.nl"));
        assert!(!out.html.contains("<script>"), "{}", out.html);
        assert!(
            out.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
                || out.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
        );
        assert!(out.html.contains("Klacht over &lt;b&gt;sessie&lt;/b&gt;"));
        assert!(out.text.contains("<script>alert('x')</script>"));
        // The subject is a header, not HTML: never escaped.
        assert!(out.subject.contains("Klacht over <b>sessie</b>"));

        let tri = render(lang, &triage_ctx());
        assert!(!tri.html.contains("<script>"));
        assert!(tri.html.contains("Kees &lt;script&gt;"));

        let mut ctx = ack_ctx(&[]);
        ctx.client_name = "<script>x</script>".into();
        ctx.original_subject = "\"quoted\" & <em>".into();
        let ack = render(lang, &ctx);
        assert!(!ack.html.contains("<script>") && !ack.html.contains("<em>"));
        assert!(ack.html.contains("&lt;script&gt;x&lt;/script&gt;"));
    }
}

#[test]
fn subject_is_one_trimmed_line_even_when_the_original_subject_has_line_breaks() {
    let mut ctx = handler_new_ctx("email", "jan@example.nl");
    ctx.original_subject = "  Eerste regel\r\n\tBcc: evil@example.com  ";
    let out = render(Lang::Nl, &ctx);
    assert_eq!(
        out.subject,
        "[KL-2026-0001] Nieuwe klacht toegewezen: Eerste regel Bcc: evil@example.com"
    );
}

#[test]
fn handler_notification_lists_the_facts_and_the_reply_commands() {
    for lang in LANGS {
        let out = render(lang, &handler_new_ctx("email", "jan@example.nl"));
        for part in [&out.text, &out.html] {
            for needle in [
                "Anna de Vries",
                "jan@example.nl",
                "0612345678",
                "21 december 2026",
                "27 november 2026",
                "20 november 2026",
                "coaching",
                "Piet Coach",
                "verslag.pdf",
                "120 kB",
                "video.mp4",
                "Anna is de enige beschikbare",
                "Ik ben ontevreden.",
                "/voorstel",
                "/afwijzing",
                "/verleng",
                "/intern",
                "/akkoord",
                "/extern",
                "/toewijzen",
                "/sluit",
            ] {
                assert!(
                    part.contains(needle),
                    "{}: {needle} missing in\n{part}",
                    lang.as_str()
                );
            }
        }
        let phone_word = match lang {
            Lang::Nl => "telefonisch",
            Lang::En => "by phone",
        };
        assert!(!out.text.contains(phone_word), "{}", out.text);
    }
    let nl = render(Lang::Nl, &handler_new_ctx("email", "jan@example.nl"));
    assert!(nl
        .subject
        .starts_with("[KL-2026-0001] Nieuwe klacht toegewezen: "));
    assert!(nl.text.contains("niet opgeslagen"));
}

#[test]
fn phone_complaint_without_an_address_asks_the_handler_to_confirm_by_phone() {
    for (lang, phrase) in [(Lang::Nl, "telefonisch"), (Lang::En, "by phone")] {
        let mut ctx = handler_new_ctx("phone", "");
        ctx.concerns = vec![];
        ctx.missing = vec![];
        ctx.attachments = vec![];
        ctx.client_phone = "0612345678";
        let out = render(lang, &ctx);
        for part in [&out.text, &out.html] {
            assert!(part.contains(phrase), "{}: {part}", lang.as_str());
            assert!(part.contains("0612345678"));
            assert!(part.contains("27 november 2026"));
        }
        // A phone complaint with an address gets the emailed ack.
        let with_mail = render(lang, &handler_new_ctx("phone", "jan@example.nl"));
        let confirm = match lang {
            Lang::Nl => "Bevestig de ontvangst telefonisch",
            Lang::En => "Please confirm receipt by phone",
        };
        let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat(&out.text).contains(confirm), "{}", out.text);
        assert!(!flat(&with_mail.text).contains(confirm));
    }
}

#[test]
fn triage_explains_the_klacht_and_geen_klacht_commands() {
    for lang in LANGS {
        let out = render(lang, &triage_ctx());
        for part in [&out.text, &out.html] {
            assert!(part.contains("/klacht"));
            assert!(part.contains("/geen-klacht"));
            assert!(part.contains("Het bericht is twijfelachtig."));
            assert!(part.contains("kees@example.nl"));
            assert!(part.contains("niet helemaal tevreden"));
            assert!(part.contains('3'));
        }
    }
    let nl = render(Lang::Nl, &triage_ctx());
    assert_eq!(
        nl.subject,
        "[KL-2026-0003] Ter beoordeling: Vraag over factuur"
    );
    let en = render(Lang::En, &triage_ctx());
    assert_eq!(en.subject, "[KL-2026-0003] For review: Vraag over factuur");
}

#[test]
fn unassigned_names_the_persons_concerned_and_the_toewijzen_command() {
    for lang in LANGS {
        let out = render(lang, &unassigned_ctx());
        for part in [&out.text, &out.html] {
            assert!(part.contains("/toewijzen"));
            assert!(part.contains("Anna de Vries") && part.contains("Piet Coach"));
            assert!(part.contains("Alle behandelaars worden in de klacht genoemd."));
            assert!(part.contains("Klacht over de coach"));
        }
    }
    // The reason is optional; a standard sentence stands in.
    let mut ctx = unassigned_ctx();
    ctx.reason = "";
    let out = render(Lang::Nl, &ctx);
    assert!(out.text.contains("onafhankelijke behandelaar"));
}

#[test]
fn client_reply_relays_the_body_and_the_response_date_to_the_handler() {
    for lang in LANGS {
        let out = render(lang, &client_reply_ctx());
        assert!(out
            .text
            .contains("Het ging om de sessie van 3 november. <i>Dank</i>"));
        assert!(out
            .html
            .contains("Het ging om de sessie van 3 november. &lt;i&gt;Dank&lt;/i&gt;"));
        for part in [&out.text, &out.html] {
            assert!(part.contains("21 december 2026"));
            assert!(part.contains("Jan Jansen"));
        }
    }
    let nl = render(Lang::Nl, &client_reply_ctx());
    assert_eq!(
        nl.subject,
        "[KL-2026-0001] Reactie van cliënt: Slechte sessie"
    );
}

/// Whitespace runs (the plain text's line breaks) become one space.
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn reminder_names_the_reference_the_due_date_and_the_days_left() {
    for lang in LANGS {
        let (days_left, today, no_handler, waited) = match lang {
            Lang::Nl => ("3 werkdagen", "vandaag", "geen behandelaar", "2 werkdagen"),
            Lang::En => ("3 working days", "today", "no handler", "2 working days"),
        };
        let out = render(lang, &reminder_ctx("due_soon"));
        for part in [&flat(&out.text), &out.html] {
            for needle in [
                "KL-2026-0001",
                "Slechte sessie",
                "Anna de Vries",
                "21 december 2026",
                days_left,
                "art. 6",
                "/voorstel",
                "/afwijzing",
                "/verleng N",
                "/intern",
                "/toewijzen",
                "art. 9",
            ] {
                assert!(
                    part.contains(needle),
                    "{}: {needle} missing in\n{part}",
                    lang.as_str()
                );
            }
            assert!(!part.contains(today) && !part.contains(no_handler));
            assert!(!part.contains("14 december 2026"), "no reply waiting");
        }

        // Due today, extended, and no handler: sent to a supervisor.
        let mut ctx = reminder_ctx("due_soon");
        ctx.working_days_left = 0;
        ctx.extended = true;
        ctx.is_handler = false;
        let out = render(lang, &ctx);
        assert!(out.subject.contains(today), "{}", out.subject);
        let extended = match lang {
            Lang::Nl => "verlengd",
            Lang::En => "extended",
        };
        for part in [&flat(&out.text), &out.html] {
            assert!(part.contains(today) && !part.contains(days_left), "{part}");
            assert!(part.contains(extended) && part.contains(no_handler));
            assert!(part.contains("/toewijzen"));
        }

        let out = render(lang, &reminder_ctx("reply_waiting"));
        for part in [&flat(&out.text), &out.html] {
            assert!(part.contains("14 december 2026"), "{part}");
            assert!(part.contains(waited) && part.contains("Jan Jansen"));
            assert!(part.contains("KL-2026-0001") && part.contains("/intern"));
        }
    }
    let subject = |lang, kind| render(lang, &reminder_ctx(kind)).subject;
    assert_eq!(
        subject(Lang::Nl, "due_soon"),
        "[KL-2026-0001] Herinnering, reactie uiterlijk 21 december 2026: Slechte sessie"
    );
    assert_eq!(
        subject(Lang::Nl, "reply_waiting"),
        "[KL-2026-0001] Herinnering, cliënt wacht op antwoord: Slechte sessie"
    );
    assert_eq!(
        subject(Lang::En, "due_soon"),
        // The caller formats dates in the organisation's language.
        "[KL-2026-0001] Reminder, response due by 21 december 2026: Slechte sessie"
    );
    assert_eq!(
        subject(Lang::En, "reply_waiting"),
        "[KL-2026-0001] Reminder, client awaiting an answer: Slechte sessie"
    );
}

#[test]
fn escalation_names_the_handler_the_delay_and_the_last_activity() {
    for lang in LANGS {
        let (late, next, second) = match lang {
            Lang::Nl => ("2 werkdagen te laat", "5 werkdagen", "tweede escalatie"),
            Lang::En => ("2 working days late", "5 working days", "second escalation"),
        };
        let out = render(lang, &escalation_ctx("response", 1));
        for part in [&flat(&out.text), &out.html] {
            for needle in [
                "KL-2026-0001",
                "Slechte sessie",
                "Jan Jansen",
                "coaching",
                "in behandeling",
                "Anna de Vries",
                "anna@31solutions.nl",
                "21 december 2026",
                late,
                "art. 6",
                "18 december 2026 14:05",
                "antwoord aan de cliënt verstuurd",
                next,
                "/intern",
                "/toewijzen",
                "/verleng",
                "/sluit",
            ] {
                assert!(
                    part.contains(needle),
                    "{}: {needle} missing in\n{part}",
                    lang.as_str()
                );
            }
            // Level 1 only announces the second level.
            assert!(part.to_lowercase().contains(second));
        }

        let out = render(lang, &escalation_ctx("response", 2));
        let prefix = match lang {
            Lang::Nl => "[KL-2026-0001] Tweede escalatie, termijn verstreken: ",
            Lang::En => "[KL-2026-0001] Second escalation, deadline passed: ",
        };
        assert_eq!(out.subject, format!("{prefix}Slechte sessie"));
        for part in [&flat(&out.text), &out.html] {
            assert!(part.to_lowercase().contains(second), "{part}");
            assert!(!part.contains(next), "no further level announced: {part}");
            assert!(part.contains(late) && part.contains("Anna de Vries"));
        }

        // No second level configured: not announced.
        let mut ctx = escalation_ctx("response", 1);
        ctx.second_level_working_days = 0;
        ctx.last_activity = None;
        let out = render(lang, &ctx);
        let nothing = match lang {
            Lang::Nl => "nog niets vastgelegd",
            Lang::En => "nothing recorded yet",
        };
        for part in [&flat(&out.text), &out.html] {
            assert!(!part.to_lowercase().contains(second), "{part}");
            assert!(part.contains(nothing));
        }
    }
    let nl = render(Lang::Nl, &escalation_ctx("response", 1));
    assert_eq!(
        nl.subject,
        "[KL-2026-0001] Termijn verstreken: Slechte sessie"
    );
    let en = render(Lang::En, &escalation_ctx("response", 1));
    assert_eq!(en.subject, "[KL-2026-0001] Deadline passed: Slechte sessie");
}

#[test]
fn escalation_of_a_missing_acknowledgement_or_a_concerned_handler_says_what_to_do() {
    for lang in LANGS {
        // Acknowledgement not sent, still in triage, no handler.
        let mut ctx = escalation_ctx("ack", 1);
        ctx.handler = None;
        ctx.triage = true;
        ctx.ack_sent = false;
        ctx.due = "27 november 2026".into();
        let out = render(lang, &ctx);
        let (subject, not_sent, none) = match lang {
            Lang::Nl => (
                "Ontvangstbevestiging niet verstuurd",
                "niet verstuurd",
                "geen behandelaar",
            ),
            Lang::En => ("Acknowledgement not sent", "not been sent", "no handler"),
        };
        assert_eq!(
            out.subject,
            format!("[KL-2026-0001] {subject}: Slechte sessie")
        );
        for part in [&flat(&out.text), &out.html] {
            for needle in [
                "27 november 2026",
                "art. 5",
                not_sent,
                none,
                "/klacht",
                "/geen-klacht",
                "/toewijzen",
            ] {
                assert!(
                    part.contains(needle),
                    "{}: {needle} missing in\n{part}",
                    lang.as_str()
                );
            }
            assert!(!part.contains("anna@31solutions.nl"));
        }

        // The handler is named in the complaint.
        let out = render(lang, &escalation_ctx("conflict", 1));
        let (subject, named) = match lang {
            Lang::Nl => ("Behandelaar is betrokken", "in de klacht zelf genoemd"),
            Lang::En => ("Handler is involved", "named in the complaint itself"),
        };
        assert_eq!(
            out.subject,
            format!("[KL-2026-0001] {subject}: Slechte sessie")
        );
        for part in [&flat(&out.text), &out.html] {
            assert!(part.contains(named), "{part}");
            assert!(part.contains("Anna de Vries") && part.contains("art. 6"));
            assert!(part.contains("/toewijzen"));
            assert!(!part.contains("/geen-klacht"));
        }
    }
}

#[test]
fn digest_lists_every_case_in_text_and_in_html_tables() {
    for lang in LANGS {
        let ctx = digest_ctx(lang);
        let out = render(lang, &ctx);
        let (headings, no_effect): (&[&str], &str) = match lang {
            Lang::Nl => (
                &[
                    "Nieuw sinds vrijdag 18 december 2026 08:30",
                    "Te laat",
                    "Ontvangst niet bevestigd",
                    "Binnen 3 werkdagen af te ronden",
                    "Wacht op beoordeling (triage)",
                    "Alle open zaken per status",
                    "In behandeling (2)",
                ],
                "heeft beantwoorden geen effect",
            ),
            Lang::En => (
                &[
                    "New since vrijdag 18 december 2026 08:30",
                    "Overdue",
                    "Receipt not acknowledged",
                    "Due within 3 working days",
                    "Waiting for review (triage)",
                    "All open cases by status",
                    "In progress (2)",
                ],
                "replying to it has no effect",
            ),
        };
        for part in [&out.text, &out.html] {
            for needle in headings.iter().copied().chain([
                "maandag 21 december 2026",
                "KL-2026-0001",
                "KL-2026-0002",
                "KL-2026-0003",
                "KL-2026-0004",
                "KL-2026-0005",
                "Anna de Vries",
                "Bram Bakker",
                "24-12-2026",
                "17-12-2026",
                "art. 9",
                no_effect,
            ]) {
                assert!(
                    part.contains(needle),
                    "{}: {needle} missing in\n{part}",
                    lang.as_str()
                );
            }
        }
        // One text line and one table row per case and section: 5
        // sections with one case each, and the 4 open ones by status.
        let lines: Vec<&str> = out
            .text
            .lines()
            .filter(|l| l.starts_with("- KL-"))
            .collect();
        assert_eq!(lines.len(), 9, "{}", out.text);
        assert!(lines.iter().any(|l| l.contains("KL-2026-0002")
            && l.contains("2 wd")
            && l.contains("Bram Bakker")));
        assert!(
            out.text.contains("<b>factuur</b>"),
            "text keeps the subject verbatim"
        );
    }
    let nl = render(Lang::Nl, &digest_ctx(Lang::Nl));
    assert_eq!(
        nl.subject,
        "Klachten: dagoverzicht maandag 21 december 2026 (1 nieuw, 1 te laat)"
    );
    let en = render(Lang::En, &digest_ctx(Lang::En));
    assert_eq!(
        en.subject,
        "Complaints: daily overview maandag 21 december 2026 (1 new, 1 overdue)"
    );
}

/// A case whose mail to the client failed for good has its own section,
/// with the client's name: the supervisors see who must be reached
/// another way.
#[test]
fn digest_lists_cases_whose_client_mail_was_not_delivered() {
    for lang in LANGS {
        let mut ctx = digest_ctx(lang);
        let overdue = ctx.cases.overdue[0].clone();
        ctx.cases.undeliverable = vec![overdue.clone()];
        ctx.cases.counts.undeliverable = 1;
        let heading = match lang {
            Lang::Nl => "Mail aan de klant kwam niet aan; neem op een andere manier contact op (1)",
            Lang::En => "Mail to the client was not delivered; reach them another way (1)",
        };
        let out = render(lang, &ctx);
        for part in [&out.text, &out.html] {
            assert!(part.contains(heading), "{part}");
        }
        let section = out.text.split(heading).nth(1).unwrap();
        assert!(section.contains(&overdue.reference), "{section}");
        assert!(section.contains(overdue.client_name), "{section}");
        let before = render(lang, &digest_ctx(lang));
        assert!(!before.text.contains(heading) && !before.html.contains(heading));
    }
}

#[test]
fn digest_html_has_a_table_per_section_and_escapes_the_subjects() {
    for lang in LANGS {
        let out = render(lang, &digest_ctx(lang));
        let late = match lang {
            Lang::Nl => "2 te laat",
            Lang::En => "2 late",
        };
        // Five sections and two status groups.
        assert_eq!(out.html.matches("<table style").count(), 7, "{}", out.html);
        assert_eq!(out.html.matches("<tr><td").count(), 9, "{}", out.html);
        assert_eq!(out.html.matches("<thead>").count(), 7);
        let columns = match lang {
            Lang::Nl => [
                "Kenmerk",
                "Onderwerp",
                "Behandelaar",
                "Status",
                "Ontvangen",
                "Reactie uiterlijk",
                "Werkdagen",
            ],
            Lang::En => [
                "Reference",
                "Subject",
                "Handler",
                "Status",
                "Received",
                "Response due",
                "Working days",
            ],
        };
        for c in columns {
            assert!(out.html.contains(&format!(">{c}</th>")), "{c}");
        }
        assert!(out.html.contains(late), "{}", out.html);
        // Client-provided subjects stay escaped.
        assert!(!out.html.contains("<b>factuur") && !out.html.contains("<i>te laat"));
        assert!(out.html.contains("Vraag over &lt;b&gt;factuur&lt;/b&gt;"));
        assert!(out.html.contains("Coach &lt;i&gt;te laat&lt;/i&gt;"));
        let none = match lang {
            Lang::Nl => "Er zijn geen open zaken.",
            Lang::En => "There are no open cases.",
        };
        assert!(!out.text.contains(none) && !out.html.contains(none));
    }
}

#[test]
fn a_long_digest_says_how_many_cases_each_list_leaves_out() {
    for lang in LANGS {
        let more = match lang {
            Lang::Nl => "en nog 150; alle zaken staan in het register",
            Lang::En => "and 150 more; every case is in the register",
        };
        let mut ctx = digest_ctx(lang);
        ctx.cases.counts.new = 151;
        ctx.cases.more.new = 150;
        ctx.cases.open_by_status[0].total = 152;
        ctx.cases.open_by_status[0].more = 150;
        let out = render(lang, &ctx);
        for part in [&out.text, &out.html] {
            assert_eq!(part.matches(more).count(), 2, "{part}");
            assert!(part.contains("(151)") && part.contains("(152)"), "{part}");
        }
        // Nothing left out: no such line.
        let out = render(lang, &digest_ctx(lang));
        assert!(!out.text.contains(more) && !out.html.contains(more));
    }
}

#[test]
fn digest_leaves_out_empty_sections_and_says_when_nothing_is_open() {
    for lang in LANGS {
        let (none, overdue, new_heading) = match lang {
            Lang::Nl => ("Er zijn geen open zaken.", "Te laat (", "Nieuw ("),
            Lang::En => ("There are no open cases.", "Overdue (", "New ("),
        };
        let mut ctx = digest_ctx(lang);
        ctx.cases = DigestCases {
            counts: DigestCounts::default(),
            more: DigestCounts::default(),
            new_cases: vec![],
            due_soon: vec![],
            overdue: vec![],
            unacknowledged: vec![],
            triage: vec![],
            undeliverable: vec![],
            open_by_status: vec![],
        };
        ctx.since = String::new();
        let out = render(lang, &ctx);
        for part in [&out.text, &out.html] {
            assert!(part.contains(none), "{part}");
            assert!(
                !part.contains("KL-") && !part.contains(overdue) && !part.contains(new_heading)
            );
        }
        assert!(!out.html.contains("<thead>"));
        assert!(out.subject.contains("(0 "), "{}", out.subject);

        // Only a new case that is already closed: listed, nothing open,
        // and without a previous digest the heading has no "since".
        let mut ctx = digest_ctx(lang);
        let c = &mut ctx.cases;
        c.due_soon.clear();
        c.overdue.clear();
        c.unacknowledged.clear();
        c.triage.clear();
        c.open_by_status.clear();
        ctx.since = String::new();
        let out = render(lang, &ctx);
        for part in [&out.text, &out.html] {
            assert!(part.contains(none) && part.contains(new_heading), "{part}");
            assert!(part.contains("KL-2026-0004") && !part.contains("KL-2026-0001"));
            assert!(!part.contains(overdue) && !part.contains("18 december 2026 08:30"));
        }
        assert_eq!(out.html.matches("<thead>").count(), 1);
    }
}

#[test]
fn health_tells_alarm_from_recovery_for_intake_and_outbox() {
    for lang in LANGS {
        let (alarm, recovered, lost, minutes, last_error, mails) = match lang {
            Lang::Nl => (
                "ALARM",
                "hersteld",
                "niets verloren",
                "75 minuten",
                "Laatste foutmelding",
                "3 e-mails",
            ),
            Lang::En => (
                "ALARM",
                "recovered",
                "Nothing was lost",
                "75 minutes",
                "Last error",
                "3 emails",
            ),
        };
        for what in ["intake", "outbox"] {
            for state in ["alarm", "recovered"] {
                let out = render(lang, &health_ctx(what, state));
                let id = format!("{}/{what}/{state}", lang.as_str());
                assert!(
                    out.subject.starts_with("klachtd: "),
                    "{id}: {}",
                    out.subject
                );
                for part in [&flat(&out.text), &out.html] {
                    assert!(!part.contains(crate::mail::quote::REPLY_ABOVE), "{id}");
                    assert!(part.contains("23 november 2026 09:12"), "{id}: {part}");
                    assert!(part.contains(minutes), "{id}: {part}");
                    assert!(part.contains("31Solutions"), "{id}");
                    if state == "alarm" {
                        assert!(out.subject.contains(alarm), "{id}");
                        assert!(
                            part.contains("IMAP login failed: authentication failed"),
                            "{id}"
                        );
                        assert!(part.contains(last_error) && !part.contains(lost), "{id}");
                    } else {
                        assert!(
                            out.subject.contains(recovered) && !out.subject.contains(alarm),
                            "{id}"
                        );
                        assert!(part.contains(lost), "{id}: {part}");
                        assert!(
                            !part.contains(last_error) && !part.to_uppercase().contains("ALARM"),
                            "{id}"
                        );
                    }
                    if what == "intake" {
                        assert!(part.contains("info@31solutions.nl"), "{id}");
                        assert!(!part.contains("SMTP"), "{id}");
                        if state == "alarm" {
                            assert!(part.contains("(IMAP)") && part.contains("art. 5"), "{id}");
                        }
                    } else {
                        assert!(!part.contains("IMAP login") || state == "alarm", "{id}");
                        if state == "alarm" {
                            assert!(
                                part.contains(mails) && part.contains("SMTP"),
                                "{id}: {part}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn health_leaves_out_a_missing_error_and_names_the_trouble_in_the_subject() {
    for lang in LANGS {
        let last_error = match lang {
            Lang::Nl => "Laatste foutmelding",
            Lang::En => "Last error",
        };
        // Without a recorded error the line is left out.
        let mut ctx = health_ctx("outbox", "alarm");
        ctx.last_error = "";
        ctx.count = 1;
        let out = render(lang, &ctx);
        for part in [&out.text, &out.html] {
            assert!(!part.contains(last_error), "{part}");
        }
        let one = match lang {
            Lang::Nl => "wacht 1 e-mail",
            Lang::En => "1 email is",
        };
        assert!(flat(&out.text).contains(one), "{}", out.text);
    }
    let subject = |lang, what, state| render(lang, &health_ctx(what, state)).subject;
    assert_eq!(
        subject(Lang::Nl, "intake", "alarm"),
        "klachtd: ALARM – de klachtenmailbox wordt niet gelezen"
    );
    assert_eq!(
        subject(Lang::Nl, "intake", "recovered"),
        "klachtd: hersteld – de klachtenmailbox wordt weer gelezen"
    );
    assert_eq!(
        subject(Lang::En, "outbox", "alarm"),
        "klachtd: ALARM – outgoing mail is not being sent"
    );
    assert_eq!(
        subject(Lang::Nl, "auto_replies", "alarm"),
        "klachtd: ALARM – te veel automatische antwoorden: ze gaan tijdelijk niet uit"
    );
    assert_eq!(
        subject(Lang::En, "auto_replies", "recovered"),
        "klachtd: recovered – automatic replies go out again"
    );
    // The hourly limit: how many, the limit and its key, and no "nothing to do".
    let out = render(Lang::En, &health_ctx("auto_replies", "alarm"));
    let text = flat(&out.text);
    for needle in [
        "3 automatic replies",
        "limit of 30 an hour",
        "procedure.auto_replies_per_hour",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    let out = render(Lang::Nl, &health_ctx("auto_replies", "recovered"));
    assert!(
        flat(&out.text).contains("bevestigt de ontvangst persoonlijk"),
        "{}",
        out.text
    );
    assert!(!out.text.contains("niets te doen"), "{}", out.text);
}

#[test]
fn long_dates_are_written_out_in_dutch_and_english() {
    let d = |y, m, day| Date::new(y, m, day).expect("valid date");
    assert_eq!(long_date(Lang::Nl, d(2026, 12, 21)), "21 december 2026");
    assert_eq!(long_date(Lang::En, d(2026, 12, 21)), "21 December 2026");
    assert_eq!(long_date(Lang::Nl, d(2027, 3, 1)), "1 maart 2027");
    assert_eq!(long_date(Lang::En, d(2027, 3, 1)), "1 March 2027");
    assert_eq!(long_date(Lang::Nl, d(2026, 5, 5)), "5 mei 2026");
    assert_eq!(long_date(Lang::Nl, d(2028, 2, 29)), "29 februari 2028");
    assert_eq!(
        long_date_with_weekday(Lang::Nl, d(2026, 12, 21)),
        "maandag 21 december 2026"
    );
    assert_eq!(
        long_date_with_weekday(Lang::En, d(2026, 12, 21)),
        "Monday 21 December 2026"
    );
    assert_eq!(
        long_date_with_weekday(Lang::Nl, d(2027, 1, 3)),
        "zondag 3 januari 2027"
    );
}

#[test]
fn override_directory_replaces_one_template_and_keeps_the_rest() {
    let dir = TempDir::new("override");
    std::fs::create_dir_all(dir.0.join("nl")).expect("mkdir");
    std::fs::write(
        dir.0.join("nl/ack.subject.txt"),
        "[{{ reference }}]\n  Wij hebben uw klacht ontvangen\n",
    )
    .expect("write");
    std::fs::write(
        dir.0.join("nl/ack.txt"),
        "Eigen tekst voor {{ client_name }}, uiterlijk {{ \"2026-12-21\" | long_date_with_weekday(lang=lang) }}.\n",
    )
    .expect("write");
    let r = Renderer::new(Some(&dir.0)).expect("load with override");
    let out = r.render(Lang::Nl, &ack_ctx(&[])).expect("render");
    assert_eq!(out.subject, "[KL-2026-0001] Wij hebben uw klacht ontvangen");
    assert_eq!(
        out.text,
        "Eigen tekst voor Jan Jansen, uiterlijk maandag 21 december 2026.\n"
    );
    // The html part and the English ack are still the built-in ones.
    assert!(out.html.contains("Anna de Vries"));
    let en = r.render(Lang::En, &ack_ctx(&[])).expect("render");
    assert_eq!(en.subject, "[KL-2026-0001] We have received your complaint");
}

#[test]
fn broken_override_template_is_refused_with_its_file_name() {
    let dir = TempDir::new("broken");
    std::fs::create_dir_all(dir.0.join("en")).expect("mkdir");
    std::fs::write(dir.0.join("en/triage.html"), "<p>{% if x %}unclosed</p>").expect("write");
    let err = Renderer::new(Some(&dir.0)).expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("en/triage.html"), "{msg}");
    assert!(msg.contains(&dir.0.display().to_string()), "{msg}");
}

#[test]
fn missing_override_directory_is_an_error() {
    let dir = std::env::temp_dir().join("klachtd-render-does-not-exist-7f3a9c");
    let err = Renderer::new(Some(&dir)).expect_err("must fail");
    assert!(err
        .to_string()
        .contains("klachtd-render-does-not-exist-7f3a9c"));
}

#[test]
fn missing_variable_is_an_error_naming_the_template_not_a_panic() {
    let ctx = edited(&ack_ctx(&[]), |o| {
        o.remove("handler");
    });
    let err = renderer()
        .render_value(Lang::Nl, Template::Ack, ctx)
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("nl/ack."), "{msg}");
    assert!(msg.contains("handler"), "{msg}");
}

#[test]
fn context_that_is_not_an_object_is_an_error() {
    let err = renderer()
        .render_value(Lang::En, Template::Triage, json!(["no"]))
        .expect_err("must fail");
    assert!(err.to_string().contains("en/triage"), "{err}");
}

#[test]
fn date_filters_need_a_valid_date_and_a_language() {
    let dir = TempDir::new("filters");
    std::fs::create_dir_all(dir.0.join("en")).expect("mkdir");
    std::fs::write(
        dir.0.join("en/client_reply.subject.txt"),
        "[{{ reference }}] {{ due | long_date(lang=lang) }}",
    )
    .expect("write");
    let r = Renderer::new(Some(&dir.0)).expect("load");
    // An override may read a date of its own; the typed context has none.
    let with_due = |due: &str| {
        edited(&client_reply_ctx(), |o| {
            o.insert("due".into(), json!(due));
        })
    };
    let out = r
        .render_value(
            Lang::En,
            Template::ClientReplyToHandler,
            with_due("2027-03-01"),
        )
        .expect("render");
    assert_eq!(out.subject, "[KL-2026-0001] 1 March 2027");
    let err = r
        .render_value(
            Lang::En,
            Template::ClientReplyToHandler,
            with_due("2027-02-30"),
        )
        .expect_err("bad date");
    assert!(
        err.to_string().contains("en/client_reply.subject.txt"),
        "{err}"
    );
}

#[test]
fn language_is_supplied_when_the_caller_leaves_it_out() {
    // No context type has `lang`: the renderer always adds it.
    let out = render(Lang::En, &triage_ctx());
    assert!(out.html.contains("lang=\"en\""));
}

// ------------------------------------------- templates against their types

/// The variables a template reads: every dotted name in its `{{ … }}` and
/// `{% … %}` tags that is not a keyword, a filter, a macro, a keyword
/// argument's name or bound in the template itself (a loop variable, a
/// macro parameter).
fn names_read(source: &str) -> BTreeSet<String> {
    let (mut bound, mut read) = (BTreeSet::new(), BTreeSet::new());
    let mut rest = source;
    while let Some(at) = rest.find('{') {
        rest = &rest[at + 1..];
        let close = match rest.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => continue,
        };
        let end = rest.find(close).unwrap_or(rest.len());
        tag_names(&rest[1..end], &mut bound, &mut read);
        rest = &rest[end..];
    }
    read.into_iter()
        .filter(|n| !bound.contains(n.split('.').next().unwrap_or("")))
        .collect()
}

/// The names one tag binds (`for r in …`, `macro m(a, b=false)`) and reads.
fn tag_names(tag: &str, bound: &mut BTreeSet<String>, read: &mut BTreeSet<String>) {
    const KEYWORDS: &[&str] = &[
        "if", "elif", "else", "endif", "for", "endfor", "in", "and", "or", "not", "is", "true",
        "false", "macro", "endmacro", "set", "loop", "self", "super",
    ];
    // Without its string literals.
    let tag = tag.split('"').step_by(2).collect::<Vec<_>>().join(" ");
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in tag.char_indices().chain([(tag.len(), ' ')]) {
        match (start, is_word(c)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                words.push((s, &tag[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    let first = words.first().map(|(_, w)| *w);
    let in_at = words.iter().position(|(_, w)| *w == "in");
    for (i, &(at, word)) in words.iter().enumerate() {
        let before = tag[..at].trim_end();
        let after = tag[at + word.len()..].trim_start();
        let root = word.split('.').next().unwrap_or("");
        if word.starts_with(|c: char| c.is_ascii_digit()) || KEYWORDS.contains(&root) {
            continue;
        }
        let binds = match first {
            Some("for") => in_at.is_some_and(|n| i < n),
            // The macro's name is followed by its parameters.
            Some("macro") => !after.starts_with('('),
            Some("endmacro") => continue,
            _ => false,
        };
        let kwarg = after.starts_with('=') && !after.starts_with("==");
        if binds {
            bound.insert(word.to_string());
        } else if !(before.ends_with('|')
            || before.ends_with("::")
            || kwarg
            || first == Some("macro"))
        {
            read.insert(word.to_string());
        }
    }
}

/// The names every part of template `t` reads, in either language.
fn names_read_by(t: Template) -> BTreeSet<String> {
    BUILTIN
        .iter()
        .filter(|(path, _)| {
            let file = path.split('/').nth(1).unwrap_or("");
            file.split('.').next() == Some(t.name())
        })
        .flat_map(|(_, source)| names_read(source))
        .collect()
}

/// Tera fails on an undefined variable in an output, a comparison, a loop
/// or `in`, so rendering every typed sample (see above) already checks
/// most of what a template reads; only `{% if name %}` takes an undefined
/// name for false. This checks that too: every name a template reads is
/// a field of its context (or `lang`, which the renderer adds).
#[test]
fn every_name_a_template_reads_is_a_field_of_its_context() {
    let mut wrong = BTreeSet::new();
    for lang in LANGS {
        for &t in Template::ALL {
            let (_, ctx) = render_sample(renderer(), lang, t).expect("renders");
            for name in names_read_by(t) {
                let mut at = &ctx;
                for part in name.split('.') {
                    match at.get(part) {
                        Some(v) => at = v,
                        None if at.is_null() || at.is_array() => break,
                        None if name == "lang" => break,
                        None => {
                            wrong.insert(format!("{}: {name}", t.name()));
                            break;
                        }
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "read but not in the context: {wrong:?}");
}

/// The other way round: a context carries nothing its template ignores,
/// so each struct says what its template shows.
#[test]
fn every_field_of_a_context_is_read_by_its_template() {
    for &t in Template::ALL {
        let (_, ctx) = render_sample(renderer(), Lang::Nl, t).expect("renders");
        let read: BTreeSet<String> = names_read_by(t)
            .iter()
            .map(|n| n.split('.').next().unwrap_or("").to_string())
            .collect();
        let unread: Vec<&String> = ctx
            .as_object()
            .expect("an object")
            .keys()
            .filter(|k| !read.contains(*k))
            .collect();
        assert!(unread.is_empty(), "{}: never read: {unread:?}", t.name());
    }
}

#[test]
fn the_template_scan_finds_reads_and_skips_what_the_template_binds() {
    let names = names_read(
        "{% macro row(r, ack=false) %}{{ r.name }}{% if ack %}!{% endif %}{% endmacro row %}\
         {% for k, v in counts %}{{ k }} {{ v | pluralize(plural=\"en\") }}{% endfor %}\
         {{ self::row(r=handler, ack=true) }} {% if not x and \"a\" in missing %}{{ org.name \
         | upper }}{% elif level == 2 %}{{ loop.index }}{% endif %}",
    );
    let want = ["counts", "handler", "level", "missing", "org.name", "x"];
    assert_eq!(names, want.map(String::from).into_iter().collect());
}
