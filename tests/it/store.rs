//! The register's guarantees, each test written once and run on SQLite and
//! on PostgreSQL (`sqlite_<name>`, `postgres_<name>`).
//!
//! PostgreSQL: every test gets a fresh database (`klachtd_t_<pid>_<n>_<nanos>`)
//! created through `KLACHTD_TEST_PG_URL` (default
//! postgres://postgres@127.0.0.1:5432/test) and dropped afterwards. When the
//! server cannot be reached the postgres_* tests FAIL (scripts/test starts
//! it); they never skip.
//!
//! Coverage and cost (debug build, measured when written): 17 tests (8 on
//! both backends + 1 SQLite only); they run in ~3 s once built (each
//! PostgreSQL test creates and drops its own database).

use jiff::{SignedDuration, Timestamp};
use klachtd::clock::db_time;
use klachtd::domain::case::Source;
use klachtd::domain::event::{CaseEvent, OutboxKind};
use klachtd::domain::types::{CaseRef, Category, EmailAddress, Lang, Status};
use klachtd::flows::intake::{self, Origin, Outcome};
use klachtd::flows::phone::{register_phone_complaint, PhoneComplaint};
use klachtd::mail::parse;
use klachtd::store::{self, CaseFilter, NewCase, NewOutMail, OutboxRow, Store};
use sqlx::Row;

use crate::support;
use crate::support::config::{self, ANNA, BRAM, CARLA, DIRK};
use crate::support::db::TestDb;

/// One async test body, run once on a temp SQLite file and once on a fresh
/// PostgreSQL database.
macro_rules! on_both_backends {
    ($body:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $sqlite() {
            let db = TestDb::sqlite();
            $body(&db.url).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $postgres() {
            let db = TestDb::postgres().await;
            $body(&db.url).await;
        }
    };
}

on_both_backends!(references_are_sequential_within_a_year_and_restart_each_year:
    sqlite_references_are_sequential_within_a_year_and_restart_each_year,
    postgres_references_are_sequential_within_a_year_and_restart_each_year);
on_both_backends!(a_message_is_claimed_only_once:
    sqlite_a_message_is_claimed_only_once,
    postgres_a_message_is_claimed_only_once);
on_both_backends!(only_one_acknowledgement_can_be_queued_per_case:
    sqlite_only_one_acknowledgement_can_be_queued_per_case,
    postgres_only_one_acknowledgement_can_be_queued_per_case);
on_both_backends!(the_outbox_leases_a_row_to_one_worker:
    sqlite_the_outbox_leases_a_row_to_one_worker,
    postgres_the_outbox_leases_a_row_to_one_worker);
on_both_backends!(a_whole_case_round_trips:
    sqlite_a_whole_case_round_trips,
    postgres_a_whole_case_round_trips);
on_both_backends!(concurrent_claims_from_two_pools_process_a_message_once:
    sqlite_concurrent_claims_from_two_pools_process_a_message_once,
    postgres_concurrent_claims_from_two_pools_process_a_message_once);
on_both_backends!(a_conversation_threads_authenticates_and_updates:
    sqlite_a_conversation_threads_authenticates_and_updates,
    postgres_a_conversation_threads_authenticates_and_updates);
on_both_backends!(scheduled_work_and_alarms_are_claimed_once_across_pools:
    sqlite_scheduled_work_and_alarms_are_claimed_once_across_pools,
    postgres_scheduled_work_and_alarms_are_claimed_once_across_pools);
on_both_backends!(migrations_are_idempotent:
    sqlite_migrations_are_idempotent,
    postgres_migrations_are_idempotent);
on_both_backends!(an_attachment_is_stored_in_parts_and_erased_with_its_case:
    sqlite_an_attachment_is_stored_in_parts_and_erased_with_its_case,
    postgres_an_attachment_is_stored_in_parts_and_erased_with_its_case);
on_both_backends!(open_overdue_and_triage_cases_are_counted_by_the_register:
    case_counts_sqlite, case_counts_postgres);

on_both_backends!(automated_mail_is_recorded_once_and_still_burns_the_tokens_it_references:
    sqlite_automated_mail_is_recorded_once_and_still_burns_the_tokens_it_references,
    postgres_automated_mail_is_recorded_once_and_still_burns_the_tokens_it_references);
on_both_backends!(ordinary_mail_is_recorded_once_and_a_tagged_mail_still_joins_its_case:
    sqlite_ordinary_mail_is_recorded_once_and_a_tagged_mail_still_joins_its_case,
    postgres_ordinary_mail_is_recorded_once_and_a_tagged_mail_still_joins_its_case);
on_both_backends!(settled_mail_is_recorded_in_one_go_as_each_would_be_alone:
    sqlite_settled_mail_is_recorded_in_one_go_as_each_would_be_alone,
    postgres_settled_mail_is_recorded_in_one_go_as_each_would_be_alone);
on_both_backends!(a_bad_stored_value_is_an_error_naming_case_and_column:
    sqlite_a_bad_stored_value_is_an_error_naming_case_and_column,
    postgres_a_bad_stored_value_is_an_error_naming_case_and_column);

/// Automated mail is recorded in one statement
/// (`flows::intake::process_in`); one that references a staff mail burns
/// the staff mail's token as well.
async fn automated_mail_is_recorded_once_and_still_burns_the_tokens_it_references(url: &str) {
    let app = config::app_at(url, "", support::now()).await;
    let now = app.clock.now();
    let token = "<token-1@31solutions.test>";
    assert!(enqueue(&app.store, None, "handler_new", token, now).await);
    let out_of_office = |id: &str, refs: &str| {
        let raw = format!(
            "From: Afwezig <ooo@client.test>\r\nTo: info@31solutions.test\r\n\
             Subject: Automatisch antwoord: afwezig\r\nAuto-Submitted: auto-replied\r\n\
             Message-ID: {id}\r\n{refs}Date: Mon, 23 Nov 2026 09:30:00 +0100\r\n\r\n\
             Ik ben afwezig tot maandag.\r\n"
        );
        parse::parse(raw.as_bytes(), 1024 * 1024)
    };
    let outcome_of = |id: &'static str| {
        let pool = app.store.pool().clone();
        async move {
            let rows = sqlx::query("SELECT outcome FROM inbound WHERE message_id = $1")
                .bind(id)
                .fetch_all(&pool)
                .await
                .unwrap();
            rows.iter()
                .map(|r| r.try_get::<String, _>(0).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let burned = || {
        let pool = app.store.pool().clone();
        async move {
            sqlx::query("SELECT COUNT(*) FROM outbox WHERE burned_at IS NOT NULL")
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap()
        }
    };

    // References nothing: recorded as automated, once.
    let plain = out_of_office("<ooo-1@client.test>", "");
    let first = intake::process_message(&app, inbox(1), None, &plain)
        .await
        .unwrap();
    assert!(matches!(first, Outcome::Automated(_)), "{first:?}");
    let again = intake::process_message(&app, inbox(1), None, &plain)
        .await
        .unwrap();
    assert!(matches!(again, Outcome::Duplicate), "{again:?}");
    assert_eq!(outcome_of("<ooo-1@client.test>").await, [first.label()]);
    assert_eq!(burned().await, 0);

    // Answers the staff mail: automated all the same, and its token burns.
    let replying = out_of_office("<ooo-2@client.test>", &format!("In-Reply-To: {token}\r\n"));
    let o = intake::process_message(&app, inbox(2), None, &replying)
        .await
        .unwrap();
    assert!(matches!(o, Outcome::Automated(_)), "{o:?}");
    assert_eq!(outcome_of("<ooo-2@client.test>").await, [o.label()]);
    assert_eq!(burned().await, 1, "the staff mail's token burned");
    app.store.close().await;
}

/// Ordinary mail from outside that references nothing is decided before
/// the register is asked and recorded in one statement
/// (`flows::intake::decide_early`); the same words with the case's tag in
/// the subject, from its client, still go to the case, and a complaint
/// that references nothing still opens one.
async fn ordinary_mail_is_recorded_once_and_a_tagged_mail_still_joins_its_case(url: &str) {
    let app = config::app_at(url, "", support::now()).await;
    let mail = |id: &str, subject: &str, text: &str| {
        let raw = format!(
            "From: Klant <klant@client.test>\r\nTo: info@31solutions.test\r\n\
             Subject: {subject}\r\nMessage-ID: {id}\r\n\
             Date: Mon, 23 Nov 2026 09:30:00 +0100\r\n\r\n{text}\r\n"
        );
        parse::parse(raw.as_bytes(), 1024 * 1024)
    };
    let recorded = |id: &'static str| {
        let pool = app.store.pool().clone();
        async move {
            sqlx::query("SELECT outcome, case_id FROM inbound WHERE message_id = $1")
                .bind(id)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    let case: Option<i64> = r.try_get(1).unwrap();
                    (r.try_get::<String, _>(0).unwrap(), case.is_some())
                })
                .collect::<Vec<_>>()
        }
    };
    let thanks = "Dank voor de fijne training gisteren, tot de volgende keer.";

    let ordinary = mail("<thanks-1@client.test>", "Bedankt", thanks);
    let o = intake::process_message(&app, inbox(1), None, &ordinary)
        .await
        .unwrap();
    assert_eq!(o, Outcome::NotComplaint);
    let again = intake::process_message(&app, inbox(1), None, &ordinary)
        .await
        .unwrap();
    assert_eq!(again, Outcome::Duplicate);
    assert_eq!(
        recorded("<thanks-1@client.test>").await,
        [("not_complaint".to_string(), false)]
    );

    let complaint = mail(
        "<complaint-1@client.test>",
        "Klacht over de training",
        "Hierbij dien ik een klacht in over de training van 3 november. De trainer \
         kwam een uur te laat en heeft de helft van het programma overgeslagen. Ik \
         wil graag dat u het cursusgeld terugbetaalt.",
    );
    let opened = intake::process_message(&app, inbox(2), None, &complaint)
        .await
        .unwrap();
    let Outcome::Case { reference, .. } = opened else {
        panic!("a complaint that references nothing opens a case: {opened:?}");
    };
    let tagged = mail(
        "<thanks-2@client.test>",
        &format!("[{reference}] Bedankt"),
        thanks,
    );
    let o = intake::process_message(&app, inbox(3), None, &tagged)
        .await
        .unwrap();
    assert_eq!(o, Outcome::Reply { reference });
    assert_eq!(
        recorded("<thanks-2@client.test>").await,
        [("reply".to_string(), true)]
    );
    app.store.close().await;
}

