//! What is a complaint (design.md section 4, regulation articles 2 and 4).
//!
//! Pure functions over an already parsed mail:
//! - `automated`: is it automated (never answered)?
//! - `read` and `Reading`: does it read like a complaint (clear → case,
//!   unsure → triage, otherwise left alone)? The learned model of
//!   `features` and `model`, with two rules on top;
//! - `elements`: which of the three article-4 elements does it state?
//! - `concerned`: which staff members does it concern?
//! - here: its category, its language, whether it asks for the regulation,
//!   and the word tokens the rest matches over (lower-cased, accents folded,
//!   split on anything that is not a letter or digit).
//!
//! Tests are in `tests.rs`.

use super::types::{Category, Element, EmailAddress, Lang};

mod automated;
mod concerned;
mod elements;
#[cfg(test)]
mod tests;

pub use automated::*;
pub use concerned::*;
pub use elements::*;

// ---------------------------------------------------------------------------
// Normalisation and tokens
// ---------------------------------------------------------------------------

/// Folds the accented Latin letters Dutch and English mail uses to ASCII;
/// drops combining marks. Input is already lower-case.
fn fold(c: char) -> Option<char> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        'ç' => 'c',
        'ñ' => 'n',
        '\u{2019}' | '\u{2018}' | '`' | '\u{b4}' => '\'',
        '\u{2010}' | '\u{2011}' | '\u{2013}' => '-',
        '\u{a0}' => ' ',
        '\u{300}'..='\u{36f}' => return None,
        other => other,
    })
}

fn normalise(s: &str) -> Vec<char> {
    s.chars()
        .flat_map(char::to_lowercase)
        .filter_map(fold)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tok {
    w: String,
    /// Clause number: a negation or softener only reaches within its clause.
    clause: u32,
}

/// How the tokenizer treats apostrophes and hyphens inside words.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `i'm` → `im`, `don't` → `dont`; hyphens split.
    Signals,
    /// `bram's` → `bram`, `s`; `jan-willem` stays one word.
    Names,
}

fn tokenize(s: &str, mode: Mode) -> Vec<Tok> {
    let chars = normalise(s);
    let mut out = Vec::new();
    let mut word = String::new();
    let mut clause = 0u32;
    let mut newlines = 0u32;
    let alnum_at = |i: usize| chars.get(i).is_some_and(|c| c.is_alphanumeric());
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            word.push(c);
            newlines = 0;
            continue;
        }
        let between = !word.is_empty() && alnum_at(i + 1);
        match c {
            '\'' if mode == Mode::Signals && between => continue,
            '-' if mode == Mode::Names && between => {
                word.push('-');
                continue;
            }
            _ => {}
        }
        if !word.is_empty() {
            out.push(Tok {
                w: std::mem::take(&mut word),
                clause,
            });
        }
        match c {
            '.' if between => {}
            '.' | '!' | '?' | ',' | ';' | ':' | '(' | ')' | '"' | '\u{201c}' | '\u{201d}' => {
                clause += 1
            }
            '\n' => {
                newlines += 1;
                if newlines >= 2 {
                    clause += 1;
                }
            }
            c if c.is_whitespace() => {}
            _ => {}
        }
    }
    if !word.is_empty() {
        out.push(Tok { w: word, clause });
    }
    out
}

fn words(toks: &[Tok]) -> impl Iterator<Item = &str> {
    toks.iter().map(|t| t.w.as_str())
}

/// Splits text into sentences (on `. ! ?` that are not inside a word, and on
/// blank lines), skipping quoted lines (`>`), whitespace collapsed.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        let s = cur.split_whitespace().collect::<Vec<_>>().join(" ");
        if s.chars().any(char::is_alphanumeric) {
            out.push(s);
        }
        cur.clear();
    };
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('>') {
            continue;
        }
        if t.is_empty() {
            flush(&mut cur, &mut out);
            continue;
        }
        let chars: Vec<char> = t.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            cur.push(c);
            if matches!(c, '.' | '!' | '?') {
                let next_alnum = chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
                if !next_alnum {
                    flush(&mut cur, &mut out);
                }
            }
        }
        cur.push(' ');
    }
    flush(&mut cur, &mut out);
    out
}

