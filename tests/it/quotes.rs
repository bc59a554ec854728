//! `mail::quote::new_text` on whole mails: what klachtd relays of a staff
//! member's reply is only what they typed.
//!
//! - `tests/fixtures/replies/*.eml` (see its README.md): replies to a klachtd
//!   notification as Outlook, Gmail, Apple Mail, Thunderbird, K-9 and a
//!   webmail write them; each has a sibling `NAME.expected.txt` with the
//!   exact new text, and none may leak the quoted notification.
//! - the mailgun/talon reply corpus (`mailgun-talon/human`, ground truth in
//!   its SOURCE.md): every reply's new text is `Hello`.
//! - every mail under `*/human/` of the shared corpora: `new_text` never
//!   panics and never returns more than it was given.
//!
//! The corpora live outside the crate at `../shared/corpora` (override with
//! `KLACHTD_CORPORA`); without them the corpus tests print
//! `SKIPPED: <test>: ... not found (set KLACHTD_CORPORA)` to stderr and pass.
//! Run with `cargo test --test it quotes:: -- --nocapture` to see the counts.

use std::path::{Path, PathBuf};

use klachtd::mail::parse::{self, InboundMail};
use klachtd::mail::quote::{self, REPLY_ABOVE};

use crate::support::corpora;

/// The attachment cap the daemon uses by default (10 MB).
const CAP: u64 = 10 * 1024 * 1024;

/// Text from the quoted notification that must never reach a client.
const CONFIDENTIAL: &[&str] = &["Bram Bakker", "Deze klacht gaat over", "##-"];

fn read_mail(path: &Path) -> (Vec<u8>, InboundMail) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let m = parse::parse(&bytes, CAP);
    (bytes, m)
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

// ------------------------------------------------------------ own fixtures

fn reply_fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replies");
    corpora::files(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect()
}

fn expected_path(eml: &Path) -> PathBuf {
    let stem = eml.file_stem().unwrap().to_string_lossy();
    eml.with_file_name(format!("{stem}.expected.txt"))
}

#[test]
fn every_reply_fixture_gives_exactly_its_expected_new_text() {
    let fixtures = reply_fixtures();
    assert!(fixtures.len() >= 12, "only {} fixtures", fixtures.len());
    let mut failures = Vec::new();
    for eml in &fixtures {
        let (_, m) = read_mail(eml);
        let expected_file = expected_path(eml);
        let expected = std::fs::read_to_string(&expected_file)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_file.display()));
        let expected = expected.strip_suffix('\n').unwrap_or(&expected);
        let got = quote::new_text(&m.text);
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n--- got\n{got}\n---",
                name(eml)
            ));
        }
        for secret in CONFIDENTIAL {
            assert!(
                !got.contains(secret),
                "{}: new text leaks {secret:?}:\n{got}",
                name(eml)
            );
        }
        assert!(!got.is_empty() || expected.is_empty(), "{}", name(eml));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "reply fixtures: {}/{} exact",
        fixtures.len(),
        fixtures.len()
    );
}

/// The fixtures test what they claim: each decodes to a body that holds the
/// confidential notification text (and, unless the writer trimmed it away,
/// the marker), and has the headers of a real reply to it.
#[test]
fn reply_fixtures_quote_a_klachtd_notification_and_are_well_formed() {
    // The writer of this interleaved reply deleted the marker line from the
    // quote (see the README): its answers are not below a marker.
    const WITHOUT_MARKER: &[&str] = &["interleaved-nl.eml"];
    for eml in reply_fixtures() {
        let n = name(&eml);
        let (bytes, m) = read_mail(&eml);
        assert!(!m.unparseable, "{n}");
        assert!(
            m.text.contains("Deze klacht gaat over: Bram Bakker"),
            "{n}: {:?}",
            m.text
        );
        assert_eq!(
            m.text.contains(REPLY_ABOVE),
            !WITHOUT_MARKER.contains(&n.as_str()),
            "{n}: marker"
        );
        for h in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "in-reply-to",
            "references",
        ] {
            assert!(m.header(h).is_some(), "{n}: no {h} header");
        }
        assert_eq!(
            m.in_reply_to,
            vec!["<k-2026-0042.handler.7f3a9c@klachtd.31solutions.test>"],
            "{n}"
        );
        assert!(m.date.is_some(), "{n}: date");
        assert_eq!(
            m.from.as_ref().unwrap().as_str(),
            "anna@31solutions.test",
            "{n}"
        );
        assert!(m.header("content-type").is_some(), "{n}");
        assert!(
            !m.text.contains('\u{fffd}'),
            "{n}: charset not decoded: {:?}",
            m.text
        );
        // Every address and Message-ID host is at a reserved test domain
        // (looked for in the raw mail without quoted-printable soft line
        // breaks, and in the decoded text for the base64 one).
        let raw = String::from_utf8_lossy(&bytes).replace("=\r\n", "") + "\n" + &m.text;
        for (at, _) in raw.match_indices('@') {
            let host: String = raw[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            let host = host.trim_end_matches('.');
            let ok = ["31solutions.test", "client.test", "example.test"]
                .iter()
                .any(|d| host == *d || host.ends_with(&format!(".{d}")));
            assert!(ok, "{n}: host {host:?} is not a reserved test domain");
        }
    }
}

