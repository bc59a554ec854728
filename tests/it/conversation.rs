//! Cases as conversations, on the real Dovecot and Postfix through the real
//! `klachtd` binary: staff answer klachtd's notifications from their own
//! mail client (the replies below are written the way Outlook, Gmail and
//! Apple Mail write them), klachtd relays only the new text to the client,
//! and commands at the top of an answer move the case.

use std::time::{Duration, Instant};

use crate::world::{parsed, unique_id, World};
use serde_json::Value;

/// The people in the fixture complaint: Jan complains about Bram's session;
/// Anna (handler and supervisor) handles it, never Bram.
struct Case {
    w: World,
    client: String,
    complaint_id: String,
}

fn complaint(w: World) -> Case {
    let client = w.client("jan");
    let complaint_id = unique_id("complaint");
    w.deliver_fixture_as(
        "Jan de Vries",
        &client,
        "nl-complaint-plain.eml",
        &complaint_id,
    );
    w.run_once();
    Case {
        w,
        client,
        complaint_id,
    }
}

/// How a mail client (in Dutch) writes the quoted original under a reply.
#[derive(Clone, Copy)]
enum Client {
    /// Outlook desktop, Dutch: "-----Oorspronkelijk bericht-----" and a
    /// Van/Verzonden/Aan/Onderwerp block, the original unquoted below.
    Outlook,
    /// Gmail, Dutch: "Op … schreef … <…>:" wrapped over two lines, then
    /// "> " quoting.
    Gmail,
    /// Apple Mail, Dutch: "Op … heeft … het volgende geschreven:", "> "
    /// quoting, and an iPhone line.
    Apple,
}

/// A reply to `original` from `from`, with `top` as the new text, quoting
/// the original the way `style` does; threaded with In-Reply-To/References.
fn reply(original: &[u8], from: &str, to: &str, top: &str, style: Client) -> Vec<u8> {
    let o = parsed(original);
    let sender = o.from.as_ref().map(|a| a.to_string()).unwrap_or_default();
    let mut refs = o.references.clone();
    refs.push(o.message_id.clone());
    let body = match style {
        Client::Outlook => format!(
            "{top}\n\nMet vriendelijke groet,\nAnna\n\n-----Oorspronkelijk bericht-----\nVan: 31Solutions klachten <{sender}>\n\
             Verzonden: maandag 23 november 2026 10:00\nAan: {from}\nOnderwerp: {}\n\n{}\n",
            o.subject, o.text
        ),
        Client::Gmail => format!(
            "{top}\n\nOp ma 23 nov 2026 om 10:00 schreef 31Solutions klachten <\n{sender}>:\n\n{}\n",
            quote_lines(&o.text)
        ),
        Client::Apple => format!(
            "{top}\n\nVerstuurd vanaf mijn iPhone\n\nOp 23 nov. 2026 om 10:00 heeft 31Solutions klachten <{sender}> het volgende geschreven:\n\n{}\n",
            quote_lines(&o.text)
        ),
    };
    let subject = match style {
        Client::Outlook => format!("RE: {}", o.subject),
        _ => format!("Re: {}", o.subject),
    };
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 11:00:00 +0100\r\n\
         Message-ID: {}\r\nIn-Reply-To: {}\r\nReferences: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
        unique_id("reply"),
        o.message_id,
        refs.join(" "),
        body.replace('\n', "\r\n")
    )
    .into_bytes()
}

/// `staff` answers `original` (a mail klachtd sent them) to info@.
fn staff_answers(w: &World, staff: &str, original: &[u8], top: &str, style: Client) {
    w.deliver(staff, &reply(original, staff, &w.info, top, style));
}