/// At most `max` characters, cut at a word boundary when one is near, with
/// an ellipsis when something was cut.
fn clip(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep: String = s.chars().take(max.saturating_sub(1)).collect();
    let cut = match keep.rfind(' ') {
        Some(i) if i > keep.len() / 2 => &keep[..i],
        _ => keep.as_str(),
    };
    format!("{}…", cut.trim_end())
}

/// Matches a word pattern: exact, or a prefix when it ends in `*`.
fn word_matches(pat: &str, w: &str) -> bool {
    match pat.strip_suffix('*') {
        Some(prefix) => w.starts_with(prefix),
        None => pat == w,
    }
}

/// Does `pat` match the tokens starting at `i`, all within one clause?
fn phrase_at(toks: &[Tok], i: usize, pat: &[&str]) -> bool {
    let Some(first) = toks.get(i) else {
        return false;
    };
    pat.iter().enumerate().all(|(k, p)| {
        toks.get(i + k)
            .is_some_and(|t| t.clause == first.clause && word_matches(p, &t.w))
    })
}

/// Does `pat` occur anywhere in `toks` (clauses ignored)?
fn contains_phrase(toks: &[Tok], pat: &[&str]) -> bool {
    if pat.is_empty() {
        return false;
    }
    (0..toks.len()).any(|i| {
        pat.iter()
            .enumerate()
            .all(|(k, p)| toks.get(i + k).is_some_and(|t| word_matches(p, &t.w)))
    })
}

// ---------------------------------------------------------------------------
// Complaint scoring
// ---------------------------------------------------------------------------

pub mod features;
pub mod model;

/// The band a mail falls in: a clear complaint becomes a case and is
/// acknowledged at once, a possible one goes to triage (a supervisor
/// decides), an ordinary one is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Complaint,
    Possible,
    Ordinary,
}

impl Verdict {
    /// The word `classify` prints (design.md section 8).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Complaint => "complaint",
            Verdict::Possible => "possible",
            Verdict::Ordinary => "ordinary",
        }
    }
}

/// The model's reading of a new mail (for the timeline and `classify`;
/// never complaint text).
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Probability of a complaint, 0 to 1.
    pub probability: f64,
    pub verdict: Verdict,
    pub lang: Lang,
}

/// The band of a probability under the committed model's thresholds.
pub fn band(probability: f64, t: model::Thresholds) -> Verdict {
    if probability >= t.complaint {
        Verdict::Complaint
    } else if probability >= t.possible {
        Verdict::Possible
    } else {
        Verdict::Ordinary
    }
}

/// A mail read once: its prepared text (quoted history cut off, language
/// detected, stemmed, cues worked out) and the complaint model's
/// probability, which the verdict, the article-4 elements and the case's
/// language all use. Intake asks all of them of a new complaint; preparing
/// the text for each was a third of the time per mail.
pub struct Reading<'a> {
    subject: &'a str,
    text: &'a str,
    whole: features::Prepared,
    probability: f64,
}

/// Reads a mail once (see `Reading`).
pub fn read<'a>(subject: &'a str, text: &'a str) -> Reading<'a> {
    let whole = features::prepare(subject.trim(), text);
    let probability = model::MODEL.probability(&whole);
    Reading {
        subject,
        text,
        whole,
        probability,
    }
}

/// A [`Reading`] without the text it was read from, owned: worked out on
/// one thread (intake reads mail on a thread of its own, ahead of the
/// register work) and used on another, with the same subject and text
/// again ([`Read::of`]).
pub struct Read {
    whole: features::Prepared,
    probability: f64,
}

