//! The context of each mail template: one struct per [`Template`], named
//! after it, holding exactly what its files (both languages, all three
//! parts) read. [`Renderer::render`](super::Renderer::render) takes one of
//! these, so a template cannot be rendered with another template's context.
//!
//! The JSON shape is part of the contract with the templates, including
//! override templates: field names are the variable names, `Option` fields
//! are `null` when empty (a template tests them with `{% if … %}`), and no
//! field is ever left out. `lang` is not a field: the renderer adds the
//! language it renders in. Dates are passed already written out (see
//! [`long_date`](super::long_date)).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Template;

/// A template's context: serialised, it is the template's variables.
pub trait MailContext: Serialize {
    /// The template this context is for.
    const TEMPLATE: Template;
}

// ------------------------------------------------------------ shared parts

/// The organisation (`org.name`, `org.address`, …), from its settings.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Org<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub regulation_url: &'a str,
    pub phone: &'a str,
    pub website: &'a str,
}

/// Someone a mail names only by name: its recipient, the staff member who
/// wrote, a handler.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Named<'a> {
    pub name: &'a str,
}

/// A staff member by name and address: a handler, a person a complaint
/// concerns. The name is empty for an address not on the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub name: String,
    pub email: String,
}

/// An attachment of the complaint as the handler sees it listed.
#[derive(Debug, Clone, Serialize)]
pub struct Attachment<'a> {
    pub filename: &'a str,
    /// "120 kB".
    pub size_human: String,
    /// False when it was too large to keep.
    pub stored: bool,
}

/// A colleague's text that came with a reassignment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Note<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

// ------------------------------------------------------------- to clients

/// [`Template::Ack`]: the acknowledgement of receipt (art. 5).
#[derive(Debug, Clone, Serialize)]
pub struct Ack<'a> {
    pub org: Org<'a>,
    pub reference: String,
    /// The sender's name and subject as far as [`super::echo`] lets an
    /// automatic reply repeat them ("" otherwise).
    pub client_name: String,
    pub original_subject: String,
    pub handler: Person,
    pub received: String,
    pub response_due: String,
    /// Element codes the complaint lacks: "nature", "dates",
    /// "desired_outcome".
    pub missing: Vec<&'a str>,
    pub response_working_days: u32,
}

/// [`Template::Regulation`]: the regulation, to whoever asked (art. 11).
#[derive(Debug, Clone, Serialize)]
pub struct Regulation<'a> {
    pub org: Org<'a>,
    /// As [`super::echo`] lets an automatic reply repeat them.
    pub client_name: String,
    pub original_subject: String,
    /// Whether `regulation_text` holds the regulation (else only the link).
    pub has_text: bool,
    pub regulation_text: &'a str,
    /// A paper copy was asked for.
    pub paper: bool,
}

/// [`Template::ToClient`]: a staff answer relayed to the client.
#[derive(Debug, Clone, Serialize)]
pub struct ToClient<'a> {
    pub org: Org<'a>,
    pub reference: String,
    pub original_subject: &'a str,
    /// The outbox kind: "answer", "proposal", "rejection", "extension",
    /// "external".
    pub kind: &'a str,
    pub text: &'a str,
    pub staff: Named<'a>,
    pub response_due: String,
    /// The reason of an extension.
    pub reason: &'a str,
    pub external_body: &'a str,
}

// --------------------------------------------------------- to a case's staff

/// [`Template::HandlerNew`]: a case, to its (new) handler.
#[derive(Debug, Clone, Serialize)]
pub struct HandlerNew<'a> {
    pub org: Org<'a>,
    pub reference: String,
    pub handler: Named<'a>,
    pub client_name: &'a str,
    /// Empty when unknown (a phone complaint).
    pub client_email: &'a str,
    pub client_phone: &'a str,
    pub original_subject: &'a str,
    pub received: String,
    pub ack_due: String,
    pub response_due: String,
    pub category: &'a str,
    pub concerns: Vec<Person>,
    pub missing: Vec<&'a str>,
    pub assignment_reason: &'a str,
    pub body: &'a str,
    pub attachments: Vec<Attachment<'a>>,
    /// "email", "phone", …
    pub source: &'a str,
    pub note: Option<Note<'a>>,
}

/// [`Template::HandlerReleased`]: the case went to another handler.
#[derive(Debug, Clone, Serialize)]
pub struct HandlerReleased<'a> {
    pub org: Org<'a>,
    pub reference: String,
    pub original_subject: &'a str,
    pub old_handler: Named<'a>,
    pub new_handler: Named<'a>,
    pub reason: &'a str,
    pub response_due: String,
}

