//! What the complaint model sees of a mail: named features, shared by the
//! trainer (`training/`) and by classification at run time, so the two can
//! never drift apart.
//!
//! Groups (each feature is present or not; the model normalises per group):
//! - `w:` stemmed words (Snowball, Dutch or English by the detected language);
//! - `b:` stemmed word bigrams, so "geen klacht" and "no complaints" differ
//!   from "klacht";
//! - `s:` stemmed subject words;
//! - `c:` character 4-grams inside words (with `_` at the edges), which
//!   survive typos, Flemish spellings and compounds;
//! - `f:` a few linguistic cues that a bag of words misses: who the
//!   dissatisfaction is aimed at, an account of a service that went wrong, a
//!   request for a remedy, a reproachful question, escalation.

use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

use super::{cut_quoted, normalise};
use crate::domain::types::Lang;

/// Characters of subject plus body that are looked at: complaints say what
/// they are about early, and this bounds the time per mail.
pub const MAX_CHARS: usize = 6_000;

static NL_STEM: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::Dutch));
static EN_STEM: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// The language of a text (Dutch, Flemish included, or English), by
/// `whatlang` restricted to those two; Dutch when it cannot tell.
pub fn detect_language(text: &str) -> Lang {
    static DETECTOR: LazyLock<whatlang::Detector> = LazyLock::new(|| {
        whatlang::Detector::with_allowlist(vec![whatlang::Lang::Nld, whatlang::Lang::Eng])
    });
    let sample: String = text.chars().take(1_500).collect();
    match DETECTOR.detect_lang(&sample) {
        Some(whatlang::Lang::Eng) => Lang::En,
        _ => Lang::Nl,
    }
}

/// One mail as the model sees it: its language and its word tokens.
pub struct Prepared {
    pub lang: Lang,
    /// Normalised word tokens of subject then body, with sentence ends.
    tokens: Vec<Token>,
    subject_len: usize,
    cues: Vec<&'static str>,
    /// Every feature name, NUL-separated, made on first use.
    features: std::sync::OnceLock<String>,
}

#[derive(Debug, Clone)]
struct Token {
    word: String,
    stem: String,
    /// Index of the sentence the token is in.
    sentence: u32,
    /// The sentence ends in a question mark.
    question: bool,
}

/// Tokenises subject and body once (quoted history cut off, at most
/// `MAX_CHARS`), detects the language and stems.
pub fn prepare(subject: &str, body: &str) -> Prepared {
    prepare_in(None, subject, body)
}

