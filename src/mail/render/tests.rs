//! Tests of the mail templates and their rendering.

use super::*;
use serde_json::{json, Value};

const LANGS: [Lang; 2] = [Lang::Nl, Lang::En];

fn org() -> Value {
    json!({
        "name": "31Solutions",
        "address": "info@31solutions.nl",
        "regulation_url": "https://www.31solutions.nl/klachtenreglement",
        "phone": "0653656932",
        "website": "www.31solutions.nl",
    })
}

fn ack_ctx(lang: Lang, missing: &[&str]) -> Value {
    json!({
        "org": org(),
        "reference": "KL-2026-0001",
        "lang": lang.as_str(),
        "client_name": "Jan Jansen",
        "original_subject": "Slechte sessie",
        "handler": {"name": "Anna de Vries", "email": "anna@31solutions.nl"},
        "received": "20 november 2026",
        "ack_due": "27 november 2026",
        "response_due": "21 december 2026",
        "missing": missing,
        "response_working_days": 20,
        // Not part of the ack context, but a careless caller might pass
        // it: the template must never show it.
        "concerns": [{"name": "Piet Coach", "email": "piet@31solutions.nl"}],
    })
}

fn handler_new_ctx(lang: Lang, source: &str, client_email: &str) -> Value {
    json!({
        "org": org(),
        "reference": "KL-2026-0001",
        "lang": lang.as_str(),
        "handler": {"name": "Anna de Vries", "email": "anna@31solutions.nl"},
        "client_name": "Jan <script>alert(1)</script> Jansen",
        "client_email": client_email,
        "client_phone": "0612345678",
        "original_subject": "Klacht over <b>sessie</b>",
        "received": "20 november 2026",
        "ack_due": "27 november 2026",
        "response_due": "21 december 2026",
        "category": "coaching",
        "concerns": [{"name": "Piet Coach", "email": "piet@31solutions.nl"}],
        "missing": ["dates", "desired_outcome"],
        "assignment_reason": "Anna is de enige beschikbare behandelaar die niet betrokken is.",
        "body": "Ik ben ontevreden.\n<script>alert('x')</script>\nGroet, Jan",
        "attachments": [
            {"filename": "verslag.pdf", "size_human": "120 kB", "stored": true},
            {"filename": "video.mp4", "size_human": "80 MB", "stored": false},
        ],
        "source": source,
    })
}

fn triage_ctx(lang: Lang) -> Value {
    json!({
        "org": org(),
        "reference": "KL-2026-0003",
        "lang": lang.as_str(),
        "client_name": "Kees <script>",
        "client_email": "kees@example.nl",
        "original_subject": "Vraag over factuur",
        "received": "20 november 2026",
        "reason": "Het bericht is twijfelachtig.",
        "body": "Ik ben niet helemaal tevreden over de factuur.",
        "score": 3,
    })
}

fn unassigned_ctx(lang: Lang) -> Value {
    json!({
        "org": org(),
        "reference": "KL-2026-0004",
        "lang": lang.as_str(),
        "original_subject": "Klacht over de coach",
        "concerns": [
            {"name": "Anna de Vries", "email": "anna@31solutions.nl"},
            {"name": "Piet Coach", "email": "piet@31solutions.nl"},
        ],
        "reason": "Alle behandelaars worden in de klacht genoemd.",
    })
}

fn client_reply_ctx(lang: Lang) -> Value {
    json!({
        "org": org(),
        "reference": "KL-2026-0001",
        "lang": lang.as_str(),
        "client_name": "Jan Jansen",
        "original_subject": "Slechte sessie",
        "body": "Het ging om de sessie van 3 november. <i>Dank</i>",
        "response_due": "21 december 2026",
    })
}

