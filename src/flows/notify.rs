//! All outgoing mail of a case: the acknowledgement (art. 5), the handler's
//! notifications, mail to staff, and the one place a mail is composed and
//! queued in the outbox (exactly once, see `workers::outbox`).

use anyhow::Result;
use jiff::civil::Date;
use jiff::Timestamp;

use crate::app::App;
use crate::config::{local_date, Settings, Staff};
use crate::domain::event::{CaseEvent, EventKind, OutboxKind};
use crate::domain::types::{EmailAddress, Lang};
use crate::flows::Work;
use crate::mail::compose::{self, Outgoing};
use crate::mail::parse::InboundMail;
use crate::mail::render::context::{self, MailContext, Named, Person};
use crate::mail::render::{echo, long_date, Rendered};
use crate::store::{self, NewOutMail, Tx};

/// The persons a complaint concerns, by name (empty when not on the
/// roster) and address.
pub(crate) fn concerns(s: &Settings, concerns: &[EmailAddress]) -> Vec<Person> {
    concerns
        .iter()
        .map(|e| Person {
            name: s
                .staff_by_email(e)
                .map(|x| x.name.as_str())
                .unwrap_or("")
                .into(),
            email: e.to_string(),
        })
        .collect()
}

/// The dates of a case as the register holds them.
pub(crate) struct CaseDates {
    pub received: Date,
    pub ack_due: Date,
    pub response_due: Date,
}

pub(crate) fn case_dates(s: &Settings, c: &store::CaseRow) -> CaseDates {
    CaseDates {
        received: local_date(c.received_at, &s.organisation.timezone),
        ack_due: c.ack_due,
        response_due: c.response_due,
    }
}

/// Why an automatic reply to `to` may not go out now, if it may not: the
/// hourly limit over all senders (which alarms the supervisors, see
/// `crate::flows::health`) or the daily limit per mailbox (sub-addresses
/// are one mailbox). The reason holds no address.
pub(crate) async fn auto_reply_limit(
    s: &Settings,
    tx: &mut Tx,
    to: &EmailAddress,
    now: Timestamp,
) -> Result<Option<String>> {
    let ago = |hours| {
        now.checked_sub(jiff::SignedDuration::from_hours(hours))
            .unwrap_or(now)
    };
    let (all, _) = store::all_auto_replies_since(tx, ago(1)).await?;
    if all >= i64::from(s.procedure.auto_replies_per_hour) {
        return Ok(Some(format!(
            "{all} automatic replies in the last hour, the limit \
             (procedure.auto_replies_per_hour); supervisors alarmed; confirm personally"
        )));
    }
    let recent = store::auto_replies_since(tx, to, ago(24)).await?;
    if recent >= i64::from(s.procedure.auto_replies_per_sender_per_day) {
        return Ok(Some(format!(
            "{recent} automatic replies to this sender in 24 hours; confirm personally"
        )));
    }
    Ok(None)
}

/// Queues the acknowledgement (art. 5) to the client, in the thread of the
/// mail that opened the case. Returns false when nothing was queued: no
/// address, the per-sender limit, or an acknowledgement already exists.
pub(crate) async fn queue_ack(
    app: &App,
    tx: &mut Tx,
    case: &store::CaseRow,
    handler: &Staff,
    now: Timestamp,
) -> Result<bool> {
    let s = &app.settings;
    let Some(client_email) = &case.client_email else {
        return Ok(false);
    };
    if let Some(why) = auto_reply_limit(s, tx, client_email, now).await? {
        store::add_event(tx, case.id, now, CaseEvent::AckSuppressed, "klachtd", &why).await?;
        return Ok(false);
    }
    let rendered = app
        .renderer
        .render(case.language, &ack_context(s, case, handler)?)?;
    let (irt, refs) = match store::first_message(tx, case.id).await? {
        Some((id, refs)) => {
            let r = compose::references_for_reply(&refs, &id);
            (Some(id), r)
        }
        None => (None, Vec::new()),
    };
    let (message_id, queued) = queue_mail(
        app,
        tx,
        &Mail {
            case_id: Some(case.id),
            kind: OutboxKind::Ack,
            from_name: &s.organisation.name,
            to_name: &echo::name(&case.client_name),
            to: client_email,
            rendered: &rendered,
            in_reply_to: irt.as_deref(),
            references: &refs,
            auto_reply: true,
            attachments: &[],
            inline: &[],
        },
        now,
    )
    .await?;
    if queued {
        store::add_event(
            tx,
            case.id,
            now,
            EventKind::queued(OutboxKind::Ack),
            "klachtd",
            &message_id,
        )
        .await?;
    }
    Ok(queued)
}

