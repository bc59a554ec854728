//! What happens on a case and to its mail, as types: the `kind` of a
//! timeline event (`events.kind`), and the kind and state of an outgoing
//! mail (`outbox.kind`, `outbox.status`).
//!
//! The stored strings are the ones klachtd always wrote (`ack_queued`,
//! `closed`, `reminder` …), so existing registers read unchanged; they are
//! derived from the variants (strum, snake_case) and parsed back on read, so
//! a renamed or misspelled kind fails to compile instead of silently
//! changing the register's figures or the reminders.

use std::fmt;
use std::str::FromStr;

use strum::{EnumIter, EnumString, IntoStaticStr};

use super::schedule;

/// What an outgoing mail is (`outbox.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum OutboxKind {
    /// The acknowledgement to the client (art. 5).
    Ack,
    /// The regulation to whoever asked (art. 11).
    Regulation,
    /// A request for a paper copy, to the supervisors.
    RegulationPaper,
    /// The periodic analysis (art. 10).
    Report,
    /// The supervisors' daily digest.
    Digest,
    /// The answer to a supervisor's answer to the digest.
    DigestReceipt,
    /// The answer to staff mail klachtd could not authenticate.
    StaffWarning,
    /// The answer to an authenticated staff mail: what was done.
    StaffReceipt,
    /// A case for its handler.
    HandlerNew,
    /// To the previous handler of a reassigned case.
    HandlerReleased,
    /// A client's reply, passed to the handler.
    ClientReplyNotice,
    /// A possible complaint, to the supervisors (when per-item mail is on).
    TriageNotice,
    /// An alarm or recovery about intake or the outbox.
    Health,
    /// Staff text relayed to the client.
    Answer,
    /// The handler's proposal (art. 6).
    Proposal,
    /// The handler's rejection (art. 6).
    Rejection,
    /// The extension of the response term (art. 6).
    Extension,
    /// The case goes to the external committee (art. 8).
    External,
    /// The response is due soon: to the handler.
    Reminder,
    /// A client's reply is waiting: to the handler.
    ReplyReminder,
    /// A term was missed, or a conflict: to the supervisors.
    Escalation,
    /// Mail to the client was refused for good: to the handler.
    Undeliverable,
}

stored_strings!(OutboxKind, OutboxStatus);

impl OutboxKind {
    /// Mail to the client (or whoever asked for the regulation); every
    /// other kind goes to staff, and its Message-ID is a token.
    pub fn to_client(self) -> bool {
        matches!(self, OutboxKind::Ack | OutboxKind::Regulation) || self.answers_client()
    }

    /// Mail that answers the client on their case: a client reply before it
    /// is no longer waiting.
    pub fn answers_client(self) -> bool {
        matches!(
            self,
            OutboxKind::Answer
                | OutboxKind::Proposal
                | OutboxKind::Rejection
                | OutboxKind::Extension
                | OutboxKind::External
        )
    }
}

/// Where an outgoing mail is (`outbox.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Leased by a sender.
    Sending,
    /// The last step before the final dot is under way.
    Committing,
    Sent,
    /// Refused for good.
    Failed,
    /// Withdrawn before sending (erasure).
    Cancelled,
}

/// A step of an outgoing mail, as the case's timeline records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum MailStep {
    Queued,
    Sent,
    Failed,
    /// Sent, but the server's answer after the final dot never came.
    Unconfirmed,
    /// Failed, then queued again by an administrator (`klachtd outbox retry`).
    Requeued,
}

/// A step of the procedure on a case's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum CaseEvent {
    /// The complaint arrived (art. 3).
    Received,
    /// The model's reading (never complaint text).
    Classified,
    /// The text was longer than the register keeps.
    Truncated,
    /// Who the complaint concerns (art. 6).
    Concerns,
    /// Waits for a supervisor (possible complaint, forward, late).
    Triage,
    /// A handler was chosen.
    Assigned,
    /// No acknowledgement: the per-sender limit of automatic replies.
    AckSuppressed,
    /// A supervisor confirmed a triage item as a complaint.
    Accepted,
    /// A supervisor gave the case to another handler.
    Reassigned,
    /// Staff made a mail a complaint (folder or keyword).
    StaffOverrule,
    /// A colleague forwarded it with `/klacht`.
    Forwarded,
    ClientReply,
    StaffMessage,
    StaffMailRefused,
    Note,
    /// `/intern`: an internal note given as a command.
    NoteCommand,
    Command,
    /// The status changed.
    Status,
    /// Outcomes (art. 6-8), which the register counts.
    Proposal,
    Rejection,
    Agreed,
    External,
    Dismissed,
    Closed,
    Reopened,
    Extended,
    /// Personal data erased (art. 9).
    Anonymised,
}

