//! The scheduler: reminders, escalations, digests, health alarms, the
//! periodic analysis mail and the retention of personal data.
//!
//! Every pass derives all timers from the register at `now`; nothing lives
//! in memory between passes. Each piece of work is queued in one
//! transaction together with its key in `notices` (case, kind, level,
//! anchor; or supervisor and day), so running twice, a restart or a second
//! daemon on the same PostgreSQL database sends nothing twice. Health alarms
//! are raised and cleared by conditional updates for the same reason.
//!
//! Case work and digests go out in the *morning round*: on working days,
//! from `[digest] at` local time. Health alarms go out at any hour.

use anyhow::{Context, Result};
use jiff::civil::{Date, Time};
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::app::App;
use crate::config::{local_date, Roles, Settings, Staff};
use crate::domain::event::{CaseEvent, EventKind, MailStep, OutboxKind};
use crate::domain::schedule::{self, CaseFacts, Due, Kind, Rules};
use crate::domain::types::{EmailAddress, Lang, Status};
use crate::flows::notify::{local_time, org, queue_staff_mail, queue_staff_notice, StaffMail};
use crate::flows::Work;
use crate::mail::render::context::{self, Activity, DigestRow, Named, Person, StatusGroup};
use crate::mail::render::{long_date, long_date_with_weekday, Rendered, Renderer};
use crate::store::{self, CaseFilter, CaseRow, EventRow, NoticeKey};

/// What one pass queued.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub reminders: usize,
    pub escalations: usize,
    pub digests: usize,
    pub alarms: usize,
    /// Periodic analysis mails (art. 10).
    pub reports: usize,
    /// Closed cases anonymised at the end of the retention period.
    pub anonymised: usize,
}

impl Summary {
    fn total(&self) -> usize {
        self.reminders + self.escalations + self.digests + self.alarms + self.reports
    }
}

/// Does all work due at `app.clock.now()`.
pub async fn pass(app: &App) -> Result<Summary> {
    let s = &app.settings;
    let now = app.clock.now();
    let local = now.to_zoned(s.organisation.timezone.clone());
    let today = local.date();
    let mut sum = Summary::default();
    sum.alarms += super::health::alarms(app, now).await?;
    sum.anonymised += crate::flows::privacy::retention(&app.store, s, now)
        .await
        .context("retention")?
        .len();
    if s.calendar.is_working_day(today) && local.time() >= s.digest_at {
        let cases = app
            .store
            .cases(&CaseFilter {
                open: true,
                ..Default::default()
            })
            .await?;
        let mut marks = CaseMarks {
            undeliverable: app.store.cases_with_undeliverable_client_mail().await?,
            ..Default::default()
        };
        for case in &cases {
            let w = case_work(app, case, today, now)
                .await
                .with_context(|| format!("scheduled work of {}", case.reference))?;
            sum.reminders += w.reminders;
            sum.escalations += w.escalations;
            if w.extended {
                marks.extended.insert(case.id);
            }
        }
        for sup in s.supervisors() {
            if digest(app, sup, &cases, &marks, today, now).await? {
                sum.digests += 1;
            }
        }
        // The analysis loads the register afresh: not beside these.
        drop(cases);
        sum.reports += crate::report::mail::round(app, today, now)
            .await
            .context("periodic analysis mail")?;
    }
    if sum.total() > 0 {
        tracing::info!(
            reminders = sum.reminders,
            escalations = sum.escalations,
            digests = sum.digests,
            alarms = sum.alarms,
            reports = sum.reports,
            "scheduled mail queued"
        );
        app.outbox_wake.notify_one();
    }
    Ok(sum)
}

fn rules(s: &Settings) -> Rules {
    Rules {
        reminder_working_days: s.procedure.reminder_working_days,
        reply_reminder_working_days: s.procedure.reply_reminder_working_days,
        second_level_working_days: s.escalation.second_level_working_days,
    }
}

fn concerned(case: &CaseRow, email: &EmailAddress) -> bool {
    case.concerns.contains(email)
}

/// Timeline events the scheduler itself leaves; "last activity" skips them.
fn is_scheduler_event(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Scheduled(_)
            | EventKind::Mail(
                OutboxKind::Reminder | OutboxKind::ReplyReminder | OutboxKind::Escalation,
                _
            )
    )
}

/// Mail to the client queued: it answers whatever the client wrote before.
fn answers_client(kind: EventKind) -> bool {
    matches!(kind, EventKind::Mail(k, MailStep::Queued) if k.answers_client())
}

