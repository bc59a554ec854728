//! What an automatic reply may repeat of the sender's own words.
//!
//! An acknowledgement or the regulation goes to the From address of the
//! mail, which anyone can forge. Whatever it repeats (the subject, the
//! display name) an attacker can aim at a third party: "klachtd as a
//! reflector" for spam or phishing. So only plain words are repeated: a
//! name of letters, a short subject without links, addresses, domains or
//! long numbers. Anything else is left out (the templates then greet
//! neutrally and say "your message"); staff mail still shows it all.

use std::sync::LazyLock;

use regex::Regex;

/// Longest display name repeated, in characters.
const NAME_MAX: usize = 60;
/// Longest subject repeated, in characters.
const SUBJECT_MAX: usize = 80;

/// A link, an address, a domain (`word.tld`) or a run of nine digits (a
/// phone or account number) anywhere in the text.
static LINKISH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)://|www\.|@|[\p{L}\p{N}-]\.\p{L}{2,}\b|\d(?:[\s.-]?\d){8,}")
        .expect("a valid pattern")
});

/// `name` when it is a plain personal name (letters, spaces, dots, hyphens,
/// apostrophes; at most five words), else "".
pub fn name(name: &str) -> String {
    let n = squeeze(name);
    let plain = n.chars().any(char::is_alphabetic)
        && n.chars().count() <= NAME_MAX
        && n.split(' ').count() <= 5
        && n.chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '.' | '-' | '\'' | '’' | ','))
        && !LINKISH.is_match(&n);
    if plain {
        n
    } else {
        String::new()
    }
}

/// `subject` when it is short and carries no link, address, domain or long
/// number, else "".
pub fn subject(subject: &str) -> String {
    let s = squeeze(subject);
    if s.chars().count() <= SUBJECT_MAX && !LINKISH.is_match(&s) {
        s
    } else {
        String::new()
    }
}

/// Whitespace and control characters collapsed to single spaces.
fn squeeze(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_names_and_subjects_are_repeated() {
        for n in [
            "Jan de Vries",
            "Anne-Marie O’Brien",
            "J.P. van der Berg",
            "Élodie Müller",
            "Vries, Jan de",
        ] {
            assert_eq!(super::name(n), n);
        }
        for s in [
            "Klacht over coachingssessie",
            "Ontevreden over de training van 12 mei",
            "Re: factuur 2026-11",
            "Complaint about session 3",
            "Klacht!! Niet OK :(",
        ] {
            assert_eq!(super::subject(s), s);
        }
        assert_eq!(
            super::subject("  Klacht\r\n\tover  sessie "),
            "Klacht over sessie"
        );
    }

    #[test]
    fn links_addresses_numbers_and_long_text_are_left_out() {
        for n in [
            "Win 1000 euro",
            "www.cheap-pills.example",
            "Bezoek shop.example nu",
            "jan@example.nl",
            "Jan <script>",
            "a b c d e f",
            &"Jan".repeat(30),
        ] {
            assert_eq!(super::name(n), "", "{n}");
        }
        for s in [
            "Gratis iPhone: https://evil.example/x",
            "Bel 0900 123 4567 voor uw prijs",
            "Uw account is geblokkeerd, ga naar login.bank-example.com",
            "Mail me op prijs@evil.example",
            &"klacht ".repeat(20),
        ] {
            assert_eq!(super::subject(s), "", "{s}");
        }
    }
}
