//! Background work that runs beside the HTTP server and stops with it.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::AppState;

pub mod followers;
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
        let (to, handed) = tokio::sync::mpsc::unbounded_channel();
        state.ingest.hand_off(ingest::Handoff {
            slots: state.pipe_slots.clone(),
            clock: state.clock.clone(),
            lease: state.config.work_lease,
            to,
            decide: Some(ingest::DecideHere {
                send_slots: state.send_slots.clone(),
                email_enabled: state.email.is_some(),
            }),
        });
        tasks.push(tokio::spawn(take_handed(
            state.clone(),
            handed,
            stop.clone(),
        )));
    }
    if state.config.run_workers {
        let s = state.clone();
        // One claimer per stage, and up to its slots' count of batches in work at once,
        // so one batch can be decided or sent while another waits for the database.
        // Claims keep batches apart (a customer's next message, or next reply, is not
        // claimed while an earlier one is), exactly as between instances.
        tasks.push(tokio::spawn(staged_loop(
            Stage {
                name: "pipeline",
                batch: pipeline::BATCH,
                slots: s.config.worker_tasks,
                wake: s.wake_pipeline.clone(),
                poll: s.config.poll_interval,
                linger: s.config.batch_linger,
            },
            s.clone(),
            stop.clone(),
            |st| async move { pipeline::claim(&st).await },
            |st, batch| async move { pipeline::process(&st, batch).await },
        )));
        tasks.push(tokio::spawn(staged_loop(
            Stage {
                name: "sender",
                batch: sender::BATCH,
                slots: s.config.send_tasks,
                wake: s.wake_sender.clone(),
                poll: s.config.poll_interval,
                linger: s.config.batch_linger,
            },
            s.clone(),
            stop.clone(),
            |st| async move { sender::claim(&st).await },
            |st, batch| async move { sender::send(&st, batch).await },
        )));
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

/// Processes the batches the webhook handed straight to the pipeline (each on a task of
/// its own, holding its slot), and hands the replies of turns written with the webhook
/// to the sender, until `stop`; what is still queued then is left to its leases.
async fn take_handed(
    state: AppState,
    mut handed: tokio::sync::mpsc::UnboundedReceiver<ingest::Handed>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            batch = handed.recv() => {
                let Some(handed) = batch else { return };
                let batch = handed.stored;
                // Turns written with their messages: their replies go to the sender.
                if !batch.decided.is_empty() {
                    pipeline::handed_on(&state, &batch.decided, batch.replies, handed.send_slot);
                }
                if batch.messages.is_empty() {
                    continue;
                }
                let slot = handed.slot;
                let state = state.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let known = batch.conversations;
                    if let Err(e) = pipeline::process_known(&state, batch.messages, known).await {
                        // Left leased: claimed again when the lease runs out.
                        tracing::error!(error = %e, "pipeline: batch not processed");
                    }
                });
            }
            _ = stop.changed() => return,
        }
    }
}

/// When a lease taken at `now` for `lease` (`PARLEY_WORK_LEASE_SECONDS`) runs out: the
/// same for a claim and for work leased as it is written.
pub fn lease_until(
    now: chrono::DateTime<chrono::Utc>,
    lease: Duration,
) -> chrono::DateTime<chrono::Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or_default()
}

/// How long to wait, per message of the last batch, before taking the next one.
pub const LINGER_PER_MESSAGE: Duration = Duration::from_micros(500);

/// How long a stage waits for company after a batch of `n` messages (of at most
/// `full`): half a millisecond per message, at most `max`. The wait grows with the
/// load: at arrival rate r it settles where each batch holds about r × (cycle + wait),
/// which stays small while r is under one message per `LINGER_PER_MESSAGE` (at
/// 100 msg/s, a fraction of a millisecond) and reaches `max` only under heavy load,
/// where larger transactions save the most. A fixed wait after any batch of two put
/// the whole 20 ms on every reply at 100 msg/s. A full batch means a backlog: no wait.
pub fn linger_after(n: usize, full: i64, max: Duration) -> Duration {
    if n == 0 || n as i64 >= full {
        return Duration::ZERO;
    }
    LINGER_PER_MESSAGE
        .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
        .min(max)
}

/// A queue stage: its name in logs, its claim size, how many of its batches may be in
/// work at once, the signal that work arrived, the poll interval (the safety net) and
/// the most it lingers between batches.
struct Stage {
    name: &'static str,
    batch: i64,
    slots: usize,
    wake: std::sync::Arc<tokio::sync::Notify>,
    poll: Duration,
    linger: Duration,
}

