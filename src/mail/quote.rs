//! The new text of a staff member's reply: what they typed above (or
//! between) the quoted history, without the history itself, without their
//! signature and without "Sent from my iPhone".
//!
//! Pure code, no I/O. The approach follows mailgun/talon's plain-text
//! quotation extraction (classify lines, find the first line that starts the
//! quoted history), rewritten by hand for the Dutch and English forms mail
//! clients actually produce, without regular expressions and in linear time:
//! every line is looked at a bounded number of times, and the only lines
//! that are joined (wrapped attribution lines) are capped in length.
//!
//! What ends the new text, top to bottom, at the first line that:
//! - contains klachtd's own [`REPLY_ABOVE`] marker (quoted or not, also
//!   when a client wrapped it): everything from there down is cut, whatever
//!   the client did with the quote (also interleaved answers below it);
//! - is a signature delimiter (`-- ` or `--`);
//! - is an "original message" or "forwarded message" separator
//!   (`-----Oorspronkelijk bericht-----`, `----- Original Message -----`,
//!   `---------- Forwarded message ---------`, `Begin doorgestuurd bericht:`);
//! - is a line of underscores followed by `Van:`/`From:` (Outlook.com);
//! - starts an Outlook header block: `Van:`/`From:` followed within five
//!   lines by `Verzonden:`/`Sent:`/`Datum:`/`Date:` and
//!   `Aan:`/`To:`/`Onderwerp:`/`Subject:` (also `*From:*`);
//! - is an attribution line (`On … wrote:`, `Op … schreef …:`,
//!   `Op … heeft … het volgende geschreven:`, `Name <x@y> wrote:`, possibly
//!   wrapped over up to three lines) that is NOT followed by `>` lines.
//!
//! An attribution line that IS followed by `>` lines only introduces a
//! `>` quote: it is dropped, like every line starting with `>`, and the
//! unquoted lines between and after the quoted ones (an interleaved or
//! bottom-posted answer) are kept. A date-and-address line in another
//! language ending in `:` (`02.04.2012 14:20 … <bob@…> написал:`) is
//! dropped the same way, but only when `>` lines follow it.
//!
//! Finally mobile "sent from" lines at the end are dropped, trailing
//! whitespace is removed from every line, leading and trailing blank lines
//! are removed, and a run of blank lines left where a quote was removed
//! becomes one blank line.

/// The marker line klachtd puts at the top of every notification it sends to staff.
/// Everything from a line containing it downwards is cut, whatever the mail client did.
pub const REPLY_ABOVE: &str =
    "##- Schrijf uw antwoord boven deze regel / Write above this line -##";

/// The two halves of [`REPLY_ABOVE`] that survive a client wrapping or
/// shortening the line.
const MARKER_HEAD: &str = "##- Schrijf uw antwoord boven";
const MARKER_TAIL: &str = "Write above this line -##";

/// Longest attribution (all its wrapped lines together) that is recognised.
const MAX_ATTRIBUTION_BYTES: usize = 400;
/// Lines an attribution may be wrapped over.
const MAX_ATTRIBUTION_LINES: usize = 3;
/// A wrapped line this long was plausibly wrapped by the mail client.
const WRAPPED_LINE_CHARS: usize = 50;
/// Lines after `From:` that may hold the rest of an Outlook header block.
const HEADER_BLOCK_LINES: usize = 5;
/// Lines after a line of underscores that may hold its `From:`.
const UNDERSCORE_LOOKAHEAD: usize = 3;
/// A mobile "sent from" line is short; longer lines are the writer's text.
const MAX_MOBILE_LINE_BYTES: usize = 100;

