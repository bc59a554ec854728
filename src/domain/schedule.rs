//! The timer rules (design.md section 6, art. 5, 6 and 9): what is due for
//! one case on one day. Pure: the facts of the case and the date come in,
//! the work comes out, each piece with the anchor that makes its key unique.
//! Nothing here remembers anything; the caller records what it did under
//! the key, so asking twice is harmless.

use jiff::civil::Date;

use super::calendar::Calendar;
use super::types::Status;

/// The procedure's numbers the rules need.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Remind this many working days before the response is due (0: never).
    pub reminder_working_days: u32,
    /// Remind when a client's reply waited this many working days (0: never).
    pub reply_reminder_working_days: u32,
    /// A second escalation this many working days after the first (0: none).
    pub second_level_working_days: u32,
}

/// What the rules need to know of a case.
#[derive(Debug, Clone)]
pub struct CaseFacts<'a> {
    pub status: Status,
    pub handler: Option<&'a str>,
    /// The handler is among the persons the complaint concerns: never
    /// allowed (art. 6); intake and `/toewijzen` refuse it, the scheduler
    /// still checks.
    pub handler_concerned: bool,
    pub has_client_email: bool,
    pub ack_sent: bool,
    pub ack_due: Date,
    /// The response date, extended or not.
    pub response_due: Date,
    /// The oldest client reply with no answer since: its time (the anchor)
    /// and its local date.
    pub waiting_reply: Option<(&'a str, Date)>,
}

/// Kinds of scheduled work on a case.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[strum(serialize_all = "snake_case")]
pub enum Kind {
    /// The response is due within the reminder window: to the handler.
    Reminder,
    /// A client's reply is waiting for an answer: to the handler.
    #[strum(serialize = "reply_reminder")]
    ReplyWaiting,
    /// The response date passed with no proposal, rejection or close.
    LateResponse,
    /// The acknowledgement date passed with no acknowledgement sent.
    LateAck,
    /// The handler is concerned by the complaint: reassign.
    Conflict,
}

impl Kind {
    /// The stored form (`notices.kind`, `events.kind`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Escalations go to the supervisors; the rest to the handler.
    pub fn is_escalation(self) -> bool {
        matches!(self, Kind::LateResponse | Kind::LateAck | Kind::Conflict)
    }
}

/// One piece of work due on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub kind: Kind,
    /// 1, or 2 for a second escalation.
    pub level: u8,
    /// What the work is about: the due date it watches (a new date after an
    /// extension is new work), the reply's time, or the handler.
    pub anchor: String,
    /// Working days left (reminder), waited (reply) or late (escalation).
    pub days: i64,
}

impl Due {
    /// The key under which doing this work is recorded: case, kind, level,
    /// anchor. The same work always gets the same key.
    pub fn key(&self, case_id: i64) -> String {
        format!(
            "{}:{case_id}:{}:{}",
            self.kind.as_str(),
            self.level,
            self.anchor
        )
    }
}

/// Waiting for the handler's answer: the states before a proposal, a
/// rejection or a close (art. 6, 7, 8).
pub fn awaits_response(s: Status) -> bool {
    matches!(
        s,
        Status::Received | Status::Acknowledged | Status::InProgress
    )
}

