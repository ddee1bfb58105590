//! Background work that runs beside the HTTP server and stops with it.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::AppState;

pub mod ingest;
pub mod pipeline;
pub mod sender;
pub mod shaper;

/// How often the tenant cache compares its revisions with the database.
pub const CACHE_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Starts every worker; each stops when `stop` turns true.
pub fn spawn_all(state: &AppState, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(cache_sync(state.clone(), stop.clone()))];
    if state.config.run_workers {
        tasks.push(tokio::spawn(pipeline::run(state.clone(), stop.clone())));
        tasks.push(tokio::spawn(sender::run(state.clone(), stop)));
    }
    tasks
}

/// Picks up tenant changes made by other processes (the CLI, other instances).
async fn cache_sync(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(CACHE_SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match state.cache.sync_with_store().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tenants = n, "reloading tenants changed elsewhere"),
            Err(e) => tracing::warn!(error = %e, "cache sync: cannot read tenant revisions"),
        }
    }
}
