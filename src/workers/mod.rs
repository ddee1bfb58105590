//! Background work that runs beside the HTTP server and stops with it.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::AppState;

pub mod ingest;
pub mod notifier;
pub mod pipeline;
pub mod sender;
pub mod shaper;

/// Starts every worker; each stops when `stop` turns true.
pub fn spawn_all(state: &AppState, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(cache_sync(state.clone(), stop.clone())),
        tokio::spawn(cache_listen(state.clone(), stop.clone())),
    ];
    if state.config.run_workers {
        tasks.push(tokio::spawn(queue_upkeep(state.clone(), stop.clone())));
    }
    if state.config.run_workers {
        let s = state.clone();
        // Several loops per stage, so one stage's batch can be decided or sent while
        // another of its batches waits for the database. Claims keep them apart (a
        // customer's next message, or next reply, is not claimed while an earlier one
        // is), exactly as between instances.
        for _ in 0..s.config.worker_tasks {
            tasks.push(tokio::spawn(work_loop(
                "pipeline",
                pipeline::BATCH,
                s.clone(),
                s.wake_pipeline.clone(),
                stop.clone(),
                |st| async move { pipeline::process_once(&st).await },
            )));
            tasks.push(tokio::spawn(work_loop(
                "sender",
                sender::BATCH,
                s.clone(),
                s.wake_sender.clone(),
                stop.clone(),
                |st| async move { sender::send_once(&st).await },
            )));
        }
        if s.email.is_some() {
            tasks.push(tokio::spawn(work_loop(
                "notifier",
                notifier::BATCH,
                s.clone(),
                s.wake_notifier.clone(),
                stop,
                |st| async move { notifier::notify_once(&st).await },
            )));
        }
    }
    tasks
}

/// Runs `step` until `stop`: again while it finds work, else after a wake-up or the
/// poll interval (the safety net for retries that fell due and expired leases).
///
/// After a batch that was neither empty nor full (`batch`), it first waits
/// `PARLEY_BATCH_LINGER_MS`, so that while messages keep coming each transaction carries
/// more of them. On SQLite, where every commit writes each page it touched to the
/// write-ahead log, this took the writer from ~2 to ~12 messages a transaction at
/// 3000 msg/s and the CPU per message down by a quarter (README, Benchmark). The first
/// message after a quiet spell is taken at once.
async fn work_loop<F, Fut>(
    name: &'static str,
    batch: i64,
    state: AppState,
    wake: std::sync::Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
    step: F,
) where
    F: Fn(AppState) -> Fut,
    Fut: std::future::Future<Output = Result<usize, crate::store::StoreError>>,
{
    let poll = state.config.poll_interval;
    let linger = state.config.batch_linger;
    let mut busy = false;
    loop {
        if busy && !linger.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(linger) => {}
                _ = stop.changed() => return,
            }
        }
        let result = step(state.clone()).await;
        busy = matches!(result, Ok(n) if n > 0 && (n as i64) < batch);
        match result {
            Ok(0) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => return,
                }
            }
            Ok(_) if *stop.borrow() => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(worker = name, error = %e, "database error; retrying shortly");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// How often the queue tables are vacuumed on PostgreSQL.
pub const QUEUE_UPKEEP_INTERVAL: Duration = Duration::from_secs(10);
/// How often SQLite's write-ahead log is checkpointed beside the writer.
pub const WAL_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps claims fast on PostgreSQL: every processed message leaves dead index entries
/// in the queue tables, and claims walk them until a vacuum removes them. On SQLite,
/// copies the write-ahead log back from another connection, so the writer never has to.
async fn queue_upkeep(state: AppState, mut stop: watch::Receiver<bool>) {
    let every = match state.store.backend() {
        crate::store::Backend::Postgres => QUEUE_UPKEEP_INTERVAL,
        crate::store::Backend::Sqlite => WAL_CHECKPOINT_INTERVAL,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = state.store.maintain_queues().await {
            tracing::warn!(error = %e, "queue upkeep failed");
        }
    }
}

/// Drops a tenant's cached context as soon as any process announces a change to it
/// (PostgreSQL LISTEN/NOTIFY). The revision poll (`cache_sync`) stays as the safety net
/// for announcements missed while the listening connection was down.
async fn cache_listen(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        let mut feed = match state.store.tenant_changes().await {
            Ok(Some(feed)) => feed,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for tenant changes; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        loop {
            tokio::select! {
                changed = feed.next() => match changed {
                    Ok(id) => state.cache.invalidate(id).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "tenant change feed broke; reopening");
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

/// Picks up tenant changes made by other processes (the CLI, other instances).
async fn cache_sync(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.cache_sync_interval);
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
