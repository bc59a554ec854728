//! Art. 9 in the logs: at the default log level (no `KLACHTD_LOG`, no
//! `[log] level`), everything klachtd writes as a log during a full run
//! carries case references, UIDs and Message-IDs only: never a client's
//! address, name, complaint text, reply, phone description or phone number.
//!
//! One story on the real Dovecot and Postfix through the real `klachtd`
//! binary: a mailed complaint, its acknowledgement and the handler's notice,
//! the client's reply, the handler's proposal from their mail client, two
//! phone complaints (one with a mistyped address the SMTP server refuses),
//! a triage item, a request for the regulation, an ordinary mail, scheduler
//! passes over six weeks (reminders, escalations, digests), a case closed by
//! hand, and the daemon taking one more complaint. The stderr (and stdout)
//! of every invocation is kept, except `cases` and `case show`, whose job is
//! to print case data; then every client detail is looked for in it.
//!
//! The simulated weeks lie in the past on purpose: mail is put into info@
//! with IMAP APPEND and an INTERNALDATE, which Dovecot moves to "now" when
//! it lies in the future.

use std::io::Read as _;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::world::{parsed, unique_id, Daemon, World};
use serde_json::Value;

/// The log of one klachtd invocation: what ran, and what it wrote.
struct Log {
    what: String,
    text: String,
}

#[derive(Default)]
struct Logs(Vec<Log>);

