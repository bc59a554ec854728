//! What the integration tests stand on. benches/pipeline.rs includes it
//! too (`#[path]`), for the mail stack, its clients and the configuration.
//!
//! - `mailstack`: the real Dovecot + Postfix on loopback, tiny SMTP and
//!   IMAP clients, Maildir readers;
//! - `config`: the test configuration (tests/fixtures/klachtd.toml, filled
//!   in by `template`), and the settings and `App` of tests that need no
//!   mail server;
//! - `db`: a throw-away SQLite file or PostgreSQL database per test;
//! - `corpora`: the shared corpora of real mail (`../shared/corpora`);
//! - `token_service`: an OAuth2 token endpoint on loopback, issuing
//!   tokens the test Dovecot accepts by the grants the providers use.

pub mod config;
pub mod corpora;
pub mod db;
pub mod mailstack;
pub mod template;
pub mod token_service;

use jiff::Timestamp;

/// A Monday: ack due five working days later (2026-11-30), response due
/// twenty working days later (2026-12-21).
pub const NOW: &str = "2026-11-23T10:00:00+01:00";

pub fn now() -> Timestamp {
    NOW.parse().expect("NOW parses")
}