/// `prepare` with the language already known (a sentence of a mail whose
/// language was detected on the whole), which saves the detection.
pub fn prepare_in(lang: Option<Lang>, subject: &str, body: &str) -> Prepared {
    let body = cut_quoted(body);
    let mut text = String::with_capacity(subject.len() + body.len().min(MAX_CHARS) + 2);
    text.push_str(subject);
    text.push_str(".\n");
    let subject_chars = text.chars().count();
    text.extend(body.chars().take(MAX_CHARS.saturating_sub(subject_chars)));
    let lang = lang.unwrap_or_else(|| detect_language(&text));
    let stemmer: &Stemmer = match lang {
        Lang::En => &EN_STEM,
        Lang::Nl => &NL_STEM,
    };
    let chars = normalise(&text);
    let mut tokens: Vec<Token> = Vec::new();
    let mut sentence = 0u32;
    let mut word = String::new();
    let mut subject_len = None;
    let mut sentence_start = 0usize;
    let mut char_count = 0usize;
    let flush = |word: &mut String, tokens: &mut Vec<Token>, sentence: u32| {
        if !word.is_empty() {
            let stem = stemmer.stem(word).into_owned();
            tokens.push(Token {
                word: std::mem::take(word),
                stem,
                sentence,
                question: false,
            });
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        char_count += 1;
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        if c == '\'' && !word.is_empty() && chars.get(i + 1).is_some_and(|n| n.is_alphabetic()) {
            continue; // don't → dont, i'm → im
        }
        flush(&mut word, &mut tokens, sentence);
        if subject_len.is_none() && char_count >= subject_chars {
            subject_len = Some(tokens.len());
        }
        let next_alnum = chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        // A line break ends a sentence only before a blank line or a line
        // that starts a list item: plain-text mail is wrapped at ~72
        // columns, and "Ik\nben ontevreden" is one sentence.
        let paragraph = c == '\n' && {
            let rest = chars[i + 1..]
                .iter()
                .skip_while(|c| **c == ' ' || **c == '\t');
            matches!(rest.clone().next(), None | Some('\n' | '-' | '*' | '•'))
        };
        let ends = matches!(c, '?' | '!') || paragraph || (c == '.' && !next_alnum);
        if ends {
            if c == '?' {
                for t in &mut tokens[sentence_start..] {
                    t.question = true;
                }
            }
            if tokens.len() > sentence_start {
                sentence += 1;
                sentence_start = tokens.len();
            }
        }
    }
    flush(&mut word, &mut tokens, sentence);
    let subject_len = subject_len.unwrap_or(tokens.len());
    let mut p = Prepared {
        lang,
        tokens,
        subject_len,
        cues: Vec::new(),
        features: std::sync::OnceLock::new(),
    };
    p.cues = p.compute_cues();
    p
}

impl Prepared {
    /// Calls `emit` with every feature name (a name may come more than once).
    /// `buf` is reused so that no feature allocates.
    pub fn for_each_feature(&self, mut emit: impl FnMut(&str)) {
        let all = self.features.get_or_init(|| {
            let mut all = String::with_capacity(self.tokens.len() * 48);
            self.generate_features(|f| {
                all.push_str(f);
                all.push('\0');
            });
            all
        });
        for name in all.split('\0').filter(|n| !n.is_empty()) {
            emit(name);
        }
    }

    /// Generates every feature name (kept in `features` by
    /// `for_each_feature`, so that several models generate them once).
    fn generate_features(&self, mut emit: impl FnMut(&str)) {
        let mut buf = String::with_capacity(48);
        let mut put = |buf: &mut String, parts: &[&str]| {
            buf.clear();
            for p in parts {
                buf.push_str(p);
            }
            emit(buf);
        };
        for (i, t) in self.tokens.iter().enumerate() {
            if t.word.chars().all(|c| c.is_ascii_digit()) {
                put(&mut buf, &["w:#num"]);
                continue;
            }
            put(&mut buf, &["w:", &t.stem]);
            if i < self.subject_len {
                put(&mut buf, &["s:", &t.stem]);
            }
            if let Some(n) = self.tokens.get(i + 1) {
                if n.sentence == t.sentence {
                    put(&mut buf, &["b:", &t.stem, "_", &n.stem]);
                }
            }
            // Character 4-grams of the word with edge marks.
            let padded: Vec<char> = std::iter::once('_')
                .chain(t.word.chars())
                .chain(std::iter::once('_'))
                .collect();
            if padded.len() >= 4 {
                for g in padded.windows(4) {
                    let mut s = [0u8; 16];
                    let mut n = 0;
                    for ch in g {
                        n += ch.encode_utf8(&mut s[n..]).len();
                    }
                    // Every char is at most 4 bytes: 4 of them fit in 16.
                    let gram = std::str::from_utf8(&s[..n]).unwrap_or("");
                    put(&mut buf, &["c:", gram]);
                }
            }
        }
        for cue in self.cues() {
            put(&mut buf, &["f:", cue]);
        }
    }

    /// All distinct feature names, sorted (training, explanations).
    pub fn feature_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_feature(|f| out.push(f.to_string()));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The mail as a sparse vector over a vocabulary: each known feature
    /// once, valued `1/sqrt(n)` with `n` the known features of its group
    /// (cues count 1), sorted by index. `index` maps a name to its column.
    pub fn vectorize(&self, index: impl Fn(&str) -> Option<u32>) -> Vec<(u32, f32)> {
        let mut hits: Vec<(u32, u8)> = Vec::new();
        self.for_each_feature(|f| {
            if let Some(i) = index(f) {
                hits.push((i, f.as_bytes()[0]));
            }
        });
        hits.sort_unstable();
        hits.dedup();
        let mut per_group = [0usize; 128];
        for &(_, g) in &hits {
            per_group[usize::from(g & 0x7f)] += 1;
        }
        hits.iter()
            .map(|&(i, g)| {
                let v = if g == b'f' {
                    1.0
                } else {
                    1.0 / (per_group[usize::from(g & 0x7f)] as f32).sqrt()
                };
                (i, v)
            })
            .collect()
    }

    fn sentences(&self) -> impl Iterator<Item = &[Token]> {
        self.tokens
            .chunk_by(|a, b| a.sentence == b.sentence)
            .filter(|s| !s.is_empty())
    }

    /// The linguistic cues present, by name (worked out once, in `prepare`).
    pub fn cues(&self) -> Vec<&'static str> {
        self.cues.clone()
    }

    fn compute_cues(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut aimed_at_us = false;
        let mut aimed_elsewhere = false;
        let mut own_fault = false;
        let mut dissatisfied = false;
        let mut explicit = false;
        let mut failure = false;
        let mut reproach = false;
        for s in self.sentences() {
            let negative = s.iter().any(|t| is_any(&t.word, NEGATIVE));
            let failed = has_phrase(s, &FAILURE_WORDS) || negated_service(s);
            failure |= failed;
            if negative || failed {
                if s.iter().any(|t| is_any(&t.word, THIRD_PARTY)) {
                    aimed_elsewhere = true;
                } else if s.iter().any(|t| is_any(&t.word, SECOND_PERSON)) {
                    aimed_at_us = true;
                } else if negative {
                    // "Ik ben teleurgesteld": unhappy, at no one named.
                    dissatisfied = true;
                } else if s.iter().any(|t| is_any(&t.word, FIRST_PERSON)) {
                    // "Ik ben de factuur vergeten": what went wrong was mine.
                    own_fault = true;
                }
            }
            // "Hierbij dien ik een klacht in", "I am writing to complain":
            // said, not asked about ("hoe dien ik…?") or supposed ("als ik…").
            if s.iter().any(|t| is_any(&t.word, COMPLAINT_WORDS))
                && s.iter().any(|t| is_any(&t.word, FIRST_PERSON))
                && !s.iter().any(|t| t.question || is_any(&t.word, CONDITIONAL))
                && !has_phrase(s, &NO_COMPLAINT_WORDS)
            {
                explicit = true;
            }
            if has_phrase(s, &APOLOGY_WORDS) && s.iter().any(|t| is_any(&t.word, FIRST_PERSON)) {
                own_fault = true;
            }
            if s.first().is_some_and(|t| t.question)
                && (has_phrase(s, &REPROACH_QUESTION_WORDS) || negative || failed)
            {
                reproach = true;
            }
        }
        let all = self.tokens.as_slice();
        let present = [
            (aimed_at_us, "aimed_at_us"),
            (aimed_elsewhere, "aimed_elsewhere"),
            (own_fault, "own_fault"),
            (dissatisfied, "dissatisfied"),
            (explicit, "explicit_complaint"),
            (failure, "service_failed"),
            (has_phrase(all, &REMEDY_WORDS), "asks_remedy"),
            (reproach, "reproachful_question"),
            (has_phrase(all, &ESCALATION_WORDS), "escalation"),
            (has_phrase(all, &NO_COMPLAINT_WORDS), "no_complaint"),
            (has_phrase(all, &PRAISE_WORDS), "praise"),
            (all.len() < 40, "short"),
            (all.len() > 250, "long"),
        ];
        out.extend(present.iter().filter(|(on, _)| *on).map(|(_, name)| *name));
        out
    }
}

