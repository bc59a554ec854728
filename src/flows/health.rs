//! Health alarms: intake that cannot read the mailbox, or mail stuck in
//! the outbox, past its threshold, or automatic replies held back by their
//! hourly limit; each supervisor is told once when it
//! starts and once when it ends. Checked on every scheduler pass, at any
//! hour; raised and cleared by conditional updates, so two daemons on one
//! database send each mail once.

use anyhow::Result;
use jiff::Timestamp;

use crate::app::App;
use crate::domain::event::OutboxKind;
use crate::flows::notify::{local_time, org, queue_staff_notice};
use crate::flows::Work;
use crate::mail::render::context::{self, Named};
use crate::store;

/// Alarms about intake and outbox, and their recovery: at most one mail
/// each way per episode. Returns how many alarm or recovery mails went out.
pub(crate) async fn alarms(app: &App, now: Timestamp) -> Result<usize> {
    let s = &app.settings;
    let mut sent = 0;
    // Intake: failing since when?
    let h = app.store.health("intake").await?;
    let intake_trouble = h
        .failing_since
        .filter(|since| elapsed(*since, now) >= s.health.intake_alarm_after);
    sent += alarm_or_recovery(
        app,
        "intake",
        intake_trouble,
        h.alarm_at,
        h.last_error.as_deref(),
        0,
        now,
    )
    .await?;
    // Outbox: the oldest mail still waiting.
    let h = app.store.health("outbox").await?;
    let (oldest, unsent, error) = app.store.unsent().await?;
    let outbox_trouble = oldest.filter(|o| elapsed(*o, now) >= s.health.outbox_alarm_after);
    sent += alarm_or_recovery(
        app,
        "outbox",
        outbox_trouble,
        h.alarm_at,
        error.as_deref(),
        unsent,
        now,
    )
    .await?;
    // Automatic replies: the hourly limit reached (since the newest reply
    // that reached it); over when the last hour holds fewer again.
    let h = app.store.health("auto_replies").await?;
    let mut tx = app.store.begin().await?;
    let hour_ago = now
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap_or(now);
    let (count, newest) = store::all_auto_replies_since(&mut tx, hour_ago).await?;
    tx.rollback().await?;
    let limit = s.procedure.auto_replies_per_hour;
    let capped = newest.filter(|_| count >= i64::from(limit));
    sent += alarm_or_recovery(app, "auto_replies", capped, h.alarm_at, None, count, now).await?;
    Ok(sent)
}

fn elapsed(since: Timestamp, now: Timestamp) -> std::time::Duration {
    std::time::Duration::try_from(now.duration_since(since)).unwrap_or_default()
}

async fn alarm_or_recovery(
    app: &App,
    what: &str,
    trouble_since: Option<Timestamp>,
    alarm_at: Option<Timestamp>,
    last_error: Option<&str>,
    count: i64,
    now: Timestamp,
) -> Result<usize> {
    let s = &app.settings;
    let mut tx = app.store.begin().await?;
    let (state, since) = match (trouble_since, alarm_at) {
        (Some(since), None) => {
            // The alarm remembers when the trouble began, for the recovery.
            if !store::raise_alarm(&mut tx, what, since).await? {
                tx.rollback().await?;
                return Ok(0);
            }
            tracing::error!(what, since = %since, "health alarm: supervisors are told");
            ("alarm", since)
        }
        (None, Some(since)) => {
            if !store::clear_alarm(&mut tx, what).await? {
                tx.rollback().await?;
                return Ok(0);
            }
            tracing::info!(what, "health recovered: supervisors are told");
            ("recovered", since)
        }
        _ => {
            tx.rollback().await?;
            return Ok(0);
        }
    };
    let lang = s.organisation.language;
    let minutes = now.duration_since(since).as_secs().max(0) / 60;
    let mut ctx = context::Health {
        org: org(s),
        recipient: Named { name: "" },
        what,
        state,
        since: local_time(lang, since, &s.organisation.timezone),
        minutes,
        last_error: last_error.unwrap_or(""),
        count,
        limit: s.procedure.auto_replies_per_hour,
        mailbox: s.organisation.address.as_str(),
    };
    let mut n = 0;
    for sup in s.supervisors() {
        ctx.recipient = Named { name: &sup.name };
        let w = &mut Work {
            app,
            tx: &mut tx,
            now,
        };
        queue_staff_notice(w, sup, OutboxKind::Health, &ctx, None).await?;
        n += 1;
    }
    tx.commit().await?;
    Ok(n.min(1))
}