impl<'a> Reading<'a> {
    /// Lets go of the text; [`Read::of`] takes it again.
    pub fn detach(self) -> Read {
        Read {
            whole: self.whole,
            probability: self.probability,
        }
    }
}

impl Read {
    /// The reading again, of the `subject` and `text` it was read from
    /// (the article-4 elements read them).
    pub fn of<'a>(self, subject: &'a str, text: &'a str) -> Reading<'a> {
        Reading {
            subject,
            text,
            whole: self.whole,
            probability: self.probability,
        }
    }
}

impl Reading<'_> {
    /// The mail's language (Dutch, Flemish included, or English).
    pub fn lang(&self) -> Lang {
        self.whole.lang
    }

    /// The verdict of the committed complaint model (`model.rs`) and the
    /// rules on top of it.
    pub fn score(&self) -> Score {
        let p = &self.whole;
        let mut verdict = band(self.probability, model::MODEL.file.thresholds);
        // A mail that says it files a complaint reaches a person, however
        // little else it says: doubt goes to triage, never to silence. One
        // that lodges it in so many words ("Hierbij dien ik een klacht in")
        // and that the model already finds possible is acknowledged: art. 3
        // asks no more.
        if verdict == Verdict::Possible && p.lodges_complaint() {
            verdict = Verdict::Complaint;
        } else if verdict == Verdict::Ordinary && p.files_complaint() {
            verdict = Verdict::Possible;
        }
        Score {
            probability: self.probability,
            verdict,
            lang: p.lang,
        }
    }

    /// The text as the models see it (for `klachtd classify --explain`).
    pub fn prepared(&self) -> &features::Prepared {
        &self.whole
    }

    /// The article-4 elements (see `extract_elements`).
    pub fn elements(&self) -> Elements {
        elements::elements_of(self)
    }
}

/// Scores a new mail with the committed complaint model (`Reading::score`).
pub fn score_complaint(subject: &str, text: &str) -> Score {
    read(subject, text).score()
}

