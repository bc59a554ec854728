//! A case row read into the domain's [`Case`]: every typed column is parsed
//! here, once. The columns are TEXT on both backends (timestamps
//! "YYYY-MM-DDTHH:MM:SSZ", dates "YYYY-MM-DD", as `crate::clock::db_time`
//! and `Date`'s display write them), so one mapping serves SQLite and
//! PostgreSQL.

use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, Result};
use sqlx::any::AnyRow;

use super::{get_i64, get_opt_str, get_str};
use crate::domain::case::Case;
use crate::domain::types::EmailAddress;

pub(super) const CASE_COLUMNS: &str = "id, reference, status, category, language, source, client_name, client_email, client_phone, \
    subject, body, nature, dates, desired_outcome, missing, concerns, handler_email, received_at, ack_sent_at, ack_due, \
    response_due, triage_reason, created_at, closed_at, client_token, anonymised_at";

/// The columns of one case row, read into domain types. A value that does
/// not parse is an error that names the case and the column (a hand-edited
/// or damaged register), never a panic. Addresses are personal data: their
/// errors leave the value out.
struct CaseColumns<'r> {
    row: &'r AnyRow,
    id: i64,
}

impl CaseColumns<'_> {
    fn bad(&self, col: &str, why: impl fmt::Display) -> anyhow::Error {
        anyhow!("case id {} in the register: column {col}: {why}", self.id)
    }

    fn str(&self, col: &str) -> Result<String> {
        get_str(self.row, col).map_err(|e| self.bad(col, e))
    }

    fn opt_str(&self, col: &str) -> Result<Option<String>> {
        get_opt_str(self.row, col).map_err(|e| self.bad(col, e))
    }

    /// A value's text as `T` reads it; `what` names `T` for the error.
    fn parse<T: FromStr>(&self, col: &str, raw: &str, what: &str) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        raw.parse()
            .map_err(|e| self.bad(col, format!("{raw:?} is not {what} ({e})")))
    }

    fn typed<T: FromStr>(&self, col: &str, what: &str) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        self.parse(col, &self.str(col)?, what)
    }

    fn opt_typed<T: FromStr>(&self, col: &str, what: &str) -> Result<Option<T>>
    where
        T::Err: fmt::Display,
    {
        self.opt_str(col)?
            .map(|raw| self.parse(col, &raw, what))
            .transpose()
    }

    /// A comma-separated list (`missing`, `concerns`).
    fn list<T>(&self, col: &str, item: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
        self.str(col)?
            .split(',')
            .filter(|x| !x.is_empty())
            .map(item)
            .collect()
    }

    fn email(&self, col: &str, raw: &str) -> Result<EmailAddress> {
        EmailAddress::parse(raw).map_err(|_| self.bad(col, "not a valid email address"))
    }

    fn opt_email(&self, col: &str) -> Result<Option<EmailAddress>> {
        self.opt_str(col)?
            .map(|raw| self.email(col, &raw))
            .transpose()
    }
}

pub(super) fn case_from_row(r: &AnyRow) -> Result<Case> {
    const TS: &str = "a timestamp";
    const DATE: &str = "a date";
    let c = CaseColumns {
        row: r,
        id: get_i64(r, "id")?,
    };
    Ok(Case {
        id: c.id,
        reference: c.typed("reference", "a case reference")?,
        status: c.typed("status", "a status")?,
        category: c.typed("category", "a category")?,
        language: c.typed("language", "a language")?,
        source: c.typed("source", "a source (email, phone, forwarded)")?,
        client_name: c.str("client_name")?,
        client_email: c.opt_email("client_email")?,
        client_phone: c.opt_str("client_phone")?,
        subject: c.str("subject")?,
        body: c.str("body")?,
        nature: c.opt_str("nature")?,
        dates: c.opt_str("dates")?,
        desired_outcome: c.opt_str("desired_outcome")?,
        missing: c.list("missing", |s| c.parse("missing", s, "an element"))?,
        concerns: c.list("concerns", |s| c.email("concerns", s))?,
        handler_email: c.opt_email("handler_email")?,
        received_at: c.typed("received_at", TS)?,
        ack_sent_at: c.opt_typed("ack_sent_at", TS)?,
        ack_due: c.typed("ack_due", DATE)?,
        response_due: c.typed("response_due", DATE)?,
        triage_reason: c.opt_str("triage_reason")?,
        created_at: c.typed("created_at", TS)?,
        closed_at: c.opt_typed("closed_at", TS)?,
        client_token: c.opt_str("client_token")?,
        anonymised_at: c.opt_typed("anonymised_at", TS)?,
    })
}