/// Intake records a batch's settled mail (ordinary, automated) in a few
/// statements (`flows::intake::record_settled`), with the outcomes one
/// claim each would give: new mail claimed, mail seen before a
/// duplicate, mail that failed before claimed afresh, and a Message-ID
/// met twice in the batch claimed once; the staff tokens a claimed mail
/// shows outside the staff burn, a duplicate's do not (again).
async fn settled_mail_is_recorded_in_one_go_as_each_would_be_alone(url: &str) {
    let app = config::app_at(url, "", support::now()).await;
    let now = app.clock.now();
    for token in ["<token-1@31solutions.test>", "<token-2@31solutions.test>"] {
        assert!(enqueue(&app.store, None, "handler_new", token, now).await);
    }
    let mut tx = app.store.begin().await.unwrap();
    for (id, outcome) in [("<failed@x.test>", "failed"), ("<known@x.test>", "reply")] {
        assert!(
            store::claim_inbound(&mut tx, id, "INBOX", 1, 1, outcome, now)
                .await
                .unwrap()
        );
    }
    tx.commit().await.unwrap();

    // More than one statement's worth of rows.
    let settled = |uid: u32, id: &str, outcome: Outcome, burn: &[&str]| intake::Settled {
        uid,
        message_id: id.to_string(),
        outcome,
        burn: burn.iter().map(|t| t.to_string()).collect(),
    };
    let mut mails: Vec<intake::Settled> = (0..450u32)
        .map(|i| {
            let id = format!("<new-{i}@x.test>");
            match i % 3 {
                0 => settled(10 + i, &id, Outcome::Automated("bulk"), &[]),
                _ => settled(10 + i, &id, Outcome::NotComplaint, &[]),
            }
        })
        .collect();
    let ooo = Outcome::Automated("auto_reply");
    mails[1] = settled(
        11,
        "<new-1@x.test>",
        ooo.clone(),
        &["<token-1@31solutions.test>"],
    );
    mails.push(settled(500, "<failed@x.test>", Outcome::NotComplaint, &[]));
    mails.push(settled(
        501,
        "<known@x.test>",
        ooo,
        &["<token-2@31solutions.test>"],
    ));
    mails.push(settled(502, "<new-5@x.test>", Outcome::NotComplaint, &[]));
    let expected: Vec<(u32, String, Outcome)> = mails
        .iter()
        .map(|m| {
            let o = if m.uid >= 501 {
                Outcome::Duplicate
            } else {
                m.outcome.clone()
            };
            (m.uid, m.message_id.clone(), o)
        })
        .collect();
    let mut tx = app.store.begin().await.unwrap();
    let got = intake::record_settled(&app, &mut tx, "INBOX", 7, mails)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(got, expected);

    let rows = sqlx::query("SELECT message_id, uidvalidity, uid, outcome FROM inbound")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    let row = |id: &str| {
        rows.iter()
            .find(|r| r.try_get::<String, _>(0).unwrap() == id)
            .map(|r| {
                (
                    r.try_get::<i64, _>(1).unwrap(),
                    r.try_get::<i64, _>(2).unwrap(),
                    r.try_get::<String, _>(3).unwrap(),
                )
            })
    };
    assert_eq!(rows.len(), 452);
    for (id, validity, uid, outcome) in [
        ("<new-0@x.test>", 7, 10, "automated:bulk"),
        ("<new-5@x.test>", 7, 15, "not_complaint"),
        ("<new-449@x.test>", 7, 459, "not_complaint"),
        ("<failed@x.test>", 7, 500, "not_complaint"),
        ("<known@x.test>", 1, 1, "reply"),
        ("<new-1@x.test>", 7, 11, "automated:auto_reply"),
    ] {
        assert_eq!(row(id), Some((validity, uid, outcome.to_string())), "{id}");
    }
    let burned: Vec<String> =
        sqlx::query("SELECT message_id FROM outbox WHERE burned_at IS NOT NULL")
            .fetch_all(app.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
    assert_eq!(burned, ["<token-1@31solutions.test>"]);
    app.store.close().await;
}

// ------------------------------------------------------------------ helpers

/// Where the tests' messages are found: INBOX, UIDVALIDITY 1.
fn inbox(uid: u32) -> Origin<'static> {
    Origin {
        folder: "INBOX",
        uidvalidity: 1,
        uid,
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("address")
}

fn plus_minutes(ts: Timestamp, m: i64) -> Timestamp {
    ts.checked_add(SignedDuration::from_mins(m)).expect("time")
}

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|e| panic!("Store::open({url}): {e:#}"))
}