/// The oldest client reply with no answer after it. Staff mail to the
/// client directly counts as an answer only when it authenticated: anyone
/// can write a staff From with the client in copy.
fn waiting_reply(timeline: &[EventRow]) -> Option<&EventRow> {
    let mut waiting = None;
    for e in timeline {
        let flag = |k: &str| {
            e.data
                .as_ref()
                .and_then(|d| d.get(k))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let to_client_directly = e.kind == CaseEvent::StaffMessage.into()
            && flag("client_in_copy")
            && flag("authenticated");
        if e.kind == CaseEvent::ClientReply.into() {
            waiting = waiting.or(Some(e));
        } else if answers_client(e.kind) || to_client_directly {
            waiting = None;
        }
    }
    waiting
}

/// A recipient outside the roster (fallback, second level).
fn outsider(email: &EmailAddress) -> Staff {
    Staff {
        name: String::new(),
        email: email.clone(),
        aliases: Vec::new(),
        roles: Roles {
            handler: false,
            supervisor: false,
        },
    }
}

/// Supervisors the case does not concern (art. 9); the fallback address
/// when that leaves nobody, unless it too is concerned (a fallback can be a
/// colleague's own address); at level 2 also `second_level_to`.
fn escalation_recipients(s: &Settings, case: &CaseRow, level: u8) -> Vec<Staff> {
    let mut to: Vec<Staff> = s
        .supervisors()
        .filter(|sup| !concerned(case, &sup.email))
        .cloned()
        .collect();
    if to.is_empty() {
        let fallback = s.escalation.fallback.iter().filter(|a| !concerned(case, a));
        to.extend(fallback.map(outsider));
    }
    if level >= 2 {
        for a in &s.escalation.second_level_to {
            if !concerned(case, a) && !to.iter().any(|t| &t.email == a) {
                to.push(s.staff_by_email(a).cloned().unwrap_or_else(|| outsider(a)));
            }
        }
    }
    to
}

/// Handler reminders go to the handler; a case without one (or whose
/// handler left the roster) reminds the supervisors instead.
fn reminder_recipients(s: &Settings, case: &CaseRow) -> (Vec<Staff>, bool) {
    let handler = case
        .handler_email
        .as_ref()
        .and_then(|h| s.staff_by_email(h))
        .filter(|h| !concerned(case, &h.email));
    match handler {
        Some(h) => (vec![h.clone()], true),
        None => (escalation_recipients(s, case, 1), false),
    }
}

/// What [`case_work`] did, and whether the case's term was extended.
struct CaseWork {
    reminders: usize,
    escalations: usize,
    extended: bool,
}

/// Reminders and escalations due today for one case.
async fn case_work(app: &App, case: &CaseRow, today: Date, now: Timestamp) -> Result<CaseWork> {
    let s = &app.settings;
    let tz = &s.organisation.timezone;
    let timeline = app.store.timeline(case.id).await?;
    let waiting = waiting_reply(&timeline);
    let waiting_day = waiting
        .and_then(|e| e.at.parse::<Timestamp>().ok())
        .map(|t| local_date(t, tz));
    let handler_concerned = case
        .handler_email
        .as_ref()
        .is_some_and(|h| concerned(case, h));
    let facts = CaseFacts {
        status: case.status,
        handler: case.handler_email.as_ref().map(EmailAddress::as_str),
        handler_concerned,
        has_client_email: case.client_email.is_some(),
        ack_sent: case.ack_sent_at.is_some(),
        ack_due: case.ack_due,
        response_due: case.response_due,
        waiting_reply: waiting.zip(waiting_day).map(|(e, d)| (e.at.as_str(), d)),
    };
    let mut done = CaseWork {
        reminders: 0,
        escalations: 0,
        extended: timeline
            .iter()
            .any(|e| e.kind == CaseEvent::Extended.into()),
    };
    for due in schedule::due_work(&facts, &rules(s), &s.calendar, today) {
        if !queue_due(app, case, &timeline, &due, today, now).await? {
            continue;
        }
        if due.kind.is_escalation() {
            done.escalations += 1;
        } else {
            done.reminders += 1;
        }
    }
    Ok(done)
}

/// Queues one piece of due work of `case` to its recipients and records
/// it on the timeline, unless it was done already (then false).
async fn queue_due(
    app: &App,
    case: &CaseRow,
    timeline: &[EventRow],
    due: &Due,
    today: Date,
    now: Timestamp,
) -> Result<bool> {
    let s = &app.settings;
    if due.kind == Kind::Conflict {
        // Never allowed (art. 6); intake and /toewijzen refuse it. Only a
        // changed roster or a hand-edited register gets here.
        tracing::error!(reference = %case.reference, "the handler of this case is concerned by it; the supervisors are asked to reassign");
    }
    let (to, is_handler) = if due.kind.is_escalation() {
        (escalation_recipients(s, case, due.level), false)
    } else {
        reminder_recipients(s, case)
    };
    let mut tx = app.store.begin().await?;
    let list: Vec<&str> = to.iter().map(|t| t.email.as_str()).collect();
    let key = NoticeKey {
        key: due.key(case.id),
        case_id: Some(case.id),
        kind: due.kind.as_str(),
        level: i64::from(due.level),
        day: today.to_string(),
    };
    if !store::claim_notice(&mut tx, &key, &list.join(","), now).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let mut notice = case_notice(s, case, timeline, due, is_handler);
    let kind = match due.kind {
        Kind::Reminder => OutboxKind::Reminder,
        Kind::ReplyWaiting => OutboxKind::ReplyReminder,
        _ => OutboxKind::Escalation,
    };
    for who in &to {
        let rendered = notice.render_to(&app.renderer, s.organisation.language, &who.name)?;
        queue_staff_mail(
            &mut Work {
                app,
                tx: &mut tx,
                now,
            },
            who,
            StaffMail {
                case_id: Some(case.id),
                rendered: &rendered,
                kind,
                answering: None,
            },
        )
        .await?;
    }
    let detail = if to.is_empty() {
        tracing::error!(reference = %case.reference, kind = due.kind.as_str(), "nobody to escalate to: every supervisor is concerned and escalation.fallback is not set");
        "nobody to tell: every supervisor is concerned and escalation.fallback is not set"
            .to_string()
    } else {
        format!("{} working days", due.days)
    };
    store::add_event_data(
        &mut tx,
        case.id,
        now,
        due.kind,
        "klachtd",
        &detail,
        &json!({"level": due.level, "days": due.days, "anchor": due.anchor, "to": list}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(reference = %case.reference, kind = due.kind.as_str(), level = due.level, recipients = to.len(), "scheduled work queued");
    Ok(true)
}

/// A reminder or an escalation about a case, rendered for one recipient
/// at a time (see the templates).
enum CaseNotice<'a> {
    Reminder(context::Reminder<'a>),
    Escalation(context::Escalation<'a>),
}

impl<'a> CaseNotice<'a> {
    fn render_to(&mut self, r: &Renderer, lang: Lang, name: &'a str) -> Result<Rendered> {
        match self {
            CaseNotice::Reminder(ctx) => {
                ctx.recipient = Named { name };
                r.render(lang, ctx)
            }
            CaseNotice::Escalation(ctx) => {
                ctx.recipient = Named { name };
                r.render(lang, ctx)
            }
        }
    }
}

fn case_notice<'a>(
    s: &'a Settings,
    case: &'a CaseRow,
    timeline: &[EventRow],
    due: &Due,
    is_handler: bool,
) -> CaseNotice<'a> {
    let lang = s.organisation.language;
    let tz = &s.organisation.timezone;
    let reply_at = match (due.kind, due.anchor.parse::<Timestamp>()) {
        (Kind::ReplyWaiting, Ok(t)) => long_date(lang, local_date(t, tz)),
        _ => String::new(),
    };
    let extended = timeline
        .iter()
        .any(|e| e.kind == CaseEvent::Extended.into());
    let kind = match due.kind {
        Kind::Reminder => "due_soon",
        Kind::ReplyWaiting => "reply_waiting",
        Kind::LateResponse => "response",
        Kind::LateAck => "ack",
        Kind::Conflict => "conflict",
    };
    if !matches!(due.kind, Kind::Reminder | Kind::ReplyWaiting) {
        return CaseNotice::Escalation(escalation(s, case, timeline, due, (kind, extended)));
    }
    CaseNotice::Reminder(context::Reminder {
        org: org(s),
        reference: case.reference.to_string(),
        recipient: Named { name: "" },
        kind,
        original_subject: &case.subject,
        client_name: &case.client_name,
        status_label: status_label(lang, case.status),
        response_due: long_date(lang, case.response_due),
        working_days_left: due.days,
        extended,
        reply_at,
        waiting_days: due.days,
        is_handler,
    })
}

fn escalation<'a>(
    s: &'a Settings,
    case: &'a CaseRow,
    timeline: &[EventRow],
    due: &Due,
    (kind, extended): (&'a str, bool),
) -> context::Escalation<'a> {
    let lang = s.organisation.language;
    let tz = &s.organisation.timezone;
    let handler = case.handler_email.as_ref().map(|h| {
        let name = s
            .staff_by_email(h)
            .map(|x| x.name.clone())
            .unwrap_or_default();
        Person {
            name,
            email: h.as_str().to_string(),
        }
    });
    let last = timeline
        .iter()
        .rev()
        .find(|e| !is_scheduler_event(e.kind))
        .map(|e| Activity {
            at: e
                .at
                .parse::<Timestamp>()
                .map(|t| local_time(lang, t, tz))
                .unwrap_or_else(|_| e.at.clone()),
            what: activity(lang, e.kind),
            actor: actor(s, lang, &e.actor),
        });
    let due_date = match due.kind {
        Kind::LateAck => long_date(lang, case.ack_due),
        _ => long_date(lang, case.response_due),
    };
    context::Escalation {
        org: org(s),
        reference: case.reference.to_string(),
        recipient: Named { name: "" },
        kind,
        level: due.level,
        original_subject: &case.subject,
        client_name: &case.client_name,
        category: case.category.as_str(),
        status_label: status_label(lang, case.status),
        handler,
        due: due_date,
        days_late: due.days,
        extended,
        ack_sent: case.ack_sent_at.is_some(),
        triage: case.status == Status::Triage,
        last_activity: last,
        second_level_working_days: s.escalation.second_level_working_days,
    }
}

fn actor(s: &Settings, lang: Lang, actor: &str) -> String {
    match actor {
        "client" => match lang {
            Lang::Nl => "cliënt".into(),
            Lang::En => "client".into(),
        },
        "klachtd" | "admin" => actor.into(),
        other => EmailAddress::parse(other)
            .ok()
            .and_then(|e| s.staff_by_email(&e))
            .map(|st| st.name.clone())
            .unwrap_or_else(|| other.to_string()),
    }
}

/// A timeline event kind in words.
fn activity(lang: Lang, kind: EventKind) -> String {
    use CaseEvent as C;
    use EventKind::{Case, Mail};
    use MailStep::{Queued, Sent};
    let (nl, en) = match kind {
        Case(C::Received) => ("klacht ontvangen", "complaint received"),
        Case(C::ClientReply) => ("reactie van de cliënt", "reply from the client"),
        Case(C::StaffMessage) => ("bericht van een medewerker", "message from staff"),
        Case(C::StaffMailRefused) => ("medewerkersbericht geweigerd", "staff mail refused"),
        Case(C::Command) => ("opdracht uitgevoerd", "command carried out"),
        Case(C::Status) => ("status gewijzigd", "status changed"),
        Case(C::Extended) => ("termijn verlengd", "term extended"),
        Case(C::Reassigned) => ("opnieuw toegewezen", "reassigned"),
        Case(C::Note) => ("interne notitie", "internal note"),
        Case(C::Reopened) => ("heropend", "reopened"),
        Mail(OutboxKind::Ack, Sent) => ("ontvangstbevestiging verstuurd", "acknowledgement sent"),
        Mail(OutboxKind::Ack, Queued) => {
            ("ontvangstbevestiging klaargezet", "acknowledgement queued")
        }
        Mail(OutboxKind::HandlerNew, Sent) => {
            ("melding aan de behandelaar verstuurd", "handler notified")
        }
        Mail(OutboxKind::Answer, Sent) => (
            "antwoord aan de cliënt verstuurd",
            "answer sent to the client",
        ),
        Mail(OutboxKind::ClientReplyNotice, Sent) => (
            "reactie van de cliënt doorgestuurd",
            "client's reply passed on",
        ),
        Mail(_, Sent) => ("bericht verstuurd", "message sent"),
        Mail(_, Queued) => ("bericht klaargezet", "message queued"),
        _ => ("", ""),
    };
    match (lang, nl.is_empty()) {
        (_, true) => kind.to_string().replace('_', " "),
        (Lang::Nl, false) => nl.into(),
        (Lang::En, false) => en.into(),
    }
}

pub fn status_label(lang: Lang, s: Status) -> &'static str {
    match (lang, s) {
        (Lang::Nl, Status::Triage) => "ter beoordeling",
        (Lang::Nl, Status::Received) => "ontvangen",
        (Lang::Nl, Status::Acknowledged) => "ontvangst bevestigd",
        (Lang::Nl, Status::InProgress) => "in behandeling",
        (Lang::Nl, Status::Proposed) => "voorstel gedaan",
        (Lang::Nl, Status::Rejected) => "afgewezen",
        (Lang::Nl, Status::Resolved) => "opgelost",
        (Lang::Nl, Status::External) => "extern",
        (Lang::Nl, Status::Closed) => "gesloten",
        (Lang::En, Status::Triage) => "awaiting triage",
        (Lang::En, Status::Received) => "received",
        (Lang::En, Status::Acknowledged) => "acknowledged",
        (Lang::En, Status::InProgress) => "in progress",
        (Lang::En, Status::Proposed) => "proposal made",
        (Lang::En, Status::Rejected) => "rejected",
        (Lang::En, Status::Resolved) => "resolved",
        (Lang::En, Status::External) => "external",
        (Lang::En, Status::Closed) => "closed",
    }
}

