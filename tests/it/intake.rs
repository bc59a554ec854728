//! Complaint intake end to end, on the real Dovecot and Postfix (started by
//! scripts/test, or by the first test of this process), through the real
//! `klachtd` binary and its contract CLI.

use std::time::Duration;

use crate::support::NOW;
use crate::world::{fixture, parsed, unique_id, Daemon, World};

fn only_case(w: &World) -> serde_json::Value {
    let cases = w.cases();
    assert_eq!(cases.len(), 1, "{cases:#?}");
    cases[0].clone()
}

#[test]
fn a_complaint_is_acknowledged_at_once_with_its_handler_and_answer_date() {
    let w = World::new();
    let client = w.client("jan");
    let id = unique_id("plain");
    w.deliver_fixture_as("Jan de Vries", &client, "nl-complaint-plain.eml", &id);
    w.run_once();

    let case = only_case(&w);
    assert_eq!(case["reference"], "KL-2026-0001");
    assert_eq!(case["status"], "acknowledged");
    assert_eq!(case["category"], "coaching");
    assert_eq!(case["client_name"], "Jan de Vries");
    assert_eq!(case["client_email"], client.as_str());
    assert_eq!(case["subject"], "Klacht over coachingssessie");
    // The complaint is about Bram: he may not handle it (art. 6).
    assert_eq!(case["concerns"], serde_json::json!([w.bram]));
    assert_eq!(case["handler_email"], w.anna.as_str());
    assert_eq!(case["ack_due"], "2026-11-30");
    assert_eq!(case["response_due"], "2026-12-21");
    assert_eq!(case["missing"], serde_json::json!([]));
    assert!(case["received_at"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-23T09:00:00"));
    assert!(case["ack_sent_at"].is_string());

    let acks = w.mails(&client);
    assert_eq!(acks.len(), 1, "exactly one acknowledgement");
    let ack = parsed(&acks[0]);
    assert_eq!(
        ack.subject,
        "[KL-2026-0001] Ontvangstbevestiging van uw klacht"
    );
    assert_eq!(ack.from.as_ref().unwrap().as_str(), w.info);
    assert_eq!(ack.in_reply_to, vec![id.clone()]);
    assert!(ack.references.contains(&id));
    assert_eq!(ack.header("auto-submitted"), Some("auto-replied"));
    assert_eq!(ack.header("x-auto-response-suppress"), Some("All"));
    for needle in [
        "KL-2026-0001",
        "Anna de Vries",
        w.anna.as_str(),
        "21 december 2026",
        "https://www.31solutions.test/klachtenreglement",
    ] {
        assert!(
            ack.text.contains(needle),
            "ack lacks {needle:?}:\n{}",
            ack.text
        );
    }
    assert!(
        !ack.text.contains("Bram"),
        "the client is not told whom the complaint concerns internally"
    );

    // The handler is told; the person concerned is not.
    let notes = w.mails(&w.anna);
    assert_eq!(notes.len(), 1);
    let note = parsed(&notes[0]);
    assert!(
        note.subject.starts_with("[KL-2026-0001]"),
        "{}",
        note.subject
    );
    assert!(
        note.text.contains("twintig minuten te laat"),
        "the notification carries the complaint"
    );
    assert!(
        w.mails(&w.bram).is_empty(),
        "the person concerned never sees the case"
    );

    // The acknowledgement is in Sent; the handler's notification is not
    // (its Message-ID is a token, and Sent is read by all who read info@).
    // The complaint left INBOX for the complaint folder (art. 9: not
    // everyone who reads info@ reads it), with the keyword, still unread.
    let sent = w.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(crate::world::kind(&sent[0]), "ack");
    assert!(w.stack.imap_flags(&w.info, "INBOX").unwrap().is_empty());
    let flags = w.stack.imap_flags(&w.info, "Klachten").unwrap();
    assert_eq!(flags.len(), 1);
    assert!(flags[0].1.iter().any(|f| f == "$Klacht"), "{flags:?}");
    assert!(!flags[0].1.iter().any(|f| f == "\\Seen"), "{flags:?}");

    let shown = w.case("KL-2026-0001");
    let kinds: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "received",
        "assigned",
        "ack_queued",
        "ack_sent",
        "handler_new_sent",
    ] {
        assert!(kinds.contains(&k), "timeline lacks {k}: {kinds:?}");
    }
    for e in shown["timeline"].as_array().unwrap() {
        assert!(e["at"].is_string() && e["actor"].is_string());
    }
}

#[test]
fn ordinary_and_automated_mail_is_left_exactly_as_it_was() {
    let w = World::new();
    let sender = w.client("other");
    // (invoice.eml is a false alarm of the model: triage, tests/it/fixtures.rs.)
    for name in [
        "newsletter.eml",
        "autoreply.eml",
        "bounce.eml",
        "nl-no-complaint.eml",
        "nl-signup.eml",
    ] {
        w.deliver_fixture(&sender, name, name);
    }
    // One more, already read and flagged by a person in their mail client.
    let raw = fixture("nl-signup.eml", &sender, &w.info, &unique_id("flagged"));
    w.stack
        .imap_append(
            &w.info,
            "INBOX",
            &raw,
            None,
            &["\\Seen", "\\Flagged", "$Label1"],
        )
        .unwrap();
    let before = w.stack.imap_flags(&w.info, "INBOX").unwrap();
    let files_before = w.mails(&w.info);

    w.run_once();

    assert!(w.cases().is_empty());
    assert_eq!(
        w.stack.imap_flags(&w.info, "INBOX").unwrap(),
        before,
        "flags unchanged"
    );
    assert_eq!(
        w.mails(&w.info),
        files_before,
        "messages unchanged and in place"
    );
    assert!(w.mails(&sender).is_empty(), "nothing is answered");
    assert!(w.sent().is_empty());
    for staff in [&w.anna, &w.bram, &w.carla, &w.dirk] {
        assert!(w.mails(staff).is_empty());
    }
}

#[test]
fn running_again_acknowledges_nothing_twice() {
    let w = World::new();
    let client = w.client("twice");
    w.deliver_fixture(&client, "nl-complaint-missing.eml", "twice");
    w.run_once();
    w.run_once();
    w.run_once_at("2026-11-24T10:00:00+01:00");
    assert_eq!(w.cases().len(), 1);
    assert_eq!(w.mails(&client).len(), 1);
    let case = only_case(&w);
    // The outcome model reads "niet teruggebeld" as a wish to be called
    // back (tests/fixtures/mail/README.md); the dates are missing.
    assert_eq!(case["missing"], serde_json::json!(["dates"]));
    let ack = parsed(&w.mails(&client)[0]);
    assert!(
        ack.text.to_lowercase().contains("datum"),
        "the ack asks for the missing dates:\n{}",
        ack.text
    );
}

/// Case mail is marked after its batch commits (together, in a backlog).
/// A crash in between leaves it recorded but unmarked, which the next
/// session repairs from the register: the keyword, and with a complaint
/// folder the move out of info@ (art. 9). Stripping the keyword does what
/// that crash leaves.
#[test]
fn case_mail_left_unmarked_by_a_crash_is_marked_and_moved_by_the_next_session() {
    let w = World::with_config("\n[intake]\ncomplaint_folder = \"\"\n");
    let client = w.client("unmarked");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "unmarked");
    w.run_once();
    let keyworded = |folder: &str| -> Vec<bool> {
        let flags = w.stack.imap_flags(&w.info, folder).expect("IMAP flags");
        flags
            .iter()
            .map(|(_, f)| f.iter().any(|f| f == "$Klacht"))
            .collect()
    };
    let strip = || {
        let (uid, _) = w.stack.imap_flags(&w.info, "INBOX").unwrap()[0].clone();
        w.stack
            .imap_act(
                &w.info,
                "INBOX",
                &format!("UID STORE {uid} -FLAGS ($Klacht)"),
            )
            .expect("UID STORE");
        assert_eq!(keyworded("INBOX"), [false]);
    };
    assert_eq!(keyworded("INBOX"), [true]);

    strip();
    w.run_once();
    assert_eq!(keyworded("INBOX"), [true], "the keyword is set again");

    strip();
    let folder = std::ffi::OsStr::new("Klachten");
    w.run_once_with(NOW, &[("KLACHTD__INTAKE__COMPLAINT_FOLDER", folder)]);
    assert_eq!(keyworded("INBOX"), Vec::<bool>::new(), "moved out of info@");
    assert_eq!(keyworded("Klachten"), [true]);
    assert_eq!(w.cases().len(), 1);
    assert_eq!(w.mails(&client).len(), 1, "one acknowledgement");
}

