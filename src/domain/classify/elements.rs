//! The three things article 4 asks a complaint to state: what went wrong,
//! when, and what the client wants.

use super::*;

// ---------------------------------------------------------------------------
// Article 4 elements
// ---------------------------------------------------------------------------

/// The three things article 4 asks a complaint to state. Each is a short
/// excerpt of the mail (at most 300 characters), `None` when not found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Elements {
    /// The first sentence that carries a complaint signal.
    pub nature: Option<String>,
    /// The first date or session reference, as written (or normalised words).
    pub dates: Option<String>,
    /// The first sentence stating what the client wants.
    pub desired_outcome: Option<String>,
}

impl Elements {
    /// The elements not found, in article order.
    pub fn missing(&self) -> Vec<Element> {
        let mut out = Vec::new();
        if self.nature.is_none() {
            out.push(Element::Nature);
        }
        if self.dates.is_none() {
            out.push(Element::Dates);
        }
        if self.desired_outcome.is_none() {
            out.push(Element::DesiredOutcome);
        }
        out
    }
}

/// Maximum length of an extracted element, in characters.
pub const ELEMENT_MAX_CHARS: usize = 300;

#[rustfmt::skip]
const MONTHS: &[&str] = &[
    "januari", "jan", "februari", "feb", "maart", "mrt", "mar", "april", "apr", "mei", "juni",
    "jun", "juli", "jul", "augustus", "aug", "september", "sep", "sept", "oktober", "okt", "oct",
    "november", "nov", "december", "dec", "january", "february", "march", "may", "june", "july",
    "august", "october",
];
/// Month names that may come first ("March 3"): full English names, not "may".
#[rustfmt::skip]
const MONTHS_FIRST: &[&str] = &[
    "january", "february", "march", "april", "june", "july", "august", "september", "october",
    "november", "december",
];
#[rustfmt::skip]
const WEEKDAYS: &[&str] = &[
    "maandag*", "dinsdag*", "woensdag*", "donderdag*", "vrijdag*", "zaterdag*", "zondag*",
    "monday*", "tuesday*", "wednesday*", "thursday*", "friday*", "saturday*", "sunday*",
];
const RELATIVE_DATES: &[&[&str]] = &[
    &["vandaag"],
    &["today"],
    &["deze", "week"],
    &["this", "week"],
    &["*", "dagen", "geleden"],
    &["*", "weken", "geleden"],
    &["*", "week", "geleden"],
    &["*", "maanden", "geleden"],
    &["*", "days", "ago"],
    &["*", "weeks", "ago"],
    &["*", "week", "ago"],
    &["*", "months", "ago"],
    &["vorig", "jaar"],
    &["last", "year"],
    &["de", "laatste", "sessie*"],
    &["laatste", "sessie*"],
    &["laatste", "*", "sessies"],
    &["vorige", "sessie*"],
    &["eerste", "sessie*"],
    &["tweede", "sessie*"],
    &["derde", "sessie*"],
    &["vierde", "sessie*"],
    &["laatste", "bijeenkomst*"],
    &["eerste", "bijeenkomst*"],
    &["tweede", "bijeenkomst*"],
    &["trainingsdag*"],
    &["intakegesprek*"],
    &["last", "session*"],
    &["last", "*", "sessions"],
    &["previous", "session*"],
    &["first", "session*"],
    &["second", "session*"],
    &["third", "session*"],
    &["the", "intake"],
    &["eergisteren"],
    &["gisteren*"],
    &["vanochtend"],
    &["vanmorgen"],
    &["vanmiddag"],
    &["yesterday"],
    &["this", "morning"],
    &["vorige", "week"],
    &["vorige", "maand"],
    &["vorige", "keer"],
    &["afgelopen", "week"],
    &["afgelopen", "maand"],
    &["afgelopen", "weekend"],
    &["vorig", "weekend"],
    &["last", "week"],
    &["last", "month"],
    &["last", "weekend"],
    &["de", "sessie", "van"],
    &["sessie", "van"],
    &["de", "training", "van"],
    &["de", "workshop", "van"],
    &["de", "afspraak", "van"],
    &["the", "session", "on"],
    &["the", "session", "of"],
    &["the", "training", "on"],
    &["the", "workshop", "on"],
];