impl CaseEvent {
    /// The events the register's outcome and terms are derived from
    /// (`crate::register`).
    pub const REGISTER: &'static [CaseEvent] = &[
        CaseEvent::Proposal,
        CaseEvent::Rejection,
        CaseEvent::Agreed,
        CaseEvent::External,
        CaseEvent::Dismissed,
        CaseEvent::Closed,
        CaseEvent::Reopened,
        CaseEvent::Extended,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What a timeline event records (`events.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A step of the procedure.
    Case(CaseEvent),
    /// Scheduled work done: a reminder or an escalation.
    Scheduled(schedule::Kind),
    /// An outgoing mail of the case reached a step (`ack_queued`,
    /// `answer_sent` …).
    Mail(OutboxKind, MailStep),
}

impl EventKind {
    /// A mail of `kind` queued.
    pub fn queued(kind: OutboxKind) -> Self {
        EventKind::Mail(kind, MailStep::Queued)
    }
}

impl From<CaseEvent> for EventKind {
    fn from(e: CaseEvent) -> Self {
        EventKind::Case(e)
    }
}

impl From<schedule::Kind> for EventKind {
    fn from(k: schedule::Kind) -> Self {
        EventKind::Scheduled(k)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<22}` lines up a timeline.
        match self {
            EventKind::Case(e) => f.pad(e.as_str()),
            EventKind::Scheduled(k) => f.pad(k.as_str()),
            EventKind::Mail(kind, step) => {
                f.pad(&format!("{}_{}", kind.as_str(), <&str>::from(*step)))
            }
        }
    }
}

/// An event kind klachtd does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEventKind(pub String);

impl fmt::Display for UnknownEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown event kind {:?}", self.0)
    }
}

impl std::error::Error for UnknownEventKind {}

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(e) = s.parse::<CaseEvent>() {
            return Ok(EventKind::Case(e));
        }
        if let Ok(k) = s.parse::<schedule::Kind>() {
            return Ok(EventKind::Scheduled(k));
        }
        // "<outbox kind>_<step>": the step is the last word.
        s.rsplit_once('_')
            .and_then(|(kind, step)| Some(EventKind::Mail(kind.parse().ok()?, step.parse().ok()?)))
            .ok_or_else(|| UnknownEventKind(s.to_string()))
    }
}

impl serde::Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    /// Every kind reads back as itself, and no two kinds share a string:
    /// the stored form is unambiguous.
    #[test]
    fn every_event_kind_round_trips_and_is_unique() {
        let mut all: Vec<EventKind> = CaseEvent::iter().map(EventKind::Case).collect();
        all.extend(schedule::Kind::iter().map(EventKind::Scheduled));
        for k in OutboxKind::iter() {
            all.extend(MailStep::iter().map(|s| EventKind::Mail(k, s)));
        }
        let mut seen = std::collections::HashSet::new();
        for k in &all {
            let s = k.to_string();
            assert!(seen.insert(s.clone()), "{s} twice");
            assert_eq!(s.parse::<EventKind>().as_ref(), Ok(k), "{s}");
        }
    }

    #[test]
    fn stored_strings_are_the_ones_registers_hold() {
        let ack: EventKind = "ack_queued".parse().unwrap();
        assert_eq!(ack, EventKind::queued(OutboxKind::Ack));
        assert_eq!(
            "client_reply_notice_sent".parse::<EventKind>(),
            Ok(EventKind::Mail(
                OutboxKind::ClientReplyNotice,
                MailStep::Sent
            ))
        );
        assert_eq!(
            "reply_reminder".parse::<EventKind>(),
            Ok(EventKind::Scheduled(schedule::Kind::ReplyWaiting))
        );
        assert_eq!(
            "closed".parse::<EventKind>(),
            Ok(EventKind::Case(CaseEvent::Closed))
        );
        assert!("closd".parse::<EventKind>().is_err());
        assert_eq!(
            format!("{:<12}|", EventKind::queued(OutboxKind::Ack)),
            "ack_queued  |"
        );
        assert!("ack_delivered".parse::<EventKind>().is_err());
        assert_eq!(OutboxStatus::Committing.as_str(), "committing");
    }
}
