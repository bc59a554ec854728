//! Builds outgoing RFC 5322 messages. Every Message-ID is generated here,
//! random (unguessable: staff commands later rely on that) and stored.

use std::time::SystemTime;

use anyhow::{Context, Result};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::Message;

use crate::domain::types::EmailAddress;

/// `<32 random hex chars@domain>`.
pub fn new_message_id(domain: &str) -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).context("no randomness for a Message-ID")?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("<{hex}@{domain}>"))
}

pub struct Outgoing<'a> {
    pub message_id: &'a str,
    pub from_name: &'a str,
    pub from: &'a EmailAddress,
    pub to_name: &'a str,
    pub to: &'a EmailAddress,
    pub reply_to: Option<&'a EmailAddress>,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// The message this answers (threading), and the chain before it.
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    /// An automatic reply to a client: RFC 3834 headers are added.
    pub auto_reply: bool,
    pub date: jiff::Timestamp,
    /// What kind of mail this is (`ack`, `reminder`, `digest`, …): written
    /// as `X-Klachtd-Kind` so staff can filter on it in their mail client.
    pub kind: &'a str,
    pub attachments: &'a [(String, String, Vec<u8>)],
    /// Images the HTML shows inline: (Content-ID without brackets, content
    /// type, bytes), referred to as `<img src="cid:…">`.
    pub inline: &'a [(String, String, Vec<u8>)],
}

/// Stands in for a recipient lettre cannot write (a non-ASCII local part,
/// RFC 6531): replaced by the real address in the finished message.
const STAND_IN: &str = "recipient@stand-in.klachtd.invalid";

fn mailbox(name: &str, addr: &EmailAddress) -> Result<Mailbox> {
    let address = addr
        .as_str()
        .parse()
        .or_else(|_| STAND_IN.parse())
        .context("an address that passed validation cannot be written into a message")?;
    let name = name.trim();
    Ok(Mailbox::new(
        (!name.is_empty()).then(|| name.to_string()),
        address,
    ))
}

fn header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
}

/// Renders the message to bytes (CRLF, encoded words, quoted-printable).
pub fn build(o: &Outgoing) -> Result<Vec<u8>> {
    let date =
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(o.date.as_second().max(0) as u64);
    // The envelope is the outbox's own (one recipient per row); lettre's,
    // derived from the headers, is never used and must not fail on an
    // address it cannot take.
    let envelope = lettre::address::Envelope::new(None, vec![STAND_IN.parse()?])?;
    let mut b = Message::builder()
        .envelope(envelope)
        .from(mailbox(o.from_name, o.from)?)
        .to(mailbox(o.to_name, o.to)?)
        .subject(o.subject)
        .date(date)
        .message_id(Some(o.message_id.to_string()))
        .raw_header(header("X-Mailer", "klachtd"));
    if !o.kind.is_empty() {
        b = b.raw_header(header("X-Klachtd-Kind", o.kind));
    }
    if let Some(r) = o.reply_to {
        b = b.reply_to(mailbox(o.from_name, r)?);
    }
    if let Some(irt) = o.in_reply_to {
        b = b.in_reply_to(irt.to_string());
    }
    if !o.references.is_empty() {
        b = b.references(o.references.join(" "));
    }
    if o.auto_reply {
        b = b
            .raw_header(header("Auto-Submitted", "auto-replied"))
            .raw_header(header("X-Auto-Response-Suppress", "All"))
            .raw_header(header("Precedence", "auto_reply"));
    }
    let mut body = MultiPart::alternative_plain_html(o.text.to_string(), o.html.to_string());
    if !o.inline.is_empty() {
        let mut related = MultiPart::related().multipart(body);
        for (cid, ctype, data) in o.inline {
            let ct = ContentType::parse(ctype).context("inline part content type")?;
            related =
                related.singlepart(Attachment::new_inline(cid.clone()).body(data.clone(), ct));
        }
        body = related;
    }
    let msg = if o.attachments.is_empty() {
        b.multipart(body)
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for (name, ctype, data) in o.attachments {
            let ct = ContentType::parse(ctype).unwrap_or(ContentType::TEXT_PLAIN);
            mixed = mixed.singlepart(Attachment::new(name.clone()).body(data.clone(), ct));
        }
        b.multipart(mixed)
    }
    .context("cannot build message")?;
    let mut raw = msg.formatted();
    if o.to.as_str().parse::<lettre::Address>().is_err() {
        raw = replace_once(&raw, STAND_IN.as_bytes(), o.to.as_str().as_bytes());
    }
    Ok(raw)
}

