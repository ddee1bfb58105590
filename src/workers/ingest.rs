//! Group commit for webhooks: concurrent webhook requests hand their events to one
//! task that stores everything that arrived meanwhile in a single transaction, then
//! answers each request. Every request still gets its 200 only after its events are
//! committed; under load, one commit serves many requests. While requests keep coming
//! (the last batch held more than one), the batcher lingers (`super::linger_after`:
//! longer the more the last batch held, at most `PARLEY_BATCH_LINGER_MS`) before the
//! next transaction, so each commit serves more of them: a commit writes every page it
//! touched, and pages shared by many messages are then written once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use super::followers::{Followers, inbound_key};
use crate::clock::Clock;
use crate::store::Store;
use crate::store::messages::{InboundRecord, StatusRecord, StoredLeased};

/// A batch of new messages leased as they were stored, for the pipeline to process at
/// once, with the pipeline slot it holds.
pub type Handed = (tokio::sync::OwnedSemaphorePermit, StoredLeased);

/// Where stored messages go straight to the pipeline (set once the workers run): new
/// messages that are their customer's only pending one are leased in the transaction
/// that stores them and passed on, instead of claimed back by the pipeline, while one
/// of `slots` is free.
pub struct Handoff {
    pub slots: Arc<Semaphore>,
    pub clock: Arc<dyn Clock>,
    pub lease: Duration,
    pub to: mpsc::UnboundedSender<Handed>,
}

/// Most webhook requests folded into one transaction.
const MAX_JOBS: usize = 256;

struct Job {
    messages: Vec<InboundRecord>,
    statuses: Vec<StatusRecord>,
    done: oneshot::Sender<Result<(), ()>>,
}

/// The webhook side of the batcher. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
    handoff: Arc<std::sync::OnceLock<Handoff>>,
}

/// Why events were not stored (the cause is logged once by the batcher).
#[derive(Debug, thiserror::Error)]
#[error("the events could not be stored")]
pub struct NotStored;

impl Ingest {
    /// Starts the batcher; `writers` transactions may run at once (1 on SQLite); while
    /// busy, it waits up to `linger` between batches. What it stores and leases is noted
    /// in `followers` (the pipeline's).
    pub fn spawn(
        store: Arc<dyn Store>,
        wake: Arc<Notify>,
        followers: Arc<Followers>,
        writers: usize,
        linger: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(16_384);
        let handoff = Arc::new(std::sync::OnceLock::new());
        tokio::spawn(run(
            store,
            wake,
            writers.max(1),
            linger,
            rx,
            handoff.clone(),
            followers,
        ));
        Self { tx, handoff }
    }

    /// From now on, passes new messages straight to the pipeline (see `Handoff`); only
    /// the first call counts.
    pub fn hand_off(&self, handoff: Handoff) {
        let _ = self.handoff.set(handoff);
    }

    /// Stores the events durably; returns once they are committed.
    pub async fn store(
        &self,
        messages: Vec<InboundRecord>,
        statuses: Vec<StatusRecord>,
    ) -> Result<(), NotStored> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            messages,
            statuses,
            done,
        };
        self.tx.send(job).await.map_err(|_| NotStored)?;
        answer.await.map_err(|_| NotStored)?.map_err(|_| NotStored)
    }
}

async fn run(
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    writers: usize,
    linger: Duration,
    mut rx: mpsc::Receiver<Job>,
    handoff: Arc<std::sync::OnceLock<Handoff>>,
    in_work: Arc<Followers>,
) {
    let permits = Arc::new(Semaphore::new(writers));
    let mut wait = Duration::ZERO;
    loop {
        // Wait for a free writer first: whatever arrives meanwhile joins this batch.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let mut jobs = vec![first];
        while jobs.len() < MAX_JOBS {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // A lone request after a quiet spell is stored at once; a stream waits for
        // company, the longer the larger its batches. A full batch means a backlog.
        wait = if jobs.len() > 1 {
            super::linger_after(jobs.len(), MAX_JOBS as i64, linger)
        } else {
            Duration::ZERO
        };
        let store = store.clone();
        let wake = wake.clone();
        let handoff = handoff.clone();
        let in_work = in_work.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut messages = Vec::new();
            let mut statuses = Vec::new();
            let mut answers = Vec::with_capacity(jobs.len());
            for j in jobs {
                messages.extend(j.messages);
                statuses.extend(j.statuses);
                answers.push(j.done);
            }
            let handoff = handoff.get().filter(|_| !messages.is_empty());
            let slot = handoff.and_then(|h| h.slots.clone().try_acquire_owned().ok());
            let result = match (handoff, slot) {
                (Some(h), Some(slot)) => {
                    let lease = super::lease_until(h.clock.now(), h.lease);
                    store
                        .store_webhook_leasing(&messages, &statuses, lease)
                        .await
                        .map(|(new, leased)| (new, Some((h, slot, leased))))
                }
                _ => store
                    .store_webhook(&messages, &statuses)
                    .await
                    .map(|new| (new, None)),
            };
            let ok = match result {
                Ok((new, handed)) => {
                    metrics::counter!("parley_messages_received_total").increment(new as u64);
                    let passed = handed.as_ref().map_or(0, |(_, _, l)| l.messages.len());
                    // The leased ones first: a later message of the same customer in
                    // this batch is their follower.
                    let leased: &[crate::store::messages::ClaimedInbound] =
                        handed.as_ref().map_or(&[], |(_, _, l)| &l.messages);
                    in_work.taken(leased.iter().map(inbound_key), false);
                    if new > passed {
                        let ids: std::collections::HashSet<uuid::Uuid> =
                            leased.iter().map(|m| m.id).collect();
                        in_work.arrived(
                            messages
                                .iter()
                                .filter(|m| !ids.contains(&m.id))
                                .map(|m| (m.tenant_id, m.channel, m.message.customer_id.clone())),
                        );
                        wake.notify_one();
                    }
                    if let Some((h, slot, leased)) = handed
                        && !leased.messages.is_empty()
                    {
                        // Gone only if the workers stopped: the leases run out and the
                        // messages are claimed then.
                        let _ = h.to.send((slot, leased));
                    }
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(error = %e, requests = answers.len(), "cannot store webhook events; answering 503 so the provider retries");
                    Err(())
                }
            };
            for a in answers {
                let _ = a.send(ok);
            }
        });
    }
}