fn day_number_word(w: &str) -> bool {
    let digits: String = w.chars().take_while(|c| c.is_ascii_digit()).collect();
    let suffix = &w[digits.len()..];
    matches!(suffix, "" | "e" | "ste" | "de" | "st" | "nd" | "rd" | "th")
        && (1..=2).contains(&digits.len())
        && digits.parse::<u8>().is_ok_and(|n| (1..=31).contains(&n))
}

fn year_word(w: &str) -> bool {
    w.len() == 4
        && w.bytes().all(|b| b.is_ascii_digit())
        && (w.starts_with("19") || w.starts_with("20"))
}

fn is_weekday(w: &str) -> bool {
    WEEKDAYS.iter().any(|p| word_matches(p, w))
}

/// A month named on its own ("in februari", "sinds maart", "in May"):
/// full names only, as "jan" is also a first name, and English "may" only
/// after a word that makes it a month.
fn month_alone(toks: &[Tok], i: usize) -> bool {
    let w = toks[i].w.as_str();
    let prev = i.checked_sub(1).map(|p| toks[p].w.as_str()).unwrap_or("");
    let month_context = matches!(
        prev,
        "in" | "sinds"
            | "begin"
            | "eind"
            | "half"
            | "medio"
            | "van"
            | "since"
            | "early"
            | "late"
            | "mid"
            | "of"
            | "during"
            | "tijdens"
            | "until"
            | "tot"
    );
    match w {
        "may" => month_context,
        _ => (w.len() >= 4 || w == "mei") && MONTHS.contains(&w) && !matches!(w, "sept"),
    }
}

fn date_word(w: &str) -> bool {
    is_weekday(w) || MONTHS.contains(&w) || day_number_word(w) || year_word(w)
}

/// A numeric date as written: d-m-yyyy, d/m/yy, d.m.yyyy or yyyy-mm-dd.
fn numeric_date(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits_at = |mut i: usize| {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (start, i)
    };
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'-')) {
            i += 1;
            continue;
        }
        let (s1, e1) = digits_at(i);
        let found = (|| {
            let sep = *b.get(e1)?;
            if !matches!(sep, b'-' | b'/' | b'.') {
                return None;
            }
            let (s2, e2) = digits_at(e1 + 1);
            if *b.get(e2)? != sep {
                return None;
            }
            let (s3, e3) = digits_at(e2 + 1);
            if b.get(e3).is_some_and(|c| c.is_ascii_digit() || *c == sep) {
                return None;
            }
            let n = |s: usize, e: usize| text.get(s..e).and_then(|x| x.parse::<u32>().ok());
            let (l1, l2, l3) = (e1 - s1, e2 - s2, e3 - s3);
            let ok = if l1 == 4 {
                sep == b'-'
                    && l2 == 2
                    && l3 == 2
                    && (1..=12).contains(&n(s2, e2)?)
                    && (1..=31).contains(&n(s3, e3)?)
            } else {
                (1..=2).contains(&l1)
                    && (1..=2).contains(&l2)
                    && (l3 == 2 || l3 == 4)
                    && (1..=31).contains(&n(s1, e1)?)
                    && (1..=12).contains(&n(s2, e2)?)
            };
            if ok {
                text.get(s1..e3).map(str::to_string)
            } else {
                None
            }
        })();
        if found.is_some() {
            return found;
        }
        i = e1.max(i + 1);
    }
    None
}