/// Runs one claimer for a stage until `stop`: it claims a batch whenever one of the
/// stage's slots (`PARLEY_WORKER_TASKS`, the sender's `PARLEY_SEND_TASKS`) is free and
/// hands it to `process` on a task of its own; claims again at once while batches come
/// back full, else after a wake-up or the poll interval (the safety net for retries
/// that fell due and expired leases). A batch that was not full took all there was, so
/// the next claim waits for news too: claiming again at once found nothing nearly
/// every time at light load, one statement in fifteen of a message's on PostgreSQL
/// (benches/HISTORY.md, run 28). Work stored meanwhile has woken the stage (a wake-up
/// is kept until the claimer waits for it), so none waits for the poll.
///
/// One claimer instead of one claiming loop per slot: several loops each claimed
/// every few milliseconds, mostly finding little, and on PostgreSQL those claims (each
/// walking past the rows the other loops held) took half a core at 2400 msg/s.
///
/// After a batch that was neither empty nor full, it first waits (`linger_after`: half a
/// millisecond per message of that batch, at most `PARLEY_BATCH_LINGER_MS`), so that
/// while messages keep coming each transaction carries more of them. On SQLite, where
/// every commit writes each page it touched to the write-ahead log, this took the
/// writer from ~2 to ~12 messages a transaction at 3000 msg/s and the CPU per message
/// down by a quarter (benches/HISTORY.md, runs 9–11). The first message after a quiet spell is
/// taken at once. On `stop`, it waits for the batches in
/// work to be written.
async fn staged_loop<S, T, C, CF, P, PF>(
    stage: Stage,
    state: S,
    mut stop: watch::Receiver<bool>,
    claim: C,
    process: P,
) where
    S: Clone,
    T: Send + 'static,
    C: Fn(S) -> CF,
    CF: std::future::Future<Output = Result<Vec<T>, crate::store::StoreError>>,
    P: Fn(S, Vec<T>) -> PF,
    PF: std::future::Future<Output = Result<usize, crate::store::StoreError>> + Send + 'static,
{
    let (poll, linger) = (stage.poll, stage.linger);
    let slots_total = stage.slots.max(1);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(slots_total));
    let mut wait = Duration::ZERO;
    // The last claim took all there was: wait for news before the next one.
    let mut drained = false;
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        if drained {
            drained = false;
            let since = tokio::time::Instant::now();
            tokio::select! {
                _ = stage.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => break,
            }
            // Waiting for news counts as lingering: after a quiet spell, at once.
            wait = wait.saturating_sub(since.elapsed());
        }
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break,
            }
        }
        match claim(state.clone()).await {
            Ok(batch) if batch.is_empty() => {
                wait = Duration::ZERO;
                drop(slot);
                tokio::select! {
                    _ = stage.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => break,
                }
            }
            Ok(batch) => {
                wait = linger_after(batch.len(), stage.batch, linger);
                drained = (batch.len() as i64) < stage.batch;
                let name = stage.name;
                let work = process(state.clone(), batch);
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = work.await {
                        // Its messages stay leased and are claimed again when it runs out.
                        tracing::warn!(worker = name, error = %e, "database error; batch left to its lease");
                    }
                });
                if *stop.borrow() {
                    break;
                }
            }
            Err(e) => {
                drop(slot);
                tracing::warn!(worker = stage.name, error = %e, "database error; retrying shortly");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                    _ = stop.changed() => break,
                }
            }
        }
    }
    // Batches in work finish writing before the store closes.
    let _ = slots.acquire_many(slots_total as u32).await;
}

