//! Pure decisions over values: no I/O, no clock (time is passed in).

pub mod assign;
pub mod calendar;
pub mod case;
pub mod classify;
pub mod command;
pub mod event;
pub mod schedule;
pub mod types;
