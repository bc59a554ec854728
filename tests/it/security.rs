//! Issue 13 on the real Dovecot and Postfix: staff commands nobody can
//! forge, article 9 inside the mailbox and after intake, and no abuse of the
//! automatic replies. One test per hole, each with the hostile mail that
//! proves it stays closed.

use crate::world::{fixture, parsed, rewrite_headers, unique_id, World};

/// `from`'s answer to `parent` (a mail klachtd sent them), threaded on it,
/// with `cc` in copy.
fn answer(w: &World, from: &str, parent: &[u8], cc: Option<&str>, text: &str) -> Vec<u8> {
    let p = parsed(parent);
    let cc = cc.map(|c| format!("Cc: {c}\r\n")).unwrap_or_default();
    format!(
        "From: {from}\r\nTo: {info}\r\n{cc}Subject: Re: {subject}\r\nMessage-ID: {id}\r\n\
         In-Reply-To: {parent}\r\nReferences: {parent}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n",
        info = w.info,
        subject = p.subject,
        id = unique_id("answer"),
        parent = p.message_id,
    )
    .into_bytes()
}

/// A world with one complaint from a fresh client, acknowledged and
/// given to a handler: (world, client, handler).
fn one_complaint(tag: &str) -> (World, String, String) {
    let w = World::new();
    let client = w.client("jan");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", tag);
    w.run_once();
    let case = w.case("KL-2026-0001");
    let handler = case["handler_email"].as_str().expect("a handler");
    let handler = handler.to_string();
    (w, client, handler)
}

#[test]
fn a_reply_to_an_anonymised_case_is_new_mail_and_the_case_stays_empty() {
    let w = World::new();
    let client = w.client("lotte");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "first");
    w.run_once();
    let ack = w.mails(&client).into_iter().next().expect("acknowledged");
    let erased = w.klachtd(&["client", "erase", &client, "--include-open"]);
    assert!(
        erased.status.success(),
        "{}",
        String::from_utf8_lossy(&erased.stderr)
    );
    let before = w.case("KL-2026-0001");
    assert!(before["anonymised_at"].is_string());

    // Months later the client answers the old acknowledgement, by reply and
    // with the tag in the subject, naming themselves and a new grievance.
    let text = "Ik ben opnieuw zeer ontevreden: mijn sessie van vorige week is weer \
                zonder bericht afgezegd. Ik wil mijn geld terug. Lotte Lavendel, 0687654321";
    w.deliver(&client, &answer(&w, &client, &ack, None, text));
    w.run_once();

    let after = w.case("KL-2026-0001");
    assert_eq!(after["client_email"], before["client_email"], "still empty");
    assert_eq!(after["client_name"], "");
    assert_eq!(
        after["timeline"].as_array().unwrap().len(),
        before["timeline"].as_array().unwrap().len(),
        "nothing new on the anonymised case's timeline"
    );
    let shown = serde_json::to_string(&after).unwrap();
    assert!(
        !shown.contains(&client) && !shown.contains("Lavendel") && !shown.contains("0687654321")
    );
    // The mail itself is handled as new mail: here a new complaint, which
    // export and erasure find under the client's address.
    let cases = w.cases();
    assert_eq!(cases.len(), 2, "{cases:#?}");
    assert_eq!(cases[1]["client_email"], client.as_str());
    let export = w.klachtd(&["client", "export", &client]);
    let export: serde_json::Value = serde_json::from_slice(&export.stdout).expect("export JSON");
    assert_eq!(export["cases"].as_array().unwrap().len(), 1);
}