/// The acknowledgement of `case`, in the client's language.
fn ack_context<'a>(
    s: &'a Settings,
    case: &'a store::CaseRow,
    handler: &Staff,
) -> Result<context::Ack<'a>> {
    let lang = case.language;
    let d = case_dates(s, case);
    Ok(context::Ack {
        org: org(s),
        reference: case.reference.to_string(),
        client_name: echo::name(&case.client_name),
        original_subject: echo::subject(&case.subject),
        handler: Person {
            name: handler.name.clone(),
            email: handler.email.as_str().into(),
        },
        received: long_date(lang, d.received),
        response_due: long_date(lang, d.response_due),
        missing: case.missing.iter().map(|e| e.as_str()).collect(),
        response_working_days: s.procedure.response_working_days,
    })
}

/// Queues the handler's notification of a case: the complaint, deadlines,
/// who it concerns. Also used when a case is reassigned or taken out of
/// triage; `note` is the colleague's text that came with that.
pub(crate) async fn queue_handler_new(
    w: &mut Work<'_>,
    case: &store::CaseRow,
    handler: &Staff,
    assignment_reason: &str,
    note: Option<(&Staff, &str)>,
) -> Result<()> {
    let app = w.app;
    let s = &app.settings;
    let lang = s.organisation.language;
    let d = case_dates(s, case);
    let stored = store::case_attachments(w.tx, case.id).await?;
    let attachments = stored
        .iter()
        .map(|a| context::Attachment {
            filename: &a.filename,
            size_human: human_size(a.size),
            stored: a.stored,
        })
        .collect();
    let ctx = context::HandlerNew {
        org: org(s),
        reference: case.reference.to_string(),
        handler: Named {
            name: &handler.name,
        },
        client_name: &case.client_name,
        client_email: case.client_email.as_ref().map_or("", EmailAddress::as_str),
        client_phone: case.client_phone.as_deref().unwrap_or(""),
        original_subject: &case.subject,
        received: long_date(lang, d.received),
        ack_due: long_date(lang, d.ack_due),
        response_due: long_date(lang, d.response_due),
        category: case.category.as_str(),
        concerns: concerns(s, &case.concerns),
        missing: case.missing.iter().map(|e| e.as_str()).collect(),
        assignment_reason,
        body: &case.body,
        attachments,
        source: case.source.as_str(),
        note: note.map(|(who, text)| context::Note {
            name: &who.name,
            text,
        }),
    };
    queue_staff_mail(
        w,
        handler,
        StaffMail {
            case_id: Some(case.id),
            rendered: &app.renderer.render(lang, &ctx)?,
            kind: OutboxKind::HandlerNew,
            answering: None,
        },
    )
    .await
}

