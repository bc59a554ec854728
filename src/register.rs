//! What the register says about one case (art. 10): its outcome, whether
//! each term was kept, its extensions. A pure function of the case row and
//! its timeline, shared by `cases` (table, JSON, CSV), `cases --overdue`
//! and the analysis, so all three count the same way.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::db_time;
use crate::config::local_date;
use crate::domain::calendar::Calendar;
use crate::domain::event::{CaseEvent, EventKind};
use crate::domain::types::Status;
use crate::store::{CaseRow, EventRow};

/// What came of a complaint (art. 7 and 8), from its timeline: the last
/// substantive step wins, so a reopened case can change its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Waiting for a supervisor's /klacht or /geen-klacht.
    Triage,
    /// Not (yet) answered.
    Open,
    /// A proposal was made; the client has not (yet) agreed.
    Proposal,
    /// The client agreed with the proposal (art. 7).
    Agreed,
    /// A reasoned rejection (art. 7).
    Rejected,
    /// The client was referred to the external complaints body (art. 8).
    External,
    /// Closed without a proposal or rejection (settled otherwise, withdrawn).
    Closed,
    /// A supervisor judged it not to be a complaint.
    NoComplaint,
}

impl Outcome {
    pub const ALL: &'static [Outcome] = &[
        Outcome::Triage,
        Outcome::Open,
        Outcome::Proposal,
        Outcome::Agreed,
        Outcome::Rejected,
        Outcome::External,
        Outcome::Closed,
        Outcome::NoComplaint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Triage => "triage",
            Outcome::Open => "open",
            Outcome::Proposal => "proposal",
            Outcome::Agreed => "agreed",
            Outcome::Rejected => "rejected",
            Outcome::External => "external",
            Outcome::Closed => "closed",
            Outcome::NoComplaint => "no_complaint",
        }
    }

    /// Triage items and dismissed mail are not complaints: the analysis
    /// leaves them out.
    pub fn is_complaint(self) -> bool {
        !matches!(self, Outcome::Triage | Outcome::NoComplaint)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pub at: Date,
    pub days: Option<u64>,
    pub new_due: Option<String>,
    pub reason: String,
}

/// The register's view of one case on `today`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub outcome: Outcome,
    pub received_on: Date,
    pub acknowledged_on: Option<Date>,
    /// Working days from receipt to the acknowledgement.
    pub ack_working_days: Option<i64>,
    /// Kept the acknowledgement term (art. 5)? None while it can still be
    /// kept, and where none is due (no address, not a complaint).
    pub ack_on_time: Option<bool>,
    /// The first substantive answer: proposal, rejection, or a close.
    pub responded_on: Option<Date>,
    pub response_working_days: Option<i64>,
    /// Answered by the response date as extended (art. 6)?
    pub response_on_time: Option<bool>,
    /// Answered within the original term, extensions not counted?
    pub response_within_term: Option<bool>,
    /// The response date before any extension.
    pub original_response_due: String,
    pub extensions: Vec<Extension>,
    /// Referred to the external complaints body (art. 8).
    pub external: bool,
    /// Open, and a term has passed without the acknowledgement or answer.
    pub overdue: bool,
}

fn day_of(ts: &str, tz: &TimeZone) -> Option<Date> {
    crate::clock::parse_db_time(ts).map(|t| local_date(t, tz))
}

/// What a case's timeline says: its last outcome event, its first answer,
/// its close, its extensions and whether it went to the external body.
#[derive(Default)]
struct Told {
    outcome: Option<Outcome>,
    responded_on: Option<Date>,
    closed_on: Option<Date>,
    extensions: Vec<Extension>,
    external: bool,
}

fn read_timeline(events: &[&EventRow], today: Date, tz: &TimeZone) -> Told {
    let mut t = Told::default();
    for e in events {
        let on = day_of(&e.at, tz).unwrap_or(today);
        let EventKind::Case(kind) = e.kind else {
            continue;
        };
        match kind {
            CaseEvent::Proposal | CaseEvent::Rejection => {
                t.responded_on.get_or_insert(on);
                t.outcome = Some(if kind == CaseEvent::Proposal {
                    Outcome::Proposal
                } else {
                    Outcome::Rejected
                });
            }
            CaseEvent::Agreed => t.outcome = Some(Outcome::Agreed),
            CaseEvent::External => {
                t.external = true;
                t.outcome = Some(Outcome::External);
            }
            CaseEvent::Dismissed => t.outcome = Some(Outcome::NoComplaint),
            CaseEvent::Reopened => {
                t.closed_on = None;
                if t.outcome == Some(Outcome::Closed) {
                    t.outcome = None;
                }
            }
            CaseEvent::Closed => {
                t.closed_on = Some(on);
                t.outcome.get_or_insert(Outcome::Closed);
            }
            CaseEvent::Extended => {
                let field = |k: &str| e.data.as_ref().and_then(|d| d.get(k).cloned());
                t.extensions.push(Extension {
                    at: on,
                    days: field("days").and_then(|v| v.as_u64()),
                    new_due: field("new_due").and_then(|v| v.as_str().map(str::to_string)),
                    reason: field("reason")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| e.detail.clone()),
                });
            }
            _ => {}
        }
    }
    t
}

