//! `klachtd outbox`: the mail that has not gone out, and queuing failed
//! mail again once its cause is fixed.

use anyhow::{bail, Result};

use super::{local, terminal_safe};
use crate::clock::Clock;
use crate::config::Settings;
use crate::store::Store;

pub(super) async fn list(settings: Settings, failed_only: bool, json: bool) -> Result<()> {
    let store = Store::open_existing(&settings.database_url).await?;
    let rows = store.outbox_listing(failed_only).await?;
    store.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let tz = &settings.organisation.timezone;
    for r in &rows {
        println!(
            "{:>6}  {}  {:<10} {:<18} {:<13} {:>3}x  {}  {}",
            r.id,
            local(&r.created_at, tz),
            r.status,
            r.kind,
            r.case_reference.as_deref().unwrap_or("-"),
            r.attempts,
            terminal_safe(&r.recipient, false),
            terminal_safe(r.last_error.as_deref().unwrap_or(""), false),
        );
    }
    let what = if failed_only { "failed" } else { "unsent" };
    println!(
        "{} {what} mail{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    if rows.iter().any(|r| r.status == "failed") {
        println!("queue failed mail again: klachtd outbox retry ID (or --all-failed)");
    }
    Ok(())
}

pub(super) async fn retry(settings: Settings, clock: Clock, id: Option<i64>) -> Result<()> {
    let store = Store::open_existing(&settings.database_url).await?;
    let ids = store.requeue_failed(id, clock.now()).await?;
    store.close().await;
    match (id, ids.len()) {
        (Some(id), 0) => {
            bail!("outbox row {id} is not a failed mail (see klachtd outbox --failed)")
        }
        (_, n) => println!(
            "queued again: {n} mail{} ({}); the daemon sends {} on its next pass",
            if n == 1 { "" } else { "s" },
            ids.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if n == 1 { "it" } else { "them" },
        ),
    }
    Ok(())
}
