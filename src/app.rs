//! What every part of the daemon shares: settings, the register, the
//! templates, the clock, and the bell that wakes the outbox.

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::Settings;
use crate::mail::render::Renderer;
use crate::store::Store;

#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub renderer: Arc<Renderer>,
    pub clock: Clock,
    pub outbox_wake: Arc<Notify>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl App {
    pub async fn new(settings: Settings, clock: Clock) -> Result<App> {
        let renderer = Renderer::new(settings.organisation.templates_dir.as_deref())?;
        let store = Store::open(&settings.database_url)
            .await?
            .with_marker_dir(settings.marker_dir.clone());
        Ok(App {
            settings: Arc::new(settings),
            store,
            renderer: Arc::new(renderer),
            clock,
            outbox_wake: Arc::new(Notify::new()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        })
    }
}