/// Runs `step` until `stop`: again while it finds work (after the linger, as
/// `staged_loop`), else after a wake-up or the poll interval. For the notifier, whose
/// batches are small and rare.
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
    let mut wait = Duration::ZERO;
    loop {
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
        let result = step(state.clone()).await;
        wait = match result {
            Ok(n) => linger_after(n, batch, linger),
            Err(_) => Duration::ZERO,
        };
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
/// How often that vacuum also refreshes their statistics, once the first passes are
/// over. `ANALYZE` reads a sample of some 30,000 rows a table whatever its size: every
/// 10 seconds it was ~1.3 s of the server's time in 10 at 1500 msg/s (run 34), while
/// the statistics' shape (how big, how selective) barely moves within a minute.
pub const QUEUE_ANALYZE_INTERVAL: Duration = Duration::from_secs(60);
/// How often SQLite's write-ahead log is checkpointed beside the writer. Often enough
/// that the writer's own automatic checkpoint (copying and syncing in the middle of the
/// message loop) seldom comes due: at 14,000 messages a second the log grows by some
/// 100,000 pages a second (benches/HISTORY.md, run 33).
pub const WAL_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// Keeps claims fast on PostgreSQL: every processed message leaves dead index entries
/// in the queue tables, and claims walk them until a vacuum removes them; the same pass
/// keeps the hot tables' statistics fresh, which their cached plans rely on (every
/// pass while they are young, then every `QUEUE_ANALYZE_INTERVAL`). The first
/// passes come after 1, 2, 4 and 8 seconds: a young database's statistics describe
/// empty tables, and plans made on them scan whole tables once they have filled. On
/// SQLite, copies the write-ahead log back from another connection every
/// `WAL_CHECKPOINT_INTERVAL`, so the writer seldom has to.
async fn queue_upkeep(state: AppState, mut stop: watch::Receiver<bool>) {
    let every = match state.store.backend() {
        crate::store::Backend::Postgres => QUEUE_UPKEEP_INTERVAL,
        crate::store::Backend::Sqlite => WAL_CHECKPOINT_INTERVAL,
    };
    let mut wait = every.min(Duration::from_secs(1));
    let mut analyzed: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let analyze = analyze_due(wait, every, analyzed.map(|at| at.elapsed()));
        match state.store.maintain_queues(analyze).await {
            Ok(()) if analyze => analyzed = Some(tokio::time::Instant::now()),
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "queue upkeep failed"),
        }
        wait = (wait * 2).min(every);
    }
}