// ------------------------------------------------------------------ digest

/// The moment of the previous working day's round: where the first digest
/// starts counting new cases.
fn previous_round(s: &Settings, today: Date) -> Option<Timestamp> {
    let mut d = today.yesterday().ok()?;
    for _ in 0..60 {
        if s.calendar.is_working_day(d) {
            break;
        }
        d = d.yesterday().ok()?;
    }
    round_at(s, d, s.digest_at)
}

fn round_at(s: &Settings, d: Date, t: Time) -> Option<Timestamp> {
    d.to_datetime(t)
        .to_zoned(s.organisation.timezone.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// What the digest marks on cases beyond their rows (ids).
#[derive(Debug, Default)]
struct CaseMarks {
    /// The answer term was extended (art. 6).
    extended: std::collections::HashSet<i64>,
    /// Mail to the client failed for good (see `notify::tell_undeliverable`).
    undeliverable: std::collections::HashSet<i64>,
}

/// One supervisor's digest for `today`: true when a mail was queued.
async fn digest(
    app: &App,
    sup: &Staff,
    cases: &[CaseRow],
    marks: &CaseMarks,
    today: Date,
    now: Timestamp,
) -> Result<bool> {
    let s = &app.settings;
    let previous = app.store.last_digest_at(sup.email.as_str()).await?;
    let since = previous.or_else(|| previous_round(s, today));
    // Never a case that concerns this supervisor (art. 9).
    let visible: Vec<&CaseRow> = cases.iter().filter(|c| !concerned(c, &sup.email)).collect();
    let content = digest_content(s, &visible, marks, today, since);
    let news = content.news();
    let mut tx = app.store.begin().await?;
    let send = news || s.digest_send_empty;
    // Level 1: a digest went out; 0: the day was done with nothing to say.
    let key = NoticeKey {
        key: format!("digest:{}:{today}", sup.email.key()),
        case_id: None,
        kind: "digest",
        level: i64::from(send),
        day: today.to_string(),
    };

    if !store::claim_notice(&mut tx, &key, sup.email.as_str(), now).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    if send {
        let lang = s.organisation.language;
        let since_text = previous
            .map(|t| {
                let z = t.to_zoned(s.organisation.timezone.clone());
                format!(
                    "{} {}",
                    long_date_with_weekday(lang, z.date()),
                    z.strftime("%H:%M")
                )
            })
            .unwrap_or_default();
        let ctx = context::Digest {
            org: org(s),
            recipient: Named { name: &sup.name },
            day: long_date_with_weekday(lang, today),
            since: since_text,
            reminder_working_days: s.procedure.reminder_working_days,
            cases: content.cases,
        };
        let w = &mut Work {
            app,
            tx: &mut tx,
            now,
        };
        queue_staff_notice(w, sup, OutboxKind::Digest, &ctx, None).await?;
    }
    tx.commit().await?;
    Ok(send)
}

/// The start of a text on one line, at most `max` characters.
fn excerpt(text: &str, max: usize) -> String {
    let flat = crate::mail::quote::new_text(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max).collect();
    if let Some(i) = cut.rfind(' ') {
        cut.truncate(i);
    }
    cut.push('…');
    cut
}

struct DigestContent<'a> {
    cases: context::DigestCases<'a>,
    counts: [usize; 6],
}

impl DigestContent<'_> {
    /// Anything new or needing attention: new cases, due soon, overdue,
    /// unacknowledged, triage, mail to a client that could not be delivered.
    fn news(&self) -> bool {
        self.counts.iter().any(|&n| n > 0)
    }
}