#[test]
fn mail_older_than_the_acknowledgement_term_goes_to_triage_not_to_the_client() {
    let w = World::new();
    let client = w.client("old");
    let raw = fixture(
        "nl-complaint-plain.eml",
        &client,
        &w.info,
        &unique_id("old"),
    );
    // Arrived two weeks before klachtd first looked at the mailbox.
    w.stack
        .imap_append(
            &w.info,
            "INBOX",
            &raw,
            Some("09-Nov-2026 09:00:00 +0100"),
            &[],
        )
        .unwrap();
    w.run_once();
    let case = only_case(&w);
    assert_eq!(case["status"], "triage");
    assert!(case["handler_email"].is_null());
    assert_eq!(case["ack_due"], "2026-11-16");
    assert!(case["ack_sent_at"].is_null());
    assert!(
        w.mails(&client).is_empty(),
        "no blind acknowledgement of old mail"
    );
    // Both supervisors are asked to look (Bram is not a supervisor anyway).
    assert_eq!(w.mails(&w.anna).len(), 1);
    assert_eq!(w.mails(&w.dirk).len(), 1);
    assert!(parsed(&w.mails(&w.dirk)[0])
        .subject
        .contains("KL-2026-0001"));
}

#[test]
fn an_unsure_mail_waits_in_triage_for_a_supervisor() {
    let w = World::new();
    let client = w.client("unsure");
    w.deliver_fixture(&client, "nl-unsure.eml", "unsure");
    w.run_once();
    let case = only_case(&w);
    assert_eq!(case["status"], "triage");
    assert!(w.mails(&client).is_empty());
    assert_eq!(w.mails(&w.dirk).len(), 1);
    // A possible complaint is protected like a complaint until a
    // supervisor decides.
    let flags = w.stack.imap_flags(&w.info, "Klachten").unwrap();
    assert!(
        flags[0].1.iter().any(|f| f == "$Klacht"),
        "triage mail is marked and moved too: {flags:?}"
    );
}

