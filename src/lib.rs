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
//! - [`flows`]: the use cases, one per file (intake, opening a case, staff
//!   answers, triage, staff overrule, reminders and escalations, privacy,
//!   and `notify`, all outgoing mail), each in the caller's transaction.
//! - [`register`]: one case's outcome, kept terms and extensions, from its timeline.
//! - [`report`]: the periodic analysis of the register (art. 10), its chart and its mail.
//! - [`workers`]: the IMAP intake loop, the outbox sender, the daemon.
//! - [`cli`]: the command line; `main.rs` only wires.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod flows;
pub mod mail;
pub mod metrics;
pub mod register;
pub mod report;
pub mod store;
pub mod workers;

#[cfg(test)]
mod properties;