/// Whether an upkeep pass that waited `wait` (of the steady `every`) also refreshes the
/// statistics, `since` the last pass that did: every early pass (the tables are young),
/// then once per `QUEUE_ANALYZE_INTERVAL`.
fn analyze_due(wait: Duration, every: Duration, since: Option<Duration>) -> bool {
    wait < every || since.is_none_or(|s| s >= QUEUE_ANALYZE_INTERVAL)
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

/// Deletes what a write that raced a tenant's deletion left of it, once a worker meets
/// such a row (a message or reply whose tenant no longer exists): without it the row
/// would be claimed again after every lease. Best effort: a failure is logged and the
/// next claim of the row tries again.
pub(crate) async fn sweep_deleted_tenant(state: &AppState, tenant: crate::domain::TenantId) {
    match state.store.sweep_deleted_tenant(tenant).await {
        Ok(n) => tracing::warn!(%tenant, rows = n, "deleted tenant's leftover rows removed"),
        Err(e) => tracing::error!(%tenant, error = %e, "cannot remove a deleted tenant's rows"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::sync::Notify;

    /// A work queue in memory: what a claim finds, how often it was claimed, what was
    /// processed, in order.
    #[derive(Default)]
    struct Queue {
        waiting: Mutex<Vec<u32>>,
        claims: AtomicUsize,
        processed: Mutex<Vec<u32>>,
        last_claim: Mutex<Option<tokio::time::Instant>>,
    }

    impl Queue {
        fn add(&self, items: impl IntoIterator<Item = u32>) {
            self.waiting.lock().unwrap().extend(items);
        }
        fn claims(&self) -> usize {
            self.claims.load(Ordering::SeqCst)
        }
        fn processed(&self) -> Vec<u32> {
            self.processed.lock().unwrap().clone()
        }
    }

    /// Runs `staged_loop` over `q` (batches of 4, one slot), each batch taking `work`.
    fn start(
        q: &Arc<Queue>,
        wake: &Arc<Notify>,
        poll: Duration,
        work: Duration,
    ) -> (tokio::task::JoinHandle<()>, watch::Sender<bool>) {
        let (stop_tx, stop) = watch::channel(false);
        let stage = Stage {
            name: "test",
            batch: 4,
            slots: 1,
            wake: wake.clone(),
            poll,
            linger: Duration::from_millis(20),
        };
        let task = tokio::spawn(staged_loop(
            stage,
            q.clone(),
            stop,
            |q: Arc<Queue>| async move {
                q.claims.fetch_add(1, Ordering::SeqCst);
                *q.last_claim.lock().unwrap() = Some(tokio::time::Instant::now());
                let mut waiting = q.waiting.lock().unwrap();
                let n = waiting.len().min(4);
                Ok(waiting.drain(..n).collect::<Vec<_>>())
            },
            move |q: Arc<Queue>, batch: Vec<u32>| async move {
                tokio::time::sleep(work).await;
                let n = batch.len();
                q.processed.lock().unwrap().extend(batch);
                Ok(n)
            },
        ));
        (task, stop_tx)
    }

    async fn stop(task: tokio::task::JoinHandle<()>, stop: watch::Sender<bool>) {
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_that_took_all_there_was_waits_for_news_before_the_next() {
        let q = Arc::new(Queue::default());
        let wake = Arc::new(Notify::new());
        let hour = Duration::from_secs(3600);
        let (task, stop_tx) = start(&q, &wake, hour, Duration::from_millis(2));
        let settle = || tokio::time::sleep(Duration::from_millis(200));
        settle().await;
        assert_eq!(q.claims(), 1, "one claim at start, found nothing");

        q.add([1]);
        wake.notify_one();
        settle().await;
        assert_eq!(q.processed(), vec![1]);
        assert_eq!(
            q.claims(),
            2,
            "no second claim after a batch that was not full"
        );

        // A backlog: full batches are followed at once, the last partial one is not.
        q.add(2..=6);
        wake.notify_one();
        settle().await;
        assert_eq!(q.processed(), (1..=6).collect::<Vec<_>>());
        assert_eq!(q.claims(), 4);
        stop(task, stop_tx).await;
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_quiet_spell_the_next_message_is_claimed_at_once() {
        let q = Arc::new(Queue::default());
        let wake = Arc::new(Notify::new());
        let hour = Duration::from_secs(3600);
        let (task, stop_tx) = start(&q, &wake, hour, Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Three messages: the claim after them would linger 1.5 ms.
        q.add([1, 2, 3]);
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        q.add([4]);
        let woken = tokio::time::Instant::now();
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(q.processed(), vec![1, 2, 3, 4]);
        assert_eq!(
            q.last_claim.lock().unwrap().unwrap(),
            woken,
            "claimed when woken, without lingering"
        );
        stop(task, stop_tx).await;
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_arrives_while_a_batch_is_in_work_is_claimed_without_the_poll() {
        let q = Arc::new(Queue::default());
        let wake = Arc::new(Notify::new());
        let hour = Duration::from_secs(3600);
        let (task, stop_tx) = start(&q, &wake, hour, Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.add([1]);
        wake.notify_one();
        // While 1 is in work (50 ms), 2 arrives and wakes the stage.
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.add([2]);
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            q.processed(),
            vec![1, 2],
            "both handled within 230 ms, poll 1 h"
        );
        stop(task, stop_tx).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_poll_finds_work_that_nobody_announced() {
        let q = Arc::new(Queue::default());
        let wake = Arc::new(Notify::new());
        let (task, stop_tx) = start(&q, &wake, Duration::from_millis(500), Duration::ZERO);
        q.add([1]);
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A retry that fell due, say: no wake-up.
        q.add([2]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(q.processed(), vec![1], "not before the poll");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(q.processed(), vec![1, 2], "after it");
        stop(task, stop_tx).await;
    }

    #[test]
    fn the_upkeep_analyzes_on_its_first_passes_then_once_a_minute() {
        let every = QUEUE_UPKEEP_INTERVAL;
        let s = Duration::from_secs;
        // The first passes (1, 2, 4, 8 s apart) always analyze.
        assert!(analyze_due(s(1), every, None));
        assert!(analyze_due(s(8), every, Some(s(8))));
        // Then every 10 s: a vacuum only, until a minute has passed.
        assert!(!analyze_due(every, every, Some(s(10))));
        assert!(!analyze_due(every, every, Some(s(50))));
        assert!(analyze_due(every, every, Some(s(60))));
        assert!(analyze_due(every, every, None));
    }

    #[test]
    fn the_linger_grows_with_the_batch_and_stops_at_the_limit() {
        let max = Duration::from_millis(20);
        assert_eq!(linger_after(0, 256, max), Duration::ZERO);
        assert_eq!(linger_after(1, 256, max), Duration::from_micros(500));
        assert_eq!(linger_after(8, 256, max), Duration::from_millis(4));
        assert_eq!(linger_after(40, 256, max), max);
        assert_eq!(linger_after(255, 256, max), max);
        // A full batch is a backlog: take the next one at once.
        assert_eq!(linger_after(256, 256, max), Duration::ZERO);
        assert_eq!(linger_after(8, 256, Duration::ZERO), Duration::ZERO);
    }
}
