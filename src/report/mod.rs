//! The periodic analysis of the register (art. 10), as a pure function of
//! the cases received in a period and their register records
//! ([`crate::register`]). Working days come from the organisation calendar,
//! days and months are local.

pub mod chart;
pub mod mail;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::civil::Date;
use serde::Serialize;

use crate::domain::types::{EmailAddress, Lang};
use crate::register::{Outcome, Record};
use crate::store::CaseRow;

#[derive(Debug, Serialize, PartialEq, Clone)]
pub struct Report {
    pub from: String,
    pub to: String,
    /// The terms judged: acknowledgement (art. 5) and response (art. 6).
    pub ack_working_days: u32,
    pub response_working_days: u32,
    /// Complaints received in the period (triage items and mail judged not
    /// to be a complaint are not counted).
    pub total: usize,
    pub triage: usize,
    pub no_complaint: usize,
    pub by_category: BTreeMap<String, usize>,
    pub by_month: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    pub by_outcome: BTreeMap<String, usize>,
    pub by_source: BTreeMap<String, usize>,
    /// Staff members complaints were about (counts per address).
    pub by_concerned: BTreeMap<String, usize>,
    /// The acknowledgement term (art. 5).
    pub acknowledgement: Timeliness,
    /// The response term as extended (art. 6).
    pub response: Timeliness,
    /// The response term without extensions (the regulation's 20 days).
    pub response_within_term: Timeliness,
    pub extensions: Extensions,
    /// Referred to the external complaints body (art. 8).
    pub external: External,
    /// Clients with more than one complaint in the period, and their complaints.
    pub repeat_complainants: usize,
    pub repeat_complaints: usize,
    /// Per month: complaints per category and on-time rates (the chart).
    pub months: Vec<Month>,
}

#[derive(Debug, Serialize, PartialEq, Default, Clone)]
pub struct Timeliness {
    /// Cases whose term has passed or that were done.
    pub measured: usize,
    pub on_time: usize,
    pub late: usize,
    /// on_time / measured, or null when nothing could be measured yet.
    pub on_time_rate: Option<f64>,
    pub median_working_days: Option<f64>,
    pub max_working_days: Option<i64>,
}

#[derive(Debug, Serialize, PartialEq, Default, Clone)]
pub struct Extensions {
    /// Cases extended at least once, and extensions in all.
    pub cases: usize,
    pub total: usize,
    pub items: Vec<ExtensionItem>,
}

#[derive(Debug, Serialize, PartialEq, Clone)]
pub struct ExtensionItem {
    pub reference: String,
    pub days: Option<u64>,
    pub reason: String,
    /// Who the case concerns: the mailed report leaves the item out for them.
    #[serde(skip)]
    pub concerns: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq, Default, Clone)]
pub struct External {
    pub count: usize,
    pub references: Vec<String>,
    /// Who each referred case concerns (`references[i]`).
    #[serde(skip)]
    pub concerns: Vec<Vec<String>>,
}

#[derive(Debug, Serialize, PartialEq, Clone)]
pub struct Month {
    pub month: String,
    pub by_category: BTreeMap<String, usize>,
    pub acknowledgement_on_time_rate: Option<f64>,
    pub response_on_time_rate: Option<f64>,
}

impl Report {
    /// The report as one reader may see it: every count stays, but the
    /// lines that name a case concerning the reader go (art. 9).
    pub fn for_reader(&self, email: &str) -> Report {
        let mine = |c: &[String]| c.iter().any(|x| x.eq_ignore_ascii_case(email));
        let mut r = self.clone();
        r.extensions.items.retain(|e| !mine(&e.concerns));
        let (references, concerns) = self
            .external
            .references
            .iter()
            .zip(&self.external.concerns)
            .filter(|(_, c)| !mine(c))
            .map(|(r, c)| (r.clone(), c.clone()))
            .unzip();
        r.external.references = references;
        r.external.concerns = concerns;
        r
    }
}

fn rate(on_time: usize, measured: usize) -> Option<f64> {
    (measured > 0).then(|| (on_time as f64 / measured as f64 * 1000.0).round() / 1000.0)
}

