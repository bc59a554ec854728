//! The daemon's loops. Each takes a shutdown receiver and stops promptly
//! when it fires; `run` joins them instead of sleeping.

pub mod endpoint;
pub mod intake;
pub mod outbox;
pub mod scheduler;
pub mod systemd;

use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use crate::app::App;

/// Jittered exponential backoff: attempt 0 → ~1 s, capped at `max`.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << attempt.min(16));
    let capped = base.min(max);
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    let jitter = u16::from_le_bytes(b) as f64 / u16::MAX as f64; // 0..1
    capped.mul_f64(0.5 + jitter * 0.5)
}

/// The wait a server asked for when it throttles us, if it did: Exchange
/// Online's "Suggested Backoff Time: N milliseconds" (at most 15 minutes);
/// a minute for RFC 5530's `[UNAVAILABLE]` and `[LIMIT]`, Exchange's
/// "Server Unavailable", and SMTP's thread and connection limits.
pub fn throttled(error: &str) -> Option<Duration> {
    let lower = error.to_ascii_lowercase();
    if let Some(rest) = lower.split("suggested backoff time:").nth(1) {
        let ms: u64 = rest
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(60_000);
        return Some(
            Duration::from_millis(ms).clamp(Duration::from_secs(1), Duration::from_secs(900)),
        );
    }
    const SIGNS: [&str; 7] = [
        "[unavailable]",
        "[limit]",
        "server unavailable",
        "throttl",
        "thread limit",
        "too many concurrent",
        "concurrent connections limit",
    ];
    SIGNS
        .iter()
        .any(|s| lower.contains(s))
        .then_some(Duration::from_secs(60))
}

/// One full pass: every new message and the scheduler's work due now,
/// with the outbox sending beside them, then the outbox until nothing is
/// due.
pub async fn run_once(app: &App) -> Result<()> {
    let work = async {
        let intake = intake::pass(app).await;
        intake::record_health(app, &intake).await;
        tracing::info!(ok = intake.is_ok(), "intake pass done");
        // The scheduler runs even when intake failed: that is when its
        // health alarm matters. Whatever was recorded is sent.
        let scheduled = crate::flows::scheduler::pass(app).await;
        (intake, scheduled)
    };
    let ((intake, scheduled), sent) = outbox::flush_beside(app, work).await;
    tracing::info!(stages = %app.metrics.stage_summary(), "pass done; seconds per stage");
    intake?;
    scheduled?;
    sent?;
    Ok(())
}

/// Runs intake (IDLE), outbox and scheduler until `shutdown` completes
/// (the binary passes [`shutdown_signal`]: SIGTERM or SIGINT; a test can
/// pass any future and run the daemon in-process). Graceful: the current
/// message or send completes, then the tasks are joined.
pub async fn run(app: App, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics_task = match app.settings.metrics_listen {
        Some(addr) => {
            let listener = endpoint::listen(addr).await?;
            tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
            Some(tokio::spawn(endpoint::serve(
                app.clone(),
                listener,
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let intake_task = tokio::spawn(intake::run(app.clone(), stop_rx.clone()));
    let outbox_task = tokio::spawn(outbox::run(app.clone(), stop_rx.clone()));
    let scheduler_task = tokio::spawn(scheduler::run(app.clone(), stop_rx.clone()));
    let systemd_task = tokio::spawn(systemd::keep_alive(app.clone(), stop_rx.clone()));
    systemd::ready();
    shutdown.await;
    systemd::stopping();
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    app.outbox_wake.notify_one();
    let joined = tokio::time::timeout(Duration::from_secs(30), async {
        let _ = intake_task.await;
        let _ = outbox_task.await;
        let _ = scheduler_task.await;
        let _ = systemd_task.await;
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
    })
    .await;
    if joined.is_err() {
        tracing::warn!("tasks did not stop within 30 s");
    }
    app.store.close().await;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sleeps for `d` or until shutdown; true when shutdown fired.
pub async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_waits_as_long_as_the_server_asks() {
        let exchange =
            "IMAP login: NO Request is throttled. Suggested Backoff Time: 181023 milliseconds";
        assert_eq!(throttled(exchange), Some(Duration::from_millis(181_023)));
        let smtp = "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded";
        assert_eq!(throttled(smtp), Some(Duration::from_secs(60)));
        assert_eq!(
            throttled("NO [UNAVAILABLE] try later"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            throttled("Suggested Backoff Time: 99999999 milliseconds"),
            Some(Duration::from_secs(900))
        );
        assert_eq!(throttled("connection refused"), None);
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let max = Duration::from_secs(300);
        for attempt in 0..40 {
            let d = backoff(attempt, max);
            assert!(d <= max, "{d:?}");
            let nominal = Duration::from_secs(1)
                .saturating_mul(1u32 << attempt.min(16))
                .min(max);
            assert!(d >= nominal / 2, "{attempt}: {d:?}");
        }
    }
}