impl Logs {
    /// Keeps stderr and stdout of a finished invocation.
    fn keep(&mut self, what: &str, out: &Output) {
        self.0.push(Log {
            what: format!("{what} (stderr)"),
            text: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
        self.0.push(Log {
            what: format!("{what} (stdout)"),
            text: String::from_utf8_lossy(&out.stdout).into_owned(),
        });
    }

    fn all(&self) -> String {
        self.0
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every log line that contains `needle`, case-insensitively, as
    /// "invocation: line".
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let needle = needle.to_lowercase();
        self.0
            .iter()
            .flat_map(|l| {
                l.text
                    .lines()
                    .filter(|line| line.to_lowercase().contains(&needle))
                    .map(|line| format!("{}: {line}", l.what))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn date(day: &str) -> jiff::civil::Date {
    day.parse().expect("a date (YYYY-MM-DD)")
}

/// `HH:00` in Amsterdam on `day` (YYYY-MM-DD), as RFC 3339.
fn at(day: &str, hour: i8) -> String {
    date(day)
        .at(hour, 0, 0, 0)
        .in_tz("Europe/Amsterdam")
        .expect("Amsterdam time")
        .timestamp()
        .to_string()
}

/// `from` answers `original` (a mail klachtd sent them) with `top` above
/// the quoted original, the way Gmail writes it, threaded.
fn answer(w: &World, day: &str, from: &str, original: &[u8], top: &str) {
    let o = parsed(original);
    let sender = o.from.as_ref().map(|a| a.to_string()).unwrap_or_default();
    let mut refs = o.references.clone();
    refs.push(o.message_id.clone());
    let quoted: Vec<String> = o.text.lines().map(|l| format!("> {l}")).collect();
    let body = format!(
        "{top}\n\nOp {day} om 08:00 schreef 31Solutions klachten <{sender}>:\n\n{}\n",
        quoted.join("\n")
    );
    w.arrive(
        date(day),
        from,
        &format!("Re: {}", o.subject),
        &body,
        &[
            ("In-Reply-To", &o.message_id),
            ("References", &refs.join(" ")),
        ],
    );
}

fn case_of<'a>(cases: &'a [Value], client: &str) -> &'a Value {
    cases
        .iter()
        .find(|c| c["client_email"].as_str() == Some(client))
        .unwrap_or_else(|| panic!("no case for {client}: {cases:#?}"))
}

/// `klachtd --now NOW ARGS`, which must succeed; its output is kept under
/// `label` (not the arguments: they hold the very data looked for).
fn klachtd_ok(w: &World, logs: &mut Logs, label: &str, now: &str, args: &[&str]) -> Output {
    let mut all = vec!["--now", now];
    all.extend_from_slice(args);
    let out = w.klachtd(&all);
    assert!(
        out.status.success(),
        "klachtd {label} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    logs.keep(&format!("klachtd {label}"), &out);
    w.settle();
    out
}

/// The people of the story and what they wrote: everything here is client
/// data that no log line may carry.
struct Secret {
    addresses: Vec<String>,
    names: Vec<&'static str>,
    words: Vec<&'static str>,
    phones: Vec<&'static str>,
}

impl Secret {
    fn needles(&self) -> Vec<String> {
        let mut n = Vec::new();
        for a in &self.addresses {
            n.push(a.clone());
            let local = a.split('@').next().expect("local part");
            n.push(local.to_string());
        }
        for name in &self.names {
            for part in name.split([' ', '-']) {
                if part.chars().count() >= 4 {
                    n.push(part.to_string());
                }
            }
        }
        n.extend(self.words.iter().map(|s| s.to_string()));
        n.extend(self.phones.iter().map(|s| s.to_string()));
        n.sort();
        n.dedup();
        n
    }
}

#[test]
fn at_the_default_level_the_logs_of_a_full_run_hold_references_and_message_ids_only() {
    full_run_logs(LogFormat::Text);
}

/// The same in `log.format = "json"`: every line one JSON object.
#[test]
fn json_logs_hold_no_more_than_the_text_ones() {
    full_run_logs(LogFormat::Json);
}

#[derive(Clone, Copy, PartialEq)]
enum LogFormat {
    Text,
    Json,
}

fn full_run_logs(format: LogFormat) {
    let w = match format {
        LogFormat::Text => World::new(),
        LogFormat::Json => World::with_config("\n[log]\nformat = \"json\"\n"),
    };
    let regulation =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/klachtenreglement.txt");
    let env = [(
        "KLACHTD__ORGANISATION__REGULATION_FILE",
        regulation.as_os_str(),
    )];
    let mut logs = Logs::default();
    let run = |logs: &mut Logs, now: &str| {
        let out = w.run_once_with(now, &env);
        logs.keep(&format!("run --once --now {now}"), &out);
    };

    let xandra_name = "Xandra Quispel-Vermeer";
    let xandra = w.client("xq");
    let gerritje_name = "Gerritje Zwanenburg";
    let gerritje = w.client("gz");
    let gerritje_phone = "0644712983";
    let olivier_name = "Olivier Brouwenstijn";
    // A mistyped domain: Postfix refuses it at RCPT time, with the address
    // in its answer.
    let olivier = "obrouwenstijn@brouwenstijn-mail.invalid".to_string();
    let olivier_phone = "0207788991";
    let femke_name = "Femke-Lotte Dijkgraaf";
    let femke = w.client("fd");
    let ysbrand_name = "Ysbrand Kieftenbeld";
    let ysbrand = w.client("yk");
    let theodora_name = "Theodora Vlinderbloem";
    let theodora = w.client("tv");
    let wubbo_name = "Wubbo Hanegraaf";
    let wubbo = w.client("wh");
    let secret = Secret {
        addresses: vec![
            xandra.clone(),
            gerritje.clone(),
            olivier.clone(),
            femke.clone(),
            ysbrand.clone(),
            theodora.clone(),
            wubbo.clone(),
        ],
        names: vec![
            xandra_name,
            gerritje_name,
            olivier_name,
            femke_name,
            ysbrand_name,
            theodora_name,
            wubbo_name,
        ],
        words: vec![
            // Xandra's complaint, her reply, and the handler's answer to her.
            "zeepbelvormige",
            "Kwakkelstraat",
            "Okkernootboom",
            "Lindeboomzaal",
            // Gerritje's and Olivier's phone complaints.
            "trampolinecursus",
            "Zwijndrecht",
            "hutspotavond",
            // Femke's doubt, Ysbrand's request, Theodora's thanks.
            "Blauwgroenzaal",
            "Wolkenkrabberlaan",
            "pannenkoekenmiddag",
            // Wubbo's complaint to the daemon.
            "Flierefluiterpad",
        ],
        phones: vec![gerritje_phone, "44712983", olivier_phone, "7788991"],
    };

    // Monday 5 October 2026: Xandra mails a complaint.
    let complaint_id = w.arrive(
        date("2026-10-05"),
        &format!("{xandra_name} <{xandra}>"),
        "Klacht over de zeepbelvormige coachingsruimte",
        "Beste 31Solutions,\n\nOp 1 oktober 2026 had ik een sessie met Bram aan de Kwakkelstraat 17.\n\
         De zeepbelvormige ruimte was ijskoud en Bram kwam een half uur te laat.\n\
         Ik ben hier zeer ontevreden over en dien hierbij een klacht in.\n\n\
         Ik wil graag een nieuwe sessie met een andere coach.\n\n\
         Met vriendelijke groet,\nXandra Quispel-Vermeer\n",
        &[],
    );
    run(&mut logs, &at("2026-10-05", 9));
    let cases = w.cases();
    let x = case_of(&cases, &xandra);
    let x_ref = x["reference"].as_str().unwrap().to_string();
    let x_handler = x["handler_email"].as_str().expect("a handler").to_string();
    assert_eq!(x["status"], "acknowledged", "{x:#}");
    let ack = w.find(&xandra, "ack", &x_ref);
    let notice = w.find(&x_handler, "handler_new", &x_ref);

    // Tuesday 6 October: Xandra replies on her thread; a mail that is only
    // a triage candidate, a request for the regulation and an ordinary mail
    // come in.
    answer(
        &w,
        "2026-10-06",
        &xandra,
        &ack,
        "Aanvulling: de sessie begon pas om 10:40, bij de Okkernootboom voor de deur.",
    );
    w.arrive(
        date("2026-10-06"),
        &format!("{femke_name} <{femke}>"),
        "Workshop van vrijdag",
        "Hallo,\n\nDe workshop van vrijdag in de Blauwgroenzaal was op zich wel leuk, maar ik was een beetje\n\
         teleurgesteld over de lange pauzes. Misschien iets voor de volgende keer?\n\n\
         Groetjes,\nFemke-Lotte\n",
        &[],
    );
    w.arrive(
        date("2026-10-06"),
        &format!("{ysbrand_name} <{ysbrand}>"),
        "Klachtenreglement",
        "Goedendag,\n\nKunt u mij het klachtenreglement sturen? Ik heb het liefst een papieren\n\
         exemplaar, mijn adres is Wolkenkrabberlaan 88, 1234 AB Ergens.\n\n\
         Met vriendelijke groet,\nYsbrand Kieftenbeld\n",
        &[],
    );
    w.arrive(
        date("2026-10-06"),
        &format!("{theodora_name} <{theodora}>"),
        "Bedankt voor de workshop",
        "Hoi,\n\nEven een berichtje: geen klachten, alles was prima! De pannenkoekenmiddag van vorige\n\
         week was erg leerzaam.\n\nTot ziens,\nTheodora\n",
        &[],
    );
    run(&mut logs, &at("2026-10-06", 9));

    // Later that morning two complaints come in by phone; Olivier's address
    // was taken down wrong.
    let out = klachtd_ok(
        &w,
        &mut logs,
        "register (phone complaint 1)",
        &at("2026-10-06", 10),
        &[
            "register",
            "--name",
            gerritje_name,
            "--email",
            &gerritje,
            "--phone",
            gerritje_phone,
            "--description",
            "Tijdens de trampolinecursus op 2 oktober 2026 in Zwijndrecht negeerde Carla mijn vragen; ik wil graag excuses.",
        ],
    );
    let g_ref = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .expect("a reference")
        .to_string();
    let out = klachtd_ok(
        &w,
        &mut logs,
        "register (phone complaint 2, refused address)",
        &at("2026-10-06", 11),
        &[
            "register",
            "--name",
            olivier_name,
            "--email",
            &olivier,
            "--phone",
            olivier_phone,
            "--description",
            "De hutspotavond op 3 oktober 2026 was rommelig georganiseerd; ik wil mijn geld terug.",
        ],
    );
    let o_ref = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .expect("a reference")
        .to_string();

    // Wednesday 7 October: the handler answers the notice from their mail
    // client, a proposal with text above the quote.
    answer(
        &w,
        "2026-10-07",
        &x_handler,
        &notice,
        "/voorstel\nBeste mevrouw Quispel-Vermeer,\n\nWij bieden u een kosteloze sessie aan in de Lindeboomzaal.",
    );
    run(&mut logs, &at("2026-10-07", 9));

    // The story happened as told: otherwise the test proves little.
    let cases = w.cases();
    assert_eq!(case_of(&cases, &xandra)["status"], "proposed", "{cases:#?}");
    assert!(
        w.mails(&xandra)
            .iter()
            .any(|m| parsed(m).text.contains("Lindeboomzaal")),
        "the proposal reached Xandra"
    );
    let xandra_case = w.case(&x_ref);
    assert!(
        xandra_case["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "client_reply"),
        "her reply joined her case: {xandra_case:#}"
    );
    assert_eq!(case_of(&cases, &gerritje)["reference"], g_ref.as_str());
    assert_eq!(w.mails(&gerritje).len(), 1, "Gerritje's acknowledgement");
    let olivier_case = case_of(&cases, &olivier);
    assert_eq!(olivier_case["reference"], o_ref.as_str());
    assert!(
        olivier_case["ack_sent_at"].is_null(),
        "the server refused Olivier's address: {olivier_case:#}"
    );
    assert_eq!(case_of(&cases, &femke)["status"], "triage");
    assert!(
        cases.iter().all(
            |c| c["client_email"] != ysbrand.as_str() && c["client_email"] != theodora.as_str()
        ),
        "no case for the regulation request or the ordinary mail: {cases:#?}"
    );
    assert_eq!(w.mails(&ysbrand).len(), 1, "the regulation was sent");
    assert!(w.mails(&theodora).is_empty());

    // Six weeks of scheduler passes: reminders, escalations, digests.
    for day in ["2026-10-13", "2026-10-28", "2026-11-03", "2026-11-10"] {
        run(&mut logs, &at(day, 9));
    }
    let scheduled: usize = [&w.anna, &w.bram, &w.carla, &w.dirk]
        .iter()
        .map(|a| w.all_mails(a).len() - w.mails(a).len())
        .sum();
    assert!(
        scheduled > 0,
        "the scheduler sent reminders, escalations or digests"
    );

    // The office closes Olivier's case by hand.
    klachtd_ok(
        &w,
        &mut logs,
        "case close",
        &at("2026-11-10", 10),
        &[
            "case",
            "close",
            &o_ref,
            "--reason",
            "telefonisch opgelost met Olivier Brouwenstijn",
        ],
    );

    // The daemon takes one more complaint, on the real clock.
    let mut daemon = Daemon(
        w.command()
            .arg("run")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon"),
    );
    let mut daemon_err = daemon.0.stderr.take().expect("stderr");
    let mut daemon_out = daemon.0.stdout.take().expect("stdout");
    let read_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = daemon_err.read_to_string(&mut s);
        s
    });
    let read_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = daemon_out.read_to_string(&mut s);
        s
    });
    let raw = format!(
        "From: {wubbo_name} <{wubbo}>\r\nTo: {info}\r\nSubject: Klacht over de sessie aan het Flierefluiterpad\r\n\
         Message-ID: {id}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Beste 31Solutions,\r\n\r\nOp 16 november 2026 had ik een sessie met Bram aan het Flierefluiterpad.\r\n\
         Bram was slecht voorbereid. Ik ben zeer ontevreden en dien hierbij een klacht in.\r\n\r\n\
         Ik wil graag een nieuwe sessie met een andere coach.\r\n\r\nWubbo Hanegraaf\r\n",
        info = w.info,
        id = unique_id("privacy"),
    );
    w.deliver(&wubbo, raw.as_bytes());
    let acks = w
        .stack
        .wait_for_messages(&wubbo, "INBOX", 1, Duration::from_secs(30));
    assert_eq!(acks.len(), 1, "the daemon acknowledged Wubbo's complaint");
    w.settle();
    let status = daemon.terminate();
    assert!(status.success(), "graceful exit: {status:?}");
    logs.0.push(Log {
        what: "run (daemon, stderr)".into(),
        text: read_err.join().expect("daemon stderr"),
    });
    logs.0.push(Log {
        what: "run (daemon, stdout)".into(),
        text: read_out.join().expect("daemon stdout"),
    });
    assert_eq!(w.cases().len(), 5, "Wubbo's case was recorded");

    // The logs are there: the test would notice if logging were off.
    let all = logs.all();
    assert!(!all.trim().is_empty(), "no logs at all");
    assert!(
        !logs.lines_with(&x_ref).is_empty(),
        "the logs name the case {x_ref}:\n{all}"
    );
    assert!(
        !logs.lines_with("KL-2026-").is_empty(),
        "the logs name case references:\n{all}"
    );
    assert!(
        !logs.lines_with(&complaint_id).is_empty(),
        "the logs carry the complaint's Message-ID {complaint_id}:\n{all}"
    );
    let message_id_field = match format {
        LogFormat::Text => "message_id=<",
        LogFormat::Json => "\"message_id\":\"<",
    };
    assert!(
        !logs.lines_with(message_id_field).is_empty(),
        "the logs carry Message-IDs:\n{all}"
    );
    if format == LogFormat::Json {
        for log in logs.0.iter().filter(|l| l.what.contains("stderr")) {
            for line in log
                .text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with("klachtd: "))
            {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}) in {}: {line}", log.what));
                assert!(
                    v["level"].is_string() && v["timestamp"].is_string(),
                    "{line}"
                );
            }
        }
    }
    assert!(
        logs.0
            .iter()
            .any(|l| l.what == "run (daemon, stderr)" && l.text.contains("KL-2026-")),
        "the daemon logged the case it opened:\n{all}"
    );

    // And nothing of any client is in them.
    let mut leaks = Vec::new();
    for needle in secret.needles() {
        for line in logs.lines_with(&needle) {
            leaks.push(format!("{needle:?} in {line}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "client data in the logs at the default level:\n{}",
        leaks.join("\n")
    );
    // Nor the Message-ID of any mail to staff: answering it is what
    // authenticates staff mail, so it is a token (issue 13).
    let tokens: Vec<String> = [&w.anna, &w.bram, &w.carla, &w.dirk]
        .iter()
        .flat_map(|a| w.all_mails(a))
        .map(|m| parsed(&m).message_id)
        .collect();
    assert!(!tokens.is_empty(), "staff were mailed");
    for t in &tokens {
        let found = logs.lines_with(t);
        assert!(found.is_empty(), "a staff token in the logs: {found:?}");
    }
}