impl Prepared {
    /// Does the writer say, in so many words, that they file a complaint
    /// ("Hierbij dien ik een klacht in", "I wish to lodge a complaint", "ik
    /// heb een klacht: ik ben ontevreden over …")? A statement, not a question about how, not
    /// a supposition, and not about a third party. Not a model feature: a
    /// rule on top of the model, so that such a mail never goes unseen
    /// however short it is (`score_complaint`).
    pub fn files_complaint(&self) -> bool {
        self.states_complaint(true)
    }

    /// Like `files_complaint`, but only with a verb of filing ("dien …
    /// in", "lodge", "hierbij"), not merely a word of displeasure: the
    /// writer does what art. 3 describes.
    pub fn lodges_complaint(&self) -> bool {
        self.states_complaint(false)
    }

    fn states_complaint(&self, displeasure_counts: bool) -> bool {
        if self.cues().contains(&"aimed_elsewhere") {
            return false;
        }
        self.sentences().any(|s| {
            s.iter().any(|t| is_any(&t.word, COMPLAINT_WORDS))
                && s.iter().any(|t| {
                    (is_any(&t.word, FILING) && !is_any(&t.word, &["klaag", "klagen", "beklag"]))
                        || (displeasure_counts
                            && is_any(&t.word, NEGATIVE)
                            && !is_any(&t.word, COMPLAINT_WORDS))
                })
                && s.iter().any(|t| is_any(&t.word, FIRST_PERSON))
                && !s.iter().any(|t| {
                    t.question || is_any(&t.word, CONDITIONAL) || is_any(&t.word, THIRD_PARTY)
                })
                && !has_phrase(s, &NO_COMPLAINT_WORDS)
        })
    }
}

