//! The periodic analysis of the register (art. 10), as a pure function of
//! the cases in a period. Working days come from the organisation calendar.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::Serialize;

use crate::domain::calendar::Calendar;
use crate::store::CaseRow;

#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    pub from: String,
    pub to: String,
    /// Complaints received in the period (triage items not counted).
    pub total: usize,
    pub triage: usize,
    pub by_category: BTreeMap<String, usize>,
    pub by_month: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    pub by_source: BTreeMap<String, usize>,
    /// Staff members complaints were about (counts per address).
    pub by_concerned: BTreeMap<String, usize>,
    pub acknowledgement: Timeliness,
    pub response: Timeliness,
    pub repeat_complainants: usize,
}

#[derive(Debug, Serialize, PartialEq, Default)]
pub struct Timeliness {
    /// Cases whose deadline has passed or that were answered.
    pub measured: usize,
    pub on_time: usize,
    pub late: usize,
    /// on_time / measured, or null when nothing could be measured yet.
    pub on_time_rate: Option<f64>,
    pub median_working_days: Option<i64>,
    pub max_working_days: Option<i64>,
}

/// When a case's substantive answer was given (proposal, rejection, close).
pub struct Responded {
    pub case_id: i64,
    pub on: Date,
}

fn date_of(ts: &str) -> Option<Date> {
    ts.get(..10).and_then(|d| d.parse().ok())
}

fn timeliness(items: &[(Date, Date, Option<Date>)], today: Date, cal: &Calendar) -> Timeliness {
    // (start, due, done)
    let mut t = Timeliness::default();
    let mut days = Vec::new();
    for &(start, due, done) in items {
        match done {
            Some(d) => {
                t.measured += 1;
                if d <= due {
                    t.on_time += 1;
                } else {
                    t.late += 1;
                }
                days.push(cal.working_days_between(start, d));
            }
            None if due < today => {
                t.measured += 1;
                t.late += 1;
            }
            None => {}
        }
    }
    if t.measured > 0 {
        t.on_time_rate = Some((t.on_time as f64 / t.measured as f64 * 1000.0).round() / 1000.0);
    }
    days.sort_unstable();
    t.median_working_days = days
        .get(days.len() / 2)
        .copied()
        .filter(|_| !days.is_empty());
    t.max_working_days = days.last().copied();
    t
}

/// Builds the analysis for cases received in `from..=to` (local dates).
pub fn build(
    cases: &[CaseRow],
    responded: &[Responded],
    from: Date,
    to: Date,
    today: Date,
    cal: &Calendar,
) -> Report {
    let in_period: Vec<&CaseRow> = cases
        .iter()
        .filter(|c| date_of(&c.received_at).is_some_and(|d| d >= from && d <= to))
        .collect();
    let triage = in_period
        .iter()
        .filter(|c| c.status.as_str() == "triage")
        .count();
    let complaints: Vec<&CaseRow> = in_period
        .into_iter()
        .filter(|c| c.status.as_str() != "triage")
        .collect();
    let mut r = Report {
        from: from.to_string(),
        to: to.to_string(),
        total: complaints.len(),
        triage,
        by_category: BTreeMap::new(),
        by_month: BTreeMap::new(),
        by_status: BTreeMap::new(),
        by_source: BTreeMap::new(),
        by_concerned: BTreeMap::new(),
        acknowledgement: Timeliness::default(),
        response: Timeliness::default(),
        repeat_complainants: 0,
    };
    for cat in crate::domain::types::Category::ALL {
        r.by_category.insert(cat.as_str().to_string(), 0);
    }
    let mut per_client: BTreeMap<String, usize> = BTreeMap::new();
    let mut acks = Vec::new();
    let mut answers = Vec::new();
    for c in &complaints {
        *r.by_category
            .entry(c.category.as_str().to_string())
            .or_default() += 1;
        *r.by_month
            .entry(c.received_at.get(..7).unwrap_or("").to_string())
            .or_default() += 1;
        *r.by_status
            .entry(c.status.as_str().to_string())
            .or_default() += 1;
        *r.by_source.entry(c.source.clone()).or_default() += 1;
        for who in &c.concerns {
            *r.by_concerned.entry(who.to_lowercase()).or_default() += 1;
        }
        if let Some(e) = &c.client_email {
            *per_client.entry(e.to_lowercase()).or_default() += 1;
        }
        let (Some(start), Ok(ack_due), Ok(response_due)) = (
            date_of(&c.received_at),
            c.ack_due.parse::<Date>(),
            c.response_due.parse::<Date>(),
        ) else {
            continue;
        };
        acks.push((start, ack_due, c.ack_sent_at.as_deref().and_then(date_of)));
        let done = responded.iter().find(|x| x.case_id == c.id).map(|x| x.on);
        answers.push((start, response_due, done));
    }
    r.repeat_complainants = per_client.values().filter(|n| **n > 1).count();
    r.acknowledgement = timeliness(&acks, today, cal);
    r.response = timeliness(&answers, today, cal);
    r
}