/// [`Template::Undeliverable`]: mail to the client refused for good.
#[derive(Debug, Clone, Serialize)]
pub struct Undeliverable<'a> {
    pub org: Org<'a>,
    pub recipient: Named<'a>,
    pub reference: String,
    pub original_subject: &'a str,
    pub client_name: &'a str,
    pub client_email: &'a str,
    pub client_phone: &'a str,
    /// The outbox kind that did not arrive ("ack", "answer", …).
    pub what: &'a str,
    /// The server's refusal.
    pub reason: &'a str,
}

/// [`Template::ClientReplyToHandler`]: a client's reply, to the handler.
#[derive(Debug, Clone, Serialize)]
pub struct ClientReplyToHandler<'a> {
    pub org: Org<'a>,
    pub reference: String,
    pub client_name: &'a str,
    pub original_subject: &'a str,
    /// The new text of the reply (quotes left out).
    pub body: String,
    pub response_due: String,
    pub closed: bool,
}

/// [`Template::CommandResult`]: what a staff member's mail did, or why it
/// was refused; for an answer to the digest, one item per line.
#[derive(Debug, Clone, Serialize)]
pub struct CommandResult<'a> {
    pub org: Org<'a>,
    /// Empty for an answer to the digest.
    pub reference: String,
    pub staff: Named<'a>,
    pub ok: bool,
    pub error: &'a str,
    pub done: &'a [String],
    pub status: &'a str,
    pub response_due: String,
    /// Empty when the writer is not known to have the case.
    pub original_subject: &'a str,
    pub their_subject: &'a str,
    pub items: Vec<CommandItem>,
}

/// One line of an answer to the digest and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct CommandItem {
    pub line: String,
    pub ok: bool,
    pub text: String,
}

/// [`Template::Reminder`]: a response date coming up, or a client's reply
/// waiting for an answer.
#[derive(Debug, Clone, Serialize)]
pub struct Reminder<'a> {
    pub org: Org<'a>,
    pub reference: String,
    pub recipient: Named<'a>,
    /// "due_soon" or "reply_waiting".
    pub kind: &'a str,
    pub original_subject: &'a str,
    pub client_name: &'a str,
    pub status_label: &'a str,
    pub response_due: String,
    pub working_days_left: i64,
    pub extended: bool,
    /// When the waiting reply came (empty for "due_soon").
    pub reply_at: String,
    pub waiting_days: i64,
    /// To the handler (else to a supervisor: the case has none).
    pub is_handler: bool,
}

/// [`Template::Escalation`]: a missed deadline or a handler the complaint
/// is about, to a supervisor.
#[derive(Debug, Clone, Serialize)]
pub struct Escalation<'a> {
    pub org: Org<'a>,
    pub reference: String,
    pub recipient: Named<'a>,
    /// "response", "ack" or "conflict".
    pub kind: &'a str,
    /// 1, or 2 for the second escalation.
    pub level: u8,
    pub original_subject: &'a str,
    pub client_name: &'a str,
    pub category: &'a str,
    pub status_label: &'a str,
    pub handler: Option<Person>,
    pub due: String,
    pub days_late: i64,
    pub extended: bool,
    pub ack_sent: bool,
    pub triage: bool,
    pub last_activity: Option<Activity>,
    pub second_level_working_days: u32,
}

/// The last thing that happened on a case.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    /// "18 december 2026 14:05".
    pub at: String,
    pub what: String,
    pub actor: String,
}

// ------------------------------------------------------------ to supervisors

/// [`Template::Triage`]: a possible complaint awaiting a decision.
#[derive(Debug, Clone, Serialize)]
pub struct Triage<'a> {
    pub org: Org<'a>,
    pub reference: String,
    pub client_name: &'a str,
    pub client_email: &'a str,
    pub original_subject: &'a str,
    pub received: String,
    pub reason: &'a str,
    pub body: &'a str,
    /// "35%", or empty.
    pub score: String,
}

/// [`Template::Unassigned`]: no independent handler could be assigned.
#[derive(Debug, Clone, Serialize)]
pub struct Unassigned<'a> {
    pub org: Org<'a>,
    pub reference: String,
    pub original_subject: &'a str,
    pub concerns: Vec<Person>,
    /// Empty: a standard sentence stands in.
    pub reason: &'a str,
}

/// [`Template::RegulationPaper`]: someone asked for a paper copy of the
/// regulation.
#[derive(Debug, Clone, Serialize)]
pub struct RegulationPaper<'a> {
    pub client_name: &'a str,
    pub client_email: &'a str,
    pub original_subject: &'a str,
    pub body: &'a str,
}