/// Verbs and markers of filing a complaint (with a complaint word).
#[rustfmt::skip]
const FILING: &[&str] = &[
    "dien", "dienen", "indienen", "hierbij", "bijdeze", "formeel", "officieel", "officiele",
    "klaag", "klagen", "beklag", "lodge", "lodging", "file", "filing", "submit", "submitting",
    "formal", "formally", "writing", "hereby", "register", "raise", "make",
];

/// A pattern word: exact, or a prefix when it ends in `*`.
fn is(pat: &str, w: &str) -> bool {
    // Most pairs differ in their first letter: no need to compare further.
    if pat.as_bytes().first() != w.as_bytes().first() {
        return false;
    }
    match pat.strip_suffix('*') {
        Some(p) => w.starts_with(p),
        None => pat == w,
    }
}

fn is_any(w: &str, pats: &[&str]) -> bool {
    pats.iter().any(|p| is(p, w))
}

/// Does any of `phrases` (pattern words) occur in `toks` within one
/// sentence? The first word is checked on its own, for every token.
fn has_phrase(toks: &[Token], phrases: &[Vec<&str>]) -> bool {
    phrases.iter().any(|pat| {
        let Some((first, rest)) = pat.split_first() else {
            return false;
        };
        toks.iter().enumerate().any(|(i, t)| {
            is(first, &t.word)
                && rest.iter().enumerate().all(|(k, p)| {
                    toks.get(i + 1 + k)
                        .is_some_and(|u| u.sentence == t.sentence && is(p, &u.word))
                })
        })
    })
}

/// A phrase list split into its words once.
type Phrases = LazyLock<Vec<Vec<&'static str>>>;

fn words_of(list: &'static [&'static str]) -> Vec<Vec<&'static str>> {
    list.iter().map(|ph| ph.split(' ').collect()).collect()
}

static FAILURE_WORDS: Phrases = LazyLock::new(|| words_of(FAILURE));
static NO_COMPLAINT_WORDS: Phrases = LazyLock::new(|| words_of(NO_COMPLAINT));
static APOLOGY_WORDS: Phrases = LazyLock::new(|| words_of(APOLOGY));
static REPROACH_QUESTION_WORDS: Phrases = LazyLock::new(|| words_of(REPROACH_QUESTION));
static REMEDY_WORDS: Phrases = LazyLock::new(|| words_of(REMEDY));
static ESCALATION_WORDS: Phrases = LazyLock::new(|| words_of(ESCALATION));
static PRAISE_WORDS: Phrases = LazyLock::new(|| words_of(PRAISE));

/// "niet doorgegaan", "never arrived", "geen reactie": a negation right
/// before a word of delivery.
fn negated_service(s: &[Token]) -> bool {
    s.windows(3).any(|w| {
        is_any(&w[0].word, NEGATORS)
            && (is_any(&w[1].word, DELIVERY) || is_any(&w[2].word, DELIVERY))
    })
}

#[rustfmt::skip]
const NEGATORS: &[&str] = &["niet", "geen", "nooit", "not", "never", "no", "nothing", "niets", "didnt", "hasnt", "havent", "wasnt", "werent", "isnt", "dont", "doesnt", "nog"];

#[rustfmt::skip]
const DELIVERY: &[&str] = &[
    "doorgegaan", "doorgaan", "ontvangen", "gekregen", "gestuurd", "verstuurd", "opgestuurd",
    "gereageerd", "reactie", "antwoord", "beantwoord", "teruggebeld", "nagekomen", "opgedaagd",
    "verschenen", "geleverd", "aangekomen", "terugbetaald", "bereikbaar", "gehoord",
    "received", "arrived", "sent", "replied", "reply", "response", "answered", "showed",
    "show", "delivered", "refunded", "called", "heard", "happened", "turned",
];