/// One open case as the digest lists it; `days_left` in working days.
fn digest_row<'a>(s: &Settings, c: &'a CaseRow, extended: bool, today: Date) -> DigestRow<'a> {
    let short = |d: Date| d.strftime("%d-%m-%Y").to_string();
    let left = s.calendar.working_days_between(today, c.response_due);
    let handler = c
        .handler_email
        .as_ref()
        .map(|h| {
            s.staff_by_email(h)
                .map(|x| x.name.clone())
                .unwrap_or_else(|| h.to_string())
        })
        .unwrap_or_default();
    let received = short(local_date(c.received_at, &s.organisation.timezone));
    DigestRow {
        reference: c.reference.to_string(),
        subject: &c.subject,
        client_name: &c.client_name,
        status_label: status_label(s.organisation.language, c.status),
        handler,
        received,
        ack_due: short(c.ack_due),
        response_due: short(c.response_due),
        days_left: left,
        extended,
        // A triage item is decided from the digest: why it waits and
        // how it starts (the digest goes only to supervisors it does
        // not concern).
        triage_reason: c.triage_reason.as_deref().unwrap_or(""),
        excerpt: if c.status == Status::Triage {
            excerpt(&c.body, 300)
        } else {
            String::new()
        },
    }
}

fn digest_content<'a>(
    s: &Settings,
    cases: &[&'a CaseRow],
    marks: &CaseMarks,
    today: Date,
    since: Option<Timestamp>,
) -> DigestContent<'a> {
    let lang = s.organisation.language;
    let window = i64::from(s.procedure.reminder_working_days);
    let mut rows = Vec::new();
    for c in cases.iter().filter(|c| c.status != Status::Closed) {
        let row = digest_row(s, c, marks.extended.contains(&c.id), today);
        let left = row.days_left;
        let ack_late = c.ack_sent_at.is_none()
            && c.client_email.is_some()
            && matches!(c.status, Status::Triage | Status::Received)
            && c.ack_due < today;
        // New to klachtd since then: also mail that arrived while it was down.
        // created_at has whole seconds (as stored): the order its text had
        // against db_time(since).
        let new = since.is_none_or(|t| c.created_at > t);
        rows.push((c, row, left, new, ack_late));
    }
    // Each list: its first DIGEST_LIST_MAX rows, and how many match.
    let pick = |f: &dyn Fn(&CaseRow, i64, bool, bool) -> bool| -> (Vec<DigestRow<'a>>, usize) {
        let mut matching = rows
            .iter()
            .filter(|(c, _, left, new, ack)| f(c, *left, *new, *ack));
        let listed = matching
            .by_ref()
            .take(DIGEST_LIST_MAX)
            .map(|(_, r, ..)| r.clone())
            .collect::<Vec<_>>();
        let total = listed.len() + matching.count();
        (listed, total)
    };
    let (new_cases, new) = pick(&|_, _, new, _| new);
    let (due_soon, due) =
        pick(&|c, left, _, _| schedule::awaits_response(c.status) && (0..=window).contains(&left));
    let (overdue, late) = pick(&|c, left, _, _| schedule::awaits_response(c.status) && left < 0);
    let (unacknowledged, unacked) = pick(&|_, _, _, ack| ack);
    let (triage, waiting) = pick(&|c, _, _, _| c.status == Status::Triage);
    let (undeliverable, failed) = pick(&|c, _, _, _| marks.undeliverable.contains(&c.id));
    let open_by_status: Vec<_> = Status::ALL
        .iter()
        .filter(|&&st| st != Status::Closed)
        .filter_map(|&st| {
            let (cases, total) = pick(&|c, _, _, _| c.status == st);
            (!cases.is_empty()).then(|| StatusGroup {
                label: status_label(lang, st),
                more: total - cases.len(),
                total,
                cases,
            })
        })
        .collect();
    let counts = [new, due, late, unacked, waiting, failed];
    let cases = context::DigestCases {
        counts: context::DigestCounts {
            new,
            open: rows.len(),
            due_soon: due,
            overdue: late,
            unacknowledged: unacked,
            triage: waiting,
            undeliverable: failed,
        },
        more: context::DigestCounts {
            new: new - new_cases.len(),
            open: open_by_status.iter().map(|g| g.more).sum(),
            due_soon: due - due_soon.len(),
            overdue: late - overdue.len(),
            unacknowledged: unacked - unacknowledged.len(),
            triage: waiting - triage.len(),
            undeliverable: failed - undeliverable.len(),
        },
        new_cases,
        due_soon,
        overdue,
        unacknowledged,
        triage,
        undeliverable,
        open_by_status,
    };
    DigestContent { cases, counts }
}

