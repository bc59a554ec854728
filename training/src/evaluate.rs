//! Measures what ships on the test split: the decision klachtd's intake
//! takes for each mail (the committed models, through the same functions
//! intake calls), per language, and the article-4 elements and persons
//! concerned against the annotations.

use std::collections::BTreeMap;
use std::fmt::Write;

use klachtd::domain::classify::{self, RosterEntry, Verdict};
use klachtd::domain::types::EmailAddress;

use crate::corpus::{Label, Record};

/// What intake does with a new mail from a client (headers aside: corpus
/// records have none, so none is automated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    /// A case, acknowledged at once.
    Case,
    /// Triage: listed for the supervisors.
    Triage,
    /// Answered with the regulation (art. 11), no case.
    Regulation,
    /// Left alone.
    Ignored,
}

/// The decision and probability intake takes (`intake::decide_and_record`).
pub fn decide(subject: &str, body: &str) -> (Decision, f64) {
    let s = classify::score_complaint(subject, body);
    let d = match s.verdict {
        Verdict::Complaint => Decision::Case,
        // Answered with the regulation too, but triage is what counts here.
        Verdict::Possible => Decision::Triage,
        Verdict::Ordinary if classify::asks_for_regulation(subject, body) => Decision::Regulation,
        Verdict::Ordinary => Decision::Ignored,
    };
    (d, s.probability)
}

/// Counts per language and label.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub n: usize,
    pub case: usize,
    pub triage: usize,
    pub regulation: usize,
    pub ignored: usize,
}

impl Tally {
    fn add(&mut self, d: Decision) {
        self.n += 1;
        match d {
            Decision::Case => self.case += 1,
            Decision::Triage => self.triage += 1,
            Decision::Regulation => self.regulation += 1,
            Decision::Ignored => self.ignored += 1,
        }
    }
}

pub struct Report {
    /// (language, label) → tally.
    pub tallies: BTreeMap<(String, Label), Tally>,
    /// Complaints and borderline mail that reached neither case nor triage.
    pub missed: Vec<(String, Decision, f64)>,
    /// Ordinary mail that got a case (an acknowledgement).
    pub acknowledged_ordinary: Vec<(String, f64)>,
    /// (element, right, total) over complaints and borderline mail.
    pub elements: Vec<(&'static str, usize, usize)>,
    pub text: String,
}

fn roster() -> Vec<(String, EmailAddress, Vec<String>)> {
    [
        ("Anna de Vries", "anna@31solutions.nl", "Anna"),
        ("Bram Bakker", "bram@31solutions.nl", "Bram"),
        ("Carla Smit", "carla@31solutions.nl", "Carla"),
        ("Dirk Jansen", "dirk@31solutions.nl", "Dirk"),
    ]
    .into_iter()
    .filter_map(|(n, e, a)| {
        Some((
            n.to_string(),
            EmailAddress::parse(e).ok()?,
            vec![a.to_string()],
        ))
    })
    .collect()
}

pub fn evaluate(test: &[Record]) -> Report {
    let staff = roster();
    let entries: Vec<RosterEntry> = staff
        .iter()
        .map(|(name, email, aliases)| RosterEntry {
            name,
            email,
            aliases,
        })
        .collect();
    let mut tallies: BTreeMap<(String, Label), Tally> = BTreeMap::new();
    let mut missed = Vec::new();
    let mut acknowledged_ordinary = Vec::new();
    let mut el = [
        ("nature", 0, 0),
        ("dates", 0, 0),
        ("desired_outcome", 0, 0),
        ("concerns", 0, 0),
    ];
    for r in test {
        let (d, p) = decide(&r.subject, &r.body);
        for lang in [r.lang.as_str(), "all"] {
            tallies
                .entry((lang.to_string(), r.label))
                .or_default()
                .add(d);
        }
        match r.label {
            Label::Ordinary if d == Decision::Case => acknowledged_ordinary.push((r.id.clone(), p)),
            Label::Complaint | Label::Borderline
                if !matches!(d, Decision::Case | Decision::Triage) =>
            {
                missed.push((r.id.clone(), d, p))
            }
            _ => {}
        }
        if r.label != Label::Ordinary {
            let e = classify::extract_elements(&r.subject, &r.body);
            let found = [
                e.nature.is_some(),
                e.dates.is_some(),
                e.desired_outcome.is_some(),
            ];
            let want = [r.nature, r.dates, r.outcome];
            for k in 0..3 {
                el[k].2 += 1;
                if found[k] == want[k] {
                    el[k].1 += 1;
                }
            }
            let got: Vec<String> = classify::concerned(&r.subject, &r.body, &entries)
                .iter()
                .filter_map(|a| staff.iter().find(|s| &s.1 == a).map(|s| s.0.clone()))
                .collect();
            let mut want = r.concerns.clone();
            want.sort();
            let mut got_sorted = got.clone();
            got_sorted.sort();
            el[3].2 += 1;
            if want == got_sorted {
                el[3].1 += 1;
            }
        }
    }
    let elements = el.to_vec();
    let text = render(&tallies, &missed, &acknowledged_ordinary, &elements);
    Report {
        tallies,
        missed,
        acknowledged_ordinary,
        elements,
        text,
    }
}

fn pct(a: usize, b: usize) -> String {
    if b == 0 {
        "–".into()
    } else {
        format!("{:.1}% ({a}/{b})", 100.0 * a as f64 / b as f64)
    }
}

fn render(
    tallies: &BTreeMap<(String, Label), Tally>,
    missed: &[(String, Decision, f64)],
    ack_ordinary: &[(String, f64)],
    elements: &[(&'static str, usize, usize)],
) -> String {
    let mut s = String::new();
    let get = |lang: &str, l: Label| {
        tallies
            .get(&(lang.to_string(), l))
            .cloned()
            .unwrap_or_default()
    };
    let _ = writeln!(
        s,
        "| test split | complaints reaching a case or triage | complaints acknowledged at once | borderline reaching a case or triage | ordinary mail acknowledged | ordinary mail to triage | ordinary mail answered with the regulation |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for lang in ["nl", "en", "all"] {
        let c = get(lang, Label::Complaint);
        let b = get(lang, Label::Borderline);
        let o = get(lang, Label::Ordinary);
        let _ = writeln!(
            s,
            "| {lang} | {} | {} | {} | {} | {} | {} |",
            pct(c.case + c.triage, c.n),
            pct(c.case, c.n),
            pct(b.case + b.triage, b.n),
            pct(o.case, o.n),
            pct(o.triage, o.n),
            pct(o.regulation, o.n),
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| article-4 element found or flagged missing as annotated (complaints and borderline) | right |");
    let _ = writeln!(s, "|---|---|");
    for (name, right, n) in elements {
        let _ = writeln!(s, "| {name} | {} |", pct(*right, *n));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Missed (neither case nor triage): {missed:?}");
    let _ = writeln!(s, "Ordinary mail acknowledged: {ack_ordinary:?}");
    s
}