#[test]
fn ten_sub_addressed_complaints_from_one_mailbox_get_at_most_the_per_sender_limit_of_replies() {
    let w = World::new();
    let base = w.client("boos");
    let (local, domain) = base.split_once('@').unwrap();
    for n in 1..=10 {
        let from = format!("{local}+{n}@{domain}");
        w.deliver_fixture(&from, "nl-complaint-plain.eml", &format!("boos{n}"));
    }
    w.run_once();
    let cases = w.cases();
    assert_eq!(cases.len(), 10, "every complaint is on the register");
    let with = |kind: &str| {
        cases
            .iter()
            .filter(|c| {
                let r = c["reference"].as_str().unwrap();
                w.case(r)["timeline"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["kind"] == kind)
            })
            .count()
    };
    // The default limits: three automatic replies a day to one mailbox,
    // and from the sixth complaint of a mailbox in a day, triage without
    // any automatic reply.
    assert_eq!(with("ack_queued"), 3);
    assert_eq!(with("ack_suppressed"), 2, "confirmed personally");
    let triage = cases.iter().filter(|c| c["status"] == "triage").count();
    assert_eq!(triage, 5, "{cases:#?}");
}

#[test]
fn escape_sequences_in_a_complaint_never_reach_the_terminal() {
    let w = World::new();
    let client = w.client("esc");
    let plain = fixture(
        "nl-complaint-plain.eml",
        &client,
        &w.info,
        &unique_id("esc"),
    );
    let subject = "=?utf-8?q?Klacht_over_coachingssessie=1B[2J=1B]0;pwned=07?=";
    let mail = rewrite_headers(&plain, &[("Subject", subject)]);
    w.deliver(&client, &mail);
    let run = w.run_once();
    assert_eq!(
        w.cases().len(),
        1,
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for args in [
        vec!["case", "show", "KL-2026-0001"],
        vec!["cases"],
        vec!["audit"],
    ] {
        let out = w.klachtd(&args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?} printed a control character: {text:?}"
        );
    }
    let shown =
        String::from_utf8_lossy(&w.klachtd(&["case", "show", "KL-2026-0001"]).stdout).into_owned();
    assert!(shown.contains("Klacht over coachingssessie"), "{shown}");
}