#[rustfmt::skip]
const FAILURE: &[&str] = &[
    "afgezegd", "geannuleerd", "last minute", "op het laatste moment", "te laat", "kwam niet",
    "niet komen opdagen", "stond voor een dichte deur", "dichte deur", "dubbel", "twee keer betaald",
    "twee keer gefactureerd", "2x", "onbeschoft", "onvriendelijk", "bot", "respectloos",
    "nooit", "kwijt", "vergeten", "verkeerd*", "fout*", "onjuist*", "belofte*", "beloofd",
    "niet nagekomen", "zonder bericht", "zonder te laten weten", "onbereikbaar",
    "cancel*", "called off", "no show", "no-show", "didnt show", "did not show", "late",
    "never", "twice", "double", "charged", "overcharged", "rude", "dismissive", "lost",
    "forgot*", "wrong", "incorrect", "promised", "broken", "without notice", "unreachable",
];

#[rustfmt::skip]
const NEGATIVE: &[&str] = &[
    "ontevreden", "teleurgesteld", "teleurstell*", "boos", "kwaad", "woedend", "gefrustreerd",
    "frustrat*", "jammer", "spijtig", "onacceptabel", "onaanvaardbaar", "schandalig", "belachelijk",
    "onprofessioneel", "slecht*", "klacht*", "klagen", "vervelend", "storend", "ergerlijk",
    "onbeschoft", "respectloos", "stom", "waardeloos", "helaas", "probleem", "problemen",
    "dissatisfied", "unhappy", "disappointed", "disappointing", "angry", "furious", "frustrated",
    "unacceptable", "ridiculous", "unprofessional", "poor", "bad", "terrible", "awful", "complain*",
    "annoy*", "upset", "shocked", "rude", "appalling", "worst",
];

#[rustfmt::skip]
const SECOND_PERSON: &[&str] = &[
    "jullie", "u", "uw", "je", "jouw", "jij", "gij", "ge", "uwe", "31solutions", "coach", "trainer",
    "trainster", "docent", "begeleider", "organisatie", "bureau", "you", "your", "yours",
    "facilitator",
];

#[rustfmt::skip]
const FIRST_PERSON: &[&str] = &["ik", "mijn", "mij", "me", "wij", "we", "i", "im", "ive", "my", "mine", "our", "ons", "onze"];

#[rustfmt::skip]
const COMPLAINT_WORDS: &[&str] = &[
    "klacht", "klachten", "klaag", "klagen", "beklag", "complaint", "complaints", "complain",
    "complaining",
];

#[rustfmt::skip]
const CONDITIONAL: &[&str] = &[
    "als", "indien", "wanneer", "mocht", "stel", "hoe", "if", "when", "whether", "should", "how",
];

#[rustfmt::skip]
const APOLOGY: &[&str] = &[
    "sorry", "excuses", "excuus", "mijn fout", "mijn schuld", "onze fout", "ik moet afzeggen",
    "moet ik afzeggen", "afmelden", "apolog*", "my mistake", "my fault", "my bad", "our mistake",
    "i have to cancel", "i need to cancel", "i must cancel", "pardon",
];

#[rustfmt::skip]
const THIRD_PARTY: &[&str] = &[
    "werkgever", "baas", "leidinggevende", "manager", "collega*", "directie", "afdeling",
    "ns", "trein*", "gemeente", "belastingdienst", "verzekeraar", "zorgverzekeraar", "buurman",
    "buren", "huisbaas", "employer", "boss", "colleague*", "train", "trains", "council",
    "landlord", "insurer", "neighbour*", "neighbor*", "werk", "job",
];

#[rustfmt::skip]
const REMEDY: &[&str] = &[
    "terugbetal*", "geld terug", "restitutie", "creditnota", "creditfactuur", "vergoed*",
    "compensatie", "tegemoetkoming", "nieuwe afspraak", "nieuwe datum", "inhaalsessie",
    "excuses", "excuus", "verontschuldig*", "billijk", "redelijk", "verwacht ik", "ik verwacht",
    "graag zie ik", "mijn voorstel", "ik stel voor", "ik wil graag", "ik zou graag", "ik eis",
    "zou ik graag", "kosteloos", "gratis", "korting", "andere coach", "andere trainer",
    "refund*", "money back", "reimburs*", "credit note", "compensat*", "apolog*", "new appointment",
    "new date", "id like", "i would like", "i expect", "i demand", "i want", "please send",
    "discount", "free of charge", "another coach", "different coach", "fair",
];