/// Tells the handler a case was taken from that it went to `new_handler`,
/// unless there was none, it is the same person, or they are off the roster
/// now. Nothing of the complaint beyond its reference and subject: they had
/// the case until now. Returns whether they were told.
pub(crate) async fn queue_handler_released(
    app: &App,
    tx: &mut Tx,
    case: &store::CaseRow,
    old_handler: Option<&EmailAddress>,
    new_handler: &Staff,
    reason: &str,
    now: Timestamp,
) -> Result<bool> {
    let s = &app.settings;
    let Some(old) = old_handler.and_then(|e| s.staff_by_email(e)) else {
        return Ok(false);
    };
    if old.email == new_handler.email {
        return Ok(false);
    }
    let lang = s.organisation.language;
    let d = case_dates(s, case);
    let ctx = context::HandlerReleased {
        org: org(s),
        reference: case.reference.to_string(),
        original_subject: &case.subject,
        old_handler: Named { name: &old.name },
        new_handler: Named {
            name: &new_handler.name,
        },
        reason,
        response_due: long_date(lang, d.response_due),
    };
    queue_staff_mail(
        &mut Work { app, tx, now },
        old,
        StaffMail {
            case_id: Some(case.id),
            rendered: &app.renderer.render(lang, &ctx)?,
            kind: OutboxKind::HandlerReleased,
            answering: None,
        },
    )
    .await?;
    Ok(true)
}

/// A mail to a staff member: the rendered message, the outbox kind, and
/// their own mail it answers (it is threaded under that one).
#[derive(Clone, Copy)]
pub(crate) struct StaffMail<'a> {
    pub case_id: Option<i64>,
    pub rendered: &'a Rendered,
    pub kind: OutboxKind,
    pub answering: Option<&'a InboundMail>,
}

/// Renders `ctx` in the organisation's language and queues it to `to`,
/// on no case (health alarms, digests, receipts, paper-copy requests).
pub(crate) async fn queue_staff_notice<C: MailContext>(
    w: &mut Work<'_>,
    to: &Staff,
    kind: OutboxKind,
    ctx: &C,
    answering: Option<&InboundMail>,
) -> Result<()> {
    let rendered = w
        .app
        .renderer
        .render(w.app.settings.organisation.language, ctx)?;
    let mail = StaffMail {
        case_id: None,
        rendered: &rendered,
        kind,
        answering,
    };
    queue_staff_mail(w, to, mail).await
}

/// Queues a mail to a staff member. Its random Message-ID is what
/// authenticates their answer.
pub(crate) async fn queue_staff_mail(w: &mut Work<'_>, to: &Staff, m: StaffMail<'_>) -> Result<()> {
    let (app, now) = (w.app, w.now);
    let s = &app.settings;
    let refs = m
        .answering
        .map(|a| compose::references_for_reply(&a.references, &a.message_id))
        .unwrap_or_default();
    queue_mail(
        app,
        w.tx,
        &Mail {
            case_id: m.case_id,
            kind: m.kind,
            from_name: &format!("{} klachten", s.organisation.name),
            to_name: &to.name,
            to: &to.email,
            rendered: m.rendered,
            in_reply_to: m.answering.map(|a| a.message_id.as_str()),
            references: &refs,
            auto_reply: false,
            attachments: &[],
            inline: &[],
        },
        now,
    )
    .await?;
    if let Some(case_id) = m.case_id {
        store::add_event(
            w.tx,
            case_id,
            now,
            EventKind::queued(m.kind),
            "klachtd",
            to.email.as_str(),
        )
        .await?;
    }
    Ok(())
}

/// The organisation as every template names it (`org.name`, …).
pub(crate) fn org(s: &Settings) -> context::Org<'_> {
    context::Org {
        name: &s.organisation.name,
        address: s.organisation.address.as_str(),
        regulation_url: &s.organisation.regulation_url,
        phone: &s.organisation.phone,
        website: &s.organisation.website,
    }
}

/// "18 december 2026 14:05", local.
pub(crate) fn local_time(lang: Lang, t: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    format!("{} {}", long_date(lang, z.date()), z.strftime("%H:%M"))
}

pub(crate) fn human_size(n: u64) -> String {
    match n {
        n if n >= 1024 * 1024 => format!("{:.1} MB", n as f64 / (1024.0 * 1024.0)),
        n if n >= 1024 => format!("{} kB", n / 1024),
        n => format!("{n} bytes"),
    }
}