#[test]
fn every_reply_fixture_has_an_expected_file_and_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replies");
    for p in corpora::files(&dir) {
        let n = name(&p);
        if let Some(stem) = n.strip_suffix(".expected.txt") {
            assert!(
                p.with_file_name(format!("{stem}.eml")).is_file(),
                "{n} has no .eml"
            );
        } else if n.ends_with(".eml") {
            assert!(expected_path(&p).is_file(), "{n} has no .expected.txt");
        } else {
            assert_eq!(n, "README.md", "unexpected file in fixtures/replies");
        }
    }
}

// ------------------------------------------------------------ talon corpus

#[test]
fn talon_standard_replies_give_exactly_hello() {
    const TEST: &str = "talon_standard_replies_give_exactly_hello";
    let Some(root) = corpora::corpus_root(TEST) else {
        return;
    };
    let dir = root.join("mailgun-talon/human");
    if !dir.is_dir() {
        eprintln!("SKIPPED: {TEST}: {} not found", dir.display());
        return;
    }
    // Upstream expects "Hello\n\nSent from my iPhone" for iphone.eml and
    // keeps the Sparrow signature; klachtd drops mobile lines and cuts at
    // `-- `, so every plain reply is exactly "Hello".
    const SHARE_BLOCK: &str = "reply-quotations-share-block.eml";
    let all = corpora::files(&dir);
    let mut exact = 0;
    let mut share_block = false;
    let mut failures = Vec::new();
    for path in &all {
        let n = name(path);
        let (_, m) = read_mail(path);
        let got = quote::new_text(&m.text);
        if n == SHARE_BLOCK {
            // An HTML reply with a text/plain part; upstream only checks
            // that the HTML quotation is cut. The plain part's quoted
            // booking inquiry follows a Yahoo `--- On <date>, <addr> wrote:`
            // line without `>` quoting. The reply itself is several lines
            // ("Hi Katharine. Sounds great. ..." signed "Joe XXX").
            assert!(!got.is_empty(), "{n}: empty");
            assert!(got.starts_with("Hi Katharine."), "{n}: {got:?}");
            assert!(got.ends_with("Joe XXX"), "{n}: {got:?}");
            for quoted in ["booking inquiry", "New Booking Inquiry", "wrote:", "From:"] {
                assert!(!got.contains(quoted), "{n}: keeps {quoted:?}: {got:?}");
            }
            share_block = true;
        } else if got == "Hello" {
            exact += 1;
        } else {
            failures.push(format!("{n}: {got:?} (parsed text {:?})", m.text));
        }
    }
    println!(
        "talon: {exact}/{} plain replies give exactly \"Hello\"; {SHARE_BLOCK} checked: {share_block}",
        all.len() - 1
    );
    assert_eq!(all.len(), 13, "talon corpus changed: {} files", all.len());
    assert!(share_block, "{SHARE_BLOCK} missing");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// --------------------------------------------------- every human corpus mail

#[test]
fn every_human_corpus_mail_survives_new_text() {
    const TEST: &str = "every_human_corpus_mail_survives_new_text";
    let Some(root) = corpora::corpus_root(TEST) else {
        return;
    };
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", root.display()))
        .map(|e| e.expect("dir entry").path().join("human"))
        .filter(|p| p.is_dir())
        .collect();
    sources.sort();
    let (mut eml, mut other) = (0, 0);
    for dir in &sources {
        // The `.eml` files as asked, and the extension-less mails of the
        // same folders too: they are mail all the same.
        for path in corpora::files(dir) {
            if path.extension().is_some_and(|e| e == "eml") {
                eml += 1;
            } else {
                other += 1;
            }
            let (bytes, m) = read_mail(&path);
            let got = quote::new_text(&m.text);
            assert!(
                got.len() <= m.text.len(),
                "{}: new text longer than the text",
                path.display()
            );
            // The raw message as text too: headers, MIME boundaries and all.
            let raw = String::from_utf8_lossy(&bytes);
            let got_raw = quote::new_text(&raw);
            assert!(got_raw.len() <= raw.len(), "{}: raw", path.display());
        }
    }
    println!(
        "human corpus: {eml} .eml and {other} other mails from {} folders through new_text",
        sources.len()
    );
    assert!(eml > 0, "no .eml under {}/*/human", root.display());
}
