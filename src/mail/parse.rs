//! Raw RFC 5322 bytes become a typed [`InboundMail`], once, at the edge.
//! Never fails: whatever the bytes, the caller gets a value (possibly with
//! empty fields) and decides from that. Charsets are decoded by mail-parser
//! (with encoding_rs for the legacy multi-byte ones); HTML-only mail is
//! turned into text.

use jiff::Timestamp;
use mail_parser::{Address, MessageParser, MimeHeaders};

use crate::domain::types::EmailAddress;

/// Longest body text kept for classification and the register.
const MAX_TEXT_CHARS: usize = 200_000;

#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// None when the attachment is larger than the configured cap: only its
    /// metadata is kept.
    pub data: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct InboundMail {
    /// `<id@host>`; synthesised from a hash of the headers when missing.
    pub message_id: String,
    pub synthetic_id: bool,
    pub from: Option<EmailAddress>,
    pub from_name: String,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: String,
    pub date: Option<Timestamp>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Top-level header fields, names lower-cased, values unfolded.
    pub headers: Vec<(String, String)>,
    /// Top-level content type, lower-cased ("multipart/report").
    pub mime_type: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// The parser found no message structure at all.
    pub unparseable: bool,
    /// Set by intake when only the first bytes of a larger message were
    /// fetched (`intake.max_message_bytes`): the full size.
    pub truncated_from: Option<u64>,
}

impl InboundMail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every Message-ID this mail refers to (In-Reply-To first).
    pub fn referenced_ids(&self) -> Vec<String> {
        let mut v = self.in_reply_to.clone();
        for r in &self.references {
            if !v.contains(r) {
                v.push(r.clone());
            }
        }
        v
    }
}

/// The longest Message-ID kept as it is (RFC 5322 allows 998 octets per
/// line; real ones are under 100).
const MAX_MESSAGE_ID: usize = 250;

/// Puts a message id in canonical `<…>` form, safe to store, log and send
/// to IMAP: whitespace and control characters (a folded header's CR/LF)
/// and quotes or backslashes are removed, as a msg-id has none; a longer
/// id becomes a stable hash of itself, so threading and de-duplication
/// still see one id. Empty when nothing is left.
pub fn bracket(id: &str) -> String {
    let t: String = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '"' | '\\' | '<' | '>'))
        .collect();
    if t.is_empty() {
        return String::new();
    }
    if t.len() > MAX_MESSAGE_ID {
        return format!("<{}@long-id.klachtd.invalid>", fingerprint(t.as_bytes()));
    }
    format!("<{t}>")
}

fn addresses(a: Option<&Address>) -> Vec<EmailAddress> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address())
            .filter_map(|s| EmailAddress::parse(s).ok())
            .collect()
    })
    .unwrap_or_default()
}

