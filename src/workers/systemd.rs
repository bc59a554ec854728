//! systemd's notify protocol for `Type=notify` (contrib/klachtd.service):
//! READY once the daemon is up, WATCHDOG at half of `WatchdogSec` while
//! its loops run, STATUS (e.g. "IDLE; 3 open cases; nothing waiting to be
//! sent"), STOPPING on shutdown. Without `NOTIFY_SOCKET` (not under
//! systemd) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::app::App;

/// How often STATUS is refreshed when there is no watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(30);

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "systemd notify failed");
    }
}

pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The watchdog interval systemd asked for, halved; none without one.
fn watchdog_half() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

/// One line on the daemon's state for `systemctl status`: no client
/// data, only counts.
async fn status_line(app: &App) -> String {
    let intake = if app.metrics.idle_now() {
        "IDLE"
    } else {
        "polling or reconnecting"
    };
    let today = crate::config::local_date(app.clock.now(), &app.settings.organisation.timezone);
    let open = app
        .store
        .case_counts(today)
        .await
        .map(|c| c.open + c.triage);
    let waiting = app.store.unsent().await.map(|(_, n, _)| n);
    match (open, waiting) {
        (Ok(open), Ok(0)) => format!("{intake}; {open} open cases; nothing waiting to be sent"),
        (Ok(open), Ok(n)) => format!("{intake}; {open} open cases; {n} mails waiting to be sent"),
        _ => format!("{intake}; the register could not be read"),
    }
}

/// Pings the watchdog and refreshes STATUS until `stop`. The ping comes
/// from this task while the runtime is responsive; a daemon that hangs
/// stops pinging and systemd restarts it.
pub async fn keep_alive(app: App, mut stop: watch::Receiver<bool>) {
    // Not under systemd: no one to tell, so no queries for STATUS.
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let watchdog = watchdog_half();
    let every = watchdog.unwrap_or(STATUS_EVERY).min(STATUS_EVERY);
    loop {
        let status = status_line(&app).await;
        if watchdog.is_some() {
            send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        } else {
            send(&[NotifyState::Status(&status)]);
        }
        if super::sleep_or_stop(every, &mut stop).await {
            return;
        }
    }
}