/// `(kept, working days taken)` per case → counts, rate, median and max.
fn timeliness(items: impl Iterator<Item = (Option<bool>, Option<i64>)>) -> Timeliness {
    let mut t = Timeliness::default();
    let mut days = Vec::new();
    for (kept, took) in items {
        match kept {
            Some(true) => t.on_time += 1,
            Some(false) => t.late += 1,
            None => {}
        }
        days.extend(took);
    }
    t.measured = t.on_time + t.late;
    t.on_time_rate = rate(t.on_time, t.measured);
    days.sort_unstable();
    t.median_working_days = match days.len() {
        0 => None,
        n if n % 2 == 1 => Some(days[n / 2] as f64),
        n => Some((days[n / 2 - 1] + days[n / 2]) as f64 / 2.0),
    };
    t.max_working_days = days.last().copied();
    t
}

fn addresses(list: &[EmailAddress]) -> Vec<String> {
    list.iter().map(EmailAddress::to_string).collect()
}

fn zeroes() -> BTreeMap<String, usize> {
    crate::domain::types::Category::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), 0))
        .collect()
}

/// Builds the analysis of the cases received in `from..=to` (local dates).
/// `records[i]` belongs to `cases[i]`.
pub fn build(
    cases: &[CaseRow],
    records: &[Record],
    from: Date,
    to: Date,
    terms: &crate::config::Procedure,
) -> Report {
    let in_period: Vec<(&CaseRow, &Record)> = cases
        .iter()
        .zip(records)
        .filter(|(_, r)| r.received_on >= from && r.received_on <= to)
        .collect();
    let count = |o: Outcome| in_period.iter().filter(|(_, r)| r.outcome == o).count();
    let complaints: Vec<(&CaseRow, &Record)> = in_period
        .iter()
        .copied()
        .filter(|(_, r)| r.outcome.is_complaint())
        .collect();
    let mut r = Report {
        from: from.to_string(),
        to: to.to_string(),
        ack_working_days: terms.ack_working_days,
        response_working_days: terms.response_working_days,
        total: complaints.len(),
        triage: count(Outcome::Triage),
        no_complaint: count(Outcome::NoComplaint),
        by_category: zeroes(),
        by_month: BTreeMap::new(),
        by_status: BTreeMap::new(),
        by_outcome: BTreeMap::new(),
        by_source: BTreeMap::new(),
        by_concerned: BTreeMap::new(),
        acknowledgement: Timeliness::default(),
        response: Timeliness::default(),
        response_within_term: Timeliness::default(),
        extensions: Extensions::default(),
        external: External::default(),
        repeat_complainants: 0,
        repeat_complaints: 0,
        months: Vec::new(),
    };
    tally(&mut r, &complaints);
    r.acknowledgement = timeliness(
        complaints
            .iter()
            .map(|(_, x)| (x.ack_on_time, x.ack_working_days)),
    );
    r.response = timeliness(
        complaints
            .iter()
            .map(|(_, x)| (x.response_on_time, x.response_working_days)),
    );
    r.response_within_term = timeliness(
        complaints
            .iter()
            .map(|(_, x)| (x.response_within_term, None)),
    );
    r.months = monthly(cases, records, from, to);
    r
}

/// Counts the complaints by category, month, status, outcome, channel and
/// person concerned; their extensions, referrals and repeat complainants.
fn tally(r: &mut Report, complaints: &[(&CaseRow, &Record)]) {
    let mut per_client: BTreeMap<String, usize> = BTreeMap::new();
    for (c, rec) in complaints {
        let bump =
            |m: &mut BTreeMap<String, usize>, k: &str| *m.entry(k.to_string()).or_default() += 1;
        bump(&mut r.by_category, c.category.as_str());
        bump(&mut r.by_month, &month_of(rec.received_on));
        bump(&mut r.by_status, c.status.as_str());
        bump(&mut r.by_outcome, rec.outcome.as_str());
        bump(&mut r.by_source, c.source.as_str());
        for who in &c.concerns {
            bump(&mut r.by_concerned, &who.key());
        }
        // The token outlives anonymisation; the address is the fallback.
        if let Some(k) = c
            .client_token
            .clone()
            .or_else(|| c.client_email.as_ref().map(EmailAddress::key))
        {
            *per_client.entry(k).or_default() += 1;
        }
        if !rec.extensions.is_empty() {
            r.extensions.cases += 1;
        }
        for e in &rec.extensions {
            r.extensions.total += 1;
            r.extensions.items.push(ExtensionItem {
                reference: c.reference.to_string(),
                days: e.days,
                reason: e.reason.clone(),
                concerns: addresses(&c.concerns),
            });
        }
        if rec.external {
            r.external.count += 1;
            r.external.references.push(c.reference.to_string());
            r.external.concerns.push(addresses(&c.concerns));
        }
    }
    r.repeat_complainants = per_client.values().filter(|n| **n > 1).count();
    r.repeat_complaints = per_client.values().filter(|n| **n > 1).sum();
}