/// Computes the register's facts of `case` from its timeline `events`.
pub fn record(
    case: &CaseRow,
    events: &[&EventRow],
    today: Date,
    tz: &TimeZone,
    cal: &Calendar,
) -> Record {
    let received_on = local_date(case.received_at, tz);
    let Told {
        outcome,
        mut responded_on,
        closed_on,
        extensions,
        external,
    } = read_timeline(events, today, tz);
    let outcome = match (case.status, outcome) {
        (Status::Triage, _) => Outcome::Triage,
        (_, Some(o)) => o,
        (_, None) => Outcome::Open,
    };
    if outcome != Outcome::NoComplaint {
        // A close without an earlier answer is the answer (e.g. settled by phone).
        responded_on = responded_on.or(closed_on);
    }
    let complaint = outcome.is_complaint();
    let open = case.status != Status::Closed;

    let acknowledged_on = case.ack_sent_at.map(|t| local_date(t, tz));
    let ack_due = case.ack_due;
    // A phone complaint without an address is acknowledged by phone.
    let ack_required = case.client_email.is_some() || case.anonymised_at.is_some();
    let ack_on_time = match acknowledged_on {
        _ if !complaint || !ack_required => None,
        Some(on) => Some(on <= ack_due),
        None if ack_due < today => Some(false),
        None => None,
    };

    let original_response_due = events
        .iter()
        .find(|e| e.kind == CaseEvent::Extended.into())
        .and_then(|e| {
            e.data
                .as_ref()?
                .get("old_due")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| case.response_due.to_string());
    let original_due = original_response_due.parse::<Date>().ok();
    let kept = |due: Option<Date>| match (responded_on, due) {
        _ if !complaint => None,
        (Some(on), Some(due)) => Some(on <= due),
        (None, Some(due)) if due < today => Some(false),
        _ => None,
    };
    let response_on_time = kept(Some(case.response_due));
    let response_within_term = kept(original_due);

    let ack_late_now = ack_required && acknowledged_on.is_none() && ack_due < today;
    let answer_late_now = complaint && responded_on.is_none() && case.response_due < today;
    let overdue = open && outcome != Outcome::NoComplaint && (ack_late_now || answer_late_now);

    Record {
        outcome,
        received_on,
        acknowledged_on,
        ack_working_days: acknowledged_on.map(|d| cal.working_days_between(received_on, d)),
        ack_on_time,
        responded_on,
        response_working_days: responded_on.map(|d| cal.working_days_between(received_on, d)),
        response_on_time,
        response_within_term,
        original_response_due,
        extensions,
        external,
        overdue,
    }
}

/// The contract's JSON form of a case, with its register facts.
pub fn case_json(c: &CaseRow, r: &Record) -> Value {
    json!({
        "reference": c.reference,
        "status": c.status.as_str(),
        "category": c.category.as_str(),
        "language": c.language.as_str(),
        "source": c.source,
        "client_name": c.client_name,
        "client_email": c.client_email,
        "client_phone": c.client_phone,
        "subject": c.subject,
        "handler_email": c.handler_email,
        "concerns": c.concerns,
        // Instants and dates as the register stores them.
        "received_at": db_time(c.received_at),
        "ack_sent_at": c.ack_sent_at.map(db_time),
        "ack_due": c.ack_due.to_string(),
        "response_due": c.response_due.to_string(),
        "missing": c.missing.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "nature": c.nature,
        "dates": c.dates,
        "desired_outcome": c.desired_outcome,
        "triage_reason": c.triage_reason,
        "closed_at": c.closed_at.map(db_time),
        "anonymised_at": c.anonymised_at.map(db_time),
        "outcome": r.outcome.as_str(),
        "ack_working_days": r.ack_working_days,
        "ack_on_time": r.ack_on_time,
        "responded_on": r.responded_on.map(|d| d.to_string()),
        "response_working_days": r.response_working_days,
        "response_on_time": r.response_on_time,
        "response_within_term": r.response_within_term,
        "original_response_due": r.original_response_due,
        "extensions": r.extensions.iter().map(|e| json!({
            "at": e.at.to_string(), "days": e.days, "new_due": e.new_due, "reason": e.reason,
        })).collect::<Vec<_>>(),
        "external": r.external,
        "overdue": r.overdue,
    })
}

/// The register as it stands on `today`: the cases `filter` selects, each
/// with its record.
pub async fn load(
    store: &crate::store::Store,
    s: &crate::config::Settings,
    filter: &crate::store::CaseFilter,
    today: Date,
) -> anyhow::Result<(Vec<CaseRow>, Vec<Record>)> {
    let cases = store.cases(filter).await?;
    let events = store.register_events().await?;
    let records = records(
        &cases,
        &events,
        today,
        &s.organisation.timezone,
        &s.calendar,
    );
    Ok((cases, records))
}

/// Records of many cases from one list of events (any order of cases;
/// events of a case in timeline order).
pub fn records(
    cases: &[CaseRow],
    events: &[(i64, EventRow)],
    today: Date,
    tz: &TimeZone,
    cal: &Calendar,
) -> Vec<Record> {
    let mut by_case: std::collections::HashMap<i64, Vec<&EventRow>> = Default::default();
    for (id, e) in events {
        by_case.entry(*id).or_default().push(e);
    }
    cases
        .iter()
        .map(|c| {
            let evs = by_case.get(&c.id).map(Vec::as_slice).unwrap_or_default();
            record(c, evs, today, tz, cal)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::case::Source;
    use crate::domain::types::{Category, EmailAddress, Lang};
    use serde_json::json;

    /// A case received at `received` (UTC) with the Dutch calendar's terms.
    pub(crate) fn case(id: i64, status: Status, received: &str) -> CaseRow {
        let cal = Calendar::dutch_default();
        let day: Date = received[..10].parse().unwrap();
        CaseRow {
            id,
            reference: format!("KL-2026-{id:04}").parse().unwrap(),
            status,
            category: Category::Coaching,
            language: Lang::Nl,
            source: Source::Email,
            client_name: "Jan".into(),
            client_email: Some(EmailAddress::parse(&format!("client{id}@client.test")).unwrap()),
            client_phone: None,
            subject: "s".into(),
            body: "b".into(),
            nature: None,
            dates: None,
            desired_outcome: None,
            missing: vec![],
            concerns: vec![],
            handler_email: Some(EmailAddress::parse("anna@31solutions.test").unwrap()),
            received_at: received.parse().unwrap(),
            ack_sent_at: None,
            ack_due: cal.add_working_days(day, 5),
            response_due: cal.add_working_days(day, 20),
            triage_reason: None,
            created_at: received.parse().unwrap(),
            closed_at: None,
            client_token: None,
            anonymised_at: None,
        }
    }

    pub(crate) fn event(at: &str, kind: &str, data: serde_json::Value) -> EventRow {
        EventRow {
            at: at.into(),
            kind: kind.parse().expect("a known event kind"),
            actor: "anna@31solutions.test".into(),
            detail: String::new(),
            data: (!data.is_null()).then_some(data),
        }
    }

    fn rec(c: &CaseRow, evs: &[EventRow], today: &str) -> Record {
        let refs: Vec<&EventRow> = evs.iter().collect();
        record(
            c,
            &refs,
            today.parse().unwrap(),
            &TimeZone::get("Europe/Amsterdam").unwrap(),
            &Calendar::dutch_default(),
        )
    }

    #[test]
    fn an_extended_case_answered_late_for_the_term_but_in_time_for_the_new_date() {
        // Received Mon 2 Nov 2026: ack due 9 Nov, answer due 30 Nov.
        let mut c = case(1, Status::Closed, "2026-11-02T09:00:00Z");
        c.ack_sent_at = Some("2026-11-02T09:01:00Z".parse().unwrap());
        c.response_due = "2026-12-07".parse().unwrap();
        let evs = [
            event(
                "2026-11-25T10:00:00Z",
                "extended",
                json!({"old_due": "2026-11-30", "new_due": "2026-12-07", "days": 5, "reason": "wacht op de coach"}),
            ),
            event("2026-12-03T10:00:00Z", "proposal", json!({})),
            event("2026-12-08T10:00:00Z", "agreed", json!({})),
            event("2026-12-08T10:00:01Z", "closed", json!({})),
        ];
        let r = rec(&c, &evs, "2026-12-10");
        assert_eq!(r.outcome, Outcome::Agreed);
        assert_eq!(r.ack_on_time, Some(true));
        assert_eq!(r.ack_working_days, Some(0));
        assert_eq!(r.responded_on, Some("2026-12-03".parse().unwrap()));
        // 2 Nov → 3 Dec: 23 working days.
        assert_eq!(r.response_working_days, Some(23));
        assert_eq!(r.response_on_time, Some(true));
        assert_eq!(r.response_within_term, Some(false));
        assert_eq!(r.original_response_due, "2026-11-30");
        assert_eq!(r.extensions.len(), 1);
        assert_eq!(r.extensions[0].reason, "wacht op de coach");
        assert_eq!(r.extensions[0].days, Some(5));
        assert!(!r.overdue);
    }

    #[test]
    fn terms_not_yet_passed_are_not_judged_and_passed_ones_are_late_and_overdue() {
        let c = case(2, Status::Received, "2026-11-02T09:00:00Z");
        let r = rec(&c, &[], "2026-11-09");
        assert_eq!((r.ack_on_time, r.response_on_time), (None, None));
        assert!(
            !r.overdue,
            "the acknowledgement may still go out on its due day"
        );
        let r = rec(&c, &[], "2026-11-10");
        assert_eq!((r.ack_on_time, r.response_on_time), (Some(false), None));
        assert!(r.overdue);
        assert_eq!(r.outcome, Outcome::Open);
    }

    #[test]
    fn outcomes_follow_the_last_substantive_step() {
        let c = case(3, Status::Closed, "2026-11-02T09:00:00Z");
        let cases = [
            (
                vec![event("2026-11-10T09:00:00Z", "rejection", json!({}))],
                Outcome::Rejected,
            ),
            (
                vec![
                    event("2026-11-10T09:00:00Z", "rejection", json!({})),
                    event("2026-11-12T09:00:00Z", "external", json!({})),
                ],
                Outcome::External,
            ),
            (
                vec![event("2026-11-10T09:00:00Z", "closed", json!({}))],
                Outcome::Closed,
            ),
            (
                vec![
                    event("2026-11-10T09:00:00Z", "closed", json!({})),
                    event("2026-11-11T09:00:00Z", "reopened", json!({})),
                    event("2026-11-12T09:00:00Z", "proposal", json!({})),
                ],
                Outcome::Proposal,
            ),
            (
                vec![
                    event("2026-11-03T09:00:00Z", "dismissed", json!({})),
                    event("2026-11-03T09:00:00Z", "closed", json!({})),
                ],
                Outcome::NoComplaint,
            ),
        ];
        for (evs, want) in cases {
            assert_eq!(rec(&c, &evs, "2026-12-01").outcome, want, "{evs:?}");
        }
        // Not a complaint: no term is judged.
        let r = rec(
            &c,
            &[event("2026-11-03T09:00:00Z", "dismissed", json!({}))],
            "2027-01-01",
        );
        assert_eq!(
            (r.ack_on_time, r.response_on_time, r.overdue),
            (None, None, false)
        );
    }

    #[test]
    fn a_phone_complaint_without_an_address_needs_no_mailed_acknowledgement() {
        let mut c = case(4, Status::InProgress, "2026-11-02T09:00:00Z");
        c.source = Source::Phone;
        c.client_email = None;
        let r = rec(&c, &[], "2026-11-20");
        assert_eq!(r.ack_on_time, None);
        assert!(!r.overdue);
        assert!(
            rec(&c, &[], "2026-12-01").overdue,
            "the answer is still due"
        );
    }

    #[test]
    fn dates_are_local_days() {
        // 23:30 UTC on Sunday 1 Nov is already Monday 2 Nov in Amsterdam.
        let mut c = case(5, Status::Acknowledged, "2026-11-01T23:30:00Z");
        c.ack_sent_at = Some("2026-11-01T23:31:00Z".parse().unwrap());
        let r = rec(&c, &[], "2026-11-03");
        assert_eq!(r.received_on, "2026-11-02".parse().unwrap());
        assert_eq!(r.acknowledged_on, Some("2026-11-02".parse().unwrap()));
    }
}