/// Queues the same mail to every supervisor who is not in `except` (art. 6:
/// never to a person the case concerns); returns how many.
pub(crate) async fn queue_to_supervisors(
    w: &mut Work<'_>,
    except: &[EmailAddress],
    mail: StaffMail<'_>,
) -> Result<usize> {
    let app = w.app;
    let mut n = 0;
    for sup in app
        .settings
        .supervisors()
        .filter(|s| !except.contains(&s.email))
    {
        queue_staff_mail(w, sup, mail).await?;
        n += 1;
    }
    Ok(n)
}

/// One mail from the organisation's address, already rendered.
pub(crate) struct Mail<'a> {
    pub case_id: Option<i64>,
    pub kind: OutboxKind,
    pub from_name: &'a str,
    pub to_name: &'a str,
    pub to: &'a EmailAddress,
    pub rendered: &'a Rendered,
    /// Threading: the message answered, and the chain before it.
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    /// An automatic reply (RFC 3834 headers).
    pub auto_reply: bool,
    pub attachments: &'a [(String, String, Vec<u8>)],
    /// Inline images of the HTML part (see `compose::Outgoing::inline`).
    pub inline: &'a [(String, String, Vec<u8>)],
}

/// Composes `m` with a fresh random Message-ID and queues it in the outbox.
/// Returns the Message-ID and whether it was queued (the database refuses a
/// second acknowledgement of a case).
pub(crate) async fn queue_mail(
    app: &App,
    tx: &mut Tx,
    m: &Mail<'_>,
    now: Timestamp,
) -> Result<(String, bool)> {
    let s = &app.settings;
    let message_id = compose::new_message_id(&s.organisation.message_id_domain)?;
    let raw = compose::build(&Outgoing {
        message_id: &message_id,
        from_name: m.from_name,
        from: &s.organisation.address,
        to_name: m.to_name,
        to: m.to,
        reply_to: None,
        subject: &m.rendered.subject,
        text: &m.rendered.text,
        html: &m.rendered.html,
        in_reply_to: m.in_reply_to,
        references: m.references,
        auto_reply: m.auto_reply,
        date: now,
        kind: m.kind.as_str(),
        attachments: m.attachments,
        inline: m.inline,
    })?;
    let queued = store::enqueue(
        tx,
        &NewOutMail {
            message_id: &message_id,
            case_id: m.case_id,
            kind: m.kind,
            recipient: m.to.as_str(),
            raw: &raw,
        },
        now,
    )
    .await?;
    Ok((message_id, queued))
}

/// Mail to the client on `case_id` was refused for good (`what`, with the
/// server's `reason`): its handler, or without one every supervisor the
/// case does not concern, is asked to reach the client another way.
pub(crate) async fn tell_undeliverable(
    app: &App,
    case_id: i64,
    what: OutboxKind,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    let s = &app.settings;
    let mut tx = app.store.begin().await?;
    let Some(case) = store::case_in_tx(&mut tx, case_id).await? else {
        return Ok(());
    };
    let handler = case
        .handler_email
        .as_ref()
        .and_then(|h| s.staff_by_email(h))
        .filter(|h| !case.concerns.contains(&h.email));
    let recipients: Vec<&Staff> = match handler {
        Some(h) => vec![h],
        None => s
            .supervisors()
            .filter(|sup| !case.concerns.contains(&sup.email))
            .collect(),
    };
    for to in recipients {
        let ctx = context::Undeliverable {
            org: org(s),
            recipient: Named { name: &to.name },
            reference: case.reference.to_string(),
            original_subject: &case.subject,
            client_name: &case.client_name,
            client_email: case.client_email.as_ref().map_or("", |e| e.as_str()),
            client_phone: case.client_phone.as_deref().unwrap_or(""),
            what: what.as_str(),
            reason,
        };
        let w = &mut Work {
            app,
            tx: &mut tx,
            now,
        };
        queue_staff_notice(w, to, OutboxKind::Undeliverable, &ctx, None).await?;
    }
    tx.commit().await?;
    Ok(())
}