#[test]
fn a_forged_staff_mail_to_the_client_is_not_the_handlers_message_and_no_answer() {
    let w = World::new();
    let client = w.client("jan");
    let day = |d: &str| d.parse::<jiff::civil::Date>().unwrap();
    let complaint = w.arrive(
        day("2026-11-23"),
        &client,
        "Klacht over mijn coachingstraject",
        "Beste 31Solutions,\n\nHierbij dien ik een klacht in. Mijn coach kwam twee keer niet \
         opdagen en ik heb niets terugbetaald gekregen. Ik wil mijn geld terug.\n\nJan\n",
        &[],
    );
    w.run_once_at("2026-11-23T10:00:00+01:00");
    let case = w.case("KL-2026-0001");
    let handler = case["handler_email"]
        .as_str()
        .expect("a handler")
        .to_string();
    let thread = [
        ("In-Reply-To", complaint.as_str()),
        ("References", complaint.as_str()),
    ];
    // The client asks again; then someone writes as the handler, the client
    // in copy, in the client's thread: "all settled".
    w.arrive(
        day("2026-11-24"),
        &client,
        "Re: [KL-2026-0001] Klacht over mijn coachingstraject",
        "Ik wacht nog steeds op een antwoord.\n",
        &thread,
    );
    let forged_headers = [thread[0], thread[1], ("Cc", client.as_str())];
    w.arrive(
        day("2026-11-24"),
        &handler,
        "Re: Klacht over mijn coachingstraject",
        "Beste Jan, alles is geregeld en afgehandeld.\n",
        &forged_headers,
    );
    w.run_once_at("2026-11-24T10:00:00+01:00");

    let shown = w.case("KL-2026-0001");
    let timeline = shown["timeline"].as_array().unwrap();
    let staff: Vec<_> = timeline
        .iter()
        .filter(|e| e["kind"] == "staff_message")
        .collect();
    assert_eq!(staff.len(), 1, "{timeline:#?}");
    assert_eq!(staff[0]["authenticated"], false);
    let export = w.klachtd(&["client", "export", &client]);
    let export = String::from_utf8_lossy(&export.stdout).into_owned();
    assert!(
        export.contains("Ik wacht nog steeds"),
        "the client's reply is kept"
    );
    assert!(
        !export.contains("alles is geregeld"),
        "the forgery is not on record as the handler's message: {export}"
    );
    // Two working days on, the client's reply still waits for an answer:
    // the handler is reminded.
    w.run_once_at("2026-11-27T09:00:00+01:00");
    let later = w.case("KL-2026-0001");
    assert!(
        later["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "reply_reminder"),
        "{later:#?}"
    );
}

#[test]
fn forged_staff_mail_on_many_cases_warns_the_colleague_a_few_times_an_hour_at_most() {
    let w = World::new();
    for n in 0..5 {
        let client = w.client(&format!("c{n}"));
        w.deliver_fixture(&client, "nl-complaint-plain.eml", &format!("c{n}"));
    }
    w.run_once();
    assert_eq!(w.cases().len(), 5);
    // Someone writes as Carla, with each case's tag, asking to close it.
    for n in 1..=5 {
        let forged = format!(
            "From: Carla <{carla}>\r\nTo: {info}\r\nSubject: [KL-2026-{n:04}] sluiten\r\n\
             Message-ID: {id}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n/sluit\r\n",
            carla = w.carla,
            info = w.info,
            id = unique_id("forged"),
        );
        w.deliver(&w.carla, forged.as_bytes());
    }
    w.run_once();
    let cases = w.cases();
    assert!(
        cases.iter().all(|c| c["status"] != "closed"),
        "no forged /sluit closed a case"
    );
    let refused = cases
        .iter()
        .map(|c| w.case(c["reference"].as_str().unwrap()))
        .filter(|c| {
            c["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "staff_mail_refused")
        })
        .count();
    assert_eq!(refused, 5, "each forgery is on its case's record");
    let warnings = w
        .all_mails(&w.carla)
        .iter()
        .filter(|m| crate::world::kind(m) == "staff_warning")
        .count();
    assert_eq!(
        warnings, 3,
        "the default: three warnings an hour to one colleague"
    );
}

#[test]
fn a_client_who_saw_the_handlers_token_cannot_close_the_case_as_the_handler() {
    let (w, client, handler) = one_complaint("token");
    let notice = w
        .mails(&handler)
        .into_iter()
        .find(|m| parsed(m).subject.contains("KL-2026-0001"))
        .expect("the handler was notified");
    // The handler answers the notification from their own mail client, the
    // client in Cc, as people do: the client now holds the token.
    let to_client = "Beste Jan, ik bel u morgen om het te bespreken.";
    w.deliver(
        &handler,
        &answer(&w, &handler, &notice, Some(&client), to_client),
    );
    w.run_once();
    // The client writes as the handler, in reply to that notification.
    let forged = answer(&w, &handler, &notice, None, "/sluit\n\nOpgelost.");
    w.deliver(&handler, &forged);
    w.run_once();

    let after = w.case("KL-2026-0001");
    assert_ne!(after["status"], "closed", "the forged /sluit was refused");
    let refused = after["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "staff_mail_refused")
        .count();
    assert_eq!(refused, 1, "{after:#?}");
    // The handler's own mail was recorded, and not sent on to the client
    // (who had it already).
    assert_eq!(w.mails(&client).len(), 1, "only the acknowledgement");
    // A fresh notification (the warning about the refused mail) carries a
    // new token: the real handler answering a new notification still works.
    let fresh = w
        .mails(&handler)
        .into_iter()
        .filter(|m| parsed(m).message_id != parsed(&notice).message_id)
        .count();
    assert!(fresh >= 1, "the handler heard of the refused mail");
}

#[test]
fn a_follow_up_that_names_the_handler_moves_the_case_and_never_reaches_them() {
    let (w, client, handler) = one_complaint("follow");
    let names = [
        (&w.anna, "Anna de Vries"),
        (&w.bram, "Bram Bakker"),
        (&w.carla, "Carla Smit"),
        (&w.dirk, "Dirk Jansen"),
    ];
    let name = names
        .iter()
        .find(|(a, _)| **a == handler)
        .map(|(_, n)| *n)
        .expect("the handler is on the roster");
    let mails_before = w.all_mails(&handler).len();
    let ack = w.mails(&client).into_iter().next().expect("acknowledged");
    let text = format!(
        "En toen ik vorige week belde, was {name} ook nog onbeschoft tegen mij. \
         Dat wil ik er graag bij hebben."
    );
    w.deliver(&client, &answer(&w, &client, &ack, None, &text));
    w.run_once();

    let after = w.case("KL-2026-0001");
    let concerns: Vec<&str> = after["concerns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(concerns.contains(&handler.as_str()), "{concerns:?}");
    let new_handler = after["handler_email"].as_str().unwrap_or("");
    assert!(
        new_handler != handler || after["status"] == "triage",
        "the case left the concerned handler: {after:#?}"
    );
    w.settle();
    assert_eq!(
        w.all_mails(&handler).len(),
        mails_before,
        "nothing more reached the person the follow-up concerns"
    );
    if !new_handler.is_empty() && new_handler != handler {
        let got: Vec<String> = w
            .mails(new_handler)
            .iter()
            .map(|m| parsed(m).text)
            .collect();
        assert!(
            got.iter().any(|t| t.contains("onbeschoft")),
            "the new handler has the follow-up"
        );
    }
}

#[test]
fn copies_of_staff_mail_never_land_in_sent_and_go_to_the_staff_copy_folder_when_set() {
    let w = World::new();
    let client = w.client("jan");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "copies");
    let folder = std::ffi::OsString::from("Klachten/Staff");
    let env = [("KLACHTD__IMAP__STAFF_COPY_FOLDER", folder.as_os_str())];
    let out = w.run_once_with(crate::support::NOW, &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let case = w.case("KL-2026-0001");
    let handler = case["handler_email"].as_str().expect("a handler");
    let notice = w
        .mails(handler)
        .into_iter()
        .next()
        .expect("the handler was notified");
    let token = parsed(&notice).message_id;
    let holds = |f: &str| {
        w.stack
            .messages(&w.info, f)
            .iter()
            .any(|m| parsed(m).message_id == token)
    };
    assert!(!holds("Sent"), "the token is not in info@'s Sent");
    assert!(holds("Klachten/Staff"), "the copy is in the staff folder");
    // The acknowledgement, to the client, is in Sent as before.
    assert_eq!(w.sent().len(), 1);
}

#[test]
fn with_postfix_sender_auth_only_a_handler_logged_in_at_the_server_runs_commands() {
    let w = World::with_config(
        "\n[intake]\nsender_auth = [\"postfix-authenticated-sender\"]\n\
         trusted_submission_host = \"mail.31solutions.test\"\n",
    );
    let client = w.client("jan");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "sasl");
    w.run_once();
    let handler = w.case("KL-2026-0001")["handler_email"]
        .as_str()
        .expect("a handler")
        .to_string();
    let notice = w
        .mails(&handler)
        .into_iter()
        .find(|m| parsed(m).subject.contains("KL-2026-0001"))
        .expect("the handler was notified");
    // Someone holding the token writes as the handler without logging in,
    // with a Received line that claims a login below Postfix's own.
    let claim = format!(
        "from [127.0.0.1] (localhost [127.0.0.1]) (Authenticated sender: {handler}) by \
         mail.31solutions.test (Postfix) with ESMTPSA id 4AbC; Mon, 30 Nov 2026 10:00:00 +0100"
    );
    let forged = rewrite_headers(
        &answer(&w, &handler, &notice, None, "/sluit\n\nOpgelost."),
        &[("Received", &claim)],
    );
    w.deliver(&handler, &forged);
    w.run_once();
    let case = w.case("KL-2026-0001");
    assert_ne!(case["status"], "closed", "{case:#?}");
    let refused = |c: &serde_json::Value| {
        c["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "staff_mail_refused")
            .count()
    };
    assert_eq!(refused(&case), 1, "{case:#?}");

    // The handler's own mail client logs in to Postfix: the same command runs.
    let real = answer(&w, &handler, &notice, None, "/sluit\n\nOpgelost.");
    w.deliver_logged_in(&handler, &real);
    w.run_once();
    let case = w.case("KL-2026-0001");
    assert_eq!(case["status"], "closed", "{case:#?}");
    assert_eq!(refused(&case), 1);
}

#[test]
fn automatic_replies_stop_at_the_hourly_limit_and_the_supervisors_hear_once_each_way() {
    let w = World::with_config("\n[procedure]\nauto_replies_per_hour = 2\n");
    let clients: Vec<String> = ["jan", "piet", "kees"]
        .iter()
        .map(|n| w.client(n))
        .collect();
    for (i, c) in clients.iter().enumerate() {
        w.deliver_fixture(c, "nl-complaint-plain.eml", &format!("hourly{i}"));
    }
    w.run_once();
    assert_eq!(w.cases().len(), 3, "every complaint is on the register");
    let acked: Vec<usize> = clients.iter().map(|c| w.mails(c).len()).collect();
    assert_eq!(acked.iter().sum::<usize>(), 2, "{acked:?}");
    let suppressed = w.cases().into_iter().filter(|c| {
        let r = c["reference"].as_str().unwrap();
        w.case(r)["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "ack_suppressed")
    });
    assert_eq!(suppressed.count(), 1);
    let health = |w: &World| -> Vec<String> {
        w.all_mails(&w.anna)
            .into_iter()
            .filter(|m| crate::world::kind(m) == "health")
            .map(|m| parsed(&m).subject)
            .collect()
    };
    // Anna (a supervisor) hears it once, however often klachtd looks.
    w.run_once_at("2026-11-23T10:20:00+01:00");
    let alarm = health(&w);
    assert_eq!(alarm.len(), 1, "{alarm:?}");
    assert!(
        alarm[0].contains("te veel automatische antwoorden"),
        "{alarm:?}"
    );
    // An hour later the limit holds no more: once more, that it is over.
    w.run_once_at("2026-11-23T11:30:00+01:00");
    w.run_once_at("2026-11-23T11:40:00+01:00");
    let both = health(&w);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(
        both[1].contains("automatische antwoorden gaan weer uit"),
        "{both:?}"
    );
}

#[test]
fn an_acknowledgement_never_repeats_links_or_numbers_a_forged_sender_put_in_name_or_subject() {
    let w = World::new();
    let victim = w.client("slachtoffer");
    let raw = rewrite_headers(
        &fixture(
            "nl-complaint-plain.eml",
            &format!("\"Win 5000 euro op www.prijs-example.test\" <{victim}>"),
            &w.info,
            &unique_id("reflect"),
        ),
        &[(
            "Subject",
            "Klacht over coachingssessie (bel 0900 123 4567, https://bank-example.test)",
        )],
    );
    w.deliver(&victim, &raw);
    w.run_once();
    // Links in a subject make the model doubt: then a supervisor decides,
    // and the acknowledgement goes out on that decision.
    if w.case("KL-2026-0001")["status"] == "triage" {
        let notice = w
            .mails(&w.anna)
            .into_iter()
            .find(|m| parsed(m).subject.contains("KL-2026-0001"))
            .expect("the supervisor was asked");
        w.deliver(&w.anna, &answer(&w, &w.anna, &notice, None, "/klacht"));
        w.run_once();
    }
    let case = w.case("KL-2026-0001");
    let acks = w.mails(&victim);
    assert_eq!(acks.len(), 1, "{case:#?}");
    let raw_ack = String::from_utf8_lossy(&acks[0]).to_lowercase();
    for bait in ["5000", "prijs-example", "bank-example", "0900"] {
        assert!(
            !raw_ack.contains(bait),
            "{bait:?} in the acknowledgement:\n{raw_ack}"
        );
    }
    let ack = parsed(&acks[0]);
    assert!(
        ack.text.starts_with("Geachte heer, mevrouw,"),
        "{}",
        ack.text
    );
    assert!(
        ack.text.contains("Hartelijk dank voor uw bericht."),
        "{}",
        ack.text
    );
    // Staff see the mail as it came.
    let handler = case["handler_email"].as_str().unwrap();
    let notice = parsed(&w.mails(handler)[0]);
    assert!(
        notice.subject.contains("bank-example.test"),
        "{}",
        notice.subject
    );
}
