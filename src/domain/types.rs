//! Validated value types shared by the whole crate. Parse at the edge, once:
//! nothing downstream handles a raw string that could be invalid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An email address in its canonical form: trimmed, domain lower-cased.
/// The local part keeps its case for display but compares case-insensitively.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid email address {0:?}")]
pub struct InvalidAddress(pub String);

/// An RFC 5322 quoted local part (`"jan de vries"`): printable text, with
/// a quote or backslash only escaped; no control characters.
fn quoted_local_part_ok(local: &str) -> bool {
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return false;
    };
    let mut escaped = false;
    for c in inner.chars() {
        if c.is_control() {
            return false;
        }
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, '"') => return false,
            _ => escaped = false,
        }
    }
    !inner.is_empty() && !escaped
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, InvalidAddress> {
        let s = raw
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        let bad = || InvalidAddress(raw.to_string());
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty() || local.len() > 64 || domain.len() > 253 || s.len() > 254 {
            return Err(bad());
        }
        let local_ok = quoted_local_part_ok(local)
            || local.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || "!#$%&'*+-/=?^_`{|}~.".contains(c)
                    || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
            }) && !local.starts_with('.')
                && !local.ends_with('.')
                && !local.contains("..");
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(bad());
        }
        Ok(EmailAddress(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lower-cased form, for comparison and database keys.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The mailbox behind the address, for limits per sender: lower case,
    /// without a `+tag` (`boos+1@` and `boos+10@` are one mailbox), and for
    /// Gmail without the dots it ignores in the local part.
    pub fn mailbox_key(&self) -> String {
        let key = self.key();
        let Some((local, domain)) = key.rsplit_once('@') else {
            return key;
        };
        let local = local.split('+').next().unwrap_or(local);
        let local = if matches!(domain, "gmail.com" | "googlemail.com") {
            local.replace('.', "")
        } else {
            local.to_string()
        };
        format!("{local}@{domain}")
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl PartialEq for EmailAddress {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for EmailAddress {}

impl std::hash::Hash for EmailAddress {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EmailAddress {
    type Err = InvalidAddress;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = InvalidAddress;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.0
    }
}

/// A case reference such as `KL-2026-0042`: year plus a sequence number
/// within that year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseRef {
    pub year: i32,
    pub seq: u32,
}

impl CaseRef {
    /// Finds the first `[KL-YYYY-NNNN]` tag in a subject line.
    pub fn find_tag(subject: &str) -> Option<CaseRef> {
        let mut rest = subject;
        while let Some(i) = rest.find("[KL-") {
            let after = &rest[i + 1..];
            if let Some(end) = after.find(']') {
                if let Ok(r) = after[..end].parse() {
                    return Some(r);
                }
            }
            rest = &rest[i + 4..];
        }
        None
    }
}

impl fmt::Display for CaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KL-{:04}-{:04}", self.year, self.seq)
    }
}

/// As its text, `KL-2026-0042`: the form JSON output always had.
impl Serialize for CaseRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid case reference {0:?} (expected KL-YYYY-NNNN)")]
pub struct InvalidCaseRef(pub String);

impl FromStr for CaseRef {
    type Err = InvalidCaseRef;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidCaseRef(s.to_string());
        let t = s.trim();
        let rest = t
            .strip_prefix("KL-")
            .or_else(|| t.strip_prefix("kl-"))
            .ok_or_else(bad)?;
        let (y, n) = rest.split_once('-').ok_or_else(bad)?;
        if y.len() != 4
            || n.len() < 4
            || !y.bytes().all(|b| b.is_ascii_digit())
            || !n.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let seq: u32 = n.parse().map_err(|_| bad())?;
        if seq == 0 {
            return Err(bad());
        }
        Ok(CaseRef { year, seq })
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (expected one of: {})",
                        stringify!($name).to_lowercase(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// Article 2: what the complaint is about.
    Category {
        Coaching => "coaching",
        Communicatie => "communicatie",
        Dienstverlening => "dienstverlening",
        Overig => "overig",
    }
);

string_enum!(
    /// Case states (design.md section 3). `extended` is a flag, not a state.
    Status {
        Triage => "triage",
        Received => "received",
        Acknowledged => "acknowledged",
        InProgress => "in_progress",
        Proposed => "proposed",
        Rejected => "rejected",
        Resolved => "resolved",
        External => "external",
        Closed => "closed",
    }
);

string_enum!(
    /// Article 4: the three elements a complaint should state.
    Element {
        Nature => "nature",
        Dates => "dates",
        DesiredOutcome => "desired_outcome",
    }
);

string_enum!(
    /// Language of a message and of the mail we answer it with.
    Lang {
        Nl => "nl",
        En => "en",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_addresses_come_down_to_one_mailbox() {
        let key = |a: &str| EmailAddress::parse(a).unwrap().mailbox_key();
        assert_eq!(key("Boos+1@Example.NL"), "boos@example.nl");
        assert_eq!(key("boos+10@example.nl"), key("boos@example.nl"));
        assert_eq!(key("b.o.o.s+x@gmail.com"), "boos@gmail.com");
        // Elsewhere a dot is part of the name.
        assert_ne!(key("j.jansen@example.nl"), key("jjansen@example.nl"));
        assert_ne!(key("boos@example.nl"), key("boos@example.com"));
    }

    #[test]
    fn addresses_are_validated_and_compare_without_case() {
        let a = EmailAddress::parse(" <Jan.Jansen@Example.NL> ").unwrap();
        assert_eq!(a.as_str(), "Jan.Jansen@example.nl");
        assert_eq!(a, EmailAddress::parse("jan.jansen@example.nl").unwrap());
        for bad in [
            "",
            "jan",
            "@x.nl",
            "jan@",
            "jan@nl",
            "jan@@x.nl",
            "ja n@x.nl",
            "jan@x..nl",
            ".jan@x.nl",
            "\"jan\"de\"@x.nl",
            "\"\"@x.nl",
            "\"jan\r\n\"@x.nl",
            "jan\u{1b}@x.nl",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        // RFC 5322 and 6531 allow these, and clients write them.
        for good in [
            "\"jan de vries\"@client.test",
            "\"jan\\\"q\"@client.test",
            "o’brien@client.test",
            "o'brien@client.test",
            "jan@bücher.test",
            "jörg@müller.example",
        ] {
            assert!(
                EmailAddress::parse(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
    }

    #[test]
    fn case_references_round_trip_and_are_found_in_subjects() {
        let r: CaseRef = "KL-2026-0042".parse().unwrap();
        assert_eq!(
            r,
            CaseRef {
                year: 2026,
                seq: 42
            }
        );
        assert_eq!(r.to_string(), "KL-2026-0042");
        assert_eq!(
            CaseRef {
                year: 2027,
                seq: 12345
            }
            .to_string(),
            "KL-2027-12345"
        );
        assert!("KL-26-1".parse::<CaseRef>().is_err());
        assert!("KL-2026-0000".parse::<CaseRef>().is_err());
        assert_eq!(
            CaseRef::find_tag("Re: [KL-x] and [KL-2026-0007] Uw klacht"),
            Some(CaseRef { year: 2026, seq: 7 })
        );
        assert_eq!(CaseRef::find_tag("KL-2026-0007 without brackets"), None);
        assert_eq!(serde_json::to_value(r).unwrap(), "KL-2026-0042");
    }

    #[test]
    fn enums_parse_their_contract_spelling() {
        assert_eq!("in_progress".parse::<Status>().unwrap(), Status::InProgress);
        assert_eq!(Category::Communicatie.as_str(), "communicatie");
        assert!("klacht".parse::<Category>().is_err());
    }
}
