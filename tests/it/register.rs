//! The register (art. 10) and privacy (art. 9) from the command line, on the
//! real mail servers and the real binary: `cases --csv` read back column by
//! column, `cases --overdue`, `case assign`, the monthly analysis mail with
//! its chart, retention, and a client's export and erasure with the audit
//! trail.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::{db, NOW};
use crate::world::{fixture, kind, parsed, unique_id, World};
use mail_parser::MimeHeaders;
use serde_json::Value;

/// `klachtd --now NOW ARGS…`; its stdout, or the test fails with stderr.
fn ok(w: &World, now: &str, args: &[&str]) -> String {
    let mut all = vec!["--now", now];
    all.extend_from_slice(args);
    let out = w.klachtd(&all);
    assert!(
        out.status.success(),
        "klachtd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `klachtd --now NOW ARGS…` that must fail; its stderr.
fn refused(w: &World, now: &str, args: &[&str]) -> String {
    let mut all = vec!["--now", now];
    all.extend_from_slice(args);
    let out = w.klachtd(&all);
    assert!(!out.status.success(), "klachtd {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn register(w: &World, now: &str, args: &[&str]) -> String {
    let mut all = vec!["register"];
    all.extend_from_slice(args);
    let out = ok(w, now, &all);
    out.split_whitespace()
        .last()
        .expect("a reference")
        .to_string()
}

fn json(w: &World, now: &str, args: &[&str]) -> Value {
    serde_json::from_str(&ok(w, now, args)).expect("JSON")
}

/// The newest mail to `address` of `kind_` about `needle`, waiting for it.
fn mail_of(w: &World, address: &str, kind_: &str, needle: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = w
            .all_mails(address)
            .into_iter()
            .rfind(|m| kind(m) == kind_ && parsed(m).subject.contains(needle));
        if let Some(m) = found {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind_} mail about {needle} for {address}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `staff` answers a notification klachtd sent them, text on top and the
/// notification quoted below, threaded onto it.
fn staff_answers(w: &World, staff: &str, notification: &[u8], top: &str) {
    let o = parsed(notification);
    let quoted: String = o.text.lines().map(|l| format!("> {l}\r\n")).collect();
    let raw = format!(
        "From: {staff}\r\nTo: {}\r\nSubject: Re: {}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0100\r\n\
         Message-ID: {}\r\nIn-Reply-To: {}\r\nReferences: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n\r\nOp 2 nov. 2026 schreef klachtd:\r\n{quoted}",
        w.info,
        o.subject,
        unique_id("staff"),
        o.message_id,
        o.message_id,
        top.replace('\n', "\r\n"),
    );
    w.deliver(staff, raw.as_bytes());
}

/// A CSV reader for the register's dialect (RFC 4180: quotes, doubled
/// quotes, CRLF), written here so the test does not trust the writer.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "CSV ends with CRLF");
    rows
}

/// What a CSV cell holds for a JSON value of `cases --json`.
fn as_cell(column: &str, v: &Value) -> String {
    let s = match (column, v) {
        ("extensions", Value::Array(a)) => a.len().to_string(),
        (_, Value::Null) => String::new(),
        (_, Value::String(s)) => s.clone(),
        (_, Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join(";"),
        (_, other) => other.to_string(),
    };
    // Spreadsheets would run a leading = + - @ as a formula.
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s
    }
}

#[test]
fn the_register_reads_back_from_csv_with_outcomes_terms_and_extensions() {
    let w = World::new();
    let jan = w.client("jan");
    let kees = w.client("kees");
    // Received Mon 5 Oct 2026: acknowledged at once, answer due 2 Nov.
    let first = register(
        &w,
        "2026-10-05T10:00:00+02:00",
        &[
            "--name",
            "Jan \"JJ\" de Vries, jr.",
            "--email",
            &jan,
            "--description",
            "Ontevreden over de coaching van Carla,\nvooral over de laatste sessie.",
        ],
    );
    assert_eq!(first, "KL-2026-0001");
    let formula = "=HYPERLINK(\"http://x.test\",\"klik\")";
    let second = register(
        &w,
        "2026-10-12T10:00:00+02:00",
        &[
            "--name",
            formula,
            "--phone",
            "0612345678",
            "--description",
            "Klacht over de facturatie van de training.",
        ],
    );
    let third = register(
        &w,
        "2026-11-02T10:00:00+01:00",
        &[
            "--name",
            "Kees",
            "--email",
            &kees,
            "--description",
            "Ik ben ontevreden over de communicatie.",
        ],
    );
    // The first case: extended by five working days (2 → 9 Nov), a
    // proposal on 9 Nov, the client agrees and it is closed.
    let handler = w.case(&first)["handler_email"]
        .as_str()
        .expect("a handler")
        .to_string();
    let notice = mail_of(&w, &handler, "handler_new", &first);
    for (now, command) in [
        (
            "2026-10-20T10:00:00+02:00",
            "/verleng 5 wacht op het verslag van de coach",
        ),
        (
            "2026-11-09T10:00:00+01:00",
            "/voorstel\nWij bieden u een extra sessie aan.",
        ),
        ("2026-11-10T10:00:00+01:00", "/akkoord"),
        ("2026-11-10T11:00:00+01:00", "/sluit"),
    ] {
        staff_answers(&w, &handler, &notice, command);
        w.run_once_at(now);
    }
    ok(
        &w,
        "2026-10-14T10:00:00+02:00",
        &["case", "close", &second, "--reason", "telefonisch opgelost"],
    );

    let now = "2026-12-01T10:00:00+01:00";
    let cases = json(&w, now, &["cases", "--json"]);
    let cases = cases.as_array().unwrap();
    let by_ref: BTreeMap<&str, &Value> = cases
        .iter()
        .map(|c| (c["reference"].as_str().unwrap(), c))
        .collect();
    let c1 = by_ref[first.as_str()];
    assert_eq!(c1["status"], "closed", "{c1:#}");
    assert_eq!(c1["outcome"], "agreed");
    assert_eq!(c1["ack_on_time"], true);
    assert_eq!(c1["ack_working_days"], 0);
    assert_eq!(c1["original_response_due"], "2026-11-02");
    assert_eq!(c1["response_due"], "2026-11-09");
    assert_eq!(c1["responded_on"], "2026-11-09");
    // 5 Oct → 9 Nov: 25 working days; on time for the extended date, not
    // for the regulation's 20.
    assert_eq!(c1["response_working_days"], 25);
    assert_eq!(c1["response_on_time"], true);
    assert_eq!(c1["response_within_term"], false);
    assert_eq!(
        c1["extensions"][0]["reason"],
        "wacht op het verslag van de coach"
    );
    let c2 = by_ref[second.as_str()];
    assert_eq!(c2["outcome"], "closed");
    assert!(c2["ack_on_time"].is_null(), "acknowledged by phone: {c2:#}");
    assert_eq!(c2["response_on_time"], true);
    let c3 = by_ref[third.as_str()];
    assert_eq!(
        (c3["outcome"].as_str(), c3["overdue"].as_bool()),
        (Some("open"), Some(true))
    );
    assert_eq!(c3["response_on_time"], false);

    // Overdue: only the third, and only once its date (30 Nov) has passed.
    let overdue = json(&w, now, &["cases", "--overdue", "--json"]);
    let refs: Vec<&str> = overdue
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, vec![third.as_str()]);
    let before = json(
        &w,
        "2026-11-30T10:00:00+01:00",
        &["cases", "--overdue", "--json"],
    );
    assert_eq!(before.as_array().unwrap().len(), 0);

    // The CSV holds exactly what the JSON holds, column by column.
    let csv = read_csv(&ok(&w, now, &["cases", "--csv"]));
    let header = &csv[0];
    for column in [
        "reference",
        "outcome",
        "ack_on_time",
        "response_on_time",
        "response_within_term",
        "extensions",
        "extension_reasons",
        "external",
        "closed_at",
    ] {
        assert!(header.iter().any(|h| h == column), "{column} in {header:?}");
    }
    assert_eq!(csv.len(), 1 + cases.len());
    for (row, case) in csv[1..].iter().zip(cases) {
        assert_eq!(row.len(), header.len());
        for (column, cell) in header.iter().zip(row) {
            let want = match column.as_str() {
                "extension_reasons" => case["extensions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["reason"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(";"),
                c => as_cell(c, &case[c]),
            };
            assert_eq!(cell, &want, "{} column {column}", case["reference"]);
        }
    }
    let c1_row = &csv[1];
    let cell = |name: &str| {
        let i = header.iter().position(|h| h == name).unwrap();
        c1_row[i].clone()
    };
    assert_eq!(cell("client_name"), "Jan \"JJ\" de Vries, jr.");
    assert_eq!(cell("extensions"), "1");
    assert_eq!(cell("response_within_term"), "false");
    assert_eq!(
        csv[2][header.iter().position(|h| h == "client_name").unwrap()],
        format!("'{formula}")
    );
}

#[test]
fn an_administrator_reassigns_but_never_to_the_person_concerned() {
    let w = World::new();
    let client = w.client("assign");
    let r = register(
        &w,
        NOW,
        &[
            "--name",
            "Mira",
            "--email",
            &client,
            "--description",
            "Ik ben ontevreden over de training van Carla.",
        ],
    );
    let before = w.case(&r);
    assert_eq!(before["concerns"], serde_json::json!([w.carla]));
    let err = refused(&w, NOW, &["case", "assign", &r, "Carla"]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("art. 6"), "{err}");
    assert_eq!(w.case(&r)["handler_email"], before["handler_email"]);
    let err = refused(&w, NOW, &["case", "assign", &r, "Zoë"]);
    assert!(err.contains("Zoë"), "{err}");

    let old = before["handler_email"].as_str().unwrap();
    let (name, new) = if old == w.bram {
        ("Anna", &w.anna)
    } else {
        ("Bram", &w.bram)
    };
    let out = ok(&w, NOW, &["case", "assign", &r, name]);
    assert!(out.contains(&r), "{out}");
    let after = w.case(&r);
    assert_eq!(after["handler_email"], new.as_str());
    let event = after["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reassigned")
        .expect("a reassigned event");
    assert_eq!(event["new_handler"], new.as_str());
    assert!(event["actor"].as_str().unwrap().starts_with("admin"));
    mail_of(&w, new, "handler_new", &r);
    // The previous handler hears that it moved, and to whom.
    assert!(out.contains("the previous handler is told"), "{out}");
    let new_name = if name == "Anna" {
        "Anna de Vries"
    } else {
        "Bram Bakker"
    };
    let released = parsed(&mail_of(&w, old, "handler_released", &r));
    assert!(
        released
            .subject
            .contains(&format!("Overgedragen aan {new_name}")),
        "{}",
        released.subject
    );
    assert!(
        !released.text.contains("Mira") && !released.text.contains(&client),
        "no client details: {}",
        released.text
    );
    assert_eq!(
        w.mails(&client).len(),
        1,
        "the client was acknowledged once, not again"
    );

    // A triage item given a handler becomes a complaint and is acknowledged.
    let unsure = w.client("unsure");
    w.deliver(
        &unsure,
        &fixture("nl-unsure.eml", &unsure, &w.info, &unique_id("unsure")),
    );
    w.run_once();
    let triage = w
        .cases()
        .into_iter()
        .find(|c| c["status"] == "triage")
        .expect("a triage item");
    let t = triage["reference"].as_str().unwrap();
    ok(&w, NOW, &["case", "assign", t, "Bram"]);
    w.settle();
    let case = w.case(t);
    assert_eq!(case["status"], "acknowledged", "{case:#}");
    assert_eq!(w.mails(&unsure).len(), 1, "acknowledged now");
}

#[test]
fn the_monthly_analysis_reaches_each_supervisor_once_with_its_chart() {
    let w = World::new();
    let a = w.client("m1");
    let b = w.client("m2");
    for (now, who, text) in [
        (
            "2026-10-05T10:00:00+02:00",
            &a,
            "Ontevreden over de coaching.",
        ),
        (
            "2026-10-20T10:00:00+02:00",
            &b,
            "Klacht over de communicatie van Carla.",
        ),
        (
            "2026-10-21T10:00:00+02:00",
            &a,
            "Nog een klacht: de factuur klopt niet.",
        ),
        (
            "2026-09-14T10:00:00+02:00",
            &b,
            "Ontevreden over de training in september.",
        ),
    ] {
        register(
            &w,
            now,
            &["--name", "Client", "--email", who, "--description", text],
        );
    }
    // Monday 2 November, after the morning round's 08:30: October's report.
    w.run_once_at("2026-11-02T09:00:00+01:00");
    w.run_once_at("2026-11-02T15:00:00+01:00");
    w.run_once_at("2026-11-03T09:00:00+01:00");
    for sup in [&w.anna, &w.dirk] {
        let reports: Vec<Vec<u8>> = w
            .all_mails(sup)
            .into_iter()
            .filter(|m| kind(m) == "report")
            .collect();
        assert_eq!(reports.len(), 1, "one report for {sup}");
        let m = parsed(&reports[0]);
        assert_eq!(m.subject, "Klachtenanalyse oktober 2026: 3 klachten");
        assert!(m.text.contains("Klachten: 3"), "{}", m.text);
        assert!(m.text.contains("Herhaalde indieners: 1"), "{}", m.text);
        let mail = mail_parser::MessageParser::default()
            .parse(&reports[0])
            .unwrap();
        let html = mail.body_html(0).expect("an HTML part");
        let image = mail
            .parts
            .iter()
            .find(|p| p.content_type().is_some_and(|c| c.ctype() == "image"))
            .expect("an inline image");
        let cid = image.content_id().expect("a Content-ID");
        assert!(
            html.contains(&format!("cid:{cid}")),
            "the HTML shows the chart"
        );
        let png = resvg::tiny_skia::Pixmap::decode_png(image.contents()).expect("a PNG");
        assert!(
            png.width() >= 600 && png.height() >= 400,
            "{}x{}",
            png.width(),
            png.height()
        );
        // The figures in words for who sees no image: the twelve months up
        // to October, September's complaint and October's three among them.
        let alt = html
            .split("alt=\"")
            .nth(1)
            .and_then(|a| a.split('"').next());
        let alt = alt.expect("an alt text");
        assert!(
            alt.starts_with(
                "Klachten per maand per categorie, 12 maanden t/m oktober 2026: nov 2025 0; "
            ),
            "{alt}"
        );
        assert!(
            alt.contains("; sep 2026 1 (coaching 1); okt 2026 3 ("),
            "{alt}"
        );
    }
    assert!(
        w.all_mails(&w.bram).iter().all(|m| kind(m) != "report"),
        "handlers who are not supervisors get no report"
    );
}

#[test]
fn personal_data_leaves_at_retention_and_on_request_and_the_audit_trail_says_so() {
    let w = World::new();
    let lotte = w.client("lotte");
    let other = w.client("other");
    // Ordinary mail in info@: no retention or erasure ever touches it.
    let theo = w.client("theo");
    let ordinary = w.arrive(
        "2024-02-01".parse().unwrap(),
        &theo,
        "Bedankt",
        "Fijne training, dank jullie wel!\n",
        &[],
    );
    // Mails in info@'s Sent folder whose subject names `reference`.
    let in_sent = |reference: &str| {
        w.stack
            .messages(&w.info, "Sent")
            .iter()
            .filter(|m| parsed(m).subject.contains(reference))
            .count()
    };
    // Mails in info@ (watched folder, complaint folder and Sent) that
    // mention `needle`.
    let in_mailbox = |needle: &str| {
        let needle = needle.to_lowercase();
        ["INBOX", "Klachten", "Sent"]
            .iter()
            .flat_map(|f| w.stack.messages(&w.info, f))
            .filter(|m| String::from_utf8_lossy(m).to_lowercase().contains(&needle))
            .count()
    };
    let words = "zeepkistrace Kwakkelpad";
    let old = register(
        &w,
        "2024-03-04T10:00:00+01:00",
        &[
            "--name",
            "Lotte Lavendel",
            "--email",
            &lotte,
            "--phone",
            "0687654321",
            "--description",
            &format!("Ontevreden over de coaching na de {words}."),
        ],
    );
    ok(
        &w,
        "2024-03-11T10:00:00+01:00",
        &["case", "close", &old, "--reason", "opgelost"],
    );
    let other_old = register(
        &w,
        "2024-05-06T10:00:00+02:00",
        &[
            "--name",
            "Olaf",
            "--email",
            &other,
            "--description",
            "Ontevreden over de training.",
        ],
    );
    ok(
        &w,
        "2024-05-07T10:00:00+02:00",
        &["case", "close", &other_old, "--reason", "opgelost"],
    );
    let recent = register(
        &w,
        "2026-03-02T10:00:00+01:00",
        &[
            "--name",
            "Lotte Lavendel",
            "--email",
            &lotte,
            "--description",
            &format!("Weer ontevreden, weer over de {words}."),
        ],
    );

    // An access request: everything, both cases.
    let export = json(
        &w,
        "2026-03-10T10:00:00+01:00",
        &["client", "export", &lotte],
    );
    let cases = export["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0]["client_phone"], "0687654321");
    assert!(cases[1]["body"].as_str().unwrap().contains(words));
    assert!(export["mail"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["kind"] == "ack" && m["to_client"] == true));

    // Retention (24 months): on 1 April 2026 the case closed on 11 March
    // 2024 goes, from the register and from the mailbox; the one closed on
    // 7 May 2024 and the open one stay.
    assert!(in_sent(&old) > 0 && in_sent(&other_old) > 0);
    w.run_once_at("2026-04-01T10:00:00+02:00");
    assert_eq!(in_sent(&old), 0, "the acknowledgement's copy left Sent");
    assert!(in_sent(&other_old) > 0 && in_sent(&recent) > 0);
    let anonymised = w.case(&old);
    assert_eq!(anonymised["client_name"], "");
    assert!(anonymised["client_email"].is_null() && anonymised["client_phone"].is_null());
    assert_eq!(anonymised["subject"], "");
    assert!(anonymised["anonymised_at"].is_string());
    assert_eq!(
        anonymised["category"], "coaching",
        "the register keeps its facts"
    );
    assert_eq!(anonymised["received_at"], "2024-03-04T09:00:00Z");
    assert_eq!(anonymised["outcome"], "closed");
    assert!(w.case(&other_old)["anonymised_at"].is_null());
    assert_eq!(w.case(&recent)["client_name"], "Lotte Lavendel");
    // The analysis still counts it, and still sees a repeat complainant.
    let r = json(
        &w,
        "2026-04-01T10:00:00+02:00",
        &[
            "report",
            "--from",
            "2024-01-01",
            "--to",
            "2026-12-31",
            "--json",
        ],
    );
    assert_eq!(r["total"], 3);
    assert_eq!(r["repeat_complainants"], 1);
    w.run_once_at("2026-04-02T10:00:00+02:00");
    w.run_once_at("2026-05-08T10:00:00+02:00");
    assert!(w.case(&other_old)["anonymised_at"].is_string());

    // She asks for the regulation on paper: answered, and passed on to the
    // supervisors with her name and address; not a case, but hers.
    w.arrive(
        "2026-05-20".parse().unwrap(),
        &format!("Lotte Lavendel <{lotte}>"),
        "Klachtenreglement",
        "Goedendag,\n\nKunt u mij het klachtenreglement sturen? Graag een papieren exemplaar.\n\n\
         Lotte Lavendel\n",
        &[],
    );
    w.run_once_at("2026-05-20T10:00:00+02:00");
    mail_of(&w, &lotte, "regulation", "");
    mail_of(&w, &w.dirk, "regulation_paper", "");
    mail_of(&w, &w.anna, "regulation_paper", "");
    assert_eq!(
        w.cases().len(),
        3,
        "a request for the regulation is no case"
    );

    // Erasure: refused while a case is open, then done with --include-open.
    let err = refused(
        &w,
        "2026-06-01T10:00:00+02:00",
        &["client", "erase", &lotte],
    );
    assert!(
        err.contains(&recent) && err.contains("--include-open"),
        "{err}"
    );
    assert_eq!(
        w.case(&recent)["client_name"],
        "Lotte Lavendel",
        "nothing erased"
    );
    let out = ok(
        &w,
        "2026-06-01T10:00:00+02:00",
        &["client", "erase", &lotte, "--include-open"],
    );
    assert!(
        out.contains(&recent) && out.contains("; 3 other mail(s) emptied"),
        "{out}"
    );
    // The mailbox holds nothing of her any more (her request for the
    // regulation, the answer, the acknowledgements), and the ordinary mail
    // is still there.
    assert!(
        !out.contains("; 0 message(s) deleted from the mailbox"),
        "{out}"
    );
    assert_eq!(in_mailbox(&lotte), 0);
    assert_eq!(in_sent(&recent), 0);
    assert_eq!(in_mailbox(&ordinary), 1, "ordinary mail left alone");
    let erased = w.case(&recent);
    assert_eq!(
        (erased["status"].as_str(), erased["client_name"].as_str()),
        (Some("closed"), Some(""))
    );
    let export = json(
        &w,
        "2026-06-02T10:00:00+02:00",
        &["client", "export", &lotte],
    );
    assert_eq!(export["cases"].as_array().unwrap().len(), 0);
    // Erasure cuts the link between her cases too.
    let r = json(
        &w,
        "2026-06-02T10:00:00+02:00",
        &[
            "report",
            "--from",
            "2024-01-01",
            "--to",
            "2026-12-31",
            "--json",
        ],
    );
    assert_eq!(
        (r["total"].as_u64(), r["repeat_complainants"].as_u64()),
        (Some(3), Some(0))
    );

    // Nothing of her is left in the database file, not even in free pages,
    // nor in old page images in the write-ahead log.
    let mut bytes = std::fs::read(w.db()).unwrap();
    bytes.extend(std::fs::read(w.db().with_extension("db-wal")).unwrap_or_default());
    let hay = String::from_utf8_lossy(&bytes).to_lowercase();
    for needle in [
        lotte.as_str(),
        "lotte lavendel",
        "zeepkistrace",
        "0687654321",
    ] {
        assert!(
            !hay.contains(&needle.to_lowercase()),
            "{needle} still in the database file"
        );
    }

    let audit = json(&w, "2026-06-02T10:00:00+02:00", &["audit", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "client_export",
            "retention",
            "retention",
            "client_erase",
            "client_export"
        ]
    );
    let text = audit.to_string().to_lowercase();
    assert!(!text.contains(&lotte.to_lowercase()) && !text.contains("lavendel"));
    assert!(text.contains(&old.to_lowercase()) && text.contains(&recent.to_lowercase()));

    // Mail outside cases goes at the end of the retention period too: the
    // supervisors' analysis of March 2026, sent on 1 April 2026, is emptied
    // in June 2028.
    let stored = |needle: &str| {
        let mut bytes = std::fs::read(w.db()).unwrap();
        bytes.extend(std::fs::read(w.db().with_extension("db-wal")).unwrap_or_default());
        String::from_utf8_lossy(&bytes).contains(needle)
    };
    assert!(stored("Klachtenanalyse maart 2026"));
    w.run_once_at("2028-06-01T10:00:00+02:00");
    assert!(!stored("Klachtenanalyse maart 2026"));
    let audit = json(&w, "2028-06-02T10:00:00+02:00", &["audit", "--json"]);
    let last = audit.as_array().unwrap().last().unwrap().clone();
    let detail = last["detail"].as_str().unwrap();
    assert_eq!(last["action"], "retention", "{audit:#}");
    assert!(
        detail.contains("0 case(s) anonymised") && !detail.contains(" 0 other mail(s)"),
        "{detail}"
    );
}

/// The register moves from its SQLite file into PostgreSQL whole: every
/// command answers the same on both, and the daemon goes on there without
/// processing an old mail twice or reusing a reference.
#[test]
fn the_register_moves_to_postgresql_whole_and_goes_on_there() {
    let w = World::new();
    let a = w.client("move-a");
    let b = w.client("move-b");
    let unsure = w.client("move-unsure");
    w.deliver(
        &a,
        &fixture("with-attachment.eml", &a, &w.info, &unique_id("mva")),
    );
    w.deliver(
        &b,
        &fixture("nl-complaint-plain.eml", &b, &w.info, &unique_id("mvb")),
    );
    w.deliver(
        &unsure,
        &fixture("nl-unsure.eml", &unsure, &w.info, &unique_id("mvu")),
    );
    w.run_once();
    let phone = register(
        &w,
        NOW,
        &[
            "--name",
            "Piet Telefoon",
            "--phone",
            "0612345678",
            "--description",
            "Ontevreden over de intake.",
        ],
    );
    ok(&w, NOW, &["case", "close", &phone, "--reason", "opgelost"]);
    ok(&w, "2026-11-24T09:00:00+01:00", &["run", "--once"]);
    let before = w.cases();
    assert_eq!(before.len(), 4, "{before:#?}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = rt.block_on(db::TestDb::postgres());
    let out = ok(&w, NOW, &["transfer", "--to", &pg.url]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["cases", "4", "rows"]),
        "{out}"
    );
    assert!(out.contains("attachments"), "{out}");
    let on_pg = |now: &str, args: &[&str]| -> String {
        let out = w
            .command()
            .env("KLACHTD__DATABASE__URL", &pg.url)
            .args(["--now", now])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "on PostgreSQL, klachtd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = before[0]["reference"].as_str().unwrap().to_string();
    for args in [
        vec!["cases", "--json"],
        vec!["cases", "--csv"],
        vec!["audit", "--json"],
        vec!["case", "show", &first, "--json"],
        vec![
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
            "--json",
        ],
        vec!["client", "export", &a],
    ] {
        assert_eq!(on_pg(NOW, &args), ok(&w, NOW, &args), "{args:?}");
    }

    // Into a database that is not empty: refused, in one line.
    let refused = w
        .command()
        .args(["--now", NOW, "transfer", "--to", &pg.url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.trim().lines().count() == 1 && err.contains("not empty"),
        "{err}"
    );

    // The daemon goes on on PostgreSQL: old mail is not processed again, a
    // new complaint gets the next reference, a new row the next id.
    let c = w.client("move-c");
    w.deliver(
        &c,
        &fixture("nl-complaint-plain.eml", &c, &w.info, &unique_id("mvc")),
    );
    on_pg("2026-11-24T10:00:00+01:00", &["run", "--once"]);
    let after: Vec<Value> = serde_json::from_str(&on_pg(NOW, &["cases", "--json"])).unwrap();
    assert_eq!(after.len(), 5, "exactly one new case");
    let mut refs: Vec<&str> = after
        .iter()
        .map(|c| c["reference"].as_str().unwrap())
        .collect();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), 5, "no reference used twice");
    w.settle();
    assert_eq!(w.mails(&a).len(), 1, "no second acknowledgement");
    assert_eq!(w.mails(&c).len(), 1, "the new complaint is acknowledged");

    // And back, from PostgreSQL into a new SQLite file.
    let back = format!("sqlite://{}", w.dir.path().join("var/back.db").display());
    on_pg(NOW, &["transfer", "--to", &back]);
    let on_back = w
        .command()
        .env("KLACHTD__DATABASE__URL", &back)
        .args(["--now", NOW, "cases", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&on_back.stdout),
        on_pg(NOW, &["cases", "--json"])
    );
}