/// Per month touched by `from..=to`: the complaints received, by category,
/// and the share of them that kept the acknowledgement term (art. 5) and the
/// response term as extended (art. 6). The report's own months, and the
/// mail's chart of the last twelve months.
pub fn monthly(cases: &[CaseRow], records: &[Record], from: Date, to: Date) -> Vec<Month> {
    let complaints: Vec<(&CaseRow, &Record)> = cases
        .iter()
        .zip(records)
        .filter(|(_, r)| r.received_on >= from && r.received_on <= to)
        .filter(|(_, r)| r.outcome.is_complaint())
        .collect();
    months(from, to)
        .into_iter()
        .map(|m| {
            let these: Vec<&(&CaseRow, &Record)> = complaints
                .iter()
                .filter(|(_, x)| month_of(x.received_on) == m)
                .collect();
            let mut by_category = zeroes();
            for (c, _) in &these {
                *by_category
                    .entry(c.category.as_str().to_string())
                    .or_default() += 1;
            }
            let ack = timeliness(these.iter().map(|(_, x)| (x.ack_on_time, None)));
            let resp = timeliness(these.iter().map(|(_, x)| (x.response_on_time, None)));
            Month {
                month: m,
                by_category,
                acknowledgement_on_time_rate: ack.on_time_rate,
                response_on_time_rate: resp.on_time_rate,
            }
        })
        .collect()
}

fn month_of(d: Date) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// Every month touched by `from..=to`, at most 120.
fn months(from: Date, to: Date) -> Vec<String> {
    let mut out = Vec::new();
    let mut d = from.first_of_month();
    while d <= to && out.len() < 120 {
        out.push(month_of(d));
        match d.checked_add(jiff::ToSpan::months(1)) {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    out
}

/// The report as text for a terminal (and the mail's text part).
pub fn text(r: &Report, lang: Lang) -> String {
    let t = |nl: &'static str, en: &'static str| if lang == Lang::Nl { nl } else { en };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} {} {}",
        t("Klachtenanalyse", "Complaints analysis"),
        r.from,
        t("t/m", "to"),
        r.to
    );
    let _ = writeln!(s, "{}", "=".repeat(48));
    let _ = writeln!(
        s,
        "{}: {}   ({}: {}, {}: {})",
        t("Klachten", "Complaints"),
        r.total,
        t("ter beoordeling", "in triage"),
        r.triage,
        t("geen klacht", "not a complaint"),
        r.no_complaint
    );
    for (title, m) in [
        (t("Per categorie", "By category"), &r.by_category),
        (t("Per maand", "By month"), &r.by_month),
        (t("Per uitkomst", "By outcome"), &r.by_outcome),
        (t("Per status", "By status"), &r.by_status),
        (t("Per kanaal", "By channel"), &r.by_source),
        (
            t("Per betrokken medewerker", "By staff member concerned"),
            &r.by_concerned,
        ),
    ] {
        text_table(&mut s, title, m);
    }
    let _ = writeln!(s);
    text_terms(&mut s, r, lang);
    text_tail(&mut s, r, lang);
    s
}

fn text_table(s: &mut String, title: &str, m: &BTreeMap<String, usize>) {
    let _ = writeln!(s, "\n{title}:");
    if m.is_empty() {
        let _ = writeln!(s, "  -");
    }
    for (k, v) in m {
        let _ = writeln!(s, "  {k:<32} {v:>4}");
    }
}

/// The acknowledgement and response terms: on time, late, median, max.
fn text_terms(s: &mut String, r: &Report, lang: Lang) {
    let t = |nl: &'static str, en: &'static str| if lang == Lang::Nl { nl } else { en };
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    let num = |x: Option<f64>| x.map_or("-".to_string(), |d| d.to_string());
    for (name, x) in [
        (
            format!(
                "{} {} {} (art. 5)",
                t("Ontvangstbevestiging,", "Acknowledgement,"),
                r.ack_working_days,
                t("werkdagen", "working days")
            ),
            &r.acknowledgement,
        ),
        (
            t(
                "Inhoudelijke reactie, termijn incl. verlenging (art. 6)",
                "Response, term incl. extension (art. 6)",
            )
            .to_string(),
            &r.response,
        ),
        (
            format!(
                "{} {} {}",
                t("Inhoudelijke reactie binnen", "Response within"),
                r.response_working_days,
                t("werkdagen", "working days")
            ),
            &r.response_within_term,
        ),
    ] {
        let _ = writeln!(s, "{name}:");
        let _ = writeln!(
            s,
            "  {} {} {} {} ({}), {} {}",
            t("op tijd", "on time"),
            x.on_time,
            t("van", "of"),
            x.measured,
            pct(x.on_time_rate),
            t("te laat", "late"),
            x.late
        );
        if x.median_working_days.is_some() {
            let _ = writeln!(
                s,
                "  {} {} / {} {} {}",
                t("mediaan", "median"),
                num(x.median_working_days),
                t("max", "max"),
                num(x.max_working_days.map(|d| d as f64)),
                t("werkdagen", "working days")
            );
        }
    }
}