/// [`Template::Digest`]: one supervisor's daily overview.
#[derive(Debug, Clone, Serialize)]
pub struct Digest<'a> {
    pub org: Org<'a>,
    pub recipient: Named<'a>,
    /// "maandag 21 december 2026".
    pub day: String,
    /// When the previous digest went out, or empty.
    pub since: String,
    pub reminder_working_days: u32,
    #[serde(flatten)]
    pub cases: DigestCases<'a>,
}

/// The digest's counts and case lists.
#[derive(Debug, Clone, Serialize)]
pub struct DigestCases<'a> {
    pub counts: DigestCounts,
    /// How many cases each list leaves out (a list names at most
    /// `flows::scheduler::DIGEST_LIST_MAX`); `open`: those left out of
    /// all the status groups together.
    pub more: DigestCounts,
    pub new_cases: Vec<DigestRow<'a>>,
    pub due_soon: Vec<DigestRow<'a>>,
    pub overdue: Vec<DigestRow<'a>>,
    pub unacknowledged: Vec<DigestRow<'a>>,
    pub triage: Vec<DigestRow<'a>>,
    /// Open cases whose mail to the client failed for good: the handler
    /// was told to reach the client another way.
    pub undeliverable: Vec<DigestRow<'a>>,
    /// Only the statuses that have cases.
    pub open_by_status: Vec<StatusGroup<'a>>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DigestCounts {
    pub new: usize,
    pub open: usize,
    pub due_soon: usize,
    pub overdue: usize,
    pub unacknowledged: usize,
    pub triage: usize,
    pub undeliverable: usize,
}

/// One case in the digest; dates as "24-12-2026".
#[derive(Debug, Clone, Serialize)]
pub struct DigestRow<'a> {
    pub reference: String,
    pub subject: &'a str,
    pub client_name: &'a str,
    pub status_label: &'a str,
    /// Name (or address) of the handler, or empty.
    pub handler: String,
    pub received: String,
    pub ack_due: String,
    pub response_due: String,
    pub days_left: i64,
    pub extended: bool,
    pub triage_reason: &'a str,
    /// The start of a triage item's text, else empty.
    pub excerpt: String,
}

/// The open cases of one status.
#[derive(Debug, Clone, Serialize)]
pub struct StatusGroup<'a> {
    pub label: &'a str,
    pub cases: Vec<DigestRow<'a>>,
    /// The group's cases, named or not.
    pub total: usize,
    /// The group's cases left out of `cases`.
    pub more: usize,
}

/// [`Template::Health`]: intake or outbox trouble, or its end.
#[derive(Debug, Clone, Serialize)]
pub struct Health<'a> {
    pub org: Org<'a>,
    pub recipient: Named<'a>,
    /// "intake", "outbox" or "auto_replies".
    pub what: &'a str,
    /// "alarm" or "recovered".
    pub state: &'a str,
    pub since: String,
    pub minutes: i64,
    pub last_error: &'a str,
    /// outbox: mail waiting; auto_replies: automatic replies in the last hour.
    pub count: i64,
    /// auto_replies: `procedure.auto_replies_per_hour`.
    pub limit: u32,
    pub mailbox: &'a str,
}

/// [`Template::Report`]: the periodic analysis (art. 10).
#[derive(Debug, Clone, Serialize)]
pub struct Report<'a> {
    pub org: Org<'a>,
    pub recipient: Named<'a>,
    /// The period in words.
    pub period: String,
    pub from: String,
    pub to: String,
    pub from_iso: String,
    pub to_iso: String,
    /// The figures as this recipient may see them (art. 9).
    pub report: crate::report::Report,
    /// The report as plain text.
    pub text: String,
    pub terms: Terms,
    pub ack_days: u32,
    pub response_days: u32,
    /// Complaints per person concerned, by name.
    pub concerned: BTreeMap<String, usize>,
    pub extensions: Vec<ExtensionLine>,
    /// The inline chart's Content-ID and alt text, when drawn.
    pub chart_cid: Option<&'a str>,
    pub chart_alt: Option<&'a str>,
}

/// The report's three measured terms.
#[derive(Debug, Clone, Serialize)]
pub struct Terms {
    pub acknowledgement: Term,
    pub response: Term,
    pub within_term: Term,
}

/// How often a term was met.
#[derive(Debug, Clone, Serialize)]
pub struct Term {
    /// "67%", when anything was measured.
    pub pct: Option<String>,
    pub on_time: usize,
    pub measured: usize,
    pub late: usize,
    /// Median working days, in words.
    pub median: Option<String>,
    pub max: Option<i64>,
}

/// One extension the report lists.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionLine {
    pub reference: String,
    pub days: Option<u64>,
    pub reason: String,
}
