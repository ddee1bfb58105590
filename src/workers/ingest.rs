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

use crate::store::Store;
use crate::store::messages::{InboundRecord, StatusRecord};

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
}

/// Why events were not stored (the cause is logged once by the batcher).
#[derive(Debug, thiserror::Error)]
#[error("the events could not be stored")]
pub struct NotStored;

impl Ingest {
    /// Starts the batcher; `writers` transactions may run at once (1 on SQLite); while
    /// busy, it waits up to `linger` between batches.
    pub fn spawn(
        store: Arc<dyn Store>,
        wake: Arc<Notify>,
        writers: usize,
        linger: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(16_384);
        tokio::spawn(run(store, wake, writers.max(1), linger, rx));
        Self { tx }
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
            let result = store.store_webhook(&messages, &statuses).await;
            let ok = match result {
                Ok(new) => {
                    metrics::counter!("parley_messages_received_total").increment(new as u64);
                    if new > 0 {
                        wake.notify_one();
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