/// Extensions (art. 6), referrals to the external body (art. 8) and
/// repeat complainants.
fn text_tail(s: &mut String, r: &Report, lang: Lang) {
    let t = |nl: &'static str, en: &'static str| if lang == Lang::Nl { nl } else { en };
    let _ = writeln!(
        s,
        "\n{}: {} {} ({} {})",
        t("Verlengingen", "Extensions"),
        r.extensions.total,
        t("keer", "times"),
        r.extensions.cases,
        t("zaken", "cases")
    );
    for e in &r.extensions.items {
        let days = e.days.map(|d| format!(" +{d}")).unwrap_or_default();
        let _ = writeln!(s, "  {}{days}: {}", e.reference, e.reason);
    }
    let _ = writeln!(
        s,
        "{}: {}{}",
        t(
            "Naar de externe klachtencommissie (art. 8)",
            "Referred to the external body (art. 8)"
        ),
        r.external.count,
        if r.external.references.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.external.references.join(", "))
        }
    );
    let _ = writeln!(
        s,
        "{}: {} ({} {})",
        t("Herhaalde indieners", "Repeat complainants"),
        r.repeat_complainants,
        r.repeat_complaints,
        t("klachten", "complaints")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::Calendar;
    use crate::domain::types::{Category, Status};
    use crate::register::tests::{case, event};
    use serde_json::json;

    #[test]
    fn the_analysis_counts_what_a_person_would_count_by_hand() {
        let cal = Calendar::dutch_default();
        let mut c1 = case(1, Status::Closed, "2026-11-02T09:00:00Z");
        c1.ack_sent_at = Some("2026-11-02T09:01:00Z".parse().unwrap());
        c1.concerns = vec!["Carla@31solutions.test".parse().unwrap()];
        let mut c2 = case(2, Status::Acknowledged, "2026-11-02T10:00:00Z");
        c2.ack_sent_at = Some("2026-11-10T08:00:00Z".parse().unwrap());
        c2.client_token = Some("7f3a".into());
        let mut c3 = case(3, Status::External, "2026-10-05T09:00:00Z");
        c3.category = Category::Communicatie;
        c3.client_email = None; // anonymised: only the token is left
        c3.anonymised_at = Some("2026-11-20T00:00:00Z".parse().unwrap());
        c3.client_token = Some("7f3a".into());
        c3.response_due = "2026-11-09".parse().unwrap();
        let c4 = case(4, Status::Triage, "2026-11-03T09:00:00Z");
        let c5 = case(5, Status::Closed, "2026-11-04T09:00:00Z");
        let c6 = case(6, Status::Closed, "2026-09-01T09:00:00Z");
        let mut c7 = case(7, Status::InProgress, "2026-11-16T09:00:00Z");
        c7.category = Category::Dienstverlening;
        c7.source = crate::domain::case::Source::Phone;
        c7.client_email = None;
        c7.concerns = vec!["bram@31solutions.test".parse().unwrap()];
        let cases = vec![c1, c2, c3, c4, c5, c6, c7];
        let events = vec![
            // Answered Fri 20 Nov (14 working days; due 30 Nov): on time.
            (1, event("2026-11-20T10:00:00Z", "proposal", json!({}))),
            (1, event("2026-11-23T09:00:00Z", "agreed", json!({}))),
            (1, event("2026-11-23T09:00:01Z", "closed", json!({}))),
            // Extended from 2 to 9 Nov, rejected 11 Nov (27 working days): late.
            (
                3,
                event(
                    "2026-10-28T09:00:00Z",
                    "extended",
                    json!({"old_due": "2026-11-02", "new_due": "2026-11-09", "days": 5, "reason": "wacht op verslag"}),
                ),
            ),
            (3, event("2026-11-11T09:00:00Z", "rejection", json!({}))),
            (3, event("2026-11-13T09:00:00Z", "external", json!({}))),
            (5, event("2026-11-04T10:00:00Z", "dismissed", json!({}))),
            (5, event("2026-11-04T10:00:00Z", "closed", json!({}))),
        ];
        let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
        let today = "2026-11-23".parse().unwrap();
        let records = crate::register::records(&cases, &events, today, &tz, &cal);
        let r = build(
            &cases,
            &records,
            "2026-10-01".parse().unwrap(),
            "2026-11-30".parse().unwrap(),
            &crate::config::tests::settings().procedure,
        );
        assert_eq!((r.total, r.triage, r.no_complaint), (4, 1, 1));
        let counts = |m: &BTreeMap<String, usize>| -> Vec<(String, usize)> {
            m.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        let pairs = |v: &[(&str, usize)]| -> Vec<(String, usize)> {
            v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        assert_eq!(
            counts(&r.by_category),
            pairs(&[
                ("coaching", 2),
                ("communicatie", 1),
                ("dienstverlening", 1),
                ("overig", 0)
            ])
        );
        assert_eq!(
            counts(&r.by_month),
            pairs(&[("2026-10", 1), ("2026-11", 3)])
        );
        assert_eq!(
            counts(&r.by_outcome),
            pairs(&[("agreed", 1), ("external", 1), ("open", 2)])
        );
        assert_eq!(counts(&r.by_source), pairs(&[("email", 3), ("phone", 1)]));
        assert_eq!(
            counts(&r.by_concerned),
            pairs(&[("bram@31solutions.test", 1), ("carla@31solutions.test", 1)])
        );
        // Acknowledgements: case 1 same day, case 2 after 6 working days
        // (due 9 Nov), case 3 never (due 12 Oct); the phone case needs none.
        let a = &r.acknowledgement;
        assert_eq!((a.measured, a.on_time, a.late), (3, 1, 2));
        assert_eq!(a.on_time_rate, Some(0.333));
        assert_eq!(
            (a.median_working_days, a.max_working_days),
            (Some(3.0), Some(6))
        );
        // Answers: case 1 in 14 working days (on time), case 3 in 27 (late
        // even for the extended date); cases 2 and 7 are not due yet.
        let x = &r.response;
        assert_eq!((x.measured, x.on_time, x.late), (2, 1, 1));
        assert_eq!(
            (x.median_working_days, x.max_working_days),
            (Some(20.5), Some(27))
        );
        let w = &r.response_within_term;
        assert_eq!((w.measured, w.on_time, w.late), (2, 1, 1));
        assert_eq!((r.extensions.cases, r.extensions.total), (1, 1));
        assert_eq!(r.extensions.items[0].reference, "KL-2026-0003");
        assert_eq!(r.extensions.items[0].reason, "wacht op verslag");
        assert_eq!(r.external.references, vec!["KL-2026-0003"]);
        // A reader the case is about sees the counts, not the lines.
        let c3_about_carla = {
            let mut r = r.clone();
            r.extensions.items[0].concerns = vec!["carla@31solutions.test".into()];
            r.external.concerns[0] = vec!["carla@31solutions.test".into()];
            r.for_reader("Carla@31solutions.test")
        };
        assert!(c3_about_carla.extensions.items.is_empty());
        assert!(c3_about_carla.external.references.is_empty());
        assert_eq!(
            (
                c3_about_carla.extensions.total,
                c3_about_carla.external.count
            ),
            (1, 1)
        );
        assert_eq!(r.for_reader("bram@31solutions.test"), r);
        // Cases 2 and 3: one client, the second one anonymised since.
        assert_eq!((r.repeat_complainants, r.repeat_complaints), (1, 2));
        let m: Vec<(&str, usize, Option<f64>, Option<f64>)> = r
            .months
            .iter()
            .map(|m| {
                (
                    m.month.as_str(),
                    m.by_category.values().sum(),
                    m.acknowledgement_on_time_rate,
                    m.response_on_time_rate,
                )
            })
            .collect();
        assert_eq!(
            m,
            vec![
                ("2026-10", 1, Some(0.0), Some(0.0)),
                ("2026-11", 3, Some(0.5), Some(1.0))
            ]
        );
        let text = text(&r, Lang::Nl);
        assert!(text.contains("Klachten: 4"), "{text}");
        assert!(text.contains("KL-2026-0003 +5: wacht op verslag"), "{text}");
    }
}