/// A date in words: "12 maart (2026)", "3 March 2026", "March 3", a weekday,
/// or a relative reference ("vorige week dinsdag", "gisteren", "de sessie
/// van"), in normalised words.
fn worded_date(toks: &[Tok]) -> Option<String> {
    let mut i = 0;
    while i < toks.len() {
        let w = toks[i].w.as_str();
        let next = toks.get(i + 1).map(|t| t.w.as_str()).unwrap_or("");
        let len = if (day_number_word(w) && MONTHS.contains(&next))
            || (MONTHS_FIRST.contains(&w) && day_number_word(next))
        {
            2
        } else if let Some(p) = RELATIVE_DATES.iter().find(|p| phrase_at(toks, i, p)) {
            p.len()
        } else if matches!(w, "op" | "on" | "afgelopen" | "vorige" | "last" | "komende")
            && is_weekday(next)
        {
            2
        } else if is_weekday(w) || month_alone(toks, i) {
            1
        } else {
            0
        };
        if len == 0 {
            i += 1;
            continue;
        }
        // Extend with following date words in the same clause: "vorige week
        // dinsdag", "de sessie van 12 maart 2026", "de workshop van vorige week".
        let clause = toks[i].clause;
        let mut end = i + len;
        while end < toks.len() && end < i + len + 3 && toks[end].clause == clause {
            if date_word(&toks[end].w) {
                end += 1;
            } else if let Some(p) = RELATIVE_DATES.iter().find(|p| phrase_at(toks, end, p)) {
                end += p.len();
            } else {
                break;
            }
        }
        return Some(words(&toks[i..end]).collect::<Vec<_>>().join(" "));
    }
    None
}

const OUTCOME_PHRASES: &[&[&str]] = &[
    &["ik", "wil", "graag"],
    &["ik", "zou", "graag"],
    &["graag", "zou", "ik"],
    &["ik", "wil", "dat"],
    &["ik", "wens"],
    &["ik", "verwacht"],
    &["ik", "verzoek"],
    &["mijn", "verzoek"],
    &["ik", "vraag"],
    &["ik", "eis"],
    &["ik", "hoop", "op"],
    &["terugbetaling"],
    &["excuses"],
    &["restitutie"],
    &["compensatie"],
    &["vergoeding"],
    &["geld", "terug"],
    &["i", "would", "like"],
    &["id", "like"],
    &["i", "expect"],
    &["i", "want"],
    &["i", "request"],
    &["i", "ask"],
    &["i", "am", "asking"],
    &["im", "asking"],
    &["i", "demand"],
    &["refund"],
    &["apology"],
    &["apologies"],
    &["compensation"],
    &["money", "back"],
];

/// Cues of a sentence that states what went wrong.
const NATURE_CUES: &[&str] = &[
    "aimed_at_us",
    "service_failed",
    "dissatisfied",
    "reproachful_question",
    "escalation",
];

/// Words that, shortly after "ik wil graag" / "I would like", show the
/// sentence is about filing the complaint, not about its outcome.
#[rustfmt::skip]
const FILING_WORDS: &[&str] = &[
    "klacht", "klachten", "klagen", "indienen", "melden", "complaint", "complain", "file", "lodge",
];

fn states_outcome(toks: &[Tok]) -> bool {
    (0..toks.len()).any(|i| {
        OUTCOME_PHRASES.iter().any(|p| {
            if !phrase_at(toks, i, p) {
                return false;
            }
            let after = &toks[(i + p.len()).min(toks.len())..(i + p.len() + 4).min(toks.len())];
            let filing = after.iter().any(|t| FILING_WORDS.contains(&t.w.as_str()));
            // "ik vraag me af" is wondering, not asking.
            let wondering = p == &["ik", "vraag"]
                && after.iter().take(3).any(|t| t.w == "af")
                && after.first().is_some_and(|t| t.w == "me" || t.w == "mij");
            !filing && !wondering
        })
    })
}