#[test]
fn an_english_complaint_is_answered_in_english_and_never_by_the_trainer_concerned() {
    let w = World::new();
    let client = w.client("emily");
    w.deliver_fixture(&client, "en-complaint-formal.eml", "en");
    w.run_once();
    let case = only_case(&w);
    assert_eq!(case["concerns"], serde_json::json!([w.carla]));
    assert_ne!(case["handler_email"], w.carla.as_str());
    let ack = parsed(&w.mails(&client)[0]);
    assert_eq!(
        ack.subject,
        "[KL-2026-0001] We have received your complaint"
    );
    assert!(ack.text.contains("21 December 2026"), "{}", ack.text);
    assert!(w.mails(&w.carla).is_empty());
}

#[test]
fn charsets_html_and_attachments_arrive_intact_in_the_register() {
    let w = World::new();
    let c = w.client("enc");
    for name in [
        "nl-complaint-windows1252.eml",
        "nl-complaint-latin1-qp.eml",
        "nl-complaint-html-only.eml",
        "with-attachment.eml",
    ] {
        w.deliver_fixture(&c, name, name);
    }
    w.run_once();
    let cases = w.cases();
    assert_eq!(cases.len(), 4, "{cases:#?}");
    let subjects: Vec<&str> = cases
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains(&"Geen reactie én niet teruggebeld"),
        "{subjects:?}"
    );
    // Only three acks: the fourth complaint from the same sender on one day
    // hits the per-sender limit on automatic replies (3 a day).
    assert_eq!(w.mails(&c).len(), 3);
    let shown = w.case("KL-2026-0004");
    let kinds: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"ack_suppressed"), "{kinds:?}");
    // The handler of the windows-1252 complaint sees the decoded text.
    let all_notes: Vec<String> = [&w.anna, &w.bram, &w.carla]
        .iter()
        .flat_map(|a| w.mails(a))
        .map(|m| parsed(&m).text)
        .collect();
    assert!(
        all_notes
            .iter()
            .any(|t| t.contains("café") && t.contains("€")),
        "decoded windows-1252 text reaches the handler"
    );
    assert!(
        all_notes.iter().any(|t| t.contains(".pdf")),
        "attachments are listed for the handler"
    );
}

