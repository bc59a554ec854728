//! The use cases, one per file. Each wires pure decisions (`domain`) to the
//! store and the outbox, inside the caller's transaction:
//! - [`intake`]: one inbound message → a decision → records and queued mail;
//! - [`open_case`]: a new case with its handler, terms, timeline and mail;
//! - [`client_reply`]: a client's reply on a case, passed to the handler;
//! - [`regulation`]: art. 11, the regulation to whoever asks;
//! - [`phone`]: a complaint taken by phone (art. 4);
//! - [`staff_reply`]: staff answers relayed to the client, commands, notes;
//! - [`forwarded`]: a colleague's forward with `/klacht` becomes triage;
//! - [`assign`]: a case handed to a handler (command or administrator);
//! - [`digest`]: supervisors' answers to the daily digest (triage);
//! - [`overrule`]: staff make any mail a complaint (folder or keyword);
//! - [`scheduler`]: reminders, escalations, digests and health alarms;
//! - [`health`]: the health alarms (intake, outbox) and their recovery;
//! - [`privacy`]: access requests, erasure and retention (art. 9, AVG);
//! - [`notify`]: all outgoing mail, composed and queued in one place.
//!
//! Dependencies run one way: `intake` uses `staff_reply`, `forwarded`,
//! `digest`, `open_case`, `client_reply` and `regulation`; those use
//! `assign`, `open_case` and `notify`; `notify` uses none of them.

pub mod assign;
pub mod client_reply;
pub mod digest;
pub mod forwarded;
pub mod health;
pub mod intake;
pub mod notify;
pub mod open_case;
pub mod overrule;
pub mod phone;
pub mod privacy;
pub mod regulation;
pub mod scheduler;
pub mod staff_reply;

use jiff::Timestamp;

use crate::app::App;
use crate::store::Tx;

/// What a use case works in: the application (settings, renderer, store),
/// the open transaction every record and queued mail of one decision goes
/// into, and the time of the decision.
pub struct Work<'a> {
    pub app: &'a App,
    pub tx: &'a mut Tx,
    pub now: Timestamp,
}
