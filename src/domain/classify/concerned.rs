//! Staff a complaint is about (art. 6: never its handler): by name, alias,
//! title and surname, or address.

use super::*;

// ---------------------------------------------------------------------------
// Staff concerned
// ---------------------------------------------------------------------------

/// One staff member as classification sees them.
#[derive(Debug, Clone, Copy)]
pub struct RosterEntry<'a> {
    pub name: &'a str,
    pub email: &'a EmailAddress,
    pub aliases: &'a [String],
}

fn contains_words(hay: &[Tok], needle: &str) -> bool {
    let pat: Vec<Tok> = tokenize(needle, Mode::Names);
    if pat.is_empty() {
        return false;
    }
    (0..hay.len()).any(|i| {
        pat.iter()
            .enumerate()
            .all(|(k, p)| hay.get(i + k).is_some_and(|t| t.w == p.w))
    })
}

/// Whole address mentioned: not part of a longer address ("joanna@…" does
/// not mention "anna@…").
fn mentions_address(hay_lower: &str, addr: &EmailAddress) -> bool {
    let needle = addr.key();
    let local_char = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let domain_char = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    let mut from = 0;
    while let Some(pos) = hay_lower.get(from..).and_then(|h| h.find(&needle)) {
        let start = from + pos;
        let end = start + needle.len();
        let before_ok = hay_lower[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !local_char(c));
        let after = hay_lower[end..].chars().next();
        // A trailing full stop ends a sentence; a dot followed by a letter
        // continues the domain.
        let after_ok = match after {
            None => true,
            Some('.') => !hay_lower[end + 1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric()),
            Some(c) => !domain_char(c),
        };
        if before_ok && after_ok {
            return true;
        }
        from = start + hay_lower[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

#[rustfmt::skip]
const TITLES: &[&str] = &[
    "mevrouw", "mevr", "mw", "mvr", "meneer", "mnr", "dhr", "heer", "juffrouw", "mr", "mrs", "ms",
    "miss", "mister", "madam", "dr", "drs", "ir", "coach", "trainer", "trainster",
];

/// "mevrouw De Vries", "dhr. Bakker", "Mr Smit", "coach Jansen": a title
/// before the surname of `name` (everything after the first name, and also
/// without its "de", "van", "van der" …).
fn titled_surname(hay: &[Tok], name: &str) -> bool {
    let parts: Vec<Tok> = tokenize(name, Mode::Names);
    if parts.len() < 2 {
        return false;
    }
    let surname = &parts[1..];
    let core = &parts[parts.len() - 1..];
    hay.windows(2).enumerate().any(|(i, w)| {
        TITLES.contains(&w[0].w.as_str())
            && [surname, core].iter().any(|sn| {
                sn.iter()
                    .enumerate()
                    .all(|(k, p)| hay.get(i + 1 + k).is_some_and(|t| t.w == p.w))
            })
    })
}

/// Staff a complaint is about: roster full name, alias (whole words,
/// case- and accent-insensitive, so "Anna" matches "anna" but not
/// "Annabel"), or email address mentioned in subject or text. Emails,
/// deduplicated, in roster order.
pub fn concerned(subject: &str, text: &str, roster: &[RosterEntry]) -> Vec<EmailAddress> {
    let joined = format!("{subject}\n{text}");
    let toks = tokenize(&joined, Mode::Names);
    let lower = joined.to_lowercase();
    let mut out: Vec<EmailAddress> = Vec::new();
    for r in roster {
        if out.contains(r.email) {
            continue;
        }
        let hit = contains_words(&toks, r.name)
            || r.aliases.iter().any(|a| contains_words(&toks, a))
            || titled_surname(&toks, r.name)
            || mentions_address(&lower, r.email);
        if hit {
            out.push(r.email.clone());
        }
    }
    out
}

/// Words that open a salutation line ("Beste Anna,", "Dear Anna,").
const SALUTATIONS: &[&str] = &[
    "beste",
    "geachte",
    "hoi",
    "hallo",
    "hai",
    "dag",
    "goedemorgen",
    "goedemiddag",
    "goedenavond",
    "lieve",
    "dear",
    "hi",
    "hello",
    "hey",
    "good",
];

/// Staff a client's follow-up on a case names, in its new text, leaving out
/// the salutation: a client who greets their handler by name ("Beste Anna,")
/// does not thereby complain about them.
pub fn named_in_follow_up(text: &str, roster: &[RosterEntry]) -> Vec<EmailAddress> {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty()).peekable();
    let greets = lines.peek().is_some_and(|l| {
        let first = l
            .split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .unwrap_or("");
        SALUTATIONS.contains(&first.to_lowercase().as_str())
    });
    if greets {
        lines.next();
    }
    let rest: Vec<&str> = lines.collect();
    concerned("", &rest.join("\n"), roster)
}
