//! The original mail inside a forward: a colleague got a complaint in their
//! own mailbox and forwards it to info@ with `/klacht` on top. Mail clients
//! forward either inline (a separator line and a small header block) or as
//! an attached `message/rfc822`. Pure code.

use jiff::Timestamp;

use super::parse::{self, InboundMail};
use crate::domain::types::EmailAddress;

/// What was forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub from_name: String,
    pub from: Option<EmailAddress>,
    pub subject: String,
    pub date: Option<Timestamp>,
    pub body: String,
}

/// Separator lines that start an inline forward (or a quoted original).
const SEPARATORS: &[&str] = &[
    "---------- forwarded message",
    "---------- doorgestuurd bericht",
    "begin forwarded message:",
    "begin doorgestuurd bericht:",
    "-----original message-----",
    "----- original message -----",
    "-----oorspronkelijk bericht-----",
    "-------- forwarded message --------",
    "-------- doorgestuurd bericht --------",
    "-------- original message --------",
];

/// The forwarded original, from an attached message or from the text.
pub fn extract(m: &InboundMail, max_attachment_bytes: u64) -> Option<Forwarded> {
    if let Some(att) = m
        .attachments
        .iter()
        .find(|a| a.content_type == "message/rfc822")
        .and_then(|a| a.data.as_deref())
    {
        let inner = parse::parse(att, max_attachment_bytes);
        if !inner.unparseable {
            return Some(Forwarded {
                from_name: inner.from_name.clone(),
                from: inner.from.clone(),
                subject: inner.subject.clone(),
                date: inner.date,
                body: inner.text.trim().to_string(),
            });
        }
    }
    inline(&m.text)
}

/// An inline forward: the separator, a header block (English or Dutch
/// field names, Outlook's `*From:*` too), a blank line, the body.
pub fn inline(text: &str) -> Option<Forwarded> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| {
        let l = l.trim().trim_start_matches('>').trim().to_lowercase();
        SEPARATORS.iter().any(|s| l.starts_with(s))
    })?;
    let mut f = Forwarded {
        from_name: String::new(),
        from: None,
        subject: String::new(),
        date: None,
        body: String::new(),
    };
    let mut i = start + 1;
    // Blank lines between the separator and the header block.
    while i < lines.len() && unquote(lines[i]).is_empty() {
        i += 1;
    }
    let mut seen_header = false;
    while i < lines.len() {
        let line = unquote(lines[i]);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            break;
        };
        let name = name.trim().trim_matches('*').trim().to_lowercase();
        let value = value.trim().trim_start_matches('*').trim();
        match name.as_str() {
            "from" | "van" => {
                let (n, a) = name_and_address(value);
                f.from_name = n;
                f.from = a;
            }
            "subject" | "onderwerp" => f.subject = value.to_string(),
            "date" | "datum" | "sent" | "verzonden" => {
                f.date = parse_date(value);
            }
            "to" | "aan" | "cc" | "reply-to" | "antwoord aan" => {}
            _ if !seen_header => return None,
            _ => break,
        }
        seen_header = true;
        i += 1;
    }
    if !seen_header {
        return None;
    }
    let body: Vec<&str> = lines[i..].iter().map(|l| unquote_keep(l)).collect();
    f.body = body.join("\n").trim().to_string();
    Some(f)
}

fn unquote(line: &str) -> &str {
    line.trim().trim_start_matches('>').trim()
}

/// A body line without one level of `> ` quoting, its indentation kept.
fn unquote_keep(line: &str) -> &str {
    let t = line.strip_prefix('>').unwrap_or(line);
    t.strip_prefix(' ').unwrap_or(t)
}

/// `Jan de Vries <jan@x.nl>`, `"Jan" <jan@x.nl>`, `jan@x.nl`, or Outlook's
/// `Jan de Vries [mailto:jan@x.nl]`.
fn name_and_address(v: &str) -> (String, Option<EmailAddress>) {
    let pick = |open: char, close: char| {
        let a = v.rfind(open)?;
        let b = v[a..].find(close)? + a;
        Some((v[..a].trim(), v[a + 1..b].trim_start_matches("mailto:")))
    };
    let (name, addr) = pick('<', '>')
        .or_else(|| pick('[', ']'))
        .unwrap_or(("", v.trim()));
    let name = name.trim().trim_matches('"').trim().to_string();
    (name, EmailAddress::parse(addr).ok())
}

/// RFC 2822 dates (`Mon, 23 Nov 2026 10:00:00 +0100`); client-localised
/// forms ("maandag 23 november 2026 10:00") are not guessed at.
fn parse_date(v: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::parse(v.trim())
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_inline_forward() {
        let t = "/klacht\n\n---------- Forwarded message ---------\nFrom: Jan de Vries <jan@client.test>\n\
                 Date: Mon, 16 Nov 2026 09:30:00 +0100\nSubject: Klacht over de training\nTo: <bram@31solutions.test>\n\n\
                 Beste Bram,\n\nIk ben ontevreden.\n";
        let f = inline(t).unwrap();
        assert_eq!(f.from_name, "Jan de Vries");
        assert_eq!(f.from.unwrap().as_str(), "jan@client.test");
        assert_eq!(f.subject, "Klacht over de training");
        assert_eq!(f.date.unwrap().to_string(), "2026-11-16T08:30:00Z");
        assert_eq!(f.body, "Beste Bram,\n\nIk ben ontevreden.");
    }

    #[test]
    fn outlook_dutch_forward_with_mailto_and_localised_date() {
        let t = "/klacht\r\nZie hieronder.\r\n\r\n-----Oorspronkelijk bericht-----\r\nVan: Jan de Vries [mailto:jan@client.test]\r\n\
                 Verzonden: maandag 16 november 2026 09:30\r\nAan: Bram\r\nOnderwerp: Klacht\r\n\r\nIk ben ontevreden.\r\n";
        let f = inline(t).unwrap();
        assert_eq!(f.from.unwrap().as_str(), "jan@client.test");
        assert_eq!(f.from_name, "Jan de Vries");
        assert_eq!(f.subject, "Klacht");
        assert_eq!(f.date, None, "localised dates are not guessed");
        assert_eq!(f.body, "Ik ben ontevreden.");
    }

    #[test]
    fn apple_mail_forward_and_quoted_forward() {
        let t = "/klacht\n\nBegin doorgestuurd bericht:\n\n> Van: jan@client.test\n> Onderwerp: Klacht\n> Datum: 16 november 2026 om 09:30:00 CET\n>\n> Ik ben ontevreden.\n> Groet, Jan\n";
        let f = inline(t).unwrap();
        assert_eq!(f.from.unwrap().as_str(), "jan@client.test");
        assert_eq!(f.from_name, "");
        assert_eq!(f.body, "Ik ben ontevreden.\nGroet, Jan");
    }

    #[test]
    fn no_forward_no_result() {
        assert_eq!(inline("/klacht\nJan belde: hij is ontevreden."), None);
        assert_eq!(inline(""), None);
        // A separator without a header block is not a forward we can read.
        assert_eq!(inline("-----Original Message-----\nHallo daar\n"), None);
    }
}