fn quote_lines(text: &str) -> String {
    text.lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The newest mail in `address`'s inbox whose subject contains `needle`
/// and that was not there before (`seen` of them existed), waiting for
/// Postfix to deliver it.
fn newest_after(w: &World, address: &str, needle: &str, seen: usize) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let matching: Vec<Vec<u8>> = w
            .mails(address)
            .into_iter()
            .filter(|m| parsed(m).subject.contains(needle))
            .collect();
        if matching.len() > seen {
            return matching.last().unwrap().clone();
        }
        if Instant::now() > deadline {
            let subjects: Vec<String> =
                w.mails(address).iter().map(|m| parsed(m).subject).collect();
            panic!("no new mail with {needle:?} for {address}: {subjects:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first mail with `needle` in its subject, waiting for it.
fn newest(w: &World, address: &str, needle: &str) -> Vec<u8> {
    newest_after(w, address, needle, 0)
}

/// `address`'s inbox once it holds `n` messages (waiting for delivery);
/// exactly `n`, or the test fails.
fn inbox(w: &World, address: &str, n: usize) -> Vec<Vec<u8>> {
    w.settle();
    let got = w.mails(address);
    assert_eq!(got.len(), n, "messages for {address}");
    got
}

fn kinds(case: &Value) -> Vec<String> {
    case["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn events<'a>(case: &'a Value, kind: &str) -> Vec<&'a Value> {
    case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// Nothing from a staff notification may reach a client.
fn assert_nothing_internal(text: &str) {
    for leak in [
        "##-",
        "Bram Bakker",
        "Gaat over",
        "Oorspronkelijk bericht",
        "Vertrouwelijk (art. 9)",
        "klachtenregistratie van",
        "/voorstel",
        "schreef",
        "geschreven",
    ] {
        assert!(
            !text.contains(leak),
            "client mail contains {leak:?}:\n{text}"
        );
    }
}

#[test]
fn a_case_is_handled_by_email_from_complaint_to_closing() {
    let Case {
        w,
        client,
        complaint_id,
    } = complaint(World::new());
    inbox(&w, &client, 1);
    let notice = newest(&w, &w.anna, "KL-2026-0001");

    // 1. Anna answers from Outlook: only her new text goes to Jan, from
    //    info@, in Jan's thread, signed with her name.
    staff_answers(&w, &w.anna, &notice, "Beste Jan,\n\nDank voor uw bericht. Kunt u mij vertellen wanneer u\nbereikbaar bent voor een gesprek?", Client::Outlook);
    w.run_once();
    let to_jan = inbox(&w, &client, 2);
    let answer = parsed(&to_jan[1]);
    let ack = parsed(&to_jan[0]);
    assert!(
        ack.subject.contains("Ontvangstbevestiging"),
        "delivery order"
    );
    assert_eq!(answer.from.as_ref().unwrap().as_str(), w.info);
    assert_eq!(
        answer.subject,
        "Re: [KL-2026-0001] Klacht over coachingssessie"
    );
    assert!(
        answer
            .text
            .starts_with("Beste Jan,\n\nDank voor uw bericht."),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("bereikbaar bent voor een gesprek?"));
    assert!(
        answer.text.contains("Anna de Vries"),
        "signed by the handler"
    );
    assert_nothing_internal(&answer.text);
    assert_eq!(answer.in_reply_to, vec![ack.message_id.clone()]);
    assert!(
        answer.references.contains(&complaint_id),
        "in Jan's own thread"
    );
    assert!(answer.references.contains(&ack.message_id));
    assert_eq!(w.cases()[0]["status"], "in_progress");
    assert!(
        w.mails(&w.anna)
            .iter()
            .all(|m| !parsed(m).subject.contains("Verwerkt")),
        "a plain answer needs no receipt"
    );

    // 2. Jan answers; Anna gets his new text as a notification.
    let jan_reply = unique_id("jan-reply");
    w.deliver(
        &client,
        &crate::world::rewrite_headers(
            &reply(
                &to_jan[1],
                &client,
                &w.info,
                "Ik ben dinsdag na 14 uur bereikbaar.",
                Client::Gmail,
            ),
            &[("Message-ID", &jan_reply)],
        ),
    );
    w.run_once();
    let client_notice = newest(&w, &w.anna, "Reactie van cliënt");
    let cn = parsed(&client_notice);
    assert!(cn.text.contains("Ik ben dinsdag na 14 uur bereikbaar."));
    assert!(
        !cn.text.contains("> Beste Jan"),
        "his quote of our answer is cut"
    );

    // 3. Anna makes a proposal from Gmail, under Jan's notification.
    staff_answers(
        &w,
        &w.anna,
        &client_notice,
        "/voorstel\nBeste Jan,\n\nWij plannen de sessie kosteloos opnieuw in, met Carla als coach.",
        Client::Gmail,
    );
    w.run_once();
    let to_jan = inbox(&w, &client, 3);
    let proposal = parsed(&to_jan[2]);
    assert!(proposal
        .text
        .starts_with("Beste Jan,\n\nWij plannen de sessie kosteloos opnieuw in"));
    assert!(proposal.text.contains("ons voorstel"), "{}", proposal.text);
    assert_nothing_internal(&proposal.text);
    assert_eq!(
        proposal.in_reply_to,
        vec![jan_reply.clone()],
        "answers Jan's last mail"
    );
    assert!(proposal.references.contains(&complaint_id));
    assert_eq!(w.cases()[0]["status"], "proposed");
    let receipt = newest(&w, &w.anna, "Verwerkt");
    assert!(parsed(&receipt).text.contains("voorstel aan de cliënt"));

    // 4. Jan agrees (by phone, say); Anna records it from Apple Mail, then closes.
    staff_answers(&w, &w.anna, &receipt, "/akkoord", Client::Apple);
    w.run_once();
    assert_eq!(w.cases()[0]["status"], "resolved");
    let receipt = newest_after(&w, &w.anna, "Verwerkt", 1);
    staff_answers(&w, &w.anna, &receipt, "/sluit uitgevoerd", Client::Outlook);
    w.run_once();
    newest_after(&w, &w.anna, "Verwerkt", 2);
    let case = w.case("KL-2026-0001");
    assert_eq!(case["status"], "closed");
    assert_eq!(
        w.mails(&client).len(),
        3,
        "commands without text send Jan nothing"
    );

    // The timeline tells the whole story.
    let k = kinds(&case);
    for want in [
        "received",
        "ack_sent",
        "staff_message",
        "answer_sent",
        "client_reply",
        "proposal",
        "proposal_sent",
        "agreed",
        "closed",
        "command",
        "status",
    ] {
        assert!(k.iter().any(|x| x == want), "timeline lacks {want}: {k:?}");
    }
    for e in events(&case, "command") {
        assert_eq!(e["result"], "ok");
        assert_eq!(e["actor"], w.anna.as_str());
    }
    let commands: Vec<&str> = events(&case, "command")
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["/voorstel", "/akkoord", "/sluit"]);
    let ins: Vec<&Value> = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["direction"] == "in")
        .collect();
    assert_eq!(ins.len(), 6, "complaint, Jan's reply, four staff mails");
    assert!(ins.iter().any(|e| e["from"] == client.as_str()));
    let outs: Vec<&Value> = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["direction"] == "out")
        .collect();
    assert!(outs
        .iter()
        .all(|e| e["from"] == w.info.as_str() && e["at"].is_string()));
    let statuses: Vec<(&str, &str)> = events(&case, "status")
        .iter()
        .map(|e| (e["from"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("acknowledged", "in_progress"),
            ("in_progress", "proposed"),
            ("proposed", "resolved"),
            ("resolved", "closed")
        ]
    );

    // Every mail klachtd sent the client is in Sent, none to staff (their
    // Message-IDs are tokens); Bram, concerned, saw nothing.
    let to_client = outs.iter().filter(|e| e["to"] == client.as_str()).count();
    assert!(to_client > 0);
    assert_eq!(w.sent().len(), to_client);
    assert!(w.mails(&w.bram).is_empty());
}

#[test]
fn a_forged_command_changes_nothing_and_is_answered() {
    let Case {
        w,
        client,
        complaint_id,
    } = complaint(World::new());
    let before = w.case("KL-2026-0001");
    // Right From, the case tag, even the client's Message-ID: but no
    // reference to anything klachtd sent Anna.
    let forged = format!(
        "From: Anna de Vries <{anna}>\r\nTo: {info}\r\nSubject: Re: [KL-2026-0001] Klacht\r\n\
         Date: Mon, 23 Nov 2026 11:00:00 +0100\r\nMessage-ID: {id}\r\nReferences: {complaint_id}\r\n\
         In-Reply-To: {complaint_id}\r\n\r\n/sluit\r\n\r\nBeste Jan, uw klacht is afgehandeld.\r\n",
        anna = w.anna,
        info = w.info,
        id = unique_id("forged"),
    );
    w.deliver(&w.anna, forged.as_bytes());
    // And one with only the tag.
    let tagged = forged
        .replace(
            &format!("References: {complaint_id}\r\nIn-Reply-To: {complaint_id}\r\n"),
            "",
        )
        .replace("Message-ID: <forged", "Message-ID: <forged2");
    w.deliver(&w.anna, tagged.as_bytes());
    w.run_once();

    let after = w.case("KL-2026-0001");
    assert_eq!(after["status"], before["status"]);
    assert_eq!(w.mails(&client).len(), 1, "only the acknowledgement");
    assert_eq!(events(&after, "staff_mail_refused").len(), 2);
    assert!(events(&after, "command").is_empty());
    // The real Anna hears about it (the answer goes to the roster address),
    // once an hour per case however many arrive: no loop with a responder.
    let refused: Vec<_> = w
        .mails(&w.anna)
        .iter()
        .map(|m| parsed(m))
        .filter(|m| m.subject.contains("Niet verwerkt"))
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0]
        .text
        .contains("geen antwoord op een e-mail die klachtd u"));

    // The real Anna, puzzled, answers that warning: it is no answer to the
    // client and is not relayed.
    let warning = newest(&w, &w.anna, "Niet verwerkt");
    staff_answers(
        &w,
        &w.anna,
        &warning,
        "Dit heb ik niet gestuurd!",
        Client::Outlook,
    );
    w.run_once();
    assert_eq!(w.mails(&client).len(), 1, "still only the acknowledgement");
    let after = w.case("KL-2026-0001");
    assert_eq!(after["status"], before["status"]);
    assert_eq!(events(&after, "staff_mail_refused").len(), 3);
    let warnings = w
        .mails(&w.anna)
        .iter()
        .filter(|m| parsed(m).subject.contains("Niet verwerkt"))
        .count();
    assert_eq!(warnings, 1);
}

#[test]
fn reassignment_to_the_person_concerned_is_refused_and_to_a_colleague_done() {
    let Case { w, client, .. } = complaint(World::new());
    let notice = newest(&w, &w.anna, "KL-2026-0001");
    staff_answers(&w, &w.anna, &notice, "/toewijzen Bram", Client::Outlook);
    w.run_once();
    let refused = parsed(&newest(&w, &w.anna, "Niet verwerkt"));
    assert!(
        refused.text.contains("/toewijzen: geweigerd"),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("Bram Bakker"));
    assert_eq!(w.cases()[0]["handler_email"], w.anna.as_str());
    assert!(w.mails(&w.bram).is_empty(), "Bram never sees the case");

    // Unknown commands and bad numbers: clear errors, nothing changed.
    for (n, (text, expect)) in [
        ("/verlengen 5 ziekte", "onbekende opdracht /verlengen"),
        (
            "/verleng tien ziekte",
            "'tien' is geen geldig aantal werkdagen",
        ),
        ("/akkoord", "/akkoord kan niet bij status 'acknowledged'"),
        ("/toewijzen Zoë", "niemand heet 'Zoë'"),
    ]
    .into_iter()
    .enumerate()
    {
        staff_answers(&w, &w.anna, &notice, text, Client::Gmail);
        w.run_once();
        let answer = parsed(&newest_after(&w, &w.anna, "Niet verwerkt", n + 1));
        assert!(answer.text.contains(expect), "{text}: {}", answer.text);
    }
    let case = w.case("KL-2026-0001");
    assert_eq!(case["status"], "acknowledged");
    assert_eq!(case["response_due"], "2026-12-21");
    assert_eq!(events(&case, "staff_mail_refused").len(), 5);

    // To Carla, with a note: she gets the case and the note; Jan nothing.
    staff_answers(
        &w,
        &w.anna,
        &notice,
        "/toewijzen Carla\nCarla, wil jij dit overnemen? Ik ben volgende week weg.",
        Client::Outlook,
    );
    w.run_once();
    assert_eq!(w.cases()[0]["handler_email"], w.carla.as_str());
    let carla = inbox(&w, &w.carla, 1);
    let c = parsed(&carla[0]);
    assert!(c.text.contains("Ik ben volgende week weg."));
    assert!(c.text.contains("Anna de Vries"));
    assert!(c.text.contains("coachingstraject"), "the complaint itself");
    assert_eq!(w.mails(&client).len(), 1);
    let done = parsed(&newest(&w, &w.anna, "Verwerkt"));
    assert!(
        done.text.contains("Carla Smit heeft de zaak"),
        "{}",
        done.text
    );
    assert!(
        !w.mails(&w.anna)
            .iter()
            .any(|m| crate::world::kind(m) == "handler_released"),
        "Anna handed it over herself: her receipt says so, no second mail"
    );
}

#[test]
fn an_extension_tells_the_client_the_reason_and_the_new_date() {
    let Case { w, client, .. } = complaint(World::new());
    let notice = newest(&w, &w.anna, "KL-2026-0001");
    staff_answers(
        &w,
        &w.anna,
        &notice,
        "/verleng 10 de coach is twee weken afwezig en wij willen ook haar kant horen",
        Client::Apple,
    );
    w.run_once();
    let case = w.case("KL-2026-0001");
    // 21 December + 10 working days, past both Christmas days and New Year.
    assert_eq!(case["response_due"], "2027-01-06");
    assert_eq!(case["status"], "in_progress");
    let ext = events(&case, "extended");
    assert_eq!(ext.len(), 1);
    assert_eq!(ext[0]["old_due"], "2026-12-21");
    assert_eq!(ext[0]["new_due"], "2027-01-06");
    assert_eq!(ext[0]["days"], 10);
    assert!(ext[0]["reason"]
        .as_str()
        .unwrap()
        .contains("twee weken afwezig"));

    let mails = inbox(&w, &client, 2);
    let notice = parsed(&mails[1]);
    assert!(
        notice.subject.contains("Meer tijd nodig"),
        "{}",
        notice.subject
    );
    assert!(notice.text.contains("de coach is twee weken afwezig"));
    assert!(notice.text.contains("6 januari 2027"), "{}", notice.text);
    assert_nothing_internal(&notice.text);
}

#[test]
fn an_internal_note_is_never_relayed_and_direct_mail_is_recorded_once() {
    let Case {
        w,
        client,
        complaint_id,
    } = complaint(World::new());
    let notice = newest(&w, &w.anna, "KL-2026-0001");
    staff_answers(
        &w,
        &w.anna,
        &notice,
        "/intern\nBram zegt dat hij die dag ziek was; ik bel Jan morgen.",
        Client::Outlook,
    );
    // Anna writes to Jan herself, info@ in Cc, in his thread.
    let direct = format!(
        "From: Anna de Vries <{anna}>\r\nTo: Jan <{client}>\r\nCc: {info}\r\nSubject: Re: Klacht over coachingssessie\r\n\
         Date: Mon, 23 Nov 2026 12:00:00 +0100\r\nMessage-ID: {id}\r\nIn-Reply-To: {complaint_id}\r\n\
         References: {complaint_id}\r\n\r\nBeste Jan, ik bel u morgen.\r\n",
        anna = w.anna,
        info = w.info,
        id = unique_id("direct"),
    );
    w.deliver(&w.anna, direct.as_bytes());
    w.run_once();
    let done = parsed(&newest(&w, &w.anna, "Verwerkt"));

    assert_eq!(
        w.mails(&client).len(),
        1,
        "only the acknowledgement reached Jan via klachtd"
    );
    let case = w.case("KL-2026-0001");
    assert_eq!(events(&case, "note").len(), 1);
    let staff: Vec<_> = events(&case, "staff_message");
    assert_eq!(staff.len(), 2);
    assert!(staff.iter().any(|e| e["client_in_copy"] == true));
    assert!(events(&case, "staff_mail_refused").is_empty());
    assert!(done.text.contains("interne notitie"));
}

#[test]
fn a_triage_item_becomes_a_case_with_klacht_or_is_dismissed() {
    let w = World::new();
    let a = w.client("twijfel");
    let b = w.client("tweede");
    let ida = w.deliver_fixture(&a, "nl-unsure.eml", "unsure-a");
    w.run_once();
    let idb = w.deliver_fixture(&b, "nl-unsure.eml", "unsure-b");
    w.run_once();
    let cases = w.cases();
    assert_eq!(cases.len(), 2);
    assert!(cases.iter().all(|c| c["status"] == "triage"));
    let notices = inbox(&w, &w.dirk, 2);
    assert!(w.mails(&a).is_empty());
    let for_ref = |r: &str| {
        notices
            .iter()
            .find(|m| parsed(m).subject.contains(r))
            .unwrap()
            .clone()
    };
    // A plain answer to a triage item is refused: it is not a case yet.
    w.deliver(
        &w.dirk,
        &reply(
            &for_ref("KL-2026-0001"),
            &w.dirk,
            &w.info,
            "Beste klant, dank u.",
            Client::Gmail,
        ),
    );
    w.run_once();
    assert!(parsed(&newest(&w, &w.dirk, "Niet verwerkt"))
        .text
        .contains("/klacht"));
    assert!(w.mails(&a).is_empty());

    w.deliver(
        &w.dirk,
        &reply(
            &for_ref("KL-2026-0001"),
            &w.dirk,
            &w.info,
            "/klacht",
            Client::Gmail,
        ),
    );
    w.deliver(
        &w.dirk,
        &reply(
            &for_ref("KL-2026-0002"),
            &w.dirk,
            &w.info,
            "/geen-klacht",
            Client::Outlook,
        ),
    );
    w.run_once();
    let one = w.case("KL-2026-0001");
    assert_eq!(one["status"], "acknowledged");
    let handler = one["handler_email"].as_str().unwrap().to_string();
    assert!(handler == w.anna || handler == w.bram || handler == w.carla);
    let ack = inbox(&w, &a, 1);
    let ack = parsed(&ack[0]);
    assert!(ack.subject.contains("[KL-2026-0001]"));
    assert_eq!(ack.in_reply_to, vec![ida]);
    newest(&w, &handler, "KL-2026-0001");
    newest_after(&w, &w.dirk, "Verwerkt", 1);

    let two = w.case("KL-2026-0002");
    assert_eq!(two["status"], "closed");
    assert_eq!(events(&two, "dismissed").len(), 1);
    assert!(
        w.mails(&b).is_empty(),
        "a dismissed item sends the sender nothing"
    );
    let _ = idb;
}

#[test]
fn a_reply_to_a_closed_case_goes_to_the_handler_and_reopen_works() {
    let Case { w, client, .. } = complaint(World::new());
    assert!(w
        .klachtd(&[
            "case",
            "close",
            "KL-2026-0001",
            "--reason",
            "telefonisch opgelost"
        ])
        .status
        .success());
    let ack = inbox(&w, &client, 1).remove(0);
    w.deliver(
        &client,
        &reply(
            &ack,
            &client,
            &w.info,
            "Toch nog een vraag over de factuur.",
            Client::Gmail,
        ),
    );
    w.run_once();
    assert_eq!(
        w.cases()[0]["status"],
        "closed",
        "a reply alone does not reopen"
    );
    let notice = newest(&w, &w.anna, "Reactie van cliënt");
    let n = parsed(&notice);
    assert!(n.text.contains("deze zaak is gesloten"), "{}", n.text);
    assert!(n.text.contains("Toch nog een vraag over de factuur."));

    staff_answers(
        &w,
        &w.anna,
        &notice,
        "/heropen vraag over de factuur",
        Client::Outlook,
    );
    w.run_once();
    let case = w.case("KL-2026-0001");
    assert_eq!(case["status"], "in_progress");
    assert!(case["closed_at"].is_null(), "{case:#}");
    assert_eq!(events(&case, "reopened").len(), 1);
}

#[test]
fn the_person_concerned_cannot_act_on_the_case() {
    let Case { w, client, .. } = complaint(World::new());
    // Even holding a real notification (forwarded to him, say), Bram cannot
    // answer: the answer must come from the address it was sent to, and he
    // is concerned anyway.
    let notice = newest(&w, &w.anna, "KL-2026-0001");
    staff_answers(
        &w,
        &w.bram,
        &notice,
        "/sluit\nDit klopt niet.",
        Client::Outlook,
    );
    w.run_once();
    newest(&w, &w.bram, "Niet verwerkt");
    assert_eq!(w.cases()[0]["status"], "acknowledged");
    assert_eq!(w.mails(&client).len(), 1);
}

#[test]
fn case_mail_moves_to_the_complaints_folder_and_other_mail_stays() {
    let Case { w, client, .. } = complaint(World::with_config(
        "\n[intake]\ncomplaint_folder = \"Klachten\"\n",
    ));
    inbox(&w, &client, 1);
    // Ordinary mail (invoice.eml would be a false alarm of the model: triage).
    let ordinary = w.deliver_fixture(&w.client("aanmelding"), "nl-signup.eml", "signup");
    let notice = newest(&w, &w.anna, "KL-2026-0001");
    staff_answers(
        &w,
        &w.anna,
        &notice,
        "Beste Jan, ik bel u morgen.",
        Client::Gmail,
    );
    let flags_before: Vec<Vec<String>> = w
        .stack
        .imap_flags(&w.info, "INBOX")
        .unwrap()
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    w.run_once();
    inbox(&w, &client, 2);

    // INBOX keeps the ordinary mail exactly as it was; the complaint and Anna's
    // answer are in Klachten, with the keyword.
    let left = w.mails(&w.info);
    assert_eq!(left.len(), 1);
    assert_eq!(parsed(&left[0]).message_id, ordinary);
    let inbox_flags = w.stack.imap_flags(&w.info, "INBOX").unwrap();
    assert_eq!(inbox_flags.len(), 1);
    assert!(
        flags_before.contains(&inbox_flags[0].1),
        "ordinary mail's flags unchanged"
    );
    let moved = w.stack.imap_flags(&w.info, "Klachten").unwrap();
    assert_eq!(
        moved.len(),
        2,
        "the complaint (moved in the first run) and the answer"
    );
    assert!(
        moved.iter().all(|(_, f)| f.iter().any(|x| x == "$Klacht")),
        "{moved:?}"
    );

    // The checkpoint is still right: a new complaint is taken, nothing is
    // taken twice.
    let second = w.client("piet");
    w.deliver_fixture(&second, "en-complaint-formal.eml", "second");
    w.run_once();
    w.run_once();
    assert_eq!(w.cases().len(), 2);
    inbox(&w, &second, 1);
    assert_eq!(inbox(&w, &client, 2).len(), 2);
    assert_eq!(w.stack.imap_flags(&w.info, "Klachten").unwrap().len(), 3);
    assert_eq!(w.mails(&w.info).len(), 1);
}

#[test]
fn a_forwarded_complaint_becomes_a_case_once_a_supervisor_confirms() {
    let w = World::new();
    let client = w.client("jan");
    // Carla got Jan's complaint in her own mailbox and forwards it, Gmail
    // style, with /klacht on top.
    let forward = format!(
        "From: Carla Smit <{carla}>\r\nTo: {info}\r\nSubject: Fwd: Ontevreden over de training\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 +0100\r\nMessage-ID: {id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n/klacht\r\nJan belde er ook al over.\r\n\r\n\
         ---------- Forwarded message ---------\r\nFrom: Jan de Vries <{client}>\r\n\
         Date: Fri, 20 Nov 2026 16:45:00 +0100\r\nSubject: Ontevreden over de training\r\nTo: <{carla}>\r\n\r\n\
         Beste Carla,\r\n\r\nIk ben ontevreden over de training van 18 november: de trainer was\r\n\
         onvoorbereid. Ik wil graag mijn geld terug.\r\n\r\nJan\r\n",
        carla = w.carla,
        info = w.info,
        id = unique_id("forward"),
    );
    w.deliver(&w.carla, forward.as_bytes());
    w.run_once();
    let case = w.case("KL-2026-0001");
    assert_eq!(case["status"], "triage");
    assert_eq!(case["source"], "forwarded");
    assert_eq!(case["client_email"], client.as_str());
    assert_eq!(case["client_name"], "Jan de Vries");
    assert_eq!(case["subject"], "Ontevreden over de training");
    assert!(case["received_at"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-20T15:45:00"));
    assert_eq!(
        case["ack_due"], "2026-11-27",
        "five working days from Friday the 20th"
    );
    let receipt = parsed(&newest(&w, &w.carla, "Verwerkt"));
    assert!(
        receipt.text.contains("vastgelegd als melding KL-2026-0001"),
        "{}",
        receipt.text
    );
    assert!(
        w.mails(&client).is_empty(),
        "nothing to Jan before a supervisor confirms"
    );

    let notice = newest(&w, &w.dirk, "KL-2026-0001");
    assert!(parsed(&notice)
        .text
        .contains("doorgestuurd door Carla Smit"));
    staff_answers(&w, &w.dirk, &notice, "/klacht", Client::Outlook);
    w.run_once();
    let case = w.case("KL-2026-0001");
    assert_eq!(case["status"], "acknowledged");
    let ack = parsed(&inbox(&w, &client, 1)[0]);
    assert!(ack.subject.starts_with("[KL-2026-0001]"), "{}", ack.subject);
    assert!(ack.text.contains("20 november 2026"), "{}", ack.text);
    assert!(
        ack.text.contains("18 december 2026"),
        "response due: {}",
        ack.text
    );
    assert!(kinds(&case).iter().any(|k| k == "forwarded"));
}

#[test]
fn with_a_trusted_server_configured_its_dkim_or_dmarc_verdict_is_required_too() {
    let Case { w, client, .. } = complaint(World::with_config(
        "\n[intake]\ntrusted_authserv_id = \"mx.31solutions.test\"\n",
    ));
    let notice = newest(&w, &w.anna, "KL-2026-0001");
    // A real answer, but without the receiving server's verdict.
    staff_answers(
        &w,
        &w.anna,
        &notice,
        "Beste Jan, ik bel u morgen.",
        Client::Gmail,
    );
    w.run_once();
    let refused = parsed(&newest(&w, &w.anna, "Niet verwerkt"));
    assert!(
        refused.text.contains("(intake.sender_auth"),
        "{}",
        refused.text
    );
    assert_eq!(w.mails(&client).len(), 1);

    // The same with the trusted server's DKIM pass for the staff domain.
    let signed = crate::world::rewrite_headers(
        &reply(
            &notice,
            &w.anna,
            &w.info,
            "Beste Jan, ik bel u morgen.",
            Client::Gmail,
        ),
        &[(
            "Authentication-Results",
            "mx.31solutions.test; dkim=pass header.d=31solutions.test header.s=mail",
        )],
    );
    w.deliver(&w.anna, &signed);
    w.run_once();
    let mails = inbox(&w, &client, 2);
    assert!(parsed(&mails[1])
        .text
        .starts_with("Beste Jan, ik bel u morgen."));
}

/// Carla forwards a complaint of `client` with `/klacht` on top: a triage
/// item that waits for a supervisor, whatever the model thinks of it.
fn forwarded(w: &World, client: &str, subject: &str) {
    let forward = format!(
        "From: Carla Smit <{carla}>\r\nTo: {info}\r\nSubject: Fwd: {subject}\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 +0100\r\nMessage-ID: {id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n/klacht\r\n\r\n\
         ---------- Forwarded message ---------\r\nFrom: Klant <{client}>\r\n\
         Date: Fri, 20 Nov 2026 16:45:00 +0100\r\nSubject: {subject}\r\nTo: <{carla}>\r\n\r\n\
         Beste Carla,\r\n\r\nIk ben ontevreden over de training van 18 november: de trainer was\r\n\
         onvoorbereid. Ik wil graag mijn geld terug.\r\n",
        carla = w.carla,
        info = w.info,
        id = unique_id("forward"),
    );
    w.deliver(&w.carla, forward.as_bytes());
}

/// The newest daily digest in Anna's mailbox.
fn annas_digest(w: &World) -> Vec<u8> {
    w.all_mails(&w.anna)
        .into_iter()
        .rfind(|m| crate::world::kind(m) == "digest")
        .expect("a digest for Anna")
}

#[test]
fn a_digest_shown_to_someone_outside_the_staff_no_longer_decides_anything() {
    let w = World::with_config("\n[digest]\ntriage_mail = \"digest\"\n");
    let jan = w.client("jan");
    forwarded(&w, &jan, "Training onvoorbereid");
    w.run_once();
    w.run_once_at("2026-11-24T09:00:00+01:00");
    let digest = annas_digest(&w);
    // Anna shows her digest to an outside adviser, info@ in copy.
    let adviser = w.client("adviseur");
    let shown = format!(
        "From: {anna}\r\nTo: {adviser}\r\nCc: {info}\r\nSubject: Fwd: {subject}\r\n\
         Message-ID: {id}\r\nReferences: {parent}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nWat vind jij hiervan?\r\n",
        anna = w.anna,
        info = w.info,
        subject = parsed(&digest).subject,
        id = unique_id("shown"),
        parent = parsed(&digest).message_id,
    );
    w.deliver(&w.anna, shown.as_bytes());
    w.run_once_at("2026-11-24T10:00:00+01:00");
    // Whoever answers that digest as Anna now decides nothing.
    staff_answers(
        &w,
        &w.anna,
        &digest,
        "/geen-klacht KL-2026-0001",
        Client::Gmail,
    );
    w.run_once_at("2026-11-24T11:00:00+01:00");
    assert_eq!(w.case("KL-2026-0001")["status"], "triage");
    // Wednesday's digest carries a fresh token, and Anna decides with it.
    w.run_once_at("2026-11-25T09:00:00+01:00");
    let fresh = annas_digest(&w);
    assert_ne!(parsed(&fresh).message_id, parsed(&digest).message_id);
    staff_answers(
        &w,
        &w.anna,
        &fresh,
        "/geen-klacht KL-2026-0001",
        Client::Gmail,
    );
    w.run_once_at("2026-11-25T10:00:00+01:00");
    assert_eq!(w.case("KL-2026-0001")["status"], "closed");
}

#[test]
fn supervisors_decide_triage_items_by_answering_the_digest_one_line_each() {
    let w = World::with_config("\n[digest]\ntriage_mail = \"digest\"\n");
    let jan = w.client("jan");
    let piet = w.client("piet");
    let kees = w.client("kees");
    forwarded(&w, &jan, "Training onvoorbereid");
    forwarded(&w, &piet, "Geld terug");
    forwarded(&w, &kees, "Nog een training");
    w.run_once();
    for r in ["KL-2026-0001", "KL-2026-0002", "KL-2026-0003"] {
        assert_eq!(w.case(r)["status"], "triage");
    }
    // Tuesday's digest lists the three items, each with how to decide it.
    w.run_once_at("2026-11-24T09:00:00+01:00");
    let digests: Vec<Vec<u8>> = w
        .all_mails(&w.anna)
        .into_iter()
        .filter(|m| crate::world::kind(m) == "digest")
        .collect();
    let digest = digests.last().expect("a digest for Anna").clone();
    let text = parsed(&digest).text;
    for r in ["KL-2026-0001", "KL-2026-0002", "KL-2026-0003"] {
        assert!(
            text.contains(&format!("/klacht {r} of /geen-klacht {r}")),
            "{text}"
        );
    }

    // Anna decides two of them, and mistypes a third reference.
    staff_answers(
        &w,
        &w.anna,
        &digest,
        "/klacht KL-2026-0001\n/geen-klacht KL-2026-0002\n/klacht KL-2026-0099",
        Client::Gmail,
    );
    w.run_once_at("2026-11-24T10:00:00+01:00");
    let first = w.case("KL-2026-0001");
    assert_eq!(first["status"], "acknowledged", "{first:#}");
    assert!(first["handler_email"].is_string());
    assert_eq!(inbox(&w, &jan, 1).len(), 1, "Jan is acknowledged now");
    assert_eq!(w.case("KL-2026-0002")["status"], "closed");
    assert!(w.mails(&piet).is_empty());
    assert_eq!(w.case("KL-2026-0003")["status"], "triage");
    let receipts: Vec<_> = w
        .mails(&w.anna)
        .into_iter()
        .filter(|m| crate::world::kind(m) == "digest_receipt")
        .collect();
    assert_eq!(receipts.len(), 1, "one result mail for the whole answer");
    let receipt = parsed(&receipts[0]).text;
    for needle in [
        "/klacht KL-2026-0001: verwerkt",
        "/geen-klacht KL-2026-0002: verwerkt",
        "/klacht KL-2026-0099: NIET verwerkt",
    ] {
        assert!(receipt.contains(needle), "{needle:?} in:\n{receipt}");
    }

    // Bram holds Anna's digest (forwarded to him, say): his answer to it
    // changes nothing, and he is told why.
    staff_answers(
        &w,
        &w.bram,
        &digest,
        "/klacht KL-2026-0003",
        Client::Outlook,
    );
    w.run_once_at("2026-11-24T11:00:00+01:00");
    assert_eq!(w.case("KL-2026-0003")["status"], "triage");
    assert!(w.mails(&kees).is_empty());
    let refused = newest(&w, &w.bram, "Dagoverzicht");
    assert!(parsed(&refused)
        .text
        .contains("geen antwoord op een dagoverzicht dat klachtd aan u stuurde"));

    // Running again applies nothing twice.
    w.run_once_at("2026-11-24T12:00:00+01:00");
    assert_eq!(inbox(&w, &jan, 1).len(), 1);
    assert_eq!(
        w.mails(&w.anna)
            .into_iter()
            .filter(|m| crate::world::kind(m) == "digest_receipt")
            .count(),
        1
    );
}