fn unfold(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut last_space = false;
    for c in v.chars() {
        let c = if c == '\r' || c == '\n' || c == '\t' {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out.trim().to_string()
}

/// Two FNV-1a passes with different offsets: a stable 128-bit fingerprint
/// (std's hasher is not guaranteed stable across Rust versions).
fn fingerprint(bytes: &[u8]) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for &x in bytes {
        a = (a ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ (x as u64).rotate_left(3)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{a:016x}{b:016x}")
}

fn ids(v: &mail_parser::HeaderValue) -> Vec<String> {
    let ids = match v {
        mail_parser::HeaderValue::Text(t) => vec![bracket(t)],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| bracket(t)).collect(),
        _ => Vec::new(),
    };
    // A hostile References header may list thousands: the thread's root and
    // the latest are what threading needs.
    let mut ids: Vec<String> = ids.into_iter().filter(|i| !i.is_empty()).collect();
    if ids.len() > 100 {
        ids.drain(1..ids.len() - 99);
    }
    ids
}

/// Parses raw bytes. `max_attachment_bytes` caps the attachment data kept.
pub fn parse(raw: &[u8], max_attachment_bytes: u64) -> InboundMail {
    let header_end = find_header_end(raw);
    // mail-parser has debug assertions that torture-test mail can reach;
    // whatever it does, bad input must become a value, not a dead daemon.
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .ok()
        .flatten();
    let Some(mut m) = parsed else {
        return unparseable(raw);
    };

    let (message_id, synthetic_id) = match m.message_id().map(bracket).filter(|s| !s.is_empty()) {
        Some(id) => (id, false),
        None => (
            format!(
                "<{}@synthetic.klachtd.invalid>",
                fingerprint(&raw[..header_end])
            ),
            true,
        ),
    };
    // Raw 8-bit header bytes (no RFC 2047 encoding) are common in old mail
    // clients; decode them as mail clients do: with the body's charset,
    // else windows-1252, rather than as lossy UTF-8.
    let body_charset = m
        .text_part(0)
        .and_then(|p| p.content_type())
        .and_then(|ct| ct.attribute("charset"))
        .map(str::to_string);
    let legacy = |name: &str| legacy_header(&raw[..header_end], name, body_charset.as_deref());
    let from_addr = m.from().and_then(|a| a.first());
    let from = from_addr
        .and_then(|a| a.address())
        .and_then(|s| EmailAddress::parse(s).ok());
    let from_name = legacy("from")
        .map(|v| display_name(&v))
        .or_else(|| {
            from_addr
                .and_then(|a| a.name())
                .map(|n| unfold(n).trim_matches('"').to_string())
        })
        .unwrap_or_default();
    let headers: Vec<(String, String)> = m
        .headers_raw()
        .map(|(n, v)| (n.to_ascii_lowercase(), unfold(v)))
        .collect();
    let mime_type = mime_type_of(m.content_type(), "text/plain");

    let text = body_text(&m);

    // The attachments last: their data moves out of the parsed message
    // rather than being copied.
    let subject = legacy("subject")
        .or_else(|| m.subject().map(unfold))
        .unwrap_or_default();
    let (to, cc) = (addresses(m.to()), addresses(m.cc()));
    let date = m
        .date()
        .and_then(|d| Timestamp::from_second(d.to_timestamp()).ok());
    let (in_reply_to, references) = (ids(m.in_reply_to()), ids(m.references()));
    let mut attachments = Vec::new();
    for i in std::mem::take(&mut m.attachments) {
        if let Some(p) = m.parts.get_mut(i as usize) {
            attachments.push(attachment(p, max_attachment_bytes));
        }
    }

    InboundMail {
        message_id,
        synthetic_id,
        from,
        from_name,
        to,
        cc,
        subject,
        date,
        in_reply_to,
        references,
        headers,
        mime_type,
        text,
        attachments,
        unparseable: false,
        truncated_from: None,
    }
}

/// What a message mail-parser could not read at all becomes: no sender,
/// no text, an id from its bytes so it is still seen only once.
fn unparseable(raw: &[u8]) -> InboundMail {
    InboundMail {
        message_id: format!("<{}@synthetic.klachtd.invalid>", fingerprint(raw)),
        synthetic_id: true,
        from: None,
        from_name: String::new(),
        to: Vec::new(),
        cc: Vec::new(),
        subject: String::new(),
        date: None,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        headers: Vec::new(),
        mime_type: String::new(),
        text: String::new(),
        attachments: Vec::new(),
        unparseable: true,
        truncated_from: None,
    }
}

/// `type/subtype` in lower case, `default` without a Content-Type.
fn mime_type_of(ct: Option<&mail_parser::ContentType>, default: &str) -> String {
    ct.map(|ct| match ct.subtype() {
        Some(sub) => format!("{}/{}", ct.ctype(), sub),
        None => ct.ctype().to_string(),
    })
    .unwrap_or_else(|| default.into())
    .to_ascii_lowercase()
}

/// The text parts joined by a blank line, cut at `MAX_TEXT_CHARS` bytes on
/// a character boundary.
fn body_text(m: &mail_parser::Message<'_>) -> String {
    let mut text = String::new();
    for i in 0..m.text_body_count().max(1) {
        if let Some(t) = m.body_text(i) {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&t);
        }
        if text.len() > MAX_TEXT_CHARS {
            break;
        }
    }
    if text.len() > MAX_TEXT_CHARS {
        let mut cut = MAX_TEXT_CHARS;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// One attachment: its metadata always, its data up to `max_bytes`, moved
/// out of the part (decoded data is not copied again).
fn attachment(p: &mut mail_parser::MessagePart<'_>, max_bytes: u64) -> Attachment {
    use mail_parser::PartType;
    let filename = p
        .attachment_name()
        .map(sanitize_filename)
        .unwrap_or_else(|| "bijlage".to_string());
    let content_type = mime_type_of(p.content_type(), "application/octet-stream");
    let size = p.contents().len() as u64;
    let data = (size <= max_bytes).then(|| match std::mem::take(&mut p.body) {
        PartType::Binary(b) | PartType::InlineBinary(b) => b.into_owned(),
        PartType::Text(t) | PartType::Html(t) => t.into_owned().into_bytes(),
        PartType::Message(inner) => inner.raw_message.into_owned(),
        PartType::Multipart(_) => Vec::new(),
    });
    Attachment {
        filename,
        content_type,
        size,
        data,
    }
}

/// The value of a top-level header that is NOT valid UTF-8 (raw 8-bit
/// bytes), decoded with `charset` or windows-1252. None when the header is
/// absent or valid UTF-8 (mail-parser's own decoding is right then).
fn legacy_header(head: &[u8], name: &str, charset: Option<&str>) -> Option<String> {
    let mut value: Option<Vec<u8>> = None;
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match &mut value {
            Some(v) if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') => {
                v.push(b' ');
                v.extend_from_slice(line);
            }
            Some(_) => break,
            None => {
                let n = name.len();
                if line.len() > n
                    && line[..n].eq_ignore_ascii_case(name.as_bytes())
                    && line[n] == b':'
                {
                    value = Some(line[n + 1..].to_vec());
                }
            }
        }
    }
    let v = value?;
    if std::str::from_utf8(&v).is_ok() {
        return None;
    }
    let enc = charset
        .and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
        .filter(|e| *e != encoding_rs::UTF_8)
        .unwrap_or(encoding_rs::WINDOWS_1252);
    Some(unfold(&enc.decode(&v).0))
}

/// `"Name" <addr>` or `Name <addr>` → `Name`.
fn display_name(v: &str) -> String {
    v.split('<')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .trim()
        .to_string()
}

fn find_header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len().min(8192))
}