/// Cuts quoted history off a new mail: lines starting with `>` are skipped,
/// and reading stops at a reply header ("Op … schreef …:", "On … wrote:",
/// "-----Original Message-----", an Outlook "Van:/From:" block). A
/// forwarded message is kept: a client forwarding an unanswered mail means it.
pub fn cut_quoted(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = String::new();
    let mut cut = false;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with('>') {
            cut = true;
            continue;
        }
        if is_reply_header(t, lines.get(i + 1).map(|l| l.trim())) {
            cut = true;
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    if cut {
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn is_reply_header(line: &str, next: Option<&str>) -> bool {
    let l = line.to_lowercase();
    let ends_colon = l.ends_with(':');
    (l.starts_with("op ") && (l.contains("schreef") || l.contains("het volgende")) && ends_colon)
        || (l.starts_with("on ") && l.contains("wrote") && ends_colon)
        || (l.starts_with("le ") && l.contains("écrit") && ends_colon)
        || l.starts_with("-----original message")
        || l.starts_with("-----oorspronkelijk bericht")
        || ((l.starts_with("van:") || l.starts_with("from:"))
            && next.is_some_and(|n| {
                let n = n.to_lowercase();
                n.starts_with("verzonden:") || n.starts_with("sent:") || n.starts_with("date:")
            }))
}

/// Does the mail ask for the complaints regulation itself (art. 11: a copy,
/// a paper copy, where to find it)? Independent of dissatisfaction: the
/// caller decides what to do when a mail is both.
pub fn asks_for_regulation(subject: &str, text: &str) -> bool {
    let toks = tokenize(&format!("{subject}\n{text}"), Mode::Signals);
    let regulation = toks.iter().any(|t| {
        ["klachtenreglement", "klachtenprocedure", "klachtenregeling"]
            .iter()
            .any(|p| t.w.starts_with(p))
    }) || [
        &["klachten", "reglement"][..],
        &["klachten", "procedure"],
        &["complaints", "procedure*"],
        &["complaint", "procedure*"],
        &["complaints", "polic*"],
        &["complaints", "process"],
        &["complaints", "regulation*"],
        &["complaint", "regulation*"],
    ]
    .iter()
    .any(|p| contains_phrase(&toks, p));
    if contains_phrase(&toks, &["papieren", "exemplaar"])
        || contains_phrase(&toks, &["paper", "copy"])
    {
        return true;
    }
    if !regulation {
        return false;
    }
    const ASKING: &[&[&str]] = &[
        &["ontvangen"],
        &["sturen"],
        &["toesturen"],
        &["opsturen"],
        &["toezenden"],
        &["opvragen"],
        &["exemplaar"],
        &["kopie"],
        &["inzien"],
        &["vinden"],
        &["waar", "staat"],
        &["copy"],
        &["send"],
        &["receive"],
        &["find"],
        &["see"],
        &["read"],
        &["where", "is"],
        &["link"],
    ];
    ASKING.iter().any(|p| contains_phrase(&toks, p))
}

// ---------------------------------------------------------------------------
// Category and language
// ---------------------------------------------------------------------------

#[rustfmt::skip]
const COACHING_WORDS: &[&str] = &[
    "coach*", "sessie*", "traject*", "coachingstraject*", "training*", "workshop*", "begeleid*",
    "session*", "programme", "program", "mentor*", "intake",
];
#[rustfmt::skip]
const COMMUNICATIE_WORDS: &[&str] = &[
    "teruggebeld", "terugbellen", "reactie", "reageren", "gereageerd", "bereikbaar",
    "onbereikbaar", "mail", "mails", "email", "e-mail", "communicatie", "onbeleefd", "toon",
    "antwoord", "beantwoord", "telefoon", "gebeld", "response", "reply", "replied", "rude",
    "communication", "unreachable", "tone", "called", "respond", "responded",
];
#[rustfmt::skip]
const DIENSTVERLENING_WORDS: &[&str] = &[
    "factuur", "facturen", "betaling", "betaald", "afspraak", "afspraken", "planning", "gepland",
    "geannuleerd", "annulering", "afgezegd", "locatie", "service", "kosten", "prijs", "rooster",
    "lokaal", "invoice", "invoices", "payment", "paid", "appointment", "appointments", "cancelled",
    "canceled", "cancellation", "schedule", "scheduled", "location", "cost", "costs", "fee",
    "fees", "price", "charged",
];

fn count_words(toks: &[Tok], list: &[&str]) -> usize {
    toks.iter()
        .filter(|t| list.iter().any(|p| word_matches(p, &t.w)))
        .count()
}

/// Article 2 category by keyword counts; ties and no keywords give `Overig`.
pub fn category(subject: &str, text: &str) -> Category {
    // Hyphens kept so that "e-mail" is one word.
    let toks = tokenize(&format!("{subject}\n{text}"), Mode::Names);
    let counts = [
        (Category::Coaching, count_words(&toks, COACHING_WORDS)),
        (
            Category::Communicatie,
            count_words(&toks, COMMUNICATIE_WORDS),
        ),
        (
            Category::Dienstverlening,
            count_words(&toks, DIENSTVERLENING_WORDS),
        ),
    ];
    let best = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let winners: Vec<Category> = counts
        .iter()
        .filter(|(_, n)| *n == best)
        .map(|(c, _)| *c)
        .collect();
    match winners.as_slice() {
        [only] if best > 0 => *only,
        _ => Category::Overig,
    }
}

/// Language of a mail (Dutch, Flemish included, or English), detected by
/// `whatlang`; Dutch when it cannot tell.
pub fn language(subject: &str, text: &str) -> Lang {
    features::detect_language(&format!("{subject}\n{cut}", cut = cut_quoted(text)))
}