fn full_ctx(lang: Lang, t: Template) -> Value {
    match t {
        Template::Ack => ack_ctx(lang, &["nature", "dates", "desired_outcome"]),
        Template::HandlerNew => handler_new_ctx(lang, "email", "jan@example.nl"),
        Template::HandlerReleased => json!({
            "org": org(), "reference": "KL-2026-0001", "lang": lang.as_str(),
            "original_subject": "Slechte sessie",
            "old_handler": {"name": "Bram Bakker"},
            "new_handler": {"name": "Carla Smit"},
            "reason": "toegewezen door beheer",
            "response_due": "21 december 2026",
        }),
        Template::Triage => triage_ctx(lang),
        Template::Unassigned => unassigned_ctx(lang),
        Template::ClientReplyToHandler => client_reply_ctx(lang),
        Template::Regulation | Template::RegulationPaper => json!({
            "org": org(),
            "reference": "",
            "lang": lang.as_str(),
            "client_name": "Jan Jansen",
            "client_email": "jan@example.nl",
            "original_subject": "Reglement",
            "body": "Mag ik een papieren exemplaar?",
            "has_text": true,
            "regulation_text": "KLACHTENREGLEMENT",
            "paper": true,
        }),
        Template::ToClient => to_client_ctx(lang, "extension"),
        Template::CommandResult => json!({
            "org": org(), "reference": "KL-2026-0001", "lang": lang.as_str(),
            "staff": {"name": "Anna de Vries"}, "ok": true, "error": "",
            "done": ["voorstel aan de cliënt (art. 7)"], "status": "proposed",
            "response_due": "21 december 2026", "original_subject": "Slechte sessie",
            "their_subject": "RE: [KL-2026-0001] Nieuwe klacht", "items": [],
        }),
        Template::Reminder => reminder_ctx(lang, "due_soon"),
        Template::Escalation => escalation_ctx(lang, "response", 1),
        Template::Digest => digest_ctx(lang),
        Template::Health => health_ctx(lang, "intake", "alarm"),
        Template::Report => crate::report::mail::sample_context(lang),
    }
}

fn reminder_ctx(lang: Lang, kind: &str) -> Value {
    json!({
        "org": org(), "reference": "KL-2026-0001", "lang": lang.as_str(),
        "recipient": {"name": "Anna de Vries"},
        "kind": kind,
        "original_subject": "Slechte sessie", "client_name": "Jan Jansen",
        "status": "in_progress", "status_label": "in behandeling",
        "response_due": "21 december 2026", "working_days_left": 3,
        "extended": false,
        "reply_at": "14 december 2026", "waiting_days": 2,
        "is_handler": true,
    })
}

fn escalation_ctx(lang: Lang, kind: &str, level: u8) -> Value {
    json!({
        "org": org(), "reference": "KL-2026-0001", "lang": lang.as_str(),
        "recipient": {"name": "Carla Toezicht"},
        "kind": kind,
        "level": level,
        "original_subject": "Slechte sessie", "client_name": "Jan Jansen",
        "category": "coaching", "status": "in_progress", "status_label": "in behandeling",
        "handler": {"name": "Anna de Vries", "email": "anna@31solutions.nl"},
        "due": "21 december 2026",
        "days_late": 2,
        "extended": false,
        "ack_sent": true, "triage": false,
        "last_activity": {
            "at": "18 december 2026 14:05",
            "what": "antwoord aan de cliënt verstuurd",
            "actor": "Anna de Vries",
        },
        "second_level_working_days": 5,
    })
}

/// One case row of the digest; `dates` are received, ack due and
/// response due.
fn digest_row(
    reference: &str,
    subject: &str,
    handler: &str,
    status: (&str, &str),
    (received, ack_due, response_due): (&str, &str, &str),
    days_left: i64,
    extended: bool,
) -> Value {
    json!({
        "reference": reference, "subject": subject, "client_name": "Jan Jansen",
        "category": "coaching", "status": status.0, "status_label": status.1,
        "handler": handler, "received": received, "ack_due": ack_due,
        "response_due": response_due, "days_left": days_left, "extended": extended,
    })
}