#[test]
fn a_client_reply_joins_its_case_and_a_stranger_with_the_tag_does_not() {
    let w = World::new();
    let client = w.client("reply");
    w.deliver_fixture(&client, "nl-complaint-missing.eml", "first");
    w.run_once();
    let ack = parsed(&w.mails(&client)[0]);

    // The client answers the acknowledgement with the missing dates.
    let reply = format!(
        "From: {client}\r\nTo: {info}\r\nSubject: Re: {subj}\r\nMessage-ID: {id}\r\nIn-Reply-To: {parent}\r\nReferences: {parent}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHet ging om de sessie van 3 november.\r\n",
        info = w.info,
        subj = ack.subject,
        id = unique_id("reply"),
        parent = ack.message_id,
    );
    w.deliver(&client, reply.as_bytes());
    // A stranger copies the tag into a new mail: that is not the case's mail.
    let stranger = w.client("stranger");
    let tagged = format!(
        "From: {stranger}\r\nTo: {info}\r\nSubject: [KL-2026-0001] ik ben ontevreden\r\nMessage-ID: {id}\r\nContent-Type: text/plain\r\n\r\nIk heb een klacht: ik ben ontevreden over de training.\r\n",
        info = w.info,
        id = unique_id("stranger"),
    );
    w.deliver(&stranger, tagged.as_bytes());
    w.run_once();

    let cases = w.cases();
    assert_eq!(
        cases.len(),
        2,
        "the stranger's mail became its own case: {cases:#?}"
    );
    assert_eq!(cases[1]["client_email"], stranger.as_str());
    let first = w.case("KL-2026-0001");
    let kinds: Vec<&str> = first["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"client_reply"), "{kinds:?}");
    assert_eq!(
        w.mails(&client).len(),
        1,
        "a reply gets no second acknowledgement"
    );
    let handler = first["handler_email"].as_str().unwrap().to_string();
    let notes: Vec<_> = w.mails(&handler).iter().map(|m| parsed(m)).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.text.contains("sessie van 3 november")),
        "the handler gets the reply"
    );
}

#[test]
fn a_changed_uidvalidity_resyncs_by_message_id_without_reimporting() {
    let w = World::new();
    let client = w.client("resync");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "resync");
    w.run_once();
    assert_eq!(w.mails(&client).len(), 1);

    // The server renumbers the mailbox (restore from backup, migration).
    let status = std::process::Command::new("doveadm")
        .args(["-c"])
        .arg(w.stack.dir.join("dovecot.conf"))
        .args([
            "mailbox",
            "update",
            "-u",
            &w.info,
            "--uid-validity",
            "777",
            "INBOX",
        ])
        .status()
        .expect("doveadm");
    assert!(status.success());
    let later = w.client("later");
    w.deliver_fixture(&later, "nl-complaint-missing.eml", "later");
    let out = w.run_once();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UIDVALIDITY changed"),
        "the run noticed the renumbering"
    );

    assert_eq!(
        w.cases().len(),
        2,
        "the old message is recognised, the new one recorded"
    );
    assert_eq!(
        w.mails(&client).len(),
        1,
        "no second acknowledgement after the resync"
    );
    assert_eq!(w.mails(&later).len(), 1);
}

