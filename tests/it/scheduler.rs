//! The scheduler over a simulated quarter, on the real Dovecot and Postfix
//! through the real `klachtd` binary: `run --once --now` every day at 09:00
//! (and again at 16:00 on working days, as a restarted daemon would) from
//! Monday 16 March 2026 through 60 working days, over Goede Vrijdag,
//! Paasmaandag, Koningsdag (Monday 27 April 2026), Hemelvaart and
//! Pinksteren. Every reminder, escalation and digest is counted per
//! mailbox, and each must arrive once, on the right working day, to the
//! right people only.
//!
//! The dates lie in the past on purpose: mail is put into info@ with IMAP
//! APPEND and an INTERNALDATE, which Dovecot moves to "now" when it lies in
//! the future.

use std::collections::BTreeMap;
use std::io::Write as _;

use crate::support::db;
use crate::world::{kind, parsed, World, SCHEDULED_KINDS};
use jiff::civil::Date;
use klachtd::domain::calendar::Calendar;
use serde_json::Value;

/// 09:00 (or `hour`) in Amsterdam on `day`, as RFC 3339 (winter or summer time).
fn at(day: Date, hour: i8) -> String {
    day.at(hour, 0, 0, 0)
        .in_tz("Europe/Amsterdam")
        .expect("Amsterdam time")
        .timestamp()
        .to_string()
}

/// A staff member's or client's answer to `original` (threaded).
fn answer(w: &World, day: Date, from: &str, original: &[u8], body: &str) {
    let o = parsed(original);
    let mut refs = o.references.clone();
    refs.push(o.message_id.clone());
    w.arrive(
        day,
        from,
        &format!("Re: {}", o.subject),
        body,
        &[
            ("In-Reply-To", &o.message_id),
            ("References", &refs.join(" ")),
        ],
    );
}

/// (kind, local date) of every scheduled mail in a mailbox.
fn scheduled(w: &World, address: &str) -> Vec<(String, Date, String)> {
    w.all_mails(address)
        .iter()
        .filter(|m| SCHEDULED_KINDS.contains(&kind(m).as_str()))
        .map(|m| {
            let p = parsed(m);
            let date = p
                .header("date")
                .and_then(|d| jiff::fmt::rfc2822::parse(d).ok())
                .map(|z| {
                    z.with_time_zone(jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap())
                        .date()
                })
                .expect("a Date header");
            (kind(m), date, p.subject.clone())
        })
        .collect()
}

fn counts(list: &[(String, Date, String)]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (k, ..) in list {
        *m.entry(k.clone()).or_insert(0) += 1;
    }
    m
}

fn d(s: &str) -> Date {
    s.parse().unwrap()
}