/// The report as text for a terminal.
pub fn text(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    let _ = writeln!(s, "Klachtenanalyse {} t/m {}", r.from, r.to);
    let _ = writeln!(s, "{}", "=".repeat(40));
    let _ = writeln!(s, "Klachten: {}   (ter beoordeling: {})", r.total, r.triage);
    let _ = writeln!(s, "\nPer categorie:");
    for (k, v) in &r.by_category {
        let _ = writeln!(s, "  {k:<18} {v:>4}");
    }
    let _ = writeln!(s, "\nPer maand:");
    for (k, v) in &r.by_month {
        let _ = writeln!(s, "  {k:<18} {v:>4}");
    }
    let _ = writeln!(s, "\nPer status:");
    for (k, v) in &r.by_status {
        let _ = writeln!(s, "  {k:<18} {v:>4}");
    }
    for (name, t) in [
        ("Ontvangstbevestiging (art. 5)", &r.acknowledgement),
        ("Inhoudelijke reactie (art. 6)", &r.response),
    ] {
        let _ = writeln!(
            s,
            "\n{name}: op tijd {} van {} ({}), te laat {}, mediaan {} / max {} werkdagen",
            t.on_time,
            t.measured,
            pct(t.on_time_rate),
            t.late,
            t.median_working_days.map_or("-".into(), |d| d.to_string()),
            t.max_working_days.map_or("-".into(), |d| d.to_string()),
        );
    }
    let _ = writeln!(s, "\nHerhaalde indieners: {}", r.repeat_complainants);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::{Category, Lang, Status};

    fn case(
        id: i64,
        status: Status,
        cat: Category,
        received: &str,
        ack_sent: Option<&str>,
        client: &str,
    ) -> CaseRow {
        let cal = Calendar::dutch_default();
        let day: Date = received[..10].parse().unwrap();
        CaseRow {
            id,
            reference: format!("KL-2026-{id:04}"),
            status,
            category: cat,
            language: Lang::Nl,
            source: "email".into(),
            client_name: "x".into(),
            client_email: Some(client.into()),
            client_phone: None,
            subject: "s".into(),
            body: "b".into(),
            nature: None,
            dates: None,
            desired_outcome: None,
            missing: vec![],
            concerns: vec![],
            handler_email: Some("anna@31solutions.test".into()),
            received_at: received.into(),
            ack_sent_at: ack_sent.map(str::to_string),
            ack_due: cal.add_working_days(day, 5).to_string(),
            response_due: cal.add_working_days(day, 20).to_string(),
            triage_reason: None,
            created_at: received.into(),
            closed_at: None,
        }
    }

    #[test]
    fn the_analysis_counts_what_a_person_would_count_by_hand() {
        let cal = Calendar::dutch_default();
        let cases = vec![
            // Received Mon 2 Nov; acknowledged the same day; answered Fri 20 Nov
            // (14 working days, due 30 Nov): on time.
            case(
                1,
                Status::Closed,
                Category::Coaching,
                "2026-11-02T09:00:00Z",
                Some("2026-11-02T09:01:00Z"),
                "a@client.test",
            ),
            // Received Mon 2 Nov, ack 10 Nov (due 9 Nov): late; no answer yet, due 30 Nov: not measured on 23 Nov.
            case(
                2,
                Status::Acknowledged,
                Category::Coaching,
                "2026-11-02T10:00:00Z",
                Some("2026-11-10T08:00:00Z"),
                "b@client.test",
            ),
            // Received 5 Oct, never acknowledged (due 12 Oct): late; no answer, due 2 Nov: late.
            case(
                3,
                Status::Received,
                Category::Communicatie,
                "2026-10-05T10:00:00Z",
                None,
                "a@client.test",
            ),
            // Triage items are not complaints yet.
            case(
                4,
                Status::Triage,
                Category::Overig,
                "2026-11-03T10:00:00Z",
                None,
                "c@client.test",
            ),
            // Outside the period.
            case(
                5,
                Status::Closed,
                Category::Dienstverlening,
                "2026-09-01T10:00:00Z",
                None,
                "d@client.test",
            ),
        ];
        let responded = vec![Responded {
            case_id: 1,
            on: "2026-11-20".parse().unwrap(),
        }];
        let r = build(
            &cases,
            &responded,
            "2026-10-01".parse().unwrap(),
            "2026-11-30".parse().unwrap(),
            "2026-11-23".parse().unwrap(),
            &cal,
        );
        assert_eq!(r.total, 3);
        assert_eq!(r.triage, 1);
        assert_eq!(r.by_category["coaching"], 2);
        assert_eq!(r.by_category["communicatie"], 1);
        assert_eq!(r.by_category["dienstverlening"], 0);
        assert_eq!(r.by_month["2026-10"], 1);
        assert_eq!(r.by_month["2026-11"], 2);
        assert_eq!(r.repeat_complainants, 1);
        assert_eq!(
            (
                r.acknowledgement.measured,
                r.acknowledgement.on_time,
                r.acknowledgement.late
            ),
            (3, 1, 2)
        );
        assert_eq!(r.acknowledgement.on_time_rate, Some(0.333));
        // Ack delays: 0 (same day) and 6 working days (2 → 10 Nov).
        assert_eq!(r.acknowledgement.median_working_days, Some(6));
        assert_eq!(r.acknowledgement.max_working_days, Some(6));
        assert_eq!(
            (r.response.measured, r.response.on_time, r.response.late),
            (2, 1, 1)
        );
        assert_eq!(r.response.max_working_days, Some(14));
        assert!(text(&r).contains("Klachten: 3"));
    }
}