/// Five cases, each in one section: new (and not yet acknowledged, but
/// not yet due), overdue, unacknowledged past its date, due soon and
/// triage; the four open ones again by status.
fn digest_ctx(lang: Lang) -> Value {
    let (in_progress, received, triage) = match lang {
        Lang::Nl => ("in behandeling", "ontvangen", "ter beoordeling"),
        Lang::En => ("in progress", "received", "awaiting review"),
    };
    let due_soon = digest_row(
        "KL-2026-0001",
        "Slechte sessie",
        "Anna de Vries",
        ("in_progress", in_progress),
        ("20-11-2026", "27-11-2026", "24-12-2026"),
        3,
        false,
    );
    let overdue = digest_row(
        "KL-2026-0002",
        "Geen reactie",
        "Bram Bakker",
        ("in_progress", in_progress),
        ("05-11-2026", "12-11-2026", "17-12-2026"),
        -2,
        true,
    );
    let triage_row = digest_row(
        "KL-2026-0003",
        "Vraag over <b>factuur</b>",
        "",
        ("triage", triage),
        ("18-12-2026", "28-12-2026", ""),
        0,
        false,
    );
    let new = digest_row(
        "KL-2026-0004",
        "Coach <i>te laat</i>",
        "Anna de Vries",
        ("received", received),
        ("18-12-2026", "28-12-2026", "22-01-2027"),
        22,
        false,
    );
    let unacked = digest_row(
        "KL-2026-0005",
        "Sessie afgezegd",
        "",
        ("received", received),
        ("10-12-2026", "17-12-2026", "11-01-2027"),
        13,
        false,
    );
    json!({
        "org": org(), "lang": lang.as_str(),
        "recipient": {"name": "Carla Toezicht"},
        "day": "maandag 21 december 2026",
        "since": "vrijdag 18 december 2026 08:30",
        "counts": {"new": 1, "open": 4, "due_soon": 1, "overdue": 1, "unacknowledged": 1, "triage": 1},
        "new_cases": [new],
        "due_soon": [due_soon],
        "overdue": [overdue],
        "unacknowledged": [unacked],
        "triage": [triage_row],
        "open_by_status": [
            {"status": "received", "label": received, "cases": [new, unacked]},
            {"status": "in_progress", "label": in_progress, "cases": [due_soon, overdue]},
        ],
        "reminder_working_days": 3,
    })
}

fn health_ctx(lang: Lang, what: &str, state: &str) -> Value {
    json!({
        "org": org(), "lang": lang.as_str(),
        "recipient": {"name": "Carla Toezicht"},
        "what": what,
        "state": state,
        "since": "23 november 2026 09:12",
        "minutes": 75,
        "last_error": "IMAP login failed: authentication failed",
        "unsent": 3,
        "mailbox": "info@31solutions.nl",
    })
}

fn to_client_ctx(lang: Lang, kind: &str) -> Value {
    json!({
        "org": org(), "reference": "KL-2026-0001", "lang": lang.as_str(),
        "client_name": "Jan Jansen", "original_subject": "Slechte sessie",
        "kind": kind, "text": "Beste Jan,\n\nWij bieden u <een> extra sessie aan.",
        "staff": {"name": "Anna de Vries"}, "response_due": "5 januari 2027",
        "reason": "de coach is ziek", "days": 10,
        "external_body": "Geschillencommissie, Postbus 1, Den Haag",
    })
}

