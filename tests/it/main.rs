//! klachtd's integration tests: one test binary (`it`), one module per
//! area. Select with nextest filters, e.g. `scripts/test -E
//! 'binary(it) & test(/^intake::/)'`, or `cargo test --test it intake::`.
//!
//! - `support`: the real mail servers, the test configuration, throw-away
//!   databases, the shared corpora;
//! - `world`: one test's own mailboxes, register and config on those
//!   servers, driven through the real `klachtd` binary.
//!
//! Areas without a mail server: `fixtures`, `quotes`, `corpus`, `store`.
//! On the real Dovecot and Postfix: `intake`, `conversation`, `overrule`,
//! `register`, `scheduler`, `security`, `privacy_logs`, `crash`,
//! `several_daemons`, `oauth2`, `production`.

mod support;
mod world;

mod conversation;
mod corpus;
mod crash;
mod faults;
mod fixtures;
mod intake;
mod oauth2;
mod overrule;
mod privacy_logs;
mod production;
mod quotes;
mod register;
mod scheduler;
mod security;
mod several_daemons;
mod store;
mod structure;
