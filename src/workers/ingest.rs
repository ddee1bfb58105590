//! Group commit for webhooks: concurrent webhook requests hand their events to one
//! task that stores everything that arrived meanwhile in a single transaction, then
//! answers each request. Every request still gets its 200 only after its events are
//! committed; under load, one commit serves many requests. While requests keep coming
//! (the last batch held more than one), the batcher lingers (`super::linger_after`:
//! longer the more the last batch held, at most `PARLEY_BATCH_LINGER_MS`) before the
//! next transaction, so each commit serves more of them: a commit writes every page it
//! touched, and pages shared by many messages are then written once. The same
//! transaction also decides and writes the turns that need nothing more
//! (`pipeline::DecideStored`, on both backends): such a message goes through one write
//! transaction instead of two.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use super::followers::{Followers, inbound_key};
use crate::cache::TenantContext;
use crate::clock::Clock;
use crate::store::Store;
use crate::store::messages::{
    ClaimedInbound, InboundRecord, StatusRecord, StoredLeased, TurnRecord,
};

/// A batch of new messages leased as they were stored, for the pipeline to process at
/// once, with the pipeline slot it holds; with the turns decided and written in that
/// same transaction, and the sending slot their leased replies hold.
pub struct Handed {
    pub slot: tokio::sync::OwnedSemaphorePermit,
    pub stored: StoredLeased,
    pub send_slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Where stored messages go straight to the pipeline (set once the workers run): new
/// messages that are their customer's only pending one are leased in the transaction
/// that stores them and passed on, instead of claimed back by the pipeline, while one
/// of `slots` is free.
pub struct Handoff {
    pub slots: Arc<Semaphore>,
    pub clock: Arc<dyn Clock>,
    pub lease: Duration,
    pub to: mpsc::UnboundedSender<Handed>,
    /// Decide what can be decided in the storing transaction (`DecideStored`), leasing
    /// replies while one of `send_slots` is free.
    pub decide: Option<DecideHere>,
}

/// What deciding in the storing transaction needs beyond the webhooks' tenants.
pub struct DecideHere {
    pub send_slots: Arc<Semaphore>,
    pub email_enabled: bool,
}

/// Most webhook requests folded into one transaction.
const MAX_JOBS: usize = 256;

/// How often a lingering batcher looks whether a full batch is waiting.
const LINGER_CHECK: Duration = Duration::from_millis(1);

struct Job {
    messages: Vec<InboundRecord>,
    statuses: Vec<StatusRecord>,
    /// The tenant whose webhook this is, for deciding its messages at once.
    tenant: Option<Arc<TenantContext>>,
    done: oneshot::Sender<Result<(), ()>>,
    /// When the request handed it over: a batch lingers from its first job's arrival.
    at: tokio::time::Instant,
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

    /// Stores the events durably; returns once they are committed. `tenant`, whose
    /// events they are, lets their turns be decided in the same transaction.
    pub async fn store(
        &self,
        messages: Vec<InboundRecord>,
        statuses: Vec<StatusRecord>,
        tenant: Option<Arc<TenantContext>>,
    ) -> Result<(), NotStored> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            messages,
            statuses,
            tenant,
            done,
            at: tokio::time::Instant::now(),
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
        // Counted from the first job's arrival, not from now: while the writer was
        // busy with the last batch, this one was gathering already (on a busy writer
        // the wait is over before it starts, and the writer never idles for it). Cut
        // short once a full batch is waiting: more company cannot join it, and every
        // request in it would only wait longer for its 200.
        if !wait.is_zero() {
            let deadline = first.at + wait;
            while rx.len() + 1 < MAX_JOBS {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    break;
                }
                tokio::time::sleep_until(deadline.min(now + LINGER_CHECK)).await;
            }
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
            let mut tenants: Vec<Arc<TenantContext>> = Vec::new();
            for j in jobs {
                messages.extend(j.messages);
                statuses.extend(j.statuses);
                answers.push(j.done);
                if let Some(t) = j.tenant
                    && !tenants.iter().any(|k| k.tenant.id == t.tenant.id)
                {
                    tenants.push(t);
                }
            }
            let handoff = handoff.get().filter(|_| !messages.is_empty());
            let slot = handoff.and_then(|h| h.slots.clone().try_acquire_owned().ok());
            let result = match (handoff, slot) {
                (Some(h), Some(slot)) => {
                    let now = h.clock.now();
                    let lease = super::lease_until(now, h.lease);
                    let stored = match &h.decide {
                        Some(d) => {
                            // Replies leased with their turns need a sending slot.
                            let send_slot = d.send_slots.clone().try_acquire_owned().ok();
                            let decide =
                                super::pipeline::DecideStored::new(tenants, now, d.email_enabled);
                            store
                                .store_webhook_deciding(
                                    &messages,
                                    &statuses,
                                    lease,
                                    Box::new(decide),
                                    now,
                                    send_slot.as_ref().map(|_| lease),
                                )
                                .await
                                .map(|(new, stored)| (new, stored, send_slot))
                        }
                        None => store
                            .store_webhook_leasing(&messages, &statuses, lease)
                            .await
                            .map(|(new, stored)| (new, stored, None)),
                    };
                    stored.map(|(new, stored, send_slot)| {
                        let handed = Handed {
                            slot,
                            stored,
                            send_slot,
                        };
                        (new, Some((h, handed)))
                    })
                }
                _ => store
                    .store_webhook(&messages, &statuses)
                    .await
                    .map(|new| (new, None)),
            };
            let ok = match result {
                Ok((new, handed)) => {
                    metrics::counter!("parley_messages_received_total").increment(new as u64);
                    let (leased, decided): (&[ClaimedInbound], &[TurnRecord]) = handed
                        .as_ref()
                        .map_or((&[], &[]), |(_, h)| (&h.stored.messages, &h.stored.decided));
                    // The leased ones first: a later message of the same customer in
                    // this batch is their follower. Decided ones are done already.
                    in_work.taken(leased.iter().map(inbound_key), false);
                    if new > leased.len() + decided.len() {
                        let ids: std::collections::HashSet<uuid::Uuid> = leased
                            .iter()
                            .map(|m| m.id)
                            .chain(decided.iter().map(|t| t.inbound_id))
                            .collect();
                        in_work.arrived(
                            messages
                                .iter()
                                .filter(|m| !ids.contains(&m.id))
                                .map(|m| (m.tenant_id, m.channel, m.message.customer_id.clone())),
                        );
                        wake.notify_one();
                    }
                    if let Some((h, handed)) = handed
                        && !(handed.stored.messages.is_empty() && handed.stored.decided.is_empty())
                    {
                        // Gone only if the workers stopped: the leases run out and the
                        // messages and replies are claimed then.
                        let _ = h.to.send(handed);
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