#[test]
fn staff_mail_carries_the_reply_marker_and_client_mail_never_does() {
    let r = renderer();
    for lang in LANGS {
        for &t in Template::ALL {
            let out = r.render(lang, t, &full_ctx(lang, t)).unwrap();
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
            let out = render(lang, Template::ToClient, &to_client_ctx(lang, kind));
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

fn renderer() -> Renderer {
    Renderer::new(None).expect("built-in templates load")
}

fn render(lang: Lang, t: Template, ctx: &Value) -> Rendered {
    renderer()
        .render(lang, t, ctx)
        .unwrap_or_else(|e| panic!("{}/{}: {e:#}", lang.as_str(), t.name()))
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
            "report"
        ]
    );
    assert_eq!(BUILTIN.len(), Template::ALL.len() * PARTS.len() * 2);
}

#[test]
fn every_template_renders_in_both_languages_with_the_reference_in_the_subject() {
    let r = renderer();
    for lang in LANGS {
        for &t in Template::ALL {
            let ctx = full_ctx(lang, t);
            let reference = ctx["reference"].as_str().unwrap_or_default().to_string();
            let out = r
                .render(lang, t, &ctx)
                .unwrap_or_else(|e| panic!("{}/{}: {e:#}", lang.as_str(), t.name()));
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
            let ctx = full_ctx(lang, t);
            let out = render(lang, t, &ctx);
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
        let out = render(lang, Template::Ack, &ack_ctx(lang, &[]));
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
    let nl = render(Lang::Nl, Template::Ack, &ack_ctx(Lang::Nl, &[]));
    assert_eq!(
        nl.subject,
        "[KL-2026-0001] Ontvangstbevestiging van uw klacht"
    );
    assert!(nl.text.contains("papieren exemplaar"));
    assert!(nl.text.contains("vertrouwelijk"));
    assert!(nl.text.contains("onafhankelijke"));
    let en = render(Lang::En, Template::Ack, &ack_ctx(Lang::En, &[]));
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
        let all = render(
            lang,
            Template::Ack,
            &ack_ctx(lang, &["nature", "dates", "desired_outcome"]),
        );
        for part in [&all.text, &all.html] {
            assert!(part.contains(nature), "{}: {part}", lang.as_str());
            assert!(part.contains(dates));
            assert!(part.contains(outcome));
        }
        let one = render(lang, Template::Ack, &ack_ctx(lang, &["dates"]));
        for part in [&one.text, &one.html] {
            assert!(!part.contains(nature));
            assert!(part.contains(dates));
            assert!(!part.contains(outcome));
        }
        let none = render(lang, Template::Ack, &ack_ctx(lang, &[]));
        for part in [&none.text, &none.html] {
            assert!(!part.contains(nature) && !part.contains(dates) && !part.contains(outcome));
            assert!(!part.contains("aanvullen") && !part.contains("missing"));
        }
    }
}

#[test]
fn acknowledgement_shows_the_client_nothing_internal() {
    for lang in LANGS {
        let out = render(lang, Template::Ack, &ack_ctx(lang, &["nature"]));
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
    let mut ctx = ack_ctx(Lang::Nl, &[]);
    ctx["client_name"] = json!("");
    let nl = render(Lang::Nl, Template::Ack, &ctx);
    assert!(nl.text.starts_with("Geachte heer, mevrouw,"), "{}", nl.text);
    let mut ctx = ack_ctx(Lang::En, &[]);
    ctx["client_name"] = json!("");
    let en = render(Lang::En, Template::Ack, &ctx);
    assert!(en.text.starts_with("Dear Sir or Madam,"), "{}", en.text);
}

#[test]
fn html_escapes_client_provided_fields_while_text_keeps_them_verbatim() {
    for lang in LANGS {
        let out = render(
            lang,
            Template::HandlerNew,
            &handler_new_ctx(lang, "email", "jan@example.nl"),
        );
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

        let tri = render(lang, Template::Triage, &triage_ctx(lang));
        assert!(!tri.html.contains("<script>"));
        assert!(tri.html.contains("Kees &lt;script&gt;"));

        let mut ctx = ack_ctx(lang, &[]);
        ctx["client_name"] = json!("<script>x</script>");
        ctx["original_subject"] = json!("\"quoted\" & <em>");
        let ack = render(lang, Template::Ack, &ctx);
        assert!(!ack.html.contains("<script>") && !ack.html.contains("<em>"));
        assert!(ack.html.contains("&lt;script&gt;x&lt;/script&gt;"));
    }
}

#[test]
fn subject_is_one_trimmed_line_even_when_the_original_subject_has_line_breaks() {
    let mut ctx = handler_new_ctx(Lang::Nl, "email", "jan@example.nl");
    ctx["original_subject"] = json!("  Eerste regel\r\n\tBcc: evil@example.com  ");
    let out = render(Lang::Nl, Template::HandlerNew, &ctx);
    assert_eq!(
        out.subject,
        "[KL-2026-0001] Nieuwe klacht toegewezen: Eerste regel Bcc: evil@example.com"
    );
}

#[test]
fn handler_notification_lists_the_facts_and_the_reply_commands() {
    for lang in LANGS {
        let out = render(
            lang,
            Template::HandlerNew,
            &handler_new_ctx(lang, "email", "jan@example.nl"),
        );
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
    let nl = render(
        Lang::Nl,
        Template::HandlerNew,
        &handler_new_ctx(Lang::Nl, "email", "jan@example.nl"),
    );
    assert!(nl
        .subject
        .starts_with("[KL-2026-0001] Nieuwe klacht toegewezen: "));
    assert!(nl.text.contains("niet opgeslagen"));
}

#[test]
fn phone_complaint_without_an_address_asks_the_handler_to_confirm_by_phone() {
    for (lang, phrase) in [(Lang::Nl, "telefonisch"), (Lang::En, "by phone")] {
        let mut ctx = handler_new_ctx(lang, "phone", "");
        ctx["concerns"] = json!([]);
        ctx["missing"] = json!([]);
        ctx["attachments"] = json!([]);
        ctx["client_phone"] = json!("0612345678");
        let out = render(lang, Template::HandlerNew, &ctx);
        for part in [&out.text, &out.html] {
            assert!(part.contains(phrase), "{}: {part}", lang.as_str());
            assert!(part.contains("0612345678"));
            assert!(part.contains("27 november 2026"));
        }
        // A phone complaint with an address gets the emailed ack.
        let with_mail = render(
            lang,
            Template::HandlerNew,
            &handler_new_ctx(lang, "phone", "jan@example.nl"),
        );
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
        let out = render(lang, Template::Triage, &triage_ctx(lang));
        for part in [&out.text, &out.html] {
            assert!(part.contains("/klacht"));
            assert!(part.contains("/geen-klacht"));
            assert!(part.contains("Het bericht is twijfelachtig."));
            assert!(part.contains("kees@example.nl"));
            assert!(part.contains("niet helemaal tevreden"));
            assert!(part.contains('3'));
        }
    }
    let nl = render(Lang::Nl, Template::Triage, &triage_ctx(Lang::Nl));
    assert_eq!(
        nl.subject,
        "[KL-2026-0003] Ter beoordeling: Vraag over factuur"
    );
    let en = render(Lang::En, Template::Triage, &triage_ctx(Lang::En));
    assert_eq!(en.subject, "[KL-2026-0003] For review: Vraag over factuur");
}

#[test]
fn unassigned_names_the_persons_concerned_and_the_toewijzen_command() {
    for lang in LANGS {
        let out = render(lang, Template::Unassigned, &unassigned_ctx(lang));
        for part in [&out.text, &out.html] {
            assert!(part.contains("/toewijzen"));
            assert!(part.contains("Anna de Vries") && part.contains("Piet Coach"));
            assert!(part.contains("Alle behandelaars worden in de klacht genoemd."));
            assert!(part.contains("Klacht over de coach"));
        }
    }
    // The reason is optional; a standard sentence stands in.
    let mut ctx = unassigned_ctx(Lang::Nl);
    if let Some(o) = ctx.as_object_mut() {
        o.remove("reason");
    }
    let out = render(Lang::Nl, Template::Unassigned, &ctx);
    assert!(out.text.contains("onafhankelijke behandelaar"));
}

#[test]
fn client_reply_relays_the_body_and_the_response_date_to_the_handler() {
    for lang in LANGS {
        let out = render(
            lang,
            Template::ClientReplyToHandler,
            &client_reply_ctx(lang),
        );
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
    let nl = render(
        Lang::Nl,
        Template::ClientReplyToHandler,
        &client_reply_ctx(Lang::Nl),
    );
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
        let out = render(lang, Template::Reminder, &reminder_ctx(lang, "due_soon"));
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
        let mut ctx = reminder_ctx(lang, "due_soon");
        ctx["working_days_left"] = json!(0);
        ctx["extended"] = json!(true);
        ctx["is_handler"] = json!(false);
        let out = render(lang, Template::Reminder, &ctx);
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

        let out = render(
            lang,
            Template::Reminder,
            &reminder_ctx(lang, "reply_waiting"),
        );
        for part in [&flat(&out.text), &out.html] {
            assert!(part.contains("14 december 2026"), "{part}");
            assert!(part.contains(waited) && part.contains("Jan Jansen"));
            assert!(part.contains("KL-2026-0001") && part.contains("/intern"));
        }
    }
    let subject = |lang, kind| render(lang, Template::Reminder, &reminder_ctx(lang, kind)).subject;
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
        let out = render(
            lang,
            Template::Escalation,
            &escalation_ctx(lang, "response", 1),
        );
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

        let out = render(
            lang,
            Template::Escalation,
            &escalation_ctx(lang, "response", 2),
        );
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
        let mut ctx = escalation_ctx(lang, "response", 1);
        ctx["second_level_working_days"] = json!(0);
        ctx["last_activity"] = Value::Null;
        let out = render(lang, Template::Escalation, &ctx);
        let nothing = match lang {
            Lang::Nl => "nog niets vastgelegd",
            Lang::En => "nothing recorded yet",
        };
        for part in [&flat(&out.text), &out.html] {
            assert!(!part.to_lowercase().contains(second), "{part}");
            assert!(part.contains(nothing));
        }

        // Acknowledgement not sent, still in triage, no handler.
        let mut ctx = escalation_ctx(lang, "ack", 1);
        ctx["handler"] = Value::Null;
        ctx["triage"] = json!(true);
        ctx["ack_sent"] = json!(false);
        ctx["due"] = json!("27 november 2026");
        let out = render(lang, Template::Escalation, &ctx);
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
        let out = render(
            lang,
            Template::Escalation,
            &escalation_ctx(lang, "conflict", 1),
        );
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
    let nl = render(
        Lang::Nl,
        Template::Escalation,
        &escalation_ctx(Lang::Nl, "response", 1),
    );
    assert_eq!(
        nl.subject,
        "[KL-2026-0001] Termijn verstreken: Slechte sessie"
    );
    let en = render(
        Lang::En,
        Template::Escalation,
        &escalation_ctx(Lang::En, "response", 1),
    );
    assert_eq!(en.subject, "[KL-2026-0001] Deadline passed: Slechte sessie");
}

#[test]
fn digest_lists_every_case_in_text_and_in_html_tables() {
    for lang in LANGS {
        let ctx = digest_ctx(lang);
        let out = render(lang, Template::Digest, &ctx);
        let (headings, late, no_effect): (&[&str], &str, &str) = match lang {
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
                "2 te laat",
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
                "2 late",
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
    let nl = render(Lang::Nl, Template::Digest, &digest_ctx(Lang::Nl));
    assert_eq!(
        nl.subject,
        "Klachten: dagoverzicht maandag 21 december 2026 (1 nieuw, 1 te laat)"
    );
    let en = render(Lang::En, Template::Digest, &digest_ctx(Lang::En));
    assert_eq!(
        en.subject,
        "Complaints: daily overview maandag 21 december 2026 (1 new, 1 overdue)"
    );
}

#[test]
fn digest_leaves_out_empty_sections_and_says_when_nothing_is_open() {
    for lang in LANGS {
        let (none, overdue, new_heading) = match lang {
            Lang::Nl => ("Er zijn geen open zaken.", "Te laat (", "Nieuw ("),
            Lang::En => ("There are no open cases.", "Overdue (", "New ("),
        };
        let mut ctx = digest_ctx(lang);
        for key in [
            "new_cases",
            "due_soon",
            "overdue",
            "unacknowledged",
            "triage",
            "open_by_status",
        ] {
            ctx[key] = json!([]);
        }
        ctx["counts"] = json!({"new": 0, "open": 0, "due_soon": 0, "overdue": 0, "unacknowledged": 0, "triage": 0});
        ctx["since"] = json!("");
        let out = render(lang, Template::Digest, &ctx);
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
        for key in [
            "due_soon",
            "overdue",
            "unacknowledged",
            "triage",
            "open_by_status",
        ] {
            ctx[key] = json!([]);
        }
        ctx["since"] = json!("");
        let out = render(lang, Template::Digest, &ctx);
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
                let out = render(lang, Template::Health, &health_ctx(lang, what, state));
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
        // Without a recorded error the line is left out.
        let mut ctx = health_ctx(lang, "outbox", "alarm");
        ctx["last_error"] = json!("");
        ctx["unsent"] = json!(1);
        let out = render(lang, Template::Health, &ctx);
        for part in [&out.text, &out.html] {
            assert!(!part.contains(last_error), "{part}");
        }
        let one = match lang {
            Lang::Nl => "wacht 1 e-mail",
            Lang::En => "1 email is",
        };
        assert!(flat(&out.text).contains(one), "{}", out.text);
    }
    let subject =
        |lang, what, state| render(lang, Template::Health, &health_ctx(lang, what, state)).subject;
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
    let out = r
        .render(Lang::Nl, Template::Ack, &ack_ctx(Lang::Nl, &[]))
        .expect("render");
    assert_eq!(out.subject, "[KL-2026-0001] Wij hebben uw klacht ontvangen");
    assert_eq!(
        out.text,
        "Eigen tekst voor Jan Jansen, uiterlijk maandag 21 december 2026.\n"
    );
    // The html part and the English ack are still the built-in ones.
    assert!(out.html.contains("Anna de Vries"));
    let en = r
        .render(Lang::En, Template::Ack, &ack_ctx(Lang::En, &[]))
        .expect("render");
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
    let mut ctx = ack_ctx(Lang::Nl, &[]);
    if let Some(o) = ctx.as_object_mut() {
        o.remove("handler");
    }
    let err = renderer()
        .render(Lang::Nl, Template::Ack, &ctx)
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("nl/ack."), "{msg}");
    assert!(msg.contains("handler"), "{msg}");
}

#[test]
fn context_that_is_not_an_object_is_an_error() {
    let err = renderer()
        .render(Lang::En, Template::Triage, &json!(["no"]))
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
    let mut ctx = client_reply_ctx(Lang::En);
    ctx["due"] = json!("2027-03-01");
    let out = r
        .render(Lang::En, Template::ClientReplyToHandler, &ctx)
        .expect("render");
    assert_eq!(out.subject, "[KL-2026-0001] 1 March 2027");
    ctx["due"] = json!("2027-02-30");
    let err = r
        .render(Lang::En, Template::ClientReplyToHandler, &ctx)
        .expect_err("bad date");
    assert!(
        err.to_string().contains("en/client_reply.subject.txt"),
        "{err}"
    );
}

#[test]
fn language_is_supplied_when_the_caller_leaves_it_out() {
    let mut ctx = triage_ctx(Lang::En);
    if let Some(o) = ctx.as_object_mut() {
        o.remove("lang");
    }
    let out = render(Lang::En, Template::Triage, &ctx);
    assert!(out.html.contains("lang=\"en\""));
}
