//! Staff overrule (issue 11), on the real Dovecot and Postfix: staff make any
//! mail of info@ a complaint from their own mail client, by moving it into
//! the complaint folder or setting `$Klacht` on it. The test does exactly
//! what a mail client does (its own IMAP session: UID MOVE, UID STORE).

use crate::world::{parsed, unique_id, World};
use jiff::civil::date;

const FOLDER: &str = "\n[intake]\ncomplaint_folder = \"Klachten\"\n";
/// Case mail stays where it arrived (set on purpose: the default moves it).
const NO_FOLDER: &str = "\n[intake]\ncomplaint_folder = \"\"\n";

/// A mail klachtd takes for ordinary mail: a question about an appointment.
const SUBJECT: &str = "Afspraak volgende week";
const BODY: &str = "Hallo,\n\nKunnen we de afspraak van volgende week op dinsdag om 14:00 \
                    houden in plaats van maandag?\n\nGroet,\nJan";

fn events(case: &serde_json::Value, kind: &str) -> usize {
    case["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

/// `(uid, flags)` of `folder`'s only message.
fn only_message(w: &World, folder: &str) -> (u32, Vec<String>) {
    let all = w.stack.imap_flags(&w.info, folder).expect("IMAP flags");
    assert_eq!(all.len(), 1, "{folder}: {all:?}");
    all[0].clone()
}

/// The mail of `kind` klachtd sent to `to`.
fn sent_of_kind(w: &World, to: &str, kind: &str) -> Vec<Vec<u8>> {
    w.mails(to)
        .into_iter()
        .filter(|m| crate::world::kind(m) == kind)
        .collect()
}

/// The first pass leaves `id` alone: no case, no keyword, still in INBOX.
fn left_alone(w: &World) -> u32 {
    assert!(
        w.cases().is_empty(),
        "precondition: klachtd takes the test mail for ordinary mail: {:#?}",
        w.cases()
    );
    let (uid, flags) = only_message(w, "INBOX");
    assert!(!flags.iter().any(|f| f == "$Klacht"), "{flags:?}");
    uid
}

#[test]
fn a_mail_staff_move_into_the_complaint_folder_becomes_one_case_with_terms_from_its_arrival() {
    let w = World::with_config(FOLDER);
    let client = w.client("jan");
    // Arrived Monday 2 November; klachtd sees it on the 3rd and leaves it.
    let id = w.arrive(
        date(2026, 11, 2),
        &format!("Jan de Vries <{client}>"),
        SUBJECT,
        BODY,
        &[],
    );
    w.run_once_at("2026-11-03T10:00:00+01:00");
    let uid = left_alone(&w);
    assert!(w.mails(&client).is_empty());

    // Thursday the 5th, a colleague drags it into Klachten.
    w.stack
        .imap_act(&w.info, "INBOX", &format!("UID MOVE {uid} Klachten"))
        .expect("UID MOVE");
    w.run_once_at("2026-11-05T10:00:00+01:00");

    let cases = w.cases();
    assert_eq!(cases.len(), 1, "{cases:#?}");
    let case = &cases[0];
    assert_eq!(case["status"], "acknowledged");
    assert_eq!(case["client_email"], client.as_str());
    assert_eq!(case["client_name"], "Jan de Vries");
    assert_eq!(case["subject"], SUBJECT);
    // Terms from Monday the 2nd (arrival), not Thursday the 5th (the move).
    assert!(
        case["received_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-02T07:00:00"),
        "{case:#}"
    );
    assert_eq!(case["ack_due"], "2026-11-09");
    assert_eq!(case["response_due"], "2026-11-30");
    let reference = case["reference"].as_str().unwrap().to_string();
    let shown = w.case(&reference);
    assert_eq!(events(&shown, "staff_overrule"), 1, "{shown:#}");

    let acks = sent_of_kind(&w, &client, "ack");
    assert_eq!(acks.len(), 1);
    let ack = parsed(&acks[0]);
    assert!(ack.subject.contains(&reference), "{}", ack.subject);
    assert_eq!(ack.in_reply_to, vec![id.clone()], "in the client's thread");
    assert!(
        ack.text.contains("30 november 2026"),
        "the answer date counts from arrival:\n{}",
        ack.text
    );
    let handler = case["handler_email"].as_str().unwrap().to_string();
    assert_eq!(sent_of_kind(&w, &handler, "handler_new").len(), 1);

    // Now case mail: marked like the rest; still in Klachten.
    let (_, flags) = only_message(&w, "Klachten");
    assert!(flags.iter().any(|f| f == "$Klacht"), "{flags:?}");
    assert!(w.stack.imap_flags(&w.info, "INBOX").unwrap().is_empty());

    // Again, and again as a restarted daemon a day later: nothing new.
    w.run_once_at("2026-11-05T10:05:00+01:00");
    w.run_once_at("2026-11-06T10:00:00+01:00");
    assert_eq!(w.cases().len(), 1);
    assert_eq!(sent_of_kind(&w, &client, "ack").len(), 1);
    assert_eq!(sent_of_kind(&w, &handler, "handler_new").len(), 1);
    assert_eq!(events(&w.case(&reference), "staff_overrule"), 1);
}

#[test]
fn a_mail_staff_mark_with_the_keyword_becomes_one_case_even_after_the_acknowledgement_term() {
    let w = World::with_config(NO_FOLDER);
    let client = w.client("jan");
    w.arrive(
        date(2026, 11, 2),
        &format!("Jan de Vries <{client}>"),
        SUBJECT,
        BODY,
        &[],
    );
    w.run_once_at("2026-11-03T10:00:00+01:00");
    let uid = left_alone(&w);

    // A colleague's own mail to info@ and a copy of klachtd's own address
    // get the keyword too: klachtd will not make complaints of those.
    w.arrive(
        date(2026, 11, 3),
        &format!("Bram Bakker <{}>", w.bram),
        "Rooster december",
        "Hier is het rooster voor december.",
        &[],
    );
    w.arrive(
        date(2026, 11, 3),
        &format!("31Solutions <{}>", w.info),
        "Nieuwsbrief november",
        "Ons aanbod voor november.",
        &[],
    );
    let all = w.stack.imap_flags(&w.info, "INBOX").unwrap();
    assert_eq!(all.len(), 3);
    for (u, _) in &all {
        w.stack
            .imap_act(&w.info, "INBOX", &format!("UID STORE {u} +FLAGS ($Klacht)"))
            .expect("UID STORE");
    }

    // Monday the 16th: the acknowledgement term (9 November) has passed,
    // but a person decided, so the client is acknowledged now.
    w.run_once_at("2026-11-16T10:00:00+01:00");
    let cases = w.cases();
    assert_eq!(
        cases.len(),
        1,
        "one case, from the client's mail: {cases:#?}"
    );
    let case = &cases[0];
    assert_eq!(case["client_email"], client.as_str());
    assert_eq!(case["status"], "acknowledged");
    assert!(case["received_at"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-02T07:00:00"));
    assert_eq!(case["ack_due"], "2026-11-09");
    assert_eq!(case["response_due"], "2026-11-30");
    assert_eq!(sent_of_kind(&w, &client, "ack").len(), 1);
    // Nothing went to Bram because of his own mail, nothing to info@.
    assert!(w.mails(&w.bram).is_empty());
    assert!(w
        .sent()
        .iter()
        .all(|m| parsed(m).to.iter().all(|t| t.as_str() != w.info)));
    // The mail stays in INBOX (no complaint folder), all three keep the keyword.
    let after = w.stack.imap_flags(&w.info, "INBOX").unwrap();
    assert_eq!(after.len(), 3);
    assert!(after.iter().any(|(u, _)| *u == uid));

    w.run_once_at("2026-11-16T10:05:00+01:00");
    w.run_once_at("2026-11-17T10:00:00+01:00");
    assert_eq!(w.cases().len(), 1);
    assert_eq!(sent_of_kind(&w, &client, "ack").len(), 1);
}

/// A complaint klachtd recognises itself, the client's reply on it, and
/// then two more passes: each message is still one case's mail, once.
fn klachtds_own_case_mail_stays_one_case(w: &World) {
    let client = w.client("jan");
    w.deliver_fixture_as(
        "Jan de Vries",
        &client,
        "nl-complaint-plain.eml",
        &unique_id("own"),
    );
    w.run_once();
    let cases = w.cases();
    assert_eq!(
        cases.len(),
        1,
        "precondition: a plain complaint is recognised: {cases:#?}"
    );
    let acks = sent_of_kind(w, &client, "ack");
    assert_eq!(acks.len(), 1);
    let ack = parsed(&acks[0]);
    let reply = format!(
        "From: {client}\r\nTo: {info}\r\nSubject: Re: {subj}\r\nMessage-ID: {id}\r\n\
         In-Reply-To: {parent}\r\nReferences: {parent}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Het ging om de sessie van 3 november.\r\n",
        info = w.info,
        subj = ack.subject,
        id = unique_id("reply"),
        parent = ack.message_id,
    );
    w.deliver(&client, reply.as_bytes());
    w.run_once();
    w.run_once();
    w.run_once_at("2026-11-24T10:00:00+01:00");

    let cases = w.cases();
    assert_eq!(cases.len(), 1, "{cases:#?}");
    assert_eq!(sent_of_kind(w, &client, "ack").len(), 1);
    let shown = w.case("KL-2026-0001");
    assert_eq!(events(&shown, "staff_overrule"), 0, "{shown:#}");
    assert_eq!(events(&shown, "client_reply"), 1, "{shown:#}");
}

#[test]
fn case_mail_klachtd_moved_itself_is_never_opened_again() {
    let w = World::with_config(FOLDER);
    // Old mail in a Klachten folder that existed before klachtd watched it
    // is history, not a request of today.
    let old = format!(
        "From: Piet <{}>\r\nTo: {}\r\nSubject: Oude klacht\r\nMessage-ID: {}\r\n\
         Date: Mon, 5 Jan 2026 09:00:00 +0100\r\nContent-Type: text/plain\r\n\r\nAfgehandeld.\r\n",
        w.client("piet"),
        w.info,
        unique_id("old"),
    );
    w.stack
        .imap_append(&w.info, "Klachten", old.as_bytes(), None, &[])
        .expect("APPEND");
    klachtds_own_case_mail_stays_one_case(&w);
    // The complaint and the reply were moved, and the old mail is still there.
    let moved = w.stack.imap_flags(&w.info, "Klachten").unwrap();
    assert_eq!(moved.len(), 3, "{moved:?}");
    assert_eq!(
        moved
            .iter()
            .filter(|(_, f)| f.iter().any(|x| x == "$Klacht"))
            .count(),
        2,
        "{moved:?}"
    );
    assert!(w.stack.imap_flags(&w.info, "INBOX").unwrap().is_empty());
}

#[test]
fn case_mail_klachtd_marked_itself_is_never_opened_again() {
    let w = World::with_config(NO_FOLDER);
    klachtds_own_case_mail_stays_one_case(&w);
    let marked = w.stack.imap_flags(&w.info, "INBOX").unwrap();
    assert_eq!(marked.len(), 2);
    assert!(marked.iter().all(|(_, f)| f.iter().any(|x| x == "$Klacht")));
}
