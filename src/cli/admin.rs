//! The administrator's other commands: the analysis on demand, a phone
//! complaint, moving the register to another database.

use anyhow::{bail, Context, Result};

use super::{validate_register, RegisterArgs};
use crate::app::App;
use crate::clock::Clock;
use crate::config::Settings;
use crate::flows::phone::register_phone_complaint;
use crate::register;
use crate::store::{CaseFilter, Store};

pub(super) async fn report(
    settings: Settings,
    clock: Clock,
    from: String,
    to: String,
    json: bool,
) -> Result<()> {
    let day = |flag: &str, v: &str| {
        v.parse::<jiff::civil::Date>()
            .with_context(|| format!("{flag} {v:?}: expected a date as YYYY-MM-DD"))
    };
    let (from, to) = (day("--from", &from)?, day("--to", &to)?);
    if to < from {
        bail!("--to {to} is before --from {from}");
    }
    let store = Store::open_existing(&settings.database_url).await?;
    let today = crate::config::local_date(clock.now(), &settings.organisation.timezone);
    let (cases, records) = register::load(&store, &settings, &CaseFilter::default(), today).await?;
    let r = crate::report::build(&cases, &records, from, to, &settings.procedure);
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let text = crate::report::text(&r, settings.organisation.language);
        print!("{}", super::terminal_safe(&text, true));
    }
    Ok(())
}

pub(super) async fn register_phone(
    settings: Settings,
    clock: Clock,
    a: RegisterArgs,
) -> Result<()> {
    let p = validate_register(&a)?;
    let app = App::new(settings, clock).await?;
    let (r, status) = register_phone_complaint(&app, &p).await?;
    // Send the acknowledgement and the handler's notice now; what
    // cannot go out stays queued for the daemon.
    if let Err(e) = crate::workers::outbox::flush(&app).await {
        eprintln!("klachtd: queued, not yet sent: {e:#}");
    }
    app.store.close().await;
    println!("registered ({status}) {r}");
    Ok(())
}

pub(super) async fn transfer(settings: Settings, to: String) -> Result<()> {
    if to.trim() == settings.database_url.trim() {
        anyhow::bail!("--to is database.url itself; give a new, empty database");
    }
    let from = Store::open_existing(&settings.database_url).await?;
    let target = Store::open(&to).await?;
    let result = crate::store::transfer(&from, &target).await;
    from.close().await;
    target.close().await;
    let copied = result?;
    for c in &copied {
        println!("{:<14} {:>8} rows", c.table, c.rows);
    }
    println!(
        "register copied into {}; point database.url there and start klachtd",
        crate::store::redact_url(&to)
    );
    Ok(())
}
