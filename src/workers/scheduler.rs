//! The scheduler loop: one pass a minute (see [`crate::flows::scheduler`]). Every
//! timer is derived from the register on each pass, so a restart loses
//! nothing and a pass that fails is simply done again a minute later.

use std::time::Duration;

use tokio::sync::watch;

use super::{backoff, sleep_or_stop};
use crate::app::App;

/// How often the scheduler looks at the register.
const TICK: Duration = Duration::from_secs(60);

pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = match crate::flows::scheduler::pass(&app).await {
            Ok(_) => {
                failures = 0;
                TICK
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(failures, Duration::from_secs(300)).max(TICK);
                tracing::warn!(error = %crate::store::explain(&e), retry_in_s = wait.as_secs(), "scheduler pass failed");
                wait
            }
        };
        if sleep_or_stop(wait, &mut stop).await {
            return;
        }
    }
}