fn reference_of(cases: &[Value], client: &str) -> (String, String) {
    let c = cases
        .iter()
        .find(|c| c["client_email"].as_str() == Some(client))
        .unwrap_or_else(|| panic!("no case for {client}: {cases:#?}"));
    (
        c["reference"].as_str().unwrap().to_string(),
        c["handler_email"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn a_quarter_of_deadlines_sends_every_notice_once_on_the_right_day_to_the_right_people() {
    let w = World::new();
    let ext = w.client("extern");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&w.config)
        .unwrap();
    writeln!(f, "\n[escalation]\nfallback = \"{ext}\"").unwrap();
    drop(f);
    let cal = Calendar::dutch_default();
    let start = d("2026-03-16");
    let (ans, bep, cor, dora, eva) = (
        w.client("ans"),
        w.client("bep"),
        w.client("cor"),
        w.client("dora"),
        w.client("eva"),
    );

    // Monday 16 March 2026, 08:00: five mails in info@.
    w.arrive(start, &format!("Ans Peters <{ans}>"), "Klacht over mijn coachingssessie",
        "Beste 31Solutions,\n\nOp 15 februari 2026 had ik een sessie met Bram. Bram kwam een half uur\nte laat en was slecht voorbereid. Ik ben hier zeer ontevreden over en\ndien hierbij een klacht in.\n\nIk wil graag een nieuwe sessie met een andere coach.\n\nMet vriendelijke groet,\nAns Peters\n", &[]);
    w.arrive(start, &format!("Bep Smit <{bep}>"), "Klacht over telefoongesprek",
        "Geachte heer, mevrouw,\n\nOp 16 februari 2026 belde ik met Dirk Jansen over mijn factuur. Dirk was\nonbeleefd en hing zomaar op. Ik ben zeer ontevreden en dien hierbij een\nklacht in. Ik verwacht excuses.\n\nBep Smit\n", &[]);
    w.arrive(start, &format!("Cor Visser <{cor}>"), "Klacht over de intake",
        "Beste 31Solutions,\n\nDe intake op 17 februari 2026 met Anna de Vries en Dirk Jansen verliep\nslecht: Anna en Dirk spraken elkaar tegen en niemand legde iets uit. Ik\nben zeer ontevreden en dien een klacht in. Ik wil een nieuw gesprek.\n\nCor Visser\n", &[]);
    w.arrive(start, &format!("Dora Bos <{dora}>"), "Klacht over de training",
        "Beste 31Solutions,\n\nDe training van 18 februari 2026 was slecht georganiseerd: de zaal was\nte klein en het materiaal ontbrak. Ik ben zeer ontevreden en dien\nhierbij een klacht in. Ik wil een gedeeltelijke terugbetaling.\n\nDora Bos\n", &[]);
    w.arrive(start, &format!("Eva de Wit <{eva}>"), "Workshop van vrijdag",
        "Hallo,\n\nDe workshop van vrijdag was op zich wel leuk, maar ik was een beetje\nteleurgesteld over de lange pauzes. Misschien iets voor de volgende keer?\n\nGroetjes,\nEva\n", &[]);
    w.run_once_at(&at(start, 9));
    let cases = w.cases();
    assert_eq!(cases.len(), 5, "{cases:#?}");
    let (ref_a, handler_a) = reference_of(&cases, &ans);
    let (ref_b, handler_b) = reference_of(&cases, &bep);
    let (ref_c, handler_c) = reference_of(&cases, &cor);
    let (ref_d, handler_d) = reference_of(&cases, &dora);
    let (ref_e, _) = reference_of(&cases, &eva);
    let case = |r: &str| cases.iter().find(|c| c["reference"] == r).unwrap().clone();
    assert_eq!(case(&ref_e)["status"], "triage");
    assert_eq!(
        case(&ref_a)["response_due"],
        "2026-04-14",
        "20 working days, Paasmaandag skipped"
    );
    let concerns = |r: &str| case(r)["concerns"].as_array().unwrap().len();
    assert_eq!(
        (
            concerns(&ref_a),
            concerns(&ref_b),
            concerns(&ref_c),
            concerns(&ref_d)
        ),
        (1, 1, 2, 0)
    );
    for h in [&handler_a, &handler_b, &handler_c, &handler_d] {
        assert!(
            !h.is_empty(),
            "every case but the triage item has a handler"
        );
    }
    assert_ne!(handler_a, w.bram, "Bram is concerned by A");
    assert!(handler_b != w.dirk && handler_c != w.dirk && handler_c != w.anna);

    // Walk 60 working days.
    let mut day = start;
    let mut working = 0;
    while working < 60 {
        if day > start {
            match day.to_string().as_str() {
                // Ans replies to her acknowledgement; nobody answers her.
                "2026-03-25" => answer(&w, day, &ans, &w.find(&ans, "ack", &ref_a), "Aanvulling: het was om 10:00 uur.\n"),
                // Dora's handler proposes before the reminder window.
                "2026-03-30" => answer(&w, day, &handler_d, &w.find(&handler_d, "handler_new", &ref_d),
                    "/voorstel\n\nBeste Dora,\n\nWij bieden u een gedeeltelijke terugbetaling aan.\n"),
                // Dirk decides the triage item is no complaint.
                "2026-04-01" => answer(&w, day, &w.dirk, &w.find(&w.dirk, "triage_notice", &ref_e), "/geen-klacht\n"),
                // The office closes A, B and C by hand.
                "2026-04-28" => {
                    for r in [&ref_a, &ref_b, &ref_c] {
                        let out = w.klachtd(&["--now", &at(day, 8), "case", "close", r, "--reason", "telefonisch afgehandeld"]);
                        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                    }
                }
                _ => {}
            }
            w.run_once_at(&at(day, 9));
        }
        if cal.is_working_day(day) {
            working += 1;
            // A second pass the same day, as after a restart: nothing new.
            w.run_once_at(&at(day, 16));
        }
        day = day.tomorrow().unwrap();
    }
    let end = day;

    // Per mailbox: exactly these scheduled mails.
    let mut expected: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut add = |who: &str, k: &str, n: usize| {
        *expected
            .entry(who.to_string())
            .or_default()
            .entry(k.to_string())
            .or_insert(0) += n;
    };
    // Handlers: A, B, C one reminder each (Thursday 9 April), A also one
    // for Ans's unanswered reply (Friday 27 March); D answered in time.
    add(&handler_a, "reminder", 1);
    add(&handler_a, "reply_reminder", 1);
    add(&handler_b, "reminder", 1);
    add(&handler_c, "reminder", 1);
    // Supervisors: A (both), B (Anna only: it concerns Dirk), E (both),
    // two levels each; C concerns both supervisors: the fallback only.
    add(&w.anna, "escalation", 6);
    add(&w.dirk, "escalation", 4);
    add(&ext, "escalation", 2);
    // Digests on working days with news or work due: 16 March (new cases),
    // 17–31 March (E in triage: 11 days), 9–14 April (due soon: 4 days),
    // 15–24 April (overdue: 8 days; Koningsdag 27 April is no working
    // day). From 28 April only D is open (a proposal made): nothing to
    // report.
    add(&w.anna, "digest", 24);
    add(&w.dirk, "digest", 24);
    // The monthly analysis on the first working day of April, May and June.
    add(&w.anna, "report", 3);
    add(&w.dirk, "report", 3);
    for who in [&w.anna, &w.bram, &w.carla, &w.dirk, &ext] {
        let got = counts(&scheduled(&w, who));
        let want = expected.get(who.as_str()).cloned().unwrap_or_default();
        assert_eq!(got, want, "scheduled mail for {who}");
    }

    // On the right days.
    let days_of = |who: &str, k: &str, r: &str| -> Vec<Date> {
        scheduled(&w, who)
            .into_iter()
            .filter(|(kk, _, subject)| kk == k && subject.contains(r))
            .map(|(_, day, _)| day)
            .collect()
    };
    assert_eq!(
        days_of(&handler_a, "reminder", &ref_a),
        vec![d("2026-04-09")]
    );
    assert_eq!(
        days_of(&handler_a, "reply_reminder", &ref_a),
        vec![d("2026-03-27")]
    );
    for (who, r) in [
        (&w.anna, &ref_a),
        (&w.dirk, &ref_a),
        (&w.anna, &ref_b),
        (&ext, &ref_c),
    ] {
        assert_eq!(
            days_of(who, "escalation", r),
            vec![d("2026-04-15"), d("2026-04-22")],
            "{who} {r}"
        );
    }
    for who in [&w.anna, &w.dirk] {
        assert_eq!(
            days_of(who, "escalation", &ref_e),
            vec![d("2026-03-24"), d("2026-03-31")],
            "{who}"
        );
        for (_, day, _) in scheduled(&w, who) {
            assert!(cal.is_working_day(day), "{who} got scheduled mail on {day}");
            assert!(day < end);
        }
    }

    // Art. 9: a supervisor never receives a case that concerns them, in
    // any mail (escalation, digest line or otherwise).
    let mentions = |who: &str, r: &str| {
        w.all_mails(who)
            .iter()
            .filter(|m| {
                let p = parsed(m);
                p.subject.contains(r) || p.text.contains(r)
            })
            .count()
    };
    assert_eq!(mentions(&w.dirk, &ref_b), 0, "B concerns Dirk");
    assert_eq!(mentions(&w.dirk, &ref_c), 0, "C concerns Dirk");
    assert_eq!(mentions(&w.anna, &ref_c), 0, "C concerns Anna");
    assert_eq!(mentions(&w.bram, &ref_a), 0, "A concerns Bram");
    // But the others' digests do list them.
    assert!(mentions(&w.anna, &ref_b) > 0);
    assert!(mentions(&w.dirk, &ref_a) > 0);

    // The timeline shows what was sent, and nothing twice.
    let shown = w.case(&ref_a);
    let kinds: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "late_response").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "reminder").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "reply_reminder").count(),
        1,
        "{kinds:?}"
    );
}

