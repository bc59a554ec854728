//! `klachtd client …` and `klachtd audit`: a client's data (art. 9, AVG)
//! and the trail of who looked at or erased it.

use anyhow::Result;

use super::{admin_actor, client_address, local};
use crate::clock::Clock;
use crate::config::Settings;
use crate::store::Store;

pub(super) async fn export(settings: Settings, clock: Clock, email: String) -> Result<()> {
    let email = client_address(&email)?;
    let store = Store::open_existing(&settings.database_url).await?;
    let v = crate::flows::privacy::export(&store, &settings, &email, &admin_actor(), clock.now())
        .await?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub(super) async fn erase(
    settings: Settings,
    clock: Clock,
    email: String,
    include_open: bool,
    keep_mailbox: bool,
) -> Result<()> {
    let email = client_address(&email)?;
    let store = Store::open_existing(&settings.database_url).await?;
    let mailbox = (settings.purge_mailbox && !keep_mailbox).then_some(&settings);
    let erased = crate::flows::privacy::erase(
        &store,
        mailbox,
        &email,
        include_open,
        &admin_actor(),
        clock.now(),
    )
    .await?;
    if erased.cases.is_empty() && erased.other_mail == 0 {
        println!("nothing stored about that address; nothing to erase");
    } else {
        println!(
                "erased {} case(s): {}; {} other mail(s) emptied; {} message(s) deleted from the mailbox",
                erased.cases.len(),
                erased.cases.join(" "),
                erased.other_mail,
                erased.mailbox_deleted
            );
    }
    Ok(())
}

pub(super) async fn audit(settings: Settings, json: bool) -> Result<()> {
    let store = Store::open_existing(&settings.database_url).await?;
    let rows = store.audit_trail().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let tz = &settings.organisation.timezone;
        for a in &rows {
            println!(
                "{}  {:<14} {:<24} {}  {}",
                local(&a.at, tz),
                a.action,
                super::terminal_safe(&a.actor, false),
                super::terminal_safe(&a.detail, false),
                a.cases
            );
        }
        println!(
            "{} entr{}",
            rows.len(),
            if rows.len() == 1 { "y" } else { "ies" }
        );
    }
    Ok(())
}
