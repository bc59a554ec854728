//! Running klachtd in production: `status` (health at a glance, exit 1
//! during an alarm), `backup` and `restore` of the register.

use std::path::Path;

use anyhow::{bail, Context, Result};
use jiff::Timestamp;
use serde_json::json;

use crate::clock::Clock;
use crate::config::Settings;
use crate::store::{Backend, Store};

/// `klachtd status [--json]`. Returns whether an alarm is raised.
pub(super) async fn status(settings: Settings, clock: Clock, as_json: bool) -> Result<bool> {
    let store = Store::open_existing(&settings.database_url).await?;
    let now = clock.now();
    let today = crate::config::local_date(now, &settings.organisation.timezone);
    let intake = store.health("intake").await?;
    let (oldest, waiting, outbox_error) = store.unsent().await?;
    let alarms = store.raised_alarms().await?;
    let cases = store.case_counts(today).await?;
    store.close().await;
    let age = |t: Option<Timestamp>| t.map(|t| now.duration_since(t).as_secs().max(0));
    let time = |t: Option<Timestamp>| t.map(|t| t.to_string());
    if as_json {
        let report = json!({
            "intake": {
                "last_ok": time(intake.ok_at),
                "failing_since": time(intake.failing_since),
                "last_error": intake.last_error,
            },
            "outbox": {
                "waiting": waiting,
                "oldest_age_seconds": age(oldest),
                "last_error": outbox_error,
            },
            "cases": {
                "open": cases.open,
                "overdue": cases.overdue,
                "triage": cases.triage,
            },
            "alarms": alarms,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let tz = &settings.organisation.timezone;
        let when = |t: Option<Timestamp>| match t {
            Some(t) => super::local_time(t, tz),
            None => "never".into(),
        };
        println!("intake:  last success {}", when(intake.ok_at));
        if let Some(since) = intake.failing_since {
            println!(
                "         failing since {}: {}",
                super::local_time(since, tz),
                super::terminal_safe(intake.last_error.as_deref().unwrap_or(""), false)
            );
        }
        match age(oldest) {
            Some(secs) => println!(
                "outbox:  {waiting} mail(s) waiting, the oldest for {} min",
                secs / 60
            ),
            None => println!("outbox:  nothing waiting"),
        }
        println!(
            "cases:   {} open, {} overdue, {} in triage",
            cases.open, cases.overdue, cases.triage
        );
        if alarms.is_empty() {
            println!("alarms:  none");
        } else {
            println!("alarms:  {} (the supervisors were told)", alarms.join(", "));
        }
    }
    Ok(!alarms.is_empty())
}

/// `klachtd backup FILE`: a consistent copy while the daemon runs.
pub(super) async fn backup(settings: Settings, file: &Path) -> Result<()> {
    let store = Store::open_existing(&settings.database_url).await?;
    let result = store.backup_to(file).await;
    store.close().await;
    result?;
    println!("register copied to {} (mode 0600)", file.display());
    Ok(())
}

/// `klachtd restore FILE`: a backup into `database.url`, which must be new
/// or an empty register. Stop the daemon first.
pub(super) async fn restore(settings: Settings, file: &Path) -> Result<()> {
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    let source_url = format!("sqlite://{}", file.display());
    let source = Store::open_existing(&source_url)
        .await
        .with_context(|| format!("{} is not a klachtd register", file.display()))?;
    let rows = source.total_rows().await;
    source.close().await;
    rows.with_context(|| format!("{} is not a klachtd register", file.display()))?;

    let url = &settings.database_url;
    let target = Store::open(url).await?;
    let existing = target.total_rows().await?;
    if existing > 0 {
        target.close().await;
        bail!(
            "database.url already holds a register ({existing} rows); restore only into a new or \
             empty one (move the old file away, or create a new database)"
        );
    }
    if target.backend() == Backend::Sqlite {
        // The backup file itself, byte for byte, in place of the empty one.
        target.close().await;
        let path = url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap_or_default();
        replace_file(file, Path::new(path))?;
    } else {
        let source = Store::open_existing(&source_url).await?;
        let copied = crate::store::transfer(&source, &target).await;
        source.close().await;
        target.close().await;
        copied?;
    }
    println!(
        "register restored from {} into {}",
        file.display(),
        crate::store::redact_url(url)
    );
    Ok(())
}

/// Copies `from` over `to` as a whole (a copy beside it, then a rename),
/// owner-only; the empty register's journal files go.
fn replace_file(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = to.with_extension("restoring");
    std::fs::copy(from, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = to.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(side);
    }
    std::fs::rename(&tmp, to).with_context(|| format!("cannot replace {}", to.display()))?;
    Ok(())
}