/// Two daemons on one PostgreSQL database doing the same scheduled work at
/// the same moment: every escalation and digest still goes out once.
#[test]
fn two_daemons_on_one_postgresql_send_each_escalation_and_digest_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(db::TestDb::postgres());
    let w = World::new();
    let url = std::ffi::OsString::from(&db.url);
    let env = [("KLACHTD__DATABASE__URL", url.as_os_str())];
    let start = d("2026-03-16");
    let clients: Vec<String> = (0..3).map(|i| w.client(&format!("pgs{i}"))).collect();
    for (i, c) in clients.iter().enumerate() {
        w.arrive(start, &format!("Klant {i} <{c}>"), "Klacht over de training",
            "Beste 31Solutions,\n\nDe training van 18 februari 2026 was slecht georganiseerd: de zaal was\nte klein en het materiaal ontbrak. Ik ben zeer ontevreden en dien\nhierbij een klacht in. Ik wil een gedeeltelijke terugbetaling.\n", &[]);
    }
    w.run_once_with(&at(start, 9), &env);
    // Wednesday 15 April: all three are one working day late. Two daemons
    // at once, twice.
    for hour in [9, 14] {
        let now = at(d("2026-04-15"), hour);
        let run = || {
            w.command()
                .envs(env.iter().copied())
                .args(["--now", &now, "run", "--once"])
                .spawn()
                .expect("start klachtd")
        };
        let (mut a, mut b) = (run(), run());
        assert!(a.wait().unwrap().success());
        assert!(b.wait().unwrap().success());
        w.settle();
    }
    for who in [&w.anna, &w.dirk] {
        let got = counts(&scheduled(&w, who));
        let want: BTreeMap<String, usize> =
            [("digest".to_string(), 2), ("escalation".to_string(), 3)].into();
        assert_eq!(got, want, "{who}");
    }
}