fn sanitize_filename(n: &str) -> String {
    let base = n.rsplit(['/', '\\']).next().unwrap_or(n);
    let clean: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if clean.trim().is_empty() {
        "bijlage".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_message_yields_its_fields() {
        let raw = b"From: \"Jan Jansen\" <jan@client.test>\r\nTo: info@31solutions.test\r\nSubject: Klacht over\r\n de sessie\r\nMessage-ID: <abc@client.test>\r\nReferences: <a@x> <b@y>\r\nIn-Reply-To: <b@y>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nAuto-Submitted: no\r\n\r\nIk ben ontevreden.\r\n";
        let m = parse(raw, 1024);
        assert_eq!(m.message_id, "<abc@client.test>");
        assert_eq!(m.from.as_ref().unwrap().as_str(), "jan@client.test");
        assert_eq!(m.from_name, "Jan Jansen");
        assert_eq!(m.subject, "Klacht over de sessie");
        assert_eq!(m.referenced_ids(), vec!["<b@y>", "<a@x>"]);
        assert_eq!(m.header("auto-submitted"), Some("no"));
        assert_eq!(m.date.unwrap().to_string(), "2026-11-23T09:00:00Z");
        assert!(m.text.contains("ontevreden"));
    }

    #[test]
    fn a_message_without_message_id_gets_a_stable_synthetic_one() {
        let raw = b"From: jan@client.test\r\nSubject: x\r\n\r\nbody";
        let a = parse(raw, 0);
        let b = parse(raw, 0);
        assert!(a.synthetic_id);
        assert_eq!(a.message_id, b.message_id);
        let c = parse(b"From: jan@client.test\r\nSubject: y\r\n\r\nbody", 0);
        assert_ne!(a.message_id, c.message_id);
    }

    #[test]
    fn raw_8bit_headers_are_decoded_with_the_body_charset() {
        let raw = b"From: Dani\xebl Bakker <d@client.test>\r\nSubject: Caf\xe9 \x80 95\r\nContent-Type: text/plain; charset=windows-1252\r\n\r\nx";
        let m = parse(raw, 0);
        assert_eq!(m.from_name, "Dani\u{eb}l Bakker");
        assert_eq!(m.subject, "Caf\u{e9} \u{20ac} 95");
        assert_eq!(m.from.unwrap().as_str(), "d@client.test");
        let utf8 = parse(
            "From: Dani\u{eb}l <d@client.test>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nx"
                .as_bytes(),
            0,
        );
        assert_eq!(utf8.from_name, "Dani\u{eb}l");
        assert_eq!(utf8.subject, "caf\u{e9}");
    }

    #[test]
    fn garbage_and_empty_input_do_not_panic() {
        for raw in [
            &b""[..],
            b"\xff\xfe\x00",
            b"\n\n\n",
            b"From:\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
        ] {
            let m = parse(raw, 10);
            assert!(m.message_id.starts_with('<'));
        }
    }

    #[test]
    fn hostile_message_ids_are_cleaned_capped_and_kept_stable() {
        let raw = b"From: a@client.test\r\nMessage-ID: <abc\r\n \"x\\y\"@evil.test>\r\nSubject: x\r\n\r\nhoi\r\n";
        let m = parse(raw, 10);
        assert_eq!(m.message_id, "<abcxy@evil.test>");
        let long = format!("<{}@evil.test>", "a".repeat(5000));
        let raw = format!(
            "From: a@client.test\r\nMessage-ID: {long}\r\nIn-Reply-To: {long}\r\n\r\nhoi\r\n"
        );
        let m = parse(raw.as_bytes(), 10);
        assert!(m.message_id.len() < 80, "{}", m.message_id);
        assert_eq!(
            m.in_reply_to,
            vec![m.message_id.clone()],
            "the same id, the same hash"
        );
        let refs: Vec<String> = (0..5000).map(|i| format!("<r{i}@x.test>")).collect();
        let raw = format!(
            "From: a@client.test\r\nReferences: {}\r\n\r\nhoi\r\n",
            refs.join(" ")
        );
        let m = parse(raw.as_bytes(), 10);
        assert_eq!(m.references.len(), 100);
        assert_eq!(m.references[0], "<r0@x.test>", "the thread's root stays");
        assert_eq!(m.references[99], "<r4999@x.test>");
        let raw = b"From: a@client.test\r\nMessage-ID: <\r\n >\r\n\r\nhoi\r\n";
        assert!(parse(raw, 10).synthetic_id, "nothing left: a synthetic id");
    }

    #[test]
    fn attachments_above_the_cap_keep_only_their_metadata() {
        let raw = b"From: a@client.test\r\nMessage-ID: <m@x>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nzie bijlage\r\n--b\r\nContent-Type: application/pdf; name=\"../../verslag.pdf\"\r\nContent-Disposition: attachment; filename=\"../../verslag.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n--b--\r\n";
        let small = parse(raw, 4);
        assert_eq!(small.attachments.len(), 1);
        assert_eq!(small.attachments[0].filename, "verslag.pdf");
        assert_eq!(small.attachments[0].content_type, "application/pdf");
        assert_eq!(small.attachments[0].size, 15);
        assert!(small.attachments[0].data.is_none());
        let big = parse(raw, 1024);
        assert_eq!(
            big.attachments[0].data.as_deref(),
            Some(&b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n"[..])
        );
    }
}