/// Extracts the article-4 elements (quoted history cut off):
/// - nature: when the nature model reads a statement of what went wrong, the
///   sentence the complaint model finds most complaint-like;
/// - dates or sessions: the first date, weekday, month, relative day ("vorige
///   week", "gisteren") or session reference ("onze laatste twee sessies");
/// - desired outcome: the sentence that asks for a remedy, by the outcome
///   model (any phrasing: imperatives, "Mijn voorstel is", "It would be fair
///   if") or an explicit request phrase.
pub fn extract_elements(subject: &str, text: &str) -> Elements {
    read(subject, text).elements()
}

pub(super) fn elements_of(r: &Reading) -> Elements {
    let body_text = cut_quoted(r.text);
    let body = sentences(&body_text);
    let subject = r.subject.trim();
    // Each sentence once, in the language of the whole mail.
    let parts: Vec<features::Prepared> = body
        .iter()
        .map(|s| features::prepare_in(Some(r.whole.lang), "", s))
        .collect();
    Elements {
        nature: nature_of(r, &body, &parts, subject),
        dates: dates_of(&body, subject),
        desired_outcome: desired_outcome_of(r, &body, &parts, subject),
    }
}

/// The sentence that says what went wrong: one with a cue of
/// dissatisfaction or failure first, then the most complaint-like. A mail
/// with no such cue and no complaint-like reading states no nature,
/// whatever the nature model (which only saw complaints) says. A mail with
/// no body sentences but a complaint-like reading: its subject.
fn nature_of(
    r: &Reading,
    body: &[String],
    parts: &[features::Prepared],
    subject: &str,
) -> Option<String> {
    if !model::NATURE.decides(&r.whole) {
        return None;
    }
    let complaint_like = r.probability >= model::MODEL.file.thresholds.possible;
    if body.is_empty() {
        return (complaint_like && !subject.is_empty()).then(|| clip(subject, ELEMENT_MAX_CHARS));
    }
    let cued: Vec<bool> = parts
        .iter()
        .map(|p| p.cues().iter().any(|c| NATURE_CUES.contains(c)))
        .collect();
    // Only the cued sentences need scoring when there are any.
    let any_cued = cued.contains(&true);
    let (i, score) = (0..parts.len())
        .filter(|&i| cued[i] || !any_cued)
        .map(|i| {
            (
                i,
                f64::from(u8::from(cued[i])) + model::MODEL.probability(&parts[i]),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
    (score >= 1.0 || complaint_like).then(|| clip(&body[i], ELEMENT_MAX_CHARS))
}

/// The sentence that asks for a remedy: by an explicit request phrase, or
/// the one the outcome model (which reads the whole mail) points at, when
/// it reads as a wish itself and not as one to file the complaint.
fn desired_outcome_of(
    r: &Reading,
    body: &[String],
    parts: &[features::Prepared],
    subject: &str,
) -> Option<String> {
    let by_rule = body
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(subject))
        .find(|s| states_outcome(&tokenize(s, Mode::Signals)));
    if let Some(s) = by_rule {
        return Some(clip(s, ELEMENT_MAX_CHARS));
    }
    if !model::OUTCOME.decides(&r.whole) {
        return None;
    }
    let (i, p) = (0..parts.len())
        .map(|i| (i, model::OUTCOME.probability(&parts[i])))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
    let filing = tokenize(&body[i], Mode::Signals)
        .iter()
        .any(|t| FILING_WORDS.contains(&t.w.as_str()));
    (p >= 0.5 && !filing).then(|| clip(&body[i], ELEMENT_MAX_CHARS))
}

/// The first date, weekday, month, relative day or session reference, in
/// the text (quoted history cut off) before the subject.
fn dates_of(body: &[String], subject: &str) -> Option<String> {
    let unquoted = body.join("\n");
    numeric_date(&unquoted)
        .or_else(|| worded_date(&tokenize(&unquoted, Mode::Signals)))
        .or_else(|| numeric_date(subject))
        .or_else(|| worded_date(&tokenize(subject, Mode::Signals)))
        .map(|d| clip(&d, ELEMENT_MAX_CHARS))
}