/// The new text of a reply: what the writer typed, without quoted history,
/// forwarded/original-message blocks, `> ` quoted lines, the `-- ` signature and
/// mobile "sent from" lines. Trailing/leading blank lines trimmed; inner blank lines kept.
/// Line endings normalised to \n.
pub fn new_text(body: &str) -> String {
    let normalised;
    let text = if body.contains('\r') {
        normalised = body.replace("\r\n", "\n").replace('\r', "\n");
        normalised.as_str()
    } else {
        body
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let out = kept_lines(&lines);
    let mut kept: Vec<&str> = out.iter().map(|&k| lines[k].trim_end()).collect();
    loop {
        while kept.last().is_some_and(|l| l.is_empty()) {
            kept.pop();
        }
        match kept.last() {
            Some(l) if is_mobile_line(l) => {
                kept.pop();
            }
            _ => break,
        }
    }
    let first = kept
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(kept.len());
    kept[first..].join("\n")
}

/// The indices of the lines the writer typed, in order: up to the first
/// marker, signature, separator or header block, without quoted lines and
/// their attributions, and without a second blank line where quoted lines
/// were dropped.
fn kept_lines(lines: &[&str]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    // Lines were dropped since the last kept non-blank line.
    let mut gap = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_marker(line) {
            // A wrapped marker: its `##-` start may be on the kept line above.
            if !line.contains("##-")
                && i > 0
                && out.last() == Some(&(i - 1))
                && lines[i - 1].contains("##-")
            {
                out.pop();
            }
            break;
        }
        if is_quoted(line) {
            gap = true;
            i += 1;
            continue;
        }
        if is_blank(line) {
            let after_blank = out.last().is_some_and(|&k| is_blank(lines[k]));
            if !(gap && after_blank) {
                out.push(i);
            }
            i += 1;
            continue;
        }
        if is_signature_delimiter(line)
            || is_separator(line)
            || starts_underscore_block(lines, i)
            || starts_header_block(lines, i)
        {
            break;
        }
        if line.trim_end().ends_with(':') {
            if let Some((start, kind)) = attribution(lines, i, &out) {
                let quote_follows = next_non_blank_is_quoted(lines, i + 1);
                if quote_follows || kind == Kind::Certain {
                    // Lines start..i are the last kept ones (checked in
                    // `attribution`).
                    out.truncate(out.len() - (i - start));
                    if !quote_follows {
                        break;
                    }
                    gap = true;
                    i += 1;
                    continue;
                }
            }
        }
        out.push(i);
        gap = false;
        i += 1;
    }
    out
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_quoted(line: &str) -> bool {
    line.trim_start_matches([' ', '\t']).starts_with('>')
}

fn is_marker(line: &str) -> bool {
    line.contains(MARKER_HEAD) || line.contains(MARKER_TAIL)
}

fn is_signature_delimiter(line: &str) -> bool {
    line.trim_end() == "--"
}

/// ASCII-case-insensitive `starts_with`.
fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// ASCII-case-insensitive `ends_with`.
fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// `-----Original Message-----`, `---------- Doorgestuurd bericht ---------`,
/// `Begin forwarded message:` and their kin.
fn is_separator(line: &str) -> bool {
    const DASHED: &[&str] = &[
        "original message",
        "oorspronkelijk bericht",
        "origineel bericht",
        "forwarded message",
        "doorgestuurd bericht",
        "reply message",
        "ursprüngliche nachricht",
    ];
    const PLAIN: &[&str] = &[
        "begin forwarded message:",
        "begin doorgestuurd bericht:",
        "begin van doorgestuurd bericht:",
    ];
    let t = line.trim();
    if t.len() > 80 {
        return false;
    }
    if PLAIN.iter().any(|p| t.eq_ignore_ascii_case(p)) {
        return true;
    }
    let inner = t.trim_start_matches('-');
    if t.len() - inner.len() < 2 {
        return false;
    }
    let core = inner.trim_end_matches('-');
    if inner.len() - core.len() < 2 {
        return false;
    }
    let core = core.trim().to_lowercase();
    DASHED.contains(&core.as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderKey {
    From,
    Date,
    ToOrSubject,
}

/// The kind of mail header a quoted header line starts with: `Van: …`,
/// `  From: …`, `*From:* …` (Outlook's bold turned into text).
fn header_key(line: &str) -> Option<HeaderKey> {
    let t = line.trim_start().trim_start_matches('*');
    let colon = t.char_indices().take(16).find(|&(_, c)| c == ':')?.0;
    let key = t[..colon].trim_end_matches('*').trim();
    const FROM: &[&str] = &["from", "van"];
    const DATE: &[&str] = &["sent", "verzonden", "date", "datum"];
    const TO: &[&str] = &["to", "aan", "subject", "onderwerp"];
    let is = |keys: &[&str]| keys.iter().any(|k| key.eq_ignore_ascii_case(k));
    if is(FROM) {
        Some(HeaderKey::From)
    } else if is(DATE) {
        Some(HeaderKey::Date)
    } else if is(TO) {
        Some(HeaderKey::ToOrSubject)
    } else {
        None
    }
}

/// `________________________________` followed closely by `Van:`/`From:`.
fn starts_underscore_block(lines: &[&str], i: usize) -> bool {
    let t = lines[i].trim();
    t.len() >= 8
        && t.bytes().all(|b| b == b'_')
        && lines
            .iter()
            .skip(i + 1)
            .take(UNDERSCORE_LOOKAHEAD)
            .any(|l| header_key(l) == Some(HeaderKey::From))
}

/// `Van:` followed within a few lines by `Verzonden:`/`Datum:` and
/// `Aan:`/`Onderwerp:` (or their English counterparts).
fn starts_header_block(lines: &[&str], i: usize) -> bool {
    if header_key(lines[i]) != Some(HeaderKey::From) {
        return false;
    }
    let (mut date, mut to) = (false, false);
    for l in lines.iter().skip(i + 1).take(HEADER_BLOCK_LINES) {
        match header_key(l) {
            Some(HeaderKey::Date) => date = true,
            Some(HeaderKey::ToOrSubject) => to = true,
            _ => {}
        }
    }
    date && to
}

/// How sure an attribution line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `On … wrote:`, `Op … schreef …:`, `Name <x@y> wrote:`: quoted
    /// history follows, prefixed with `>` or not.
    Certain,
    /// A date and an address ending in `:` in some other language: an
    /// attribution only when `>` lines follow.
    IfQuoteFollows,
}

/// Whether the line `end` (which ends in `:`) ends an attribution line,
/// possibly wrapped over the kept lines just above it. Returns its first
/// line. Only lines that are the last kept ones are taken in.
fn attribution(lines: &[&str], end: usize, out: &[usize]) -> Option<(usize, Kind)> {
    // Candidate first lines: end, end-1, end-2, as long as each upper line
    // is kept, non-blank, and plausibly wrapped onto the next.
    let mut bytes = lines[end].len();
    if bytes > MAX_ATTRIBUTION_BYTES {
        return None;
    }
    let mut starts = vec![end];
    for back in 1..MAX_ATTRIBUTION_LINES {
        let Some(s) = end.checked_sub(back) else {
            break;
        };
        let kept = out.len() >= back && out[out.len() - back] == s;
        bytes += lines[s].len() + 1;
        if !kept
            || bytes > MAX_ATTRIBUTION_BYTES
            || is_blank(lines[s])
            || !continues(lines[s], lines[s + 1])
        {
            break;
        }
        starts.push(s);
    }
    let joined: Vec<String> = starts
        .iter()
        .map(|&s| {
            lines[s..=end]
                .iter()
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let candidates = || starts.iter().zip(joined.iter());

    // `On <date>… wrote:`, `Op <date> schreef <name>:` and wrapped forms.
    for (&s, j) in candidates() {
        if opens_address(lines[s]) && is_on_date_wrote(j) {
            return Some((s, Kind::Certain));
        }
    }
    // `Name <x@y> wrote:` / `x@y schreef:`.
    for (&s, j) in candidates() {
        if opens_address(lines[s]) && is_address_wrote(j) {
            return Some((s, Kind::Certain));
        }
    }
    // `02.04.2012 14:20 пользователь "bob@x" <bob@x> написал:`.
    for (&s, j) in candidates() {
        if opens_address(lines[s])
            && j.contains('@')
            && j.bytes().any(|b| b.is_ascii_digit())
            && j.ends_with(':')
        {
            return Some((s, Kind::IfQuoteFollows));
        }
    }
    None
}

/// Whether `upper` plausibly continues on `lower` as one wrapped line: it
/// does not end a sentence, and it is long (the client wrapped it) or the
/// next line does not start like a new sentence.
fn continues(upper: &str, lower: &str) -> bool {
    let u = upper.trim();
    if u.ends_with(['.', '!', '?']) {
        return false;
    }
    u.chars().count() >= WRAPPED_LINE_CHARS
        || !lower
            .trim_start()
            .chars()
            .next()
            .is_some_and(char::is_uppercase)
}

/// False when the line closes an address (`>`) opened on a line above: the
/// attribution starts higher up.
fn opens_address(line: &str) -> bool {
    let mut depth = 0usize;
    for b in line.bytes() {
        match b {
            b'<' => depth += 1,
            b'>' if depth == 0 => return false,
            b'>' => depth -= 1,
            _ => {}
        }
    }
    true
}

const WROTE: &[&str] = &["wrote:", "schreef:", "geschreven:"];

fn is_on_date_wrote(joined: &str) -> bool {
    let lead = joined.trim_start_matches(['-', '*', ' ', '\t']);
    let on = starts_with_ci(lead, "on ");
    let op = starts_with_ci(lead, "op ");
    // A time (`10:00`) or an address: `Op 3 mei schreef ik:` is no attribution.
    let time = lead
        .as_bytes()
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == b':' && w[2].is_ascii_digit());
    if !(on || op) || !(time || lead.contains('@')) {
        return false;
    }
    if WROTE.iter().any(|w| ends_with_ci(lead, w)) {
        return true;
    }
    // Dutch Gmail and Thunderbird: `Op <date> schreef <name> <<addr>>:`.
    op && lead.ends_with(':') && lead.to_lowercase().contains(" schreef ")
}

fn is_address_wrote(joined: &str) -> bool {
    let Some(verb) = WROTE.iter().find(|w| ends_with_ci(joined, w)) else {
        return false;
    };
    let who = &joined[..joined.len() - verb.len()];
    let angle = who
        .find('<')
        .and_then(|lt| who[lt..].find('@').map(|at| lt + at))
        .is_some_and(|at| who[at..].contains('>'));
    angle || (who.contains('@') && who.split_whitespace().count() <= 4)
}

fn next_non_blank_is_quoted(lines: &[&str], from: usize) -> bool {
    lines
        .iter()
        .skip(from)
        .find(|l| !is_blank(l))
        .is_some_and(|l| is_quoted(l))
}

/// `Sent from my iPhone`, `Verstuurd vanaf mijn iPhone`, `Get Outlook for iOS` ...
fn is_mobile_line(line: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "sent from my ",
        "sent from mail for windows",
        "sent from yahoo mail",
        "sent from outlook",
        "sent from samsung",
        "sent with sparrow",
        "get outlook for ",
        "verzonden vanaf mijn ",
        "verstuurd vanaf mijn ",
        "verzonden vanaf yahoo mail",
        "verstuurd vanaf yahoo mail",
        "verzonden met outlook",
        "verzonden vanuit outlook",
        "verzonden vanaf outlook",
        "verzonden vanuit mail voor windows",
        "verzonden vanaf mail voor windows",
        "outlook voor ios downloaden",
        "outlook voor android downloaden",
    ];
    let t = line.trim();
    t.len() <= MAX_MOBILE_LINE_BYTES && PREFIXES.iter().any(|p| starts_with_ci(t, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTIFICATION: &str =
        "##- Schrijf uw antwoord boven deze regel / Write above this line -##\n\
        Hallo Anna,\n\
        \n\
        Er is een nieuwe klacht binnengekomen.\n\
        Kenmerk:        K-2026-0042\n\
        Deze klacht gaat over: Bram Bakker\n\
        \n\
        klachtd, klachtenregistratie van 31Solutions";

    fn quoted(text: &str) -> String {
        text.lines()
            .map(|l| {
                if l.is_empty() {
                    ">".to_string()
                } else {
                    format!("> {l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn assert_clean(got: &str) {
        assert!(!got.contains("Bram Bakker"), "leaked: {got:?}");
        assert!(!got.contains("##-"), "leaked marker: {got:?}");
    }

    // ------------------------------------------------------------ basics

    #[test]
    fn empty_input_gives_empty_text() {
        assert_eq!(new_text(""), "");
        assert_eq!(new_text("\n\n \r\n\t\n"), "");
    }

    #[test]
    fn a_message_without_quote_is_unchanged_but_trimmed() {
        let body = "\n\nBeste mevrouw Jansen,\n\nDank voor uw bericht.\n\n\nMet vriendelijke groet,\nAnna\n\n";
        assert_eq!(
            new_text(body),
            "Beste mevrouw Jansen,\n\nDank voor uw bericht.\n\n\nMet vriendelijke groet,\nAnna"
        );
    }

    #[test]
    fn leading_indentation_is_kept_trailing_whitespace_is_not() {
        assert_eq!(new_text("  Punt 1  \n\tPunt 2\t\n"), "  Punt 1\n\tPunt 2");
    }

    #[test]
    fn only_a_quote_gives_empty_text() {
        assert_eq!(new_text(&quoted(NOTIFICATION)), "");
        assert_eq!(new_text("> a\n> b\n>\n> c"), "");
        assert_eq!(new_text(NOTIFICATION), "");
        assert_eq!(
            new_text("On Mon, Nov 23, 2026 at 10:00 AM Anna <anna@31solutions.test> wrote:\n> x"),
            ""
        );
    }

    #[test]
    fn crlf_and_bare_cr_become_lf() {
        let body = "Goedemiddag,\r\n\r\nDat klopt.\r\nAnna\r\n\r\n-----Oorspronkelijk bericht-----\r\nVan: x\r\n";
        assert_eq!(new_text(body), "Goedemiddag,\n\nDat klopt.\nAnna");
        assert_eq!(new_text("a\rb\r\rc"), "a\nb\n\nc");
    }

    #[test]
    fn ordinary_text_mentioning_wrote_or_schreef_stays() {
        let body = "U schreef dat de sessie te kort was.\nDat spijt ons. Zoals u schreef:\nde sessie duurde maar 30 minuten.\nOp dinsdag heb ik gebeld en hij schreef:\n'prima'.\nOp 3 mei schreef ik:\nik kom niet.\nOn May 3 I wrote:\nno.\nShe wrote: thanks.";
        assert_eq!(new_text(body), body);
    }

    #[test]
    fn an_ordinary_colon_line_with_an_address_stays_without_a_quote_below() {
        let body = "Mail op 3 mei naar anna@31solutions.test:\nzij weet ervan.";
        assert_eq!(new_text(body), body);
    }

    // ------------------------------------------------------- klachtd marker

    #[test]
    fn the_marker_cuts_quoted_or_not() {
        let plain = format!("Ik bel haar morgen.\n\n{NOTIFICATION}");
        assert_eq!(new_text(&plain), "Ik bel haar morgen.");
        let q = format!("Ik bel haar morgen.\n\n{}", quoted(NOTIFICATION));
        assert_eq!(new_text(&q), "Ik bel haar morgen.");
        let nested = format!("Ik bel haar morgen.\n>> {REPLY_ABOVE}\n>> Bram Bakker");
        assert_eq!(new_text(&nested), "Ik bel haar morgen.");
        let indented = format!("Ik bel haar morgen.\n    {REPLY_ABOVE}\nBram Bakker");
        assert_eq!(new_text(&indented), "Ik bel haar morgen.");
    }

    #[test]
    fn a_wrapped_or_shortened_marker_cuts() {
        let short = "Akkoord.\n\n##- Schrijf uw antwoord boven deze regel\nDeze klacht gaat over: Bram Bakker";
        assert_eq!(new_text(short), "Akkoord.");
        let wrapped = "Akkoord.\n\n> ##- Schrijf uw antwoord boven deze regel / Write\n> above this line -##\n> Bram Bakker";
        assert_eq!(new_text(wrapped), "Akkoord.");
        let wrapped_early = "Akkoord.\n##- Schrijf uw antwoord boven deze regel /\nWrite above this line -##\nBram Bakker";
        assert_eq!(new_text(wrapped_early), "Akkoord.");
    }

    #[test]
    fn the_marker_pasted_without_quoting_under_an_outlook_header_is_cut() {
        let body = format!(
            "/voorstel\nWij bieden een extra sessie aan.\n\nVan: Klachten 31Solutions <info@31solutions.test>\nVerzonden: maandag 23 november 2026 10:00\nAan: Anna de Vries <anna@31solutions.test>\nOnderwerp: [K-2026-0042] Nieuwe klacht toegewezen\n\n{NOTIFICATION}"
        );
        let got = new_text(&body);
        assert_eq!(got, "/voorstel\nWij bieden een extra sessie aan.");
        assert_clean(&got);
    }

    #[test]
    fn the_marker_pasted_without_quoting_or_header_is_cut() {
        let body = format!(
            "/intern Cliënt gebeld, komt terug op maandag.\n\n\n{NOTIFICATION}\n\nmeer tekst"
        );
        let got = new_text(&body);
        assert_eq!(got, "/intern Cliënt gebeld, komt terug op maandag.");
        assert_clean(&got);
    }

    #[test]
    fn the_marker_wins_over_an_interleaved_answer_below_it() {
        let body = format!(
            "Zie hieronder.\n\nOp 23-11-2026 om 10:00 schreef Klachten:\n> {REPLY_ABOVE}\n> Deze klacht gaat over: Bram Bakker\nantwoord onder de marker\n> meer"
        );
        assert_eq!(new_text(&body), "Zie hieronder.");
    }

    #[test]
    fn a_bottom_posted_answer_below_a_quoted_marker_is_lost_by_design() {
        let body = format!(
            "On 23/11/2026 10:00, Klachten wrote:\n{}\n\nMijn antwoord.",
            quoted(NOTIFICATION)
        );
        assert_eq!(new_text(&body), "");
    }

    #[test]
    fn html_converted_attribution_and_marker_on_one_line_are_cut() {
        let body = format!("Dank je.\nOp ma 23 nov. 2026 om 10:00 schreef Klachten <info@31solutions.test>: {REPLY_ABOVE}\n\nHallo Anna,\nDeze klacht gaat over: Bram Bakker");
        assert_eq!(new_text(&body), "Dank je.");
    }

    // ------------------------------------------------------------- Outlook

    #[test]
    fn outlook_original_message_separators_cut() {
        for sep in [
            "-----Oorspronkelijk bericht-----",
            "-----Original Message-----",
            "----- Original Message -----",
            "-----Ursprüngliche Nachricht-----",
            "---------- Forwarded message ---------",
            "---------- Doorgestuurd bericht ---------",
            "-------- Doorgestuurd bericht --------",
            "Begin forwarded message:",
            "Begin doorgestuurd bericht:",
        ] {
            let body = format!("Prima.\n\n{sep}\nHallo Anna,\nDeze klacht gaat over: Bram Bakker");
            assert_eq!(new_text(&body), "Prima.", "separator {sep:?}");
        }
    }

    #[test]
    fn dashes_around_ordinary_words_do_not_cut() {
        let body = "-- belangrijk --\n----- Klacht -----\ntekst";
        assert_eq!(new_text(body), body);
    }

    #[test]
    fn outlook_header_block_cuts_dutch_english_and_bold() {
        for head in [
            "Van: Klachten <info@31solutions.test>\nVerzonden: maandag 23 november 2026 10:00\nAan: Anna <anna@31solutions.test>\nOnderwerp: Nieuwe klacht",
            "From: Klachten <info@31solutions.test>\nSent: Monday, November 23, 2026 10:00 AM\nTo: Anna <anna@31solutions.test>\nSubject: New complaint",
            "*From:* Klachten <info@31solutions.test>\n*Sent:* Monday, November 23, 2026 10:00 AM\n*To:* Anna\n*Subject:* New complaint",
            "*Van:* Klachten <info@31solutions.test>\n*Datum:* maandag 23 november 2026 om 10:00\n*Aan:* Anna\n*Onderwerp:* Nieuwe klacht",
            "  From: Klachten <info@31solutions.test>\n  Date: Mon, 23 Nov 2026 10:00\n\n  Subject: New complaint",
        ] {
            let body = format!("Prima, ik pak het op.\nAnna\n\n{head}\n\nHallo Anna,\nDeze klacht gaat over: Bram Bakker");
            assert_eq!(new_text(&body), "Prima, ik pak het op.\nAnna", "header {head:?}");
        }
    }

    #[test]
    fn a_from_line_without_the_rest_of_a_header_block_stays() {
        let body = "Van: maandag tot vrijdag ben ik er.\nDatum: nog niet bekend.";
        assert_eq!(new_text(body), body);
    }

    #[test]
    fn outlook_com_underscore_line_cuts() {
        let body = "Ik neem contact op.\n\n________________________________\nVan: Klachten 31Solutions <info@31solutions.test>\nVerzonden: maandag 23 november 2026 10:00\nAan: Anna\nOnderwerp: Nieuwe klacht\n\nDeze klacht gaat over: Bram Bakker";
        assert_eq!(new_text(body), "Ik neem contact op.");
        let from_only = "Ik neem contact op.\n________________________________\nFrom: Klachten <info@31solutions.test>\nBram Bakker";
        assert_eq!(new_text(from_only), "Ik neem contact op.");
        let divider = "Punt 1\n________________________________\nPunt 2";
        assert_eq!(new_text(divider), divider);
    }

    // ----------------------------------------------- Gmail, Thunderbird, Apple

    #[test]
    fn gmail_dutch_attribution_one_line_and_wrapped() {
        let one = "Dank je.\n\nOp ma 23 nov. 2026 om 10:00 schreef Klachten 31Solutions <info@31solutions.test>:\n\n> Deze klacht gaat over: Bram Bakker";
        assert_eq!(new_text(one), "Dank je.");
        let wrapped = "Dank je.\n\nOp ma 23 nov. 2026 om 10:00 schreef Klachten 31Solutions <\ninfo@31solutions.test>:\n\n> Deze klacht gaat over: Bram Bakker\n>";
        assert_eq!(new_text(wrapped), "Dank je.");
        // Without `>` lines below it, the attribution still ends the text.
        let unquoted = "Dank je.\nOp ma 23 nov. 2026 om 10:00 schreef Klachten 31Solutions <\ninfo@31solutions.test>:\nDeze klacht gaat over: Bram Bakker";
        assert_eq!(new_text(unquoted), "Dank je.");
    }

    #[test]
    fn gmail_english_attribution_wrapped_over_two_and_three_lines() {
        let two = "Thanks.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Klachten 31Solutions <\ninfo@31solutions.test> wrote:\n\n> Bram Bakker";
        assert_eq!(new_text(two), "Thanks.");
        let three = "Thanks.\nOn Mon, Nov 23, 2026 at 10:00 AM Klachten 31Solutions\n<info@31solutions.test>\nwrote:\n\n> Bram Bakker";
        assert_eq!(new_text(three), "Thanks.");
        let name_wrapped = "Thanks.\nOn Mon, Nov 23, 2026 at 10:00 AM Klachtenregistratie van Anna de\nVries <anna@31solutions.test> wrote:\nBram Bakker";
        assert_eq!(new_text(name_wrapped), "Thanks.");
    }

    #[test]
    fn thunderbird_attributions() {
        let nl = "Goed idee.\n\nOp 23-11-2026 om 10:00 schreef Anna de Vries:\n> Bram Bakker";
        assert_eq!(new_text(nl), "Goed idee.");
        let en = "Good idea.\n\nOn 23/11/2026 10:00, Anna de Vries wrote:\n> Bram Bakker";
        assert_eq!(new_text(en), "Good idea.");
        let yahoo = "Good idea.\n\n--- On Wed, 4/4/12, anna@client.test <anna@client.test> wrote:\n\nFrom: x\nBram Bakker";
        assert_eq!(new_text(yahoo), "Good idea.");
    }

    #[test]
    fn apple_mail_dutch_attribution_one_line_and_wrapped() {
        let one = "Klopt.\n\nVerstuurd vanaf mijn iPhone\n\nOp 23 nov. 2026 om 10:00 heeft Klachten 31Solutions <info@31solutions.test> het volgende geschreven:\n\n> Bram Bakker";
        assert_eq!(new_text(one), "Klopt.");
        let wrapped = "Klopt.\n\nOp 23 nov. 2026 om 10:00 heeft Klachten 31Solutions <info@31solutions.test> het\nvolgende geschreven:\n\n> Bram Bakker";
        assert_eq!(new_text(wrapped), "Klopt.");
        let quoted_attr = "Klopt.\n\n> Op 23 nov. 2026 om 10:00 heeft Klachten <info@31solutions.test> het volgende geschreven:\n>\n> Bram Bakker";
        assert_eq!(new_text(quoted_attr), "Klopt.");
    }

    #[test]
    fn name_address_wrote() {
        let body = "Yes.\n\nKlachten 31Solutions <info@31solutions.test> wrote:\n> Bram Bakker";
        assert_eq!(new_text(body), "Yes.");
        let bare = "Ja.\ninfo@31solutions.test schreef:\nBram Bakker";
        assert_eq!(new_text(bare), "Ja.");
    }

    #[test]
    fn a_foreign_date_address_line_is_dropped_only_before_a_quote() {
        let android = "Hello\n02.04.2012 14:20 пользователь \"bob@client.test\" <\nbob@client.test> написал:\n\n> Hi\n>\n";
        assert_eq!(new_text(android), "Hello");
    }

    #[test]
    fn wrapped_attribution_does_not_swallow_the_sentence_above() {
        let body = "Op 3 mei heb ik gebeld\nGroet, Anna\nKlachten <info@31solutions.test> schreef:\n> Bram Bakker";
        assert_eq!(new_text(body), "Op 3 mei heb ik gebeld\nGroet, Anna");
        let sentence = "Op 3 mei belde ik haar.\nZij schreef:\n> iets";
        assert_eq!(new_text(sentence), "Op 3 mei belde ik haar.\nZij schreef:");
    }

    // ------------------------------------------------------- `>` quoting

    #[test]
    fn quoted_lines_anywhere_are_removed() {
        let body =
            "> vraag 1\n\nantwoord 1\n\n> vraag 2\n> nog een regel\n\nantwoord 2\n\n> slot\n> slot";
        assert_eq!(new_text(body), "antwoord 1\n\nantwoord 2");
    }

    #[test]
    fn interleaved_answer_under_an_attribution_keeps_the_answers() {
        let body = "Zie mijn antwoorden hieronder.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Carla <carla@31solutions.test> wrote:\n> Kun jij de cliënt bellen?\n\nJa, morgen.\n\n> En de factuur?\n\nIs al gecrediteerd.\n\n> Groet, Carla\n";
        assert_eq!(
            new_text(body),
            "Zie mijn antwoorden hieronder.\n\nJa, morgen.\n\nIs al gecrediteerd."
        );
    }

    #[test]
    fn bottom_posted_answer_is_kept() {
        let body = "On 04/02/2012 06:26 PM, Megan One wrote:\n> Hi \nHello";
        assert_eq!(new_text(body), "Hello");
    }

    // ------------------------------------------------ signatures and mobile

    #[test]
    fn signature_delimiter_cuts() {
        let body = "Akkoord.\n\n-- \nAnna de Vries\nCoach | 31Solutions\n\n> Bram Bakker";
        assert_eq!(new_text(body), "Akkoord.");
        assert_eq!(new_text("Akkoord.\n--\nAnna"), "Akkoord.");
        assert_eq!(new_text("Akkoord.\n---\nAnna"), "Akkoord.\n---\nAnna");
    }

    #[test]
    fn mobile_lines_at_the_end_are_removed() {
        for line in [
            "Sent from my iPhone",
            "Sent from my iPad",
            "Verzonden vanaf mijn iPhone",
            "Verstuurd vanaf mijn iPhone",
            "Verzonden met Outlook voor Android",
            "Get Outlook for Android",
            "Get Outlook for iOS<https://aka.ms/o0ukef>",
            "Outlook voor iOS downloaden<https://aka.ms/o0ukef>",
            "Sent from my Android",
            "Sent with Sparrow (http://www.sparrowmailapp.com/?sig)",
            "Sent from Yahoo Mail on Android",
            "Verzonden vanaf Yahoo Mail op Android",
            "Sent from Mail for Windows",
        ] {
            let body = format!("Prima.\n\n{line}\n\n");
            assert_eq!(new_text(&body), "Prima.", "mobile line {line:?}");
        }
        let two = "Prima.\n\nVerzonden vanaf mijn iPhone\nGet Outlook for iOS";
        assert_eq!(new_text(two), "Prima.");
        let middle = "Sent from my iPhone\nmaar dit is nieuwe tekst";
        assert_eq!(new_text(middle), middle);
    }

    // -------------------------------------------------------- robustness

    #[test]
    fn odd_input_never_panics_and_never_grows() {
        let long = "x".repeat(1_000_000);
        let long_colon = format!("Op 1 {}:", "é".repeat(300_000));
        let inputs = [
            "".to_string(),
            ">".to_string(),
            "--".to_string(),
            ":".to_string(),
            "<\n>:\n>".to_string(),
            "\u{feff}\u{0}\u{7f}é\r".to_string(),
            format!("{long}\n{long}:\n> q"),
            long_colon.clone(),
            format!("a\n{long_colon}\n{long_colon}\n> q"),
            "é:\né:\né:\n> é".to_string(),
            "Op 1 é\né\n<é@é>:\n>".to_string(),
            "________\n".to_string(),
            "From:\nSent:\nTo:".to_string(),
        ];
        for input in &inputs {
            let got = new_text(input);
            assert!(got.len() <= input.len());
        }
    }

    #[test]
    fn a_million_lines_are_cut_correctly() {
        // How long this takes is measured by scripts/bench, not here: a
        // timed assertion fails on a loaded machine, not on slow code.
        let mut body = String::new();
        // Every line kind that looks ahead or back, none of them cutting.
        for n in 0..125_000 {
            body.push_str("Van: x\n");
            body.push_str("Op 1 mei heb ik haar gebeld en\n");
            body.push_str("zij zei:\n");
            body.push_str("> q\n");
            body.push_str("1.1.2026 <a@b>:\n");
            body.push_str("> q\n");
            body.push_str(&format!("regel {n}\n"));
            body.push('\n');
        }
        let got = new_text(&body);
        assert_eq!(got.lines().count(), 125_000 * 5 - 1);
        assert!(got.ends_with("regel 124999"));
        let blanks = "\n".repeat(1_000_000) + "Anna <a@b> wrote:";
        assert_eq!(new_text(&blanks), "");
    }
}