/// Records a bare case straight through the store (no pipeline) and
/// returns its id.
async fn insert_bare_case(store: &Store, year: i32, status: Status) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let reference = store::next_reference(&mut tx, year).await.unwrap();
    let received = t("2026-11-23T09:00:00Z");
    let id = store::insert_case(
        &mut tx,
        reference,
        &NewCase {
            status,
            category: Category::Overig,
            language: Lang::Nl,
            source: Source::Email,
            client_name: "Klant",
            client_email: Some("klant@client.test"),
            client_phone: None,
            subject: "Klacht",
            body: "Ik ben ontevreden.",
            nature: None,
            dates: None,
            desired_outcome: None,
            missing: &[],
            concerns: &[],
            handler_email: Some(ANNA),
            received_at: received,
            ack_due: "2026-11-30".parse().unwrap(),
            response_due: "2026-12-21".parse().unwrap(),
            triage_reason: None,
            created_at: received,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn enqueue(
    store: &Store,
    case_id: Option<i64>,
    kind: &str,
    message_id: &str,
    now: Timestamp,
) -> bool {
    let mut tx = store.begin().await.unwrap();
    let ok = store::enqueue(
        &mut tx,
        &NewOutMail {
            message_id,
            case_id,
            kind: kind.parse().expect("an outbox kind"),
            recipient: "klant@client.test",
            raw: b"Subject: x\r\n\r\nx\r\n",
        },
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    ok
}

async fn claim(store: &Store, message_id: &str, uid: u32) -> bool {
    let mut tx = store.begin().await.unwrap();
    let ok = store::claim_inbound(
        &mut tx,
        message_id,
        "INBOX",
        7,
        uid,
        "pending",
        support::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    ok
}

async fn checkpoint(store: &Store, folder: &str, uidvalidity: u32, uid: u32) {
    let mut tx = store.begin().await.unwrap();
    store::set_mailbox_state(&mut tx, folder, uidvalidity, uid)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn find(rows: &[OutboxRow], id: i64) -> Option<&OutboxRow> {
    rows.iter().find(|r| r.id == id)
}

async fn outbox_status(store: &Store, id: i64) -> (String, i64, Option<String>) {
    let r = sqlx::query("SELECT status, attempts, last_error FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    (
        r.try_get::<String, _>(0).unwrap(),
        r.try_get::<i64, _>(1).unwrap(),
        r.try_get::<Option<String>, _>(2).unwrap(),
    )
}

// -------------------------------------------------------------------- tests

async fn references_are_sequential_within_a_year_and_restart_each_year(url: &str) {
    let store = open(url).await;
    let mut tx = store.begin().await.unwrap();
    let a = store::next_reference(&mut tx, 2026).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let b = store::next_reference(&mut tx, 2026).await.unwrap();
    let c = store::next_reference(&mut tx, 2027).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(a.to_string(), "KL-2026-0001");
    assert_eq!(b.to_string(), "KL-2026-0002");
    assert_eq!(c.to_string(), "KL-2027-0001");

    // A number taken in a transaction that rolls back is not used up: the
    // register has no gaps.
    let mut tx = store.begin().await.unwrap();
    let lost = store::next_reference(&mut tx, 2026).await.unwrap();
    assert_eq!(lost.to_string(), "KL-2026-0003");
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let d = store::next_reference(&mut tx, 2026).await.unwrap();
    let e = store::next_reference(&mut tx, 2027).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(d.to_string(), "KL-2026-0003");
    assert_eq!(e.to_string(), "KL-2027-0002");
    assert_eq!(d, CaseRef { year: 2026, seq: 3 });
    store.close().await;
}

async fn a_message_is_claimed_only_once(url: &str) {
    let store = open(url).await;
    assert!(claim(&store, "<a@client.test>", 10).await, "first claim");
    assert!(
        !claim(&store, "<a@client.test>", 11).await,
        "second claim of the same Message-ID (other UID) must fail"
    );
    // A claim in a transaction that rolls back (a crash mid-message) does
    // not count: the message is processed on the next pass.
    let mut tx = store.begin().await.unwrap();
    assert!(store::claim_inbound(
        &mut tx,
        "<b@client.test>",
        "INBOX",
        7,
        12,
        "pending",
        support::now()
    )
    .await
    .unwrap());
    tx.rollback().await.unwrap();
    assert!(
        claim(&store, "<b@client.test>", 12).await,
        "claim after rollback"
    );
    // A message whose handling failed is claimed afresh, once, and then
    // holds like any other.
    let mut tx = store.begin().await.unwrap();
    let failed = store::claim_inbound(
        &mut tx,
        "<f@client.test>",
        "INBOX",
        7,
        13,
        "failed",
        support::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(failed, "first claim, recorded as failed");
    assert!(
        claim(&store, "<f@client.test>", 14).await,
        "a failed message is claimed again"
    );
    assert!(
        !claim(&store, "<f@client.test>", 14).await,
        "once claimed again it holds"
    );
    let (uid, outcome): (i64, String) =
        sqlx::query_as("SELECT uid, outcome FROM inbound WHERE message_id = '<f@client.test>'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!((uid, outcome.as_str()), (14, "pending"));
    let known = store
        .known_inbound(&[
            "<a@client.test>".into(),
            "<b@client.test>".into(),
            "<c@client.test>".into(),
        ])
        .await
        .unwrap();
    assert_eq!(known.len(), 2);
    assert!(known.contains("<a@client.test>") && known.contains("<b@client.test>"));

    // The checkpoint only moves forward within one UIDVALIDITY...
    assert_eq!(store.mailbox_state("INBOX").await.unwrap(), None);
    checkpoint(&store, "INBOX", 7, 10).await;
    assert_eq!(store.mailbox_state("INBOX").await.unwrap(), Some((7, 10)));
    checkpoint(&store, "INBOX", 7, 5).await;
    assert_eq!(
        store.mailbox_state("INBOX").await.unwrap(),
        Some((7, 10)),
        "a lower UID must not move the checkpoint back"
    );
    checkpoint(&store, "INBOX", 7, 12).await;
    assert_eq!(store.mailbox_state("INBOX").await.unwrap(), Some((7, 12)));
    // ...and a new UIDVALIDITY replaces it, even with a lower UID.
    checkpoint(&store, "INBOX", 8, 3).await;
    assert_eq!(store.mailbox_state("INBOX").await.unwrap(), Some((8, 3)));
    checkpoint(&store, "INBOX", 8, 2).await;
    assert_eq!(store.mailbox_state("INBOX").await.unwrap(), Some((8, 3)));
    // Folders are independent.
    assert_eq!(store.mailbox_state("Klachten").await.unwrap(), None);
    checkpoint(&store, "Klachten", 1, 99).await;
    assert_eq!(
        store.mailbox_state("Klachten").await.unwrap(),
        Some((1, 99))
    );
    assert_eq!(store.mailbox_state("INBOX").await.unwrap(), Some((8, 3)));
    // UIDs and UIDVALIDITYs above i32::MAX survive the round trip.
    checkpoint(&store, "Big", u32::MAX, u32::MAX - 1).await;
    assert_eq!(
        store.mailbox_state("Big").await.unwrap(),
        Some((u32::MAX, u32::MAX - 1))
    );
    store.close().await;
}

async fn only_one_acknowledgement_can_be_queued_per_case(url: &str) {
    let store = open(url).await;
    let now = support::now();
    let case = insert_bare_case(&store, 2026, Status::Received).await;
    let other = insert_bare_case(&store, 2026, Status::Received).await;

    assert!(
        enqueue(
            &store,
            Some(case),
            "ack",
            "<ack1@klachtd.31solutions.test>",
            now
        )
        .await
    );
    assert!(
        !enqueue(
            &store,
            Some(case),
            "ack",
            "<ack2@klachtd.31solutions.test>",
            now
        )
        .await,
        "a second acknowledgement for one case must be refused"
    );
    assert!(
        enqueue(
            &store,
            Some(case),
            "handler_new",
            "<h1@klachtd.31solutions.test>",
            now
        )
        .await,
        "other kinds for the same case still go in"
    );
    assert!(
        !enqueue(
            &store,
            Some(case),
            "handler_new",
            "<h1@klachtd.31solutions.test>",
            now
        )
        .await,
        "the same Message-ID twice must be refused"
    );
    assert!(
        enqueue(
            &store,
            Some(other),
            "ack",
            "<ack3@klachtd.31solutions.test>",
            now
        )
        .await,
        "another case gets its own acknowledgement"
    );
    // Within one transaction the second ack is refused too, and the
    // transaction stays usable (ON CONFLICT, not an error).
    let third = insert_bare_case(&store, 2026, Status::Received).await;
    let mut tx = store.begin().await.unwrap();
    for (i, expect) in [(4, true), (5, false)] {
        let id = format!("<ack{i}@klachtd.31solutions.test>");
        let ok = store::enqueue(
            &mut tx,
            &NewOutMail {
                message_id: &id,
                case_id: Some(third),
                kind: OutboxKind::Ack,
                recipient: "klant@client.test",
                raw: b"x",
            },
            now,
        )
        .await
        .unwrap();
        assert_eq!(ok, expect, "{id}");
    }
    tx.commit().await.unwrap();

    let acks: Vec<(i64, String)> =
        sqlx::query("SELECT case_id, message_id FROM outbox WHERE kind = 'ack' ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .collect();
    assert_eq!(
        acks,
        vec![
            (case, "<ack1@klachtd.31solutions.test>".to_string()),
            (other, "<ack3@klachtd.31solutions.test>".to_string()),
            (third, "<ack4@klachtd.31solutions.test>".to_string()),
        ]
    );
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM outbox")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(total, 4);
    store.close().await;
}

async fn the_outbox_leases_a_row_to_one_worker(url: &str) {
    let store = open(url).await;
    let now = t("2026-11-23T09:00:00Z");
    let case = insert_bare_case(&store, 2026, Status::Received).await;
    let busy = insert_bare_case(&store, 2026, Status::InProgress).await;
    assert!(enqueue(&store, Some(case), "ack", "<ack@k.test>", now).await);
    assert!(enqueue(&store, Some(case), "handler_new", "<hn@k.test>", now).await);
    assert!(enqueue(&store, Some(busy), "ack", "<ack-busy@k.test>", now).await);
    assert!(enqueue(&store, None, "digest", "<digest@k.test>", now).await);

    // due_outbox respects next_attempt_at (= now when queued).
    assert!(store
        .due_outbox(plus_minutes(now, -1), 10)
        .await
        .unwrap()
        .is_empty());
    let due = store.due_outbox(now, 10).await.unwrap();
    assert_eq!(due.len(), 4);
    assert!(due.windows(2).all(|w| w[0].id < w[1].id), "ordered by id");
    assert_eq!(store.due_outbox(now, 2).await.unwrap().len(), 2, "limit");
    let ack = due
        .iter()
        .find(|r| r.message_id == "<ack@k.test>")
        .unwrap()
        .clone();
    let hn = due
        .iter()
        .find(|r| r.message_id == "<hn@k.test>")
        .unwrap()
        .clone();
    let ack_busy = due
        .iter()
        .find(|r| r.kind == OutboxKind::Ack && r.case_id == Some(busy))
        .unwrap()
        .clone();
    let digest = due.iter().find(|r| r.case_id.is_none()).unwrap().clone();
    assert_eq!((ack.status.as_str(), ack.attempts), ("pending", 0));
    assert_eq!(ack.raw, b"Subject: x\r\n\r\nx\r\n");
    assert_eq!(ack.recipient, "klant@client.test");

    // One worker gets the lease; a second does not while it lasts.
    assert!(store
        .lease_outbox(ack.id, now, plus_minutes(now, 5))
        .await
        .unwrap());
    assert!(!store
        .lease_outbox(ack.id, plus_minutes(now, 1), plus_minutes(now, 6))
        .await
        .unwrap());
    let due = store.due_outbox(plus_minutes(now, 1), 10).await.unwrap();
    assert!(find(&due, ack.id).is_none(), "a leased row is not due");
    assert!(find(&due, hn.id).is_some());
    assert_eq!(
        outbox_status(&store, ack.id).await,
        ("sending".into(), 1, None)
    );
    // After the lease expires (a crashed worker) the row is due and can be
    // leased again.
    let later = plus_minutes(now, 6);
    let due = store.due_outbox(later, 10).await.unwrap();
    let ack = find(&due, ack.id).expect("expired lease is due").clone();
    assert_eq!(ack.status.as_str(), "sending");
    assert!(store
        .lease_outbox(ack.id, later, plus_minutes(later, 5))
        .await
        .unwrap());
    assert_eq!(outbox_status(&store, ack.id).await.1, 2, "attempts counted");

    // mark_sent: the row is done, the case acknowledged (received → acknowledged).
    store.mark_sent(&ack, later).await.unwrap();
    assert_eq!(outbox_status(&store, ack.id).await.0, "sent");
    let c = store.case_by_id(case).await.unwrap().unwrap();
    assert_eq!(c.status, Status::Acknowledged);
    assert_eq!(c.ack_sent_at.map(db_time), Some(db_time(later)));
    assert!(
        !store
            .lease_outbox(ack.id, plus_minutes(later, 60), plus_minutes(later, 65))
            .await
            .unwrap(),
        "a sent row is never leased again"
    );
    assert!(find(
        &store.due_outbox(plus_minutes(later, 60), 10).await.unwrap(),
        ack.id
    )
    .is_none());
    // Marking it sent again keeps the first ack_sent_at.
    store
        .mark_sent(&ack, plus_minutes(later, 10))
        .await
        .unwrap();
    let c = store.case_by_id(case).await.unwrap().unwrap();
    assert_eq!(c.ack_sent_at.map(db_time), Some(db_time(later)));
    let timeline = store.timeline(case).await.unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.kind.to_string() == "ack_sent" && e.detail == "<ack@k.test>"),
        "{timeline:?}"
    );

    // An ack sent for a case that moved on leaves its status alone.
    assert!(store
        .lease_outbox(ack_busy.id, later, plus_minutes(later, 5))
        .await
        .unwrap());
    store.mark_sent(&ack_busy, later).await.unwrap();
    let b = store.case_by_id(busy).await.unwrap().unwrap();
    assert_eq!(b.status, Status::InProgress);
    assert_eq!(b.ack_sent_at.map(db_time), Some(db_time(later)));

    // A non-ack row does not touch the case.
    let hn_sent_case_before = store.case_by_id(case).await.unwrap().unwrap();
    // mark_retry: back to pending, lease cleared, not due before `next`.
    assert!(store
        .lease_outbox(hn.id, later, plus_minutes(later, 5))
        .await
        .unwrap());
    let next = plus_minutes(later, 30);
    assert!(!store
        .mark_retry(hn.id, plus_minutes(later, 6), "not our lease", next)
        .await
        .unwrap());
    assert!(store
        .mark_retry(hn.id, plus_minutes(later, 5), "421 try again later", next)
        .await
        .unwrap());
    assert_eq!(
        outbox_status(&store, hn.id).await,
        ("pending".into(), 1, Some("421 try again later".into()))
    );
    assert!(find(
        &store.due_outbox(plus_minutes(later, 29), 10).await.unwrap(),
        hn.id
    )
    .is_none());
    let due = store.due_outbox(next, 10).await.unwrap();
    let hn = find(&due, hn.id).expect("due at next_attempt_at").clone();
    assert_eq!(hn.last_error.as_deref(), Some("421 try again later"));
    assert_eq!(hn.attempts, 1);

    // mark_failed: recorded, never due again, shown on the case.
    assert!(store
        .lease_outbox(hn.id, next, plus_minutes(next, 5))
        .await
        .unwrap());
    assert!(!store
        .mark_failed(&hn, plus_minutes(next, 4), "not our lease", next)
        .await
        .unwrap());
    assert!(store
        .mark_failed(&hn, plus_minutes(next, 5), "550 no such user", next)
        .await
        .unwrap());
    assert_eq!(
        outbox_status(&store, hn.id).await,
        ("failed".into(), 2, Some("550 no such user".into()))
    );
    assert!(find(
        &store
            .due_outbox(plus_minutes(next, 100_000), 10)
            .await
            .unwrap(),
        hn.id
    )
    .is_none());
    assert!(!store
        .lease_outbox(
            hn.id,
            plus_minutes(next, 100_000),
            plus_minutes(next, 100_005)
        )
        .await
        .unwrap());
    let timeline = store.timeline(case).await.unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.kind.to_string() == "handler_new_failed" && e.detail == "550 no such user"),
        "{timeline:?}"
    );
    let c = store.case_by_id(case).await.unwrap().unwrap();
    assert_eq!(c.status, hn_sent_case_before.status);
    assert_eq!(c.ack_sent_at, hn_sent_case_before.ack_sent_at);

    // A row without a case can be sent too.
    assert!(store
        .lease_outbox(digest.id, next, plus_minutes(next, 5))
        .await
        .unwrap());
    store.mark_sent(&digest, next).await.unwrap();

    assert_eq!(
        store.outbox_counts().await.unwrap(),
        vec![("failed".to_string(), 1), ("sent".to_string(), 3)]
    );
    store.close().await;
}

async fn a_whole_case_round_trips(url: &str) {
    let app = config::app_at(url, "", support::now()).await;
    let start = support::now();
    let client = EmailAddress::parse("marieke@client.test").unwrap();

    let (r1, s1) = register_phone_complaint(
        &app,
        &PhoneComplaint {
            name: "  Marieke Jansen ".into(),
            email: Some(client.clone()),
            phone: Some("06-12345678".into()),
            description: "Ik ben zeer ontevreden over de coachingsessie met Bram: hij kwam \
                          een uur te laat en was onvoorbereid."
                .into(),
            date: Some("12 november 2026".into()),
            desired_outcome: Some("Ik wil mijn geld terug.".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(r1.to_string(), "KL-2026-0001");
    assert_eq!(s1, Status::Received);

    let (r2, s2) = register_phone_complaint(
        &app,
        &PhoneComplaint {
            name: "Piet Pieters".into(),
            email: None,
            phone: Some("020-1234567".into()),
            description: "Klacht over de factuur: ik ben twee keer gefactureerd en ben daar \
                          ontevreden over."
                .into(),
            date: None,
            desired_outcome: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(r2.to_string(), "KL-2026-0002");
    assert_eq!(s2, Status::Received);

    // A complaint about every handler: whoever handles it, it is none of them.
    let (r3, _s3) = register_phone_complaint(
        &app,
        &PhoneComplaint {
            name: "Kees de Boer".into(),
            email: Some(EmailAddress::parse("kees@client.test").unwrap()),
            phone: None,
            description: "Ik ben ontevreden over Anna, Bram en Carla: niemand belde terug.".into(),
            date: None,
            desired_outcome: None,
        },
    )
    .await
    .unwrap();
    let end = app.clock.now();

    let all = app.store.cases(&CaseFilter::default()).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|c| c.reference.to_string())
            .collect::<Vec<_>>(),
        vec!["KL-2026-0001", "KL-2026-0002", "KL-2026-0003"]
    );

    // Case 1: every field as given.
    let c1 = app.store.case_by_ref(&r1).await.unwrap().expect("case 1");
    assert_eq!(c1.reference.to_string(), "KL-2026-0001");
    assert_eq!(c1.source, Source::Phone);
    assert_eq!(c1.status, Status::Received);
    assert_eq!(c1.client_name, "Marieke Jansen");
    assert_eq!(
        c1.client_email.as_ref().map(EmailAddress::as_str),
        Some("marieke@client.test")
    );
    assert_eq!(c1.client_phone.as_deref(), Some("06-12345678"));
    assert!(
        c1.subject
            .starts_with("Telefonische klacht: Ik ben zeer ontevreden"),
        "{}",
        c1.subject
    );
    assert!(c1.body.contains("een uur te laat"), "{}", c1.body);
    assert!(
        c1.body.contains("Datum / sessie: 12 november 2026"),
        "{}",
        c1.body
    );
    assert!(
        c1.body
            .contains("Gewenste uitkomst: Ik wil mijn geld terug."),
        "{}",
        c1.body
    );
    assert_eq!(c1.language, Lang::Nl);
    let received: Timestamp = c1.received_at;
    assert!(
        received.as_second() >= start.as_second() && received.as_second() <= end.as_second(),
        "received_at {} outside [{start}, {end}]",
        c1.received_at
    );
    assert_eq!(
        c1.ack_due.to_string(),
        "2026-11-30",
        "5 working days after Mon 23 Nov 2026"
    );
    assert_eq!(
        c1.response_due.to_string(),
        "2026-12-21",
        "20 working days after Mon 23 Nov 2026"
    );
    assert_eq!(c1.ack_sent_at, None);
    assert_eq!(c1.triage_reason, None);
    assert_eq!(c1.closed_at, None);
    assert_eq!(c1.concerns, vec![addr(BRAM)], "the description names Bram");
    let h1 = c1
        .handler_email
        .as_ref()
        .map(EmailAddress::to_string)
        .expect("case 1 has a handler");
    assert!(
        !h1.eq_ignore_ascii_case(BRAM),
        "Bram is concerned, cannot handle it"
    );
    assert!([ANNA, CARLA].contains(&h1.as_str()), "{h1}");

    let kinds: Vec<String> = app
        .store
        .timeline(c1.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.to_string())
        .collect();
    for k in [
        "received",
        "classified",
        "concerns",
        "assigned",
        "ack_queued",
        "handler_new_queued",
    ] {
        assert!(
            kinds.iter().any(|x| x == k),
            "timeline of case 1 lacks {k}: {kinds:?}"
        );
    }
    assert_eq!(kinds.first().map(String::as_str), Some("received"));

    // Case 2: no email address → no acknowledgement, handler still told.
    let c2 = app.store.case_by_ref(&r2).await.unwrap().expect("case 2");
    assert_eq!(c2.client_email, None);
    assert_eq!(c2.client_phone.as_deref(), Some("020-1234567"));
    assert!(c2.concerns.is_empty(), "{:?}", c2.concerns);
    assert_eq!(c2.ack_due.to_string(), "2026-11-30");
    assert_eq!(c2.response_due.to_string(), "2026-12-21");
    assert!(c2.handler_email.is_some());
    let kinds2: Vec<String> = app
        .store
        .timeline(c2.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.to_string())
        .collect();
    assert!(!kinds2.iter().any(|k| k == "ack_queued"), "{kinds2:?}");

    // Case 3: handler (if any) is not one of the concerned.
    let c3 = app.store.case_by_ref(&r3).await.unwrap().expect("case 3");
    let mut concerns3: Vec<String> = c3.concerns.iter().map(EmailAddress::to_string).collect();
    concerns3.sort();
    assert_eq!(
        concerns3,
        vec![ANNA.to_string(), BRAM.to_string(), CARLA.to_string()]
    );
    if let Some(h) = &c3.handler_email {
        assert!(
            !c3.concerns.contains(h),
            "handler {h} is concerned: {:?}",
            c3.concerns
        );
        assert_eq!(h.as_str(), DIRK, "only the uninvolved supervisor is left");
    } else {
        assert_eq!(c3.status, Status::Triage);
    }

    // The outbox: what each case queued, to whom.
    let rows: Vec<(i64, String, String)> =
        sqlx::query("SELECT case_id, kind, recipient FROM outbox ORDER BY id")
            .fetch_all(app.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get(0).unwrap(),
                    r.try_get(1).unwrap(),
                    r.try_get(2).unwrap(),
                )
            })
            .collect();
    let of = |id: i64| -> Vec<(String, String)> {
        rows.iter()
            .filter(|r| r.0 == id)
            .map(|r| (r.1.clone(), r.2.clone()))
            .collect()
    };
    assert_eq!(
        of(c1.id),
        vec![
            ("ack".to_string(), "marieke@client.test".to_string()),
            ("handler_new".to_string(), h1.clone())
        ]
    );
    let o2 = of(c2.id);
    assert!(
        !o2.iter().any(|(k, _)| k == "ack"),
        "no email, no ack: {o2:?}"
    );
    assert_eq!(
        o2,
        vec![(
            "handler_new".to_string(),
            c2.handler_email.as_ref().unwrap().to_string()
        )]
    );
    for (kind, to) in of(c3.id) {
        assert!(
            !c3.concerns.contains(&addr(&to)) || kind == "ack",
            "case 3 mail {kind} went to concerned {to}"
        );
    }
    // Nothing ever goes to a concerned staff member about their own case.
    for (case_id, kind, to) in &rows {
        let c = all.iter().find(|c| c.id == *case_id).unwrap();
        assert!(
            !c.concerns.contains(&addr(to)),
            "{} {kind} to concerned {to}",
            c.reference
        );
    }

    // Filters.
    let by_handler = app
        .store
        .cases(&CaseFilter {
            handler: Some(h1.to_uppercase()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_handler.iter().any(|c| c.id == c1.id));
    assert!(by_handler
        .iter()
        .all(|c| c.handler_email == Some(addr(&h1))));
    assert!(app
        .store
        .cases(&CaseFilter {
            year: Some(2027),
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        app.store
            .cases(&CaseFilter {
                status: Some(Status::Received),
                year: Some(2026),
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        all.iter().filter(|c| c.status == Status::Received).count()
    );
    // A closed case: listed in full, left out of the open ones.
    let closed = insert_bare_case(&app.store, 2026, Status::Closed).await;
    let open = app
        .store
        .cases(&CaseFilter {
            open: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(open
        .iter()
        .all(|c| c.id != closed && c.status != Status::Closed));
    assert_eq!(
        open.len(),
        all.iter().filter(|c| c.status != Status::Closed).count()
    );
    assert!(app
        .store
        .cases(&CaseFilter::default())
        .await
        .unwrap()
        .iter()
        .any(|c| c.id == closed));
    app.store.close().await;
}

async fn concurrent_claims_from_two_pools_process_a_message_once(url: &str) {
    let a = open(url).await;
    let b = open(url).await;
    let ids: Vec<String> = (0..50).map(|i| format!("<race-{i}@client.test>")).collect();
    let mut tasks = Vec::new();
    for task in 0..20u32 {
        let store = if task % 2 == 0 { a.clone() } else { b.clone() };
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = 0u32;
            // Every task walks the ids from a different starting point.
            for k in 0..ids.len() {
                let id = &ids[(k + task as usize * 7) % ids.len()];
                let mut tx = store.begin().await.unwrap();
                let ok = store::claim_inbound(
                    &mut tx,
                    id,
                    "INBOX",
                    1,
                    k as u32 + 1,
                    "pending",
                    support::now(),
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
                won += ok as u32;
            }
            won
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    assert_eq!(total, 50, "each of 50 messages claimed exactly once");
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM inbound")
        .fetch_one(a.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(rows, 50);
    a.close().await;
    b.close().await;
}

async fn migrations_are_idempotent(url: &str) {
    if url.starts_with("postgres") {
        // Several daemons starting at once on one fresh database
        // (advisory lock).
        let (x, y) = tokio::join!(Store::open(url), Store::open(url));
        let (x, y) = (x.expect("concurrent open 1"), y.expect("concurrent open 2"));
        x.close().await;
        y.close().await;
    }
    let first = open(url).await;
    assert!(claim(&first, "<kept@client.test>", 1).await);
    let case = insert_bare_case(&first, 2026, Status::Received).await;
    let second = open(url).await;
    second.migrate().await.expect("migrate again");
    let versions: Vec<i64> = sqlx::query("SELECT version FROM klachtd_schema ORDER BY version")
        .fetch_all(second.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5, 6, 7, 8],
        "each migration recorded once"
    );
    assert!(second
        .known_inbound(&["<kept@client.test>".into()])
        .await
        .unwrap()
        .contains("<kept@client.test>"));
    assert!(
        second.case_by_id(case).await.unwrap().is_some(),
        "data survives"
    );
    assert!(!claim(&second, "<kept@client.test>", 2).await);
    first.close().await;
    second.close().await;
}

/// A case is read into typed values once, in the store, and writes back
/// the text it was read from. A value the register should never hold (a
/// hand-edited or damaged row) is an error naming the case and the column,
/// never a panic; an address stays out of the message (personal data).
async fn a_bad_stored_value_is_an_error_naming_case_and_column(url: &str) {
    let store = open(url).await;
    let case = insert_bare_case(&store, 2026, Status::Received).await;
    let text = |col: &'static str| {
        let store = store.clone();
        async move {
            sqlx::query(&format!("SELECT {col} FROM cases WHERE id = $1"))
                .bind(case)
                .fetch_one(store.pool())
                .await
                .unwrap()
                .try_get::<String, _>(0)
                .unwrap()
        }
    };
    let c = store.case_by_id(case).await.unwrap().unwrap();
    assert_eq!(db_time(c.received_at), text("received_at").await);
    assert_eq!(db_time(c.created_at), text("created_at").await);
    assert_eq!(c.ack_due.to_string(), text("ack_due").await);
    assert_eq!(c.reference.to_string(), text("reference").await);
    assert_eq!(c.source.as_str(), text("source").await);
    for (col, bad, shown) in [
        ("ack_due", "2026-13-01", true),
        ("received_at", "gisteren", true),
        ("reference", "KL-26-1", true),
        ("source", "fax", true),
        ("client_email", "klant@@client.test", false),
        ("handler_email", "anna", false),
        ("concerns", "niet-een-adres", false),
    ] {
        let before = text(col).await;
        let sql = format!("UPDATE cases SET {col} = $1 WHERE id = $2");
        let set = |v: String| sqlx::query(&sql).bind(v).bind(case).execute(store.pool());
        set(bad.to_string()).await.unwrap();
        let err = format!("{:#}", store.case_by_id(case).await.expect_err(col));
        assert!(
            err.contains(&format!("case id {case} ")) && err.contains(&format!("column {col}:")),
            "{err}"
        );
        assert_eq!(err.contains(bad), shown, "{err}");
        let listed = store.cases(&CaseFilter::default()).await;
        assert!(listed.is_err(), "the register listing says so too");
        set(before).await.unwrap();
    }
    assert!(store.case_by_id(case).await.unwrap().is_some());
    store.close().await;
}

#[tokio::test]
async fn sqlite_database_files_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/sub/klachtd.db");
    let url = format!("sqlite://{}", path.display());
    let store = open(&url).await;
    assert!(claim(&store, "<x@client.test>", 1).await);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "{}", path.display());
    assert_eq!(mode(path.parent().unwrap()), 0o700, "new folder owner-only");
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            assert_eq!(
                mode(&side) & 0o077,
                0,
                "{} readable by others",
                side.display()
            );
        }
    }
    store.close().await;
    // Re-opening an existing file that someone loosened tightens it again.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = open(&url).await;
    assert_eq!(mode(&path), 0o600);
    store.close().await;
    // The TestDb helper's file too (what the sqlite_* tests use).
    let db = TestDb::sqlite();
    let store = open(&db.url).await;
    assert_eq!(mode(db.sqlite_path().unwrap()), 0o600);
    store.close().await;
}

/// An attachment's data goes into rows of at most 256 KiB (a large value
/// would be copied whole by the driver and the database); its parts read
/// back in order are the data, the metadata says it is stored, and
/// anonymising the case removes the parts too.
async fn an_attachment_is_stored_in_parts_and_erased_with_its_case(url: &str) {
    let store = Store::open(url).await.unwrap();
    let case = insert_bare_case(&store, 2026, Status::Acknowledged).await;
    let data: Vec<u8> = (0..600_001u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut tx = store.begin().await.unwrap();
    let msg = store::insert_case_message(
        &mut tx,
        &store::NewCaseMessage {
            case_id: case,
            message_id: "<big@client.test>",
            sender: "klant@client.test",
            subject: "s",
            at: t("2026-11-23T09:00:00Z"),
            body: "b",
            refs: "",
        },
    )
    .await
    .unwrap()
    .expect("a new message");
    store::insert_attachment(
        &mut tx,
        msg,
        "scan.pdf",
        "application/pdf",
        600_001,
        Some(&data),
    )
    .await
    .unwrap();
    store::insert_attachment(&mut tx, msg, "film.mp4", "video/mp4", 90_000_000, None)
        .await
        .unwrap();
    store::insert_attachment(&mut tx, msg, "leeg.txt", "text/plain", 0, Some(&[]))
        .await
        .unwrap();
    let meta = store::case_attachments(&mut tx, case).await.unwrap();
    assert_eq!(
        meta.iter()
            .map(|a| (a.filename.as_str(), a.stored))
            .collect::<Vec<_>>(),
        vec![("scan.pdf", true), ("film.mp4", false), ("leeg.txt", true)]
    );
    let parts = sqlx::query("SELECT data FROM attachment_parts ORDER BY attachment_id, seq")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        parts.len(),
        4,
        "600,001 bytes in parts of 256 KiB, and one empty part"
    );
    let joined: Vec<u8> = parts
        .iter()
        .flat_map(|r| r.try_get::<Vec<u8>, _>(0).unwrap())
        .collect();
    assert!(joined == data, "the parts in order are the data");
    assert!(
        store::anonymise_case(&mut tx, case, false, t("2026-11-24T09:00:00Z"))
            .await
            .unwrap()
    );
    let left: i64 = sqlx::query("SELECT COUNT(*) FROM attachment_parts")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(left, 0, "anonymising removes the data");
    tx.commit().await.unwrap();
    store.close().await;
}

/// The queries behind staff answers: whose Message-IDs authenticate whom,
/// the client's thread in order, and what a command may change.
async fn a_conversation_threads_authenticates_and_updates(url: &str) {
    let store = Store::open(url).await.unwrap();
    let case = insert_bare_case(&store, 2026, Status::Acknowledged).await;
    let other = insert_bare_case(&store, 2026, Status::Acknowledged).await;
    let t0 = t("2026-11-23T09:00:00Z");
    let at = |m: i64| t0.checked_add(SignedDuration::from_mins(m)).unwrap();
    let mut tx = store.begin().await.unwrap();
    for (id, sender, m) in [
        ("<c1@client.test>", "Klant@Client.test", 0),
        ("<s1@x>", ANNA, 30),
        ("<c2@client.test>", "klant@client.test", 60),
    ] {
        store::insert_case_message(
            &mut tx,
            &store::NewCaseMessage {
                case_id: case,
                message_id: id,
                sender,
                subject: "s",
                at: at(m),
                body: "b",
                refs: "",
            },
        )
        .await
        .unwrap();
    }
    for (id, to, kind, m, c) in [
        ("<ack@k>", "klant@client.test", "ack", 1, case),
        ("<note@k>", ANNA, "handler_new", 2, case),
        ("<other@k>", ANNA, "handler_new", 3, other),
        ("<answer@k>", "KLANT@client.test", "answer", 45, case),
    ] {
        store::enqueue(
            &mut tx,
            &NewOutMail {
                message_id: id,
                case_id: Some(c),
                kind: kind.parse().expect("an outbox kind"),
                recipient: to,
                raw: b"From: x\r\n\r\nx",
            },
            at(m),
        )
        .await
        .unwrap();
    }
    // Oldest first, client mail both ways, case-insensitive, staff excluded.
    assert_eq!(
        store::client_thread(&mut tx, case, "klant@client.test")
            .await
            .unwrap(),
        [
            "<c1@client.test>",
            "<ack@k>",
            "<answer@k>",
            "<c2@client.test>"
        ]
    );
    assert_eq!(
        store::first_message(&mut tx, case)
            .await
            .unwrap()
            .map(|(id, _)| id)
            .as_deref(),
        Some("<c1@client.test>")
    );
    // Authentication: only what was sent to that very address counts.
    let refs = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let found = store::sent_to(
        &mut tx,
        &refs(&["<c1@client.test>", "<note@k>"]),
        &ANNA.to_uppercase(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (found.case_id, found.kind.as_str()),
        (Some(case), "handler_new")
    );
    assert!(store::sent_to(&mut tx, &refs(&["<note@k>"]), BRAM)
        .await
        .unwrap()
        .is_none());
    assert!(
        store::sent_to(&mut tx, &refs(&["<ack@k>", "<c1@client.test>"]), ANNA)
            .await
            .unwrap()
            .is_none()
    );
    let newest = store::sent_to(&mut tx, &refs(&["<note@k>", "<other@k>"]), ANNA)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(newest.case_id, Some(other), "the last reference wins");

    // Updates: only what is given changes; closing and reopening.
    let closed_at = at(120);
    store::update_case(
        &mut tx,
        case,
        &store::CaseUpdate {
            status: Some(Status::Closed),
            response_due: Some("2027-01-06".parse().unwrap()),
            closed_at: Some(Some(closed_at)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let row = store::case_in_tx(&mut tx, case).await.unwrap().unwrap();
    assert_eq!(row.status, Status::Closed);
    assert_eq!(row.response_due.to_string(), "2027-01-06");
    assert_eq!(row.handler_email, Some(addr(ANNA)));
    assert_eq!(row.closed_at.map(db_time), Some(db_time(closed_at)));
    store::update_case(
        &mut tx,
        case,
        &store::CaseUpdate {
            status: Some(Status::InProgress),
            handler_email: Some(CARLA),
            closed_at: Some(None),
            clear_triage: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let row = store::case_in_tx(&mut tx, case).await.unwrap().unwrap();
    assert_eq!(row.status, Status::InProgress);
    assert_eq!(row.handler_email, Some(addr(CARLA)));
    assert_eq!(row.closed_at, None);
    assert_eq!(row.response_due.to_string(), "2027-01-06");
    let untouched = store::case_in_tx(&mut tx, other).await.unwrap().unwrap();
    assert_eq!(untouched.status, Status::Acknowledged);

    // Structured event details come back merged into the event's JSON.
    store::add_event_data(
        &mut tx,
        case,
        at(130),
        CaseEvent::Extended,
        DIRK,
        "d",
        &serde_json::json!({"old_due": "2026-12-21", "at": "not this"}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let timeline = store.timeline(case).await.unwrap();
    let e = timeline.last().unwrap().to_json();
    assert_eq!(e["old_due"], "2026-12-21");
    assert_eq!(e["at"], db_time(at(130)), "the event's own fields win");
}

/// Two pools (two daemons) racing for the same notice keys and the same
/// alarm: each key and each alarm or recovery is won exactly once.
async fn scheduled_work_and_alarms_are_claimed_once_across_pools(url: &str) {
    let a = open(url).await;
    let b = open(url).await;
    let case = insert_bare_case(&a, 2026, Status::Received).await;
    let now = support::now();
    let mut tasks = Vec::new();
    for task in 0..10u32 {
        let store = if task % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for level in 1..=2 {
                let key = store::NoticeKey {
                    key: format!("late_response:{case}:{level}:2026-12-21"),
                    case_id: Some(case),
                    kind: "late_response",
                    level,
                    day: "2026-12-22".into(),
                };
                let mut tx = store.begin().await.unwrap();
                if store::claim_notice(&mut tx, &key, "anna@31solutions.test", now)
                    .await
                    .unwrap()
                {
                    won.push(level);
                }
                tx.commit().await.unwrap();
            }
            let mut tx = store.begin().await.unwrap();
            let raised = store::raise_alarm(&mut tx, "intake", now).await.unwrap();
            tx.commit().await.unwrap();
            (won, raised)
        }));
    }
    let (mut won, mut raised) = (Vec::new(), 0);
    for t in tasks {
        let (w, r) = t.await.expect("task");
        won.extend(w);
        raised += r as u32;
    }
    won.sort();
    assert_eq!(won, vec![1, 2], "each level claimed once");
    assert_eq!(raised, 1, "one alarm");
    let notices = a.notices().await.unwrap();
    assert_eq!(notices.len(), 2);
    assert_eq!(notices[0].recipients, "anna@31solutions.test");
    // A rolled-back claim leaves the key free.
    let key = store::NoticeKey {
        key: "digest:dirk@31solutions.test:2026-11-23".into(),
        case_id: None,
        kind: "digest",
        level: 1,
        day: "2026-11-23".into(),
    };
    let mut tx = a.begin().await.unwrap();
    assert!(
        store::claim_notice(&mut tx, &key, "dirk@31solutions.test", now)
            .await
            .unwrap()
    );
    tx.rollback().await.unwrap();
    let mut tx = b.begin().await.unwrap();
    assert!(
        store::claim_notice(&mut tx, &key, "dirk@31solutions.test", now)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        a.last_digest_at("DIRK@31solutions.test").await.unwrap(),
        Some(t("2026-11-23T09:00:00Z"))
    );
    // Health: a failure keeps its start; success ends it; the alarm is
    // cleared once.
    a.health_failed("intake", t("2026-11-23T10:00:00Z"), "login failed")
        .await
        .unwrap();
    b.health_failed("intake", t("2026-11-23T10:05:00Z"), "login failed again")
        .await
        .unwrap();
    let h = a.health("intake").await.unwrap();
    assert_eq!(h.failing_since, Some(t("2026-11-23T10:00:00Z")));
    assert_eq!(h.last_error.as_deref(), Some("login failed again"));
    assert_eq!(h.alarm_at, Some(now));
    a.health_ok("intake", t("2026-11-23T11:00:00Z"))
        .await
        .unwrap();
    let h = b.health("intake").await.unwrap();
    assert_eq!(
        (h.failing_since, h.ok_at),
        (None, Some(t("2026-11-23T11:00:00Z")))
    );
    let mut tx = a.begin().await.unwrap();
    assert!(store::clear_alarm(&mut tx, "intake").await.unwrap());
    assert!(!store::clear_alarm(&mut tx, "intake").await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(a.unsent().await.unwrap().1, 0);
    a.close().await;
    b.close().await;
}

/// `status`, `/metrics` and systemd's STATUS count cases in one query.
async fn open_overdue_and_triage_cases_are_counted_by_the_register(url: &str) {
    let store = open(url).await;
    let day = |d: &str| d.parse::<jiff::civil::Date>().unwrap();
    assert_eq!(
        store.case_counts(day("2026-12-01")).await.unwrap(),
        store::CaseCounts::default()
    );
    for status in [
        Status::Received,
        Status::Acknowledged,
        Status::Triage,
        Status::Closed,
    ] {
        insert_bare_case(&store, 2026, status).await;
    }
    // Answers are due 2026-12-21: not yet overdue, then overdue; the
    // triage item and the closed case never count as open or overdue.
    let before = store.case_counts(day("2026-12-21")).await.unwrap();
    assert_eq!((before.open, before.overdue, before.triage), (2, 0, 1));
    let after = store.case_counts(day("2026-12-22")).await.unwrap();
    assert_eq!((after.open, after.overdue, after.triage), (2, 2, 1));
    assert!(store.raised_alarms().await.unwrap().is_empty());
    store.close().await;
}
