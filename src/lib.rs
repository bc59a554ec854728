//! klachtd runs an organisation's complaints procedure (klachtenreglement)
//! straight from its info@ mailbox.
//!
//! Module map:
//! - [`config`]: the TOML file plus `KLACHTD__SECTION__KEY` overrides, validated once.
//! - [`domain`]: pure code, no I/O: value types, working-day calendar,
//!   classification (automated mail, complaint scoring, art. 4 elements,
//!   who a complaint concerns) and independent handler assignment.
//! - [`mail`]: parse raw mail, compose and render outgoing mail, IMAP and SMTP.
//! - [`store`]: the register; every SQL statement, SQLite and PostgreSQL.
//! - [`intake`]: one message or phone complaint → records and queued mail, in one transaction.
//! - [`conversation`]: staff answers on a case: relayed to the client, commands, notes.
//! - [`overrule`]: staff make any mail a complaint from their own mail client (folder or keyword).
//! - [`register`]: one case's outcome, kept terms and extensions, from its timeline.
//! - [`report`]: the periodic analysis of the register (art. 10), its chart and its mail.
//! - [`privacy`]: access requests, erasure and retention (art. 9, AVG), with an audit trail.
//! - [`scheduler`]: reminders, escalations, digests and health alarms, derived from the register.
//! - [`workers`]: the IMAP intake loop, the outbox sender, the daemon.
//! - [`cli`]: the command line; `main.rs` only wires.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod domain;
pub mod intake;
pub mod mail;
pub mod overrule;
pub mod privacy;
pub mod register;
pub mod report;
pub mod scheduler;
pub mod store;
pub mod workers;