/// The work due on `today` for one case. Nothing is due on a day that is
/// not a working day: every reminder and escalation arrives on one.
pub fn due_work(c: &CaseFacts<'_>, rules: &Rules, cal: &Calendar, today: Date) -> Vec<Due> {
    let mut out = Vec::new();
    if !cal.is_working_day(today) || c.status == Status::Closed {
        return out;
    }
    let escalate = |out: &mut Vec<Due>, kind: Kind, due: Date| {
        let late = cal.working_days_between(due, today);
        if late < 1 {
            return;
        }
        out.push(Due {
            kind,
            level: 1,
            anchor: due.to_string(),
            days: late,
        });
        let second = i64::from(rules.second_level_working_days);
        if second > 0 && late > second {
            out.push(Due {
                kind,
                level: 2,
                anchor: due.to_string(),
                days: late,
            });
        }
    };

    if let (Some(h), true) = (c.handler, c.handler_concerned) {
        out.push(Due {
            kind: Kind::Conflict,
            level: 1,
            anchor: h.to_lowercase(),
            days: 0,
        });
    }

    // Art. 5: the acknowledgement. Once the case moved on (a proposal,
    // say) the client has heard from us; a phone complaint without an
    // address is confirmed by phone.
    if !c.ack_sent && c.has_client_email && matches!(c.status, Status::Triage | Status::Received) {
        escalate(&mut out, Kind::LateAck, c.ack_due);
    }

    if awaits_response(c.status) {
        escalate(&mut out, Kind::LateResponse, c.response_due);
        let left = cal.working_days_between(today, c.response_due);
        let window = i64::from(rules.reminder_working_days);
        if window > 0 && (0..=window).contains(&left) && !c.handler_concerned {
            out.push(Due {
                kind: Kind::Reminder,
                level: 1,
                anchor: c.response_due.to_string(),
                days: left,
            });
        }
    }

    if c.status != Status::Triage && !c.handler_concerned {
        if let Some((at, day)) = c.waiting_reply {
            let waited = cal.working_days_between(day, today);
            let after = i64::from(rules.reply_reminder_working_days);
            if after > 0 && waited >= after {
                out.push(Due {
                    kind: Kind::ReplyWaiting,
                    level: 1,
                    anchor: at.to_string(),
                    days: waited,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    const RULES: Rules = Rules {
        reminder_working_days: 3,
        reply_reminder_working_days: 2,
        second_level_working_days: 5,
    };

    /// Received Monday 2 November 2026: ack due Monday 9 November, response
    /// due Monday 30 November (no holidays in between).
    fn case(status: Status) -> CaseFacts<'static> {
        CaseFacts {
            status,
            handler: Some("anna@31solutions.nl"),
            handler_concerned: false,
            has_client_email: true,
            ack_sent: true,
            ack_due: d("2026-11-09"),
            response_due: d("2026-11-30"),
            waiting_reply: None,
        }
    }

    fn kinds(c: &CaseFacts<'_>, day: &str) -> Vec<(Kind, u8, i64)> {
        due_work(c, &RULES, &Calendar::dutch_default(), d(day))
            .into_iter()
            .map(|w| (w.kind, w.level, w.days))
            .collect()
    }

    /// Every working day from `from` to `to`, and the work due on each.
    fn walk(c: &CaseFacts<'_>, from: &str, to: &str) -> Vec<(String, Kind, u8)> {
        let cal = Calendar::dutch_default();
        let mut day = d(from);
        let mut out = Vec::new();
        while day <= d(to) {
            for w in due_work(c, &RULES, &cal, day) {
                out.push((day.to_string(), w.kind, w.level));
            }
            day = day.tomorrow().unwrap();
        }
        out
    }

    #[test]
    fn the_reminder_window_opens_three_working_days_before_the_response_date() {
        let c = case(Status::Acknowledged);
        assert_eq!(kinds(&c, "2026-11-24"), vec![]);
        // Wed 25 Nov: 3 working days left (Thu, Fri, Mon).
        assert_eq!(kinds(&c, "2026-11-25"), vec![(Kind::Reminder, 1, 3)]);
        assert_eq!(kinds(&c, "2026-11-30"), vec![(Kind::Reminder, 1, 0)]);
        // Same anchor all window long: the key makes it one mail.
        let cal = Calendar::dutch_default();
        let a = due_work(&c, &RULES, &cal, d("2026-11-25"));
        let b = due_work(&c, &RULES, &cal, d("2026-11-27"));
        assert_eq!(a[0].key(7), b[0].key(7));
        assert_eq!(a[0].key(7), "reminder:7:1:2026-11-30");
    }

    #[test]
    fn a_late_response_escalates_on_the_first_working_day_after_and_again_five_days_later() {
        let c = case(Status::InProgress);
        // Saturday and Sunday after: nothing (not working days).
        assert_eq!(kinds(&c, "2026-12-05"), vec![]);
        assert_eq!(kinds(&c, "2026-12-01"), vec![(Kind::LateResponse, 1, 1)]);
        // Level 1 stays due (same key) and level 2 joins 5 working days on.
        assert_eq!(kinds(&c, "2026-12-07"), vec![(Kind::LateResponse, 1, 5)]);
        assert_eq!(
            kinds(&c, "2026-12-08"),
            vec![(Kind::LateResponse, 1, 6), (Kind::LateResponse, 2, 6)]
        );
        let walked = walk(&c, "2026-11-01", "2026-12-31");
        // The first day each piece of work is due.
        let mut firsts: Vec<(String, Kind, u8)> = Vec::new();
        for w in walked {
            if !firsts.iter().any(|f| (f.1, f.2) == (w.1, w.2)) {
                firsts.push(w);
            }
        }
        assert_eq!(
            firsts,
            vec![
                ("2026-11-25".into(), Kind::Reminder, 1),
                ("2026-12-01".into(), Kind::LateResponse, 1),
                ("2026-12-08".into(), Kind::LateResponse, 2),
            ]
        );
    }

    #[test]
    fn a_proposal_rejection_or_close_stops_reminders_and_escalations() {
        for s in [
            Status::Proposed,
            Status::Rejected,
            Status::Resolved,
            Status::External,
            Status::Closed,
        ] {
            assert_eq!(walk(&case(s), "2026-11-01", "2027-02-01"), vec![], "{s}");
        }
    }

    #[test]
    fn an_extension_moves_the_reminder_and_the_escalation_to_the_new_date() {
        let mut c = case(Status::InProgress);
        c.response_due = d("2026-12-14");
        assert_eq!(kinds(&c, "2026-12-01"), vec![]);
        let w = due_work(&c, &RULES, &Calendar::dutch_default(), d("2026-12-15"));
        assert_eq!(w[0].key(7), "late_response:7:1:2026-12-14");
    }

    #[test]
    fn an_unsent_acknowledgement_escalates_also_from_triage_but_not_for_phone_cases() {
        let mut c = case(Status::Received);
        c.ack_sent = false;
        assert_eq!(kinds(&c, "2026-11-09"), vec![]);
        assert_eq!(kinds(&c, "2026-11-10"), vec![(Kind::LateAck, 1, 1)]);
        c.status = Status::Triage;
        assert_eq!(kinds(&c, "2026-11-10"), vec![(Kind::LateAck, 1, 1)]);
        // Triage waits for /klacht: no response reminder there.
        assert_eq!(
            kinds(&c, "2026-11-27"),
            vec![(Kind::LateAck, 1, 14), (Kind::LateAck, 2, 14)]
        );
        c.has_client_email = false;
        assert_eq!(kinds(&c, "2026-11-10"), vec![]);
        // Acknowledged later: done.
        let mut sent = case(Status::Received);
        sent.ack_sent = true;
        assert_eq!(kinds(&sent, "2026-11-10"), vec![]);
    }

    #[test]
    fn a_concerned_handler_is_never_reminded_and_the_supervisors_are_told() {
        let mut c = case(Status::InProgress);
        c.handler_concerned = true;
        c.waiting_reply = Some(("2026-11-16T10:00:00Z", d("2026-11-16")));
        let w = due_work(&c, &RULES, &Calendar::dutch_default(), d("2026-11-27"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].kind, Kind::Conflict);
        assert_eq!(w[0].key(3), "conflict:3:1:anna@31solutions.nl");
    }

    #[test]
    fn a_waiting_client_reply_is_reminded_after_two_working_days_over_a_weekend() {
        let mut c = case(Status::InProgress);
        // Thursday 12 November: Friday 1, Monday 2.
        c.waiting_reply = Some(("2026-11-12T15:00:00Z", d("2026-11-12")));
        assert_eq!(kinds(&c, "2026-11-13"), vec![]);
        assert_eq!(kinds(&c, "2026-11-16"), vec![(Kind::ReplyWaiting, 1, 2)]);
        let no = Rules {
            reply_reminder_working_days: 0,
            ..RULES
        };
        let cal = Calendar::dutch_default();
        assert!(due_work(&c, &no, &cal, d("2026-11-20")).is_empty());
    }

    #[test]
    fn no_work_on_holidays_and_escalation_days_count_working_days_only() {
        // Response due Thursday 24 December 2026; Christmas and the weekend
        // pass; Monday 28 December is 1 working day late.
        let mut c = case(Status::InProgress);
        c.response_due = d("2026-12-24");
        assert_eq!(kinds(&c, "2026-12-25"), vec![]);
        assert_eq!(kinds(&c, "2026-12-28"), vec![(Kind::LateResponse, 1, 1)]);
        // Nieuwjaarsdag is no working day; Monday 4 January is 5 late, the
        // second level follows on Tuesday 5 January (6 late).
        assert_eq!(kinds(&c, "2027-01-01"), vec![]);
        assert_eq!(kinds(&c, "2027-01-04"), vec![(Kind::LateResponse, 1, 5)]);
        assert_eq!(
            kinds(&c, "2027-01-05"),
            vec![(Kind::LateResponse, 1, 6), (Kind::LateResponse, 2, 6)]
        );
    }

    #[test]
    fn without_a_second_level_only_one_escalation_is_ever_due() {
        let rules = Rules {
            second_level_working_days: 0,
            ..RULES
        };
        let c = case(Status::InProgress);
        let cal = Calendar::dutch_default();
        let mut day = d("2026-12-01");
        while day < d("2027-03-01") {
            for w in due_work(&c, &rules, &cal, day) {
                assert_eq!(w.level, 1);
            }
            day = day.tomorrow().unwrap();
        }
    }
}
