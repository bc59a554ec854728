//! Property tests (issue 14): random and mutated input for everything that
//! reads text from outside — mail parsing, quote cutting, forward parsing,
//! command parsing, classification and the configuration. None may panic,
//! and each returns a usable value. Thousands of cases each; time per case
//! is measured in the benchmarks, not here.

use proptest::prelude::*;

use crate::config::Settings;
use crate::domain::{classify, command};
use crate::mail::{forward, parse, quote};

/// Fixtures that exercise most of the parser: plain, HTML-only, legacy
/// charsets, quoted-printable, attachments, bounces, auto-replies.
const FIXTURES: &[&[u8]] = &[
    include_bytes!("../tests/fixtures/mail/nl-complaint-plain.eml"),
    include_bytes!("../tests/fixtures/mail/nl-complaint-html-only.eml"),
    include_bytes!("../tests/fixtures/mail/nl-complaint-windows1252.eml"),
    include_bytes!("../tests/fixtures/mail/nl-complaint-latin1-qp.eml"),
    include_bytes!("../tests/fixtures/mail/with-attachment.eml"),
    include_bytes!("../tests/fixtures/mail/bounce.eml"),
    include_bytes!("../tests/fixtures/mail/autoreply.eml"),
    include_bytes!("../tests/fixtures/mail/en-complaint-formal.eml"),
];

const EXAMPLE_CONFIG: &str = include_str!("../config/klachtd.example.toml");

/// Bytes that break mail in interesting ways.
const NASTY: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b"\r\n\r\n",
    b"--",
    b"=?",
    b"?=",
    b"=\r\n",
    b";",
    b"\"",
    b"<",
    b">",
    b"boundary=",
    b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"\xff\xfe",
    b"\xc3",
    b"=?utf-8?b?",
    b"\t",
    b" ",
    b":",
    b"@",
];

/// A fixture with `edits` applied: (position, kind, nasty index).
fn mutate(base: &[u8], edits: &[(usize, u8, usize)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(pos, kind, n) in edits {
        let at = if v.is_empty() { 0 } else { pos % (v.len() + 1) };
        match kind % 4 {
            0 => {
                let nasty = NASTY[n % NASTY.len()];
                v.splice(at..at, nasty.iter().copied());
            }
            1 if at < v.len() => {
                v.remove(at);
            }
            2 if at < v.len() => v[at] ^= 1 << (n % 8),
            _ => v.truncate(at),
        }
    }
    v
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_parse_into_a_mail(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let m = parse::parse(&raw, 1024);
        prop_assert!(m.message_id.starts_with('<') && m.message_id.ends_with('>'));
        prop_assert!(!m.message_id.chars().any(char::is_control));
    }

    #[test]
    fn mutated_mail_parses_and_reads(
        which in 0..FIXTURES.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 0..12),
    ) {
        let raw = mutate(FIXTURES[which], &edits);
        let m = parse::parse(&raw, 1024);
        prop_assert!(m.message_id.starts_with('<'));
        for a in &m.attachments {
            prop_assert!(a.data.as_ref().is_none_or(|d| d.len() <= 1024));
        }
        let _ = forward::extract(&m, 1024);
        let text = quote::new_text(&m.text);
        let r = classify::read(&m.subject, &text);
        let s = r.score();
        prop_assert!((0.0..=1.0).contains(&s.probability));
        let _ = r.elements();
    }

    #[test]
    fn any_text_cuts_quotes_parses_commands_and_classifies(text in "\\PC{0,1500}") {
        let new = quote::new_text(&text);
        prop_assert!(new.len() <= text.len() + 1);
        let _ = classify::cut_quoted(&text);
        let _ = command::parse(&new);
        let _ = command::parse_triage_decisions(&new);
        let _ = forward::inline(&text);
        let s = classify::score_complaint("", &text);
        prop_assert!((0.0..=1.0).contains(&s.probability));
    }

    #[test]
    fn command_like_text_never_panics(
        lines in proptest::collection::vec(
            "(/[a-z-]{0,12}( [A-Za-z0-9 .:-]{0,30})?|KL-[0-9]{0,5}-[0-9]{0,6}|> .{0,20}|.{0,40})",
            0..8,
        ),
    ) {
        let text = lines.join("\n");
        let _ = command::parse(&text);
        let _ = command::parse_triage_decisions(&text);
    }

    #[test]
    fn any_configuration_text_loads_or_names_a_key(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 0..6),
    ) {
        let text = mutate(EXAMPLE_CONFIG.as_bytes(), &edits);
        let text = String::from_utf8_lossy(&text);
        if let Err(e) = Settings::from_toml(&text, std::path::Path::new("/etc/klachtd"), &[]) {
            let e = e.to_string();
            prop_assert!(e.starts_with("config: "), "{}", e);
            prop_assert!(!e.trim_end().contains('\n'), "one line: {}", e);
        }
    }
}