/// `raw` with the first `from` replaced by `to`.
fn replace_once(raw: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    match raw.windows(from.len()).position(|w| w == from) {
        Some(i) => [&raw[..i], to, &raw[i + from.len()..]].concat(),
        None => raw.to_vec(),
    }
}

/// References for a reply: the parent's chain plus the parent, capped so
/// headers stay a sane length (first and last ones kept, RFC 5322 3.6.4).
pub fn references_for_reply(parent_refs: &[String], parent_id: &str) -> Vec<String> {
    let mut v: Vec<String> = parent_refs.to_vec();
    if !v.iter().any(|r| r == parent_id) {
        v.push(parent_id.to_string());
    }
    if v.len() > 20 {
        let first = v[0].clone();
        let tail = v.split_off(v.len() - 19);
        v = std::iter::once(first).chain(tail).collect();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse;

    #[test]
    fn an_automatic_reply_is_threaded_and_marked_as_automatic() {
        let from = EmailAddress::parse("info@31solutions.test").unwrap();
        let to = EmailAddress::parse("jan@client.test").unwrap();
        let id = new_message_id("klachtd.31solutions.test").unwrap();
        let raw = build(&Outgoing {
            message_id: &id,
            from_name: "31Solutions",
            from: &from,
            to_name: "Jan Jänsen",
            to: &to,
            reply_to: None,
            subject: "[KL-2026-0001] Ontvangstbevestiging",
            text: "Beste Jan, wij hebben uw klacht ontvangen.",
            html: "<p>Beste Jan</p>",
            in_reply_to: Some("<c@client.test>"),
            references: &["<a@client.test>".into(), "<c@client.test>".into()],
            auto_reply: true,
            date: "2026-11-23T10:00:00Z".parse().unwrap(),
            kind: "ack",
            attachments: &[],
            inline: &[],
        })
        .unwrap();
        let m = parse(&raw, 0);
        assert_eq!(m.message_id, id);
        assert_eq!(m.in_reply_to, vec!["<c@client.test>"]);
        assert_eq!(m.references, vec!["<a@client.test>", "<c@client.test>"]);
        assert_eq!(m.header("auto-submitted"), Some("auto-replied"));
        assert_eq!(m.header("x-auto-response-suppress"), Some("All"));
        assert_eq!(m.header("x-klachtd-kind"), Some("ack"));
        assert!(m.subject.contains("[KL-2026-0001]"));
        assert!(m.text.contains("uw klacht ontvangen"));
        assert_eq!(m.mime_type, "multipart/alternative");
    }

    #[test]
    fn an_inline_image_is_related_to_the_html_it_appears_in() {
        let from = EmailAddress::parse("info@31solutions.test").unwrap();
        let png = b"\x89PNG\r\n\x1a\nnot really".to_vec();
        let raw = build(&Outgoing {
            message_id: "<r@k.test>",
            from_name: "31Solutions",
            from: &from,
            to_name: "",
            to: &from,
            reply_to: None,
            subject: "Klachtenanalyse",
            text: "tekst",
            html: "<img src=\"cid:chart@k.test\">",
            in_reply_to: None,
            references: &[],
            auto_reply: false,
            date: "2026-12-01T08:30:00Z".parse().unwrap(),
            kind: "report",
            attachments: &[],
            inline: &[("chart@k.test".into(), "image/png".into(), png.clone())],
        })
        .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("multipart/related"), "{text}");
        assert!(text.contains("Content-ID: <chart@k.test>"), "{text}");
        assert!(text.contains("Content-Disposition: inline"), "{text}");
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let part = m
            .parts
            .iter()
            .find(|p| mail_parser::MimeHeaders::content_id(*p) == Some("chart@k.test"))
            .expect("the image part");
        assert_eq!(part.contents(), png.as_slice());
    }

    #[test]
    fn message_ids_are_random_and_in_our_domain() {
        let a = new_message_id("k.test").unwrap();
        let b = new_message_id("k.test").unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with('<') && a.ends_with("@k.test>") && a.len() == 1 + 32 + "@k.test>".len()
        );
    }

    #[test]
    fn long_reference_chains_keep_the_first_and_the_latest() {
        let refs: Vec<String> = (0..30).map(|i| format!("<{i}@x>")).collect();
        let r = references_for_reply(&refs, "<p@x>");
        assert_eq!(r.len(), 20);
        assert_eq!(r[0], "<0@x>");
        assert_eq!(r.last().unwrap(), "<p@x>");
    }
}
