//! A case as the register holds it, in domain types: its reference,
//! addresses, instants and dates are parsed once, where the store reads the
//! row (`crate::store`), and nothing downstream parses them again.

use jiff::civil::Date;
use jiff::Timestamp;
use strum::{EnumIter, EnumString, IntoStaticStr};

use super::types::{CaseRef, Category, Element, EmailAddress, Lang, Status};

/// How a complaint reached klachtd (`cases.source`). The stored strings are
/// the ones klachtd always wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Source {
    /// A mail to the organisation's address.
    Email,
    /// Registered by hand from a telephone call (`klachtd register`).
    Phone,
    /// Forwarded by a colleague with `/klacht`.
    Forwarded,
}

stored_strings!(Source);

impl serde::Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A case as the register holds it.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: i64,
    pub reference: CaseRef,
    pub status: Status,
    pub category: Category,
    pub language: Lang,
    pub source: Source,
    pub client_name: String,
    pub client_email: Option<EmailAddress>,
    pub client_phone: Option<String>,
    pub subject: String,
    pub body: String,
    pub nature: Option<String>,
    pub dates: Option<String>,
    pub desired_outcome: Option<String>,
    pub missing: Vec<Element>,
    /// The staff members the complaint is about (art. 6).
    pub concerns: Vec<EmailAddress>,
    pub handler_email: Option<EmailAddress>,
    pub received_at: Timestamp,
    pub ack_sent_at: Option<Timestamp>,
    pub ack_due: Date,
    pub response_due: Date,
    pub triage_reason: Option<String>,
    /// When klachtd recorded it (received_at is when it arrived).
    pub created_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    /// Random, shared by the cases of one client: repeat complainants stay
    /// countable after anonymisation (never shown).
    pub client_token: Option<String>,
    /// When the personal data was removed (retention or erasure).
    pub anonymised_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn sources_keep_the_strings_registers_hold() {
        let stored: Vec<&str> = Source::iter().map(Source::as_str).collect();
        assert_eq!(stored, ["email", "phone", "forwarded"]);
        for s in Source::iter() {
            assert_eq!(s.as_str().parse::<Source>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("mail".parse::<Source>().is_err());
    }
}