/// `run --once --now NOW` with `env`; its exit status is the caller's business.
fn run_at(w: &World, now: &str, env: &[(&str, &str)]) -> bool {
    let out = w
        .command()
        .envs(env.iter().copied())
        .args(["--now", now, "run", "--once"])
        .output()
        .expect("run klachtd");
    w.settle();
    out.status.success()
}

/// (state word in the subject) of every health mail in a mailbox.
fn health_mails(w: &World, who: &str) -> Vec<String> {
    w.all_mails(who)
        .iter()
        .filter(|m| kind(m) == "health")
        .map(|m| parsed(m).subject)
        .collect()
}

#[test]
fn a_mailbox_that_cannot_be_read_for_an_hour_alarms_the_supervisors_once_and_once_more_on_recovery()
{
    let w = World::new();
    let wrong = [("KLACHTD__IMAP__PASSWORD", "wrong-password")];
    let t = |m: i64| {
        "2026-11-23T10:00:00+01:00"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .checked_add(jiff::SignedDuration::from_mins(m))
            .unwrap()
            .to_string()
    };
    for m in [0, 30, 59] {
        assert!(
            !run_at(&w, &t(m), &wrong),
            "intake fails with a wrong password"
        );
    }
    for who in [&w.anna, &w.dirk] {
        assert!(health_mails(&w, who).is_empty(), "not yet an hour");
    }
    for m in [60, 90, 119] {
        assert!(!run_at(&w, &t(m), &wrong));
    }
    for who in [&w.anna, &w.dirk] {
        let got = health_mails(&w, who);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("ALARM") && got[0].contains("niet gelezen"),
            "{got:?}"
        );
        let body = parsed(&w.all_mails(who)[0]).text;
        assert!(body.contains("10:00"), "says since when: {body}");
    }
    assert!(w.all_mails(&w.bram).is_empty(), "handlers are not alarmed");
    // The password is fixed: one recovery mail, then silence.
    for m in [120, 150] {
        assert!(run_at(&w, &t(m), &[]));
    }
    for who in [&w.anna, &w.dirk] {
        let got = health_mails(&w, who);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[1].contains("hersteld"), "{got:?}");
    }
}

#[test]
fn mail_stuck_in_the_outbox_for_half_an_hour_alarms_the_supervisors_and_the_alarm_arrives_when_smtp_is_back(
) {
    let w = World::new();
    let client = w.client("stuck");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "stuck");
    // SMTP is unreachable: the acknowledgement waits in the outbox (a
    // transient failure: retried, and run --once still exits 0).
    let broken = [("KLACHTD__SMTP__PORT", "1")];
    run_at(&w, "2026-11-23T10:00:00+01:00", &broken);
    run_at(&w, "2026-11-23T10:29:00+01:00", &broken);
    run_at(&w, "2026-11-23T10:31:00+01:00", &broken);
    assert!(w.mails(&client).is_empty());
    assert!(health_mails(&w, &w.dirk).is_empty(), "no way out yet");
    // SMTP is back: everything goes out, the alarm too. The recovery
    // follows once a pass sees the outbox empty: this one, when the outbox
    // (which sends beside intake and the scheduler) was done before the
    // scheduler looked, or else the next.
    assert!(run_at(&w, "2026-11-23T11:00:00+01:00", &[]));
    assert_eq!(w.mails(&client).len(), 1, "the acknowledgement");
    let got = health_mails(&w, &w.dirk);
    assert!(
        (1..=2).contains(&got.len()) && got[0].contains("ALARM"),
        "{got:?}"
    );
    assert!(run_at(&w, "2026-11-23T11:01:00+01:00", &[]));
    assert!(run_at(&w, "2026-11-23T11:30:00+01:00", &[]));
    for who in [&w.anna, &w.dirk] {
        let got = health_mails(&w, who);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].contains("ALARM") && got[0].contains("uitgaande mail"),
            "{got:?}"
        );
        assert!(got[1].contains("hersteld"), "{got:?}");
    }
}