/// Most cases a list of the digest names; the rest are counted. A backlog
/// of thousands of new cases would otherwise make a digest of megabytes,
/// built in memory and unreadable by the supervisor it is for.
pub const DIGEST_LIST_MAX: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    /// The minimal config (Anna: handler and supervisor) plus Bram
    /// (handler) and Dirk (supervisor).
    const MORE_STAFF: &str = r#"
[[staff]]
name = "Bram Bakker"
email = "bram@31solutions.test"
roles = ["handler"]
[[staff]]
name = "Dirk Jansen"
email = "dirk@31solutions.test"
roles = ["supervisor"]
"#;

    fn settings(extra: &str) -> Settings {
        let text = format!("{}{MORE_STAFF}{extra}", crate::config::tests::minimal());
        Settings::from_toml(&text, std::path::Path::new("/tmp"), &[]).unwrap()
    }

    fn case(concerns: &[&str], handler: Option<&str>) -> CaseRow {
        CaseRow {
            id: 1,
            reference: "KL-2026-0001".parse().unwrap(),
            status: Status::InProgress,
            category: crate::domain::types::Category::Coaching,
            language: Lang::Nl,
            source: crate::domain::case::Source::Email,
            client_name: "Jan".into(),
            client_email: Some(EmailAddress::parse("jan@client.test").unwrap()),
            client_phone: None,
            subject: "Klacht".into(),
            body: String::new(),
            nature: None,
            dates: None,
            desired_outcome: None,
            missing: vec![],
            concerns: concerns
                .iter()
                .map(|c| EmailAddress::parse(c).unwrap())
                .collect(),
            handler_email: handler.map(|h| EmailAddress::parse(h).unwrap()),
            received_at: "2026-11-23T09:00:00Z".parse().unwrap(),
            ack_sent_at: Some("2026-11-23T09:00:05Z".parse().unwrap()),
            ack_due: "2026-11-30".parse().unwrap(),
            response_due: "2026-12-21".parse().unwrap(),
            triage_reason: None,
            created_at: "2026-11-23T09:00:01Z".parse().unwrap(),
            closed_at: None,
            client_token: None,
            anonymised_at: None,
        }
    }

    fn emails(v: &[Staff]) -> Vec<&str> {
        v.iter().map(|s| s.email.as_str()).collect()
    }

    #[test]
    fn escalations_skip_a_concerned_supervisor_then_fall_back_and_widen_at_level_two() {
        let s = settings(
            "[escalation]\nfallback = \"extern@toezicht.test\"\nsecond_level_to = [\"directie@31solutions.test\", \"dirk@31solutions.test\"]\n",
        );
        let about_dirk = case(&["dirk@31solutions.test"], Some("bram@31solutions.test"));
        assert_eq!(
            emails(&escalation_recipients(&s, &about_dirk, 1)),
            ["anna@31solutions.test"]
        );
        // Level 2 adds the directie, but never Dirk (concerned).
        assert_eq!(
            emails(&escalation_recipients(&s, &about_dirk, 2)),
            ["anna@31solutions.test", "directie@31solutions.test"]
        );
        let about_both = case(
            &["anna@31solutions.test", "DIRK@31solutions.test"],
            Some("bram@31solutions.test"),
        );
        assert_eq!(
            emails(&escalation_recipients(&s, &about_both, 1)),
            ["extern@toezicht.test"]
        );
        // Without a fallback: nobody (the caller records and logs that).
        let bare = settings("");
        assert!(escalation_recipients(&bare, &about_both, 1).is_empty());
        // A fallback the complaint concerns is filtered like anyone else.
        let about_all = case(
            &[
                "anna@31solutions.test",
                "dirk@31solutions.test",
                "extern@toezicht.test",
            ],
            Some("bram@31solutions.test"),
        );
        assert!(escalation_recipients(&s, &about_all, 1).is_empty());
    }

    #[test]
    fn reminders_go_to_the_handler_unless_there_is_none_or_they_are_concerned() {
        let s = settings("");
        let (to, is_handler) = reminder_recipients(&s, &case(&[], Some("bram@31solutions.test")));
        assert_eq!(
            (emails(&to), is_handler),
            (vec!["bram@31solutions.test"], true)
        );
        let (to, is_handler) = reminder_recipients(&s, &case(&[], None));
        assert_eq!(
            (emails(&to), is_handler),
            (
                vec!["anna@31solutions.test", "dirk@31solutions.test"],
                false
            )
        );
        let conflicted = case(&["bram@31solutions.test"], Some("bram@31solutions.test"));
        let (to, _) = reminder_recipients(&s, &conflicted);
        assert!(!emails(&to).contains(&"bram@31solutions.test"));
    }

    fn event(kind: &str, at: &str, data: Option<Value>) -> EventRow {
        EventRow {
            at: at.into(),
            kind: kind.parse().expect("a known event kind"),
            actor: "x".into(),
            detail: String::new(),
            data,
        }
    }

    #[test]
    fn a_client_reply_waits_until_anything_goes_to_the_client() {
        let mut tl = vec![
            event("received", "2026-11-23T09:00:00Z", None),
            event("client_reply", "2026-11-24T09:00:00Z", None),
            event("note", "2026-11-24T10:00:00Z", None),
            event("client_reply", "2026-11-25T09:00:00Z", None),
        ];
        assert_eq!(
            waiting_reply(&tl).unwrap().at,
            "2026-11-24T09:00:00Z",
            "the oldest"
        );
        tl.push(event("answer_queued", "2026-11-25T10:00:00Z", None));
        assert!(waiting_reply(&tl).is_none());
        tl.push(event("client_reply", "2026-11-26T09:00:00Z", None));
        tl.push(event(
            "staff_message",
            "2026-11-26T10:00:00Z",
            Some(json!({"client_in_copy": false})),
        ));
        assert!(
            waiting_reply(&tl).is_some(),
            "a colleague's note is no answer"
        );
        tl.push(event(
            "staff_message",
            "2026-11-26T10:30:00Z",
            Some(json!({"client_in_copy": true, "authenticated": false})),
        ));
        assert!(
            waiting_reply(&tl).is_some(),
            "a staff From with the client in copy that did not authenticate is no answer"
        );
        tl.push(event(
            "staff_message",
            "2026-11-26T11:00:00Z",
            Some(json!({"client_in_copy": true, "authenticated": true})),
        ));
        assert!(
            waiting_reply(&tl).is_none(),
            "written to the client directly"
        );
    }

    #[test]
    fn the_digest_has_news_only_with_new_due_overdue_unacknowledged_or_triage_cases() {
        let s = settings("");
        let today: Date = "2026-12-01".parse().unwrap();
        let quiet = case(&[], Some("bram@31solutions.test"));
        let since = "2026-11-30T07:30:00Z".parse().ok();
        let none = CaseMarks::default();
        let c = digest_content(&s, &[&quiet], &none, today, since);
        assert!(!c.news(), "an open case on schedule is no news");
        assert_eq!(c.cases.counts.open, 1);
        assert_eq!(c.cases.open_by_status[0].label, "in behandeling");
        // New since the last digest.
        let c = digest_content(
            &s,
            &[&quiet],
            &none,
            today,
            "2026-11-20T07:30:00Z".parse().ok(),
        );
        assert!(c.news());
        // Due within the reminder window (3 working days before 21 December).
        let c = digest_content(&s, &[&quiet], &none, "2026-12-16".parse().unwrap(), since);
        assert_eq!(c.cases.counts.due_soon, 1);
        // Overdue, and marked extended.
        let ext = CaseMarks {
            extended: std::collections::HashSet::from([1]),
            ..Default::default()
        };
        let c = digest_content(&s, &[&quiet], &ext, "2026-12-22".parse().unwrap(), since);
        assert_eq!(c.cases.counts.overdue, 1);
        assert_eq!(c.cases.overdue[0].days_left, -1);
        assert!(c.cases.overdue[0].extended);
        // Mail to the client failed for good: news, listed on its own.
        let failed = CaseMarks {
            undeliverable: std::collections::HashSet::from([1]),
            ..Default::default()
        };
        let c = digest_content(&s, &[&quiet], &failed, today, since);
        assert!(c.news());
        assert_eq!(
            c.cases.undeliverable[0].reference,
            quiet.reference.to_string()
        );
        // Closed cases are not listed at all.
        let mut closed = quiet.clone();
        closed.status = Status::Closed;
        let c = digest_content(&s, &[&closed], &none, today, None);
        assert!(!c.news());
        assert_eq!(c.cases.counts.open, 0);
    }

    #[test]
    fn a_digest_lists_at_most_a_hundred_cases_per_list_and_counts_the_rest() {
        let s = settings("");
        let n = DIGEST_LIST_MAX + 150;
        let cases: Vec<CaseRow> = (0..n)
            .map(|i| {
                let mut c = case(&[], Some("bram@31solutions.test"));
                c.id = i as i64 + 1;
                c.reference = format!("KL-2026-{:04}", i + 1).parse().unwrap();
                c
            })
            .collect();
        let refs: Vec<&CaseRow> = cases.iter().collect();
        let c = digest_content(
            &s,
            &refs,
            &CaseMarks::default(),
            "2026-12-01".parse().unwrap(),
            None,
        );
        assert_eq!(c.cases.counts.new, n);
        assert_eq!(c.cases.counts.open, n);
        assert_eq!(c.cases.new_cases.len(), DIGEST_LIST_MAX);
        assert_eq!(c.cases.more.new, 150);
        assert_eq!(c.cases.new_cases[0].reference, "KL-2026-0001");
        let group = &c.cases.open_by_status[0];
        assert_eq!(
            (group.cases.len(), group.total, group.more),
            (DIGEST_LIST_MAX, n, 150)
        );
        assert_eq!(c.cases.more.open, 150);
        assert_eq!((c.cases.more.overdue, c.cases.more.triage), (0, 0));
    }
}