#[test]
fn a_phone_complaint_is_registered_through_the_same_pipeline() {
    let w = World::new();
    let client = w.client("phone");
    let out = w.klachtd(&[
        "--now",
        NOW,
        "register",
        "--name",
        "Piet Pieters",
        "--email",
        &client,
        "--phone",
        "0612345678",
        "--description",
        "Ontevreden over de workshop van Carla op 2 november; wil graag een gesprek.",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.split_whitespace().last(), Some("KL-2026-0001"));
    let case = only_case(&w);
    assert_eq!(case["status"], "acknowledged");
    assert_eq!(case["client_phone"], "0612345678");
    assert_eq!(case["concerns"], serde_json::json!([w.carla]));
    // Postfix hands the acknowledgement to Dovecot after klachtd's send:
    // wait for delivery rather than race it.
    w.settle();
    assert_eq!(w.mails(&client).len(), 1, "acknowledged by email");

    for bad in [
        vec![
            "register",
            "--name",
            "X",
            "--email",
            "not-an-address",
            "--description",
            "klacht",
        ],
        vec!["register", "--name", "X", "--description", "   "],
        vec![
            "register",
            "--name",
            "X",
            "--description",
            "klacht",
            "--colour",
            "red",
        ],
    ] {
        let out = w.klachtd(&bad);
        assert!(!out.status.success(), "{bad:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty());
    }
    assert_eq!(w.cases().len(), 1, "bad input stores nothing");

    // Elements stated explicitly count, whatever the description says.
    let out = w.klachtd(&[
        "--now",
        NOW,
        "register",
        "--name",
        "Els",
        "--phone",
        "0201234567",
        "--description",
        "Ontevreden over hoe het gesprek liep.",
        "--date",
        "intakegesprek in november",
        "--desired-outcome",
        "een nieuw gesprek",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let els = &w.cases()[1];
    assert_eq!(els["missing"], serde_json::json!([]));
    assert_eq!(els["dates"], "intakegesprek in november");
    assert!(els["client_email"].is_null());
    // Without an address the handler is told at once to confirm by phone.
    let handler = els["handler_email"].as_str().unwrap().to_string();
    w.settle();
    assert!(
        w.mails(&handler)
            .iter()
            .any(|m| parsed(m).subject.contains("KL-2026-0002")),
        "the handler's notice went out with the register command"
    );
}

#[test]
fn reading_a_register_that_does_not_exist_is_an_error_not_an_empty_list() {
    let w = World::new();
    let out = w
        .command()
        .env("KLACHTD__DATABASE__URL", "sqlite://var/typo.db")
        .args(["cases", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(
        !w.dir.path().join("var/typo.db").exists(),
        "nothing was created"
    );
}

#[test]
fn the_daemon_acknowledges_while_idling_and_stops_gracefully_on_sigterm() {
    let w = World::new();
    let mut child = Daemon(
        w.command()
            .args(["run"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start daemon"),
    );
    let client = w.client("idle");
    // Give the daemon a moment to connect; delivery before that is also fine
    // (it catches up on connect), so this is not a timing assumption.
    std::thread::sleep(Duration::from_millis(300));
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "idle");
    let acks = w
        .stack
        .wait_for_messages(&client, "INBOX", 1, Duration::from_secs(30));
    assert_eq!(acks.len(), 1, "the daemon acknowledged the complaint");
    let pid = child.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful exit: {status:?}");
    assert_eq!(w.cases().len(), 1);
}

/// The daemon's loops in this process (`workers::run` with a shutdown
/// future of the test's own), as an embedding program or a test would run
/// them: the complaint is acknowledged, and `run` returns once the future
/// completes.
#[test]
fn the_daemon_runs_in_process_until_its_shutdown_future_completes() {
    let w = World::new();
    let settings = klachtd::config::Settings::load(&w.config).expect("test config");
    let client = w.client("inproc");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "inproc");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // As the binary does: the daemon's future on a runtime of its own
    // (block_on, as in main), here on a thread of the test's.
    let daemon = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let app = klachtd::app::App::new(settings, klachtd::clock::Clock::system()).await?;
            klachtd::workers::run(app, async {
                let _ = stopped.await;
            })
            .await
        })
    });
    let acks = w
        .stack
        .wait_for_messages(&client, "INBOX", 1, Duration::from_secs(30));
    assert_eq!(acks.len(), 1, "the in-process daemon acknowledged it");
    assert!(!daemon.is_finished(), "run keeps going until told to stop");
    stop.send(()).expect("daemon still listening");
    let result = daemon.join().expect("daemon thread did not panic");
    assert!(result.is_ok(), "graceful: {result:?}");
    assert_eq!(w.cases().len(), 1);
}

#[test]
fn check_config_tries_both_logins_and_names_what_failed() {
    let w = World::new();
    let ok = w.klachtd(&["check-config"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("imap: ok") && text.contains("smtp: ok"),
        "{text}"
    );

    let bad = w
        .command()
        .env("KLACHTD__IMAP__PASSWORD", "wrong")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("IMAP") && err.contains("login"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the password is never printed: {err}"
    );
}

#[test]
fn a_bad_config_is_one_clear_line_naming_the_key() {
    let w = World::new();
    for (var, value, key) in [
        ("KLACHTD__IMAP__PORT", "lots", "imap.port"),
        (
            "KLACHTD__ORGANISATION__ADDRESS",
            "info",
            "organisation.address",
        ),
        (
            "KLACHTD__PROCEDURE__ACK_WORKING_DAYS",
            "0",
            "procedure.ack_working_days",
        ),
    ] {
        let out = w
            .command()
            .env(var, value)
            .args(["cases", "--json"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(key), "{err} should name {key}");
    }
}

#[test]
fn the_register_exports_as_csv_closes_by_hand_and_is_analysed() {
    let w = World::new();
    let client = w.client("register");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "reg");
    w.run_once();

    let csv = w.klachtd(&["cases", "--csv"]);
    assert!(csv.status.success());
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("reference,status,outcome,category,"));
    assert!(lines[1].starts_with("KL-2026-0001,acknowledged,open,coaching,"));

    let closed = w.klachtd(&[
        "case",
        "close",
        "KL-2026-0001",
        "--reason",
        "opgelost in gesprek",
    ]);
    assert!(
        closed.status.success(),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );
    assert_eq!(only_case(&w)["status"], "closed");
    let again = w.klachtd(&["case", "close", "KL-2026-0001", "--reason", "nog eens"]);
    assert!(!again.status.success(), "closing twice is refused");
    let missing = w.klachtd(&["case", "close", "KL-2026-0099", "--reason", "x"]);
    assert!(!missing.status.success());

    let report = w.klachtd(&[
        "--now",
        NOW,
        "report",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--json",
    ]);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(r["total"], 1);
    assert_eq!(r["by_category"]["coaching"], 1);
    assert_eq!(r["by_category"]["overig"], 0);
    assert_eq!(r["acknowledgement"]["on_time_rate"], 1.0);
    assert_eq!(r["response"]["on_time"], 1, "closing counts as the answer");
    let bad = w.klachtd(&["report", "--from", "november", "--to", "2026-11-30"]);
    assert!(!bad.status.success());
}

#[test]
fn a_huge_message_is_recorded_from_its_start_with_attachment_metadata_only() {
    let w = World::with_config(
        "\n[intake]\nmax_message_bytes = 262144\nmax_attachment_bytes = 65536\n",
    );
    let client = w.client("huge");
    // A complaint with a 3 MB attachment: ten times the fetch cap.
    let blob: String = (0..(3 * 1024 * 1024 / 57))
        .map(|i| format!("{:0>76}\r\n", i))
        .collect();
    let raw = format!(
        "From: {client}\r\nTo: {info}\r\nSubject: Klacht over de factuur\r\nMessage-ID: {id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Ik ben zeer ontevreden over de factuur van 3 november: mijn coach heeft twee sessies\r\n\
         gerekend die hij zelf heeft afgezegd. Ik wil graag een creditnota en excuses.\r\n--b\r\n\
         Content-Type: application/octet-stream; name=\"scan.bin\"\r\nContent-Disposition: attachment; filename=\"scan.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{blob}--b--\r\n",
        info = w.info,
        id = unique_id("huge"),
    );
    assert!(raw.len() > 3_000_000);
    w.deliver(&client, raw.as_bytes());
    w.run_once();
    let case = only_case(&w);
    assert_eq!(case["status"], "acknowledged");
    assert_eq!(w.mails(&client).len(), 1);
    let shown = w.case("KL-2026-0001");
    let truncated: Vec<_> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "truncated")
        .collect();
    assert_eq!(truncated.len(), 1, "{shown:#}");
    let handler = case["handler_email"].as_str().unwrap().to_string();
    let note = parsed(&w.mails(&handler)[0]);
    assert!(
        note.text.contains("scan.bin") && note.text.contains("niet opgeslagen"),
        "{}",
        note.text
    );
}

#[test]
fn a_request_for_the_regulation_is_answered_with_it_and_a_paper_request_goes_to_the_supervisors() {
    let w = World::new();
    let client = w.client("henk");
    let id = unique_id("reglement");
    w.deliver_fixture_as("Henk Mulder", &client, "regulation-request.eml", &id);
    let regulation =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/klachtenreglement.txt");
    w.run_once_with(
        NOW,
        &[(
            "KLACHTD__ORGANISATION__REGULATION_FILE",
            regulation.as_os_str(),
        )],
    );

    assert!(
        w.cases().is_empty(),
        "a question about the regulation opens no case"
    );
    let answers = w.mails(&client);
    assert_eq!(answers.len(), 1);
    let a = parsed(&answers[0]);
    assert_eq!(a.subject, "Ons klachtenreglement (Re: Klachtenreglement)");
    assert_eq!(a.in_reply_to, vec![id]);
    assert_eq!(a.header("auto-submitted"), Some("auto-replied"));
    assert!(
        a.text.contains("Versie: 2025"),
        "the text itself is in the mail"
    );
    assert!(a.text.contains("papieren exemplaar"), "{}", a.text);
    assert_eq!(a.attachments.len(), 1);
    assert_eq!(a.attachments[0].filename, "klachtenreglement.txt");
    let expected = std::fs::read(&regulation).unwrap();
    assert_eq!(a.attachments[0].data.as_deref(), Some(&expected[..]));
    // The paper copy is for a person to post.
    for sup in [&w.anna, &w.dirk] {
        let notes = w.mails(sup);
        assert_eq!(notes.len(), 1, "{sup}");
        assert!(parsed(&notes[0]).text.contains("Dorpsstraat 1"));
    }
    assert!(w.mails(&w.bram).is_empty() && w.mails(&w.carla).is_empty());
}

#[test]
fn a_message_that_cannot_be_handled_does_not_block_the_rest_and_is_retried_after_a_fix() {
    let w = World::new();
    // An operator's template override with a mistake in it.
    let broken = w.dir.path().join("templates");
    std::fs::create_dir_all(broken.join("nl")).unwrap();
    std::fs::write(broken.join("nl/ack.txt"), "Beste {{ klant.naam }},\n").unwrap();
    let client = w.client("poison");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "poison");
    let later = w.client("later");
    w.deliver_fixture(&later, "nl-unsure.eml", "after");
    let out = w.run_once_with(
        NOW,
        &[("KLACHTD__ORGANISATION__TEMPLATES_DIR", broken.as_os_str())],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("recorded as failed"), "{log}");
    assert!(!log.contains(&client), "{log}");
    let cases = w.cases();
    assert_eq!(
        cases.len(),
        1,
        "the message after it was handled: {cases:#?}"
    );
    assert_eq!(cases[0]["status"], "triage");
    assert!(w.mails(&client).is_empty());

    // The template is fixed (override removed): the next run handles it.
    w.run_once();
    let cases = w.cases();
    assert_eq!(cases.len(), 2, "{cases:#?}");
    assert_eq!(cases[1]["client_email"], client.as_str());
    assert_eq!(
        w.mails(&client).len(),
        1,
        "acknowledged once, after the fix"
    );
    w.run_once();
    assert_eq!(w.mails(&client).len(), 1);
}

#[test]
fn a_wrong_password_is_a_clear_error_once_and_a_retry_loop_in_the_daemon() {
    let w = World::new();
    let once = w
        .command()
        .env("KLACHTD__IMAP__PASSWORD", "wrong")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert!(!once.status.success());
    let err = String::from_utf8_lossy(&once.stderr);
    assert!(err.contains("IMAP login as"), "{err}");
    assert!(!err.contains("wrong"), "no password in the message: {err}");

    // The daemon does not give up (an operator may fix the password), and
    // still stops promptly.
    let mut child = w
        .command()
        .env("KLACHTD__IMAP__PASSWORD", "wrong")
        .arg("run")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let kept_trying = child.try_wait().unwrap().is_none();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(kept_trying, "the daemon keeps retrying");
    assert!(out.status.success(), "{:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("reconnecting"), "{log}");
}