#[rustfmt::skip]
const REPROACH_QUESTION: &[&str] = &[
    "normaal dat", "hoe kan het", "waarom", "klopt het", "mag ik vragen waarom", "hoe is het mogelijk",
    "is dit", "is dat", "vindt u het", "vinden jullie", "is it normal", "how come", "why", "how is it",
    "is this", "is that", "how can", "do you think",
];

#[rustfmt::skip]
const ESCALATION: &[&str] = &[
    "voor de tweede keer", "voor de derde keer", "voor de zoveelste keer", "nog steeds",
    "nog altijd", "alweer", "wederom", "opnieuw", "herinnering", "eerder gemaild", "meerdere keren",
    "for the second time", "for the third time", "still", "again", "once more", "several times",
    "multiple times", "reminder", "second time", "third time",
];

#[rustfmt::skip]
const NO_COMPLAINT: &[&str] = &[
    "geen klacht*", "niets te klagen", "niks te klagen", "niet klagen", "geen probleem",
    "no complaint*", "nothing to complain", "not a complaint", "no problem", "cant complain",
];

#[rustfmt::skip]
const PRAISE: &[&str] = &[
    "tevreden", "dank", "bedankt", "top", "geweldig", "fantastisch", "fijn", "prettig",
    "leerzaam", "aanrader", "compliment*", "thank*", "great", "excellent", "wonderful",
    "helpful", "enjoyed", "satisfied", "amazing", "recommend",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn names(subject: &str, body: &str) -> Vec<String> {
        prepare(subject, body).feature_names()
    }

    #[test]
    fn words_are_stemmed_by_language_and_bigrams_stay_in_a_sentence() {
        let f = names(
            "Sessies",
            "De sessies gingen niet door. Graag een nieuwe afspraak.",
        );
        assert!(f.contains(&"w:sessies".to_string()) || f.contains(&"w:sessie".to_string()));
        assert!(f
            .iter()
            .any(|x| x.starts_with("b:gen_niet") || x == "b:ging_niet"));
        assert!(!f.iter().any(|x| x == "b:door_grag" || x == "b:door_graag"));
        let en = prepare(
            "",
            "The sessions were cancelled twice and nobody told me why.",
        );
        assert_eq!(en.lang, Lang::En);
        assert!(en.feature_names().contains(&"w:session".to_string()));
    }

    #[test]
    fn character_grams_survive_typos() {
        let a = names("", "teleurgesteld");
        let b = names("", "teleurgesteldt");
        let shared = a
            .iter()
            .filter(|x| x.starts_with("c:") && b.contains(x))
            .count();
        assert!(shared >= 8, "{a:?} {b:?}");
    }

    #[test]
    fn cues_see_who_is_blamed_what_failed_and_what_is_wanted() {
        let p = prepare(
            "",
            "Jullie trainer heeft de sessie afgezegd. Ik ben teleurgesteld. Graag zie ik mijn geld terug.",
        );
        let c = p.cues();
        assert!(c.contains(&"aimed_at_us"), "{c:?}");
        assert!(c.contains(&"service_failed"), "{c:?}");
        assert!(c.contains(&"asks_remedy"), "{c:?}");
        let other = prepare(
            "",
            "Mijn werkgever is echt slecht bezig, ik ben zo ontevreden over mijn baas.",
        );
        let c = other.cues();
        assert!(
            c.contains(&"aimed_elsewhere") && !c.contains(&"aimed_at_us"),
            "{c:?}"
        );
        let q = prepare("", "Is het normaal dat niemand reageert op mijn mails?");
        assert!(q.cues().contains(&"reproachful_question"));
    }

    #[test]
    fn quoted_history_is_not_read() {
        let p = prepare(
            "",
            "Dank voor de info.\n\nOp 3 mei 2026 schreef Anna:\n> de sessie is geannuleerd",
        );
        assert!(!p.feature_names().iter().any(|f| f.contains("geannuleerd")));
    }

    #[test]
    fn odd_input_gives_features_without_panicking() {
        for s in [
            "",
            "?",
            "!!!",
            "ß",
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ☃☃☃",
            "a\u{300}\u{301}",
            &"x".repeat(100_000),
        ] {
            let _ = prepare(s, s).feature_names();
        }
    }
}
